/*
 * text.c: the UTF-8 text stream (AnyIO's TextReceiveStream, TextSendStream
 * and TextStream, for UTF-8 only). receive returns whole, valid characters:
 * a sequence split across chunks is held back until the rest arrives;
 * invalid input is -EILSEQ, or U+FFFD per maximal invalid subpart (Unicode
 * 3.9, "U+FFFD substitution of maximal subparts", as Python's decoder does)
 * with WHARF_TEXT_REPLACE. send checks the whole buffer before sending any
 * of it. Overlong forms, surrogates and code points above U+10FFFF are
 * invalid.
 * Not for: other encodings, normalization, line handling (wrap a buffered
 * stream for that).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "wharf-int.h"

#define TEXT_FFFD "\xef\xbf\xbd"
#define TEXT_FFFD_LEN 3
#define TEXT_MIN_RECEIVE 4           /* the longest character */

struct text {
    struct wharf_stream tx_head;     /* first; inner = the wrapped byte stream */
    /* Bytes received but not returned yet: an incomplete trailing
     * sequence, or whatever did not fit the caller's buffer. */
    struct evbuffer *tx_raw;
    unsigned tx_flags;               /* WHARF_TEXT_* */
    bool tx_closed;
};

static struct text *text_of(struct wharf_stream *s)
{
    return (struct text *)s;
}

/* ---- UTF-8 ------------------------------------------------------------- */

enum utf8_stop {
    UTF8_END,        /* all input taken */
    UTF8_FULL,       /* the next character does not fit */
    UTF8_SHORT,      /* the input ends inside a character that may still be valid */
    UTF8_BAD         /* an invalid sequence; *adv is its maximal subpart */
};

/* Classifies the sequence at p (n >= 1 bytes): UTF8_END with *adv its
 * length when it is a whole valid character, UTF8_SHORT when p holds a
 * valid beginning of one, UTF8_BAD otherwise (*adv bytes to replace). The
 * ranges are Unicode's table 3-7 of well-formed byte sequences. */
static enum utf8_stop utf8_seq(const unsigned char *p, size_t n, size_t *adv)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t need, i;

    *adv = 1;
    if (c < 0x80)
        return UTF8_END;
    if (c < 0xc2 || c > 0xf4)
        return UTF8_BAD;
    need = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (c == 0xe0)
        lo = 0xa0;              /* overlong */
    else if (c == 0xed)
        hi = 0x9f;              /* surrogates */
    else if (c == 0xf0)
        lo = 0x90;              /* overlong */
    else if (c == 0xf4)
        hi = 0x8f;              /* above U+10FFFF */
    for (i = 1; i < need; i++, lo = 0x80, hi = 0xbf) {
        *adv = i;
        if (i == n)
            return UTF8_SHORT;
        if (p[i] < lo || p[i] > hi)
            return UTF8_BAD;
    }
    *adv = need;
    return UTF8_END;
}

/* The length of the longest prefix of p[0..n) made of whole valid
 * characters and at most max bytes long; *why says what ended it and, for
 * UTF8_BAD, *adv is the length of the invalid subpart. */
static size_t utf8_span(const unsigned char *p, size_t n, size_t max,
                        enum utf8_stop *why, size_t *adv)
{
    size_t i = 0;

    for (;;) {
        while (i < n && i < max && p[i] < 0x80)
            i++;
        if (i == n) {
            *why = UTF8_END;
            return i;
        }
        *why = utf8_seq(p + i, n - i, adv);
        if (*why != UTF8_END)
            return i;
        if (*adv > max - i) {
            *why = UTF8_FULL;
            return i;
        }
        i += *adv;
    }
}

/* ---- receiving ---------------------------------------------------------- */

/* Moves whole characters from the raw buffer into buf (max >= 4). Returns
 * the bytes written; -EILSEQ when the raw buffer starts with an invalid
 * sequence (dropped, so that the next call goes on after it) and we are
 * not replacing; 0 when more input is needed. */
static ssize_t text_take(struct text *t, unsigned char *buf, size_t max)
{
    size_t have = evbuffer_get_length(t->tx_raw), used = 0, out = 0, adv = 0, n;
    bool replace = t->tx_flags & WHARF_TEXT_REPLACE;
    enum utf8_stop why;
    const unsigned char *p;

    if (have == 0)
        return 0;
    if (!(p = evbuffer_pullup(t->tx_raw, -1)))
        return -ENOMEM;
    for (;;) {
        n = utf8_span(p + used, have - used, max - out, &why, &adv);
        memcpy(buf + out, p + used, n);
        out += n;
        used += n;
        if (why != UTF8_BAD || !replace || max - out < TEXT_FFFD_LEN)
            break;
        memcpy(buf + out, TEXT_FFFD, TEXT_FFFD_LEN);
        out += TEXT_FFFD_LEN;
        used += adv;
    }
    if (why == UTF8_BAD && !replace && out == 0) {
        evbuffer_drain(t->tx_raw, adv);
        return -EILSEQ;
    }
    evbuffer_drain(t->tx_raw, used);
    return (ssize_t)out;
}

