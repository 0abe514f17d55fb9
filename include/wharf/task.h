/*
 * wharf/task.h: tasks, task groups and cancel scopes (AnyIO's model in C).
 *
 * A task is a stackful coroutine on a worker's event loop. Code in a task is
 * written straight-line; a call that cannot finish suspends the task and the
 * loop resumes it when the socket, timer or stream is ready. All calls here
 * must be made from inside a task unless stated otherwise.
 *
 * Cancellation: every call that can suspend is a checkpoint. Inside a
 * cancelled scope, every checkpoint returns WHARF_ECANCELLED until the
 * scope is exited (level-triggered); code should return that code upwards.
 * Cancel scopes are entered and exited in the same task, in LIFO order.
 *
 * Task functions return 0 on success or a negative code (wharf/error.h).
 * A task that returns WHARF_ECANCELLED because an enclosing scope was
 * cancelled is not a failure.
 */
#ifndef WHARF_TASK_H
#define WHARF_TASK_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

struct wharf_group;
struct wharf_task_status;
struct wharf_stream;

typedef int (*wharf_task_fn)(void *arg);
typedef int (*wharf_start_fn)(void *arg, struct wharf_task_status *status);

/* ---- time ---------------------------------------------------------- */

/* Seconds on a monotonic clock. Deadlines are absolute values of it. */
double wharf_clock(void);

/* A deadline meaning "never". */
#define WHARF_FOREVER (1e300)

/* Suspends the task for `seconds` (<= 0: a plain checkpoint).
 * Returns 0, or WHARF_ECANCELLED. Outside a task: WHARF_EINVAL. */
int wharf_sleep(double seconds);

/* Suspends until the clock reaches `deadline`. Same returns as wharf_sleep. */
int wharf_sleep_until(double deadline);

/* A checkpoint: returns WHARF_ECANCELLED if the task is in a cancelled scope,
 * otherwise lets other ready tasks run once and returns 0. */
int wharf_checkpoint(void);

/* Only the cancellation half of a checkpoint: never suspends.
 * Returns WHARF_ECANCELLED or 0. */
int wharf_checkpoint_if_cancelled(void);

/* Suspends until every other task of this worker is blocked (waiting for
 * I/O, a timer or a stream), as AnyIO's wait_all_tasks_blocked(). For tests.
 * Returns 0 or WHARF_ECANCELLED. */
int wharf_wait_all_tasks_blocked(void);

/* ---- cancel scopes ------------------------------------------------------
 *
 *   struct wharf_scope sc;
 *   wharf_scope_enter(&sc, wharf_clock() + 5.0, 0);      // move_on_after(5)
 *   rc = work();
 *   rc = wharf_scope_exit(&sc, rc);
 *
 * The scope lives in caller storage (usually the stack) between enter and
 * exit. wharf_scope_exit() takes the result of the block: if it is
 * WHARF_ECANCELLED and the cancellation came from this scope (its deadline
 * or wharf_scope_cancel) and not from an enclosing one, it is swallowed:
 * exit returns 0, or WHARF_ETIMEDOUT for a WHARF_SCOPE_FAIL scope
 * (fail_after). Any other result is returned unchanged.
 */
struct wharf_scope {
    uint64_t opaque_[16];
};

#define WHARF_SCOPE_SHIELD 0x1u   /* outer cancellation does not reach inside */
#define WHARF_SCOPE_FAIL   0x2u   /* fail_after: a caught cancel becomes WHARF_ETIMEDOUT */

/* Enters a scope with an absolute deadline (WHARF_FOREVER for none).
 * Returns 0, or WHARF_EINVAL (NULL scope, outside a task). */
int wharf_scope_enter(struct wharf_scope *sc, double deadline, unsigned flags);

/* Exits the innermost scope, which must be `sc`; see above for the result.
 * A task must exit every scope it entered (and close every group it opened)
 * before it returns: one left behind aborts the process with a message,
 * since it lived in stack frames that no longer exist.
 * Exiting a scope that is not the innermost is a programming error: it
 * returns WHARF_EINVAL and leaves the scopes as they are. */
int wharf_scope_exit(struct wharf_scope *sc, int rc);

/* Cancels the scope and everything inside it (also from another task of the
 * same worker). Idempotent; a no-op after exit. */
void wharf_scope_cancel(struct wharf_scope *sc);

/* Moves the deadline (earlier or later); passing it cancels the scope. */
void wharf_scope_set_deadline(struct wharf_scope *sc, double deadline);
double wharf_scope_deadline(const struct wharf_scope *sc);
void wharf_scope_set_shield(struct wharf_scope *sc, bool shield);

/* Whether wharf_scope_cancel() was called or the deadline passed. */
bool wharf_scope_cancel_called(const struct wharf_scope *sc);

/* After exit: whether the scope swallowed a cancellation. */
bool wharf_scope_cancelled_caught(const struct wharf_scope *sc);

/* AnyIO's move_on_after / fail_after, as enter with a relative deadline. */
int wharf_move_on_after(struct wharf_scope *sc, double seconds);
int wharf_fail_after(struct wharf_scope *sc, double seconds);

/* The deadline in effect for the calling task (the earliest of its enclosing
 * scopes, up to the first shield), or WHARF_FOREVER. */
double wharf_current_effective_deadline(void);

/* ---- task groups ---------------------------------------------------------
 *
 *   struct wharf_group *tg = wharf_group_open();
 *   wharf_group_spawn(tg, fn, arg);                // start_soon
 *   rc = wharf_group_start(tg, startfn, arg, &v);  // start, waits for started()
 *   rc = wharf_group_close(tg, rc);                // __aexit__: waits for all
 *
 * Opening a group enters its cancel scope in the calling (host) task; child
 * tasks run inside that scope. The first child that fails (a negative result
 * other than a cancellation of this group) cancels the group: the host and
 * the siblings see WHARF_ECANCELLED at their next checkpoint. Close waits for
 * every child, and returns the first failure (the host's own rc counts as a
 * failure unless it is a cancellation the group caused); all failures stay
 * readable with wharf_group_errors() until the group is freed.
 */

