/*
 * check_plugin.c: the plugin loader (src/plugin.c) with the test plugins of
 * tests/plugins/ (built in $WHARF_BUILDDIR/tests/plugins/.libs): each
 * refusal's exact message, the instance's life (init once, fini exactly
 * once after the last reference, wherever it is dropped), and whole config
 * files going through conf_load + plugin_load_all, as `wharfd -t` does.
 * The test keeps its own dlopen handle on good.so where it reads good's
 * counters, so that they outlive the loader's dlclose.
 */
#include "config.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "wharfd.h"

/* ---- helpers --------------------------------------------------------------- */

static const char *plugin_dir(void)
{
    static char dir[PATH_MAX];
    const char *b = getenv("WHARF_BUILDDIR");

    ck_assert_msg(b != NULL, "WHARF_BUILDDIR is not set (run through make check)");
    snprintf(dir, sizeof(dir), "%s/tests/plugins/.libs", b);
    return dir;
}

static const char *so_path(const char *name)
{
    static char path[PATH_MAX + 64];

    snprintf(path, sizeof(path), "%s/%s.so", plugin_dir(), name);
    return path;
}

/* Whether the loader left the object mapped (it must not after a refusal). */
static bool still_loaded(const char *name)
{
    void *h = dlopen(so_path(name), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);

    if (h)
        dlclose(h);
    return h != NULL;
}

/* good.so's observable state, through the test's own handle. */
struct good_view {
    void *handle;
    int *inits, *finis, *kind;
    const char *listener, *config_dir, *options;
};

static void *sym(void *h, const char *name)
{
    void *p = dlsym(h, name);

    ck_assert_msg(p != NULL, "%s: %s", name, dlerror());
    return p;
}

static struct good_view hold_good(void)
{
    struct good_view g;

    g.handle = dlopen(so_path("good"), RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(g.handle != NULL, "%s", dlerror());
    g.inits = sym(g.handle, "good_inits");
    g.finis = sym(g.handle, "good_finis");
    g.kind = sym(g.handle, "good_last_kind");
    g.listener = sym(g.handle, "good_last_listener");
    g.config_dir = sym(g.handle, "good_last_config_dir");
    g.options = sym(g.handle, "good_last_options");
    return g;
}

static const struct wharf_plugin_env stream_env = { "/etc/wharf", "web", WHARF_LISTENER_STREAM };
static const struct wharf_plugin_env udp_env = { "/etc/wharf", "dns", WHARF_LISTENER_DATAGRAM };

/* plugin_open expected to fail; returns the message. */
static const char *refusal(const char *name, const struct wharf_plugin_env *env,
                           const char *options_json, struct plugin_error *err)
{
    json_t *options = json_loads(options_json, 0, NULL);
    struct plugin_inst *p = (struct plugin_inst *)1;

    ck_assert_ptr_nonnull(options);
    ck_assert_int_eq(plugin_open(plugin_dir(), name, env, options, &p, err), -1);
    ck_assert_ptr_null(p);
    json_decref(options);
    ck_assert_msg(!still_loaded(name), "%s.so left loaded", name);
    return err->pe_message;
}

static struct plugin_inst *open_good(const struct wharf_plugin_env *env, const char *opts)
{
    json_t *options = json_loads(opts, 0, NULL);
    struct plugin_inst *p = NULL;
    struct plugin_error err;

