/*
 * check_stapled.c: the stapled stream, ported from AnyIO's
 * tests/streams/test_stapled.py (4.x), plus attribute lookup order, NULL
 * arguments, double close and ownership.
 *
 * The dummies below are AnyIO's: a receive stream that hands out what it
 * was given and a send stream that keeps what it is sent, for bytes and for
 * objects. AnyIO's byte dummy returns b"" when empty; ours returns
 * WHARF_EOF, which is what a wharf byte stream does instead.
 */
#include "config.h"

#include <string.h>

#include "testutil.h"
#include "wharf-int.h"

/* ---- dummy streams ------------------------------------------------------ */

struct dummy {
    struct wharf_stream d_head;
    char d_bytes[64];            /* to receive, or received by send */
    size_t d_len, d_off;
    void *d_items[8];            /* to receive, or received by send_item */
    size_t d_nitems, d_first;
    int d_fd;                    /* WHARF_ATTR_FD when nonzero */
    int d_port;                  /* WHARF_ATTR_REMOTE_PORT when nonzero */
    bool d_closed;
};

/* Per forked test: closes that happened (not the repeated ones) and frees. */
static int dummy_closes, dummy_frees;

static struct dummy *dummy_of(struct wharf_stream *s)
{
    return (struct dummy *)s;
}

static ssize_t dummy_receive(struct wharf_stream *s, void *buf, size_t max)
{
    struct dummy *d = dummy_of(s);
    size_t n = d->d_len - d->d_off;

    if (d->d_closed)
        return WHARF_ECLOSED;
    if (n == 0)
        return WHARF_EOF;
    n = n < max ? n : max;
    memcpy(buf, d->d_bytes + d->d_off, n);
    d->d_off += n;
    return (ssize_t)n;
}

static int dummy_send(struct wharf_stream *s, const void *buf, size_t len)
{
    struct dummy *d = dummy_of(s);

    if (d->d_closed)
        return WHARF_ECLOSED;
    ck_assert_uint_le(d->d_len + len, sizeof(d->d_bytes));
    memcpy(d->d_bytes + d->d_len, buf, len);
    d->d_len += len;
    return 0;
}

static ssize_t dummy_send_nowait(struct wharf_stream *s, const void *buf, size_t len)
{
    int r = dummy_send(s, buf, len);

    return r ? r : (ssize_t)len;
}

static int dummy_receive_item(struct wharf_stream *s, void **item)
{
    struct dummy *d = dummy_of(s);

    if (d->d_closed)
        return WHARF_ECLOSED;
    if (d->d_first == d->d_nitems)
        return WHARF_EOF;
    *item = d->d_items[d->d_first++];
    return 0;
}

static int dummy_send_item(struct wharf_stream *s, void *item)
{
    struct dummy *d = dummy_of(s);

    if (d->d_closed)
        return WHARF_ECLOSED;
    ck_assert_uint_lt(d->d_nitems, 8);
    d->d_items[d->d_nitems++] = item;
    return 0;
}

static int dummy_getattr(struct wharf_stream *s, int attr, void *out, size_t *len)
{
    struct dummy *d = dummy_of(s);

    if (d->d_closed)
        return WHARF_ECLOSED;
    if (attr == WHARF_ATTR_FD && d->d_fd)
        return stream_attr_int(out, len, d->d_fd);
    if (attr == WHARF_ATTR_REMOTE_PORT && d->d_port)
        return stream_attr_int(out, len, d->d_port);
    return -ENOENT;
}

static int dummy_close(struct wharf_stream *s)
{
    if (!dummy_of(s)->d_closed)
        dummy_closes++;
    dummy_of(s)->d_closed = true;
    return 0;
}

static void dummy_free(struct wharf_stream *s)
{
    dummy_frees++;
    free(s);
}

/* What AnyIO's plain dummies can do: no *_nowait. */
static const struct wharf_stream_ops dummy_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "dummy",
    .receive = dummy_receive,
    .send = dummy_send,
    .receive_item = dummy_receive_item,
    .send_item = dummy_send_item,
    .getattr = dummy_getattr,
    .close = dummy_close,
    .free = dummy_free,
};

