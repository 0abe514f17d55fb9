/*
 * wharf/stream.h: the stream interface and the generic wrappers (buffered,
 * stapled, text), after AnyIO's streams.
 *
 * Every stream, listener and socket is a `struct wharf_stream *` whose ops
 * table says what it can do; calling something a stream cannot do returns
 * WHARF_ENOTSUP. Byte streams move bytes (receive returns at least one byte
 * or an error, never 0 while open); object streams move `void *` items
 * (memory object streams); datagram sockets move whole datagrams.
 *
 * Lifetime: wharf_close() releases the resource (socket, file, stream end)
 * and is idempotent; the handle stays valid and every later call returns
 * WHARF_ECLOSED. wharf_free() closes if needed and frees the handle. A
 * wrapper (buffered, stapled, text, TLS) owns the streams it wraps: closing
 * or freeing it closes or frees them. Closing wakes the other tasks blocked
 * on the handle (they return WHARF_ECLOSED); free it only once they have
 * returned, since they still read the handle on their way out.
 *
 * All blocking calls are cancellation checkpoints (wharf/task.h): they return
 * WHARF_ECANCELLED inside a cancelled scope. A cancelled receive loses no
 * data: bytes or items not returned stay in the stream.
 */
#ifndef WHARF_STREAM_H
#define WHARF_STREAM_H

#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

struct wharf_stream;

/* ---- typed attributes (AnyIO's typed_attributes) ------------------------
 * wharf_getattr(s, attr, out, &len): *len is the size of out on entry and the
 * size of the value on return. Returns 0; -ENOENT when the stream (and the
 * streams it wraps) do not provide the attribute; -ENOSPC when out is too
 * small (*len then says how much is needed); WHARF_ECLOSED after close. */
enum wharf_attr {
    WHARF_ATTR_FAMILY = 1,          /* int: AF_INET, AF_INET6, AF_UNIX */
    WHARF_ATTR_LOCAL_ADDRESS,       /* struct sockaddr_storage (len: socklen) */
    WHARF_ATTR_LOCAL_PORT,          /* int */
    WHARF_ATTR_REMOTE_ADDRESS,      /* struct sockaddr_storage (len: socklen) */
    WHARF_ATTR_REMOTE_PORT,         /* int */
    WHARF_ATTR_FD,                  /* int: the socket or file descriptor */
    WHARF_ATTR_FILE_PATH,           /* char[]: NUL-terminated path */
    /* 32..63: TLS (wharf/tls.h) */
    WHARF_ATTR_TLS_FIRST = 32,
    WHARF_ATTR_USER_FIRST = 1024    /* free for plugins' own stream kinds */
};

/* ---- the ops table, for implementers of stream kinds ------------------ */

#define WHARF_GUARD_RECEIVE 0x1u   /* a second concurrent receiver: WHARF_EBUSY */
#define WHARF_GUARD_SEND    0x2u   /* a second concurrent sender: WHARF_EBUSY */

struct wharf_stream_ops {
    size_t size;            /* sizeof(struct wharf_stream_ops) of the implementer */
    const char *kind;       /* "tcp", "unix", "udp", "memory", "buffered", ... */
    unsigned guard;         /* WHARF_GUARD_* enforced by the generic calls */
    ssize_t (*receive)(struct wharf_stream *s, void *buf, size_t max);
    int (*send)(struct wharf_stream *s, const void *buf, size_t len);
    ssize_t (*receive_nowait)(struct wharf_stream *s, void *buf, size_t max);
    ssize_t (*send_nowait)(struct wharf_stream *s, const void *buf, size_t len);
    int (*receive_item)(struct wharf_stream *s, void **item);
    int (*send_item)(struct wharf_stream *s, void *item);
    int (*receive_item_nowait)(struct wharf_stream *s, void **item);
    int (*send_item_nowait)(struct wharf_stream *s, void *item);
    ssize_t (*receive_from)(struct wharf_stream *s, void *buf, size_t max,
                            struct sockaddr *from, socklen_t *fromlen);
    int (*send_to)(struct wharf_stream *s, const void *buf, size_t len,
                   const struct sockaddr *to, socklen_t tolen);
    int (*accept)(struct wharf_stream *s, struct wharf_stream **out);
    int (*send_eof)(struct wharf_stream *s);
    int (*wait)(struct wharf_stream *s, unsigned events);
    int (*clone)(struct wharf_stream *s, struct wharf_stream **out);
    int (*getattr)(struct wharf_stream *s, int attr, void *out, size_t *len);
    int (*close)(struct wharf_stream *s);   /* idempotent; handle stays valid */
    void (*free)(struct wharf_stream *s);   /* after close: release the handle */
    /* API 1.3: wharf_notify_readable (absent from a smaller size: ENOTSUP) */
    int (*notify_readable)(struct wharf_stream *s, void (*fn)(void *arg), void *arg);
};

