/*
 * check_forward.c: the forward plugin (SPEC.md section 5) in-process. The
 * plugin is loaded the way wharfd loads it (dlopen of its .so from the
 * build tree; this program exports the runtime) and serves one end of a
 * connection while the test plays the client on the other end and the
 * target on a loopback listener of its own: bytes both ways, half-closes
 * both ways, an unreachable and a silent target, the PROXY header (parsed
 * here, byte by byte), TLS to the target, the datagram associations, the
 * stats hook and the options.
 *
 * The client's end is an in-memory connection, like wharfd's buffered
 * stream over a socket, except in the PROXY tests, which need real
 * addresses: there the handler serves a connection accepted on a loopback
 * TCP or UNIX "front" listener (with TLS when the test says so).
 */
#include "config.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <netinet/in.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <wharf/plugin.h>
#include <wharf/tls.h>

#include "testutil.h"
#include "tlsutil.h"
#include "wharf-int.h"          /* the scheduler's count of live tasks */

#define MIB (1024 * 1024)

/* ---- loading and init ------------------------------------------------------ */

static const struct wharf_plugin *load(void)
{
    const char *dir = getenv("WHARF_BUILDDIR");
    const struct wharf_plugin *p;
    char path[4096];
    void *so;

    ck_assert_msg(dir != NULL, "WHARF_BUILDDIR is not set");
    snprintf(path, sizeof(path), "%s/plugins/.libs/forward.so", dir);
    so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(so != NULL, "dlopen: %s", dlerror());
    p = dlsym(so, WHARF_PLUGIN_SYMBOL);
    ck_assert_msg(p != NULL, "%s: no descriptor", path);
    ck_assert_uint_eq(p->api_major, WHARF_API_MAJOR);
    ck_assert_uint_le(p->api_minor, WHARF_API_MINOR);
    ck_assert_uint_eq(p->size, sizeof(struct wharf_plugin));
    ck_assert_str_eq(p->name, "forward");
    return p;
}

static void *init_json(const char *json, int kind, struct wharf_plugin_error *err)
{
    struct wharf_plugin_env env = { tu_tmpdir(), "test", kind };
    json_error_t jerr;
    json_t *options = json_loads(json, 0, &jerr);
    void *instance;

    ck_assert_msg(options != NULL, "%s: %s", json, jerr.text);
    memset(err, 0, sizeof(*err));
    instance = load()->init(options, &env, err);
    json_decref(options);
    return instance;
}

static void *init_ok_kind(const char *json, int kind)
{
    struct wharf_plugin_error err;
    void *instance = init_json(json, kind, &err);

    ck_assert_msg(instance != NULL, "%s rejected: [%s] %s", json, err.key, err.message);
    return instance;
}

static void *init_ok(const char *json)
{
    return init_ok_kind(json, WHARF_LISTENER_STREAM);
}

/* Options that must be rejected, naming `key`; returns the message. */
static const char *init_rejected_kind(const char *json, int kind, const char *key)
{
    static struct wharf_plugin_error err;
    void *instance = init_json(json, kind, &err);

    ck_assert_msg(instance == NULL, "%s accepted", json);
    ck_assert_msg(strcmp(err.key, key) == 0, "%s: blamed \"%s\", not \"%s\" (%s)", json,
                  err.key, key, err.message);
    ck_assert_msg(err.message[0] != '\0', "%s: no message", json);
    return err.message;
}

static const char *init_rejected(const char *json, const char *key)
{
    return init_rejected_kind(json, WHARF_LISTENER_STREAM, key);
}

static void fini(void *instance)
{
    load()->fini(instance);
}

/* A figure of the stats hook. */
static long long stat_of(void *instance, const char *name)
{
    json_t *o = json_object();
    json_t *v;
    long long n;

    TU_ASSERT_RC(load()->stats(instance, o), 0);
    v = json_object_get(o, name);
    ck_assert_msg(json_is_integer(v), "stats: no integer %s", name);
    n = (long long)json_integer_value(v);
    json_decref(o);
    return n;
}

static char *tmp_path(const char *name)
{
    static char path[4096];

    snprintf(path, sizeof(path), "%s/%s", tu_tmpdir(), name);
    return path;
}

/* Bytes that do not repeat with any short period, to catch reordering. */
static char *pattern(size_t len, unsigned seed)
{
    char *data = malloc(len);
    size_t i;

    ck_assert_ptr_nonnull(data);
    for (i = 0; i < len; i++)
        data[i] = (char)((i * 7 + i / 251 + seed) & 0xff);
    return data;
}

/* Appends everything s sends until its end of stream (or an error, which
 * it returns) to *buf. */
static int receive_all(struct wharf_stream *s, char **buf, size_t *len)
{
    size_t cap = *len;
    ssize_t n;

    for (;;) {
        if (cap - *len < 65536) {
            cap = cap ? cap * 2 : 65536;
            *buf = realloc(*buf, cap);
            ck_assert_ptr_nonnull(*buf);
        }
        n = wharf_receive(s, *buf + *len, cap - *len);
        if (n == WHARF_EOF)
            return 0;
        if (n < 0)
            return (int)n;
        *len += (size_t)n;
    }
}

/* ---- the target: a loopback listener the test runs ----------------------------------- */

struct backend {
    struct wharf_stream *listener;
    char target[96];                /* the plugin's option */
    /* what it does */
    int proxy;                      /* 1 or 2: read a PROXY header of that version first */
    SSL_CTX *tls;                   /* serve TLS with it */
    size_t expect;                  /* > 0: receive exactly this much (not until EOF) */
    const char *reply;              /* what it sends, then its EOF */
    size_t reply_len;
    bool reply_after;               /* only once the request is in */
    /* what happened */
    int rc;
    unsigned char hdr[2048];        /* the PROXY header (v1: without CRLF) */
    size_t hdr_len;
    char *in;
    size_t in_len;
    char alpn[32];
    int resumed;                    /* TLS: the session was resumed */
    bool served;
};

static void backend_listen(struct backend *b)
{
    int port;

    TU_ASSERT_RC(wharf_tcp_listen("127.0.0.1", 0, 16, 0, &b->listener), 0);
    TU_ASSERT_RC(wharf_getattr_int(b->listener, WHARF_ATTR_LOCAL_PORT, &port), 0);
    snprintf(b->target, sizeof(b->target), "127.0.0.1:%d", port);
}

static int backend_read_proxy(struct backend *b, struct wharf_stream *s)
{
    ssize_t n;
    size_t body;

    if (b->proxy == 1) {
        n = wharf_receive_until(s, "\r\n", 2, b->hdr, 107);
        if (n >= 0)
            b->hdr_len = (size_t)n;
        return n < 0 ? (int)n : 0;
    }
    if ((n = wharf_receive_exactly(s, b->hdr, 16)) < 0)
        return (int)n;
    body = (size_t)b->hdr[14] << 8 | b->hdr[15];
    ck_assert_uint_le(16 + body, sizeof(b->hdr));
    if ((n = wharf_receive_exactly(s, b->hdr + 16, body)) < 0)
        return (int)n;
    b->hdr_len = 16 + body;
    return 0;
}

struct backend_send {
    struct backend *b;
    struct wharf_stream *s;
};

static int backend_send_task(void *arg)
{
    struct backend_send *bs = arg;
    int rc = wharf_send(bs->s, bs->b->reply, bs->b->reply_len);

    if (rc == 0 && !bs->b->tls)
        rc = wharf_send_eof(bs->s);
    return rc;
}

/* The request (exactly b->expect bytes, or all until EOF) and the reply:
 * at once, or after the request. */
static int backend_converse(struct backend *b, struct wharf_stream *s)
{
    struct backend_send bs = { b, s };
    struct wharf_group *g = wharf_group_open();
    int rc = 0;
    ssize_t n;

    ck_assert_ptr_nonnull(g);
    if (b->reply && !b->reply_after)
        rc = wharf_group_spawn(g, backend_send_task, &bs);
    if (rc == 0 && b->expect) {
        b->in = malloc(b->expect);
        n = wharf_receive_exactly(s, b->in, b->expect);
        rc = n < 0 ? (int)n : 0;
        b->in_len = n < 0 ? 0 : (size_t)n;
    } else if (rc == 0) {
        rc = receive_all(s, &b->in, &b->in_len);
    }
    if (rc == 0 && b->reply && b->reply_after)
        rc = backend_send_task(&bs);
    return wharf_group_close(g, rc);
}

static int backend_task(void *arg)
{
    struct backend *b = arg;
    struct wharf_stream *sock, *s;
    size_t len = sizeof(b->alpn);
    int rc;

    if ((b->rc = wharf_accept(b->listener, &sock)) < 0)
        return 0;
    b->served = true;
    s = wharf_buffered_new(sock);
    ck_assert_ptr_nonnull(s);
    rc = b->proxy ? backend_read_proxy(b, s) : 0;
    if (rc == 0 && b->tls) {
        rc = wharf_tls_wrap(s, b->tls, WHARF_TLS_SERVER, NULL, &s);
        if (rc == 0 && wharf_getattr(s, WHARF_ATTR_TLS_ALPN, b->alpn, &len) < 0)
            b->alpn[0] = '\0';
        if (rc == 0)
            TU_ASSERT_RC(wharf_getattr_int(s, WHARF_ATTR_TLS_RESUMED, &b->resumed), 0);
        if (rc == 0)
            ck_assert_ptr_nonnull(s = wharf_buffered_new(s));   /* receive_exactly */
    }
    if (rc == 0)
        rc = backend_converse(b, s);
    b->rc = rc;
    wharf_free(s);
    return 0;
}

static void backend_done(struct backend *b)
{
    wharf_free(b->listener);
    free(b->in);
    SSL_CTX_free(b->tls);
}

/* ---- the client and the handler ---------------------------------------------------- */

enum front { FRONT_MEMORY, FRONT_TCP, FRONT_TCP6, FRONT_UNIX };

