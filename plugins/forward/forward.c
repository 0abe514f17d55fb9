/*
 * forward: the TLS terminator's proxy (SPEC.md section 5). Each connection
 * of a stream listener is connected to the target and bytes are copied
 * both ways; each sender on a UDP listener gets an association to the
 * target (datagram.c).
 *
 * Options:
 *   target = "HOST:PORT" | "[IPv6]:PORT" | "unix:/path"   (required; HOST a
 *       name or a numeric address, resolved for each connection; a relative
 *       UNIX path is relative to the config file's directory)
 *   connect_timeout = 5.0      seconds to connect, send the PROXY header and
 *                              finish the TLS handshake with the target (a
 *                              name is resolved on wharf's thread pool,
 *                              which a timeout cannot interrupt: a slow
 *                              resolver ends it at its answer)
 *   tls = { verify = true; server_name = "name"; ca = "ca.pem"; alpn = [ ... ]; }
 *       TLS to the target (TLS 1.2 or later). verify checks the chain
 *       against ca (relative to the config file's directory) or, without
 *       ca, the system's store, and the host name: server_name, else the
 *       target's host (an IP address is checked as one). server_name is
 *       also the SNI (else the target's host when it is a name).
 *   send_proxy = "v1" | "v2"   a PROXY protocol header first (proxy.c)
 *   udp_idle_timeout = 60.0    UDP: an association without a datagram
 *                              either way for this long is closed
 *   udp_max_associations = 1024    UDP, per worker: beyond it the least
 *                              recently active association is closed
 * Anything else is refused, naming the option; tls and send_proxy are for
 * stream listeners, the udp_* options for UDP listeners.
 *
 * A stream connection: connect (within connect_timeout), then two tasks
 * in a task group copy one direction each (the handler's task, host of
 * the group, and a child that ends after half a second without bytes from
 * the target: down_task) through a buffer each: receive into it and send
 * from it, with no other copy; 1 KiB on the task's stack while messages
 * are small, 64 KiB on the heap while data streams (pass_on). Once the
 * child has ended and the client too has sent nothing for half a second,
 * the handler parks (wharf_park, where the host can: wharfd): the
 * connection then holds no task frame at all until either side sends,
 * and fwd_resume copies on. The end of stream
 * on one side becomes a write EOF (wharf_send_eof) on the other, and the
 * connection ends when both directions have ended, or at once when either
 * side fails (the group cancels the other direction) and the failure is
 * the handler's result: wharfd counts it in `errors` and logs it.
 *
 * TLS has no half-close (wharf_send_eof is WHARF_ENOTSUP on a TLS
 * stream). Where the EOF cannot be passed on:
 *  - from the client, to a TLS target: the client-to-target direction is
 *    done, and the target's answer still comes back, until its own end of
 *    stream (a half-closing client gets its reply);
 *  - from the target, to a TLS client: the connection ends, and wharfd's
 *    close sends the client close_notify, which is its end of stream. The
 *    target is done; a client still sending would otherwise keep a
 *    connection whose server has gone, and a client that reads until the
 *    end (HTTP/1.0, a close-delimited body) would wait for idle_timeout.
 * TLS to the target is in relaxed mode (no WHARF_TLS_STANDARD): backends
 * that close without close_notify are common, and what such an end would
 * truncate is the target's own business, as with a plain target. It
 * resumes the latest session of the listener's connections (session_new).
 *
 * Failures: a target that refuses, does not resolve or does not answer
 * within connect_timeout, or a TLS handshake with it that fails (a
 * certificate that does not verify: -EPROTO, "Protocol error" in the
 * log) end the connection with that error; the client is closed without
 * a byte. The plugin API has no log of its own: the cause reaches the log
 * as wharfd's line for the error code.
 *
 * Stats (the stats hook): bytes_up (client to target), bytes_down,
 * connections (established to the target), connect_failures, parked
 * (connections whose handler is parked now), and for UDP
 * listeners udp_associations (opened), udp_associations_active and
 * udp_evictions. Relaxed atomics: handlers run on every worker.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <wharf/plugin.h>
#include <wharf/tls.h>

#include "forward.h"

/* ---- TLS sessions to the target ----------------------------------------------- */

/* TLS to the target resumes the latest session any connection of the
 * instance got (what HAProxy does per server): a full handshake per
 * connection would cost the target and us a signature and a key exchange.
 * The session comes from a verified handshake with the same server_name,
 * on a context that only this instance uses. */
