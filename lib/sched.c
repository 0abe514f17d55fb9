/*
 * sched.c: one scheduler per thread: the ready queue of tasks on that
 * thread's libevent loop, switching between tasks, blocking and waking
 * (also from other threads), and the heap of cancel-scope deadlines.
 *
 * libevent callbacks never switch stacks: they only make tasks ready. One
 * event (run_ev) runs the ready queue; a task that blocks switches straight
 * to the next ready task, and back to the loop after SCHED_BUDGET switches
 * so that I/O is polled between them (fairness).
 * Not for: the public task calls (task.c), scopes (scope.c), groups (group.c).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/thread.h>

#include "wharf-int.h"

#define SCHED_BUDGET 256
/* An idle scheduler that was woken from another thread less than
 * SCHED_SPIN_RECENT seconds ago polls its wake queue for SCHED_SPIN seconds
 * before going to sleep in epoll: waking a sleeping thread costs tens of
 * microseconds, and a cross-worker stream conversation would pay it on
 * every message. */
#define SCHED_SPIN 30e-6
#define SCHED_SPIN_RECENT 1e-3
#define SCHED_SPAWN_RETRY 0.1       /* a remote spawn without memory: again after */


static __thread struct sched *sched_cur;
static pthread_once_t sched_evthread_once = PTHREAD_ONCE_INIT;

struct sched *sched_current(void)
{
    return sched_cur;
}

struct task *task_current(void)
{
    return sched_cur ? sched_cur->current : NULL;
}

double wharf_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- switching -------------------------------------------------------- */

static void sched_switch(struct sched *s, struct ctx *from, struct ctx *to,
                         const void *to_lo, size_t to_size, bool from_dies)
{
#ifdef WHARF_ASAN
    void *fake = NULL;

    __sanitizer_start_switch_fiber(from_dies ? NULL : &fake, to_lo, to_size);
    ctx_switch(from, to);
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
    (void)to_lo;
    (void)to_size;
    (void)from_dies;
    ctx_switch(from, to);
#endif
    s->switches++;
}

/* A task's frames start at the top of its stack, or under its struct
 * when that lives there (a task that cannot park). */
static char *task_stack_top(const struct task *t)
{
    return t->heap ? t->stack.hi : (char *)(uintptr_t)t;
}

static size_t task_stack_size(const struct task *t)
{
    return (size_t)(task_stack_top(t) - t->stack.lo);
}

static void task_check_canary(struct task *t)
{
    if (!stack_canary_ok(&t->stack)) {
        fprintf(stderr, "wharf: task stack overflow detected (canary of task %llu "
                "overwritten; stack of %zu bytes); aborting\n",
                (unsigned long long)t->id, task_stack_size(t));
        abort();
    }
}

/* Leaves the current task t (whose state the caller set) for the next ready
 * task, or for the loop when none is ready or the budget is spent. */
static void sched_leave(struct sched *s, struct task *t, bool dies)
{
    struct task *next = NULL;

    task_check_canary(t);
    if (!dies && s->budget > 0 && (next = TAILQ_FIRST(&s->ready)) != NULL) {
        s->budget--;
        TAILQ_REMOVE(&s->ready, next, ready_link);
    }
    if (next == t) {            /* a yield with nobody else ready */
        t->state = TASK_RUNNING;
        return;
    }
    if (next) {
        s->current = next;
        next->state = TASK_RUNNING;
        sched_switch(s, &t->ctx, &next->ctx, next->stack.lo, task_stack_size(next), dies);
    } else {
        s->current = NULL;
        sched_switch(s, &t->ctx, &s->loop_ctx, s->loop_stack_lo, s->loop_stack_size, dies);
    }
    /* resumed: whoever switched here made t current and running */
}

static void sched_activate(struct sched *s)
{
    if (!s->run_pending) {
        s->run_pending = true;
        event_active(&s->run_ev, EV_TIMEOUT, 0);
    }
}

static void task_release(struct sched *s, struct task *t)
{
    struct stack st = t->stack;
    bool heap = t->heap;        /* t may live in the stack put back */

    s->ntasks--;
    stack_put(&s->stacks, &st);
    if (heap)
        free(t);
}

