/*
 * check_buffered.c: the buffered byte stream, ported from AnyIO's
 * tests/streams/test_buffered.py (4.x), plus DelimiterNotFound, chunk
 * boundary, misuse and cancellation cases of our own.
 *
 * Most cases run over a scripted byte stream (scripted.c): the test hands
 * it exact chunks, so where a chunk ends is under the test's control. The
 * "memory" cases run the same AnyIO ports over wharf_memstream_bytes_new().
 */
#include "config.h"

#include <string.h>

#include "testutil.h"
#include "scripted.h"

/* A buffered stream over a new script; *inner is the script. */
static struct wharf_stream *buffered_script(struct wharf_stream **inner)
{
    struct wharf_stream *b;

    *inner = script_new();
    b = wharf_buffered_new(*inner);
    ck_assert_ptr_nonnull(b);
    return b;
}

/* Asserts that receive_until(delim, max) returns exactly `want`. */
static void assert_until(struct wharf_stream *b, const char *delim, size_t max,
                         const char *want)
{
    char buf[4096];
    ssize_t r;

    ck_assert_uint_le(max, sizeof(buf));
    r = wharf_receive_until(b, delim, strlen(delim), buf, max);
    TU_ASSERT_RC(r, (ssize_t)strlen(want));
    ck_assert_mem_eq(buf, want, strlen(want));
}

static void assert_exactly(struct wharf_stream *b, const char *want)
{
    char buf[4096];
    size_t n = strlen(want);

    TU_ASSERT_RC(wharf_receive_exactly(b, buf, n), (ssize_t)n);
    ck_assert_mem_eq(buf, want, n);
}

/* Asserts what is buffered by draining it with receive_nowait-free means:
 * receive returns buffered bytes first, without touching the inner stream. */
static void assert_buffer(struct wharf_stream *b, const char *want)
{
    char buf[4096];
    size_t n = strlen(want);

    TU_ASSERT_RC(wharf_buffered_size(b), n);
    if (n > 0) {
        TU_ASSERT_RC(wharf_receive(b, buf, sizeof(buf)), (ssize_t)n);
        ck_assert_mem_eq(buf, want, n);
    }
}

/* ---- AnyIO's test_buffered.py ------------------------------------------- */

static int t_receive_exactly(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);

    script_push_str(inner, "abcd");
    script_push_str(inner, "efgh");
    assert_exactly(b, "abcdefgh");
    wharf_free(b);
    return 0;
}
START_TEST(receive_exactly) { TU_RUN(t_receive_exactly, NULL); }
END_TEST

/* IncompleteRead, and the partial bytes stay buffered. */
static int t_receive_exactly_incomplete(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char buf[8];

    script_push_str(inner, "abcd");
    script_end(inner);
    TU_ASSERT_RC(wharf_receive_exactly(b, buf, 8), WHARF_EINCOMPLETE);
    assert_buffer(b, "abcd");
    TU_ASSERT_RC(wharf_receive(b, buf, sizeof(buf)), WHARF_EOF);
    wharf_free(b);
    return 0;
}
START_TEST(receive_exactly_incomplete) { TU_RUN(t_receive_exactly_incomplete, NULL); }
END_TEST

static int t_receive_until(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);

    script_push_str(inner, "abcd");
    script_push_str(inner, "efgh");
    assert_until(b, "de", 10, "abc");
    assert_until(b, "h", 10, "fg");
    TU_ASSERT_RC(wharf_buffered_size(b), 0);
    wharf_free(b);
    return 0;
}
START_TEST(receive_until) { TU_RUN(t_receive_until, NULL); }
END_TEST

static int t_receive_until_incomplete(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char buf[10];

    script_push_str(inner, "abcd");
    script_end(inner);
    TU_ASSERT_RC(wharf_receive_until(b, "de", 2, buf, 10), WHARF_EINCOMPLETE);
    assert_buffer(b, "abcd");
    wharf_free(b);
    return 0;
}
START_TEST(receive_until_incomplete) { TU_RUN(t_receive_until_incomplete, NULL); }
END_TEST

/* BufferedByteStream over a stapled pipe: send_eof closes only the sending
 * end; close closes the receiving end too. */
