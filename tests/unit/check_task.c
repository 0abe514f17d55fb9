/*
 * check_task.c: tasks and the scheduler: spawning, ordering, sleeping,
 * deadlines, checkpoints, wait_all_tasks_blocked, wharf_to_thread, stack
 * sizes, and stack overflow being reported rather than corrupting memory.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "testutil.h"
#include "wharf-int.h"

static int counter;
static int order[512], norder;

static int record_id(void *arg)
{
    order[norder++] = (int)(long)arg;
    return 0;
}

static int t_fifo_start(void *arg)
{
    struct wharf_group *g = wharf_group_open();

    for (long i = 0; i < 100; i++)
        wharf_group_spawn(g, record_id, (void *)i);
    ck_assert_int_eq(wharf_group_close(g, 0), 0);
    ck_assert_int_eq(norder, 100);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(order[i], i);
    return 0;
}
START_TEST(tasks_start_in_spawn_order) { TU_RUN(t_fifo_start, NULL); }
END_TEST

static int return_seven(void *arg)
{
    return 7;
}

START_TEST(run_returns_main_result)
{
    ck_assert_int_eq(wharf_run(return_seven, NULL), 7);
    /* and a second run on the same thread works */
    ck_assert_int_eq(wharf_run(return_seven, NULL), 7);
}
END_TEST

static int nested_run(void *arg)
{
    TU_ASSERT_RC(wharf_run(return_seven, NULL), WHARF_EINVAL);
    ck_assert(wharf_in_task());
    return 0;
}
START_TEST(run_inside_a_task_is_refused) { TU_RUN(nested_run, NULL); }
END_TEST

static int sleeper_counts(void *arg)
{
    int rc = wharf_sleep(0.05);

    if (rc == 0)
        counter++;
    return rc;
}

static int t_many_tasks(void *arg)
{
    struct wharf_group *g = wharf_group_open();
    double t0 = wharf_clock();

    for (int i = 0; i < 10000; i++)
        ck_assert_int_eq(wharf_group_spawn(g, sleeper_counts, NULL), 0);
    ck_assert_int_eq(wharf_group_close(g, 0), 0);
    ck_assert_int_eq(counter, 10000);
    /* they slept together: one after another would take 500 s */
    ck_assert(wharf_clock() - t0 < 50.0);
    return 0;
}
START_TEST(ten_thousand_tasks_sleep_concurrently) { TU_RUN(t_many_tasks, NULL); }
END_TEST

static int t_sleep_duration(void *arg)
{
    double t0 = wharf_clock();

    ck_assert_int_eq(wharf_sleep(0.05), 0);
    double dt = wharf_clock() - t0;
    ck_assert_msg(dt >= 0.05 && dt < 0.5, "sleep(0.05) took %.4f s", dt);
    ck_assert_int_eq(wharf_sleep(0), 0);
    ck_assert_int_eq(wharf_sleep(-1), 0);
    return 0;
}
START_TEST(sleep_lasts_at_least_its_time) { TU_RUN(t_sleep_duration, NULL); }
END_TEST

struct timed {
    double delay;       /* after a base shared by every task */
    int idx;
};

static double timed_base;

static int sleep_and_record(void *arg)
{
    struct timed *tm = arg;

    wharf_sleep_until(timed_base + tm->delay);
    order[norder++] = tm->idx;
    return 0;
}

static int t_deadline_heap_order(void *arg)
{
    static struct timed tms[200];
    struct wharf_group *g = wharf_group_open();
    unsigned seed = 12345;

    timed_base = wharf_clock() + 0.05;
    for (int i = 0; i < 200; i++) {
        seed = seed * 1103515245u + 12345u;
        /* distinct delays 2 ms apart so the order is unambiguous */
        tms[i].delay = 0.002 * (double)((seed >> 8) % 200) + 0.000001 * i;
        tms[i].idx = i;
        wharf_group_spawn(g, sleep_and_record, &tms[i]);
    }
    ck_assert_int_eq(wharf_group_close(g, 0), 0);
    ck_assert_int_eq(norder, 200);
    for (int i = 1; i < 200; i++)
        ck_assert_msg(tms[order[i - 1]].delay <= tms[order[i]].delay,
                      "task with delay %.4f woke after one with %.4f",
                      tms[order[i - 1]].delay, tms[order[i]].delay);
    return 0;
}
START_TEST(deadlines_fire_in_order) { TU_RUN(t_deadline_heap_order, NULL); }
END_TEST

