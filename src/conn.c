/*
 * conn.c: one connection, from accept to close, in a task of its
 * listener's group on the worker that accepted it. The socket is wrapped in
 * a meter (bytes in and out for the counters, and the idle_timeout clock:
 * every byte either way pushes the deadline of the scope the handler runs
 * in) and a buffered stream, then handed to the plugin's handler. After the
 * handler the connection is closed gracefully: write EOF, then the peer's
 * remaining input is read and dropped for a moment, so that a reply is not
 * destroyed by a reset for bytes the handler did not read.
 * Datagram listeners get the same meter around their socket.
 * Not for: accepting (listener.c) or the protocol (the plugins).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <wharf/tls.h>

#include "wharf-int.h"
#include "wharfd.h"

/* The idle deadline moves at most this often, and fires this much late at
 * worst (never early): a clock read per I/O call, a heap update per slack. */
#define IDLE_SLACK 0.05
/* A send is metered in pieces of this size, so that a large reply to a slow
 * reader that still progresses is not taken for an idle connection. */
#define METER_CHUNK (64 * 1024)
/* After the handler: how long, and how much, input is drained before close. */
#define LINGER_TIME 1.0
#define LINGER_BYTES (1024 * 1024)

/* ---- the meter ------------------------------------------------------------ */

struct meter {
    struct wharf_stream m_base;
    const struct proxy_hdr *m_proxy;    /* the addresses a PROXY header gave, or NULL */
    struct lst_counters *m_ctr;
    struct wharf_scope *m_idle;     /* NULL: no idle clock (datagrams) */
    struct lworker *m_lw;           /* datagrams: the listener worker (swaps) */
    double m_idle_s;
    double m_touched;
};

static void meter_touch(struct meter *m)
{
    double now;

    if (!m->m_idle)
        return;
    now = wharf_clock();
    if (now - m->m_touched < IDLE_SLACK)
        return;
    m->m_touched = now;
    wharf_scope_set_deadline(m->m_idle, now + m->m_idle_s + IDLE_SLACK);
}

static void meter_in(struct meter *m, ssize_t n)
{
    if (n > 0) {
        ctr_add(&m->m_ctr->lc_bytes_in, (unsigned long)n);
        meter_touch(m);
    }
}

static void meter_out(struct meter *m, size_t n)
{
    ctr_add(&m->m_ctr->lc_bytes_out, n);
    meter_touch(m);
}

static ssize_t meter_receive(struct wharf_stream *s, void *buf, size_t max)
{
    ssize_t n = wharf_receive(s->inner, buf, max);

    meter_in((struct meter *)s, n);
    return n;
}

static ssize_t meter_receive_nowait(struct wharf_stream *s, void *buf, size_t max)
{
    ssize_t n = wharf_receive_nowait(s->inner, buf, max);

    meter_in((struct meter *)s, n);
    return n;
}

static int meter_send(struct wharf_stream *s, const void *buf, size_t len)
{
    const char *p = buf;
    int rc;

    do {
        size_t n = len < METER_CHUNK ? len : METER_CHUNK;

        if ((rc = wharf_send(s->inner, p, n)) < 0)
            return rc;
        meter_out((struct meter *)s, n);
        p += n;
        len -= n;
    } while (len > 0);
    return 0;
}

static ssize_t meter_send_nowait(struct wharf_stream *s, const void *buf, size_t len)
{
    ssize_t n = wharf_send_nowait(s->inner, buf, len);

    if (n > 0)
        meter_out((struct meter *)s, (size_t)n);
    return n;
}

/* A reload restarts the datagram handler with the new generation
 * (conn_datagrams) between two datagrams, never in the middle of one: the
 * handler waits for a datagram here without taking it, and is cancelled
 * there by the swap (swap_task); woken, it looks for a swap before it
 * takes the datagram, which is then the new handler's; one at work
 * answers what it holds and finds the swap at its next receive. */
static ssize_t meter_dgram_receive(struct meter *m, void *buf, size_t max,
                                   struct sockaddr *from, socklen_t *fromlen)
{
    struct lworker *lw = m->m_lw;
    ssize_t n;
    int rc;

