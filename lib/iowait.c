/*
 * iowait.c: a task waits for its descriptor. Each descriptor is registered
 * once with the loop, edge-triggered and persistent, on the first wait; an
 * edge wakes the task waiting for that direction. Callers try the I/O first
 * and wait only after EAGAIN, so no edge can be missed (the loop, and thus
 * the edge, only runs while the task is suspended). rd_eagain remembers a
 * read's EAGAIN until the next read edge: a wait for readability then
 * needs no poll() to know that it must wait.
 * Not for: the streams themselves (socket.c, udp.c).
 */
#include "config.h"

#include <string.h>

#include "wharf-int.h"

static void iowait_cb(evutil_socket_t fd, short what, void *arg)
{
    struct iowait *w = arg;

    (void)fd;
    if (what & EV_CLOSED) {
        w->rd_hup = true;       /* the peer's end came with this edge */
        what |= EV_READ;
    }
    if (what & EV_READ)
        w->rd_eagain = false;
    if ((what & EV_READ) && w->rd)
        task_wake(w->rd);
    if ((what & EV_WRITE) && w->wr)
        task_wake(w->wr);
    if ((what & EV_READ) && w->rd_fn) {
        void (*fn)(void *) = w->rd_fn;

        w->rd_fn = NULL;        /* once; fn may arm it again, or free w */
        fn(w->rd_arg);
    }
}

void iowait_init(struct iowait *w, int fd)
{
    memset(w, 0, sizeof(*w));
    w->fd = fd;
}

/* Registers fd with s's loop on first use. */
static int iowait_add(struct iowait *w, struct sched *s)
{
    if (!w->added) {
        w->sched = s;
        /* EV_CLOSED (epoll's EPOLLRDHUP): an edge says whether the peer's
         * end came with it, so a short read can count as a drained socket
         * (socket.c) without missing an end that nothing will signal again */
        w->early_close = event_base_get_features(s->base) & EV_FEATURE_EARLY_CLOSE;
        if (event_assign(&w->ev, w->sched->base, w->fd,
                         EV_READ | EV_WRITE | EV_ET | EV_PERSIST |
                         (w->early_close ? EV_CLOSED : 0), iowait_cb, w) != 0 ||
            event_add(&w->ev, NULL) != 0)
            return -ENOMEM;
        w->added = true;
    } else if (w->sched != s) {
        return WHARF_EINVAL;    /* a descriptor belongs to one worker */
    }
    return 0;
}

int iowait_wait(struct iowait *w, short what)
{
    struct task *t = task_current();
    bool rd = what & EV_READ, wr = what & EV_WRITE;
    int rc;

    if (!t || w->fd < 0 || !(rd || wr))
        return WHARF_EINVAL;
    if ((rc = iowait_add(w, t->sched)) < 0)
        return rc;
    if ((rd && (w->rd || w->rd_fn)) || (wr && w->wr))
        return WHARF_EBUSY;
    /* waiting for both: an edge in either direction wakes the task */
    if (rd)
        w->rd = t;
    if (wr)
        w->wr = t;
    rc = task_block();
    if (w->rd == t)
        w->rd = NULL;
    if (w->wr == t)
        w->wr = NULL;
    return rc;
}

int iowait_notify(struct iowait *w, void (*fn)(void *arg), void *arg)
{
    struct sched *s = sched_current();
    int rc;

    if (!fn) {
        w->rd_fn = NULL;
        return 0;
    }
    if (!s || w->fd < 0)
        return WHARF_EINVAL;
    if (w->rd || w->rd_fn)
        return WHARF_EBUSY;
    if (!w->rd_eagain)
        return 1;               /* no EAGAIN since the last edge: read first */
    if ((rc = iowait_add(w, s)) < 0)
        return rc;
    w->rd_fn = fn;
    w->rd_arg = arg;
    return 0;
}

void iowait_fini(struct iowait *w)
{
    w->rd_fn = NULL;
    if (w->added) {
        event_del(&w->ev);
        w->added = false;
    }
    /* closing may happen on another thread than the waiters' worker */
    if (w->rd)
        task_wake_any(w->rd);
    if (w->wr && w->wr != w->rd)
        task_wake_any(w->wr);
    w->rd = w->wr = NULL;
    w->fd = -1;
}
