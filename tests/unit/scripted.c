/*
 * scripted.c: the scripted byte stream shared by the unit tests of stream
 * wrappers (check_buffered, check_text); what it does is in scripted.h.
 * A stream kind of its own, built on the public stream ops of wharf-int.h.
 */
#include "config.h"

#include <string.h>

#include "testutil.h"
#include "scripted.h"

int script_closes, script_frees;

struct script *script_of(struct wharf_stream *s)
{
    return (struct script *)s;
}

static void script_wake(struct script *sc)
{
    if (sc->sc_waiter)
        task_wake(sc->sc_waiter);
}

/* Room for one more chunk at the end of the queue. */
static void script_grow(struct script *sc)
{
    if (sc->sc_first + sc->sc_n < sc->sc_cap)
        return;
    sc->sc_cap = sc->sc_cap ? sc->sc_cap * 2 : 16;
    sc->sc_q = realloc(sc->sc_q, sc->sc_cap * sizeof(*sc->sc_q));
    ck_assert_ptr_nonnull(sc->sc_q);
}

void script_push(struct wharf_stream *s, const void *data, size_t len)
{
    struct script *sc = script_of(s);
    struct script_chunk *c;

    if (len == 0)
        return;     /* a byte stream has no empty chunks */
    script_grow(sc);
    c = &sc->sc_q[sc->sc_first + sc->sc_n++];
    c->data = malloc(len);
    ck_assert_ptr_nonnull(c->data);
    memcpy(c->data, data, len);
    c->len = len;
    c->off = 0;
    script_wake(sc);
}

void script_push_str(struct wharf_stream *s, const char *str)
{
    script_push(s, str, strlen(str));
}

void script_end(struct wharf_stream *s)
{
    script_of(s)->sc_eof = true;
    script_wake(script_of(s));
}

static ssize_t script_take(struct script *sc, void *buf, size_t max)
{
    struct script_chunk *c = &sc->sc_q[sc->sc_first];
    size_t n = c->len - c->off < max ? c->len - c->off : max;

    memcpy(buf, c->data + c->off, n);
    c->off += n;
    if (c->off == c->len) {
        free(c->data);
        sc->sc_first++;
        sc->sc_n--;
    }
    return (ssize_t)n;
}

static ssize_t script_receive_nowait(struct wharf_stream *s, void *buf, size_t max)
{
    struct script *sc = script_of(s);

    if (sc->sc_closed)
        return WHARF_ECLOSED;
    if (sc->sc_n > 0)
        return script_take(sc, buf, max);
    return sc->sc_eof ? WHARF_EOF : WHARF_EWOULDBLOCK;
}

static ssize_t script_receive(struct wharf_stream *s, void *buf, size_t max)
{
    struct script *sc = script_of(s);
    ssize_t r;
    int rc;

    while ((r = script_receive_nowait(s, buf, max)) == WHARF_EWOULDBLOCK) {
        sc->sc_waiter = task_current();
        rc = task_block();
        sc->sc_waiter = NULL;
        if (rc)
            return rc;
    }
    return r;
}

static int script_send(struct wharf_stream *s, const void *buf, size_t len)
{
    struct script *sc = script_of(s);

    if (sc->sc_closed)
        return WHARF_ECLOSED;
    if (sc->sc_sent_eof)
        return WHARF_EBROKEN;
    if (sc->sc_peer) {
        script_push(&sc->sc_peer->sc_head, buf, len);
        return 0;
    }
    ck_assert_uint_le(sc->sc_nsent + len, sizeof(sc->sc_sent));
    memcpy(sc->sc_sent + sc->sc_nsent, buf, len);
    sc->sc_nsent += len;
    return 0;
}

static int script_send_eof(struct wharf_stream *s)
{
    if (script_of(s)->sc_closed)
        return WHARF_ECLOSED;
    script_of(s)->sc_sent_eof = true;
    return 0;
}

static int script_getattr(struct wharf_stream *s, int attr, void *out, size_t *len)
{
    struct script *sc = script_of(s);

    if (sc->sc_closed)
        return WHARF_ECLOSED;
    if (attr != WHARF_ATTR_FD || sc->sc_no_fd)
        return -ENOENT;
    return stream_attr_int(out, len, 42);
}

static int script_close(struct wharf_stream *s)
{
    struct script *sc = script_of(s);

    if (sc->sc_closed)
        return 0;
    sc->sc_closed = true;
    script_closes++;
    if (sc->sc_peer)
        script_end(&sc->sc_peer->sc_head);
    script_wake(sc);
    return 0;
}

static void script_free(struct wharf_stream *s)
{
    struct script *sc = script_of(s);

    for (size_t i = 0; i < sc->sc_n; i++)
        free(sc->sc_q[sc->sc_first + i].data);
    free(sc->sc_q);
    free(sc);
    script_frees++;
}

static const struct wharf_stream_ops script_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "script",
    .guard = WHARF_GUARD_RECEIVE,
    .receive = script_receive,
    .send = script_send,
    .receive_nowait = script_receive_nowait,
    .send_eof = script_send_eof,
    .getattr = script_getattr,
    .close = script_close,
    .free = script_free,
};

struct wharf_stream *script_new_opts(unsigned flags)
{
    struct script *sc = calloc(1, sizeof(*sc));

    ck_assert_ptr_nonnull(sc);
    sc->sc_no_fd = (flags & SCRIPT_NO_FD) != 0;
    wharf_stream_init(&sc->sc_head, &script_ops, NULL);
    return &sc->sc_head;
}

struct wharf_stream *script_new(void)
{
    return script_new_opts(0);
}

/* A one-way pipe: what is sent on *tx is received on *rx. */
void script_pipe(struct wharf_stream **tx, struct wharf_stream **rx)
{
    *tx = script_new();
    *rx = script_new();
    script_of(*tx)->sc_peer = script_of(*rx);
}
