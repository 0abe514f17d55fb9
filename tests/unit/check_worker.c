/*
 * check_worker.c: the runtime across threads. Tasks on different workers
 * (lib/worker.c) talk through memory streams: nothing may be lost or
 * duplicated, with or without buffering and under cancellation, and
 * worker_stop must end blocked tasks cleanly.
 *
 * The main thread is not a task: it starts workers, waits for their tasks
 * with a condition variable, and checks results once the tasks are done.
 * Tasks never call ck_assert (they run on worker threads); they record what
 * they saw and the main thread asserts.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "testutil.h"
#include "wharf-int.h"

/* ---- waiting for tasks from the main thread -------------------------------- */

static pthread_mutex_t done_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int done_count;

static void done_signal(void)
{
    pthread_mutex_lock(&done_mtx);
    done_count++;
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&done_mtx);
}

/* Waits until n tasks have signalled, for at most `seconds`. */
static bool done_wait(int n, double seconds)
{
    struct timespec ts;
    bool ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)seconds;
    pthread_mutex_lock(&done_mtx);
    while (done_count < n &&
           pthread_cond_timedwait(&done_cond, &done_mtx, &ts) == 0)
        ;
    ok = done_count >= n;
    pthread_mutex_unlock(&done_mtx);
    return ok;
}

/* Polls the statistics of s until cond(st) holds, for at most 5 s. */
static bool stats_wait(struct wharf_stream *s,
                       bool (*cond)(const struct wharf_memstream_stats *st))
{
    struct wharf_memstream_stats st;
    struct timespec pause = { 0, 1000000 };

    for (int i = 0; i < 5000; i++) {
        if (wharf_memstream_statistics(s, &st) == 0 && cond(&st))
            return true;
        nanosleep(&pause, NULL);
    }
    return false;
}

static struct worker *start_worker(const char *name)
{
    struct worker *w = worker_start(name);

    ck_assert_ptr_nonnull(w);
    return w;
}

/* ---- what a receiver saw ------------------------------------------------------ */

/* Items are the numbers 0..n-1 (0 is the NULL item). Several receivers on
 * several threads may share one tally, hence the atomics. */
struct tally {
    long n;
    unsigned char *bits;
    long count, dups, strays;
    uint64_t sum;
};

static void tally_init(struct tally *t, long n)
{
    memset(t, 0, sizeof(*t));
    t->n = n;
    t->bits = calloc((size_t)(n + 7) / 8, 1);
    ck_assert_ptr_nonnull(t->bits);
}

static void tally_add(struct tally *t, void *item)
{
    uintptr_t i = (uintptr_t)item;
    unsigned char bit;

    if (i >= (uintptr_t)t->n) {
        __atomic_add_fetch(&t->strays, 1, __ATOMIC_RELAXED);
        return;
    }
    bit = (unsigned char)(1u << (i % 8));
    if (__atomic_fetch_or(&t->bits[i / 8], bit, __ATOMIC_RELAXED) & bit)
        __atomic_add_fetch(&t->dups, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->count, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->sum, (uint64_t)i, __ATOMIC_RELAXED);
}

/* Every item exactly once. */
static void tally_check_all(struct tally *t)
{
    ck_assert_int_eq(t->strays, 0);
    ck_assert_int_eq(t->dups, 0);
    ck_assert_int_eq(t->count, t->n);
    ck_assert_uint_eq(t->sum, (uint64_t)t->n * (uint64_t)(t->n - 1) / 2);
    /* one assertion, not one per item: each passing ck_assert costs Check a
     * write to its pipe */
    for (long i = 0; i < t->n; i++)
        if (!(t->bits[i / 8] & (1u << (i % 8))))
            ck_abort_msg("item %ld lost", i);
    free(t->bits);
}

/* ---- two workers, one stream ------------------------------------------------------ */

