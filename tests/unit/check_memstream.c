/*
 * check_memstream.c: memory object streams, ported from AnyIO's
 * tests/streams/test_memory.py (4.x semantics), plus each memory-stream
 * sentence of DESIGN.md, cancel/send churn, bad input, the byte mode and the
 * in-memory pair. Python's exceptions become return codes (EndOfStream is
 * WHARF_EOF, an ExceptionGroup is wharf_group_errors()); the stream ends'
 * multi-worker behaviour is in check_worker.c.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "testutil.h"

/* Each test runs in its own forked child: plain globals are per test. */
static struct wharf_stream *snd, *rcv;
static struct wharf_group *tg;
static void *got[64];
static int ngot;
static char hello[] = "hello", anyio[] = "anyio", world[] = "world";

static void open_streams(long max)
{
    TU_ASSERT_RC(wharf_memstream_new(max, NULL, &snd, &rcv), 0);
}

static void free_streams(void)
{
    wharf_free(snd);
    wharf_free(rcv);
}

/* Receives one item from rcv into got[]. */
static int receive_one(void *arg)
{
    void *item;
    int rc = wharf_receive_item(arg ? arg : rcv, &item);

    if (rc == 0)
        got[ngot++] = item;
    return rc;
}

static int receive_two(void *arg)
{
    int rc = receive_one(arg);

    return rc ? rc : receive_one(arg);
}

static int send_one(void *item)
{
    return wharf_send_item(snd, item);
}

static struct wharf_memstream_stats stats_of(struct wharf_stream *s)
{
    struct wharf_memstream_stats st;

    TU_ASSERT_RC(wharf_memstream_statistics(s, &st), 0);
    return st;
}

/* ---- buffer size --------------------------------------------------------- */

static int t_negative_max_buffer(void *arg)
{
    snd = rcv = NULL;
    TU_ASSERT_RC(wharf_memstream_new(-1, NULL, &snd, &rcv), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_memstream_new(LONG_MIN, NULL, &snd, &rcv), WHARF_EINVAL);
    ck_assert_ptr_null(snd);
    ck_assert_ptr_null(rcv);
    return 0;
}
START_TEST(negative_max_buffer) { TU_RUN(t_negative_max_buffer, NULL); }
END_TEST

/* Python's "not an integer or math.inf" has no C form; the C misuse is a
 * missing out-pointer, and math.inf is WHARF_UNBOUNDED. */
static int t_invalid_max_buffer(void *arg)
{
    TU_ASSERT_RC(wharf_memstream_new(1, NULL, NULL, &rcv), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_memstream_new(1, NULL, &snd, NULL), WHARF_EINVAL);
    open_streams(WHARF_UNBOUNDED);
    ck_assert_int_eq(stats_of(snd).max_buffer_size, WHARF_UNBOUNDED);
    free_streams();
    return 0;
}
START_TEST(invalid_max_buffer) { TU_RUN(t_invalid_max_buffer, NULL); }
END_TEST

/* ---- transfer and order ----------------------------------------------------- */

static int t_receive_then_send(void *arg)
{
    open_streams(0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, receive_two, NULL);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_send_item(snd, hello), 0);
    TU_ASSERT_RC(wharf_send_item(snd, anyio), 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(ngot, 2);
    ck_assert_ptr_eq(got[0], hello);
    ck_assert_ptr_eq(got[1], anyio);
    free_streams();
    return 0;
}
START_TEST(receive_then_send) { TU_RUN(t_receive_then_send, NULL); }
END_TEST

static int t_receive_then_send_nowait(void *arg)
{
    open_streams(0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, receive_one, NULL);
    wharf_group_spawn(tg, receive_one, NULL);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), 0);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, anyio), 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(ngot, 2);
    /* FIFO: the receiver that waited first got the first item */
    ck_assert_ptr_eq(got[0], hello);
    ck_assert_ptr_eq(got[1], anyio);
    free_streams();
    return 0;
}
START_TEST(receive_then_send_nowait) { TU_RUN(t_receive_then_send_nowait, NULL); }
END_TEST

static int t_send_then_receive_nowait(void *arg)
{
    void *item = NULL;

    open_streams(0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, send_one, hello);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), 0);
    ck_assert_ptr_eq(item, hello);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    free_streams();
    return 0;
}
START_TEST(send_then_receive_nowait) { TU_RUN(t_send_then_receive_nowait, NULL); }
END_TEST

static int t_send_is_unblocked_after_receive_nowait(void *arg)
{
    struct wharf_scope sc;
    void *item = NULL;

    open_streams(1);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), 0);
    wharf_fail_after(&sc, 1.0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, send_one, anyio);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), 0);
    ck_assert_ptr_eq(item, hello);
    TU_ASSERT_RC(wharf_scope_exit(&sc, wharf_group_close(tg, 0)), 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), 0);
    ck_assert_ptr_eq(item, anyio);
    free_streams();
    return 0;
}
START_TEST(send_is_unblocked_after_receive_nowait)
{
    TU_RUN(t_send_is_unblocked_after_receive_nowait, NULL);
}
END_TEST

static int t_send_nowait_then_receive_nowait(void *arg)
{
    void *item = NULL;

    open_streams(2);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), 0);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, anyio), 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), 0);
    ck_assert_ptr_eq(item, hello);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), 0);
    ck_assert_ptr_eq(item, anyio);
    free_streams();
    return 0;
}
START_TEST(send_nowait_then_receive_nowait) { TU_RUN(t_send_nowait_then_receive_nowait, NULL); }
END_TEST

/* async for: receive until WHARF_EOF */
static int receive_all(void *arg)
{
    int rc;

    while ((rc = receive_one(arg)) == 0)
        ;
    return rc == WHARF_EOF ? 0 : rc;
}

static int t_iterate(void *arg)
{
    open_streams(0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, receive_all, NULL);
    TU_ASSERT_RC(wharf_send_item(snd, hello), 0);
    TU_ASSERT_RC(wharf_send_item(snd, anyio), 0);
    TU_ASSERT_RC(wharf_close(snd), 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(ngot, 2);
    ck_assert_ptr_eq(got[0], hello);
    ck_assert_ptr_eq(got[1], anyio);
    free_streams();
    return 0;
}
START_TEST(iterate) { TU_RUN(t_iterate, NULL); }
END_TEST

/* ---- closing ------------------------------------------------------------------ */

static int t_receive_send_closed_send_stream(void *arg)
{
    void *item;

    open_streams(0);
    TU_ASSERT_RC(wharf_close(snd), 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), WHARF_EOF);
    TU_ASSERT_RC(wharf_send_item(snd, NULL), WHARF_ECLOSED);
    free_streams();
    return 0;
}
START_TEST(receive_send_closed_send_stream) { TU_RUN(t_receive_send_closed_send_stream, NULL); }
END_TEST

static int t_receive_send_closed_receive_stream(void *arg)
{
    void *item;

    open_streams(0);
    TU_ASSERT_RC(wharf_close(rcv), 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send_item(snd, NULL), WHARF_EBROKEN);
    free_streams();
    return 0;
}
START_TEST(receive_send_closed_receive_stream)
{
    TU_RUN(t_receive_send_closed_receive_stream, NULL);
}
END_TEST

static int close_send_after(void *arg)
{
    return wharf_close(snd);
}

