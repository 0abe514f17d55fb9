/*
 * proxy_backend.c: the plain HTTP/1.1 backend behind the terminators that
 * bench/proxy compares. One thread, epoll, non-blocking sockets, so that it
 * costs little beside them on a shared machine. Not a web server: it reads
 * a request head (up to the blank line; no body), and answers
 *
 *   GET /bulk/N    N bytes of zeros (Content-Length: N), written from one
 *                  static buffer as fast as the socket takes them
 *   anything else  "200 OK" with a fixed 13-byte body
 *
 * keep-alive, unless the request carries "Connection: close" or is HTTP/1.0:
 * then it closes after the response. Requests are answered in order (pipelining works).
 *
 *   proxy_backend [-a ADDR] -p PORT
 *
 * It prints "listening ADDR:PORT" once bound, and runs until SIGTERM/SIGINT.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_MAX 4096
#define ZEROS (256 * 1024)

static const char small_response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, wharf\n";

struct conn {
    int fd;
    size_t in_len;
    char in[IN_MAX];
    char head[160];             /* the response head being written */
    size_t head_len, head_off;
    uint64_t body_left;         /* bytes of zeros still to write */
    int close_after;            /* Connection: close: close once written */
    int want_out;               /* registered for EPOLLOUT (instead of EPOLLIN) */
};

static char zeros[ZEROS];
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void conn_close(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

static void conn_events(int ep, struct conn *c, int want_out)
{
    struct epoll_event ev = { .events = want_out ? EPOLLOUT : EPOLLIN, .data.ptr = c };

    if (c->want_out == want_out)
        return;
    c->want_out = want_out;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* The head of the next request in c->in: set up its response and drop it
 * from the buffer. 0: none complete yet; -1: malformed or too long. */
static int take_request(struct conn *c)
{
    char *end, *line_end;
    size_t used;
    unsigned long long n;

    end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end)
        return c->in_len == IN_MAX ? -1 : 0;
    used = (size_t)(end - c->in) + 4;
    line_end = memchr(c->in, '\r', used);
    /* HTTP/1.0 closes after the response (keep-alive for 1.0 is not offered) */
    c->close_after = line_end && line_end - c->in >= 8 && memcmp(line_end - 8, "HTTP/1.0", 8) == 0;
    /* a case-insensitive look for "connection: close" among the headers */
    for (char *p = line_end; p && p < end; p = memchr(p + 1, '\n', (size_t)(end - p - 1))) {
        if ((size_t)(end - p) >= 18 && strncasecmp(p + 1, "connection: close", 17) == 0)
            c->close_after = 1;
    }
    if (used > 14 && memcmp(c->in, "GET /bulk/", 10) == 0) {
        n = strtoull(c->in + 10, NULL, 10);
        c->head_len = (size_t)snprintf(c->head, sizeof(c->head),
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: %llu\r\n\r\n", n);
        c->body_left = n;
    } else {
        c->head_len = 0;
        c->body_left = 0;
    }
    c->head_off = 0;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    return 1;
}

/* Write what is pending. 1: all of it written; 0: the socket is full; -1: error. */
static int flush(struct conn *c)
{
    ssize_t n;

    if (c->head_len == 0 && c->body_left == 0 && c->head_off == 0) {
        /* the small response, in one write (almost always whole) */
        c->head_len = sizeof(small_response) - 1;
        memcpy(c->head, small_response, c->head_len);
    }
    while (c->head_off < c->head_len) {
        n = write(c->fd, c->head + c->head_off, c->head_len - c->head_off);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->head_off += (size_t)n;
    }
    while (c->body_left > 0) {
        n = write(c->fd, zeros, c->body_left < ZEROS ? (size_t)c->body_left : ZEROS);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->body_left -= (uint64_t)n;
    }
    c->head_len = c->head_off = 0;
    return 1;
}

/* Answer every complete request in the buffer. -1: close the connection. */
static int serve(int ep, struct conn *c)
{
    int r;

    for (;;) {
        if (c->want_out) {
            r = flush(c);
            if (r < 0)
                return -1;
            if (r == 0)
                return 0;
            if (c->close_after)
                return -1;
            conn_events(ep, c, 0);
        }
        r = take_request(c);
        if (r <= 0)
            return r;
        r = flush(c);
        if (r < 0)
            return -1;
        if (r == 0) {
            conn_events(ep, c, 1);
            return 0;
        }
        if (c->close_after) {
            shutdown(c->fd, SHUT_WR);
            return -1;
        }
    }
}

static void on_readable(int ep, struct conn *c)
{
    ssize_t n = read(c->fd, c->in + c->in_len, IN_MAX - c->in_len);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(ep, c);
        return;
    }
    if (n > 0)
        c->in_len += (size_t)n;
    if (serve(ep, c) < 0)
        conn_close(ep, c);
}

static void accept_all(int ep, int lfd)
{
    for (;;) {
        int one = 1, fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *c;
        struct epoll_event ev;

        if (fd < 0)
            return;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
        }
    }
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 0, opt, one = 1, lfd, ep;
    struct sockaddr_in sin = { .sin_family = AF_INET };
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[256];
    struct rlimit rl;
    struct sigaction sa = { .sa_handler = on_signal };

    while ((opt = getopt(argc, argv, "a:p:")) != -1) {
        if (opt == 'a')
            addr = optarg;
        else if (opt == 'p')
            port = atoi(optarg);
        else
            goto usage;
    }
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
        goto usage;
    sin.sin_port = htons((uint16_t)port);

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0
        || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 4096) < 0) {
        perror("proxy_backend: listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        perror("proxy_backend: epoll");
        return 1;
    }
    printf("listening %s:%d\n", addr, port);
    fflush(stdout);

    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 1000);

        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;

            if (!c)
                accept_all(ep, lfd);
            else if (c->want_out) {
                if (serve(ep, c) < 0)
                    conn_close(ep, c);
            } else
                on_readable(ep, c);
        }
    }
    return 0;

usage:
    fprintf(stderr, "usage: proxy_backend [-a ADDR] -p PORT\n");
    return 64;
}