static void sched_reap(struct sched *s)
{
    struct task *t = s->dead;

    if (!t)
        return;
    s->dead = NULL;
    if (__atomic_load_n(&t->remote_refs, __ATOMIC_ACQUIRE) > 0)
        t->zombie = true;       /* freed by the last remote wake */
    else
        task_release(s, t);
}

static void sched_remote_drain(struct sched *s);

static inline void sched_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void sched_run_ready(struct sched *s)
{
    struct task *t;

    while (s->budget > 0 && (t = TAILQ_FIRST(&s->ready)) != NULL) {
        s->budget--;
        TAILQ_REMOVE(&s->ready, t, ready_link);
        s->current = t;
        t->state = TASK_RUNNING;
        sched_switch(s, &s->loop_ctx, &t->ctx, t->stack.lo, task_stack_size(t), false);
        sched_reap(s);
    }
}

/* Polls the wake queue for a short while; true when something came (and
 * was drained). */
static bool sched_spin(struct sched *s)
{
    double now = wharf_clock(), until = now + SCHED_SPIN;

    if (s->ntasks == 0 || now - s->last_remote > SCHED_SPIN_RECENT)
        return false;
    do {
        if (__atomic_load_n(&s->rq_len, __ATOMIC_ACQUIRE) > 0) {
            sched_remote_drain(s);
            return true;
        }
        sched_cpu_relax();
    } while (wharf_clock() < until);
    return false;
}

/* While awake, wakers from other threads only queue: this thread looks at
 * the queue before it goes back to the loop (which may sleep in epoll).
 * That saves an eventfd write, read and epoll round per message. */
static void sched_set_awake(struct sched *s)
{
    pthread_mutex_lock(&s->rq_mtx);
    s->awake = true;
    pthread_mutex_unlock(&s->rq_mtx);
}

/* Leaves the awake state; true when wakes had arrived (now drained). */
static bool sched_set_asleep(struct sched *s)
{
    bool pending;

    pthread_mutex_lock(&s->rq_mtx);
    s->awake = false;
    pending = s->rq_len > 0 || s->spawn_q || s->stop_requested;
    pthread_mutex_unlock(&s->rq_mtx);
    if (pending)
        sched_remote_drain(s);
    return pending;
}

static void sched_run_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sched *s = arg;

    (void)fd;
    (void)what;
    s->run_pending = false;
    s->budget = SCHED_BUDGET;
    sched_set_awake(s);
    for (;;) {
        sched_run_ready(s);
        if (TAILQ_EMPTY(&s->ready) && !(s->stopping && s->ntasks == 0) && sched_spin(s))
            continue;
        if (!sched_set_asleep(s) || s->budget == 0)
            break;
        sched_set_awake(s);
    }
    if (!TAILQ_EMPTY(&s->ready))
        sched_activate(s);
    if (s->stopping && s->ntasks == 0)
        event_base_loopbreak(s->base);
}

/* ---- tasks ------------------------------------------------------------- */

static void task_finish(struct task *t);
static void task_park_now(struct task *t);
static void task_unpark(struct task *t);
static void park_withdraw(struct task *t);

static void task_entry(void *arg)
{
    struct task *t = arg;

#ifdef WHARF_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    if (t->start_fn)
        t->result = t->start_fn(t->arg, (struct wharf_task_status *)t);
    else
        t->result = t->fn(t->arg);
    while (t->park_fn) {
        t->fn = t->park_fn;
        t->arg = t->park_arg;
        t->start_fn = NULL;
        t->park_fn = NULL;
        if (!task_cancelled(t))
            task_park_now(t);           /* does not return */
        park_withdraw(t);               /* as a wake would, before it runs */
        t->result = t->fn(t->arg);      /* cancelled: it sees that at once */
    }
    task_finish(t);
}