static int t_close_send_while_receiving(void *arg)
{
    int errs[4];

    open_streams(1);
    tg = wharf_group_open();
    wharf_group_spawn(tg, receive_one, NULL);
    wharf_wait_all_tasks_blocked();
    close_send_after(NULL);
    TU_ASSERT_RC(wharf_group_exit(tg, 0), WHARF_EOF);
    ck_assert_int_eq(wharf_group_errors(tg, errs, 4), 1);
    TU_ASSERT_RC(errs[0], WHARF_EOF);
    wharf_group_free(tg);
    free_streams();
    return 0;
}
START_TEST(close_send_while_receiving) { TU_RUN(t_close_send_while_receiving, NULL); }
END_TEST

/* A NULL item, as AnyIO's regression test for #731. */
static int t_close_receive_while_sending(void *arg)
{
    int errs[4];

    open_streams(0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, send_one, NULL);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_close(rcv), 0);
    TU_ASSERT_RC(wharf_group_exit(tg, 0), WHARF_EBROKEN);
    ck_assert_int_eq(wharf_group_errors(tg, errs, 4), 1);
    TU_ASSERT_RC(errs[0], WHARF_EBROKEN);
    wharf_group_free(tg);
    free_streams();
    return 0;
}
START_TEST(close_receive_while_sending) { TU_RUN(t_close_receive_while_sending, NULL); }
END_TEST

static int t_receive_after_send_closed(void *arg)
{
    void *item = NULL;

    open_streams(1);
    TU_ASSERT_RC(wharf_send_item(snd, hello), 0);
    TU_ASSERT_RC(wharf_close(snd), 0);
    TU_ASSERT_RC(wharf_receive_item(rcv, &item), 0);
    ck_assert_ptr_eq(item, hello);
    free_streams();
    return 0;
}
START_TEST(receive_after_send_closed) { TU_RUN(t_receive_after_send_closed, NULL); }
END_TEST

static int send_then_close(void *arg)
{
    int rc = wharf_send_item(snd, (void *)"test");

    wharf_close(snd);
    return rc;
}

static int receive_then_close(void *arg)
{
    void *item = NULL;
    int rc = wharf_receive_item(rcv, &item);

    wharf_close(rcv);
    ck_assert_str_eq((char *)item, "test");
    return rc;
}

static int t_close_receive_after_send(void *arg)
{
    open_streams(0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, send_then_close, NULL);
    wharf_group_spawn(tg, receive_then_close, NULL);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    free_streams();
    return 0;
}
START_TEST(close_receive_after_send) { TU_RUN(t_close_receive_after_send, NULL); }
END_TEST

static int t_sync_close(void *arg)
{
    void *item;

    open_streams(1);
    TU_ASSERT_RC(wharf_close(snd), 0);
    TU_ASSERT_RC(wharf_close(rcv), 0);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, NULL), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), WHARF_ECLOSED);
    free_streams();
    return 0;
}
START_TEST(sync_close) { TU_RUN(t_sync_close, NULL); }
END_TEST

/* ---- cancellation --------------------------------------------------------------- */

static int t_cancel_receive(void *arg)
{
    open_streams(0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, receive_one, NULL);
    wharf_wait_all_tasks_blocked();
    wharf_group_cancel(tg);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), WHARF_EWOULDBLOCK);
    free_streams();
    return 0;
}
START_TEST(cancel_receive) { TU_RUN(t_cancel_receive, NULL); }
END_TEST

static int t_cancel_send(void *arg)
{
    void *item;

    open_streams(0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, send_one, hello);
    wharf_wait_all_tasks_blocked();
    wharf_group_cancel(tg);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), WHARF_EWOULDBLOCK);
    free_streams();
    return 0;
}
START_TEST(cancel_send) { TU_RUN(t_cancel_send, NULL); }
END_TEST

static int t_receive_when_cancelled(void *arg)
{
    struct wharf_scope sc;
    void *item = NULL;

    open_streams(0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, send_one, hello);
    wharf_wait_all_tasks_blocked();
    wharf_group_spawn(tg, send_one, world);
    wharf_wait_all_tasks_blocked();
    wharf_scope_enter(&sc, WHARF_FOREVER, 0);
    wharf_scope_cancel(&sc);
    TU_ASSERT_RC(wharf_receive_item(rcv, &item), WHARF_ECANCELLED);
    ck_assert_ptr_null(item);
    TU_ASSERT_RC(wharf_scope_exit(&sc, WHARF_ECANCELLED), 0);
    TU_ASSERT_RC(wharf_receive_item(rcv, &item), 0);
    ck_assert_ptr_eq(item, hello);
    TU_ASSERT_RC(wharf_receive_item(rcv, &item), 0);
    ck_assert_ptr_eq(item, world);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    free_streams();
    return 0;
}
START_TEST(receive_when_cancelled) { TU_RUN(t_receive_when_cancelled, NULL); }
END_TEST

static int t_send_when_cancelled(void *arg)
{
    struct wharf_scope sc;

    open_streams(0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, receive_one, NULL);
    wharf_scope_enter(&sc, WHARF_FOREVER, 0);
    wharf_scope_cancel(&sc);
    TU_ASSERT_RC(wharf_send_item(snd, hello), WHARF_ECANCELLED);
    TU_ASSERT_RC(wharf_scope_exit(&sc, WHARF_ECANCELLED), 0);
    TU_ASSERT_RC(wharf_send_item(snd, world), 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(ngot, 1);
    ck_assert_ptr_eq(got[0], world);
    free_streams();
    return 0;
}
START_TEST(send_when_cancelled) { TU_RUN(t_send_when_cancelled, NULL); }
END_TEST

/* AnyIO's scoped_receiver: receives in a scope it hands to start(). */
static int scoped_receiver(void *arg, struct wharf_task_status *status)
{
    struct wharf_scope sc;
    int rc;

    wharf_scope_enter(&sc, WHARF_FOREVER, 0);
    wharf_task_started(status, &sc);
    rc = receive_one(arg);
    rc = wharf_scope_exit(&sc, rc);
    ck_assert(wharf_scope_cancel_called(&sc));
    return rc;
}

static int t_cancel_during_receive(void *arg)
{
    struct wharf_scope *sc = NULL;

    open_streams(0);
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_group_start(tg, scoped_receiver, NULL, (void **)&sc), 0);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), 0);
    wharf_scope_cancel(sc);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(ngot, 1);
    ck_assert_ptr_eq(got[0], hello);
    free_streams();
    return 0;
}
START_TEST(cancel_during_receive) { TU_RUN(t_cancel_during_receive, NULL); }
END_TEST

static int t_cancel_during_receive_buffered(void *arg)
{
    struct wharf_scope *sc = NULL;
    void *item = NULL;

    open_streams(1);
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_group_start(tg, scoped_receiver, NULL, (void **)&sc), 0);
    wharf_wait_all_tasks_blocked();
    wharf_scope_cancel(sc);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(ngot, 0);
    /* the item did not go to the cancelled task */
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), 0);
    ck_assert_ptr_eq(item, hello);
    free_streams();
    return 0;
}
START_TEST(cancel_during_receive_buffered) { TU_RUN(t_cancel_during_receive_buffered, NULL); }
END_TEST

/* ---- clones and counters ------------------------------------------------------ */

