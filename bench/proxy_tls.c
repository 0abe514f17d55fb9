/*
 * proxy_tls.c: the TLS client of bench/proxy, for what wrk cannot do:
 * full handshakes without resumption, many idle connections, one bulk
 * download counted to the byte. Certificates are not verified (a bench
 * certificate); the server's handshake signature is, by the protocol.
 *
 *   proxy_tls hs   -p PORT [-c CONC] [-P PROCS] [-d SECONDS]
 *       New connections for SECONDS (then the ones in flight finish), CONC
 *       at once spread over PROCS processes: each a full handshake (no
 *       session is ever offered: the client's session cache is off, so
 *       SSL_session_reused must stay 0, and it is counted), one
 *       "GET / HTTP/1.1" with "Connection: close", the response read to its
 *       end (checked: 200, the whole body). Prints
 *       "hs done=N failed=F resumed=R bad=B tickets=T seconds=S rate=N/S
 *        protocol=P cipher=C group=G".
 *   proxy_tls idle -p PORT -n N [-c CONC] [-t HOLD]
 *       N connections, CONC handshakes at once, each a keep-alive request
 *       answered (the path to the backend is proven), then idle. Prints
 *       "ready established=E failed=F resumed=R seconds=S", holds them until
 *       SIGTERM/SIGINT or HOLD seconds (default 60), prints
 *       "end dropped=D" (closed by the other side meanwhile) and closes them
 *       with close_notify.
 *   proxy_tls bulk -p PORT -s BYTES
 *       One connection, "GET /bulk/BYTES", the body read and counted. Prints
 *       "bulk bytes=N seconds=S MBps=M".
 * Common: -a ADDR (default 127.0.0.1), -T TIMEOUT per connection (10 s).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum state { CONNECTING, HANDSHAKE, WRITING, READING, IDLE };
enum mode { HS, IDLEMODE };

struct tconn {
    int fd;
    SSL *ssl;
    enum state st;
    int events;                 /* epoll interest now */
    double deadline;
    size_t got;                 /* bytes of the response so far */
    size_t head_len;            /* 0 until the head is complete */
    long long body_len;
    char head[512];
};

struct result {
    long done, failed, resumed, bad;
    double seconds;
    char info[200];
};

static struct sockaddr_in target = { .sin_family = AF_INET };
static SSL_CTX *ctx;
static enum mode mode;
static double timeout_s = 10.0;
static volatile sig_atomic_t stop;
static long tickets;            /* session tickets received (never used) */
static struct result res;

static const char req_close[] = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
static const char req_keep[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Counts the tickets the server sends and keeps none: nothing can be resumed. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    (void)sess;
    tickets++;
    return 0;
}

static void make_ctx(void)
{
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ERR_print_errors_fp(stderr);
        exit(1);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* A client cache mode so that new tickets reach the callback, which
     * drops them; no internal store, and SSL_set_session is never called. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void note_session(SSL *ssl)
{
    EVP_PKEY *key = NULL;
    char group[64] = "?";
    size_t len;

    if (res.info[0])
        return;
    if (SSL_get_peer_tmp_key(ssl, &key) && key) {
        if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1)
            snprintf(group, sizeof(group), "%s", EVP_PKEY_get0_type_name(key));
        EVP_PKEY_free(key);
    }
    snprintf(res.info, sizeof(res.info), "protocol=%s cipher=%s group=%s",
             SSL_get_version(ssl), SSL_get_cipher_name(ssl), group);
}

/* ---- one connection, non-blocking --------------------------------------------- */

