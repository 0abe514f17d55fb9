/*
 * check_conf.c: the config loader (src/conf.c). A table of invalid configs,
 * each with the exact lines the operator would read, then valid configs
 * checked value by value, and the two configs shipped in conf/.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "wharfd.h"

/* ---- helpers --------------------------------------------------------------- */

static const char *write_conf(const char *name, const char *text)
{
    static char path[PATH_MAX];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", tu_tmpdir(), name);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_ge(fputs(text, fp), 0);
    ck_assert_int_eq(fclose(fp), 0);
    return path;
}

/* The messages joined by '\n', each without the leading "FILE:" (which is
 * the temporary path), so that the table reads "3: setting: message". */
static char *errors_of(const char *path)
{
    static char out[4096];
    struct conf_errors *errs = conf_errors_new();
    struct conf *conf = NULL;
    size_t i, n = 0, plen = strlen(path);

    ck_assert_int_eq(conf_load(path, &conf, errs), -1);
    ck_assert_ptr_null(conf);
    out[0] = '\0';
    for (i = 0; i < errs->err_count; i++) {
        const char *t = errs->err_items[i].ce_text;

        ck_assert_msg(strncmp(t, path, plen) == 0 && t[plen] == ':', "%s", t);
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", i ? "\n" : "", t + plen + 1);
    }
    conf_errors_free(errs);
    return out;
}

static struct conf *load_ok(const char *path)
{
    struct conf_errors *errs = conf_errors_new();
    struct conf *conf = NULL;
    int rc = conf_load(path, &conf, errs);

    ck_assert_msg(rc == 0, "%s: %s", path,
                  errs->err_count ? errs->err_items[0].ce_text : "(no message)");
    ck_assert_ptr_nonnull(conf);
    conf_errors_free(errs);
    return conf;
}

static void tmp_cleanup(void)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'/*", tu_tmpdir());
    ck_assert_int_eq(system(cmd), 0);
}

#define L0 "listeners = ( { name = \"a\"; handler = \"echo\";\n"

/* ---- invalid configs ------------------------------------------------------- */

struct bad {
    const char *text;
    const char *want;
};