    if (!lw)
        return wharf_receive_from(m->m_base.inner, buf, max, from, fromlen);
    if ((rc = wharf_checkpoint()) < 0)  /* as a blocking receive has */
        return rc;
    for (;;) {
        if (lw->lw_swapped)
            return WHARF_ECANCELLED;
        n = udp_receive_from_nowait(m->m_base.inner, buf, max, from, fromlen);
        if (n == WHARF_ENOTSUP)
            return wharf_receive_from(m->m_base.inner, buf, max, from, fromlen);
        if (n != WHARF_EWOULDBLOCK)
            return n;
        lw->lw_dgram_waiting = true;
        rc = wharf_wait(m->m_base.inner, WHARF_READABLE);
        lw->lw_dgram_waiting = false;
        if (rc < 0)
            return rc;
    }
}

static ssize_t meter_receive_from(struct wharf_stream *s, void *buf, size_t max,
                                  struct sockaddr *from, socklen_t *fromlen)
{
    struct meter *m = (struct meter *)s;
    ssize_t n = meter_dgram_receive(m, buf, max, from, fromlen);

    if (n >= 0) {
        ctr_add(&m->m_ctr->lc_datagrams_in, 1);
        ctr_add(&m->m_ctr->lc_bytes_in, (unsigned long)n);
    }
    return n;
}

static int meter_send_to(struct wharf_stream *s, const void *buf, size_t len,
                         const struct sockaddr *to, socklen_t tolen)
{
    struct meter *m = (struct meter *)s;
    int rc = wharf_send_to(s->inner, buf, len, to, tolen);

    if (rc == 0) {
        ctr_add(&m->m_ctr->lc_datagrams_out, 1);
        ctr_add(&m->m_ctr->lc_bytes_out, len);
    }
    return rc;
}

static int meter_send_eof(struct wharf_stream *s)
{
    return wharf_send_eof(s->inner);
}

static int meter_wait(struct wharf_stream *s, unsigned events)
{
    return wharf_wait(s->inner, events);
}

static int meter_notify_readable(struct wharf_stream *s, void (*fn)(void *arg), void *arg)
{
    return wharf_notify_readable(s->inner, fn, arg);
}

/* Behind a balancer, the peer is the client its PROXY header named. */
static int meter_getattr(struct wharf_stream *s, int attr, void *out, size_t *len)
{
    const struct proxy_hdr *h = ((struct meter *)s)->m_proxy;
    int port;

    if (!h)
        return -ENOENT;
    switch (attr) {
    case WHARF_ATTR_FAMILY:
        return stream_attr_int(out, len, h->ph_src.ss_family);
    case WHARF_ATTR_REMOTE_ADDRESS:
        return stream_attr_copy(out, len, &h->ph_src, h->ph_srclen);
    case WHARF_ATTR_LOCAL_ADDRESS:
        return stream_attr_copy(out, len, &h->ph_dst, h->ph_dstlen);
    case WHARF_ATTR_REMOTE_PORT:
    case WHARF_ATTR_LOCAL_PORT:
        port = addr_port((const struct sockaddr *)(attr == WHARF_ATTR_REMOTE_PORT ? &h->ph_src
                                                                                 : &h->ph_dst));
        return port < 0 ? port : stream_attr_int(out, len, port);
    }
    return -ENOENT;
}

static int meter_close(struct wharf_stream *s)
{
    return wharf_close(s->inner);
}

static void meter_free(struct wharf_stream *s)
{
    wharf_free(s->inner);
    free(s);
}

static const struct wharf_stream_ops meter_stream_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "meter",
    .receive = meter_receive,
    .send = meter_send,
    .receive_nowait = meter_receive_nowait,
    .send_nowait = meter_send_nowait,
    .send_eof = meter_send_eof,
    .wait = meter_wait,
    .getattr = meter_getattr,
    .close = meter_close,
    .free = meter_free,
    .notify_readable = meter_notify_readable,
};

static const struct wharf_stream_ops meter_datagram_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "meter",
    .receive_from = meter_receive_from,
    .send_to = meter_send_to,
    .wait = meter_wait,
    .close = meter_close,
    .free = meter_free,
};

/* Wraps inner (owned from now on, freed on failure too). */
static struct wharf_stream *meter_new(struct wharf_stream *inner, const struct wharf_stream_ops *ops,
                                      struct lst_counters *ctr, struct wharf_scope *idle,
                                      double idle_s)
{
    struct meter *m = calloc(1, sizeof(*m));

    if (!m) {
        wharf_free(inner);
        return NULL;
    }
    wharf_stream_init(&m->m_base, ops, inner);
    m->m_ctr = ctr;
    m->m_idle = idle;
    m->m_idle_s = idle_s;
    m->m_touched = wharf_clock();
    return &m->m_base;
}

