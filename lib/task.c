/*
 * task.c: the public task calls of wharf/task.h: time, sleep, checkpoints,
 * the cancel-scope wrappers, wharf_run and wharf_to_thread.
 * Not for: the machinery under them (sched.c, scope.c, group.c).
 */
#include "config.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf-int.h"

_Static_assert(sizeof(struct scope) <= sizeof(struct wharf_scope),
               "struct wharf_scope must hold a struct scope");
_Static_assert(_Alignof(struct scope) <= _Alignof(struct wharf_scope),
               "struct wharf_scope must be aligned for a struct scope");

static struct scope *scope_of(struct wharf_scope *sc)
{
    return (struct scope *)(void *)sc;
}

static const struct scope *scope_of_const(const struct wharf_scope *sc)
{
    return (const struct scope *)(const void *)sc;
}

bool wharf_in_task(void)
{
    return task_current() != NULL;
}

int wharf_checkpoint_if_cancelled(void)
{
    struct task *t = task_current();

    if (!t)
        return WHARF_EINVAL;
    return task_cancelled(t) ? WHARF_ECANCELLED : 0;
}

int wharf_checkpoint(void)
{
    struct task *t = task_current();

    if (!t)
        return WHARF_EINVAL;
    if (task_cancelled(t))
        return WHARF_ECANCELLED;
    sched_pass();
    return 0;
}

int wharf_sleep_until(double deadline)
{
    struct wharf_scope sc;
    int rc;

    if (!task_current())
        return WHARF_EINVAL;
    if (deadline <= wharf_clock())
        return wharf_checkpoint();
    wharf_scope_enter(&sc, deadline, 0);
    do
        rc = task_block();      /* only a cancellation ends it: ours or outer */
    while (rc == 0);
    return wharf_scope_exit(&sc, rc);
}

int wharf_sleep(double seconds)
{
    return wharf_sleep_until(wharf_clock() + seconds);
}

int wharf_wait_all_tasks_blocked(void)
{
    int quiet = 0;

    if (!task_current())
        return WHARF_EINVAL;
    /* two passes through the loop in a row with nobody else ready */
    while (quiet < 2) {
        if (wharf_checkpoint_if_cancelled())
            return WHARF_ECANCELLED;
        quiet = sched_yield_via_loop() ? quiet + 1 : 0;
    }
    return 0;
}

/* ---- scopes ------------------------------------------------------------ */

int wharf_scope_enter(struct wharf_scope *sc, double deadline, unsigned flags)
{
    struct task *t = task_current();

    if (!sc || !t)
        return WHARF_EINVAL;
    return scope_enter(scope_of(sc), t, deadline, flags);
}

int wharf_scope_exit(struct wharf_scope *sc, int rc)
{
    struct task *t = task_current();

    if (!sc || !t)
        return WHARF_EINVAL;
    return scope_exit(scope_of(sc), t, rc);
}

void wharf_scope_cancel(struct wharf_scope *sc)
{
    if (sc)
        scope_cancel(scope_of(sc));
}

void wharf_scope_set_deadline(struct wharf_scope *sc, double deadline)
{
    struct scope *s = sc ? scope_of(sc) : NULL;

    if (!s || !s->active || s->cancel_called)
        return;
    sched_deadline_del(s->sched, s);
    s->deadline = deadline;
    if (deadline <= wharf_clock())
        scope_cancel(s);
    else if (deadline < WHARF_FOREVER)
        sched_deadline_add(s->sched, s);
}

double wharf_scope_deadline(const struct wharf_scope *sc)
{
    return sc ? scope_of_const(sc)->deadline : WHARF_FOREVER;
}

void wharf_scope_set_shield(struct wharf_scope *sc, bool shield)
{
    struct scope *s = sc ? scope_of(sc) : NULL;

    if (!s)
        return;
    if (shield)
        s->flags |= WHARF_SCOPE_SHIELD;
    else
        s->flags &= ~WHARF_SCOPE_SHIELD;
    scope_refresh(s);
    if (!shield)
        scope_recheck(s);
}

bool wharf_scope_cancel_called(const struct wharf_scope *sc)
{
    return sc && scope_of_const(sc)->cancel_called;
}

bool wharf_scope_cancelled_caught(const struct wharf_scope *sc)
{
    return sc && scope_of_const(sc)->caught;
}

int wharf_move_on_after(struct wharf_scope *sc, double seconds)
{
    return wharf_scope_enter(sc, wharf_clock() + seconds, 0);
}

int wharf_fail_after(struct wharf_scope *sc, double seconds)
{
    return wharf_scope_enter(sc, wharf_clock() + seconds, WHARF_SCOPE_FAIL);
}

double wharf_current_effective_deadline(void)
{
    struct task *t = task_current();
    double d = WHARF_FOREVER;

    if (!t)
        return d;
    for (const struct scope *s = t->scope; s; s = s->parent) {
        if (s->cancel_called)
            return -WHARF_FOREVER;
        if (s->deadline < d)
            d = s->deadline;
        if (s->flags & WHARF_SCOPE_SHIELD)
            break;
    }
    return d;
}

/* ---- running ------------------------------------------------------------ */

struct run_main {
    wharf_task_fn fn;
    void *arg;
    int result;
};

static int run_main_task(void *arg)
{
    struct run_main *rm = arg;

    rm->result = rm->fn(rm->arg);
    return rm->result;
}

int wharf_run(wharf_task_fn fn, void *arg)
{
    struct run_main rm = { fn, arg, 0 };
    struct sched *s;

    if (!fn || sched_current())
        return WHARF_EINVAL;
    s = sched_new(NULL);
    if (!s)
        return -ENOMEM;
    if (!task_spawn(s, &s->root, run_main_task, NULL, &rm)) {
        sched_free(s);
        return -ENOMEM;
    }
    s->stopping = true;
    sched_loop(s);
    sched_free(s);
    return rm.result;
}

int wharf_to_thread(int (*fn)(void *arg), void *arg)
{
    if (!fn)
        return WHARF_EINVAL;
    return threadpool_run(fn, arg);
}

int wharf_set_stack_size(size_t bytes)
{
    struct sched *s = sched_current();

    if (!s || bytes < WHARF_MIN_STACK || bytes > ((size_t)1 << 30))
        return WHARF_EINVAL;
    stack_cache_purge(&s->stacks);
    stack_cache_init(&s->stacks, bytes);
    return 0;
}
