/*
 * server.c: the running set. Holds the current generation of the config,
 * the worker threads and the listeners; binds every listener before anything
 * runs (one that cannot be bound stops the start, with nothing left open),
 * gives each worker one task per listener, and stops them all (drain, then
 * cancel) on the way out. The main thread owns it; workers only report that
 * their listener tasks ended.
 * Not for: accepting (listener.c), serving (conn.c) or signals (main.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;

    (void)fd;
    (void)what;
    event_base_loopbreak(srv->srv_base);
}

void server_task_done(struct server *srv)
{
    if (atomic_fetch_sub(&srv->srv_running, 1) == 1)
        event_active(srv->srv_done_ev, 0, 0);
}

/* ---- starting ---------------------------------------------------------------- */

static int bind_all(struct server *srv, struct conf_errors *errs)
{
    const struct conf *conf = srv->srv_conf;
    int failed = 0;

    srv->srv_listeners = calloc(conf->conf_nlisteners, sizeof(*srv->srv_listeners));
    if (!srv->srv_listeners && conf->conf_nlisteners > 0)
        return -ENOMEM;
    for (size_t i = 0; i < conf->conf_nlisteners; i++) {
        const struct conf_listener *cl = &conf->conf_listeners[i];
        struct listener *l;
        const char *what;
        char setting[160];
        int rc;

        rc = listener_new(cl, srv->srv_nworkers, &l, &what);
        if (rc < 0) {
            snprintf(setting, sizeof(setting), "%s.%s", cl->lst_setting, kind_keys[cl->lst_kind]);
            conf_report(conf, errs, setting, "listener \"%s\": cannot %s %s: %s", cl->lst_name,
                        what, cl->lst_address, strerror(-rc));
            failed = -1;
            continue;
        }
        srv->srv_listeners[srv->srv_nlisteners++] = l;
    }
    return failed;
}

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

/* Gives worker i its task for listener l, with its own descriptor. */
static void spawn_lworker(struct server *srv, struct listener *l, unsigned i)
{
    struct lworker *lw = &l->lst_workers[i];
    int fd = l->lst_fds[l->lst_kind == CONF_UNIX ? 0 : i];

    lw->lw_lst = l;
    lw->lw_srv = srv;
    lw->lw_index = i;
    lw->lw_worker = srv->srv_workers[i];
    lw->lw_ctr = &l->lst_ctr[i];
    lw->lw_gen = lgen_ref(l->lst_gen);
    atomic_init(&lw->lw_hard_req, false);
    lw->lw_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (lw->lw_fd < 0 || worker_spawn(lw->lw_worker, listener_run, lw) < 0) {
        log_error("listener \"%s\": cannot start on worker %u: %s", l->lst_name, i,
                  strerror(lw->lw_fd < 0 ? errno : ENOMEM));
        if (lw->lw_fd >= 0)
            close(lw->lw_fd);
        lw->lw_done = true;
        server_task_done(srv);
    }
}

int server_start(struct server *srv, struct event_base *base, struct conf *conf,
                 struct conf_errors *errs)
{
    memset(srv, 0, sizeof(*srv));
    srv->srv_base = base;
    srv->srv_conf = conf;
    srv->srv_nworkers = server_nworkers(conf);
    if (!(srv->srv_done_ev = event_new(base, -1, 0, done_cb, srv)))
        goto nomem;
    if (bind_all(srv, errs) < 0)
        return -1;
    if (start_workers(srv) < 0)
        goto nomem;
    atomic_init(&srv->srv_running, (long)(srv->srv_nlisteners * srv->srv_nworkers));
    for (size_t j = 0; j < srv->srv_nlisteners; j++) {
        struct listener *l = srv->srv_listeners[j];

        log_info("listener \"%s\": %s %s, plugin %s", l->lst_name, kind_keys[l->lst_kind],
                 l->lst_address, conf->conf_listeners[j].lst_plugin);
        for (unsigned i = 0; i < srv->srv_nworkers; i++)
            spawn_lworker(srv, l, i);
    }
    return 0;
nomem:
    conf_errors_add(errs, 0, "%s: cannot start: %s", conf->conf_file, strerror(ENOMEM));
    return -1;
}

/* ---- stopping ------------------------------------------------------------------ */

void server_stop(struct server *srv, bool hard)
{
    srv->srv_stopping = true;
    if (atomic_load(&srv->srv_running) == 0) {
        event_active(srv->srv_done_ev, 0, 0);
        return;
    }
    for (size_t j = 0; j < srv->srv_nlisteners; j++)
        for (unsigned i = 0; i < srv->srv_nworkers; i++)
            if (listener_stop(&srv->srv_listeners[j]->lst_workers[i], hard) < 0)
                log_error("listener \"%s\": cannot reach worker %u to stop it",
                          srv->srv_listeners[j]->lst_name, i);
}

void server_free(struct server *srv)
{
    /* the workers first: their tasks use the listeners and the plugins */
    for (unsigned i = 0; srv->srv_workers && i < srv->srv_nworkers; i++)
        worker_stop(srv->srv_workers[i]);
    free(srv->srv_workers);
    srv->srv_workers = NULL;
    for (size_t j = 0; j < srv->srv_nlisteners; j++)
        listener_free(srv->srv_listeners[j]);
    free(srv->srv_listeners);
    srv->srv_listeners = NULL;
    srv->srv_nlisteners = 0;
    if (srv->srv_done_ev)
        event_free(srv->srv_done_ev);
    srv->srv_done_ev = NULL;
    conf_free(srv->srv_conf);
    srv->srv_conf = NULL;
}