static int t_clone(void *arg)
{
    struct wharf_stream *snd2, *rcv2;
    void *item = NULL;

    open_streams(1);
    TU_ASSERT_RC(wharf_clone(snd, &snd2), 0);
    TU_ASSERT_RC(wharf_clone(rcv, &rcv2), 0);
    TU_ASSERT_RC(wharf_close(snd), 0);
    TU_ASSERT_RC(wharf_close(rcv), 0);
    TU_ASSERT_RC(wharf_send_item_nowait(snd2, hello), 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv2, &item), 0);
    ck_assert_ptr_eq(item, hello);
    free_streams();
    wharf_free(snd2);
    wharf_free(rcv2);
    return 0;
}
START_TEST(clone) { TU_RUN(t_clone, NULL); }
END_TEST

static int t_clone_closed(void *arg)
{
    struct wharf_stream *c = NULL;

    open_streams(1);
    wharf_close(snd);
    wharf_close(rcv);
    TU_ASSERT_RC(wharf_clone(snd, &c), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_clone(rcv, &c), WHARF_ECLOSED);
    ck_assert_ptr_null(c);
    free_streams();
    return 0;
}
START_TEST(clone_closed) { TU_RUN(t_clone_closed, NULL); }
END_TEST

static void expect_stats(struct wharf_stream *s, size_t used, size_t wsend, size_t wrecv)
{
    struct wharf_memstream_stats st = stats_of(s);

    ck_assert_uint_eq(st.current_buffer_used, used);
    ck_assert_uint_eq(st.tasks_waiting_send, wsend);
    ck_assert_uint_eq(st.tasks_waiting_receive, wrecv);
}

static void receive_nowait_ok(void)
{
    void *item;

    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), 0);
}

static void statistics_round1(struct wharf_stream *s)
{
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_send_item_nowait(snd, NULL), 0);
    expect_stats(s, 1, 0, 0);
    wharf_group_spawn(tg, send_one, NULL);
    wharf_wait_all_tasks_blocked();
    expect_stats(s, 1, 1, 0);
    receive_nowait_ok();
    expect_stats(s, 1, 0, 0);
    receive_nowait_ok();
    expect_stats(s, 0, 0, 0);
    wharf_group_spawn(tg, receive_one, NULL);
    wharf_wait_all_tasks_blocked();
    expect_stats(s, 0, 0, 1);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, NULL), 0);
    expect_stats(s, 0, 0, 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
}

static void statistics_round2(struct wharf_stream *s)
{
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_send_item_nowait(snd, NULL), 0);
    expect_stats(s, 1, 0, 0);
    for (int i = 0; i < 3; i++)
        wharf_group_spawn(tg, send_one, NULL);
    wharf_wait_all_tasks_blocked();
    expect_stats(s, 1, 3, 0);
    for (int i = 2; i >= 0; i--) {
        receive_nowait_ok();
        expect_stats(s, 1, (size_t)i, 0);
    }
    receive_nowait_ok();
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    expect_stats(s, 0, 0, 0);
}

static int t_statistics(void *arg)
{
    struct wharf_stream *both[2];

    open_streams(1);
    both[0] = snd;
    both[1] = rcv;
    for (int i = 0; i < 2; i++) {
        struct wharf_memstream_stats st = stats_of(both[i]);

        ck_assert_int_eq(st.max_buffer_size, 1);
        ck_assert_uint_eq(st.open_send_streams, 1);
        ck_assert_uint_eq(st.open_receive_streams, 1);
        expect_stats(both[i], 0, 0, 0);
    }
    for (int i = 0; i < 2; i++) {
        statistics_round1(both[i]);
        statistics_round2(both[i]);
    }
    free_streams();
    return 0;
}
START_TEST(statistics) { TU_RUN(t_statistics, NULL); }
END_TEST

/* ---- DESIGN.md, one sentence each ------------------------------------------------ */

static int t_buffer_zero_is_rendezvous(void *arg)
{
    open_streams(0);
    ck_assert_int_eq(stats_of(snd).max_buffer_size, 0);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), WHARF_EWOULDBLOCK);
    tg = wharf_group_open();
    wharf_group_spawn(tg, send_one, hello);
    wharf_wait_all_tasks_blocked();
    /* the sender is still waiting: nothing was buffered */
    expect_stats(snd, 0, 1, 0);
    TU_ASSERT_RC(receive_one(NULL), 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    ck_assert_ptr_eq(got[0], hello);
    free_streams();
    return 0;
}
START_TEST(buffer_zero_is_rendezvous) { TU_RUN(t_buffer_zero_is_rendezvous, NULL); }
END_TEST

static int t_send_nowait_needs_receiver_or_room(void *arg)
{
    open_streams(2);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), 0);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, anyio), 0);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, world), WHARF_EWOULDBLOCK);
    expect_stats(snd, 2, 0, 0);
    free_streams();
    open_streams(0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, receive_one, NULL);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), 0);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, anyio), WHARF_EWOULDBLOCK);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    ck_assert_ptr_eq(got[0], hello);
    free_streams();
    return 0;
}
START_TEST(send_nowait_needs_receiver_or_room)
{
    TU_RUN(t_send_nowait_needs_receiver_or_room, NULL);
}
END_TEST

static int t_unbounded_never_blocks(void *arg)
{
    void *item;
    int rc;

    open_streams(WHARF_UNBOUNDED);
    for (uintptr_t i = 0; i < 10000; i++)
        if ((rc = wharf_send_item_nowait(snd, (void *)i)) != 0)
            ck_abort_msg("send %zu: %s", (size_t)i, wharf_strerror(rc));
    TU_ASSERT_RC(wharf_send_item(snd, NULL), 0);
    expect_stats(rcv, 10001, 0, 0);
    for (uintptr_t i = 0; i < 10000; i++)
        if ((rc = wharf_receive_item(rcv, &item)) != 0 || (uintptr_t)item != i)
            ck_abort_msg("receive %zu: %s, item %p", (size_t)i, wharf_strerror(rc), item);
    free_streams();
    return 0;
}
START_TEST(unbounded_never_blocks) { TU_RUN(t_unbounded_never_blocks, NULL); }
END_TEST

static int t_fifo_buffered_then_blocked_senders(void *arg)
{
    static char *want[] = { "a", "b", "c", "d", "e" };
    void *item;

    open_streams(2);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, want[0]), 0);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, want[1]), 0);
    tg = wharf_group_open();
    for (int i = 2; i < 5; i++) {
        wharf_group_spawn(tg, send_one, want[i]);
        wharf_wait_all_tasks_blocked();     /* fixes the arrival order */
    }
    expect_stats(rcv, 2, 3, 0);
    for (int i = 0; i < 5; i++) {
        TU_ASSERT_RC(wharf_receive_item(rcv, &item), 0);
        ck_assert_ptr_eq(item, want[i]);
    }
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    free_streams();
    return 0;
}
START_TEST(fifo_buffered_then_blocked_senders)
{
    TU_RUN(t_fifo_buffered_then_blocked_senders, NULL);
}
END_TEST

static int t_closed_before_broken(void *arg)
{
    open_streams(1);
    wharf_close(rcv);
    wharf_close(snd);
    TU_ASSERT_RC(wharf_send_item(snd, hello), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), WHARF_ECLOSED);
    free_streams();
    return 0;
}
START_TEST(closed_before_broken) { TU_RUN(t_closed_before_broken, NULL); }
END_TEST

