/*
 * file.c: file streams (wharf/file.h), AnyIO's FileReadStream and
 * FileWriteStream. Every syscall that may block (open, read, write, lseek,
 * close) runs on the blocking-work pool (threadpool.c), so that a slow disk,
 * an NFS server or a FIFO without a peer never stalls the event loop.
 * Not for: sockets or pipes that the loop can poll (socket.c), buffering
 * (buffered.c).
 *
 * Cancellation: a pool job cannot be interrupted. Each call checks for a
 * cancellation before it hands a job over (WHARF_ECANCELLED, nothing done);
 * once the job runs, the call waits for it and returns its result, and the
 * cancellation is seen at the caller's next checkpoint. So a receive in a
 * scope cancelled mid-read still returns the bytes it read: none are lost.
 *
 * Close while a job uses the descriptor (another task blocked in receive):
 * the fd cannot be closed under a running read(2) without risking that its
 * number is reused, so the close is left to the last job to finish; that
 * call then returns WHARF_ECLOSED. An error of such a deferred close(2) is
 * lost.
 *
 * Adopted descriptors may be pipes: a non-blocking one is waited for with
 * poll(2) in the pool thread, and a write to a pipe with no reader gives
 * WHARF_EBROKEN rather than a SIGPIPE.
 */
#include "config.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wharf-int.h"

/* One read(2) moves at most this much: a receive with a huge max must not
 * tie a pool thread (and the caller) to one giant read. */
#define FILE_READ_MAX (64 * 1024)

struct file_stream {
    struct wharf_stream fs_s;     /* first: the stream head */
    int fs_fd;                    /* -1 once really closed */
    char *fs_path;                /* as opened, or NULL (wharf_file_from_fd) */
    unsigned fs_jobs;             /* pool jobs using fs_fd right now */
    bool fs_closed;               /* wharf_close was called */
};

/* What a pool job needs: copied values only, never the stream itself. */
struct file_job {
    int fj_fd;
    int fj_flags;                 /* open(2) flags */
    const char *fj_path;
    void *fj_buf;                 /* read: into; write: from */
    size_t fj_len;
    off_t fj_off;                 /* lseek offset in, position out */
    int fj_whence;
};

static const struct wharf_stream_ops file_read_ops;
static const struct wharf_stream_ops file_write_ops;

static struct file_stream *file_of(struct wharf_stream *s)
{
    return (struct file_stream *)s;
}

static bool file_is_file(const struct wharf_stream *s)
{
    return s->ops == &file_read_ops || s->ops == &file_write_ops;
}

/* ---- jobs: run on a pool thread, plain blocking syscalls ---------------- */

/* A descriptor the caller made non-blocking (a pipe, say) gives EAGAIN;
 * waiting for it here keeps receive and send blocking calls. */
static int file_job_poll(int fd, short what)
{
    struct pollfd p = { .fd = fd, .events = what };

    if (poll(&p, 1, -1) < 0 && errno != EINTR)
        return -errno;
    return 0;
}

static int file_job_open(void *arg)
{
    struct file_job *j = arg;
    struct stat st;
    int fd;

    do
        fd = open(j->fj_path, j->fj_flags, 0666);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    /* Linux opens a directory O_RDONLY; refuse it here, not at the first
     * receive, so that the error comes where the path was given */
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return -EISDIR;
    }
    j->fj_fd = fd;
    return 0;
}

static int file_job_read(void *arg)
{
    struct file_job *j = arg;
    ssize_t n;

    for (;;) {
        n = read(j->fj_fd, j->fj_buf, j->fj_len);
        if (n >= 0)
            return (int)n;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = file_job_poll(j->fj_fd, POLLIN);

            if (rc < 0)
                return rc;
        } else if (errno != EINTR) {
            return -errno;
        }
    }
}

/* write(2) that turns a vanished reader (pipe, FIFO) into EPIPE instead of
 * a SIGPIPE killing the process: block the signal in this pool thread
 * around the call and swallow the one the call raised, if any. */
static ssize_t file_write_nosigpipe(int fd, const void *p, size_t len)
{
    sigset_t pipe_set, old, pending;
    struct timespec zero = { 0, 0 };
    bool was_pending;
    ssize_t n;
    int err;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    n = write(fd, p, len);
    err = errno;
    if (n < 0 && err == EPIPE && !was_pending)
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return n;
}

