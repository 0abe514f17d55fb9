/*
 * log.c: the daemon's log. One line per event, from any thread, to one of
 * four places: stderr (plain, with a timestamp), stderr when it is the
 * systemd journal (a "<N>" priority prefix, no timestamp: the journal adds
 * its own), syslog, or an appended log_file that SIGUSR1 reopens. Events a
 * peer can cause go through a per-listener limiter: at most one line per
 * second, the next one saying how many were left out.
 * Not for: config errors found before the log is open (main.c prints those
 * to stderr as "wharfd: FILE:LINE: ...") or statistics.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "wharfd.h"

static const char *const level_names[] = { "error", "warning", "info", "debug" };
static const int level_priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

static struct {
    atomic_int level;
    int dest;                   /* enum log_dest */
    int fd;                     /* stderr, or the log file: dup2'd over on reopen */
    char *file;
} lg = { .level = CONF_LOG_INFO, .dest = LOG_DEST_STDERR, .fd = STDERR_FILENO };

/* JOURNAL_STREAM is "DEV:INODE" of the journal's stream; it says stderr is
 * the journal only while stderr is still that very file. */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return false;
    if (fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static int open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    return fd < 0 ? -errno : fd;
}

int log_open(int level, bool foreground, const char *file)
{
    int fd;

    atomic_store(&lg.level, level);
    if (file && *file) {
        if ((fd = open_file(file)) < 0)
            return fd;
        free(lg.file);
        if (!(lg.file = strdup(file))) {
            close(fd);
            return -ENOMEM;
        }
        lg.fd = fd;
        lg.dest = LOG_DEST_FILE;
    } else if (foreground) {
        lg.dest = stderr_is_journal() ? LOG_DEST_JOURNAL : LOG_DEST_STDERR;
    } else if (stderr_is_journal()) {
        lg.dest = LOG_DEST_JOURNAL;
    } else {
        openlog("wharfd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        lg.dest = LOG_DEST_SYSLOG;
    }
    return 0;
}

int log_reopen(void)
{
    int fd;

    if (lg.dest != LOG_DEST_FILE)
        return 0;
    if ((fd = open_file(lg.file)) < 0)
        return fd;
    /* the same descriptor number: a worker writing right now writes to the
     * old file or the new one, never to a closed descriptor */
    if (dup2(fd, lg.fd) < 0) {
        int rc = -errno;

        close(fd);
        return rc;
    }
    close(fd);
    return 0;
}

void log_close(void)
{
    if (lg.dest == LOG_DEST_FILE)
        close(lg.fd);
    else if (lg.dest == LOG_DEST_SYSLOG)
        closelog();
    free(lg.file);
    lg.file = NULL;
    lg.fd = STDERR_FILENO;
    lg.dest = LOG_DEST_STDERR;
}

bool log_to_stderr(void)
{
    return lg.dest == LOG_DEST_STDERR || lg.dest == LOG_DEST_JOURNAL;
}

void log_set_level(int level)
{
    atomic_store(&lg.level, level);
}

bool log_enabled(int level)
{
    return level <= atomic_load_explicit(&lg.level, memory_order_relaxed);
}

/* "2026-11-22T06:20:35.123Z " */
static size_t format_time(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, size - n, ".%03ldZ ", ts.tv_nsec / 1000000);
    return n < size ? n : size - 1;
}

/* One write(2) per line, so that lines of several workers never mix. */
static void emit(int level, const char *msg)
{
    char line[2048];
    size_t n = 0;
    int len;

    if (lg.dest == LOG_DEST_SYSLOG) {
        syslog(level_priorities[level], "%s", msg);
        return;
    }
    if (lg.dest == LOG_DEST_JOURNAL)
        n = (size_t)snprintf(line, sizeof(line), "<%d>", level_priorities[level]);
    else
        n = format_time(line, sizeof(line));
    len = snprintf(line + n, sizeof(line) - n, "%s%s%s\n",
                   lg.dest == LOG_DEST_JOURNAL ? "" : level_names[level],
                   lg.dest == LOG_DEST_JOURNAL ? "" : ": ", msg);
    if (len < 0)
        return;
    n += (size_t)len;
    if (n >= sizeof(line)) {        /* cut: still one line, still ending in \n */
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    while (write(lg.fd, line, n) < 0 && errno == EINTR)
        ;
}

static void vlog(int level, const char *suffix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void vlog(int level, const char *suffix, const char *fmt, va_list ap)
{
    char msg[1536];
    int n;

    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n >= 0 && suffix && (size_t)n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - (size_t)n, "%s", suffix);
    emit(level, msg);
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vlog(level, NULL, fmt, ap);
    va_end(ap);
}

/* ---- rate limiting ------------------------------------------------------------ */

void log_limited(struct log_limit *l, int level, const char *fmt, ...)
{
    long now = (long)time(NULL), last;
    unsigned long skipped;
    char suffix[64] = "";
    va_list ap;

    if (!log_enabled(level))
        return;
    last = atomic_load_explicit(&l->ll_second, memory_order_relaxed);
    /* one winner per second, whatever the number of workers */
    if (last == now ||
        !atomic_compare_exchange_strong(&l->ll_second, &last, now)) {
        atomic_fetch_add_explicit(&l->ll_suppressed, 1, memory_order_relaxed);
        return;
    }
    skipped = atomic_exchange(&l->ll_suppressed, 0);
    if (skipped)
        snprintf(suffix, sizeof(suffix), " (%lu more like it not logged)", skipped);
    va_start(ap, fmt);
    vlog(level, suffix, fmt, ap);
    va_end(ap);
}
