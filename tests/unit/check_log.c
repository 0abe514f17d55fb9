/*
 * check_log.c: the daemon's log (src/log.c): the line format on stderr and
 * in a log file, the journal's priority prefixes, levels, reopening the
 * file (SIGUSR1, logrotate), and the per-listener rate limit that keeps a
 * misbehaving peer from flooding the log (SPEC.md section 8).
 */
#include "config.h"

#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "testutil.h"
#include "wharfd.h"

static char path[512];

static void setup(void)
{
    snprintf(path, sizeof(path), "%s/log-%ld", tu_tmpdir(), (long)getpid());
    unlink(path);
}

static void teardown(void)
{
    log_close();
    unlink(path);
}

/* The whole file, NUL-terminated (static: tests are small). */
static const char *slurp(const char *p)
{
    static char buf[65536];
    int fd = open(p, O_RDONLY);
    ssize_t n;

    ck_assert_int_ge(fd, 0);
    n = read(fd, buf, sizeof(buf) - 1);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    close(fd);
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void assert_match(const char *text, const char *pattern)
{
    regex_t re;

    ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE), 0);
    ck_assert_msg(regexec(&re, text, 0, NULL, 0) == 0, "\"%s\" does not match /%s/", text,
                  pattern);
    regfree(&re);
}

START_TEST(test_file_format_and_levels)
{
    const char *s;

    ck_assert_int_eq(log_open(CONF_LOG_INFO, true, path), 0);
    ck_assert(!log_to_stderr());
    log_info("listener \"%s\": ready", "hello");
    log_warning("a warning");
    log_debug("not at info level");
    s = slurp(path);
    ck_assert_int_eq(count_lines(s), 2);
    assert_match(s, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                    "info: listener \"hello\": ready$");
    assert_match(s, "Z warning: a warning$");
    ck_assert_ptr_null(strstr(s, "not at info level"));
    log_set_level(CONF_LOG_DEBUG);
    log_debug("now it is");
    assert_match(slurp(path), "Z debug: now it is$");
}
END_TEST

START_TEST(test_file_appends)
{
    int fd = open(path, O_WRONLY | O_CREAT, 0600);

    ck_assert_int_eq(write(fd, "old line\n", 9), 9);
    close(fd);
    ck_assert_int_eq(log_open(CONF_LOG_INFO, false, path), 0);
    log_error("new line");
    assert_match(slurp(path), "^old line\n.*error: new line$");
}
END_TEST

START_TEST(test_file_cannot_open)
{
    char bad[600];

    snprintf(bad, sizeof(bad), "%s/no/such/dir/log", tu_tmpdir());
    ck_assert_int_eq(log_open(CONF_LOG_INFO, true, bad), -ENOENT);
}
END_TEST

/* logrotate moves the file away and sends SIGUSR1: new lines go to a new
 * file at the configured path, nothing is lost. */
START_TEST(test_reopen)
{
    char moved[600];

    snprintf(moved, sizeof(moved), "%s.1", path);
    ck_assert_int_eq(log_open(CONF_LOG_INFO, true, path), 0);
    log_info("before");
    ck_assert_int_eq(rename(path, moved), 0);
    log_info("still to the old file");
    ck_assert_int_eq(log_reopen(), 0);
    log_info("after");
    ck_assert_int_eq(count_lines(slurp(moved)), 2);
    assert_match(slurp(path), "^[^\n]*info: after\n$");
    unlink(moved);
}
END_TEST

/* stderr is the journal when JOURNAL_STREAM names its device and inode:
 * then "<N>" prefixes and no timestamp; a stale JOURNAL_STREAM (stderr
 * redirected since) is ignored. Check runs each test in its own process,
 * so stderr can be moved here. */
static void stderr_to_file(void)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
}

START_TEST(test_journal_prefixes)
{
    struct stat st;
    char js[64];
    const char *s;

    stderr_to_file();
    ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    ck_assert_int_eq(log_open(CONF_LOG_DEBUG, false, NULL), 0);
    ck_assert(log_to_stderr());
    log_error("e");
    log_warning("w");
    log_info("i");
    log_debug("d");
    s = slurp(path);
    ck_assert_str_eq(s, "<3>e\n<4>w\n<6>i\n<7>d\n");
}
END_TEST

START_TEST(test_stderr_plain_without_journal)
{
    stderr_to_file();
    setenv("JOURNAL_STREAM", "1:2", 1);     /* someone else's stream */
    ck_assert_int_eq(log_open(CONF_LOG_INFO, true, NULL), 0);
    log_info("plain");
    assert_match(slurp(path), "^[0-9-]{10}T[0-9:.]{12}Z info: plain\n$");
}
END_TEST

static void wait_next_second(void)
{
    time_t t = time(NULL);

    while (time(NULL) == t)
        usleep(10000);
}

/* A flood within one second gives one line; the next second's first line
 * says how many were left out. */
START_TEST(test_rate_limit)
{
    struct log_limit lim = { 0 };
    const char *s;

    ck_assert_int_eq(log_open(CONF_LOG_INFO, true, path), 0);
    wait_next_second();
    for (int i = 0; i < 1000; i++)
        log_limited(&lim, CONF_LOG_INFO, "peer %d misbehaved", i);
    ck_assert_int_eq(count_lines(slurp(path)), 1);
    wait_next_second();
    log_limited(&lim, CONF_LOG_INFO, "peer %d misbehaved", 1000);
    s = slurp(path);
    ck_assert_int_eq(count_lines(s), 2);
    assert_match(s, "info: peer 0 misbehaved$");
    assert_match(s, "info: peer 1000 misbehaved \\(999 more like it not logged\\)$");
}
END_TEST

/* Limiters are independent: one noisy listener does not silence another. */
START_TEST(test_rate_limit_per_listener)
{
    struct log_limit a = { 0 }, b = { 0 };

    ck_assert_int_eq(log_open(CONF_LOG_INFO, true, path), 0);
    wait_next_second();
    log_limited(&a, CONF_LOG_INFO, "a");
    log_limited(&a, CONF_LOG_INFO, "a again");
    log_limited(&b, CONF_LOG_INFO, "b");
    ck_assert_int_eq(count_lines(slurp(path)), 2);
}
END_TEST

/* A line longer than the buffer is cut, and still one line. */
START_TEST(test_long_line_cut)
{
    static char big[8192];
    const char *s;

    memset(big, 'x', sizeof(big) - 1);
    ck_assert_int_eq(log_open(CONF_LOG_INFO, true, path), 0);
    log_info("%s", big);
    log_info("next");
    s = slurp(path);
    ck_assert_int_eq(count_lines(s), 2);
    assert_match(s, "info: next$");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_file_format_and_levels);
    tcase_add_test(tc, test_file_appends);
    tcase_add_test(tc, test_file_cannot_open);
    tcase_add_test(tc, test_reopen);
    tcase_add_test(tc, test_journal_prefixes);
    tcase_add_test(tc, test_stderr_plain_without_journal);
    tcase_add_test(tc, test_rate_limit);
    tcase_add_test(tc, test_rate_limit_per_listener);
    tcase_add_test(tc, test_long_line_cut);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int rc = tu_run_suite(suite());

    rmdir(tu_tmpdir());
    return rc;
}
