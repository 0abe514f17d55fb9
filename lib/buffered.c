/*
 * buffered.c: the buffered byte stream (AnyIO's BufferedByteReceiveStream
 * and BufferedByteStream): receive_exactly and receive_until over any byte
 * stream, keeping what was read beyond the request in an evbuffer. Sends,
 * send_eof and attributes pass through to the wrapped stream.
 * Not for: buffering sends, object streams, line-ending conventions (the
 * caller names its delimiter).
 *
 * No byte is ever lost to a cancellation: bytes come from the inner stream
 * into a scratch area and go into the evbuffer before any checkpoint can
 * return, so a cancelled receive_until leaves them buffered for the next
 * call.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <event2/buffer.h>

#include "wharf-int.h"

/* The most we ask of the inner stream at once (AnyIO asks 64 KiB). */
#define BUFFERED_READ 16384

struct buffered {
    struct wharf_stream bs_head;     /* first: the handle; inner = the wrapped stream */
    struct evbuffer *bs_buf;         /* received, not yet returned; made at the first
                                      * bytes to keep (a handler that never uses
                                      * receive_until holds none) */
    bool bs_closed;
    /* Inner receives land in the thread's scratch area, or in this buffer
     * for an inner stream that needs one (stream_receive_scratch), not in
     * evbuffer_reserve_space(): a feed while a receive waits would
     * invalidate a reservation. Only the one receiver (guarded) uses it. */
    unsigned char *bs_own;
};

static const struct wharf_stream_ops buffered_ops;

/* The buffered stream behind s, or NULL when s is another kind. */
static struct buffered *buffered_of(const struct wharf_stream *s)
{
    return s && s->ops == &buffered_ops ? (struct buffered *)(uintptr_t)s : NULL;
}

static size_t bs_len(const struct buffered *b)
{
    return b->bs_buf ? evbuffer_get_length(b->bs_buf) : 0;
}

/* The buffer, made on first use; NULL: out of memory. */
static struct evbuffer *bs_get(struct buffered *b)
{
    if (!b->bs_buf)
        b->bs_buf = evbuffer_new();
    return b->bs_buf;
}

struct evbuffer *buffered_evbuffer(struct wharf_stream *s)
{
    struct buffered *b = buffered_of(s);

    return b ? b->bs_buf : NULL;
}

/* ---- the ops table ------------------------------------------------------ */

static ssize_t buffered_receive(struct wharf_stream *s, void *buf, size_t max)
{
    struct buffered *b = buffered_of(s);

    if (b->bs_closed)
        return WHARF_ECLOSED;
    if (bs_len(b) > 0)
        return evbuffer_remove(b->bs_buf, buf, max);
    return wharf_receive(s->inner, buf, max);
}

static ssize_t buffered_receive_nowait(struct wharf_stream *s, void *buf, size_t max)
{
    struct buffered *b = buffered_of(s);

    if (b->bs_closed)
        return WHARF_ECLOSED;
    if (bs_len(b) > 0)
        return evbuffer_remove(b->bs_buf, buf, max);
    return wharf_receive_nowait(s->inner, buf, max);
}

static int buffered_send(struct wharf_stream *s, const void *buf, size_t len)
{
    if (buffered_of(s)->bs_closed)
        return WHARF_ECLOSED;
    return wharf_send(s->inner, buf, len);
}

static ssize_t buffered_send_nowait(struct wharf_stream *s, const void *buf, size_t len)
{
    if (buffered_of(s)->bs_closed)
        return WHARF_ECLOSED;
    return wharf_send_nowait(s->inner, buf, len);
}

static int buffered_send_eof(struct wharf_stream *s)
{
    if (buffered_of(s)->bs_closed)
        return WHARF_ECLOSED;
    return wharf_send_eof(s->inner);
}

/* Readable at once when bytes are buffered; otherwise the inner stream's. */
static int buffered_wait(struct wharf_stream *s, unsigned events)
{
    struct buffered *b = buffered_of(s);

    if (b->bs_closed)
        return WHARF_ECLOSED;
    if ((events & WHARF_READABLE) && bs_len(b) > 0)
        return 0;
    return wharf_wait(s->inner, events);
}

