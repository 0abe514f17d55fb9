/*
 * check_stats.c: the statistics (src/stats.c) and the `stats` plugin
 * (plugins/stats), SPEC.md sections 5 and 6.
 *
 *  - stats_snapshot over a running set built by hand: counters summed over
 *    the workers' blocks, a name both running and draining listed once,
 *    tls_versions without zeros, connections over stream listeners only,
 *    reloads null until there is one, the plugins' hooks merged, the
 *    registry's streams, SPEC.md's keys in SPEC.md's order.
 *  - stats_prometheus line by line: HELP and TYPE before the samples, one
 *    TYPE per family, counters ending in _total, label escaping.
 *  - the plugin over in-memory connections (loaded like wharfd loads it,
 *    from the build tree), with an env whose stats callback returns a fixed
 *    JSON object: every status code, pipelining, 1-byte writes, a 100 KB
 *    header, binary garbage, keep-alive and its end.
 */
#include "config.h"

#include <dlfcn.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <wharf/plugin.h>

#include "testutil.h"
#include "wharf-int.h"
#include "wharfd.h"

/* ---- a running set built by hand ------------------------------------------------- */

/* A plugin with a stats hook: each instance reports what its struct says. */
struct fake_inst {
    json_int_t fi_conns;
    double fi_ratio;
    const char *fi_label;
    int fi_rc;
};

static int fake_stats(void *instance, json_t *out)
{
    const struct fake_inst *fi = instance;

    if (fi->fi_rc < 0)
        return fi->fi_rc;
    json_object_set_new(out, "conns", json_integer(fi->fi_conns));
    json_object_set_new(out, "ratio", json_real(fi->fi_ratio));
    json_object_set_new(out, "label", json_string(fi->fi_label));
    json_object_set_new(out, "nested", json_pack("{s:I, s:{s:I}}", "n", fi->fi_conns,
                                                 "deeper", "m", (json_int_t)1));
    return 0;
}

static const struct wharf_plugin fake_desc = {
    WHARF_PLUGIN_HEAD("fake"),
    .stats = fake_stats,
};

static struct plugin_inst *fake_insts[8];
static size_t fake_ninsts;

static struct plugin_inst *fake_plugin(struct fake_inst *fi)
{
    struct plugin_inst *p = calloc(1, sizeof(*p));

    fake_insts[fake_ninsts++] = p;

    ck_assert_ptr_nonnull(p);
    p->pi_desc = &fake_desc;
    p->pi_instance = fi;
    atomic_init(&p->pi_refs, 1);    /* the test's: never dropped, never dlclosed */
    return p;
}

static struct conf_tls some_tls;

/* A listener object as server.c makes them, without sockets or tasks. */
static struct listener *fake_listener(const char *name, int kind, const char *address,
                                      const char *plugin, struct plugin_inst *inst,
                                      SSL_CTX *ctx, struct lst_stats *shared)
{
    struct conf_listener cl = { 0 };
    struct listener *l = calloc(1, sizeof(*l));

    ck_assert_ptr_nonnull(l);
    cl.lst_name = (char *)name;
    cl.lst_kind = kind;
    cl.lst_plugin = (char *)plugin;
    cl.lst_inst = inst;
    cl.lst_ssl_ctx = ctx;
    cl.lst_tls = ctx ? &some_tls : NULL;
    l->lst_name = strdup(name);
    l->lst_kind = kind;
    l->lst_address = strdup(address);
    l->lst_nworkers = 2;
    if (shared)
        shared->ls_refs++;
    l->lst_stats = shared ? shared : lst_stats_new(name, 2);
    l->lst_gen = lgen_new(&cl);
    ck_assert_ptr_nonnull(l->lst_stats);
    ck_assert_ptr_nonnull(l->lst_gen);
    return l;
}

static void count(struct listener *l, unsigned worker, size_t off, unsigned long n)
{
    ctr_add((atomic_ulong *)(void *)((char *)&l->lst_stats->ls_ctr[worker] + off), n);
}

#define CTR(field) offsetof(struct lst_counters, field)

/* 2026-11-22T10:00:00Z */
static double fixed_start(void)
{
    struct tm tm = { .tm_year = 126, .tm_mon = 10, .tm_mday = 22, .tm_hour = 10 };

    return (double)timegm(&tm);
}

static struct fake_inst fake_a = { 3, 0.25, "first", 0 };
static struct fake_inst fake_b = { 4, 0.5, "second", 0 };
static struct fake_inst fake_broken = { 100, 0, "broken", -EIO };

/* hello (tcp, TLS, plugin fake on two workers), echo-udp (udp), old
 * (unix, draining), moved (running, and draining under the same name at
 * its old address), other (tcp, a second fake instance), broken (a hook
 * that fails). */
static void fake_server(struct server *srv)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    struct listener *hello, *udp, *old, *moved, *moved_old, *other, *broken;

    ck_assert_ptr_nonnull(ctx);
    memset(srv, 0, sizeof(*srv));
    pthread_mutex_init(&srv->srv_lock, NULL);
    srv->srv_nworkers = 2;
    srv->srv_started_at = fixed_start();
    srv->srv_started_mono = wharf_clock() - 12.5;

    hello = fake_listener("hello", CONF_TCP, "127.0.0.1:8443", "fake", fake_plugin(&fake_a),
                          ctx, NULL);
    SSL_CTX_free(ctx);              /* the generation holds its own reference */
    count(hello, 0, CTR(lc_accepted), 6);
    count(hello, 1, CTR(lc_accepted), 4);
    count(hello, 0, CTR(lc_closed), 5);
    count(hello, 1, CTR(lc_closed), 4);
    atomic_store(&hello->lst_stats->ls_active, 1);
    count(hello, 1, CTR(lc_errors), 1);
    count(hello, 0, CTR(lc_bytes_in), 100);
    count(hello, 1, CTR(lc_bytes_in), 23);
    count(hello, 0, CTR(lc_bytes_out), 456);
    count(hello, 0, CTR(lc_handshakes), 5);
    count(hello, 1, CTR(lc_handshakes), 4);
    count(hello, 1, CTR(lc_handshake_failures), 1);
    count(hello, 0, CTR(lc_tls13), 5);
    count(hello, 1, CTR(lc_tls13), 4);

    udp = fake_listener("echo-udp", CONF_UDP, "127.0.0.1:9000", "echo", NULL, NULL, NULL);
    count(udp, 0, CTR(lc_datagrams_in), 7);
    count(udp, 1, CTR(lc_datagrams_out), 7);

    old = fake_listener("old", CONF_UNIX, "/run/wharf/old.sock", "echo", NULL, NULL, NULL);
    old->lst_draining = true;
    count(old, 0, CTR(lc_accepted), 2);
    atomic_store(&old->lst_stats->ls_active, 2);

    moved = fake_listener("moved", CONF_TCP, "127.0.0.1:2", "echo", NULL, NULL, NULL);
    moved_old = fake_listener("moved", CONF_TCP, "127.0.0.1:1", "echo", NULL, NULL,
                              moved->lst_stats);
    moved_old->lst_draining = true;
    count(moved, 0, CTR(lc_accepted), 1);
    count(moved_old, 1, CTR(lc_accepted), 1);           /* the same counters */
    count(moved, 0, CTR(lc_tls12), 2);

    other = fake_listener("other", CONF_TCP, "127.0.0.1:3", "fake", fake_plugin(&fake_b),
                          NULL, NULL);
    broken = fake_listener("broken", CONF_TCP, "127.0.0.1:4", "fake",
                           fake_plugin(&fake_broken), NULL, NULL);

    srv->srv_listeners = calloc(5, sizeof(*srv->srv_listeners));
    srv->srv_draining = calloc(2, sizeof(*srv->srv_draining));
    srv->srv_listeners[0] = hello;
    srv->srv_listeners[1] = udp;
    srv->srv_listeners[2] = moved;
    srv->srv_listeners[3] = other;
    srv->srv_listeners[4] = broken;
    srv->srv_nlisteners = 5;
    srv->srv_draining[0] = moved_old;
    srv->srv_draining[1] = old;
    srv->srv_ndraining = 2;
}

