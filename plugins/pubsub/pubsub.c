/*
 * pubsub: in-process message passing over memory object streams (SPEC.md
 * section 5).
 *
 * Stream listeners (TCP, UNIX, TLS): every connection is a subscriber and a
 * publisher of the listener's topic. Each line it sends (up to
 * PUBSUB_MAX_LINE bytes before its '\n') is delivered, as the same line with
 * its '\n', to every other subscriber of the topic, in order. A longer line
 * ends the connection (WHARF_ENODELIM, counted in the listener's errors). The
 * peer's end of stream ends the connection: bytes after its last '\n' are
 * dropped, and so are lines queued for it and not written yet. Lines are
 * received into PUBSUB_SMALL_LINE bytes; only a longer one takes a buffer of
 * PUBSUB_MAX_LINE + 1 bytes, for that line alone.
 *
 * UDP listeners: every datagram is published as one line (a '\n' is added
 * unless it ends with one); nothing is sent back.
 *
 * Options: topic (a string, default "default"; "pubsub/TOPIC" must fit
 * WHARF_REGISTRY_NAME_MAX, no control characters); queue (an integer from 1
 * to 1000000, default 1024: the lines a subscriber may have waiting; the
 * topic's inbox takes the queue of the first listener that named it). Any
 * other option is a config error.
 *
 * A subscriber keeps up when it reads as fast as the topic's publishers
 * send, give or take `queue` lines plus what the kernel's socket buffers
 * hold: publishers are never slowed down, so one that cannot is dropped.
 *
 * How (the decided design, issue 7 item 3):
 *   - Topics are plugin-global (one per name per process, a mutex each) and
 *     live while an instance names them: every listener of every kind that
 *     names a topic shares it, on every worker. A topic owns an inbox, a
 *     memory object stream of `queue` items registered as "pubsub/TOPIC",
 *     so that the statistics report it under `streams`.
 *   - A subscriber is its own memory object stream of `queue` items (lines:
 *     refcounted buffers, released by the streams' item destructor); the
 *     topic holds its send end, the connection its receive end. The
 *     connection runs a group of two tasks: the reader (its host task)
 *     publishes what the peer sends, the writer sends what the queue gives.
 *   - Publishing never blocks: the line goes into the inbox with
 *     send_item_nowait, then, under the topic's mutex, the inbox is pumped
 *     empty and each line handed (send_item_nowait, one reference each) to
 *     every subscriber but its publisher. A full queue (WOULDBLOCK) makes
 *     that subscriber slow: the topic closes its send end, so the writer
 *     gets the lines queued before, then WHARF_EOF, on which it sends
 *     "ERR slow consumer\n" and the connection ends (each write is bounded
 *     by wharfd's idle_timeout).
 *
 * Figures (plugins.pubsub): each instance reports its own listener's share,
 * added up across listeners: published (lines its connections or datagrams
 * published), delivered (lines its subscribers wrote to their peer),
 * slow_consumers, subscribers (connected now). The topic-level figures
 * (the same four, over every listener of the topic) are under
 * topics.NAME, reported by one instance of the topic only (the newest), so
 * that the merge does not add them up twice. An instance's share starts at
 * 0 with each generation (a reload makes new instances); the topic's
 * figures last as long as the topic.
 *
 * The inbox is registered with both ends, so another plugin could send to
 * it through the registry: its items must then be pubsub's lines; nothing
 * else does so today.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wharf/plugin.h>
#include <wharf/memstream.h>

#define PUBSUB_DEFAULT_QUEUE 1024
#define PUBSUB_MAX_QUEUE 1000000
#define PUBSUB_MAX_LINE (64 * 1024)     /* bytes before the '\n' */
#define PUBSUB_DATAGRAM_MAX 65535
#define PUBSUB_PREFIX "pubsub/"

static const char slow_msg[] = "ERR slow consumer\n";

/* ---- lines: refcounted, shared by every queue they are in ---------------- */

struct line {
    atomic_long refs;
    size_t len;                 /* with the '\n' */
    char data[];
};

static struct line *line_new(const char *bytes, size_t n, bool add_nl)
{
    struct line *l = malloc(sizeof(*l) + n + 1);

