/*
 * socket.c: TCP and UNIX stream sockets and listeners (wharf/net.h), with
 * the descriptor helpers udp.c shares. Every descriptor is non-blocking and
 * close-on-exec; a call tries the syscall first and waits on the worker's
 * loop (iowait) only after EAGAIN. The socket file of a UNIX listener is
 * never unlinked here: whoever made it decides (the daemon's reload hands
 * listeners over), as in AnyIO.
 * Not for: UDP (udp.c), addresses and name resolution (addr.c).
 */
#include "config.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "wharf-int.h"

struct sock {
    struct wharf_stream sk_base;    /* first: the generic calls cast to it */
    int sk_fd;                      /* -1 once closed */
    int sk_family;
    struct iowait sk_iow;
    bool sk_closed;
    bool sk_eof;                    /* the peer finished: EOF from now on */
    bool sk_broken;                 /* a reset was seen: a later 0 is no EOF */
    bool sk_wrshut;                 /* send_eof was called */
    bool sk_nodelay;                /* TCP listener: its sockets inherit TCP_NODELAY */
    socklen_t sk_peerlen;
    /* streams: the remote address, as long as it is (an IPv4 peer: 16
     * bytes, not a sockaddr_storage's 128; one per idle connection twice) */
    _Alignas(struct sockaddr_storage) unsigned char sk_peer[];
};

static const struct wharf_stream_ops sock_tcp_ops, sock_unix_ops;
static const struct wharf_stream_ops sock_tcp_listener_ops, sock_unix_listener_ops;

/* ---- descriptor helpers (also for udp.c) -------------------------------- */

int sock_adopt_fd(int fd, int type, int listening, int *family)
{
    int v = 0, fl;
    socklen_t vl = sizeof(v);

    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vl) < 0 || v != type)
        return WHARF_EINVAL;
    vl = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &vl) < 0 ||
        (v != AF_INET && v != AF_INET6 && v != AF_UNIX))
        return WHARF_EINVAL;
    *family = v;
    vl = sizeof(v);
    if (listening >= 0 &&
        (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) < 0 || !v != !listening))
        return WHARF_EINVAL;
    /* only now, so that a refused descriptor is left as it was */
    if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return WHARF_EINVAL;
    return 0;
}

static int sock_setopt(int fd, int level, int name, int v)
{
    return setsockopt(fd, level, name, &v, sizeof(v)) < 0 ? -errno : 0;
}

static int sock_apply_flags(int fd, int family, unsigned flags, bool reuse_addr)
{
    int rc = 0;

    if (reuse_addr)
        rc = sock_setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == 0 && (flags & WHARF_REUSE_PORT))
        rc = sock_setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    /* set either way, so that the sysctl bindv6only does not decide */
    if (rc == 0 && family == AF_INET6)
        rc = sock_setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, (flags & WHARF_V6ONLY) ? 1 : 0);
    return rc;
}

int sock_open_bound(int family, int type, unsigned flags, bool reuse_addr,
                    const struct addr_one *a)
{
    int fd, rc;

    fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if ((rc = sock_apply_flags(fd, family, flags, reuse_addr)) < 0)
        goto fail;
    if (type == SOCK_STREAM && family != AF_UNIX &&
        (rc = sock_setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1)) < 0)
        goto fail;
    if (a && bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        rc = -errno;
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return rc;
}

int sock_wait_fd(struct iowait *w, unsigned events)
{
    struct pollfd p;
    int rc;

    for (;;) {
        if (w->fd < 0)
            return WHARF_ECLOSED;
        /* a read has just said EAGAIN: no need to ask (a registration
         * made now reports data that came since), and the edge that wakes
         * us says it is readable (or has failed: the read tells) */
        if (events == WHARF_READABLE && w->rd_eagain) {
            rc = iowait_wait(w, EV_READ);
            if (w->fd < 0)
                return WHARF_ECLOSED;
            if (rc < 0 || !w->rd_eagain)
                return rc;
            continue;           /* not by an edge: ask */
        }
        p.fd = w->fd;
        p.events = (short)(((events & WHARF_READABLE) ? POLLIN : 0) |
                           ((events & WHARF_WRITABLE) ? POLLOUT : 0));
        p.revents = 0;
        if (poll(&p, 1, 0) > 0)
            return 0;       /* POLLERR/POLLHUP count: the next call reports them */
        /* nothing to read: what an EAGAIN says, and the wait registers
         * (or is registered) for the edge of what comes next */
        if (events & WHARF_READABLE)
            w->rd_eagain = true;
        rc = iowait_wait(w, (short)(((events & WHARF_READABLE) ? EV_READ : 0) |
                                    ((events & WHARF_WRITABLE) ? EV_WRITE : 0)));
        if (rc < 0)
            return w->fd < 0 ? WHARF_ECLOSED : rc;
    }
}