static int t_buffered_stream(void *arg)
{
    struct wharf_stream *tx, *rx, *st, *b;
    char buf[4];

    script_pipe(&tx, &rx);
    ck_assert_ptr_nonnull(st = wharf_stapled_new(tx, rx));
    ck_assert_ptr_nonnull(b = wharf_buffered_new(st));
    TU_ASSERT_RC(wharf_send(tx, "abcd", 4), 0);
    assert_exactly(b, "ab");
    assert_exactly(b, "cd");

    TU_ASSERT_RC(wharf_send_eof(b), 0);
    TU_ASSERT_RC(wharf_send(tx, "abc", 3), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive_nowait(rx, buf, sizeof(buf)), WHARF_EOF);

    TU_ASSERT_RC(wharf_close(b), 0);
    TU_ASSERT_RC(wharf_receive_nowait(rx, buf, sizeof(buf)), WHARF_ECLOSED);
    wharf_free(b);
    TU_ASSERT_RC(script_frees, 2);
    return 0;
}
START_TEST(buffered_stream) { TU_RUN(t_buffered_stream, NULL); }
END_TEST

static int t_receive_invalid_max_bytes(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char buf[4];

    script_push_str(inner, "abcd");
    TU_ASSERT_RC(wharf_receive(b, buf, 0), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive_until(b, "\n", 1, buf, 0), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive_nowait(b, buf, 0), WHARF_EINVAL);
    wharf_free(b);
    return 0;
}
START_TEST(receive_invalid_max_bytes) { TU_RUN(t_receive_invalid_max_bytes, NULL); }
END_TEST

/* Fed bytes come out before what the inner stream already holds. */
static int t_feed_data(void *arg)
{
    struct wharf_stream *tx, *rx, *b;

    script_pipe(&tx, &rx);
    ck_assert_ptr_nonnull(b = wharf_buffered_new(wharf_stapled_new(tx, rx)));
    TU_ASSERT_RC(wharf_send(tx, "abcd", 4), 0);
    TU_ASSERT_RC(wharf_buffered_feed(b, "xxx", 3), 0);
    TU_ASSERT_RC(wharf_buffered_feed(b, "foo", 3), 0);
    TU_ASSERT_RC(wharf_buffered_feed(b, "", 0), 0);
    TU_ASSERT_RC(wharf_buffered_size(b), 6);
    assert_exactly(b, "xxxfooabcd");
    wharf_free(b);
    return 0;
}
START_TEST(feed_data) { TU_RUN(t_feed_data, NULL); }
END_TEST

/* receive returns buffered bytes first (at most max), then reads inner. */
static int t_receive_buffered_first(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char buf[16];

    script_push_str(inner, "line\nrest");
    script_push_str(inner, "more");
    assert_until(b, "\n", 16, "line");
    TU_ASSERT_RC(wharf_receive(b, buf, 2), 2);
    ck_assert_mem_eq(buf, "re", 2);
    TU_ASSERT_RC(wharf_receive(b, buf, sizeof(buf)), 2);
    ck_assert_mem_eq(buf, "st", 2);
    TU_ASSERT_RC(wharf_receive(b, buf, sizeof(buf)), 4);
    ck_assert_mem_eq(buf, "more", 4);
    TU_ASSERT_RC(wharf_receive_nowait(b, buf, sizeof(buf)), WHARF_EWOULDBLOCK);
    script_end(inner);
    TU_ASSERT_RC(wharf_receive(b, buf, sizeof(buf)), WHARF_EOF);
    TU_ASSERT_RC(wharf_receive(b, buf, sizeof(buf)), WHARF_EOF);
    wharf_free(b);
    return 0;
}
START_TEST(receive_buffered_first) { TU_RUN(t_receive_buffered_first, NULL); }
END_TEST