static int session_new(SSL *ssl, SSL_SESSION *sess)
{
    struct fwd *f = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    SSL_SESSION *old;

    pthread_mutex_lock(&f->fwd_session_lock);
    old = f->fwd_session;
    f->fwd_session = sess;
    pthread_mutex_unlock(&f->fwd_session_lock);
    SSL_SESSION_free(old);
    return 1;           /* the reference is ours now */
}

static void session_offer(struct fwd *f, struct wharf_stream *t)
{
    SSL *ssl = NULL;
    size_t len = sizeof(ssl);

    if (wharf_getattr(t, WHARF_ATTR_TLS_SSL, &ssl, &len) < 0 || !ssl)
        return;
    pthread_mutex_lock(&f->fwd_session_lock);
    if (f->fwd_session)
        SSL_set_session(ssl, f->fwd_session);
    pthread_mutex_unlock(&f->fwd_session_lock);
}

static void sessions_setup(struct fwd *f)
{
    SSL_CTX_set_app_data(f->fwd_ssl_ctx, f);
    SSL_CTX_set_session_cache_mode(f->fwd_ssl_ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(f->fwd_ssl_ctx, session_new);
}

/* ---- the instance ------------------------------------------------------------- */

static void fwd_fini(void *instance)
{
    struct fwd *f = instance;

    fwd_options_free(f);
    SSL_SESSION_free(f->fwd_session);
    pthread_mutex_destroy(&f->fwd_session_lock);
    free(f);
}

static void *fwd_init(json_t *options, const struct wharf_plugin_env *env,
                      struct wharf_plugin_error *err)
{
    struct fwd *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    pthread_mutex_init(&f->fwd_session_lock, NULL);
    if (fwd_options(f, options, env, err) < 0) {
        fwd_fini(f);
        return NULL;
    }
    if (f->fwd_ssl_ctx)
        sessions_setup(f);
    return f;
}

/* The stats hook's figures, in the order they are reported. */
static const struct {
    const char *name;
    size_t offset;
} figures[] = {
    { "bytes_up", offsetof(struct fwd, fwd_bytes_up) },
    { "bytes_down", offsetof(struct fwd, fwd_bytes_down) },
    { "connections", offsetof(struct fwd, fwd_connections) },
    { "connect_failures", offsetof(struct fwd, fwd_connect_failures) },
    { "udp_associations", offsetof(struct fwd, fwd_assoc_opened) },
    { "udp_associations_active", offsetof(struct fwd, fwd_assoc_active) },
    { "udp_evictions", offsetof(struct fwd, fwd_assoc_evicted) },
    { "parked", offsetof(struct fwd, fwd_parked) },
};

static int fwd_stats(void *instance, json_t *out)
{
    size_t i;

    for (i = 0; i < sizeof(figures) / sizeof(figures[0]); i++) {
        atomic_ullong *c = (atomic_ullong *)((char *)instance + figures[i].offset);
        json_int_t v = (json_int_t)atomic_load_explicit(c, memory_order_relaxed);

        if (json_object_set_new(out, figures[i].name, json_integer(v)) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* ---- connecting to the target ------------------------------------------------- */

static int send_proxy_header(struct fwd *f, struct wharf_stream *client,
                             struct wharf_stream *target)
{
    unsigned char hdr[FWD_PROXY_MAX];
    size_t len = fwd_proxy_header(f->fwd_send_proxy, client, hdr);

    return wharf_send(target, hdr, len);
}

/* Replaces *s by a TLS stream over it, handshake done; on failure *s is
 * freed and NULL. A handshake that fails is -EPROTO. */
static int start_tls(struct fwd *f, struct wharf_stream **s)
{
    struct wharf_stream *t;
    int rc = wharf_tls_new(*s, f->fwd_ssl_ctx, 0, f->fwd_server_name, &t);

    *s = t;             /* NULL on failure: wharf_tls_new freed the socket */
    if (rc < 0)
        return rc;
    session_offer(f, t);
    rc = wharf_tls_handshake(t);
    return rc == WHARF_EBROKEN ? -EPROTO : rc;
}

/* Connects to the target within connect_timeout: the socket, the PROXY
 * header, the TLS handshake. Returns 0 with *out, WHARF_ETIMEDOUT, or the
 * failure. */
static int open_target(struct fwd *f, struct wharf_stream *client, struct wharf_stream **out)
{
    struct wharf_stream *s = NULL;
    struct wharf_scope sc;
    int rc;

    *out = NULL;
    if ((rc = wharf_fail_after(&sc, f->fwd_connect_timeout)) < 0)
        return rc;
    rc = f->fwd_path ? wharf_unix_connect(f->fwd_path, &s)
                     : wharf_tcp_connect(f->fwd_host, f->fwd_port, NULL, 0, &s);
    if (rc == 0 && f->fwd_send_proxy != FWD_PROXY_NONE)
        rc = send_proxy_header(f, client, s);
    if (rc == 0 && f->fwd_ssl_ctx)
        rc = start_tls(f, &s);
    rc = wharf_scope_exit(&sc, rc);
    if (rc < 0) {
        wharf_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- copying ------------------------------------------------------------------ */

/* How long a direction waits for its sender before it stops holding a task
 * for it: the target-to-client task ends after this without a byte from
 * the target (down_task), and once it has, the handler parks after this
 * without a byte from the client (copy_up): a keep-alive exchange costs a
 * wake, not a task's start, and an idle connection gives its stacks back
 * within twice this. */
#define FWD_PARK_AFTER 0.5

/* A connection between its handler's runs: parking (wharf_park) ends the
 * handler's frame, and this is what its continuation needs. */
struct fwd_conn {
    struct fwd *fc_f;
    struct wharf_stream *fc_client, *fc_target;
    bool fc_can_park;               /* the host can park the handler */
};

struct direction {
    struct wharf_stream *from, *to;
    struct wharf_group *group;
    atomic_ullong *bytes;
    bool to_client;
    char *big;                      /* FWD_BUF bytes while data streams, or NULL */
    /* the target-to-client direction only (down_task): */
    bool parked;                    /* no task: a call waits for the target */
    bool host_done;                 /* the other direction ended: no parking */
    int failed;                     /* the call could not start its task */
    /* the client-to-target direction only (copy_up), when it can park: */
    double last;                    /* when the client last sent */
    struct wharf_scope *waiting;    /* the scope of its wait, or NULL */
    struct direction *peer;         /* the other direction */
};

/* Passes the end of stream on; see the top of the file for TLS. */
static int pass_eof(struct direction *d)
{
    int rc = wharf_send_eof(d->to);

    if (rc != WHARF_ENOTSUP)
        return rc;
    if (d->to_client)
        wharf_group_cancel(d->group);
    return 0;
}

/* Sends what a receive brought and picks the next buffer: the small one
 * while messages are small (requests and answers of a keep-alive
 * protocol, an idle connection), a big one from the first receive that
 * fills the small one (a transfer), and back to the small one when a
 * receive returns no more than it holds: most connections never hold more
 * than the small buffers. */
static int pass_on(struct direction *d, const char *buf, size_t n)
{
    int rc;

    if ((rc = wharf_send(d->to, buf, n)) < 0)
        return rc;
    fwd_count(d->bytes, (unsigned long long)n);
    if (!d->big && n == FWD_SMALL) {
        d->big = malloc(FWD_BUF);   /* NULL: the small one does */
    } else if (d->big && n <= FWD_SMALL) {
        free(d->big);
        d->big = NULL;
    }
    return 0;
}

/* The client has sent nothing since the last receive drained it, and the
 * handler can park: waits until it is readable. Once the target's
 * direction holds no task (down->parked) and the client has been silent
 * for FWD_PARK_AFTER, says WHARF_PARKED: both are idle, the handler
 * parks. The wait runs in a scope that down_idle cancels when it parks,
 * to look again; it is a wait and not the receive because a cancelled
 * wait takes nothing, and a TLS receive may be writing (a KeyUpdate's
 * answer) when cancelled, which breaks the stream. */
static int up_wait(struct direction *d)
{
    struct wharf_scope sc;
    double until;
    int rc;

    for (;;) {
        until = d->peer->parked ? d->last + FWD_PARK_AFTER : WHARF_FOREVER;
        if (until <= wharf_clock())
            return WHARF_PARKED;
        if ((rc = wharf_scope_enter(&sc, until, 0)) < 0)
            return rc;
        d->waiting = &sc;
        rc = wharf_wait(d->from, WHARF_READABLE);
        d->waiting = NULL;
        rc = wharf_scope_exit(&sc, rc);
        if (rc < 0 || !wharf_scope_cancelled_caught(&sc))
            return rc;              /* readable (or spuriously 0), or a failure */
    }
}

/* Client to target, on the handler's own task. WHARF_PARKED: both
 * directions are idle and the handler can park. A receive that filled the
 * buffer leaves more to read: the next one goes without the wait (and
 * without its poll of a socket that had no EAGAIN since). */
static int copy_up(struct direction *d, bool can_park)
{
    char small[FWD_SMALL];          /* on the stack: in a page it holds anyway */
    bool drained = true;
    ssize_t n;
    int rc;

    d->last = wharf_clock();
    for (;;) {
        char *buf = d->big ? d->big : small;
        size_t cap = d->big ? FWD_BUF : FWD_SMALL;

        if (can_park && drained && (rc = up_wait(d)) != 0)
            return rc;
        if ((n = wharf_receive(d->from, buf, cap)) <= 0)
            break;
        drained = (size_t)n < cap;
        if (can_park)
            d->last = wharf_clock();
        if ((rc = pass_on(d, buf, (size_t)n)) < 0)
            return rc;
    }
    return n == WHARF_EOF ? pass_eof(d) : (int)n;
}

static int down_task(void *arg);

/* The target has bytes again: a task to copy them. From the loop. */
static void down_wake(void *arg)
{
    struct direction *d = arg;
    int rc;

    d->parked = false;
    if ((rc = wharf_group_spawn(d->group, down_task, d)) < 0) {
        d->failed = rc;
        wharf_group_cancel(d->group);
    }
}

#define DOWN_PARKED 1

/* The target has nothing now. Waits for it in the task, FWD_PARK_AFTER at
 * most while the other direction runs, then leaves a call for the
 * target's next read edge (down_wake) and says DOWN_PARKED: the task ends,
 * and the client's direction is told (it may park the handler). 0: read
 * again. WHARF_ENOTSUP: a target that cannot be waited for (the caller
 * receives, blocking). */
static int down_idle(struct direction *d)
{
    struct wharf_scope sc;
    int rc;

    if (!d->host_done) {
        if ((rc = wharf_move_on_after(&sc, FWD_PARK_AFTER)) < 0)
            return rc;
        rc = wharf_scope_exit(&sc, wharf_wait(d->from, WHARF_READABLE));
        if (rc < 0 || !wharf_scope_cancelled_caught(&sc))
            return rc;                  /* readable, or a failure */
        if (!d->host_done) {            /* (it may have ended meanwhile) */
            rc = wharf_notify_readable(d->from, down_wake, d);
            if (rc == 0) {
                free(d->big);
                d->big = NULL;
                d->parked = true;
                if (d->peer->waiting)
                    wharf_scope_cancel(d->peer->waiting);
                return DOWN_PARKED;
            }
            if (rc == 1)
                return 0;               /* an edge came meanwhile */
        }
    }
    return wharf_wait(d->from, WHARF_READABLE);
}

/* Target to client, on a child task that lives only while the target
 * speaks: after FWD_PARK_AFTER without a byte from it (and while the other
 * direction still runs) the task ends, and a call on the target's next
 * read edge (down_wake, wharf_notify_readable) starts the next. A target
 * that cannot say when it is readable is waited for in the task, as is
 * every target once the other direction ended. */
static int down_task(void *arg)
{
    struct direction *d = arg;
    char small[FWD_SMALL];
    ssize_t n;
    int rc;

    for (;;) {
        char *buf = d->big ? d->big : small;
        size_t cap = d->big ? FWD_BUF : FWD_SMALL;

        if ((rc = wharf_checkpoint()) < 0)
            return rc;
        n = wharf_receive_nowait(d->from, buf, cap);
        if (n == WHARF_EWOULDBLOCK) {
            if ((rc = down_idle(d)) == DOWN_PARKED)
                return 0;
            if (rc == 0)
                continue;
            if (rc != WHARF_ENOTSUP)
                return rc;
            n = wharf_receive(d->from, buf, cap);
        } else if (n == WHARF_ENOTSUP) {
            n = wharf_receive(d->from, buf, cap);
        }
        if (n <= 0)
            break;
        if ((rc = pass_on(d, buf, (size_t)n)) < 0)
            return rc;
    }
    return n == WHARF_EOF ? pass_eof(d) : (int)n;
}

/* Both directions at once until both end, or either fails, or
 * (WHARF_PARKED) both are idle and the handler can park. The handler's own task, host
 * of the group, copies client to target; a child copies target to client
 * and ends after FWD_PARK_AFTER without a byte (down_task). The
 * semantics are those of a task per direction: the host runs inside the
 * group's scope, a failing child cancels it, its failure cancels the
 * child; a direction without a task when the host's ends is finished on
 * the host. */
static int pipe_both(struct fwd_conn *fc)
{
    struct fwd *f = fc->fc_f;
    struct wharf_group *g;
    struct direction up, down;
    int rc;

    if (!(g = wharf_group_open()))
        return -ENOMEM;
    up = (struct direction){ .from = fc->fc_client, .to = fc->fc_target, .group = g,
                             .bytes = &f->fwd_bytes_up, .peer = &down };
    down = (struct direction){ .from = fc->fc_target, .to = fc->fc_client, .group = g,
                               .bytes = &f->fwd_bytes_down, .to_client = true, .peer = &up };
    rc = wharf_group_spawn(g, down_task, &down);
    if (rc == 0)
        rc = copy_up(&up, fc->fc_can_park);
    down.host_done = true;
    if (down.parked) {
        wharf_notify_readable(fc->fc_target, NULL, NULL);
        down.parked = false;
        if (rc == 0)
            rc = down_task(&down);
    }
    if (down.failed && (rc == 0 || rc == WHARF_ECANCELLED || rc == WHARF_PARKED))
        rc = down.failed;           /* the cancel was down_wake's */
    if (rc == WHARF_PARKED) {
        /* no child: the target's direction was parked */
        if ((rc = wharf_group_close(g, 0)) == 0)
            rc = WHARF_PARKED;
    } else {
        rc = wharf_group_close(g, rc);
    }
    free(up.big);
    free(down.big);
    return rc;
}

static int fwd_resume(void *arg);

/* Both directions idle: the handler parks until either side is readable
 * (fwd_resume). 0: one is readable already, or parking is not to be had:
 * copy again. */
static int park(struct fwd_conn *fc)
{
    int rc = wharf_park_on(fc->fc_client);

    if (rc == 0 && (rc = wharf_park_on(fc->fc_target)) == 0) {
        fwd_count(&fc->fc_f->fwd_parked, 1);
        return wharf_park(fwd_resume, fc);
    }
    wharf_park(NULL, NULL);         /* withdraws what was armed */
    if (rc != 1)
        fc->fc_can_park = false;    /* a stream that cannot tell */
    return 0;
}

/* Copies until the connection ends (its result) or parks (WHARF_PARKED). */
static int fwd_run(struct fwd_conn *fc)
{
    int rc;

    while ((rc = pipe_both(fc)) == WHARF_PARKED)
        if ((rc = park(fc)) == WHARF_PARKED)
            return rc;
    wharf_free(fc->fc_target);
    free(fc);
    return rc;
}

/* A parked connection's wake: a read edge of either side, or (its first
 * call says WHARF_ECANCELLED) idle_timeout, a reload's drain, shutdown. */
static int fwd_resume(void *arg)
{
    struct fwd_conn *fc = arg;

    atomic_fetch_sub_explicit(&fc->fc_f->fwd_parked, 1, memory_order_relaxed);
    return fwd_run(fc);
}

static int fwd_serve(void *instance, struct wharf_stream *client)
{
    struct fwd *f = instance;
    struct wharf_stream *target;
    struct fwd_conn *fc;
    int rc;

    if ((rc = open_target(f, client, &target)) < 0) {
        if (rc != WHARF_ECANCELLED)
            fwd_count(&f->fwd_connect_failures, 1);
        return rc;
    }
    fwd_count(&f->fwd_connections, 1);
    if (!(fc = malloc(sizeof(*fc)))) {
        wharf_free(target);
        return -ENOMEM;
    }
    *fc = (struct fwd_conn){ .fc_f = f, .fc_client = client, .fc_target = target,
                             .fc_can_park = wharf_parkable() };
    return fwd_run(fc);
}

const struct wharf_plugin wharf_plugin = {
    WHARF_PLUGIN_HEAD("forward"),
    .init = fwd_init,
    .handle_stream = fwd_serve,
    .handle_datagrams = fwd_serve_datagrams,
    .stats = fwd_stats,
    .fini = fwd_fini,
};
