/*
 * worker.c: a worker is a thread running one scheduler on its own event
 * base. Other threads hand it tasks (worker_spawn) and stop it
 * (worker_stop: every task is cancelled, then the thread is joined).
 * Not for: what the tasks do (the daemon's listeners) or scheduling.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf-int.h"

struct worker {
    pthread_t thread;
    struct sched *sched;
    pthread_mutex_t mtx;
    pthread_cond_t cond;
    bool ready;
    bool failed;
    char name[16];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct sched *s = sched_new(NULL);

    pthread_mutex_lock(&w->mtx);
    w->sched = s;
    w->failed = s == NULL;
    w->ready = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mtx);
    if (!s)
        return NULL;
    sched_loop(s);
    sched_free(s);
    return NULL;
}

struct worker *worker_start(const char *name)
{
    struct worker *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    pthread_mutex_init(&w->mtx, NULL);
    pthread_cond_init(&w->cond, NULL);
    snprintf(w->name, sizeof(w->name), "%s", name ? name : "wharf-worker");
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_mutex_destroy(&w->mtx);
        pthread_cond_destroy(&w->cond);
        free(w);
        return NULL;
    }
    pthread_setname_np(w->thread, w->name);
    pthread_mutex_lock(&w->mtx);
    while (!w->ready)
        pthread_cond_wait(&w->cond, &w->mtx);
    pthread_mutex_unlock(&w->mtx);
    if (w->failed) {
        pthread_join(w->thread, NULL);
        pthread_mutex_destroy(&w->mtx);
        pthread_cond_destroy(&w->cond);
        free(w);
        return NULL;
    }
    return w;
}

int worker_spawn(struct worker *w, wharf_task_fn fn, void *arg)
{
    if (!w || !fn)
        return WHARF_EINVAL;
    return sched_spawn_remote(w->sched, fn, arg);
}

void worker_spawn_req(struct worker *w, struct spawn_req *r, wharf_task_fn fn, void *arg)
{
    r->caller_owned = true;
    sched_spawn_remote_req(w->sched, r, fn, arg);
}

void worker_stop(struct worker *w)
{
    if (!w)
        return;
    sched_stop_remote(w->sched);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mtx);
    pthread_cond_destroy(&w->cond);
    free(w);
}