    ck_assert_int_eq(plugin_open(plugin_dir(), "good", env, options, &p, &err), 0);
    ck_assert_ptr_nonnull(p);
    json_decref(options);
    return p;
}

/* ---- refusals ---------------------------------------------------------------- */

START_TEST(missing_file)
{
    struct plugin_error err;
    char want[2 * PATH_MAX];

    snprintf(want, sizeof(want), "cannot load plugin: %s: cannot open shared object file: "
             "No such file or directory", so_path("nope"));
    ck_assert_str_eq(refusal("nope", &stream_env, "{}", &err), want);
    ck_assert_str_eq(err.pe_key, "");
}
END_TEST

START_TEST(not_an_object)
{
    char dir[PATH_MAX], path[PATH_MAX + 16], want[2 * PATH_MAX];
    struct plugin_inst *p = NULL;
    struct plugin_error err;
    FILE *fp;

    snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
    snprintf(path, sizeof(path), "%s/junk.so", dir);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("not an ELF file\n", fp);
    fclose(fp);
    ck_assert_int_eq(plugin_open(dir, "junk", &stream_env, NULL, &p, &err), -1);
    unlink(path);
    snprintf(want, sizeof(want), "cannot load plugin: %s: ", path);
    ck_assert_msg(strncmp(err.pe_message, want, strlen(want)) == 0, "%s", err.pe_message);
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(no_descriptor)
{
    struct plugin_error err;
    char want[2 * PATH_MAX];

    snprintf(want, sizeof(want), "%s exports no wharf_plugin descriptor: not a wharf plugin",
             so_path("no_descriptor"));
    ck_assert_str_eq(refusal("no_descriptor", &stream_env, "{}", &err), want);
}
END_TEST

START_TEST(wrong_major)
{
    struct plugin_error err;
    char want[2 * PATH_MAX];

    snprintf(want, sizeof(want), "plugin \"wrong_abi\" (%s) was built for plugin API %d.0; "
             "this wharfd provides %d.%d: rebuild the plugin against wharf %s's headers",
             so_path("wrong_abi"), WHARF_API_MAJOR + 1, WHARF_API_MAJOR, WHARF_API_MINOR,
             WHARF_VERSION);
    ck_assert_str_eq(refusal("wrong_abi", &stream_env, "{}", &err), want);
}
END_TEST

START_TEST(no_handler)
{
    struct plugin_error err;

    ck_assert_str_eq(refusal("no_handler", &stream_env, "{}", &err),
                     "plugin \"no_handler\" cannot serve stream listeners");
    ck_assert_str_eq(refusal("no_handler", &udp_env, "{}", &err),
                     "plugin \"no_handler\" cannot serve udp listeners");
}
END_TEST

START_TEST(options_rejected)
{
    struct plugin_error err;

    ck_assert_str_eq(refusal("good", &stream_env, "{\"greeting\": \"hi\", \"colour\": 1}", &err),
                     "unknown option (good knows: greeting, datagrams)");
    ck_assert_str_eq(err.pe_key, "colour");
    ck_assert_str_eq(refusal("good", &stream_env, "{\"greeting\": 5}", &err),
                     "must be a string");
    ck_assert_str_eq(err.pe_key, "greeting");
    /* no key: the caller reports on the handler; no message: out of memory */
    ck_assert_str_eq(refusal("good", &udp_env, "{\"fail\": \"no luck\"}", &err), "no luck");
    ck_assert_str_eq(err.pe_key, "");
    ck_assert_str_eq(refusal("good", &udp_env, "{\"fail\": \"\"}", &err), "out of memory");
    ck_assert_str_eq(err.pe_key, "");
}
END_TEST

/* The checks the shipped test plugins cannot reach: one object has one
 * descriptor, so these are made here and fed to plugin_check. */
START_TEST(descriptor_checks)
{
    struct good_view g = hold_good();   /* d's pointers point into it */
    struct wharf_plugin d = *(const struct wharf_plugin *)sym(g.handle, "wharf_plugin");
    struct plugin_error err;
    char want[512];

    ck_assert_int_eq(plugin_check("x", "/p/x.so", &d, WHARF_LISTENER_STREAM, &err), 0);
    d.api_minor = WHARF_API_MINOR + 6;
    ck_assert_int_eq(plugin_check("x", "/p/x.so", &d, WHARF_LISTENER_STREAM, &err), -1);
    snprintf(want, sizeof(want), "plugin \"x\" (/p/x.so) needs plugin API %d.%d; this wharfd "
             "provides %d.%d: upgrade wharfd or use an older build of the plugin",
             WHARF_API_MAJOR, WHARF_API_MINOR + 6, WHARF_API_MAJOR, WHARF_API_MINOR);
    ck_assert_str_eq(err.pe_message, want);
    d.api_minor = 0;    /* an older minor is served */
    ck_assert_int_eq(plugin_check("x", "/p/x.so", &d, WHARF_LISTENER_DATAGRAM, &err), 0);
    d.size = offsetof(struct wharf_plugin, fini);
    ck_assert_int_eq(plugin_check("x", "/p/x.so", &d, WHARF_LISTENER_STREAM, &err), -1);
    snprintf(want, sizeof(want), "plugin \"x\" (/p/x.so) has a descriptor of %zu bytes, less "
             "than the %zu of plugin API %d.0: the plugin is broken; rebuild it against "
             "wharf %s's headers", offsetof(struct wharf_plugin, fini),
             offsetof(struct wharf_plugin, reserved), WHARF_API_MAJOR, WHARF_VERSION);
    ck_assert_str_eq(err.pe_message, want);
    d.size = sizeof(d);
    d.init = NULL;
    ck_assert_int_eq(plugin_check("x", "/p/x.so", &d, WHARF_LISTENER_STREAM, &err), -1);
    ck_assert_str_eq(err.pe_message, "plugin \"x\" (/p/x.so) has no init: not a usable wharf plugin");
    dlclose(g.handle);
}
END_TEST

/* ---- instances ----------------------------------------------------------------- */

START_TEST(instance)
{
    struct good_view g = hold_good();
    struct plugin_inst *p = open_good(&udp_env, "{\"greeting\": \"hey\"}");
    json_t *stats = json_object();

    ck_assert_int_eq(*g.inits, 1);
    ck_assert_int_eq(*g.finis, 0);
    ck_assert_str_eq(g.options, "{\"greeting\":\"hey\"}");
    ck_assert_str_eq(g.listener, "dns");
    ck_assert_str_eq(g.config_dir, "/etc/wharf");
    ck_assert_int_eq(*g.kind, WHARF_LISTENER_DATAGRAM);
    ck_assert_ptr_nonnull(p->pi_instance);
    ck_assert_str_eq(p->pi_desc->name, "good");
    ck_assert_ptr_eq(p->pi_desc, sym(g.handle, "wharf_plugin"));
    ck_assert_int_eq(p->pi_desc->handle_datagrams(p->pi_instance, NULL), 0);
    ck_assert_int_eq(p->pi_desc->stats(p->pi_instance, stats), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(stats, "inits")), 1);
    json_decref(stats);
    plugin_unref(&p);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(*g.finis, 1);
    plugin_unref(&p);   /* NULL: nothing */
    ck_assert_int_eq(*g.finis, 1);
    dlclose(g.handle);
    ck_assert(!still_loaded("good"));
}
END_TEST

/* The generation lets go first; a connection still serving keeps it. */
START_TEST(connection_outlives_generation)
{
    struct good_view g = hold_good();
    struct plugin_inst *gen = open_good(&stream_env, "{}");
    struct plugin_inst *conn = plugin_ref(gen);

    ck_assert_ptr_eq(conn, gen);
    plugin_unref(&gen);
    ck_assert_int_eq(*g.finis, 0);
    ck_assert_ptr_nonnull(conn->pi_instance);
    plugin_unref(&conn);
    ck_assert_int_eq(*g.inits, 1);
    ck_assert_int_eq(*g.finis, 1);
    dlclose(g.handle);
}
END_TEST

#define THREADS 4
#define ROUNDS 20000

static void *churn(void *arg)
{
    struct plugin_inst *gen = arg;
    int i;

    for (i = 0; i < ROUNDS; i++) {
        struct plugin_inst *conn = plugin_ref(gen);

        plugin_unref(&conn);
    }
    return NULL;
}

/* Workers take and drop references at once: fini only at the very end. */
START_TEST(refs_across_threads)
{
    struct good_view g = hold_good();
    struct plugin_inst *gen = open_good(&stream_env, "{}");
    pthread_t t[THREADS];
    int i;

    for (i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, churn, gen), 0);
    for (i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(*g.finis, 0);
    ck_assert_int_eq(atomic_load(&gen->pi_refs), 1);
    plugin_unref(&gen);
    ck_assert_int_eq(*g.finis, 1);
    dlclose(g.handle);
}
END_TEST

/* ---- config files ----------------------------------------------------------- */

static const char *write_conf(const char *body)
{
    static char path[PATH_MAX];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/p.conf", tu_tmpdir());
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "plugin_dir = \"%s\";\n%s", plugin_dir(), body);
    ck_assert_int_eq(fclose(fp), 0);
    return path;
}

