/*
 * options.c: the forward plugin's options, checked in full at init so that
 * a mistake is a config error with the option's name, never a refused
 * connection later. One table maps each option to its parser; `tls` has a
 * table of its own. The client SSL_CTX for TLS to the target is built
 * here, once per listener generation, and shared by every connection.
 * Not for: using the options (forward.c, datagram.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "forward.h"

#define DEFAULT_CONNECT_TIMEOUT 5.0
#define DEFAULT_UDP_IDLE_TIMEOUT 60.0
#define DEFAULT_UDP_MAX_ASSOC 1024
#define MAX_TIMEOUT 86400.0             /* a day: anything longer is a typo */
#define MAX_UDP_ASSOC 65536
#define MAX_NAME 253                    /* a DNS name */

/* What init collects before it builds anything. */
struct opts {
    const struct wharf_plugin_env *env;
    struct wharf_plugin_error *err;
    struct fwd *f;
    const char *target;
    bool have_tls, verify;
    const char *udp_key;                /* the first udp_* option seen */
    const char *server_name, *ca;
    json_t *alpn;
};

static int reject(struct opts *o, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reject(struct opts *o, const char *key, const char *fmt, ...)
{
    va_list ap;

    snprintf(o->err->key, sizeof(o->err->key), "%s", key);
    va_start(ap, fmt);
    vsnprintf(o->err->message, sizeof(o->err->message), fmt, ap);
    va_end(ap);
    return -1;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Resolves path against the config file's directory (unless absolute). */
static char *resolve(const char *dir, const char *path)
{
    size_t len = strlen(dir) + 1 + strlen(path) + 1;
    char *out = malloc(len);

    if (!out)
        return NULL;
    if (path[0] == '/' || dir[0] == '\0')
        snprintf(out, len, "%s", path);
    else
        snprintf(out, len, "%s/%s", dir, path);
    return out;
}

/* A number of seconds in (0, MAX_TIMEOUT]; integers are welcome too. */
static int seconds(struct opts *o, const char *key, json_t *v, double *out)
{
    double d = json_is_number(v) ? json_number_value(v) : NAN;

    if (!(d > 0 && d <= MAX_TIMEOUT))
        return reject(o, key, "%s must be a number of seconds, more than 0 and at most %g",
                      key, MAX_TIMEOUT);
    *out = d;
    return 0;
}

/* ---- target ------------------------------------------------------------------- */

static int target_unix(struct opts *o, const char *path)
{
    struct sockaddr_un sun;

    if (!*path)
        return reject(o, "target", "target \"unix:\" needs a path");
    if (!(o->f->fwd_path = resolve(o->env->config_dir, path)))
        return -1;
    if (strlen(o->f->fwd_path) >= sizeof(sun.sun_path))
        return reject(o, "target", "target \"%s\": the path is longer than %zu bytes",
                      o->target, sizeof(sun.sun_path) - 1);
    return 0;
}

/* A host name (letters, digits, '-', '_', '.'; at most 253) or an IPv4
 * address; in brackets, an IPv6 address. */
static bool host_ok(const char *h, bool bracketed)
{
    unsigned char a[16];

    if (bracketed)
        return inet_pton(AF_INET6, h, a) == 1;
    if (strlen(h) > MAX_NAME)
        return false;
    return strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
           == strlen(h);
}

/* "HOST:PORT" or "[IPv6]:PORT"; HOST a name or a numeric address. */
static int target_host_port(struct opts *o, const char *t)
{
    const char *colon = strrchr(t, ':'), *host = t, *end;
    size_t hlen;
    char *stop;
    unsigned long port;

    if (!colon)
        return reject(o, "target", "target \"%s\": HOST:PORT or unix:/path expected", t);
    end = colon;
    if (t[0] == '[') {
        if (colon == t || colon[-1] != ']')
            return reject(o, "target", "target \"%s\": [IPv6]:PORT expected", t);
        host = t + 1;
        end = colon - 1;
    } else if (memchr(t, ':', (size_t)(colon - t))) {
        return reject(o, "target", "target \"%s\": an IPv6 address goes in brackets: "
                      "[ADDRESS]:PORT", t);
    }
    hlen = (size_t)(end - host);
    errno = 0;
    port = strtoul(colon + 1, &stop, 10);
    if (colon[1] < '0' || colon[1] > '9' || *stop || errno || port == 0 || port > 65535)
        return reject(o, "target", "target \"%s\": the port must be 1..65535", t);
    if (hlen == 0)
        return reject(o, "target", "target \"%s\": no host", t);
    if (!(o->f->fwd_host = strndup(host, hlen)))
        return -1;
    o->f->fwd_port = (unsigned)port;
    if (!host_ok(o->f->fwd_host, t[0] == '['))
        return reject(o, "target", "target \"%s\": \"%s\" is not %s", t, o->f->fwd_host,
                      t[0] == '[' ? "an IPv6 address" : "a host name or an IPv4 address");
    return 0;
}

static int opt_target(struct opts *o, json_t *v)
{
    const char *t = json_string_value(v);

    if (!t || !*t)
        return reject(o, "target", "target must be \"HOST:PORT\" or \"unix:/path\"");
    o->target = t;
    if (strncmp(t, "unix:", 5) == 0)
        return target_unix(o, t + 5);
    if (t[0] == '/')
        return target_unix(o, t);
    return target_host_port(o, t);
}

/* ---- the other top-level options ---------------------------------------------------- */

static int opt_connect_timeout(struct opts *o, json_t *v)
{
    return seconds(o, "connect_timeout", v, &o->f->fwd_connect_timeout);
}

static int opt_send_proxy(struct opts *o, json_t *v)
{
    const char *s = json_string_value(v);

    if (s && strcmp(s, "v1") == 0)
        o->f->fwd_send_proxy = FWD_PROXY_V1;
    else if (s && strcmp(s, "v2") == 0)
        o->f->fwd_send_proxy = FWD_PROXY_V2;
    else
        return reject(o, "send_proxy", "send_proxy must be \"v1\" or \"v2\"");
    if (o->env->kind == WHARF_LISTENER_DATAGRAM)
        return reject(o, "send_proxy", "send_proxy is for stream listeners, not UDP");
    return 0;
}

static int opt_udp_idle_timeout(struct opts *o, json_t *v)
{
    o->udp_key = o->udp_key ? o->udp_key : "udp_idle_timeout";
    return seconds(o, "udp_idle_timeout", v, &o->f->fwd_udp_idle_timeout);
}

static int opt_udp_max_associations(struct opts *o, json_t *v)
{
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;

    o->udp_key = o->udp_key ? o->udp_key : "udp_max_associations";
    if (n < 1 || n > MAX_UDP_ASSOC)
        return reject(o, "udp_max_associations",
                      "udp_max_associations must be an integer from 1 to %d", MAX_UDP_ASSOC);
    o->f->fwd_udp_max_assoc = (unsigned)n;
    return 0;
}

/* ---- tls = { ... } ---------------------------------------------------------------------- */

static int tls_verify(struct opts *o, json_t *v)
{
    if (!json_is_boolean(v))
        return reject(o, "tls.verify", "tls.verify must be true or false");
    o->verify = json_is_true(v);
    return 0;
}

static int tls_server_name(struct opts *o, json_t *v)
{
    const char *s = json_string_value(v);

    if (!s || !*s || strlen(s) > MAX_NAME)
        return reject(o, "tls.server_name", "tls.server_name must be a host name of 1 to %d "
                      "characters", MAX_NAME);
    o->server_name = s;
    return 0;
}

static int tls_ca(struct opts *o, json_t *v)
{
    const char *s = json_string_value(v);

    if (!s || !*s)
        return reject(o, "tls.ca", "tls.ca must be the path of a PEM file of CA certificates");
    o->ca = s;
    return 0;
}

static int tls_alpn(struct opts *o, json_t *v)
{
    size_t i;
    json_t *p;

    if (!json_is_array(v) || json_array_size(v) == 0)
        return reject(o, "tls.alpn", "tls.alpn must be a list of protocol names");
    json_array_foreach(v, i, p) {
        size_t n = json_is_string(p) ? json_string_length(p) : 0;

        if (n == 0 || n > 255)
            return reject(o, "tls.alpn", "tls.alpn: protocol names are strings of 1 to 255 "
                          "bytes");
    }
    o->alpn = v;
    return 0;
}

struct option {
    const char *name;
    int (*parse)(struct opts *o, json_t *v);
};

static const struct option tls_options[] = {
    { "verify", tls_verify },
    { "server_name", tls_server_name },
    { "ca", tls_ca },
    { "alpn", tls_alpn },
    { NULL, NULL }
};

static const struct option *find(const struct option *table, const char *name)
{
    for (; table->name; table++)
        if (strcmp(table->name, name) == 0)
            return table;
    return NULL;
}

static int opt_tls(struct opts *o, json_t *v)
{
    const struct option *opt;
    const char *key;
    json_t *x;
    char full[64];

    if (!json_is_object(v))
        return reject(o, "tls", "tls must be a group: tls = { verify = true; ... }");
    if (o->env->kind == WHARF_LISTENER_DATAGRAM)
        return reject(o, "tls", "tls (to the target) is for stream listeners, not UDP");
    o->have_tls = true;
    json_object_foreach(v, key, x) {
        if (!(opt = find(tls_options, key))) {
            snprintf(full, sizeof(full), "tls.%s", key);
            return reject(o, full, "unknown option \"tls.%s\" (tls takes verify, server_name, "
                          "ca, alpn)", key);
        }
        if (opt->parse(o, x) < 0)
            return -1;
    }
    return 0;
}

static const struct option top_options[] = {
    { "target", opt_target },
    { "connect_timeout", opt_connect_timeout },
    { "tls", opt_tls },
    { "send_proxy", opt_send_proxy },
    { "udp_idle_timeout", opt_udp_idle_timeout },
    { "udp_max_associations", opt_udp_max_associations },
    { NULL, NULL }
};

/* ---- the client context ----------------------------------------------------------------- */

/* OpenSSL's last reason, or errno's when it has none. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    return r ? r : strerror(errno ? errno : EINVAL);
}

static int load_ca(struct opts *o, SSL_CTX *ctx)
{
    char *path = resolve(o->env->config_dir, o->ca);
    FILE *f;
    int rc = 0;

    if (!path)
        return -1;
    if (!(f = fopen(path, "r"))) {
        rc = reject(o, "tls.ca", "cannot read \"%s\": %s", path, strerror(errno));
    } else {
        fclose(f);
        ERR_clear_error();
        errno = 0;
        if (SSL_CTX_load_verify_locations(ctx, path, NULL) != 1)
            rc = reject(o, "tls.ca", "\"%s\": no CA certificate loaded: %s", path,
                        ssl_reason());
    }
    free(path);
    ERR_clear_error();
    return rc;
}

/* ALPN in its wire form: each name after its length byte. */
static int set_alpn(struct opts *o, SSL_CTX *ctx)
{
    unsigned char wire[4096];
    size_t len = 0, i;
    json_t *p;

    json_array_foreach(o->alpn, i, p) {
        size_t n = json_string_length(p);

        if (len + 1 + n > sizeof(wire))
            return reject(o, "tls.alpn", "tls.alpn: the list is too long");
        wire[len++] = (unsigned char)n;
        memcpy(wire + len, json_string_value(p), n);
        len += n;
    }
    /* SSL_CTX_set_alpn_protos returns 0 on success */
    return SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)len) == 0 ? 0 : -1;
}

