/*
 * wharf/error.h: the error codes of the plugin API.
 *
 * Every wharf function that can fail returns a negative code; success is 0
 * or a non-negative count. The codes map one to one onto AnyIO's exceptions:
 *
 *   code               AnyIO                 meaning
 *   WHARF_EOF          EndOfStream           the peer finished sending; repeats forever
 *   WHARF_ECLOSED      ClosedResourceError   this end was closed (locally) before the call
 *   WHARF_EBROKEN      BrokenResourceError   the other end is gone (reset, all receivers closed)
 *   WHARF_EWOULDBLOCK  WouldBlock            a *_nowait call could not finish at once (-EAGAIN)
 *   WHARF_EBUSY        BusyResourceError     another task is already receiving/sending here
 *   WHARF_EINCOMPLETE  IncompleteRead        end of stream before the requested bytes/delimiter
 *   WHARF_ENODELIM     DelimiterNotFound     max_bytes buffered without the delimiter
 *   WHARF_ECANCELLED   get_cancelled_exc_class()  the enclosing cancel scope was cancelled
 *   WHARF_ETIMEDOUT    TimeoutError          a fail_after scope's deadline passed
 *   WHARF_ENOTSUP      NotImplementedError   the stream does not support this call
 *   WHARF_EINVAL       ValueError/TypeError  a bad argument (NULL, negative size, ...)
 *
 * System errors pass through as -errno (-ECONNREFUSED, -ENOENT, -ENOMEM ...).
 * This header is part of the public API; it includes only libc headers.
 */
#ifndef WHARF_ERROR_H
#define WHARF_ERROR_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WHARF_EOF         (-10001)
#define WHARF_ECLOSED     (-10002)
#define WHARF_EBROKEN     (-10003)
#define WHARF_EINCOMPLETE (-10004)
#define WHARF_ENODELIM    (-10005)
#define WHARF_PARKED      (-10006)  /* not a failure: see wharf_park (task.h) */
#define WHARF_EWOULDBLOCK (-EAGAIN)
#define WHARF_EBUSY       (-EBUSY)
#define WHARF_ECANCELLED  (-ECANCELED)
#define WHARF_ETIMEDOUT   (-ETIMEDOUT)
#define WHARF_ENOTSUP     (-ENOTSUP)
#define WHARF_EINVAL      (-EINVAL)

/* A static, human-readable description of any code above or any -errno.
 * Never returns NULL. */
const char *wharf_strerror(int code);

/* The AnyIO name of a wharf code ("EndOfStream", "BrokenResource", ...), or
 * NULL for a plain -errno. Handy in logs and test failure messages. */
const char *wharf_errname(int code);

#ifdef __cplusplus
}
#endif
#endif /* WHARF_ERROR_H */
