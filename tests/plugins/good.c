/*
 * good.c: a well-formed test plugin for the loader (tests/unit/check_plugin.c).
 * Built against include/wharf/ only. It serves both kinds of listener
 * trivially and records what the loader handed it in exported variables,
 * which the test reads through its own dlopen handle. With
 * `datagrams = "echo"` its datagram handler is a misbehaving third-party
 * one for the daemon's tests (tests/func): it answers greeting + datagram,
 * returns 0 on "quit", and on "sleep" sleeps an hour, deaf to a reload's
 * restart request until its task is cancelled.
 * Not for: exercising the runtime; the bundled plugins' tests do that.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <wharf/plugin.h>
#include <wharf/stream.h>
#include <wharf/task.h>

/* What the test observes (declared here for -Wmissing-declarations' sake). */
extern int good_inits, good_finis;
extern int good_last_kind;
extern char good_last_listener[64], good_last_config_dir[4096], good_last_options[512];

int good_inits, good_finis;
int good_last_kind;
char good_last_listener[64], good_last_config_dir[4096], good_last_options[512];

struct good {
    char *greeting;
    int echo;                       /* datagrams = "echo" */
};

static void *reject(struct wharf_plugin_error *err, const char *key, const char *msg)
{
    snprintf(err->key, sizeof(err->key), "%s", key);
    snprintf(err->message, sizeof(err->message), "%s", msg);
    return NULL;
}

static void remember(const json_t *options, const struct wharf_plugin_env *env)
{
    char *js = json_dumps(options, JSON_SORT_KEYS | JSON_COMPACT);

    snprintf(good_last_options, sizeof(good_last_options), "%s", js ? js : "");
    free(js);
    snprintf(good_last_listener, sizeof(good_last_listener), "%s", env->listener);
    snprintf(good_last_config_dir, sizeof(good_last_config_dir), "%s", env->config_dir);
    good_last_kind = env->kind;
}

/* Options: greeting (string), datagrams ("echo"). `fail` (string) is for
 * the loader's tests: init fails with that message and no key ("" meaning
 * out of memory). */
static void *check_options(json_t *options, struct wharf_plugin_error *err)
{
    const char *key;
    json_t *v;

    json_object_foreach(options, key, v) {
        if (strcmp(key, "greeting") == 0 && !json_is_string(v))
            return reject(err, key, "must be a string");
        if (strcmp(key, "fail") == 0)
            return reject(err, "", json_string_value(v) ? json_string_value(v) : "");
        if (strcmp(key, "datagrams") == 0 &&
            (!json_is_string(v) || strcmp(json_string_value(v), "echo") != 0))
            return reject(err, key, "must be \"echo\"");
        if (strcmp(key, "greeting") != 0 && strcmp(key, "datagrams") != 0)
            return reject(err, key, "unknown option (good knows: greeting, datagrams)");
    }
    return err;     /* any non-NULL: fine */
}

static void *good_init(json_t *options, const struct wharf_plugin_env *env,
                       struct wharf_plugin_error *err)
{
    const char *greeting = json_string_value(json_object_get(options, "greeting"));
    struct good *g;

    remember(options, env);
    if (!check_options(options, err))
        return NULL;
    g = calloc(1, sizeof(*g));
    if (!g || !(g->greeting = strdup(greeting ? greeting : "hi\n"))) {
        free(g);
        return reject(err, "", "");
    }
    g->echo = json_object_get(options, "datagrams") != NULL;
    good_inits++;
    return g;
}

static int good_stream(void *instance, struct wharf_stream *stream)
{
    struct good *g = instance;

    return wharf_send(stream, g->greeting, strlen(g->greeting));
}

static bool is(const char *buf, ssize_t n, const char *word)
{
    return (size_t)n == strlen(word) && memcmp(buf, word, (size_t)n) == 0;
}

static int good_datagrams(void *instance, struct wharf_stream *socket)
{
    struct good *g = instance;
    struct sockaddr_storage from;
    socklen_t fromlen;
    char in[512], out[1024];
    ssize_t n;
    int len, rc;

    while (g->echo) {
        fromlen = sizeof(from);
        n = wharf_receive_from(socket, in, sizeof(in), (struct sockaddr *)&from, &fromlen);
        if (n < 0)
            return (int)n;
        if (is(in, n, "quit"))
            break;
        if (is(in, n, "sleep") && (rc = wharf_sleep(3600.0)) < 0)
            return rc;
        len = snprintf(out, sizeof(out), "%s%.*s", g->greeting, (int)n, in);
        wharf_send_to(socket, out, (size_t)len, (struct sockaddr *)&from, fromlen);
    }
    return 0;
}

static int good_stats(void *instance, json_t *out)
{
    return json_object_set_new(out, "inits", json_integer(good_inits));
}

static void good_fini(void *instance)
{
    struct good *g = instance;

    good_finis++;
    free(g->greeting);
    free(g);
}

const struct wharf_plugin wharf_plugin = {
    WHARF_PLUGIN_HEAD("good"),
    .init = good_init,
    .handle_stream = good_stream,
    .handle_datagrams = good_datagrams,
    .stats = good_stats,
    .fini = good_fini,
};
