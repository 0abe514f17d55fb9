/*
 * wharf/memstream.h: memory object streams (AnyIO's
 * create_memory_object_stream), the way tasks and plugins pass messages.
 *
 * A memory object stream has a send end and a receive end, each of which can
 * be cloned. Items are `void *` (NULL included). Ends are safe to use from
 * tasks on different workers: a send on one worker wakes a receiver on
 * another. Semantics (each one a test):
 *   - max_buffer 0 is a rendezvous: a send finishes only when a receiver takes
 *     the item; N buffers N items; WHARF_UNBOUNDED never blocks a sender.
 *   - items are received in FIFO order: buffered items, then blocked senders
 *     in their arrival order.
 *   - after the last send handle closes, buffered items are still delivered,
 *     then WHARF_EOF forever.
 *   - after the last receive handle closes, sends fail with WHARF_EBROKEN and
 *     blocked senders are woken with it; buffered items are passed to
 *     item_free (when given).
 *   - an end is closed only when all of its clones are; close is idempotent.
 *   - a cancelled blocked send withdraws its item; a cancelled receive never
 *     loses an item.
 */
#ifndef WHARF_MEMSTREAM_H
#define WHARF_MEMSTREAM_H

#include <stddef.h>
#include <limits.h>
#include <wharf/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WHARF_UNBOUNDED LONG_MAX

/* Creates a stream buffering up to max_buffer items (0, N or WHARF_UNBOUNDED).
 * item_free (may be NULL) disposes of items the stream still holds when the
 * receive end closes. Returns 0; WHARF_EINVAL (negative max_buffer, NULL
 * out-pointers); -ENOMEM. */
int wharf_memstream_new(long max_buffer, void (*item_free)(void *item),
                        struct wharf_stream **send_end,
                        struct wharf_stream **receive_end);

/* A memory *byte* stream: the same machinery, but wharf_send copies the bytes
 * into one buffered chunk (max_chunks counts chunks; 0 is a rendezvous) and
 * wharf_receive returns bytes from the oldest chunk, keeping what does not
 * fit in max for the next receive. send_eof (or closing every send handle)
 * gives the receiver WHARF_EOF after the buffered bytes. This is what a TLS
 * stream or a buffered stream wraps in tests. Returns as wharf_memstream_new. */
int wharf_memstream_bytes_new(long max_chunks, struct wharf_stream **send_end,
                              struct wharf_stream **receive_end);

/* An in-memory connection: two byte streams a and b, each stapled from one
 * direction's send end and the other direction's receive end, so that what
 * is sent on a is received on b and back. Use it to run a handler in a unit
 * test without sockets. Returns 0, WHARF_EINVAL, -ENOMEM. */
int wharf_memstream_pair(long max_chunks, struct wharf_stream **a,
                         struct wharf_stream **b);

struct wharf_memstream_stats {
    size_t current_buffer_used;
    long max_buffer_size;          /* WHARF_UNBOUNDED for unbounded */
    size_t open_send_streams;      /* open send handles (clones included) */
    size_t open_receive_streams;
    size_t tasks_waiting_send;
    size_t tasks_waiting_receive;
};

/* Fills st from either end (also after it is closed). Returns 0,
 * WHARF_EINVAL (NULL), WHARF_ENOTSUP (not a memory object stream). */
int wharf_memstream_statistics(struct wharf_stream *s,
                               struct wharf_memstream_stats *st);

/* ---- the registry of named streams ----------------------------------------
 * One per process, shared by every plugin instance, listener and worker: a
 * plugin offers a memory object stream to the others under a name
 * "PLUGIN/NAME" (pubsub's topic "default" is "pubsub/default"), and the
 * statistics report every registered stream under `streams`.
 *
 * PLUGIN is the plugin's name ([A-Za-z0-9_.-]+), NAME any non-empty text
 * without control characters; the whole name is at most
 * WHARF_REGISTRY_NAME_MAX bytes. Every call is thread-safe (one mutex, held
 * for a moment; never while a task waits) and works from any thread,
 * inside a task or not.
 *
 * The registry keeps its own clone of each end it is given: a registered
 * stream stays open while it is registered, whoever else closes their
 * handles (receivers see no WHARF_EOF, senders no WHARF_EBROKEN), and
 * closes only when it is removed and the last other handle goes. The
 * statistics it reports leave its own clones out, so that
 * open_send_streams and open_receive_streams count the users' handles.
 */
#define WHARF_REGISTRY_NAME_MAX 255

/* Registers send_end and/or receive_end (either may be NULL, not both; when
 * both are given they must be the two ends of one stream) under name; the
 * caller keeps its handles. Returns 0; -EEXIST (the name is taken: look it
 * up instead); WHARF_EINVAL (a bad name, both NULL, a handle that is not
 * a memory stream end of that direction); WHARF_ECLOSED (a closed handle);
 * -ENOMEM. */
int wharf_registry_publish(const char *name, struct wharf_stream *send_end,
                           struct wharf_stream *receive_end);

/* New clones of the ends registered under name, the caller's to free: pass
 * NULL for an end not wanted (both NULL: only whether the name exists).
 * Returns 0; -ENOENT (no such name); WHARF_ENOTSUP (an end asked for was
 * not registered); WHARF_EINVAL (NULL name); -ENOMEM. On failure nothing is
 * returned (*send_end and *receive_end are NULL). */
int wharf_registry_lookup(const char *name, struct wharf_stream **send_end,
                          struct wharf_stream **receive_end);

/* Unregisters name and frees the registry's clones: when they were the last
 * handles of an end, that end closes as wharf_close says. Returns 0,
 * -ENOENT, WHARF_EINVAL (NULL). */
int wharf_registry_remove(const char *name);

/* Calls fn(arg, name, stats) for every registered stream, in byte order of
 * the names, with statistics taken at the call without the registry's own
 * clones; fn runs without the registry's lock (it may use the registry).
 * Returns 0; the first nonzero value fn returned (the walk stops there);
 * WHARF_EINVAL (NULL fn); -ENOMEM. */
int wharf_registry_statistics(int (*fn)(void *arg, const char *name,
                                        const struct wharf_memstream_stats *st),
                              void *arg);

#ifdef __cplusplus
}
#endif
#endif /* WHARF_MEMSTREAM_H */
