/*
 * check_text.c: the UTF-8 text stream, ported from AnyIO's
 * tests/streams/test_text.py (4.x; the latin-1 send case does not carry
 * over: wharf text is UTF-8 only), plus characters split across chunks,
 * invalid input (overlong forms, surrogates, beyond U+10FFFF), replacement
 * by maximal subparts, misuse and cancellation.
 *
 * The tests run over a scripted byte stream (scripted.c): the test hands
 * it exact chunks, so where a chunk ends is under the test's control.
 */
#include "config.h"

#include <string.h>

#include "testutil.h"
#include "scripted.h"

#define FFFD "\xef\xbf\xbd"

/* A text stream over a new script; *inner is the script. */
static struct wharf_stream *text_script(struct wharf_stream **inner, unsigned flags)
{
    struct wharf_stream *t;

    *inner = script_new();
    ck_assert_ptr_nonnull(t = wharf_text_new(*inner, flags));
    return t;
}

/* Asserts that one receive (at most max bytes) returns exactly `want`. */
static void assert_text(struct wharf_stream *t, size_t max, const char *want)
{
    char buf[256];

    ck_assert_uint_le(max, sizeof(buf));
    TU_ASSERT_RC(wharf_receive(t, buf, max), (ssize_t)strlen(want));
    ck_assert_mem_eq(buf, want, strlen(want));
}

/* ---- AnyIO's test_text.py ---------------------------------------------- */

static int t_receive(void *arg)
{
    struct wharf_stream *inner, *t = text_script(&inner, 0);

    script_push_str(inner, "\xc3\xa5\xc3\xa4\xc3");  /* ends with half of "ö" */
    assert_text(t, 64, "åä");
    script_push_str(inner, "\xb6");
    assert_text(t, 64, "ö");
    wharf_free(t);
    return 0;
}
START_TEST(text_receive) { TU_RUN(t_receive, NULL); }
END_TEST

static int t_send(void *arg)
{
    struct wharf_stream *inner, *t = text_script(&inner, 0);

    TU_ASSERT_RC(wharf_send(t, "åäö", strlen("åäö")), 0);
    ck_assert_uint_eq(script_of(inner)->sc_nsent, 6);
    ck_assert_mem_eq(script_of(inner)->sc_sent, "\xc3\xa5\xc3\xa4\xc3\xb6", 6);
    wharf_free(t);
    return 0;
}
START_TEST(text_send) { TU_RUN(t_send, NULL); }
END_TEST

/* "åäö" in latin-1 with errors='replace': one U+FFFD per byte. */
static int t_receive_encoding_error(void *arg)
{
    struct wharf_stream *inner, *t = text_script(&inner, WHARF_TEXT_REPLACE);

    script_push_str(inner, "\xe5\xe4\xf6");
    assert_text(t, 64, FFFD FFFD FFFD);
    wharf_free(t);
    return 0;
}
START_TEST(receive_encoding_error) { TU_RUN(t_receive_encoding_error, NULL); }
END_TEST

/* TextStream over a stapled pipe: what it sends comes out of the pipe's
 * receiving end; what is sent into the pipe comes out as text. The scripts
 * have no WHARF_ATTR_FD (SCRIPT_NO_FD), so the lookup ends in -ENOENT. */
static int t_bidirectional_stream(void *arg)
{
    struct wharf_stream *tx = script_new_opts(SCRIPT_NO_FD);
    struct wharf_stream *rx = script_new_opts(SCRIPT_NO_FD), *t;
    char buf[16];
    int v;

    script_of(tx)->sc_peer = script_of(rx);
    ck_assert_ptr_nonnull(t = wharf_text_new(wharf_stapled_new(tx, rx), 0));
    TU_ASSERT_RC(wharf_send(t, "åäö", 6), 0);
    TU_ASSERT_RC(wharf_receive(rx, buf, sizeof(buf)), 6);
    ck_assert_mem_eq(buf, "\xc3\xa5\xc3\xa4\xc3\xb6", 6);
    TU_ASSERT_RC(wharf_send(tx, "\xc3\xa6\xc3\xb8", 4), 0);
    assert_text(t, 16, "æø");
    TU_ASSERT_RC(wharf_getattr_int(t, WHARF_ATTR_FD, &v), -ENOENT);
    ck_assert_str_eq(wharf_stream_kind(t), "text");
    wharf_free(t);
    TU_ASSERT_RC(script_frees, 2);
    return 0;
}
START_TEST(bidirectional_stream) { TU_RUN(t_bidirectional_stream, NULL); }
END_TEST

