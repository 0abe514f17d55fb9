/*
 * testutil.h: what every Check suite of libwharf shares. Tests run in
 * Check's fork mode (the default): an assertion that fails inside a task
 * exits the forked child, which is safe from any stack.
 */
#ifndef WHARF_TESTUTIL_H
#define WHARF_TESTUTIL_H

#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <wharf/wharf.h>

/* Runs fn(arg) as the first task of a new scheduler; asserts it returned 0. */
#define TU_RUN(fn, arg) ck_assert_int_eq(wharf_run((fn), (arg)), 0)

/* Asserts a wharf result code, printing both names on failure. */
#define TU_ASSERT_RC(got, want)                                                 \
    do {                                                                        \
        long tu_g_ = (long)(got), tu_w_ = (long)(want);                         \
        ck_assert_msg(tu_g_ == tu_w_, "%s: got %ld (%s), want %ld (%s)", #got,  \
                      tu_g_, wharf_strerror((int)tu_g_), tu_w_,                 \
                      wharf_strerror((int)tu_w_));                              \
    } while (0)

/* Runs the suite, prints Check's summary, returns the process exit code. */
int tu_run_suite(Suite *s);

/* Whether ::1 can be bound with a socket of type socktype here (IPv6 may be
 * off in a container); tests of IPv6 cases skip with a note when not. */
bool tu_ipv6_loopback_ok(int socktype);

/* A temporary directory for the test (removed by the caller's cleanup). */
const char *tu_tmpdir(void);

/* How many pages of [lo, hi) (page-aligned, 64 pages at most) are in
 * memory (mincore). */
size_t tu_resident_pages(const char *lo, const char *hi);

#endif /* WHARF_TESTUTIL_H */