/* The inner stream ended: a held-back incomplete sequence is invalid. */
static ssize_t text_eof(struct text *t, unsigned char *buf)
{
    size_t have = evbuffer_get_length(t->tx_raw);

    if (have == 0)
        return WHARF_EOF;
    evbuffer_drain(t->tx_raw, have);
    if (!(t->tx_flags & WHARF_TEXT_REPLACE))
        return -EILSEQ;
    memcpy(buf, TEXT_FFFD, TEXT_FFFD_LEN);
    return TEXT_FFFD_LEN;
}

/* Never returns 0 bytes while open: with only part of a character held
 * back it receives again. The caller's buf doubles as the landing area of
 * the inner receive; those bytes go into tx_raw before anything can
 * suspend, so a cancellation loses none. */
static ssize_t text_receive(struct wharf_stream *s, void *buf, size_t max)
{
    struct text *t = text_of(s);
    ssize_t r;

    if (t->tx_closed)
        return WHARF_ECLOSED;
    if (max < TEXT_MIN_RECEIVE)
        return WHARF_EINVAL;
    for (;;) {
        if ((r = text_take(t, buf, max)) != 0)
            return r;
        r = wharf_receive(s->inner, buf, max);
        if (r == WHARF_EOF || r == 0)   /* 0: a broken inner stream; do not spin */
            return text_eof(t, buf);
        if (r < 0)
            return r;
        if (t->tx_closed)
            return WHARF_ECLOSED;
        if (evbuffer_add(t->tx_raw, buf, (size_t)r) < 0)
            return -ENOMEM;
    }
}

/* ---- sending ------------------------------------------------------------ */

/* A copy of buf with every invalid subpart (an incomplete sequence at the
 * end included) replaced by U+FFFD; *outlen its length. NULL: no memory. */
static unsigned char *text_repair(const unsigned char *p, size_t len, size_t *outlen)
{
    unsigned char *out;
    size_t i = 0, o = 0, n, adv = 0;
    enum utf8_stop why;

    if (len > SIZE_MAX / TEXT_FFFD_LEN || !(out = malloc(len * TEXT_FFFD_LEN)))
        return NULL;
    while (i < len) {
        n = utf8_span(p + i, len - i, SIZE_MAX, &why, &adv);
        memcpy(out + o, p + i, n);
        i += n;
        o += n;
        if (why == UTF8_BAD || why == UTF8_SHORT) {
            memcpy(out + o, TEXT_FFFD, TEXT_FFFD_LEN);
            o += TEXT_FFFD_LEN;
            i += adv;
        }
    }
    *outlen = o;
    return out;
}

static int text_send(struct wharf_stream *s, const void *buf, size_t len)
{
    struct text *t = text_of(s);
    enum utf8_stop why;
    unsigned char *fixed;
    size_t adv, flen;
    int r;

    if (t->tx_closed)
        return WHARF_ECLOSED;
    if (utf8_span(buf, len, SIZE_MAX, &why, &adv) == len)
        return wharf_send(s->inner, buf, len);
    if (!(t->tx_flags & WHARF_TEXT_REPLACE))
        return -EILSEQ;
    if (!(fixed = text_repair(buf, len, &flen)))
        return -ENOMEM;
    r = wharf_send(s->inner, fixed, flen);
    free(fixed);
    return r;
}

/* ---- the rest ----------------------------------------------------------- */

static int text_send_eof(struct wharf_stream *s)
{
    return text_of(s)->tx_closed ? WHARF_ECLOSED : wharf_send_eof(s->inner);
}

/* Nothing of its own: -ENOENT sends the lookup on to the inner stream. */
static int text_getattr(struct wharf_stream *s, int attr, void *out, size_t *len)
{
    return text_of(s)->tx_closed ? WHARF_ECLOSED : -ENOENT;
}

static int text_close(struct wharf_stream *s)
{
    struct text *t = text_of(s);

    if (t->tx_closed)
        return 0;
    t->tx_closed = true;
    evbuffer_drain(t->tx_raw, evbuffer_get_length(t->tx_raw));
    return wharf_close(s->inner);
}

static void text_free(struct wharf_stream *s)
{
    struct text *t = text_of(s);

    wharf_free(s->inner);
    evbuffer_free(t->tx_raw);
    free(t);
}

static const struct wharf_stream_ops text_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "text",
    .guard = WHARF_GUARD_RECEIVE,
    .receive = text_receive,
    .send = text_send,
    .send_eof = text_send_eof,
    .getattr = text_getattr,
    .close = text_close,
    .free = text_free,
};

struct wharf_stream *wharf_text_new(struct wharf_stream *inner, unsigned flags)
{
    struct text *t;

    if (!inner)
        return NULL;
    if (!(t = calloc(1, sizeof(*t))))
        return NULL;
    if (!(t->tx_raw = evbuffer_new())) {
        free(t);
        return NULL;
    }
    wharf_stream_init(&t->tx_head, &text_ops, inner);
    t->tx_flags = flags;
    return &t->tx_head;
}