static struct task *task_spawn_in(struct sched *s, struct scope *parent, wharf_task_fn fn,
                                  wharf_start_fn start_fn, void *arg, bool heap)
{
    struct stack st;
    struct task *t;

    if (stack_get(&s->stacks, &st) != 0)
        return NULL;
    if (heap) {
        if (!(t = calloc(1, sizeof(*t)))) {
            stack_put(&s->stacks, &st);
            return NULL;
        }
        t->heap = true;
    } else {
        /* the task lives at the top of its own stack: no allocation per spawn */
        t = (struct task *)(void *)(((uintptr_t)st.hi - sizeof(*t)) & ~(uintptr_t)63);
        memset(t, 0, sizeof(*t));
    }
    t->stack = st;
    t->sched = s;
    t->fn = fn;
    t->start_fn = start_fn;
    t->arg = arg;
    t->id = ++s->next_id;
    ctx_make(&t->ctx, st.lo, task_stack_top(t), task_entry, t);
    t->scope = parent;
    scope_attach_task(parent, t);
    scope_enter(&t->root, t, WHARF_FOREVER, 0);
    s->ntasks++;
    t->state = TASK_READY;
    TAILQ_INSERT_TAIL(&s->ready, t, ready_link);
    sched_activate(s);
    return t;
}

struct task *task_spawn(struct sched *s, struct scope *parent, wharf_task_fn fn,
                        wharf_start_fn start_fn, void *arg)
{
    return task_spawn_in(s, parent, fn, start_fn, arg, false);
}

struct task *task_spawn_parkable(struct sched *s, struct scope *parent, wharf_task_fn fn,
                                 void *arg)
{
    return task_spawn_in(s, parent, fn, NULL, arg, true);
}

static void task_finish(struct task *t)
{
    struct sched *s = t->sched;
    bool cancelled;

    /* A scope or group the task did not exit lived in the frames that just
     * returned: nothing about it can be trusted or unlinked any more. */
    if (t->scope != &t->root) {
        fprintf(stderr, "wharf: task %llu returned without exiting a cancel "
                "scope or closing a task group it opened; aborting\n",
                (unsigned long long)t->id);
        abort();
    }
    /* Nor can the streams of wakes still armed: they may be freed, and a
     * wake would then find the task gone. */
    if (t->npark_on > 0) {
        fprintf(stderr, "wharf: task %llu returned with %u wakes armed by wharf_park_on and "
                "no park (withdraw them: wharf_park(NULL, NULL)); aborting\n",
                (unsigned long long)t->id, t->npark_on);
        abort();
    }
    cancelled = task_cancelled(t);
    scope_exit(&t->root, t, 0);
    scope_detach_task(t);
    if (t->group)
        group_child_done(t, cancelled);
    t->state = TASK_DONE;
    s->dead = t;
    sched_leave(s, t, true);
    abort();    /* not reached: a finished task is never resumed */
}

bool task_cancelled(const struct task *t)
{
    return scope_effectively_cancelled(t->scope);
}

/* ---- giving idle stacks back ------------------------------------------- */

/* A task that stays blocked keeps the pages its deepest moment touched (a
 * TLS handshake takes tens of KiB of stack): with thousands of idle
 * connections that would be most of the daemon's memory. Blocked tasks
 * wait on sched.idle in the order they blocked, stamped with the tick
 * count; every TRIM_PERIOD a tick trims the stack of each task that was
 * already blocked at the previous tick and still is (so blocked for at
 * least one period: a busy connection is never trimmed) down to the frames
 * it uses (one madvise), and the cached stacks but the hottest. A short
 * block costs a list insert and removal; the tick runs only while a task
 * waits on the list. */
#define TRIM_PERIOD_USEC 250000
#define TRIM_CACHE_KEEP 32

static void trim_arm(struct sched *s)
{
    static const struct timeval period = { 0, TRIM_PERIOD_USEC };

    if (!s->trim_armed && evtimer_add(&s->trim_ev, &period) == 0)
        s->trim_armed = true;
}

