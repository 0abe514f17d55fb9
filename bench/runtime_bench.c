/*
 * runtime_bench.c: figures for the runtime, printed one per line as
 * "name: value unit (detail)" so that bench/runtime can put them beside the
 * anchors (AnyIO, Go) measured in the same run. Not a test: it asserts
 * nothing but the correctness of what it moves.
 *
 *   runtime_bench [scale]     scale (default 1.0) multiplies every count
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wharf/wharf.h>
#include "wharf-int.h"

static double scale = 1.0;

static long scaled(long n)
{
    long v = (long)((double)n * scale);

    return v < 1 ? 1 : v;
}

/* ---- raw context switch (ctx.h), no scheduler ---------------------------- */

static struct ctx raw_main, raw_other;
static long raw_left;

static void raw_entry(void *arg)
{
    (void)arg;
    for (;;)
        ctx_switch(&raw_other, &raw_main);
}

static void bench_raw_switch(void)
{
    struct stack_cache c;
    struct stack st;
    long n = scaled(20000000);
    double t0;

    stack_cache_init(&c, WHARF_DEFAULT_STACK);
    if (stack_get(&c, &st) != 0)
        return;
    ctx_make(&raw_other, st.lo, st.hi, raw_entry, NULL);
    t0 = wharf_clock();
    for (raw_left = n; raw_left > 0; raw_left--)
        ctx_switch(&raw_main, &raw_other);
    double dt = wharf_clock() - t0;
    printf("raw context switch: %.1f ns (%ld round trips, 2 switches each)\n",
           dt / (double)n / 2 * 1e9, n);
    stack_put(&c, &st);
    stack_cache_purge(&c);
}

/* ---- task switch through the scheduler (checkpoint ping-pong) ------------ */

static long yields_left;

static int yielder(void *arg)
{
    (void)arg;
    while (yields_left-- > 0)
        wharf_checkpoint();
    return 0;
}

static int bench_task_switch(void *arg)
{
    long n = scaled(10000000);
    struct wharf_group *g = wharf_group_open();
    double t0;

    (void)arg;
    yields_left = n;
    t0 = wharf_clock();
    wharf_group_spawn(g, yielder, NULL);
    wharf_group_spawn(g, yielder, NULL);
    wharf_group_close(g, 0);
    double dt = wharf_clock() - t0;
    printf("task switch: %.1f ns (%ld checkpoints by two tasks)\n", dt / (double)n * 1e9, n);
    return 0;
}

/* ---- memory object stream ping-pong --------------------------------------- */

struct pingpong {
    struct wharf_stream *a_tx, *a_rx, *b_tx, *b_rx;
    long n;
    pthread_mutex_t mtx;
    pthread_cond_t cond;
    int done;
};

static int pp_echo(void *arg)
{
    struct pingpong *pp = arg;
    void *item;

    while (wharf_receive_item(pp->a_rx, &item) == 0)
        if (wharf_send_item(pp->b_tx, item) != 0)
            break;
    wharf_close(pp->b_tx);
    return 0;
}

static int pp_client(struct pingpong *pp)
{
    void *item;

    for (long i = 0; i < pp->n; i++) {
        if (wharf_send_item(pp->a_tx, (void *)(i + 1)) != 0 ||
            wharf_receive_item(pp->b_rx, &item) != 0 || item != (void *)(i + 1)) {
            fprintf(stderr, "ping-pong: lost or reordered item at %ld\n", i);
            return -EIO;
        }
    }
    wharf_close(pp->a_tx);
    return 0;
}

static int pp_new(struct pingpong *pp, long n)
{
    memset(pp, 0, sizeof(*pp));
    pp->n = n;
    pthread_mutex_init(&pp->mtx, NULL);
    pthread_cond_init(&pp->cond, NULL);
    if (wharf_memstream_new(0, NULL, &pp->a_tx, &pp->a_rx) != 0 ||
        wharf_memstream_new(0, NULL, &pp->b_tx, &pp->b_rx) != 0)
        return -ENOMEM;
    return 0;
}

static void pp_free(struct pingpong *pp)
{
    wharf_free(pp->a_tx);
    wharf_free(pp->a_rx);
    wharf_free(pp->b_tx);
    wharf_free(pp->b_rx);
    pthread_mutex_destroy(&pp->mtx);
    pthread_cond_destroy(&pp->cond);
}

static int client_task(void *arg)
{
    return pp_client(arg);
}