static int make_ctx(struct opts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx)
        return -1;
    o->f->fwd_ssl_ctx = ctx;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        return -1;
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (o->verify)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* with verify = false a ca is not used, but a broken file is still a mistake */
    if (o->ca && load_ca(o, ctx) < 0)
        return -1;
    if (o->verify && !o->ca && SSL_CTX_set_default_verify_paths(ctx) != 1)
        return reject(o, "tls", "cannot load the system's CA store: %s", ssl_reason());
    if (o->alpn && set_alpn(o, ctx) < 0)
        return -1;
    return 0;
}

/* ---- the whole set -------------------------------------------------------------------- */

/* What only makes sense together, once every option is read. */
static int check_whole(struct opts *o)
{
    bool udp = o->env->kind == WHARF_LISTENER_DATAGRAM;

    if (!o->target)
        return reject(o, "", "forward needs a target: target = \"HOST:PORT\" or "
                      "\"unix:/path\"");
    if (udp && o->f->fwd_path)
        return reject(o, "target", "target \"%s\": a UDP listener forwards to HOST:PORT, "
                      "not to a UNIX socket", o->target);
    if (!udp && o->udp_key)
        return reject(o, o->udp_key, "%s is for UDP listeners", o->udp_key);
    if (o->have_tls && o->verify && !o->server_name && o->f->fwd_path)
        return reject(o, "tls", "tls: with a unix: target, verification needs "
                      "tls.server_name (the name to check in the certificate), or "
                      "verify = false");
    return 0;
}

