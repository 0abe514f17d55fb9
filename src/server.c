/*
 * server.c: the running set. Holds the current generation of the config,
 * the worker threads and the listeners (those of the current generation,
 * and those a reload removed that still drain); binds every listener
 * before anything runs (one that cannot be bound stops the start, with
 * nothing left open), gives each worker one task per listener, and stops
 * them (drain, then cancel). The main thread owns it and changes it under
 * srv_lock, which the stats take to read it from a worker; workers only
 * report that their listener tasks ended.
 * Not for: what a reload changes (reload.c), accepting (listener.c),
 * serving (conn.c) or signals (main.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "wharf-int.h"
#include "wharfd.h"

static const char *const kind_keys[] = { "tcp", "unix", "udp" };

unsigned server_nworkers(const struct conf *conf)
{
    cpu_set_t set;
    long n;

    if (conf->conf_workers > 0)
        return (unsigned)conf->conf_workers;
    /* the CPUs this process may use (cgroup cpusets, taskset), not all */
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    else
        n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

const char *server_kind_name(int kind)
{
    return kind >= 0 && kind <= CONF_UDP ? kind_keys[kind] : "?";
}

/* ---- listener tasks ending ------------------------------------------------------ */

/* Frees the draining listeners whose tasks have all ended. */
static void reap_drained(struct server *srv)
{
    size_t j = 0;

    pthread_mutex_lock(&srv->srv_lock);
    for (size_t i = 0; i < srv->srv_ndraining; i++) {
        struct listener *l = srv->srv_draining[i];

        if (atomic_load(&l->lst_running) > 0) {
            srv->srv_draining[j++] = l;
            continue;
        }
        log_info("listener \"%s\": drained and closed", l->lst_name);
        listener_free(l);
    }
    srv->srv_ndraining = j;
    pthread_mutex_unlock(&srv->srv_lock);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;

    (void)fd;
    (void)what;
    reap_drained(srv);
    if (atomic_load(&srv->srv_running) == 0 && srv->srv_stopping)
        event_base_loopbreak(srv->srv_base);
    else if (atomic_load(&srv->srv_running) == 0 && srv->srv_nlisteners > 0)
        event_base_loopbreak(srv->srv_base);    /* every task died on its own */
}

void server_task_done(struct server *srv, struct listener *l)
{
    atomic_fetch_sub(&l->lst_running, 1);
    atomic_fetch_sub(&srv->srv_running, 1);
    event_active(srv->srv_done_ev, 0, 0);
}

/* ---- binding ----------------------------------------------------------------------- */

/* The socket systemd passed for a listener of this name, taken from the
 * list (-1: none: bind it ourselves). */
static int take_activated(struct server *srv, const char *name)
{
    for (size_t i = 0; i < srv->srv_nsd; i++) {
        if (srv->srv_sd[i].ss_fd >= 0 && strcmp(srv->srv_sd[i].ss_name, name) == 0) {
            int fd = srv->srv_sd[i].ss_fd;

            srv->srv_sd[i].ss_fd = -1;
            return fd;
        }
    }
    return -1;
}

int server_bind(struct server *srv, const struct conf *conf, const struct conf_listener *cl,
                struct lst_stats *stats, struct listener **out, struct conf_errors *errs)
{
    int fd = take_activated(srv, cl->lst_name);
    const char *what;
    char setting[160];
    int rc;

    rc = listener_new(cl, srv->srv_nworkers, fd, stats, out, &what);
    if (rc == 0) {
        if (fd >= 0)
            log_info("listener \"%s\": using the socket systemd passed", cl->lst_name);
        return 0;
    }
    snprintf(setting, sizeof(setting), "%s.%s", cl->lst_setting, server_kind_name(cl->lst_kind));
    conf_report(conf, errs, setting, "listener \"%s\": cannot %s %s: %s", cl->lst_name, what,
                cl->lst_address, strerror(-rc));
    return -1;
}

static int bind_all(struct server *srv, struct conf_errors *errs)
{
    const struct conf *conf = srv->srv_conf;
    int failed = 0;

    srv->srv_listeners = calloc(conf->conf_nlisteners + 1, sizeof(*srv->srv_listeners));
    if (!srv->srv_listeners)
        return -ENOMEM;
    for (size_t i = 0; i < conf->conf_nlisteners; i++) {
        struct listener *l;

        if (server_bind(srv, conf, &conf->conf_listeners[i], NULL, &l, errs) < 0) {
            failed = -1;
            continue;
        }
        srv->srv_listeners[srv->srv_nlisteners++] = l;
    }
    return failed;
}

/* Sockets systemd passed that no listener names are closed, and said so. */
static void close_unclaimed(struct server *srv)
{
    for (size_t i = 0; i < srv->srv_nsd; i++) {
        if (srv->srv_sd[i].ss_fd < 0)
            continue;
        log_warning("systemd passed a socket named \"%s\" that no listener has: closed",
                    srv->srv_sd[i].ss_name);
        close(srv->srv_sd[i].ss_fd);
        srv->srv_sd[i].ss_fd = -1;
    }
}

/* ---- workers ----------------------------------------------------------------------- */

static int start_workers(struct server *srv)
{
    char name[16];

    srv->srv_workers = calloc(srv->srv_nworkers, sizeof(*srv->srv_workers));
    if (!srv->srv_workers)
        return -ENOMEM;
    for (unsigned i = 0; i < srv->srv_nworkers; i++) {
        snprintf(name, sizeof(name), "wharf-w%hu", (unsigned short)i);
        if (!(srv->srv_workers[i] = worker_start(name)))
            return -ENOMEM;
    }
    return 0;
}