/* ---- chunk boundaries ----------------------------------------------------- */

/* A 4-byte character arriving one byte at a time is one receive: it never
 * returns 0 bytes while the stream is open. */
static int t_split_four_ways(void *arg)
{
    struct wharf_stream *inner, *t = text_script(&inner, 0);

    script_push_str(inner, "\xf0");
    script_push_str(inner, "\x9f");
    script_push_str(inner, "\x98");
    script_push_str(inner, "\x80");
    assert_text(t, 4, "\xf0\x9f\x98\x80");
    wharf_free(t);
    return 0;
}
START_TEST(split_four_ways) { TU_RUN(t_split_four_ways, NULL); }
END_TEST

/* Only whole characters fit the caller's buffer; the rest waits. */
static int t_small_max(void *arg)
{
    struct wharf_stream *inner, *t = text_script(&inner, 0);

    script_push_str(inner, "€€a\xf0\x9f\x98\x80");
    assert_text(t, 4, "€");
    assert_text(t, 5, "€a");
    assert_text(t, 4, "\xf0\x9f\x98\x80");
    wharf_free(t);
    return 0;
}
START_TEST(small_max) { TU_RUN(t_small_max, NULL); }
END_TEST

/* Every way of cutting a mixed text in two, read with several buffer
 * sizes, gives back the same text. */
static const char mixed[] = "a\xc3\xa5\xe2\x82\xac\xf0\x9f\x98\x80z\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf.";

static void read_all(struct wharf_stream *t, size_t max, char *out, size_t *n)
{
    char buf[64];
    ssize_t r;

    *n = 0;
    while ((r = wharf_receive(t, buf, max)) > 0) {
        memcpy(out + *n, buf, (size_t)r);
        *n += (size_t)r;
    }
    TU_ASSERT_RC(r, WHARF_EOF);
}

static int t_every_split(void *arg)
{
    size_t len = strlen(mixed), maxes[] = { 4, 5, 7, 64 };

    for (size_t cut = 0; cut <= len; cut++) {
        for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
            struct wharf_stream *inner, *t = text_script(&inner, 0);
            char out[64];
            size_t n;

            script_push(inner, mixed, cut);
            script_push(inner, mixed + cut, len - cut);
            script_end(inner);
            read_all(t, maxes[m], out, &n);
            ck_assert_uint_eq(n, len);
            ck_assert_mem_eq(out, mixed, len);
            wharf_free(t);
        }
    }
    return 0;
}
START_TEST(every_split) { TU_RUN(t_every_split, NULL); }
END_TEST

/* ---- invalid input -------------------------------------------------------- */

/* Strict: the valid text before the bad sequence comes first, then
 * -EILSEQ, then what follows it. */
static int t_invalid_strict(void *arg)
{
    struct wharf_stream *inner, *t = text_script(&inner, 0);
    char buf[16];

    script_push_str(inner, "ab\xff" "cd");
    assert_text(t, 16, "ab");
    TU_ASSERT_RC(wharf_receive(t, buf, sizeof(buf)), -EILSEQ);
    assert_text(t, 16, "cd");
    wharf_free(t);
    return 0;
}
START_TEST(invalid_strict) { TU_RUN(t_invalid_strict, NULL); }
END_TEST

