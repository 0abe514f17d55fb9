/*
 * conf.c: the config loader. Reads wharf.conf with libconfig, checks every
 * setting against a table per group, and builds an immutable generation
 * (struct conf) or reports every problem, one line each, in file order.
 * `wharfd -t`, the start and a reload all run exactly conf_load.
 * Not for: reading certificates, loading plugins or binding sockets; those
 * stages take the generation and report through conf_report.
 */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <wharf/net.h>

#include <openssl/ssl.h>

#include "wharfd.h"

#ifndef WHARF_PLUGIN_DIR
#define WHARF_PLUGIN_DIR "/usr/local/lib/wharf/plugins"
#endif

#define SUGGEST_DISTANCE 2      /* "did you mean" only for close typos */
#define PATH_BUF 1024
#define ALPN_MAX 255            /* a protocol name is one length byte on the wire */

struct load {
    const char *file;           /* as given, for messages */
    struct conf *conf;
    struct conf_errors *errs;
    config_setting_t *listeners;    /* parsed after the global limits */
};

/* How a setting is checked and stored. OPT kinds take "" as "not set". */
enum ftype { F_INT, F_NUM, F_POS, F_BOOL, F_STRING, F_OPTSTR, F_PATH, F_OPTPATH,
             F_ENUM, F_CUSTOM };

struct field {
    const char *name;
    enum ftype type;
    size_t offset;              /* into the struct the group fills */
    double min, max;            /* F_INT, F_NUM: inclusive */
    const char *const *choices; /* F_ENUM, NULL-terminated; stored as the index */
    void (*parse)(struct load *ld, config_setting_t *s, void *base);
    double dflt;                /* F_INT, F_NUM, F_POS, F_BOOL, F_ENUM */
    const char *sdflt;          /* strings and paths */
};

#define OFF(type, member) offsetof(struct type, member)
#define AT(base, f, type) ((type *)((char *)(base) + (f)->offset))

/* ---- allocation (a config loader has no useful way to go on without memory) */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (!p)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);

    if (!p)
        abort();
    return p;
}

static char *vxprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static char *vxprintf(const char *fmt, va_list ap)
{
    char *p;

    /* one call: sizing first with vsnprintf(NULL, 0, ...) made gcc 12 at
     * -O1 with the sanitizers report a "null format string" there (a
     * false -Wformat-truncation, an error under --enable-werror) */
    if (vasprintf(&p, fmt, ap) < 0)
        abort();
    return p;
}

/* ---- the list of errors ---------------------------------------------------- */

struct conf_errors *conf_errors_new(void)
{
    return xcalloc(1, sizeof(struct conf_errors));
}

void conf_errors_free(struct conf_errors *errs)
{
    size_t i;

    if (!errs)
        return;
    for (i = 0; i < errs->err_count; i++)
        free(errs->err_items[i].ce_text);
    free(errs->err_items);
    free(errs);
}

/* Kept sorted by line, stable, so that messages come out in file order
 * although some checks (a listener's missing address) run after others. */
void conf_errors_add(struct conf_errors *errs, int line, const char *fmt, ...)
{
    struct conf_error *items;
    size_t at = errs->err_count;
    va_list ap;

    items = realloc(errs->err_items, (errs->err_count + 1) * sizeof(*items));
    if (!items)
        abort();
    errs->err_items = items;
    while (at > 0 && items[at - 1].ce_line > line)
        at--;
    memmove(items + at + 1, items + at, (errs->err_count - at) * sizeof(*items));
    va_start(ap, fmt);
    items[at].ce_text = vxprintf(fmt, ap);
    va_end(ap);
    items[at].ce_line = line;
    errs->err_count++;
}

/* ---- setting paths and messages -------------------------------------------- */

/* libconfig's path syntax: names joined by '.', list elements as [i]. */
static void setting_path(const config_setting_t *s, char *buf, size_t size)
{
    const char *name = config_setting_name(s);
    size_t n;

    buf[0] = '\0';
    if (!config_setting_parent(s))
        return;
    setting_path(config_setting_parent(s), buf, size);
    n = strlen(buf);
    if (name)
        snprintf(buf + n, size - n, "%s%s", n ? "." : "", name);
    else
        snprintf(buf + n, size - n, "%s[%d]", n ? "." : "", config_setting_index(s));
}

