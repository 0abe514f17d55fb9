/*
 * scope.c: cancel scopes. Scopes form a tree per scheduler: a task's own
 * root scope hangs under the scope of the group that spawned it, so a
 * group's cancellation reaches its children's tasks. Cancelling a scope
 * wakes every task blocked inside it, skipping shielded sub-scopes; the
 * cancellation stays in force (level-triggered) until the scope is exited.
 * Not for: the public wrappers (task.c) or deadlines' timer (sched.c).
 */
#include "config.h"

#include <string.h>

#include "wharf-int.h"

void scope_init_root(struct scope *sc, struct sched *s)
{
    memset(sc, 0, sizeof(*sc));
    TAILQ_INIT(&sc->children);
    TAILQ_INIT(&sc->tasks);
    sc->sched = s;
    sc->deadline = WHARF_FOREVER;
    sc->heap_idx = SIZE_MAX;
    sc->active = true;
}

void scope_attach_task(struct scope *sc, struct task *t)
{
    t->scope = sc;
    TAILQ_INSERT_TAIL(&sc->tasks, t, scope_link);
}

void scope_detach_task(struct task *t)
{
    if (t->scope) {
        TAILQ_REMOVE(&t->scope->tasks, t, scope_link);
        t->scope = NULL;
    }
}

int scope_enter(struct scope *sc, struct task *t, double deadline, unsigned flags)
{
    struct scope *parent = t->scope;

    scope_init_root(sc, t->sched);
    sc->parent = parent;
    sc->owner = t;
    sc->flags = flags;
    sc->deadline = deadline;
    if (parent)
        TAILQ_INSERT_TAIL(&parent->children, sc, sibling);
    scope_detach_task(t);
    scope_attach_task(sc, t);
    if (deadline < WHARF_FOREVER) {
        if (deadline <= wharf_clock())
            sc->cancel_called = true;
        else
            sched_deadline_add(t->sched, sc);
    }
    scope_refresh(sc);
    return 0;
}

/* Whether a cancellation reaches sc: its own, or an enclosing one up to
 * the first shield. Every checkpoint asks, so the answer is kept in each
 * scope (eff_cancelled) and updated where it can change: at entry, at a
 * cancel, at a shield's change (scope_refresh), not found by walking up
 * the chain each time (17-25% of a ping-pong, 1.3% of a proxied request). */
bool scope_effectively_cancelled(const struct scope *sc)
{
    return sc && sc->eff_cancelled;
}

void scope_refresh(struct scope *sc)
{
    bool eff = sc->cancel_called || (!(sc->flags & WHARF_SCOPE_SHIELD) && sc->parent &&
                                     sc->parent->eff_cancelled);
    struct scope *c;

    if (eff == sc->eff_cancelled)
        return;
    sc->eff_cancelled = eff;
    TAILQ_FOREACH(c, &sc->children, sibling)
        scope_refresh(c);
}

int scope_exit(struct scope *sc, struct task *t, int rc)
{
    bool swallow = false;

    if (!sc->active || t->scope != sc)
        return WHARF_EINVAL;
    sched_deadline_del(sc->sched, sc);
    if (rc == WHARF_ECANCELLED && sc->cancel_called) {
        /* AnyIO: swallowed unless an enclosing cancellation is visible here */
        swallow = (sc->flags & WHARF_SCOPE_SHIELD) || !sc->parent ||
                  !scope_effectively_cancelled(sc->parent);
    }
    scope_detach_task(t);
    if (sc->parent) {
        TAILQ_REMOVE(&sc->parent->children, sc, sibling);
        scope_attach_task(sc->parent, t);
    }
    sc->active = false;
    sc->caught = swallow;
    if (swallow)
        rc = (sc->flags & WHARF_SCOPE_FAIL) && wharf_clock() >= sc->deadline
             ? WHARF_ETIMEDOUT : 0;
    return rc;
}

static void scope_deliver(struct scope *sc)
{
    struct task *t, *tn;
    struct scope *c;

    TAILQ_FOREACH_SAFE(t, &sc->tasks, scope_link, tn)
        task_wake_cancel(t);
    TAILQ_FOREACH(c, &sc->children, sibling)
        if (!(c->flags & WHARF_SCOPE_SHIELD) && !c->cancel_called)
            scope_deliver(c);
}

void scope_cancel(struct scope *sc)
{
    if (!sc->active || sc->cancel_called)
        return;
    sc->cancel_called = true;
    sched_deadline_del(sc->sched, sc);
    scope_refresh(sc);
    scope_deliver(sc);
}

/* Called when a scope's shield or deadline changes. */
void scope_recheck(struct scope *sc)
{
    if (!sc->active)
        return;
    if (scope_effectively_cancelled(sc))
        scope_deliver(sc);
}