static struct conf *load(const char *path)
{
    struct conf_errors *errs = conf_errors_new();
    struct conf *conf = NULL;

    ck_assert_int_eq(conf_load(path, &conf, errs), 0);
    conf_errors_free(errs);
    return conf;
}

/* plugin_load_all's lines joined by '\n', without the "FILE:" prefix. The
 * generation is freed here, which must release what did load. */
static char *load_errors(const char *body)
{
    static char out[8192];
    const char *path = write_conf(body);
    struct conf *conf = load(path);
    struct conf_errors *errs = conf_errors_new();
    size_t i, n = 0, plen = strlen(path);

    ck_assert_int_eq(plugin_load_all(conf, errs), -1);
    out[0] = '\0';
    for (i = 0; i < errs->err_count; i++) {
        const char *t = errs->err_items[i].ce_text;

        ck_assert_msg(strncmp(t, path, plen) == 0 && t[plen] == ':', "%s", t);
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", i ? "\n" : "", t + plen + 1);
    }
    conf_errors_free(errs);
    conf_free(conf);
    return out;
}

/* Each case alone: plugin_dir is line 1, the listener starts on line 2. */
struct bad {
    const char *body;
    const char *want;           /* "@": the plugin directory */
};

static const struct bad bad_configs[] = {
    { "listeners = ( { name = \"a\"; tcp = \"127.0.0.1:1\";\n handler = \"nope\"; } );\n",
      "3: listeners.[0].handler: cannot load plugin: @/nope.so: cannot open shared object "
      "file: No such file or directory" },
    { "listeners = ( { name = \"a\"; tcp = \"127.0.0.1:1\";\n handler = {\n"
      "  plugin = \"wrong_abi\"; }; } );\n",
      "4: listeners.[0].handler.plugin: plugin \"wrong_abi\" (@/wrong_abi.so) was built for "
      "plugin API " "1.0; this wharfd provides 0.4: rebuild the plugin against wharf "
      WHARF_VERSION "'s headers" },
    { "listeners = ( { name = \"a\"; tcp = \"127.0.0.1:1\";\n handler = \"no_descriptor\"; } );\n",
      "3: listeners.[0].handler: @/no_descriptor.so exports no wharf_plugin descriptor: not "
      "a wharf plugin" },
    { "listeners = ( { name = \"a\"; udp = \"127.0.0.1:1\";\n handler = \"no_handler\"; } );\n",
      "3: listeners.[0].handler: plugin \"no_handler\" cannot serve udp listeners" },
    { "listeners = ( { name = \"a\"; tcp = \"127.0.0.1:1\"; handler = { plugin = \"good\";\n"
      "  greeting = \"hi\";\n  colour = \"red\"; }; } );\n",
      "4: listeners.[0].handler.colour: unknown option (good knows: greeting, datagrams)" },
    { "listeners = ( { name = \"a\"; tcp = \"127.0.0.1:1\"; handler = {\n"
      "  plugin = \"good\";\n  fail = \"\"; }; } );\n",
      "3: listeners.[0].handler.plugin: out of memory" },
    /* all reported, in file order; the good one in between loads */
    { "listeners = (\n"
      " { name = \"a\"; udp = \"127.0.0.1:1\"; handler = \"no_handler\"; },\n"
      " { name = \"b\"; tcp = \"127.0.0.1:2\"; handler = { plugin = \"good\"; greeting = \"x\"; }; },\n"
      " { name = \"c\"; tcp = \"127.0.0.1:3\"; handler = \"missing\"; },\n"
      " { name = \"d\"; unix = \"/tmp/d\"; handler = { plugin = \"good\";\n"
      "     greeting = 3; }; },\n"
      " { name = \"e\"; tcp = \"127.0.0.1:4\";\n"
      "   handler = \"wrong_abi\"; }\n"
      ");\n",
      "3: listeners.[0].handler: plugin \"no_handler\" cannot serve udp listeners\n"
      "5: listeners.[2].handler: cannot load plugin: @/missing.so: cannot open shared "
      "object file: No such file or directory\n"
      "7: listeners.[3].handler.greeting: must be a string\n"
      "9: listeners.[4].handler: plugin \"wrong_abi\" (@/wrong_abi.so) was built for plugin "
      "API 1.0; this wharfd provides 0.4: rebuild the plugin against wharf " WHARF_VERSION
      "'s headers" },
};