struct conn {
    void *instance;
    enum front front;
    SSL_CTX *front_tls;             /* the listener's TLS (server), or NULL */
    SSL_CTX *client_tls;            /* the client's, with front_tls */
    struct wharf_stream *front_listener;
    struct wharf_stream *client, *server;
    const char *input;              /* what the client sends, then its EOF */
    size_t input_len;
    bool send_after_eof;            /* only after the target's EOF */
    int handler_rc;
    double handler_time;            /* seconds the handler took */
    char *reply;                    /* what the client received */
    size_t reply_len;
    int client_rc;
    /* noted once the client is connected (a front listener) */
    int client_port, front_port;
    char cipher[64], tls_version[16];
};

/* wharfd's part: accept (a front listener), TLS, the handler, close. */
static int serve_task(void *arg)
{
    struct conn *c = arg;
    struct wharf_stream *s = c->server;
    double t0;

    if (!s) {
        TU_ASSERT_RC(wharf_accept(c->front_listener, &s), 0);
        if (c->front_tls)
            TU_ASSERT_RC(wharf_tls_wrap(s, c->front_tls, WHARF_TLS_SERVER, NULL, &s), 0);
        c->server = s = wharf_buffered_new(s);
        ck_assert_ptr_nonnull(s);
    }
    t0 = wharf_clock();
    c->handler_rc = load()->handle_stream(c->instance, s);
    c->handler_time = wharf_clock() - t0;
    wharf_close(s);
    return 0;
}

static int client_send(struct conn *c)
{
    size_t off, n;
    int rc;

    for (off = 0; off < c->input_len; off += n) {
        n = c->input_len - off < 40000 ? c->input_len - off : 40000;
        if ((rc = wharf_send(c->client, c->input + off, n)) < 0)
            return rc;
    }
    rc = wharf_send_eof(c->client);
    return rc == WHARF_ENOTSUP ? 0 : rc;     /* TLS: no half-close */
}

static int client_send_task(void *arg)
{
    struct conn *c = arg;

    client_send(c);         /* the handler may have gone: no failure of the test */
    return 0;
}

static void front_listen(struct conn *c)
{
    switch (c->front) {
    case FRONT_TCP:
        TU_ASSERT_RC(wharf_tcp_listen("127.0.0.1", 0, 16, 0, &c->front_listener), 0);
        break;
    case FRONT_TCP6:
        TU_ASSERT_RC(wharf_tcp_listen("::1", 0, 16, 0, &c->front_listener), 0);
        break;
    case FRONT_UNIX:
        unlink(tmp_path("front.sock"));
        TU_ASSERT_RC(wharf_unix_listen(tmp_path("front.sock"), 0, 16, &c->front_listener), 0);
        break;
    case FRONT_MEMORY:
        break;
    }
}

/* What the PROXY tests compare the header with. */
static void note_client(struct conn *c)
{
    size_t len;

    if (c->front != FRONT_UNIX) {
        TU_ASSERT_RC(wharf_getattr_int(c->client, WHARF_ATTR_LOCAL_PORT, &c->client_port), 0);
        TU_ASSERT_RC(wharf_getattr_int(c->front_listener, WHARF_ATTR_LOCAL_PORT,
                                       &c->front_port), 0);
    }
    if (c->client_tls) {
        len = sizeof(c->cipher);
        TU_ASSERT_RC(wharf_getattr(c->client, WHARF_ATTR_TLS_CIPHER, c->cipher, &len), 0);
        len = sizeof(c->tls_version);
        TU_ASSERT_RC(wharf_getattr(c->client, WHARF_ATTR_TLS_VERSION, c->tls_version, &len), 0);
    }
}

static void client_connect(struct conn *c)
{
    int port;

    if (c->front == FRONT_UNIX) {
        TU_ASSERT_RC(wharf_unix_connect(tmp_path("front.sock"), &c->client), 0);
    } else {
        TU_ASSERT_RC(wharf_getattr_int(c->front_listener, WHARF_ATTR_LOCAL_PORT, &port), 0);
        TU_ASSERT_RC(wharf_tcp_connect(c->front == FRONT_TCP6 ? "::1" : "127.0.0.1",
                                       (unsigned)port, NULL, 0, &c->client), 0);
    }
    if (c->client_tls)
        TU_ASSERT_RC(wharf_tls_wrap(c->client, c->client_tls, 0, "front.test", &c->client), 0);
    note_client(c);
}

/* One connection through the plugin, with b (may be NULL) as the target:
 * the client sends c->input then its EOF, and receives until the end of
 * stream, concurrently unless send_after_eof. */
static void converse(struct conn *c, struct backend *b)
{
    struct wharf_group *tg = wharf_group_open();
    struct wharf_stream *server;

    ck_assert_ptr_nonnull(tg);
    if (c->front == FRONT_MEMORY) {
        TU_ASSERT_RC(wharf_memstream_pair(0, &c->client, &server), 0);
        c->server = wharf_buffered_new(server);
        ck_assert_ptr_nonnull(c->server);
    } else {
        front_listen(c);
    }
    if (b)
        TU_ASSERT_RC(wharf_group_spawn(tg, backend_task, b), 0);
    TU_ASSERT_RC(wharf_group_spawn(tg, serve_task, c), 0);
    if (c->front != FRONT_MEMORY)
        client_connect(c);
    if (!c->send_after_eof)
        TU_ASSERT_RC(wharf_group_spawn(tg, client_send_task, c), 0);
    c->client_rc = receive_all(c->client, &c->reply, &c->reply_len);
    if (c->send_after_eof)
        TU_ASSERT_RC(client_send(c), 0);
    if (b && !b->served)
        wharf_close(b->listener);       /* the plugin never connected */
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    wharf_free(c->server);
    wharf_free(c->client);
    wharf_free(c->front_listener);
    SSL_CTX_free(c->front_tls);
    SSL_CTX_free(c->client_tls);
    if (c->front == FRONT_UNIX)
        unlink(tmp_path("front.sock"));
}

/* A target option for the backend, plus more options (JSON members). */
static char *options_for(const struct backend *b, const char *more)
{
    static char json[2048];

    snprintf(json, sizeof(json), "{\"target\": \"%s\"%s%s}", b->target, more ? ", " : "",
             more ? more : "");
    return json;
}

static void assert_bytes(const char *what, const char *got, size_t got_len,
                         const char *want, size_t want_len)
{
    ck_assert_msg(got_len == want_len, "%s: %zu bytes, want %zu", what, got_len, want_len);
    ck_assert_msg(want_len == 0 || memcmp(got, want, want_len) == 0, "%s: other bytes", what);
}

/* ---- descriptor and options ---------------------------------------------------------- */

START_TEST(descriptor)
{
    const struct wharf_plugin *p = load();

    ck_assert_ptr_nonnull(p->init);
    ck_assert_ptr_nonnull(p->handle_stream);
    ck_assert_ptr_nonnull(p->handle_datagrams);
    ck_assert_ptr_nonnull(p->stats);
    ck_assert_ptr_nonnull(p->fini);
}
END_TEST

START_TEST(options_accepted)
{
    static const char *const ok[] = {
        "{\"target\": \"127.0.0.1:80\"}",
        "{\"target\": \"localhost:65535\"}",
        "{\"target\": \"backend.example.test:8080\", \"connect_timeout\": 1}",
        "{\"target\": \"[::1]:80\", \"connect_timeout\": 0.25}",
        "{\"target\": \"unix:/run/x.sock\"}",
        "{\"target\": \"unix:relative.sock\", \"send_proxy\": \"v1\"}",
        "{\"target\": \"/abs.sock\", \"send_proxy\": \"v2\"}",
        "{\"target\": \"10.0.0.1:443\", \"tls\": {}}",
        "{\"target\": \"10.0.0.1:443\", \"tls\": {\"verify\": false}}",
        "{\"target\": \"unix:/x.sock\", \"tls\": {\"verify\": false}}",
        "{\"target\": \"unix:/x.sock\", \"tls\": {\"server_name\": \"b.test\"}}",
        "{\"target\": \"h:1\", \"tls\": {\"server_name\": \"b.test\", "
        "\"alpn\": [\"h2\", \"http/1.1\"], \"verify\": true}}",
        NULL
    };
    size_t i;

    for (i = 0; ok[i]; i++)
        fini(init_ok(ok[i]));
    fini(init_ok_kind("{\"target\": \"127.0.0.1:53\"}", WHARF_LISTENER_DATAGRAM));
    fini(init_ok_kind("{\"target\": \"localhost:53\", \"udp_idle_timeout\": 5, "
                      "\"udp_max_associations\": 10}", WHARF_LISTENER_DATAGRAM));
}
END_TEST