/* The head of every stream object; an implementation embeds it first. */
struct wharf_stream {
    const struct wharf_stream_ops *ops;
    struct wharf_stream *inner;    /* wrapped stream (attribute fallback), or NULL */
    unsigned busy;                 /* WHARF_GUARD_* bits held by a task now */
    unsigned reserved_;
};

/* Sets up the head of a new stream object. */
void wharf_stream_init(struct wharf_stream *s, const struct wharf_stream_ops *ops,
                       struct wharf_stream *inner);

/* ---- byte streams ------------------------------------------------------ */

/* Receives 1..max bytes. Returns the count; WHARF_EOF once the peer has
 * finished (again on every later call); WHARF_ECLOSED after a local close;
 * WHARF_EBROKEN when the peer reset or vanished; WHARF_EBUSY when another
 * task is receiving; WHARF_ECANCELLED; WHARF_EINVAL (NULL, max == 0);
 * WHARF_ENOTSUP (not a byte stream). */
ssize_t wharf_receive(struct wharf_stream *s, void *buf, size_t max);

/* Sends all len bytes, suspending while the peer does not read. Returns 0;
 * WHARF_ECLOSED; WHARF_EBROKEN (peer gone; part may have been sent);
 * WHARF_EBUSY; WHARF_ECANCELLED (part may have been sent); WHARF_EINVAL;
 * WHARF_ENOTSUP. */
int wharf_send(struct wharf_stream *s, const void *buf, size_t len);

/* Non-blocking core: as above but never suspends. receive_nowait returns
 * WHARF_EWOULDBLOCK when no byte is ready; send_nowait returns the number of
 * bytes taken (1..len) or WHARF_EWOULDBLOCK. */
ssize_t wharf_receive_nowait(struct wharf_stream *s, void *buf, size_t max);
ssize_t wharf_send_nowait(struct wharf_stream *s, const void *buf, size_t len);

#define WHARF_READABLE 0x1u
#define WHARF_WRITABLE 0x2u
/* Suspends until the stream is readable and/or writable (events). Returns 0,
 * WHARF_ECLOSED, WHARF_ECANCELLED, WHARF_ENOTSUP. */
int wharf_wait(struct wharf_stream *s, unsigned events);

/* Instead of a task that only waits to read (API 1.3): fn(arg) is called
 * once, from the worker's loop, outside any task (it may spawn a task into
 * a group, not suspend), when s may have become readable; the task that
 * would have waited can end, and give its stack back. Arm it only after
 * wharf_receive_nowait returned WHARF_EWOULDBLOCK, with no suspension
 * between. Returns 0 (armed); 1 (s may be readable already: receive again,
 * nothing is armed); WHARF_EBUSY (a task or a call waits to read s);
 * WHARF_ENOTSUP (s cannot: wait in a task). fn NULL withdraws what is
 * armed; closing s withdraws it too, without the call. Sockets can;
 * buffered streams pass it to theirs. */
int wharf_notify_readable(struct wharf_stream *s, void (*fn)(void *arg), void *arg);

/* Closes the sending direction (TCP: shutdown(SHUT_WR)); the stream can
 * still receive. Returns 0, WHARF_ECLOSED, WHARF_ENOTSUP (not supported by
 * the stream, e.g. TLS). */
int wharf_send_eof(struct wharf_stream *s);

/* ---- object streams ---------------------------------------------------- */

/* Receives one item (NULL is a valid item). Returns 0; WHARF_EOF when every
 * sender closed and the buffer is empty; WHARF_ECLOSED; WHARF_ECANCELLED
 * (no item taken); WHARF_ENOTSUP. The item belongs to the caller. */
int wharf_receive_item(struct wharf_stream *s, void **item);

/* Sends one item; it belongs to the stream (then the receiver) on success
 * and stays the caller's on failure. Returns 0; WHARF_ECLOSED (this end was
 * closed; checked first); WHARF_EBROKEN (every receiver closed);
 * WHARF_ECANCELLED (not sent); WHARF_ENOTSUP. */
int wharf_send_item(struct wharf_stream *s, void *item);

/* Never suspend: WHARF_EWOULDBLOCK when the call would have to wait. */
int wharf_receive_item_nowait(struct wharf_stream *s, void **item);
int wharf_send_item_nowait(struct wharf_stream *s, void *item);

/* A new handle on the same end (AnyIO clone): the end stays open until all
 * its handles are closed. Returns 0, WHARF_ECLOSED, WHARF_ENOTSUP, -ENOMEM. */
int wharf_clone(struct wharf_stream *s, struct wharf_stream **out);

/* ---- datagrams (unconnected UDP) -------------------------------------- */

/* Receives one datagram (truncated to max) and its sender. Returns its
 * length (0 for an empty datagram); WHARF_ECLOSED; WHARF_EBUSY;
 * WHARF_ECANCELLED; WHARF_ENOTSUP. from/fromlen may be NULL. */
