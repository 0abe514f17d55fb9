/*
 * demo.c: wharf-demo, the runtime at work until the daemon exists. Three
 * loopback services run as tasks of one task group, each written as
 * straight-line code that suspends where it waits:
 *
 *   BASE+0  TCP echo    sends every byte back until the client's EOF
 *   BASE+1  TCP hello   reads one line NAME, answers "Hello, NAME", closes
 *   BASE+2  UDP echo    sends each datagram back to its sender
 *
 * Try it (BASE is 7000 unless -p says otherwise):
 *   socat - TCP:127.0.0.1:7000
 *   echo world | nc 127.0.0.1 7001
 *   socat - UDP:127.0.0.1:7002
 *
 * Each connection is a task; a cancel scope drops it after IDLE_SECONDS
 * without traffic. SIGINT/SIGTERM cancel the group: every task sees
 * WHARF_ECANCELLED at its next checkpoint, unwinds and closes its socket.
 * Not for: configuration, TLS or plugins: that is the daemon's job.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wharf/wharf.h>

#define HOST "127.0.0.1"
#define IDLE_SECONDS 300.0
#define LINE_MAX_BYTES 1024
#define DATAGRAM_MAX 65536

/* A signal handler may only set state; the signal_watch task acts on it. */
static volatile sig_atomic_t stop_signal;

/* A TCP service: its listener, the task run per connection, the group. */
struct service {
    const char *sv_name;
    struct wharf_stream *sv_listener;
    wharf_task_fn sv_handler;           /* takes a struct conn *, frees it */
    struct wharf_group *sv_group;
};

/* One accepted connection, owned by its handler task. */
struct conn {
    const char *cn_service;
    struct wharf_stream *cn_stream;
    char cn_peer[64];
    double cn_start;
};

/* ---- connections: one task each ------------------------------------------ */

/* Logs the connection's one line and frees it. Handlers return 0 whatever
 * happened: a failing task would cancel the whole group, and one bad
 * connection must not stop the others. */
static int conn_end(struct conn *c, struct wharf_scope *idle, int rc, const char *what)
{
    const char *why = wharf_scope_cancelled_caught(idle) ? "idle timeout"
                    : rc == 0 || rc == WHARF_EOF ? "closed" : wharf_strerror(rc);

    fprintf(stderr, "%s %s: %s, %s after %.1f s\n", c->cn_service, c->cn_peer,
            what, why, wharf_clock() - c->cn_start);
    wharf_free(c->cn_stream);
    free(c);
    return 0;
}

/* Echoes until EOF; every chunk pushes the idle deadline back. */
static int echo_conn(void *arg)
{
    struct conn *c = arg;
    struct wharf_scope idle;
    char buf[4096], what[64];
    size_t total = 0;
    ssize_t n = 0;
    int rc = 0;

    wharf_move_on_after(&idle, IDLE_SECONDS);
    while (rc == 0 && (n = wharf_receive(c->cn_stream, buf, sizeof(buf))) > 0) {
        wharf_scope_set_deadline(&idle, wharf_clock() + IDLE_SECONDS);
        rc = wharf_send(c->cn_stream, buf, (size_t)n);
        total += (size_t)n;
    }
    rc = wharf_scope_exit(&idle, rc ? rc : (int)n);
    snprintf(what, sizeof(what), "%zu bytes echoed", total);
    return conn_end(c, &idle, rc, what);
}

/* Reads one line through a buffered stream and greets it. */
static int hello_conn(void *arg)
{
    static const char hello[] = "Hello, ";
    struct conn *c = arg;
    struct wharf_stream *b = wharf_buffered_new(c->cn_stream);
    struct wharf_scope idle;
    char line[LINE_MAX_BYTES], reply[sizeof(hello) + LINE_MAX_BYTES];
    const char *what;
    ssize_t n = -ENOMEM;
    int rc;

    wharf_move_on_after(&idle, IDLE_SECONDS);
    if (b) {
        c->cn_stream = b;       /* the buffered stream owns the socket now */
        n = wharf_receive_until(b, "\n", 1, line, sizeof(line));
    }
    if (n > 0 && line[n - 1] == '\r')
        n--;                    /* telnet and friends end lines with CRLF */
    rc = n < 0 ? (int)n : 0;
    if (rc == 0) {
        memcpy(reply, hello, sizeof(hello) - 1);
        memcpy(reply + sizeof(hello) - 1, line, (size_t)n);
        reply[sizeof(hello) - 1 + n] = '\n';
        rc = wharf_send(b, reply, sizeof(hello) + (size_t)n);
    }
    what = rc == 0 ? "greeted" : "not greeted";
    rc = wharf_scope_exit(&idle, rc);
    return conn_end(c, &idle, rc, what);
}

/* Hands a new connection to a task of its own in the service's group. */
static void conn_spawn(struct service *sv, struct wharf_stream *s)
{
    struct conn *c = calloc(1, sizeof(*c));
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = -ENOMEM;

    if (c) {
        *c = (struct conn){ sv->sv_name, s, "?", wharf_clock() };
        if (wharf_getattr_addr(s, WHARF_ATTR_REMOTE_ADDRESS, &ss, &len) == 0)
            wharf_addr_format((struct sockaddr *)&ss, len, c->cn_peer, sizeof(c->cn_peer));
        if ((rc = wharf_group_spawn(sv->sv_group, sv->sv_handler, c)) == 0)
            return;
    }
    fprintf(stderr, "%s: dropped a connection: %s\n", sv->sv_name, wharf_strerror(rc));
    wharf_free(s);
    free(c);
}

