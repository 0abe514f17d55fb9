/*
 * testkit.c: the plugin author's test kit (wharf/testkit.h): a plugin's
 * handler served over an in-memory connection inside a unit test, the way
 * wharfd serves it over a socket, and the client's side of the dialogue.
 * Written on the public API only, like the tests that use it; built into
 * libwharf-testkit.a, beside the runtime, and nowhere else.
 * Not for: wharfd, which serves handlers in src/conn.c (with the idle
 * clock, the lingering close and the counters this kit leaves out).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <wharf/testkit.h>

struct wharf_testkit_conn {
    const struct wharf_plugin *tc_plugin;
    void *tc_instance;
    struct wharf_stream *tc_client;     /* buffered, the test's */
    struct wharf_stream *tc_server;     /* buffered, as wharfd hands it */
    struct wharf_group *tc_group;       /* hosts the handler's task */
    int tc_rc;                          /* what handle_stream returned */
};

/* ---- instances -------------------------------------------------------------- */

static void *tk_reject(struct wharf_plugin_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void *tk_reject(struct wharf_plugin_error *err, const char *fmt, ...)
{
    va_list ap;

    err->key[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return NULL;
}

void *wharf_testkit_init(const struct wharf_plugin *p, const char *options,
                         const struct wharf_plugin_env *env,
                         struct wharf_plugin_error *err)
{
    static const struct wharf_plugin_env test_env = {
        ".", "test", WHARF_LISTENER_STREAM, NULL, NULL
    };
    struct wharf_plugin_error scratch;
    json_error_t jerr;
    json_t *json;
    void *instance;

    if (!err)
        err = &scratch;
    memset(err, 0, sizeof(*err));
    if (!p || !p->init)
        return tk_reject(err, "wharf_testkit_init: %s", p ? "the plugin has no init" : "no plugin");
    /* libconfig, which wharfd reads the options from, refuses a setting
     * given twice: so does the kit */
    if (!(json = json_loads(options ? options : "{}", JSON_REJECT_DUPLICATES, &jerr)))
        return tk_reject(err, "wharf_testkit_init: options, line %d, column %d: %s",
                         jerr.line, jerr.column, jerr.text);
    if (!json_is_object(json)) {
        json_decref(json);
        return tk_reject(err, "wharf_testkit_init: options: not a JSON object");
    }
    instance = p->init(json, env ? env : &test_env, err);
    json_decref(json);
    return instance;
}

void wharf_testkit_fini(const struct wharf_plugin *p, void *instance)
{
    if (p && p->fini && instance)
        p->fini(instance);
}

/* ---- connections ------------------------------------------------------------ */

/* wharfd's part: serve, then close the stream; a failure is the handler's
 * result, not the group's (it would cancel the test's task). */
static int tk_serve(void *arg)
{
    struct wharf_testkit_conn *c = arg;

    c->tc_rc = c->tc_plugin->handle_stream(c->tc_instance, c->tc_server);
    wharf_close(c->tc_server);          /* the client receives WHARF_EOF */
    return 0;
}

static void tk_conn_free(struct wharf_testkit_conn *c)
{
    wharf_free(c->tc_server);
    wharf_free(c->tc_client);
    free(c);
}

int wharf_testkit_open(const struct wharf_plugin *p, void *instance,
                       long max_chunks, struct wharf_testkit_conn **conn)
{
    struct wharf_stream *a = NULL, *b = NULL;
    struct wharf_testkit_conn *c;
    int rc;

    if (conn)
        *conn = NULL;
    if (!conn || !p || !p->handle_stream || max_chunks < 0 || !wharf_in_task())
        return WHARF_EINVAL;
    if (!(c = calloc(1, sizeof(*c))))
        return -ENOMEM;
    c->tc_plugin = p;
    c->tc_instance = instance;
    c->tc_rc = WHARF_ECANCELLED;        /* until the handler returns something */
    if ((rc = wharf_memstream_pair(max_chunks, &a, &b)) < 0)
        goto fail;
    rc = -ENOMEM;
    if (!(c->tc_client = wharf_buffered_new(a)))
        goto fail;
    a = NULL;
    if (!(c->tc_server = wharf_buffered_new(b)))
        goto fail;
    b = NULL;
    if (!(c->tc_group = wharf_group_open()))
        goto fail;
    if ((rc = wharf_group_spawn(c->tc_group, tk_serve, c)) < 0) {
        wharf_group_close(c->tc_group, 0);
        goto fail;
    }
    *conn = c;
    return 0;
fail:
    wharf_free(a);
    wharf_free(b);
    tk_conn_free(c);
    return rc;
}

struct wharf_stream *wharf_testkit_client(const struct wharf_testkit_conn *conn)
{
    return conn ? conn->tc_client : NULL;
}

int wharf_testkit_close(struct wharf_testkit_conn *conn)
{
    int rc;

    if (!conn)
        return WHARF_EINVAL;
    wharf_close(conn->tc_client);       /* a handler still reading sees WHARF_EOF */
    wharf_group_close(conn->tc_group, 0);
    rc = conn->tc_rc;
    tk_conn_free(conn);
    return rc;
}

/* ---- the client's side ------------------------------------------------------ */

int wharf_testkit_send_all(struct wharf_stream *s, const char *text, unsigned flags)
{
    int rc;

    if (!s || !text)
        return WHARF_EINVAL;
    if (*text && (rc = wharf_send(s, text, strlen(text))) < 0)
        return rc;
    return flags & WHARF_TESTKIT_EOF ? wharf_send_eof(s) : 0;
}

ssize_t wharf_testkit_receive_all(struct wharf_stream *s, char *buf, size_t size)
{
    size_t len = 0;
    ssize_t n;
    char extra;

    if (!s || !buf || size == 0)
        return WHARF_EINVAL;
    for (;;) {
        if (len < size - 1)
            n = wharf_receive(s, buf + len, size - 1 - len);
        else
            n = wharf_receive(s, &extra, 1);    /* the end, or one byte too many */
        if (n <= 0)
            break;
        if (len == size - 1) {
            n = -ENOBUFS;
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return n == WHARF_EOF || n == 0 ? (ssize_t)len : n;
}

/* ---- a whole conversation --------------------------------------------------- */

struct tk_talk {
    const struct wharf_plugin *tt_plugin;
    void *tt_instance;
    const char *tt_input;
    unsigned tt_flags;
    char *tt_reply;
    size_t tt_size;
    struct wharf_stream *tt_client;
    int tt_handler_rc;
};

/* The client's sending half. The handler may stop reading before the end
 * (a QUIT, a timeout): a failed send is no failure of the conversation. */
static int tk_sender(void *arg)
{
    struct tk_talk *t = arg;

    wharf_testkit_send_all(t->tt_client, t->tt_input ? t->tt_input : "", t->tt_flags);
    return 0;
}

/* The client's receiving half runs in the first task, the sending half
 * beside it. */
static int tk_talk_task(void *arg)
{
    struct tk_talk *t = arg;
    struct wharf_testkit_conn *conn;
    struct wharf_group *g;
    ssize_t n;
    int rc;

    if ((rc = wharf_testkit_open(t->tt_plugin, t->tt_instance, WHARF_TESTKIT_CHUNKS,
                                 &conn)) < 0)
        return rc;
    t->tt_client = wharf_testkit_client(conn);
    if (!(g = wharf_group_open())) {
        n = -ENOMEM;
    } else {
        if ((rc = wharf_group_spawn(g, tk_sender, t)) < 0)
            n = rc;
        else
            n = wharf_testkit_receive_all(t->tt_client, t->tt_reply, t->tt_size);
        if (n < 0)
            wharf_close(t->tt_client);  /* frees a sender blocked on a full pipe */
        wharf_group_close(g, 0);
    }
    t->tt_handler_rc = wharf_testkit_close(conn);
    return n < 0 ? (int)n : 0;
}

int wharf_testkit_talk(const struct wharf_plugin *p, void *instance,
                       const char *input, unsigned flags,
                       char *reply, size_t size, int *handler_rc)
{
    struct tk_talk t = { p, instance, input, flags, reply, size, NULL, 0 };
    int rc;

    if (!reply || size == 0 || wharf_in_task())
        return WHARF_EINVAL;
    reply[0] = '\0';
    rc = wharf_run(tk_talk_task, &t);
    if (handler_rc)
        *handler_rc = t.tt_handler_rc;
    return rc;
}