static const struct bad bad_configs[] = {
    /* unknown settings, with and without a suggestion */
    { "workers = 1;\nworkerz = 1;\n",
      "2: workerz: unknown setting (did you mean \"workers\"?)" },
    { "colour = 1;\n", "1: colour: unknown setting" },
    { "limits = { idle_timeot = 1.0; };\n",
      "1: limits.idle_timeot: unknown setting (did you mean \"idle_timeout\"?)" },
    { L0 "tcp = \"127.0.0.1:80\"; idle_timout = 5.0; } );\n",
      "2: listeners.[0].idle_timout: unknown setting (did you mean \"idle_timeout\"?)" },
    { L0 "tcp = \"127.0.0.1:80\";\n tls = { certificate = \"c\"; key = \"k\";\n ragged = true; }; } );\n",
      "4: listeners.[0].tls.ragged: unknown setting" },
    { L0 "tcp = \"127.0.0.1:80\";\n tls = { certificates = ( { certificate = \"c\"; key = \"k\";\n"
         " chain = \"x\"; } ); }; } );\n",
      "4: listeners.[0].tls.certificates.[0].chain: unknown setting" },
    /* addresses */
    { L0 "tcp = \"127.0.0.1:80\";\n unix = \"/tmp/x\"; } );\n",
      "3: listeners.[0].unix: tcp and unix: give exactly one of tcp, unix, udp" },
    { "listeners = (\n { name = \"a\"; handler = \"echo\"; }\n);\n",
      "2: listeners.[0]: no address: give exactly one of tcp, unix, udp" },
    { L0 "tcp = \"localhost:80\"; } );\n",
      "2: listeners.[0].tcp: bad address \"localhost:80\": give a numeric \"A.B.C.D:PORT\" or \"[IPV6]:PORT\"" },
    { L0 "udp = \"/tmp/sock\"; } );\n",
      "2: listeners.[0].udp: bad address \"/tmp/sock\": give a numeric \"A.B.C.D:PORT\" or \"[IPV6]:PORT\"" },
    { L0 "tcp = \"127.0.0.1:0\"; } );\n",
      "2: listeners.[0].tcp: port 0 out of range: must be between 1 and 65535" },
    { L0 "tcp = \"[::1]:65536\"; } );\n",
      "2: listeners.[0].tcp: port 65536 out of range: must be between 1 and 65535" },
    { L0 "unix = \"\"; } );\n", "2: listeners.[0].unix: must not be empty" },
    /* listeners */
    { "listeners = (\n { name = \"a\"; tcp = \"127.0.0.1:1\"; handler = \"echo\"; },\n"
      " { name = \"b\"; tcp = \"127.0.0.1:2\"; handler = \"echo\"; },\n"
      " { name = \"a\"; tcp = \"127.0.0.1:3\"; handler = \"echo\"; }\n);\n",
      "4: listeners.[2].name: duplicate listener name \"a\" (first at line 2)" },
    { L0 "tcp = \"127.0.0.1:1\"; name2 = 1; } );\n", "2: listeners.[0].name2: unknown setting (did you mean \"name\"?)" },
    { "listeners = ( { name = \"a b\"; tcp = \"127.0.0.1:1\"; handler = \"echo\"; } );\n",
      "1: listeners.[0].name: must be a name of A-Z a-z 0-9 _ . - (at least one)" },
    { "listeners = ( { tcp = \"127.0.0.1:1\"; handler = \"echo\"; } );\n",
      "1: listeners.[0]: missing name" },
    { "listeners = ( { name = \"a\"; tcp = \"127.0.0.1:1\"; } );\n",
      "1: listeners.[0]: missing handler" },
    { L0 "tcp = \"127.0.0.1:1\"; } );\nlisteners2 = 1;\n",
      "3: listeners2: unknown setting (did you mean \"listeners\"?)" },
    { "listeners = { name = \"a\"; };\n",
      "1: listeners: must be a list of groups ( { ... }, { ... } )" },
    { L0 "udp = \"127.0.0.1:53\";\n proxy_protocol = true; } );\n",
      "3: listeners.[0].proxy_protocol: not allowed on a udp listener (PROXY headers come "
      "before a stream)" },
    /* tls */
    { L0 "udp = \"127.0.0.1:53\";\n tls = { certificate = \"c\"; key = \"k\"; }; } );\n",
      "3: listeners.[0].tls: not allowed on a udp listener" },
    { L0 "tcp = \"127.0.0.1:1\";\n tls = { certificate = \"c\"; }; } );\n",
      "3: listeners.[0].tls: certificate without key: give certificate and key together" },
    { L0 "tcp = \"127.0.0.1:1\";\n tls = { autostart = false; }; } );\n",
      "3: listeners.[0].tls: no certificate: give certificates, or certificate and key" },
    { L0 "tcp = \"127.0.0.1:1\";\n tls = { certificate = \"c\"; key = \"k\";\n"
         " min_version = \"TLSv1.1\"; verify_client = \"maybe\"; }; } );\n",
      "4: listeners.[0].tls.min_version: must be one of \"TLSv1.2\", \"TLSv1.3\"\n"
      "4: listeners.[0].tls.verify_client: must be one of \"none\", \"optional\", \"require\"" },
    { L0 "tcp = \"127.0.0.1:1\";\n tls = { certificate = \"c\"; key = \"k\";\n"
         " verify_client = \"require\"; }; } );\n",
      "3: listeners.[0].tls: verify_client \"require\" needs client_ca" },
    { L0 "tcp = \"127.0.0.1:1\";\n tls = { certificate = \"c\"; key = \"k\";\n"
         " alpn = [ \"h2\", \"\" ]; ticket_key_file = 5; session_tickets = \"yes\"; }; } );\n",
      "4: listeners.[0].tls.alpn.[1]: must be a non-empty string of at most 255 bytes\n"
      "4: listeners.[0].tls.ticket_key_file: must be a string or a list of strings\n"
      "4: listeners.[0].tls.session_tickets: must be true or false" },
    { L0 "tcp = \"127.0.0.1:1\";\n tls = { certificate = \"c\"; key = \"k\";\n"
         " certificates = ( { certificate = \"c\"; } ); }; } );\n",
      "3: listeners.[0].tls: give either certificates or certificate and key, not both\n"
      "4: listeners.[0].tls.certificates.[0]: missing key" },
    /* enums and types */
    { "log_level = \"verbose\";\n",
      "1: log_level: must be one of \"error\", \"warning\", \"info\", \"debug\"" },
    { "workers = \"2\";\nuser = 5;\nlimits = { idle_timeout = \"x\"; max_connections = 0;\n"
      " handshake_timeout = 0; drain_timeout = -1.0; };\n",
      "1: workers: must be an integer\n2: user: must be a string\n"
      "3: limits.idle_timeout: must be a number\n"
      "3: limits.max_connections: must be at least 1\n"
      "4: limits.handshake_timeout: must be greater than 0\n"
      "4: limits.drain_timeout: must be at least 0" },
    { "workers = -1;\n", "1: workers: must be between 0 and 4096" },
    { "limits = 5;\n", "1: limits: must be a group { ... }" },
    { L0 "tcp = \"127.0.0.1:1\"; proxy_protocol = 1; backlog = 0; } );\n",
      "2: listeners.[0].proxy_protocol: must be true or false\n"
      "2: listeners.[0].backlog: must be between 1 and 65535" },
    /* unix_mode */
    { L0 "unix = \"/tmp/s\"; unix_mode = \"0999\"; } );\n",
      "2: listeners.[0].unix_mode: must be an octal mode as a string, such as \"0660\"" },
    { L0 "unix = \"/tmp/s\"; unix_mode = 660; } );\n",
      "2: listeners.[0].unix_mode: must be an octal mode as a string, such as \"0660\"" },
    { L0 "tcp = \"127.0.0.1:1\";\n unix_mode = \"0660\"; } );\n",
      "3: listeners.[0].unix_mode: only for a unix listener" },
    /* handler */
    { "listeners = ( { name = \"a\"; tcp = \"127.0.0.1:1\";\n handler = { size = 1; }; } );\n",
      "2: listeners.[0].handler: missing plugin" },
    { "listeners = ( { name = \"a\"; tcp = \"127.0.0.1:1\";\n handler = { plugin = \"\"; }; } );\n",
      "2: listeners.[0].handler.plugin: must be a plugin name (a non-empty string of A-Z a-z 0-9 _ . -)" },
    { "listeners = ( { name = \"a\"; tcp = \"127.0.0.1:1\";\n handler = \"../evil\"; } );\n",
      "2: listeners.[0].handler: must be a plugin name (a non-empty string of A-Z a-z 0-9 _ . -)" },
    { "listeners = ( { name = \"a\"; tcp = \"127.0.0.1:1\";\n handler = 3; } );\n",
      "2: listeners.[0].handler: must be a plugin name or a group { plugin = \"NAME\"; ... }" },
    /* syntax */
    { "workers = 1;\nlog_level = ;\n", "2: syntax error" },
    /* several problems in one file, reported in file order */
    { "listeners = (\n"
      " { name = \"a\"; tcp = \"127.0.0.1:1\"; handler = \"echo\"; },\n"
      " { name = \"a\";\n"
      "   handler = \"echo\"; },\n"
      " { name = \"c\"; udp = \"127.0.0.1:70000\"; handler = \"echo\"; }\n"
      ");\n"
      "log_level = \"loud\";\n"
      "limits = { max_conections = 5; };\n",
      "3: listeners.[1].name: duplicate listener name \"a\" (first at line 2)\n"
      "3: listeners.[1]: no address: give exactly one of tcp, unix, udp\n"
      "5: listeners.[2].udp: port 70000 out of range: must be between 1 and 65535\n"
      "7: log_level: must be one of \"error\", \"warning\", \"info\", \"debug\"\n"
      "8: limits.max_conections: unknown setting (did you mean \"max_connections\"?)" },
};

