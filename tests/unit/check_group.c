/*
 * check_group.c: task groups and cancel scopes, ported from AnyIO's
 * tests/test_taskgroups.py (4.x semantics). Python's exceptions become
 * return codes: "raises Exception('foo')" is a task returning -EIO, an
 * ExceptionGroup is wharf_group_errors().
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "testutil.h"

/* Each test runs in its own forked child: plain globals are per test. */
static struct wharf_group *tg;
static int marker, completed;
static bool flag_a, flag_b;
static struct wharf_scope *shared_scope;

static int sleep_then_set(void *arg)
{
    int rc = wharf_sleep(arg ? *(double *)arg : 1.0);

    if (rc == 0)
        completed++;
    return rc;
}

static int fail_eio(void *arg)
{
    (void)arg;
    return -EIO;
}

static int fail_after_blocked(void *arg)
{
    int rc = wharf_wait_all_tasks_blocked();

    if (rc)
        return rc;
    return arg ? (int)(long)arg : -EIO;
}

static int cancel_group_when_blocked(void *arg)
{
    (void)arg;
    wharf_wait_all_tasks_blocked();
    wharf_group_cancel(tg);
    return 0;
}

/* ---- lifecycle ----------------------------------------------------------- */

static int t_already_closed(void *arg)
{
    tg = wharf_group_open();
    ck_assert_ptr_nonnull(tg);
    ck_assert_int_eq(wharf_group_exit(tg, 0), 0);
    TU_ASSERT_RC(wharf_group_spawn(tg, fail_eio, NULL), WHARF_ECLOSED);
    wharf_group_free(tg);
    return 0;
}
START_TEST(already_closed) { TU_RUN(t_already_closed, NULL); }
END_TEST

static int add_marker(void *arg)
{
    marker |= (int)(long)arg;
    return 0;
}

static int t_success(void *arg)
{
    tg = wharf_group_open();
    wharf_group_spawn(tg, add_marker, (void *)1L);
    wharf_group_spawn(tg, add_marker, (void *)2L);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(marker, 3);
    return 0;
}
START_TEST(success) { TU_RUN(t_success, NULL); }
END_TEST

static int spawn_sibling(void *arg)
{
    return wharf_group_spawn(tg, add_marker, (void *)4L);
}

static int t_start_soon_while_running(void *arg)
{
    tg = wharf_group_open();
    wharf_group_spawn(tg, spawn_sibling, NULL);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(marker, 4);
    return 0;
}
START_TEST(start_soon_while_running) { TU_RUN(t_start_soon_while_running, NULL); }
END_TEST

static int t_start_soon_after_error(void *arg)
{
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_group_exit(tg, -EDOM), -EDOM);
    TU_ASSERT_RC(wharf_group_spawn(tg, add_marker, NULL), WHARF_ECLOSED);
    wharf_group_free(tg);
    return 0;
}
START_TEST(start_soon_after_error) { TU_RUN(t_start_soon_after_error, NULL); }
END_TEST

static int started_with(void *arg, struct wharf_task_status *st)
{
    return wharf_task_started(st, arg);
}

static int t_start_already_closed(void *arg)
{
    void *v;

    tg = wharf_group_open();
    wharf_group_exit(tg, 0);
    TU_ASSERT_RC(wharf_group_start(tg, started_with, NULL, &v), WHARF_ECLOSED);
    wharf_group_free(tg);
    return 0;
}
START_TEST(start_already_closed) { TU_RUN(t_start_already_closed, NULL); }
END_TEST

static int t_start_value(void *arg)
{
    void *v = (void *)1;
    static char foo[] = "foo";

    tg = wharf_group_open();
    ck_assert_int_eq(wharf_group_start(tg, started_with, NULL, &v), 0);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(wharf_group_start(tg, started_with, foo, &v), 0);
    ck_assert_ptr_eq(v, foo);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    return 0;
}
START_TEST(start_no_value_and_with_value) { TU_RUN(t_start_value, NULL); }
END_TEST

static int started_twice(void *arg, struct wharf_task_status *st)
{
    ck_assert_int_eq(wharf_task_started(st, NULL), 0);
    TU_ASSERT_RC(wharf_task_started(st, NULL), WHARF_EINVAL);
    marker = 1;
    return 0;
}

static int t_start_called_twice(void *arg)
{
    tg = wharf_group_open();
    ck_assert_int_eq(wharf_group_start(tg, started_twice, NULL, NULL), 0);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(marker, 1);
    return 0;
}
START_TEST(start_called_twice) { TU_RUN(t_start_called_twice, NULL); }
END_TEST

static int crash_before_started(void *arg, struct wharf_task_status *st)
{
    wharf_sleep(0.01);
    return -EDOM;
}

static int t_start_crash_before(void *arg)
{
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_group_start(tg, crash_before_started, NULL, NULL), -EDOM);
    /* the error went to start(), not to the group */
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    return 0;
}
START_TEST(start_crash_before_started_call) { TU_RUN(t_start_crash_before, NULL); }
END_TEST

