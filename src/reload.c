/*
 * reload.c: loading a generation and committing it. reload_load is what
 * `wharfd -t`, the start and SIGHUP all run: the file, the certificates,
 * the plugins, every problem reported. reload_run then commits a new
 * generation against the running set by listener name, in two phases:
 * first everything that can fail (binding NEW listeners, and making every
 * generation, request to a worker and bit of room the switch will use,
 * with KEEP ones untouched), and only when all of it worked, the switch,
 * which cannot fail (KEEP listeners hand their workers the new generation,
 * DROP listeners stop accepting and drain). A failed reload changes
 * nothing.
 * Not for: running listeners (server.c, listener.c) or parsing (conf.c).
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "wharfd.h"

struct conf *reload_load(const char *path, struct conf_errors *errs)
{
    struct conf *conf = NULL;
    int rc;

    /* certificates and plugins are tried even when the file has errors:
     * every problem at once */
    rc = conf_parse(path, &conf, errs);
    if (conf && tlsctx_load_all(conf, errs) < 0)
        rc = -1;
    if (conf && plugin_load_all(conf, errs) < 0)
        rc = -1;
    if (rc < 0) {
        conf_free(conf);
        conf = NULL;
    }
    return conf;
}

static struct listener *find(struct listener **v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i]->lst_name, name) == 0)
            return v[i];
    return NULL;
}

/* KEEP: the same kind and address, so the same sockets serve on. */
static bool same_socket(const struct listener *l, const struct conf_listener *cl)
{
    return l->lst_kind == cl->lst_kind && strcmp(l->lst_address, cl->lst_address) == 0;
}

/* The stats a listener named so had (current or draining): they survive. */
static struct lst_stats *stats_of(struct server *srv, const char *name)
{
    struct listener *l = find(srv->srv_listeners, srv->srv_nlisteners, name);

    if (!l)
        l = find(srv->srv_draining, srv->srv_ndraining, name);
    return l ? l->lst_stats : NULL;
}

struct plan {
    struct listener **p_next;       /* the new set, in the new file's order */
    bool *p_fresh;                  /* bound by this reload (NEW) */
    struct lgen **p_gen;            /* KEEP: its new generation; NULL: it runs on */
    size_t p_n;
    struct listener **p_drop;       /* the running ones the new file lacks */
    size_t p_ndrop;
    struct lw_call **p_calls;       /* the swaps and stops, made ahead */
    size_t p_ncalls, p_used;
};

static void plan_abort(struct plan *p)
{
    for (size_t i = 0; i < p->p_n; i++) {
        if (p->p_fresh && p->p_fresh[i])
            listener_free(p->p_next[i]);
        if (p->p_gen)
            lgen_unref(&p->p_gen[i]);
    }
    for (size_t i = p->p_used; i < p->p_ncalls; i++)
        listener_call_free(p->p_calls[i]);
    free(p->p_next);
    free(p->p_fresh);
    free(p->p_gen);
    free(p->p_drop);
    free(p->p_calls);
}

/* Phase one: every NEW listener bound; nothing running is touched. */
static int plan_make(struct server *srv, const struct conf *conf, struct plan *p,
                     struct conf_errors *errs)
{
    int rc = 0;

    p->p_n = conf->conf_nlisteners;
    p->p_next = calloc(p->p_n + 1, sizeof(*p->p_next));
    p->p_fresh = calloc(p->p_n + 1, sizeof(*p->p_fresh));
    p->p_gen = calloc(p->p_n + 1, sizeof(*p->p_gen));
    if (!p->p_next || !p->p_fresh || !p->p_gen) {
        conf_errors_add(errs, 0, "%s: reload: %s", conf->conf_file, strerror(ENOMEM));
        p->p_n = 0;
        return -1;
    }
    for (size_t i = 0; i < p->p_n; i++) {
        const struct conf_listener *cl = &conf->conf_listeners[i];
        struct listener *old = find(srv->srv_listeners, srv->srv_nlisteners, cl->lst_name);

        if (old && same_socket(old, cl)) {
            p->p_next[i] = old;
            continue;
        }
        if (server_bind(srv, conf, cl, stats_of(srv, cl->lst_name), &p->p_next[i], errs) < 0) {
            rc = -1;
            continue;
        }
        p->p_fresh[i] = true;
    }
    return rc;
}

static bool same_limits(const struct conf_limits *a, const struct conf_limits *b)
{
    return a->lim_max_connections == b->lim_max_connections &&
           a->lim_handshake_timeout == b->lim_handshake_timeout &&
           a->lim_idle_timeout == b->lim_idle_timeout &&
           a->lim_drain_timeout == b->lim_drain_timeout;
}