/* Sends, send_eof and attributes reach the wrapped stream. */
static int t_pass_through(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    int fd = 0;

    TU_ASSERT_RC(wharf_send(b, "hello", 5), 0);
    ck_assert_uint_eq(script_of(inner)->sc_nsent, 5);
    ck_assert_mem_eq(script_of(inner)->sc_sent, "hello", 5);
    TU_ASSERT_RC(wharf_send_eof(b), 0);
    ck_assert(script_of(inner)->sc_sent_eof);
    TU_ASSERT_RC(wharf_getattr_int(b, WHARF_ATTR_FD, &fd), 0);
    ck_assert_int_eq(fd, 42);
    TU_ASSERT_RC(wharf_getattr_int(b, WHARF_ATTR_LOCAL_PORT, &fd), -ENOENT);
    ck_assert_str_eq(wharf_stream_kind(b), "buffered");
    wharf_free(b);
    return 0;
}
START_TEST(pass_through) { TU_RUN(t_pass_through, NULL); }
END_TEST

/* ---- DelimiterNotFound and chunk boundaries ------------------------------ */

/* max_bytes buffered without the delimiter: WHARF_ENODELIM, all kept; a
 * larger max_bytes then finds the delimiter when it comes. */
static int t_nodelim_exactly_at_max(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char buf[8];

    script_push_str(inner, "abcd");
    TU_ASSERT_RC(wharf_receive_until(b, "\n", 1, buf, 4), WHARF_ENODELIM);
    TU_ASSERT_RC(wharf_buffered_size(b), 4);
    TU_ASSERT_RC(wharf_receive_until(b, "\n", 1, buf, 4), WHARF_ENODELIM);
    script_push_str(inner, "\nnext");
    assert_until(b, "\n", 5, "abcd");
    assert_buffer(b, "next");
    wharf_free(b);
    return 0;
}
START_TEST(nodelim_exactly_at_max) { TU_RUN(t_nodelim_exactly_at_max, NULL); }
END_TEST

/* The chunk that reaches max_bytes also holds the delimiter right at
 * max_bytes: a line of exactly max_bytes is found (AnyIO searches first). */
static int t_delim_at_max_same_chunk(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);

    script_push_str(inner, "ab");
    script_push_str(inner, "cd\r\nef");
    assert_until(b, "\r\n", 4, "abcd");
    assert_buffer(b, "ef");
    wharf_free(b);
    return 0;
}
START_TEST(delim_at_max_same_chunk) { TU_RUN(t_delim_at_max_same_chunk, NULL); }
END_TEST

/* A delimiter that starts beyond max_bytes does not count, even when it is
 * already buffered: the line is longer than the caller allows. */
static int t_delim_beyond_max(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char buf[8];

    script_push_str(inner, "abcde\nf");
    TU_ASSERT_RC(wharf_receive_until(b, "\n", 1, buf, 4), WHARF_ENODELIM);
    TU_ASSERT_RC(wharf_buffered_size(b), 7);
    assert_until(b, "\n", 5, "abcde");
    assert_buffer(b, "f");
    wharf_free(b);
    return 0;
}
START_TEST(delim_beyond_max) { TU_RUN(t_delim_beyond_max, NULL); }
END_TEST

/* Chunks accumulate until max_bytes; what the inner stream still holds is
 * not read once the limit is reached. */
static int t_nodelim_after_chunks(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char buf[8];

    script_push_str(inner, "ab");
    script_push_str(inner, "cd");
    script_push_str(inner, "ef");
    script_push_str(inner, "gh\n");
    TU_ASSERT_RC(wharf_receive_until(b, "\n", 1, buf, 6), WHARF_ENODELIM);
    TU_ASSERT_RC(wharf_buffered_size(b), 6);
    assert_until(b, "\n", 10, "abcdefgh");
    wharf_free(b);
    return 0;
}
START_TEST(nodelim_after_chunks) { TU_RUN(t_nodelim_after_chunks, NULL); }
END_TEST

/* Fewer than max_bytes and then the end: IncompleteRead, not NoDelim. */
static int t_incomplete_below_max(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char buf[8];

    script_push_str(inner, "abc\r");
    script_end(inner);
    TU_ASSERT_RC(wharf_receive_until(b, "\r\n", 2, buf, 8), WHARF_EINCOMPLETE);
    assert_buffer(b, "abc\r");
    wharf_free(b);
    return 0;
}
START_TEST(incomplete_below_max) { TU_RUN(t_incomplete_below_max, NULL); }
END_TEST

