/*
 * datagram.c: forward on a UDP listener. Each sender (address and port)
 * gets an association: a UDP socket connected to the target, so that the
 * target's replies come back on it and nowhere else. A datagram from the
 * sender goes out on its association's socket; a reply is sent back to
 * the sender from the listener's socket, so it comes from the address the
 * sender wrote to.
 *
 * The handler runs once per worker with that worker's socket; the kernel
 * sends a given sender to one socket, so the associations are the
 * worker's own (no locks). Each association has a task in the handler's
 * task group that relays the replies; it ends after udp_idle_timeout
 * seconds without a datagram either way, or when the association is
 * evicted: at most udp_max_associations per worker, and a new sender
 * beyond that takes the place of the least recently active one.
 *
 * An association is freed by its last user: its task holds it while it
 * runs, and the listener's task while a datagram it forwards is being
 * sent (a send that waits on a full socket buffer may outlast the task,
 * which ends when the association has been idle for udp_idle_timeout).
 *
 * Datagrams are never queued: one that cannot be sent (the target's port
 * is closed and ICMP said so, a full socket buffer) is dropped, as the
 * network would. A target given by name is resolved when an association
 * is made, on wharf's thread pool; the listener waits meanwhile.
 * Not for: stream listeners (forward.c).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <netinet/in.h>

#include "forward.h"

struct assoc {
    struct udp_fwd *a_u;
    struct sockaddr_storage a_peer;     /* the sender */
    socklen_t a_peerlen;
    struct wharf_stream *a_sock;        /* connected to the target */
    double a_touched;                   /* the last datagram either way */
    struct wharf_scope a_scope;         /* the task's, while a_in_scope */
    bool a_in_scope;
    bool a_linked;                      /* in the table (not evicted yet) */
    bool a_evicted;
    unsigned a_refs;                    /* its task; a send of the listener's */
    LIST_ENTRY(assoc) a_hash;
    TAILQ_ENTRY(assoc) a_lru;           /* least recently active first */
};

LIST_HEAD(assoc_bucket, assoc);
TAILQ_HEAD(assoc_lru, assoc);

/* One handler call: one worker's listener socket. */
struct udp_fwd {
    struct fwd *u_f;
    struct wharf_stream *u_listener;
    struct wharf_group *u_group;
    struct assoc_bucket *u_buckets;
    size_t u_mask;                      /* buckets - 1 (a power of 2) */
    struct assoc_lru u_lru;
    unsigned u_count;                   /* associations in the table */
    char *u_in;                         /* datagrams from senders */
    char *u_reply;                      /* replies, shared while not busy */
    bool u_reply_busy;
};

/* ---- the table ------------------------------------------------------------------- */

/* The bytes that tell senders apart: family, port, address (and scope). */
static size_t peer_key(const struct sockaddr_storage *ss, unsigned char *key)
{
    size_t n = 0;

    key[n++] = (unsigned char)ss->ss_family;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

        memcpy(key + n, &in->sin_port, 2);
        memcpy(key + n + 2, &in->sin_addr, 4);
        return n + 6;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

        memcpy(key + n, &in6->sin6_port, 2);
        memcpy(key + n + 2, &in6->sin6_addr, 16);
        memcpy(key + n + 18, &in6->sin6_scope_id, 4);
        return n + 22;
    }
    return n;
}

static size_t bucket_of(const struct udp_fwd *u, const struct sockaddr_storage *ss)
{
    unsigned char key[32];
    size_t len = peer_key(ss, key), i;
    unsigned long h = 2166136261u;      /* FNV-1a */

    for (i = 0; i < len; i++)
        h = (h ^ key[i]) * 16777619u;
    return h & u->u_mask;
}

static bool same_peer(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    unsigned char ka[32], kb[32];
    size_t la = peer_key(a, ka);

    return la == peer_key(b, kb) && memcmp(ka, kb, la) == 0;
}

static struct assoc *lookup(struct udp_fwd *u, const struct sockaddr_storage *peer)
{
    struct assoc *a;

    LIST_FOREACH(a, &u->u_buckets[bucket_of(u, peer)], a_hash)
        if (same_peer(&a->a_peer, peer))
            return a;
    return NULL;
}