START_TEST(options_rejected)
{
    const char *msg;

    msg = init_rejected("{}", "");
    ck_assert_msg(strstr(msg, "target") != NULL, "%s", msg);
    msg = init_rejected("{\"target\": \"h:1\", \"tagret\": 1}", "tagret");
    ck_assert_msg(strstr(msg, "tagret") != NULL, "%s", msg);
    init_rejected("{\"target\": 80}", "target");
    init_rejected("{\"target\": \"\"}", "target");
    init_rejected("{\"target\": \"nohost\"}", "target");
    init_rejected("{\"target\": \":80\"}", "target");
    init_rejected("{\"target\": \"h:0\"}", "target");
    init_rejected("{\"target\": \"h:65536\"}", "target");
    init_rejected("{\"target\": \"h:8o\"}", "target");
    init_rejected("{\"target\": \"h:-1\"}", "target");
    init_rejected("{\"target\": \"h:\"}", "target");
    init_rejected("{\"target\": \"::1:80\"}", "target");
    init_rejected("{\"target\": \"[::1]80\"}", "target");
    init_rejected("{\"target\": \"[not-v6]:80\"}", "target");
    init_rejected("{\"target\": \"bad host:80\"}", "target");
    init_rejected("{\"target\": \"h/x:80\"}", "target");
    init_rejected("{\"target\": \"unix:\"}", "target");
    init_rejected("{\"target\": [\"h:1\"]}", "target");
    init_rejected("{\"target\": \"h:1\", \"connect_timeout\": 0}", "connect_timeout");
    init_rejected("{\"target\": \"h:1\", \"connect_timeout\": -1}", "connect_timeout");
    init_rejected("{\"target\": \"h:1\", \"connect_timeout\": \"5\"}", "connect_timeout");
    init_rejected("{\"target\": \"h:1\", \"connect_timeout\": true}", "connect_timeout");
    init_rejected("{\"target\": \"h:1\", \"connect_timeout\": 1e9}", "connect_timeout");
    init_rejected("{\"target\": \"h:1\", \"send_proxy\": \"v3\"}", "send_proxy");
    init_rejected("{\"target\": \"h:1\", \"send_proxy\": 2}", "send_proxy");
    init_rejected("{\"target\": \"h:1\", \"send_proxy\": true}", "send_proxy");
    init_rejected("{\"target\": \"h:1\", \"tls\": true}", "tls");
    msg = init_rejected("{\"target\": \"h:1\", \"tls\": {\"verfy\": false}}", "tls.verfy");
    ck_assert_msg(strstr(msg, "verfy") != NULL, "%s", msg);
    init_rejected("{\"target\": \"h:1\", \"tls\": {\"verify\": \"no\"}}", "tls.verify");
    init_rejected("{\"target\": \"h:1\", \"tls\": {\"server_name\": \"\"}}", "tls.server_name");
    init_rejected("{\"target\": \"h:1\", \"tls\": {\"server_name\": 1}}", "tls.server_name");
    init_rejected("{\"target\": \"h:1\", \"tls\": {\"alpn\": []}}", "tls.alpn");
    init_rejected("{\"target\": \"h:1\", \"tls\": {\"alpn\": [\"\"]}}", "tls.alpn");
    init_rejected("{\"target\": \"h:1\", \"tls\": {\"alpn\": \"h2\"}}", "tls.alpn");
    init_rejected("{\"target\": \"h:1\", \"tls\": {\"alpn\": [2]}}", "tls.alpn");
    init_rejected("{\"target\": \"h:1\", \"tls\": {\"ca\": 1}}", "tls.ca");
    msg = init_rejected("{\"target\": \"h:1\", \"tls\": {\"ca\": \"missing.pem\"}}", "tls.ca");
    ck_assert_msg(strstr(msg, "missing.pem\": No such file or directory") != NULL, "%s", msg);
    /* verification needs a name to check */
    init_rejected("{\"target\": \"unix:/x.sock\", \"tls\": {}}", "tls");
    /* what does not apply to the listener's kind */
    init_rejected("{\"target\": \"h:1\", \"udp_idle_timeout\": 5}", "udp_idle_timeout");
    init_rejected("{\"target\": \"h:1\", \"udp_max_associations\": 5}", "udp_max_associations");
    init_rejected_kind("{\"target\": \"h:1\", \"tls\": {}}", WHARF_LISTENER_DATAGRAM, "tls");
    init_rejected_kind("{\"target\": \"h:1\", \"send_proxy\": \"v1\"}", WHARF_LISTENER_DATAGRAM,
                       "send_proxy");
    init_rejected_kind("{\"target\": \"unix:/x.sock\"}", WHARF_LISTENER_DATAGRAM, "target");
    init_rejected_kind("{\"target\": \"h:1\", \"udp_idle_timeout\": 0}",
                       WHARF_LISTENER_DATAGRAM, "udp_idle_timeout");
    init_rejected_kind("{\"target\": \"h:1\", \"udp_max_associations\": 0}",
                       WHARF_LISTENER_DATAGRAM, "udp_max_associations");
    init_rejected_kind("{\"target\": \"h:1\", \"udp_max_associations\": 1.5}",
                       WHARF_LISTENER_DATAGRAM, "udp_max_associations");
}
END_TEST

START_TEST(options_ca_not_pem)
{
    FILE *f = fopen(tmp_path("garbage.pem"), "w");
    const char *msg;

    ck_assert_ptr_nonnull(f);
    fputs("not a certificate\n", f);
    fclose(f);
    msg = init_rejected("{\"target\": \"h:1\", \"tls\": {\"ca\": \"garbage.pem\"}}", "tls.ca");
    ck_assert_msg(strstr(msg, "garbage.pem") != NULL, "%s", msg);
    unlink(tmp_path("garbage.pem"));
}
END_TEST

/* ---- bytes both ways ------------------------------------------------------------------ */

/* 1 MiB each way at once, byte-exact; both ends see the other's EOF. */
static int t_both_ways(void *arg)
{
    char *up = pattern(MIB, 1), *down = pattern(MIB, 2);
    struct backend b = { .reply = down, .reply_len = MIB };
    struct conn c = { .input = up, .input_len = MIB };

    backend_listen(&b);
    c.instance = init_ok(options_for(&b, NULL));
    converse(&c, &b);
    TU_ASSERT_RC(c.handler_rc, 0);
    TU_ASSERT_RC(b.rc, 0);
    TU_ASSERT_RC(c.client_rc, 0);
    assert_bytes("target received", b.in, b.in_len, up, MIB);
    assert_bytes("client received", c.reply, c.reply_len, down, MIB);
    ck_assert_int_eq(stat_of(c.instance, "bytes_up"), MIB);
    ck_assert_int_eq(stat_of(c.instance, "bytes_down"), MIB);
    ck_assert_int_eq(stat_of(c.instance, "connections"), 1);
    ck_assert_int_eq(stat_of(c.instance, "connect_failures"), 0);
    fini(c.instance);
    backend_done(&b);
    free(c.reply);
    free(up);
    free(down);
    return 0;
}
START_TEST(both_ways) { TU_RUN(t_both_ways, NULL); }
END_TEST

/* ---- an idle connection keeps one task ------------------------------------------- */

/* A target that answers "ping" with "pong" and "go" with "later", then
 * says "bye" after the client's end, and ends too. */