static int crash_after_started(void *arg, struct wharf_task_status *st)
{
    wharf_task_started(st, NULL);
    wharf_sleep(0.01);
    return -EDOM;
}

static int t_start_crash_after(void *arg)
{
    tg = wharf_group_open();
    ck_assert_int_eq(wharf_group_start(tg, crash_after_started, NULL, NULL), 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), -EDOM);
    return 0;
}
START_TEST(start_crash_after_started_call) { TU_RUN(t_start_crash_after, NULL); }
END_TEST

static int no_started_call(void *arg, struct wharf_task_status *st)
{
    return 0;
}

static int t_start_no_started_call(void *arg)
{
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_group_start(tg, no_started_call, NULL, NULL), -ECHILD);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    return 0;
}
START_TEST(start_no_started_call) { TU_RUN(t_start_no_started_call, NULL); }
END_TEST

static int start_sleeper(void *arg, struct wharf_task_status *st)
{
    flag_a = true;      /* started running */
    int rc = wharf_sleep(2);
    if (rc == 0)
        flag_b = true;  /* finished */
    return rc;
}

static int t_start_cancelled(void *arg)
{
    tg = wharf_group_open();
    wharf_group_cancel(tg);
    int rc = wharf_group_start(tg, start_sleeper, NULL, NULL);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    ck_assert_int_eq(wharf_group_close(tg, rc), 0);
    ck_assert(flag_a);
    ck_assert(!flag_b);
    return 0;
}
START_TEST(start_cancelled) { TU_RUN(t_start_cancelled, NULL); }
END_TEST

static int t_start_host_cancelled_by_scope(void *arg)
{
    struct wharf_scope sc;
    double t0 = wharf_clock();

    tg = wharf_group_open();
    wharf_move_on_after(&sc, 0.05);
    int rc = wharf_group_start(tg, start_sleeper, NULL, NULL);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    ck_assert_int_eq(wharf_scope_exit(&sc, rc), 0);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    ck_assert(flag_a && !flag_b);
    ck_assert(wharf_clock() - t0 < 1.0);
    return 0;
}
START_TEST(start_host_cancelled_by_scope) { TU_RUN(t_start_host_cancelled_by_scope, NULL); }
END_TEST

/* ---- errors and cancellation ---------------------------------------------- */

static int t_host_exception(void *arg)
{
    double d = 3.0;

    tg = wharf_group_open();
    wharf_group_spawn(tg, sleep_then_set, &d);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_group_close(tg, -EDOM), -EDOM);
    ck_assert_int_eq(completed, 0);
    return 0;
}
START_TEST(host_exception) { TU_RUN(t_host_exception, NULL); }
END_TEST

static int level_dummy(void *arg)
{
    marker = 1;
    int rc = wharf_checkpoint();   /* the group is cancelled by now */
    if (rc == 0)
        marker = 2;
    return rc;
}

static int t_level_cancellation(void *arg)
{
    tg = wharf_group_open();
    wharf_group_spawn(tg, level_dummy, NULL);
    ck_assert_int_eq(marker, 0);
    wharf_group_cancel(tg);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(marker, 1);
    return 0;
}
START_TEST(level_cancellation) { TU_RUN(t_level_cancellation, NULL); }
END_TEST

static int t_cancel_from_host(void *arg)
{
    double d = 5.0;
    double t0 = wharf_clock();

    tg = wharf_group_open();
    for (int i = 0; i < 10; i++)
        wharf_group_spawn(tg, sleep_then_set, &d);
    wharf_wait_all_tasks_blocked();
    wharf_group_cancel(tg);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(completed, 0);
    ck_assert(wharf_clock() - t0 < 1.0);
    return 0;
}
START_TEST(cancel) { TU_RUN(t_cancel_from_host, NULL); }
END_TEST

static int t_failing_child_cancels_host(void *arg)
{
    tg = wharf_group_open();
    wharf_group_spawn(tg, fail_after_blocked, NULL);
    int rc = wharf_sleep(0.5);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    TU_ASSERT_RC(wharf_group_close(tg, rc), -EIO);
    return 0;
}
START_TEST(failing_child_task_cancels_host) { TU_RUN(t_failing_child_cancels_host, NULL); }
END_TEST

static int t_failing_host_cancels_children(void *arg)
{
    double d = 1.0;

    tg = wharf_group_open();
    wharf_group_spawn(tg, sleep_then_set, &d);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_group_close(tg, -EIO), -EIO);
    ck_assert_int_eq(completed, 0);
    return 0;
}
START_TEST(failing_host_task_cancels_children) { TU_RUN(t_failing_host_cancels_children, NULL); }
END_TEST

static int t_exception_cancels_siblings(void *arg)
{
    double d = 1.0;
    int errs[4];

    tg = wharf_group_open();
    wharf_group_spawn(tg, sleep_then_set, &d);
    wharf_group_spawn(tg, fail_after_blocked, NULL);
    TU_ASSERT_RC(wharf_group_exit(tg, 0), -EIO);
    ck_assert_uint_eq(wharf_group_errors(tg, errs, 4), 1);
    ck_assert_int_eq(errs[0], -EIO);
    wharf_group_free(tg);
    ck_assert_int_eq(completed, 0);
    return 0;
}
START_TEST(exception_cancels_siblings) { TU_RUN(t_exception_cancels_siblings, NULL); }
END_TEST