static void link_assoc(struct udp_fwd *u, struct assoc *a)
{
    LIST_INSERT_HEAD(&u->u_buckets[bucket_of(u, &a->a_peer)], a, a_hash);
    TAILQ_INSERT_TAIL(&u->u_lru, a, a_lru);
    a->a_linked = true;
    u->u_count++;
    fwd_count(&u->u_f->fwd_assoc_active, 1);
}

static void unlink_assoc(struct udp_fwd *u, struct assoc *a)
{
    if (!a->a_linked)
        return;
    LIST_REMOVE(a, a_hash);
    TAILQ_REMOVE(&u->u_lru, a, a_lru);
    a->a_linked = false;
    u->u_count--;
    atomic_fetch_sub_explicit(&u->u_f->fwd_assoc_active, 1, memory_order_relaxed);
}

static void touch(struct udp_fwd *u, struct assoc *a)
{
    a->a_touched = wharf_clock();
    if (a->a_linked) {
        TAILQ_REMOVE(&u->u_lru, a, a_lru);
        TAILQ_INSERT_TAIL(&u->u_lru, a, a_lru);
    }
}

/* Out of the table at once (its place is free); its task ends soon. */
static void evict(struct udp_fwd *u, struct assoc *a)
{
    unlink_assoc(u, a);
    a->a_evicted = true;
    if (a->a_in_scope)
        wharf_scope_cancel(&a->a_scope);
    fwd_count(&u->u_f->fwd_assoc_evicted, 1);
}

/* ---- one association's task: the replies ------------------------------------------ */

/* One reply from the target, back to the sender. The shared buffer is
 * held while the send may suspend; another task then uses its own. */
static int relay_one(struct udp_fwd *u, struct assoc *a)
{
    bool own = u->u_reply_busy;
    char *buf = own ? malloc(FWD_DATAGRAM_MAX) : u->u_reply;
    ssize_t n;
    int rc = 0;

    if (!buf)
        return -ENOMEM;
    u->u_reply_busy = true;
    n = wharf_receive_nowait(a->a_sock, buf, FWD_DATAGRAM_MAX);
    if (n >= 0) {
        touch(u, a);
        rc = wharf_send_to(u->u_listener, buf, (size_t)n, (struct sockaddr *)&a->a_peer,
                           a->a_peerlen);
        if (rc == 0)
            fwd_count(&u->u_f->fwd_bytes_down, (unsigned long long)n);
    } else if (n == WHARF_ECLOSED || n == WHARF_ECANCELLED) {
        rc = (int)n;
    }   /* else: WouldBlock, or an ICMP error (the target's port closed): go on */
    if (own)
        free(buf);
    else
        u->u_reply_busy = false;
    /* a reply that could not be sent is dropped; only the end ends us */
    return rc == WHARF_ECLOSED || rc == WHARF_ECANCELLED ? rc : 0;
}

static int relay_replies(struct udp_fwd *u, struct assoc *a)
{
    int rc;

    for (;;) {
        if ((rc = wharf_wait(a->a_sock, WHARF_READABLE)) < 0)
            return rc;
        if ((rc = relay_one(u, a)) < 0)
            return rc;
    }
}

/* Only tasks of one worker touch an association: no atomics. */
static void assoc_unref(struct assoc *a)
{
    if (--a->a_refs > 0)
        return;
    wharf_free(a->a_sock);
    free(a);
}

/* Its task ends: out of the table, and freed once no send uses it. */
static void assoc_end(struct udp_fwd *u, struct assoc *a)
{
    unlink_assoc(u, a);
    assoc_unref(a);
}

/* Relays until idle for udp_idle_timeout, evicted, or cancelled. The
 * deadline is only checked when it passes: the listener's task just
 * moves a_touched, and the scope is entered again while that is recent. */
static int assoc_task(void *arg)
{
    struct assoc *a = arg;
    struct udp_fwd *u = a->a_u;
    double deadline;
    int rc = 0;

    while (!a->a_evicted && rc == 0) {
        deadline = a->a_touched + u->u_f->fwd_udp_idle_timeout;
        if (deadline <= wharf_clock())
            break;
        if ((rc = wharf_scope_enter(&a->a_scope, deadline, 0)) < 0)
            break;
        a->a_in_scope = true;
        rc = relay_replies(u, a);
        a->a_in_scope = false;
        rc = wharf_scope_exit(&a->a_scope, rc);
    }
    assoc_end(u, a);
    return 0;           /* never a failure: that would cancel the listener */
}