/* ---- a connection ---------------------------------------------------------- */

struct conn {
    struct lworker *c_lw;
    struct lgen *c_gen;                 /* the generation it started under */
    struct wharf_stream *c_sock;
    /* for the log: the client (PROXY: the named one), an IP address (the
     * log says "a local client" for any other): 28 bytes, not 128 */
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } c_peer;
    socklen_t c_peerlen;
    struct proxy_hdr *c_proxy;          /* a PROXY listener's header, or NULL */
    bool c_proxied;                     /* c_proxy names the client */
    const char *c_why;                  /* a bad PROXY header: what is wrong */
    /* while the handler is parked (wharf_park): */
    struct meter *c_meter;              /* under the handler's stream: the idle clock */
    int (*c_cont)(void *arg);           /* its continuation */
    void *c_cont_arg;
    double c_idle_at;                   /* idle_timeout's deadline when it parked */
};

static const char *conn_peer(const struct conn *c, char *buf, size_t size)
{
    if (c->c_peerlen == 0 || wharf_addr_format(&c->c_peer.sa, c->c_peerlen, buf, size) < 0)
        snprintf(buf, size, "a local client");
    return buf;
}

/* Keeps an IP address for the log (anything else: c_peerlen 0). */
static void conn_set_peer(struct conn *c, const struct sockaddr_storage *ss, socklen_t len)
{
    c->c_peerlen = 0;
    if ((ss->ss_family == AF_INET || ss->ss_family == AF_INET6) && len <= sizeof(c->c_peer)) {
        memcpy(&c->c_peer, ss, len);
        c->c_peerlen = len;
    }
}

static void conn_note_peer(struct conn *c, struct wharf_stream *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (wharf_getattr_addr(s, WHARF_ATTR_REMOTE_ADDRESS, &ss, &len) == 0)
        conn_set_peer(c, &ss, len);
}

/* Write EOF, then drop what the peer still sends, until its EOF or for a
 * moment: closing with unread input would reset the connection, and the
 * peer could lose the end of the reply. Over TLS (no half-close): the
 * close_notify first, then the same on the socket under it, whose bytes
 * (what TLS would decrypt) nobody reads any more. */
static void conn_linger(struct wharf_stream *s)
{
    struct wharf_scope sc;
    size_t total = 0;
    char buf[4096];
    ssize_t n;

    if (!(s = tls_close_notify(s)) || wharf_send_eof(s) < 0 ||
        wharf_move_on_after(&sc, LINGER_TIME) < 0)
        return;
    while (total < LINGER_BYTES && (n = wharf_receive(s, buf, sizeof(buf))) > 0)
        total += (size_t)n;
    wharf_scope_exit(&sc, 0);
}

/* The counters and the log line for a connection that ended with rc. */
static void conn_end(struct conn *c, int rc, bool timed_out)
{
    struct lworker *lw = c->c_lw;
    struct listener *l = lw->lw_lst;
    char peer[128];

    if (timed_out) {
        ctr_add(&lw->lw_ctr->lc_timeouts, 1);
        log_debug("listener \"%s\": connection from %s: idle for %.1fs: closed", l->lst_name,
                  conn_peer(c, peer, sizeof(peer)), c->c_gen->lg_limits.lim_idle_timeout);
    } else if (rc < 0 && rc != WHARF_ECANCELLED) {
        ctr_add(&lw->lw_ctr->lc_errors, 1);
        log_limited(&l->lst_stats->ls_log, CONF_LOG_INFO, "listener \"%s\": connection from %s: %s",
                    l->lst_name, conn_peer(c, peer, sizeof(peer)), wharf_strerror(rc));
    } else if (log_enabled(CONF_LOG_DEBUG)) {
        log_debug("listener \"%s\": connection from %s: closed", l->lst_name,
                  conn_peer(c, peer, sizeof(peer)));
    }
    ctr_add(&lw->lw_ctr->lc_closed, 1);
    atomic_fetch_sub(&l->lst_stats->ls_active, 1);
    lgen_unref(&c->c_gen);
    free(c->c_proxy);
    free(c);
}