static void set_events(int ep, struct tconn *c, int events)
{
    struct epoll_event ev = { .events = (uint32_t)events, .data.ptr = c };

    if (c->events == events)
        return;
    c->events = events;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static struct tconn *conn_open(int ep)
{
    struct tconn *c = calloc(1, sizeof(*c));
    struct epoll_event ev;
    int one = 1;

    if (!c)
        return NULL;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->deadline = now() + timeout_s;
    c->st = CONNECTING;
    c->events = EPOLLOUT;
    ev.events = EPOLLOUT;
    ev.data.ptr = c;
    if ((connect(c->fd, (struct sockaddr *)&target, sizeof(target)) < 0 && errno != EINPROGRESS)
        || epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        close(c->fd);
        free(c);
        return NULL;
    }
    return c;
}

static void conn_free(struct tconn *c, int polite)
{
    if (c->ssl) {
        if (polite)
            SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    close(c->fd);       /* also leaves the epoll set */
    free(c);
}

/* The response so far: 1 when complete and good, 0 not yet, -1 bad. */
static int response_check(struct tconn *c)
{
    char *end;

    if (!c->head_len) {
        end = memmem(c->head, c->got < sizeof(c->head) ? c->got : sizeof(c->head), "\r\n\r\n", 4);
        if (!end)
            return c->got >= sizeof(c->head) ? -1 : 0;
        c->head_len = (size_t)(end - c->head) + 4;
        if (strncmp(c->head, "HTTP/1.1 200 ", 13) != 0)
            return -1;
        c->body_len = -1;
        for (char *p = c->head; p && p < end; p = memchr(p + 1, '\n', (size_t)(end - p - 1)))
            if (strncasecmp(p + 1, "content-length:", 15) == 0)
                c->body_len = strtoll(p + 16, NULL, 10);
        if (c->body_len < 0)
            return -1;
    }
    if (c->got > c->head_len + (size_t)c->body_len)
        return -1;
    return c->got == c->head_len + (size_t)c->body_len;
}

/* Step c as far as it goes. 1: finished (hs: the response read to its
 * end; idle: answered, now idle); 0: waiting; -1: failed. */
static int conn_step(int ep, struct tconn *c)
{
    char buf[16384];
    int r, err;
    const char *req = mode == HS ? req_close : req_keep;
    size_t req_len = mode == HS ? sizeof(req_close) - 1 : sizeof(req_keep) - 1;

    for (;;) {
        switch (c->st) {
        case CONNECTING: {
            int soerr = 0;
            socklen_t sl = sizeof(soerr);

            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr)
                return -1;
            c->ssl = SSL_new(ctx);
            if (!c->ssl)
                return -1;
            SSL_set_fd(c->ssl, c->fd);
            SSL_set_tlsext_host_name(c->ssl, "localhost");
            c->st = HANDSHAKE;
            break;
        }
        case HANDSHAKE:
            r = SSL_connect(c->ssl);
            if (r == 1) {
                if (SSL_session_reused(c->ssl))
                    res.resumed++;
                note_session(c->ssl);
                c->st = WRITING;
                break;
            }
            goto would_block;
        case WRITING:
            r = SSL_write(c->ssl, req, (int)req_len);
            if (r > 0) {
                c->st = READING;
                break;
            }
            goto would_block;
        case READING:
            r = SSL_read(c->ssl, buf, sizeof(buf));
            if (r > 0) {
                size_t room = c->got < sizeof(c->head) ? sizeof(c->head) - c->got : 0;

                memcpy(c->head + c->got, buf, (size_t)r < room ? (size_t)r : room);
                c->got += (size_t)r;
                r = response_check(c);
                if (r < 0) {
                    res.bad++;
                    return -1;
                }
                if (r == 1 && mode == IDLEMODE) {
                    c->st = IDLE;
                    set_events(ep, c, EPOLLIN);
                    return 1;
                }
                break;
            }
            err = SSL_get_error(c->ssl, r);
            if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
                /* the end: close_notify, or a bare EOF */
                if (response_check(c) == 1)
                    return 1;
                res.bad++;
                return -1;
            }
            goto would_block;
        case IDLE:
            r = SSL_read(c->ssl, buf, sizeof(buf));
            if (r > 0)
                break;          /* not expected; ignored */
            err = SSL_get_error(c->ssl, r);
            if (err == SSL_ERROR_WANT_READ)
                return 0;
            return -1;          /* closed by the other side */
        }
        continue;
would_block:
        err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_READ)
            set_events(ep, c, EPOLLIN);
        else if (err == SSL_ERROR_WANT_WRITE)
            set_events(ep, c, EPOLLOUT);
        else
            return -1;
        return 0;
    }
}

/* ---- hs ----------------------------------------------------------------------- */

static void hs_run(int conc, double seconds)
{
    int ep = epoll_create1(EPOLL_CLOEXEC), inflight = 0;
    struct epoll_event evs[256];
    struct tconn **all = calloc((size_t)conc, sizeof(*all));
    double t0 = now(), end = t0 + seconds, drain_end = end + timeout_s, last_sweep = t0;

    if (ep < 0 || !all)
        exit(1);
    for (;;) {
        double t = now();
        int n;

        if (t < end && !stop) {
            for (int i = 0; i < conc; i++) {
                if (!all[i]) {
                    all[i] = conn_open(ep);
                    if (all[i])
                        inflight++;
                    else
                        res.failed++;
                }
            }
        } else if (inflight == 0 || t > drain_end) {
            break;
        }
        n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            struct tconn *c = evs[i].data.ptr;
            int r = conn_step(ep, c);

            if (r == 0)
                continue;
            if (r > 0)
                res.done++;
            else
                res.failed++;
            for (int j = 0; j < conc; j++)
                if (all[j] == c)
                    all[j] = NULL;
            conn_free(c, 0);
            inflight--;
        }
        t = now();
        if (t - last_sweep > 0.5) {
            last_sweep = t;
            for (int j = 0; j < conc; j++) {
                if (all[j] && t > all[j]->deadline) {
                    conn_free(all[j], 0);
                    all[j] = NULL;
                    inflight--;
                    res.failed++;
                }
            }
        }
    }
    res.seconds = now() - t0;
    for (int j = 0; j < conc; j++)
        if (all[j]) {
            conn_free(all[j], 0);
            res.failed++;
        }
}