static int t_delim_straddles_chunks(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);

    script_push_str(inner, "ab\r");
    script_push_str(inner, "\ncd");
    assert_until(b, "\r\n", 16, "ab");
    assert_buffer(b, "cd");
    wharf_free(b);
    return 0;
}
START_TEST(delim_straddles_chunks) { TU_RUN(t_delim_straddles_chunks, NULL); }
END_TEST

/* A long delimiter spread over three chunks, with a false start. */
static int t_multibyte_delim(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);

    script_push_str(inner, "x--E-");
    script_push_str(inner, "-EN");
    script_push_str(inner, "D--y");
    assert_until(b, "--END--", 16, "x--E");
    assert_buffer(b, "y");
    wharf_free(b);
    return 0;
}
START_TEST(multibyte_delim) { TU_RUN(t_multibyte_delim, NULL); }
END_TEST

/* Self-overlapping delimiter arriving one byte at a time. */
static int t_overlapping_delim(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);

    script_push_str(inner, "a");
    script_push_str(inner, "a");
    script_push_str(inner, "a");
    script_push_str(inner, "b");
    script_push_str(inner, "!");
    assert_until(b, "aab", 16, "a");
    assert_until(b, "!", 16, "");
    wharf_free(b);
    return 0;
}
START_TEST(overlapping_delim) { TU_RUN(t_overlapping_delim, NULL); }
END_TEST

/* Several lines in one chunk come out one by one without more reads; an
 * empty line is a 0-byte result. */
static int t_lines_in_one_chunk(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char buf[8];

    script_push_str(inner, "one\n\ntwo\nthr");
    script_end(inner);
    assert_until(b, "\n", 8, "one");
    assert_until(b, "\n", 8, "");
    assert_until(b, "\n", 8, "two");
    TU_ASSERT_RC(wharf_receive_until(b, "\n", 1, buf, 8), WHARF_EINCOMPLETE);
    assert_buffer(b, "thr");
    wharf_free(b);
    return 0;
}
START_TEST(lines_in_one_chunk) { TU_RUN(t_lines_in_one_chunk, NULL); }
END_TEST

/* A long line arriving one byte at a time, made of bytes that start the
 * delimiter: rescanning from the start on every chunk would take minutes,
 * the incremental search takes milliseconds. */
#define LONG_LINE 100000
static int t_long_line_incremental(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char *buf = malloc(LONG_LINE + 16);
    double t0;

    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < LONG_LINE; i++)
        script_push(inner, "\r", 1);
    script_push_str(inner, "\nz");
    t0 = wharf_clock();
    TU_ASSERT_RC(wharf_receive_until(b, "\r\n", 2, buf, LONG_LINE + 16), LONG_LINE - 1);
    ck_assert_double_lt(wharf_clock() - t0, 5.0);
    for (int i = 0; i < LONG_LINE - 1; i++)
        ck_assert_int_eq(buf[i], '\r');
    assert_buffer(b, "z");
    free(buf);
    wharf_free(b);
    return 0;
}
START_TEST(long_line_incremental) { TU_RUN(t_long_line_incremental, NULL); }
END_TEST

/* receive_exactly larger than any one chunk, and n == 0. */
static int t_exactly_across_many_chunks(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char buf[4];

    for (int i = 0; i < 10; i++)
        script_push(inner, &"0123456789"[i], 1);
    TU_ASSERT_RC(wharf_receive_exactly(b, buf, 0), 0);
    assert_exactly(b, "0123");
    assert_exactly(b, "456789");
    TU_ASSERT_RC(wharf_buffered_size(b), 0);
    wharf_free(b);
    return 0;
}
START_TEST(exactly_across_many_chunks) { TU_RUN(t_exactly_across_many_chunks, NULL); }
END_TEST

/* ---- bad input ----------------------------------------------------------- */