static int bench_pingpong_one(void *arg)
{
    struct pingpong pp;
    struct wharf_group *g;
    double t0, dt;

    (void)arg;
    if (pp_new(&pp, scaled(5000000)) != 0)
        return -ENOMEM;
    g = wharf_group_open();
    t0 = wharf_clock();
    wharf_group_spawn(g, pp_echo, &pp);
    wharf_group_spawn(g, client_task, &pp);
    int rc = wharf_group_close(g, 0);
    dt = wharf_clock() - t0;
    printf("memstream pingpong one worker: %.0f round trips/s (%.0f ns each, buffer 0, %ld round trips%s)\n",
           (double)pp.n / dt, dt / (double)pp.n * 1e9, pp.n, rc ? ", FAILED" : "");
    pp_free(&pp);
    return rc;
}

/* Each side runs as a task on its own worker thread; the main thread waits. */
static void pp_mark_done(struct pingpong *pp)
{
    pthread_mutex_lock(&pp->mtx);
    pp->done++;
    pthread_cond_signal(&pp->cond);
    pthread_mutex_unlock(&pp->mtx);
}

static int pp_echo_worker(void *arg)
{
    pp_echo(arg);
    pp_mark_done(arg);
    return 0;
}

static int pp_client_worker(void *arg)
{
    pp_client(arg);
    pp_mark_done(arg);
    return 0;
}

static void bench_pingpong_two(void)
{
    struct pingpong pp;
    struct worker *w1, *w2;
    double t0, dt;

    if (pp_new(&pp, scaled(300000)) != 0)
        return;
    w1 = worker_start("bench-1");
    w2 = worker_start("bench-2");
    if (!w1 || !w2) {
        fprintf(stderr, "cannot start workers\n");
        exit(1);
    }
    t0 = wharf_clock();
    worker_spawn(w1, pp_echo_worker, &pp);
    worker_spawn(w2, pp_client_worker, &pp);
    pthread_mutex_lock(&pp.mtx);
    while (pp.done < 2)
        pthread_cond_wait(&pp.cond, &pp.mtx);
    pthread_mutex_unlock(&pp.mtx);
    dt = wharf_clock() - t0;
    printf("memstream pingpong two workers: %.0f round trips/s (%.0f ns each, buffer 0, %ld round trips)\n",
           (double)pp.n / dt, dt / (double)pp.n * 1e9, pp.n);
    worker_stop(w1);
    worker_stop(w2);
    pp_free(&pp);
}

/* ---- spawn + join ------------------------------------------------------------- */

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static int bench_spawn(void *arg)
{
    long n = scaled(2000000), batch = 1000;
    double t0 = wharf_clock();

    (void)arg;
    for (long done = 0; done < n; done += batch) {
        struct wharf_group *g = wharf_group_open();

        for (long i = 0; i < batch; i++)
            wharf_group_spawn(g, nothing, NULL);
        wharf_group_close(g, 0);
    }
    double dt = wharf_clock() - t0;
    printf("task spawn+join: %.0f tasks/s (%.0f ns each, groups of %ld)\n",
           (double)n / dt, dt / (double)n * 1e9, batch);
    return 0;
}

/* ---- fresh stacks with and without guard pages; RSS per blocked task ------- */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;

    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int block_forever(void *arg)
{
    volatile char touch[2048];

    (void)arg;
    touch[0] = 1;       /* a handler's typical first frames */
    (void)touch[0];
    return wharf_sleep(WHARF_FOREVER);
}

static int bench_fresh_stacks(void *arg)
{
    long n = scaled(10000);
    long rss0 = rss_kib();
    struct wharf_group *g = wharf_group_open();
    double t0 = wharf_clock();

    for (long i = 0; i < n; i++)
        wharf_group_spawn(g, block_forever, NULL);
    wharf_wait_all_tasks_blocked();
    double dt = wharf_clock() - t0;
    long rss1 = rss_kib();
    printf("fresh stacks %s: %.0f ns per task to spawn and block, %.1f KiB RSS per blocked task (%ld tasks)\n",
           (const char *)arg, dt / (double)n * 1e9, (double)(rss1 - rss0) / (double)n, n);
    wharf_group_cancel(g);
    wharf_group_close(g, 0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        scale = atof(argv[1]);
    if (scale <= 0)
        scale = 1.0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("wharf %s runtime benchmark (scale %.2f, %ld CPUs)\n", WHARF_VERSION, scale,
           sysconf(_SC_NPROCESSORS_ONLN));
    bench_raw_switch();
    wharf_run(bench_task_switch, NULL);
    wharf_run(bench_pingpong_one, NULL);
    bench_pingpong_two();
    wharf_run(bench_spawn, NULL);
    setenv("WHARF_STACK_GUARD", "1", 1);
    wharf_run(bench_fresh_stacks, "with guard pages");
    setenv("WHARF_STACK_GUARD", "0", 1);
    wharf_run(bench_fresh_stacks, "canary only");
    return 0;
}