struct xchg {
    struct wharf_stream *snd, *rcv;
    long first, n;              /* the sender sends first .. first+n-1 */
    struct tally *tally;
    double cancel_odds;         /* each wait runs in a scope cancelled with these odds */
    unsigned seed;
    int send_rc, recv_rc;
    long cancels, late_items;   /* cancelled waits; items got despite a cancel */
    struct wharf_scope *cur;    /* the scope of the wait under way, for x_canceller */
    bool finished;
};

static unsigned xrand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 16;
}

/* Mostly no deadline; with cancel_odds, one passed already or a few µs away
 * (the loop's timers make that a millisecond or so). */
static double x_deadline(struct xchg *x)
{
    double r = (double)(xrand(&x->seed) % 10000) / 10000.0;

    if (r >= x->cancel_odds)
        return WHARF_FOREVER;
    if (r < x->cancel_odds / 2)
        return wharf_clock() - 1.0;
    return wharf_clock() + (double)(xrand(&x->seed) % 20) * 1e-6;
}

/* A task beside a sender or receiver, on its worker, that cancels the
 * scope of its wait at random moments, typically while it is blocked and
 * the peer on the other worker hands it an item. */
static int x_canceller(void *arg)
{
    struct xchg *x = arg;
    unsigned seed = x->seed + 100;

    while (!x->finished) {
        if (x->cur && xrand(&seed) % 8 == 0)
            wharf_scope_cancel(x->cur);
        if (wharf_checkpoint() != 0)
            break;
    }
    return 0;
}

static int x_send_one(struct xchg *x, uintptr_t item)
{
    struct wharf_scope sc;
    int rc;

    wharf_scope_enter(&sc, x_deadline(x), 0);
    x->cur = &sc;
    rc = wharf_send_item(x->snd, (void *)item);
    x->cur = NULL;
    wharf_scope_exit(&sc, rc);
    if (rc == WHARF_ECANCELLED)
        x->cancels++;
    return rc;
}

/* Sends every item, retrying those whose send was cancelled. */
static int x_sender(void *arg)
{
    struct xchg *x = arg;
    int rc = 0;

    for (long i = x->first; i < x->first + x->n && rc == 0; i++) {
        while ((rc = x_send_one(x, (uintptr_t)i)) == WHARF_ECANCELLED)
            ;
    }
    x->send_rc = rc;
    x->finished = true;
    wharf_close(x->snd);
    done_signal();
    return 0;
}

static int x_receive_one(struct xchg *x, void **item)
{
    struct wharf_scope sc;
    int rc;

    wharf_scope_enter(&sc, x_deadline(x), 0);
    x->cur = &sc;
    rc = wharf_receive_item(x->rcv, item);
    x->cur = NULL;
    wharf_scope_exit(&sc, rc);
    if (rc == WHARF_ECANCELLED)
        x->cancels++;
    else if (rc == 0 && wharf_scope_cancel_called(&sc))
        x->late_items++;
    return rc;
}

static int x_receiver(void *arg)
{
    struct xchg *x = arg;
    void *item;
    int rc;

    while ((rc = x_receive_one(x, &item)) != WHARF_EOF) {
        if (rc == 0)
            tally_add(x->tally, item);
        else if (rc != WHARF_ECANCELLED)
            break;
    }
    x->recv_rc = rc == WHARF_EOF ? 0 : rc;
    x->finished = true;
    done_signal();
    return 0;
}

