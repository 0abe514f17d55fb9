/*
 * check_registry.c: the registry of named memory object streams
 * (lib/registry.c, wharf/memstream.h): names, clones in and out, a
 * registered stream outliving its publisher's handles, removal closing
 * it, the statistics without the registry's own clones, and the calls from
 * many threads at once (and an item passed between two workers through
 * clones the registry handed out).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "wharf-int.h"

/* A fresh object stream under name; the caller's handles are freed (the
 * registry keeps the stream open). */
static void publish_new(const char *name, long max)
{
    struct wharf_stream *s, *r;

    TU_ASSERT_RC(wharf_memstream_new(max, NULL, &s, &r), 0);
    TU_ASSERT_RC(wharf_registry_publish(name, s, r), 0);
    wharf_free(s);
    wharf_free(r);
}

static void stats_of(const char *name, struct wharf_memstream_stats *st)
{
    struct wharf_stream *r;

    TU_ASSERT_RC(wharf_registry_lookup(name, NULL, &r), 0);
    TU_ASSERT_RC(wharf_memstream_statistics(r, st), 0);
    wharf_free(r);
}

/* ---- names -------------------------------------------------------------------- */

START_TEST(names)
{
    static const char *const bad[] = {
        "", "plain", "/x", "p/", "p x/y", "p/y\n", "p/\x7f", "p\xc3\xa9/x", "p/\t",
    };
    static const char *const good[] = { "pubsub/default", "a.b-c_9/x y", "p/a/b", "p/\xc3\xa9t\xc3\xa9" };
    struct wharf_stream *s, *r;
    char longname[WHARF_REGISTRY_NAME_MAX + 2];

    TU_ASSERT_RC(wharf_memstream_new(1, NULL, &s, &r), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(wharf_registry_publish(bad[i], s, r) == WHARF_EINVAL, "accepted %s", bad[i]);
    TU_ASSERT_RC(wharf_registry_publish(NULL, s, r), WHARF_EINVAL);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        TU_ASSERT_RC(wharf_registry_publish(good[i], s, r), 0);
        TU_ASSERT_RC(wharf_registry_remove(good[i]), 0);
    }
    memset(longname, 'n', sizeof(longname));
    memcpy(longname, "p/", 2);
    longname[WHARF_REGISTRY_NAME_MAX] = '\0';           /* the longest allowed */
    TU_ASSERT_RC(wharf_registry_publish(longname, s, NULL), 0);
    TU_ASSERT_RC(wharf_registry_remove(longname), 0);
    longname[WHARF_REGISTRY_NAME_MAX] = 'n';
    longname[WHARF_REGISTRY_NAME_MAX + 1] = '\0';
    TU_ASSERT_RC(wharf_registry_publish(longname, s, NULL), WHARF_EINVAL);
    wharf_free(s);
    wharf_free(r);
}
END_TEST

/* ---- what can be published -------------------------------------------------------- */