static int sock_attr_addr(int fd, bool local, const struct addr_one *peer,
                          void *out, size_t *len)
{
    struct addr_one a;

    if (!local)
        return stream_attr_copy(out, len, &peer->ss, peer->len);
    memset(&a, 0, sizeof(a));
    a.len = sizeof(a.ss);
    if (getsockname(fd, (struct sockaddr *)&a.ss, &a.len) < 0)
        return -errno;
    return stream_attr_copy(out, len, &a.ss, a.len);
}

static int sock_attr_port(int fd, int family, bool local, const struct addr_one *peer,
                          void *out, size_t *len)
{
    struct addr_one a;

    if (family == AF_UNIX)
        return -ENOENT;
    if (!local)
        return stream_attr_int(out, len, addr_port((const struct sockaddr *)&peer->ss));
    memset(&a, 0, sizeof(a));
    a.len = sizeof(a.ss);
    if (getsockname(fd, (struct sockaddr *)&a.ss, &a.len) < 0)
        return -errno;
    return stream_attr_int(out, len, addr_port((const struct sockaddr *)&a.ss));
}

int sock_getattr_fd(int fd, int family, const struct addr_one *peer, int attr,
                    void *out, size_t *len)
{
    switch (attr) {
    case WHARF_ATTR_FAMILY:
        return stream_attr_int(out, len, family);
    case WHARF_ATTR_FD:
        return stream_attr_int(out, len, fd);
    case WHARF_ATTR_LOCAL_ADDRESS:
        return sock_attr_addr(fd, true, NULL, out, len);
    case WHARF_ATTR_LOCAL_PORT:
        return sock_attr_port(fd, family, true, NULL, out, len);
    case WHARF_ATTR_REMOTE_ADDRESS:
        return peer ? sock_attr_addr(fd, false, peer, out, len) : -ENOENT;
    case WHARF_ATTR_REMOTE_PORT:
        return peer ? sock_attr_port(fd, family, false, peer, out, len) : -ENOENT;
    default:
        return -ENOENT;
    }
}

/* ---- the socket object -------------------------------------------------- */

static struct sock *sock_new(int fd, int family, bool listener, const struct addr_one *peer)
{
    socklen_t peerlen = peer && peer->len <= sizeof(peer->ss) ? peer->len : 0;
    struct sock *k = calloc(1, sizeof(*k) + peerlen);
    const struct wharf_stream_ops *ops;

    if (!k)
        return NULL;
    if (peerlen)
        memcpy(k->sk_peer, &peer->ss, peerlen);
    k->sk_peerlen = peerlen;
    if (listener)
        ops = family == AF_UNIX ? &sock_unix_listener_ops : &sock_tcp_listener_ops;
    else
        ops = family == AF_UNIX ? &sock_unix_ops : &sock_tcp_ops;
    wharf_stream_init(&k->sk_base, ops, NULL);
    k->sk_fd = fd;
    k->sk_family = family;
    /* Linux copies TCP_NODELAY from a listener to the sockets it accepts:
     * set once here (a listener from_fd may lack it), it saves a
     * setsockopt per connection */
    if (listener && family != AF_UNIX)
        k->sk_nodelay = sock_setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1) == 0;
    iowait_init(&k->sk_iow, fd);
    return k;
}

/* As sock_wrap, but on failure fd stays the caller's (from_fd). */
static int sock_adopt(int fd, int family, bool listener, const struct addr_one *peer,
                      struct wharf_stream **out)
{
    struct sock *k = sock_new(fd, family, listener, peer);

    if (!k)
        return -ENOMEM;
    *out = &k->sk_base;
    return 0;
}