static int t_bad_arguments(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    struct wharf_stream *other = script_new();
    char buf[8];

    ck_assert_ptr_null(wharf_buffered_new(NULL));
    TU_ASSERT_RC(wharf_receive_exactly(NULL, buf, 1), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive_exactly(b, NULL, 1), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive_until(NULL, "\n", 1, buf, 8), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive_until(b, NULL, 1, buf, 8), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive_until(b, "\n", 0, buf, 8), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive_until(b, "\n", 1, NULL, 8), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive_until(b, "\n", 1, buf, 0), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_buffered_feed(NULL, "x", 1), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_buffered_feed(b, NULL, 1), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_buffered_size(NULL), 0);
    /* not a buffered stream */
    TU_ASSERT_RC(wharf_receive_exactly(other, buf, 1), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_receive_until(other, "\n", 1, buf, 8), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_buffered_feed(other, "x", 1), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_buffered_size(other), 0);
    wharf_free(other);
    wharf_free(b);
    wharf_free(NULL);
    return 0;
}
START_TEST(bad_arguments) { TU_RUN(t_bad_arguments, NULL); }
END_TEST

/* After close every call is ClosedResource, close again is a no-op, the
 * inner stream is closed once and freed with the wrapper. */
static int t_use_after_close(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char buf[8];
    int v;

    script_push_str(inner, "abc");
    TU_ASSERT_RC(wharf_buffered_feed(b, "xyz", 3), 0);
    TU_ASSERT_RC(wharf_close(b), 0);
    TU_ASSERT_RC(script_closes, 1);
    TU_ASSERT_RC(wharf_close(b), 0);
    TU_ASSERT_RC(script_closes, 1);
    TU_ASSERT_RC(wharf_receive(b, buf, sizeof(buf)), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive_nowait(b, buf, sizeof(buf)), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive_exactly(b, buf, 1), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive_until(b, "\n", 1, buf, 8), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_buffered_feed(b, "x", 1), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send(b, "x", 1), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send_eof(b), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_wait(b, WHARF_READABLE), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_getattr_int(b, WHARF_ATTR_FD, &v), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_buffered_size(b), 0);
    wharf_free(b);
    TU_ASSERT_RC(script_closes, 1);
    TU_ASSERT_RC(script_frees, 1);
    return 0;
}
START_TEST(use_after_close) { TU_RUN(t_use_after_close, NULL); }
END_TEST

static struct wharf_stream *shared;
static ssize_t shared_rc;

static int until_task(void *arg)
{
    char buf[16];

    shared_rc = wharf_receive_until(shared, "\n", 1, buf, sizeof(buf));
    return 0;
}

/* A second receiver while one waits: BusyResource; a close from another
 * task ends the wait with ClosedResource. */
static int t_busy_then_closed(void *arg)
{
    struct wharf_stream *inner;
    struct wharf_group *g = wharf_group_open();
    char buf[4];

    shared = buffered_script(&inner);
    shared_rc = 1;
    wharf_group_spawn(g, until_task, NULL);
    TU_ASSERT_RC(wharf_wait_all_tasks_blocked(), 0);
    TU_ASSERT_RC(wharf_receive_exactly(shared, buf, 1), WHARF_EBUSY);
    TU_ASSERT_RC(wharf_receive_until(shared, "\n", 1, buf, 4), WHARF_EBUSY);
    TU_ASSERT_RC(wharf_receive(shared, buf, 4), WHARF_EBUSY);
    TU_ASSERT_RC(wharf_close(shared), 0);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    TU_ASSERT_RC(shared_rc, WHARF_ECLOSED);
    wharf_free(shared);
    return 0;
}
START_TEST(busy_then_closed) { TU_RUN(t_busy_then_closed, NULL); }
END_TEST

/* ---- cancellation ---------------------------------------------------------- */

static int t_cancel_receive_until(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    struct wharf_scope sc;
    char buf[16];
    ssize_t r;

    script_push_str(inner, "abc");
    wharf_move_on_after(&sc, 0.02);
    r = wharf_receive_until(b, "\n", 1, buf, sizeof(buf));
    TU_ASSERT_RC(r, WHARF_ECANCELLED);
    TU_ASSERT_RC(wharf_scope_exit(&sc, (int)r), 0);
    ck_assert(wharf_scope_cancelled_caught(&sc));
    TU_ASSERT_RC(wharf_buffered_size(b), 3);
    script_push_str(inner, "def\nxyz");
    assert_until(b, "\n", sizeof(buf), "abcdef");
    assert_buffer(b, "xyz");
    wharf_free(b);
    return 0;
}
START_TEST(cancel_receive_until) { TU_RUN(t_cancel_receive_until, NULL); }
END_TEST