static int t_broken_after_every_receive_clone_closed(void *arg)
{
    struct wharf_stream *rcv2;

    open_streams(WHARF_UNBOUNDED);
    TU_ASSERT_RC(wharf_clone(rcv, &rcv2), 0);
    TU_ASSERT_RC(wharf_close(rcv), 0);
    TU_ASSERT_RC(wharf_send_item(snd, hello), 0);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), 0);
    TU_ASSERT_RC(wharf_close(rcv2), 0);
    TU_ASSERT_RC(wharf_send_item(snd, hello), WHARF_EBROKEN);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), WHARF_EBROKEN);
    wharf_free(rcv2);
    free_streams();
    return 0;
}
START_TEST(broken_after_every_receive_clone_closed)
{
    TU_RUN(t_broken_after_every_receive_clone_closed, NULL);
}
END_TEST

static int t_eof_forever_after_last_sender(void *arg)
{
    struct wharf_stream *snd2;
    void *item = NULL;

    open_streams(3);
    TU_ASSERT_RC(wharf_clone(snd, &snd2), 0);
    TU_ASSERT_RC(wharf_send_item(snd, hello), 0);
    TU_ASSERT_RC(wharf_send_item(snd2, anyio), 0);
    TU_ASSERT_RC(wharf_close(snd), 0);
    TU_ASSERT_RC(wharf_send_item(snd2, world), 0);
    TU_ASSERT_RC(wharf_close(snd2), 0);
    TU_ASSERT_RC(wharf_receive_item(rcv, &item), 0);
    ck_assert_ptr_eq(item, hello);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), 0);
    ck_assert_ptr_eq(item, anyio);
    TU_ASSERT_RC(wharf_receive_item(rcv, &item), 0);
    ck_assert_ptr_eq(item, world);
    for (int i = 0; i < 3; i++) {
        TU_ASSERT_RC(wharf_receive_item(rcv, &item), WHARF_EOF);
        TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), WHARF_EOF);
    }
    wharf_free(snd2);
    free_streams();
    return 0;
}
START_TEST(eof_forever_after_last_sender) { TU_RUN(t_eof_forever_after_last_sender, NULL); }
END_TEST

static int sender_via(void *arg)
{
    struct wharf_stream **pair = arg;       /* { send handle, item } */

    return wharf_send_item(pair[0], pair[1]);
}

static int t_last_receive_close_wakes_senders(void *arg)
{
    struct wharf_stream *rcv2;
    void *args[2][2];
    int errs[4];

    open_streams(0);
    TU_ASSERT_RC(wharf_clone(rcv, &rcv2), 0);
    args[0][0] = snd;
    args[0][1] = NULL;          /* a NULL item too */
    args[1][0] = snd;
    args[1][1] = hello;
    tg = wharf_group_open();
    wharf_group_spawn(tg, sender_via, args[0]);
    wharf_group_spawn(tg, sender_via, args[1]);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_close(rcv), 0);
    wharf_wait_all_tasks_blocked();
    expect_stats(snd, 0, 2, 0);     /* one receive clone is still open */
    TU_ASSERT_RC(wharf_close(rcv2), 0);
    TU_ASSERT_RC(wharf_group_exit(tg, 0), WHARF_EBROKEN);
    ck_assert_int_eq(wharf_group_errors(tg, errs, 4), 2);
    TU_ASSERT_RC(errs[0], WHARF_EBROKEN);
    TU_ASSERT_RC(errs[1], WHARF_EBROKEN);
    wharf_group_free(tg);
    expect_stats(snd, 0, 0, 0);
    wharf_free(rcv2);
    free_streams();
    return 0;
}
START_TEST(last_receive_close_wakes_senders) { TU_RUN(t_last_receive_close_wakes_senders, NULL); }
END_TEST

static int t_end_closed_only_when_all_clones_are(void *arg)
{
    struct wharf_stream *snd2, *rcv2;
    struct wharf_memstream_stats st;
    void *item;

    open_streams(4);
    TU_ASSERT_RC(wharf_clone(snd, &snd2), 0);
    TU_ASSERT_RC(wharf_clone(rcv, &rcv2), 0);
    st = stats_of(snd);
    ck_assert_uint_eq(st.open_send_streams, 2);
    ck_assert_uint_eq(st.open_receive_streams, 2);
    TU_ASSERT_RC(wharf_close(snd), 0);
    TU_ASSERT_RC(wharf_close(rcv), 0);
    st = stats_of(snd);         /* statistics work on a closed handle */
    ck_assert_uint_eq(st.open_send_streams, 1);
    ck_assert_uint_eq(st.open_receive_streams, 1);
    TU_ASSERT_RC(wharf_send_item(snd2, hello), 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv2, &item), 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv2, &item), WHARF_EWOULDBLOCK);
    TU_ASSERT_RC(wharf_close(snd2), 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv2, &item), WHARF_EOF);
    wharf_free(snd2);
    wharf_free(rcv2);
    free_streams();
    return 0;
}
START_TEST(end_closed_only_when_all_clones_are)
{
    TU_RUN(t_end_closed_only_when_all_clones_are, NULL);
}
END_TEST

static int t_close_is_idempotent(void *arg)
{
    open_streams(1);
    TU_ASSERT_RC(wharf_close(snd), 0);
    TU_ASSERT_RC(wharf_close(snd), 0);
    TU_ASSERT_RC(wharf_close(rcv), 0);
    TU_ASSERT_RC(wharf_close(rcv), 0);
    ck_assert_uint_eq(stats_of(snd).open_send_streams, 0);
    ck_assert_uint_eq(stats_of(rcv).open_receive_streams, 0);
    free_streams();
    return 0;
}
START_TEST(close_is_idempotent) { TU_RUN(t_close_is_idempotent, NULL); }
END_TEST

static int sent_rc;

static int scoped_sender(void *arg, struct wharf_task_status *status)
{
    struct wharf_scope sc;

    wharf_scope_enter(&sc, WHARF_FOREVER, 0);
    wharf_task_started(status, &sc);
    sent_rc = wharf_send_item(snd, arg);
    return wharf_scope_exit(&sc, sent_rc);
}

static int t_cancelled_send_withdraws_item(void *arg)
{
    struct wharf_scope *sc = NULL;
    void *item;

    open_streams(0);
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_group_start(tg, scoped_sender, hello, (void **)&sc), 0);
    wharf_wait_all_tasks_blocked();
    expect_stats(snd, 0, 1, 0);
    wharf_scope_cancel(sc);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    TU_ASSERT_RC(sent_rc, WHARF_ECANCELLED);
    expect_stats(snd, 0, 0, 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), WHARF_EWOULDBLOCK);
    free_streams();
    return 0;
}
START_TEST(cancelled_send_withdraws_item) { TU_RUN(t_cancelled_send_withdraws_item, NULL); }
END_TEST

/* The other half of "no duplicate": a sender cancelled after its item was
 * taken reports the send as done. */
static int t_cancel_after_item_taken(void *arg)
{
    struct wharf_scope *sc = NULL;
    void *item = NULL;

    open_streams(0);
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_group_start(tg, scoped_sender, hello, (void **)&sc), 0);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), 0);
    ck_assert_ptr_eq(item, hello);
    wharf_scope_cancel(sc);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    TU_ASSERT_RC(sent_rc, 0);
    free_streams();
    return 0;
}
START_TEST(cancel_after_item_taken) { TU_RUN(t_cancel_after_item_taken, NULL); }
END_TEST

static int receive_rc;

/* receive_one, keeping its result out of the group's way */
static int receive_one_quietly(void *arg)
{
    receive_rc = receive_one(arg);
    return 0;
}