static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sched *s = arg;
    struct task *t;

    (void)fd;
    (void)what;
    s->trim_armed = false;
    while ((t = TAILQ_FIRST(&s->idle)) && t->idle_tick != s->trim_tick) {
        TAILQ_REMOVE(&s->idle, t, idle_link);
        t->on_idle = false;
        if (t->state == TASK_PARKED)
            stack_trim_all(&t->stack);      /* no frame left */
#ifndef WHARF_CTX_UCONTEXT
        else
            stack_trim(&t->stack, t->ctx.sp);
#endif
    }
    s->trim_tick++;
    stack_cache_trim(&s->stacks, TRIM_CACHE_KEEP);
    if (!TAILQ_EMPTY(&s->idle))
        trim_arm(s);
}

static void idle_enter(struct sched *s, struct task *t)
{
    if (!t->stack.map)
        return;
    t->idle_tick = s->trim_tick;
    TAILQ_INSERT_TAIL(&s->idle, t, idle_link);
    t->on_idle = true;
    trim_arm(s);
}

static void idle_leave(struct sched *s, struct task *t)
{
    if (t->on_idle) {
        TAILQ_REMOVE(&s->idle, t, idle_link);
        t->on_idle = false;
    }
}

int task_block(void)
{
    struct task *t = task_current();
    struct sched *s = t->sched;

    if (task_cancelled(t))
        return WHARF_ECANCELLED;
    t->state = TASK_BLOCKED;
    t->cancellable = true;
    t->cancel_woken = false;
    s->nblocked++;
    idle_enter(s, t);
    sched_leave(s, t, false);
    t->cancellable = false;
    return t->cancel_woken ? WHARF_ECANCELLED : 0;
}

void task_block_uncancellable(void)
{
    struct task *t = task_current();
    struct sched *s = t->sched;

    t->state = TASK_BLOCKED;
    t->cancellable = false;
    t->cancel_woken = false;
    s->nblocked++;
    idle_enter(s, t);
    sched_leave(s, t, false);
}

static void task_make_ready(struct task *t, bool by_cancel)
{
    struct sched *s = t->sched;

    t->state = TASK_READY;
    t->cancel_woken = by_cancel;
    s->nblocked--;
    idle_leave(s, t);
    TAILQ_INSERT_TAIL(&s->ready, t, ready_link);
    sched_activate(s);
}

void task_wake(struct task *t)
{
    if (t->state == TASK_BLOCKED)
        task_make_ready(t, false);
    else if (t->state == TASK_PARKED)
        task_unpark(t);
}

void task_wake_cancel(struct task *t)
{
    if (t->state == TASK_BLOCKED && t->cancellable)
        task_make_ready(t, true);
    else if (t->state == TASK_PARKED)
        task_unpark(t);
}

/* ---- parking: waiting with no frame ------------------------------------ */

/* A connection idle for minutes would otherwise hold its handler's stack
 * page (4 KiB, a fifth of an idle TLS connection) for nothing: its
 * handler returns instead, and its task waits parked: no frame, its
 * stack's pages given back at the next trim tick, its struct (on the heap
 * for that) still in its group and scopes, so that a cancellation or the
 * group's exit reaches it as any blocked task. A wake starts the task's
 * new function from the top of its stack. */

static void park_withdraw(struct task *t)
{
    while (t->npark_on > 0)
        wharf_notify_readable(t->park_on[--t->npark_on], NULL, NULL);
}

static void task_park_wake(void *arg)
{
    task_wake(arg);
}

int task_park(wharf_task_fn fn, void *arg, double deadline)
{
    struct task *t = task_current();

    if (!t || !fn)
        return WHARF_EINVAL;
    if (!t->heap || t->start)
        return WHARF_ENOTSUP;
    t->park_fn = fn;
    t->park_arg = arg;
    t->park_deadline = deadline;
    return 0;
}

bool task_take_continuation(int (**fn)(void *arg), void **arg)
{
    struct task *t = task_current();

    if (!t || !t->cont_fn)
        return false;
    *fn = t->cont_fn;
    *arg = t->cont_arg;
    t->cont_fn = NULL;
    t->cont_arg = NULL;
    return true;
}

/* From task_entry, the task's function having returned: every scope it
 * entered is exited, nothing of its stack is in use. */
