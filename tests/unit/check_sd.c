/*
 * check_sd.c: the systemd protocols of src/sd.c, against the documented
 * wire formats rather than systemd itself: notifications read from a
 * datagram socket the test binds (a path and the abstract namespace), the
 * watchdog variables, and socket activation with descriptors 3, 4, ...
 * made by dup2 in a child of the test (Check's own descriptors live there
 * too, so the child reports over a pipe instead of asserting).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "testutil.h"
#include "wharfd.h"

/* ---- notify ----------------------------------------------------------------------- */

static char sock_path[256];
static int rx = -1;

/* A datagram socket at a path (abstract = false) or "@name"; NOTIFY_SOCKET
 * names it. */
static void listen_notify(bool abstract)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    socklen_t len;
    struct timeval tv = { .tv_sec = 5 };

    if (abstract) {
        snprintf(sock_path, sizeof(sock_path), "@wharf-check-sd-%ld", (long)getpid());
        memcpy(sa.sun_path + 1, sock_path + 1, strlen(sock_path) - 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sock_path));
    } else {
        snprintf(sock_path, sizeof(sock_path), "%s/notify-%ld", tu_tmpdir(), (long)getpid());
        unlink(sock_path);
        strcpy(sa.sun_path, sock_path);
        len = sizeof(sa);
    }
    rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(rx, 0);
    ck_assert_msg(bind(rx, (struct sockaddr *)&sa, len) == 0, "bind %s: %s", sock_path,
                  strerror(errno));
    ck_assert_int_eq(setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", sock_path, 1), 0);
}

static void teardown_notify(void)
{
    if (rx >= 0)
        close(rx);
    rx = -1;
    if (sock_path[0] == '/')
        unlink(sock_path);
    unsetenv("NOTIFY_SOCKET");
}

/* The next datagram, NUL-terminated. */
static const char *receive(void)
{
    static char buf[4096];
    ssize_t n = recv(rx, buf, sizeof(buf) - 1, 0);

    ck_assert_msg(n >= 0, "recv: %s", strerror(errno));
    buf[n] = '\0';
    return buf;
}

START_TEST(test_notify_path)
{
    listen_notify(false);
    ck_assert_int_eq(sd_notify_state("READY=1"), 1);
    ck_assert_str_eq(receive(), "READY=1");
    ck_assert_int_eq(sd_notify_state("STATUS=%zu listeners, %u workers", (size_t)3, 2u), 1);
    ck_assert_str_eq(receive(), "STATUS=3 listeners, 2 workers");
}
END_TEST

START_TEST(test_notify_abstract)
{
    listen_notify(true);
    ck_assert_int_eq(sd_notify_state("WATCHDOG=1"), 1);
    ck_assert_str_eq(receive(), "WATCHDOG=1");
}
END_TEST

/* Several assignments in one datagram, as main.c sends around a reload. */
START_TEST(test_notify_multiline)
{
    listen_notify(false);
    ck_assert_int_eq(sd_notify_state("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
                                     123456789ULL, "/etc/wharf/wharf.conf"),
                     1);
    ck_assert_str_eq(receive(),
                     "RELOADING=1\nMONOTONIC_USEC=123456789\nSTATUS=reloading /etc/wharf/wharf.conf");
    ck_assert_int_eq(sd_notify_state("STOPPING=1\nSTATUS=stopping"), 1);
    ck_assert_str_eq(receive(), "STOPPING=1\nSTATUS=stopping");
}
END_TEST

/* A long STATUS= goes out whole, not cut to some buffer. */
START_TEST(test_notify_long)
{
    char status[2000];
    char want[2100];

    memset(status, 'x', sizeof(status) - 1);
    status[sizeof(status) - 1] = '\0';
    snprintf(want, sizeof(want), "STATUS=%s", status);
    listen_notify(false);
    ck_assert_int_eq(sd_notify_state("STATUS=%s", status), 1);
    ck_assert_str_eq(receive(), want);
}
END_TEST