static int chatty_backend(void *arg)
{
    struct backend *b = arg;
    struct wharf_stream *s;
    char buf[16];

    TU_ASSERT_RC(wharf_accept(b->listener, &s), 0);
    b->served = true;
    ck_assert_ptr_nonnull(s = wharf_buffered_new(s));
    TU_ASSERT_RC(wharf_receive_exactly(s, buf, 4), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
    TU_ASSERT_RC(wharf_send(s, "pong", 4), 0);
    TU_ASSERT_RC(wharf_receive_exactly(s, buf, 2), 2);
    ck_assert_int_eq(memcmp(buf, "go", 2), 0);
    TU_ASSERT_RC(wharf_send(s, "later", 5), 0);
    TU_ASSERT_RC(wharf_receive(s, buf, sizeof(buf)), WHARF_EOF);
    TU_ASSERT_RC(wharf_send(s, "bye", 3), 0);
    wharf_free(s);
    return 0;
}

static void expect(struct wharf_stream *s, const char *want)
{
    char buf[16];
    size_t n = strlen(want);

    TU_ASSERT_RC(wharf_receive_exactly(s, buf, n), (ssize_t)n);
    ck_assert_msg(memcmp(buf, want, n) == 0, "got \"%.*s\", want \"%s\"", (int)n, buf, want);
}

/* Half a second after the target's last answer the target-to-client
 * direction has no task (down_task ends; wharf_notify_readable starts the
 * next): an idle connection holds the handler's task only, and every byte
 * still flows, the target's after the client's end too. */
static int t_idle_one_task(void *arg)
{
    struct backend b = { 0 };
    struct conn c = { 0 };
    struct wharf_group *tg = wharf_group_open();
    struct wharf_stream *client_a, *client_b;
    size_t before, idle;
    char *rest = NULL;
    size_t rest_len = 0;

    (void)arg;
    backend_listen(&b);
    c.instance = init_ok(options_for(&b, NULL));
    TU_ASSERT_RC(wharf_memstream_pair(0, &client_a, &client_b), 0);
    ck_assert_ptr_nonnull(c.client = wharf_buffered_new(client_a));
    ck_assert_ptr_nonnull(c.server = wharf_buffered_new(client_b));
    TU_ASSERT_RC(wharf_group_spawn(tg, chatty_backend, &b), 0);
    TU_ASSERT_RC(wharf_wait_all_tasks_blocked(), 0);
    before = sched_current()->ntasks;       /* this test's, the backend's */
    TU_ASSERT_RC(wharf_group_spawn(tg, serve_task, &c), 0);
    TU_ASSERT_RC(wharf_send(c.client, "ping", 4), 0);
    expect(c.client, "pong");
    /* the child waits half a second for the target, then ends */
    TU_ASSERT_RC(wharf_wait_all_tasks_blocked(), 0);
    ck_assert_uint_eq(sched_current()->ntasks, before + 2);
    TU_ASSERT_RC(wharf_sleep(0.8), 0);
    idle = sched_current()->ntasks;
    ck_assert_uint_eq(idle, before + 1);    /* the handler's task, no child */
    TU_ASSERT_RC(wharf_send(c.client, "go", 2), 0);
    expect(c.client, "later");
    TU_ASSERT_RC(wharf_sleep(0.8), 0);
    ck_assert_uint_eq(sched_current()->ntasks, idle);
    /* the client's end: the handler finishes the target's direction */
    TU_ASSERT_RC(wharf_send_eof(c.client), 0);
    TU_ASSERT_RC(receive_all(c.client, &rest, &rest_len), 0);
    assert_bytes("after the client's end", rest, rest_len, "bye", 3);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    TU_ASSERT_RC(c.handler_rc, 0);
    ck_assert_int_eq(stat_of(c.instance, "bytes_up"), 6);
    ck_assert_int_eq(stat_of(c.instance, "bytes_down"), 12);
    fini(c.instance);
    wharf_free(c.server);
    wharf_free(c.client);
    wharf_free(b.listener);
    free(rest);
    return 0;
}
START_TEST(idle_one_task) { TU_RUN(t_idle_one_task, NULL); }
END_TEST

/* ---- an idle connection parks its handler ---------------------------------------- */

/* wharfd's host in small (src/conn.c): a handler that returns WHARF_PARKED
 * is resumed, on the same task, by the continuation it gave wharf_park. */
struct park_host {
    struct conn *c;
    int (*cont)(void *arg);
    void *cont_arg;
    int parks;
    struct task *task;
};

static int park_host_resume(void *arg);

static int park_host_after(struct park_host *h, int rc)
{
    if (rc == WHARF_PARKED) {
        ck_assert(task_take_continuation(&h->cont, &h->cont_arg));
        h->parks++;
        TU_ASSERT_RC(task_park(park_host_resume, h, WHARF_FOREVER), 0);
        return 0;
    }
    h->c->handler_rc = rc;
    wharf_close(h->c->server);
    return 0;
}

static int park_host_resume(void *arg)
{
    struct park_host *h = arg;

    return park_host_after(h, h->cont(h->cont_arg));
}

static int park_host_task(void *arg)
{
    struct park_host *h = arg;
    struct conn *c = h->c;
    struct wharf_stream *s;

    h->task = task_current();
    TU_ASSERT_RC(wharf_accept(c->front_listener, &s), 0);
    if (c->front_tls)
        TU_ASSERT_RC(wharf_tls_wrap(s, c->front_tls, WHARF_TLS_SERVER, NULL, &s), 0);
    ck_assert_ptr_nonnull(c->server = wharf_buffered_new(s));
    return park_host_after(h, load()->handle_stream(c->instance, c->server));
}

/* A target that answers "ping" with "pong", later says "push" of its own,
 * answers "go" with "later" and ends; then waits for the end of the
 * client's side. */
static int pushy_backend(void *arg)
{
    struct backend *b = arg;
    struct wharf_stream *s;
    char buf[16];

    TU_ASSERT_RC(wharf_accept(b->listener, &s), 0);
    ck_assert_ptr_nonnull(s = wharf_buffered_new(s));
    TU_ASSERT_RC(wharf_receive_exactly(s, buf, 4), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
    TU_ASSERT_RC(wharf_send(s, "pong", 4), 0);
    TU_ASSERT_RC(wharf_sleep(3.0), 0);
    TU_ASSERT_RC(wharf_send(s, "push", 4), 0);
    TU_ASSERT_RC(wharf_receive_exactly(s, buf, 2), 2);
    ck_assert_int_eq(memcmp(buf, "go", 2), 0);
    TU_ASSERT_RC(wharf_send(s, "later", 5), 0);
    TU_ASSERT_RC(wharf_send_eof(s), 0);
    TU_ASSERT_RC(wharf_receive(s, buf, sizeof(buf)), WHARF_EOF);
    b->served = true;
    wharf_free(s);
    return 0;
}

/* Waits (2.5 s at most) until the host's task is parked and its stack's
 * pages are given back (a trim tick after the park). */
static void expect_parked(struct park_host *h, void *instance, int parks)
{
    double until = wharf_clock() + 2.5;
    size_t resident = SIZE_MAX;

    while (wharf_clock() < until) {
        if (sched_current()->nparked == 1 &&
            (resident = tu_resident_pages(h->task->stack.lo, h->task->stack.hi)) == 0)
            break;
        TU_ASSERT_RC(wharf_sleep(0.05), 0);
    }
    ck_assert_uint_eq(sched_current()->nparked, 1);
    ck_assert_uint_eq(resident, 0);
    ck_assert_int_eq(h->parks, parks);
    ck_assert_int_eq(stat_of(instance, "parked"), 1);
}

/* Under a host that parks (wharfd), a connection idle both ways for
 * FWD_PARK_AFTER holds no task frame at all: the handler parks, and a
 * byte from either side resumes it; every byte flows, in order, through
 * TLS (_i 1) or not. */
static int t_idle_parks(void *arg)
{
    const char *const dns[] = { "front.test", NULL };
    bool tls = *(const int *)arg;
    struct backend b = { 0 };
    struct conn c = { .front = FRONT_TCP };
    struct park_host h = { .c = &c };
    struct wharf_group *tg = wharf_group_open();
    struct sched *s = sched_current();
    struct tu_ca *ca = NULL;
    struct tu_cert cert = { 0 };
    char *rest = NULL;
    size_t rest_len = 0;

    backend_listen(&b);
    c.instance = init_ok(options_for(&b, NULL));
    if (tls) {
        ck_assert_ptr_nonnull(ca = tu_ca_new("front CA", TU_KEY_EC));
        ck_assert_int_eq(tu_cert_new(ca, "front.test", dns, TU_KEY_EC, -3600, 86400, 0, &cert),
                         0);
        ck_assert_ptr_nonnull(c.front_tls = tu_server_ctx(&cert, NULL));
        ck_assert_ptr_nonnull(c.client_tls = tu_client_ctx(ca, NULL));
    }
    front_listen(&c);
    TU_ASSERT_RC(wharf_group_spawn(tg, pushy_backend, &b), 0);
    TU_ASSERT_RC(group_spawn_parkable(tg, park_host_task, &h), 0);
    client_connect(&c);
    ck_assert_ptr_nonnull(c.client = wharf_buffered_new(c.client));
    TU_ASSERT_RC(wharf_send(c.client, "ping", 4), 0);
    expect(c.client, "pong");
    expect_parked(&h, c.instance, 1);
    expect(c.client, "push");           /* the target's edge resumed it */
    expect_parked(&h, c.instance, 2);
    TU_ASSERT_RC(wharf_send(c.client, "go", 2), 0);    /* the client's edge */
    expect(c.client, "later");
    TU_ASSERT_RC(receive_all(c.client, &rest, &rest_len), 0);     /* the target's end */
    ck_assert_uint_eq(rest_len, 0);
    if (!tls)
        TU_ASSERT_RC(wharf_send_eof(c.client), 0);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    ck_assert(b.served);
    TU_ASSERT_RC(c.handler_rc, 0);
    ck_assert_uint_eq(s->nparked, 0);
    ck_assert_int_eq(stat_of(c.instance, "parked"), 0);
    ck_assert_int_eq(stat_of(c.instance, "bytes_up"), 6);
    ck_assert_int_eq(stat_of(c.instance, "bytes_down"), 13);
    fini(c.instance);
    wharf_free(c.server);
    wharf_free(c.client);
    wharf_free(c.front_listener);
    wharf_free(b.listener);
    SSL_CTX_free(c.front_tls);
    SSL_CTX_free(c.client_tls);
    tu_cert_free(&cert);
    tu_ca_free(ca);
    free(rest);
    return 0;
}
START_TEST(idle_parks) { TU_RUN(t_idle_parks, &_i); }
END_TEST

/* The client sends its request and its EOF: the target gets every byte,
 * then the EOF, and only then replies; the reply reaches the client, then
 * the target's EOF. */
static int t_client_half_close(void *arg)
{
    static const char req[] = "GET / HTTP/1.0\r\n\r\n", rep[] = "HTTP/1.0 200 OK\r\n\r\nbody";
    struct backend b = { .reply = rep, .reply_len = sizeof(rep) - 1, .reply_after = true };
    struct conn c = { .input = req, .input_len = sizeof(req) - 1 };

    backend_listen(&b);
    c.instance = init_ok(options_for(&b, NULL));
    converse(&c, &b);
    TU_ASSERT_RC(c.handler_rc, 0);
    TU_ASSERT_RC(b.rc, 0);
    assert_bytes("target received", b.in, b.in_len, req, sizeof(req) - 1);
    assert_bytes("client received", c.reply, c.reply_len, rep, sizeof(rep) - 1);
    fini(c.instance);
    backend_done(&b);
    free(c.reply);
    return 0;
}
START_TEST(client_half_close) { TU_RUN(t_client_half_close, NULL); }
END_TEST

/* The target speaks first and ends: the client gets its bytes and its EOF,
 * then still sends, and the target still receives, until the client's EOF. */
static int t_target_half_close(void *arg)
{
    static const char banner[] = "220 hello\r\n", late[] = "late words\n";
    struct backend b = { .reply = banner, .reply_len = sizeof(banner) - 1 };
    struct conn c = { .input = late, .input_len = sizeof(late) - 1, .send_after_eof = true };

    backend_listen(&b);
    c.instance = init_ok(options_for(&b, NULL));
    converse(&c, &b);
    TU_ASSERT_RC(c.handler_rc, 0);
    TU_ASSERT_RC(b.rc, 0);
    assert_bytes("client received", c.reply, c.reply_len, banner, sizeof(banner) - 1);
    assert_bytes("target received", b.in, b.in_len, late, sizeof(late) - 1);
    fini(c.instance);
    backend_done(&b);
    free(c.reply);
    return 0;
}
START_TEST(target_half_close) { TU_RUN(t_target_half_close, NULL); }
END_TEST

/* Nothing either way: both EOFs pass, the handler ends with 0. */
static int t_empty(void *arg)
{
    struct backend b = { 0 };
    struct conn c = { 0 };

    backend_listen(&b);
    c.instance = init_ok(options_for(&b, NULL));
    converse(&c, &b);
    TU_ASSERT_RC(c.handler_rc, 0);
    TU_ASSERT_RC(b.rc, 0);
    ck_assert_uint_eq(b.in_len, 0);
    ck_assert_uint_eq(c.reply_len, 0);
    fini(c.instance);
    backend_done(&b);
    free(c.reply);
    return 0;
}
START_TEST(empty) { TU_RUN(t_empty, NULL); }
END_TEST

/* A UNIX target (the path relative to the config directory). */
static int t_unix_target(void *arg)
{
    static const char req[] = "ping\n", rep[] = "pong\n";
    struct backend b = { .reply = rep, .reply_len = 5, .reply_after = true };
    struct conn c = { .input = req, .input_len = 5 };

    unlink(tmp_path("target.sock"));
    TU_ASSERT_RC(wharf_unix_listen(tmp_path("target.sock"), 0, 16, &b.listener), 0);
    snprintf(b.target, sizeof(b.target), "unix:target.sock");
    c.instance = init_ok(options_for(&b, NULL));
    converse(&c, &b);
    TU_ASSERT_RC(c.handler_rc, 0);
    assert_bytes("target received", b.in, b.in_len, req, 5);
    assert_bytes("client received", c.reply, c.reply_len, rep, 5);
    fini(c.instance);
    backend_done(&b);
    free(c.reply);
    unlink(tmp_path("target.sock"));
    return 0;
}
START_TEST(unix_target) { TU_RUN(t_unix_target, NULL); }
END_TEST

/* "[::1]:PORT" (when the host has IPv6 loopback) and "localhost:PORT" (a
 * name, resolved off the loop). */
static void hello_through(struct backend *b)
{
    static const char req[] = "ping\n", rep[] = "pong\n";
    struct conn c = { .input = req, .input_len = 5 };

    b->reply = rep;
    b->reply_len = 5;
    b->reply_after = true;
    c.instance = init_ok(options_for(b, NULL));
    converse(&c, b);
    TU_ASSERT_RC(c.handler_rc, 0);
    assert_bytes("target received", b->in, b->in_len, req, 5);
    assert_bytes("client received", c.reply, c.reply_len, rep, 5);
    fini(c.instance);
    free(c.reply);
}

static int t_other_targets(void *arg)
{
    struct backend b = { 0 };
    int port;

    TU_ASSERT_RC(wharf_tcp_listen("127.0.0.1", 0, 16, 0, &b.listener), 0);
    TU_ASSERT_RC(wharf_getattr_int(b.listener, WHARF_ATTR_LOCAL_PORT, &port), 0);
    snprintf(b.target, sizeof(b.target), "localhost:%d", port);
    hello_through(&b);
    backend_done(&b);
    if (!tu_ipv6_loopback_ok(SOCK_STREAM))
        return 0;
    b = (struct backend){ 0 };
    TU_ASSERT_RC(wharf_tcp_listen("::1", 0, 16, 0, &b.listener), 0);
    TU_ASSERT_RC(wharf_getattr_int(b.listener, WHARF_ATTR_LOCAL_PORT, &port), 0);
    snprintf(b.target, sizeof(b.target), "[::1]:%d", port);
    hello_through(&b);
    backend_done(&b);
    return 0;
}
START_TEST(other_targets) { TU_RUN(t_other_targets, NULL); }
END_TEST

/* The target resets: the handler fails, the client is closed. */
static int t_target_resets(void *arg)
{
    static const char req[] = "x";
    struct backend b = { .expect = 1 };
    struct conn c = { .input = req, .input_len = 1, .send_after_eof = false };
    struct wharf_stream *sock;
    struct wharf_group *tg;
    int fd;
    size_t len = sizeof(fd);
    struct linger lg = { 1, 0 };

    backend_listen(&b);
    c.instance = init_ok(options_for(&b, NULL));
    TU_ASSERT_RC(wharf_memstream_pair(0, &c.client, &sock), 0);
    c.server = wharf_buffered_new(sock);
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(tg, serve_task, &c), 0);
    TU_ASSERT_RC(wharf_accept(b.listener, &sock), 0);
    TU_ASSERT_RC(wharf_getattr(sock, WHARF_ATTR_FD, &fd, &len), 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    wharf_free(sock);                   /* a reset, not a FIN */
    c.client_rc = receive_all(c.client, &c.reply, &c.reply_len);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    TU_ASSERT_RC(c.handler_rc, WHARF_EBROKEN);
    ck_assert_uint_eq(c.reply_len, 0);
    wharf_free(c.server);
    wharf_free(c.client);
    fini(c.instance);
    backend_done(&b);
    free(c.reply);
    return 0;
}
START_TEST(target_resets) { TU_RUN(t_target_resets, NULL); }
END_TEST

/* ---- targets that fail --------------------------------------------------------------- */

/* A port nobody listens on: refused, counted, the client closed without a
 * byte; its request is not read. */
static int t_unreachable(void *arg)
{
    struct backend b = { 0 };
    struct conn c = { .input = "hello", .input_len = 5 };
    char opts[256];

    backend_listen(&b);
    wharf_close(b.listener);            /* the port is free again: refused */
    b.served = true;                    /* nothing to accept */
    snprintf(opts, sizeof(opts), "{\"target\": \"%s\"}", b.target);
    c.instance = init_ok(opts);
    converse(&c, NULL);
    TU_ASSERT_RC(c.handler_rc, -ECONNREFUSED);
    ck_assert_uint_eq(c.reply_len, 0);
    ck_assert_int_eq(stat_of(c.instance, "connect_failures"), 1);
    ck_assert_int_eq(stat_of(c.instance, "connections"), 0);
    fini(c.instance);
    free(c.reply);
    c = (struct conn){ .input = "x", .input_len = 1 };

    c.instance = init_ok("{\"target\": \"unix:no-such.sock\"}");
    converse(&c, NULL);
    TU_ASSERT_RC(c.handler_rc, -ENOENT);
    fini(c.instance);
    free(c.reply);
    backend_done(&b);
    return 0;
}
START_TEST(unreachable) { TU_RUN(t_unreachable, NULL); }
END_TEST

/* A listener that never accepts, with a backlog of 0, filled by the test:
 * the kernel drops further SYNs, so a connect neither succeeds nor fails
 * (on loopback, no unroutable address needed). Returns the listening fd. */
static int silent_tcp_target(char *target, size_t size)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), i;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 0), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    for (i = 0; i < 2; i++) {           /* fillers: kept open until exit */
        int filler = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

        connect(filler, (struct sockaddr *)&a, sizeof(a));
    }
    usleep(100 * 1000);                 /* the first handshake completes */
    snprintf(target, size, "127.0.0.1:%u", ntohs(a.sin_port));
    return fd;
}