/* What fake_server made (the instances are freed by hand: they come from
 * no shared object). */
static void fake_server_free(struct server *srv)
{
    for (size_t i = 0; i < srv->srv_nlisteners; i++)
        listener_free(srv->srv_listeners[i]);
    for (size_t i = 0; i < srv->srv_ndraining; i++)
        listener_free(srv->srv_draining[i]);
    free(srv->srv_listeners);
    free(srv->srv_draining);
    free(srv->srv_reload_error);
    pthread_mutex_destroy(&srv->srv_lock);
    for (size_t i = 0; i < fake_ninsts; i++) {
        ck_assert_int_eq(atomic_load(&fake_insts[i]->pi_refs), 1);   /* every ref returned */
        free(fake_insts[i]);
    }
    fake_ninsts = 0;
}

static json_t *get(const json_t *o, const char *path)
{
    char buf[256], *key, *save = NULL;
    json_t *v = (json_t *)(uintptr_t)o;

    snprintf(buf, sizeof(buf), "%s", path);
    for (key = strtok_r(buf, ".", &save); key && v; key = strtok_r(NULL, ".", &save))
        v = json_object_get(v, key);
    ck_assert_msg(v != NULL, "%s: missing", path);
    return v;
}

static json_int_t geti(const json_t *o, const char *path)
{
    json_t *v = get(o, path);

    ck_assert_msg(json_is_integer(v), "%s: not an integer", path);
    return json_integer_value(v);
}

static void assert_keys(const json_t *o, const char *const *keys, size_t n, const char *what)
{
    const char *key;
    json_t *v;
    size_t i = 0;

    ck_assert_msg(json_object_size(o) == n, "%s: %zu keys, want %zu", what,
                  json_object_size(o), n);
    json_object_foreach((json_t *)(uintptr_t)o, key, v) {
        (void)v;
        ck_assert_msg(strcmp(key, keys[i]) == 0, "%s: key %zu is %s, want %s", what, i, key,
                      keys[i]);
        i++;
    }
}

static const char *const top_keys[] = {
    "version", "pid", "started_at", "uptime_seconds", "workers", "reloads", "connections",
    "listeners", "plugins", "streams",
};
static const char *const listener_keys[] = {
    "kind", "address", "tls", "plugin", "state", "accepted", "active", "closed", "rejected",
    "errors", "bytes_in", "bytes_out", "datagrams_in", "datagrams_out", "handshakes",
    "handshake_failures", "resumed", "ragged_eofs", "timeouts", "tls_versions",
};
#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(snapshot_keys)
{
    struct server srv;
    json_t *s;
    const char *name;
    json_t *l;
    static const char *const reload_keys[] = { "ok", "failed", "last_error", "last_at" };
    static const char *const conn_keys[] = { "active", "accepted" };
    static const char *const order[] = { "hello", "echo-udp", "moved", "other", "broken", "old" };

    fake_server(&srv);
    s = stats_snapshot(&srv);
    ck_assert_ptr_nonnull(s);
    assert_keys(s, top_keys, NKEYS(top_keys), "top");
    assert_keys(get(s, "reloads"), reload_keys, 4, "reloads");
    assert_keys(get(s, "connections"), conn_keys, 2, "connections");
    assert_keys(get(s, "listeners"), order, NKEYS(order), "listeners");  /* running, then draining */
    json_object_foreach(get(s, "listeners"), name, l)
        assert_keys(l, listener_keys, NKEYS(listener_keys), name);
    ck_assert_str_eq(json_string_value(get(s, "version")), WHARF_VERSION);
    ck_assert_int_eq(geti(s, "pid"), getpid());
    ck_assert_int_eq(geti(s, "workers"), 2);
    ck_assert_str_eq(json_string_value(get(s, "started_at")), "2026-11-22T10:00:00Z");
    ck_assert(json_is_real(get(s, "uptime_seconds")));
    ck_assert(json_real_value(get(s, "uptime_seconds")) >= 12.5);
    ck_assert(json_real_value(get(s, "uptime_seconds")) < 60);
    json_decref(s);
    fake_server_free(&srv);
}
END_TEST

START_TEST(snapshot_counters)
{
    struct server srv;
    json_t *s, *hello;

    fake_server(&srv);
    s = stats_snapshot(&srv);
    hello = get(s, "listeners.hello");
    ck_assert_str_eq(json_string_value(get(hello, "kind")), "tcp");
    ck_assert_str_eq(json_string_value(get(hello, "address")), "127.0.0.1:8443");
    ck_assert(json_is_true(get(hello, "tls")));
    ck_assert_str_eq(json_string_value(get(hello, "plugin")), "fake");
    ck_assert_str_eq(json_string_value(get(hello, "state")), "active");
    ck_assert_int_eq(geti(hello, "accepted"), 10);      /* 6 + 4: both workers */
    ck_assert_int_eq(geti(hello, "active"), 1);
    ck_assert_int_eq(geti(hello, "closed"), 9);
    ck_assert_int_eq(geti(hello, "errors"), 1);
    ck_assert_int_eq(geti(hello, "bytes_in"), 123);
    ck_assert_int_eq(geti(hello, "bytes_out"), 456);
    ck_assert_int_eq(geti(hello, "handshakes"), 9);
    ck_assert_int_eq(geti(hello, "handshake_failures"), 1);
    ck_assert_int_eq(geti(hello, "rejected"), 0);
    ck_assert_int_eq(json_object_size(get(hello, "tls_versions")), 1);   /* no TLSv1.2: 0 */
    ck_assert_int_eq(json_integer_value(json_object_get(get(hello, "tls_versions"), "TLSv1.3")),
                     9);

    ck_assert(json_is_false(get(s, "listeners.echo-udp.tls")));
    ck_assert_str_eq(json_string_value(get(s, "listeners.echo-udp.kind")), "udp");
    ck_assert_int_eq(geti(s, "listeners.echo-udp.datagrams_in"), 7);
    ck_assert_int_eq(geti(s, "listeners.echo-udp.datagrams_out"), 7);
    ck_assert_int_eq(json_object_size(get(s, "listeners.echo-udp.tls_versions")), 0);

    /* removed by a reload: draining, with its counters */
    ck_assert_str_eq(json_string_value(get(s, "listeners.old.state")), "draining");
    ck_assert_str_eq(json_string_value(get(s, "listeners.old.kind")), "unix");
    ck_assert_str_eq(json_string_value(get(s, "listeners.old.address")), "/run/wharf/old.sock");
    ck_assert_int_eq(geti(s, "listeners.old.active"), 2);
    /* moved: one entry, the running one, counting for both */
    ck_assert_str_eq(json_string_value(get(s, "listeners.moved.state")), "active");
    ck_assert_str_eq(json_string_value(get(s, "listeners.moved.address")), "127.0.0.1:2");
    ck_assert_int_eq(geti(s, "listeners.moved.accepted"), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(get(s, "listeners.moved.tls_versions"),
                                                        "TLSv1.2")), 2);

    /* connections: stream listeners only, draining ones included */
    ck_assert_int_eq(geti(s, "connections.accepted"), 10 + 2 + 2);
    ck_assert_int_eq(geti(s, "connections.active"), 1 + 2);
    json_decref(s);
    fake_server_free(&srv);
}
END_TEST

