/*
 * memstream.c: memory object streams (wharf/memstream.h, AnyIO's
 * create_memory_object_stream) and the memory byte streams and in-memory
 * connections built on the same machinery.
 *
 * Both ends share one refcounted state under a mutex, so that ends may be
 * used from tasks on different workers. A task that must wait puts a waiter
 * record on its own stack into a FIFO (receivers, or senders holding their
 * item); whoever completes a waiter does the hand-off and the wake while
 * holding the mutex, and the waiter re-checks its record when it runs again.
 *
 * Beyond AnyIO: closing a handle also ends the waits of tasks blocked on
 * that very handle, with WHARF_ECLOSED. In byte mode a chunk leaves its
 * buffer slot when a receive starts on it; the rest of it stays first in
 * line and counts in current_buffer_used.
 * Not for: stapling streams (stapled.c) or scheduling (sched.c).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "wharf-int.h"

enum ms_wstate {
    MS_PENDING,         /* still queued, or dropped without a result */
    MS_DONE_LOCAL,      /* completed by code of the waiter's own thread */
    MS_DONE_REMOTE      /* completed by another thread, under the mutex */
};

/* Where a receive puts what it gets: an item, or bytes. */
struct ms_rx {
    void **rx_item;
    unsigned char *rx_buf;
    size_t rx_max;
};

struct ms_handle;

/* A task blocked in a send or a receive; lives on that task's stack. */
struct ms_waiter {
    TAILQ_ENTRY(ms_waiter) w_link;
    struct task *w_task;
    struct ms_handle *w_handle;     /* closing this handle ends the wait */
    void *w_item;                   /* a sender's item (or byte chunk) */
    struct ms_rx w_rx;              /* a receiver's destination */
    ssize_t w_rc;                   /* the result, once completed */
    int w_state;                    /* enum ms_wstate; read without the mutex */
    bool w_queued;
};

struct ms_waitq {
    TAILQ_HEAD(, ms_waiter) q_head;
    size_t q_len;
};

/* The buffered items, oldest first; the capacity is a power of two. */
struct ms_ring {
    void **r_items;
    size_t r_head, r_len, r_cap;
};

/* A byte-mode item: the bytes of one send. */
struct ms_chunk {
    size_t c_len, c_off;
    unsigned char c_data[];
};

struct ms_state {
    pthread_mutex_t ms_mtx;
    long ms_max;                    /* items (chunks) the ring may hold */
    bool ms_bytes;
    void (*ms_item_free)(void *item);
    struct ms_ring ms_ring;
    struct ms_chunk *ms_partial;    /* bytes: a partly received chunk, first in line */
    struct ms_waitq ms_receivers;
    struct ms_waitq ms_senders;
    size_t ms_open_send, ms_open_receive;
    size_t ms_handles;              /* handles not yet freed */
};

struct ms_handle {
    struct wharf_stream h_stream;   /* first: the handle is a stream */
    struct ms_state *h_state;
    bool h_send;
    bool h_closed;
    bool h_eof;                     /* bytes: closed by send_eof */
};

static const struct wharf_stream_ops ms_send_ops, ms_receive_ops;
static const struct wharf_stream_ops ms_bytes_send_ops, ms_bytes_receive_ops;

static struct ms_handle *ms_handle(struct wharf_stream *s)
{
    return (struct ms_handle *)(void *)s;
}

/* ---- the ring of buffered items ----------------------------------------- */

static int ring_grow(struct ms_ring *r)
{
    size_t ncap = r->r_cap ? r->r_cap * 2 : 8;
    void **n = malloc(ncap * sizeof(*n));

    if (!n)
        return -ENOMEM;
    for (size_t i = 0; i < r->r_len; i++)
        n[i] = r->r_items[(r->r_head + i) & (r->r_cap - 1)];
    free(r->r_items);
    r->r_items = n;
    r->r_head = 0;
    r->r_cap = ncap;
    return 0;
}

