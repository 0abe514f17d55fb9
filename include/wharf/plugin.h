/*
 * wharf/plugin.h: what a handler plugin exports, and what wharfd gives it.
 *
 * A plugin named NAME is the shared object NAME.so in plugin_dir. It
 * exports one descriptor, a `const struct wharf_plugin` called
 * `wharf_plugin`, whose first fields (filled in by WHARF_PLUGIN_HEAD) say
 * which API it was built against:
 *
 *     static void *hello_init(const json_t *options,
 *                             const struct wharf_plugin_env *env,
 *                             struct wharf_plugin_error *err);
 *     static int hello_serve(void *instance, struct wharf_stream *stream);
 *     static void hello_fini(void *instance);
 *
 *     const struct wharf_plugin wharf_plugin = {
 *         WHARF_PLUGIN_HEAD("hello"),
 *         .init = hello_init,
 *         .handle_stream = hello_serve,
 *         .fini = hello_fini,
 *     };
 *
 * Versioning: wharfd loads a plugin whose api_major equals its own
 * WHARF_API_MAJOR and whose api_minor is at most its own WHARF_API_MINOR.
 * The minor grows when something is added (a function, a member, a new
 * attribute); the major when anything a built plugin relies on changes or
 * goes. Within a major, new descriptor members take the place of `reserved`
 * slots, so the descriptor keeps its size and api_minor says which members
 * a plugin knows; `size` only guards against a truncated or foreign
 * descriptor.
 *
 * Life cycle: wharfd calls init once per listener that names the plugin
 * (and again for each reload that keeps or adds that listener), with the
 * listener's handler options; the instance it returns serves every
 * connection of that listener generation, from every worker thread at
 * once: keep per-connection state on the handler's stack, and protect
 * shared mutable state. fini is called when the last connection of the
 * generation has ended.
 *
 * Handlers run on task stacks of 64 KiB: buffers of more than a few KiB
 * belong on the heap. A handler whose task is cancelled (idle_timeout,
 * reload, shutdown) sees WHARF_ECANCELLED from its next call and should
 * return it; that is not counted as an error.
 *
 * A stream handler whose connection sits idle can park instead of waiting
 * on its stack (API 0.4, wharf/task.h: wharf_park_on, wharf_park): it
 * returns WHARF_PARKED, and its continuation runs as the handler when a
 * stream it named is readable, or when the connection is cancelled. The
 * connection's idle_timeout runs on meanwhile.
 */
#ifndef WHARF_PLUGIN_H
#define WHARF_PLUGIN_H

#include <stddef.h>
#include <jansson.h>
#include <wharf/wharf.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The name of the descriptor symbol wharfd looks up. */
#define WHARF_PLUGIN_SYMBOL "wharf_plugin"

/* What kind of listener an instance serves. */
enum wharf_listener_kind {
    WHARF_LISTENER_STREAM = 1,      /* tcp or unix, with or without TLS */
    WHARF_LISTENER_DATAGRAM = 2     /* udp */
};

/* What wharfd tells init about the listener. Fields are only appended. */
struct wharf_plugin_env {
    const char *config_dir;         /* resolve relative paths in options against it */
    const char *listener;           /* the listener's name */
    int kind;                       /* enum wharf_listener_kind */

    /* Since plugin API 0.2 (a plugin built with these headers says
     * api_minor 2, so an older wharfd, whose env ends above, refuses it).
     * The host's statistics (SPEC.md section 6), for plugins that export
     * them (the bundled `stats`). The env itself lives only during init,
     * but these function pointers may be kept and called later, from any
     * worker, inside a handler or not. NULL members: the host has none
     * (a test harness may give its own). */

    /* The whole JSON object of `GET /stats`, summed from every worker at
     * the call: a new reference, the caller's to json_decref. NULL: out of
     * memory, or the host is not running (no statistics yet). */
    json_t *(*stats)(void);
    /* The figures of a snapshot that stats() returned, in the Prometheus
     * text exposition format 0.0.4 (HELP and TYPE lines, names `wharf_`
     * plus the JSON path, counters ending in _total): a NUL-terminated
     * string the caller frees with free(). NULL: out of memory. */
    char *(*stats_prometheus)(const json_t *snapshot);
};

/* How init rejects its options: wharfd reports the message as a config
 * error, on the line of `key` when it names one of the options. */
struct wharf_plugin_error {
    char key[64];                   /* the option at fault, or "" */
    char message[1024];
};

struct wharf_plugin {
    unsigned api_major;             /* WHARF_API_MAJOR: always first */
    unsigned api_minor;             /* WHARF_API_MINOR */
    size_t size;                    /* sizeof(struct wharf_plugin) as built */
    const char *name;

    /* Required. Checks the options (the handler group's settings other
     * than `plugin`, as a JSON object: integers, reals, strings, booleans,
     * arrays, objects; wharfd's, not to be modified or kept: it is not const
     * only because jansson's iteration needs that) and makes an instance.
     * Unknown options must be rejected, like the core rejects unknown
     * settings. Returns the instance (any non-NULL pointer), or NULL with
     * err filled in (an empty message means out of memory). May block: it
     * runs at start and reload, not on a worker. */
    void *(*init)(json_t *options, const struct wharf_plugin_env *env,
                  struct wharf_plugin_error *err);

    /* Serves one connection of a stream listener, in a task of its own.
     * The stream is buffered (wharf_receive_until works on it) and already
     * TLS-wrapped where the listener says so; wharfd closes and frees it
     * after the call. Returns 0, or a negative code: the connection is then
     * counted in the listener's `errors` and logged. NULL: the plugin
     * cannot serve stream listeners (a config error). */
    int (*handle_stream)(void *instance, struct wharf_stream *stream);

    /* Serves a datagram listener: called once per worker, in a task, with
     * that worker's UDP socket (wharf_receive_from / wharf_send_to), and
     * expected to loop until cancelled (reload, shutdown); wharfd owns the
     * socket. A reload that changes the listener restarts it: return
     * WHARF_ECANCELLED as soon as a call gives it (a handler that does not
     * is cancelled drain_timeout after the reload). Returns as
     * handle_stream. NULL: no datagram listeners. */
    int (*handle_datagrams)(void *instance, struct wharf_stream *socket);

    /* Optional: adds the instance's own figures to `out`, an empty
     * object, as members (numbers, booleans, strings, nested objects).
     * The statistics show them under `plugins.NAME`, NAME being the
     * plugin's name; the instances of several listeners naming the plugin
     * are merged there: numbers are added up member by member (nested
     * objects too), other values are taken from the first listener that
     * has them. An instance therefore reports its own share (its
     * listener's connections), and figures of state that instances share
     * (a topic used by several listeners) from one instance only, or
     * nested under its listener's name. Called from any worker, at the
     * same time as the handlers; returns 0, or a negative code (its
     * figures are then left out). */
    int (*stats)(void *instance, json_t *out);

    /* Releases the instance. Optional. */
    void (*fini)(void *instance);

    void *reserved[8];              /* zero: room for additions */
};

/* Every plugin defines it; declared here so that the compiler checks the
 * definition's type. */
extern const struct wharf_plugin wharf_plugin;

/* The ABI head of a descriptor, for a designated initializer. */
#define WHARF_PLUGIN_HEAD(plugin_name)                                  \
    .api_major = WHARF_API_MAJOR, .api_minor = WHARF_API_MINOR,         \
    .size = sizeof(struct wharf_plugin), .name = (plugin_name)

#ifdef __cplusplus
}
#endif
#endif /* WHARF_PLUGIN_H */