static void conn_count_handshake(struct lworker *lw, struct wharf_stream *t)
{
    char version[16] = "";
    size_t len = sizeof(version);
    int resumed = 0;

    ctr_add(&lw->lw_ctr->lc_handshakes, 1);
    if (wharf_getattr(t, WHARF_ATTR_TLS_VERSION, version, &len) == 0)
        ctr_add(strcmp(version, "TLSv1.3") == 0 ? &lw->lw_ctr->lc_tls13 : &lw->lw_ctr->lc_tls12, 1);
    if (wharf_getattr_int(t, WHARF_ATTR_TLS_RESUMED, &resumed) == 0 && resumed)
        ctr_add(&lw->lw_ctr->lc_resumed, 1);
}

/* The PROXY header, read through a buffered layer that keeps what follows
 * it (a ClientHello) for the next layer. */
static int conn_proxy(struct conn *c, struct wharf_stream **sp)
{
    struct wharf_stream *b = wharf_buffered_new(*sp);
    int rc;

    if (!b) {
        wharf_free(*sp);
        *sp = NULL;
        return -ENOMEM;
    }
    *sp = b;
    if (!(c->c_proxy = calloc(1, sizeof(*c->c_proxy))))
        return -ENOMEM;
    if ((rc = proxy_read(b, c->c_proxy, &c->c_why)) < 0)
        return rc;
    if (!c->c_proxy->ph_local) {
        c->c_proxied = true;
        conn_set_peer(c, &c->c_proxy->ph_src, c->c_proxy->ph_srclen);
    }
    return 0;
}

/* Wraps *sp in the listener's TLS and, unless the handler starts it
 * (STARTTLS), runs the handshake. *sp is the TLS stream afterwards, even
 * when the handshake failed (for its reason). */
static int conn_tls(struct conn *c, struct wharf_stream **sp)
{
    const struct lgen *g = c->c_gen;
    struct wharf_stream *t;
    int rc;

    rc = wharf_tls_new(*sp, g->lg_ssl_ctx, g->lg_tls_flags, NULL, &t);
    *sp = t;
    if (rc == 0 && (g->lg_tls_flags & WHARF_TLS_DEFERRED))
        /* STARTTLS, later: the same bound from its start */
        tls_set_handshake_timeout(t, g->lg_limits.lim_handshake_timeout);
    if (rc < 0 || (g->lg_tls_flags & WHARF_TLS_DEFERRED))
        return rc;
    if ((rc = wharf_tls_handshake(t)) == 0)
        conn_count_handshake(c->c_lw, t);
    return rc;
}

/* Counts and logs what ended a connection before its handler: a bad
 * PROXY header is an error, a failed TLS handshake a handshake failure. */
static void conn_prelude_failed(struct conn *c, struct wharf_stream *s, bool in_tls, int rc)
{
    struct lworker *lw = c->c_lw;
    struct log_limit *lim = &lw->lw_lst->lst_stats->ls_log;
    const char *name = lw->lw_lst->lst_name;
    double limit = c->c_gen->lg_limits.lim_handshake_timeout;
    char peer[128];

    conn_peer(c, peer, sizeof(peer));
    if (!in_tls) {
        ctr_add(&lw->lw_ctr->lc_errors, 1);
        if (rc == WHARF_ETIMEDOUT)
            log_limited(lim, CONF_LOG_INFO, "listener \"%s\": PROXY header from %s: not "
                        "received within handshake_timeout (%.1fs)", name, peer, limit);
        else
            log_limited(lim, CONF_LOG_INFO, "listener \"%s\": PROXY header from %s: %s", name,
                        peer, c->c_why ? c->c_why : wharf_strerror(rc));
        return;
    }
    ctr_add(&lw->lw_ctr->lc_handshake_failures, 1);
    if (rc == WHARF_ETIMEDOUT)
        log_limited(lim, CONF_LOG_INFO, "listener \"%s\": TLS handshake with %s: not finished "
                    "within handshake_timeout (%.1fs)", name, peer, limit);
    else
        log_limited(lim, CONF_LOG_INFO, "listener \"%s\": TLS handshake with %s failed: %s",
                    name, peer, *wharf_tls_error(s) ? wharf_tls_error(s) : wharf_strerror(rc));
}

/* STARTTLS: the handshake the handler started counts as one at accept
 * does; a failed one (counted and logged here) is not the handler's error.
 * Returns what the connection ended with. */