/* Sender on worker a, receiver on worker b, n items through one stream. */
static void exchange(long n, long buffer, double send_cancels, double recv_cancels)
{
    struct worker *a = start_worker("test-a"), *b = start_worker("test-b");
    struct xchg xs, xr;
    struct tally t;

    tally_init(&t, n);
    memset(&xs, 0, sizeof(xs));
    TU_ASSERT_RC(wharf_memstream_new(buffer, NULL, &xs.snd, &xs.rcv), 0);
    xs.n = n;
    xs.tally = &t;
    xr = xs;
    xs.cancel_odds = send_cancels;
    xs.seed = 1;
    xr.cancel_odds = recv_cancels;
    xr.seed = 2;
    TU_ASSERT_RC(worker_spawn(b, x_receiver, &xr), 0);
    TU_ASSERT_RC(worker_spawn(a, x_sender, &xs), 0);
    if (recv_cancels > 0)
        TU_ASSERT_RC(worker_spawn(b, x_canceller, &xr), 0);
    if (send_cancels > 0)
        TU_ASSERT_RC(worker_spawn(a, x_canceller, &xs), 0);
    ck_assert_msg(done_wait(2, 25), "the exchange did not finish");
    worker_stop(a);
    worker_stop(b);
    TU_ASSERT_RC(xs.send_rc, 0);
    TU_ASSERT_RC(xr.recv_rc, 0);
    if (send_cancels > 0)
        ck_assert_int_gt(xs.cancels, 0);
    if (recv_cancels > 0)
        ck_assert_int_gt(xr.cancels, 0);
    tally_check_all(&t);
    wharf_free(xs.snd);
    wharf_free(xs.rcv);
}

START_TEST(exchange_buffered) { exchange(1000000, 64, 0, 0); }
END_TEST

START_TEST(exchange_rendezvous) { exchange(100000, 0, 0, 0); }
END_TEST

START_TEST(exchange_unbounded) { exchange(1000000, WHARF_UNBOUNDED, 0, 0); }
END_TEST

/* A receiver on one worker is cancelled (deadlines passed or about to pass)
 * while a sender on the other hands it items: none may be lost. */
static long cancel_buffers[] = { 0, 1, 16 };
START_TEST(cancelled_receiver_loses_nothing)
{
    exchange(30000, cancel_buffers[_i], 0, 0.3);
}
END_TEST

/* Both sides cancelled at random: still every item exactly once. */
START_TEST(cancel_churn_both_sides)
{
    exchange(30000, cancel_buffers[_i], 0.3, 0.3);
}
END_TEST

/* ---- many to many: clones on both workers ----------------------------------------- */

START_TEST(many_to_many)
{
    enum { PER = 200000, NW = 2 };
    struct worker *w[NW];
    struct xchg xs[NW], xr[NW];
    struct wharf_stream *snd, *rcv;
    struct tally t;

    tally_init(&t, PER * NW);
    TU_ASSERT_RC(wharf_memstream_new(8, NULL, &snd, &rcv), 0);
    for (int i = 0; i < NW; i++) {
        memset(&xs[i], 0, sizeof(xs[i]));
        TU_ASSERT_RC(wharf_clone(snd, &xs[i].snd), 0);
        TU_ASSERT_RC(wharf_clone(rcv, &xs[i].rcv), 0);
        xs[i].first = (long)i * PER;
        xs[i].n = PER;
        xs[i].tally = &t;
        xr[i] = xs[i];
    }
    wharf_close(snd);
    wharf_close(rcv);
    for (int i = 0; i < NW; i++) {
        w[i] = start_worker("test-mm");
        TU_ASSERT_RC(worker_spawn(w[i], x_receiver, &xr[i]), 0);
        TU_ASSERT_RC(worker_spawn(w[i], x_sender, &xs[i]), 0);
    }
    ck_assert_msg(done_wait(2 * NW, 25), "the exchange did not finish");
    for (int i = 0; i < NW; i++) {
        worker_stop(w[i]);
        TU_ASSERT_RC(xs[i].send_rc, 0);
        TU_ASSERT_RC(xr[i].recv_rc, 0);
        wharf_free(xs[i].snd);
        wharf_free(xs[i].rcv);
    }
    tally_check_all(&t);
    wharf_free(snd);
    wharf_free(rcv);
}
END_TEST

/* ---- a plain thread feeding a worker ------------------------------------------------- */