/* ---- the listener's task ------------------------------------------------------------ */

static int assoc_open(struct udp_fwd *u, const struct sockaddr_storage *peer,
                      socklen_t peerlen, struct assoc **out)
{
    struct fwd *f = u->u_f;
    struct assoc *a;
    int rc;

    if (u->u_count >= f->fwd_udp_max_assoc)
        evict(u, TAILQ_FIRST(&u->u_lru));
    if (!(a = calloc(1, sizeof(*a))))
        return -ENOMEM;
    a->a_u = u;
    a->a_refs = 1;                      /* the task's */
    a->a_peer = *peer;
    a->a_peerlen = peerlen;
    if ((rc = wharf_udp_connect(f->fwd_host, f->fwd_port, NULL, 0, &a->a_sock)) < 0) {
        if (rc != WHARF_ECANCELLED)
            fwd_count(&f->fwd_connect_failures, 1);
        free(a);
        return rc;
    }
    a->a_touched = wharf_clock();
    link_assoc(u, a);
    if ((rc = wharf_group_spawn(u->u_group, assoc_task, a)) < 0) {
        assoc_end(u, a);
        return rc;
    }
    fwd_count(&f->fwd_assoc_opened, 1);
    *out = a;
    return 0;
}

/* One datagram from a sender to the target; errors other than the end of
 * the listener drop the datagram. */
static int forward_one(struct udp_fwd *u, size_t n, const struct sockaddr_storage *peer,
                       socklen_t peerlen)
{
    struct assoc *a = lookup(u, peer);
    int rc;

    if (!a && (rc = assoc_open(u, peer, peerlen, &a)) < 0)
        return rc == WHARF_ECANCELLED ? rc : 0;
    touch(u, a);
    a->a_refs++;                        /* the send may outlast the task */
    rc = wharf_send(a->a_sock, u->u_in, n);
    assoc_unref(a);
    if (rc == 0)
        fwd_count(&u->u_f->fwd_bytes_up, n);
    return rc == WHARF_ECANCELLED ? rc : 0;
}

static int listen_loop(struct udp_fwd *u)
{
    struct sockaddr_storage peer;
    socklen_t peerlen;
    ssize_t n;
    int rc;

    for (;;) {
        peerlen = sizeof(peer);
        memset(&peer, 0, sizeof(peer));
        n = wharf_receive_from(u->u_listener, u->u_in, FWD_DATAGRAM_MAX,
                               (struct sockaddr *)&peer, &peerlen);
        if (n < 0)
            return (int)n;
        if ((rc = forward_one(u, (size_t)n, &peer, peerlen)) < 0)
            return rc;
    }
}

static size_t buckets_for(unsigned max)
{
    size_t n = 16;

    while (n < 2 * (size_t)max)
        n *= 2;
    return n;
}

/* Runs until cancelled (reload, shutdown), which it returns. */
int fwd_serve_datagrams(void *instance, struct wharf_stream *socket)
{
    struct udp_fwd u = { .u_f = instance, .u_listener = socket };
    size_t nb = buckets_for(u.u_f->fwd_udp_max_assoc);
    int rc = -ENOMEM;

    TAILQ_INIT(&u.u_lru);
    u.u_mask = nb - 1;
    u.u_buckets = calloc(nb, sizeof(*u.u_buckets));
    u.u_in = malloc(FWD_DATAGRAM_MAX);
    u.u_reply = malloc(FWD_DATAGRAM_MAX);
    if (u.u_buckets && u.u_in && u.u_reply && (u.u_group = wharf_group_open())) {
        rc = listen_loop(&u);
        /* the associations' tasks end with the group */
        wharf_group_cancel(u.u_group);
        rc = wharf_group_close(u.u_group, rc);
    }
    free(u.u_buckets);
    free(u.u_in);
    free(u.u_reply);
    return rc;
}