START_TEST(test_notify_no_socket)
{
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(sd_notify_state("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    ck_assert_int_eq(sd_notify_state("READY=1"), 0);
}
END_TEST

START_TEST(test_notify_errors)
{
    char path[300];

    snprintf(path, sizeof(path), "%s/nobody-listens-%ld", tu_tmpdir(), (long)getpid());
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_int_eq(sd_notify_state("READY=1"), -ENOENT);
    setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
    ck_assert_int_eq(sd_notify_state("READY=1"), -EAFNOSUPPORT);
    setenv("NOTIFY_SOCKET", "@", 1);
    ck_assert_int_eq(sd_notify_state("READY=1"), -EINVAL);
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_int_eq(sd_notify_state("READY=1"), -EINVAL);
}
END_TEST

#define SENDERS 4
#define PER_SENDER 200

static void *send_many(void *arg)
{
    long id = (long)arg;

    for (int i = 0; i < PER_SENDER; i++)
        if (sd_notify_state("STATUS=thread %ld message %d", id, i) != 1)
            return (void *)1;
    return NULL;
}

/* From any thread at once: every datagram arrives whole. */
START_TEST(test_notify_threads)
{
    pthread_t t[SENDERS];
    int seen[SENDERS] = { 0 };
    int rcvbuf = 1 << 20;

    listen_notify(false);
    setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    for (long i = 0; i < SENDERS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, send_many, (void *)i), 0);
    for (int n = 0; n < SENDERS * PER_SENDER; n++) {
        long id;
        int k;

        ck_assert_int_eq(sscanf(receive(), "STATUS=thread %ld message %d", &id, &k), 2);
        ck_assert(id >= 0 && id < SENDERS);
        ck_assert_int_eq(k, seen[id]);  /* in order, per sender */
        seen[id]++;
    }
    for (int i = 0; i < SENDERS; i++) {
        void *res;

        ck_assert_int_eq(pthread_join(t[i], &res), 0);
        ck_assert_ptr_null(res);
    }
}
END_TEST

/* ---- watchdog --------------------------------------------------------------------- */

static void teardown_watchdog(void)
{
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

static void set_pid_var(const char *name, pid_t pid)
{
    char s[32];

    snprintf(s, sizeof(s), "%ld", (long)pid);
    ck_assert_int_eq(setenv(name, s, 1), 0);
}

START_TEST(test_watchdog)
{
    unsetenv("WATCHDOG_USEC");
    ck_assert(sd_watchdog_interval() == 0);
    setenv("WATCHDOG_USEC", "3000000", 1);
    ck_assert(sd_watchdog_interval() == 3.0);
    setenv("WATCHDOG_USEC", "250000", 1);
    ck_assert(sd_watchdog_interval() == 0.25);
    set_pid_var("WATCHDOG_PID", getpid());
    ck_assert(sd_watchdog_interval() == 0.25);
}
END_TEST

/* Meant for another process (a parent that did not unset it), or unreadable. */
START_TEST(test_watchdog_not_ours)
{
    static const char *const bad_usec[] = { "", "0", "-5", "abc", "100x", " 100" };

    setenv("WATCHDOG_USEC", "3000000", 1);
    set_pid_var("WATCHDOG_PID", getppid());
    ck_assert(sd_watchdog_interval() == 0);
    setenv("WATCHDOG_PID", "notapid", 1);
    ck_assert(sd_watchdog_interval() == 0);
    unsetenv("WATCHDOG_PID");
    for (size_t i = 0; i < sizeof(bad_usec) / sizeof(bad_usec[0]); i++) {
        setenv("WATCHDOG_USEC", bad_usec[i], 1);
        ck_assert_msg(sd_watchdog_interval() == 0, "WATCHDOG_USEC=\"%s\"", bad_usec[i]);
    }
}
END_TEST

/* ---- socket activation ------------------------------------------------------------ */

/* What a child checks, and how it reports: the first failure as text on
 * a pipe far from 3, 4, ...; nothing written means success. */
struct activation {
    int nfds;                       /* sockets made at 3, 4, ... */
    const char *listen_pid;         /* "self", "parent", a literal, or NULL: unset */
    const char *listen_fds;         /* NULL: unset */
    const char *fdnames;            /* NULL: unset */
    int want_rc;                    /* sd_listen_sockets' result */
    const char *want_names[4];      /* when want_rc > 0 */
};

#define REPORT_FD 100

static int fail_child(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail_child(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (write(REPORT_FD, buf, (size_t)n) < 0)
        return 2;
    return 1;
}

/* n fresh sockets at 3, 4, ..., not close-on-exec (as systemd passes them). */
static int make_fds(int n)
{
    for (int i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);

        if (s < 0)
            return fail_child("socket: %s", strerror(errno));
        if (s != 3 + i) {
            if (dup2(s, 3 + i) < 0)
                return fail_child("dup2: %s", strerror(errno));
            close(s);
        }
        if (fcntl(3 + i, F_GETFD) & FD_CLOEXEC)
            return fail_child("fd %d is close-on-exec before the test", 3 + i);
    }
    return 0;
}

static int set_env(const struct activation *a)
{
    char pid[32];

    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (a->listen_pid) {
        if (strcmp(a->listen_pid, "self") == 0)
            snprintf(pid, sizeof(pid), "%ld", (long)getpid());
        else if (strcmp(a->listen_pid, "parent") == 0)
            snprintf(pid, sizeof(pid), "%ld", (long)getppid());
        else
            snprintf(pid, sizeof(pid), "%s", a->listen_pid);
        setenv("LISTEN_PID", pid, 1);
    }
    if (a->listen_fds)
        setenv("LISTEN_FDS", a->listen_fds, 1);
    if (a->fdnames)
        setenv("LISTEN_FDNAMES", a->fdnames, 1);
    return 0;
}

static int check_result(const struct activation *a, int rc, struct sd_socket *v)
{
    if (rc != a->want_rc)
        return fail_child("sd_listen_sockets returned %d (%s), want %d", rc,
                          rc < 0 ? strerror(-rc) : "count", a->want_rc);
    if (rc <= 0 && v)
        return fail_child("*out is not NULL with %d", rc);
    for (int i = 0; i < rc; i++) {
        int flags = fcntl(v[i].ss_fd, F_GETFD);

        if (v[i].ss_fd != 3 + i)
            return fail_child("socket %d has fd %d", i, v[i].ss_fd);
        if (flags < 0 || !(flags & FD_CLOEXEC))
            return fail_child("fd %d is not close-on-exec", v[i].ss_fd);
        if (strcmp(v[i].ss_name, a->want_names[i]) != 0)
            return fail_child("fd %d is named \"%s\", want \"%s\"", v[i].ss_fd, v[i].ss_name,
                              a->want_names[i]);
    }
    if (rc == 0 && a->nfds > 0 && (fcntl(3, F_GETFD) & FD_CLOEXEC))
        return fail_child("fd 3 was made close-on-exec though it was not for us");
    if (getenv("LISTEN_PID") || getenv("LISTEN_FDS") || getenv("LISTEN_FDNAMES"))
        return fail_child("LISTEN_* still set afterwards");
    return 0;
}

static int activation_child(const struct activation *a)
{
    struct sd_socket *v = (struct sd_socket *)-1;
    int rc;

    if ((rc = make_fds(a->nfds)) != 0 || (rc = set_env(a)) != 0)
        return rc;
    rc = sd_listen_sockets(&v);
    rc = check_result(a, rc, v);
    if (v != (struct sd_socket *)-1)
        free(v);
    return rc;
}

/* Runs a in a child: the descriptors it makes must not disturb Check's. */
static void run_activation(const struct activation *a)
{
    int p[2], status;
    char msg[512];
    ssize_t n;
    pid_t pid;

    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_ge(pid = fork(), 0);
    if (pid == 0) {
        if (dup2(p[1], REPORT_FD) < 0)
            _exit(3);
        close(p[0]);
        close(p[1]);
        /* fds 3.. of this process may be Check's or the pipe's: reused */
        for (int fd = 3; fd < 3 + a->nfds + 2; fd++)
            close(fd);
        _exit(activation_child(a));
    }
    close(p[1]);
    n = read(p[0], msg, sizeof(msg) - 1);
    close(p[0]);
    msg[n > 0 ? n : 0] = '\0';
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %d: %s",
                  status, msg);
    ck_assert_msg(msg[0] == '\0', "child: %s", msg);
}

START_TEST(test_listen_named)
{
    struct activation a = { .nfds = 3, .listen_pid = "self", .listen_fds = "3",
                            .fdnames = "https:echo-unix:smtp", .want_rc = 3,
                            .want_names = { "https", "echo-unix", "smtp" } };

    run_activation(&a);
}
END_TEST

/* systemd-socket-activate without --fdname sets no LISTEN_FDNAMES. */
START_TEST(test_listen_unnamed)
{
    struct activation a = { .nfds = 2, .listen_pid = "self", .listen_fds = "2",
                            .want_rc = 2, .want_names = { "", "" } };

    run_activation(&a);
}
END_TEST

START_TEST(test_listen_fewer_names)
{
    struct activation a = { .nfds = 3, .listen_pid = "self", .listen_fds = "3",
                            .fdnames = "a::", .want_rc = 3, .want_names = { "a", "", "" } };
    struct activation b = { .nfds = 3, .listen_pid = "self", .listen_fds = "3",
                            .fdnames = "a", .want_rc = 3, .want_names = { "a", "", "" } };

    run_activation(&a);
    run_activation(&b);
}
END_TEST

/* Variables meant for another process are not ours to take, but are
 * unset all the same. */
START_TEST(test_listen_other_pid)
{
    struct activation a = { .nfds = 2, .listen_pid = "parent", .listen_fds = "2",
                            .fdnames = "a:b", .want_rc = 0 };
    struct activation b = { .nfds = 2, .listen_pid = "notapid", .listen_fds = "2",
                            .want_rc = 0 };

    run_activation(&a);
    run_activation(&b);
}
END_TEST

START_TEST(test_listen_none)
{
    struct activation a = { .nfds = 0, .want_rc = 0 };
    struct activation b = { .nfds = 1, .listen_fds = "1", .want_rc = 0 };  /* no LISTEN_PID */
    struct activation c = { .nfds = 1, .listen_pid = "self", .want_rc = 0 };  /* no LISTEN_FDS */
    struct activation d = { .nfds = 0, .listen_pid = "self", .listen_fds = "0", .want_rc = 0 };

    run_activation(&a);
    run_activation(&b);
    run_activation(&c);
    run_activation(&d);
}
END_TEST

START_TEST(test_listen_errors)
{
    struct activation a = { .nfds = 1, .listen_pid = "self", .listen_fds = "x", .want_rc = -EINVAL };
    struct activation b = { .nfds = 1, .listen_pid = "self", .listen_fds = "-1", .want_rc = -EINVAL };
    /* descriptor 4 is not open */
    struct activation c = { .nfds = 1, .listen_pid = "self", .listen_fds = "2", .want_rc = -EBADF };
    static char longname[300];
    struct activation d = { .nfds = 1, .listen_pid = "self", .listen_fds = "1",
                            .fdnames = longname, .want_rc = -ENAMETOOLONG };

    memset(longname, 'n', 256);
    run_activation(&a);
    run_activation(&b);
    run_activation(&c);
    run_activation(&d);
}
END_TEST

/* The longest name FileDescriptorName= allows (255) fits. */
START_TEST(test_listen_longest_name)
{
    static char name[256];
    struct activation a = { .nfds = 1, .listen_pid = "self", .listen_fds = "1",
                            .fdnames = name, .want_rc = 1, .want_names = { name } };

    memset(name, 'n', 255);
    run_activation(&a);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sd");
    TCase *tc = tcase_create("notify");

    tcase_add_checked_fixture(tc, NULL, teardown_notify);
    tcase_add_test(tc, test_notify_path);
    tcase_add_test(tc, test_notify_abstract);
    tcase_add_test(tc, test_notify_multiline);
    tcase_add_test(tc, test_notify_long);
    tcase_add_test(tc, test_notify_no_socket);
    tcase_add_test(tc, test_notify_errors);
    tcase_add_test(tc, test_notify_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("watchdog");
    tcase_add_checked_fixture(tc, NULL, teardown_watchdog);
    tcase_add_test(tc, test_watchdog);
    tcase_add_test(tc, test_watchdog_not_ours);
    suite_add_tcase(s, tc);

    tc = tcase_create("listen");
    tcase_add_test(tc, test_listen_named);
    tcase_add_test(tc, test_listen_unnamed);
    tcase_add_test(tc, test_listen_fewer_names);
    tcase_add_test(tc, test_listen_other_pid);
    tcase_add_test(tc, test_listen_none);
    tcase_add_test(tc, test_listen_errors);
    tcase_add_test(tc, test_listen_longest_name);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int rc;

    tu_tmpdir();        /* made once, here: the forked tests share it */
    rc = tu_run_suite(suite());
    rmdir(tu_tmpdir());
    return rc;
}