START_TEST(snapshot_reloads)
{
    struct server srv;
    json_t *s;

    fake_server(&srv);
    s = stats_snapshot(&srv);
    ck_assert(json_is_null(get(s, "reloads.last_error")));
    ck_assert(json_is_null(get(s, "reloads.last_at")));
    ck_assert_int_eq(geti(s, "reloads.ok"), 0);
    json_decref(s);
    srv.srv_reloads_ok = 2;
    srv.srv_reloads_failed = 1;
    srv.srv_reload_error = strdup("f.conf:3: listeners.[0].tcp: bad");
    srv.srv_reload_at = fixed_start() + 3661;
    s = stats_snapshot(&srv);
    ck_assert_int_eq(geti(s, "reloads.ok"), 2);
    ck_assert_int_eq(geti(s, "reloads.failed"), 1);
    ck_assert_str_eq(json_string_value(get(s, "reloads.last_error")),
                     "f.conf:3: listeners.[0].tcp: bad");
    ck_assert_str_eq(json_string_value(get(s, "reloads.last_at")), "2026-11-22T11:01:01Z");
    json_decref(s);
    fake_server_free(&srv);
}
END_TEST

/* Two instances of one plugin merge under its name; a failing hook is left
 * out; the draining listeners' plugins are not asked. */
START_TEST(snapshot_plugins)
{
    struct server srv;
    json_t *s, *fake;

    fake_server(&srv);
    s = stats_snapshot(&srv);
    ck_assert_int_eq(json_object_size(get(s, "plugins")), 1);
    fake = get(s, "plugins.fake");
    ck_assert_int_eq(geti(fake, "conns"), 7);
    ck_assert(json_is_real(get(fake, "ratio")));
    ck_assert(json_real_value(get(fake, "ratio")) == 0.75);
    ck_assert_str_eq(json_string_value(get(fake, "label")), "first");
    ck_assert_int_eq(geti(fake, "nested.n"), 7);
    ck_assert_int_eq(geti(fake, "nested.deeper.m"), 2);
    json_decref(s);
    /* the merge works on copies: asking again gives the same */
    s = stats_snapshot(&srv);
    ck_assert_int_eq(geti(s, "plugins.fake.conns"), 7);
    json_decref(s);
    fake_server_free(&srv);
}
END_TEST

START_TEST(snapshot_streams)
{
    struct server srv;
    struct wharf_stream *snd, *rcv, *extra, *usnd, *urcv;
    json_t *s;

    fake_server(&srv);
    TU_ASSERT_RC(wharf_memstream_new(1024, NULL, &snd, &rcv), 0);
    TU_ASSERT_RC(wharf_registry_publish("pubsub/default", snd, rcv), 0);
    TU_ASSERT_RC(wharf_registry_lookup("pubsub/default", NULL, &extra), 0);
    TU_ASSERT_RC(wharf_send_item_nowait(snd, NULL), 0);
    wharf_free(snd);
    TU_ASSERT_RC(wharf_memstream_new(WHARF_UNBOUNDED, NULL, &usnd, &urcv), 0);
    TU_ASSERT_RC(wharf_registry_publish("x/unbounded", usnd, NULL), 0);
    s = stats_snapshot(&srv);
    ck_assert_int_eq(json_object_size(get(s, "streams")), 2);
    ck_assert_int_eq(geti(s, "streams.pubsub/default.current_buffer_used"), 1);
    ck_assert_int_eq(geti(s, "streams.pubsub/default.max_buffer_size"), 1024);
    ck_assert_int_eq(geti(s, "streams.pubsub/default.open_send_streams"), 0);
    ck_assert_int_eq(geti(s, "streams.pubsub/default.open_receive_streams"), 2);
    ck_assert_int_eq(geti(s, "streams.pubsub/default.tasks_waiting_send"), 0);
    ck_assert_int_eq(geti(s, "streams.pubsub/default.tasks_waiting_receive"), 0);
    ck_assert(json_is_null(get(s, "streams.x/unbounded.max_buffer_size")));
    ck_assert_int_eq(geti(s, "streams.x/unbounded.open_send_streams"), 1);
    ck_assert_int_eq(geti(s, "streams.x/unbounded.open_receive_streams"), 1);
    json_decref(s);
    TU_ASSERT_RC(wharf_registry_remove("pubsub/default"), 0);
    TU_ASSERT_RC(wharf_registry_remove("x/unbounded"), 0);
    wharf_free(extra);
    wharf_free(rcv);
    wharf_free(usnd);
    wharf_free(urcv);
    fake_server_free(&srv);
}
END_TEST

START_TEST(current)
{
    struct server srv;
    json_t *s;

    fake_server(&srv);
    ck_assert_ptr_null(stats_current());                /* nothing attached */
    stats_attach(&srv);
    s = stats_current();
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(geti(s, "listeners.hello.accepted"), 10);
    json_decref(s);
    stats_attach(NULL);
    ck_assert_ptr_null(stats_current());
    fake_server_free(&srv);
}
END_TEST

/* ---- Prometheus, line by line ------------------------------------------------------- */

struct prom {
    char **lines;
    size_t n;
};

static struct prom prom_lines(const char *text)
{
    struct prom p = { NULL, 0 };
    const char *s = text;

    ck_assert_msg(*text && text[strlen(text) - 1] == '\n', "must end with a newline");
    while (*s) {
        const char *e = strchr(s, '\n');

        p.lines = realloc(p.lines, (p.n + 1) * sizeof(*p.lines));
        p.lines[p.n++] = strndup(s, (size_t)(e - s));
        s = e + 1;
    }
    return p;
}

static bool prom_has(const struct prom *p, const char *line)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->lines[i], line) == 0)
            return true;
    return false;
}

static bool prom_has_prefix(const struct prom *p, const char *prefix)
{
    for (size_t i = 0; i < p->n; i++)
        if (strncmp(p->lines[i], prefix, strlen(prefix)) == 0)
            return true;
    return false;
}

#define NAME_RX "[a-zA-Z_:][a-zA-Z0-9_:]*"
#define LABEL_RX "[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\[\\\\\"n])*\""
#define VALUE_RX "(-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|\\+Inf|-Inf|NaN)"

/* Every line is HELP, TYPE or a sample; a family's HELP and TYPE come
 * once, before its samples, whose names are the family's; counters end in
 * _total; every name starts with wharf_. */
static void prom_check_format(const struct prom *p)
{
    regex_t help, type, sample;
    char family[256] = "", name[256];
    json_t *seen = json_object();
    regmatch_t m[2];

    ck_assert_int_eq(regcomp(&help, "^# HELP (" NAME_RX ") .*$", REG_EXTENDED), 0);
    ck_assert_int_eq(regcomp(&type, "^# TYPE (" NAME_RX ") (counter|gauge|untyped|summary|"
                             "histogram)$", REG_EXTENDED), 0);
    ck_assert_int_eq(regcomp(&sample, "^(" NAME_RX ")(\\{" LABEL_RX "(," LABEL_RX ")*\\})? "
                             VALUE_RX "$", REG_EXTENDED), 0);
    for (size_t i = 0; i < p->n; i++) {
        const char *l = p->lines[i];

        if (regexec(&help, l, 2, m, 0) == 0) {
            snprintf(name, sizeof(name), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), l + m[1].rm_so);
            ck_assert_msg(json_object_get(seen, name) == NULL, "%s: a second HELP", name);
            json_object_set_new(seen, name, json_true());
            ck_assert_msg(strncmp(name, "wharf_", 6) == 0, "%s", name);
            ck_assert_msg(i + 1 < p->n && regexec(&type, p->lines[i + 1], 2, m, 0) == 0,
                          "%s: no TYPE after HELP", name);
            ck_assert_msg(strncmp(p->lines[i + 1] + 7, name, strlen(name)) == 0 &&
                          p->lines[i + 1][7 + strlen(name)] == ' ', "TYPE of another name: %s",
                          p->lines[i + 1]);
            if (strstr(p->lines[i + 1], " counter"))
                ck_assert_msg(strlen(name) > 6 && strcmp(name + strlen(name) - 6, "_total") == 0,
                              "counter %s does not end in _total", name);
            snprintf(family, sizeof(family), "%s", name);
            i++;
            continue;
        }
        ck_assert_msg(regexec(&sample, l, 2, m, 0) == 0, "line %zu is not valid: %s", i + 1, l);
        snprintf(name, sizeof(name), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), l + m[1].rm_so);
        ck_assert_msg(strcmp(name, family) == 0, "sample of %s under family %s", name, family);
    }
    regfree(&help);
    regfree(&type);
    regfree(&sample);
    json_decref(seen);
}

