/*
 * stream.c: the generic stream calls of wharf/stream.h. They check
 * arguments, dispatch through the ops table (an op the table does not have,
 * or that lies beyond the implementer's ops size, is WHARF_ENOTSUP), and
 * enforce the one-receiver / one-sender guards a stream kind asks for.
 * Not for: any particular kind of stream.
 */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "wharf-int.h"

/* The op `name` of s, or NULL when the implementer's table is too old. */
#define STREAM_OP(s, name)                                                  \
    ((s)->ops && offsetof(struct wharf_stream_ops, name) < (s)->ops->size   \
     ? (s)->ops->name : NULL)

void wharf_stream_init(struct wharf_stream *s, const struct wharf_stream_ops *ops,
                       struct wharf_stream *inner)
{
    memset(s, 0, sizeof(*s));
    s->ops = ops;
    s->inner = inner;
}

static bool stream_guard_take(struct wharf_stream *s, unsigned bit)
{
    if (!(s->ops->guard & bit))
        return true;
    if (s->busy & bit)
        return false;
    s->busy |= bit;
    return true;
}

static void stream_guard_drop(struct wharf_stream *s, unsigned bit)
{
    if (s->ops->guard & bit)
        s->busy &= ~bit;
}

ssize_t wharf_receive(struct wharf_stream *s, void *buf, size_t max)
{
    ssize_t (*op)(struct wharf_stream *, void *, size_t);
    ssize_t r;

    if (!s || !buf || max == 0)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, receive)))
        return WHARF_ENOTSUP;
    if (!stream_guard_take(s, WHARF_GUARD_RECEIVE))
        return WHARF_EBUSY;
    r = op(s, buf, max);
    stream_guard_drop(s, WHARF_GUARD_RECEIVE);
    return r;
}

int wharf_send(struct wharf_stream *s, const void *buf, size_t len)
{
    int (*op)(struct wharf_stream *, const void *, size_t);
    int r;

    if (!s || (!buf && len > 0))
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, send)))
        return WHARF_ENOTSUP;
    if (!stream_guard_take(s, WHARF_GUARD_SEND))
        return WHARF_EBUSY;
    r = op(s, buf, len);
    stream_guard_drop(s, WHARF_GUARD_SEND);
    return r;
}

ssize_t wharf_receive_nowait(struct wharf_stream *s, void *buf, size_t max)
{
    ssize_t (*op)(struct wharf_stream *, void *, size_t);

    if (!s || !buf || max == 0)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, receive_nowait)))
        return WHARF_ENOTSUP;
    if ((s->ops->guard & WHARF_GUARD_RECEIVE) && (s->busy & WHARF_GUARD_RECEIVE))
        return WHARF_EBUSY;
    return op(s, buf, max);
}

ssize_t wharf_send_nowait(struct wharf_stream *s, const void *buf, size_t len)
{
    ssize_t (*op)(struct wharf_stream *, const void *, size_t);

    if (!s || !buf || len == 0)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, send_nowait)))
        return WHARF_ENOTSUP;
    if ((s->ops->guard & WHARF_GUARD_SEND) && (s->busy & WHARF_GUARD_SEND))
        return WHARF_EBUSY;
    return op(s, buf, len);
}

int wharf_wait(struct wharf_stream *s, unsigned events)
{
    int (*op)(struct wharf_stream *, unsigned);

    if (!s || events == 0 || (events & ~(WHARF_READABLE | WHARF_WRITABLE)))
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, wait)))
        return WHARF_ENOTSUP;
    return op(s, events);
}

int wharf_notify_readable(struct wharf_stream *s, void (*fn)(void *arg), void *arg)
{
    int (*op)(struct wharf_stream *, void (*)(void *), void *);

    if (!s)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, notify_readable)))
        return fn ? WHARF_ENOTSUP : 0;
    return op(s, fn, arg);
}

int wharf_send_eof(struct wharf_stream *s)
{
    int (*op)(struct wharf_stream *);

    if (!s)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, send_eof)))
        return WHARF_ENOTSUP;
    return op(s);
}

int wharf_receive_item(struct wharf_stream *s, void **item)
{
    int (*op)(struct wharf_stream *, void **);
    int r;

    if (!s || !item)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, receive_item)))
        return WHARF_ENOTSUP;
    if (!stream_guard_take(s, WHARF_GUARD_RECEIVE))
        return WHARF_EBUSY;
    r = op(s, item);
    stream_guard_drop(s, WHARF_GUARD_RECEIVE);
    return r;
}

int wharf_send_item(struct wharf_stream *s, void *item)
{
    int (*op)(struct wharf_stream *, void *);
    int r;

    if (!s)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, send_item)))
        return WHARF_ENOTSUP;
    if (!stream_guard_take(s, WHARF_GUARD_SEND))
        return WHARF_EBUSY;
    r = op(s, item);
    stream_guard_drop(s, WHARF_GUARD_SEND);
    return r;
}

int wharf_receive_item_nowait(struct wharf_stream *s, void **item)
{
    int (*op)(struct wharf_stream *, void **);

    if (!s || !item)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, receive_item_nowait)))
        return WHARF_ENOTSUP;
    return op(s, item);
}

int wharf_send_item_nowait(struct wharf_stream *s, void *item)
{
    int (*op)(struct wharf_stream *, void *);

    if (!s)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, send_item_nowait)))
        return WHARF_ENOTSUP;
    return op(s, item);
}

int wharf_clone(struct wharf_stream *s, struct wharf_stream **out)
{
    int (*op)(struct wharf_stream *, struct wharf_stream **);

    if (!s || !out)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, clone)))
        return WHARF_ENOTSUP;
    return op(s, out);
}

