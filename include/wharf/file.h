/*
 * wharf/file.h: file streams (AnyIO's FileReadStream / FileWriteStream).
 * The reads and writes run on the blocking-work pool so that a slow disk
 * never stalls a worker's event loop.
 */
#ifndef WHARF_FILE_H
#define WHARF_FILE_H

#include <stdbool.h>
#include <sys/types.h>
#include <wharf/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opens path for reading: wharf_receive returns its bytes, then WHARF_EOF.
 * Returns 0, -ENOENT and other -errno of open(2), WHARF_EINVAL. */
int wharf_file_read_open(const char *path, struct wharf_stream **out);

/* Opens path for writing (created 0666 & ~umask; truncated, or appended to
 * with append). wharf_send writes all bytes. Returns 0 or -errno. */
int wharf_file_write_open(const char *path, bool append, struct wharf_stream **out);

/* Adopts an open file descriptor (owned by the stream from now on) for
 * reading or writing. Returns 0, WHARF_EINVAL, -ENOMEM. */
int wharf_file_from_fd(int fd, bool writable, struct wharf_stream **out);

/* Moves the file position (lseek whence); the new position goes to *pos
 * when pos is not NULL. Returns 0, WHARF_ECLOSED, WHARF_ENOTSUP, -errno. */
int wharf_file_seek(struct wharf_stream *s, off_t offset, int whence, off_t *pos);

/* The current position. Returns 0, WHARF_ECLOSED, WHARF_ENOTSUP, -errno. */
int wharf_file_tell(struct wharf_stream *s, off_t *pos);

#ifdef __cplusplus
}
#endif
#endif /* WHARF_FILE_H */