static void prom_free(struct prom *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->lines[i]);
    free(p->lines);
}

START_TEST(prometheus_server)
{
    struct server srv;
    json_t *s;
    char *text;
    struct prom p;

    fake_server(&srv);
    s = stats_snapshot(&srv);
    text = stats_prometheus(s);
    ck_assert_ptr_nonnull(text);
    p = prom_lines(text);
    prom_check_format(&p);
    ck_assert(prom_has(&p, "# TYPE wharf_listener_accepted_total counter"));
    ck_assert(prom_has(&p, "wharf_listener_accepted_total{listener=\"hello\"} 10"));
    ck_assert(prom_has(&p, "wharf_listener_accepted_total{listener=\"moved\"} 2"));
    ck_assert(prom_has(&p, "# TYPE wharf_listener_active gauge"));
    ck_assert(prom_has(&p, "wharf_listener_active{listener=\"old\"} 2"));
    ck_assert(prom_has(&p, "wharf_listener_bytes_in_total{listener=\"hello\"} 123"));
    ck_assert(prom_has(&p, "wharf_listener_datagrams_in_total{listener=\"echo-udp\"} 7"));
    ck_assert(prom_has(&p, "wharf_listener_handshake_failures_total{listener=\"hello\"} 1"));
    ck_assert(prom_has(&p, "wharf_listener_tls_versions_total{listener=\"hello\","
                           "version=\"TLSv1.3\"} 9"));
    ck_assert(prom_has(&p, "wharf_listener_tls_versions_total{listener=\"moved\","
                           "version=\"TLSv1.2\"} 2"));
    ck_assert(!prom_has_prefix(&p, "wharf_listener_tls_versions_total{listener=\"hello\","
                                   "version=\"TLSv1.2\"}"));
    ck_assert(prom_has(&p, "wharf_listener_info{listener=\"old\",kind=\"unix\","
                           "address=\"/run/wharf/old.sock\",tls=\"false\",plugin=\"echo\","
                           "state=\"draining\"} 1"));
    ck_assert(prom_has(&p, "wharf_connections_accepted_total 14"));
    ck_assert(prom_has(&p, "# TYPE wharf_connections_active gauge"));
    ck_assert(prom_has(&p, "wharf_connections_active 3"));
    ck_assert(prom_has(&p, "wharf_workers 2"));
    ck_assert(prom_has(&p, "wharf_reloads_ok_total 0"));
    ck_assert(prom_has(&p, "wharf_reloads_failed_total 0"));
    ck_assert(!prom_has_prefix(&p, "wharf_reloads_last_at_seconds"));   /* null: none */
    ck_assert(prom_has(&p, "wharf_version_info{version=\"" WHARF_VERSION "\"} 1"));
    ck_assert(prom_has_prefix(&p, "wharf_uptime_seconds 12."));
    ck_assert(prom_has(&p, "# TYPE wharf_plugin_fake_conns untyped"));
    ck_assert(prom_has(&p, "wharf_plugin_fake_conns 7"));
    ck_assert(prom_has(&p, "wharf_plugin_fake_ratio 0.75"));
    ck_assert(prom_has(&p, "wharf_plugin_fake_nested_deeper_m 2"));
    ck_assert(!prom_has_prefix(&p, "wharf_plugin_fake_label"));          /* not a number */
    {
        char line[64];

        snprintf(line, sizeof(line), "wharf_started_at_seconds %.0f", fixed_start());
        ck_assert(prom_has(&p, line));
        snprintf(line, sizeof(line), "wharf_pid %d", (int)getpid());
        ck_assert(prom_has(&p, line));
    }
    prom_free(&p);
    free(text);
    json_decref(s);
    fake_server_free(&srv);
}
END_TEST

/* A snapshot with what a label value must escape, an unbounded stream, a
 * reload: checked from JSON text, as the function sees any snapshot. */
START_TEST(prometheus_escaping)
{
    static const char snap_text[] =
        "{\"version\": \"0.1.0\", \"pid\": 7, \"started_at\": \"2026-11-22T10:00:00Z\","
        " \"uptime_seconds\": 1.5, \"workers\": 1,"
        " \"reloads\": {\"ok\": 1, \"failed\": 2, \"last_error\": \"x\\ny\","
        "   \"last_at\": \"2026-11-22T10:00:01Z\"},"
        " \"connections\": {\"active\": 0, \"accepted\": 0},"
        " \"listeners\": {\"we.ird\": {\"kind\": \"unix\", \"address\": \"/tmp/a\\\"b\\\\c\\nd\","
        "   \"tls\": false, \"plugin\": null, \"state\": \"active\", \"accepted\": 0,"
        "   \"active\": 0, \"tls_versions\": {}}},"
        " \"plugins\": {\"my-plug\": {\"a.b\": 1, \"a_b\": 2, \"on\": true, \"s\": \"x\"}},"
        " \"streams\": {\"pubsub/de\\\"f\": {\"current_buffer_used\": 0,"
        "   \"max_buffer_size\": null, \"open_send_streams\": 1, \"open_receive_streams\": 2,"
        "   \"tasks_waiting_send\": 0, \"tasks_waiting_receive\": 2}}}";
    json_error_t err;
    json_t *s = json_loads(snap_text, 0, &err);
    char *text;
    struct prom p;

    ck_assert_msg(s != NULL, "%s", err.text);
    text = stats_prometheus(s);
    ck_assert_ptr_nonnull(text);
    p = prom_lines(text);
    prom_check_format(&p);
    ck_assert(prom_has(&p, "wharf_listener_info{listener=\"we.ird\",kind=\"unix\","
                           "address=\"/tmp/a\\\"b\\\\c\\nd\",tls=\"false\",plugin=\"\","
                           "state=\"active\"} 1"));
    ck_assert(prom_has(&p, "wharf_stream_max_buffer_size{stream=\"pubsub/de\\\"f\"} +Inf"));
    ck_assert(prom_has(&p, "wharf_stream_tasks_waiting_receive{stream=\"pubsub/de\\\"f\"} 2"));
    ck_assert(prom_has(&p, "# TYPE wharf_stream_open_send_streams gauge"));
    ck_assert(prom_has(&p, "wharf_reloads_last_at_seconds 1795341601"));
    ck_assert(prom_has(&p, "wharf_reloads_failed_total 2"));
    ck_assert(prom_has(&p, "wharf_plugin_my_plug_a_b 1"));       /* the first of a_b, a.b */
    ck_assert(prom_has(&p, "wharf_plugin_my_plug_on 1"));
    ck_assert(!prom_has_prefix(&p, "# TYPE wharf_listener_tls_versions_total"));  /* no samples */
    prom_free(&p);
    free(text);
    json_decref(s);

    ck_assert_ptr_null(stats_prometheus(NULL));
    s = json_array();
    ck_assert_ptr_null(stats_prometheus(s));
    json_decref(s);
    s = json_object();                                  /* nothing known: nothing written */
    text = stats_prometheus(s);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, "");
    free(text);
    json_decref(s);
}
END_TEST