ssize_t wharf_receive_from(struct wharf_stream *s, void *buf, size_t max,
                           struct sockaddr *from, socklen_t *fromlen)
{
    ssize_t (*op)(struct wharf_stream *, void *, size_t, struct sockaddr *, socklen_t *);
    ssize_t r;

    if (!s || !buf || max == 0 || (from && !fromlen))
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, receive_from)))
        return WHARF_ENOTSUP;
    if (!stream_guard_take(s, WHARF_GUARD_RECEIVE))
        return WHARF_EBUSY;
    r = op(s, buf, max, from, fromlen);
    stream_guard_drop(s, WHARF_GUARD_RECEIVE);
    return r;
}

int wharf_send_to(struct wharf_stream *s, const void *buf, size_t len,
                  const struct sockaddr *to, socklen_t tolen)
{
    int (*op)(struct wharf_stream *, const void *, size_t, const struct sockaddr *, socklen_t);
    int r;

    if (!s || (!buf && len > 0) || !to || tolen == 0)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, send_to)))
        return WHARF_ENOTSUP;
    if (!stream_guard_take(s, WHARF_GUARD_SEND))
        return WHARF_EBUSY;
    r = op(s, buf, len, to, tolen);
    stream_guard_drop(s, WHARF_GUARD_SEND);
    return r;
}

int wharf_accept(struct wharf_stream *l, struct wharf_stream **out)
{
    int (*op)(struct wharf_stream *, struct wharf_stream **);
    int r;

    if (!l || !out)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(l, accept)))
        return WHARF_ENOTSUP;
    if (!stream_guard_take(l, WHARF_GUARD_RECEIVE))
        return WHARF_EBUSY;
    r = op(l, out);
    stream_guard_drop(l, WHARF_GUARD_RECEIVE);
    return r;
}

int wharf_close(struct wharf_stream *s)
{
    int (*op)(struct wharf_stream *);

    if (!s)
        return WHARF_EINVAL;
    if (!(op = STREAM_OP(s, close)))
        return 0;
    return op(s);
}

void wharf_free(struct wharf_stream *s)
{
    void (*op)(struct wharf_stream *);

    if (!s)
        return;
    wharf_close(s);
    if ((op = STREAM_OP(s, free)))
        op(s);
}

int wharf_getattr(struct wharf_stream *s, int attr, void *out, size_t *len)
{
    if (!s || !out || !len)
        return WHARF_EINVAL;
    for (struct wharf_stream *x = s; x; x = x->inner) {
        int (*op)(struct wharf_stream *, int, void *, size_t *) = STREAM_OP(x, getattr);
        int r;

        if (!op)
            continue;
        r = op(x, attr, out, len);
        if (r != -ENOENT)
            return r;
    }
    return -ENOENT;
}

int wharf_getattr_int(struct wharf_stream *s, int attr, int *value)
{
    size_t len = sizeof(*value);

    if (!value)
        return WHARF_EINVAL;
    return wharf_getattr(s, attr, value, &len);
}

int wharf_getattr_addr(struct wharf_stream *s, int attr,
                       struct sockaddr_storage *ss, socklen_t *len)
{
    size_t l = sizeof(*ss);
    int r;

    if (!ss || !len)
        return WHARF_EINVAL;
    r = wharf_getattr(s, attr, ss, &l);
    if (r == 0)
        *len = (socklen_t)l;
    return r;
}

const char *wharf_stream_kind(const struct wharf_stream *s)
{
    return s && s->ops && s->ops->kind ? s->ops->kind : "unknown";
}

/* ---- helpers for implementations ---------------------------------------- */

int stream_attr_copy(void *out, size_t *len, const void *val, size_t vlen)
{
    if (*len < vlen) {
        *len = vlen;
        return -ENOSPC;
    }
    memcpy(out, val, vlen);
    *len = vlen;
    return 0;
}

int stream_attr_int(void *out, size_t *len, int v)
{
    return stream_attr_copy(out, len, &v, sizeof(v));
}

/* ---- receiving without a buffer of one's own ------------------------------ */

/* One per thread: tasks of a worker never run at once, and each caller
 * copies the bytes out before it can suspend again. */
static _Thread_local unsigned char stream_scratch[STREAM_SCRATCH];

ssize_t stream_receive_scratch(struct wharf_stream *s, size_t max,
                               const unsigned char **data, unsigned char **own)
{
    ssize_t n;
    int rc;

    if (max > STREAM_SCRATCH)
        max = STREAM_SCRATCH;
    if (!*own && !(STREAM_OP(s, receive_nowait) && STREAM_OP(s, wait))) {
        /* no way to wait without a buffer: a plain receive, as before */
    } else if (!*own) {
        /* a checkpoint first, as the blocking receive of a socket has: a
         * reader that always finds data still lets the others run */
        if ((rc = wharf_checkpoint()) < 0)
            return rc;
        while ((n = wharf_receive_nowait(s, stream_scratch, max)) == WHARF_EWOULDBLOCK) {
            if ((rc = wharf_wait(s, WHARF_READABLE)) < 0) {
                if (rc != WHARF_ENOTSUP)
                    return rc;
                n = WHARF_ENOTSUP;
                break;
            }
        }
        if (n != WHARF_ENOTSUP) {
            *data = stream_scratch;
            return n;
        }
    }
    /* e.g. a memory stream: its senders write into a waiting receiver's
     * buffer, which must then be the caller's own */
    if (!*own && !(*own = malloc(STREAM_SCRATCH)))
        return -ENOMEM;
    *data = *own;
    return wharf_receive(s, *own, max);
}
