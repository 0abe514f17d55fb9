/*
 * listener.c: a configured listener at run time. Binds its sockets (one
 * SO_REUSEPORT socket per worker for TCP and UDP, so that the kernel spreads
 * connections and no accept lock is needed; one shared socket for UNIX),
 * and runs, on each worker, the task that accepts connections into the
 * listener's task group there, or that runs the datagram handler. Stopping
 * closes the worker's socket, lets connections drain for drain_timeout,
 * then cancels them.
 * Not for: what happens to a connection (conn.c) or the set of listeners
 * and workers (server.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <openssl/ssl.h>
#include <wharf/tls.h>

#include "wharf-int.h"
#include "wharfd.h"

/* How long an accept loop pauses after a failed accept (out of
 * descriptors or memory, or a socket in trouble): a spinning accept would
 * not free any. */
#define ACCEPT_BACKOFF 0.1

/* ---- generations ---------------------------------------------------------- */

struct lgen *lgen_new(const struct conf_listener *cl)
{
    struct lgen *g = calloc(1, sizeof(*g));

    if (!g || !(g->lg_name = strdup(cl->lst_name)) ||
        (cl->lst_plugin && !(g->lg_plugin = strdup(cl->lst_plugin)))) {
        if (g)
            free(g->lg_name);
        free(g);
        return NULL;
    }
    atomic_init(&g->lg_refs, 1);
    g->lg_kind = cl->lst_kind;
    g->lg_limits = cl->lst_limits;
    g->lg_proxy_protocol = cl->lst_proxy_protocol;
    g->lg_inst = cl->lst_inst ? plugin_ref(cl->lst_inst) : NULL;
    if (cl->lst_ssl_ctx) {
        SSL_CTX_up_ref(cl->lst_ssl_ctx);
        g->lg_ssl_ctx = cl->lst_ssl_ctx;
        /* ragged_eof = false is AnyIO's standard_compatible */
        g->lg_tls_flags = WHARF_TLS_SERVER |
                          (cl->lst_tls->tls_ragged_eof ? 0 : WHARF_TLS_STANDARD) |
                          (cl->lst_tls->tls_autostart ? 0 : WHARF_TLS_DEFERRED);
    }
    return g;
}

struct lgen *lgen_ref(struct lgen *g)
{
    atomic_fetch_add_explicit(&g->lg_refs, 1, memory_order_relaxed);
    return g;
}

void lgen_unref(struct lgen **gp)
{
    struct lgen *g = *gp;

    *gp = NULL;
    if (!g || atomic_fetch_sub_explicit(&g->lg_refs, 1, memory_order_acq_rel) != 1)
        return;
    plugin_unref(&g->lg_inst);
    SSL_CTX_free(g->lg_ssl_ctx);
    free(g->lg_plugin);
    free(g->lg_name);
    free(g);
}

/* ---- binding ---------------------------------------------------------------- */

/* SO_REUSEPORT lets any process of the same user join the port, a stale
 * wharfd included, and share its traffic without a word. A socket without
 * it cannot bind where one listens (TCP; SO_REUSEADDR only passes
 * TIME_WAIT) or is bound (UDP): bound for a moment, it proves the port
 * free. */