static int ring_push(struct ms_ring *r, void *item)
{
    if (r->r_len == r->r_cap && ring_grow(r) != 0)
        return -ENOMEM;
    r->r_items[(r->r_head + r->r_len) & (r->r_cap - 1)] = item;
    r->r_len++;
    return 0;
}

static void *ring_pop(struct ms_ring *r)
{
    void *item = r->r_items[r->r_head];

    r->r_head = (r->r_head + 1) & (r->r_cap - 1);
    r->r_len--;
    return item;
}

/* ---- waiters ------------------------------------------------------------ */

static void waitq_init(struct ms_waitq *q)
{
    TAILQ_INIT(&q->q_head);
    q->q_len = 0;
}

static void waitq_push(struct ms_waitq *q, struct ms_waiter *w)
{
    TAILQ_INSERT_TAIL(&q->q_head, w, w_link);
    w->w_queued = true;
    q->q_len++;
}

static void waitq_remove(struct ms_waitq *q, struct ms_waiter *w)
{
    TAILQ_REMOVE(&q->q_head, w, w_link);
    w->w_queued = false;
    q->q_len--;
}

static void waiter_init(struct ms_waiter *w, struct task *t, struct ms_handle *h)
{
    memset(w, 0, sizeof(*w));
    w->w_task = t;
    w->w_handle = h;
    w->w_state = MS_PENDING;
}

/* Dequeues w with its result and wakes its task. Under the mutex. A waker on
 * the waiter's own thread is finished with w before the waiter runs again,
 * so the waiter may then skip the mutex; a waker on another thread keeps
 * the mutex until after task_wake_any, so the task outlives the wake. */
static void waiter_complete(struct ms_waitq *q, struct ms_waiter *w, ssize_t rc)
{
    struct task *t = w->w_task;
    bool local = t->sched == sched_current();

    waitq_remove(q, w);
    w->w_rc = rc;
    __atomic_store_n(&w->w_state, local ? MS_DONE_LOCAL : MS_DONE_REMOTE,
                     __ATOMIC_RELEASE);
    if (local)
        task_wake(t);
    else
        task_wake_any(t);
}

/* Whether w's task has a pending cancellation we can see: only for a task
 * of this thread, whose scopes we may read. A task still blocked has no
 * pending cancellation (cancelling a scope wakes its blocked tasks at once),
 * which spares the walk up its scopes on the common path. */
static bool waiter_cancelled(const struct ms_waiter *w)
{
    const struct task *t = w->w_task;

    return t->sched == sched_current() && t->state != TASK_BLOCKED &&
           task_cancelled(t);
}

/* The first waiter of q able to take part. As in AnyIO, an item never goes
 * to a task with a pending cancellation: such a waiter is dropped here and
 * withdraws with WHARF_ECANCELLED when it runs. */
static struct ms_waiter *waitq_first_live(struct ms_waitq *q)
{
    struct ms_waiter *w;

    while ((w = TAILQ_FIRST(&q->q_head)) != NULL && waiter_cancelled(w)) {
        waitq_remove(q, w);
        task_wake_cancel(w->w_task);
    }
    return w;
}

/* Completes every waiter of q that waits through handle h (all for NULL). */
static void waitq_end(struct ms_waitq *q, const struct ms_handle *h, ssize_t rc)
{
    struct ms_waiter *w, *wn;

    TAILQ_FOREACH_SAFE(w, &q->q_head, w_link, wn)
        if (!h || w->w_handle == h)
            waiter_complete(q, w, rc);
}

/* ---- hand-off, under the mutex ------------------------------------------- */

/* Copies bytes of chunk c out; what does not fit stays first in line. */
static ssize_t chunk_read(struct ms_state *st, struct ms_chunk *c,
                          const struct ms_rx *rx)
{
    size_t n = c->c_len - c->c_off;

    if (n > rx->rx_max)
        n = rx->rx_max;
    memcpy(rx->rx_buf, c->c_data + c->c_off, n);
    c->c_off += n;
    if (c->c_off < c->c_len)
        st->ms_partial = c;
    else
        free(c);
    return (ssize_t)n;
}