/* ---- the long-running tasks ---------------------------------------------- */

static int accept_loop(void *arg)
{
    struct service *sv = arg;
    struct wharf_stream *s;
    int rc;

    for (;;) {
        if ((rc = wharf_accept(sv->sv_listener, &s)) == 0) {
            conn_spawn(sv, s);
            continue;
        }
        if (rc == WHARF_ECANCELLED)
            return rc;
        fprintf(stderr, "%s: accept: %s\n", sv->sv_name, wharf_strerror(rc));
        if (rc != -EMFILE && rc != -ENFILE && rc != -ENOBUFS && rc != -ENOMEM)
            return rc;
        /* out of descriptors or memory: back off instead of spinning */
        if ((rc = wharf_sleep(0.1)) < 0)
            return rc;
    }
}

static int udp_echo(void *arg)
{
    struct wharf_stream *u = arg;
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof(from);
    char peer[64], *buf = malloc(DATAGRAM_MAX);  /* too big for a task stack */
    ssize_t n = -ENOMEM;
    int rc;

    while (buf && (n = wharf_receive_from(u, buf, DATAGRAM_MAX,
                                          (struct sockaddr *)&from, &fromlen)) >= 0) {
        rc = wharf_send_to(u, buf, (size_t)n, (struct sockaddr *)&from, fromlen);
        if (wharf_addr_format((struct sockaddr *)&from, fromlen, peer, sizeof(peer)) < 0)
            strcpy(peer, "?");
        fprintf(stderr, "udp %s: %zd bytes %s\n", peer, n, rc ? wharf_strerror(rc) : "echoed");
        fromlen = sizeof(from);
    }
    free(buf);
    return (int)n;
}

static int signal_watch(void *arg)
{
    int rc;

    while (!stop_signal)
        if ((rc = wharf_sleep(0.1)) < 0)
            return rc;
    fprintf(stderr, "wharf-demo: %s, stopping\n", strsignal(stop_signal));
    wharf_group_cancel(arg);
    return 0;
}

/* ---- putting it together ------------------------------------------------- */

static int demo_main(void *arg)
{
    unsigned base = *(unsigned *)arg;
    struct service echo = { "echo", NULL, echo_conn, NULL };
    struct service hello = { "hello", NULL, hello_conn, NULL };
    struct wharf_stream *udp = NULL;
    struct wharf_group *g;
    int rc;

    if ((rc = wharf_tcp_listen(HOST, base, 0, 0, &echo.sv_listener)) < 0 ||
        (rc = wharf_tcp_listen(HOST, base + 1, 0, 0, &hello.sv_listener)) < 0 ||
        (rc = wharf_udp_open(HOST, base + 2, 0, &udp)) < 0) {
        fprintf(stderr, "wharf-demo: cannot listen on %s ports %u-%u\n", HOST, base, base + 2);
        goto out;
    }
    if (!(g = wharf_group_open())) {
        rc = -ENOMEM;
        goto out;
    }
    echo.sv_group = hello.sv_group = g;
    if ((rc = wharf_group_spawn(g, accept_loop, &echo)) < 0 ||
        (rc = wharf_group_spawn(g, accept_loop, &hello)) < 0 ||
        (rc = wharf_group_spawn(g, udp_echo, udp)) < 0 ||
        (rc = wharf_group_spawn(g, signal_watch, g)) < 0)
        wharf_group_cancel(g);
    else
        fprintf(stderr, "wharf-demo: TCP echo on %s:%u, TCP hello on %u, UDP echo on %u"
                " (Ctrl-C stops)\n", HOST, base, base + 1, base + 2);
    rc = wharf_group_close(g, rc);      /* waits for every task */
out:
    wharf_free(echo.sv_listener);
    wharf_free(hello.sv_listener);
    wharf_free(udp);
    return rc;
}

static void on_signal(int sig)
{
    stop_signal = sig;
}

static int usage(FILE *fp, int status)
{
    fprintf(fp, "usage: wharf-demo [-p BASE] [-h]\n"
                "  -p BASE  TCP echo on BASE, TCP hello on BASE+1, UDP echo on BASE+2\n"
                "           (all on 127.0.0.1; BASE defaults to 7000)\n"
                "  -h       this help\n");
    return status;
}

int main(int argc, char **argv)
{
    struct sigaction sa = { .sa_handler = on_signal };
    unsigned base = 7000;
    char *end;
    long v;
    int opt, rc;

    while ((opt = getopt(argc, argv, "hp:")) != -1) {
        if (opt == 'h')
            return usage(stdout, 0);
        /* 1..65533, so that BASE+2 is a port too */
        if (opt != 'p' || (v = strtol(optarg, &end, 10)) < 1 || v > 65533 ||
            *optarg == '\0' || *end != '\0')
            return usage(stderr, 2);
        base = (unsigned)v;
    }
    if (optind < argc)
        return usage(stderr, 2);
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = wharf_run(demo_main, &base);
    if (rc < 0)
        fprintf(stderr, "wharf-demo: %s\n", wharf_strerror(rc));
    return rc < 0 ? 1 : 0;
}