/* Wraps fd (closing it on failure) and hands it out. */
static int sock_wrap(int fd, int family, bool listener, const struct addr_one *peer,
                     struct wharf_stream **out)
{
    int rc = sock_adopt(fd, family, listener, peer, out);

    if (rc < 0)
        close(fd);
    return rc;
}

/* The errors that mean the peer is gone; the rest pass through. */
static int sock_fail(struct sock *k, int err)
{
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return WHARF_EWOULDBLOCK;
    case ECONNRESET:
    case EPIPE:
    case ETIMEDOUT:
    case ECONNABORTED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
    case ENOTCONN:
        k->sk_broken = true;
        return WHARF_EBROKEN;
    default:
        return -err;
    }
}

static ssize_t sock_receive_nowait(struct wharf_stream *s, void *buf, size_t max)
{
    struct sock *k = (struct sock *)s;
    ssize_t n;

    if (k->sk_closed)
        return WHARF_ECLOSED;
    if (k->sk_eof)
        return WHARF_EOF;
    /* no read edge since a read drained the socket: recv would say EAGAIN
     * (bytes or an end that came since have an edge queued, which wakes
     * the wait), so the syscall is saved; as nginx does, only where the
     * loop reports the peer's end with the edge (an end that came with
     * the last one is still to be read) and only once it watches. */
    if (k->sk_iow.rd_eagain && k->sk_iow.added && k->sk_iow.early_close &&
        !k->sk_iow.rd_hup)
        return WHARF_EWOULDBLOCK;
    do
        n = recv(k->sk_fd, buf, max, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        /* less than asked for: the socket is drained (edge-triggered:
         * nginx counts on it too), unless the edge taken last said that
         * the peer's end came too (or could not say): a wait would then
         * wait for an edge that has come already */
        if ((size_t)n < max && k->sk_iow.early_close && !k->sk_iow.rd_hup)
            k->sk_iow.rd_eagain = true;
        return n;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            k->sk_iow.rd_eagain = true;
        return sock_fail(k, errno);
    }
    if (k->sk_broken)
        return WHARF_EBROKEN;   /* after a reset Linux reads 0: not an end */
    k->sk_eof = true;
    return WHARF_EOF;
}

/* The start of every blocking call: closed first, then a checkpoint (so
 * that a task that always finds data still lets the others run). */
static int sock_enter(struct sock *k)
{
    if (k->sk_closed)
        return WHARF_ECLOSED;
    return wharf_checkpoint();
}

static ssize_t sock_receive(struct wharf_stream *s, void *buf, size_t max)
{
    struct sock *k = (struct sock *)s;
    ssize_t n;
    int rc;

    if ((rc = sock_enter(k)) < 0)
        return rc;
    for (;;) {
        n = sock_receive_nowait(s, buf, max);
        if (n != WHARF_EWOULDBLOCK)
            return n;
        if ((rc = iowait_wait(&k->sk_iow, EV_READ)) < 0)
            return k->sk_closed ? WHARF_ECLOSED : rc;
    }
}

