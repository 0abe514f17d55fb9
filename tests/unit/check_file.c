/*
 * check_file.c: file streams (wharf/file.h), after AnyIO's
 * tests/streams/test_file.py, plus what C adds: large files, errors at
 * open, bad arguments, double close, and proof that a blocking read runs
 * off the event loop (a FIFO whose writer is another task of the same loop).
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

/* ---- helpers --------------------------------------------------------------- */

static const char *tmp_path(const char *name)
{
    static char paths[4][PATH_MAX];
    static int next;
    char *p = paths[next++ % 4];

    snprintf(p, PATH_MAX, "%s/%s", tu_tmpdir(), name);
    return p;
}

static void put_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    ck_assert_ptr_nonnull(fp);
    ck_assert_int_ge(fputs(text, fp), 0);
    ck_assert_int_eq(fclose(fp), 0);
}

/* The file's content as a NUL-terminated string (static buffer). */
static const char *get_file(const char *path)
{
    static char buf[256];
    FILE *fp = fopen(path, "r");
    size_t n;

    ck_assert_ptr_nonnull(fp);
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* Teardown: empty and remove the test's temporary directory. */
static void tmp_cleanup(void)
{
    const char *dir = tu_tmpdir();
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX];

    if (!d)
        return;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void expect_receive(struct wharf_stream *s, size_t max, const char *want)
{
    char buf[64];
    ssize_t n = wharf_receive(s, buf, max);

    ck_assert_int_eq(n, (ssize_t)strlen(want));
    ck_assert_mem_eq(buf, want, strlen(want));
}

/* ---- TestFileReadStream ---------------------------------------------------- */

/* AnyIO's _run_filestream_test, with EOF checked twice (it repeats). */
static void hello_test(struct wharf_stream *s)
{
    char c;

    expect_receive(s, 3, "Hel");
    expect_receive(s, 3, "lo");
    TU_ASSERT_RC(wharf_receive(s, &c, 1), WHARF_EOF);
    TU_ASSERT_RC(wharf_receive(s, &c, 1), WHARF_EOF);
}

static int t_read_file_as_path(void *arg)
{
    const char *path = tmp_path("data.txt");
    struct wharf_stream *s;

    put_file(path, "Hello");
    TU_ASSERT_RC(wharf_file_read_open(path, &s), 0);
    hello_test(s);
    wharf_free(s);
    return 0;
}
START_TEST(read_file_as_path) { TU_RUN(t_read_file_as_path, NULL); }
END_TEST

static int t_read_file(void *arg)
{
    const char *path = tmp_path("data.txt");
    struct wharf_stream *s;
    int fd;

    put_file(path, "Hello");
    fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    TU_ASSERT_RC(wharf_file_from_fd(fd, false, &s), 0);
    hello_test(s);
    wharf_free(s);
    /* the stream owned the fd: freeing it closed it */
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
    return 0;
}
START_TEST(read_file) { TU_RUN(t_read_file, NULL); }
END_TEST

static int t_receive_max_bytes_validation(void *arg)
{
    const char *path = tmp_path("data.txt");
    struct wharf_stream *s;
    char c;

    put_file(path, "Hello");
    TU_ASSERT_RC(wharf_file_read_open(path, &s), 0);
    TU_ASSERT_RC(wharf_receive(s, &c, 0), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive(s, NULL, 1), WHARF_EINVAL);
    expect_receive(s, 5, "Hello");      /* nothing was consumed */
    wharf_free(s);
    return 0;
}
START_TEST(receive_max_bytes_validation) { TU_RUN(t_receive_max_bytes_validation, NULL); }
END_TEST

static int t_read_after_close(void *arg)
{
    const char *path = tmp_path("data.txt");
    struct wharf_stream *s;
    char buf[8];

    put_file(path, "Hello");
    TU_ASSERT_RC(wharf_file_read_open(path, &s), 0);
    TU_ASSERT_RC(wharf_close(s), 0);
    TU_ASSERT_RC(wharf_receive(s, buf, sizeof(buf)), WHARF_ECLOSED);
    wharf_free(s);
    return 0;
}
START_TEST(read_after_close) { TU_RUN(t_read_after_close, NULL); }
END_TEST

static int t_seek(void *arg)
{
    const char *path = tmp_path("data.txt");
    struct wharf_stream *s;
    off_t pos = -1;
    int fd;

    put_file(path, "Hello");
    ck_assert_int_ge(fd = open(path, O_RDONLY), 0);
    TU_ASSERT_RC(wharf_file_from_fd(fd, false, &s), 0);
    TU_ASSERT_RC(wharf_file_seek(s, 2, SEEK_SET, &pos), 0);
    ck_assert_int_eq(pos, 2);
    TU_ASSERT_RC(wharf_file_tell(s, &pos), 0);
    ck_assert_int_eq(pos, 2);
    expect_receive(s, 64, "llo");
    TU_ASSERT_RC(wharf_file_tell(s, &pos), 0);
    ck_assert_int_eq(pos, 5);
    /* back to the start after EOF: the bytes come again */
    TU_ASSERT_RC(wharf_file_seek(s, -5, SEEK_END, NULL), 0);
    expect_receive(s, 64, "Hello");
    wharf_free(s);
    return 0;
}
START_TEST(seek) { TU_RUN(t_seek, NULL); }
END_TEST

static void check_attrs(struct wharf_stream *s, const char *path, const char *kind)
{
    char got[PATH_MAX];
    size_t len = sizeof(got);
    int fd = -1;

    ck_assert_str_eq(wharf_stream_kind(s), kind);
    TU_ASSERT_RC(wharf_getattr(s, WHARF_ATTR_FILE_PATH, got, &len), 0);
    ck_assert_uint_eq(len, strlen(path) + 1);
    ck_assert_str_eq(got, path);
    TU_ASSERT_RC(wharf_getattr_int(s, WHARF_ATTR_FD, &fd), 0);
    ck_assert_int_gt(fd, 2);
    ck_assert_int_ge(fcntl(fd, F_GETFD), 0);
    /* too small a buffer says how much is needed */
    len = 3;
    TU_ASSERT_RC(wharf_getattr(s, WHARF_ATTR_FILE_PATH, got, &len), -ENOSPC);
    ck_assert_uint_eq(len, strlen(path) + 1);
    TU_ASSERT_RC(wharf_getattr_int(s, WHARF_ATTR_LOCAL_PORT, &fd), -ENOENT);
}

static int t_read_extra_attributes(void *arg)
{
    const char *path = tmp_path("data.txt");
    struct wharf_stream *s;
    char got[16];
    size_t len = sizeof(got);
    int fd, got_fd;

    put_file(path, "Hello");
    TU_ASSERT_RC(wharf_file_read_open(path, &s), 0);
    check_attrs(s, path, "file-read");
    wharf_free(s);
    /* adopted fd: no path, the fd as given */
    ck_assert_int_ge(fd = open(path, O_RDONLY), 0);
    TU_ASSERT_RC(wharf_file_from_fd(fd, false, &s), 0);
    TU_ASSERT_RC(wharf_getattr(s, WHARF_ATTR_FILE_PATH, got, &len), -ENOENT);
    TU_ASSERT_RC(wharf_getattr_int(s, WHARF_ATTR_FD, &got_fd), 0);
    ck_assert_int_eq(got_fd, fd);
    wharf_free(s);
    return 0;
}
START_TEST(read_extra_attributes) { TU_RUN(t_read_extra_attributes, NULL); }
END_TEST

/* ---- TestFileWriteStream ------------------------------------------------- */

static int t_write_file(void *arg)
{
    const char *path = tmp_path("written_data.txt");
    struct wharf_stream *s;

    put_file(path, "old content, longer than the new");
    TU_ASSERT_RC(wharf_file_write_open(path, false, &s), 0);
    TU_ASSERT_RC(wharf_send(s, "Hel", 3), 0);
    TU_ASSERT_RC(wharf_send(s, "lo", 2), 0);
    TU_ASSERT_RC(wharf_close(s), 0);
    ck_assert_str_eq(get_file(path), "Hello");      /* truncated first */
    wharf_free(s);
    return 0;
}
START_TEST(write_file) { TU_RUN(t_write_file, NULL); }
END_TEST

static int t_write_creates_file(void *arg)
{
    const char *path = tmp_path("new.txt");
    struct wharf_stream *s;
    struct stat st;
    mode_t old = umask(022);

    TU_ASSERT_RC(wharf_file_write_open(path, true, &s), 0);
    TU_ASSERT_RC(wharf_send(s, "x", 1), 0);
    wharf_free(s);
    umask(old);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);      /* 0666 & ~umask */
    ck_assert_str_eq(get_file(path), "x");
    return 0;
}
START_TEST(write_creates_file) { TU_RUN(t_write_creates_file, NULL); }
END_TEST