int fwd_options(struct fwd *f, json_t *options, const struct wharf_plugin_env *env,
                struct wharf_plugin_error *err)
{
    struct opts o = { .env = env, .err = err, .f = f, .verify = true };
    const struct option *opt;
    const char *key;
    json_t *v;

    f->fwd_connect_timeout = DEFAULT_CONNECT_TIMEOUT;
    f->fwd_udp_idle_timeout = DEFAULT_UDP_IDLE_TIMEOUT;
    f->fwd_udp_max_assoc = DEFAULT_UDP_MAX_ASSOC;
    json_object_foreach(options, key, v) {
        if (!(opt = find(top_options, key)))
            return reject(&o, key, "unknown option \"%s\" (forward takes target, "
                          "connect_timeout, tls, send_proxy, udp_idle_timeout, "
                          "udp_max_associations)", key);
        if (opt->parse(&o, v) < 0)
            return -1;
    }
    if (check_whole(&o) < 0)
        return -1;
    if (o.have_tls) {
        if (make_ctx(&o) < 0)
            return -1;
        f->fwd_server_name = dup_or_null(o.server_name ? o.server_name : f->fwd_host);
        if (!f->fwd_server_name && (o.server_name || f->fwd_host))
            return -1;
    }
    return 0;
}

void fwd_options_free(struct fwd *f)
{
    free(f->fwd_host);
    free(f->fwd_path);
    free(f->fwd_server_name);
    SSL_CTX_free(f->fwd_ssl_ctx);
}