/* The same with a UNIX socket: connect(2) says EAGAIN while it is full. */
static int silent_unix_target(void)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), i;

    const char *path = tmp_path("silent.sock");

    ck_assert_uint_lt(strlen(path), sizeof(a.sun_path));
    memcpy(a.sun_path, path, strlen(path) + 1);
    unlink(a.sun_path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 0), 0);
    for (i = 0; i < 3; i++) {
        int filler = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

        connect(filler, (struct sockaddr *)&a, sizeof(a));
    }
    return fd;
}

static void expect_timeout(const char *target)
{
    struct conn c = { .input = "x", .input_len = 1 };
    char opts[256];

    snprintf(opts, sizeof(opts), "{\"target\": \"%s\", \"connect_timeout\": 0.3}", target);
    c.instance = init_ok(opts);
    converse(&c, NULL);
    TU_ASSERT_RC(c.handler_rc, WHARF_ETIMEDOUT);
    ck_assert_msg(c.handler_time >= 0.29 && c.handler_time < 1.5,
                  "connect_timeout 0.3 ended after %.3f s", c.handler_time);
    ck_assert_uint_eq(c.reply_len, 0);
    ck_assert_int_eq(stat_of(c.instance, "connect_failures"), 1);
    fini(c.instance);
    free(c.reply);
}

static int t_connect_timeout(void *arg)
{
    char target[64];
    int tcp = silent_tcp_target(target, sizeof(target));
    int unx = silent_unix_target();

    expect_timeout(target);
    expect_timeout("unix:silent.sock");
    close(tcp);
    close(unx);
    unlink(tmp_path("silent.sock"));
    return 0;
}
START_TEST(connect_timeout) { TU_RUN(t_connect_timeout, NULL); }
END_TEST

/* ---- the PROXY header ------------------------------------------------------------------ */

static const unsigned char pp2_sig[12] = "\r\n\r\n\0\r\nQUIT\n";

struct pp2 {
    unsigned cmd, fam;
    const unsigned char *addr;      /* the address block */
    size_t addr_len;
    const unsigned char *tlv;       /* the TLVs after it */
    size_t tlv_len;
};

/* Checks the frame of a version 2 header and splits it. */
static void pp2_parse(const struct backend *b, struct pp2 *h)
{
    size_t len;

    ck_assert_uint_ge(b->hdr_len, 16);
    ck_assert_msg(memcmp(b->hdr, pp2_sig, 12) == 0, "no PROXY v2 signature");
    h->cmd = b->hdr[12];
    h->fam = b->hdr[13];
    len = (size_t)b->hdr[14] << 8 | b->hdr[15];
    ck_assert_uint_eq(16 + len, b->hdr_len);
    h->addr_len = h->fam == 0x11 ? 12 : h->fam == 0x21 ? 36 : h->fam == 0x31 ? 216 : 0;
    ck_assert_uint_ge(len, h->addr_len);
    h->addr = b->hdr + 16;
    h->tlv = h->addr + h->addr_len;
    h->tlv_len = len - h->addr_len;
}

/* The value of the first TLV of `type` among [p, p + len) and its length,
 * or -1; asserts that the TLVs fill the range exactly. */
static long tlv_get(const unsigned char *p, size_t len, unsigned type, const unsigned char **v)
{
    size_t off = 0, n;
    long found = -1;

    while (off < len) {
        ck_assert_uint_ge(len - off, 3);
        n = (size_t)p[off + 1] << 8 | p[off + 2];
        ck_assert_uint_ge(len - off - 3, n);
        if (p[off] == type && found < 0) {
            *v = p + off + 3;
            found = (long)n;
        }
        off += 3 + n;
    }
    return found;
}

static void assert_tlv_str(const unsigned char *p, size_t len, unsigned type, const char *want)
{
    const unsigned char *v = NULL;
    long n = tlv_get(p, len, type, &v);

    if (!want) {
        ck_assert_msg(n < 0, "TLV 0x%02x present", type);
        return;
    }
    ck_assert_msg(n >= 0, "no TLV 0x%02x (want \"%s\")", type, want);
    ck_assert_msg((size_t)n == strlen(want) && memcmp(v, want, (size_t)n) == 0,
                  "TLV 0x%02x is \"%.*s\", want \"%s\"", type, (int)n, v, want);
}

