/*
 * udp.c: UDP sockets (wharf/net.h). An unconnected socket ("udp") moves
 * datagrams with wharf_receive_from / wharf_send_to; a connected one
 * ("udp-connected") with wharf_receive / wharf_send, one datagram per call.
 * A datagram is never split: one that does not fit the receive buffer is
 * truncated (the rest is lost, as with recv(2)); an empty one is received
 * as 0 bytes, the one case where a byte receive returns 0 while open.
 * ICMP errors reported on a connected socket pass through as -errno
 * (-ECONNREFUSED when nobody listens at the peer's port).
 * Not for: stream sockets (socket.c), addresses (addr.c).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wharf-int.h"

struct udp {
    struct wharf_stream u_base;     /* first: the generic calls cast to it */
    int u_fd;                       /* -1 once closed */
    int u_family;
    struct iowait u_iow;
    struct addr_one u_peer;         /* connected: the remote address */
    bool u_connected;
    bool u_closed;
};

static const struct wharf_stream_ops udp_ops, udp_connected_ops;

static struct udp *udp_new(int fd, int family, const struct addr_one *peer)
{
    struct udp *u = calloc(1, sizeof(*u));

    if (!u)
        return NULL;
    wharf_stream_init(&u->u_base, peer ? &udp_connected_ops : &udp_ops, NULL);
    u->u_fd = fd;
    u->u_family = family;
    iowait_init(&u->u_iow, fd);
    if (peer) {
        u->u_peer = *peer;
        u->u_connected = true;
    }
    return u;
}

/* Wraps fd (closing it on failure) and hands it out. */
static int udp_wrap(int fd, int family, const struct addr_one *peer,
                    struct wharf_stream **out)
{
    struct udp *u = udp_new(fd, family, peer);

    if (!u) {
        close(fd);
        return -ENOMEM;
    }
    *out = &u->u_base;
    return 0;
}

static int udp_fail(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK ? WHARF_EWOULDBLOCK : -err;
}

/* ---- receiving ----------------------------------------------------------- */

static ssize_t udp_recv_once(struct udp *u, void *buf, size_t max,
                             struct sockaddr *from, socklen_t *fromlen)
{
    ssize_t n;

    if (u->u_closed)
        return WHARF_ECLOSED;
    do
        n = recvfrom(u->u_fd, buf, max, 0, from, from ? fromlen : NULL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        u->u_iow.rd_eagain = true;      /* a wait needs no poll() now */
    return n >= 0 ? n : udp_fail(errno);
}

/* The start of every blocking call: closed first, then a checkpoint. */
static int udp_enter(struct udp *u)
{
    if (u->u_closed)
        return WHARF_ECLOSED;
    return wharf_checkpoint();
}

static ssize_t udp_recv_wait(struct udp *u, void *buf, size_t max,
                             struct sockaddr *from, socklen_t *fromlen)
{
    ssize_t n;
    int rc;

    if ((rc = udp_enter(u)) < 0)
        return rc;
    for (;;) {
        n = udp_recv_once(u, buf, max, from, fromlen);
        if (n != WHARF_EWOULDBLOCK)
            return n;
        if ((rc = iowait_wait(&u->u_iow, EV_READ)) < 0)
            return u->u_closed ? WHARF_ECLOSED : rc;
    }
}

static ssize_t udp_receive_from(struct wharf_stream *s, void *buf, size_t max,
                                struct sockaddr *from, socklen_t *fromlen)
{
    return udp_recv_wait((struct udp *)s, buf, max, from, fromlen);
}

ssize_t udp_receive_from_nowait(struct wharf_stream *s, void *buf, size_t max,
                                struct sockaddr *from, socklen_t *fromlen)
{
    if (!s || (s->ops != &udp_ops && s->ops != &udp_connected_ops))
        return WHARF_ENOTSUP;
    return udp_recv_once((struct udp *)s, buf, max, from, fromlen);
}

static ssize_t udp_receive(struct wharf_stream *s, void *buf, size_t max)
{
    return udp_recv_wait((struct udp *)s, buf, max, NULL, NULL);
}

static ssize_t udp_receive_nowait(struct wharf_stream *s, void *buf, size_t max)
{
    return udp_recv_once((struct udp *)s, buf, max, NULL, NULL);
}

/* ---- sending ------------------------------------------------------------- */

/* One datagram, whole or not at all; to NULL on a connected socket. */
static ssize_t udp_send_once(struct udp *u, const void *buf, size_t len,
                             const struct sockaddr *to, socklen_t tolen)
{
    ssize_t n;

    if (u->u_closed)
        return WHARF_ECLOSED;
    do
        n = sendto(u->u_fd, buf, len, MSG_NOSIGNAL, to, to ? tolen : 0);
    while (n < 0 && errno == EINTR);
    return n >= 0 ? (ssize_t)len : udp_fail(errno);
}

static int udp_send_wait(struct udp *u, const void *buf, size_t len,
                         const struct sockaddr *to, socklen_t tolen)
{
    ssize_t n;
    int rc;

    if ((rc = udp_enter(u)) < 0)
        return rc;
    for (;;) {
        n = udp_send_once(u, buf, len, to, tolen);
        if (n != WHARF_EWOULDBLOCK)
            return n < 0 ? (int)n : 0;
        if ((rc = iowait_wait(&u->u_iow, EV_WRITE)) < 0)
            return u->u_closed ? WHARF_ECLOSED : rc;
    }
}

static int udp_send_to(struct wharf_stream *s, const void *buf, size_t len,
                       const struct sockaddr *to, socklen_t tolen)
{
    return udp_send_wait((struct udp *)s, buf, len, to, tolen);
}

static int udp_send(struct wharf_stream *s, const void *buf, size_t len)
{
    return udp_send_wait((struct udp *)s, buf, len, NULL, 0);
}

static ssize_t udp_send_nowait(struct wharf_stream *s, const void *buf, size_t len)
{
    return udp_send_once((struct udp *)s, buf, len, NULL, 0);
}

/* ---- every UDP handle ---------------------------------------------------- */

static int udp_wait(struct wharf_stream *s, unsigned events)
{
    struct udp *u = (struct udp *)s;

    if (u->u_closed)
        return WHARF_ECLOSED;
    return sock_wait_fd(&u->u_iow, events);
}

static int udp_getattr(struct wharf_stream *s, int attr, void *out, size_t *len)
{
    struct udp *u = (struct udp *)s;

    if (u->u_closed)
        return WHARF_ECLOSED;
    return sock_getattr_fd(u->u_fd, u->u_family, u->u_connected ? &u->u_peer : NULL,
                           attr, out, len);
}

static int udp_close(struct wharf_stream *s)
{
    struct udp *u = (struct udp *)s;

    return sock_release(&u->u_iow, &u->u_fd, &u->u_closed);
}

static void udp_free(struct wharf_stream *s)
{
    free(s);
}

/* ---- opening ------------------------------------------------------------- */

int wharf_udp_open(const char *local_host, unsigned local_port, unsigned flags,
                   struct wharf_stream **out)
{
    struct addr_set *set;
    int fd, family, rc;