static int file_job_write(void *arg)
{
    struct file_job *j = arg;
    const char *p = j->fj_buf;
    size_t left = j->fj_len;

    while (left > 0) {
        ssize_t n = file_write_nosigpipe(j->fj_fd, p, left);

        if (n >= 0) {
            p += n;
            left -= (size_t)n;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = file_job_poll(j->fj_fd, POLLOUT);

            if (rc < 0)
                return rc;
        } else if (errno == EPIPE) {
            return WHARF_EBROKEN;
        } else if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

static int file_job_seek(void *arg)
{
    struct file_job *j = arg;
    off_t pos = lseek(j->fj_fd, j->fj_off, j->fj_whence);

    if (pos < 0)
        return -errno;
    j->fj_off = pos;
    return 0;
}

static int file_job_close(void *arg)
{
    struct file_job *j = arg;

    /* Linux releases the descriptor even when close fails (EINTR too):
     * never retry */
    return close(j->fj_fd) < 0 && errno != EINTR ? -errno : 0;
}

/* ---- running jobs against a stream ------------------------------------- */

static int file_close_fd(struct file_stream *f)
{
    struct file_job j = { .fj_fd = f->fs_fd };

    f->fs_fd = -1;
    return threadpool_run(file_job_close, &j);
}

/* Runs fn(j) on the pool with the stream's descriptor. A cancellation is
 * honoured only before the job starts (see the top of the file). */
static int file_run(struct file_stream *f, int (*fn)(void *), struct file_job *j)
{
    struct task *t = task_current();
    int rc;

    if (f->fs_closed)
        return WHARF_ECLOSED;
    if (t && task_cancelled(t))
        return WHARF_ECANCELLED;
    j->fj_fd = f->fs_fd;
    f->fs_jobs++;
    rc = threadpool_run(fn, j);
    f->fs_jobs--;
    if (f->fs_closed) {
        /* closed by another task meanwhile: the close was left to us */
        if (f->fs_jobs == 0 && f->fs_fd >= 0)
            file_close_fd(f);
        return WHARF_ECLOSED;
    }
    return rc;
}

/* ---- ops ----------------------------------------------------------------- */

static ssize_t file_receive(struct wharf_stream *s, void *buf, size_t max)
{
    struct file_job j = { .fj_buf = buf };
    int rc;

    j.fj_len = max < FILE_READ_MAX ? max : FILE_READ_MAX;
    rc = file_run(file_of(s), file_job_read, &j);
    return rc == 0 ? WHARF_EOF : rc;
}

static int file_send(struct wharf_stream *s, const void *buf, size_t len)
{
    struct file_job j = { .fj_buf = (void *)buf, .fj_len = len };

    if (len == 0)
        return file_of(s)->fs_closed ? WHARF_ECLOSED : 0;
    return file_run(file_of(s), file_job_write, &j);
}

static int file_getattr(struct wharf_stream *s, int attr, void *out, size_t *len)
{
    struct file_stream *f = file_of(s);

    if (f->fs_closed)
        return WHARF_ECLOSED;
    switch (attr) {
    case WHARF_ATTR_FD:
        return stream_attr_int(out, len, f->fs_fd);
    case WHARF_ATTR_FILE_PATH:
        if (!f->fs_path)
            return -ENOENT;
        return stream_attr_copy(out, len, f->fs_path, strlen(f->fs_path) + 1);
    default:
        return -ENOENT;
    }
}

static int file_close(struct wharf_stream *s)
{
    struct file_stream *f = file_of(s);

    if (f->fs_closed)
        return 0;
    f->fs_closed = true;
    if (f->fs_jobs > 0)
        return 0;       /* the last job closes it (file_run) */
    return file_close_fd(f);
}

static void file_free(struct wharf_stream *s)
{
    struct file_stream *f = file_of(s);

    free(f->fs_path);
    free(f);
}

static const struct wharf_stream_ops file_read_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "file-read",
    .guard = WHARF_GUARD_RECEIVE,
    .receive = file_receive,
    .getattr = file_getattr,
    .close = file_close,
    .free = file_free,
};

static const struct wharf_stream_ops file_write_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "file-write",
    .guard = WHARF_GUARD_SEND,
    .send = file_send,
    .getattr = file_getattr,
    .close = file_close,
    .free = file_free,
};

/* ---- opening --------------------------------------------------------------- */

static struct file_stream *file_new(int fd, bool writable, const char *path)
{
    struct file_stream *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    if (path && !(f->fs_path = strdup(path))) {
        free(f);
        return NULL;
    }
    wharf_stream_init(&f->fs_s, writable ? &file_write_ops : &file_read_ops, NULL);
    f->fs_fd = fd;
    return f;
}

static int file_open(const char *path, int flags, bool writable,
                     struct wharf_stream **out)
{
    struct file_job j = { .fj_path = path, .fj_flags = flags | O_CLOEXEC };
    struct file_stream *f;
    int rc;

    if (out)
        *out = NULL;
    if (!path || !out)
        return WHARF_EINVAL;
    if (task_current() && task_cancelled(task_current()))
        return WHARF_ECANCELLED;
    if (!(f = file_new(-1, writable, path)))
        return -ENOMEM;
    /* no cancellation check after the job: the fd it opened is ours now */
    rc = threadpool_run(file_job_open, &j);
    if (rc < 0) {
        file_free(&f->fs_s);
        return rc;
    }
    f->fs_fd = j.fj_fd;
    *out = &f->fs_s;
    return 0;
}

int wharf_file_read_open(const char *path, struct wharf_stream **out)
{
    return file_open(path, O_RDONLY, false, out);
}

int wharf_file_write_open(const char *path, bool append, struct wharf_stream **out)
{
    int flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);

    return file_open(path, flags, true, out);
}

/* The fd stays the caller's when this fails. */
int wharf_file_from_fd(int fd, bool writable, struct wharf_stream **out)
{
    struct file_stream *f;
    int fl;

    if (out)
        *out = NULL;
    if (fd < 0 || !out)
        return WHARF_EINVAL;
    /* an fd that is not open, or not open in the direction asked for */
    fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return WHARF_EINVAL;
    fl &= O_ACCMODE;
    if (fl != O_RDWR && fl != (writable ? O_WRONLY : O_RDONLY))
        return WHARF_EINVAL;
    if (!(f = file_new(fd, writable, NULL)))
        return -ENOMEM;
    *out = &f->fs_s;
    return 0;
}

/* ---- position ---------------------------------------------------------- */

int wharf_file_seek(struct wharf_stream *s, off_t offset, int whence, off_t *pos)
{
    struct file_job j = { .fj_off = offset, .fj_whence = whence };
    int rc;

    if (!s)
        return WHARF_EINVAL;
    if (!file_is_file(s))
        return WHARF_ENOTSUP;
    rc = file_run(file_of(s), file_job_seek, &j);
    if (rc == 0 && pos)
        *pos = j.fj_off;
    return rc;
}

int wharf_file_tell(struct wharf_stream *s, off_t *pos)
{
    if (!pos)
        return WHARF_EINVAL;
    return wharf_file_seek(s, 0, SEEK_CUR, pos);
}