/* DummyObjectSendStreamWithSendNowait: send_item_nowait too (and bytes). */
static const struct wharf_stream_ops dummy_nowait_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "dummy",
    .receive = dummy_receive,
    .send = dummy_send,
    .send_nowait = dummy_send_nowait,
    .receive_item = dummy_receive_item,
    .send_item = dummy_send_item,
    .send_item_nowait = dummy_send_item,
    .getattr = dummy_getattr,
    .close = dummy_close,
    .free = dummy_free,
};

static struct dummy *dummy_new(const struct wharf_stream_ops *ops)
{
    struct dummy *d = calloc(1, sizeof(*d));

    ck_assert_ptr_nonnull(d);
    wharf_stream_init(&d->d_head, ops, NULL);
    return d;
}

/* The fixtures of AnyIO's two test classes. */
static struct dummy *tx, *rx;

static struct wharf_stream *stapled_bytes(void)
{
    struct wharf_stream *s;

    tx = dummy_new(&dummy_ops);
    rx = dummy_new(&dummy_ops);
    strcpy(rx->d_bytes, "hello, world");
    rx->d_len = strlen(rx->d_bytes);
    ck_assert_ptr_nonnull(s = wharf_stapled_new(&tx->d_head, &rx->d_head));
    return s;
}

static struct wharf_stream *stapled_objects(const struct wharf_stream_ops *send_ops)
{
    struct wharf_stream *s;

    tx = dummy_new(send_ops);
    rx = dummy_new(&dummy_ops);
    rx->d_items[0] = "hello";
    rx->d_items[1] = "world";
    rx->d_nitems = 2;
    ck_assert_ptr_nonnull(s = wharf_stapled_new(&tx->d_head, &rx->d_head));
    return s;
}

static void assert_receive(struct wharf_stream *s, size_t max, const char *want)
{
    char buf[64];

    TU_ASSERT_RC(wharf_receive(s, buf, max), (ssize_t)strlen(want));
    ck_assert_mem_eq(buf, want, strlen(want));
}

static void assert_item(struct wharf_stream *s, const char *want)
{
    void *item = NULL;

    TU_ASSERT_RC(wharf_receive_item(s, &item), 0);
    ck_assert_str_eq(item, want);
}

/* ---- TestStapledByteStream ---------------------------------------------- */

static int t_bytes_receive_send(void *arg)
{
    struct wharf_stream *s = stapled_bytes();
    char buf[8];

    assert_receive(s, 3, "hel");
    assert_receive(s, 64, "lo, world");
    TU_ASSERT_RC(wharf_receive(s, buf, sizeof(buf)), WHARF_EOF);
    TU_ASSERT_RC(wharf_send(s, "how are you ", 12), 0);
    TU_ASSERT_RC(wharf_send(s, "today?", 6), 0);
    ck_assert_uint_eq(tx->d_len, 18);
    ck_assert_mem_eq(tx->d_bytes, "how are you today?", 18);
    ck_assert_str_eq(wharf_stream_kind(s), "stapled");
    wharf_free(s);
    return 0;
}
START_TEST(bytes_receive_send) { TU_RUN(t_bytes_receive_send, NULL); }
END_TEST

static int t_bytes_send_eof(void *arg)
{
    struct wharf_stream *s = stapled_bytes();

    TU_ASSERT_RC(wharf_send_eof(s), 0);
    TU_ASSERT_RC(wharf_send_eof(s), 0);
    TU_ASSERT_RC(wharf_send(s, "world", 5), WHARF_ECLOSED);
    assert_receive(s, 64, "hello, world");
    TU_ASSERT_RC(dummy_closes, 1);
    wharf_free(s);
    return 0;
}
START_TEST(bytes_send_eof) { TU_RUN(t_bytes_send_eof, NULL); }
END_TEST