/* Gives an item to a receiver: 0 for an item, the byte count for bytes. */
static ssize_t ms_give(struct ms_state *st, void *item, const struct ms_rx *rx)
{
    if (!st->ms_bytes) {
        *rx->rx_item = item;
        return 0;
    }
    return chunk_read(st, item, rx);
}

/* Bytes: the rest of a partly received chunk goes to the next waiting
 * receivers before anything else, so that bytes stay in order. */
static void ms_feed_partial(struct ms_state *st)
{
    struct ms_waiter *w;
    struct ms_chunk *c;

    while ((c = st->ms_partial) != NULL &&
           (w = waitq_first_live(&st->ms_receivers)) != NULL) {
        st->ms_partial = NULL;
        waiter_complete(&st->ms_receivers, w, chunk_read(st, c, &w->w_rx));
    }
}

/* Offers an item: to the first waiting receiver, else to the buffer. t is
 * the sending task, checked for cancellation (NULL: a nowait call). Returns
 * 0, WHARF_EWOULDBLOCK (no room), WHARF_ECANCELLED or -ENOMEM. */
static int ms_put(struct ms_state *st, void *item, struct task *t)
{
    struct ms_waiter *w = waitq_first_live(&st->ms_receivers);

    if (!w && st->ms_ring.r_len >= (size_t)st->ms_max)
        return WHARF_EWOULDBLOCK;
    if (t && task_cancelled(t))
        return WHARF_ECANCELLED;
    if (w) {
        waiter_complete(&st->ms_receivers, w, ms_give(st, item, &w->w_rx));
        ms_feed_partial(st);
        return 0;
    }
    return ring_push(&st->ms_ring, item);
}

/* Takes the next item: the partial chunk, the buffer's head (then the first
 * blocked sender's item joins the buffer), or a blocked sender's item. t as
 * for ms_put. Returns what ms_give returns, WHARF_EWOULDBLOCK, WHARF_EOF or
 * WHARF_ECANCELLED. */
static ssize_t ms_take(struct ms_state *st, const struct ms_rx *rx, struct task *t)
{
    struct ms_chunk *c = st->ms_partial;
    struct ms_waiter *w = c ? NULL : waitq_first_live(&st->ms_senders);
    void *item;

    if (!c && !w && st->ms_ring.r_len == 0)
        return st->ms_open_send > 0 ? WHARF_EWOULDBLOCK : WHARF_EOF;
    if (t && task_cancelled(t))
        return WHARF_ECANCELLED;
    if (c) {
        st->ms_partial = NULL;
        return chunk_read(st, c, rx);
    }
    if (st->ms_ring.r_len > 0) {
        item = ring_pop(&st->ms_ring);
        if (w)
            ring_push(&st->ms_ring, w->w_item);     /* a slot was just freed */
    } else {
        item = w->w_item;
    }
    if (w)
        waiter_complete(&st->ms_senders, w, 0);
    return ms_give(st, item, rx);
}

static int ms_send_check(const struct ms_handle *h)
{
    if (h->h_closed)
        return WHARF_ECLOSED;
    return h->h_state->ms_open_receive > 0 ? 0 : WHARF_EBROKEN;
}

/* ---- the blocking forms ----------------------------------------------- */

/* Waits until w is completed, or withdraws it on cancellation. Called with
 * the mutex held; returns without it, with w's result. */