START_TEST(thread_feeds_worker)
{
    enum { N = 100000 };
    struct worker *w = start_worker("test-feed");
    struct xchg xr;
    struct tally t;
    struct wharf_stream *snd;

    tally_init(&t, N);
    memset(&xr, 0, sizeof(xr));
    TU_ASSERT_RC(wharf_memstream_new(WHARF_UNBOUNDED, NULL, &snd, &xr.rcv), 0);
    xr.tally = &t;
    TU_ASSERT_RC(worker_spawn(w, x_receiver, &xr), 0);
    for (uintptr_t i = 0; i < N; i++)
        if (wharf_send_item_nowait(snd, (void *)i) != 0)
            ck_abort_msg("send_nowait %zu failed", (size_t)i);
    wharf_close(snd);
    ck_assert(done_wait(1, 25));
    worker_stop(w);
    TU_ASSERT_RC(xr.recv_rc, 0);
    tally_check_all(&t);
    wharf_free(snd);
    wharf_free(xr.rcv);
}
END_TEST

/* ---- bytes across workers ----------------------------------------------------------------- */

enum { BYTES_LEN = 1 << 20 };

struct bx {
    struct wharf_stream *s;
    unsigned char *data;
    size_t len;
    unsigned seed;
    int rc;
};

static int bx_sender(void *arg)
{
    struct bx *b = arg;
    size_t off = 0;
    int rc = 0;

    while (off < b->len && rc == 0) {
        size_t n = 1 + xrand(&b->seed) % 3000;

        if (n > b->len - off)
            n = b->len - off;
        rc = wharf_send(b->s, b->data + off, n);
        off += n;
    }
    b->rc = rc ? rc : wharf_send_eof(b->s);
    done_signal();
    return 0;
}

static int bx_receiver(void *arg)
{
    struct bx *b = arg;
    ssize_t n = 0;

    while (b->len < BYTES_LEN &&
           (n = wharf_receive(b->s, b->data + b->len, 1 + xrand(&b->seed) % 2000)) > 0)
        b->len += (size_t)n;
    if (n >= 0)
        n = wharf_receive(b->s, b->data, 1);    /* then the end */
    b->rc = n == WHARF_EOF ? 0 : (int)n;
    done_signal();
    return 0;
}

/* Random-sized sends read with random-sized receives on another worker:
 * the bytes arrive whole and in order, then the end. */
START_TEST(bytes_across_workers)
{
    struct worker *a = start_worker("test-a"), *b = start_worker("test-b");
    struct bx bs = { NULL, malloc(BYTES_LEN), BYTES_LEN, 3, 0 };
    struct bx br = { NULL, malloc(BYTES_LEN), 0, 4, 0 };

    for (size_t i = 0; i < BYTES_LEN; i++)
        bs.data[i] = (unsigned char)(i * 131 + (i >> 9));
    TU_ASSERT_RC(wharf_memstream_bytes_new(_i, &bs.s, &br.s), 0);
    TU_ASSERT_RC(worker_spawn(b, bx_receiver, &br), 0);
    TU_ASSERT_RC(worker_spawn(a, bx_sender, &bs), 0);
    ck_assert(done_wait(2, 25));
    worker_stop(a);
    worker_stop(b);
    TU_ASSERT_RC(bs.rc, 0);
    TU_ASSERT_RC(br.rc, 0);
    ck_assert_uint_eq(br.len, BYTES_LEN);
    ck_assert(memcmp(br.data, bs.data, BYTES_LEN) == 0);
    free(bs.data);
    free(br.data);
    wharf_free(bs.s);
    wharf_free(br.s);
}
END_TEST

/* ---- worker_stop ------------------------------------------------------------------------ */

struct blocked {
    struct wharf_stream *s;
    int rc;
    bool send;
};

static int blocked_task(void *arg)
{
    struct blocked *b = arg;
    void *item = NULL;

    b->rc = b->send ? wharf_send_item(b->s, (void *)"held") : wharf_receive_item(b->s, &item);
    done_signal();
    return b->rc;
}

static bool one_receiver_waits(const struct wharf_memstream_stats *st)
{
    return st->tasks_waiting_receive == 1;
}

static bool one_sender_waits(const struct wharf_memstream_stats *st)
{
    return st->tasks_waiting_send == 1;
}

/* A receiver blocked on worker a and a sender blocked on worker b, both for
 * ever; stopping each worker cancels its task, which withdraws. */