static int t_bytes_aclose(void *arg)
{
    struct wharf_stream *s = stapled_bytes();
    char buf[8];

    TU_ASSERT_RC(wharf_close(s), 0);
    TU_ASSERT_RC(wharf_receive(s, buf, sizeof(buf)), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send(s, "", 0), WHARF_ECLOSED);
    ck_assert(tx->d_closed && rx->d_closed);
    wharf_free(s);
    return 0;
}
START_TEST(bytes_aclose) { TU_RUN(t_bytes_aclose, NULL); }
END_TEST

static int t_bytes_invalid_max_bytes(void *arg)
{
    struct wharf_stream *s = stapled_bytes();
    char buf[8];

    TU_ASSERT_RC(wharf_receive(s, buf, 0), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive(s, NULL, 8), WHARF_EINVAL);
    wharf_free(s);
    return 0;
}
START_TEST(bytes_invalid_max_bytes) { TU_RUN(t_bytes_invalid_max_bytes, NULL); }
END_TEST

/* ---- TestStapledObjectStream ------------------------------------------ */

static int t_objects_receive_send(void *arg)
{
    struct wharf_stream *s = stapled_objects(&dummy_ops);
    void *item;

    assert_item(s, "hello");
    assert_item(s, "world");
    TU_ASSERT_RC(wharf_receive_item(s, &item), WHARF_EOF);
    TU_ASSERT_RC(wharf_send_item(s, "how are you "), 0);
    TU_ASSERT_RC(wharf_send_item(s, "today?"), 0);
    ck_assert_uint_eq(tx->d_nitems, 2);
    ck_assert_str_eq(tx->d_items[0], "how are you ");
    ck_assert_str_eq(tx->d_items[1], "today?");
    wharf_free(s);
    return 0;
}
START_TEST(objects_receive_send) { TU_RUN(t_objects_receive_send, NULL); }
END_TEST

static int t_send_nowait_implemented(void *arg)
{
    struct wharf_stream *s = stapled_objects(&dummy_nowait_ops);

    TU_ASSERT_RC(wharf_send_item_nowait(s, "hello"), 0);
    ck_assert_uint_eq(tx->d_nitems, 1);
    ck_assert_str_eq(tx->d_items[0], "hello");
    TU_ASSERT_RC(wharf_send_nowait(s, "ab", 2), 2);
    ck_assert_mem_eq(tx->d_bytes, "ab", 2);
    wharf_free(s);
    return 0;
}
START_TEST(send_nowait_implemented) { TU_RUN(t_send_nowait_implemented, NULL); }
END_TEST

static int t_send_nowait_not_implemented(void *arg)
{
    struct wharf_stream *s = stapled_objects(&dummy_ops);
    void *item;
    char buf[4];

    TU_ASSERT_RC(wharf_send_item_nowait(s, "hello"), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_send_nowait(s, "ab", 2), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_receive_item_nowait(s, &item), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_receive_nowait(s, buf, sizeof(buf)), WHARF_ENOTSUP);
    ck_assert_uint_eq(tx->d_nitems, 0);
    wharf_free(s);
    return 0;
}
START_TEST(send_nowait_not_implemented) { TU_RUN(t_send_nowait_not_implemented, NULL); }
END_TEST

static int t_objects_send_eof(void *arg)
{
    struct wharf_stream *s = stapled_objects(&dummy_ops);

    TU_ASSERT_RC(wharf_send_eof(s), 0);
    TU_ASSERT_RC(wharf_send_eof(s), 0);
    TU_ASSERT_RC(wharf_send_item(s, "world"), WHARF_ECLOSED);
    assert_item(s, "hello");
    assert_item(s, "world");
    wharf_free(s);
    return 0;
}
START_TEST(objects_send_eof) { TU_RUN(t_objects_send_eof, NULL); }
END_TEST

static int t_objects_aclose(void *arg)
{
    struct wharf_stream *s = stapled_objects(&dummy_ops);
    void *item;

    TU_ASSERT_RC(wharf_close(s), 0);
    TU_ASSERT_RC(wharf_receive_item(s, &item), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send_item(s, ""), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send_item_nowait(s, ""), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive_item_nowait(s, &item), WHARF_ECLOSED);
    wharf_free(s);
    return 0;
}
START_TEST(objects_aclose) { TU_RUN(t_objects_aclose, NULL); }
END_TEST