    if (!l)
        return NULL;
    atomic_init(&l->refs, 1);
    memcpy(l->data, bytes, n);
    if (add_nl)
        l->data[n++] = '\n';
    l->len = n;
    return l;
}

static void line_ref(struct line *l)
{
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
}

static void line_unref(void *item)
{
    struct line *l = item;

    if (l && atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
        free(l);
}

/* ---- topics ---------------------------------------------------------------- */

struct counters {
    atomic_llong published, delivered, slow_consumers, subscribers;
};

struct pubsub;

struct sub {
    struct sub *next;
    struct wharf_stream *send;  /* the topic's end of the queue; NULL once slow */
    struct pubsub *inst;
};

struct topic {
    struct topic *next;         /* in `topics`, under topics_lock */
    int users;                  /* instances naming it, under topics_lock */
    char *name;                 /* "pubsub/NAME" */
    pthread_mutex_t mu;         /* the rest */
    struct wharf_stream *in_send, *in_recv;     /* the inbox */
    struct sub *subs;
    struct pubsub *insts;       /* newest first: the head reports the topic */
    struct counters c;
};

struct pubsub {
    struct pubsub *next;        /* in its topic's insts, under the topic's mu */
    struct topic *topic;
    long queue;
    struct counters c;
};

static pthread_mutex_t topics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct topic *topics;

static void topic_destroy(struct topic *t)
{
    wharf_registry_remove(t->name);
    wharf_free(t->in_send);
    wharf_free(t->in_recv);
    pthread_mutex_destroy(&t->mu);
    free(t->name);
    free(t);
}

/* The topic named name (found or made), with a use added; NULL with a
 * message in err. */
static struct topic *topic_get(const char *name, long queue,
                               struct wharf_plugin_error *err)
{
    struct topic *t;
    int rc;

    pthread_mutex_lock(&topics_lock);
    for (t = topics; t; t = t->next) {
        if (strcmp(t->name + strlen(PUBSUB_PREFIX), name) == 0) {
            t->users++;
            pthread_mutex_unlock(&topics_lock);
            return t;
        }
    }
    if (!(t = calloc(1, sizeof(*t))) ||
        !(t->name = malloc(strlen(PUBSUB_PREFIX) + strlen(name) + 1))) {
        free(t);
        pthread_mutex_unlock(&topics_lock);
        err->key[0] = err->message[0] = '\0';
        return NULL;
    }
    strcpy(t->name, PUBSUB_PREFIX);
    strcat(t->name, name);
    pthread_mutex_init(&t->mu, NULL);
    rc = wharf_memstream_new(queue, line_unref, &t->in_send, &t->in_recv);
    if (rc == 0 && (rc = wharf_registry_publish(t->name, t->in_send, t->in_recv)) < 0) {
        wharf_free(t->in_send);
        wharf_free(t->in_recv);
    }
    if (rc < 0) {
        pthread_mutex_destroy(&t->mu);
        free(t->name);
        free(t);
        pthread_mutex_unlock(&topics_lock);
        snprintf(err->key, sizeof(err->key), "topic");
        snprintf(err->message, sizeof(err->message),
                 "cannot make topic \"%s\": %s", name,
                 rc == -EEXIST ? "the stream name is taken by another plugin"
                               : rc == -ENOMEM ? "out of memory" : "not a valid stream name");
        return NULL;
    }
    t->users = 1;
    t->next = topics;
    topics = t;
    pthread_mutex_unlock(&topics_lock);
    return t;
}

static void topic_put(struct topic *t)
{
    struct topic **pp;

    pthread_mutex_lock(&topics_lock);
    if (--t->users > 0) {
        pthread_mutex_unlock(&topics_lock);
        return;
    }
    for (pp = &topics; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    pthread_mutex_unlock(&topics_lock);
    topic_destroy(t);
}

static void count(struct pubsub *ps, size_t off, long long n)
{
    atomic_fetch_add_explicit((atomic_llong *)((char *)&ps->c + off), n, memory_order_relaxed);
    atomic_fetch_add_explicit((atomic_llong *)((char *)&ps->topic->c + off), n,
                              memory_order_relaxed);
}
#define COUNT(ps, field, n) count((ps), offsetof(struct counters, field), (n))

/* Hands line to every subscriber but from; under t->mu. */
static void fan_out(struct topic *t, struct line *l, const struct sub *from)
{
    for (struct sub *s = t->subs; s; s = s->next) {
        int rc;

        if (s == from || !s->send)
            continue;
        line_ref(l);
        if ((rc = wharf_send_item_nowait(s->send, l)) == 0)
            continue;
        line_unref(l);
        /* full: slow; broken or closed: the connection is ending. Either
         * way it gets nothing more, and the lines it has, then EOF. */
        wharf_free(s->send);
        s->send = NULL;
        if (rc == WHARF_EWOULDBLOCK)
            COUNT(s->inst, slow_consumers, 1);
    }
}

/* Publishes l (taking the caller's reference); never blocks. */
static int publish(struct pubsub *ps, struct line *l, const struct sub *from)
{
    struct topic *t = ps->topic;
    void *item;
    int rc;

    pthread_mutex_lock(&t->mu);
    rc = wharf_send_item_nowait(t->in_send, l);
    if (rc < 0) {
        /* cannot happen while every publisher pumps under mu (the inbox
         * is empty here); never block a publisher: hand it out directly */
        fan_out(t, l, from);
        line_unref(l);
    }
    while (wharf_receive_item_nowait(t->in_recv, &item) == 0) {
        fan_out(t, item, from);
        line_unref(item);
    }
    pthread_mutex_unlock(&t->mu);
    COUNT(ps, published, 1);
    return 0;
}

/* ---- the plugin ------------------------------------------------------------- */

static void *pubsub_init(json_t *options, const struct wharf_plugin_env *env,
                         struct wharf_plugin_error *err)
{
    const char *topic = "default";
    json_int_t queue = PUBSUB_DEFAULT_QUEUE;
    struct pubsub *ps;
    const char *key;
    json_t *value;

    (void)env;
    json_object_foreach(options, key, value) {
        snprintf(err->key, sizeof(err->key), "%s", key);
        if (strcmp(key, "topic") == 0) {
            const char *s = json_string_value(value);
            bool ok = s && *s &&
                      strlen(PUBSUB_PREFIX) + strlen(s) <= WHARF_REGISTRY_NAME_MAX;

            for (const char *p = s; ok && *p; p++)
                ok = (unsigned char)*p >= 0x20 && *p != 0x7f;
            if (!ok) {
                snprintf(err->message, sizeof(err->message),
                         "topic must be a non-empty string of at most %d bytes "
                         "without control characters",
                         (int)(WHARF_REGISTRY_NAME_MAX - strlen(PUBSUB_PREFIX)));
                return NULL;
            }
            topic = s;
        } else if (strcmp(key, "queue") == 0) {
            if (!json_is_integer(value) || json_integer_value(value) < 1 ||
                json_integer_value(value) > PUBSUB_MAX_QUEUE) {
                snprintf(err->message, sizeof(err->message),
                         "queue must be an integer from 1 to %d", PUBSUB_MAX_QUEUE);
                return NULL;
            }
            queue = json_integer_value(value);
        } else {
            snprintf(err->message, sizeof(err->message),
                     "unknown option \"%s\" (pubsub takes topic and queue)", key);
            return NULL;
        }
    }
    err->key[0] = '\0';
    if (!(ps = calloc(1, sizeof(*ps)))) {
        err->message[0] = '\0';
        return NULL;
    }
    ps->queue = (long)queue;
    if (!(ps->topic = topic_get(topic, ps->queue, err))) {
        free(ps);
        return NULL;
    }
    pthread_mutex_lock(&ps->topic->mu);
    ps->next = ps->topic->insts;
    ps->topic->insts = ps;
    pthread_mutex_unlock(&ps->topic->mu);
    return ps;
}

static void pubsub_fini(void *instance)
{
    struct pubsub *ps = instance;
    struct topic *t = ps->topic;

    pthread_mutex_lock(&t->mu);
    for (struct pubsub **pp = &t->insts; *pp; pp = &(*pp)->next) {
        if (*pp == ps) {
            *pp = ps->next;
            break;
        }
    }
    pthread_mutex_unlock(&t->mu);
    topic_put(t);
    free(ps);
}

/* One connection. */
struct conn {
    struct pubsub *ps;
    struct wharf_stream *stream;
    struct wharf_stream *queue;     /* receive end */
    struct wharf_group *group;
    struct sub sub;
};

/* Sends what the queue gives. Lines already waiting go out together, up to
 * PUBSUB_BATCH bytes a send (one system call, one TLS record, rather than
 * one per line): a writer that sent line by line would fall behind
 * publishers that read many lines per call. The batch buffer is taken
 * only while lines wait, so an idle subscriber holds none. */
#define PUBSUB_BATCH (64 * 1024)

static int writer(void *arg)
{
    struct conn *c = arg;
    struct line *next = NULL;   /* taken from the queue, not sent yet */
    char *batch = NULL;
    void *item;
    int rc;

    for (;;) {
        struct line *l = next;
        size_t len, n;

        next = NULL;
        if (!l) {
            rc = wharf_receive_item(c->queue, &item);
            if (rc == WHARF_EOF) {
                /* the topic let go of us: slow */
                rc = wharf_send(c->stream, slow_msg, sizeof(slow_msg) - 1);
                break;
            }
            if (rc < 0)
                break;
            l = item;
        }
        if (l->len >= PUBSUB_BATCH || wharf_receive_item_nowait(c->queue, &item) < 0) {
            rc = wharf_send(c->stream, l->data, l->len);
            line_unref(l);
            if (rc < 0)
                break;
            COUNT(c->ps, delivered, 1);
            continue;
        }
        if (!batch && !(batch = malloc(PUBSUB_BATCH))) {
            line_unref(l);
            line_unref(item);
            rc = -ENOMEM;
            break;
        }
        memcpy(batch, l->data, l->len);
        len = l->len;
        n = 1;
        line_unref(l);
        for (l = item; l; l = wharf_receive_item_nowait(c->queue, &item) == 0 ? item : NULL) {
            if (len + l->len > PUBSUB_BATCH) {
                next = l;
                break;
            }
            memcpy(batch + len, l->data, l->len);
            len += l->len;
            n++;
            line_unref(l);
        }
        rc = wharf_send(c->stream, batch, len);
        if (rc < 0)
            break;
        COUNT(c->ps, delivered, (long long)n);
        if (!next) {
            free(batch);
            batch = NULL;
        }
    }
    line_unref(next);
    free(batch);
    if (rc == WHARF_ECANCELLED)
        return rc;
    /* done (slow) or the peer is gone: the connection ends */
    wharf_group_cancel(c->group);
    return rc == WHARF_EBROKEN || rc == WHARF_ECLOSED ? 0 : rc;
}

/* Publishes what the peer sends, line by line. Lines are received into a
 * small buffer; a line longer than that (its bytes stay buffered on
 * WHARF_ENODELIM) is received again into one of PUBSUB_MAX_LINE + 1 bytes,
 * taken for that line only, so that an idle connection holds little. */
#define PUBSUB_SMALL_LINE 2048

static int reader(struct conn *c)
{
    char *small = malloc(PUBSUB_SMALL_LINE), *big = NULL;
    ssize_t n;
    int rc = 0;

    if (!small)
        return -ENOMEM;
    for (;;) {
        const char *buf = small;
        struct line *l;

        n = wharf_receive_until(c->stream, "\n", 1, small, PUBSUB_SMALL_LINE);
        if (n == WHARF_ENODELIM) {
            if (!(big = malloc(PUBSUB_MAX_LINE + 1))) {
                rc = -ENOMEM;
                break;
            }
            n = wharf_receive_until(c->stream, "\n", 1, big, PUBSUB_MAX_LINE + 1);
            if (n > PUBSUB_MAX_LINE)
                n = WHARF_ENODELIM;
            buf = big;
        }
        if (n < 0) {
            rc = (n == WHARF_EOF || n == WHARF_EINCOMPLETE || n == WHARF_EBROKEN) ? 0 : (int)n;
            break;
        }
        l = line_new(buf, (size_t)n, true);
        free(big);
        big = NULL;
        if (!l) {
            rc = -ENOMEM;
            break;
        }
        publish(c->ps, l, &c->sub);
        /* A checkpoint per line: a peer that sends fast keeps its socket
         * readable, and without it the reader would run on and on while
         * the writers of this worker, which would drain the subscribers'
         * queues, wait their turn (and their queues overflow). */
        if ((rc = wharf_checkpoint()) < 0)
            break;
    }
    free(big);
    free(small);
    return rc;
}

static int pubsub_serve(void *instance, struct wharf_stream *stream)
{
    struct pubsub *ps = instance;
    struct topic *t = ps->topic;
    struct conn c = { .ps = ps, .stream = stream, .sub.inst = ps };
    int rc;

    if ((rc = wharf_memstream_new(ps->queue, line_unref, &c.sub.send, &c.queue)) < 0)
        return rc;
    pthread_mutex_lock(&t->mu);
    c.sub.next = t->subs;
    t->subs = &c.sub;
    pthread_mutex_unlock(&t->mu);
    COUNT(ps, subscribers, 1);

    if (!(c.group = wharf_group_open())) {
        rc = -ENOMEM;
    } else {
        rc = wharf_group_spawn(c.group, writer, &c);
        if (rc == 0)
            rc = reader(&c);
        if (rc == 0)
            wharf_group_cancel(c.group);        /* the peer finished: stop writing */
        rc = wharf_group_close(c.group, rc);
    }

    pthread_mutex_lock(&t->mu);
    for (struct sub **pp = &t->subs; *pp; pp = &(*pp)->next) {
        if (*pp == &c.sub) {
            *pp = c.sub.next;
            break;
        }
    }
    wharf_free(c.sub.send);
    pthread_mutex_unlock(&t->mu);
    wharf_free(c.queue);
    COUNT(ps, subscribers, -1);
    return rc;
}

static int pubsub_serve_datagrams(void *instance, struct wharf_stream *socket)
{
    struct pubsub *ps = instance;
    char *buf = malloc(PUBSUB_DATAGRAM_MAX);
    ssize_t n;
    int rc = 0;

    if (!buf)
        return -ENOMEM;
    for (;;) {
        struct line *l;

        n = wharf_receive_from(socket, buf, PUBSUB_DATAGRAM_MAX, NULL, NULL);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        l = line_new(buf, (size_t)n, n == 0 || buf[n - 1] != '\n');
        if (!l)
            continue;           /* dropped, as UDP may */
        publish(ps, l, NULL);
    }
    free(buf);
    return rc;
}

static int put(json_t *o, const char *k, long long v)
{
    return json_object_set_new(o, k, json_integer(v));
}

static int counters_json(json_t *o, struct counters *c)
{
    if (put(o, "published", atomic_load(&c->published)) < 0 ||
        put(o, "delivered", atomic_load(&c->delivered)) < 0 ||
        put(o, "slow_consumers", atomic_load(&c->slow_consumers)) < 0 ||
        put(o, "subscribers", atomic_load(&c->subscribers)) < 0)
        return -ENOMEM;
    return 0;
}

static int pubsub_stats(void *instance, json_t *out)
{
    struct pubsub *ps = instance;
    struct topic *t = ps->topic;
    bool reporter;
    json_t *topics_o, *one;

    if (counters_json(out, &ps->c) < 0)
        return -ENOMEM;
    pthread_mutex_lock(&t->mu);
    reporter = t->insts == ps;
    pthread_mutex_unlock(&t->mu);
    if (!reporter)
        return 0;
    if (!(topics_o = json_object()) || json_object_set_new(out, "topics", topics_o) < 0 ||
        !(one = json_object()) ||
        json_object_set_new(topics_o, t->name + strlen(PUBSUB_PREFIX), one) < 0)
        return -ENOMEM;
    return counters_json(one, &t->c);
}

const struct wharf_plugin wharf_plugin = {
    WHARF_PLUGIN_HEAD("pubsub"),
    .init = pubsub_init,
    .handle_stream = pubsub_serve,
    .handle_datagrams = pubsub_serve_datagrams,
    .stats = pubsub_stats,
    .fini = pubsub_fini,
};
