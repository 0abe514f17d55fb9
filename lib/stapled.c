/*
 * stapled.c: one bidirectional stream made of a send stream and a receive
 * stream (AnyIO's StapledByteStream and StapledObjectStream). Byte and
 * object calls go to the stream of their direction; send_eof closes the
 * send stream; close closes both; attributes come from the send stream
 * first, then from the receive stream.
 * Not for: any buffering or locking of its own (the two streams guard
 * themselves against concurrent use).
 */
#include "config.h"

#include <stdlib.h>

#include "wharf-int.h"

struct stapled {
    struct wharf_stream st_head;     /* first; inner = st_recv (attribute fallback) */
    struct wharf_stream *st_send;
    struct wharf_stream *st_recv;
    bool st_send_closed;             /* by send_eof: no longer asked for attributes */
    bool st_closed;
};

static struct stapled *stapled_of(struct wharf_stream *s)
{
    return (struct stapled *)s;
}

/* The stream a call of that direction goes to, or NULL once closed. */
static struct wharf_stream *stapled_rx(struct wharf_stream *s)
{
    return stapled_of(s)->st_closed ? NULL : stapled_of(s)->st_recv;
}

static struct wharf_stream *stapled_tx(struct wharf_stream *s)
{
    return stapled_of(s)->st_closed ? NULL : stapled_of(s)->st_send;
}

/* ---- bytes ---------------------------------------------------------------- */

static ssize_t stapled_receive(struct wharf_stream *s, void *buf, size_t max)
{
    struct wharf_stream *rx = stapled_rx(s);

    return rx ? wharf_receive(rx, buf, max) : WHARF_ECLOSED;
}

static int stapled_send(struct wharf_stream *s, const void *buf, size_t len)
{
    struct wharf_stream *tx = stapled_tx(s);

    return tx ? wharf_send(tx, buf, len) : WHARF_ECLOSED;
}

static ssize_t stapled_receive_nowait(struct wharf_stream *s, void *buf, size_t max)
{
    struct wharf_stream *rx = stapled_rx(s);

    return rx ? wharf_receive_nowait(rx, buf, max) : WHARF_ECLOSED;
}

/* WHARF_ENOTSUP when the send stream has no send_nowait (wharf_send_nowait
 * says so). */
static ssize_t stapled_send_nowait(struct wharf_stream *s, const void *buf, size_t len)
{
    struct wharf_stream *tx = stapled_tx(s);

    return tx ? wharf_send_nowait(tx, buf, len) : WHARF_ECLOSED;
}

/* ---- objects ------------------------------------------------------------- */

static int stapled_receive_item(struct wharf_stream *s, void **item)
{
    struct wharf_stream *rx = stapled_rx(s);

    return rx ? wharf_receive_item(rx, item) : WHARF_ECLOSED;
}

static int stapled_send_item(struct wharf_stream *s, void *item)
{
    struct wharf_stream *tx = stapled_tx(s);

    return tx ? wharf_send_item(tx, item) : WHARF_ECLOSED;
}

static int stapled_receive_item_nowait(struct wharf_stream *s, void **item)
{
    struct wharf_stream *rx = stapled_rx(s);

    return rx ? wharf_receive_item_nowait(rx, item) : WHARF_ECLOSED;
}

static int stapled_send_item_nowait(struct wharf_stream *s, void *item)
{
    struct wharf_stream *tx = stapled_tx(s);

    return tx ? wharf_send_item_nowait(tx, item) : WHARF_ECLOSED;
}

/* ---- the rest ------------------------------------------------------------ */

/* AnyIO: send_eof() is send_stream.aclose(); closing is idempotent, so a
 * second send_eof is fine and later sends fail with WHARF_ECLOSED. */
static int stapled_send_eof(struct wharf_stream *s)
{
    struct stapled *st = stapled_of(s);

    if (st->st_closed)
        return WHARF_ECLOSED;
    st->st_send_closed = true;
    return wharf_close(st->st_send);
}

/* One direction at a time: waiting for either of two streams would need a
 * second task, and nobody needs it yet (WHARF_ENOTSUP). */
static int stapled_wait(struct wharf_stream *s, unsigned events)
{
    struct stapled *st = stapled_of(s);

    if (st->st_closed)
        return WHARF_ECLOSED;
    if (events == WHARF_READABLE)
        return wharf_wait(st->st_recv, events);
    if (events == WHARF_WRITABLE)
        return wharf_wait(st->st_send, events);
    return WHARF_ENOTSUP;
}

/* The send stream's attributes; its -ENOENT lets the generic lookup go on
 * to the receive stream (s->inner). */
static int stapled_getattr(struct wharf_stream *s, int attr, void *out, size_t *len)
{
    struct stapled *st = stapled_of(s);

    if (st->st_closed)
        return WHARF_ECLOSED;
    if (st->st_send_closed)
        return -ENOENT;
    return wharf_getattr(st->st_send, attr, out, len);
}

static int stapled_close(struct wharf_stream *s)
{
    struct stapled *st = stapled_of(s);
    int rs, rr;

    if (st->st_closed)
        return 0;
    st->st_closed = true;
    rs = wharf_close(st->st_send);
    rr = wharf_close(st->st_recv);
    return rs ? rs : rr;
}

static void stapled_free(struct wharf_stream *s)
{
    struct stapled *st = stapled_of(s);

    wharf_free(st->st_send);
    wharf_free(st->st_recv);
    free(st);
}

static const struct wharf_stream_ops stapled_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "stapled",
    .guard = 0,
    .receive = stapled_receive,
    .send = stapled_send,
    .receive_nowait = stapled_receive_nowait,
    .send_nowait = stapled_send_nowait,
    .receive_item = stapled_receive_item,
    .send_item = stapled_send_item,
    .receive_item_nowait = stapled_receive_item_nowait,
    .send_item_nowait = stapled_send_item_nowait,
    .send_eof = stapled_send_eof,
    .wait = stapled_wait,
    .getattr = stapled_getattr,
    .close = stapled_close,
    .free = stapled_free,
};

/* NULL also when both are the same stream: it would be closed and freed
 * twice. */
struct wharf_stream *wharf_stapled_new(struct wharf_stream *send_stream,
                                       struct wharf_stream *receive_stream)
{
    struct stapled *st;

    if (!send_stream || !receive_stream || send_stream == receive_stream)
        return NULL;
    if (!(st = calloc(1, sizeof(*st))))
        return NULL;
    wharf_stream_init(&st->st_head, &stapled_ops, receive_stream);
    st->st_send = send_stream;
    st->st_recv = receive_stream;
    return &st->st_head;
}