static int conn_starttls_end(struct conn *c, struct wharf_stream *s, int rc)
{
    int hs;

    if (wharf_tls_started(s)) {
        conn_count_handshake(c->c_lw, s);
        return rc;
    }
    if ((hs = tls_handshake_failure(s)) == 0)
        return rc;
    conn_prelude_failed(c, s, true, hs);
    return 0;
}

/* What comes before the handler, within handshake_timeout of the accept:
 * the PROXY header, then the TLS handshake. 0 with *sp ready for the
 * handler, or a negative code with *sp freed (counted and logged). */
static int conn_prelude(struct conn *c, struct wharf_stream **sp)
{
    const struct lgen *g = c->c_gen;
    struct wharf_scope hs;
    bool in_tls = false;
    int rc;

    if (!g->lg_proxy_protocol && !g->lg_ssl_ctx)
        return 0;
    rc = wharf_scope_enter(&hs, wharf_clock() + g->lg_limits.lim_handshake_timeout,
                           WHARF_SCOPE_FAIL);
    if (rc < 0)
        goto out;
    if (g->lg_proxy_protocol)
        rc = conn_proxy(c, sp);
    if (rc == 0 && g->lg_ssl_ctx) {
        in_tls = true;
        rc = conn_tls(c, sp);
    }
    rc = wharf_scope_exit(&hs, rc);
    if (rc == 0)
        return 0;
    if (rc != WHARF_ECANCELLED && rc != -ENOMEM)
        conn_prelude_failed(c, *sp, in_tls, rc);
out:
    wharf_free(*sp);
    *sp = NULL;
    return rc;
}

/* The stream the handler gets: meter (application bytes, idle clock, the
 * PROXY header's addresses) and buffered over the socket or its TLS. NULL:
 * out of memory (s freed). */
static struct wharf_stream *conn_wrap(struct conn *c, struct wharf_stream *s)
{
    struct wharf_stream *b;

    s = meter_new(s, &meter_stream_ops, c->c_lw->lw_ctr, NULL,
                  c->c_gen->lg_limits.lim_idle_timeout);
    if (!s)
        return NULL;
    c->c_meter = (struct meter *)s;
    if (c->c_proxied)
        c->c_meter->m_proxy = c->c_proxy;
    if (!(b = wharf_buffered_new(s))) {
        wharf_free(s);
        return NULL;
    }
    return b;
}

static int conn_resume(void *arg);

/* The handler parked (WHARF_PARKED): the task waits with no frame, the
 * stream and the idle clock's deadline kept here, until conn_resume. */
static int conn_park(struct conn *c, struct wharf_stream *s, struct wharf_scope *idle)
{
    if (!task_take_continuation(&c->c_cont, &c->c_cont_arg))
        return WHARF_EINVAL;        /* WHARF_PARKED without wharf_park */
    c->c_idle_at = wharf_scope_deadline(idle);
    if (task_park(conn_resume, c, c->c_idle_at) < 0)
        return WHARF_EINVAL;        /* not reached: conn tasks can park */
    c->c_meter->m_idle = NULL;      /* no I/O while parked */
    c->c_sock = s;
    return WHARF_PARKED;
}

/* The handler (or, resumed, its continuation) in the idle clock's scope,
 * then the graceful close and the counters, unless it parks. */
static int conn_serve(struct conn *c, struct wharf_stream *s, bool resumed)
{
    const struct plugin_inst *pi = c->c_gen->lg_inst;
    bool tls = c->c_gen->lg_ssl_ctx != NULL, timed_out;
    struct wharf_scope idle;
    double idle_at = resumed ? c->c_idle_at
                             : wharf_clock() + c->c_gen->lg_limits.lim_idle_timeout;
    int rc;

    if ((rc = wharf_scope_enter(&idle, idle_at, 0)) < 0) {
        wharf_free(s);
        conn_end(c, rc, false);
        return 0;
    }
    c->c_meter->m_idle = &idle;
    rc = resumed ? c->c_cont(c->c_cont_arg) : pi->pi_desc->handle_stream(pi->pi_instance, s);
    if (rc == WHARF_PARKED)
        rc = conn_park(c, s, &idle);
    if (rc == WHARF_PARKED) {
        wharf_scope_exit(&idle, 0);
        return 0;
    }
    /* no park: wakes the handler armed (wharf_park_on) go before its
     * streams do */
    wharf_park(NULL, NULL);
    task_take_continuation(&c->c_cont, &c->c_cont_arg);
    if (rc != WHARF_ECANCELLED)
        conn_linger(s);
    rc = wharf_scope_exit(&idle, rc);
    timed_out = wharf_scope_cancelled_caught(&idle);
    if (tls && tls_ragged_seen(s))
        ctr_add(&c->c_lw->lw_ctr->lc_ragged_eofs, 1);
    if (tls && (c->c_gen->lg_tls_flags & WHARF_TLS_DEFERRED))
        rc = conn_starttls_end(c, s, rc);
    wharf_free(s);
    conn_end(c, rc, timed_out);
    return 0;       /* never a failure: that would cancel the listener's group */
}