static ssize_t ms_wait(struct ms_state *st, struct ms_waitq *q, struct ms_waiter *w)
{
    int brc;

    for (;;) {
        pthread_mutex_unlock(&st->ms_mtx);
        brc = task_block();
        if (__atomic_load_n(&w->w_state, __ATOMIC_ACQUIRE) == MS_DONE_LOCAL)
            return w->w_rc;
        pthread_mutex_lock(&st->ms_mtx);
        if (__atomic_load_n(&w->w_state, __ATOMIC_RELAXED) != MS_PENDING)
            break;
        /* cancelled, or dropped by a peer that saw us cancelled */
        if (brc != 0 || !w->w_queued) {
            if (w->w_queued)
                waitq_remove(q, w);
            w->w_rc = WHARF_ECANCELLED;
            break;
        }
    }
    pthread_mutex_unlock(&st->ms_mtx);
    return w->w_rc;
}

/* The blocking calls are checkpoints: ms_put and ms_take check for a
 * cancellation just before they would transfer (one that finishes at once
 * does not yield), and task_block checks before it suspends. A call in a
 * cancelled scope therefore transfers nothing, except that a peer on
 * another worker may complete its waiter between the enqueue and the block:
 * the call then succeeds, and the cancellation is seen at the next
 * checkpoint (no item is lost or duplicated either way). */
static int ms_send_blocking(struct ms_handle *h, void *item)
{
    struct ms_state *st = h->h_state;
    struct task *t = task_current();
    struct ms_waiter w;
    int rc;

    if (!t)
        return WHARF_EINVAL;
    pthread_mutex_lock(&st->ms_mtx);
    rc = ms_send_check(h);
    if (rc == 0)
        rc = ms_put(st, item, t);
    if (rc != WHARF_EWOULDBLOCK) {
        pthread_mutex_unlock(&st->ms_mtx);
        return rc;
    }
    waiter_init(&w, t, h);
    w.w_item = item;
    waitq_push(&st->ms_senders, &w);
    return (int)ms_wait(st, &st->ms_senders, &w);
}

static ssize_t ms_receive_blocking(struct ms_handle *h, const struct ms_rx *rx)
{
    struct ms_state *st = h->h_state;
    struct task *t = task_current();
    struct ms_waiter w;
    ssize_t rc;

    if (!t)
        return WHARF_EINVAL;
    pthread_mutex_lock(&st->ms_mtx);
    rc = h->h_closed ? WHARF_ECLOSED : ms_take(st, rx, t);
    if (rc != WHARF_EWOULDBLOCK) {
        pthread_mutex_unlock(&st->ms_mtx);
        return rc;
    }
    waiter_init(&w, t, h);
    w.w_rx = *rx;
    waitq_push(&st->ms_receivers, &w);
    return ms_wait(st, &st->ms_receivers, &w);
}

static int ms_send_nowait(struct ms_handle *h, void *item)
{
    struct ms_state *st = h->h_state;
    int rc;

    pthread_mutex_lock(&st->ms_mtx);
    rc = ms_send_check(h);
    if (rc == 0)
        rc = ms_put(st, item, NULL);
    pthread_mutex_unlock(&st->ms_mtx);
    return rc;
}

static ssize_t ms_receive_nowait(struct ms_handle *h, const struct ms_rx *rx)
{
    struct ms_state *st = h->h_state;
    ssize_t rc;

    pthread_mutex_lock(&st->ms_mtx);
    rc = h->h_closed ? WHARF_ECLOSED : ms_take(st, rx, NULL);
    pthread_mutex_unlock(&st->ms_mtx);
    return rc;
}

/* ---- object ops ---------------------------------------------------------- */

static int ms_send_item(struct wharf_stream *s, void *item)
{
    return ms_send_blocking(ms_handle(s), item);
}

static int ms_send_item_nowait(struct wharf_stream *s, void *item)
{
    return ms_send_nowait(ms_handle(s), item);
}

static int ms_receive_item(struct wharf_stream *s, void **item)
{
    struct ms_rx rx = { item, NULL, 0 };

    return (int)ms_receive_blocking(ms_handle(s), &rx);
}

static int ms_receive_item_nowait(struct wharf_stream *s, void **item)
{
    struct ms_rx rx = { item, NULL, 0 };

    return (int)ms_receive_nowait(ms_handle(s), &rx);
}

/* ---- byte ops ------------------------------------------------------------- */