static int hs_main(int conc, int procs, double seconds)
{
    int fds[64][2];
    struct result total = { 0 };
    long total_tickets = 0;

    if (procs < 1 || procs > 64 || conc < procs)
        return 64;
    for (int p = 0; p < procs; p++) {
        pid_t pid;

        if (pipe(fds[p]) < 0)
            return 1;
        pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            long t;

            close(fds[p][0]);
            hs_run(conc / procs + (p < conc % procs), seconds);
            t = tickets;
            if (write(fds[p][1], &res, sizeof(res)) != sizeof(res)
                || write(fds[p][1], &t, sizeof(t)) != sizeof(t))
                _exit(1);
            _exit(0);
        }
        close(fds[p][1]);
    }
    for (int p = 0; p < procs; p++) {
        struct result r;
        long t;

        if (read(fds[p][0], &r, sizeof(r)) != sizeof(r) || read(fds[p][0], &t, sizeof(t)) != sizeof(t)) {
            fprintf(stderr, "proxy_tls: a load process failed\n");
            return 1;
        }
        total.done += r.done;
        total.failed += r.failed;
        total.resumed += r.resumed;
        total.bad += r.bad;
        total_tickets += t;
        if (r.seconds > total.seconds)
            total.seconds = r.seconds;
        if (!total.info[0])
            memcpy(total.info, r.info, sizeof(total.info));
    }
    while (wait(NULL) > 0)
        ;
    printf("hs done=%ld failed=%ld resumed=%ld bad=%ld tickets=%ld seconds=%.3f rate=%.1f %s\n",
           total.done, total.failed, total.resumed, total.bad, total_tickets, total.seconds,
           total.seconds > 0 ? (double)total.done / total.seconds : 0.0, total.info);
    return 0;
}

/* ---- idle --------------------------------------------------------------------- */

static int idle_main(long n, int conc, double hold)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct tconn **all = calloc((size_t)n, sizeof(*all));
    struct epoll_event evs[256];
    long started = 0, inflight = 0, established = 0, dropped = 0;
    double t0 = now(), hold_end, last_sweep = t0;

    if (ep < 0 || !all)
        return 1;
    /* the handshakes, CONC at once */
    while (!stop && (started < n || inflight > 0)) {
        double t;
        int k;

        while (started < n && inflight < conc) {
            all[started] = conn_open(ep);
            if (all[started])
                inflight++;
            else
                res.failed++;
            started++;
        }
        k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            struct tconn *c = evs[i].data.ptr;
            int r;

            if (c->deadline < 0)
                continue;
            if (c->st == IDLE) {
                /* up already: a late read, or the other side closed it */
                if (conn_step(ep, c) < 0) {
                    dropped++;
                    c->deadline = -1;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                }
                continue;
            }
            r = conn_step(ep, c);
            if (r == 0)
                continue;
            inflight--;
            if (r > 0) {
                established++;
            } else {
                res.failed++;
                c->st = IDLE;   /* dead: freed below */
                c->deadline = -1;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            }
        }
        t = now();
        if (t - last_sweep > 0.5) {
            last_sweep = t;
            for (long j = 0; j < started; j++) {
                struct tconn *c = all[j];

                if (c && c->st != IDLE && t > c->deadline) {
                    c->st = IDLE;
                    c->deadline = -1;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    inflight--;
                    res.failed++;
                }
            }
        }
    }
    for (long j = 0; j < started; j++) {
        if (all[j] && all[j]->deadline < 0) {
            conn_free(all[j], 0);
            all[j] = NULL;
        }
    }
    printf("ready established=%ld failed=%ld dropped=%ld resumed=%ld seconds=%.3f %s\n",
           established, res.failed, dropped, res.resumed, now() - t0, res.info);
    fflush(stdout);

    hold_end = now() + hold;
    while (!stop && now() < hold_end) {
        int k = epoll_wait(ep, evs, 256, 200);

        for (int i = 0; i < k; i++) {
            struct tconn *c = evs[i].data.ptr;

            if (c->deadline >= 0 && conn_step(ep, c) < 0) {
                dropped++;
                c->deadline = -1;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            }
        }
    }
    printf("end dropped=%ld\n", dropped);
    fflush(stdout);
    for (long j = 0; j < started; j++)
        if (all[j])
            conn_free(all[j], all[j]->deadline >= 0);
    return 0;
}