static int child_with_scope(void *arg)
{
    struct wharf_scope sc;

    wharf_scope_enter(&sc, WHARF_FOREVER, 0);
    shared_scope = &sc;
    int rc = wharf_sleep(2);
    if (rc == 0)
        flag_a = true;
    rc = wharf_scope_exit(&sc, rc);
    shared_scope = NULL;
    return rc;
}

static int t_cancel_scope_in_another_task(void *arg)
{
    tg = wharf_group_open();
    wharf_group_spawn(tg, child_with_scope, NULL);
    while (!shared_scope)
        wharf_checkpoint();
    wharf_scope_cancel(shared_scope);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    ck_assert(!flag_a);
    return 0;
}
START_TEST(cancel_scope_in_another_task) { TU_RUN(t_cancel_scope_in_another_task, NULL); }
END_TEST

static int inner_group_sleeper(void *arg)
{
    struct wharf_group *g2 = wharf_group_open();
    int rc = wharf_sleep(1);

    rc = wharf_group_close(g2, rc);
    if (rc == 0)
        flag_b = true;      /* AnyIO: "assert False" here */
    return rc;
}

static int t_cancel_propagation(void *arg)
{
    tg = wharf_group_open();
    wharf_group_spawn(tg, inner_group_sleeper, NULL);
    wharf_checkpoint();
    wharf_group_cancel(tg);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    ck_assert(!flag_b);
    return 0;
}
START_TEST(cancel_propagation) { TU_RUN(t_cancel_propagation, NULL); }
END_TEST

static int t_cancel_twice(void *arg)
{
    for (int i = 0; i < 2; i++) {
        tg = wharf_group_open();
        wharf_group_spawn(tg, cancel_group_when_blocked, NULL);
        int rc = wharf_sleep(1);
        TU_ASSERT_RC(rc, WHARF_ECANCELLED);
        ck_assert_int_eq(wharf_group_close(tg, rc), 0);
    }
    return 0;
}
START_TEST(cancel_twice) { TU_RUN(t_cancel_twice, NULL); }
END_TEST

static int cascade_child(void *arg)
{
    double d = 1.0;
    struct wharf_group *g2 = wharf_group_open();

    wharf_group_spawn(g2, sleep_then_set, &d);
    int rc = wharf_group_close(g2, 0);
    if (rc)
        return rc;
    return -EIO;    /* AnyIO: raise Exception("foo"), never reached */
}

static int t_cancel_cascade(void *arg)
{
    tg = wharf_group_open();
    wharf_group_spawn(tg, cascade_child, NULL);
    wharf_wait_all_tasks_blocked();
    wharf_group_cancel(tg);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    return 0;
}
START_TEST(cancel_cascade) { TU_RUN(t_cancel_cascade, NULL); }
END_TEST

static int waiter_sets_flag(void *arg)
{
    int rc = wharf_sleep(5);

    flag_a = true;      /* AnyIO's finally: runs on cancellation too */
    return rc;
}

static int subgroup(void *arg)
{
    struct wharf_group *g2 = wharf_group_open();

    wharf_group_spawn(g2, waiter_sets_flag, NULL);
    return wharf_group_close(g2, 0);
}

static int t_cancel_exiting_task_group(void *arg)
{
    tg = wharf_group_open();
    wharf_group_spawn(tg, subgroup, NULL);
    wharf_wait_all_tasks_blocked();
    wharf_group_cancel(tg);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    ck_assert(flag_a);
    return 0;
}
START_TEST(cancel_exiting_task_group) { TU_RUN(t_cancel_exiting_task_group, NULL); }
END_TEST

static int t_cancel_before_entering_scope(void *arg)
{
    struct wharf_scope sc;

    /* C has no scope object before entry: a deadline in the past is it */
    wharf_scope_enter(&sc, 0.0, 0);
    int rc = wharf_checkpoint();
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    ck_assert_int_eq(wharf_scope_exit(&sc, rc), 0);
    ck_assert(wharf_scope_cancelled_caught(&sc));
    return 0;
}
START_TEST(cancel_before_entering_scope) { TU_RUN(t_cancel_before_entering_scope, NULL); }
END_TEST

static int error_after_sleep(void *arg)
{
    double *d = arg;

    wharf_sleep(*d);
    return d[1] == 1 ? -EIO : -EDOM;    /* AnyIO raises in `finally` */
}

static int t_exception_group_children(void *arg)
{
    double a[2] = { 0.01, 1 }, b[2] = { 0.01, 2 };
    int errs[4];

    tg = wharf_group_open();
    wharf_group_spawn(tg, error_after_sleep, a);
    wharf_group_spawn(tg, error_after_sleep, b);
    ck_assert_int_lt(wharf_group_exit(tg, 0), 0);
    ck_assert_uint_eq(wharf_group_errors(tg, errs, 4), 2);
    ck_assert((errs[0] == -EIO && errs[1] == -EDOM) || (errs[0] == -EDOM && errs[1] == -EIO));
    wharf_group_free(tg);
    return 0;
}
START_TEST(exception_group_children) { TU_RUN(t_exception_group_children, NULL); }
END_TEST