static int t_append_file(void *arg)
{
    const char *path = tmp_path("written_data.txt");
    struct wharf_stream *s;

    put_file(path, "Hello");
    TU_ASSERT_RC(wharf_file_write_open(path, true, &s), 0);
    TU_ASSERT_RC(wharf_send(s, ", World!", 8), 0);
    wharf_free(s);
    ck_assert_str_eq(get_file(path), "Hello, World!");
    return 0;
}
START_TEST(append_file) { TU_RUN(t_append_file, NULL); }
END_TEST

static int t_append_ignores_seek(void *arg)
{
    const char *path = tmp_path("written_data.txt");
    struct wharf_stream *s;
    off_t pos = -1;

    put_file(path, "Hello");
    TU_ASSERT_RC(wharf_file_write_open(path, true, &s), 0);
    TU_ASSERT_RC(wharf_file_seek(s, 0, SEEK_SET, &pos), 0);
    ck_assert_int_eq(pos, 0);
    TU_ASSERT_RC(wharf_send(s, "!", 1), 0);         /* O_APPEND: at the end */
    TU_ASSERT_RC(wharf_file_tell(s, &pos), 0);
    ck_assert_int_eq(pos, 6);
    wharf_free(s);
    ck_assert_str_eq(get_file(path), "Hello!");
    return 0;
}
START_TEST(append_ignores_seek) { TU_RUN(t_append_ignores_seek, NULL); }
END_TEST