static unsigned be16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

struct proxy_run {
    enum front front;
    int version;
    bool tls, client_cert;
    /* results */
    struct backend b;
    struct conn c;
};

static void proxy_tls_setup(struct proxy_run *r, struct tu_ca **ca, struct tu_cert *front,
                            struct tu_cert *alice)
{
    static const char *const alpn[] = { "h2", "http/1.1", NULL };
    static const char *const offer[] = { "h2", NULL };
    const char *const dns[] = { "front.test", NULL };

    *ca = tu_ca_new("front CA", TU_KEY_EC);
    ck_assert_ptr_nonnull(*ca);
    ck_assert_int_eq(tu_cert_new(*ca, "front.test", dns, TU_KEY_EC, -3600, 86400, 0, front), 0);
    r->c.front_tls = tu_server_ctx(front, alpn);
    r->c.client_tls = tu_client_ctx(*ca, offer);
    ck_assert_ptr_nonnull(r->c.front_tls);
    ck_assert_ptr_nonnull(r->c.client_tls);
    if (!r->client_cert)
        return;
    ck_assert_int_eq(tu_cert_new(*ca, "alice", NULL, TU_KEY_EC, -3600, 86400, 1, alice), 0);
    ck_assert_int_eq(tu_ctx_use_cert(r->c.client_tls, alice), 0);
    ck_assert_int_eq(X509_STORE_add_cert(SSL_CTX_get_cert_store(r->c.front_tls),
                                         tu_ca_x509(*ca)), 1);
    SSL_CTX_set_verify(r->c.front_tls, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
}

/* One request through a front of kind r->front with send_proxy, the
 * target reading the header first: the payload must follow it exactly. */
static void proxy_converse(struct proxy_run *r)
{
    static const char req[] = "request bytes", rep[] = "reply bytes";
    struct tu_ca *ca = NULL;
    struct tu_cert front = { 0 }, alice = { 0 };
    char more[64];

    r->c = (struct conn){ .front = r->front, .input = req, .input_len = sizeof(req) - 1 };
    /* a TLS client has no half-close: the target reads the request's length */
    r->b = (struct backend){ .proxy = r->version, .reply = rep, .reply_len = sizeof(rep) - 1,
                             .reply_after = true, .expect = sizeof(req) - 1 };
    backend_listen(&r->b);
    snprintf(more, sizeof(more), "\"send_proxy\": \"v%d\"", r->version);
    r->c.instance = init_ok(options_for(&r->b, more));
    if (r->tls)
        proxy_tls_setup(r, &ca, &front, &alice);
    converse(&r->c, &r->b);
    TU_ASSERT_RC(r->c.handler_rc, 0);
    TU_ASSERT_RC(r->b.rc, 0);
    assert_bytes("after the header", r->b.in, r->b.in_len, req, sizeof(req) - 1);
    assert_bytes("client received", r->c.reply, r->c.reply_len, rep, sizeof(rep) - 1);
    fini(r->c.instance);
    free(r->c.reply);
    tu_cert_free(&front);
    tu_cert_free(&alice);
    tu_ca_free(ca);
}

static void proxy_done(struct proxy_run *r)
{
    backend_done(&r->b);
}

static void assert_v1(struct proxy_run *r, const char *want)
{
    ck_assert_msg(r->b.hdr_len == strlen(want) && memcmp(r->b.hdr, want, r->b.hdr_len) == 0,
                  "PROXY v1 line \"%.*s\", want \"%s\"", (int)r->b.hdr_len, r->b.hdr, want);
}

static int t_proxy_v1(void *arg)
{
    struct proxy_run r = { .front = FRONT_TCP, .version = 1 };
    char want[128];

    proxy_converse(&r);
    snprintf(want, sizeof(want), "PROXY TCP4 127.0.0.1 127.0.0.1 %d %d", r.c.client_port,
             r.c.front_port);
    assert_v1(&r, want);
    proxy_done(&r);

    r = (struct proxy_run){ .front = FRONT_UNIX, .version = 1 };   /* no UNIX in v1 */
    proxy_converse(&r);
    assert_v1(&r, "PROXY UNKNOWN");
    proxy_done(&r);

    r = (struct proxy_run){ .front = FRONT_MEMORY, .version = 1 }; /* no address at all */
    proxy_converse(&r);
    assert_v1(&r, "PROXY UNKNOWN");
    proxy_done(&r);

    if (tu_ipv6_loopback_ok(SOCK_STREAM)) {
        r = (struct proxy_run){ .front = FRONT_TCP6, .version = 1 };
        proxy_converse(&r);
        snprintf(want, sizeof(want), "PROXY TCP6 ::1 ::1 %d %d", r.c.client_port,
                 r.c.front_port);
        assert_v1(&r, want);
        proxy_done(&r);
    }
    return 0;
}
START_TEST(proxy_v1) { TU_RUN(t_proxy_v1, NULL); }
END_TEST

static void assert_ip_block(const struct pp2 *h, int family, const struct proxy_run *r)
{
    size_t alen = family == AF_INET ? 4 : 16;
    unsigned char lo[16];

    ck_assert_int_eq(inet_pton(family, family == AF_INET ? "127.0.0.1" : "::1", lo), 1);
    ck_assert_msg(memcmp(h->addr, lo, alen) == 0, "source address");
    ck_assert_msg(memcmp(h->addr + alen, lo, alen) == 0, "destination address");
    ck_assert_uint_eq(be16(h->addr + 2 * alen), (unsigned)r->c.client_port);
    ck_assert_uint_eq(be16(h->addr + 2 * alen + 2), (unsigned)r->c.front_port);
}

static int t_proxy_v2(void *arg)
{
    struct proxy_run r = { .front = FRONT_TCP, .version = 2 };
    unsigned char path[108] = { 0 }, zero[108] = { 0 };
    struct pp2 h;

    proxy_converse(&r);
    pp2_parse(&r.b, &h);
    ck_assert_uint_eq(h.cmd, 0x21);         /* version 2, PROXY */
    ck_assert_uint_eq(h.fam, 0x11);         /* TCP over IPv4 */
    assert_ip_block(&h, AF_INET, &r);
    ck_assert_uint_eq(h.tlv_len, 0);        /* no TLS: no TLV */
    proxy_done(&r);

    r = (struct proxy_run){ .front = FRONT_UNIX, .version = 2 };
    proxy_converse(&r);
    pp2_parse(&r.b, &h);
    ck_assert_uint_eq(h.cmd, 0x21);
    ck_assert_uint_eq(h.fam, 0x31);         /* UNIX stream */
    ck_assert_msg(memcmp(h.addr, zero, 108) == 0, "an unnamed client is all zeros");
    ck_assert_uint_lt(strlen(tmp_path("front.sock")), sizeof(path));
    memcpy(path, tmp_path("front.sock"), strlen(tmp_path("front.sock")));
    ck_assert_msg(memcmp(h.addr + 108, path, 108) == 0, "destination: the listener's path");
    ck_assert_uint_eq(h.tlv_len, 0);
    proxy_done(&r);

    r = (struct proxy_run){ .front = FRONT_MEMORY, .version = 2 };
    proxy_converse(&r);
    pp2_parse(&r.b, &h);
    ck_assert_uint_eq(h.cmd, 0x20);         /* LOCAL: no address known */
    ck_assert_uint_eq(h.fam, 0x00);
    ck_assert_uint_eq(r.b.hdr_len, 16);
    proxy_done(&r);

    if (tu_ipv6_loopback_ok(SOCK_STREAM)) {
        r = (struct proxy_run){ .front = FRONT_TCP6, .version = 2 };
        proxy_converse(&r);
        pp2_parse(&r.b, &h);
        ck_assert_uint_eq(h.cmd, 0x21);
        ck_assert_uint_eq(h.fam, 0x21);     /* TCP over IPv6 */
        assert_ip_block(&h, AF_INET6, &r);
        proxy_done(&r);
    }
    return 0;
}
START_TEST(proxy_v2) { TU_RUN(t_proxy_v2, NULL); }
END_TEST

/* PP2_TYPE_SSL: client flags, verify, then its sub-TLVs. */
static void assert_ssl_tlv(const struct pp2 *h, const struct proxy_run *r)
{
    const unsigned char *v = NULL;
    long n = tlv_get(h->tlv, h->tlv_len, 0x20, &v);
    unsigned flags;
    uint32_t verify;

    ck_assert_msg(n >= 5, "PP2_TYPE_SSL missing or short (%ld)", n);
    flags = v[0];
    verify = (uint32_t)v[1] << 24 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 8 | v[4];
    if (r->client_cert) {
        ck_assert_uint_eq(flags, 0x01 | 0x02 | 0x04);   /* SSL, CERT_CONN, CERT_SESS */
        ck_assert_uint_eq(verify, 0);                  /* shown and verified */
        assert_tlv_str(v + 5, (size_t)n - 5, 0x22, "alice");
    } else {
        ck_assert_uint_eq(flags, 0x01);
        ck_assert_uint_ne(verify, 0);                  /* no certificate */
        assert_tlv_str(v + 5, (size_t)n - 5, 0x22, NULL);
    }
    assert_tlv_str(v + 5, (size_t)n - 5, 0x21, r->c.tls_version);
    assert_tlv_str(v + 5, (size_t)n - 5, 0x23, r->c.cipher);
}

/* A TLS front: v2 carries ALPN, the SNI as authority, and PP2_TYPE_SSL. */
static int t_proxy_v2_tls(void *arg)
{
    struct proxy_run r = { .front = FRONT_TCP, .version = 2, .tls = true };
    struct pp2 h;

    proxy_converse(&r);
    pp2_parse(&r.b, &h);
    ck_assert_uint_eq(h.cmd, 0x21);
    ck_assert_uint_eq(h.fam, 0x11);
    assert_ip_block(&h, AF_INET, &r);
    assert_tlv_str(h.tlv, h.tlv_len, 0x01, "h2");
    assert_tlv_str(h.tlv, h.tlv_len, 0x02, "front.test");
    assert_ssl_tlv(&h, &r);
    ck_assert_str_eq(r.c.tls_version, "TLSv1.3");
    proxy_done(&r);

    r = (struct proxy_run){ .front = FRONT_TCP, .version = 2, .tls = true, .client_cert = true };
    proxy_converse(&r);
    pp2_parse(&r.b, &h);
    assert_ssl_tlv(&h, &r);
    proxy_done(&r);

    r = (struct proxy_run){ .front = FRONT_TCP, .version = 1, .tls = true };
    proxy_converse(&r);                     /* v1 has no TLS facts: the same line */
    ck_assert_msg(r.b.hdr_len > 11 && memcmp(r.b.hdr, "PROXY TCP4 ", 11) == 0, "v1 over TLS");
    proxy_done(&r);
    return 0;
}
START_TEST(proxy_v2_tls) { TU_RUN(t_proxy_v2_tls, NULL); }
END_TEST

/* ---- TLS to the target -------------------------------------------------------------------- */

struct tls_pki {
    struct tu_ca *ca, *other;
    struct tu_cert backend;
};

static void tls_pki_make(struct tls_pki *k)
{
    const char *const dns[] = { "backend.test", NULL };

    k->ca = tu_ca_new("backend CA", TU_KEY_EC);
    k->other = tu_ca_new("other CA", TU_KEY_EC);
    ck_assert_ptr_nonnull(k->ca);
    ck_assert_ptr_nonnull(k->other);
    ck_assert_int_eq(tu_cert_new(k->ca, "backend.test", dns, TU_KEY_EC, -3600, 86400, 0,
                                 &k->backend), 0);
    ck_assert_int_eq(tu_write_ca(tmp_path("ca.pem"), k->ca), 0);
    ck_assert_int_eq(tu_write_ca(tmp_path("other.pem"), k->other), 0);
}

static void tls_pki_free(struct tls_pki *k)
{
    tu_cert_free(&k->backend);
    tu_ca_free(k->ca);
    tu_ca_free(k->other);
    unlink(tmp_path("ca.pem"));
    unlink(tmp_path("other.pem"));
}

/* 1 MiB each way over TLS to a target that verifies, with ALPN. */
static int t_tls_verified(void *arg)
{
    static const char *const alpn[] = { "h2", NULL };
    char *up = pattern(MIB, 3), *down = pattern(MIB, 4);
    struct tls_pki k;
    struct backend b = { .expect = MIB, .reply = down, .reply_len = MIB };
    struct conn c = { .input = up, .input_len = MIB };

    tls_pki_make(&k);
    b.tls = tu_server_ctx(&k.backend, alpn);
    backend_listen(&b);
    c.instance = init_ok(options_for(&b, "\"tls\": {\"ca\": \"ca.pem\", \"server_name\": "
                                          "\"backend.test\", \"alpn\": [\"h2\"]}"));
    converse(&c, &b);
    TU_ASSERT_RC(c.handler_rc, 0);
    TU_ASSERT_RC(b.rc, 0);
    ck_assert_str_eq(b.alpn, "h2");
    assert_bytes("target received", b.in, b.in_len, up, MIB);
    assert_bytes("client received", c.reply, c.reply_len, down, MIB);
    fini(c.instance);
    backend_done(&b);
    tls_pki_free(&k);
    free(c.reply);
    free(up);
    free(down);
    return 0;
}
START_TEST(tls_verified) { TU_RUN(t_tls_verified, NULL); }
END_TEST

/* A target whose certificate does not verify, or names another host: the
 * handler fails (-EPROTO), the client gets nothing; verify = false lets the
 * same target through. */
static void tls_expect(struct tls_pki *k, const char *tls_opts, int want_rc)
{
    static const char req[] = "hello", rep[] = "world";
    struct backend b = { .expect = 5, .reply = rep, .reply_len = 5, .reply_after = true };
    struct conn c = { .input = req, .input_len = 5 };
    char more[512];

    b.tls = tu_server_ctx(&k->backend, NULL);
    backend_listen(&b);
    snprintf(more, sizeof(more), "\"tls\": %s", tls_opts);
    c.instance = init_ok(options_for(&b, more));
    converse(&c, &b);
    TU_ASSERT_RC(c.handler_rc, want_rc);
    if (want_rc == 0) {
        assert_bytes("client received", c.reply, c.reply_len, rep, 5);
    } else {
        ck_assert_uint_eq(c.reply_len, 0);
        ck_assert_int_ne(b.rc, 0);
        ck_assert_int_eq(stat_of(c.instance, "connect_failures"), 1);
    }
    fini(c.instance);
    backend_done(&b);
    free(c.reply);
}

static int t_tls_refused(void *arg)
{
    struct tls_pki k;

    tls_pki_make(&k);
    tls_expect(&k, "{\"ca\": \"other.pem\", \"server_name\": \"backend.test\"}", -EPROTO);
    tls_expect(&k, "{\"ca\": \"ca.pem\", \"server_name\": \"elsewhere.test\"}", -EPROTO);
    tls_expect(&k, "{\"ca\": \"ca.pem\"}", -EPROTO);      /* 127.0.0.1 is not in it */
    tls_expect(&k, "{\"ca\": \"ca.pem\", \"server_name\": \"backend.test\"}", 0);
    tls_expect(&k, "{\"verify\": false}", 0);
    tls_expect(&k, "{\"verify\": false, \"ca\": \"other.pem\"}", 0);
    tls_pki_free(&k);
    return 0;
}
START_TEST(tls_refused) { TU_RUN(t_tls_refused, NULL); }
END_TEST

/* The second connection to the target resumes the first one's session
 * (TLS 1.3 and 1.2), through one listener the target keeps. */
static void tls_resumes(struct tls_pki *k, int max_version)
{
    static const char req[] = "hello", rep[] = "world";
    struct backend first = { 0 };
    SSL_CTX *ctx = tu_server_ctx(&k->backend, NULL);    /* one ticket key */
    void *instance;
    int i;

    ck_assert_ptr_nonnull(ctx);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    backend_listen(&first);
    instance = init_ok(options_for(&first, "\"tls\": {\"ca\": \"ca.pem\", "
                                           "\"server_name\": \"backend.test\"}"));
    for (i = 0; i < 3; i++) {
        struct backend b = { .expect = 5, .reply = rep, .reply_len = 5, .reply_after = true,
                             .listener = first.listener };
        struct conn c = { .instance = instance, .input = req, .input_len = 5 };

        SSL_CTX_up_ref(ctx);
        b.tls = ctx;
        converse(&c, &b);
        TU_ASSERT_RC(c.handler_rc, 0);
        assert_bytes("client received", c.reply, c.reply_len, rep, 5);
        ck_assert_msg(b.resumed == (i > 0), "connection %d: resumed %d", i, b.resumed);
        b.listener = NULL;              /* the first one's */
        backend_done(&b);
        free(c.reply);
    }
    fini(instance);
    backend_done(&first);
    SSL_CTX_free(ctx);
}

static int t_tls_resumed(void *arg)
{
    struct tls_pki k;

    tls_pki_make(&k);
    tls_resumes(&k, TLS1_3_VERSION);
    tls_resumes(&k, TLS1_2_VERSION);
    tls_pki_free(&k);
    return 0;
}
START_TEST(tls_resumed) { TU_RUN(t_tls_resumed, NULL); }
END_TEST

/* ---- datagrams -------------------------------------------------------------------------- */

#define UDP_SEEN_MAX 64

/* A UDP target: replies "re:" + the datagram, and notes who sent what. */
struct udp_target {
    struct wharf_stream *sock;
    unsigned port;
    unsigned from_port[UDP_SEEN_MAX];
    size_t seen;
};

static int udp_target_task(void *arg)
{
    struct udp_target *t = arg;
    struct sockaddr_storage from;
    socklen_t fromlen;
    char buf[2048];
    ssize_t n;

    memcpy(buf, "re:", 3);
    for (;;) {
        fromlen = sizeof(from);
        n = wharf_receive_from(t->sock, buf + 3, sizeof(buf) - 3, (struct sockaddr *)&from,
                               &fromlen);
        if (n < 0)
            return 0;
        if (t->seen < UDP_SEEN_MAX)
            t->from_port[t->seen++] = ntohs(((struct sockaddr_in *)&from)->sin_port);
        wharf_send_to(t->sock, buf, (size_t)n + 3, (struct sockaddr *)&from, fromlen);
    }
}

struct udp_fwd_run {
    void *instance;
    struct wharf_stream *listener;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int rc;
};

static int udp_fwd_task(void *arg)
{
    struct udp_fwd_run *u = arg;

    u->rc = load()->handle_datagrams(u->instance, u->listener);
    return 0;
}

/* Sends msg from client to the plugin's listener and expects "re:" + msg
 * back from the listener's address within 2 s. */
static void udp_roundtrip(struct udp_fwd_run *u, struct wharf_stream *client, const char *msg)
{
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof(from);
    struct wharf_scope sc;
    char buf[2048], want[2048];
    ssize_t n;

    TU_ASSERT_RC(wharf_send_to(client, msg, strlen(msg), (struct sockaddr *)&u->addr,
                               u->addrlen), 0);
    TU_ASSERT_RC(wharf_fail_after(&sc, 2.0), 0);
    n = wharf_receive_from(client, buf, sizeof(buf), (struct sockaddr *)&from, &fromlen);
    n = wharf_scope_exit(&sc, (int)n);
    snprintf(want, sizeof(want), "re:%s", msg);
    TU_ASSERT_RC(n, (ssize_t)strlen(want));
    ck_assert_int_eq(memcmp(buf, want, (size_t)n), 0);
    ck_assert_int_eq(memcmp(&from, &u->addr, u->addrlen), 0);   /* from the listener */
}

static void udp_setup(struct udp_fwd_run *u, struct udp_target *t, const char *more,
                      struct wharf_group *tg)
{
    char opts[256], addr[64];
    int port;