/* 1 (receive again) when bytes are buffered; otherwise the inner stream's. */
static int buffered_notify_readable(struct wharf_stream *s, void (*fn)(void *arg), void *arg)
{
    struct buffered *b = buffered_of(s);

    if (fn && b->bs_closed)
        return WHARF_ECLOSED;
    if (fn && bs_len(b) > 0)
        return 1;
    return wharf_notify_readable(s->inner, fn, arg);
}

/* Nothing of its own: -ENOENT sends the lookup on to the inner stream. */
static int buffered_getattr(struct wharf_stream *s, int attr, void *out, size_t *len)
{
    return buffered_of(s)->bs_closed ? WHARF_ECLOSED : -ENOENT;
}

static int buffered_close(struct wharf_stream *s)
{
    struct buffered *b = buffered_of(s);

    if (b->bs_closed)
        return 0;
    b->bs_closed = true;
    if (b->bs_buf)
        evbuffer_drain(b->bs_buf, bs_len(b));
    return wharf_close(s->inner);
}

static void buffered_free(struct wharf_stream *s)
{
    struct buffered *b = buffered_of(s);

    wharf_free(s->inner);
    if (b->bs_buf)
        evbuffer_free(b->bs_buf);
    free(b->bs_own);
    free(b);
}

static const struct wharf_stream_ops buffered_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "buffered",
    .guard = WHARF_GUARD_RECEIVE,
    .receive = buffered_receive,
    .send = buffered_send,
    .receive_nowait = buffered_receive_nowait,
    .send_nowait = buffered_send_nowait,
    .send_eof = buffered_send_eof,
    .wait = buffered_wait,
    .getattr = buffered_getattr,
    .close = buffered_close,
    .free = buffered_free,
    .notify_readable = buffered_notify_readable,
};

struct wharf_stream *wharf_buffered_new(struct wharf_stream *inner)
{
    struct buffered *b;

    if (!inner)
        return NULL;
    if (!(b = calloc(1, sizeof(*b))))
        return NULL;
    wharf_stream_init(&b->bs_head, &buffered_ops, inner);
    return &b->bs_head;
}

/* ---- receive_exactly / receive_until ----------------------------------- */

/* Takes the receive guard for the calls that do not go through
 * wharf_receive(). Returns 0, WHARF_ENOTSUP (not a buffered stream),
 * WHARF_ECLOSED, WHARF_EBUSY. */
static int buffered_enter(struct wharf_stream *s, struct buffered **out)
{
    struct buffered *b = buffered_of(s);

    if (!b)
        return WHARF_ENOTSUP;
    if (b->bs_closed)
        return WHARF_ECLOSED;
    if (s->busy & WHARF_GUARD_RECEIVE)
        return WHARF_EBUSY;
    s->busy |= WHARF_GUARD_RECEIVE;
    *out = b;
    return 0;
}

static void buffered_leave(struct buffered *b)
{
    b->bs_head.busy &= ~WHARF_GUARD_RECEIVE;
}

/* Appends up to `want` bytes from the inner stream to the buffer. Returns
 * the count; WHARF_EINCOMPLETE at the end of the stream; WHARF_ECLOSED when
 * we were closed while waiting; the inner stream's other errors. */
static ssize_t buffered_fill(struct buffered *b, size_t want)
{
    const unsigned char *data = NULL;
    ssize_t n;

    if (want > BUFFERED_READ)
        want = BUFFERED_READ;
    n = stream_receive_scratch(b->bs_head.inner, want, &data, &b->bs_own);
    /* A byte stream never returns 0 while open; take a 0 from a broken
     * inner stream as its end rather than spin on it. */
    if (n == WHARF_EOF || n == 0)
        return WHARF_EINCOMPLETE;
    if (n < 0)
        return n;
    if (b->bs_closed)
        return WHARF_ECLOSED;
    if (!bs_get(b) || evbuffer_add(b->bs_buf, data, (size_t)n) < 0)
        return -ENOMEM;
    return n;
}

static ssize_t buffered_exactly(struct buffered *b, void *buf, size_t n)
{
    size_t have;
    ssize_t r;

    if (n == 0)
        return 0;
    while ((have = bs_len(b)) < n) {
        if ((r = buffered_fill(b, n - have)) < 0)
            return r;
    }
    evbuffer_remove(b->bs_buf, buf, n);
    return (ssize_t)n;
}