START_TEST(invalid_config)
{
    const struct bad *b = &bad_configs[_i];
    const char *got = errors_of(write_conf("bad.conf", b->text));

    ck_assert_msg(strcmp(got, b->want) == 0, "config %d:\n%s\ngot:\n%s\nwant:\n%s", _i,
                  b->text, got, b->want);
}
END_TEST

START_TEST(missing_file)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/nope.conf", tu_tmpdir());
    ck_assert_str_eq(errors_of(path), " cannot read: No such file or directory");
    ck_assert_str_eq(errors_of(tu_tmpdir()), " cannot read: Is a directory");
}
END_TEST

START_TEST(errors_free_empty)
{
    conf_errors_free(conf_errors_new());
    conf_errors_free(NULL);
    conf_free(NULL);
}
END_TEST

/* ---- valid configs --------------------------------------------------------- */

static char *abs_tmp(const char *name)
{
    static char buf[PATH_MAX];
    char *dir = realpath(tu_tmpdir(), NULL);

    ck_assert_ptr_nonnull(dir);
    snprintf(buf, sizeof(buf), "%s/%s", dir, name);
    free(dir);
    return buf;
}

START_TEST(defaults)
{
    struct conf *c = load_ok(write_conf("d.conf", "# nothing\n"));
    char dir[PATH_MAX + 2];

    ck_assert_int_eq(c->conf_workers, 0);
    ck_assert_ptr_null(c->conf_user);
    ck_assert_str_eq(c->conf_plugin_dir, WHARF_PLUGIN_DIR_TEST);
    ck_assert_int_eq(c->conf_log_level, CONF_LOG_INFO);
    ck_assert_ptr_null(c->conf_log_file);
    ck_assert_int_eq(c->conf_limits.lim_max_connections, 10000);
    ck_assert_double_eq(c->conf_limits.lim_handshake_timeout, 10.0);
    ck_assert_double_eq(c->conf_limits.lim_idle_timeout, 300.0);
    ck_assert_double_eq(c->conf_limits.lim_drain_timeout, 30.0);
    ck_assert_uint_eq(c->conf_nlisteners, 0);
    snprintf(dir, sizeof(dir), "%s/x", c->conf_dir);   /* absolute, no trailing '/' */
    ck_assert_str_eq(dir, abs_tmp("x"));
    conf_free(c);
}
END_TEST