START_TEST(stop_cancels_blocked_tasks)
{
    struct worker *a = start_worker("test-a"), *b = start_worker("test-b");
    struct wharf_stream *s1, *r1, *s2, *r2;
    struct blocked br = { NULL, 1, false }, bs = { NULL, 1, true };
    struct wharf_memstream_stats st;
    void *item;

    TU_ASSERT_RC(wharf_memstream_new(0, NULL, &s1, &r1), 0);
    TU_ASSERT_RC(wharf_memstream_new(0, NULL, &s2, &r2), 0);
    br.s = r1;
    bs.s = s2;
    TU_ASSERT_RC(worker_spawn(a, blocked_task, &br), 0);
    TU_ASSERT_RC(worker_spawn(b, blocked_task, &bs), 0);
    ck_assert(stats_wait(r1, one_receiver_waits));
    ck_assert(stats_wait(s2, one_sender_waits));
    worker_stop(a);
    TU_ASSERT_RC(br.rc, WHARF_ECANCELLED);
    TU_ASSERT_RC(wharf_memstream_statistics(r1, &st), 0);
    ck_assert_uint_eq(st.tasks_waiting_receive, 0);
    TU_ASSERT_RC(wharf_send_item_nowait(s1, NULL), WHARF_EWOULDBLOCK);
    worker_stop(b);
    TU_ASSERT_RC(bs.rc, WHARF_ECANCELLED);
    TU_ASSERT_RC(wharf_memstream_statistics(s2, &st), 0);
    ck_assert_uint_eq(st.tasks_waiting_send, 0);
    TU_ASSERT_RC(wharf_receive_item_nowait(r2, &item), WHARF_EWOULDBLOCK);
    ck_assert_int_eq(done_count, 2);
    wharf_free(s1);
    wharf_free(r1);
    wharf_free(s2);
    wharf_free(r2);
}
END_TEST

/* A worker stopped while its receiver is in the middle of a busy exchange
 * with another worker: the sender on the other worker keeps its items
 * (WHARF_EBROKEN once the receive end is closed), nothing hangs. */
static int receive_then_close(void *arg)
{
    struct xchg *x = arg;
    void *item;
    int rc;

    while ((rc = wharf_receive_item(x->rcv, &item)) == 0)
        tally_add(x->tally, item);
    x->recv_rc = rc;
    wharf_close(x->rcv);
    done_signal();
    return 0;
}

START_TEST(stop_during_exchange)
{
    struct worker *a = start_worker("test-a"), *b = start_worker("test-b");
    struct xchg xs, xr;
    struct tally t;
    struct timespec pause = { 0, 20000000 };

    tally_init(&t, 100000000);
    memset(&xs, 0, sizeof(xs));
    TU_ASSERT_RC(wharf_memstream_new(_i, NULL, &xs.snd, &xs.rcv), 0);
    xs.n = t.n;
    xs.tally = &t;
    xr = xs;
    TU_ASSERT_RC(worker_spawn(b, receive_then_close, &xr), 0);
    TU_ASSERT_RC(worker_spawn(a, x_sender, &xs), 0);
    nanosleep(&pause, NULL);
    worker_stop(b);
    TU_ASSERT_RC(xr.recv_rc, WHARF_ECANCELLED);
    ck_assert(done_wait(2, 25));
    worker_stop(a);
    TU_ASSERT_RC(xs.send_rc, WHARF_EBROKEN);
    ck_assert_int_eq(t.dups, 0);
    ck_assert_int_gt(t.count, 0);
    free(t.bits);
    wharf_free(xs.snd);
    wharf_free(xs.rcv);
}
END_TEST

/* ---- a spawn without memory ------------------------------------------------------ */

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

static int fail_stacks;                 /* task stacks cannot be mapped */
static int fail_stacks_next;            /* ... the next so many cannot */

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if ((flags & MAP_STACK) && (__atomic_load_n(&fail_stacks, __ATOMIC_ACQUIRE) ||
                                __atomic_fetch_sub(&fail_stacks_next, 1, __ATOMIC_ACQ_REL) > 0)) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return __real_mmap(addr, len, prot, flags, fd, off);
}