static int t_exception_group_host(void *arg)
{
    double a[2] = { 2.0, 2 };
    int errs[4];

    tg = wharf_group_open();
    wharf_group_spawn(tg, error_after_sleep, a);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_group_exit(tg, -EIO), -EIO);
    ck_assert_uint_eq(wharf_group_errors(tg, errs, 4), 2);
    ck_assert_int_eq(errs[0], -EIO);    /* host first, then the child */
    ck_assert_int_eq(errs[1], -EDOM);
    wharf_group_free(tg);
    return 0;
}
START_TEST(exception_group_host) { TU_RUN(t_exception_group_host, NULL); }
END_TEST

static int t_cancelled_child_not_an_error(void *arg)
{
    double d = 5;
    int errs[2];

    tg = wharf_group_open();
    for (int i = 0; i < 3; i++)
        wharf_group_spawn(tg, sleep_then_set, &d);
    wharf_checkpoint();
    wharf_group_cancel(tg);
    ck_assert_int_eq(wharf_group_exit(tg, 0), 0);
    ck_assert_uint_eq(wharf_group_errors(tg, errs, 2), 0);
    ck_assert_uint_eq(wharf_group_running(tg), 0);
    wharf_group_free(tg);
    return 0;
}
START_TEST(cancelled_children_are_not_errors) { TU_RUN(t_cancelled_child_not_an_error, NULL); }
END_TEST

/* ---- timeouts ---------------------------------------------------------------- */

static int t_fail_after(void *arg)
{
    struct wharf_scope sc;

    wharf_fail_after(&sc, 0.1);
    int rc = wharf_sleep(1);
    TU_ASSERT_RC(wharf_scope_exit(&sc, rc), WHARF_ETIMEDOUT);
    ck_assert(wharf_scope_cancel_called(&sc));
    return 0;
}
START_TEST(fail_after) { TU_RUN(t_fail_after, NULL); }
END_TEST

static int t_fail_after_no_timeout(void *arg)
{
    struct wharf_scope sc;

    wharf_scope_enter(&sc, WHARF_FOREVER, WHARF_SCOPE_FAIL);
    ck_assert(wharf_scope_deadline(&sc) >= WHARF_FOREVER);
    int rc = wharf_sleep(0.1);
    ck_assert_int_eq(wharf_scope_exit(&sc, rc), 0);
    ck_assert(!wharf_scope_cancel_called(&sc));
    return 0;
}
START_TEST(fail_after_no_timeout) { TU_RUN(t_fail_after_no_timeout, NULL); }
END_TEST

static int t_fail_after_after_cancellation(void *arg)
{
    struct wharf_scope sc;

    tg = wharf_group_open();
    wharf_group_cancel(tg);
    int rc = wharf_sleep(10);
    ck_assert_int_eq(wharf_group_close(tg, rc), 0);
    wharf_fail_after(&sc, 0.1);
    rc = wharf_sleep(0.5);
    if (rc == 0)
        flag_a = true;
    TU_ASSERT_RC(wharf_scope_exit(&sc, rc), WHARF_ETIMEDOUT);
    ck_assert(!flag_a);
    return 0;
}
START_TEST(fail_after_after_cancellation) { TU_RUN(t_fail_after_after_cancellation, NULL); }
END_TEST

static int t_fail_after_cancelled_before_deadline(void *arg)
{
    struct wharf_scope sc;

    wharf_fail_after(&sc, 1.0);
    wharf_scope_cancel(&sc);
    int rc = wharf_checkpoint();
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    /* cancelled by hand, not by the deadline: no timeout */
    ck_assert_int_eq(wharf_scope_exit(&sc, rc), 0);
    return 0;
}
START_TEST(fail_after_cancelled_before_deadline) { TU_RUN(t_fail_after_cancelled_before_deadline, NULL); }
END_TEST

static int t_move_on_after(void *arg)
{
    struct wharf_scope sc;
    double t0 = wharf_clock();

    wharf_move_on_after(&sc, 0.1);
    int rc = wharf_sleep(1);
    if (rc == 0)
        flag_a = true;
    ck_assert_int_eq(wharf_scope_exit(&sc, rc), 0);
    ck_assert(!flag_a);
    ck_assert(wharf_scope_cancel_called(&sc));
    ck_assert(wharf_scope_cancelled_caught(&sc));
    double dt = wharf_clock() - t0;
    ck_assert_msg(dt >= 0.1 && dt < 0.6, "move_on_after(0.1) took %.3f s", dt);
    return 0;
}
START_TEST(move_on_after) { TU_RUN(t_move_on_after, NULL); }
END_TEST