START_TEST(ends)
{
    struct wharf_stream *s, *r, *bs, *br, *b, *got_s, *got_r;

    TU_ASSERT_RC(wharf_memstream_new(1, NULL, &s, &r), 0);
    TU_ASSERT_RC(wharf_registry_publish("t/x", NULL, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_registry_publish("t/x", r, NULL), WHARF_EINVAL);    /* swapped */
    TU_ASSERT_RC(wharf_registry_publish("t/x", NULL, s), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_memstream_bytes_new(1, &bs, &br), 0);
    b = wharf_buffered_new(br);                          /* not a memory stream */
    TU_ASSERT_RC(wharf_registry_publish("t/x", NULL, b), WHARF_EINVAL);
    wharf_free(b);
    TU_ASSERT_RC(wharf_registry_publish("t/bytes", bs, NULL), 0);  /* byte mode: a memory stream */
    wharf_free(bs);

    TU_ASSERT_RC(wharf_registry_publish("t/send", s, NULL), 0);
    TU_ASSERT_RC(wharf_registry_publish("t/send", s, NULL), -EEXIST);
    TU_ASSERT_RC(wharf_registry_lookup("t/send", &got_s, &got_r), WHARF_ENOTSUP);
    ck_assert_ptr_null(got_s);
    ck_assert_ptr_null(got_r);
    TU_ASSERT_RC(wharf_registry_lookup("t/send", NULL, NULL), 0);   /* exists */
    TU_ASSERT_RC(wharf_registry_lookup("t/none", NULL, NULL), -ENOENT);
    TU_ASSERT_RC(wharf_registry_lookup("t/none", &got_s, NULL), -ENOENT);
    ck_assert_ptr_null(got_s);
    TU_ASSERT_RC(wharf_registry_lookup(NULL, &got_s, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_registry_lookup("t/send", &got_s, NULL), 0);
    ck_assert_ptr_nonnull(got_s);
    ck_assert_ptr_ne(got_s, s);                          /* a clone of its own */
    wharf_free(got_s);

    wharf_close(r);
    TU_ASSERT_RC(wharf_registry_publish("t/closed", NULL, r), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_registry_lookup("t/closed", NULL, NULL), -ENOENT);

    TU_ASSERT_RC(wharf_registry_remove("t/send"), 0);
    TU_ASSERT_RC(wharf_registry_remove("t/send"), -ENOENT);
    TU_ASSERT_RC(wharf_registry_remove("t/bytes"), 0);
    TU_ASSERT_RC(wharf_registry_remove(NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_registry_publish("t/send", s, NULL), 0);     /* the name is free again */
    TU_ASSERT_RC(wharf_registry_remove("t/send"), 0);
    wharf_free(s);
    wharf_free(r);
}
END_TEST

/* ---- a registered stream lives on ------------------------------------------------- */

static int t_outlives(void *arg)
{
    struct wharf_stream *s, *r;
    void *item = NULL;

    (void)arg;
    publish_new("t/topic", 4);      /* the publisher's handles are gone */
    TU_ASSERT_RC(wharf_registry_lookup("t/topic", &s, NULL), 0);
    TU_ASSERT_RC(wharf_send_item(s, (void *)"one"), 0);     /* not EBROKEN */
    wharf_free(s);
    TU_ASSERT_RC(wharf_registry_lookup("t/topic", NULL, &r), 0);
    TU_ASSERT_RC(wharf_receive_item(r, &item), 0);
    ck_assert_str_eq(item, "one");
    TU_ASSERT_RC(wharf_receive_item_nowait(r, &item), WHARF_EWOULDBLOCK);   /* not EOF */

    /* removed: the registry's send clone was the last, so the end closes */
    TU_ASSERT_RC(wharf_registry_remove("t/topic"), 0);
    TU_ASSERT_RC(wharf_receive_item(r, &item), WHARF_EOF);
    wharf_free(r);
    return 0;
}
START_TEST(outlives) { TU_RUN(t_outlives, NULL); }
END_TEST

/* Removal of a stream whose ends users still hold changes nothing for them
 * but the registry's clones. */
static int t_remove_keeps_users(void *arg)
{
    struct wharf_stream *s, *r, *s2;
    void *item = NULL;

    (void)arg;
    TU_ASSERT_RC(wharf_memstream_new(2, NULL, &s, &r), 0);
    TU_ASSERT_RC(wharf_registry_publish("t/kept", s, r), 0);
    TU_ASSERT_RC(wharf_registry_lookup("t/kept", &s2, NULL), 0);
    TU_ASSERT_RC(wharf_registry_remove("t/kept"), 0);
    TU_ASSERT_RC(wharf_registry_lookup("t/kept", NULL, NULL), -ENOENT);
    TU_ASSERT_RC(wharf_send_item(s2, (void *)"two"), 0);
    TU_ASSERT_RC(wharf_receive_item(r, &item), 0);
    ck_assert_str_eq(item, "two");
    wharf_free(s2);
    wharf_free(s);
    TU_ASSERT_RC(wharf_receive_item(r, &item), WHARF_EOF);
    wharf_free(r);
    return 0;
}
START_TEST(remove_keeps_users) { TU_RUN(t_remove_keeps_users, NULL); }
END_TEST

/* ---- statistics ------------------------------------------------------------------- */

struct seen {
    char names[8][64];
    struct wharf_memstream_stats st[8];
    int n;
    int stop_after;                 /* return 7 after this many; 0: never */
    bool remove_inside;             /* the callback uses the registry */
};

static int collect(void *arg, const char *name, const struct wharf_memstream_stats *st)
{
    struct seen *s = arg;

    if (s->n < 8) {
        snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
        s->st[s->n] = *st;
    }
    s->n++;
    if (s->remove_inside)
        wharf_registry_remove(name);
    return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

static int t_statistics(void *arg)
{
    struct wharf_stream *s, *r, *s2, *r2, *r3;
    struct seen seen = { 0 };
    struct wharf_memstream_stats st;
    void *item;

    (void)arg;
    TU_ASSERT_RC(wharf_registry_statistics(NULL, NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_registry_statistics(collect, &seen), 0);
    ck_assert_int_eq(seen.n, 0);

    publish_new("zeta/a", WHARF_UNBOUNDED);
    publish_new("alpha/b", 0);
    TU_ASSERT_RC(wharf_memstream_new(3, NULL, &s, &r), 0);
    TU_ASSERT_RC(wharf_registry_publish("mid/c", s, r), 0);
    /* users: two send handles (s, s2) and three receive handles (r, r2, r3) */
    TU_ASSERT_RC(wharf_registry_lookup("mid/c", &s2, &r2), 0);
    TU_ASSERT_RC(wharf_registry_lookup("mid/c", NULL, &r3), 0);
    TU_ASSERT_RC(wharf_send_item(s, (void *)"x"), 0);
    TU_ASSERT_RC(wharf_send_item(s2, (void *)"y"), 0);

    TU_ASSERT_RC(wharf_registry_statistics(collect, &seen), 0);
    ck_assert_int_eq(seen.n, 3);
    ck_assert_str_eq(seen.names[0], "alpha/b");         /* byte order of names */
    ck_assert_str_eq(seen.names[1], "mid/c");
    ck_assert_str_eq(seen.names[2], "zeta/a");
    ck_assert_uint_eq(seen.st[0].open_send_streams, 0);     /* its publisher left */
    ck_assert_uint_eq(seen.st[0].open_receive_streams, 0);
    ck_assert_int_eq(seen.st[0].max_buffer_size, 0);
    ck_assert_int_eq(seen.st[2].max_buffer_size, WHARF_UNBOUNDED);
    ck_assert_uint_eq(seen.st[1].open_send_streams, 2);
    ck_assert_uint_eq(seen.st[1].open_receive_streams, 3);
    ck_assert_uint_eq(seen.st[1].current_buffer_used, 2);
    ck_assert_int_eq(seen.st[1].max_buffer_size, 3);
    ck_assert_uint_eq(seen.st[1].tasks_waiting_send, 0);
    ck_assert_uint_eq(seen.st[1].tasks_waiting_receive, 0);
    /* the stream's own figures count the registry's clones too */
    TU_ASSERT_RC(wharf_memstream_statistics(r, &st), 0);
    ck_assert_uint_eq(st.open_send_streams, 3);
    ck_assert_uint_eq(st.open_receive_streams, 4);
    stats_of("mid/c", &st);         /* its lookup clone is counted while it lives */
    ck_assert_uint_eq(st.open_receive_streams, 5);

    TU_ASSERT_RC(wharf_receive_item(r2, &item), 0);
    TU_ASSERT_RC(wharf_receive_item(r3, &item), 0);
    wharf_free(s2);
    wharf_free(r2);
    wharf_free(r3);

    /* fn's nonzero value stops the walk and is returned */
    memset(&seen, 0, sizeof(seen));
    seen.stop_after = 2;
    TU_ASSERT_RC(wharf_registry_statistics(collect, &seen), 7);
    ck_assert_int_eq(seen.n, 2);
    /* fn may use the registry: the walk is over a snapshot */
    memset(&seen, 0, sizeof(seen));
    seen.remove_inside = true;
    TU_ASSERT_RC(wharf_registry_statistics(collect, &seen), 0);
    ck_assert_int_eq(seen.n, 3);
    ck_assert_uint_eq(seen.st[1].open_send_streams, 1);
    ck_assert_uint_eq(seen.st[1].open_receive_streams, 1);
    TU_ASSERT_RC(wharf_registry_lookup("mid/c", NULL, NULL), -ENOENT);
    memset(&seen, 0, sizeof(seen));
    TU_ASSERT_RC(wharf_registry_statistics(collect, &seen), 0);
    ck_assert_int_eq(seen.n, 0);
    wharf_free(s);
    wharf_free(r);
    return 0;
}
START_TEST(statistics) { TU_RUN(t_statistics, NULL); }
END_TEST

/* A task blocked receiving on a looked-up clone shows in the figures. */
static int blocked_receiver(void *arg)
{
    struct wharf_stream *r = arg;
    void *item;

    return wharf_receive_item(r, &item) == WHARF_ECANCELLED ? 0 : -1;
}

static int t_statistics_waiting(void *arg)
{
    struct wharf_stream *r;
    struct wharf_group *tg = wharf_group_open();
    struct seen seen = { 0 };

    (void)arg;
    publish_new("t/wait", 1);
    TU_ASSERT_RC(wharf_registry_lookup("t/wait", NULL, &r), 0);
    TU_ASSERT_RC(wharf_group_spawn(tg, blocked_receiver, r), 0);
    TU_ASSERT_RC(wharf_checkpoint(), 0);
    TU_ASSERT_RC(wharf_registry_statistics(collect, &seen), 0);
    ck_assert_int_eq(seen.n, 1);
    ck_assert_uint_eq(seen.st[0].tasks_waiting_receive, 1);
    ck_assert_uint_eq(seen.st[0].open_receive_streams, 1);
    ck_assert_uint_eq(seen.st[0].open_send_streams, 0);
    wharf_group_cancel(tg);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    wharf_free(r);
    TU_ASSERT_RC(wharf_registry_remove("t/wait"), 0);
    return 0;
}
START_TEST(statistics_waiting) { TU_RUN(t_statistics_waiting, NULL); }
END_TEST

/* ---- threads ------------------------------------------------------------------------- */

#define NTHREADS 8
#define ROUNDS 2000

struct racer {
    pthread_t thread;
    int index;
    int published;                  /* of the shared name */
    int failures;                   /* calls that returned what they must not */
};

/* Each thread publishes, looks up and removes a name of its own, and
 * fights the others over a shared one: only one publish of it may succeed
 * while it is registered. */
static void *race(void *arg)
{
    struct racer *rc = arg;
    struct wharf_stream *s, *r, *got;
    char own[32];
    int n;

    snprintf(own, sizeof(own), "race/own-%d", rc->index);
    if (wharf_memstream_new(WHARF_UNBOUNDED, NULL, &s, &r) != 0)
        return NULL;
    for (int i = 0; i < ROUNDS; i++) {
        rc->failures += wharf_registry_publish(own, s, r) != 0;
        rc->failures += wharf_registry_lookup(own, &got, NULL) != 0;
        wharf_free(got);
        rc->failures += wharf_registry_remove(own) != 0;
        n = wharf_registry_publish("race/shared", s, r);
        if (n == 0)
            rc->published++;
        else
            rc->failures += n != -EEXIST;
        n = wharf_registry_lookup("race/shared", NULL, &got);
        rc->failures += n != 0 && n != -ENOENT;
        wharf_free(got);
        if (i % 3 == 0)
            wharf_registry_remove("race/shared");
    }
    wharf_free(s);
    wharf_free(r);
    return NULL;
}

static int count_only(void *arg, const char *name, const struct wharf_memstream_stats *st)
{
    (void)name;
    (void)st;
    ++*(int *)arg;
    return 0;
}

START_TEST(threads)
{
    struct racer racers[NTHREADS];
    int published = 0, left = 0;

    for (int i = 0; i < NTHREADS; i++) {
        racers[i] = (struct racer){ .index = i };
        ck_assert_int_eq(pthread_create(&racers[i].thread, NULL, race, &racers[i]), 0);
    }
    for (int i = 0; i < 200; i++)       /* the walk at the same time */
        ck_assert_int_ge(wharf_registry_statistics(count_only, &left), 0);
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(racers[i].thread, NULL);
        ck_assert_int_eq(racers[i].failures, 0);
        published += racers[i].published;
    }
    ck_assert_int_gt(published, 0);
    left = 0;
    TU_ASSERT_RC(wharf_registry_statistics(count_only, &left), 0);
    ck_assert_int_le(left, 1);                          /* at most the shared name */
    wharf_registry_remove("race/shared");
}
END_TEST

/* Two workers: a task on one sends through a clone the registry gave it,
 * a task on the other receives through another. */
static pthread_mutex_t got_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t got_cond = PTHREAD_COND_INITIALIZER;
static int got_count;
static long got_sum;

static int sender_task(void *arg)
{
    struct wharf_stream *s;

    (void)arg;
    if (wharf_registry_lookup("xw/topic", &s, NULL) != 0)
        return -1;
    for (long i = 1; i <= 100; i++)
        wharf_send_item(s, (void *)i);
    wharf_free(s);
    return 0;
}

static int receiver_task(void *arg)
{
    struct wharf_stream *r;
    void *item;
    long sum = 0;
    int n = 0;

    (void)arg;
    if (wharf_registry_lookup("xw/topic", NULL, &r) != 0)
        return -1;
    while (n < 100 && wharf_receive_item(r, &item) == 0) {
        sum += (long)item;
        n++;
    }
    wharf_free(r);
    pthread_mutex_lock(&got_mtx);
    got_count = n;
    got_sum = sum;
    pthread_cond_broadcast(&got_cond);
    pthread_mutex_unlock(&got_mtx);
    return 0;
}

START_TEST(across_workers)
{
    struct worker *a = worker_start("reg-a"), *b = worker_start("reg-b");
    struct timespec ts;

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    publish_new("xw/topic", 0);                         /* a rendezvous */
    TU_ASSERT_RC(worker_spawn(b, receiver_task, NULL), 0);
    TU_ASSERT_RC(worker_spawn(a, sender_task, NULL), 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&got_mtx);
    while (got_count == 0 && pthread_cond_timedwait(&got_cond, &got_mtx, &ts) == 0)
        ;
    pthread_mutex_unlock(&got_mtx);
    ck_assert_int_eq(got_count, 100);
    ck_assert_int_eq(got_sum, 5050);
    TU_ASSERT_RC(wharf_registry_remove("xw/topic"), 0);
    worker_stop(a);
    worker_stop(b);
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");

    tcase_add_test(tc, names);
    tcase_add_test(tc, ends);
    tcase_add_test(tc, outlives);
    tcase_add_test(tc, remove_keeps_users);
    tcase_add_test(tc, statistics);
    tcase_add_test(tc, statistics_waiting);
    tcase_add_test(tc, threads);
    tcase_add_test(tc, across_workers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(registry_suite());
}
