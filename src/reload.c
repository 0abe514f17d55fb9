/*
 * reload.c: loading a generation and committing it. reload_load is what
 * `wharfd -t`, the start and SIGHUP all run: the file, the certificates,
 * the plugins, every problem reported. reload_run then commits a new
 * generation against the running set by listener name, in two phases:
 * first everything that can fail (binding NEW listeners, with KEEP ones
 * untouched), and only when all of it worked, the switch (KEEP listeners
 * hand their workers the new generation, DROP listeners stop accepting and
 * drain). A failed reload changes nothing.
 * Not for: running listeners (server.c, listener.c) or parsing (conf.c).
 */
#include "config.h"

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
    size_t p_n;
};

static void plan_abort(struct plan *p)
{
    for (size_t i = 0; i < p->p_n; i++)
        if (p->p_fresh[i])
            listener_free(p->p_next[i]);
    free(p->p_next);
    free(p->p_fresh);
}

/* Phase one: every NEW listener bound; nothing running is touched. */
static int plan_make(struct server *srv, const struct conf *conf, struct plan *p,
                     struct conf_errors *errs)
{
    int rc = 0;

    p->p_n = conf->conf_nlisteners;
    p->p_next = calloc(p->p_n + 1, sizeof(*p->p_next));
    p->p_fresh = calloc(p->p_n + 1, sizeof(*p->p_fresh));
    if (!p->p_next || !p->p_fresh) {
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
static bool keep_running(struct listener *l, struct conf_listener *cl,
                         const struct conf_listener *was)
{
    if (cl->lst_kind != CONF_UDP || !same_settings(was, cl) || !l->lst_gen->lg_inst)
        return false;
    plugin_unref(&cl->lst_inst);
    cl->lst_inst = plugin_ref(l->lst_gen->lg_inst);
    log_debug("reload: listener \"%s\": unchanged: its datagram handlers run on", l->lst_name);
    return true;
}

/* A KEEP listener takes the new generation's settings. */
static void keep(struct listener *l, struct conf_listener *cl, const struct conf_listener *was)
{
    struct lgen *gen;

    if (keep_running(l, cl, was))
        return;
    gen = lgen_new(cl);

    if (!gen) {
        log_error("reload: listener \"%s\" keeps its old settings: out of memory", l->lst_name);
        return;
    }
    if (cl->lst_kind == CONF_UNIX && cl->lst_unix_mode &&
        chmod(cl->lst_address, cl->lst_unix_mode) < 0)
        log_warning("reload: listener \"%s\": chmod %s: %s", l->lst_name, cl->lst_address,
                    strerror(errno));
    lgen_unref(&l->lst_gen);
    l->lst_gen = gen;
    for (unsigned i = 0; i < l->lst_nworkers; i++)
        if (!lworker_done(&l->lst_workers[i]) && listener_swap_gen(&l->lst_workers[i], gen) < 0)
            log_error("reload: listener \"%s\" on worker %u keeps its old settings: "
                      "out of memory", l->lst_name, i);
}

/* Listeners of the old set that the new one lacks start draining. */
static int drop_missing(struct server *srv, const struct plan *p)
{
    size_t n = srv->srv_ndraining;
    struct listener **d;

    d = realloc(srv->srv_draining, (n + srv->srv_nlisteners + 1) * sizeof(*d));
    if (!d)
        return -ENOMEM;
    srv->srv_draining = d;
    for (size_t j = 0; j < srv->srv_nlisteners; j++) {
        struct listener *l = srv->srv_listeners[j];
        bool kept = false;

        for (size_t i = 0; i < p->p_n && !kept; i++)
            kept = p->p_next[i] == l;
        if (kept)
            continue;
        l->lst_draining = true;
        d[n++] = l;
        log_info("listener \"%s\": removed: stops accepting, connections drain for up to %.1fs",
                 l->lst_name, l->lst_gen->lg_limits.lim_drain_timeout);
        server_stop_listener(l, false);
        listener_close_sockets(l);
    }
    srv->srv_ndraining = n;
    return 0;
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

/* Phase two: cannot fail half-way (a listener it cannot hand the new
 * settings keeps the old ones, and says so). */
static void commit(struct server *srv, struct conf *conf, struct plan *p)
{
    struct conf *old = srv->srv_conf;

    pthread_mutex_lock(&srv->srv_lock);
    for (size_t i = 0; i < p->p_n; i++)
        if (!p->p_fresh[i])
            keep(p->p_next[i], &conf->conf_listeners[i],
                 conf_listener_find(old, conf->conf_listeners[i].lst_name));
    if (drop_missing(srv, p) < 0)
        log_error("reload: out of memory: removed listeners go on accepting");
    free(srv->srv_listeners);
    srv->srv_listeners = p->p_next;
    srv->srv_nlisteners = p->p_n;
    srv->srv_conf = conf;
    pthread_mutex_unlock(&srv->srv_lock);
    for (size_t i = 0; i < p->p_n; i++)
        if (p->p_fresh[i])
            server_run_listener(srv, p->p_next[i]);
    free(p->p_fresh);
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
    if (plan_make(srv, conf, &p, errs) < 0) {
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