static ssize_t sock_send_nowait(struct wharf_stream *s, const void *buf, size_t len)
{
    struct sock *k = (struct sock *)s;
    ssize_t n;

    if (k->sk_closed || k->sk_wrshut)
        return WHARF_ECLOSED;
    do
        n = send(k->sk_fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n >= 0 ? n : sock_fail(k, errno);
}

static int sock_notify_readable(struct wharf_stream *s, void (*fn)(void *arg), void *arg)
{
    struct sock *k = (struct sock *)s;

    if (k->sk_closed)
        return fn ? WHARF_ECLOSED : 0;
    return iowait_notify(&k->sk_iow, fn, arg);
}

static int sock_send(struct wharf_stream *s, const void *buf, size_t len)
{
    struct sock *k = (struct sock *)s;
    size_t off = 0;
    ssize_t n;
    int rc;

    if ((rc = sock_enter(k)) < 0)
        return rc;
    if (k->sk_wrshut)
        return WHARF_ECLOSED;
    while (off < len) {
        n = sock_send_nowait(s, (const char *)buf + off, len - off);
        if (n >= 0) {
            off += (size_t)n;
            continue;
        }
        if (n != WHARF_EWOULDBLOCK)
            return (int)n;
        if ((rc = iowait_wait(&k->sk_iow, EV_WRITE)) < 0)
            return k->sk_closed ? WHARF_ECLOSED : rc;
    }
    return 0;
}

static int sock_send_eof(struct wharf_stream *s)
{
    struct sock *k = (struct sock *)s;

    if (k->sk_closed)
        return WHARF_ECLOSED;
    if (k->sk_wrshut)
        return 0;
    if (shutdown(k->sk_fd, SHUT_WR) < 0)
        return sock_fail(k, errno);
    k->sk_wrshut = true;
    return 0;
}

static int sock_wait(struct wharf_stream *s, unsigned events)
{
    struct sock *k = (struct sock *)s;

    if (k->sk_closed)
        return WHARF_ECLOSED;
    return sock_wait_fd(&k->sk_iow, events);
}

static int sock_getattr(struct wharf_stream *s, int attr, void *out, size_t *len)
{
    struct sock *k = (struct sock *)s;
    bool listener = s->ops->accept != NULL;
    struct addr_one peer = { .len = k->sk_peerlen };

    if (k->sk_closed)
        return WHARF_ECLOSED;
    memcpy(&peer.ss, k->sk_peer, k->sk_peerlen);
    return sock_getattr_fd(k->sk_fd, k->sk_family, listener ? NULL : &peer, attr, out, len);
}

/* Closes a socket that tasks may be waiting on: wakes them first (they then
 * see WHARF_ECLOSED), so that none of them touches a reused number.
 * Idempotent. */
int sock_release(struct iowait *w, int *fd, bool *closed)
{
    int rc = 0;

    if (*closed)
        return 0;
    *closed = true;
    iowait_fini(w);
    if (close(*fd) < 0 && errno != EINTR)
        rc = -errno;
    *fd = -1;
    return rc;
}

static int sock_close(struct wharf_stream *s)
{
    struct sock *k = (struct sock *)s;

    return sock_release(&k->sk_iow, &k->sk_fd, &k->sk_closed);
}

static void sock_free(struct wharf_stream *s)
{
    free(s);
}

/* ---- listeners ----------------------------------------------------------- */

/* accept(2) errors that concern one failed connection, not the listener
 * (Linux passes pending network errors of the new socket to accept). */
static bool sock_accept_retry(int err)
{
    switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
        return true;
    default:
        return false;
    }
}

static int sock_accept(struct wharf_stream *s, struct wharf_stream **out)
{
    struct sock *k = (struct sock *)s;
    struct addr_one peer;
    int fd, rc;

    if ((rc = sock_enter(k)) < 0)
        return rc;
    for (;;) {
        memset(&peer, 0, sizeof(peer));
        peer.len = sizeof(peer.ss);
        fd = accept4(k->sk_fd, (struct sockaddr *)&peer.ss, &peer.len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            break;
        if (sock_accept_retry(errno))
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;      /* EMFILE, ENFILE, ENOBUFS, ENOMEM: back off */
        if ((rc = iowait_wait(&k->sk_iow, EV_READ)) < 0)
            return k->sk_closed ? WHARF_ECLOSED : rc;
        if (k->sk_closed)
            return WHARF_ECLOSED;
    }
    /* a failure here concerns this connection only (reset already?): its
     * first receive or send will tell */
    if (k->sk_family != AF_UNIX && !k->sk_nodelay)
        sock_setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    return sock_wrap(fd, k->sk_family, false, &peer, out);
}

/* ---- connecting ---------------------------------------------------------- */

/* Waits for a non-blocking connect to finish; its result. */
static int sock_connect_wait(int fd)
{
    struct iowait w;
    int rc, err = 0;
    socklen_t el = sizeof(err);

    /* poll() first: on loopback the connect has usually ended already,
     * and then no registration with the loop is needed */
    iowait_init(&w, fd);
    rc = sock_wait_fd(&w, WHARF_WRITABLE);
    iowait_fini(&w);
    if (rc < 0)
        return rc;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        return -errno;
    return err ? -err : 0;
}

/* One attempt: a new socket, bound to local if given, connected to a. The
 * descriptor, or a negative code (the socket closed). */
static int sock_connect_one(const struct addr_one *a, const struct addr_one *local)
{
    int family = a->ss.ss_family;
    int fd, rc;

    fd = sock_open_bound(family, SOCK_STREAM, 0, false, local);
    if (fd < 0)
        return fd;
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
        return fd;
    /* an interrupted connect goes on in the background, like one in
     * progress. On loopback it has usually ended by now: a second connect
     * says so in one call (0 or EISCONN: connected; EALREADY: still
     * going; else why it failed), where poll and SO_ERROR take two. */
    if (errno == EINPROGRESS || errno == EINTR) {
        if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0 || errno == EISCONN)
            return fd;
        rc = errno == EALREADY || errno == EINPROGRESS || errno == EINTR
             ? sock_connect_wait(fd) : -errno;
    } else {
        rc = -errno;
    }
    if (rc == 0)
        return fd;
    close(fd);
    return rc;
}