static struct ms_chunk *chunk_new(const void *buf, size_t len)
{
    struct ms_chunk *c = malloc(sizeof(*c) + len);

    if (!c)
        return NULL;
    c->c_len = len;
    c->c_off = 0;
    memcpy(c->c_data, buf, len);
    return c;
}

/* Sending nothing sends nothing, but on a closed handle it still fails. */
static int ms_bytes_send_empty(struct ms_handle *h)
{
    struct ms_state *st = h->h_state;
    int rc;

    pthread_mutex_lock(&st->ms_mtx);
    rc = h->h_closed ? WHARF_ECLOSED : 0;
    pthread_mutex_unlock(&st->ms_mtx);
    return rc;
}

static int ms_bytes_send(struct wharf_stream *s, const void *buf, size_t len)
{
    struct ms_chunk *c;
    int rc;

    if (len == 0)
        return ms_bytes_send_empty(ms_handle(s));
    if (!(c = chunk_new(buf, len)))
        return -ENOMEM;
    rc = ms_send_blocking(ms_handle(s), c);
    if (rc != 0)
        free(c);
    return rc;
}

static ssize_t ms_bytes_send_nowait(struct wharf_stream *s, const void *buf, size_t len)
{
    struct ms_chunk *c = chunk_new(buf, len);
    int rc;

    if (!c)
        return -ENOMEM;
    rc = ms_send_nowait(ms_handle(s), c);
    if (rc != 0) {
        free(c);
        return rc;
    }
    return (ssize_t)len;
}

static ssize_t ms_bytes_receive(struct wharf_stream *s, void *buf, size_t max)
{
    struct ms_rx rx = { NULL, buf, max };

    return ms_receive_blocking(ms_handle(s), &rx);
}

static ssize_t ms_bytes_receive_nowait(struct wharf_stream *s, void *buf, size_t max)
{
    struct ms_rx rx = { NULL, buf, max };

    return ms_receive_nowait(ms_handle(s), &rx);
}

/* ---- handles: clone, close, free ------------------------------------------ */

static void ms_handle_init(struct ms_handle *h, struct ms_state *st, bool send,
                           const struct wharf_stream_ops *ops)
{
    memset(h, 0, sizeof(*h));
    wharf_stream_init(&h->h_stream, ops, NULL);
    h->h_state = st;
    h->h_send = send;
    st->ms_handles++;
    if (send)
        st->ms_open_send++;
    else
        st->ms_open_receive++;
}

static int ms_clone(struct wharf_stream *s, struct wharf_stream **out)
{
    struct ms_handle *h = ms_handle(s), *c = malloc(sizeof(*c));
    struct ms_state *st = h->h_state;

    if (!c)
        return -ENOMEM;
    pthread_mutex_lock(&st->ms_mtx);
    if (h->h_closed) {
        pthread_mutex_unlock(&st->ms_mtx);
        free(c);
        return WHARF_ECLOSED;
    }
    ms_handle_init(c, st, h->h_send, s->ops);
    pthread_mutex_unlock(&st->ms_mtx);
    *out = &c->h_stream;
    return 0;
}

/* The last receive handle closed: blocked senders get WHARF_EBROKEN (their
 * items stay theirs) and the buffered items leave the stream in *dead. */
static void ms_close_receive(struct ms_state *st, struct ms_handle *h,
                             struct ms_ring *dead, struct ms_chunk **partial)
{
    waitq_end(&st->ms_receivers, h, WHARF_ECLOSED);
    if (--st->ms_open_receive > 0)
        return;
    waitq_end(&st->ms_senders, NULL, WHARF_EBROKEN);
    *dead = st->ms_ring;
    memset(&st->ms_ring, 0, sizeof(st->ms_ring));
    *partial = st->ms_partial;
    st->ms_partial = NULL;
}