/* A parked handler's wake: a read edge, the idle deadline, a cancellation. */
static int conn_resume(void *arg)
{
    struct conn *c = arg;
    struct wharf_stream *s = c->c_sock;

    c->c_sock = NULL;
    return conn_serve(c, s, true);
}

static int conn_task(void *arg)
{
    struct conn *c = arg;
    struct wharf_stream *s = c->c_sock;
    int rc;

    c->c_sock = NULL;
    conn_note_peer(c, s);
    if ((rc = conn_prelude(c, &s)) < 0) {
        /* counted already (errors or handshake_failures) */
        conn_end(c, rc == -ENOMEM ? rc : 0, false);
        return 0;
    }
    if (!(s = conn_wrap(c, s))) {
        conn_end(c, -ENOMEM, false);
        return 0;
    }
    return conn_serve(c, s, false);
}

void conn_start(struct lworker *lw, struct wharf_stream *sock)
{
    struct conn *c = calloc(1, sizeof(*c));
    int rc = -ENOMEM;

    if (c) {
        c->c_lw = lw;
        c->c_gen = lgen_ref(lw->lw_gen);
        c->c_sock = sock;
        if ((rc = group_spawn_parkable(lw->lw_group, conn_task, c)) == 0)
            return;
    }
    wharf_free(sock);
    if (c) {
        conn_end(c, rc, false);
        return;
    }
    ctr_add(&lw->lw_ctr->lc_errors, 1);
    ctr_add(&lw->lw_ctr->lc_closed, 1);
    atomic_fetch_sub(&lw->lw_lst->lst_stats->ls_active, 1);
}

/* ---- datagrams -------------------------------------------------------------- */

int conn_datagrams(struct lworker *lw, struct wharf_stream *sock, const char **what)
{
    struct wharf_stream *s = meter_new(sock, &meter_datagram_ops, lw->lw_ctr, NULL, 0);
    int rc = 0;

    if (!s) {
        *what = "cannot start the datagram handler";   /* it never ran */
        return -ENOMEM;
    }
    ((struct meter *)s)->m_lw = lw;
    while (!lw->lw_stopping) {
        /* the handler keeps the generation it started with; a reload
         * ends it between two datagrams (lw_swapped, meter_receive_from)
         * and it starts again with the new one, on the same socket */
        struct lgen *g = lgen_ref(lw->lw_gen);
        const struct plugin_inst *pi = g->lg_inst;
        struct wharf_scope sc;

        lw->lw_swapped = false;
        lw->lw_restart_by = 0;
        if ((rc = wharf_scope_enter(&sc, WHARF_FOREVER, 0)) == 0) {
            lw->lw_accept = &sc;
            rc = pi->pi_desc->handle_datagrams(pi->pi_instance, s);
            lw->lw_accept = NULL;
            rc = wharf_scope_exit(&sc, rc);
            if (lw->lw_restart_by > 0 && !lw->lw_stopping &&
                wharf_scope_cancelled_caught(&sc) && wharf_clock() >= lw->lw_restart_by)
                log_warning("listener \"%s\" on worker %u: the datagram handler did not "
                            "restart within drain_timeout (%.1fs) of a reload: cancelled",
                            lw->lw_lst->lst_name, lw->lw_index,
                            g->lg_limits.lim_drain_timeout);
        }
        lgen_unref(&g);
        if (lw->lw_swapped && !lw->lw_stopping)
            continue;
        if (rc < 0 && rc != WHARF_ECANCELLED)
            ctr_add(&lw->lw_ctr->lc_errors, 1);     /* listener_run logs it */
        break;
    }
    wharf_free(s);
    return rc;
}