/* ---- the plugin ------------------------------------------------------------------------ */

static json_t *fixed;               /* what the env's stats callback returns */

static json_t *fixed_stats(void)
{
    return json_incref(fixed);
}

static json_t *no_stats(void)
{
    return NULL;
}

static const struct wharf_plugin *load_stats(void)
{
    const char *dir = getenv("WHARF_BUILDDIR");
    const struct wharf_plugin *p;
    char path[4096];
    void *so;

    ck_assert_msg(dir != NULL, "WHARF_BUILDDIR is not set");
    snprintf(path, sizeof(path), "%s/plugins/.libs/stats.so", dir);
    so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(so != NULL, "dlopen: %s", dlerror());
    p = dlsym(so, WHARF_PLUGIN_SYMBOL);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->name, "stats");
    ck_assert_uint_eq(p->api_major, WHARF_API_MAJOR);
    return p;
}

static void setup_fixed(void)
{
    json_error_t err;

    fixed = json_loads("{\"version\": \"0.1.0\", \"pid\": 42, \"workers\": 2,"
                       " \"listeners\": {\"hello\": {\"kind\": \"tcp\", \"accepted\": 10,"
                       " \"active\": 1, \"tls_versions\": {\"TLSv1.3\": 9}}},"
                       " \"uptime_seconds\": 12.5}", JSON_PRESERVE_ORDER, &err);
    ck_assert_msg(fixed != NULL, "%s", err.text);
}

struct conn {
    const struct wharf_plugin *plugin;
    void *instance;
    struct wharf_stream *client, *server;
    const char *input;
    size_t input_len, chunk;
    bool eof;
    int handler_rc;
    char *reply;
    size_t reply_len;
};

static int serve_task(void *arg)
{
    struct conn *c = arg;

    c->handler_rc = c->plugin->handle_stream(c->instance, c->server);
    wharf_close(c->server);
    return 0;
}

static int send_task(void *arg)
{
    struct conn *c = arg;
    size_t off, n;

    for (off = 0; off < c->input_len; off += n) {
        n = c->input_len - off < c->chunk ? c->input_len - off : c->chunk;
        if (wharf_send(c->client, c->input + off, n) < 0)
            return 0;
    }
    if (c->eof)
        wharf_send_eof(c->client);
    return 0;
}

static void receive_all(struct conn *c)
{
    size_t cap = 0;
    ssize_t n;

    for (;;) {
        if (cap - c->reply_len < 65536) {
            cap = cap ? cap * 2 : 65536;
            c->reply = realloc(c->reply, cap + 1);
            ck_assert_ptr_nonnull(c->reply);
        }
        n = wharf_receive(c->client, c->reply + c->reply_len, cap - c->reply_len);
        if (n == WHARF_EOF)
            break;
        ck_assert_msg(n > 0, "client receive: %s", wharf_strerror((int)n));
        c->reply_len += (size_t)n;
    }
    c->reply[c->reply_len] = '\0';
}

/* One connection to instance: the client sends input in chunks (then its
 * EOF when eof) and reads until the plugin's side closes. Chunks are sent
 * over a rendezvous stream, so each arrives on its own. */
static struct conn talk_to(const struct wharf_plugin *p, void *instance, const char *input,
                           size_t len, size_t chunk, bool eof)
{
    struct conn c = { p, instance };
    struct wharf_stream *server;
    struct wharf_group *tg;

    c.input = input;
    c.input_len = len;
    c.chunk = chunk ? chunk : len ? len : 1;
    c.eof = eof;
    TU_ASSERT_RC(wharf_memstream_pair(0, &c.client, &server), 0);
    c.server = wharf_buffered_new(server);
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(tg, serve_task, &c), 0);
    TU_ASSERT_RC(wharf_group_spawn(tg, send_task, &c), 0);
    receive_all(&c);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    wharf_free(c.server);
    wharf_free(c.client);
    return c;
}

static void *init_env(const struct wharf_plugin *p, json_t *(*stats)(void),
                      char *(*prom)(const json_t *))
{
    struct wharf_plugin_env env = { tu_tmpdir(), "stats", WHARF_LISTENER_STREAM, stats, prom };
    struct wharf_plugin_error err = { "", "" };
    json_t *options = json_object();
    void *instance = p->init(options, &env, &err);

    json_decref(options);
    ck_assert_msg(instance != NULL, "init: %s", err.message);
    return instance;
}

/* A connection to a fresh instance with the fixed statistics. */
static struct conn talk(const char *input, size_t chunk, bool eof)
{
    const struct wharf_plugin *p = load_stats();
    struct conn c = talk_to(p, init_env(p, fixed_stats, stats_prometheus), input,
                            strlen(input), chunk, eof);

    p->fini(c.instance);
    return c;
}

/* A response, split out of what the client received. */
struct resp {
    int status;
    char head[1024];
    const char *body;
    size_t body_len;
};

/* Splits c's reply into responses (Content-Length framing); asserts that
 * it is exactly that. no_body: HEAD responses. Returns the count. */
static int split(const struct conn *c, struct resp *out, int max, bool no_body)
{
    const char *buf = c->reply, *end;
    size_t off = 0, len = c->reply_len;
    int n = 0;

    while (off < len) {
        const char *cl;
        long long clen;

        ck_assert_msg(n < max, "more than %d responses: %s", max, buf);
        end = memmem(buf + off, len - off, "\r\n\r\n", 4);
        ck_assert_msg(end != NULL, "a response without the end of its head: %s", buf + off);
        ck_assert_uint_lt((size_t)(end - (buf + off)), sizeof(out[n].head));
        snprintf(out[n].head, sizeof(out[n].head), "%.*s\r\n", (int)(end - (buf + off)),
                 buf + off);
        ck_assert_int_eq(sscanf(out[n].head, "HTTP/1.1 %d ", &out[n].status), 1);
        cl = strstr(out[n].head, "\r\nContent-Length: ");
        ck_assert_msg(cl != NULL, "no Content-Length: %s", out[n].head);
        clen = atoll(cl + 18);
        out[n].body = end + 4;
        out[n].body_len = no_body ? 0 : (size_t)clen;
        ck_assert_msg(out[n].body + out[n].body_len <= buf + len, "body cut short");
        off = (size_t)(out[n].body + out[n].body_len - buf);
        n++;
    }
    return n;
}

static bool has_header(const struct resp *r, const char *header)
{
    char needle[256];

    snprintf(needle, sizeof(needle), "\r\n%s\r\n", header);
    return strstr(r->head, needle) != NULL;
}