ssize_t wharf_receive_from(struct wharf_stream *s, void *buf, size_t max,
                           struct sockaddr *from, socklen_t *fromlen);

/* Sends one datagram to `to`. Returns 0; WHARF_ECLOSED; -EMSGSIZE;
 * WHARF_ECANCELLED; other -errno; WHARF_ENOTSUP. */
int wharf_send_to(struct wharf_stream *s, const void *buf, size_t len,
                  const struct sockaddr *to, socklen_t tolen);

/* ---- listeners --------------------------------------------------------- */

/* Accepts one connection as a new byte stream. Returns 0; WHARF_ECLOSED;
 * WHARF_ECANCELLED; -EMFILE/-ENFILE/-ENOBUFS (caller should back off);
 * WHARF_ENOTSUP. */
int wharf_accept(struct wharf_stream *listener, struct wharf_stream **out);

/* ---- every handle --------------------------------------------------------- */

/* Releases the resource; idempotent. Returns 0 (also when already closed)
 * or a -errno the close reported. */
int wharf_close(struct wharf_stream *s);

/* Closes if needed and frees the handle (and the streams it wraps). NULL is
 * ignored. */
void wharf_free(struct wharf_stream *s);

int wharf_getattr(struct wharf_stream *s, int attr, void *out, size_t *len);
/* Typed shorthands for wharf_getattr; same returns. */
int wharf_getattr_int(struct wharf_stream *s, int attr, int *value);
int wharf_getattr_addr(struct wharf_stream *s, int attr,
                       struct sockaddr_storage *ss, socklen_t *len);

/* The kind named by the stream's ops ("tcp", "memory", ...). */
const char *wharf_stream_kind(const struct wharf_stream *s);

/* ---- buffered receive (BufferedByteReceiveStream / BufferedByteStream) -- */

/* Wraps a byte stream (taking ownership). Sends, send_eof and attributes
 * pass through. Returns NULL when inner is NULL or on out of memory (inner is
 * then still the caller's). */
struct wharf_stream *wharf_buffered_new(struct wharf_stream *inner);

/* Receives exactly n bytes into buf (n == 0: returns 0 at once). Returns n;
 * WHARF_EINCOMPLETE when the stream ends first (the bytes received stay
 * buffered); other errors of wharf_receive. */
ssize_t wharf_receive_exactly(struct wharf_stream *s, void *buf, size_t n);

/* Receives up to the delimiter: copies the bytes before it into buf (at most
 * max_bytes), consumes the delimiter, keeps what follows buffered. Returns
 * the length copied; WHARF_ENODELIM when max_bytes bytes are buffered with no
 * delimiter in them (all kept buffered); WHARF_EINCOMPLETE when the stream
 * ends first (kept buffered); WHARF_EINVAL (max_bytes or dlen 0, NULL);
 * other errors of wharf_receive. buf must hold max_bytes bytes. */
ssize_t wharf_receive_until(struct wharf_stream *s, const void *delim, size_t dlen,
                            void *buf, size_t max_bytes);

/* Appends bytes to the buffer as if received (AnyIO feed_data). Returns 0,
 * WHARF_ECLOSED, WHARF_EINVAL, -ENOMEM, WHARF_ENOTSUP (not a buffered
 * stream; the same for receive_exactly and receive_until). */
int wharf_buffered_feed(struct wharf_stream *s, const void *data, size_t len);

/* Bytes currently buffered (AnyIO's buffer property); 0 for NULL. */
size_t wharf_buffered_size(const struct wharf_stream *s);

/* ---- stapled (StapledByteStream / StapledObjectStream) ---------------- */

/* One bidirectional stream from a send stream and a receive stream (taking
 * ownership of both). send_eof closes the send stream; close closes both.
 * Returns NULL on NULL arguments or out of memory (both stay the caller's). */
struct wharf_stream *wharf_stapled_new(struct wharf_stream *send_stream,
                                       struct wharf_stream *receive_stream);

/* ---- text (TextReceiveStream / TextSendStream / TextStream) ------------ */

#define WHARF_TEXT_REPLACE 0x1u  /* invalid UTF-8 becomes U+FFFD instead of -EILSEQ */

/* Wraps a byte stream (taking ownership) to move UTF-8 text. receive returns
 * only whole characters (a sequence split across chunks is completed from
 * the next one) and -EILSEQ on invalid UTF-8 (without WHARF_TEXT_REPLACE);
 * send refuses invalid UTF-8 with -EILSEQ before sending anything. receive
 * needs max >= 4. Returns NULL on NULL inner or out of memory. */
struct wharf_stream *wharf_text_new(struct wharf_stream *inner, unsigned flags);

#ifdef __cplusplus
}
#endif
#endif /* WHARF_STREAM_H */