/* Gives worker i its task for listener l, with its own descriptor (both
 * made by listener_new: this cannot fail). */
static void spawn_lworker(struct server *srv, struct listener *l, unsigned i)
{
    struct lworker *lw = &l->lst_workers[i];

    lw->lw_lst = l;
    lw->lw_srv = srv;
    lw->lw_index = i;
    lw->lw_worker = srv->srv_workers[i];
    lw->lw_ctr = &l->lst_stats->ls_ctr[i];
    lw->lw_gen = lgen_ref(l->lst_gen);
    atomic_init(&lw->lw_hard_req, false);
    atomic_init(&lw->lw_done, false);
    worker_spawn_req(lw->lw_worker, &l->lst_spawn[i], listener_run, lw);
}

void server_run_listener(struct server *srv, struct listener *l)
{
    log_info("listener \"%s\": %s %s%s, plugin %s", l->lst_name, server_kind_name(l->lst_kind),
             l->lst_address, l->lst_gen->lg_ssl_ctx ? " with TLS" : "",
             l->lst_gen->lg_plugin ? l->lst_gen->lg_plugin : "?");
    atomic_fetch_add(&l->lst_running, (long)srv->srv_nworkers);
    atomic_fetch_add(&srv->srv_running, (long)srv->srv_nworkers);
    for (unsigned i = 0; i < srv->srv_nworkers; i++)
        spawn_lworker(srv, l, i);
}

/* ---- starting ------------------------------------------------------------------------ */

static double wall_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int server_start(struct server *srv, struct event_base *base, struct conf *conf,
                 struct conf_errors *errs)
{
    int n;

    memset(srv, 0, sizeof(*srv));
    pthread_mutex_init(&srv->srv_lock, NULL);
    srv->srv_base = base;
    srv->srv_conf = conf;
    srv->srv_nworkers = server_nworkers(conf);
    srv->srv_started_at = wall_clock();
    srv->srv_started_mono = wharf_clock();
    atomic_init(&srv->srv_running, 0);
    if (!(srv->srv_done_ev = event_new(base, -1, 0, done_cb, srv)))
        goto nomem;
    if ((n = sd_listen_sockets(&srv->srv_sd)) < 0) {
        conf_errors_add(errs, 0, "%s: the sockets systemd passed (LISTEN_FDS): %s",
                        conf->conf_file, strerror(-n));
        return -1;
    }
    srv->srv_nsd = (size_t)n;
    if (bind_all(srv, errs) < 0)
        return -1;
    close_unclaimed(srv);
    return 0;
nomem:
    conf_errors_add(errs, 0, "%s: cannot start: %s", conf->conf_file, strerror(ENOMEM));
    return -1;
}

int server_run(struct server *srv, struct conf_errors *errs)
{
    if (start_workers(srv) < 0) {
        conf_errors_add(errs, 0, "%s: cannot start the workers: %s",
                        srv->srv_conf->conf_file, strerror(ENOMEM));
        return -1;
    }
    stats_attach(srv);
    for (size_t j = 0; j < srv->srv_nlisteners; j++)
        server_run_listener(srv, srv->srv_listeners[j]);
    return 0;
}

/* ---- stopping ---------------------------------------------------------------------- */

void server_stop_listener(struct listener *l, bool hard)
{
    for (unsigned i = 0; i < l->lst_nworkers; i++)
        if (!lworker_done(&l->lst_workers[i]) && listener_stop(&l->lst_workers[i], hard) < 0)
            log_error("listener \"%s\": cannot reach worker %u to stop it", l->lst_name, i);
}

void server_stop(struct server *srv, bool hard)
{
    srv->srv_stopping = true;
    if (atomic_load(&srv->srv_running) == 0) {
        event_active(srv->srv_done_ev, 0, 0);
        return;
    }
    /* with the workers' sockets closed by their tasks and ours here, new
     * connections are refused from now on */
    for (size_t j = 0; j < srv->srv_nlisteners; j++) {
        server_stop_listener(srv->srv_listeners[j], hard);
        listener_close_sockets(srv->srv_listeners[j]);
    }
    for (size_t j = 0; j < srv->srv_ndraining; j++)
        server_stop_listener(srv->srv_draining[j], hard);
}

static void free_listeners(struct listener **v, size_t n)
{
    for (size_t j = 0; j < n; j++)
        listener_free(v[j]);
    free(v);
}

void server_free(struct server *srv)
{
    stats_attach(NULL);
    /* the workers first: their tasks use the listeners and the plugins */
    for (unsigned i = 0; srv->srv_workers && i < srv->srv_nworkers; i++)
        worker_stop(srv->srv_workers[i]);
    free(srv->srv_workers);
    srv->srv_workers = NULL;
    free_listeners(srv->srv_listeners, srv->srv_nlisteners);
    free_listeners(srv->srv_draining, srv->srv_ndraining);
    srv->srv_listeners = srv->srv_draining = NULL;
    srv->srv_nlisteners = srv->srv_ndraining = 0;
    for (size_t i = 0; i < srv->srv_nsd; i++)
        if (srv->srv_sd[i].ss_fd >= 0)
            close(srv->srv_sd[i].ss_fd);
    free(srv->srv_sd);
    srv->srv_sd = NULL;
    if (srv->srv_done_ev)
        event_free(srv->srv_done_ev);
    srv->srv_done_ev = NULL;
    conf_free(srv->srv_conf);
    srv->srv_conf = NULL;
    free(srv->srv_reload_error);
    srv->srv_reload_error = NULL;
    pthread_mutex_destroy(&srv->srv_lock);
}