static void err(struct load *ld, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err(struct load *ld, const config_setting_t *s, const char *fmt, ...)
{
    const char *file = config_setting_source_file(s);
    int line = config_setting_source_line(s);
    char path[PATH_BUF];
    char *msg;
    va_list ap;

    setting_path(s, path, sizeof(path));
    va_start(ap, fmt);
    msg = vxprintf(fmt, ap);
    va_end(ap);
    conf_errors_add(ld->errs, line, "%s:%d: %s: %s", file ? file : ld->file, line,
                    path, msg);
    free(msg);
}

void conf_report(const struct conf *conf, struct conf_errors *errs,
                 const char *setting, const char *fmt, ...)
{
    int line = conf_line(conf, setting);
    char *msg;
    va_list ap;

    va_start(ap, fmt);
    msg = vxprintf(fmt, ap);
    va_end(ap);
    if (line > 0)
        conf_errors_add(errs, line, "%s:%d: %s: %s", conf->conf_file, line, setting, msg);
    else
        conf_errors_add(errs, line, "%s: %s: %s", conf->conf_file, setting, msg);
    free(msg);
}

int conf_line(const struct conf *conf, const char *setting)
{
    return (int)json_integer_value(json_object_get(conf->conf_lines, setting));
}

/* Every setting's line by path, so that later stages (and plugins, for
 * their options) can point at the file without keeping libconfig's tree. */
static void record_lines(json_t *lines, const config_setting_t *s)
{
    char path[PATH_BUF];
    int i, n;

    if (config_setting_parent(s)) {
        setting_path(s, path, sizeof(path));
        json_object_set_new(lines, path, json_integer(config_setting_source_line(s)));
    }
    if (!config_setting_is_aggregate(s))
        return;
    n = config_setting_length(s);
    for (i = 0; i < n; i++)
        record_lines(lines, config_setting_get_elem(s, i));
}

/* ---- unknown settings ------------------------------------------------------ */

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    int row[64], diag, up;

    if (la >= 64 || lb >= 64)
        return INT_MAX;
    for (j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (i = 1; i <= la; i++) {
        diag = row[0];
        row[0] = (int)i;
        for (j = 1; j <= lb; j++) {
            int best = diag + (a[i - 1] != b[j - 1]);

            up = row[j];
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static void unknown(struct load *ld, config_setting_t *s, const struct field *table)
{
    const char *name = config_setting_name(s), *best = NULL;
    int bestd = SUGGEST_DISTANCE + 1;
    bool tie = false;

    for (; table->name; table++) {
        int d = edit_distance(name, table->name);

        if (d < bestd) {
            best = table->name, bestd = d, tie = false;
        } else if (d == bestd) {
            tie = true;
        }
    }
    if (best && !tie)
        err(ld, s, "unknown setting (did you mean \"%s\"?)", best);
    else
        err(ld, s, "unknown setting");
}

/* ---- values by type --------------------------------------------------------- */

static bool is_int(const config_setting_t *s)
{
    return config_setting_type(s) == CONFIG_TYPE_INT ||
           config_setting_type(s) == CONFIG_TYPE_INT64;
}

static void parse_int(struct load *ld, const struct field *f, config_setting_t *s,
                      void *base)
{
    long long v;

    if (!is_int(s)) {
        err(ld, s, "must be an integer");
        return;
    }
    v = config_setting_get_int64(s);
    if (v < f->min || v > f->max) {
        if (f->max >= INT_MAX)
            err(ld, s, "must be at least %.0f", f->min);
        else
            err(ld, s, "must be between %.0f and %.0f", f->min, f->max);
        return;
    }
    *AT(base, f, long) = (long)v;
}

/* F_NUM: min <= v; F_POS: v > 0. Seconds, so integers are welcome too. */
static void parse_num(struct load *ld, const struct field *f, config_setting_t *s,
                      void *base)
{
    double v;

    if (is_int(s)) {
        v = (double)config_setting_get_int64(s);
    } else if (config_setting_type(s) == CONFIG_TYPE_FLOAT) {
        v = config_setting_get_float(s);
    } else {
        err(ld, s, "must be a number");
        return;
    }
    if (f->type == F_POS && !(v > 0)) {
        err(ld, s, "must be greater than 0");
        return;
    }
    if (f->type == F_NUM && !(v >= f->min)) {
        err(ld, s, "must be at least %g", f->min);
        return;
    }
    *AT(base, f, double) = v;
}

static void parse_bool(struct load *ld, const struct field *f, config_setting_t *s,
                       void *base)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        err(ld, s, "must be true or false");
        return;
    }
    *AT(base, f, bool) = config_setting_get_bool(s);
}

static char *join_path(const char *dir, const char *path)
{
    size_t n;
    char *p;

    if (path[0] == '/')
        return xstrdup(path);
    n = strlen(dir) + strlen(path) + 2;
    p = xcalloc(n, 1);
    snprintf(p, n, "%s/%s", dir, path);
    return p;
}

/* Strings and paths; OPT kinds store "" as NULL (not set). */
static void parse_string(struct load *ld, const struct field *f, config_setting_t *s,
                         void *base)
{
    const char *v = config_setting_get_string(s);
    char **slot = AT(base, f, char *);
    bool optional = f->type == F_OPTSTR || f->type == F_OPTPATH;
    bool path = f->type == F_PATH || f->type == F_OPTPATH;

    if (!v) {
        err(ld, s, "must be a string");
        return;
    }
    if (!*v && !optional) {
        err(ld, s, "must not be empty");
        return;
    }
    free(*slot);
    *slot = NULL;
    if (*v)
        *slot = path ? join_path(ld->conf->conf_dir, v) : xstrdup(v);
}

static void parse_enum(struct load *ld, const struct field *f, config_setting_t *s,
                       void *base)
{
    const char *v = config_setting_get_string(s);
    char list[256] = "";
    size_t n = 0;
    int i;

    for (i = 0; v && f->choices[i]; i++) {
        if (strcmp(v, f->choices[i]) == 0) {
            *AT(base, f, int) = i;
            return;
        }
    }
    for (i = 0; f->choices[i]; i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s\"%s\"", i ? ", " : "",
                              f->choices[i]);
    err(ld, s, "must be one of %s", list);
}

static void parse_custom(struct load *ld, const struct field *f, config_setting_t *s,
                         void *base)
{
    f->parse(ld, s, base);
}

static void (*const parsers[])(struct load *, const struct field *, config_setting_t *,
                               void *) = {
    [F_INT] = parse_int,       [F_NUM] = parse_num,         [F_POS] = parse_num,
    [F_BOOL] = parse_bool,     [F_STRING] = parse_string,   [F_OPTSTR] = parse_string,
    [F_PATH] = parse_string,   [F_OPTPATH] = parse_string,  [F_ENUM] = parse_enum,
    [F_CUSTOM] = parse_custom,
};

/* ---- groups by table ---------------------------------------------------------- */

static void fields_default(const struct field *f, void *base)
{
    for (; f->name; f++) {
        switch (f->type) {
        case F_INT: *AT(base, f, long) = (long)f->dflt; break;
        case F_NUM: case F_POS: *AT(base, f, double) = f->dflt; break;
        case F_BOOL: *AT(base, f, bool) = f->dflt != 0; break;
        case F_ENUM: *AT(base, f, int) = (int)f->dflt; break;
        case F_STRING: case F_OPTSTR: case F_PATH: case F_OPTPATH:
            *AT(base, f, char *) = f->sdflt ? xstrdup(f->sdflt) : NULL;
            break;
        case F_CUSTOM: break;
        }
    }
}

static void fields_free(const struct field *f, void *base)
{
    for (; f->name; f++)
        if (f->type >= F_STRING && f->type <= F_OPTPATH)
            free(*AT(base, f, char *));
}

static const struct field *field_find(const struct field *f, const char *name)
{
    for (; f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

/* Checks every member of a group against its table; a name not in the
 * table is an error, never skipped. */
static void walk(struct load *ld, config_setting_t *group, const struct field *table,
                 void *base)
{
    int i, n = config_setting_length(group);

    for (i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(group, i);
        const struct field *f = field_find(table, config_setting_name(s));

        if (f)
            parsers[f->type](ld, f, s, base);
        else
            unknown(ld, s, table);
    }
}

static bool need_group(struct load *ld, config_setting_t *s)
{
    if (config_setting_is_group(s))
        return true;
    err(ld, s, "must be a group { ... }");
    return false;
}

/* A list or array of strings, each non-empty and at most max bytes. */
static void string_list(struct load *ld, config_setting_t *s, bool paths, size_t max,
                        char ***out, size_t *count)
{
    int i, n = config_setting_length(s);

    *out = xcalloc((size_t)n, sizeof(char *));
    for (i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        const char *v = config_setting_get_string(e);

        if (!v || !*v || strlen(v) > max) {
            err(ld, e, "must be a non-empty string of at most %zu bytes", max);
            continue;
        }
        (*out)[(*count)++] = paths ? join_path(ld->conf->conf_dir, v) : xstrdup(v);
    }
}

static bool is_sequence(const config_setting_t *s)
{
    return config_setting_is_array(s) || config_setting_is_list(s);
}

/* ---- limits ----------------------------------------------------------------- */

#define LIMIT_FIELDS(base)                                                               \
    {"max_connections", F_INT, (base) + OFF(conf_limits, lim_max_connections), 1,      \
     INT_MAX, .dflt = 10000},                                                            \
    {"handshake_timeout", F_POS, (base) + OFF(conf_limits, lim_handshake_timeout),     \
     .dflt = 10.0},                                                                      \
    {"idle_timeout", F_POS, (base) + OFF(conf_limits, lim_idle_timeout), .dflt = 300.0}, \
    {"drain_timeout", F_NUM, (base) + OFF(conf_limits, lim_drain_timeout), 0, HUGE_VAL, \
     .dflt = 30.0}

static const struct field limit_fields[] = { LIMIT_FIELDS(0), {NULL} };

static void parse_limits(struct load *ld, config_setting_t *s, void *base)
{
    if (need_group(ld, s))
        walk(ld, s, limit_fields, &ld->conf->conf_limits);
}

/* ---- tls ------------------------------------------------------------------- */

static const char *const tls_versions[] = { "TLSv1.2", "TLSv1.3", NULL };
static const char *const verify_modes[] = { "none", "optional", "require", NULL };

static const struct field cert_fields[] = {
    {"certificate", F_PATH, OFF(conf_cert, cert_file)},
    {"key", F_PATH, OFF(conf_cert, cert_key_file)},
    {NULL}
};

static void cert_parse(struct load *ld, config_setting_t *s, struct conf_cert *c)
{
    char path[PATH_BUF];

    setting_path(s, path, sizeof(path));
    c->cert_setting = xstrdup(path);
    if (!need_group(ld, s))
        return;
    walk(ld, s, cert_fields, c);
    if (!config_setting_get_member(s, "certificate"))
        err(ld, s, "missing certificate");
    if (!config_setting_get_member(s, "key"))
        err(ld, s, "missing key");
}

static void tls_parse_certs(struct load *ld, config_setting_t *s, void *base)
{
    struct conf_tls *tls = base;
    int i, n = config_setting_length(s);

    if (!config_setting_is_list(s) || n == 0) {
        err(ld, s, "must be a list of groups ( { certificate = \"FILE\"; key = \"FILE\"; } )");
        return;
    }
    tls->tls_certs = xcalloc((size_t)n, sizeof(struct conf_cert));
    tls->tls_ncerts = (size_t)n;
    for (i = 0; i < n; i++)
        cert_parse(ld, config_setting_get_elem(s, i), &tls->tls_certs[i]);
}

static void tls_parse_alpn(struct load *ld, config_setting_t *s, void *base)
{
    struct conf_tls *tls = base;

    if (!is_sequence(s) || config_setting_length(s) == 0) {
        err(ld, s, "must be an array of strings such as [ \"h2\", \"http/1.1\" ]");
        return;
    }
    string_list(ld, s, false, ALPN_MAX, &tls->tls_alpn, &tls->tls_nalpn);
}

/* A file name, "" for none, or a list for rotation (the first encrypts). */
static void tls_parse_ticket_keys(struct load *ld, config_setting_t *s, void *base)
{
    struct conf_tls *tls = base;
    const char *v = config_setting_get_string(s);

    if (v) {
        if (*v) {
            tls->tls_ticket_keys = xcalloc(1, sizeof(char *));
            tls->tls_ticket_keys[tls->tls_nticket_keys++] = join_path(ld->conf->conf_dir, v);
        }
        return;
    }
    if (!is_sequence(s) || config_setting_length(s) == 0) {
        err(ld, s, "must be a string or a list of strings");
        return;
    }
    string_list(ld, s, true, PATH_MAX, &tls->tls_ticket_keys, &tls->tls_nticket_keys);
}

static const struct field tls_fields[] = {
    {"certificates", F_CUSTOM, .parse = tls_parse_certs},
    {"certificate", F_PATH, OFF(conf_tls, tls_cert_file)},
    {"key", F_PATH, OFF(conf_tls, tls_key_file)},
    {"min_version", F_ENUM, OFF(conf_tls, tls_min_version), .choices = tls_versions,
     .dflt = CONF_TLS_1_2},
    {"ciphers", F_OPTSTR, OFF(conf_tls, tls_ciphers)},
    {"ciphersuites", F_OPTSTR, OFF(conf_tls, tls_ciphersuites)},
    {"alpn", F_CUSTOM, .parse = tls_parse_alpn},
    {"client_ca", F_OPTPATH, OFF(conf_tls, tls_client_ca)},
    {"verify_client", F_ENUM, OFF(conf_tls, tls_verify_client), .choices = verify_modes,
     .dflt = CONF_VERIFY_NONE},
    {"session_tickets", F_BOOL, OFF(conf_tls, tls_session_tickets), .dflt = 1},
    {"ticket_key_file", F_CUSTOM, .parse = tls_parse_ticket_keys},
    {"ragged_eof", F_BOOL, OFF(conf_tls, tls_ragged_eof), .dflt = 0},
    {"autostart", F_BOOL, OFF(conf_tls, tls_autostart), .dflt = 1},
    {NULL}
};

/* Folds the certificate/key shorthand into the list of one pair. */
static void tls_shorthand(struct load *ld, config_setting_t *s, struct conf_tls *tls)
{
    char path[PATH_BUF];

    if (!tls->tls_key_file || !tls->tls_cert_file) {
        err(ld, s, "%s: give certificate and key together",
            tls->tls_key_file ? "key without certificate" : "certificate without key");
        return;
    }
    setting_path(s, path, sizeof(path));
    tls->tls_certs = xcalloc(1, sizeof(struct conf_cert));
    tls->tls_ncerts = 1;
    tls->tls_certs[0].cert_file = tls->tls_cert_file;
    tls->tls_certs[0].cert_key_file = tls->tls_key_file;
    tls->tls_certs[0].cert_setting = xstrdup(path);
    tls->tls_cert_file = tls->tls_key_file = NULL;
}

static void tls_finish(struct load *ld, config_setting_t *s, struct conf_tls *tls)
{
    bool shorthand = config_setting_get_member(s, "certificate") ||
                     config_setting_get_member(s, "key");
    bool list = config_setting_get_member(s, "certificates") != NULL;

    if (shorthand && list)
        err(ld, s, "give either certificates or certificate and key, not both");
    else if (shorthand)
        tls_shorthand(ld, s, tls);
    else if (!list)
        err(ld, s, "no certificate: give certificates, or certificate and key");
    if (tls->tls_verify_client != CONF_VERIFY_NONE && !tls->tls_client_ca)
        err(ld, s, "verify_client \"%s\" needs client_ca",
            verify_modes[tls->tls_verify_client]);
}

static void tls_free(struct conf_tls *tls)
{
    size_t i;

    if (!tls)
        return;
    fields_free(tls_fields, tls);
    for (i = 0; i < tls->tls_ncerts; i++) {
        free(tls->tls_certs[i].cert_file);
        free(tls->tls_certs[i].cert_key_file);
        free(tls->tls_certs[i].cert_setting);
    }
    for (i = 0; i < tls->tls_nalpn; i++)
        free(tls->tls_alpn[i]);
    for (i = 0; i < tls->tls_nticket_keys; i++)
        free(tls->tls_ticket_keys[i]);
    free(tls->tls_certs);
    free(tls->tls_alpn);
    free(tls->tls_ticket_keys);
    free(tls);
}

/* ---- handler ---------------------------------------------------------------- */

static json_t *to_json(const config_setting_t *s);

static json_t *json_from_int(const config_setting_t *s)
{
    return json_integer(config_setting_get_int64(s));
}

static json_t *json_from_float(const config_setting_t *s)
{
    return json_real(config_setting_get_float(s));
}

static json_t *json_from_string(const config_setting_t *s)
{
    return json_string(config_setting_get_string(s));
}

static json_t *json_from_bool(const config_setting_t *s)
{
    return json_boolean(config_setting_get_bool(s));
}

static json_t *json_from_sequence(const config_setting_t *s)
{
    json_t *a = json_array();
    int i, n = config_setting_length(s);

    for (i = 0; i < n; i++)
        json_array_append_new(a, to_json(config_setting_get_elem(s, i)));
    return a;
}

static json_t *json_from_group(const config_setting_t *s)
{
    json_t *o = json_object();
    int i, n = config_setting_length(s);

    for (i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);

        json_object_set_new(o, config_setting_name(e), to_json(e));
    }
    return o;
}

static json_t *(*const json_by_type[])(const config_setting_t *) = {
    [CONFIG_TYPE_GROUP] = json_from_group,   [CONFIG_TYPE_INT] = json_from_int,
    [CONFIG_TYPE_INT64] = json_from_int,     [CONFIG_TYPE_FLOAT] = json_from_float,
    [CONFIG_TYPE_STRING] = json_from_string, [CONFIG_TYPE_BOOL] = json_from_bool,
    [CONFIG_TYPE_ARRAY] = json_from_sequence, [CONFIG_TYPE_LIST] = json_from_sequence,
};

static json_t *to_json(const config_setting_t *s)
{
    return json_by_type[config_setting_type(s)](s);
}

/* A plugin is the file NAME.so in plugin_dir: no '/' may lead elsewhere. */
static bool valid_name(const char *v)
{
    return *v && strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           "0123456789_.-") == strlen(v);
}

static void set_plugin(struct load *ld, config_setting_t *s, struct conf_listener *l)
{
    const char *v = config_setting_get_string(s);

    if (!v || !valid_name(v) || strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
        err(ld, s, "must be a plugin name (a non-empty string of A-Z a-z 0-9 _ . -)");
        return;
    }
    l->lst_plugin = xstrdup(v);
}

/* The options are the plugin's to check; the loader only converts them. */
static void handler_group(struct load *ld, config_setting_t *s, struct conf_listener *l)
{
    int i, n = config_setting_length(s);

    for (i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);

        if (strcmp(config_setting_name(e), "plugin") == 0)
            set_plugin(ld, e, l);
        else
            json_object_set_new(l->lst_options, config_setting_name(e), to_json(e));
    }
    if (!config_setting_get_member(s, "plugin"))
        err(ld, s, "missing plugin");
}

static void lst_parse_handler(struct load *ld, config_setting_t *s, void *base)
{
    struct conf_listener *l = base;

    if (config_setting_type(s) == CONFIG_TYPE_STRING)
        set_plugin(ld, s, l);
    else if (config_setting_is_group(s))
        handler_group(ld, s, l);
    else
        err(ld, s, "must be a plugin name or a group { plugin = \"NAME\"; ... }");
}

/* ---- listeners -------------------------------------------------------------- */

static const char *const kind_names[] = { "tcp", "unix", "udp" };

static void lst_parse_name(struct load *ld, config_setting_t *s, void *base)
{
    struct conf_listener *l = base, *first;
    const char *v = config_setting_get_string(s);
    char path[PATH_BUF];

    if (!v || !valid_name(v)) {
        err(ld, s, "must be a name of A-Z a-z 0-9 _ . - (at least one)");
        return;
    }
    for (first = ld->conf->conf_listeners; first < l; first++) {
        if (first->lst_name && strcmp(first->lst_name, v) == 0) {
            snprintf(path, sizeof(path), "%s.name", first->lst_setting);
            err(ld, s, "duplicate listener name \"%s\" (first at line %d)", v,
                conf_line(ld->conf, path));
            return;
        }
    }
    l->lst_name = xstrdup(v);
}

/* The port range is checked here, before wharf_addr_parse, so that 0 and
 * 65536 get a message about the port and not about the address. */
static void check_ip(struct load *ld, config_setting_t *s, struct conf_listener *l,
                     const char *v)
{
    const char *colon = strrchr(v, ':');
    char *end;
    long port;

    if (colon && colon[1] >= '0' && colon[1] <= '9') {
        port = strtol(colon + 1, &end, 10);
        if (*end == '\0' && (port < 1 || port > 65535)) {
            err(ld, s, "port %s out of range: must be between 1 and 65535", colon + 1);
            return;
        }
    }
    if (wharf_addr_parse(v, &l->lst_addr, &l->lst_addrlen) < 0 ||
        l->lst_addr.ss_family == AF_UNIX)
        err(ld, s, "bad address \"%s\": give a numeric \"A.B.C.D:PORT\" or \"[IPV6]:PORT\"", v);
}

static void check_unix(struct load *ld, config_setting_t *s, const char *v)
{
    struct sockaddr_un *sun;

    if (!*v)
        err(ld, s, "must not be empty");
    else if (strlen(v) >= sizeof(sun->sun_path))
        err(ld, s, "too long for a UNIX socket path (at most %zu bytes)",
            sizeof(sun->sun_path) - 1);
}

static void lst_parse_address(struct load *ld, config_setting_t *s,
                              struct conf_listener *l, int kind)
{
    const char *v = config_setting_get_string(s);

    if (!v) {
        err(ld, s, "must be a string");
        return;
    }
    if (l->lst_kind != CONF_KIND_NONE) {
        err(ld, s, "%s and %s: give exactly one of tcp, unix, udp",
            kind_names[l->lst_kind], kind_names[kind]);
        return;
    }
    l->lst_kind = kind;
    /* a UNIX path is a path like the others: relative to the file's directory */
    l->lst_address = kind == CONF_UNIX && *v ? join_path(ld->conf->conf_dir, v) : xstrdup(v);
    if (kind == CONF_UNIX)
        check_unix(ld, s, l->lst_address);
    else
        check_ip(ld, s, l, v);
}

static void lst_parse_tcp(struct load *ld, config_setting_t *s, void *base)
{
    lst_parse_address(ld, s, base, CONF_TCP);
}

static void lst_parse_unix(struct load *ld, config_setting_t *s, void *base)
{
    lst_parse_address(ld, s, base, CONF_UNIX);
}

static void lst_parse_udp(struct load *ld, config_setting_t *s, void *base)
{
    lst_parse_address(ld, s, base, CONF_UDP);
}

/* A string, so that the octal reads as octal ("0660"), as in chmod. */
static void lst_parse_mode(struct load *ld, config_setting_t *s, void *base)
{
    struct conf_listener *l = base;
    const char *v = config_setting_get_string(s);
    size_t n = v ? strlen(v) : 0;

    if (!v || n < 3 || n > 4 || strspn(v, "01234567") != n) {
        err(ld, s, "must be an octal mode as a string, such as \"0660\"");
        return;
    }
    l->lst_unix_mode = (unsigned)strtoul(v, NULL, 8);
}

static void lst_parse_tls(struct load *ld, config_setting_t *s, void *base)
{
    struct conf_listener *l = base;

    if (!need_group(ld, s))
        return;
    l->lst_tls = xcalloc(1, sizeof(struct conf_tls));
    fields_default(tls_fields, l->lst_tls);
    walk(ld, s, tls_fields, l->lst_tls);
    tls_finish(ld, s, l->lst_tls);
}

static const struct field listener_fields[] = {
    {"name", F_CUSTOM, .parse = lst_parse_name},
    {"tcp", F_CUSTOM, .parse = lst_parse_tcp},
    {"unix", F_CUSTOM, .parse = lst_parse_unix},
    {"udp", F_CUSTOM, .parse = lst_parse_udp},
    {"unix_mode", F_CUSTOM, .parse = lst_parse_mode},
    {"backlog", F_INT, OFF(conf_listener, lst_backlog), 1, 65535, .dflt = 511},
    {"proxy_protocol", F_BOOL, OFF(conf_listener, lst_proxy_protocol), .dflt = 0},
    {"tls", F_CUSTOM, .parse = lst_parse_tls},
    {"handler", F_CUSTOM, .parse = lst_parse_handler},
    LIMIT_FIELDS(OFF(conf_listener, lst_limits)),
    {NULL}
};

/* What can only be judged once the whole group is read. */
static void lst_finish(struct load *ld, config_setting_t *s, struct conf_listener *l)
{
    config_setting_t *tls = config_setting_get_member(s, "tls");
    config_setting_t *mode = config_setting_get_member(s, "unix_mode");
    config_setting_t *proxy = config_setting_get_member(s, "proxy_protocol");

    if (!config_setting_get_member(s, "name"))
        err(ld, s, "missing name");
    if (l->lst_kind == CONF_KIND_NONE)
        err(ld, s, "no address: give exactly one of tcp, unix, udp");
    if (!config_setting_get_member(s, "handler"))
        err(ld, s, "missing handler");
    if (tls && l->lst_kind == CONF_UDP)
        err(ld, tls, "not allowed on a udp listener");
    if (proxy && l->lst_kind == CONF_UDP && config_setting_get_bool(proxy))
        err(ld, proxy, "not allowed on a udp listener (PROXY headers come before a stream)");
    if (mode && l->lst_kind != CONF_KIND_NONE && l->lst_kind != CONF_UNIX)
        err(ld, mode, "only for a unix listener");
}

static void lst_parse(struct load *ld, config_setting_t *s, struct conf_listener *l)
{
    char path[PATH_BUF];

    setting_path(s, path, sizeof(path));
    l->lst_setting = xstrdup(path);
    l->lst_line = config_setting_source_line(s);
    l->lst_kind = CONF_KIND_NONE;
    l->lst_options = json_object();
    fields_default(listener_fields, l);
    l->lst_limits = ld->conf->conf_limits;
    if (!need_group(ld, s))
        return;
    walk(ld, s, listener_fields, l);
    lst_finish(ld, s, l);
}

static void parse_listeners(struct load *ld, config_setting_t *s)
{
    struct conf *conf = ld->conf;
    int i, n = config_setting_length(s);

    if (!config_setting_is_list(s)) {
        err(ld, s, "must be a list of groups ( { ... }, { ... } )");
        return;
    }
    conf->conf_listeners = xcalloc((size_t)n, sizeof(struct conf_listener));
    conf->conf_nlisteners = (size_t)n;
    for (i = 0; i < n; i++)
        lst_parse(ld, config_setting_get_elem(s, i), &conf->conf_listeners[i]);
}

static void conf_listener_free(struct conf_listener *l)
{
    fields_free(listener_fields, l);
    free(l->lst_name);
    free(l->lst_setting);
    free(l->lst_address);
    free(l->lst_plugin);
    json_decref(l->lst_options);
    tls_free(l->lst_tls);
    plugin_unref(&l->lst_inst);
    SSL_CTX_free(l->lst_ssl_ctx);
}

const struct conf_listener *conf_listener_find(const struct conf *conf, const char *name)
{
    size_t i;

    for (i = 0; i < conf->conf_nlisteners; i++)
        if (strcmp(conf->conf_listeners[i].lst_name, name) == 0)
            return &conf->conf_listeners[i];
    return NULL;
}

/* ---- the file ----------------------------------------------------------------- */

/* Deferred: listeners inherit the global limits, which may come later. */
static void keep_listeners(struct load *ld, config_setting_t *s, void *base)
{
    ld->listeners = s;
}

static const char *const log_levels[] = { "error", "warning", "info", "debug", NULL };

static const struct field top_fields[] = {
    {"workers", F_INT, OFF(conf, conf_workers), 0, 4096, .dflt = 0},
    {"user", F_OPTSTR, OFF(conf, conf_user)},
    {"plugin_dir", F_PATH, OFF(conf, conf_plugin_dir), .sdflt = WHARF_PLUGIN_DIR},
    {"log_level", F_ENUM, OFF(conf, conf_log_level), .choices = log_levels,
     .dflt = CONF_LOG_INFO},
    {"log_file", F_OPTPATH, OFF(conf, conf_log_file)},
    {"limits", F_CUSTOM, .parse = parse_limits},
    {"listeners", F_CUSTOM, .parse = keep_listeners},
    {NULL}
};

/* The directory of the file, absolute, so that resolved paths survive a
 * later chdir (and plugins get one fixed answer). */
static char *file_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path)) : xstrdup(".");
    char *abs;

    if (!dir)
        abort();
    if (!*dir) {
        free(dir);
        return xstrdup("/");
    }
    abs = realpath(dir, NULL);
    if (abs) {
        free(dir);
        return abs;
    }
    return dir;
}