/* ---- attributes, misuse, ownership -------------------------------------- */

/* The send stream answers first, the receive stream second; after
 * send_eof only the receive stream is asked; after close nothing is. */
static int t_attributes(void *arg)
{
    struct wharf_stream *s = stapled_bytes();
    int v = 0;

    tx->d_fd = 1;
    rx->d_fd = 2;
    rx->d_port = 8080;
    TU_ASSERT_RC(wharf_getattr_int(s, WHARF_ATTR_FD, &v), 0);
    ck_assert_int_eq(v, 1);
    TU_ASSERT_RC(wharf_getattr_int(s, WHARF_ATTR_REMOTE_PORT, &v), 0);
    ck_assert_int_eq(v, 8080);
    TU_ASSERT_RC(wharf_getattr_int(s, WHARF_ATTR_LOCAL_PORT, &v), -ENOENT);
    TU_ASSERT_RC(wharf_send_eof(s), 0);
    TU_ASSERT_RC(wharf_getattr_int(s, WHARF_ATTR_FD, &v), 0);
    ck_assert_int_eq(v, 2);
    TU_ASSERT_RC(wharf_close(s), 0);
    TU_ASSERT_RC(wharf_getattr_int(s, WHARF_ATTR_FD, &v), WHARF_ECLOSED);
    wharf_free(s);
    return 0;
}
START_TEST(attributes) { TU_RUN(t_attributes, NULL); }
END_TEST

/* NULL (or twice the same stream) gives NULL and the streams stay ours. */
static int t_bad_arguments(void *arg)
{
    struct dummy *a = dummy_new(&dummy_ops);

    ck_assert_ptr_null(wharf_stapled_new(NULL, &a->d_head));
    ck_assert_ptr_null(wharf_stapled_new(&a->d_head, NULL));
    ck_assert_ptr_null(wharf_stapled_new(NULL, NULL));
    ck_assert_ptr_null(wharf_stapled_new(&a->d_head, &a->d_head));
    TU_ASSERT_RC(dummy_closes + dummy_frees, 0);
    TU_ASSERT_RC(wharf_send(&a->d_head, "x", 1), 0);
    wharf_free(&a->d_head);
    return 0;
}
START_TEST(bad_arguments) { TU_RUN(t_bad_arguments, NULL); }
END_TEST

/* close closes both once, close again is a no-op, free frees both. */
static int t_close_twice_and_free(void *arg)
{
    struct wharf_stream *s = stapled_bytes();

    TU_ASSERT_RC(wharf_close(s), 0);
    TU_ASSERT_RC(dummy_closes, 2);
    TU_ASSERT_RC(wharf_close(s), 0);
    TU_ASSERT_RC(wharf_send_eof(s), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_wait(s, WHARF_READABLE), WHARF_ECLOSED);
    TU_ASSERT_RC(dummy_closes, 2);
    wharf_free(s);
    TU_ASSERT_RC(dummy_frees, 2);
    /* free without close closes too */
    s = stapled_bytes();
    wharf_free(s);
    TU_ASSERT_RC(dummy_closes, 4);
    TU_ASSERT_RC(dummy_frees, 4);
    return 0;
}
START_TEST(close_twice_and_free) { TU_RUN(t_close_twice_and_free, NULL); }
END_TEST

/* A stream that cannot wait: the stapled wait says so for its direction,
 * and does not wait on both directions at once. */
static int t_wait_forwarding(void *arg)
{
    struct wharf_stream *s = stapled_bytes();

    TU_ASSERT_RC(wharf_wait(s, WHARF_READABLE), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_wait(s, WHARF_WRITABLE), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_wait(s, WHARF_READABLE | WHARF_WRITABLE), WHARF_ENOTSUP);
    wharf_free(s);
    return 0;
}
START_TEST(wait_forwarding) { TU_RUN(t_wait_forwarding, NULL); }
END_TEST

/* ---- over memory streams ------------------------------------------------- */

