/*
 * plugin.c: the plugin loader. Opens NAME.so from plugin_dir, checks its
 * descriptor against the API this wharfd provides (include/wharf/plugin.h),
 * makes one instance per listener and refcounts it: the generation holds a
 * reference, each connection another, and the last one out calls fini and
 * dlclose. Every refusal is one line saying what to do about it.
 * Not for: running handlers (the workers do that) or parsing the config.
 */
#include "config.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharfd.h"

/* What a descriptor must hold for this wharfd to use it: everything up to
 * fini (the reserved slots are the plugin's to leave zero). */
#define DESC_MIN_SIZE offsetof(struct wharf_plugin, reserved)

static int fail(struct plugin_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct plugin_error *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err->pe_message, sizeof(err->pe_message), fmt, ap);
    va_end(ap);
    return -1;
}

static const char *kind_name(int kind)
{
    return kind == WHARF_LISTENER_DATAGRAM ? "udp" : "stream";
}

/* ---- the descriptor ------------------------------------------------------- */

static int check_api(const char *name, const char *path, const struct wharf_plugin *d,
                     struct plugin_error *err)
{
    if (d->api_major != WHARF_API_MAJOR)
        return fail(err, "plugin \"%s\" (%s) was built for plugin API %u.%u; this wharfd "
                    "provides %d.%d: rebuild the plugin against wharf %s's headers",
                    name, path, d->api_major, d->api_minor, WHARF_API_MAJOR,
                    WHARF_API_MINOR, WHARF_VERSION);
    if (d->api_minor > WHARF_API_MINOR)
        return fail(err, "plugin \"%s\" (%s) needs plugin API %u.%u; this wharfd provides "
                    "%d.%d: upgrade wharfd or use an older build of the plugin",
                    name, path, d->api_major, d->api_minor, WHARF_API_MAJOR,
                    WHARF_API_MINOR);
    if (d->size < DESC_MIN_SIZE)
        return fail(err, "plugin \"%s\" (%s) has a descriptor of %zu bytes, less than the "
                    "%zu of plugin API %u.%u: the plugin is broken; rebuild it against "
                    "wharf %s's headers", name, path, d->size, DESC_MIN_SIZE,
                    d->api_major, d->api_minor, WHARF_VERSION);
    return 0;
}

int plugin_check(const char *name, const char *path, const struct wharf_plugin *d,
                 int kind, struct plugin_error *err)
{
    const void *handler = kind == WHARF_LISTENER_DATAGRAM ? (const void *)d->handle_datagrams
                                                          : (const void *)d->handle_stream;

    if (check_api(name, path, d, err) < 0)
        return -1;
    if (!handler)
        return fail(err, "plugin \"%s\" cannot serve %s listeners", name, kind_name(kind));
    if (!d->init)
        return fail(err, "plugin \"%s\" (%s) has no init: not a usable wharf plugin", name,
                    path);
    return 0;
}

/* ---- opening ---------------------------------------------------------------- */

static void *open_object(const char *path, struct plugin_error *err)
{
    void *h;

    dlerror();
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();

        fail(err, "cannot load plugin: %s", why ? why : path);
    }
    return h;
}

static const struct wharf_plugin *find_descriptor(void *h, const char *path,
                                                  struct plugin_error *err)
{
    const struct wharf_plugin *d = dlsym(h, WHARF_PLUGIN_SYMBOL);

    if (!d)
        fail(err, "%s exports no %s descriptor: not a wharf plugin", path,
             WHARF_PLUGIN_SYMBOL);
    return d;
}

/* init's answer; the plugin's strings are clamped in case it forgot the NUL. */
static void *call_init(const struct wharf_plugin *d, json_t *options,
                       const struct wharf_plugin_env *env, struct plugin_error *err)
{
    struct wharf_plugin_error perr;
    void *instance;

    memset(&perr, 0, sizeof(perr));
    instance = d->init(options, env, &perr);
    if (instance)
        return instance;
    perr.key[sizeof(perr.key) - 1] = '\0';
    perr.message[sizeof(perr.message) - 1] = '\0';
    snprintf(err->pe_key, sizeof(err->pe_key), "%s", perr.key);
    fail(err, "%s", perr.message[0] ? perr.message : "out of memory");
    return NULL;
}

static struct plugin_inst *inst_new(void *h, const struct wharf_plugin *d, void *instance,
                                    struct plugin_error *err)
{
    struct plugin_inst *p = calloc(1, sizeof(*p));