static int t_move_on_after_no_timeout(void *arg)
{
    struct wharf_scope sc;

    wharf_scope_enter(&sc, WHARF_FOREVER, 0);
    int rc = wharf_sleep(0.1);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(wharf_scope_exit(&sc, rc), 0);
    ck_assert(!wharf_scope_cancel_called(&sc));
    return 0;
}
START_TEST(move_on_after_no_timeout) { TU_RUN(t_move_on_after_no_timeout, NULL); }
END_TEST

static int t_nested_move_on_after(void *arg)
{
    struct wharf_scope outer, inner;
    int rc;

    wharf_move_on_after(&outer, 0.1);
    ck_assert(wharf_current_effective_deadline() == wharf_scope_deadline(&outer));
    wharf_move_on_after(&inner, 1);
    ck_assert(wharf_current_effective_deadline() == wharf_scope_deadline(&outer));
    rc = wharf_sleep(2);
    if (rc == 0)
        flag_a = true;
    rc = wharf_scope_exit(&inner, rc);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);     /* the outer scope's: not caught */
    if (rc == 0)
        flag_b = true;
    ck_assert_int_eq(wharf_scope_exit(&outer, rc), 0);
    ck_assert(!flag_a && !flag_b);
    ck_assert(wharf_scope_cancel_called(&outer));
    ck_assert(!wharf_scope_cancel_called(&inner));
    return 0;
}
START_TEST(nested_move_on_after) { TU_RUN(t_nested_move_on_after, NULL); }
END_TEST

static int t_deadline_reached_on_start(void *arg)
{
    struct wharf_scope sc;

    wharf_move_on_after(&sc, 0);
    int rc = wharf_checkpoint();
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    ck_assert_int_eq(wharf_scope_exit(&sc, rc), 0);
    ck_assert(wharf_scope_cancel_called(&sc));
    return 0;
}
START_TEST(deadline_reached_on_start) { TU_RUN(t_deadline_reached_on_start, NULL); }
END_TEST

static int t_deadline_moved(void *arg)
{
    struct wharf_scope sc;

    wharf_fail_after(&sc, 0.1);
    wharf_scope_set_deadline(&sc, wharf_scope_deadline(&sc) + 0.3);
    int rc = wharf_sleep(0.2);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(wharf_scope_exit(&sc, rc), 0);
    /* and moved earlier: fires sooner */
    double t0 = wharf_clock();
    wharf_move_on_after(&sc, 5);
    wharf_scope_set_deadline(&sc, wharf_clock() + 0.05);
    rc = wharf_sleep(5);
    ck_assert_int_eq(wharf_scope_exit(&sc, rc), 0);
    ck_assert(wharf_clock() - t0 < 1.0);
    return 0;
}
START_TEST(deadline_moved) { TU_RUN(t_deadline_moved, NULL); }
END_TEST

static int killer(void *arg)
{
    wharf_wait_all_tasks_blocked();
    wharf_scope_cancel(arg);
    return 0;
}

static int t_nested_fail_after(void *arg)
{
    struct wharf_scope outer, middle, fa;
    int rc;

    tg = wharf_group_open();
    wharf_scope_enter(&outer, WHARF_FOREVER, 0);
    wharf_scope_enter(&middle, WHARF_FOREVER, 0);
    wharf_group_spawn(tg, killer, &outer);
    wharf_fail_after(&fa, 1);
    rc = wharf_sleep(2);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    rc = wharf_scope_exit(&fa, rc);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);     /* not a timeout, not caught */
    rc = wharf_scope_exit(&middle, rc);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    rc = wharf_scope_exit(&outer, rc);
    ck_assert_int_eq(rc, 0);
    ck_assert(wharf_scope_cancel_called(&outer));
    ck_assert_int_eq(wharf_group_close(tg, rc), 0);
    return 0;
}
START_TEST(nested_fail_after) { TU_RUN(t_nested_fail_after, NULL); }
END_TEST

/* ---- shielding and scopes ------------------------------------------------------ */

static int t_shielding(void *arg)
{
    struct wharf_scope inner;
    int rc;

    tg = wharf_group_open();
    wharf_group_spawn(tg, cancel_group_when_blocked, NULL);
    wharf_scope_enter(&inner, wharf_clock() + 10, WHARF_SCOPE_SHIELD);
    rc = wharf_sleep(0.1);
    if (rc == 0)
        flag_a = true;
    rc = wharf_scope_exit(&inner, rc);
    rc = wharf_sleep(1);
    if (rc == 0)
        flag_b = true;
    ck_assert_int_eq(wharf_group_exit(tg, rc), 0);
    ck_assert(flag_a);
    ck_assert(!flag_b);
    ck_assert(wharf_scope_cancel_called(wharf_group_scope(tg)));
    ck_assert(!wharf_scope_cancel_called(&inner));
    wharf_group_free(tg);
    return 0;
}
START_TEST(shielding) { TU_RUN(t_shielding, NULL); }
END_TEST