static void ms_close_send(struct ms_state *st, struct ms_handle *h)
{
    waitq_end(&st->ms_senders, h, WHARF_ECLOSED);
    if (--st->ms_open_send == 0)
        waitq_end(&st->ms_receivers, NULL, WHARF_EOF);
}

/* Disposes of items left at close, outside the mutex: item_free is the
 * user's and may do anything. */
static void ms_dispose(struct ms_state *st, struct ms_ring *dead, struct ms_chunk *partial)
{
    while (dead->r_len > 0) {
        void *item = ring_pop(dead);

        if (st->ms_item_free)
            st->ms_item_free(item);
    }
    free(dead->r_items);
    free(partial);
}

static int ms_close(struct wharf_stream *s)
{
    struct ms_handle *h = ms_handle(s);
    struct ms_state *st = h->h_state;
    struct ms_ring dead = { NULL, 0, 0, 0 };
    struct ms_chunk *partial = NULL;

    pthread_mutex_lock(&st->ms_mtx);
    if (h->h_closed) {
        pthread_mutex_unlock(&st->ms_mtx);
        return 0;
    }
    h->h_closed = true;
    if (h->h_send)
        ms_close_send(st, h);
    else
        ms_close_receive(st, h, &dead, &partial);
    pthread_mutex_unlock(&st->ms_mtx);
    ms_dispose(st, &dead, partial);
    return 0;
}

/* Bytes: closes this send handle (the receiver sees WHARF_EOF once every
 * send handle is closed); repeating it is harmless. */
static int ms_bytes_send_eof(struct wharf_stream *s)
{
    struct ms_handle *h = ms_handle(s);
    struct ms_state *st = h->h_state;
    bool closed, eof;

    pthread_mutex_lock(&st->ms_mtx);
    closed = h->h_closed;
    eof = h->h_eof;
    h->h_eof = !closed || eof;
    pthread_mutex_unlock(&st->ms_mtx);
    if (closed)
        return eof ? 0 : WHARF_ECLOSED;
    return ms_close(s);
}

static void ms_state_free(struct ms_state *st)
{
    ms_dispose(st, &st->ms_ring, st->ms_partial);
    pthread_mutex_destroy(&st->ms_mtx);
    free(st);
}

static void ms_free(struct wharf_stream *s)
{
    struct ms_handle *h = ms_handle(s);
    struct ms_state *st = h->h_state;
    bool last;

    pthread_mutex_lock(&st->ms_mtx);
    last = --st->ms_handles == 0;
    pthread_mutex_unlock(&st->ms_mtx);
    free(h);
    if (last)
        ms_state_free(st);
}

static const struct wharf_stream_ops ms_send_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "memory",
    .send_item = ms_send_item,
    .send_item_nowait = ms_send_item_nowait,
    .clone = ms_clone,
    .close = ms_close,
    .free = ms_free,
};

static const struct wharf_stream_ops ms_receive_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "memory",
    .receive_item = ms_receive_item,
    .receive_item_nowait = ms_receive_item_nowait,
    .clone = ms_clone,
    .close = ms_close,
    .free = ms_free,
};

/* A byte stream, like a socket, has one sending and one receiving task at
 * a time per handle. */
static const struct wharf_stream_ops ms_bytes_send_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "memory-bytes",
    .guard = WHARF_GUARD_SEND,
    .send = ms_bytes_send,
    .send_nowait = ms_bytes_send_nowait,
    .send_eof = ms_bytes_send_eof,
    .clone = ms_clone,
    .close = ms_close,
    .free = ms_free,
};

static const struct wharf_stream_ops ms_bytes_receive_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "memory-bytes",
    .guard = WHARF_GUARD_RECEIVE,
    .receive = ms_bytes_receive,
    .receive_nowait = ms_bytes_receive_nowait,
    .clone = ms_clone,
    .close = ms_close,
    .free = ms_free,
};

/* ---- creation and statistics --------------------------------------------- */

static struct ms_state *ms_state_new(long max, bool bytes, void (*item_free)(void *))
{
    struct ms_state *st = calloc(1, sizeof(*st));

