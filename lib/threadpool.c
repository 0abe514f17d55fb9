/*
 * threadpool.c: a small pool of threads for blocking work (file I/O, name
 * resolution) so that no worker's event loop ever blocks. A task hands a
 * job over and suspends, uncancellably, until a pool thread has run it and
 * woken the task. Threads are started on demand (at most POOL_MAX) and end
 * after POOL_IDLE seconds without work.
 * Not for: anything that could run on the loop instead.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wharf-int.h"

#define POOL_MAX 4
#define POOL_IDLE 5

struct pool_job {
    struct pool_job *next;
    int (*fn)(void *);
    void *arg;
    struct task *task;
    int rc;
    bool done;
};

static pthread_mutex_t pool_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static struct pool_job *pool_head, *pool_tail;
static int pool_threads, pool_idle;

static struct pool_job *pool_take(void)
{
    struct pool_job *j = pool_head;

    if (j) {
        pool_head = j->next;
        if (!pool_head)
            pool_tail = NULL;
    }
    return j;
}

static void *pool_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool_mtx);
    for (;;) {
        struct pool_job *j = pool_take();

        if (!j) {
            struct timespec ts;
            int r;

            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += POOL_IDLE;
            pool_idle++;
            r = pthread_cond_timedwait(&pool_cond, &pool_mtx, &ts);
            pool_idle--;
            if (r != 0 && !pool_head)
                break;
            continue;
        }
        pthread_mutex_unlock(&pool_mtx);
        int rc = j->fn(j->arg);
        pthread_mutex_lock(&pool_mtx);
        /* set done and take the wake's reference under the lock the task
         * reads done with: the task cannot finish before the wake is queued */
        j->rc = rc;
        j->done = true;
        task_wake_any(j->task);
    }
    pool_threads--;
    pthread_mutex_unlock(&pool_mtx);
    return NULL;
}

/* Queues j and makes sure a thread will take it. False when no thread
 * could be started at all (j is then not queued). Under pool_mtx. */
static bool pool_submit(struct pool_job *j)
{
    if (pool_tail)
        pool_tail->next = j;
    else
        pool_head = j;
    pool_tail = j;
    if (pool_idle == 0 && pool_threads < POOL_MAX) {
        pthread_t th;
        pthread_attr_t a;

        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &a, pool_main, NULL) == 0)
            pool_threads++;
        pthread_attr_destroy(&a);
    }
    if (pool_threads == 0) {
        pool_take();
        return false;
    }
    pthread_cond_signal(&pool_cond);
    return true;
}

static void pool_wait(struct pool_job *j)
{
    bool done;

    for (;;) {
        pthread_mutex_lock(&pool_mtx);
        done = j->done;
        pthread_mutex_unlock(&pool_mtx);
        if (done)
            return;
        task_block_uncancellable();
    }
}

int threadpool_run(int (*fn)(void *), void *arg)
{
    struct task *t = task_current();
    struct pool_job j;
    bool queued;

    if (!t)
        return fn(arg);
    memset(&j, 0, sizeof(j));
    j.fn = fn;
    j.arg = arg;
    j.task = t;
    pthread_mutex_lock(&pool_mtx);
    queued = pool_submit(&j);
    pthread_mutex_unlock(&pool_mtx);
    if (!queued)
        return fn(arg);     /* no thread could be started: here, rather than never */
    pool_wait(&j);
    return j.rc;
}

void threadpool_shutdown(void)
{
    pthread_mutex_lock(&pool_mtx);
    pthread_cond_broadcast(&pool_cond);
    pthread_mutex_unlock(&pool_mtx);
}