/* Sequences that look like UTF-8 but are not, each -EILSEQ when strict and
 * U+FFFD per maximal subpart when replacing (what Python gives). */
static const struct {
    const char *in, *replaced;
} bad[] = {
    { "\x80", FFFD },                               /* lone continuation */
    { "\xc0\xaf", FFFD FFFD },                      /* overlong '/' */
    { "\xc1\xbf", FFFD FFFD },                      /* overlong */
    { "\xe0\x80\xaf", FFFD FFFD FFFD },             /* overlong, 3 bytes */
    { "\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD },    /* overlong, 4 bytes */
    { "\xed\xa0\x80", FFFD FFFD FFFD },             /* U+D800, a surrogate */
    { "\xed\xbf\xbf", FFFD FFFD FFFD },             /* U+DFFF */
    { "\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD },    /* U+110000 */
    { "\xf5\x80\x80\x80", FFFD FFFD FFFD FFFD },    /* beyond any plane */
    { "\xff", FFFD },
    { "\xe2\x82" "a", FFFD "a" },                   /* truncated, then ASCII */
    /* Unicode's own example (chapter 3, U+FFFD substitution) */
    { "\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64",
      "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d" },
};

static int t_invalid_sequences(void *arg)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct wharf_stream *inner, *t = text_script(&inner, 0);
        char buf[64];
        size_t n;
        ssize_t r;

        script_push_str(inner, bad[i].in);
        script_end(inner);
        r = wharf_receive(t, buf, sizeof(buf));
        if (bad[i].in[0] == 'a')
            r = wharf_receive(t, buf, sizeof(buf));   /* after the valid "a" */
        ck_assert_msg(r == -EILSEQ, "case %zu: got %zd", i, r);
        wharf_free(t);

        t = text_script(&inner, WHARF_TEXT_REPLACE);
        script_push_str(inner, bad[i].in);
        script_end(inner);
        read_all(t, 64, buf, &n);
        ck_assert_msg(n == strlen(bad[i].replaced) &&
                      memcmp(buf, bad[i].replaced, n) == 0, "case %zu", i);
        wharf_free(t);
    }
    return 0;
}
START_TEST(invalid_sequences) { TU_RUN(t_invalid_sequences, NULL); }
END_TEST

/* Replacements that do not fit the caller's buffer wait for the next call;
 * each receive returns at most max bytes of whole characters. */
static int t_replace_small_max(void *arg)
{
    struct wharf_stream *inner, *t = text_script(&inner, WHARF_TEXT_REPLACE);
    char out[64], buf[8];
    size_t n = 0;
    ssize_t r;

    script_push_str(inner, "\xff\xff\xff" "a\xff");
    script_end(inner);
    assert_text(t, 5, FFFD);
    while ((r = wharf_receive(t, buf, 4)) > 0) {
        ck_assert(r == 3 || r == 1 || r == 4);
        memcpy(out + n, buf, (size_t)r);
        n += (size_t)r;
    }
    TU_ASSERT_RC(r, WHARF_EOF);
    ck_assert_uint_eq(n, 10);
    ck_assert_mem_eq(out, FFFD FFFD "a" FFFD, 10);
    wharf_free(t);
    return 0;
}
START_TEST(replace_small_max) { TU_RUN(t_replace_small_max, NULL); }
END_TEST

/* The stream ends inside a character: -EILSEQ (U+FFFD when replacing),
 * then the end. */
static int t_eof_inside_character(void *arg)
{
    struct wharf_stream *inner, *t = text_script(&inner, 0);
    char buf[16];

    script_push_str(inner, "a\xe2\x82");
    script_end(inner);
    assert_text(t, 16, "a");
    TU_ASSERT_RC(wharf_receive(t, buf, sizeof(buf)), -EILSEQ);
    TU_ASSERT_RC(wharf_receive(t, buf, sizeof(buf)), WHARF_EOF);
    wharf_free(t);

    t = text_script(&inner, WHARF_TEXT_REPLACE);
    script_push_str(inner, "a\xf0\x9f\x98");
    script_end(inner);
    assert_text(t, 16, "a");
    assert_text(t, 16, FFFD);
    TU_ASSERT_RC(wharf_receive(t, buf, sizeof(buf)), WHARF_EOF);
    wharf_free(t);
    return 0;
}
START_TEST(eof_inside_character) { TU_RUN(t_eof_inside_character, NULL); }
END_TEST