    TU_ASSERT_RC(wharf_udp_open("127.0.0.1", 0, 0, &t->sock), 0);
    TU_ASSERT_RC(wharf_getattr_int(t->sock, WHARF_ATTR_LOCAL_PORT, &port), 0);
    snprintf(opts, sizeof(opts), "{\"target\": \"127.0.0.1:%d\"%s%s}", port, more ? ", " : "",
             more ? more : "");
    u->instance = init_ok_kind(opts, WHARF_LISTENER_DATAGRAM);
    TU_ASSERT_RC(wharf_udp_open("127.0.0.1", 0, 0, &u->listener), 0);
    TU_ASSERT_RC(wharf_getattr_int(u->listener, WHARF_ATTR_LOCAL_PORT, &port), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    u->addrlen = sizeof(u->addr);
    TU_ASSERT_RC(wharf_addr_parse(addr, &u->addr, &u->addrlen), 0);
    TU_ASSERT_RC(wharf_group_spawn(tg, udp_target_task, t), 0);
    TU_ASSERT_RC(wharf_group_spawn(tg, udp_fwd_task, u), 0);
}

static void udp_teardown(struct udp_fwd_run *u, struct udp_target *t, struct wharf_group *tg)
{
    wharf_group_cancel(tg);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    TU_ASSERT_RC(u->rc, WHARF_ECANCELLED);
    ck_assert_int_eq(stat_of(u->instance, "udp_associations_active"), 0);
    fini(u->instance);
    wharf_free(u->listener);
    wharf_free(t->sock);
}

/* Two senders, each its own association (its own source port at the
 * target), replies back to each from the listener's address. */
static int t_udp_associations(void *arg)
{
    struct wharf_group *tg = wharf_group_open();
    struct udp_fwd_run u = { 0 };
    struct udp_target t = { 0 };
    struct wharf_stream *a, *b;

    udp_setup(&u, &t, NULL, tg);
    TU_ASSERT_RC(wharf_udp_open("127.0.0.1", 0, 0, &a), 0);
    TU_ASSERT_RC(wharf_udp_open("127.0.0.1", 0, 0, &b), 0);
    udp_roundtrip(&u, a, "a one");
    udp_roundtrip(&u, b, "b one");
    udp_roundtrip(&u, a, "a two");
    udp_roundtrip(&u, b, "");
    ck_assert_uint_eq(t.seen, 4);
    ck_assert_uint_eq(t.from_port[0], t.from_port[2]);    /* a's association */
    ck_assert_uint_eq(t.from_port[1], t.from_port[3]);    /* b's */
    ck_assert_uint_ne(t.from_port[0], t.from_port[1]);
    ck_assert_int_eq(stat_of(u.instance, "udp_associations"), 2);
    ck_assert_int_eq(stat_of(u.instance, "udp_associations_active"), 2);
    ck_assert_int_eq(stat_of(u.instance, "bytes_up"), 5 + 5 + 5 + 0);
    ck_assert_int_eq(stat_of(u.instance, "bytes_down"), 8 + 8 + 8 + 3);
    wharf_free(a);
    wharf_free(b);
    udp_teardown(&u, &t, tg);
    return 0;
}
START_TEST(udp_associations) { TU_RUN(t_udp_associations, NULL); }
END_TEST

/* An association idle for udp_idle_timeout is closed: the sender's next
 * datagram gets a new one. */
static int t_udp_idle(void *arg)
{
    struct wharf_group *tg = wharf_group_open();
    struct udp_fwd_run u = { 0 };
    struct udp_target t = { 0 };
    struct wharf_stream *a;

    udp_setup(&u, &t, "\"udp_idle_timeout\": 0.3", tg);
    TU_ASSERT_RC(wharf_udp_open("127.0.0.1", 0, 0, &a), 0);
    udp_roundtrip(&u, a, "one");
    TU_ASSERT_RC(wharf_sleep(0.15), 0);
    udp_roundtrip(&u, a, "two");           /* within the timeout: the same */
    TU_ASSERT_RC(wharf_sleep(0.6), 0);
    ck_assert_int_eq(stat_of(u.instance, "udp_associations_active"), 0);
    udp_roundtrip(&u, a, "three");
    ck_assert_uint_eq(t.seen, 3);
    ck_assert_uint_eq(t.from_port[0], t.from_port[1]);
    ck_assert_uint_ne(t.from_port[1], t.from_port[2]);
    ck_assert_int_eq(stat_of(u.instance, "udp_associations"), 2);
    wharf_free(a);
    udp_teardown(&u, &t, tg);
    return 0;
}
START_TEST(udp_idle) { TU_RUN(t_udp_idle, NULL); }
END_TEST

/* At udp_max_associations, a new sender evicts the least recently active. */
static int t_udp_eviction(void *arg)
{
    struct wharf_group *tg = wharf_group_open();
    struct udp_fwd_run u = { 0 };
    struct udp_target t = { 0 };
    struct wharf_stream *a, *b, *c;

    udp_setup(&u, &t, "\"udp_max_associations\": 2", tg);
    TU_ASSERT_RC(wharf_udp_open("127.0.0.1", 0, 0, &a), 0);
    TU_ASSERT_RC(wharf_udp_open("127.0.0.1", 0, 0, &b), 0);
    TU_ASSERT_RC(wharf_udp_open("127.0.0.1", 0, 0, &c), 0);
    udp_roundtrip(&u, a, "a1");
    udp_roundtrip(&u, b, "b1");
    udp_roundtrip(&u, a, "a2");            /* b is now the least recent */
    udp_roundtrip(&u, c, "c1");            /* evicts b */
    udp_roundtrip(&u, a, "a3");            /* a kept its association */
    udp_roundtrip(&u, b, "b2");            /* a new one for b, evicting c */
    ck_assert_uint_eq(t.seen, 6);
    ck_assert_uint_eq(t.from_port[0], t.from_port[2]);
    ck_assert_uint_eq(t.from_port[0], t.from_port[4]);
    ck_assert_uint_ne(t.from_port[1], t.from_port[5]);
    ck_assert_int_eq(stat_of(u.instance, "udp_evictions"), 2);
    ck_assert_int_eq(stat_of(u.instance, "udp_associations"), 4);
    ck_assert_int_eq(stat_of(u.instance, "udp_associations_active"), 2);
    wharf_free(a);
    wharf_free(b);
    wharf_free(c);
    udp_teardown(&u, &t, tg);
    return 0;
}
START_TEST(udp_eviction) { TU_RUN(t_udp_eviction, NULL); }
END_TEST

/* A send to the target that outlasts udp_idle_timeout: the association's
 * task ends (idle) while the listener's task is still in the send, which
 * must go on with the association alive (ASan saw the socket freed under
 * it). With a timeout of a nanosecond, the send's checkpoint is enough:
 * the new association's task runs there and finds itself idle. */
static int t_udp_send_outlives_idle(void *arg)
{
    struct wharf_group *tg = wharf_group_open();
    struct udp_fwd_run u = { 0 };
    struct udp_target t = { 0 };
    struct wharf_stream *a;
    int i;

    udp_setup(&u, &t, "\"udp_idle_timeout\": 1e-9", tg);
    TU_ASSERT_RC(wharf_udp_open("127.0.0.1", 0, 0, &a), 0);
    for (i = 0; i < 3; i++) {
        TU_ASSERT_RC(wharf_send_to(a, "late", 4, (struct sockaddr *)&u.addr, u.addrlen), 0);
        TU_ASSERT_RC(wharf_sleep(0.05), 0);
    }
    for (i = 0; i < 100 && t.seen < 3; i++)
        TU_ASSERT_RC(wharf_sleep(0.01), 0);
    ck_assert_uint_eq(t.seen, 3);           /* each sent, on a live socket */
    ck_assert_int_eq(stat_of(u.instance, "bytes_up"), 3 * 4);
    ck_assert_int_eq(stat_of(u.instance, "udp_associations"), 3);
    ck_assert_int_eq(stat_of(u.instance, "udp_associations_active"), 0);
    wharf_free(a);
    udp_teardown(&u, &t, tg);
    return 0;
}
START_TEST(udp_send_outlives_idle) { TU_RUN(t_udp_send_outlives_idle, NULL); }
END_TEST

/* One test case per area, so that CK_RUN_CASE=tls runs only those. */
static TCase *area(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);