static int t_close_wakes_own_waiters(void *arg)
{
    struct wharf_stream *snd2, *rcv2;
    void *args[2] = { NULL, hello };

    open_streams(0);
    TU_ASSERT_RC(wharf_clone(rcv, &rcv2), 0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, receive_one, rcv);
    wharf_group_spawn(tg, receive_one_quietly, rcv2);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_close(rcv2), 0);     /* only its own waiter ends */
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(receive_rc, WHARF_ECLOSED);
    expect_stats(rcv, 0, 0, 1);
    TU_ASSERT_RC(wharf_send_item(snd, world), 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(ngot, 1);
    ck_assert_ptr_eq(got[0], world);
    /* the same for a sender blocked on a send clone that gets closed */
    TU_ASSERT_RC(wharf_clone(snd, &snd2), 0);
    args[0] = snd2;
    tg = wharf_group_open();
    wharf_group_spawn(tg, sender_via, args);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_close(snd2), 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), WHARF_ECLOSED);
    expect_stats(snd, 0, 0, 0);
    wharf_free(snd2);
    wharf_free(rcv2);
    free_streams();
    return 0;
}
START_TEST(close_wakes_own_waiters) { TU_RUN(t_close_wakes_own_waiters, NULL); }
END_TEST

static int nfreed;

static void count_free(void *item)
{
    nfreed++;
    free(item);
}

static int t_item_free_at_last_receive_close(void *arg)
{
    struct wharf_stream *rcv2;
    void *item = NULL;
    char *blocked = malloc(1);

    TU_ASSERT_RC(wharf_memstream_new(3, count_free, &snd, &rcv), 0);
    for (int i = 0; i < 3; i++)
        TU_ASSERT_RC(wharf_send_item_nowait(snd, malloc(8)), 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), 0);
    free(item);
    TU_ASSERT_RC(wharf_clone(rcv, &rcv2), 0);
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_send_item_nowait(snd, malloc(8)), 0);
    wharf_group_spawn(tg, send_one, blocked);
    wharf_wait_all_tasks_blocked();
    wharf_close(snd);       /* closing a send end frees nothing */
    wharf_close(rcv);       /* nor does a receive end with clones left */
    ck_assert_int_eq(nfreed, 0);
    wharf_close(rcv2);
    ck_assert_int_eq(nfreed, 3);
    /* the blocked sender's item stayed its own */
    TU_ASSERT_RC(wharf_group_close(tg, 0), WHARF_ECLOSED);
    free(blocked);
    wharf_free(rcv2);
    free_streams();
    ck_assert_int_eq(nfreed, 3);
    return 0;
}
START_TEST(item_free_at_last_receive_close) { TU_RUN(t_item_free_at_last_receive_close, NULL); }
END_TEST

/* ---- cancel/send churn ------------------------------------------------------------- */

#define CH_SENDERS 12
#define CH_ITEMS 400
#define CH_TOTAL (CH_SENDERS * CH_ITEMS)

static struct wharf_stream *ch_send[CH_SENDERS];
static struct wharf_scope *ch_scope[CH_SENDERS + 1];   /* where each task waits now */
static unsigned char ch_sent[CH_TOTAL], ch_recv[CH_TOTAL];
static long ch_nsent, ch_nrecv, ch_send_cancels, ch_recv_cancels;
static bool ch_done;
static unsigned ch_seed = 20240601;

static unsigned ch_rand(void)
{
    ch_seed = ch_seed * 1103515245u + 12345u;
    return ch_seed >> 16;
}

/* Mostly no deadline; sometimes one already passed, or one a moment away. */
static double ch_deadline(void)
{
    switch (ch_rand() % 8) {
    case 0:
        return wharf_clock() - 1.0;
    case 1:
        return wharf_clock() + 1e-4;
    default:
        return WHARF_FOREVER;
    }
}

static int ch_send_in_scope(int id, long item)
{
    struct wharf_scope sc;
    int rc;

    wharf_scope_enter(&sc, ch_deadline(), 0);
    ch_scope[id] = &sc;
    rc = wharf_send_item(ch_send[id], (void *)(item + 1));
    ch_scope[id] = NULL;
    wharf_scope_exit(&sc, rc);
    return rc;
}

static int ch_sender(void *arg)
{
    int id = (int)(long)arg;

    for (long j = 0; j < CH_ITEMS; j++) {
        long item = id * CH_ITEMS + j;
        int rc = ch_send_in_scope(id, item);

        if (rc == 0) {
            ch_sent[item]++;
            ch_nsent++;
            continue;
        }
        TU_ASSERT_RC(rc, WHARF_ECANCELLED);
        ch_send_cancels++;
        if (ch_rand() % 2)
            j--;                /* retry the item, or give it up */
    }
    return wharf_close(ch_send[id]);
}

static int ch_receive_in_scope(void **item)
{
    struct wharf_scope sc;
    int rc;

    wharf_scope_enter(&sc, ch_deadline(), 0);
    ch_scope[CH_SENDERS] = &sc;
    rc = wharf_receive_item(rcv, item);
    ch_scope[CH_SENDERS] = NULL;
    wharf_scope_exit(&sc, rc);
    return rc;
}

static int ch_receiver(void *arg)
{
    void *item;
    int rc;

    while ((rc = ch_receive_in_scope(&item)) != WHARF_EOF) {
        if (rc == WHARF_ECANCELLED) {
            ch_recv_cancels++;
            continue;
        }
        TU_ASSERT_RC(rc, 0);
        ch_recv[(long)item - 1]++;
        ch_nrecv++;
    }
    ch_done = true;
    return 0;
}

static int ch_canceller(void *arg)
{
    while (!ch_done) {
        struct wharf_scope *sc = ch_scope[ch_rand() % (CH_SENDERS + 1)];

        if (sc)
            wharf_scope_cancel(sc);
        if (wharf_checkpoint() != 0)
            return WHARF_ECANCELLED;
    }
    return 0;
}

static int t_churn(void *arg)
{
    open_streams(*(long *)arg);
    for (int i = 0; i < CH_SENDERS; i++)
        TU_ASSERT_RC(wharf_clone(snd, &ch_send[i]), 0);
    wharf_close(snd);
    tg = wharf_group_open();
    wharf_group_spawn(tg, ch_receiver, NULL);
    wharf_group_spawn(tg, ch_canceller, NULL);
    for (long i = 0; i < CH_SENDERS; i++)
        wharf_group_spawn(tg, ch_sender, (void *)i);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    ck_assert_int_eq(ch_nsent, ch_nrecv);
    for (int i = 0; i < CH_TOTAL; i++)
        if (ch_recv[i] > 1 || ch_recv[i] != ch_sent[i])
            ck_abort_msg("item %d sent %d times, received %d", i, ch_sent[i], ch_recv[i]);
    ck_assert_int_gt(ch_send_cancels, 0);
    ck_assert_int_gt(ch_recv_cancels, 0);
    ck_assert_int_gt(ch_nsent, CH_TOTAL / 2);
    for (int i = 0; i < CH_SENDERS; i++)
        wharf_free(ch_send[i]);
    free_streams();
    return 0;
}

static long churn_buffers[] = { 0, 1, 7, WHARF_UNBOUNDED };
START_TEST(churn) { TU_RUN(t_churn, &churn_buffers[_i]); }
END_TEST