/* ---- bulk --------------------------------------------------------------------- */

static int bulk_main(unsigned long long size)
{
    char req[128], buf[65536], head[512];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r, one = 1;
    size_t got = 0, head_len = 0, n;
    unsigned long long body = 0, want = 0;
    double t0;
    SSL *ssl;
    char *end, *p;

    if (fd < 0 || connect(fd, (struct sockaddr *)&target, sizeof(target)) < 0) {
        perror("proxy_tls: bulk: connect");
        return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SSL_CTX_clear_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    ssl = SSL_new(ctx);
    if (!ssl || !SSL_set_fd(ssl, fd) || !SSL_set_tlsext_host_name(ssl, "localhost")
        || SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    note_session(ssl);
    n = (size_t)snprintf(req, sizeof(req),
                         "GET /bulk/%llu HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", size);
    t0 = now();
    if (SSL_write(ssl, req, (int)n) != (int)n) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    for (;;) {
        r = SSL_read(ssl, buf, sizeof(buf));
        if (r <= 0)
            break;
        if (!head_len) {
            size_t take = (size_t)r < sizeof(head) - got ? (size_t)r : sizeof(head) - got;

            memcpy(head + got, buf, take);
            got += take;
            end = memmem(head, got, "\r\n\r\n", 4);
            if (!end) {
                if (got == sizeof(head))
                    break;
                continue;
            }
            head_len = (size_t)(end - head) + 4;
            if (strncmp(head, "HTTP/1.1 200 ", 13) != 0)
                break;
            for (p = head; p && p < end; p = memchr(p + 1, '\n', (size_t)(end - p - 1)))
                if (strncasecmp(p + 1, "content-length:", 15) == 0)
                    want = strtoull(p + 16, NULL, 10);
            /* what of this read follows the head */
            body += (unsigned long long)r - (head_len - (got - take));
        } else {
            body += (unsigned long long)r;
        }
        if (head_len && body >= want)
            break;
    }
    {
        double secs = now() - t0;

        printf("bulk bytes=%llu expected=%llu seconds=%.3f MBps=%.1f %s\n", body, size, secs,
               secs > 0 ? (double)body / secs / 1e6 : 0.0, res.info);
    }
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    return body == size && want == size ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: proxy_tls hs   [-a ADDR] -p PORT [-c CONC] [-P PROCS] [-d SECONDS] [-T TIMEOUT]\n"
            "       proxy_tls idle [-a ADDR] -p PORT -n N [-c CONC] [-t HOLD] [-T TIMEOUT]\n"
            "       proxy_tls bulk [-a ADDR] -p PORT -s BYTES\n");
    exit(64);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *cmd;
    int port = 0, conc = 50, procs = 1, opt;
    long n = 0;
    double seconds = 10, hold = 60;
    unsigned long long size = 0;
    struct sigaction sa = { .sa_handler = on_signal };

    if (argc < 2)
        usage();
    cmd = argv[1];
    optind = 2;
    while ((opt = getopt(argc, argv, "a:p:c:P:d:n:t:T:s:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': conc = atoi(optarg); break;
        case 'P': procs = atoi(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'n': n = atol(optarg); break;
        case 't': hold = atof(optarg); break;
        case 'T': timeout_s = atof(optarg); break;
        case 's': size = strtoull(optarg, NULL, 10); break;
        default: usage();
        }
    }
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, addr, &target.sin_addr) != 1 || conc < 1)
        usage();
    target.sin_port = htons((uint16_t)port);
    signal(SIGPIPE, SIG_IGN);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    raise_nofile();
    make_ctx();

    if (strcmp(cmd, "hs") == 0) {
        mode = HS;
        return hs_main(conc, procs, seconds);
    }
    if (strcmp(cmd, "idle") == 0 && n > 0) {
        mode = IDLEMODE;
        return idle_main(n, conc, hold);
    }
    if (strcmp(cmd, "bulk") == 0 && size > 0)
        return bulk_main(size);
    usage();
    return 64;
}