/* want with each '@' replaced by the plugin directory */
static const char *expand(const char *tmpl)
{
    static char out[8192];
    const char *dir = plugin_dir();
    size_t n = 0;

    for (; *tmpl && n + strlen(dir) + 1 < sizeof(out); tmpl++) {
        if (*tmpl == '@')
            n += (size_t)snprintf(out + n, sizeof(out) - n, "%s", dir);
        else
            out[n++] = *tmpl;
    }
    out[n] = '\0';
    return out;
}

START_TEST(bad_config)
{
    const struct bad *b = &bad_configs[_i];
    struct good_view g = hold_good();
    const char *want = expand(b->want), *got;

    /* the tables spell out API 1.0 and 0.4 for readability */
    ck_assert_int_eq(WHARF_API_MAJOR, 0);
    ck_assert_int_eq(WHARF_API_MINOR, 4);
    got = load_errors(b->body);
    ck_assert_msg(strcmp(got, want) == 0, "config %d:\n%s\ngot:\n%s\nwant:\n%s", _i, b->body,
                  got, want);
    ck_assert_int_eq(*g.inits, *g.finis);   /* what loaded went with the generation */
    dlclose(g.handle);
}
END_TEST

static const char good_conf[] =
    "listeners = (\n"
    " { name = \"s\"; tcp = \"127.0.0.1:1\"; handler = { plugin = \"good\"; greeting = \"yo\"; }; },\n"
    " { name = \"u\"; udp = \"127.0.0.1:1\"; handler = \"good\"; }\n"
    ");\n";