static int t_cancel_receive_exactly(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    struct wharf_scope sc;
    char buf[8];
    ssize_t r;

    script_push_str(inner, "ab");
    script_push_str(inner, "cd");
    wharf_move_on_after(&sc, 0.02);
    r = wharf_receive_exactly(b, buf, 6);
    TU_ASSERT_RC(r, WHARF_ECANCELLED);
    TU_ASSERT_RC(wharf_scope_exit(&sc, (int)r), 0);
    TU_ASSERT_RC(wharf_buffered_size(b), 4);
    script_push_str(inner, "ef");
    assert_exactly(b, "abcdef");
    wharf_free(b);
    return 0;
}
START_TEST(cancel_receive_exactly) { TU_RUN(t_cancel_receive_exactly, NULL); }
END_TEST

/* Receives cancelled at every stage of a line, many times over: every byte
 * sent comes out exactly once, in order. */
static int t_cancel_churn(void *arg)
{
    struct wharf_stream *inner, *b = buffered_script(&inner);
    char buf[64], got[4096];
    size_t ngot = 0;

    for (int i = 0; i < 200; i++) {
        struct wharf_scope sc;
        ssize_t r;

        script_push(inner, &"0123456789"[i % 10], 1);
        if (i % 7 == 6)
            script_push_str(inner, "\n");
        wharf_move_on_after(&sc, 0);
        r = wharf_receive_until(b, "\n", 1, buf, sizeof(buf));
        wharf_scope_exit(&sc, r < 0 ? (int)r : 0);
        if (r >= 0) {
            memcpy(got + ngot, buf, (size_t)r);
            ngot += (size_t)r;
        }
    }
    script_push_str(inner, "\n");
    ngot += (size_t)wharf_receive_until(b, "\n", 1, got + ngot, sizeof(got) - ngot);
    TU_ASSERT_RC(ngot, 200);
    for (size_t i = 0; i < ngot; i++)
        ck_assert_int_eq(got[i], '0' + (int)(i % 10));
    wharf_free(b);
    return 0;
}
START_TEST(cancel_churn) { TU_RUN(t_cancel_churn, NULL); }
END_TEST

/* ---- the AnyIO ports over memory byte streams ------------------------------ */

static struct wharf_stream *mem_tx, *mem_rx;

/* A buffered stream over the receive end of a new memory byte stream. */
static struct wharf_stream *buffered_memory(long max_chunks)
{
    struct wharf_stream *b;

    TU_ASSERT_RC(wharf_memstream_bytes_new(max_chunks, &mem_tx, &mem_rx), 0);
    ck_assert_ptr_nonnull(b = wharf_buffered_new(mem_rx));
    return b;
}

static int t_mem_receive_exactly(void *arg)
{
    struct wharf_stream *b = buffered_memory(2);

    TU_ASSERT_RC(wharf_send(mem_tx, "abcd", 4), 0);
    TU_ASSERT_RC(wharf_send(mem_tx, "efgh", 4), 0);
    assert_exactly(b, "abcdefgh");
    wharf_free(mem_tx);
    wharf_free(b);
    return 0;
}
START_TEST(mem_receive_exactly) { TU_RUN(t_mem_receive_exactly, NULL); }
END_TEST

static int t_mem_receive_exactly_incomplete(void *arg)
{
    struct wharf_stream *b = buffered_memory(1);
    char buf[8];

    TU_ASSERT_RC(wharf_send(mem_tx, "abcd", 4), 0);
    TU_ASSERT_RC(wharf_close(mem_tx), 0);
    TU_ASSERT_RC(wharf_receive_exactly(b, buf, 8), WHARF_EINCOMPLETE);
    assert_buffer(b, "abcd");
    wharf_free(mem_tx);
    wharf_free(b);
    return 0;
}
START_TEST(mem_receive_exactly_incomplete) { TU_RUN(t_mem_receive_exactly_incomplete, NULL); }
END_TEST