static int sock_wrap_connected(int fd, const struct addr_one *remote,
                               struct wharf_stream **out)
{
    return sock_wrap(fd, remote->ss.ss_family, false, remote, out);
}

static const struct addr_connector sock_tcp_connector = {
    SOCK_STREAM, sock_connect_one, sock_wrap_connected,
};

int wharf_tcp_connect(const char *host, unsigned port, const char *local_host,
                      unsigned local_port, struct wharf_stream **out)
{
    if (!host || !out || port == 0 || port > 65535 || local_port > 65535 || !task_current())
        return WHARF_EINVAL;
    return addr_connect(&sock_tcp_connector, host, port, local_host, local_port, out);
}

/* ---- UNIX paths ---------------------------------------------------------- */

static int sock_unix_addr(const char *path, struct addr_one *a)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&a->ss;
    size_t n;

    if (!path || !*path)
        return WHARF_EINVAL;
    n = strlen(path);
    if (n >= sizeof(sun->sun_path))
        return -ENAMETOOLONG;
    memset(a, 0, sizeof(*a));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n + 1);
    a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* A UNIX connect does not go in progress: a full backlog is EAGAIN, and
 * nothing signals when it has room, so retry with a growing pause. */
static int sock_unix_connect_fd(int fd, const struct addr_one *a)
{
    double pause = 0.001;
    int rc;

    while (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        if (errno == EINPROGRESS || errno == EINTR)
            return sock_connect_wait(fd);
        if (errno != EAGAIN)
            return -errno;
        if ((rc = wharf_sleep(pause)) < 0)
            return rc;
        pause = pause < 0.05 ? pause * 2 : 0.1;
    }
    return 0;
}

int wharf_unix_connect(const char *path, struct wharf_stream **out)
{
    struct addr_one a;
    int fd, rc;

    if (!out || !task_current())
        return WHARF_EINVAL;
    if ((rc = sock_unix_addr(path, &a)) < 0)
        return rc;
    if ((rc = wharf_checkpoint_if_cancelled()) < 0)
        return rc;
    if ((fd = sock_open_bound(AF_UNIX, SOCK_STREAM, 0, false, NULL)) < 0)
        return fd;
    if ((rc = sock_unix_connect_fd(fd, &a)) < 0) {
        close(fd);
        return rc;
    }
    return sock_wrap(fd, AF_UNIX, false, &a, out);
}

/* bind(2) said EADDRINUSE: is it a live listener, a stale socket file (then
 * removed), or no socket at all? 0 when the path may be bound again. */
static int sock_unix_clear_stale(const struct addr_one *a)
{
    const char *path = ((const struct sockaddr_un *)&a->ss)->sun_path;
    struct stat st;
    int fd, rc;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    rc = connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0 ? 0 : errno;
    close(fd);
    if (rc == ECONNREFUSED)
        return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
    if (rc == ENOENT)
        return 0;
    return -EADDRINUSE;     /* it answered (or its backlog is full): alive */
}

static int sock_unix_bind(int fd, const struct addr_one *a)
{
    int rc;

    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
        return 0;
    if (errno != EADDRINUSE)
        return -errno;
    if ((rc = sock_unix_clear_stale(a)) < 0)
        return rc;
    return bind(fd, (const struct sockaddr *)&a->ss, a->len) == 0 ? 0 : -errno;
}

int wharf_unix_listen(const char *path, unsigned mode, int backlog,
                      struct wharf_stream **out)
{
    struct addr_one a;
    int fd, rc;