static int started[8], nstarted;

static int signal_task(void *arg)
{
    pthread_mutex_lock(&done_mtx);
    if (nstarted < 8)
        started[nstarted++] = (int)(intptr_t)arg;
    pthread_mutex_unlock(&done_mtx);
    done_signal();
    return 0;
}

/* n tasks started so far, the last three with ids first, first + 1 and
 * first + 2, in that order. */
static void started_in_order(int n, int first)
{
    pthread_mutex_lock(&done_mtx);
    ck_assert_int_eq(nstarted, n);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(started[n - 3 + i], first + i);
    pthread_mutex_unlock(&done_mtx);
}

/* A task asked for from another thread while no stack can be had starts
 * once one can (its caller counts on it: a listener's worker, a reload's
 * swap), in the order asked, a request that came during the shortage
 * included; a worker stopped meanwhile drops the requests (ASan: nothing
 * leaks). */
START_TEST(spawn_without_memory_starts_later)
{
    struct worker *w = start_worker("test-nomem");
    struct timespec pause = { 0, 350000000 };

    __atomic_store_n(&fail_stacks, 1, __ATOMIC_RELEASE);
    TU_ASSERT_RC(worker_spawn(w, signal_task, (void *)1), 0);
    TU_ASSERT_RC(worker_spawn(w, signal_task, (void *)2), 0);
    nanosleep(&pause, NULL);
    TU_ASSERT_RC(worker_spawn(w, signal_task, (void *)3), 0);
    nanosleep(&pause, NULL);
    ck_assert_int_eq(done_count, 0);
    __atomic_store_n(&fail_stacks, 0, __ATOMIC_RELEASE);
    ck_assert(done_wait(3, 5));
    started_in_order(3, 1);
    worker_stop(w);
    /* a fresh worker: w keeps the two stacks for its next tasks */
    w = start_worker("test-nomem2");
    __atomic_store_n(&fail_stacks, 1, __ATOMIC_RELEASE);
    TU_ASSERT_RC(worker_spawn(w, signal_task, (void *)4), 0);
    TU_ASSERT_RC(worker_spawn(w, signal_task, (void *)5), 0);
    nanosleep(&pause, NULL);
    worker_stop(w);
    ck_assert_int_eq(done_count, 3);
    __atomic_store_n(&fail_stacks, 0, __ATOMIC_RELEASE);
    /* memory back while two wait: the third, asked for now, starts after them */
    w = start_worker("test-nomem3");
    __atomic_store_n(&fail_stacks_next, 2, __ATOMIC_RELEASE);
    TU_ASSERT_RC(worker_spawn(w, signal_task, (void *)6), 0);
    TU_ASSERT_RC(worker_spawn(w, signal_task, (void *)7), 0);
    TU_ASSERT_RC(worker_spawn(w, signal_task, (void *)8), 0);
    ck_assert(done_wait(6, 5));
    worker_stop(w);
    __atomic_store_n(&fail_stacks_next, 0, __ATOMIC_RELEASE);
    started_in_order(6, 6);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("worker");
    TCase *tc;

    tc = tcase_create("exchange");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, exchange_buffered);
    tcase_add_test(tc, exchange_rendezvous);
    tcase_add_test(tc, exchange_unbounded);
    tcase_add_test(tc, many_to_many);
    tcase_add_test(tc, thread_feeds_worker);
    tcase_add_loop_test(tc, bytes_across_workers, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancellation");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, cancelled_receiver_loses_nothing, 0, 3);
    tcase_add_loop_test(tc, cancel_churn_both_sides, 0, 3);
    suite_add_tcase(s, tc);

    tc = tcase_create("stop");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, stop_cancels_blocked_tasks);
    tcase_add_loop_test(tc, stop_during_exchange, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("memory");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, spawn_without_memory_starts_later);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