static int t_write_seek_overwrites(void *arg)
{
    const char *path = tmp_path("written_data.txt");
    struct wharf_stream *s;

    TU_ASSERT_RC(wharf_file_write_open(path, false, &s), 0);
    TU_ASSERT_RC(wharf_send(s, "Hello", 5), 0);
    TU_ASSERT_RC(wharf_file_seek(s, 1, SEEK_SET, NULL), 0);
    TU_ASSERT_RC(wharf_send(s, "a", 1), 0);
    TU_ASSERT_RC(wharf_send(s, "", 0), 0);          /* nothing, no error */
    wharf_free(s);
    ck_assert_str_eq(get_file(path), "Hallo");
    return 0;
}
START_TEST(write_seek_overwrites) { TU_RUN(t_write_seek_overwrites, NULL); }
END_TEST

static int t_write_after_close(void *arg)
{
    const char *path = tmp_path("written_data.txt");
    struct wharf_stream *s;

    TU_ASSERT_RC(wharf_file_write_open(path, true, &s), 0);
    TU_ASSERT_RC(wharf_close(s), 0);
    TU_ASSERT_RC(wharf_send(s, "foo", 3), WHARF_ECLOSED);
    wharf_free(s);
    return 0;
}
START_TEST(write_after_close) { TU_RUN(t_write_after_close, NULL); }
END_TEST