ssize_t wharf_receive_exactly(struct wharf_stream *s, void *buf, size_t n)
{
    struct buffered *b;
    ssize_t r;

    if (!s || !buf || n > SSIZE_MAX)
        return WHARF_EINVAL;
    if ((r = buffered_enter(s, &b)))
        return r;
    r = buffered_exactly(b, buf, n);
    buffered_leave(b);
    return r;
}

/* Offset of the first delimiter that starts at or after `from` and no later
 * than max (so that what precedes it fits the caller's max bytes), or -1. */
static ssize_t buffered_search(struct buffered *b, const void *delim, size_t dlen,
                               size_t from, size_t max)
{
    struct evbuffer_ptr start, end, hit;
    size_t have = bs_len(b);
    size_t stop = have;

    if (have < dlen || from > have - dlen)
        return -1;
    if (have - dlen > max)
        stop = max + dlen;          /* a match must end by then */
    if (evbuffer_ptr_set(b->bs_buf, &start, from, EVBUFFER_PTR_SET) < 0 ||
        evbuffer_ptr_set(b->bs_buf, &end, stop, EVBUFFER_PTR_SET) < 0)
        return -1;
    hit = evbuffer_search_range(b->bs_buf, delim, dlen, &start, &end);
    return hit.pos;
}

/*
 * The DelimiterNotFound rule, read from AnyIO 4's receive_until: search
 * what is buffered; if the delimiter is not there and at least max_bytes
 * are buffered, fail (keeping the buffer); otherwise receive more and search
 * again. Two consequences we keep on purpose:
 *  - a line of exactly max_bytes is found when its delimiter arrives in the
 *    same chunk, but fails when its max_bytes arrive first and the delimiter
 *    later (AnyIO does the same: it gives up as soon as max_bytes are
 *    buffered without the delimiter);
 *  - AnyIO returns a longer line when the chunk that completes it happens to
 *    hold it whole; our caller's buffer holds max_bytes, so a delimiter
 *    starting beyond max_bytes counts as not found (WHARF_ENODELIM).
 * The search is incremental: each round starts dlen - 1 bytes before the
 * end of what the previous round searched, so that a delimiter straddling
 * two chunks is found and a long line is not rescanned from its start.
 */
static ssize_t buffered_until(struct buffered *b, const void *delim, size_t dlen,
                              void *buf, size_t max)
{
    size_t from = 0, have;
    ssize_t at, r;

    for (;;) {
        if ((at = buffered_search(b, delim, dlen, from, max)) >= 0) {
            evbuffer_remove(b->bs_buf, buf, (size_t)at);
            evbuffer_drain(b->bs_buf, dlen);
            return at;
        }
        have = bs_len(b);
        if (have >= max)
            return WHARF_ENODELIM;
        from = have >= dlen ? have - dlen + 1 : 0;
        if ((r = buffered_fill(b, BUFFERED_READ)) < 0)
            return r;
    }
}

ssize_t wharf_receive_until(struct wharf_stream *s, const void *delim, size_t dlen,
                            void *buf, size_t max_bytes)
{
    struct buffered *b;
    ssize_t r;

    if (!s || !delim || dlen == 0 || !buf || max_bytes == 0 || max_bytes > SSIZE_MAX)
        return WHARF_EINVAL;
    if ((r = buffered_enter(s, &b)))
        return r;
    r = buffered_until(b, delim, dlen, buf, max_bytes);
    buffered_leave(b);
    return r;
}

/* ---- the buffer itself -------------------------------------------------- */

/* Returns 0, WHARF_EINVAL, WHARF_ENOTSUP (not a buffered stream),
 * WHARF_ECLOSED, -ENOMEM. */
int wharf_buffered_feed(struct wharf_stream *s, const void *data, size_t len)
{
    struct buffered *b;

    if (!s || (!data && len > 0))
        return WHARF_EINVAL;
    if (!(b = buffered_of(s)))
        return WHARF_ENOTSUP;
    if (b->bs_closed)
        return WHARF_ECLOSED;
    if (len > 0 && (!bs_get(b) || evbuffer_add(b->bs_buf, data, len) < 0))
        return -ENOMEM;
    return 0;
}

size_t wharf_buffered_size(const struct wharf_stream *s)
{
    const struct buffered *b = buffered_of(s);

    return b ? bs_len(b) : 0;
}