static const char full_text[] =
    "workers = 3;\n"                                                    /* 1 */
    "user = \"nobody\";\n"
    "plugin_dir = \"plugins\";\n"
    "log_level = \"debug\";\n"
    "log_file = \"/var/log/wharf.log\";\n"                              /* 5 */
    "limits = { max_connections = 50; handshake_timeout = 2; idle_timeout = 7.5;"
    " drain_timeout = 0; };\n"
    "listeners = (\n"
    " { name = \"web\"; tcp = \"[::1]:8443\"; backlog = 64; proxy_protocol = true;\n"
    "   idle_timeout = 1.5; max_connections = 3;\n"
    "   tls = { certificates = ( { certificate = \"a.pem\"; key = \"/k/a.key\"; },\n" /* 10 */
    "                            { certificate = \"b.pem\"; key = \"b.key\"; } );\n"
    "     min_version = \"TLSv1.3\"; ciphers = \"ECDHE+AESGCM\"; ciphersuites = \"TLS_AES_128_GCM_SHA256\";\n"
    "     alpn = [ \"h2\", \"http/1.1\" ]; client_ca = \"ca.pem\"; verify_client = \"optional\";\n"
    "     session_tickets = false; ticket_key_file = [ \"new.key\", \"old.key\" ];\n"
    "     ragged_eof = true; autostart = false; };\n"                  /* 15 */
    "   handler = { plugin = \"forward\"; i = 5; big = 10000000000L; f = 1.5; s = \"x\"; b = true;\n"
    "     a = [ 1, 2 ]; l = ( 1, \"two\", { k = false; } ); g = { k = 1; };\n"
    "     target = \"127.0.0.1:80\"; }; },\n"
    " { name = \"sock\"; unix = \"rel.sock\"; unix_mode = \"0660\"; handler = \"echo\";\n"
    "   tls = { certificate = \"c.pem\"; key = \"c.key\"; ticket_key_file = \"t.key\"; }; },\n" /* 20 */
    " { name = \"u.d_p-1\"; udp = \"0.0.0.0:53\"; handler = \"echo\"; }\n"
    ");\n";