static int t_write_extra_attributes(void *arg)
{
    const char *path = tmp_path("written_data.txt");
    struct wharf_stream *s;

    TU_ASSERT_RC(wharf_file_write_open(path, false, &s), 0);
    check_attrs(s, path, "file-write");
    wharf_free(s);
    return 0;
}
START_TEST(write_extra_attributes) { TU_RUN(t_write_extra_attributes, NULL); }
END_TEST

/* ---- beyond AnyIO: sizes, errors, arguments, lifetime --------------------- */

#define BIG_SIZE (5 * 1024 * 1024 + 123)
#define BIG_CHUNK (64 * 1024)

static unsigned char big_byte(size_t i)
{
    return (unsigned char)(i * 7 + (i >> 11));
}

/* Reads the whole stream in receives of up to 1 MiB (each gets at most one
 * 64 KiB read), compares it with want and returns the total. */
static size_t read_back_big(struct wharf_stream *s, unsigned char *buf,
                            const unsigned char *want)
{
    size_t total = 0;
    ssize_t n;

    while ((n = wharf_receive(s, buf, 1024 * 1024)) > 0) {
        ck_assert_int_le(n, BIG_CHUNK);
        ck_assert_uint_le(total + (size_t)n, BIG_SIZE);
        /* one assertion per chunk: Check records every assertion */
        ck_assert_msg(memcmp(buf, want + total, (size_t)n) == 0,
                      "chunk at %zu differs", total);
        total += (size_t)n;
    }
    TU_ASSERT_RC(n, WHARF_EOF);
    return total;
}

static int t_large_file(void *arg)
{
    const char *path = tmp_path("big.bin");
    unsigned char *data = malloc(BIG_SIZE), *buf = malloc(1024 * 1024);
    struct wharf_stream *s;
    struct stat st;

    ck_assert(data && buf);
    for (size_t i = 0; i < BIG_SIZE; i++)
        data[i] = big_byte(i);
    TU_ASSERT_RC(wharf_file_write_open(path, false, &s), 0);
    TU_ASSERT_RC(wharf_send(s, data, BIG_SIZE / 2), 0);
    TU_ASSERT_RC(wharf_send(s, data + BIG_SIZE / 2, BIG_SIZE - BIG_SIZE / 2), 0);
    wharf_free(s);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, BIG_SIZE);
    TU_ASSERT_RC(wharf_file_read_open(path, &s), 0);
    ck_assert_uint_eq(read_back_big(s, buf, data), BIG_SIZE);
    wharf_free(s);
    free(data);
    free(buf);
    return 0;
}
START_TEST(large_file) { TU_RUN(t_large_file, NULL); }
END_TEST

static int t_missing_file(void *arg)
{
    struct wharf_stream *s = (struct wharf_stream *)&s;   /* not NULL */

    TU_ASSERT_RC(wharf_file_read_open(tmp_path("nope.txt"), &s), -ENOENT);
    ck_assert_ptr_null(s);
    TU_ASSERT_RC(wharf_file_write_open(tmp_path("no/dir.txt"), false, &s), -ENOENT);
    ck_assert_ptr_null(s);
    return 0;
}
START_TEST(missing_file) { TU_RUN(t_missing_file, NULL); }
END_TEST

/* A directory fails at open (not at the first receive) for both kinds. */
static int t_directory(void *arg)
{
    struct wharf_stream *s;

    TU_ASSERT_RC(wharf_file_read_open(tu_tmpdir(), &s), -EISDIR);
    TU_ASSERT_RC(wharf_file_write_open(tu_tmpdir(), true, &s), -EISDIR);
    return 0;
}
START_TEST(directory) { TU_RUN(t_directory, NULL); }
END_TEST

/* A stream kind of the test's own, to show seek refuses what is not a file. */
static const struct wharf_stream_ops other_ops = {
    .size = sizeof(struct wharf_stream_ops), .kind = "other",
};