    if (!out || local_port > 65535 || (flags & ~(WHARF_REUSE_PORT | WHARF_V6ONLY)))
        return WHARF_EINVAL;
    if (!(set = calloc(1, sizeof(*set))))
        return -ENOMEM;
    rc = addr_resolve(local_host ? local_host : "0.0.0.0", local_port, SOCK_DGRAM, set);
    if (rc == 0) {
        family = set->v[0].ss.ss_family;
        fd = sock_open_bound(family, SOCK_DGRAM, flags, false, &set->v[0]);
        rc = fd < 0 ? fd : udp_wrap(fd, family, NULL, out);
    }
    free(set);
    return rc;
}

/* A socket of a's family, bound to local if given, connected to a. */
static int udp_connect_one(const struct addr_one *a, const struct addr_one *local)
{
    int fd = sock_open_bound(a->ss.ss_family, SOCK_DGRAM, 0, false, local);

    if (fd < 0)
        return fd;
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        int rc = -errno;

        close(fd);
        return rc;
    }
    return fd;
}

static int udp_wrap_connected(int fd, const struct addr_one *remote,
                              struct wharf_stream **out)
{
    return udp_wrap(fd, remote->ss.ss_family, remote, out);
}

static const struct addr_connector udp_connector = {
    SOCK_DGRAM, udp_connect_one, udp_wrap_connected,
};

int wharf_udp_connect(const char *remote_host, unsigned remote_port,
                      const char *local_host, unsigned local_port,
                      struct wharf_stream **out)
{
    if (!remote_host || !out || remote_port == 0 || remote_port > 65535 ||
        local_port > 65535)
        return WHARF_EINVAL;
    return addr_connect(&udp_connector, remote_host, remote_port, local_host,
                        local_port, out);
}

int wharf_udp_from_fd(int fd, struct wharf_stream **out)
{
    struct addr_one peer;
    struct udp *u;
    int family;
    bool connected;

    if (!out || sock_adopt_fd(fd, SOCK_DGRAM, -1, &family) < 0)
        return WHARF_EINVAL;
    memset(&peer, 0, sizeof(peer));
    peer.len = sizeof(peer.ss);
    connected = getpeername(fd, (struct sockaddr *)&peer.ss, &peer.len) == 0;
    if (!(u = udp_new(fd, family, connected ? &peer : NULL)))
        return -ENOMEM;     /* fd stays the caller's */
    *out = &u->u_base;
    return 0;
}

/* ---- the ops tables ------------------------------------------------------ */

static const struct wharf_stream_ops udp_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "udp",
    .guard = WHARF_GUARD_RECEIVE,
    .receive_from = udp_receive_from,
    .send_to = udp_send_to,
    .wait = udp_wait,
    .getattr = udp_getattr,
    .close = udp_close,
    .free = udp_free,
};

static const struct wharf_stream_ops udp_connected_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "udp-connected",
    .guard = WHARF_GUARD_RECEIVE,
    .receive = udp_receive,
    .send = udp_send,
    .receive_nowait = udp_receive_nowait,
    .send_nowait = udp_send_nowait,
    .wait = udp_wait,
    .getattr = udp_getattr,
    .close = udp_close,
    .free = udp_free,
};