START_TEST(full)
{
    struct conf *c = load_ok(write_conf("full.conf", full_text));
    const struct conf_listener *l;
    const struct conf_tls *t;

    ck_assert_int_eq(c->conf_workers, 3);
    ck_assert_str_eq(c->conf_user, "nobody");
    ck_assert_str_eq(c->conf_plugin_dir, abs_tmp("plugins"));
    ck_assert_int_eq(c->conf_log_level, CONF_LOG_DEBUG);
    ck_assert_str_eq(c->conf_log_file, "/var/log/wharf.log");
    ck_assert_int_eq(c->conf_limits.lim_max_connections, 50);
    ck_assert_double_eq(c->conf_limits.lim_handshake_timeout, 2.0);
    ck_assert_double_eq(c->conf_limits.lim_idle_timeout, 7.5);
    ck_assert_double_eq(c->conf_limits.lim_drain_timeout, 0.0);
    ck_assert_uint_eq(c->conf_nlisteners, 3);

    l = conf_listener_find(c, "web");
    ck_assert_ptr_eq(l, &c->conf_listeners[0]);
    ck_assert_str_eq(l->lst_setting, "listeners.[0]");
    ck_assert_int_eq(l->lst_kind, CONF_TCP);
    ck_assert_str_eq(l->lst_address, "[::1]:8443");
    ck_assert_int_eq(l->lst_addr.ss_family, AF_INET6);
    ck_assert_int_eq(l->lst_backlog, 64);
    ck_assert(l->lst_proxy_protocol);
    /* overrides, and the global limits for the rest */
    ck_assert_int_eq(l->lst_limits.lim_max_connections, 3);
    ck_assert_double_eq(l->lst_limits.lim_idle_timeout, 1.5);
    ck_assert_double_eq(l->lst_limits.lim_handshake_timeout, 2.0);
    ck_assert_double_eq(l->lst_limits.lim_drain_timeout, 0.0);

    t = l->lst_tls;
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->tls_ncerts, 2);
    ck_assert_str_eq(t->tls_certs[0].cert_file, abs_tmp("a.pem"));
    ck_assert_str_eq(t->tls_certs[0].cert_key_file, "/k/a.key");
    ck_assert_str_eq(t->tls_certs[1].cert_key_file, abs_tmp("b.key"));
    ck_assert_str_eq(t->tls_certs[1].cert_setting, "listeners.[0].tls.certificates.[1]");
    ck_assert_int_eq(t->tls_min_version, CONF_TLS_1_3);
    ck_assert_str_eq(t->tls_ciphers, "ECDHE+AESGCM");
    ck_assert_str_eq(t->tls_ciphersuites, "TLS_AES_128_GCM_SHA256");
    ck_assert_uint_eq(t->tls_nalpn, 2);
    ck_assert_str_eq(t->tls_alpn[0], "h2");
    ck_assert_str_eq(t->tls_alpn[1], "http/1.1");
    ck_assert_str_eq(t->tls_client_ca, abs_tmp("ca.pem"));
    ck_assert_int_eq(t->tls_verify_client, CONF_VERIFY_OPTIONAL);
    ck_assert(!t->tls_session_tickets);
    ck_assert_uint_eq(t->tls_nticket_keys, 2);
    ck_assert_str_eq(t->tls_ticket_keys[0], abs_tmp("new.key"));
    ck_assert_str_eq(t->tls_ticket_keys[1], abs_tmp("old.key"));
    ck_assert(t->tls_ragged_eof);
    ck_assert(!t->tls_autostart);

    ck_assert_str_eq(l->lst_plugin, "forward");
    ck_assert_int_eq(conf_line(c, "listeners.[0].handler.target"), 18);
    ck_assert_int_eq(conf_line(c, "listeners.[0].tls.certificates.[1].key"), 11);
    ck_assert_int_eq(conf_line(c, "listeners.[0].nothing"), 0);
    conf_free(c);
}
END_TEST

START_TEST(handler_options_json)
{
    struct conf *c = load_ok(write_conf("full.conf", full_text));
    char *js = json_dumps(c->conf_listeners[0].lst_options, JSON_SORT_KEYS | JSON_COMPACT);

    ck_assert_str_eq(js, "{\"a\":[1,2],\"b\":true,\"big\":10000000000,\"f\":1.5,"
                         "\"g\":{\"k\":1},\"i\":5,\"l\":[1,\"two\",{\"k\":false}],"
                         "\"s\":\"x\",\"target\":\"127.0.0.1:80\"}");
    free(js);
    /* a handler given as a string has an empty object of options */
    ck_assert_str_eq(c->conf_listeners[1].lst_plugin, "echo");
    ck_assert(json_is_object(c->conf_listeners[1].lst_options));
    ck_assert_uint_eq(json_object_size(c->conf_listeners[1].lst_options), 0);
    conf_free(c);
}
END_TEST