static int t_cancel_from_shielded_scope(void *arg)
{
    struct wharf_scope inner;

    tg = wharf_group_open();
    wharf_scope_enter(&inner, WHARF_FOREVER, WHARF_SCOPE_SHIELD);
    wharf_group_cancel(tg);
    ck_assert(wharf_current_effective_deadline() >= WHARF_FOREVER);
    ck_assert_int_eq(wharf_checkpoint(), 0);
    ck_assert_int_eq(wharf_scope_exit(&inner, 0), 0);
    int rc = wharf_checkpoint();
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    ck_assert_int_eq(wharf_group_close(tg, rc), 0);
    return 0;
}
START_TEST(cancel_from_shielded_scope) { TU_RUN(t_cancel_from_shielded_scope, NULL); }
END_TEST

static int t_cancel_shielded_scope(void *arg)
{
    struct wharf_scope sc;

    wharf_scope_enter(&sc, WHARF_FOREVER, WHARF_SCOPE_SHIELD);
    wharf_scope_cancel(&sc);
    ck_assert(wharf_current_effective_deadline() <= -WHARF_FOREVER);
    int rc = wharf_checkpoint();
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    ck_assert_int_eq(wharf_scope_exit(&sc, rc), 0);
    return 0;
}
START_TEST(cancel_shielded_scope) { TU_RUN(t_cancel_shielded_scope, NULL); }
END_TEST

static int t_shielded_cleanup_after_cancel(void *arg)
{
    struct wharf_scope outer, shield;

    wharf_scope_enter(&outer, WHARF_FOREVER, 0);
    wharf_scope_cancel(&outer);
    int rc = wharf_checkpoint();
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    /* cleanup that must still talk to a peer runs shielded */
    ck_assert(wharf_current_effective_deadline() <= -WHARF_FOREVER);
    wharf_scope_enter(&shield, WHARF_FOREVER, WHARF_SCOPE_SHIELD);
    ck_assert(wharf_current_effective_deadline() >= WHARF_FOREVER);
    ck_assert_int_eq(wharf_sleep(0.01), 0);
    ck_assert_int_eq(wharf_scope_exit(&shield, 0), 0);
    ck_assert(wharf_current_effective_deadline() <= -WHARF_FOREVER);
    ck_assert_int_eq(wharf_scope_exit(&outer, rc), 0);
    return 0;
}
START_TEST(shielded_cleanup_after_cancel) { TU_RUN(t_shielded_cleanup_after_cancel, NULL); }
END_TEST

static int t_shielded_deadline(void *arg)
{
    struct wharf_scope a, b, c;

    wharf_move_on_after(&a, 10);
    wharf_scope_enter(&b, WHARF_FOREVER, WHARF_SCOPE_SHIELD);
    wharf_move_on_after(&c, 1000);
    ck_assert(wharf_current_effective_deadline() - wharf_clock() > 900);
    wharf_scope_exit(&c, 0);
    wharf_scope_exit(&b, 0);
    wharf_scope_exit(&a, 0);
    return 0;
}
START_TEST(shielded_deadline) { TU_RUN(t_shielded_deadline, NULL); }
END_TEST

static int t_nested_shield(void *arg)
{
    struct wharf_scope sc, shield, fa;
    int rc;

    tg = wharf_group_open();
    wharf_scope_enter(&sc, WHARF_FOREVER, 0);
    wharf_scope_enter(&shield, WHARF_FOREVER, WHARF_SCOPE_SHIELD);
    wharf_group_spawn(tg, killer, &sc);
    wharf_fail_after(&fa, 0.2);
    rc = wharf_sleep(2);
    rc = wharf_scope_exit(&fa, rc);
    TU_ASSERT_RC(rc, WHARF_ETIMEDOUT);
    rc = wharf_scope_exit(&shield, rc);
    rc = wharf_scope_exit(&sc, rc);
    TU_ASSERT_RC(wharf_group_close(tg, rc), WHARF_ETIMEDOUT);
    return 0;
}
START_TEST(nested_shield) { TU_RUN(t_nested_shield, NULL); }
END_TEST

static int t_triple_nested_shield_outer(void *arg)
{
    struct wharf_scope s1, s2, s3;
    int rc;

    wharf_scope_enter(&s1, WHARF_FOREVER, 0);
    wharf_scope_enter(&s2, WHARF_FOREVER, 0);
    wharf_scope_enter(&s3, WHARF_FOREVER, WHARF_SCOPE_SHIELD);
    wharf_scope_cancel(&s1);
    wharf_scope_cancel(&s2);
    ck_assert_int_eq(wharf_scope_exit(&s3, 0), 0);
    rc = wharf_checkpoint();
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    rc = wharf_scope_exit(&s2, rc);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    ck_assert_int_eq(wharf_scope_exit(&s1, rc), 0);
    return 0;
}
START_TEST(triple_nested_shield_checkpoint_in_outer) { TU_RUN(t_triple_nested_shield_outer, NULL); }
END_TEST

