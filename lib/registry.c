/*
 * registry.c: the process's named memory object streams (wharf/memstream.h):
 * how plugins offer streams to each other ("pubsub/default") and how the
 * statistics find them.
 *
 * A sorted array of entries under one mutex. Each entry holds the
 * registry's own clone of each end it was given, so that a registered
 * stream outlives the handles of whoever published it. Handles are closed
 * and freed outside the mutex: closing the last receive end runs the
 * stream's item_free, which is the user's code and may use the registry.
 * Lock order: the registry's mutex, then a stream's (clone, statistics);
 * memstream.c never calls back here.
 * Not for: the streams themselves (memstream.c).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "wharf-int.h"

struct reg_entry {
    char *re_name;
    struct wharf_stream *re_send;       /* the registry's clone, or NULL */
    struct wharf_stream *re_receive;
};

static pthread_mutex_t reg_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct reg_entry *reg_items;     /* sorted by name (strcmp) */
static size_t reg_len, reg_cap;

/* ---- names and handles ------------------------------------------------------ */

static bool plugin_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

/* "PLUGIN/NAME" (see memstream.h). */
static bool name_ok(const char *name)
{
    size_t i = 0, len;

    if (!name || (len = strlen(name)) > WHARF_REGISTRY_NAME_MAX)
        return false;
    while (plugin_char(name[i]))
        i++;
    if (i == 0 || name[i] != '/' || name[i + 1] == '\0')
        return false;
    for (i++; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return false;
    return true;
}

/* Whether s is a memory stream end of that direction. */
static bool end_ok(struct wharf_stream *s, bool send)
{
    struct wharf_memstream_stats st;
    bool sends;

    if (!s || wharf_memstream_statistics(s, &st) != 0)
        return false;
    sends = s->ops->send_item != NULL || s->ops->send != NULL;
    return sends == send;
}

/* Clones s into *out (NULL s: nothing to clone). */
static int clone_opt(struct wharf_stream *s, struct wharf_stream **out)
{
    *out = NULL;
    return s ? wharf_clone(s, out) : 0;
}

/* ---- the array, under reg_mtx ------------------------------------------------ */

/* The index of name, or -(insertion point) - 1. */
static ssize_t reg_find(const char *name)
{
    size_t lo = 0, hi = reg_len;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(reg_items[mid].re_name, name);

        if (c == 0)
            return (ssize_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(ssize_t)lo - 1;
}

static int reg_insert(size_t at, const struct reg_entry *e)
{
    if (reg_len == reg_cap) {
        size_t ncap = reg_cap ? reg_cap * 2 : 8;
        struct reg_entry *n = realloc(reg_items, ncap * sizeof(*n));

        if (!n)
            return -ENOMEM;
        reg_items = n;
        reg_cap = ncap;
    }
    memmove(&reg_items[at + 1], &reg_items[at], (reg_len - at) * sizeof(*reg_items));
    reg_items[at] = *e;
    reg_len++;
    return 0;
}

static void entry_free(struct reg_entry *e)
{
    wharf_free(e->re_send);
    wharf_free(e->re_receive);
    free(e->re_name);
}

/* ---- the API ------------------------------------------------------------------- */

int wharf_registry_publish(const char *name, struct wharf_stream *send_end,
                           struct wharf_stream *receive_end)
{
    struct reg_entry e = { NULL, NULL, NULL };
    ssize_t at;
    int rc;

    if (!name_ok(name) || (!send_end && !receive_end) ||
        (send_end && !end_ok(send_end, true)) || (receive_end && !end_ok(receive_end, false)))
        return WHARF_EINVAL;
    if (!(e.re_name = strdup(name)))
        return -ENOMEM;
    if ((rc = clone_opt(send_end, &e.re_send)) < 0 ||
        (rc = clone_opt(receive_end, &e.re_receive)) < 0)
        goto fail;
    pthread_mutex_lock(&reg_mtx);
    at = reg_find(name);
    rc = at >= 0 ? -EEXIST : reg_insert((size_t)(-at - 1), &e);
    pthread_mutex_unlock(&reg_mtx);
    if (rc == 0)
        return 0;
fail:
    entry_free(&e);
    return rc;
}

int wharf_registry_lookup(const char *name, struct wharf_stream **send_end,
                          struct wharf_stream **receive_end)
{
    struct wharf_stream *s = NULL, *r = NULL;
    const struct reg_entry *e;
    ssize_t at;
    int rc = 0;

    if (send_end)
        *send_end = NULL;
    if (receive_end)
        *receive_end = NULL;
    if (!name)
        return WHARF_EINVAL;
    pthread_mutex_lock(&reg_mtx);
    if ((at = reg_find(name)) < 0) {
        pthread_mutex_unlock(&reg_mtx);
        return -ENOENT;
    }
    e = &reg_items[at];
    if ((send_end && !e->re_send) || (receive_end && !e->re_receive))
        rc = WHARF_ENOTSUP;
    if (rc == 0 && send_end)
        rc = wharf_clone(e->re_send, &s);
    if (rc == 0 && receive_end)
        rc = wharf_clone(e->re_receive, &r);
    pthread_mutex_unlock(&reg_mtx);
    if (rc < 0) {
        wharf_free(s);
        wharf_free(r);
        return rc;
    }
    if (send_end)
        *send_end = s;
    if (receive_end)
        *receive_end = r;
    return 0;
}

int wharf_registry_remove(const char *name)
{
    struct reg_entry e;
    ssize_t at;

    if (!name)
        return WHARF_EINVAL;
    pthread_mutex_lock(&reg_mtx);
    if ((at = reg_find(name)) < 0) {
        pthread_mutex_unlock(&reg_mtx);
        return -ENOENT;
    }
    e = reg_items[at];
    reg_len--;
    memmove(&reg_items[at], &reg_items[at + 1], (reg_len - (size_t)at) * sizeof(*reg_items));
    pthread_mutex_unlock(&reg_mtx);
    entry_free(&e);
    return 0;
}

/* ---- statistics ------------------------------------------------------------------ */

struct reg_stat {
    char *rs_name;
    struct wharf_memstream_stats rs_st;
};

/* The figures of e without the registry's own clones. */
static void entry_stats(const struct reg_entry *e, struct wharf_memstream_stats *st)
{
    wharf_memstream_statistics(e->re_send ? e->re_send : e->re_receive, st);
    if (e->re_send && st->open_send_streams > 0)
        st->open_send_streams--;
    if (e->re_receive && st->open_receive_streams > 0)
        st->open_receive_streams--;
}

/* Copies every entry's name and figures; *n set. NULL with *n = 0 when
 * there is none; NULL with *n > 0: out of memory. */
static struct reg_stat *reg_snapshot(size_t *n)
{
    struct reg_stat *v = NULL;
    size_t i;

    pthread_mutex_lock(&reg_mtx);
    *n = reg_len;
    if (reg_len > 0 && (v = calloc(reg_len, sizeof(*v))) != NULL) {
        for (i = 0; i < reg_len; i++) {
            if (!(v[i].rs_name = strdup(reg_items[i].re_name)))
                break;
            entry_stats(&reg_items[i], &v[i].rs_st);
        }
        if (i < reg_len) {
            while (i-- > 0)
                free(v[i].rs_name);
            free(v);
            v = NULL;
        }
    }
    pthread_mutex_unlock(&reg_mtx);
    return v;
}

int wharf_registry_statistics(int (*fn)(void *arg, const char *name,
                                        const struct wharf_memstream_stats *st),
                              void *arg)
{
    struct reg_stat *v;
    size_t n, i;
    int rc = 0;

    if (!fn)
        return WHARF_EINVAL;
    v = reg_snapshot(&n);
    if (!v)
        return n > 0 ? -ENOMEM : 0;
    for (i = 0; i < n && rc == 0; i++)
        rc = fn(arg, v[i].rs_name, &v[i].rs_st);
    for (i = 0; i < n; i++)
        free(v[i].rs_name);
    free(v);
    return rc;
}