static int t_mem_receive_until(void *arg)
{
    struct wharf_stream *b = buffered_memory(2);

    TU_ASSERT_RC(wharf_send(mem_tx, "abcd", 4), 0);
    TU_ASSERT_RC(wharf_send(mem_tx, "efgh", 4), 0);
    assert_until(b, "de", 10, "abc");
    assert_until(b, "h", 10, "fg");
    wharf_free(mem_tx);
    wharf_free(b);
    return 0;
}
START_TEST(mem_receive_until) { TU_RUN(t_mem_receive_until, NULL); }
END_TEST

static int t_mem_receive_until_incomplete(void *arg)
{
    struct wharf_stream *b = buffered_memory(1);
    char buf[10];

    TU_ASSERT_RC(wharf_send(mem_tx, "abcd", 4), 0);
    TU_ASSERT_RC(wharf_close(mem_tx), 0);
    TU_ASSERT_RC(wharf_receive_until(b, "de", 2, buf, 10), WHARF_EINCOMPLETE);
    assert_buffer(b, "abcd");
    wharf_free(mem_tx);
    wharf_free(b);
    return 0;
}
START_TEST(mem_receive_until_incomplete) { TU_RUN(t_mem_receive_until_incomplete, NULL); }
END_TEST

/* BufferedByteStream(StapledObjectStream(send_stream, receive_stream)) of
 * one memory stream: the stream talks to itself. */
static int t_mem_buffered_stream(void *arg)
{
    struct wharf_stream *b;
    char buf[4];

    TU_ASSERT_RC(wharf_memstream_bytes_new(1, &mem_tx, &mem_rx), 0);
    ck_assert_ptr_nonnull(b = wharf_buffered_new(wharf_stapled_new(mem_tx, mem_rx)));
    TU_ASSERT_RC(wharf_send(mem_tx, "abcd", 4), 0);
    assert_exactly(b, "ab");
    assert_exactly(b, "cd");

    TU_ASSERT_RC(wharf_send_eof(b), 0);
    TU_ASSERT_RC(wharf_send_nowait(mem_tx, "abc", 3), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive_nowait(mem_rx, buf, sizeof(buf)), WHARF_EOF);

    TU_ASSERT_RC(wharf_close(b), 0);
    TU_ASSERT_RC(wharf_receive_nowait(mem_rx, buf, sizeof(buf)), WHARF_ECLOSED);
    wharf_free(b);
    return 0;
}
START_TEST(mem_buffered_stream) { TU_RUN(t_mem_buffered_stream, NULL); }
END_TEST

static int t_mem_feed_data(void *arg)
{
    struct wharf_stream *b;

    TU_ASSERT_RC(wharf_memstream_bytes_new(1, &mem_tx, &mem_rx), 0);
    ck_assert_ptr_nonnull(b = wharf_buffered_new(wharf_stapled_new(mem_tx, mem_rx)));
    TU_ASSERT_RC(wharf_send_nowait(mem_tx, "abcd", 4), 4);
    TU_ASSERT_RC(wharf_buffered_feed(b, "xxx", 3), 0);
    TU_ASSERT_RC(wharf_buffered_feed(b, "foo", 3), 0);
    assert_exactly(b, "xxxfooabcd");
    wharf_free(b);
    return 0;
}
START_TEST(mem_feed_data) { TU_RUN(t_mem_feed_data, NULL); }
END_TEST

/* A line protocol over an in-memory connection: a task sends lines cut
 * at awkward places, with pauses; the other side reads them line by line. */
static int send_lines(void *arg)
{
    static const char *parts[] = { "HELO x", "\r", "\nMAIL FROM:<a@b>\r\nRC", "PT TO:<c@d>\r", "\n" };
    struct wharf_stream *a = arg;

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        int rc = wharf_send(a, parts[i], strlen(parts[i]));

        if (rc)
            return rc;
        wharf_sleep(0.001);
    }
    return wharf_send_eof(a);
}