/* ---- bad input ---------------------------------------------------------------------- */

static int t_bad_arguments(void *arg)
{
    struct wharf_memstream_stats st;
    struct wharf_stream *a, *b;

    TU_ASSERT_RC(wharf_memstream_bytes_new(-1, &a, &b), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_memstream_bytes_new(0, NULL, &b), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_memstream_bytes_new(0, &a, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_memstream_pair(-1, &a, &b), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_memstream_pair(0, NULL, &b), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_memstream_pair(0, &a, NULL), WHARF_EINVAL);
    open_streams(1);
    TU_ASSERT_RC(wharf_memstream_statistics(NULL, &st), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_memstream_statistics(snd, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive_item(rcv, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_clone(snd, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_send_item(NULL, hello), WHARF_EINVAL);
    free_streams();
    return 0;
}
START_TEST(bad_arguments) { TU_RUN(t_bad_arguments, NULL); }
END_TEST

static int t_wrong_end_or_kind(void *arg)
{
    struct wharf_memstream_stats st;
    struct wharf_stream *a, *b;
    char buf[4];
    void *item;

    open_streams(1);
    TU_ASSERT_RC(wharf_receive_item(snd, &item), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_receive_item_nowait(snd, &item), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_send_item(rcv, hello), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_send_item_nowait(rcv, hello), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_send(snd, "x", 1), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_receive(rcv, buf, sizeof(buf)), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_send_eof(snd), WHARF_ENOTSUP);
    ck_assert_str_eq(wharf_stream_kind(snd), "memory");
    free_streams();
    TU_ASSERT_RC(wharf_memstream_bytes_new(1, &snd, &rcv), 0);
    TU_ASSERT_RC(wharf_send_item(snd, hello), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_receive_item(rcv, &item), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_receive(snd, buf, sizeof(buf)), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_send(rcv, "x", 1), WHARF_ENOTSUP);
    free_streams();
    TU_ASSERT_RC(wharf_memstream_pair(1, &a, &b), 0);
    TU_ASSERT_RC(wharf_memstream_statistics(a, &st), WHARF_ENOTSUP);
    wharf_free(a);
    wharf_free(b);
    return 0;
}
START_TEST(wrong_end_or_kind) { TU_RUN(t_wrong_end_or_kind, NULL); }
END_TEST

static int t_use_after_close(void *arg)
{
    struct wharf_stream *c = NULL;
    char buf[4];
    void *item;

    open_streams(1);
    wharf_close(snd);
    wharf_close(rcv);
    TU_ASSERT_RC(wharf_send_item(snd, hello), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive_item(rcv, &item), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_clone(rcv, &c), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_close(snd), 0);
    TU_ASSERT_RC(wharf_close(rcv), 0);
    free_streams();
    TU_ASSERT_RC(wharf_memstream_bytes_new(1, &snd, &rcv), 0);
    wharf_close(snd);
    wharf_close(rcv);
    TU_ASSERT_RC(wharf_send(snd, "x", 1), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send(snd, "x", 0), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send_nowait(snd, "x", 1), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send_eof(snd), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive(rcv, buf, sizeof(buf)), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive_nowait(rcv, buf, sizeof(buf)), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_clone(snd, &c), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_close(snd), 0);
    free_streams();
    return 0;
}
START_TEST(use_after_close) { TU_RUN(t_use_after_close, NULL); }
END_TEST

/* Outside a task nothing may block, but the non-blocking core works (a
 * plain thread can feed a worker). */
START_TEST(outside_a_task)
{
    void *item = NULL;

    open_streams(1);
    TU_ASSERT_RC(wharf_send_item(snd, hello), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive_item(rcv, &item), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, hello), 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(rcv, &item), 0);
    ck_assert_ptr_eq(item, hello);
    free_streams();
    wharf_free(NULL);
}
END_TEST

/* ---- byte mode ------------------------------------------------------------------------ */

static void open_bytes(long max)
{
    TU_ASSERT_RC(wharf_memstream_bytes_new(max, &snd, &rcv), 0);
}

/* Receives (blocking) and checks the bytes. */
static void expect_bytes(struct wharf_stream *s, size_t max, const char *want)
{
    char buf[256];
    ssize_t n = wharf_receive(s, buf, max);

    ck_assert_msg(n == (ssize_t)strlen(want), "received %zd bytes (%s), want %zu",
                  n, n < 0 ? wharf_strerror((int)n) : "", strlen(want));
    ck_assert(memcmp(buf, want, (size_t)n) == 0);
}

static int t_bytes_partial_receives(void *arg)
{
    open_bytes(4);
    TU_ASSERT_RC(wharf_send(snd, "hello world", 11), 0);
    TU_ASSERT_RC(wharf_send(snd, "abc", 3), 0);
    expect_stats(rcv, 2, 0, 0);
    expect_bytes(rcv, 5, "hello");
    expect_stats(rcv, 2, 0, 0);     /* the rest of the chunk is still first */
    expect_bytes(rcv, 3, " wo");
    expect_bytes(rcv, 100, "rld");  /* one chunk at a time */
    expect_stats(rcv, 1, 0, 0);
    expect_bytes(rcv, 100, "abc");
    expect_stats(rcv, 0, 0, 0);
    free_streams();
    return 0;
}
START_TEST(bytes_partial_receives) { TU_RUN(t_bytes_partial_receives, NULL); }
END_TEST

static int t_bytes_chunks_in_order(void *arg)
{
    char buf[8];

    open_bytes(WHARF_UNBOUNDED);
    for (int i = 0; i < 100; i++) {
        char c = (char)('0' + i % 10);

        TU_ASSERT_RC(wharf_send_nowait(snd, &c, 1), 1);
    }
    for (int i = 0; i < 100; i++) {
        TU_ASSERT_RC(wharf_receive_nowait(rcv, buf, sizeof(buf)), 1);
        ck_assert_int_eq(buf[0], '0' + i % 10);
    }
    TU_ASSERT_RC(wharf_receive_nowait(rcv, buf, sizeof(buf)), WHARF_EWOULDBLOCK);
    free_streams();
    return 0;
}
START_TEST(bytes_chunks_in_order) { TU_RUN(t_bytes_chunks_in_order, NULL); }
END_TEST

static int t_bytes_eof_after_send_eof(void *arg)
{
    struct wharf_stream *snd2;
    char buf[8];

    open_bytes(2);
    TU_ASSERT_RC(wharf_clone(snd, &snd2), 0);
    TU_ASSERT_RC(wharf_send(snd, "xyz", 3), 0);
    TU_ASSERT_RC(wharf_send_eof(snd), 0);
    TU_ASSERT_RC(wharf_send_eof(snd), 0);           /* harmless twice */
    TU_ASSERT_RC(wharf_send(snd, "x", 1), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive_nowait(rcv, buf, 1), 1);
    TU_ASSERT_RC(wharf_receive_nowait(rcv, buf, 8), 2);
    ck_assert(memcmp(buf, "yz", 2) == 0);
    TU_ASSERT_RC(wharf_receive_nowait(rcv, buf, 8), WHARF_EWOULDBLOCK); /* snd2 is open */
    TU_ASSERT_RC(wharf_close(snd2), 0);
    TU_ASSERT_RC(wharf_send_eof(snd2), WHARF_ECLOSED); /* closed, not by send_eof */
    for (int i = 0; i < 3; i++) {
        TU_ASSERT_RC(wharf_receive(rcv, buf, sizeof(buf)), WHARF_EOF);
        TU_ASSERT_RC(wharf_receive_nowait(rcv, buf, sizeof(buf)), WHARF_EOF);
    }
    wharf_free(snd2);
    free_streams();
    return 0;
}
START_TEST(bytes_eof_after_send_eof) { TU_RUN(t_bytes_eof_after_send_eof, NULL); }
END_TEST

static int t_bytes_empty_send(void *arg)
{
    char buf[4];

    open_bytes(0);
    TU_ASSERT_RC(wharf_send(snd, "", 0), 0);        /* does not wait for a receiver */
    TU_ASSERT_RC(wharf_send(snd, NULL, 0), 0);
    expect_stats(rcv, 0, 0, 0);
    TU_ASSERT_RC(wharf_receive_nowait(rcv, buf, sizeof(buf)), WHARF_EWOULDBLOCK);
    wharf_close(rcv);
    TU_ASSERT_RC(wharf_send(snd, "", 0), 0);
    free_streams();
    return 0;
}
START_TEST(bytes_empty_send) { TU_RUN(t_bytes_empty_send, NULL); }
END_TEST

static int receive_bytes_into(void *arg)
{
    char *buf = arg;            /* buf[0] holds max on entry */
    ssize_t n = wharf_receive(rcv, buf + 1, (size_t)buf[0]);

    if (n < 0)
        return (int)n;
    buf[1 + n] = '\0';
    return 0;
}

/* With max_chunks 0 a send waits for a receiver; what does not fit stays
 * first in line, also across several waiting receivers (clones). */
static int t_bytes_rendezvous(void *arg)
{
    struct wharf_stream *rcv2, *keep = NULL;
    char b1[16] = { 2 }, b2[16] = { 2 };
    char buf[16];

    open_bytes(0);
    TU_ASSERT_RC(wharf_send_nowait(snd, "x", 1), WHARF_EWOULDBLOCK);
    TU_ASSERT_RC(wharf_clone(rcv, &rcv2), 0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, receive_bytes_into, b1);
    wharf_wait_all_tasks_blocked();
    keep = rcv;
    rcv = rcv2;                 /* the second receiver uses the clone */
    wharf_group_spawn(tg, receive_bytes_into, b2);
    wharf_wait_all_tasks_blocked();
    rcv = keep;
    expect_stats(rcv, 0, 0, 2);
    TU_ASSERT_RC(wharf_send(snd, "abcdefgh", 8), 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    ck_assert_str_eq(b1 + 1, "ab");
    ck_assert_str_eq(b2 + 1, "cd");
    expect_stats(rcv, 1, 0, 0);
    TU_ASSERT_RC(wharf_receive_nowait(rcv2, buf, 3), 3);
    ck_assert(memcmp(buf, "efg", 3) == 0);
    expect_bytes(rcv, 16, "h");
    wharf_free(rcv2);
    free_streams();
    return 0;
}
START_TEST(bytes_rendezvous) { TU_RUN(t_bytes_rendezvous, NULL); }
END_TEST

static int send_bytes(void *arg)
{
    return wharf_send(snd, arg, strlen(arg));
}

static int t_bytes_send_blocks_when_full(void *arg)
{
    open_bytes(1);
    TU_ASSERT_RC(wharf_send_nowait(snd, "one", 3), 3);
    TU_ASSERT_RC(wharf_send_nowait(snd, "two", 3), WHARF_EWOULDBLOCK);
    tg = wharf_group_open();
    wharf_group_spawn(tg, send_bytes, "two");
    wharf_wait_all_tasks_blocked();
    expect_stats(snd, 1, 1, 0);
    /* the chunk being read leaves its slot (its rest stays first in line,
     * counted as buffered): the blocked sender's chunk moves in */
    expect_bytes(rcv, 2, "on");
    expect_stats(snd, 2, 0, 0);
    expect_bytes(rcv, 8, "e");
    expect_bytes(rcv, 8, "two");
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    free_streams();
    return 0;
}
START_TEST(bytes_send_blocks_when_full) { TU_RUN(t_bytes_send_blocks_when_full, NULL); }
END_TEST

static int t_bytes_close_receive(void *arg)
{
    open_bytes(1);
    TU_ASSERT_RC(wharf_send(snd, "buffered", 8), 0);
    expect_bytes(rcv, 3, "buf");
    TU_ASSERT_RC(wharf_send(snd, "more", 4), 0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, send_bytes, "blocked");
    wharf_wait_all_tasks_blocked();
    expect_stats(snd, 2, 1, 0);
    wharf_close(rcv);       /* the chunks are freed (ASan would tell) */
    TU_ASSERT_RC(wharf_group_close(tg, 0), WHARF_EBROKEN);
    TU_ASSERT_RC(wharf_send(snd, "x", 1), WHARF_EBROKEN);
    TU_ASSERT_RC(wharf_send_nowait(snd, "x", 1), WHARF_EBROKEN);
    free_streams();
    return 0;
}
START_TEST(bytes_close_receive) { TU_RUN(t_bytes_close_receive, NULL); }
END_TEST

static int receive_some(void *arg)
{
    char buf[8];
    ssize_t n = wharf_receive(rcv, buf, sizeof(buf));

    return n < 0 ? (int)n : 0;
}

static int t_bytes_busy(void *arg)
{
    char buf[8];

    open_bytes(1);
    tg = wharf_group_open();
    wharf_group_spawn(tg, receive_some, NULL);
    wharf_wait_all_tasks_blocked();
    TU_ASSERT_RC(wharf_receive(rcv, buf, sizeof(buf)), WHARF_EBUSY);
    TU_ASSERT_RC(wharf_receive_nowait(rcv, buf, sizeof(buf)), WHARF_EBUSY);
    TU_ASSERT_RC(wharf_send(snd, "x", 1), 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    free_streams();
    return 0;
}
START_TEST(bytes_busy) { TU_RUN(t_bytes_busy, NULL); }
END_TEST

static int t_bytes_cancelled_receive_loses_nothing(void *arg)
{
    struct wharf_scope sc;
    char buf[8];

    open_bytes(0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, send_bytes, "keep");
    wharf_wait_all_tasks_blocked();
    wharf_scope_enter(&sc, WHARF_FOREVER, 0);
    wharf_scope_cancel(&sc);
    TU_ASSERT_RC(wharf_receive(rcv, buf, 2), WHARF_ECANCELLED);
    wharf_scope_exit(&sc, WHARF_ECANCELLED);
    /* a receive cancelled while it waits gives up nothing either */
    wharf_move_on_after(&sc, 0.001);
    TU_ASSERT_RC(wharf_scope_exit(&sc, 0), 0);
    expect_bytes(rcv, 2, "ke");
    expect_bytes(rcv, 8, "ep");
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    wharf_move_on_after(&sc, 0.001);
    TU_ASSERT_RC(wharf_receive(rcv, buf, 2), WHARF_ECANCELLED);
    TU_ASSERT_RC(wharf_scope_exit(&sc, WHARF_ECANCELLED), 0);
    TU_ASSERT_RC(wharf_send_nowait(snd, "late", 4), WHARF_EWOULDBLOCK);
    free_streams();
    return 0;
}
START_TEST(bytes_cancelled_receive_loses_nothing)
{
    TU_RUN(t_bytes_cancelled_receive_loses_nothing, NULL);
}
END_TEST

static int t_bytes_large(void *arg)
{
    enum { LEN = 65536 };
    unsigned char *out = malloc(LEN), *in = malloc(LEN);
    size_t got_len = 0;

    for (size_t i = 0; i < LEN; i++)
        out[i] = (unsigned char)(i * 7);
    open_bytes(1);
    TU_ASSERT_RC(wharf_send(snd, out, LEN), 0);
    wharf_send_eof(snd);
    for (;;) {
        ssize_t n = wharf_receive(rcv, in + got_len, 1000);

        if (n == WHARF_EOF)
            break;
        ck_assert_int_gt(n, 0);
        got_len += (size_t)n;
    }
    ck_assert_uint_eq(got_len, LEN);
    ck_assert(memcmp(in, out, LEN) == 0);
    free(in);
    free(out);
    free_streams();
    return 0;
}
START_TEST(bytes_large) { TU_RUN(t_bytes_large, NULL); }
END_TEST

static int t_bytes_statistics(void *arg)
{
    struct wharf_memstream_stats st;
    struct wharf_stream *c;

    open_bytes(3);
    TU_ASSERT_RC(wharf_clone(snd, &c), 0);
    TU_ASSERT_RC(wharf_send(snd, "a", 1), 0);
    st = stats_of(rcv);
    ck_assert_int_eq(st.max_buffer_size, 3);
    ck_assert_uint_eq(st.current_buffer_used, 1);
    ck_assert_uint_eq(st.open_send_streams, 2);
    ck_assert_uint_eq(st.open_receive_streams, 1);
    wharf_send_eof(c);
    ck_assert_uint_eq(stats_of(snd).open_send_streams, 1);
    wharf_free(c);
    free_streams();
    return 0;
}
START_TEST(bytes_statistics) { TU_RUN(t_bytes_statistics, NULL); }
END_TEST

/* ---- the in-memory pair --------------------------------------------------------------- */

static struct wharf_stream *pa, *pb;

static int echo_once(void *arg)
{
    char buf[64];
    ssize_t n = wharf_receive(pb, buf, sizeof(buf));

    if (n < 0)
        return (int)n;
    return wharf_send(pb, buf, (size_t)n);
}

static int t_pair(void *arg)
{
    char buf[16];

    TU_ASSERT_RC(wharf_memstream_pair(*(long *)arg, &pa, &pb), 0);
    tg = wharf_group_open();
    wharf_group_spawn(tg, echo_once, NULL);
    TU_ASSERT_RC(wharf_send(pa, "ping", 4), 0);
    expect_bytes(pa, sizeof(buf), "ping");
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    /* send_eof on a ends a -> b only */
    tg = wharf_group_open();
    wharf_group_spawn(tg, send_bytes, "x");
    snd = pb;
    TU_ASSERT_RC(wharf_send_eof(pa), 0);
    TU_ASSERT_RC(wharf_receive(pb, buf, sizeof(buf)), WHARF_EOF);
    expect_bytes(pa, sizeof(buf), "x");
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    /* closing a: b's sends break, b's receives see the end */
    TU_ASSERT_RC(wharf_close(pa), 0);
    TU_ASSERT_RC(wharf_send(pb, "y", 1), WHARF_EBROKEN);
    TU_ASSERT_RC(wharf_receive(pb, buf, sizeof(buf)), WHARF_EOF);
    wharf_free(pa);
    wharf_free(pb);
    return 0;
}

static long pair_chunks[] = { 0, 4 };
START_TEST(pair) { TU_RUN(t_pair, &pair_chunks[_i]); }
END_TEST

/* ---- the suite ----------------------------------------------------------------------------- */

static TCase *tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *suite(void)
{
    Suite *s = suite_create("memstream");
    TCase *tc;

    tc = tcase(s, "buffer_size");
    tcase_add_test(tc, negative_max_buffer);
    tcase_add_test(tc, invalid_max_buffer);

    tc = tcase(s, "transfer");
    tcase_add_test(tc, receive_then_send);
    tcase_add_test(tc, receive_then_send_nowait);
    tcase_add_test(tc, send_then_receive_nowait);
    tcase_add_test(tc, send_is_unblocked_after_receive_nowait);
    tcase_add_test(tc, send_nowait_then_receive_nowait);
    tcase_add_test(tc, iterate);

    tc = tcase(s, "closing");
    tcase_add_test(tc, receive_send_closed_send_stream);
    tcase_add_test(tc, receive_send_closed_receive_stream);
    tcase_add_test(tc, close_send_while_receiving);
    tcase_add_test(tc, close_receive_while_sending);
    tcase_add_test(tc, receive_after_send_closed);
    tcase_add_test(tc, close_receive_after_send);
    tcase_add_test(tc, sync_close);

    tc = tcase(s, "cancellation");
    tcase_add_test(tc, cancel_receive);
    tcase_add_test(tc, cancel_send);
    tcase_add_test(tc, receive_when_cancelled);
    tcase_add_test(tc, send_when_cancelled);
    tcase_add_test(tc, cancel_during_receive);
    tcase_add_test(tc, cancel_during_receive_buffered);

    tc = tcase(s, "clones_and_counters");
    tcase_add_test(tc, clone);
    tcase_add_test(tc, clone_closed);
    tcase_add_test(tc, statistics);

    tc = tcase(s, "design");
    tcase_add_test(tc, buffer_zero_is_rendezvous);
    tcase_add_test(tc, send_nowait_needs_receiver_or_room);
    tcase_add_test(tc, unbounded_never_blocks);
    tcase_add_test(tc, fifo_buffered_then_blocked_senders);
    tcase_add_test(tc, closed_before_broken);
    tcase_add_test(tc, broken_after_every_receive_clone_closed);
    tcase_add_test(tc, eof_forever_after_last_sender);
    tcase_add_test(tc, last_receive_close_wakes_senders);
    tcase_add_test(tc, end_closed_only_when_all_clones_are);
    tcase_add_test(tc, close_is_idempotent);
    tcase_add_test(tc, cancelled_send_withdraws_item);
    tcase_add_test(tc, cancel_after_item_taken);
    tcase_add_test(tc, close_wakes_own_waiters);
    tcase_add_test(tc, item_free_at_last_receive_close);
    tcase_add_loop_test(tc, churn, 0, (int)(sizeof(churn_buffers) / sizeof(churn_buffers[0])));

    tc = tcase(s, "bad_input");
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, wrong_end_or_kind);
    tcase_add_test(tc, use_after_close);
    tcase_add_test(tc, outside_a_task);

    tc = tcase(s, "bytes");
    tcase_add_test(tc, bytes_partial_receives);
    tcase_add_test(tc, bytes_chunks_in_order);
    tcase_add_test(tc, bytes_eof_after_send_eof);
    tcase_add_test(tc, bytes_empty_send);
    tcase_add_test(tc, bytes_rendezvous);
    tcase_add_test(tc, bytes_send_blocks_when_full);
    tcase_add_test(tc, bytes_close_receive);
    tcase_add_test(tc, bytes_busy);
    tcase_add_test(tc, bytes_cancelled_receive_loses_nothing);
    tcase_add_test(tc, bytes_large);
    tcase_add_test(tc, bytes_statistics);

    tc = tcase(s, "pair");
    tcase_add_loop_test(tc, pair, 0, (int)(sizeof(pair_chunks) / sizeof(pair_chunks[0])));
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
