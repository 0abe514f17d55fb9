/*
 * testutil.c: the runner shared by every Check suite.
 */
#include "config.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "testutil.h"

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static char tmpdir[256];
static pid_t tmpdir_owner;

static int tmpdir_remove_one(const char *path, const struct stat *st, int flag,
                             struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* Check runs each test in a child of its own, which makes its own
 * directory; the process that made it removes it as it exits (a helper
 * a test forks shares it and leaves it be), so a run leaves nothing in
 * TMPDIR (only a test killed by a signal does). */
static void tmpdir_remove(void)
{
    if (tmpdir[0] != '\0' && tmpdir_owner == getpid())
        nftw(tmpdir, tmpdir_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tu_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        int n = snprintf(tmpdir, sizeof(tmpdir), "%s/wharf-test-XXXXXX", base ? base : "/tmp");

        if (n < 0 || (size_t)n >= sizeof(tmpdir) || !mkdtemp(tmpdir)) {
            perror("mkdtemp");
            abort();
        }
        tmpdir_owner = getpid();
        atexit(tmpdir_remove);
    }
    return tmpdir;
}

bool tu_ipv6_loopback_ok(int socktype)
{
    struct sockaddr_in6 a;
    int fd = socket(AF_INET6, socktype, 0);
    bool ok;

    if (fd < 0)
        return false;
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

size_t tu_resident_pages(const char *lo, const char *hi)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE), n = (size_t)(hi - lo) / ps, count = 0;
    unsigned char vec[64];

    ck_assert_uint_le(n, sizeof(vec));
    ck_assert_int_eq(mincore((void *)(uintptr_t)lo, n * ps, vec), 0);
    for (size_t i = 0; i < n; i++)
        count += vec[i] & 1;
    return count;
}