static int probe_inet(const struct addr_one *a, int type)
{
    int fd = sock_open_bound(a->ss.ss_family, type, WHARF_V6ONLY, type == SOCK_STREAM, a);

    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

static int bind_inet(const struct conf_listener *cl, int type, bool first, const char **what)
{
    struct addr_one a;
    int fd;

    memcpy(&a.ss, &cl->lst_addr, sizeof(a.ss));
    a.len = cl->lst_addrlen;
    *what = "bind";
    if (first && (fd = probe_inet(&a, type)) < 0)
        return fd;
    fd = sock_open_bound(a.ss.ss_family, type, WHARF_REUSE_PORT | WHARF_V6ONLY, true, &a);
    if (fd < 0 || type != SOCK_STREAM)
        return fd;
    *what = "listen";
    if (listen(fd, (int)cl->lst_backlog) < 0) {
        int rc = -errno;

        close(fd);
        return rc;
    }
    return fd;
}

/* wharf_unix_listen replaces a stale socket file and applies the mode
 * before anyone can connect; the listener keeps the bare descriptor. */
static int bind_unix(const struct conf_listener *cl, const char **what)
{
    struct wharf_stream *s;
    int fd, rc;

    *what = "bind";
    rc = wharf_unix_listen(cl->lst_address, cl->lst_unix_mode, (int)cl->lst_backlog, &s);
    if (rc < 0)
        return rc;
    *what = "dup";
    rc = wharf_getattr_int(s, WHARF_ATTR_FD, &fd);
    if (rc == 0 && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
        rc = -errno;
    wharf_free(s);
    return rc < 0 ? rc : fd;
}

/* The main thread and a worker whose task ended on its own may both close
 * a descriptor: whoever takes it first. */
static void listener_close_fd(struct listener *l, size_t i)
{
    int fd = atomic_exchange(&l->lst_fds[i], -1);

    if (fd >= 0)
        close(fd);
}

static void listener_close_fds(struct listener *l)
{
    for (size_t i = 0; i < l->lst_nfds; i++)
        listener_close_fd(l, i);
}

void listener_close_sockets(struct listener *l)
{
    listener_close_fds(l);
    if (l->lst_unlink)
        unlink(l->lst_address);
    l->lst_unlink = false;
}

static int listener_bind(struct listener *l, const struct conf_listener *cl,
                         const char **what)
{
    size_t n = cl->lst_kind == CONF_UNIX ? 1 : l->lst_nworkers;
    int fd;

    if (!(l->lst_fds = calloc(n, sizeof(*l->lst_fds))))
        return -ENOMEM;
    while (l->lst_nfds < n) {
        if (cl->lst_kind == CONF_UNIX)
            fd = bind_unix(cl, what);
        else
            fd = bind_inet(cl, cl->lst_kind == CONF_UDP ? SOCK_DGRAM : SOCK_STREAM,
                           l->lst_nfds == 0, what);
        if (fd < 0) {
            listener_close_fds(l);
            return fd;
        }
        atomic_init(&l->lst_fds[l->lst_nfds], fd);
        l->lst_nfds++;
        l->lst_unlink = cl->lst_kind == CONF_UNIX;
    }
    return 0;
}

/* ---- stats that survive reloads ---------------------------------------------- */

struct lst_stats *lst_stats_new(const char *name, unsigned nworkers)
{
    struct lst_stats *st = calloc(1, sizeof(*st));

    if (!st || !(st->ls_name = strdup(name)) ||
        !(st->ls_ctr = aligned_alloc(64, nworkers * sizeof(*st->ls_ctr)))) {
        if (st)
            free(st->ls_name);
        free(st);
        return NULL;
    }
    memset(st->ls_ctr, 0, nworkers * sizeof(*st->ls_ctr));
    st->ls_refs = 1;
    st->ls_nworkers = nworkers;
    atomic_init(&st->ls_active, 0);
    return st;
}

void lst_stats_unref(struct lst_stats **sp)
{
    struct lst_stats *st = *sp;

    *sp = NULL;
    if (!st || --st->ls_refs > 0)
        return;
    free(st->ls_ctr);
    free(st->ls_name);
    free(st);
}

/* Whether fd is the socket cl describes: its type, family, address, and
 * listening for a stream. 0, or an errno saying what differs. */
static int adopt_check(const struct conf_listener *cl, int fd)
{
    int type = 0, domain = 0, listening = 0;
    socklen_t len = sizeof(int);
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0)
        return -errno;
    if (type != (cl->lst_kind == CONF_UDP ? SOCK_DGRAM : SOCK_STREAM))
        return -ESOCKTNOSUPPORT;
    if ((cl->lst_kind == CONF_UNIX) != (domain == AF_UNIX))
        return -EAFNOSUPPORT;
    if (type == SOCK_STREAM &&
        (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening))
        return -EDESTADDRREQ;
    if (cl->lst_kind == CONF_UNIX)
        return strcmp(((struct sockaddr_un *)&ss)->sun_path, cl->lst_address) == 0
                   ? 0 : -EADDRNOTAVAIL;
    return sslen == cl->lst_addrlen && memcmp(&ss, &cl->lst_addr, sslen) == 0 ? 0
                                                                             : -EADDRNOTAVAIL;
}

/* A socket systemd bound for us: every worker accepts on it (a dup each). */
static int listener_adopt(struct listener *l, const struct conf_listener *cl, int fd,
                          const char **what)
{
    int rc;

    *what = "use the socket systemd passed for";
    if ((rc = adopt_check(cl, fd)) < 0) {
        close(fd);
        return rc;
    }
    if (!(l->lst_fds = calloc(1, sizeof(*l->lst_fds)))) {
        close(fd);
        return -ENOMEM;
    }
    atomic_init(&l->lst_fds[0], fd);
    l->lst_nfds = 1;
    return 0;
}

/* Each worker's descriptor (a dup that its task adopts) and the request
 * that starts its task, made with the listener: starting it (at the start,
 * or in a reload's commit) cannot fail. */
static int listener_prepare(struct listener *l, const char **what)
{
    *what = "allocate";
    if (!(l->lst_spawn = calloc(l->lst_nworkers, sizeof(*l->lst_spawn))))
        return -ENOMEM;
    *what = "dup";
    for (unsigned i = 0; i < l->lst_nworkers; i++) {
        int fd = atomic_load(&l->lst_fds[l->lst_nfds == 1 ? 0 : i]);

        if ((l->lst_workers[i].lw_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
            return -errno;
    }
    return 0;
}

int listener_new(const struct conf_listener *cl, unsigned nworkers, int fd,
                 struct lst_stats *stats, struct listener **out, const char **what)
{
    struct listener *l = calloc(1, sizeof(*l));
    int rc = -ENOMEM;

    *out = NULL;
    *what = "allocate";
    if (!l) {
        if (fd >= 0)
            close(fd);
        return -ENOMEM;
    }
    l->lst_nworkers = nworkers;
    l->lst_kind = cl->lst_kind;
    atomic_init(&l->lst_running, 0);
    if (stats)
        stats->ls_refs++;
    l->lst_stats = stats ? stats : lst_stats_new(cl->lst_name, nworkers);
    if (!l->lst_stats || !(l->lst_name = strdup(cl->lst_name)) ||
        !(l->lst_address = strdup(cl->lst_address)) ||
        !(l->lst_workers = calloc(nworkers, sizeof(*l->lst_workers))) ||
        !(l->lst_gen = lgen_new(cl))) {
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    for (unsigned i = 0; i < nworkers; i++)
        l->lst_workers[i].lw_fd = -1;
    rc = fd >= 0 ? listener_adopt(l, cl, fd, what) : listener_bind(l, cl, what);
    if (rc < 0 || (rc = listener_prepare(l, what)) < 0)
        goto fail;
    *out = l;
    return 0;
fail:
    listener_free(l);
    return rc;
}

void listener_free(struct listener *l)
{
    if (!l)
        return;
    listener_close_sockets(l);
    for (unsigned i = 0; l->lst_workers && i < l->lst_nworkers; i++) {
        if (l->lst_workers[i].lw_fd >= 0)     /* never adopted by a task */
            close(l->lst_workers[i].lw_fd);
        lgen_unref(&l->lst_workers[i].lw_gen);
    }
    free(l->lst_spawn);
    lgen_unref(&l->lst_gen);
    lst_stats_unref(&l->lst_stats);
    free(l->lst_workers);
    free(l->lst_fds);
    free(l->lst_address);
    free(l->lst_name);
    free(l);
}

/* ---- the task on each worker ------------------------------------------------ */

/* One accepted connection: over max_connections it is closed at once. */
static void accept_one(struct lworker *lw, struct wharf_stream *conn)
{
    struct listener *l = lw->lw_lst;
    long max = lw->lw_gen->lg_limits.lim_max_connections;

    if (atomic_fetch_add(&l->lst_stats->ls_active, 1) >= max) {
        atomic_fetch_sub(&l->lst_stats->ls_active, 1);
        ctr_add(&lw->lw_ctr->lc_rejected, 1);
        wharf_free(conn);
        log_limited(&l->lst_stats->ls_log, CONF_LOG_WARNING,
                    "listener \"%s\": max_connections (%ld) reached: connection refused",
                    l->lst_name, max);
        return;
    }
    ctr_add(&lw->lw_ctr->lc_accepted, 1);
    conn_start(lw, conn);
}

static int accept_loop(struct lworker *lw, struct wharf_stream *sock)
{
    struct listener *l = lw->lw_lst;
    struct wharf_stream *conn;
    struct wharf_scope sc;
    int rc;

    if ((rc = wharf_scope_enter(&sc, WHARF_FOREVER, 0)) < 0)
        return rc;
    lw->lw_accept = &sc;
    while (!lw->lw_stopping) {
        rc = wharf_accept(sock, &conn);
        if (rc == 0) {
            accept_one(lw, conn);
        } else if (rc == WHARF_ECANCELLED || rc == WHARF_ECLOSED) {
            break;
        } else {
            /* out of descriptors or memory, or a socket that fails every
             * accept (EINVAL once shut down): a retry at once would spin
             * on the readable socket and free nothing */
            log_limited(&l->lst_stats->ls_log, CONF_LOG_WARNING,
                        "listener \"%s\": accept: %s: pausing for %.1fs", l->lst_name,
                        wharf_strerror(rc), ACCEPT_BACKOFF);
            if (wharf_sleep(ACCEPT_BACKOFF) == WHARF_ECANCELLED)
                break;
        }
    }
    lw->lw_accept = NULL;
    return wharf_scope_exit(&sc, 0);
}

/* Drains the group: connections get drain_timeout to end on their own. */
static void drain(struct lworker *lw)
{
    struct wharf_scope *gs = wharf_group_scope(lw->lw_group);
    size_t n = wharf_group_running(lw->lw_group);

    if (n > 0)
        log_debug("listener \"%s\" on worker %u: draining %zu connections for up to %.1fs",
                  lw->lw_lst->lst_name, lw->lw_index, n,
                  lw->lw_gen->lg_limits.lim_drain_timeout);
    if (lw->lw_hard)
        wharf_group_cancel(lw->lw_group);
    else
        wharf_scope_set_deadline(gs, wharf_clock() + lw->lw_gen->lg_limits.lim_drain_timeout);
}

static int adopt(struct lworker *lw, struct wharf_stream **sock)
{
    int rc = lw->lw_lst->lst_kind == CONF_UDP ? wharf_udp_from_fd(lw->lw_fd, sock)
                                              : wharf_socket_listener_from_fd(lw->lw_fd, sock);

    if (rc < 0)
        close(lw->lw_fd);
    lw->lw_fd = -1;
    return rc;
}

/* A task that ended without being stopped (or restarted by a reload):
 * its worker's SO_REUSEPORT socket would go on taking its share of the
 * connections or datagrams, with nobody to read them. Closed, the kernel
 * sends that share to the other workers. A shared socket (UNIX, systemd's)
 * stays for them. */
static void ended_on_its_own(struct lworker *lw, const char *what, int rc)
{
    struct listener *l = lw->lw_lst;
    char cause[160];

    if (l->lst_kind == CONF_UDP && !what)
        snprintf(cause, sizeof(cause), "the datagram handler returned %d%s%s", rc,
                 rc ? ": " : "", rc ? wharf_strerror(rc) : "");
    else
        snprintf(cause, sizeof(cause), "%s: %s", what ? what : "the accept loop ended",
                 wharf_strerror(rc));
    if (l->lst_nfds == l->lst_nworkers && lw->lw_index < l->lst_nfds) {
        listener_close_fd(l, lw->lw_index);
        log_error("listener \"%s\" on worker %u: %s; this worker's socket is closed, "
                  "the other workers serve on", l->lst_name, lw->lw_index, cause);
    } else {
        log_error("listener \"%s\" on worker %u: %s; this worker no longer serves it",
                  l->lst_name, lw->lw_index, cause);
    }
}

int listener_run(void *arg)
{
    struct lworker *lw = arg;
    struct listener *l = lw->lw_lst;
    struct wharf_stream *sock;
    const char *what = NULL;
    int rc;

    if ((rc = adopt(lw, &sock)) < 0) {
        what = "cannot use its socket";
    } else if (!(lw->lw_group = wharf_group_open())) {
        what = "cannot start";
        rc = -ENOMEM;
        wharf_free(sock);
    } else if (l->lst_kind == CONF_UDP) {
        /* the datagram handler owns the socket; stopping cancels it */
        rc = conn_datagrams(lw, sock, &what);
    } else {
        rc = accept_loop(lw, sock);
        wharf_free(sock);       /* this worker's socket: no more connections here */
        drain(lw);
    }
    /* not stopped, and not cancelled with the whole worker */
    if (!lw->lw_stopping && wharf_checkpoint_if_cancelled() != WHARF_ECANCELLED)
        ended_on_its_own(lw, what, rc);
    else if (l->lst_kind == CONF_UDP && rc < 0 && rc != WHARF_ECANCELLED)
        log_error("listener \"%s\" on worker %u: %s: %s", l->lst_name, lw->lw_index,
                  what ? what : "the datagram handler failed", wharf_strerror(rc));
    if (lw->lw_group) {
        wharf_group_close(lw->lw_group, 0);
        lw->lw_group = NULL;
    }
    atomic_store_explicit(&lw->lw_done, true, memory_order_release);
    server_task_done(lw->lw_srv, l);
    return 0;
}

/* ---- reaching a worker's task, from the main thread ------------------------ */

/* A small task run on lw's worker; it counts as one of the listener's
 * tasks, so that the listener outlives it. Its request to the worker is
 * part of it, so that a call made ahead (a reload's commit) cannot fail
 * when it is sent. */
struct lw_call {
    struct spawn_req lc_req;        /* to the worker; lives until the task runs */
    struct lworker *lc_lw;
    struct lgen *lc_gen;            /* swap: the new generation */
};

struct lw_call *listener_call_new(void)
{
    return calloc(1, sizeof(struct lw_call));
}

void listener_call_free(struct lw_call *c)
{
    free(c);
}

static void lw_call_done(struct lw_call *c)
{
    struct lworker *lw = c->lc_lw;

    lgen_unref(&c->lc_gen);
    free(c);
    server_task_done(lw->lw_srv, lw->lw_lst);
}

static int stop_task(void *arg)
{
    struct lw_call *c = arg;
    struct lworker *lw = c->lc_lw;

    lw->lw_hard |= atomic_load(&lw->lw_hard_req);
    if (!lworker_done(lw)) {
        lw->lw_stopping = true;
        if (lw->lw_accept)
            wharf_scope_cancel(lw->lw_accept);
        /* a datagram handler has nothing to drain; a connection draining
         * already is cut short only by a hard stop */
        if (lw->lw_group && (lw->lw_hard || lw->lw_lst->lst_kind == CONF_UDP))
            wharf_group_cancel(lw->lw_group);
    }
    lw_call_done(c);
    return 0;
}

/* New connections get the new generation; open ones keep theirs. */
static int swap_task(void *arg)
{
    struct lw_call *c = arg;
    struct lworker *lw = c->lc_lw;
    struct lgen *old = lw->lw_gen;

    lw->lw_gen = c->lc_gen;
    c->lc_gen = old;                /* unreferenced by lw_call_done */
    /* a datagram handler runs on with its generation: restart it, at
     * once if it waits for a datagram (none taken), else at its next
     * receive (one it holds is still answered: meter_receive_from). One
     * busy elsewhere, or deaf to the request (a third-party handler that
     * never receives again), gets its drain_timeout from the first
     * request, then its scope is cancelled (conn_datagrams warns). */
    if (lw->lw_lst->lst_kind == CONF_UDP && lw->lw_accept && !lworker_done(lw)) {
        lw->lw_swapped = true;
        if (lw->lw_dgram_waiting) {
            wharf_scope_cancel(lw->lw_accept);
        } else if (lw->lw_restart_by == 0) {
            lw->lw_restart_by = wharf_clock() + old->lg_limits.lim_drain_timeout;
            wharf_scope_set_deadline(lw->lw_accept, lw->lw_restart_by);
        }
    }
    lw_call_done(c);
    return 0;
}

static void lw_call(struct lworker *lw, wharf_task_fn fn, struct lgen *gen, struct lw_call *c)
{
    c->lc_lw = lw;
    c->lc_gen = gen ? lgen_ref(gen) : NULL;
    atomic_fetch_add(&lw->lw_lst->lst_running, 1);
    atomic_fetch_add(&lw->lw_srv->srv_running, 1);
    worker_spawn_req(lw->lw_worker, &c->lc_req, fn, c);
}

void listener_stop_with(struct lworker *lw, bool hard, struct lw_call *c)
{
    if (hard)
        atomic_store(&lw->lw_hard_req, true);
    lw_call(lw, stop_task, NULL, c);
}

int listener_stop(struct lworker *lw, bool hard)
{
    struct lw_call *c = listener_call_new();

    if (!c)
        return -ENOMEM;
    listener_stop_with(lw, hard, c);
    return 0;
}

void listener_swap_with(struct lworker *lw, struct lgen *gen, struct lw_call *c)
{
    lw_call(lw, swap_task, gen, c);
}
