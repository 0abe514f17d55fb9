/*
 * stats.c: the statistics of SPEC.md section 6. stats_snapshot sums each
 * listener's per-worker counters into the JSON object of `GET /stats`,
 * with the server's own figures, the plugins' (their stats hooks) and the
 * named streams of the registry; stats_prometheus renders such a snapshot
 * in the Prometheus text format 0.0.4. Both run on whichever worker serves
 * the request: the running set is read under srv_lock, the counters with
 * relaxed loads (each block has one writer, its worker), and the plugins'
 * hooks are called once the lock is released (a hook may take its time,
 * or ask for the statistics itself).
 * Not for: counting (listener.c, conn.c) or speaking HTTP (plugins/stats).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wharfd.h"

static _Atomic(struct server *) stats_srv;

void stats_attach(struct server *srv)
{
    atomic_store(&stats_srv, srv);
}

json_t *stats_current(void)
{
    struct server *srv = atomic_load(&stats_srv);

    return srv ? stats_snapshot(srv) : NULL;
}

/* ---- values ------------------------------------------------------------------ */

/* A JSON string of s; bytes that are not UTF-8 become '?' (a UNIX path may
 * hold any). NULL: out of memory. */
static json_t *text(const char *s)
{
    json_t *j = json_string(s);
    char *copy;

    if (j || !(copy = strdup(s)))
        return j;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

/* "2026-11-22T10:00:00Z" for a wall-clock time; null for 0 (never). */
static json_t *iso_time(double t)
{
    time_t s = (time_t)t;
    struct tm tm;
    char buf[32];

    if (t <= 0 || !gmtime_r(&s, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return json_null();
    return json_string(buf);
}

/* Seconds, to the millisecond. */
static json_t *seconds(double s)
{
    return json_real((double)(long long)(s * 1000.0 + 0.5) / 1000.0);
}

/* ---- a listener ---------------------------------------------------------------- */

#define CTR_ACTIVE SIZE_MAX         /* ls_active, not a per-worker counter */

/* The counters in SPEC.md's order, by JSON key. */
static const struct {
    const char *key;
    size_t off;                     /* in struct lst_counters */
} counter_keys[] = {
    { "accepted", offsetof(struct lst_counters, lc_accepted) },
    { "active", CTR_ACTIVE },
    { "closed", offsetof(struct lst_counters, lc_closed) },
    { "rejected", offsetof(struct lst_counters, lc_rejected) },
    { "errors", offsetof(struct lst_counters, lc_errors) },
    { "bytes_in", offsetof(struct lst_counters, lc_bytes_in) },
    { "bytes_out", offsetof(struct lst_counters, lc_bytes_out) },
    { "datagrams_in", offsetof(struct lst_counters, lc_datagrams_in) },
    { "datagrams_out", offsetof(struct lst_counters, lc_datagrams_out) },
    { "handshakes", offsetof(struct lst_counters, lc_handshakes) },
    { "handshake_failures", offsetof(struct lst_counters, lc_handshake_failures) },
    { "resumed", offsetof(struct lst_counters, lc_resumed) },
    { "ragged_eofs", offsetof(struct lst_counters, lc_ragged_eofs) },
    { "timeouts", offsetof(struct lst_counters, lc_timeouts) },
};

static const struct {
    const char *key;
    size_t off;
} version_keys[] = {
    { "TLSv1.2", offsetof(struct lst_counters, lc_tls12) },
    { "TLSv1.3", offsetof(struct lst_counters, lc_tls13) },
};

/* One counter summed over the workers' blocks. */
static unsigned long ctr_sum(const struct lst_stats *st, size_t off)
{
    unsigned long sum = 0;

    if (off == CTR_ACTIVE) {
        long a = atomic_load_explicit(&st->ls_active, memory_order_relaxed);

        return a > 0 ? (unsigned long)a : 0;
    }
    for (unsigned i = 0; i < st->ls_nworkers; i++) {
        const char *block = (const char *)&st->ls_ctr[i];

        sum += atomic_load_explicit((atomic_ulong *)(uintptr_t)(block + off),
                                    memory_order_relaxed);
    }
    return sum;
}

/* {"TLSv1.3": 9}: the versions seen, zeros left out. */
static json_t *tls_versions(const struct lst_stats *st)
{
    json_t *o = json_object();
    int rc = 0;

    for (size_t i = 0; o && i < sizeof(version_keys) / sizeof(version_keys[0]); i++) {
        unsigned long n = ctr_sum(st, version_keys[i].off);

        if (n > 0)
            rc |= json_object_set_new(o, version_keys[i].key, json_integer((json_int_t)n));
    }
    if (rc < 0)
        json_decref(o);
    return rc < 0 ? NULL : o;
}

static json_t *listener_json(const struct listener *l)
{
    const struct lgen *g = l->lst_gen;
    json_t *o = json_object();
    int rc = 0;

    if (!o)
        return NULL;
    rc |= json_object_set_new(o, "kind", json_string(server_kind_name(l->lst_kind)));
    rc |= json_object_set_new(o, "address", text(l->lst_address));
    rc |= json_object_set_new(o, "tls", json_boolean(g && g->lg_ssl_ctx));
    rc |= json_object_set_new(o, "plugin", g && g->lg_plugin ? text(g->lg_plugin) : json_null());
    rc |= json_object_set_new(o, "state", json_string(l->lst_draining ? "draining" : "active"));
    for (size_t i = 0; i < sizeof(counter_keys) / sizeof(counter_keys[0]); i++)
        rc |= json_object_set_new(o, counter_keys[i].key,
                                  json_integer((json_int_t)ctr_sum(l->lst_stats,
                                                                   counter_keys[i].off)));
    rc |= json_object_set_new(o, "tls_versions", tls_versions(l->lst_stats));
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- the running set, under srv_lock --------------------------------------------- */

/* What the snapshot takes from under the lock: the listeners' figures, and
 * references to the generations whose plugin has a stats hook. */
struct snap {
    json_t *sn_listeners;
    json_int_t sn_active, sn_accepted;      /* stream listeners */
    struct lgen **sn_gens;
    size_t sn_ngens;
};

/* Adds l unless a listener of that name is already in (a name both running
 * and draining: the running one, listed first, stands for both; they
 * share their counters). 0 or -1 (out of memory). */
static int snap_listener(struct snap *sn, const struct listener *l)
{
    json_t *o;

    if (json_object_get(sn->sn_listeners, l->lst_name))
        return 0;
    if (!(o = listener_json(l)) || json_object_set_new(sn->sn_listeners, l->lst_name, o) < 0)
        return -1;
    if (l->lst_kind != CONF_UDP) {
        sn->sn_active += json_integer_value(json_object_get(o, "active"));
        sn->sn_accepted += json_integer_value(json_object_get(o, "accepted"));
    }
    return 0;
}

/* Keeps a reference to l's generation when its plugin has a stats hook. */
static void snap_hook(struct snap *sn, const struct listener *l)
{
    struct lgen *g = l->lst_gen;

    if (g && g->lg_inst && g->lg_plugin && g->lg_inst->pi_desc->stats)
        sn->sn_gens[sn->sn_ngens++] = lgen_ref(g);
}

static int snap_take(struct server *srv, struct snap *sn)
{
    int rc = 0;

    pthread_mutex_lock(&srv->srv_lock);
    sn->sn_gens = calloc(srv->srv_nlisteners + 1, sizeof(*sn->sn_gens));
    if (!sn->sn_gens)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < srv->srv_nlisteners; i++) {
        rc = snap_listener(sn, srv->srv_listeners[i]);
        snap_hook(sn, srv->srv_listeners[i]);
    }
    for (size_t i = 0; rc == 0 && i < srv->srv_ndraining; i++)
        rc = snap_listener(sn, srv->srv_draining[i]);
    pthread_mutex_unlock(&srv->srv_lock);
    return rc;
}

static void snap_release(struct snap *sn)
{
    for (size_t i = 0; i < sn->sn_ngens; i++)
        lgen_unref(&sn->sn_gens[i]);
    free(sn->sn_gens);
    json_decref(sn->sn_listeners);
}

/* ---- the plugins' figures ------------------------------------------------------------ */

/* Merges from into into: numbers are added, objects merged member by
 * member, anything else kept from the first that had it. */
static int merge(json_t *into, json_t *from)
{
    const char *key;
    json_t *v, *have;
    int rc = 0;

    json_object_foreach(from, key, v) {
        have = json_object_get(into, key);
        if (!have)
            rc |= json_object_set_new(into, key, json_deep_copy(v));
        else if (json_is_integer(have) && json_is_integer(v))
            rc |= json_integer_set(have, json_integer_value(have) + json_integer_value(v));
        else if (json_is_number(have) && json_is_number(v))
            rc |= json_object_set_new(into, key, json_real(json_number_value(have) +
                                                           json_number_value(v)));
        else if (json_is_object(have) && json_is_object(v))
            rc |= merge(have, v);
    }
    return rc;
}

/* Calls one instance's hook and merges what it says into plugins.NAME. */
static int plugin_figures(json_t *plugins, const struct lgen *g)
{
    const struct plugin_inst *pi = g->lg_inst;
    json_t *out = json_object(), *into;
    int rc = -1;

    if (!out)
        return -1;
    if (pi->pi_desc->stats(pi->pi_instance, out) < 0 || !json_is_object(out)) {
        json_decref(out);
        return 0;                   /* the plugin's problem: its figures are left out */
    }
    if (!(into = json_object_get(plugins, g->lg_plugin)))
        rc = json_object_set_new(plugins, g->lg_plugin, json_deep_copy(out));
    else
        rc = merge(into, out);
    json_decref(out);
    return rc;
}

static json_t *plugins_json(const struct snap *sn)
{
    json_t *o = json_object();
    int rc = 0;

    for (size_t i = 0; o && i < sn->sn_ngens; i++)
        rc |= plugin_figures(o, sn->sn_gens[i]);
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- the registry's streams ------------------------------------------------------------ */

static int stream_json(void *arg, const char *name, const struct wharf_memstream_stats *st)
{
    json_t *streams = arg, *o, *key;
    int rc;

    o = json_pack("{s:I, s:o, s:I, s:I, s:I, s:I}",
                  "current_buffer_used", (json_int_t)st->current_buffer_used,
                  "max_buffer_size", st->max_buffer_size == WHARF_UNBOUNDED
                                         ? json_null() : json_integer(st->max_buffer_size),
                  "open_send_streams", (json_int_t)st->open_send_streams,
                  "open_receive_streams", (json_int_t)st->open_receive_streams,
                  "tasks_waiting_send", (json_int_t)st->tasks_waiting_send,
                  "tasks_waiting_receive", (json_int_t)st->tasks_waiting_receive);
    if (!o || !(key = text(name))) {
        json_decref(o);
        return -ENOMEM;
    }
    rc = json_object_set_new(streams, json_string_value(key), o);
    json_decref(key);
    return rc < 0 ? -ENOMEM : 0;
}

static json_t *streams_json(void)
{
    json_t *o = json_object();

    if (o && wharf_registry_statistics(stream_json, o) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- the snapshot ------------------------------------------------------------------------ */

/* version ... workers, and reloads (under srv_lock). */
static int server_json(struct server *srv, json_t *o)
{
    int rc = 0;

    rc |= json_object_set_new(o, "version", json_string(WHARF_VERSION));
    rc |= json_object_set_new(o, "pid", json_integer(getpid()));
    rc |= json_object_set_new(o, "started_at", iso_time(srv->srv_started_at));
    rc |= json_object_set_new(o, "uptime_seconds",
                              seconds(wharf_clock() - srv->srv_started_mono));
    rc |= json_object_set_new(o, "workers", json_integer(srv->srv_nworkers));
    pthread_mutex_lock(&srv->srv_lock);
    rc |= json_object_set_new(o, "reloads", json_pack(
        "{s:I, s:I, s:o, s:o}",
        "ok", (json_int_t)srv->srv_reloads_ok,
        "failed", (json_int_t)srv->srv_reloads_failed,
        "last_error", srv->srv_reload_error ? text(srv->srv_reload_error) : json_null(),
        "last_at", iso_time(srv->srv_reload_at)));
    pthread_mutex_unlock(&srv->srv_lock);
    return rc;
}

json_t *stats_snapshot(struct server *srv)
{
    struct snap sn = { json_object(), 0, 0, NULL, 0 };
    json_t *o = json_object();
    int rc = 0;

    if (!o || !sn.sn_listeners || snap_take(srv, &sn) < 0) {
        snap_release(&sn);
        json_decref(o);
        return NULL;
    }
    rc |= server_json(srv, o);
    rc |= json_object_set_new(o, "connections", json_pack("{s:I, s:I}", "active", sn.sn_active,
                                                          "accepted", sn.sn_accepted));
    rc |= json_object_set(o, "listeners", sn.sn_listeners);
    rc |= json_object_set_new(o, "plugins", plugins_json(&sn));
    rc |= json_object_set_new(o, "streams", streams_json());
    snap_release(&sn);
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- Prometheus ------------------------------------------------------------------------------ */

/* Label values escape backslash, double quote and newline; HELP texts
 * backslash and newline (the text format 0.0.4). */
static void put_escaped(FILE *f, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else if (*s == '"' && quote)
            fputs("\\\"", f);
        else
            fputc(*s, f);
    }
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s ", name);
    put_escaped(f, help, false);
    fprintf(f, "\n# TYPE %s %s\n", name, type);
}

/* A sample value: integers as they are, reals with 15 digits, booleans
 * 1/0, null +Inf (an unbounded size). */
static void put_value(FILE *f, const json_t *v)
{
    if (json_is_integer(v))
        fprintf(f, "%" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
    else if (json_is_real(v))
        fprintf(f, "%.15g\n", json_real_value(v));
    else if (json_is_boolean(v))
        fputs(json_is_true(v) ? "1\n" : "0\n", f);
    else
        fputs("+Inf\n", f);
}

struct label {
    const char *l_name;
    const char *l_value;
};

/* name{l1="v1",...} value */
static void sample(FILE *f, const char *name, const struct label *labels, size_t n,
                   const json_t *v)
{
    fputs(name, f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s%s=\"", i ? "," : "{", labels[i].l_name);
        put_escaped(f, labels[i].l_value, true);
        fputc('"', f);
    }
    if (n > 0)
        fputc('}', f);
    fputc(' ', f);
    put_value(f, v);
}

/* ---- the server's figures ---- */

/* "2026-11-22T10:00:00Z" as seconds since the epoch; NULL when v is not
 * such a time (null: there was none). A new reference. */
static json_t *iso_seconds(const json_t *v)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (!json_is_string(v) ||
        sscanf(json_string_value(v), "%4d-%2d-%2dT%2d:%2d:%2dZ", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return NULL;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return json_integer((json_int_t)timegm(&tm));
}

/* The unlabelled figures: a member (or a member of a member) of the
 * snapshot each. */
static const struct {
    const char *name, *type, *help;
    const char *key, *sub;          /* snapshot[key] or snapshot[key][sub] */
    bool time;                      /* an ISO 8601 string, shown as seconds */
} server_metrics[] = {
    { "wharf_pid", "gauge", "The process id of wharfd.", "pid", NULL, false },
    { "wharf_started_at_seconds", "gauge", "When wharfd started, in seconds since the epoch.",
      "started_at", NULL, true },
    { "wharf_uptime_seconds", "gauge", "Seconds since wharfd started.", "uptime_seconds",
      NULL, false },
    { "wharf_workers", "gauge", "Worker threads running.", "workers", NULL, false },
    { "wharf_reloads_ok_total", "counter", "Reloads (SIGHUP) that took effect.", "reloads",
      "ok", false },
    { "wharf_reloads_failed_total", "counter", "Reloads refused: the configuration was not "
      "valid, nothing changed.", "reloads", "failed", false },
    { "wharf_reloads_last_at_seconds", "gauge", "When the last reload, ok or failed, happened, "
      "in seconds since the epoch.", "reloads", "last_at", true },
    { "wharf_connections_active", "gauge", "Open connections, all stream listeners.",
      "connections", "active", false },
    { "wharf_connections_accepted_total", "counter", "Connections accepted, all stream "
      "listeners.", "connections", "accepted", false },
};

static void prom_server(FILE *f, const json_t *snap)
{
    const json_t *version = json_object_get(snap, "version");
    json_t *one = json_integer(1);

    if (json_is_string(version) && one) {
        struct label l = { "version", json_string_value(version) };

        family(f, "wharf_version_info", "gauge", "The version of wharfd, as a label.");
        sample(f, "wharf_version_info", &l, 1, one);
    }
    json_decref(one);
    for (size_t i = 0; i < sizeof(server_metrics) / sizeof(server_metrics[0]); i++) {
        json_t *v = json_object_get(snap, server_metrics[i].key);

        if (server_metrics[i].sub)
            v = json_object_get(v, server_metrics[i].sub);
        v = server_metrics[i].time ? iso_seconds(v) : json_incref(v);
        if (!json_is_number(v)) {
            json_decref(v);
            continue;
        }
        family(f, server_metrics[i].name, server_metrics[i].type, server_metrics[i].help);
        sample(f, server_metrics[i].name, NULL, 0, v);
        json_decref(v);
    }
}

/* ---- listeners ---- */

static const struct {
    const char *key, *help;
} listener_metrics[] = {
    { "accepted", "Connections accepted." },
    { "active", "Connections open now." },
    { "closed", "Connections closed." },
    { "rejected", "Connections closed at once: max_connections were open." },
    { "errors", "Connections that ended in an error (handler, PROXY header, ...)." },
    { "bytes_in", "Application bytes received (after TLS decryption)." },
    { "bytes_out", "Application bytes sent (before TLS encryption)." },
    { "datagrams_in", "Datagrams received (UDP)." },
    { "datagrams_out", "Datagrams sent (UDP)." },
    { "handshakes", "TLS handshakes completed." },
    { "handshake_failures", "TLS handshakes failed or timed out." },
    { "resumed", "TLS sessions resumed." },
    { "ragged_eofs", "TLS connections the peer ended without close_notify." },
    { "timeouts", "Connections ended by idle_timeout." },
};

static const char *const info_keys[] = { "kind", "address", "tls", "plugin", "state" };
#define NINFO (sizeof(info_keys) / sizeof(info_keys[0]))

/* wharf_listener_info{listener=,kind=,address=,tls=,plugin=,state=} 1 */
static void prom_listener_info(FILE *f, json_t *listeners)
{
    json_t *one = json_integer(1), *l;
    const char *name;

    if (!one)
        return;
    family(f, "wharf_listener_info", "gauge", "A listener, with what the configuration gave it "
           "as labels (state: active, or draining after a reload removed it).");
    json_object_foreach(listeners, name, l) {
        struct label labels[1 + NINFO] = { { "listener", name } };

        for (size_t i = 0; i < NINFO; i++) {
            const json_t *v = json_object_get(l, info_keys[i]);

            labels[1 + i].l_name = info_keys[i];
            labels[1 + i].l_value = json_is_string(v) ? json_string_value(v)
                                    : json_is_true(v) ? "true" : json_is_false(v) ? "false" : "";
        }
        sample(f, "wharf_listener_info", labels, 1 + NINFO, one);
    }
    json_decref(one);
}

static void prom_listener_counter(FILE *f, json_t *listeners, const char *key, const char *help)
{
    bool gauge = strcmp(key, "active") == 0;
    char name[96];
    const char *lname;
    json_t *l, *v;

    snprintf(name, sizeof(name), "wharf_listener_%s%s", key, gauge ? "" : "_total");
    family(f, name, gauge ? "gauge" : "counter", help);
    json_object_foreach(listeners, lname, l) {
        struct label label = { "listener", lname };

        if (json_is_number(v = json_object_get(l, key)))
            sample(f, name, &label, 1, v);
    }
}

static void prom_tls_versions(FILE *f, json_t *listeners)
{
    static const char name[] = "wharf_listener_tls_versions_total";
    const char *lname, *version;
    bool any = false;
    json_t *l, *v;

    json_object_foreach(listeners, lname, l)
        any = any || json_object_size(json_object_get(l, "tls_versions")) > 0;
    if (!any)
        return;                     /* no TLS yet: no family without samples */
    family(f, name, "counter", "TLS handshakes completed, by protocol version.");
    json_object_foreach(listeners, lname, l) {
        json_object_foreach(json_object_get(l, "tls_versions"), version, v) {
            struct label labels[2] = { { "listener", lname }, { "version", version } };

            sample(f, name, labels, 2, v);
        }
    }
}

static void prom_listeners(FILE *f, const json_t *snap)
{
    json_t *listeners = json_object_get(snap, "listeners");

    if (json_object_size(listeners) == 0)
        return;
    prom_listener_info(f, listeners);
    for (size_t i = 0; i < sizeof(listener_metrics) / sizeof(listener_metrics[0]); i++)
        prom_listener_counter(f, listeners, listener_metrics[i].key, listener_metrics[i].help);
    prom_tls_versions(f, listeners);
}

/* ---- streams ---- */

static const struct {
    const char *key, *help;
} stream_metrics[] = {
    { "current_buffer_used", "Items in the stream's buffer." },
    { "max_buffer_size", "The stream's buffer size (+Inf: unbounded)." },
    { "open_send_streams", "Open send handles, clones included." },
    { "open_receive_streams", "Open receive handles, clones included." },
    { "tasks_waiting_send", "Tasks blocked sending." },
    { "tasks_waiting_receive", "Tasks blocked receiving." },
};

static void prom_streams(FILE *f, const json_t *snap)
{
    json_t *streams = json_object_get(snap, "streams"), *st;
    const char *sname;
    char name[96];

    if (json_object_size(streams) == 0)
        return;
    for (size_t i = 0; i < sizeof(stream_metrics) / sizeof(stream_metrics[0]); i++) {
        snprintf(name, sizeof(name), "wharf_stream_%s", stream_metrics[i].key);
        family(f, name, "gauge", stream_metrics[i].help);
        json_object_foreach(streams, sname, st) {
            struct label label = { "stream", sname };
            json_t *v = json_object_get(st, stream_metrics[i].key);

            if (v)
                sample(f, name, &label, 1, v);
        }
    }
}

/* ---- plugins ---- */

/* Appends key to name, as a metric name's characters ([A-Za-z0-9_]). */
static void name_append(char *name, size_t size, const char *key)
{
    size_t n = strlen(name);

    if (n + 1 < size)
        name[n++] = '_';
    for (; *key && n + 1 < size; key++) {
        char c = *key;

        name[n++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') ? c : '_';
    }
    name[n] = '\0';
}

/* Every number (and boolean) under o, as wharf_plugin_NAME_PATH, untyped:
 * only the plugin knows what its figures are. Names already written (two
 * keys that differ only in characters a metric name cannot hold) are
 * skipped, so that no family is repeated. */
static void prom_plugin_walk(FILE *f, json_t *o, const char *prefix, const char *path,
                             json_t *seen)
{
    char name[256], where[512];
    const char *key;
    json_t *v;

    json_object_foreach(o, key, v) {
        snprintf(name, sizeof(name), "%s", prefix);
        name_append(name, sizeof(name), key);
        snprintf(where, sizeof(where), "%s.%s", path, key);
        if (json_is_object(v)) {
            prom_plugin_walk(f, v, name, where, seen);
            continue;
        }
        if (!(json_is_number(v) || json_is_boolean(v)) || json_object_get(seen, name) ||
            json_object_set_new(seen, name, json_true()) < 0)
            continue;
        family(f, name, "untyped", where);
        sample(f, name, NULL, 0, v);
    }
}

static void prom_plugins(FILE *f, const json_t *snap)
{
    json_t *plugins = json_object_get(snap, "plugins"), *o, *seen = json_object();
    char prefix[128], path[160];
    const char *pname;

    json_object_foreach(plugins, pname, o) {
        snprintf(prefix, sizeof(prefix), "wharf_plugin");
        name_append(prefix, sizeof(prefix), pname);
        snprintf(path, sizeof(path), "plugins.%s", pname);
        if (seen)
            prom_plugin_walk(f, o, prefix, path, seen);
    }
    json_decref(seen);
}

char *stats_prometheus(const json_t *snapshot)
{
    json_t *snap = (json_t *)(uintptr_t)snapshot;  /* jansson's iteration is not const */
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    if (!json_is_object(snap) || !(f = open_memstream(&text, &len)))
        return NULL;
    prom_server(f, snap);
    prom_listeners(f, snap);
    prom_streams(f, snap);
    prom_plugins(f, snap);
    if (ferror(f)) {
        fclose(f);
        free(text);
        return NULL;
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