static void bad_open_args(const char *path)
{
    struct wharf_stream *s;
    int fd;

    TU_ASSERT_RC(wharf_file_read_open(NULL, &s), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_file_read_open(path, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_file_write_open(NULL, false, &s), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_file_write_open(path, false, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_file_from_fd(-1, false, &s), WHARF_EINVAL);
    ck_assert_int_ge(fd = open(path, O_RDONLY), 0);
    TU_ASSERT_RC(wharf_file_from_fd(fd, false, NULL), WHARF_EINVAL);
    /* a read-only fd is not a write stream; it stays the caller's */
    TU_ASSERT_RC(wharf_file_from_fd(fd, true, &s), WHARF_EINVAL);
    ck_assert_int_eq(close(fd), 0);
    /* a closed fd is refused */
    TU_ASSERT_RC(wharf_file_from_fd(fd, false, &s), WHARF_EINVAL);
}

static void bad_stream_calls(struct wharf_stream *r, struct wharf_stream *w)
{
    struct wharf_stream other;
    char buf[4];
    off_t pos;

    wharf_stream_init(&other, &other_ops, NULL);
    TU_ASSERT_RC(wharf_send(r, "x", 1), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_receive(w, buf, sizeof(buf)), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_send_eof(w), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_receive_nowait(r, buf, sizeof(buf)), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_file_seek(NULL, 0, SEEK_SET, &pos), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_file_tell(r, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_file_tell(&other, &pos), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_file_seek(r, 0, 12345, &pos), -EINVAL);  /* bad whence */
    TU_ASSERT_RC(wharf_file_seek(r, -1, SEEK_SET, &pos), -EINVAL);
}

static int t_bad_input(void *arg)
{
    const char *path = tmp_path("data.txt");
    struct wharf_stream *r, *w;

    put_file(path, "Hello");
    bad_open_args(path);
    TU_ASSERT_RC(wharf_file_read_open(path, &r), 0);
    TU_ASSERT_RC(wharf_file_write_open(tmp_path("out.txt"), false, &w), 0);
    bad_stream_calls(r, w);
    expect_receive(r, 64, "Hello");     /* none of that disturbed the stream */
    wharf_free(r);
    wharf_free(w);
    return 0;
}
START_TEST(bad_input) { TU_RUN(t_bad_input, NULL); }
END_TEST

static int t_double_close(void *arg)
{
    const char *path = tmp_path("data.txt");
    struct wharf_stream *s;
    char buf[8];
    off_t pos;
    int fd;

    put_file(path, "Hello");
    TU_ASSERT_RC(wharf_file_read_open(path, &s), 0);
    TU_ASSERT_RC(wharf_getattr_int(s, WHARF_ATTR_FD, &fd), 0);
    TU_ASSERT_RC(wharf_close(s), 0);
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);       /* really closed */
    TU_ASSERT_RC(wharf_close(s), 0);
    TU_ASSERT_RC(wharf_receive(s, buf, sizeof(buf)), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_file_seek(s, 0, SEEK_SET, &pos), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_file_tell(s, &pos), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_getattr_int(s, WHARF_ATTR_FD, &fd), WHARF_ECLOSED);
    wharf_free(s);
    return 0;
}
START_TEST(double_close) { TU_RUN(t_double_close, NULL); }
END_TEST

/* Inside an already cancelled scope a receive reads nothing, so the bytes
 * are all there after the scope. */
static int t_receive_in_cancelled_scope(void *arg)
{
    const char *path = tmp_path("data.txt");
    struct wharf_stream *s;
    struct wharf_scope sc;
    char buf[8];

    put_file(path, "Hello");
    TU_ASSERT_RC(wharf_file_read_open(path, &s), 0);
    wharf_scope_enter(&sc, WHARF_FOREVER, 0);
    wharf_scope_cancel(&sc);
    TU_ASSERT_RC(wharf_receive(s, buf, sizeof(buf)), WHARF_ECANCELLED);
    TU_ASSERT_RC(wharf_scope_exit(&sc, WHARF_ECANCELLED), 0);
    expect_receive(s, sizeof(buf), "Hello");
    wharf_free(s);
    return 0;
}
START_TEST(receive_in_cancelled_scope) { TU_RUN(t_receive_in_cancelled_scope, NULL); }
END_TEST

static struct wharf_stream *opened_in_task;

static int t_open_only(void *arg)
{
    return wharf_file_read_open(arg, &opened_in_task);
}

/* A stream may outlive its scheduler: free then runs close(2) directly. */
START_TEST(free_outside_task)
{
    const char *path = tmp_path("data.txt");
    int fd;

    put_file(path, "Hello");
    TU_RUN(t_open_only, (void *)path);
    TU_ASSERT_RC(wharf_getattr_int(opened_in_task, WHARF_ATTR_FD, &fd), 0);
    wharf_free(opened_in_task);
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
}
END_TEST

/* A pipe whose reader is gone: WHARF_EBROKEN, and no SIGPIPE kills us. */
static int t_broken_pipe(void *arg)
{
    struct wharf_stream *w;
    int p[2];

    ck_assert_int_eq(pipe(p), 0);
    TU_ASSERT_RC(wharf_file_from_fd(p[1], true, &w), 0);
    TU_ASSERT_RC(wharf_send(w, "x", 1), 0);
    ck_assert_int_eq(close(p[0]), 0);
    TU_ASSERT_RC(wharf_send(w, "y", 1), WHARF_EBROKEN);
    wharf_free(w);
    return 0;
}
START_TEST(broken_pipe) { TU_RUN(t_broken_pipe, NULL); }
END_TEST

static int nb_pipe_writer(void *arg)
{
    struct wharf_stream *w = arg;

    TU_ASSERT_RC(wharf_sleep(0.01), 0);
    TU_ASSERT_RC(wharf_send(w, "late", 4), 0);
    wharf_free(w);
    return 0;
}

/* Adopted non-blocking pipe ends still give blocking receive and send. */
static int t_nonblocking_pipe(void *arg)
{
    struct wharf_stream *r, *w;
    struct wharf_group *g;
    char c;
    int p[2];

    ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
    TU_ASSERT_RC(wharf_file_from_fd(p[0], false, &r), 0);
    TU_ASSERT_RC(wharf_file_from_fd(p[1], true, &w), 0);
    g = wharf_group_open();
    wharf_group_spawn(g, nb_pipe_writer, w);
    expect_receive(r, 16, "late");      /* waited, not WHARF_EWOULDBLOCK */
    TU_ASSERT_RC(wharf_receive(r, &c, 1), WHARF_EOF);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    wharf_free(r);
    return 0;
}
START_TEST(nonblocking_pipe) { TU_RUN(t_nonblocking_pipe, NULL); }
END_TEST

/* ---- off the loop: a FIFO read blocks a pool thread, not the loop -------- */

struct fifo_test {
    const char *path;
    struct wharf_stream *rs;        /* the reader's stream */
    struct wharf_scope scope;       /* the reader's scope (cancel test) */
    int fd;                         /* the reader's fd */
    bool reading;                   /* the reader is about to receive */
    bool returned;                  /* ... and its receive returned */
    bool done;
    int ticks, ticks_at_read, ticks_at_data;
};

static void fifo_make(struct fifo_test *ft)
{
    memset(ft, 0, sizeof(*ft));
    ft->path = tmp_path("fifo");
    ck_assert_int_eq(mkfifo(ft->path, 0600), 0);
}

/* Opens the FIFO for reading: blocks (in the pool) until a writer opens. */
static void fifo_reader_open(struct fifo_test *ft)
{
    TU_ASSERT_RC(wharf_file_read_open(ft->path, &ft->rs), 0);
    TU_ASSERT_RC(wharf_getattr_int(ft->rs, WHARF_ATTR_FD, &ft->fd), 0);
    ft->ticks_at_read = ft->ticks;
    ft->reading = true;
}

static void wait_for(const bool *flag)
{
    while (!*flag)
        TU_ASSERT_RC(wharf_sleep(0.001), 0);
}

static int ticker(void *arg)
{
    struct fifo_test *ft = arg;

    while (!ft->done) {
        TU_ASSERT_RC(wharf_sleep(0.001), 0);
        ft->ticks++;
    }
    return 0;
}

static int nb_reader(void *arg)
{
    struct fifo_test *ft = arg;
    char c;

    fifo_reader_open(ft);
    expect_receive(ft->rs, 16, "ping");
    ft->ticks_at_data = ft->ticks;
    TU_ASSERT_RC(wharf_receive(ft->rs, &c, 1), WHARF_EOF);  /* writer closed */
    wharf_free(ft->rs);
    ft->done = true;
    return 0;
}

/* Writes only after the ticker, on the same loop, has ticked 20 times while
 * the reader waits: impossible if the read blocked the loop. */
static int nb_writer(void *arg)
{
    struct fifo_test *ft = arg;
    struct wharf_stream *w;
    int target;

    TU_ASSERT_RC(wharf_file_write_open(ft->path, false, &w), 0);
    wait_for(&ft->reading);
    target = ft->ticks + 20;
    while (ft->ticks < target)
        TU_ASSERT_RC(wharf_sleep(0.001), 0);
    TU_ASSERT_RC(wharf_send(w, "ping", 4), 0);
    wharf_free(w);
    return 0;
}

static int t_loop_not_blocked(void *arg)
{
    struct fifo_test ft;
    struct wharf_group *g = wharf_group_open();

    fifo_make(&ft);
    wharf_group_spawn(g, nb_reader, &ft);
    wharf_group_spawn(g, nb_writer, &ft);
    wharf_group_spawn(g, ticker, &ft);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    ck_assert_int_ge(ft.ticks_at_data - ft.ticks_at_read, 20);
    return 0;
}
START_TEST(loop_not_blocked) { TU_RUN(t_loop_not_blocked, NULL); }
END_TEST

/* The reader's scope is cancelled while its read waits in the pool: the
 * receive still returns the bytes, and the next checkpoint is cancelled. */
static int cancel_reader(void *arg)
{
    struct fifo_test *ft = arg;
    char c;

    wharf_scope_enter(&ft->scope, WHARF_FOREVER, 0);
    fifo_reader_open(ft);
    expect_receive(ft->rs, 16, "data");
    ft->returned = true;
    ck_assert(wharf_scope_cancel_called(&ft->scope));
    TU_ASSERT_RC(wharf_checkpoint(), WHARF_ECANCELLED);
    TU_ASSERT_RC(wharf_scope_exit(&ft->scope, WHARF_ECANCELLED), 0);
    TU_ASSERT_RC(wharf_receive(ft->rs, &c, 1), WHARF_EOF);
    wharf_free(ft->rs);
    return 0;
}

static int cancel_writer(void *arg)
{
    struct fifo_test *ft = arg;
    struct wharf_stream *w;

    TU_ASSERT_RC(wharf_file_write_open(ft->path, false, &w), 0);
    wait_for(&ft->reading);
    TU_ASSERT_RC(wharf_sleep(0.01), 0);
    wharf_scope_cancel(&ft->scope);
    TU_ASSERT_RC(wharf_sleep(0.01), 0);
    ck_assert(!ft->returned);       /* the job cannot be interrupted */
    TU_ASSERT_RC(wharf_send(w, "data", 4), 0);
    wharf_free(w);
    return 0;
}

static int t_cancelled_receive_keeps_data(void *arg)
{
    struct fifo_test ft;
    struct wharf_group *g = wharf_group_open();

    fifo_make(&ft);
    wharf_group_spawn(g, cancel_reader, &ft);
    wharf_group_spawn(g, cancel_writer, &ft);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    ck_assert(ft.returned);
    return 0;
}
START_TEST(cancelled_receive_keeps_data) { TU_RUN(t_cancelled_receive_keeps_data, NULL); }
END_TEST

/* Close while another task's read waits in the pool: a second receiver is
 * busy, the close returns at once, the fd stays open (its number cannot be
 * reused under the read) until the read ends, which then reports closed. */
static int close_reader(void *arg)
{
    struct fifo_test *ft = arg;
    char buf[16];

    fifo_reader_open(ft);
    TU_ASSERT_RC(wharf_receive(ft->rs, buf, sizeof(buf)), WHARF_ECLOSED);
    ck_assert_int_eq(fcntl(ft->fd, F_GETFD), -1);
    ft->returned = true;
    return 0;
}

static int close_writer(void *arg)
{
    struct fifo_test *ft = arg;
    struct wharf_stream *w;
    char buf[16];

    TU_ASSERT_RC(wharf_file_write_open(ft->path, false, &w), 0);
    wait_for(&ft->reading);
    TU_ASSERT_RC(wharf_sleep(0.01), 0);
    TU_ASSERT_RC(wharf_receive(ft->rs, buf, sizeof(buf)), WHARF_EBUSY);
    TU_ASSERT_RC(wharf_close(ft->rs), 0);
    TU_ASSERT_RC(wharf_close(ft->rs), 0);
    ck_assert_int_ge(fcntl(ft->fd, F_GETFD), 0);
    TU_ASSERT_RC(wharf_send(w, "late", 4), 0);
    wharf_free(w);
    wait_for(&ft->returned);
    wharf_free(ft->rs);
    return 0;
}

static int t_close_during_receive(void *arg)
{
    struct fifo_test ft;
    struct wharf_group *g = wharf_group_open();

    fifo_make(&ft);
    wharf_group_spawn(g, close_reader, &ft);
    wharf_group_spawn(g, close_writer, &ft);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    return 0;
}
START_TEST(close_during_receive) { TU_RUN(t_close_during_receive, NULL); }
END_TEST

/* ---- the suite ----------------------------------------------------------- */

static TCase *tcase_new(const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, NULL, tmp_cleanup);
    return tc;
}

static Suite *suite(void)
{
    Suite *s = suite_create("file");
    TCase *tc = tcase_new("read_stream");

    tcase_add_test(tc, read_file_as_path);
    tcase_add_test(tc, read_file);
    tcase_add_test(tc, receive_max_bytes_validation);
    tcase_add_test(tc, read_after_close);
    tcase_add_test(tc, seek);
    tcase_add_test(tc, read_extra_attributes);
    suite_add_tcase(s, tc);

    tc = tcase_new("write_stream");
    tcase_add_test(tc, write_file);
    tcase_add_test(tc, write_creates_file);
    tcase_add_test(tc, append_file);
    tcase_add_test(tc, append_ignores_seek);
    tcase_add_test(tc, write_seek_overwrites);
    tcase_add_test(tc, write_after_close);
    tcase_add_test(tc, write_extra_attributes);
    suite_add_tcase(s, tc);

    tc = tcase_new("more");
    tcase_add_test(tc, large_file);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, directory);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, double_close);
    tcase_add_test(tc, receive_in_cancelled_scope);
    tcase_add_test(tc, free_outside_task);
    tcase_add_test(tc, broken_pipe);
    tcase_add_test(tc, nonblocking_pipe);
    suite_add_tcase(s, tc);

    tc = tcase_new("off_the_loop");
    tcase_add_test(tc, loop_not_blocked);
    tcase_add_test(tc, cancelled_receive_keeps_data);
    tcase_add_test(tc, close_during_receive);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