    if (!p) {
        fail(err, "out of memory");
        return NULL;
    }
    p->pi_handle = h;
    p->pi_desc = d;
    p->pi_instance = instance;
    atomic_init(&p->pi_refs, 1);
    return p;
}

static int open_path(const char *path, const char *name, const struct wharf_plugin_env *env,
                     json_t *options, struct plugin_inst **out,
                     struct plugin_error *err)
{
    void *h = open_object(path, err), *instance = NULL;
    const struct wharf_plugin *d;

    if (!h)
        return -1;
    d = find_descriptor(h, path, err);
    if (!d || plugin_check(name, path, d, env->kind, err) < 0)
        goto fail_close;
    instance = call_init(d, options, env, err);
    if (!instance)
        goto fail_close;
    *out = inst_new(h, d, instance, err);
    if (!*out)
        goto fail_fini;
    return 0;

fail_fini:
    if (d->fini)
        d->fini(instance);
fail_close:
    dlclose(h);
    return -1;
}

int plugin_open(const char *plugin_dir, const char *name,
                const struct wharf_plugin_env *env, json_t *options,
                struct plugin_inst **out, struct plugin_error *err)
{
    char path[PATH_MAX];
    int n;

    *out = NULL;
    memset(err, 0, sizeof(*err));
    n = snprintf(path, sizeof(path), "%s/%s.so", plugin_dir, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return fail(err, "cannot load plugin \"%s\": %s/%s.so: path too long", name,
                    plugin_dir, name);
    return open_path(path, name, env, options, out, err);
}

/* ---- references ------------------------------------------------------------- */

struct plugin_inst *plugin_ref(struct plugin_inst *p)
{
    atomic_fetch_add_explicit(&p->pi_refs, 1, memory_order_relaxed);
    return p;
}

/* acq_rel: whatever a connection wrote to the instance happens before fini. */
void plugin_unref(struct plugin_inst **pp)
{
    struct plugin_inst *p = *pp;

    *pp = NULL;
    if (!p || atomic_fetch_sub_explicit(&p->pi_refs, 1, memory_order_acq_rel) != 1)
        return;
    if (p->pi_desc->fini)
        p->pi_desc->fini(p->pi_instance);
    dlclose(p->pi_handle);
    free(p);
}

/* ---- a generation ------------------------------------------------------------ */

/* "listeners.[i].handler", or "...handler.plugin" when the handler is a
 * group (the name then has a line of its own). */
static void handler_setting(const struct conf *conf, const struct conf_listener *l,
                            char *buf, size_t size)
{
    snprintf(buf, size, "%s.handler.plugin", l->lst_setting);
    if (conf_line(conf, buf) <= 0)
        snprintf(buf, size, "%s.handler", l->lst_setting);
}

/* The option init blamed, when it is a setting of the file (nested ones
 * too: "tls.key" names listeners.[i].handler.tls.key); else the handler. */
static void blamed_setting(const struct conf *conf, const struct conf_listener *l,
                           const char *key, char *buf, size_t size)
{
    snprintf(buf, size, "%s.handler.%s", l->lst_setting, key);
    if (!*key || conf_line(conf, buf) <= 0)
        handler_setting(conf, l, buf, size);
}

static int listener_kind(const struct conf_listener *l)
{
    return l->lst_kind == CONF_UDP ? WHARF_LISTENER_DATAGRAM : WHARF_LISTENER_STREAM;
}

static int load_one(struct conf *conf, struct conf_listener *l, struct conf_errors *errs)
{
    struct wharf_plugin_env env = { conf->conf_dir, l->lst_name, listener_kind(l),
                                    stats_current, stats_prometheus };
    struct plugin_error err;
    char setting[1024];

    if (plugin_open(conf->conf_plugin_dir, l->lst_plugin, &env, l->lst_options,
                    &l->lst_inst, &err) == 0)
        return 0;
    blamed_setting(conf, l, err.pe_key, setting, sizeof(setting));
    conf_report(conf, errs, setting, "%s", err.pe_message);
    return -1;
}

int plugin_load_all(struct conf *conf, struct conf_errors *errs)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < conf->conf_nlisteners; i++) {
        struct conf_listener *l = &conf->conf_listeners[i];

        if (l->lst_inst || !l->lst_plugin || !l->lst_name || !l->lst_options ||
            l->lst_kind == CONF_KIND_NONE)
            continue;
        if (load_one(conf, l, errs) < 0)
            rc = -1;
    }
    return rc;
}