/* send checks everything before sending anything. */
static int t_send_invalid(void *arg)
{
    struct wharf_stream *inner, *t = text_script(&inner, 0);

    TU_ASSERT_RC(wharf_send(t, "ok\xff", 3), -EILSEQ);
    TU_ASSERT_RC(wharf_send(t, "ok\xe2\x82", 4), -EILSEQ);     /* truncated */
    TU_ASSERT_RC(wharf_send(t, "\xed\xa0\x80", 3), -EILSEQ);   /* surrogate */
    TU_ASSERT_RC(wharf_send(t, "\xc0\xaf", 2), -EILSEQ);       /* overlong */
    ck_assert_uint_eq(script_of(inner)->sc_nsent, 0);
    TU_ASSERT_RC(wharf_send(t, "", 0), 0);
    TU_ASSERT_RC(wharf_send(t, "\xf4\x8f\xbf\xbf", 4), 0);     /* U+10FFFF */
    ck_assert_uint_eq(script_of(inner)->sc_nsent, 4);
    wharf_free(t);

    t = text_script(&inner, WHARF_TEXT_REPLACE);
    TU_ASSERT_RC(wharf_send(t, "a\xff" "b\xe2\x82", 5), 0);
    ck_assert_uint_eq(script_of(inner)->sc_nsent, 8);
    ck_assert_mem_eq(script_of(inner)->sc_sent, "a" FFFD "b" FFFD, 8);
    wharf_free(t);
    return 0;
}
START_TEST(send_invalid) { TU_RUN(t_send_invalid, NULL); }
END_TEST

/* ---- misuse --------------------------------------------------------------- */

static int t_bad_arguments(void *arg)
{
    struct wharf_stream *inner, *t = text_script(&inner, 0);
    char buf[4];

    ck_assert_ptr_null(wharf_text_new(NULL, 0));
    script_push_str(inner, "abcd");
    TU_ASSERT_RC(wharf_receive(t, buf, 0), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive(t, buf, 3), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive(t, NULL, 4), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_send(t, NULL, 1), WHARF_EINVAL);
    assert_text(t, 4, "abcd");
    wharf_free(t);
    return 0;
}
START_TEST(bad_arguments) { TU_RUN(t_bad_arguments, NULL); }
END_TEST

static int t_use_after_close(void *arg)
{
    struct wharf_stream *inner, *t = text_script(&inner, 0);
    char buf[8];
    int v;

    TU_ASSERT_RC(wharf_send_eof(t), 0);
    ck_assert(script_of(inner)->sc_sent_eof);
    script_push_str(inner, "a\xe2");
    TU_ASSERT_RC(wharf_close(t), 0);
    TU_ASSERT_RC(wharf_close(t), 0);
    TU_ASSERT_RC(script_closes, 1);
    TU_ASSERT_RC(wharf_receive(t, buf, sizeof(buf)), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send(t, "a", 1), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send_eof(t), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_getattr_int(t, WHARF_ATTR_FD, &v), WHARF_ECLOSED);
    wharf_free(t);
    TU_ASSERT_RC(script_closes, 1);
    TU_ASSERT_RC(script_frees, 1);
    return 0;
}
START_TEST(use_after_close) { TU_RUN(t_use_after_close, NULL); }
END_TEST

/* ---- cancellation ------------------------------------------------------- */