START_TEST(good_config)
{
    struct good_view g = hold_good();
    struct conf *conf = load(write_conf(good_conf));
    struct conf_errors *errs = conf_errors_new();
    struct plugin_inst *conn;

    ck_assert_int_eq(plugin_load_all(conf, errs), 0);
    ck_assert_uint_eq(errs->err_count, 0);
    ck_assert_int_eq(*g.inits, 2);
    ck_assert_ptr_nonnull(conf->conf_listeners[0].lst_inst);
    ck_assert_ptr_nonnull(conf->conf_listeners[1].lst_inst);
    ck_assert_ptr_ne(conf->conf_listeners[0].lst_inst, conf->conf_listeners[1].lst_inst);
    /* the last init was the udp listener's */
    ck_assert_str_eq(g.listener, "u");
    ck_assert_str_eq(g.config_dir, conf->conf_dir);
    ck_assert_int_eq(*g.kind, WHARF_LISTENER_DATAGRAM);
    ck_assert_str_eq(g.options, "{}");
    /* a connection of listener s outlives the generation */
    conn = plugin_ref(conf->conf_listeners[0].lst_inst);
    conf_free(conf);
    ck_assert_int_eq(*g.finis, 1);
    plugin_unref(&conn);
    ck_assert_int_eq(*g.finis, 2);
    conf_errors_free(errs);
    dlclose(g.handle);
}
END_TEST

/* ---- the suite ------------------------------------------------------------- */

static Suite *suite(void)
{
    Suite *s = suite_create("plugin");
    TCase *tc = tcase_create("open");

    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, not_an_object);
    tcase_add_test(tc, no_descriptor);
    tcase_add_test(tc, wrong_major);
    tcase_add_test(tc, no_handler);
    tcase_add_test(tc, options_rejected);
    tcase_add_test(tc, descriptor_checks);
    suite_add_tcase(s, tc);

    tc = tcase_create("instance");
    tcase_add_test(tc, instance);
    tcase_add_test(tc, connection_outlives_generation);
    tcase_add_test(tc, refs_across_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_add_loop_test(tc, bad_config, 0, (int)(sizeof(bad_configs) / sizeof(bad_configs[0])));
    tcase_add_test(tc, good_config);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int rc = tu_run_suite(suite());

    rmdir(tu_tmpdir());
    return rc;
}
