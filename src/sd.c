/*
 * sd.c: the two systemd protocols wharfd speaks, written from their
 * documentation (sd_notify(3), sd_listen_fds(3), sd_watchdog_enabled(3))
 * rather than linked from libsystemd: state notifications sent as one
 * datagram to $NOTIFY_SOCKET, the watchdog interval, and the sockets of
 * socket activation (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES).
 * Not for: matching the sockets to listeners (server.c), when to notify
 * (main.c), or the journal's log format (log.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "wharfd.h"

/* The first descriptor of socket activation (SD_LISTEN_FDS_START). */
#define SD_FDS_START 3

/* ---- sd_notify ------------------------------------------------------------------- */

/* The address of $NOTIFY_SOCKET: an absolute path, or "@name" for the
 * abstract namespace (a leading NUL, and a length that counts only the name). */
static int notify_addr(const char *name, struct sockaddr_un *sa, socklen_t *len)
{
    size_t n = strlen(name);

    if (name[0] != '/' && name[0] != '@')
        return -EAFNOSUPPORT;     /* e.g. "vsock:...": not spoken here */
    if (n < 2 || n >= sizeof(sa->sun_path))
        return -EINVAL;
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, name, n);
    if (name[0] == '@')
        sa->sun_path[0] = '\0';
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));
    return 0;
}

/* One datagram: a socket of its own per call, so that threads need no lock. */
static int notify_send(const struct sockaddr_un *sa, socklen_t salen, const char *msg,
                       size_t len)
{
    struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
    struct msghdr mh = { .msg_name = (void *)sa, .msg_namelen = salen,
                         .msg_iov = &iov, .msg_iovlen = 1 };
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ssize_t n;
    int rc = 1;

    if (fd < 0)
        return -errno;
    n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (n < 0)
        rc = -errno;
    else if ((size_t)n != len)
        rc = -EMSGSIZE;
    close(fd);
    return rc;
}

int sd_notify_state(const char *fmt, ...)
{
    const char *name = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    socklen_t salen;
    va_list ap;
    char *msg;
    int len, rc;

    if (!name || !*name)
        return 0;
    if ((rc = notify_addr(name, &sa, &salen)) < 0)
        return rc;
    va_start(ap, fmt);
    len = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (len < 0)
        return -ENOMEM;
    rc = notify_send(&sa, salen, msg, (size_t)len);
    free(msg);
    return rc;
}

/* ---- the watchdog ---------------------------------------------------------------- */

/* A decimal number with nothing around it, and > 0. */
static bool parse_positive(const char *s, unsigned long long *out)
{
    char *end;

    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0' && *out > 0;
}

/* WATCHDOG_PID, like LISTEN_PID: unset means "whoever reads it". */
static bool pid_is_ours(const char *var, bool unset_ok)
{
    const char *s = getenv(var);
    unsigned long long pid;

    if (!s)
        return unset_ok;
    return parse_positive(s, &pid) && pid == (unsigned long long)getpid();
}

double sd_watchdog_interval(void)
{
    unsigned long long usec;

    if (!parse_positive(getenv("WATCHDOG_USEC"), &usec) || !pid_is_ours("WATCHDOG_PID", true))
        return 0;
    return (double)usec / 1e6;
}

/* ---- socket activation ----------------------------------------------------------- */

/* LISTEN_FDNAMES names the descriptors in order, separated by ':'. Fewer
 * names than descriptors leave the rest unnamed (""); a name longer than
 * FileDescriptorName= allows is refused rather than cut (a cut name could
 * match another listener). */
static int name_sockets(struct sd_socket *v, int n, const char *names)
{
    const char *p = names;

    for (int i = 0; i < n; i++) {
        size_t len;

        v[i].ss_name[0] = '\0';
        if (!p)
            continue;
        len = strcspn(p, ":");
        if (len >= sizeof(v[i].ss_name))
            return -ENAMETOOLONG;
        memcpy(v[i].ss_name, p, len);
        v[i].ss_name[len] = '\0';
        p = p[len] == ':' ? p + len + 1 : NULL;
    }
    return 0;
}

/* The descriptor must be open; it is made close-on-exec (plugins may run
 * programs, which should not inherit the listening sockets). */
static int take_fd(int fd)
{
    int flags = fcntl(fd, F_GETFD);

    if (flags < 0)
        return -errno;
    if (!(flags & FD_CLOEXEC) && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

/* The count LISTEN_FDS gives when LISTEN_PID is ours; 0 when not for us. */
static int listen_count(void)
{
    unsigned long long n;
    const char *s;

    if (!pid_is_ours("LISTEN_PID", false))
        return 0;
    if (!(s = getenv("LISTEN_FDS")) || strcmp(s, "0") == 0)
        return 0;
    if (!parse_positive(s, &n) || n > (unsigned long long)(INT_MAX - SD_FDS_START))
        return -EINVAL;
    return (int)n;
}

static int collect(struct sd_socket **out)
{
    struct sd_socket *v;
    int n, rc;

    *out = NULL;
    if ((n = listen_count()) <= 0)
        return n;
    if (!(v = calloc((size_t)n, sizeof(*v))))
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        v[i].ss_fd = SD_FDS_START + i;
        if ((rc = take_fd(v[i].ss_fd)) < 0)
            goto fail;
    }
    if ((rc = name_sockets(v, n, getenv("LISTEN_FDNAMES"))) < 0)
        goto fail;
    *out = v;
    return n;
fail:
    free(v);
    return rc;
}

int sd_listen_sockets(struct sd_socket **out)
{
    int n = collect(out);

    /* whatever they said, they were for this process only */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return n;
}