static void task_park_now(struct task *t)
{
    struct sched *s = t->sched;

    if (t->scope != &t->root || !TAILQ_EMPTY(&t->root.children)) {
        fprintf(stderr, "wharf: task %llu parked inside a cancel scope or task group "
                "it opened; aborting\n", (unsigned long long)t->id);
        abort();
    }
    t->state = TASK_PARKED;
    t->cancellable = true;
    s->nblocked++;
    s->nparked++;
    if (t->park_deadline < WHARF_FOREVER) {
        t->root.deadline = t->park_deadline;
        sched_deadline_add(s, &t->root);
    }
    idle_enter(s, t);
    sched_leave(s, t, true);    /* its frames die: a wake makes new ones */
    abort();                    /* not reached */
}

/* A parked task's wake: its function from the top of its stack. */
static void task_unpark(struct task *t)
{
    struct sched *s = t->sched;

    sched_deadline_del(s, &t->root);
    t->root.deadline = WHARF_FOREVER;
    park_withdraw(t);
    ASAN_UNPOISON_MEMORY_REGION(t->stack.lo, (size_t)(t->stack.hi - t->stack.lo));
    ctx_make(&t->ctx, t->stack.lo, t->stack.hi, task_entry, t);
    s->nparked--;
    task_make_ready(t, false);
}

int wharf_park_on(struct wharf_stream *st)
{
    struct task *t = task_current();
    int rc;

    if (!t || !st)
        return WHARF_EINVAL;
    if (!t->heap)
        return WHARF_ENOTSUP;
    if (t->npark_on == TASK_PARK_STREAMS)
        return WHARF_EBUSY;
    if ((rc = wharf_notify_readable(st, task_park_wake, t)) == 0)
        t->park_on[t->npark_on++] = st;
    return rc;
}

int wharf_park(int (*fn)(void *arg), void *arg)
{
    struct task *t = task_current();

    if (!t)
        return WHARF_EINVAL;
    if (!fn) {
        park_withdraw(t);
        return 0;
    }
    if (!t->heap)
        return WHARF_ENOTSUP;
    t->cont_fn = fn;
    t->cont_arg = arg;
    return WHARF_PARKED;
}

bool wharf_parkable(void)
{
    struct task *t = task_current();

    return t && t->heap;
}

/* A yield: the task goes to the back of the ready queue. With nobody else
 * ready it keeps running, unless the budget is spent: then it goes through
 * the loop so that I/O gets polled. */
void sched_pass(void)
{
    struct task *t = task_current();
    struct sched *s = t->sched;

    if (TAILQ_EMPTY(&s->ready) && s->budget > 0) {
        s->budget--;
        return;
    }
    t->state = TASK_READY;
    TAILQ_INSERT_TAIL(&s->ready, t, ready_link);
    sched_activate(s);
    sched_leave(s, t, false);
}

/* Goes through the loop (polling I/O) and reports whether the ready queue
 * was empty when the task came back. */
bool sched_yield_via_loop(void)
{
    struct task *t = task_current();
    struct sched *s = t->sched;

    s->budget = 0;
    t->state = TASK_READY;
    TAILQ_INSERT_TAIL(&s->ready, t, ready_link);
    sched_activate(s);
    sched_leave(s, t, false);
    return TAILQ_EMPTY(&s->ready);
}

/* ---- wakes from other threads ----------------------------------------- */