static struct conf *conf_new(const char *path)
{
    struct conf *conf = xcalloc(1, sizeof(*conf));

    conf->conf_file = xstrdup(path);
    conf->conf_dir = file_dir(path);
    conf->conf_lines = json_object();
    fields_default(top_fields, conf);
    fields_default(limit_fields, &conf->conf_limits);
    return conf;
}

void conf_free(struct conf *conf)
{
    size_t i;

    if (!conf)
        return;
    for (i = 0; i < conf->conf_nlisteners; i++)
        conf_listener_free(&conf->conf_listeners[i]);
    free(conf->conf_listeners);
    fields_free(top_fields, conf);
    json_decref(conf->conf_lines);
    free(conf->conf_file);
    free(conf->conf_dir);
    free(conf);
}

/* libconfig says only "file I/O error"; the operator wants the reason. */
static int check_readable(const char *path, struct conf_errors *errs)
{
    FILE *fp = fopen(path, "r");
    struct stat st;
    int e = 0;

    if (!fp)
        e = errno;
    else if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode))
        e = EISDIR;
    if (fp)
        fclose(fp);
    if (e)
        conf_errors_add(errs, 0, "%s: cannot read: %s", path, strerror(e));
    return e ? -1 : 0;
}

static void check_tree(struct load *ld, config_t *cfg)
{
    record_lines(ld->conf->conf_lines, config_root_setting(cfg));
    walk(ld, config_root_setting(cfg), top_fields, ld->conf);
    if (ld->listeners)
        parse_listeners(ld, ld->listeners);
}

int conf_parse(const char *path, struct conf **out, struct conf_errors *errs)
{
    struct load ld = { path, NULL, errs, NULL };
    size_t before = errs->err_count;
    config_t cfg;
    bool parsed;

    *out = NULL;
    if (check_readable(path, errs) < 0)
        return -1;
    ld.conf = conf_new(path);
    config_init(&cfg);
    config_set_include_dir(&cfg, ld.conf->conf_dir);
    if ((parsed = config_read_file(&cfg, path)))
        check_tree(&ld, &cfg);
    else
        conf_errors_add(errs, config_error_line(&cfg), "%s:%d: %s",
                        config_error_file(&cfg) ? config_error_file(&cfg) : path,
                        config_error_line(&cfg), config_error_text(&cfg));
    config_destroy(&cfg);
    if (!parsed) {
        conf_free(ld.conf);
        return -1;
    }
    *out = ld.conf;
    return errs->err_count > before ? -1 : 0;
}

int conf_load(const char *path, struct conf **out, struct conf_errors *errs)
{
    if (conf_parse(path, out, errs) == 0)
        return 0;
    conf_free(*out);
    *out = NULL;
    return -1;
}