/* A receive cancelled while half a character is held back loses nothing. */
static int t_cancel_keeps_partial(void *arg)
{
    struct wharf_stream *inner, *t = text_script(&inner, 0);
    struct wharf_scope sc;
    char buf[8];
    ssize_t r;

    script_push_str(inner, "a\xe2");
    assert_text(t, 8, "a");
    wharf_move_on_after(&sc, 0.02);
    r = wharf_receive(t, buf, sizeof(buf));
    TU_ASSERT_RC(r, WHARF_ECANCELLED);
    TU_ASSERT_RC(wharf_scope_exit(&sc, (int)r), 0);
    script_push_str(inner, "\x82");
    script_push_str(inner, "\xac!");
    assert_text(t, 8, "€!");
    wharf_free(t);
    return 0;
}
START_TEST(cancel_keeps_partial) { TU_RUN(t_cancel_keeps_partial, NULL); }
END_TEST

/* ---- over memory streams ------------------------------------------------- */

/* AnyIO's test_receive and test_bidirectional_stream over memory byte
 * streams. */
static int t_memory_receive(void *arg)
{
    struct wharf_stream *tx, *rx, *t;

    TU_ASSERT_RC(wharf_memstream_bytes_new(1, &tx, &rx), 0);
    ck_assert_ptr_nonnull(t = wharf_text_new(rx, 0));
    TU_ASSERT_RC(wharf_send(tx, "\xc3\xa5\xc3\xa4\xc3", 5), 0);
    assert_text(t, 64, "åä");
    TU_ASSERT_RC(wharf_send(tx, "\xb6", 1), 0);
    assert_text(t, 64, "ö");
    wharf_free(tx);
    wharf_free(t);
    return 0;
}
START_TEST(memory_receive) { TU_RUN(t_memory_receive, NULL); }
END_TEST

static int t_memory_bidirectional(void *arg)
{
    struct wharf_stream *tx, *rx, *t;
    char buf[16];

    TU_ASSERT_RC(wharf_memstream_bytes_new(1, &tx, &rx), 0);
    ck_assert_ptr_nonnull(t = wharf_text_new(wharf_stapled_new(tx, rx), 0));
    TU_ASSERT_RC(wharf_send(t, "åäö", 6), 0);
    TU_ASSERT_RC(wharf_receive(rx, buf, sizeof(buf)), 6);
    ck_assert_mem_eq(buf, "\xc3\xa5\xc3\xa4\xc3\xb6", 6);
    TU_ASSERT_RC(wharf_send(tx, "\xc3\xa6\xc3\xb8", 4), 0);
    assert_text(t, 16, "æø");
    TU_ASSERT_RC(wharf_send_eof(t), 0);
    TU_ASSERT_RC(wharf_receive(t, buf, sizeof(buf)), WHARF_EOF);
    wharf_free(t);
    return 0;
}
START_TEST(memory_bidirectional) { TU_RUN(t_memory_bidirectional, NULL); }
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("text");
    TCase *tc;

    tc = tcase_create("test_text");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, text_receive);
    tcase_add_test(tc, text_send);
    tcase_add_test(tc, receive_encoding_error);
    tcase_add_test(tc, bidirectional_stream);
    suite_add_tcase(s, tc);

    tc = tcase_create("chunks");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, split_four_ways);
    tcase_add_test(tc, small_max);
    tcase_add_test(tc, every_split);
    suite_add_tcase(s, tc);

    tc = tcase_create("invalid");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, invalid_strict);
    tcase_add_test(tc, invalid_sequences);
    tcase_add_test(tc, replace_small_max);
    tcase_add_test(tc, eof_inside_character);
    tcase_add_test(tc, send_invalid);
    suite_add_tcase(s, tc);

    tc = tcase_create("misuse");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, use_after_close);
    tcase_add_test(tc, cancel_keeps_partial);
    suite_add_tcase(s, tc);

    tc = tcase_create("memory");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, memory_receive);
    tcase_add_test(tc, memory_bidirectional);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
