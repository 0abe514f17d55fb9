/*
 * rot13: an example wharf plugin, built out of tree with only
 * `pkg-config --cflags wharf` (see the Makefile beside it).
 *
 * A line protocol: each line a client sends (up to 1024 bytes before its
 * '\n') comes back ROT13-encoded. The encoding runs in a helper task that
 * the handler feeds over a memory object stream, and each answer must come
 * within `timeout` seconds (an option, default 5.0) or the client gets
 * "ERR timeout\n" and the connection ends. The line "QUIT" ends it too. It shows the pieces
 * a real plugin uses: options checked in init, receive_until, a task group,
 * a memory object stream, a cancel scope with a deadline.
 *
 *     listeners = ( { name = "rot13"; tcp = "127.0.0.1:8013";
 *                     handler = { plugin = "rot13"; timeout = 2.0; }; } );
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wharf/plugin.h>

#define ROT13_MAX_LINE 1024

struct rot13 {
    double timeout;
};

/* One line on its way to the helper and back. */
struct job {
    char text[ROT13_MAX_LINE];
    size_t len;
    struct wharf_stream *reply;     /* where the helper sends the job back */
};

static void *rot13_init(json_t *options, const struct wharf_plugin_env *env,
                        struct wharf_plugin_error *err)
{
    struct rot13 *r;
    double timeout = 5.0;
    const char *key;
    json_t *value;

    (void)env;
    json_object_foreach(options, key, value) {
        snprintf(err->key, sizeof(err->key), "%s", key);
        if (strcmp(key, "timeout") != 0) {
            snprintf(err->message, sizeof(err->message),
                     "unknown option \"%s\" (rot13 takes timeout)", key);
            return NULL;
        }
        if (!json_is_number(value) || json_number_value(value) <= 0) {
            snprintf(err->message, sizeof(err->message), "timeout must be a positive number");
            return NULL;
        }
        timeout = json_number_value(value);
    }
    if (!(r = malloc(sizeof(*r)))) {
        err->key[0] = err->message[0] = '\0';
        return NULL;
    }
    r->timeout = timeout;
    return r;
}

/* The helper: encodes every job it receives, until the handler closes the
 * stream (WHARF_EOF). */
static int helper(void *arg)
{
    struct wharf_stream *jobs = arg;
    struct job *j;
    int rc;

    while ((rc = wharf_receive_item(jobs, (void **)&j)) == 0) {
        for (size_t i = 0; i < j->len; i++) {
            char c = j->text[i];

            if ((c >= 'a' && c <= 'm') || (c >= 'A' && c <= 'M'))
                j->text[i] = (char)(c + 13);
            else if ((c >= 'n' && c <= 'z') || (c >= 'N' && c <= 'Z'))
                j->text[i] = (char)(c - 13);
        }
        if ((rc = wharf_send_item(j->reply, j)) < 0)
            break;
    }
    /* the end of the jobs, or a handler that stopped listening: done */
    return rc == WHARF_EOF || rc == WHARF_EBROKEN || rc == WHARF_ECLOSED ? 0 : rc;
}

/* Sends one line to the helper and waits for it within the timeout:
 * 0 with the answer in j, WHARF_ETIMEDOUT, or another error. */
static int encode(const struct rot13 *r, struct wharf_stream *jobs,
                  struct wharf_stream *answers, struct job *j)
{
    struct wharf_scope sc;
    struct job *back;
    int rc;

    if ((rc = wharf_fail_after(&sc, r->timeout)) < 0)
        return rc;
    rc = wharf_send_item(jobs, j);
    if (rc == 0)
        rc = wharf_receive_item(answers, (void **)&back);
    return wharf_scope_exit(&sc, rc);
}

static int serve_lines(const struct rot13 *r, struct wharf_stream *s,
                       struct wharf_stream *jobs_tx, struct wharf_stream *answers_rx,
                       struct wharf_stream *answers_tx)
{
    static const char timed_out[] = "ERR timeout\n";
    struct job j;
    ssize_t n;
    int rc;

    for (;;) {
        n = wharf_receive_until(s, "\n", 1, j.text, sizeof(j.text));
        if (n == WHARF_EOF || n == WHARF_EINCOMPLETE)
            return 0;                   /* the client left */
        if (n < 0)
            return (int)n;
        if (n > 0 && j.text[n - 1] == '\r')
            n--;
        if (n == 4 && memcmp(j.text, "QUIT", 4) == 0)
            return 0;
        j.len = (size_t)n;
        j.reply = answers_tx;
        rc = encode(r, jobs_tx, answers_rx, &j);
        if (rc == WHARF_ETIMEDOUT) {
            /* the helper may still hold j: end here rather than reuse it */
            wharf_send(s, timed_out, sizeof(timed_out) - 1);
            return rc;
        }
        if (rc == 0 && (rc = wharf_send(s, j.text, j.len)) == 0)
            rc = wharf_send(s, "\n", 1);
        if (rc < 0)
            return rc;
    }
}

static int rot13_serve(void *instance, struct wharf_stream *stream)
{
    struct wharf_stream *jobs_tx, *jobs_rx, *answers_tx, *answers_rx;
    struct wharf_group *g;
    int rc;

    /* buffer 0: each hand-over waits for the other side (AnyIO's default) */
    if (wharf_memstream_new(0, NULL, &jobs_tx, &jobs_rx) < 0)
        return -ENOMEM;
    if (wharf_memstream_new(0, NULL, &answers_tx, &answers_rx) < 0) {
        wharf_free(jobs_tx);
        wharf_free(jobs_rx);
        return -ENOMEM;
    }
    if (!(g = wharf_group_open())) {
        rc = -ENOMEM;
    } else {
        if ((rc = wharf_group_spawn(g, helper, jobs_rx)) == 0)
            rc = serve_lines(instance, stream, jobs_tx, answers_rx, answers_tx);
        wharf_close(jobs_tx);           /* the helper sees WHARF_EOF and returns */
        wharf_close(answers_rx);        /* or its late answer fails at once */
        rc = wharf_group_close(g, rc);
    }
    wharf_free(jobs_tx);
    wharf_free(jobs_rx);
    wharf_free(answers_tx);
    wharf_free(answers_rx);
    return rc;
}

static void rot13_fini(void *instance)
{
    free(instance);
}

const struct wharf_plugin wharf_plugin = {
    WHARF_PLUGIN_HEAD("rot13"),
    .init = rot13_init,
    .handle_stream = rot13_serve,
    .fini = rot13_fini,
};