    if (!out || (mode & ~07777u))
        return WHARF_EINVAL;
    if ((rc = sock_unix_addr(path, &a)) < 0)
        return rc;
    if ((fd = sock_open_bound(AF_UNIX, SOCK_STREAM, 0, false, NULL)) < 0)
        return fd;
    if ((rc = sock_unix_bind(fd, &a)) < 0)
        goto fail;
    /* before listen(2): nobody can connect while the mode is still wrong */
    if (mode && chmod(path, mode) < 0) {
        rc = -errno;
        goto fail_bound;
    }
    if (listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
        rc = -errno;
        goto fail_bound;
    }
    return sock_wrap(fd, AF_UNIX, true, NULL, out);
fail_bound:
    unlink(path);
fail:
    close(fd);
    return rc;
}

/* ---- TCP listening ------------------------------------------------------- */

int wharf_tcp_listen(const char *host, unsigned port, int backlog, unsigned flags,
                     struct wharf_stream **out)
{
    struct addr_set *set;
    int fd, rc;

    if (!out || port > 65535 || (flags & ~(WHARF_REUSE_PORT | WHARF_V6ONLY)))
        return WHARF_EINVAL;
    if (!(set = calloc(1, sizeof(*set))))
        return -ENOMEM;
    rc = addr_resolve(host ? host : "0.0.0.0", port, SOCK_STREAM, set);
    if (rc < 0)
        goto out;
    fd = sock_open_bound(set->v[0].ss.ss_family, SOCK_STREAM, flags, true, &set->v[0]);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    if (listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
        rc = -errno;
        close(fd);
        goto out;
    }
    rc = sock_wrap(fd, set->v[0].ss.ss_family, true, NULL, out);
out:
    free(set);
    return rc;
}

/* ---- adopting descriptors ------------------------------------------------ */

int wharf_socket_stream_from_fd(int fd, struct wharf_stream **out)
{
    struct addr_one peer;
    int family;

    if (!out || fd < 0)
        return WHARF_EINVAL;
    memset(&peer, 0, sizeof(peer));
    peer.len = sizeof(peer.ss);
    /* first: a socket that is not connected (or no socket) is refused */
    if (getpeername(fd, (struct sockaddr *)&peer.ss, &peer.len) < 0 ||
        sock_adopt_fd(fd, SOCK_STREAM, 0, &family) < 0)
        return WHARF_EINVAL;
    if (family != AF_UNIX)
        sock_setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    return sock_adopt(fd, family, false, &peer, out);
}

int wharf_socket_listener_from_fd(int fd, struct wharf_stream **out)
{
    int family;

    if (!out || sock_adopt_fd(fd, SOCK_STREAM, 1, &family) < 0)
        return WHARF_EINVAL;
    return sock_adopt(fd, family, true, NULL, out);
}

/* ---- the ops tables ------------------------------------------------------ */

#define SOCK_STREAM_OPS(kindname)                                   \
    {                                                               \
        .size = sizeof(struct wharf_stream_ops),                    \
        .kind = kindname,                                           \
        .guard = WHARF_GUARD_RECEIVE | WHARF_GUARD_SEND,            \
        .receive = sock_receive,                                    \
        .send = sock_send,                                          \
        .receive_nowait = sock_receive_nowait,                      \
        .send_nowait = sock_send_nowait,                            \
        .send_eof = sock_send_eof,                                  \
        .wait = sock_wait,                                          \
        .getattr = sock_getattr,                                    \
        .close = sock_close,                                        \
        .free = sock_free,                                          \
        .notify_readable = sock_notify_readable,                    \
    }

#define SOCK_LISTENER_OPS(kindname)                                 \
    {                                                               \
        .size = sizeof(struct wharf_stream_ops),                    \
        .kind = kindname,                                           \
        .guard = WHARF_GUARD_RECEIVE,                               \
        .accept = sock_accept,                                      \
        .wait = sock_wait,                                          \
        .getattr = sock_getattr,                                    \
        .close = sock_close,                                        \
        .free = sock_free,                                          \
    }

static const struct wharf_stream_ops sock_tcp_ops = SOCK_STREAM_OPS("tcp");
static const struct wharf_stream_ops sock_unix_ops = SOCK_STREAM_OPS("unix");
static const struct wharf_stream_ops sock_tcp_listener_ops = SOCK_LISTENER_OPS("tcp-listener");
static const struct wharf_stream_ops sock_unix_listener_ops = SOCK_LISTENER_OPS("unix-listener");