START_TEST(unix_and_udp)
{
    struct conf *c = load_ok(write_conf("full.conf", full_text));
    const struct conf_listener *l = &c->conf_listeners[1];

    ck_assert_int_eq(l->lst_kind, CONF_UNIX);
    /* relative to the config file, like every path (SPEC.md section 2) */
    ck_assert_str_eq(l->lst_address, abs_tmp("rel.sock"));
    ck_assert_uint_eq(l->lst_unix_mode, 0660);
    ck_assert_int_eq(l->lst_backlog, 511);
    ck_assert(!l->lst_proxy_protocol);
    ck_assert_int_eq(l->lst_limits.lim_max_connections, 50);
    /* the shorthand pair, and TLS defaults */
    ck_assert_uint_eq(l->lst_tls->tls_ncerts, 1);
    ck_assert_str_eq(l->lst_tls->tls_certs[0].cert_file, abs_tmp("c.pem"));
    ck_assert_str_eq(l->lst_tls->tls_certs[0].cert_key_file, abs_tmp("c.key"));
    ck_assert_str_eq(l->lst_tls->tls_certs[0].cert_setting, "listeners.[1].tls");
    ck_assert_int_eq(l->lst_tls->tls_min_version, CONF_TLS_1_2);
    ck_assert_int_eq(l->lst_tls->tls_verify_client, CONF_VERIFY_NONE);
    ck_assert_ptr_null(l->lst_tls->tls_ciphers);
    ck_assert_ptr_null(l->lst_tls->tls_client_ca);
    ck_assert_uint_eq(l->lst_tls->tls_nalpn, 0);
    ck_assert(l->lst_tls->tls_session_tickets);
    ck_assert(!l->lst_tls->tls_ragged_eof);
    ck_assert(l->lst_tls->tls_autostart);
    ck_assert_uint_eq(l->lst_tls->tls_nticket_keys, 1);
    ck_assert_str_eq(l->lst_tls->tls_ticket_keys[0], abs_tmp("t.key"));

    l = &c->conf_listeners[2];
    ck_assert_str_eq(l->lst_name, "u.d_p-1");
    ck_assert_int_eq(l->lst_kind, CONF_UDP);
    ck_assert_int_eq(l->lst_addr.ss_family, AF_INET);
    ck_assert_ptr_null(l->lst_tls);
    conf_free(c);
}
END_TEST

/* conf_report: how later stages (certificates, plugins) point at the file. */
START_TEST(report)
{
    const char *path = write_conf("full.conf", full_text);
    struct conf *c = load_ok(path);
    struct conf_errors *errs = conf_errors_new();
    char want[PATH_MAX + 128];

    conf_report(c, errs, "listeners.[1].tls.certificate", "cannot read \"%s\": %s", "c.pem",
                "No such file or directory");
    snprintf(want, sizeof(want),
             "%s:20: listeners.[1].tls.certificate: cannot read \"c.pem\": No such file or directory",
             path);
    ck_assert_uint_eq(errs->err_count, 1);
    ck_assert_str_eq(errs->err_items[0].ce_text, want);
    conf_errors_free(errs);
    conf_free(c);
}
END_TEST

static void load_shipped(const char *name)
{
    const char *src = getenv("WHARF_SRCDIR");
    char path[PATH_MAX];
    struct conf *c;

    ck_assert_ptr_nonnull(src);
    snprintf(path, sizeof(path), "%s/conf/%s", src, name);
    c = load_ok(path);
    ck_assert_uint_ge(c->conf_nlisteners, 3);
    conf_free(c);
}

START_TEST(shipped_wharf_conf) { load_shipped("wharf.conf"); }
END_TEST

START_TEST(shipped_dev_conf) { load_shipped("wharf.dev.conf"); }
END_TEST

/* ---- the suite ------------------------------------------------------------- */

static Suite *suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("invalid");

    tcase_add_checked_fixture(tc, NULL, tmp_cleanup);
    tcase_add_loop_test(tc, invalid_config, 0,
                        (int)(sizeof(bad_configs) / sizeof(bad_configs[0])));
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, errors_free_empty);
    suite_add_tcase(s, tc);

    tc = tcase_create("valid");
    tcase_add_checked_fixture(tc, NULL, tmp_cleanup);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, full);
    tcase_add_test(tc, handler_options_json);
    tcase_add_test(tc, unix_and_udp);
    tcase_add_test(tc, report);
    tcase_add_test(tc, shipped_wharf_conf);
    tcase_add_test(tc, shipped_dev_conf);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int rc = tu_run_suite(suite());

    rmdir(tu_tmpdir());
    return rc;
}
