/*
 * fuzz_plugin.c: libFuzzer target for a bundled plugin's stream handler,
 * fed what a peer may send. Built once per plugin (FUZZ_PLUGIN, its name;
 * FUZZ_OPTIONS, its options as JSON), the plugin loaded from this build's
 * plugins/.libs as wharfd loads it, and served over the test kit's
 * in-memory connection (wharf/testkit.h).
 *
 * Input: byte 0 is the size of the chunks the bytes arrive in (1..256),
 * the rest is what the peer sends, then its EOF. A second connection
 * subscribes beside it (for pubsub: what the first publishes reaches it)
 * and hangs up once the first is served. Checked: no crash, no leak, no
 * hang (each conversation has 5 s), and that the handler ends at EOF.
 */
#include "config.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <wharf/testkit.h>
#include <wharf/wharf.h>

#include "fuzz.h"

#ifndef FUZZ_OPTIONS
#define FUZZ_OPTIONS "{}"
#endif

static const struct wharf_plugin *plugin;
static void *instance;

/* the host's statistics, for the stats plugin: a small fixed snapshot */
static json_t *fz_stats(void)
{
    return json_pack("{s:{s:i,s:i},s:{s:{s:i}}}", "server", "pid", 1, "workers", 2,
                     "listeners", "fuzz", "accepted", 3);
}

static char *fz_prometheus(const json_t *snapshot)
{
    (void)snapshot;
    return strdup("# TYPE wharf_listeners_fuzz_accepted_total counter\n"
                  "wharf_listeners_fuzz_accepted_total 3\n");
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "fuzz_plugin: %s: %s\n", what, why);
    exit(2);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct wharf_plugin_env env = { ".", "fuzz", WHARF_LISTENER_STREAM, fz_stats,
                                    fz_prometheus };
    struct wharf_plugin_error err;
    char exe[PATH_MAX], path[PATH_MAX + 64], *slash;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    void *so;

    (void)argc, (void)argv;
    if (n <= 0)
        die("/proc/self/exe", "unreadable");
    exe[n] = '\0';
    if ((slash = strrchr(exe, '/')))
        *slash = '\0';
    /* this program is BUILD/tests/fuzz/; the plugins BUILD/plugins/.libs */
    snprintf(path, sizeof(path), "%s/../../plugins/.libs/%s.so", exe, FUZZ_PLUGIN);
    if (!(so = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
        die(path, dlerror());
    if (!(plugin = dlsym(so, WHARF_PLUGIN_SYMBOL)))
        die(path, "no plugin descriptor");
    if (!(instance = wharf_testkit_init(plugin, FUZZ_OPTIONS, &env, &err)))
        die("init", err.message[0] ? err.message : "out of memory");
    return 0;
}

/* Reads s to its end (or the deadline), throwing the bytes away. */
static void drain(struct wharf_stream *s)
{
    char buf[4096];

    while (wharf_receive(s, buf, sizeof(buf)) > 0)
        ;
}

static int fz_task(void *arg)
{
    struct fz *f = arg;
    struct wharf_testkit_conn *pub = NULL, *sub = NULL;
    struct wharf_stream *c;
    struct wharf_scope sc;
    int rc;

    fz_bound(&sc);
    if (wharf_testkit_open(plugin, instance, WHARF_UNBOUNDED, &sub) < 0 ||
        wharf_testkit_open(plugin, instance, WHARF_UNBOUNDED, &pub) < 0)
        abort();
    /* let the subscriber's handler start (and subscribe) first */
    wharf_sleep(0);
    wharf_sleep(0);
    c = wharf_testkit_client(pub);
    if (fz_send(c, f) == 0)         /* else the handler stopped reading: fine */
        wharf_send_eof(c);
    drain(c);                       /* until the handler is done and closed */
    rc = wharf_testkit_close(pub);
    (void)rc;                       /* a refusal (a long line ...) is an answer */
    c = wharf_testkit_client(sub);
    wharf_send_eof(c);
    drain(c);
    wharf_testkit_close(sub);
    fz_bound_end(&sc, "fuzz_plugin");
    return 0;
}

FZ_ENTRY(fz_task)