static int t_mem_pair_lines(void *arg)
{
    struct wharf_stream *a, *bs, *b;
    struct wharf_group *g = wharf_group_open();
    char buf[8];

    TU_ASSERT_RC(wharf_memstream_pair(0, &a, &bs), 0);
    ck_assert_ptr_nonnull(b = wharf_buffered_new(bs));
    wharf_group_spawn(g, send_lines, a);
    assert_until(b, "\r\n", 64, "HELO x");
    assert_until(b, "\r\n", 64, "MAIL FROM:<a@b>");
    assert_until(b, "\r\n", 64, "RCPT TO:<c@d>");
    TU_ASSERT_RC(wharf_receive_until(b, "\r\n", 2, buf, sizeof(buf)), WHARF_EINCOMPLETE);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    wharf_free(a);
    wharf_free(b);
    return 0;
}
START_TEST(mem_pair_lines) { TU_RUN(t_mem_pair_lines, NULL); }
END_TEST

/* A sender keeps sending numbered bytes while the receiver's receive_until
 * calls keep timing out: every byte arrives once and in order. */
#define CHURN_BYTES 300
static int churn_sender(void *arg)
{
    for (int i = 0; i < CHURN_BYTES; i++) {
        char c = (char)('0' + i % 10);
        int rc = wharf_send(mem_tx, &c, 1);

        if (rc)
            return rc;
        if (i % 3 == 0)
            wharf_sleep(0.0002);
    }
    return wharf_send(mem_tx, "\n", 1);
}

static int t_mem_cancel_churn(void *arg)
{
    struct wharf_stream *b = buffered_memory(0);
    struct wharf_group *g = wharf_group_open();
    char got[CHURN_BYTES + 1];
    ssize_t r;
    int cancels = 0;

    wharf_group_spawn(g, churn_sender, NULL);
    for (;;) {
        struct wharf_scope sc;

        wharf_move_on_after(&sc, 0.0003);
        r = wharf_receive_until(b, "\n", 1, got, sizeof(got));
        if (wharf_scope_exit(&sc, r < 0 ? (int)r : 0) == 0 && r < 0) {
            cancels++;
            continue;
        }
        break;
    }
    TU_ASSERT_RC(r, CHURN_BYTES);
    for (int i = 0; i < CHURN_BYTES; i++)
        ck_assert_int_eq(got[i], '0' + i % 10);
    ck_assert_int_gt(cancels, 0);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    wharf_free(mem_tx);
    wharf_free(b);
    return 0;
}
START_TEST(mem_cancel_churn) { TU_RUN(t_mem_cancel_churn, NULL); }
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("buffered");
    TCase *tc;

    tc = tcase_create("test_buffered");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, receive_exactly);
    tcase_add_test(tc, receive_exactly_incomplete);
    tcase_add_test(tc, receive_until);
    tcase_add_test(tc, receive_until_incomplete);
    tcase_add_test(tc, buffered_stream);
    tcase_add_test(tc, receive_invalid_max_bytes);
    tcase_add_test(tc, feed_data);
    tcase_add_test(tc, receive_buffered_first);
    tcase_add_test(tc, pass_through);
    suite_add_tcase(s, tc);

    tc = tcase_create("delimiter");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, nodelim_exactly_at_max);
    tcase_add_test(tc, delim_at_max_same_chunk);
    tcase_add_test(tc, delim_beyond_max);
    tcase_add_test(tc, nodelim_after_chunks);
    tcase_add_test(tc, incomplete_below_max);
    tcase_add_test(tc, delim_straddles_chunks);
    tcase_add_test(tc, multibyte_delim);
    tcase_add_test(tc, overlapping_delim);
    tcase_add_test(tc, lines_in_one_chunk);
    tcase_add_test(tc, long_line_incremental);
    tcase_add_test(tc, exactly_across_many_chunks);
    suite_add_tcase(s, tc);

    tc = tcase_create("misuse");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, use_after_close);
    tcase_add_test(tc, busy_then_closed);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancellation");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, cancel_receive_until);
    tcase_add_test(tc, cancel_receive_exactly);
    tcase_add_test(tc, cancel_churn);
    suite_add_tcase(s, tc);

    tc = tcase_create("memory");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, mem_receive_exactly);
    tcase_add_test(tc, mem_receive_exactly_incomplete);
    tcase_add_test(tc, mem_receive_until);
    tcase_add_test(tc, mem_receive_until_incomplete);
    tcase_add_test(tc, mem_buffered_stream);
    tcase_add_test(tc, mem_feed_data);
    tcase_add_test(tc, mem_pair_lines);
    tcase_add_test(tc, mem_cancel_churn);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