/* Two memory object streams stapled crosswise: items go out through one
 * and come in through the other; send_eof and close reach the right ends. */
static int t_memory_objects(void *arg)
{
    struct wharf_stream *s1, *r1, *s2, *r2, *st;
    void *item = NULL;

    TU_ASSERT_RC(wharf_memstream_new(1, NULL, &s1, &r1), 0);
    TU_ASSERT_RC(wharf_memstream_new(1, NULL, &s2, &r2), 0);
    ck_assert_ptr_nonnull(st = wharf_stapled_new(s1, r2));
    TU_ASSERT_RC(wharf_send_item(st, "out"), 0);
    TU_ASSERT_RC(wharf_receive_item(r1, &item), 0);
    ck_assert_str_eq(item, "out");
    TU_ASSERT_RC(wharf_send_item(s2, "in"), 0);
    assert_item(st, "in");
    TU_ASSERT_RC(wharf_send_item_nowait(st, "nowait"), 0);
    TU_ASSERT_RC(wharf_send_item_nowait(st, "full"), WHARF_EWOULDBLOCK);
    TU_ASSERT_RC(wharf_receive_item_nowait(st, &item), WHARF_EWOULDBLOCK);
    TU_ASSERT_RC(wharf_send_eof(st), 0);
    TU_ASSERT_RC(wharf_receive_item(r1, &item), 0);
    ck_assert_str_eq(item, "nowait");
    TU_ASSERT_RC(wharf_receive_item(r1, &item), WHARF_EOF);
    TU_ASSERT_RC(wharf_close(st), 0);
    TU_ASSERT_RC(wharf_send_item(s2, "late"), WHARF_EBROKEN);
    wharf_free(st);
    wharf_free(r1);
    wharf_free(s2);
    return 0;
}
START_TEST(memory_objects) { TU_RUN(t_memory_objects, NULL); }
END_TEST

/* wharf_memstream_pair is two stapled streams: a conversation, then EOF. */
static int t_memory_pair(void *arg)
{
    struct wharf_stream *a, *b;
    char buf[8];

    TU_ASSERT_RC(wharf_memstream_pair(1, &a, &b), 0);
    ck_assert_str_eq(wharf_stream_kind(a), "stapled");
    TU_ASSERT_RC(wharf_send(a, "ping", 4), 0);
    assert_receive(b, 8, "ping");
    TU_ASSERT_RC(wharf_send(b, "pong", 4), 0);
    assert_receive(a, 8, "pong");
    TU_ASSERT_RC(wharf_send_eof(a), 0);
    TU_ASSERT_RC(wharf_receive(b, buf, sizeof(buf)), WHARF_EOF);
    TU_ASSERT_RC(wharf_send(b, "late", 4), 0);
    assert_receive(a, 8, "late");
    TU_ASSERT_RC(wharf_close(b), 0);
    TU_ASSERT_RC(wharf_receive(b, buf, sizeof(buf)), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_receive(a, buf, sizeof(buf)), WHARF_EOF);
    wharf_free(a);
    wharf_free(b);
    return 0;
}
START_TEST(memory_pair) { TU_RUN(t_memory_pair, NULL); }
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stapled");
    TCase *tc;

    tc = tcase_create("TestStapledByteStream");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, bytes_receive_send);
    tcase_add_test(tc, bytes_send_eof);
    tcase_add_test(tc, bytes_aclose);
    tcase_add_test(tc, bytes_invalid_max_bytes);
    suite_add_tcase(s, tc);

    tc = tcase_create("TestStapledObjectStream");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, objects_receive_send);
    tcase_add_test(tc, send_nowait_implemented);
    tcase_add_test(tc, send_nowait_not_implemented);
    tcase_add_test(tc, objects_send_eof);
    tcase_add_test(tc, objects_aclose);
    suite_add_tcase(s, tc);

    tc = tcase_create("misuse");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, attributes);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, close_twice_and_free);
    tcase_add_test(tc, wait_forwarding);
    suite_add_tcase(s, tc);

    tc = tcase_create("memory");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, memory_objects);
    tcase_add_test(tc, memory_pair);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