static int t_triple_nested_shield_middle(void *arg)
{
    struct wharf_scope s1, s2, s3;
    int rc;

    wharf_scope_enter(&s1, WHARF_FOREVER, 0);
    wharf_scope_enter(&s2, WHARF_FOREVER, 0);
    wharf_scope_enter(&s3, WHARF_FOREVER, WHARF_SCOPE_SHIELD);
    wharf_scope_cancel(&s1);
    wharf_scope_cancel(&s3);
    ck_assert_int_eq(wharf_scope_exit(&s3, 0), 0);
    rc = wharf_checkpoint();
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    rc = wharf_scope_exit(&s2, rc);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    ck_assert_int_eq(wharf_scope_exit(&s1, rc), 0);
    return 0;
}
START_TEST(triple_nested_shield_checkpoint_in_middle) { TU_RUN(t_triple_nested_shield_middle, NULL); }
END_TEST

static int t_cancelled_not_caught(void *arg)
{
    struct wharf_scope sc;

    wharf_scope_enter(&sc, WHARF_FOREVER, 0);
    wharf_scope_cancel(&sc);
    ck_assert_int_eq(wharf_scope_exit(&sc, 0), 0);
    ck_assert(wharf_scope_cancel_called(&sc));
    ck_assert(!wharf_scope_cancelled_caught(&sc));
    return 0;
}
START_TEST(cancelled_not_caught) { TU_RUN(t_cancelled_not_caught, NULL); }
END_TEST

static int t_cancelled_scope_based_checkpoint(void *arg)
{
    struct wharf_scope outer, inner;
    int rc;

    wharf_scope_enter(&outer, WHARF_FOREVER, 0);
    wharf_scope_cancel(&outer);
    wharf_scope_enter(&inner, WHARF_FOREVER, 0);
    wharf_scope_cancel(&inner);
    rc = wharf_sleep(WHARF_FOREVER);
    rc = wharf_scope_exit(&inner, rc);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    ck_assert_int_eq(wharf_scope_exit(&outer, rc), 0);
    ck_assert(!wharf_scope_cancelled_caught(&inner));
    ck_assert(wharf_scope_cancelled_caught(&outer));
    return 0;
}
START_TEST(cancelled_scope_based_checkpoint) { TU_RUN(t_cancelled_scope_based_checkpoint, NULL); }
END_TEST

static int t_beyond_origin_unshielded(void *arg)
{
    struct wharf_scope outer, inner;
    int rc;

    wharf_scope_enter(&outer, WHARF_FOREVER, 0);
    wharf_scope_enter(&inner, WHARF_FOREVER, 0);
    wharf_scope_cancel(&inner);
    rc = wharf_checkpoint();
    wharf_scope_cancel(&outer);
    rc = wharf_scope_exit(&inner, rc);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    ck_assert_int_eq(wharf_scope_exit(&outer, rc), 0);
    ck_assert(!wharf_scope_cancelled_caught(&inner));
    ck_assert(wharf_scope_cancelled_caught(&outer));
    return 0;
}
START_TEST(cancelled_raises_beyond_origin_unshielded) { TU_RUN(t_beyond_origin_unshielded, NULL); }
END_TEST

static int t_beyond_origin_shielded(void *arg)
{
    struct wharf_scope outer, inner;
    int rc;

    wharf_scope_enter(&outer, WHARF_FOREVER, 0);
    wharf_scope_enter(&inner, WHARF_FOREVER, WHARF_SCOPE_SHIELD);
    wharf_scope_cancel(&inner);
    rc = wharf_checkpoint();
    wharf_scope_cancel(&outer);
    rc = wharf_scope_exit(&inner, rc);
    ck_assert_int_eq(rc, 0);
    flag_a = true;      /* code between the scopes runs */
    ck_assert_int_eq(wharf_scope_exit(&outer, rc), 0);
    ck_assert(flag_a);
    ck_assert(wharf_scope_cancelled_caught(&inner));
    ck_assert(!wharf_scope_cancelled_caught(&outer));
    return 0;
}
START_TEST(cancelled_raises_beyond_origin_shielded) { TU_RUN(t_beyond_origin_shielded, NULL); }
END_TEST

static int outer_task(void *arg)
{
    flag_a = true;
    return 0;
}

static int t_empty_taskgroup_yields(void *arg)
{
    struct wharf_group *outer = wharf_group_open();
    struct wharf_group *inner = wharf_group_open();

    wharf_group_spawn(outer, outer_task, NULL);
    ck_assert_int_eq(wharf_group_close(inner, 0), 0);
    ck_assert(flag_a);
    ck_assert_int_eq(wharf_group_close(outer, 0), 0);
    return 0;
}
START_TEST(empty_taskgroup_contains_yield_point) { TU_RUN(t_empty_taskgroup_yields, NULL); }
END_TEST

/* ---- misuse: an error code, never a crash ------------------------------------ */