void task_wake_any(struct task *t)
{
    struct sched *s = t->sched;
    bool first;

    if (s == sched_cur) {
        task_wake(t);
        return;
    }
    __atomic_add_fetch(&t->remote_refs, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_lock(&s->rq_mtx);
    if (s->rq_len == s->rq_cap) {
        size_t ncap = s->rq_cap ? s->rq_cap * 2 : 64;
        struct task **n = realloc(s->rq, ncap * sizeof(*n));

        if (!n) {
            pthread_mutex_unlock(&s->rq_mtx);
            fprintf(stderr, "wharf: out of memory waking a task\n");
            abort();
        }
        s->rq = n;
        s->rq_cap = ncap;
    }
    s->rq[s->rq_len] = t;
    __atomic_store_n(&s->rq_len, s->rq_len + 1, __ATOMIC_RELEASE);
    first = s->rq_len == 1 && !s->awake;
    /* signalled under the lock: the scheduler cannot be freed meanwhile */
    if (first)
        event_active(&s->rq_ev, EV_READ, 0);
    pthread_mutex_unlock(&s->rq_mtx);
}

int sched_spawn_remote(struct sched *s, wharf_task_fn fn, void *arg)
{
    struct spawn_req *r = malloc(sizeof(*r));

    if (!r)
        return -ENOMEM;
    r->caller_owned = false;
    sched_spawn_remote_req(s, r, fn, arg);
    return 0;
}

void sched_spawn_remote_req(struct sched *s, struct spawn_req *r, wharf_task_fn fn, void *arg)
{
    r->fn = fn;
    r->arg = arg;
    pthread_mutex_lock(&s->rq_mtx);
    r->next = s->spawn_q;
    s->spawn_q = r;
    event_active(&s->rq_ev, EV_READ, 0);
    pthread_mutex_unlock(&s->rq_mtx);
}

void sched_stop_remote(struct sched *s)
{
    pthread_mutex_lock(&s->rq_mtx);
    s->stop_requested = true;
    event_active(&s->rq_ev, EV_READ, 0);
    pthread_mutex_unlock(&s->rq_mtx);
}

/* Starts the requests of list r in its order until one finds no memory:
 * that one and the rest go, in order, to the retry list (empty on entry),
 * tried again at the next retry tick. Order matters: a listener's stop
 * must not start before its start. */
static void sched_spawn_list(struct sched *s, struct spawn_req *r)
{
    struct spawn_req *next, **tail = &s->spawn_retry;
    bool failed = false;

    for (; r; r = next) {
        bool ours = !r->caller_owned;   /* a caller's may go with its task */

        next = r->next;
        if (failed || !task_spawn(s, &s->root, r->fn, NULL, r->arg)) {
            r->next = NULL;
            *tail = r;
            tail = &r->next;
            failed = true;
            continue;
        }
        if (ours)
            free(r);
    }
    if (!failed) {
        s->spawn_retry_warned = false;          /* the next shortage is news */
        return;
    }
    if (!s->spawn_retry_warned) {
        fprintf(stderr, "wharf: cannot start a task: out of memory; trying again every "
                        "%.1f s\n", SCHED_SPAWN_RETRY);
        s->spawn_retry_warned = true;
    }
    if (!s->spawn_retry_armed) {
        struct timeval tv = { 0, (long)(SCHED_SPAWN_RETRY * 1e6) };

        if (evtimer_add(&s->spawn_retry_ev, &tv) == 0)
            s->spawn_retry_armed = true;
    }
}

static void sched_spawn_pending(struct sched *s, struct spawn_req *r)
{
    struct spawn_req *prev = NULL, *next, **tail;

    /* the list was pushed LIFO: reverse it so tasks start in request order */
    while (r) {
        next = r->next;
        r->next = prev;
        prev = r;
        r = next;
    }
    /* after those still waiting for memory */
    for (tail = &s->spawn_retry; *tail; tail = &(*tail)->next)
        ;
    *tail = prev;
    r = s->spawn_retry;
    s->spawn_retry = NULL;
    sched_spawn_list(s, r);
}

static void sched_spawn_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sched *s = arg;
    struct spawn_req *r = s->spawn_retry;

    (void)fd;
    (void)what;
    s->spawn_retry_armed = false;
    s->spawn_retry = NULL;
    sched_spawn_list(s, r);
}

static void spawn_req_list_free(struct spawn_req *r)
{
    struct spawn_req *next;

    for (; r; r = next) {
        next = r->next;
        if (!r->caller_owned)
            free(r);
    }
}

static void sched_remote_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sched_remote_drain(arg);
}