static int pinger(void *arg)
{
    for (int i = 0; i < 5; i++) {
        order[norder++] = (int)(long)arg;
        ck_assert_int_eq(wharf_checkpoint(), 0);
    }
    return 0;
}

static int t_checkpoint_yields(void *arg)
{
    struct wharf_group *g = wharf_group_open();

    wharf_group_spawn(g, pinger, (void *)1L);
    wharf_group_spawn(g, pinger, (void *)2L);
    ck_assert_int_eq(wharf_group_close(g, 0), 0);
    ck_assert_int_eq(norder, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(order[i], 1 + i % 2);
    return 0;
}
START_TEST(checkpoint_lets_others_run) { TU_RUN(t_checkpoint_yields, NULL); }
END_TEST

static int busy_for_a_while(void *arg)
{
    for (int i = 0; i < 3; i++) {
        wharf_checkpoint();
        wharf_sleep(0.001);
    }
    counter++;
    return wharf_sleep(10);     /* then blocks for good */
}

static int t_wait_all_blocked(void *arg)
{
    struct wharf_group *g = wharf_group_open();

    for (int i = 0; i < 5; i++)
        wharf_group_spawn(g, busy_for_a_while, NULL);
    /* sleeps count as blocked, so this returns at the first quiet moment;
     * with the tasks still stepping through short sleeps, loop until done */
    while (counter < 5) {
        ck_assert_int_eq(wharf_wait_all_tasks_blocked(), 0);
        if (counter < 5)
            wharf_sleep(0.002);
    }
    ck_assert_int_eq(wharf_wait_all_tasks_blocked(), 0);
    ck_assert_int_eq(counter, 5);
    wharf_group_cancel(g);
    ck_assert_int_eq(wharf_group_close(g, 0), 0);
    return 0;
}
START_TEST(wait_all_tasks_blocked) { TU_RUN(t_wait_all_blocked, NULL); }
END_TEST

static int t_cancel_wakes_sleeper_promptly(void *arg)
{
    struct wharf_scope sc;
    double t0 = wharf_clock();

    wharf_move_on_after(&sc, 0.02);
    int rc = wharf_sleep(WHARF_FOREVER);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    ck_assert_int_eq(wharf_scope_exit(&sc, rc), 0);
    ck_assert(wharf_clock() - t0 < 0.5);
    return 0;
}
START_TEST(cancel_wakes_a_sleeper) { TU_RUN(t_cancel_wakes_sleeper_promptly, NULL); }
END_TEST

/* ---- wharf_to_thread ------------------------------------------------------ */

static pthread_t loop_thread;

static int blocking_job(void *arg)
{
    usleep(100 * 1000);
    return pthread_equal(pthread_self(), loop_thread) ? -EDEADLK : 42;
}

static int ticker(void *arg)
{
    for (int i = 0; i < 1000 && !*(volatile bool *)arg; i++) {
        counter++;
        wharf_sleep(0.002);
    }
    return 0;
}

static int t_to_thread(void *arg)
{
    static bool done;
    struct wharf_group *g = wharf_group_open();

    loop_thread = pthread_self();
    wharf_group_spawn(g, ticker, &done);
    ck_assert_int_eq(wharf_to_thread(blocking_job, NULL), 42);
    done = true;
    ck_assert_int_eq(wharf_group_close(g, 0), 0);
    /* the loop kept running while the job blocked its thread */
    ck_assert_int_ge(counter, 10);
    TU_ASSERT_RC(wharf_to_thread(NULL, NULL), WHARF_EINVAL);
    return 0;
}
START_TEST(to_thread_does_not_block_the_loop) { TU_RUN(t_to_thread, NULL); }
END_TEST

static int t_to_thread_cancelled(void *arg)
{
    struct wharf_scope sc;

    loop_thread = pthread_self();
    wharf_move_on_after(&sc, 0.01);
    /* the job cannot be interrupted: its result comes back... */
    int rc = wharf_to_thread(blocking_job, NULL);
    ck_assert_int_eq(rc, 42);
    /* ...and the cancellation is seen at the next checkpoint */
    rc = wharf_checkpoint();
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    ck_assert_int_eq(wharf_scope_exit(&sc, rc), 0);
    return 0;
}
START_TEST(to_thread_finishes_despite_cancel) { TU_RUN(t_to_thread_cancelled, NULL); }
END_TEST

static int to_thread_worker(void *arg)
{
    int rc = wharf_to_thread(blocking_job, NULL);

    ck_assert_int_eq(rc, 42);
    counter++;
    return 0;
}

static int t_to_thread_concurrent(void *arg)
{
    struct wharf_group *g = wharf_group_open();
    double t0 = wharf_clock();

    loop_thread = pthread_self();
    for (int i = 0; i < 8; i++)
        wharf_group_spawn(g, to_thread_worker, NULL);
    ck_assert_int_eq(wharf_group_close(g, 0), 0);
    ck_assert_int_eq(counter, 8);
    /* 8 jobs of 100 ms on a pool of 4: about 200 ms, not 800 */
    ck_assert(wharf_clock() - t0 < 0.7);
    return 0;
}
START_TEST(to_thread_runs_jobs_in_parallel) { TU_RUN(t_to_thread_concurrent, NULL); }
END_TEST

/* ---- stacks ------------------------------------------------------------------- */

static int use_stack(void *arg)
{
    volatile char buf[128 * 1024];

    memset((char *)buf, 1, sizeof(buf));
    return buf[sizeof(buf) - 1] == 1 ? 0 : -EIO;
}

static int t_stack_size(void *arg)
{
    struct wharf_group *g;

    TU_ASSERT_RC(wharf_set_stack_size(100), WHARF_EINVAL);
    ck_assert_int_eq(wharf_set_stack_size(512 * 1024), 0);
    g = wharf_group_open();
    wharf_group_spawn(g, use_stack, NULL);
    return wharf_group_close(g, 0);
}
START_TEST(stack_size_is_configurable) { TU_RUN(t_stack_size, NULL); }
END_TEST

static int recurse(int depth)
{
    volatile char pad[1024];

    pad[0] = (char)depth;
    if (depth == 0)
        return pad[0];
    return recurse(depth - 1) + pad[0];
}

static int overflow_task(void *arg)
{
    return recurse(1 << 20);    /* 1 GiB of frames: far past 64 KiB */
}

static int corrupt_canary_task(void *arg)
{
    struct task *t = task_current();

    /* what an overflow that jumped the guard page would leave behind */
    memset(t->stack.lo, 0, 16);
    return wharf_checkpoint();
}

static int overflow_main(void *arg)
{
    struct wharf_group *g = wharf_group_open();

    wharf_group_spawn(g, (wharf_task_fn)arg, NULL);
    return wharf_group_close(g, 0);
}

/* Runs fn in a task in a child process and checks that it did not survive
 * and that its stderr names the problem (`want`). */
static void expect_reported_crash(wharf_task_fn fn, const char *want)
{
    int p[2];
    char out[4096];
    ssize_t n, len = 0;
    int status;
    pid_t pid;

    ck_assert_int_eq(pipe(p), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        wharf_run(overflow_main, (void *)fn);
        _exit(0);       /* not reached if the overflow was caught */
    }
    close(p[1]);
    while (len < (ssize_t)sizeof(out) - 1 &&
           (n = read(p[0], out + len, sizeof(out) - 1 - (size_t)len)) > 0)
        len += n;
    out[len] = '\0';
    close(p[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(!(WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "the child survived a stack overflow");
    ck_assert_msg(strstr(out, want) || strstr(out, "stack-overflow"),
                  "\"%s\" not reported; stderr was: %s", want, out);
}

START_TEST(stack_overflow_is_reported)
{
    expect_reported_crash(overflow_task, "task stack overflow");
}
END_TEST

static int forgets_its_scope(void *arg)
{
    struct wharf_scope sc;

    wharf_move_on_after(&sc, 10);
    return 0;       /* returns inside the scope: a programming error */
}

START_TEST(returning_inside_a_scope_is_reported)
{
    expect_reported_crash(forgets_its_scope, "without exiting a cancel scope");
}
END_TEST

static int forgets_its_group(void *arg)
{
    struct wharf_group *g = wharf_group_open();

    (void)g;
    return 0;
}

START_TEST(returning_with_an_open_group_is_reported)
{
    expect_reported_crash(forgets_its_group, "closing a task group");
}
END_TEST

/* A task that went deep and then stays blocked gives the pages below its
 * stack pointer back (the trim tick, sched.c): they are no longer resident,
 * and the task runs on, deep again, with its canary intact. */
static __attribute__((noinline)) void go_deep(void)
{
    char buf[32 * 1024];

    memset(buf, 0x5a, sizeof(buf));
    __asm__ volatile("" : : "r"(buf) : "memory");   /* keep the stores */
}

struct deep {
    struct task *task;
    bool went_deep_again;
};

static int deep_then_idle(void *arg)
{
    struct deep *d = arg;
    int rc;

    d->task = task_current();
    go_deep();
    rc = wharf_sleep(1.0);                  /* a few trim ticks */
    go_deep();
    d->went_deep_again = true;
    return rc;
}

static int trim_main(void *arg)
{
    struct wharf_group *g = wharf_group_open();
    struct deep d = { NULL, false };
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    const char *lo, *sp;

    (void)arg;
    TU_ASSERT_RC(wharf_group_spawn(g, deep_then_idle, &d), 0);
    TU_ASSERT_RC(wharf_sleep(0.05), 0);
    lo = d.task->stack.lo;
#ifndef WHARF_CTX_UCONTEXT
    sp = d.task->ctx.sp;
    /* the 32 KiB it touched are resident while it has just blocked */
    ck_assert_uint_ge(tu_resident_pages(lo, lo + ((size_t)(sp - lo) / ps - 1) * ps), 6);
    TU_ASSERT_RC(wharf_sleep(0.7), 0);
    ck_assert_uint_eq(tu_resident_pages(lo, lo + ((size_t)(sp - lo) / ps - 1) * ps), 0);
#else
    (void)sp;   /* no saved stack pointer at hand: nothing is trimmed */
    (void)lo;
    (void)ps;
#endif
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    ck_assert(d.went_deep_again);
    return 0;
}

START_TEST(idle_stacks_are_trimmed)
{
    TU_ASSERT_RC(wharf_run(trim_main, NULL), 0);
}
END_TEST

START_TEST(stack_canary_is_checked)
{
    expect_reported_crash(corrupt_canary_task, "canary");
}
END_TEST

/* ---- parking ------------------------------------------------------------------ */

struct parker {
    struct wharf_stream *a, *b;     /* a socket pair: the task parks on a */
    double deadline;                /* the park's (WHARF_FOREVER: none) */
    int runs;                       /* how often its function started */
    int last_rc;                    /* what its last run's first call said */
    char got[8];
    struct task *task;
    struct wharf_group *cancel;     /* cancels it as it parks */
};

/* The first run parks on p->a; the second reads what woke it (or sees the
 * cancellation, or the deadline: nothing to read) and ends. */
static int parker_run(void *arg)
{
    struct parker *p = arg;
    int (*cont)(void *) = NULL;
    void *cont_arg = NULL;
    char marker[256];

    p->task = task_current();
    memset(marker, 0x33, sizeof(marker));        /* frames that must not matter */
    __asm__ volatile("" : : "r"(marker) : "memory");
    if (p->runs++ > 0) {
        p->last_rc = wharf_checkpoint_if_cancelled();
        if (p->last_rc == 0 && wharf_clock() < p->deadline)
            p->last_rc = (int)wharf_receive(p->a, p->got, sizeof(p->got) - 1);
        if (p->last_rc == WHARF_ECANCELLED) {
            wharf_free(p->a);           /* as wharfd frees a cancelled connection */
            p->a = NULL;
        }
        return 0;
    }
    ck_assert(wharf_parkable());
    /* nothing to read (and the socket knows it: an EAGAIN since its last
     * edge), so a wake can be armed */
    TU_ASSERT_RC(wharf_receive_nowait(p->a, p->got, sizeof(p->got)), WHARF_EWOULDBLOCK);
    TU_ASSERT_RC(wharf_park_on(p->a), 0);
    TU_ASSERT_RC(wharf_park(parker_run, p), WHARF_PARKED);
    /* the host's part (wharfd's conn.c): take the handler's continuation
     * and park the task with it */
    ck_assert(task_take_continuation(&cont, &cont_arg));
    ck_assert(cont == parker_run && cont_arg == p);
    TU_ASSERT_RC(task_park(cont, cont_arg, p->deadline), 0);
    if (p->cancel)
        wharf_group_cancel(p->cancel);
    return 0;
}

static void parker_open(struct parker *p, double deadline)
{
    int fds[2];

    memset(p, 0, sizeof(*p));
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    TU_ASSERT_RC(wharf_socket_stream_from_fd(fds[0], &p->a), 0);
    TU_ASSERT_RC(wharf_socket_stream_from_fd(fds[1], &p->b), 0);
    p->deadline = deadline;
}

static void parker_close(struct parker *p)
{
    wharf_free(p->a);
    wharf_free(p->b);
}

/* A parked task has no frame: it is counted, holds no stack page after a
 * trim tick, and a read edge runs its function afresh, which reads. */
static int park_main(void *arg)
{
    struct wharf_group *g = wharf_group_open();
    struct sched *s = sched_current();
    struct parker p;

    (void)arg;
    /* a task that cannot park is told so, and arms nothing */
    ck_assert(!wharf_parkable());
    parker_open(&p, WHARF_FOREVER);
    TU_ASSERT_RC(wharf_park_on(p.a), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_park(parker_run, &p), WHARF_ENOTSUP);
    TU_ASSERT_RC(group_spawn_parkable(g, parker_run, &p), 0);
    TU_ASSERT_RC(wharf_sleep(1.0), 0);      /* two trim ticks (250 ms) and some */
    ck_assert_int_eq(p.runs, 1);
    ck_assert_uint_eq(s->nparked, 1);
    ck_assert_uint_eq(wharf_group_running(g), 1);     /* still its group's */
    ck_assert_uint_eq(tu_resident_pages(p.task->stack.lo, p.task->stack.hi), 0);
    TU_ASSERT_RC(wharf_send(p.b, "wake", 4), 0);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    ck_assert_int_eq(p.runs, 2);
    TU_ASSERT_RC(p.last_rc, 4);
    ck_assert_str_eq(p.got, "wake");
    ck_assert_uint_eq(s->nparked, 0);
    parker_close(&p);
    return 0;
}

START_TEST(parked_task_wakes_at_a_read_edge)
{
    TU_ASSERT_RC(wharf_run(park_main, NULL), 0);
}
END_TEST

/* Its group's cancellation and its deadline wake a parked task too. */
static int park_cancel_main(void *arg)
{
    struct wharf_group *g = wharf_group_open();
    struct parker p, q;
    double t0 = wharf_clock();

    (void)arg;
    parker_open(&p, WHARF_FOREVER);
    parker_open(&q, t0 + 0.3);
    TU_ASSERT_RC(group_spawn_parkable(g, parker_run, &p), 0);
    TU_ASSERT_RC(group_spawn_parkable(g, parker_run, &q), 0);
    TU_ASSERT_RC(wharf_sleep(0.1), 0);
    ck_assert_uint_eq(sched_current()->nparked, 2);
    TU_ASSERT_RC(wharf_sleep(0.4), 0);
    /* the deadline ran q's function: not a cancellation, nothing read */
    ck_assert_int_eq(q.runs, 2);
    TU_ASSERT_RC(q.last_rc, 0);
    ck_assert_int_eq(p.runs, 1);
    wharf_group_cancel(g);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    ck_assert_int_eq(p.runs, 2);
    TU_ASSERT_RC(p.last_rc, WHARF_ECANCELLED);
    ck_assert_uint_eq(sched_current()->nparked, 0);
    ck_assert_ptr_null(p.a);        /* freed by its function, the wake withdrawn */
    parker_close(&p);
    parker_close(&q);
    return 0;
}

START_TEST(parked_task_wakes_when_cancelled_or_at_its_deadline)
{
    TU_ASSERT_RC(wharf_run(park_cancel_main, NULL), 0);
}
END_TEST

/* A task cancelled as it would park runs its function at once, its wakes
 * withdrawn first: the function may free their streams (the runtime
 * aborts a task that ends with wakes armed). */
static int park_cancelled_main(void *arg)
{
    struct wharf_group *g = wharf_group_open();
    struct parker p;

    (void)arg;
    parker_open(&p, WHARF_FOREVER);
    p.cancel = g;
    TU_ASSERT_RC(group_spawn_parkable(g, parker_run, &p), 0);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    ck_assert_int_eq(p.runs, 2);
    TU_ASSERT_RC(p.last_rc, WHARF_ECANCELLED);
    ck_assert_ptr_null(p.a);
    ck_assert_uint_eq(sched_current()->nparked, 0);
    parker_close(&p);
    return 0;
}

START_TEST(task_cancelled_as_it_parks_runs_on)
{
    TU_ASSERT_RC(wharf_run(park_cancelled_main, NULL), 0);
}
END_TEST

/* ---- error table ------------------------------------------------------------- */

START_TEST(error_names_and_texts)
{
    const int codes[] = { WHARF_EOF, WHARF_ECLOSED, WHARF_EBROKEN, WHARF_EINCOMPLETE,
                          WHARF_ENODELIM, WHARF_EWOULDBLOCK, WHARF_EBUSY, WHARF_ECANCELLED,
                          WHARF_ETIMEDOUT, WHARF_ENOTSUP };

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        ck_assert_ptr_nonnull(wharf_errname(codes[i]));
        ck_assert_ptr_nonnull(wharf_strerror(codes[i]));
    }
    ck_assert_str_eq(wharf_errname(WHARF_EOF), "EndOfStream");
    ck_assert_str_eq(wharf_errname(WHARF_EBROKEN), "BrokenResource");
    ck_assert_ptr_null(wharf_errname(-ENOENT));
    ck_assert_str_eq(wharf_strerror(-ENOENT), strerror(ENOENT));
    ck_assert_ptr_nonnull(wharf_strerror(-99999));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("task");
    TCase *tc;

    tc = tcase_create("scheduler");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, tasks_start_in_spawn_order);
    tcase_add_test(tc, run_returns_main_result);
    tcase_add_test(tc, run_inside_a_task_is_refused);
    tcase_add_test(tc, ten_thousand_tasks_sleep_concurrently);
    tcase_add_test(tc, sleep_lasts_at_least_its_time);
    tcase_add_test(tc, deadlines_fire_in_order);
    tcase_add_test(tc, checkpoint_lets_others_run);
    tcase_add_test(tc, wait_all_tasks_blocked);
    tcase_add_test(tc, cancel_wakes_a_sleeper);
    suite_add_tcase(s, tc);

    tc = tcase_create("to_thread");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, to_thread_does_not_block_the_loop);
    tcase_add_test(tc, to_thread_finishes_despite_cancel);
    tcase_add_test(tc, to_thread_runs_jobs_in_parallel);
    suite_add_tcase(s, tc);

    tc = tcase_create("stacks");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, stack_size_is_configurable);
    tcase_add_test(tc, stack_overflow_is_reported);
    tcase_add_test(tc, stack_canary_is_checked);
    tcase_add_test(tc, idle_stacks_are_trimmed);
    tcase_add_test(tc, returning_inside_a_scope_is_reported);
    tcase_add_test(tc, returning_with_an_open_group_is_reported);
    tcase_add_test(tc, parked_task_wakes_at_a_read_edge);
    tcase_add_test(tc, parked_task_wakes_when_cancelled_or_at_its_deadline);
    tcase_add_test(tc, task_cancelled_as_it_parks_runs_on);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, error_names_and_texts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
