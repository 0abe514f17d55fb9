/*
 * group.c: task groups (AnyIO's create_task_group). A group is a cancel
 * scope entered by its host task plus the children spawned into it; the
 * first child failure cancels the scope, and the host's exit waits for
 * every child and reports the collected failures.
 * Not for: the scope mechanics (scope.c) or switching (sched.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf-int.h"

struct wharf_group {
    struct scope scope;
    struct task *host;
    struct sched *sched;
    size_t nrunning;
    int *errs;
    size_t nerrs, caperrs;
    size_t lost;            /* errors not stored for lack of memory */
    int first_err;
    bool host_waiting;
    bool exited;
};

static void group_record(struct wharf_group *g, int err)
{
    if (g->first_err == 0)
        g->first_err = err;
    if (g->nerrs == g->caperrs) {
        size_t ncap = g->caperrs ? g->caperrs * 2 : 4;
        int *n = realloc(g->errs, ncap * sizeof(*n));

        if (!n) {
            g->lost++;      /* the first error always has room: see below */
            return;
        }
        g->errs = n;
        g->caperrs = ncap;
    }
    g->errs[g->nerrs++] = err;
}

struct wharf_group *wharf_group_open(void)
{
    struct task *t = task_current();
    struct wharf_group *g;

    if (!t)
        return NULL;
    g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->host = t;
    g->sched = t->sched;
    scope_enter(&g->scope, t, WHARF_FOREVER, 0);
    return g;
}

static struct task *group_spawn_task(struct wharf_group *g, wharf_task_fn fn,
                                     wharf_start_fn sfn, void *arg, bool parkable, int *rc)
{
    struct task *c;

    *rc = 0;
    if (!g || (!fn && !sfn) || sched_current() != g->sched) {
        *rc = WHARF_EINVAL;
        return NULL;
    }
    if (g->exited) {
        *rc = WHARF_ECLOSED;
        return NULL;
    }
    c = parkable ? task_spawn_parkable(g->sched, &g->scope, fn, arg)
                 : task_spawn(g->sched, &g->scope, fn, sfn, arg);
    if (!c) {
        *rc = -ENOMEM;
        return NULL;
    }
    c->group = g;
    g->nrunning++;
    return c;
}

int wharf_group_spawn(struct wharf_group *g, wharf_task_fn fn, void *arg)
{
    int rc;

    group_spawn_task(g, fn, NULL, arg, false, &rc);
    return rc;
}

int group_spawn_parkable(struct wharf_group *g, wharf_task_fn fn, void *arg)
{
    int rc;

    group_spawn_task(g, fn, NULL, arg, true, &rc);
    return rc;
}

int wharf_group_start(struct wharf_group *g, wharf_start_fn fn, void *arg, void **value)
{
    struct start_rec rec;
    struct task *c;
    bool cancelled = false;
    int rc;

    if (!task_current())
        return WHARF_EINVAL;
    c = group_spawn_task(g, NULL, fn, arg, false, &rc);
    if (!c)
        return rc;
    memset(&rec, 0, sizeof(rec));
    rec.host = task_current();
    c->start = &rec;
    while (!rec.started && !rec.done) {
        if (cancelled) {
            task_block_uncancellable();
        } else if (task_block() == WHARF_ECANCELLED) {
            /* the child must not outlive a cancelled start() unstarted */
            cancelled = true;
            scope_cancel(&c->root);
        }
    }
    if (rec.done)
        return cancelled && rec.rc == WHARF_ECANCELLED ? WHARF_ECANCELLED : rec.rc;
    if (value)
        *value = rec.value;
    return cancelled ? WHARF_ECANCELLED : 0;
}

int wharf_task_started(struct wharf_task_status *status, void *value)
{
    struct task *t = (struct task *)status;

    if (!t || t->started || !t->start)
        return WHARF_EINVAL;
    t->started = true;
    t->start->value = value;
    t->start->started = true;
    task_wake(t->start->host);
    t->start = NULL;
    return 0;
}

void group_child_done(struct task *t, bool cancelled)
{
    struct wharf_group *g = t->group;
    int rc = t->result;

    g->nrunning--;
    if (t->start) {
        /* failed or returned before started(): start() reports it */
        t->start->done = true;
        t->start->rc = rc < 0 ? rc : -ECHILD;
        task_wake(t->start->host);
        t->start = NULL;
    } else if (rc < 0 && !(rc == WHARF_ECANCELLED && cancelled)) {
        group_record(g, rc);
        scope_cancel(&g->scope);
    }
    if (g->nrunning == 0 && g->host_waiting)
        task_wake(g->host);
}

void wharf_group_cancel(struct wharf_group *g)
{
    if (g)
        scope_cancel(&g->scope);
}

struct wharf_scope *wharf_group_scope(struct wharf_group *g)
{
    return g ? (struct wharf_scope *)(void *)&g->scope : NULL;
}

size_t wharf_group_running(const struct wharf_group *g)
{
    return g ? g->nrunning : 0;
}

int wharf_group_exit(struct wharf_group *g, int rc)
{
    struct task *t = task_current();
    bool cancel_seen = false;

    if (!g || g->exited || t != g->host)
        return WHARF_EINVAL;
    if (rc < 0) {
        if (!(rc == WHARF_ECANCELLED && task_cancelled(t)))
            group_record(g, rc);
        scope_cancel(&g->scope);
    }
    if (g->nrunning == 0)
        sched_pass();       /* AnyIO: exiting a group yields at least once */
    while (g->nrunning > 0) {
        g->host_waiting = true;
        if (cancel_seen) {
            task_block_uncancellable();
        } else if (task_block() == WHARF_ECANCELLED) {
            /* the host was cancelled while waiting: so are the children */
            cancel_seen = true;
            scope_cancel(&g->scope);
        }
    }
    g->host_waiting = false;
    if (cancel_seen && rc == 0)
        rc = WHARF_ECANCELLED;
    rc = scope_exit(&g->scope, t, rc);
    g->exited = true;
    return g->first_err != 0 ? g->first_err : rc;
}

size_t wharf_group_errors(const struct wharf_group *g, int *errs, size_t n)
{
    if (!g)
        return 0;
    for (size_t i = 0; i < n && i < g->nerrs; i++)
        errs[i] = g->errs[i];
    return g->nerrs;
}

void wharf_group_free(struct wharf_group *g)
{
    if (!g)
        return;
    /* An open group still links its children's scopes: exit it first when
     * the host frees it, and never free it from anywhere else. */
    if (!g->exited && wharf_group_exit(g, 0) == WHARF_EINVAL) {
        fprintf(stderr, "wharf: wharf_group_free on an open task group by a task "
                "that is not its host; the group is left allocated\n");
        return;
    }
    free(g->errs);
    free(g);
}

int wharf_group_close(struct wharf_group *g, int rc)
{
    if (!g)
        return WHARF_EINVAL;
    rc = wharf_group_exit(g, rc);
    wharf_group_free(g);
    return rc;
}