static void sched_remote_drain(struct sched *s)
{
    struct task **q;
    struct spawn_req *spawns;
    size_t n, qcap;
    bool stop;

    pthread_mutex_lock(&s->rq_mtx);
    q = s->rq;
    n = s->rq_len;
    qcap = s->rq_cap;
    /* swap in the spare array; only this thread drains, so q is ours now */
    s->rq = s->rq_spare;
    s->rq_cap = s->rq_spare_cap;
    __atomic_store_n(&s->rq_len, 0, __ATOMIC_RELEASE);
    s->rq_spare = q;
    s->rq_spare_cap = qcap;
    spawns = s->spawn_q;
    s->spawn_q = NULL;
    stop = s->stop_requested;
    s->stop_requested = false;
    pthread_mutex_unlock(&s->rq_mtx);
    if (n > 0)
        s->last_remote = wharf_clock();
    for (size_t i = 0; i < n; i++) {
        struct task *t = q[i];

        if (__atomic_sub_fetch(&t->remote_refs, 1, __ATOMIC_ACQ_REL) == 0 && t->zombie)
            task_release(s, t);
        else
            task_wake(t);
    }
    sched_spawn_pending(s, spawns);
    if (stop) {
        s->stopping = true;
        scope_cancel(&s->root);
    }
    if (s->stopping && s->ntasks == 0)
        event_base_loopbreak(s->base);
}

/* ---- deadlines: a binary min-heap of scopes, one timer for the earliest - */

static void heap_set(struct sched *s, size_t i, struct scope *sc)
{
    s->deadlines[i] = sc;
    sc->heap_idx = i;
}

static void heap_up(struct sched *s, size_t i)
{
    struct scope *sc = s->deadlines[i];

    while (i > 0) {
        size_t p = (i - 1) / 2;

        if (s->deadlines[p]->deadline <= sc->deadline)
            break;
        heap_set(s, i, s->deadlines[p]);
        i = p;
    }
    heap_set(s, i, sc);
}

static void heap_down(struct sched *s, size_t i)
{
    struct scope *sc = s->deadlines[i];

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= s->ndeadlines)
            break;
        if (c + 1 < s->ndeadlines && s->deadlines[c + 1]->deadline < s->deadlines[c]->deadline)
            c++;
        if (sc->deadline <= s->deadlines[c]->deadline)
            break;
        heap_set(s, i, s->deadlines[c]);
        i = c;
    }
    heap_set(s, i, sc);
}

static void sched_timer_arm(struct sched *s)
{
    double at, delta;
    struct timeval tv;

    if (s->ndeadlines == 0) {
        if (s->timer_at < WHARF_FOREVER) {
            evtimer_del(&s->timer_ev);
            s->timer_at = WHARF_FOREVER;
        }
        return;
    }
    at = s->deadlines[0]->deadline;
    if (at == s->timer_at)
        return;
    delta = at - wharf_clock();
    if (delta < 0)
        delta = 0;
    if (delta > 1e9)
        delta = 1e9;    /* ~30 years: re-armed when it fires; fits a time_t */
    /* round up so that the timer never fires just before the deadline */
    tv.tv_sec = (time_t)delta;
    tv.tv_usec = (suseconds_t)ceil((delta - (double)tv.tv_sec) * 1e6);
    if (tv.tv_usec >= 1000000) {
        tv.tv_sec++;
        tv.tv_usec -= 1000000;
    }
    evtimer_add(&s->timer_ev, &tv);
    s->timer_at = at;
}

void sched_deadline_add(struct sched *s, struct scope *sc)
{
    if (s->ndeadlines == s->capdeadlines) {
        size_t ncap = s->capdeadlines ? s->capdeadlines * 2 : 64;
        struct scope **n = realloc(s->deadlines, ncap * sizeof(*n));

        if (!n) {
            fprintf(stderr, "wharf: out of memory for a deadline\n");
            abort();
        }
        s->deadlines = n;
        s->capdeadlines = ncap;
    }
    s->deadlines[s->ndeadlines] = sc;
    sc->heap_idx = s->ndeadlines++;
    heap_up(s, sc->heap_idx);
    sched_timer_arm(s);
}