/* Returns a new group bound to the calling task, or NULL (outside a task,
 * out of memory). */
struct wharf_group *wharf_group_open(void);

/* Spawns fn(arg) as a child task; it first runs when the host next
 * suspends. Returns 0, WHARF_ECLOSED (the group was closed), WHARF_EINVAL
 * (NULL), -ENOMEM. */
int wharf_group_spawn(struct wharf_group *g, wharf_task_fn fn, void *arg);

/* Spawns fn(arg, status) and waits until it calls wharf_task_started().
 * The value it passes is stored in *value (may be NULL). Returns 0; the
 * task's own error if it failed before started() (the group then does not
 * see that error); -ECHILD if it returned without calling started();
 * WHARF_ECANCELLED if the caller was cancelled while waiting (the child is
 * cancelled too); WHARF_ECLOSED, WHARF_EINVAL, -ENOMEM as spawn. */
int wharf_group_start(struct wharf_group *g, wharf_start_fn fn, void *arg,
                      void **value);

/* Signals start() that the task is ready. Returns 0, or WHARF_EINVAL when
 * called twice or with NULL (the second value is ignored). */
int wharf_task_started(struct wharf_task_status *status, void *value);

/* Cancels the group's scope: every child and the host. */
void wharf_group_cancel(struct wharf_group *g);

/* The group's scope, to read or move its deadline or shield it. */
struct wharf_scope *wharf_group_scope(struct wharf_group *g);

/* Number of children still running. */
size_t wharf_group_running(const struct wharf_group *g);

/* Exits the group (see above) and returns its result; the group stays
 * allocated so that errors can be read. Call from the host task only. */
int wharf_group_exit(struct wharf_group *g, int rc);

/* Copies up to n collected failures into errs; returns how many there are. */
size_t wharf_group_errors(const struct wharf_group *g, int *errs, size_t n);

/* Frees an exited group. NULL is ignored. Called by the host on a group it
 * has not exited, it exits it first (waiting for the children); called by
 * any other task on an open group, it reports the misuse on stderr and frees
 * nothing. Freeing a group twice is undefined. */
void wharf_group_free(struct wharf_group *g);

/* wharf_group_exit + wharf_group_free. */
int wharf_group_close(struct wharf_group *g, int rc);

/* ---- running tasks ---------------------------------------------------- */

/* Runs fn(arg) as the first task of a new scheduler on the calling thread
 * and returns its result once it and every task it spawned have finished
 * (anyio.run). Not from inside a task: WHARF_EINVAL. */
int wharf_run(wharf_task_fn fn, void *arg);

/* Runs fn(arg) on a thread of the blocking-work pool and suspends the task
 * until it returns; returns fn's result. Cancellation cannot interrupt the
 * thread: the call waits for it and the cancellation is seen at the next
 * checkpoint. Outside a task, fn runs directly. */
int wharf_to_thread(int (*fn)(void *arg), void *arg);

/* Whether the caller runs inside a task. */
bool wharf_in_task(void);

/* Stack size for tasks created from now on by this thread's scheduler
 * (rounded up to pages; at least 16 KiB). Returns 0 or WHARF_EINVAL. */
int wharf_set_stack_size(size_t bytes);

/* ---- parking: an idle handler without a stack (API 0.4) -----------------
 *
 * A connection idle for minutes would hold its handler's stack page (4 KiB)
 * for nothing. A stream handler that finds its connection idle can park
 * instead: it returns, and its task waits with no frame until a stream is
 * readable, then runs a continuation the handler names, which goes on as
 * the handler (and may park again):
 *
 *   struct conn_state *st = ...;                 // on the heap: it outlives the frame
 *   if (wharf_parkable()) {
 *       rc = wharf_park_on(client);              // 0: armed
 *       if (rc == 0)
 *           return wharf_park(resume, st);       // WHARF_PARKED: return it at once
 *       ...                                      // 1: readable already: read it
 *   }
 *
 * resume(st) runs on the handler's task, from a fresh stack, at the first
 * read edge of any stream given to wharf_park_on, or when the connection is
 * cancelled (idle_timeout, a reload's drain_timeout, shutdown: its first
 * call then says WHARF_ECANCELLED); the other wakes are withdrawn by then.
 * Its return is the handler's. Between wharf_park_on and returning
 * WHARF_PARKED nothing may suspend; a handler that armed wakes and then
 * does not park withdraws them (wharf_park(NULL, NULL); wharfd does it
 * for a handler that returns anything else). wharfd's stream handlers
 * can park; elsewhere (a task of your own, the test kit)
 * wharf_parkable() is false.
 */

/* Whether the calling task can park (its host resumes parked handlers). */
bool wharf_parkable(void);

/* Arms a wake of the calling task at the next read edge of s (for up to 4
 * streams). 0; 1 when s may be readable already (nothing armed: receive
 * first); WHARF_ENOTSUP (the task cannot park, or s cannot tell: see
 * wharf_notify_readable); WHARF_EBUSY (another waiter, or 4 armed). */
int wharf_park_on(struct wharf_stream *s);

/* Names the continuation and returns WHARF_PARKED, for the handler to
 * return; WHARF_ENOTSUP when the task cannot park. fn NULL gives up: the
 * wakes armed so far are withdrawn, and it returns 0. */
int wharf_park(int (*fn)(void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif /* WHARF_TASK_H */