static int t_misuse(void *arg)
{
    struct wharf_scope a, b;

    TU_ASSERT_RC(wharf_group_spawn(NULL, fail_eio, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_group_start(NULL, started_with, NULL, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_group_exit(NULL, 0), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_group_close(NULL, 0), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_task_started(NULL, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_scope_enter(NULL, 1, 0), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_scope_exit(NULL, 0), WHARF_EINVAL);
    wharf_group_cancel(NULL);
    wharf_scope_cancel(NULL);
    wharf_group_free(NULL);
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(tg, NULL, NULL), WHARF_EINVAL);
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    /* exiting out of order is refused and changes nothing */
    wharf_scope_enter(&a, WHARF_FOREVER, 0);
    wharf_scope_enter(&b, WHARF_FOREVER, 0);
    TU_ASSERT_RC(wharf_scope_exit(&a, 0), WHARF_EINVAL);
    ck_assert_int_eq(wharf_scope_exit(&b, 0), 0);
    ck_assert_int_eq(wharf_scope_exit(&a, 0), 0);
    /* twice */
    TU_ASSERT_RC(wharf_scope_exit(&a, 0), WHARF_EINVAL);
    /* cancelling an exited scope does nothing */
    wharf_scope_cancel(&a);
    ck_assert_int_eq(wharf_checkpoint(), 0);
    return 0;
}
START_TEST(misuse) { TU_RUN(t_misuse, NULL); }
END_TEST

static int frees_the_group(void *arg)
{
    wharf_group_free(tg);   /* not the host: refused, nothing freed */
    marker = 1;
    return 0;
}

static int t_free_by_non_host(void *arg)
{
    double d = 0.05;

    tg = wharf_group_open();
    wharf_group_spawn(tg, sleep_then_set, &d);
    wharf_group_spawn(tg, frees_the_group, NULL);
    /* the group is intact: its children finish and it closes normally */
    ck_assert_int_eq(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(marker, 1);
    ck_assert_int_eq(completed, 1);
    return 0;
}
START_TEST(free_by_a_non_host_is_refused) { TU_RUN(t_free_by_non_host, NULL); }
END_TEST

START_TEST(outside_a_task)
{
    struct wharf_scope sc;

    ck_assert_ptr_null(wharf_group_open());
    TU_ASSERT_RC(wharf_scope_enter(&sc, 1, 0), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_sleep(0.01), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_checkpoint(), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_run(NULL, NULL), WHARF_EINVAL);
    ck_assert(!wharf_in_task());
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("group");
    TCase *tc;

    tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, already_closed);
    tcase_add_test(tc, success);
    tcase_add_test(tc, start_soon_while_running);
    tcase_add_test(tc, start_soon_after_error);
    tcase_add_test(tc, start_already_closed);
    tcase_add_test(tc, start_no_value_and_with_value);
    tcase_add_test(tc, start_called_twice);
    tcase_add_test(tc, start_crash_before_started_call);
    tcase_add_test(tc, start_crash_after_started_call);
    tcase_add_test(tc, start_no_started_call);
    tcase_add_test(tc, start_cancelled);
    tcase_add_test(tc, start_host_cancelled_by_scope);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, host_exception);
    tcase_add_test(tc, level_cancellation);
    tcase_add_test(tc, cancel);
    tcase_add_test(tc, failing_child_task_cancels_host);
    tcase_add_test(tc, failing_host_task_cancels_children);
    tcase_add_test(tc, exception_cancels_siblings);
    tcase_add_test(tc, cancel_scope_in_another_task);
    tcase_add_test(tc, cancel_propagation);
    tcase_add_test(tc, cancel_twice);
    tcase_add_test(tc, cancel_cascade);
    tcase_add_test(tc, cancel_exiting_task_group);
    tcase_add_test(tc, cancel_before_entering_scope);
    tcase_add_test(tc, exception_group_children);
    tcase_add_test(tc, exception_group_host);
    tcase_add_test(tc, cancelled_children_are_not_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("timeouts");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, fail_after);
    tcase_add_test(tc, fail_after_no_timeout);
    tcase_add_test(tc, fail_after_after_cancellation);
    tcase_add_test(tc, fail_after_cancelled_before_deadline);
    tcase_add_test(tc, move_on_after);
    tcase_add_test(tc, move_on_after_no_timeout);
    tcase_add_test(tc, nested_move_on_after);
    tcase_add_test(tc, deadline_reached_on_start);
    tcase_add_test(tc, deadline_moved);
    tcase_add_test(tc, nested_fail_after);
    suite_add_tcase(s, tc);

    tc = tcase_create("shielding");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, shielding);
    tcase_add_test(tc, cancel_from_shielded_scope);
    tcase_add_test(tc, cancel_shielded_scope);
    tcase_add_test(tc, shielded_cleanup_after_cancel);
    tcase_add_test(tc, shielded_deadline);
    tcase_add_test(tc, nested_shield);
    tcase_add_test(tc, triple_nested_shield_checkpoint_in_outer);
    tcase_add_test(tc, triple_nested_shield_checkpoint_in_middle);
    tcase_add_test(tc, cancelled_not_caught);
    tcase_add_test(tc, cancelled_scope_based_checkpoint);
    tcase_add_test(tc, cancelled_raises_beyond_origin_unshielded);
    tcase_add_test(tc, cancelled_raises_beyond_origin_shielded);
    tcase_add_test(tc, empty_taskgroup_contains_yield_point);
    suite_add_tcase(s, tc);

    tc = tcase_create("misuse");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, misuse);
    tcase_add_test(tc, free_by_a_non_host_is_refused);
    tcase_add_test(tc, outside_a_task);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