    if (!st)
        return NULL;
    sched_mutex_init(&st->ms_mtx);
    st->ms_max = max;
    st->ms_bytes = bytes;
    st->ms_item_free = bytes ? free : item_free;
    waitq_init(&st->ms_receivers);
    waitq_init(&st->ms_senders);
    return st;
}

static int ms_new(long max, bool bytes, void (*item_free)(void *),
                  struct wharf_stream **send_end, struct wharf_stream **receive_end)
{
    struct ms_state *st;
    struct ms_handle *s, *r;

    if (max < 0 || !send_end || !receive_end)
        return WHARF_EINVAL;
    st = ms_state_new(max, bytes, item_free);
    s = malloc(sizeof(*s));
    r = malloc(sizeof(*r));
    if (!st || !s || !r) {
        if (st)
            ms_state_free(st);
        free(s);
        free(r);
        return -ENOMEM;
    }
    ms_handle_init(s, st, true, bytes ? &ms_bytes_send_ops : &ms_send_ops);
    ms_handle_init(r, st, false, bytes ? &ms_bytes_receive_ops : &ms_receive_ops);
    *send_end = &s->h_stream;
    *receive_end = &r->h_stream;
    return 0;
}

int wharf_memstream_new(long max_buffer, void (*item_free)(void *item),
                        struct wharf_stream **send_end,
                        struct wharf_stream **receive_end)
{
    return ms_new(max_buffer, false, item_free, send_end, receive_end);
}

int wharf_memstream_bytes_new(long max_chunks, struct wharf_stream **send_end,
                              struct wharf_stream **receive_end)
{
    return ms_new(max_chunks, true, NULL, send_end, receive_end);
}

int wharf_memstream_pair(long max_chunks, struct wharf_stream **a,
                         struct wharf_stream **b)
{
    struct wharf_stream *s1 = NULL, *r1 = NULL, *s2 = NULL, *r2 = NULL;
    struct wharf_stream *sa = NULL, *sb = NULL;
    int rc;

    if (max_chunks < 0 || !a || !b)
        return WHARF_EINVAL;
    if ((rc = wharf_memstream_bytes_new(max_chunks, &s1, &r1)) != 0)
        return rc;
    if ((rc = wharf_memstream_bytes_new(max_chunks, &s2, &r2)) != 0)
        goto fail;
    rc = -ENOMEM;
    if (!(sa = wharf_stapled_new(s1, r2)))
        goto fail;
    s1 = r2 = NULL;                 /* sa owns them now */
    if (!(sb = wharf_stapled_new(s2, r1)))
        goto fail;
    *a = sa;
    *b = sb;
    return 0;
fail:
    wharf_free(sa);
    wharf_free(s1);
    wharf_free(r1);
    wharf_free(s2);
    wharf_free(r2);
    return rc;
}

static bool ms_is_memstream(const struct wharf_stream *s)
{
    return s->ops == &ms_send_ops || s->ops == &ms_receive_ops ||
           s->ops == &ms_bytes_send_ops || s->ops == &ms_bytes_receive_ops;
}

int wharf_memstream_statistics(struct wharf_stream *s,
                               struct wharf_memstream_stats *out)
{
    struct ms_state *st;

    if (!s || !out)
        return WHARF_EINVAL;
    if (!ms_is_memstream(s))
        return WHARF_ENOTSUP;
    st = ms_handle(s)->h_state;
    pthread_mutex_lock(&st->ms_mtx);
    out->current_buffer_used = st->ms_ring.r_len + (st->ms_partial ? 1 : 0);
    out->max_buffer_size = st->ms_max;
    out->open_send_streams = st->ms_open_send;
    out->open_receive_streams = st->ms_open_receive;
    out->tasks_waiting_send = st->ms_senders.q_len;
    out->tasks_waiting_receive = st->ms_receivers.q_len;
    pthread_mutex_unlock(&st->ms_mtx);
    return 0;
}