/* Whether a listener's generation (struct lgen) would be made of the same
 * settings: plugin, its options, limits, PROXY header, TLS. was: the
 * running file's listener of that name, what its generation came from
 * (a commit applies whole or not at all). */
static bool same_settings(const struct conf_listener *was, const struct conf_listener *cl)
{
    return was && was->lst_plugin && cl->lst_plugin &&
           strcmp(was->lst_plugin, cl->lst_plugin) == 0 &&
           json_equal(was->lst_options, cl->lst_options) &&
           same_limits(&was->lst_limits, &cl->lst_limits) &&
           was->lst_proxy_protocol == cl->lst_proxy_protocol &&
           !was->lst_tls && !cl->lst_tls;
}

/* A datagram handler is restarted to take a new generation, and drops
 * what it holds (forward's associations: every UDP flow): one whose
 * settings did not change keeps running, with its generation and plugin
 * instance; the instance the reload made for it is let go. A stream
 * listener always takes the new generation, at no cost to open
 * connections: its TLS context is built anew from the files (certificates
 * renewed under the same names). */
static bool runs_on(const struct listener *l, const struct conf_listener *cl,
                    const struct conf_listener *was)
{
    return cl->lst_kind == CONF_UDP && l->lst_gen->lg_inst && same_settings(was, cl);
}

static bool in_plan(const struct plan *p, const struct listener *l)
{
    for (size_t i = 0; i < p->p_n; i++)
        if (p->p_next[i] == l)
            return true;
    return false;
}

/* ncalls requests to workers, made ahead. */
static int plan_calls(struct plan *p, size_t ncalls)
{
    if (!(p->p_calls = calloc(ncalls + 1, sizeof(*p->p_calls))))
        return -ENOMEM;
    for (; p->p_ncalls < ncalls; p->p_ncalls++)
        if (!(p->p_calls[p->p_ncalls] = listener_call_new()))
            return -ENOMEM;
    return 0;
}

/* Phase one, continued: everything the switch needs, made now so that
 * the switch cannot fail half-way: the changed KEEP listeners' new
 * generations, a request to each of their workers and to each worker of a
 * DROP listener, and room in the draining list. */
static int plan_prepare(struct server *srv, const struct conf *conf, struct plan *p,
                        struct conf_errors *errs)
{
    struct listener **d = NULL;
    size_t ncalls = 0;

    if (!(p->p_drop = calloc(srv->srv_nlisteners + 1, sizeof(*p->p_drop))))
        goto nomem;
    for (size_t i = 0; i < p->p_n; i++) {
        const struct conf_listener *cl = &conf->conf_listeners[i];
        struct listener *l = p->p_next[i];

        if (p->p_fresh[i] ||
            runs_on(l, cl, conf_listener_find(srv->srv_conf, cl->lst_name)))
            continue;
        if (!(p->p_gen[i] = lgen_new(cl)))
            goto nomem;
        ncalls += l->lst_nworkers;
    }
    for (size_t j = 0; j < srv->srv_nlisteners; j++) {
        if (in_plan(p, srv->srv_listeners[j]))
            continue;
        p->p_drop[p->p_ndrop++] = srv->srv_listeners[j];
        ncalls += srv->srv_listeners[j]->lst_nworkers;
    }
    if (plan_calls(p, ncalls) < 0)
        goto nomem;
    /* the list itself is not changed: only its room */
    pthread_mutex_lock(&srv->srv_lock);
    d = realloc(srv->srv_draining, (srv->srv_ndraining + p->p_ndrop + 1) * sizeof(*d));
    if (d)
        srv->srv_draining = d;
    pthread_mutex_unlock(&srv->srv_lock);
    if (d)
        return 0;
nomem:
    conf_errors_add(errs, 0, "%s: reload: %s", conf->conf_file, strerror(ENOMEM));
    return -1;
}

static struct lw_call *plan_call(struct plan *p)
{
    assert(p->p_used < p->p_ncalls);
    return p->p_calls[p->p_used++];
}

/* A KEEP listener takes the new generation's settings (or its datagram
 * handler runs on: p_gen NULL). */