static void assert_body(const struct resp *r, const char *body)
{
    ck_assert_msg(r->body_len == strlen(body) && memcmp(r->body, body, r->body_len) == 0,
                  "body: \"%.*s\", want \"%s\"", (int)r->body_len, r->body, body);
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: localhost\r\n\r\n"

START_TEST(descriptor)
{
    const struct wharf_plugin *p = load_stats();
    struct wharf_plugin_env env = { tu_tmpdir(), "stats", WHARF_LISTENER_STREAM, NULL, NULL };
    struct wharf_plugin_error err = { "", "" };
    json_t *options = json_pack("{s:i}", "port", 1);

    ck_assert_ptr_nonnull(p->handle_stream);
    ck_assert_ptr_null(p->handle_datagrams);       /* on udp: a config error */
    ck_assert_ptr_nonnull(p->stats);
    ck_assert_ptr_null(p->init(options, &env, &err));
    ck_assert_str_eq(err.key, "port");
    ck_assert_ptr_nonnull(strstr(err.message, "port"));
    json_decref(options);
}
END_TEST

static int t_stats_json(void *arg)
{
    struct conn c = talk(GET("/stats"), 0, true);
    struct resp r[2];
    char *want = json_dumps(fixed, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_error_t err;
    json_t *got;

    (void)arg;
    TU_ASSERT_RC(c.handler_rc, 0);
    ck_assert_int_eq(split(&c, r, 2, false), 1);
    ck_assert_int_eq(r[0].status, 200);
    ck_assert(has_header(&r[0], "Content-Type: application/json"));
    got = json_loadb(r[0].body, r[0].body_len, 0, &err);
    ck_assert_msg(got != NULL, "%s", err.text);
    ck_assert(json_equal(got, fixed));
    ck_assert_uint_eq(r[0].body_len, strlen(want) + 1);   /* compact, then a newline */
    ck_assert_int_eq(r[0].body[r[0].body_len - 1], '\n');
    json_decref(got);
    free(want);
    free(c.reply);

    c = talk(GET("/stats?pretty"), 0, true);
    ck_assert_int_eq(split(&c, r, 2, false), 1);
    ck_assert_int_eq(r[0].status, 200);
    ck_assert_ptr_nonnull(memmem(r[0].body, r[0].body_len, "{\n  \"version\": \"0.1.0\",\n", 24));
    ck_assert_ptr_nonnull(memmem(r[0].body, r[0].body_len, "\"uptime_seconds\": 12.5", 22));
    got = json_loadb(r[0].body, r[0].body_len, 0, &err);
    ck_assert(json_equal(got, fixed));
    json_decref(got);
    free(c.reply);

    c = talk(GET("/stats?x=1&pretty=1"), 0, true);
    ck_assert_int_eq(split(&c, r, 2, false), 1);
    ck_assert_ptr_nonnull(memmem(r[0].body, r[0].body_len, "\n  ", 3));
    free(c.reply);
    c = talk(GET("/stats?pretty=0"), 0, true);
    ck_assert_int_eq(split(&c, r, 2, false), 1);
    ck_assert_ptr_null(memmem(r[0].body, r[0].body_len, "\n  ", 3));
    free(c.reply);
    return 0;
}
START_TEST(stats_json) { TU_RUN(t_stats_json, NULL); }
END_TEST

static int t_metrics(void *arg)
{
    struct conn c = talk(GET("/metrics"), 0, true);
    char *want = stats_prometheus(fixed);
    struct resp r[2];

    (void)arg;
    TU_ASSERT_RC(c.handler_rc, 0);
    ck_assert_int_eq(split(&c, r, 2, false), 1);
    ck_assert_int_eq(r[0].status, 200);
    ck_assert(has_header(&r[0], "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert_body(&r[0], want);
    free(want);
    free(c.reply);

    c = talk(GET("/healthz"), 0, true);
    ck_assert_int_eq(split(&c, r, 2, false), 1);
    ck_assert_int_eq(r[0].status, 200);
    assert_body(&r[0], "ok\n");
    free(c.reply);
    return 0;
}
START_TEST(metrics) { TU_RUN(t_metrics, NULL); }
END_TEST

/* 404 and 405 keep the connection: a request after them is served. */
static int t_not_found_not_allowed(void *arg)
{
    struct conn c = talk("GET /nope HTTP/1.1\r\n\r\n"
                         "POST /stats HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                         "DELETE /metrics HTTP/1.1\r\n\r\n"
                         "GET /stats/ HTTP/1.1\r\n\r\n"
                         "get /healthz HTTP/1.1\r\n\r\n"
                         GET("/healthz"), 7, true);
    struct resp r[8];

    (void)arg;
    TU_ASSERT_RC(c.handler_rc, 0);
    ck_assert_int_eq(split(&c, r, 8, false), 6);
    ck_assert_int_eq(r[0].status, 404);
    assert_body(&r[0], "404 Not Found\n");
    ck_assert_int_eq(r[1].status, 405);
    ck_assert(has_header(&r[1], "Allow: GET, HEAD"));
    ck_assert_int_eq(r[2].status, 405);
    ck_assert_int_eq(r[3].status, 404);
    ck_assert_int_eq(r[4].status, 405);                 /* methods are case-sensitive */
    ck_assert_int_eq(r[5].status, 200);
    for (int i = 0; i < 6; i++)
        ck_assert(!has_header(&r[i], "Connection: close"));
    free(c.reply);
    return 0;
}
START_TEST(not_found_not_allowed) { TU_RUN(t_not_found_not_allowed, NULL); }
END_TEST

/* Malformed: 400, then the plugin closes (the client sends no EOF). */
static int t_bad_request(void *arg)
{
    static const char *const bad[] = {
        "GET /stats\r\n\r\n",                           /* no version */
        "GET  /stats HTTP/1.1\r\n\r\n",                 /* two spaces */
        "GET /stats HTTP/1.1 \r\n\r\n",
        "GET /stats HTTX/1.1\r\n\r\n",
        "GET /stats HTTP/1.1\r\nNo colon here\r\n\r\n",
        "GET /stats HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET /stats HTTP/1.1\r\n: empty name\r\n\r\n",
        "GET /stats HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        "GET /stats HTTP/1.1\r\nContent-Length: 12x\r\n\r\n",
        "GET /stats HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET /stats HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /st\x01ts HTTP/1.1\r\n\r\n",
        "GET /stats HTTP/1.1\r\nX: a\x7f\r\n\r\n",
        "GET stats HTTP/1.1\r\n\r\n",
        "G(T /stats HTTP/1.1\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  /* a TLS ClientHello */
        "THIS-IS-NOT-A-METHOD-BECAUSE-IT-IS-FAR-TOO-LONG-TO-BE-ONE-OF-THEM-AT-ALL",
    };
    struct resp r[2];

    (void)arg;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct conn c = talk(bad[i], 0, false);

        ck_assert_msg(c.handler_rc == -EPROTO, "%zu: rc %d", i, c.handler_rc);
        ck_assert_int_eq(split(&c, r, 2, false), 1);
        ck_assert_msg(r[0].status == 400, "%zu: %d", i, r[0].status);
        ck_assert(has_header(&r[0], "Connection: close"));
        assert_body(&r[0], "400 Bad Request\n");
        free(c.reply);
    }
    return 0;
}
START_TEST(bad_request) { TU_RUN(t_bad_request, NULL); }
END_TEST

/* Random bytes: 400 at once (no waiting for 8 KiB), whatever they are. */
static int t_garbage(void *arg)
{
    char buf[3000];
    struct resp r[2];
    unsigned seed = 7;

    (void)arg;
    for (int round = 0; round < 20; round++) {
        struct conn c;

        for (size_t i = 0; i < sizeof(buf) - 1; i++)
            buf[i] = (char)(1 + rand_r(&seed) % 255);
        buf[sizeof(buf) - 1] = '\0';
        c = talk(buf, 100, false);
        ck_assert_int_eq(c.handler_rc, -EPROTO);
        ck_assert_int_eq(split(&c, r, 2, false), 1);
        ck_assert_int_eq(r[0].status, 400);
        free(c.reply);
    }
    return 0;
}
START_TEST(garbage) { TU_RUN(t_garbage, NULL); }
END_TEST

/* A head over 8 KiB: 431 and a close. */
static int t_too_large(void *arg)
{
    size_t big = 100 * 1024;
    char *req = malloc(big + 64), *line = malloc(9000);
    struct resp r[2];
    struct conn c;

    (void)arg;
    snprintf(req, big + 64, "GET /stats HTTP/1.1\r\nX-Big: %*s\r\n\r\n", (int)big, "x");
    c = talk(req, 4096, false);
    TU_ASSERT_RC(c.handler_rc, -EMSGSIZE);
    ck_assert_int_eq(split(&c, r, 2, false), 1);
    ck_assert_int_eq(r[0].status, 431);
    ck_assert(has_header(&r[0], "Connection: close"));
    free(c.reply);

    /* a request line over 8 KiB */
    memset(line, 'a', 8999);
    line[8999] = '\0';
    snprintf(req, big + 64, "GET /%s HTTP/1.1\r\n\r\n", line);
    c = talk(req, 0, false);
    TU_ASSERT_RC(c.handler_rc, -EMSGSIZE);
    ck_assert_int_eq(split(&c, r, 2, false), 1);
    ck_assert_int_eq(r[0].status, 431);
    free(c.reply);

    /* many headers, each small, 8 KiB together */
    req[0] = '\0';
    strcat(req, "GET /healthz HTTP/1.1\r\n");
    for (int i = 0; i < 400; i++)
        strcat(req, "X-Header-Number: 0123456789\r\n");
    strcat(req, "\r\n");
    c = talk(req, 0, false);
    ck_assert_int_eq(split(&c, r, 2, false), 1);
    ck_assert_int_eq(r[0].status, 431);
    free(c.reply);

    /* just under: served */
    req[0] = '\0';
    strcat(req, "GET /healthz HTTP/1.1\r\n");
    for (int i = 0; i < 200; i++)
        strcat(req, "X-Header-Number: 0123456789\r\n");
    strcat(req, "\r\n");
    ck_assert_uint_lt(strlen(req), 8192);
    c = talk(req, 0, true);
    TU_ASSERT_RC(c.handler_rc, 0);
    ck_assert_int_eq(split(&c, r, 2, false), 1);
    ck_assert_int_eq(r[0].status, 200);
    free(c.reply);
    free(req);
    free(line);
    return 0;
}
START_TEST(too_large) { TU_RUN(t_too_large, NULL); }
END_TEST

static int t_version(void *arg)
{
    struct conn c = talk("GET /stats HTTP/2.0\r\n\r\n", 0, false);
    struct resp r[2];

    (void)arg;
    TU_ASSERT_RC(c.handler_rc, -EPROTONOSUPPORT);
    ck_assert_int_eq(split(&c, r, 2, false), 1);
    ck_assert_int_eq(r[0].status, 505);
    ck_assert(has_header(&r[0], "Connection: close"));
    free(c.reply);
    return 0;
}
START_TEST(version) { TU_RUN(t_version, NULL); }
END_TEST

/* No statistics from the host: 503; /healthz still answers. */
static int t_unavailable(void *arg)
{
    const struct wharf_plugin *p = load_stats();
    static const char req[] = GET("/stats") GET("/metrics") GET("/healthz");
    struct resp r[4];
    struct conn c;

    (void)arg;
    c = talk_to(p, init_env(p, NULL, NULL), req, strlen(req), 0, true);
    TU_ASSERT_RC(c.handler_rc, 0);
    ck_assert_int_eq(split(&c, r, 4, false), 3);
    ck_assert_int_eq(r[0].status, 503);
    ck_assert_int_eq(r[1].status, 503);
    ck_assert_int_eq(r[2].status, 200);
    p->fini(c.instance);
    free(c.reply);

    c = talk_to(p, init_env(p, no_stats, stats_prometheus), req, strlen(req), 0, true);
    ck_assert_int_eq(split(&c, r, 4, false), 3);
    ck_assert_int_eq(r[0].status, 503);
    ck_assert_int_eq(r[1].status, 503);
    p->fini(c.instance);
    free(c.reply);
    return 0;
}
START_TEST(unavailable) { TU_RUN(t_unavailable, NULL); }
END_TEST

/* Pipelined requests: answered in order, whatever the chunking. */
static int t_pipelining(void *arg)
{
    static const char req[] = GET("/healthz") GET("/nope") GET("/stats") GET("/metrics")
                              GET("/healthz");
    static const size_t chunks[] = { 0, 1, 2, 3, 17, 64 };
    struct resp r[6];

    (void)arg;
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        struct conn c = talk(req, chunks[i], true);

        TU_ASSERT_RC(c.handler_rc, 0);
        ck_assert_int_eq(split(&c, r, 6, false), 5);
        ck_assert_int_eq(r[0].status, 200);
        assert_body(&r[0], "ok\n");
        ck_assert_int_eq(r[1].status, 404);
        ck_assert_int_eq(r[2].status, 200);
        ck_assert(has_header(&r[2], "Content-Type: application/json"));
        ck_assert(has_header(&r[3], "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
        assert_body(&r[4], "ok\n");
        free(c.reply);
    }
    return 0;
}
START_TEST(pipelining) { TU_RUN(t_pipelining, NULL); }
END_TEST

/* HEAD: GET's headers, no body; the connection goes on. */
static int t_head(void *arg)
{
    static const char head_then_get[] = "HEAD /healthz HTTP/1.1\r\n\r\n" GET("/healthz");
    char *prom_text = stats_prometheus(fixed);
    struct resp r[3];
    char want[64];
    struct conn c;

    (void)arg;
    c = talk("HEAD /healthz HTTP/1.1\r\n\r\nHEAD /metrics HTTP/1.1\r\n\r\n", 0, true);
    ck_assert_int_eq(split(&c, r, 3, true), 2);
    ck_assert_int_eq(r[0].status, 200);
    ck_assert(has_header(&r[0], "Content-Length: 3"));
    snprintf(want, sizeof(want), "Content-Length: %zu", strlen(prom_text));
    ck_assert(has_header(&r[1], want));
    free(c.reply);
    c = talk(head_then_get, 0, true);
    ck_assert_ptr_nonnull(strstr(c.reply, "\r\n\r\nHTTP/1.1 200 OK\r\n"));
    ck_assert(c.reply_len > 3 && strcmp(c.reply + c.reply_len - 3, "ok\n") == 0);
    ck_assert_int_eq(strstr(c.reply, "ok\n") - c.reply, (long)c.reply_len - 3);
    free(c.reply);
    free(prom_text);
    return 0;
}
START_TEST(head) { TU_RUN(t_head, NULL); }
END_TEST

/* Each byte on its own. */
static int t_one_byte_writes(void *arg)
{
    struct conn c = talk("\r\nGET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
                         GET("/healthz"), 1, true);
    struct resp r[3];

    (void)arg;
    TU_ASSERT_RC(c.handler_rc, 0);
    ck_assert_int_eq(split(&c, r, 3, false), 2);
    ck_assert_int_eq(r[0].status, 200);
    ck_assert_int_eq(r[1].status, 200);
    free(c.reply);
    return 0;
}
START_TEST(one_byte_writes) { TU_RUN(t_one_byte_writes, NULL); }
END_TEST

/* Keep-alive and its ends: Connection: close, HTTP/1.0, the client's EOF. */
static int t_keep_alive(void *arg)
{
    struct resp r[4];
    struct conn c;

    (void)arg;
    /* close honoured: what follows is not read */
    c = talk("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n" GET("/healthz"), 0, false);
    TU_ASSERT_RC(c.handler_rc, 0);
    ck_assert_int_eq(split(&c, r, 4, false), 1);
    ck_assert(has_header(&r[0], "Connection: close"));
    free(c.reply);
    c = talk("GET /healthz HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", 0, false);
    ck_assert_int_eq(split(&c, r, 4, false), 1);
    ck_assert(has_header(&r[0], "Connection: close"));
    free(c.reply);

    /* HTTP/1.0: one request, then close, unless keep-alive */
    c = talk("GET /healthz HTTP/1.0\r\n\r\n" GET("/healthz"), 0, false);
    ck_assert_int_eq(split(&c, r, 4, false), 1);
    ck_assert(has_header(&r[0], "Connection: close"));
    free(c.reply);
    c = talk("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
             "GET /healthz HTTP/1.0\r\n\r\n", 0, false);
    ck_assert_int_eq(split(&c, r, 4, false), 2);
    ck_assert(has_header(&r[0], "Connection: keep-alive"));
    ck_assert(has_header(&r[1], "Connection: close"));
    free(c.reply);

    /* HTTP/1.1: open until the client's EOF, which ends it without error */
    c = talk(GET("/healthz") GET("/healthz") GET("/healthz"), 0, true);
    TU_ASSERT_RC(c.handler_rc, 0);
    ck_assert_int_eq(split(&c, r, 4, false), 3);
    ck_assert(!has_header(&r[2], "Connection: close"));
    free(c.reply);

    /* a body is read and dropped; a large one closes the connection */
    c = talk("GET /healthz HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody" GET("/healthz"), 3, true);
    ck_assert_int_eq(split(&c, r, 4, false), 2);
    free(c.reply);
    c = talk("POST /stats HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 0, false);
    ck_assert_int_eq(split(&c, r, 4, false), 1);
    ck_assert_int_eq(r[0].status, 405);
    ck_assert(has_header(&r[0], "Connection: close"));
    free(c.reply);

    /* the client leaves in the middle of a request: no answer, an error */
    c = talk("GET /healthz HTTP/1.1\r\nHost:", 0, true);
    ck_assert_uint_eq(c.reply_len, 0);
    TU_ASSERT_RC(c.handler_rc, WHARF_EINCOMPLETE);
    free(c.reply);
    c = talk("", 0, true);
    TU_ASSERT_RC(c.handler_rc, 0);
    ck_assert_uint_eq(c.reply_len, 0);
    free(c.reply);
    return 0;
}
START_TEST(keep_alive) { TU_RUN(t_keep_alive, NULL); }
END_TEST

/* The client reads each response before it sends the next request. */
static int t_interactive(void *arg)
{
    const struct wharf_plugin *p = load_stats();
    struct conn c = { p, init_env(p, fixed_stats, stats_prometheus) };
    struct wharf_stream *server;
    struct wharf_group *tg = wharf_group_open();
    char buf[4096];

    (void)arg;
    TU_ASSERT_RC(wharf_memstream_pair(4, &c.client, &server), 0);
    c.server = wharf_buffered_new(server);
    TU_ASSERT_RC(wharf_group_spawn(tg, serve_task, &c), 0);
    for (int i = 0; i < 5; i++) {
        size_t got = 0;

        TU_ASSERT_RC(wharf_send(c.client, GET("/healthz"), strlen(GET("/healthz"))), 0);
        while (got < 3 || memcmp(buf + got - 3, "ok\n", 3) != 0) {
            ssize_t n = wharf_receive(c.client, buf + got, sizeof(buf) - got);

            ck_assert_int_gt(n, 0);
            got += (size_t)n;
        }
        ck_assert_int_eq(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17), 0);
    }
    TU_ASSERT_RC(wharf_send_eof(c.client), 0);
    TU_ASSERT_RC(wharf_receive(c.client, buf, sizeof(buf)), WHARF_EOF);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    TU_ASSERT_RC(c.handler_rc, 0);
    wharf_free(c.server);
    wharf_free(c.client);
    p->fini(c.instance);
    return 0;
}
START_TEST(interactive) { TU_RUN(t_interactive, NULL); }
END_TEST

/* plugins.stats: requests answered, by status. */
static int t_own_figures(void *arg)
{
    const struct wharf_plugin *p = load_stats();
    void *instance = init_env(p, fixed_stats, stats_prometheus);
    static const char req[] = GET("/healthz") GET("/stats") GET("/nope");
    json_t *out = json_object();
    struct conn c;

    (void)arg;
    c = talk_to(p, instance, req, strlen(req), 0, true);
    free(c.reply);
    c = talk_to(p, instance, "B@D / HTTP/1.1\r\n\r\n", 19, 0, true);
    free(c.reply);
    TU_ASSERT_RC(p->stats(instance, out), 0);
    ck_assert_int_eq(geti(out, "requests"), 4);
    ck_assert_int_eq(geti(out, "responses.200"), 2);
    ck_assert_int_eq(geti(out, "responses.404"), 1);
    ck_assert_int_eq(geti(out, "responses.400"), 1);
    ck_assert_int_eq(geti(out, "responses.431"), 0);
    json_decref(out);
    p->fini(instance);
    return 0;
}
START_TEST(own_figures) { TU_RUN(t_own_figures, NULL); }
END_TEST

/* The plugin with the daemon's real callbacks, over the hand-built set. */
static int t_end_to_end(void *arg)
{
    const struct wharf_plugin *p = load_stats();
    struct server *srv = arg;
    struct resp r[3];
    struct conn c;
    json_t *got;

    stats_attach(srv);
    c = talk_to(p, init_env(p, stats_current, stats_prometheus),
                GET("/stats") GET("/metrics"), strlen(GET("/stats") GET("/metrics")), 0, true);
    ck_assert_int_eq(split(&c, r, 3, false), 2);
    got = json_loadb(r[0].body, r[0].body_len, 0, NULL);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(geti(got, "listeners.hello.accepted"), 10);
    ck_assert_int_eq(geti(got, "plugins.fake.conns"), 7);
    ck_assert_ptr_nonnull(memmem(r[1].body, r[1].body_len,
                                 "\nwharf_listener_accepted_total{listener=\"hello\"} 10\n", 51));
    json_decref(got);
    free(c.reply);
    p->fini(c.instance);
    stats_attach(NULL);
    return 0;
}
START_TEST(end_to_end)
{
    struct server srv;

    fake_server(&srv);
    TU_RUN(t_end_to_end, &srv);
    fake_server_free(&srv);
}
END_TEST

static Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *snap = tcase_create("snapshot"), *prom = tcase_create("prometheus");
    TCase *plugin = tcase_create("plugin");

    tcase_add_test(snap, snapshot_keys);
    tcase_add_test(snap, snapshot_counters);
    tcase_add_test(snap, snapshot_reloads);
    tcase_add_test(snap, snapshot_plugins);
    tcase_add_test(snap, snapshot_streams);
    tcase_add_test(snap, current);
    tcase_add_test(prom, prometheus_server);
    tcase_add_test(prom, prometheus_escaping);
    tcase_add_checked_fixture(plugin, setup_fixed, NULL);
    tcase_add_test(plugin, descriptor);
    tcase_add_test(plugin, stats_json);
    tcase_add_test(plugin, metrics);
    tcase_add_test(plugin, not_found_not_allowed);
    tcase_add_test(plugin, bad_request);
    tcase_add_test(plugin, garbage);
    tcase_add_test(plugin, too_large);
    tcase_add_test(plugin, version);
    tcase_add_test(plugin, unavailable);
    tcase_add_test(plugin, pipelining);
    tcase_add_test(plugin, head);
    tcase_add_test(plugin, one_byte_writes);
    tcase_add_test(plugin, keep_alive);
    tcase_add_test(plugin, interactive);
    tcase_add_test(plugin, own_figures);
    tcase_add_test(plugin, end_to_end);
    suite_add_tcase(s, snap);
    suite_add_tcase(s, prom);
    suite_add_tcase(s, plugin);
    return s;
}

int main(void)
{
    return tu_run_suite(stats_suite());
}