void sched_deadline_del(struct sched *s, struct scope *sc)
{
    size_t i = sc->heap_idx;

    if (i == SIZE_MAX)
        return;
    sc->heap_idx = SIZE_MAX;
    s->ndeadlines--;
    if (i != s->ndeadlines) {
        struct scope *last = s->deadlines[s->ndeadlines];

        heap_set(s, i, last);
        if (i > 0 && s->deadlines[(i - 1) / 2]->deadline > last->deadline)
            heap_up(s, i);
        else
            heap_down(s, i);
    }
    sched_timer_arm(s);
}

static void sched_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sched *s = arg;
    double now = wharf_clock();

    (void)fd;
    (void)what;
    s->timer_at = WHARF_FOREVER;
    while (s->ndeadlines > 0 && s->deadlines[0]->deadline <= now) {
        struct scope *sc = s->deadlines[0];

        sched_deadline_del(s, sc);
        if (sc->owner && sc == &sc->owner->root && sc->owner->state == TASK_PARKED)
            task_unpark(sc->owner);     /* a park's deadline wakes, not cancels */
        else
            scope_cancel(sc);
    }
    sched_timer_arm(s);
}

/* ---- life cycle --------------------------------------------------------- */

/* Locks held for a few instructions between two workers: spin a little
 * before sleeping in the kernel (glibc's adaptive mutex). */
void sched_mutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;

    pthread_mutexattr_init(&a);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

static void sched_evthread_init(void)
{
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "wharf: libevent has no pthreads support\n");
        abort();
    }
}

static void sched_thread_stack(struct sched *s)
{
    pthread_attr_t a;
    void *lo = NULL;
    size_t size = 0;

    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &lo, &size);
        pthread_attr_destroy(&a);
    }
    s->loop_stack_lo = lo;
    s->loop_stack_size = size;
}

struct sched *sched_new(struct event_base *base)
{
    struct sched *s;

    pthread_once(&sched_evthread_once, sched_evthread_init);
    if (sched_cur)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base = base;
    if (!s->base) {
        s->base = event_base_new();
        s->own_base = true;
    }
    if (!s->base) {
        free(s);
        return NULL;
    }
    TAILQ_INIT(&s->ready);
    sched_mutex_init(&s->rq_mtx);
    event_assign(&s->run_ev, s->base, -1, 0, sched_run_cb, s);
    event_assign(&s->rq_ev, s->base, -1, 0, sched_remote_cb, s);
    evtimer_assign(&s->timer_ev, s->base, sched_timer_cb, s);
    s->timer_at = WHARF_FOREVER;
    TAILQ_INIT(&s->idle);
    evtimer_assign(&s->trim_ev, s->base, trim_cb, s);
    evtimer_assign(&s->spawn_retry_ev, s->base, sched_spawn_retry_cb, s);
    scope_init_root(&s->root, s);
    stack_cache_init(&s->stacks, WHARF_DEFAULT_STACK);
    sched_thread_stack(s);
    stack_overflow_handler_install();
    sched_cur = s;
    return s;
}

int sched_loop(struct sched *s)
{
    if (s->stopping && s->ntasks == 0)
        return 0;
    return event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
}

void sched_free(struct sched *s)
{
    if (!s)
        return;
    if (s->timer_at < WHARF_FOREVER)
        evtimer_del(&s->timer_ev);
    event_del(&s->run_ev);
    event_del(&s->rq_ev);
    if (s->trim_armed)
        evtimer_del(&s->trim_ev);
    if (s->spawn_retry_armed)
        evtimer_del(&s->spawn_retry_ev);
    spawn_req_list_free(s->spawn_q);
    spawn_req_list_free(s->spawn_retry);
    stack_cache_purge(&s->stacks);
    free(s->deadlines);
    free(s->rq);
    free(s->rq_spare);
    /* a waker from another thread may still be inside its critical section */
    pthread_mutex_lock(&s->rq_mtx);
    pthread_mutex_unlock(&s->rq_mtx);
    pthread_mutex_destroy(&s->rq_mtx);
    if (s->own_base)
        event_base_free(s->base);
    if (sched_cur == s)
        sched_cur = NULL;
    stack_overflow_handler_remove();
    free(s);
}