static void keep(struct plan *p, size_t i, struct conf_listener *cl)
{
    struct listener *l = p->p_next[i];
    struct lgen *gen = p->p_gen[i];

    if (!gen) {
        plugin_unref(&cl->lst_inst);
        cl->lst_inst = plugin_ref(l->lst_gen->lg_inst);
        log_debug("reload: listener \"%s\": unchanged: its datagram handlers run on",
                  l->lst_name);
        return;
    }
    p->p_gen[i] = NULL;
    if (cl->lst_kind == CONF_UNIX && cl->lst_unix_mode &&
        chmod(cl->lst_address, cl->lst_unix_mode) < 0)
        log_warning("reload: listener \"%s\": chmod %s: %s", l->lst_name, cl->lst_address,
                    strerror(errno));
    lgen_unref(&l->lst_gen);
    l->lst_gen = gen;
    for (unsigned w = 0; w < l->lst_nworkers; w++)
        if (!lworker_done(&l->lst_workers[w]))
            listener_swap_with(&l->lst_workers[w], gen, plan_call(p));
}

/* Listeners of the old set that the new one lacks start draining. */
static void drop(struct server *srv, struct plan *p)
{
    for (size_t k = 0; k < p->p_ndrop; k++) {
        struct listener *l = p->p_drop[k];

        l->lst_draining = true;
        srv->srv_draining[srv->srv_ndraining++] = l;
        log_info("listener \"%s\": removed: stops accepting, connections drain for up to %.1fs",
                 l->lst_name, l->lst_gen->lg_limits.lim_drain_timeout);
        for (unsigned w = 0; w < l->lst_nworkers; w++)
            if (!lworker_done(&l->lst_workers[w]))
                listener_stop_with(&l->lst_workers[w], false, plan_call(p));
        listener_close_sockets(l);
    }
}

static double wall_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void record(struct server *srv, const struct conf_errors *errs)
{
    pthread_mutex_lock(&srv->srv_lock);
    srv->srv_reload_at = wall_clock();
    if (!errs) {
        srv->srv_reloads_ok++;
    } else {
        srv->srv_reloads_failed++;
        free(srv->srv_reload_error);
        srv->srv_reload_error = strdup(errs->err_count ? errs->err_items[0].ce_text
                                                       : "the reload failed");
    }
    pthread_mutex_unlock(&srv->srv_lock);
}

static int fail(struct server *srv, struct conf_errors *errs)
{
    record(srv, errs);      /* first: the stats show it by the time the log does */
    for (size_t i = 0; i < errs->err_count; i++)
        log_error("reload: %s", errs->err_items[i].ce_text);
    log_error("reload failed: nothing changed, the running configuration serves on");
    conf_errors_free(errs);
    return -1;
}

/* Phase two: the switch, with everything it needs made by phase one, so
 * that it cannot fail: a reload applies whole or not at all. */
static void commit(struct server *srv, struct conf *conf, struct plan *p)
{
    struct conf *old = srv->srv_conf;

    pthread_mutex_lock(&srv->srv_lock);
    for (size_t i = 0; i < p->p_n; i++)
        if (!p->p_fresh[i])
            keep(p, i, &conf->conf_listeners[i]);
    drop(srv, p);
    free(srv->srv_listeners);
    srv->srv_listeners = p->p_next;
    srv->srv_nlisteners = p->p_n;
    srv->srv_conf = conf;
    pthread_mutex_unlock(&srv->srv_lock);
    for (size_t i = 0; i < p->p_n; i++)
        if (p->p_fresh[i])
            server_run_listener(srv, p->p_next[i]);
    /* what is left: the requests for workers that had ended */
    p->p_next = NULL;
    p->p_n = 0;
    plan_abort(p);
    /* connections hold what they need of the old generation (struct lgen) */
    conf_free(old);
    log_set_level(conf->conf_log_level);
}

int reload_run(struct server *srv, const char *path)
{
    struct conf_errors *errs = conf_errors_new();
    struct conf *conf;
    struct plan p = { 0 };

    if (!errs) {
        log_error("reload: %s: out of memory", path);
        return -1;
    }
    log_info("reload: loading %s", path);
    if (!(conf = reload_load(path, errs)))
        return fail(srv, errs);
    if (plan_make(srv, conf, &p, errs) < 0 || plan_prepare(srv, conf, &p, errs) < 0) {
        plan_abort(&p);
        conf_free(conf);
        return fail(srv, errs);
    }
    if (server_nworkers(conf) != srv->srv_nworkers)
        log_warning("reload: workers = %ld takes effect at the next start; %u run",
                    conf->conf_workers, srv->srv_nworkers);
    commit(srv, conf, &p);
    record(srv, NULL);
    conf_errors_free(errs);
    log_info("reload: done: %zu listeners", srv->srv_nlisteners);
    return 0;
}