    suite_add_tcase(s, tc);
    return tc;
}

static Suite *forward_suite(void)
{
    Suite *s = suite_create("forward");
    TCase *tc;

    tc = area(s, "options");
    tcase_add_test(tc, descriptor);
    tcase_add_test(tc, options_accepted);
    tcase_add_test(tc, options_rejected);
    tcase_add_test(tc, options_ca_not_pem);
    tc = area(s, "stream");
    tcase_add_test(tc, both_ways);
    tcase_add_test(tc, idle_one_task);
    tcase_add_loop_test(tc, idle_parks, 0, 2);
    tcase_add_test(tc, client_half_close);
    tcase_add_test(tc, target_half_close);
    tcase_add_test(tc, empty);
    tcase_add_test(tc, unix_target);
    tcase_add_test(tc, other_targets);
    tcase_add_test(tc, target_resets);
    tcase_add_test(tc, unreachable);
    tcase_add_test(tc, connect_timeout);
    tc = area(s, "proxy");
    tcase_add_test(tc, proxy_v1);
    tcase_add_test(tc, proxy_v2);
    tcase_add_test(tc, proxy_v2_tls);
    tc = area(s, "tls");
    tcase_add_test(tc, tls_verified);
    tcase_add_test(tc, tls_refused);
    tcase_add_test(tc, tls_resumed);
    tc = area(s, "udp");
    tcase_add_test(tc, udp_associations);
    tcase_add_test(tc, udp_idle);
    tcase_add_test(tc, udp_eviction);
    tcase_add_test(tc, udp_send_outlives_idle);
    return s;
}

int main(void)
{
    tu_keys_warm();
    return tu_run_suite(forward_suite());
}
