/*
 * check_tls.c: the TLS stream (wharf/tls.h), ported from AnyIO's
 * tests/streams/test_tls.py (4.x), plus the edges wharf must get exactly
 * right: the full ragged-EOF matrix, the bounded and shielded close,
 * unwrap with leftover bytes, failed handshakes, STARTTLS through a
 * buffered stream, resumption.
 *
 * Where AnyIO's peer is a blocking ssl socket on a thread, ours is the
 * other end as a wharf TLS stream in a second task of the same group, or,
 * when the test must control exactly which bytes travel together (a
 * ClientHello right behind "STARTTLS\n", plaintext right behind a
 * close_notify), a plain SSL object over memory BIOs that the test drives
 * itself ("raw" below). The main cases run once per transport (the Check
 * loop index): an in-memory connection (wharf_memstream_pair) and loopback
 * TCP.
 *
 * Certificates come from tlsutil.c and are made once in main(), before
 * Check forks the tests: a CA, a leaf for "localhost" signed by it, a
 * client leaf, and a second CA that trusts none of them.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <wharf/tls.h>

#include "testutil.h"
#include "tlsutil.h"

enum { T_MEM, T_TCP };

/* Chunks a memory connection buffers: enough that a handshake flight or a
 * close_notify never waits for the reader, as a socket buffer would not. */
#define MEM_CHUNKS 16

static struct tu_ca *ca, *other_ca;
static struct tu_cert srv_cert, rsa_cert, cli_cert;

static const char *const alpn_h2[] = { "h2", NULL };

/* ---- contexts and transports --------------------------------------------- */

static SSL_CTX *srv_ctx(const struct tu_cert *c, const char *const *alpn)
{
    SSL_CTX *ctx = tu_server_ctx(c, alpn);

    ck_assert_ptr_nonnull(ctx);
    return ctx;
}

static SSL_CTX *cli_ctx(const struct tu_ca *trust, const char *const *alpn)
{
    SSL_CTX *ctx = tu_client_ctx(trust, alpn);

    ck_assert_ptr_nonnull(ctx);
    return ctx;
}

static SSL_CTX *ctx_ref(SSL_CTX *ctx)
{
    ck_assert_int_eq(SSL_CTX_up_ref(ctx), 1);
    return ctx;
}

/* A connected pair of byte streams: *a for the client, *b for the server. */
static void transport_pair(int kind, struct wharf_stream **a, struct wharf_stream **b)
{
    struct wharf_stream *l;
    int port = 0;

    if (kind == T_MEM) {
        TU_ASSERT_RC(wharf_memstream_pair(MEM_CHUNKS, a, b), 0);
        return;
    }
    TU_ASSERT_RC(wharf_tcp_listen("127.0.0.1", 0, 0, 0, &l), 0);
    TU_ASSERT_RC(wharf_getattr_int(l, WHARF_ATTR_LOCAL_PORT, &port), 0);
    TU_ASSERT_RC(wharf_tcp_connect("127.0.0.1", (unsigned)port, NULL, 0, a), 0);
    TU_ASSERT_RC(wharf_accept(l, b), 0);
    wharf_free(l);
}

/* ---- a connection: client and server TLS streams over one transport ------ */

struct conn {
    int kind;
    SSL_CTX *cctx, *sctx;               /* one reference each, until conn_new */
    unsigned cflags, sflags;
    const char *hostname;
    struct wharf_stream *craw, *sraw;   /* the transports, owned by c and s */
    struct wharf_stream *c, *s;
    int crc, src;                       /* the handshakes' results */
    char cerr[256], serr[256];          /* wharf_tls_error after a failure */
};

/* AnyIO's defaults: standard_compatible on both sides, hostname localhost. */
static void conn_init(struct conn *cn, int kind, SSL_CTX *cctx, SSL_CTX *sctx)
{
    memset(cn, 0, sizeof(*cn));
    cn->kind = kind;
    cn->cctx = cctx;
    cn->sctx = sctx;
    cn->cflags = WHARF_TLS_STANDARD;
    cn->sflags = WHARF_TLS_SERVER | WHARF_TLS_STANDARD;
    cn->hostname = "localhost";
}

/* Both streams, no I/O yet. The contexts are released at once: each stream
 * holds a reference of its own (tls.h), which every test thereby relies on. */
static void conn_new(struct conn *cn)
{
    transport_pair(cn->kind, &cn->craw, &cn->sraw);
    TU_ASSERT_RC(wharf_tls_new(cn->craw, cn->cctx, cn->cflags, cn->hostname, &cn->c), 0);
    TU_ASSERT_RC(wharf_tls_new(cn->sraw, cn->sctx, cn->sflags, NULL, &cn->s), 0);
    SSL_CTX_free(cn->cctx);
    SSL_CTX_free(cn->sctx);
    cn->cctx = cn->sctx = NULL;
}

/* A failed side keeps its reason and closes, so that its peer, still in
 * its own handshake, is never left waiting. */
static int handshake_side(struct wharf_stream *s, char *err, size_t size)
{
    int rc = wharf_tls_handshake(s);

    if (rc < 0) {
        snprintf(err, size, "%s", wharf_tls_error(s));
        wharf_close(s);
    }
    return rc;
}

static int server_handshake_task(void *arg)
{
    struct conn *cn = arg;

    cn->src = handshake_side(cn->s, cn->serr, sizeof(cn->serr));
    return 0;
}

/* Both handshakes at once, the server's in a second task. */
static void conn_handshake(struct conn *cn)
{
    struct wharf_group *g = wharf_group_open();

    ck_assert_ptr_nonnull(g);
    TU_ASSERT_RC(wharf_group_spawn(g, server_handshake_task, cn), 0);
    cn->crc = handshake_side(cn->c, cn->cerr, sizeof(cn->cerr));
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
}

static void conn_open(struct conn *cn)
{
    conn_new(cn);
    conn_handshake(cn);
    ck_assert_msg(cn->crc == 0 && cn->src == 0, "handshake: client %s (%s), server %s (%s)",
                  wharf_strerror(cn->crc), cn->cerr, wharf_strerror(cn->src), cn->serr);
}

static int free_task(void *arg)
{
    wharf_free(arg);
    return 0;
}

/* Closes both sides at once: a standard close waits for the peer's
 * close_notify, so closing one after the other would wait for nothing. */
static void conn_close(struct conn *cn)
{
    struct wharf_group *g = wharf_group_open();

    ck_assert_ptr_nonnull(g);
    TU_ASSERT_RC(wharf_group_spawn(g, free_task, cn->s), 0);
    wharf_free(cn->c);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    cn->c = cn->s = NULL;
    SSL_CTX_free(cn->cctx);
    SSL_CTX_free(cn->sctx);
}

/* ---- reading and attributes ---------------------------------------------- */

/* Receives exactly strlen(want) bytes, never more, and compares them. */
static void expect_bytes(struct wharf_stream *s, const char *want)
{
    char buf[256];
    size_t n = strlen(want), got = 0;
    ssize_t r;

    ck_assert_uint_le(n, sizeof(buf));
    while (got < n) {
        r = wharf_receive(s, buf + got, n - got);
        ck_assert_msg(r > 0, "receive after %zu of \"%s\": %s", got, want,
                      wharf_strerror((int)r));
        got += (size_t)r;
    }
    ck_assert_mem_eq(buf, want, n);
}

static void expect_end(struct wharf_stream *s, int want)
{
    char buf[64];

    TU_ASSERT_RC(wharf_receive(s, buf, sizeof(buf)), want);
}

/* A string attribute; its length must count the NUL. */
static int str_attr(struct wharf_stream *s, int attr, char *buf, size_t size)
{
    size_t len = size;
    int rc = wharf_getattr(s, attr, buf, &len);

    if (rc == 0)
        ck_assert_uint_eq(len, strlen(buf) + 1);
    return rc;
}

static void expect_str_attr(struct wharf_stream *s, int attr, const char *want)
{
    char buf[256];

    TU_ASSERT_RC(str_attr(s, attr, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, want);
}

static int int_attr(struct wharf_stream *s, int attr)
{
    int v = -1;

    TU_ASSERT_RC(wharf_getattr_int(s, attr, &v), 0);
    return v;
}

static SSL *ssl_attr(struct wharf_stream *s)
{
    SSL *ssl = NULL;
    size_t len = sizeof(ssl);

    TU_ASSERT_RC(wharf_getattr(s, WHARF_ATTR_TLS_SSL, &ssl, &len), 0);
    ck_assert_uint_eq(len, sizeof(ssl));
    ck_assert_ptr_nonnull(ssl);
    return ssl;
}

/* Both sides derive the same channel binding, of the size of its kind. */
static void expect_channel_binding(struct conn *cn, size_t want_len)
{
    unsigned char cb[64], sb[64];
    size_t cl = sizeof(cb), sl = sizeof(sb);

    TU_ASSERT_RC(wharf_getattr(cn->c, WHARF_ATTR_TLS_CHANNEL_BINDING, cb, &cl), 0);
    TU_ASSERT_RC(wharf_getattr(cn->s, WHARF_ATTR_TLS_CHANNEL_BINDING, sb, &sl), 0);
    ck_assert_uint_eq(cl, want_len);
    ck_assert_uint_eq(sl, want_len);
    ck_assert_mem_eq(cb, sb, cl);
}

static void expect_error_has(const char *err, const char *part)
{
    ck_assert_msg(strstr(err, part) != NULL, "error \"%s\" does not mention \"%s\"", err, part);
}

/* ---- a raw peer: an SSL object the test drives by hand ------------------- */

struct raw {
    SSL *r_ssl;
    BIO *r_in, *r_out;
    struct wharf_stream *r_io;
};

static void raw_init(struct raw *r, SSL_CTX *ctx, bool server, struct wharf_stream *io)
{
    ck_assert_ptr_nonnull(r->r_ssl = SSL_new(ctx));
    ck_assert_ptr_nonnull(r->r_in = BIO_new(BIO_s_mem()));
    ck_assert_ptr_nonnull(r->r_out = BIO_new(BIO_s_mem()));
    BIO_set_mem_eof_return(r->r_in, -1);
    SSL_set_bio(r->r_ssl, r->r_in, r->r_out);
    if (server)
        SSL_set_accept_state(r->r_ssl);
    else
        SSL_set_connect_state(r->r_ssl);
    r->r_io = io;
}

/* Sends pre, what OpenSSL wrote, then post, in one write: one chunk of a
 * memory connection, so the receiver gets them together. */
static void raw_flush(struct raw *r, const char *pre, const char *post)
{
    static char buf[40000];
    size_t n = pre ? strlen(pre) : 0, pl = post ? strlen(post) : 0;
    int k;

    memcpy(buf, pre ? pre : "", n);
    while (BIO_ctrl_pending(r->r_out) > 0) {
        k = BIO_read(r->r_out, buf + n, (int)(sizeof(buf) - n - pl));
        ck_assert_int_gt(k, 0);
        n += (size_t)k;
    }
    memcpy(buf + n, post ? post : "", pl);
    if (n + pl > 0)
        TU_ASSERT_RC(wharf_send(r->r_io, buf, n + pl), 0);
}

enum raw_op { RAW_HANDSHAKE, RAW_READ, RAW_WRITE };

static int raw_do(struct raw *r, enum raw_op op, void *buf, size_t len, size_t *done)
{
    if (op == RAW_HANDSHAKE)
        return SSL_do_handshake(r->r_ssl);
    if (op == RAW_READ)
        return SSL_read_ex(r->r_ssl, buf, len, done);
    return SSL_write_ex(r->r_ssl, buf, len, done);
}

/* Runs op to its end over r_io. Returns the bytes read or written (0 for
 * the handshake), WHARF_EOF at the peer's close_notify, WHARF_EBROKEN when
 * TLS fails, or the transport's error. */
static ssize_t raw_call(struct raw *r, enum raw_op op, void *buf, size_t len)
{
    static char in[17000];
    size_t done = 0;
    ssize_t n;
    int rc, err;

    for (;;) {
        rc = raw_do(r, op, buf, len, &done);
        err = rc > 0 ? SSL_ERROR_NONE : SSL_get_error(r->r_ssl, rc);
        raw_flush(r, NULL, NULL);
        if (err == SSL_ERROR_NONE)
            return (ssize_t)done;
        if (err == SSL_ERROR_ZERO_RETURN)
            return WHARF_EOF;
        if (err != SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            return WHARF_EBROKEN;
        }
        if ((n = wharf_receive(r->r_io, in, sizeof(in))) < 0)
            return n;
        BIO_write(r->r_in, in, (int)n);
    }
}

static void raw_expect(struct raw *r, const char *want)
{
    char buf[256];
    size_t n = strlen(want), got = 0;
    ssize_t k;

    while (got < n) {
        k = raw_call(r, RAW_READ, buf + got, n - got);
        ck_assert_msg(k > 0, "raw read: %s", wharf_strerror((int)k));
        got += (size_t)k;
    }
    ck_assert_mem_eq(buf, want, n);
}

static void raw_write(struct raw *r, const char *s)
{
    TU_ASSERT_RC(raw_call(r, RAW_WRITE, (void *)(uintptr_t)s, strlen(s)), (ssize_t)strlen(s));
}

static void raw_free(struct raw *r)
{
    SSL_free(r->r_ssl);
    wharf_free(r->r_io);
}

/* ---- send_receive -------------------------------------------------------- */

/* The server's stream does its handshake on its first receive. */
static int echo_reversed_task(void *arg)
{
    struct conn *cn = arg;
    char buf[5], rev[6];

    expect_bytes(cn->s, "hello");
    memcpy(buf, "hello", 5);
    for (int i = 0; i < 5; i++)
        rev[i] = buf[4 - i];
    rev[5] = '\0';
    TU_ASSERT_RC(wharf_send(cn->s, rev, 5), 0);
    expect_bytes(cn->s, "and back");
    TU_ASSERT_RC(wharf_send(cn->s, "done", 4), 0);
    return 0;
}

/* AnyIO's test_send_receive, with the client wrapped by wharf_tls_wrap. */
static int t_send_receive(void *arg)
{
    struct conn cn;
    struct wharf_group *g;
    struct wharf_stream *a, *b, *c = NULL;

    conn_init(&cn, *(int *)arg, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    transport_pair(cn.kind, &a, &b);
    TU_ASSERT_RC(wharf_tls_new(b, cn.sctx, cn.sflags, NULL, &cn.s), 0);
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, echo_reversed_task, &cn), 0);
    TU_ASSERT_RC(wharf_tls_wrap(a, cn.cctx, WHARF_TLS_STANDARD, "localhost", &c), 0);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(wharf_stream_kind(c), "tls");
    TU_ASSERT_RC(wharf_send(c, "hello", 5), 0);
    expect_bytes(c, "olleh");
    TU_ASSERT_RC(wharf_send(c, "and back", 8), 0);
    expect_bytes(c, "done");
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    cn.c = c;
    conn_close(&cn);
    return 0;
}
START_TEST(send_receive) { TU_RUN(t_send_receive, &_i); }
END_TEST

/* ---- 10 MB both ways at once: one sender and one receiver per stream ----- */

#define BIG (10u << 20)
#define BIG_PIECE (64u << 10)

struct flow {
    struct wharf_stream *f_s;
    unsigned f_seed;
    size_t f_done;
};

static unsigned char pattern(size_t i, unsigned seed)
{
    return (unsigned char)(i * 131 + (i >> 11) + seed);
}

static int big_sender(void *arg)
{
    struct flow *f = arg;
    unsigned char *buf = malloc(BIG);
    int rc = 0;

    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < BIG; i++)
        buf[i] = pattern(i, f->f_seed);
    for (size_t off = 0; off < BIG && rc == 0; off += BIG_PIECE) {
        rc = wharf_send(f->f_s, buf + off, BIG_PIECE);
        if (rc == 0)
            f->f_done = off + BIG_PIECE;
    }
    free(buf);
    TU_ASSERT_RC(rc, 0);
    return 0;
}

static int big_receiver(void *arg)
{
    struct flow *f = arg;
    unsigned char *buf = malloc(BIG_PIECE);
    ssize_t n;

    ck_assert_ptr_nonnull(buf);
    while (f->f_done < BIG) {
        n = wharf_receive(f->f_s, buf, BIG_PIECE);
        ck_assert_msg(n > 0, "receive at %zu: %s", f->f_done, wharf_strerror((int)n));
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(f->f_done + (size_t)i, f->f_seed))
                ck_abort_msg("byte %zd differs", (ssize_t)f->f_done + i);
        f->f_done += (size_t)n;
    }
    free(buf);
    return 0;
}

static int t_send_receive_large(void *arg)
{
    struct conn cn;
    struct flow fl[4];
    struct wharf_group *g;

    conn_init(&cn, *(int *)arg, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_open(&cn);
    memset(fl, 0, sizeof(fl));
    fl[0].f_s = fl[1].f_s = cn.c;       /* client to server with seed 1 */
    fl[2].f_s = fl[3].f_s = cn.s;       /* server to client with seed 2 */
    fl[0].f_seed = fl[3].f_seed = 1;
    fl[1].f_seed = fl[2].f_seed = 2;
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, big_sender, &fl[0]), 0);
    TU_ASSERT_RC(wharf_group_spawn(g, big_receiver, &fl[1]), 0);
    TU_ASSERT_RC(wharf_group_spawn(g, big_sender, &fl[2]), 0);
    TU_ASSERT_RC(wharf_group_spawn(g, big_receiver, &fl[3]), 0);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(fl[i].f_done, BIG);
    conn_close(&cn);
    return 0;
}
START_TEST(send_receive_large) { TU_RUN(t_send_receive_large, &_i); }
END_TEST

/* A second receiver is refused; a sender beside the receiver is not. */
static int blocked_receiver(void *arg)
{
    expect_bytes(arg, "x");
    return 0;
}

static int t_concurrent_receive(void *arg)
{
    struct conn cn;
    struct wharf_group *g;
    char buf[4];

    (void)arg;
    conn_init(&cn, T_MEM, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_open(&cn);
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, blocked_receiver, cn.c), 0);
    TU_ASSERT_RC(wharf_wait_all_tasks_blocked(), 0);
    TU_ASSERT_RC(wharf_receive(cn.c, buf, sizeof(buf)), WHARF_EBUSY);
    TU_ASSERT_RC(wharf_send(cn.c, "y", 1), 0);
    TU_ASSERT_RC(wharf_send(cn.s, "x", 1), 0);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    expect_bytes(cn.s, "y");
    conn_close(&cn);
    return 0;
}
START_TEST(concurrent_receive) { TU_RUN(t_concurrent_receive, NULL); }
END_TEST

/* Both the receiver and the sender of a fresh client stream start the
 * handshake at the same moment (it runs on the first receive or send);
 * they then talk to echo_reversed_task. */
static int hello_sender(void *arg)
{
    TU_ASSERT_RC(wharf_send(arg, "hello", 5), 0);
    TU_ASSERT_RC(wharf_send(arg, "and back", 8), 0);
    return 0;
}

static int olleh_receiver(void *arg)
{
    expect_bytes(arg, "olleh");
    expect_bytes(arg, "done");
    return 0;
}

static int t_implicit_handshake_two_tasks(void *arg)
{
    struct conn cn;
    struct wharf_group *g;

    (void)arg;
    conn_init(&cn, T_MEM, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_new(&cn);
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, echo_reversed_task, &cn), 0);
    TU_ASSERT_RC(wharf_group_spawn(g, olleh_receiver, cn.c), 0);
    TU_ASSERT_RC(wharf_group_spawn(g, hello_sender, cn.c), 0);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    ck_assert_int_eq(wharf_tls_started(cn.c), 1);
    ck_assert_int_eq(wharf_tls_started(cn.s), 1);
    conn_close(&cn);
    return 0;
}
START_TEST(implicit_handshake_two_tasks) { TU_RUN(t_implicit_handshake_two_tasks, NULL); }
END_TEST

/* ---- arguments ----------------------------------------------------------- */

/* AnyIO's test_receive_invalid_max_bytes, and the same for wharf_send. */
static int t_receive_invalid_max_bytes(void *arg)
{
    struct conn cn;
    char buf[4];

    (void)arg;
    conn_init(&cn, T_MEM, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_open(&cn);
    TU_ASSERT_RC(wharf_receive(cn.c, buf, 0), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_receive(cn.c, NULL, 4), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_send(cn.c, NULL, 4), WHARF_EINVAL);
    /* the stream is still fine */
    TU_ASSERT_RC(wharf_send(cn.c, "ok", 2), 0);
    expect_bytes(cn.s, "ok");
    conn_close(&cn);
    return 0;
}
START_TEST(receive_invalid_max_bytes) { TU_RUN(t_receive_invalid_max_bytes, NULL); }
END_TEST

/* wharf_tls_new frees inner on failure too: its peer sees the end. */
static void expect_new_fails(SSL_CTX *ctx, unsigned flags, bool with_out)
{
    struct wharf_stream *a, *b, *out = (struct wharf_stream *)&out;

    TU_ASSERT_RC(wharf_memstream_pair(MEM_CHUNKS, &a, &b), 0);
    TU_ASSERT_RC(wharf_tls_new(a, ctx, flags, NULL, with_out ? &out : NULL), WHARF_EINVAL);
    if (with_out)
        ck_assert_ptr_null(out);
    expect_end(b, WHARF_EOF);
    wharf_free(b);
}

static int t_bad_arguments(void *arg)
{
    SSL_CTX *ctx = cli_ctx(ca, NULL);
    struct wharf_stream *a, *b, *out = NULL;
    void *left;
    size_t len;

    (void)arg;
    TU_ASSERT_RC(wharf_tls_new(NULL, ctx, 0, NULL, &out), WHARF_EINVAL);
    ck_assert_ptr_null(out);
    expect_new_fails(NULL, 0, true);
    expect_new_fails(ctx, 0x80, true);
    expect_new_fails(ctx, 0, false);
    TU_ASSERT_RC(wharf_tls_handshake(NULL), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_tls_unwrap(NULL, &out, &left, &len), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_start_tls(NULL), WHARF_EINVAL);
    ck_assert_str_eq(wharf_tls_error(NULL), "");
    ck_assert_int_eq(wharf_tls_started(NULL), 0);
    /* a stream that is not TLS */
    TU_ASSERT_RC(wharf_memstream_pair(MEM_CHUNKS, &a, &b), 0);
    TU_ASSERT_RC(wharf_tls_handshake(a), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_tls_unwrap(a, &out, &left, &len), WHARF_EINVAL);
    ck_assert_str_eq(wharf_tls_error(a), "");
    ck_assert_int_eq(wharf_tls_started(a), 0);
    wharf_free(a);
    wharf_free(b);
    SSL_CTX_free(ctx);
    return 0;
}
START_TEST(bad_arguments) { TU_RUN(t_bad_arguments, NULL); }
END_TEST

/* ---- attributes ---------------------------------------------------------- */

static void expect_peer_cert(struct wharf_stream *s, X509 *want)
{
    unsigned char *der = NULL, got[4096], small[1];
    int n = i2d_X509(want, &der);
    size_t len = sizeof(got), sl = sizeof(small);

    ck_assert_int_gt(n, 0);
    TU_ASSERT_RC(wharf_getattr(s, WHARF_ATTR_TLS_PEER_CERT, got, &len), 0);
    ck_assert_uint_eq(len, (size_t)n);
    ck_assert_mem_eq(got, der, len);
    TU_ASSERT_RC(wharf_getattr(s, WHARF_ATTR_TLS_PEER_CERT, small, &sl), -ENOSPC);
    ck_assert_uint_eq(sl, (size_t)n);
    OPENSSL_free(der);
}

/* Version and cipher: the same on both sides, and OpenSSL's own words. */
static void expect_version_cipher(struct conn *cn, const char *version)
{
    char cc[128], sc[128];

    expect_str_attr(cn->c, WHARF_ATTR_TLS_VERSION, version);
    expect_str_attr(cn->s, WHARF_ATTR_TLS_VERSION, version);
    TU_ASSERT_RC(str_attr(cn->c, WHARF_ATTR_TLS_CIPHER, cc, sizeof(cc)), 0);
    TU_ASSERT_RC(str_attr(cn->s, WHARF_ATTR_TLS_CIPHER, sc, sizeof(sc)), 0);
    ck_assert_str_eq(cc, sc);
    ck_assert_str_eq(cc, SSL_get_cipher_name(ssl_attr(cn->c)));
}

/* What the inner stream knows is reachable through the TLS stream. */
static void expect_inner_attrs(struct conn *cn)
{
    struct sockaddr_storage ts, is;
    socklen_t tl, il;
    int fd = 0;

    if (cn->kind == T_MEM) {
        TU_ASSERT_RC(wharf_getattr_int(cn->c, WHARF_ATTR_FD, &fd), -ENOENT);
        TU_ASSERT_RC(wharf_getattr_int(cn->c, WHARF_ATTR_REMOTE_PORT, &fd), -ENOENT);
        return;
    }
    ck_assert_int_eq(int_attr(cn->c, WHARF_ATTR_FAMILY), AF_INET);
    ck_assert_int_eq(int_attr(cn->c, WHARF_ATTR_FD), int_attr(cn->craw, WHARF_ATTR_FD));
    ck_assert_int_eq(int_attr(cn->c, WHARF_ATTR_REMOTE_PORT),
                     int_attr(cn->craw, WHARF_ATTR_REMOTE_PORT));
    TU_ASSERT_RC(wharf_getattr_addr(cn->c, WHARF_ATTR_REMOTE_ADDRESS, &ts, &tl), 0);
    TU_ASSERT_RC(wharf_getattr_addr(cn->craw, WHARF_ATTR_REMOTE_ADDRESS, &is, &il), 0);
    ck_assert_uint_eq(tl, il);
    ck_assert_mem_eq(&ts, &is, tl);
    ck_assert_int_eq(int_attr(cn->s, WHARF_ATTR_LOCAL_PORT),
                     int_attr(cn->c, WHARF_ATTR_REMOTE_PORT));
}

/* AnyIO's test_extra_attributes (TLSStream and TLSListener), both sides. */
static int t_extra_attributes(void *arg)
{
    struct conn cn;
    char buf[256];
    size_t len = sizeof(buf);
    int v;

    conn_init(&cn, *(int *)arg, cli_ctx(ca, alpn_h2), srv_ctx(&srv_cert, alpn_h2));
    conn_open(&cn);
    expect_str_attr(cn.c, WHARF_ATTR_TLS_ALPN, "h2");
    expect_str_attr(cn.s, WHARF_ATTR_TLS_ALPN, "h2");
    expect_version_cipher(&cn, "TLSv1.3");
    ck_assert_int_eq(int_attr(cn.c, WHARF_ATTR_TLS_SERVER_SIDE), 0);
    ck_assert_int_eq(int_attr(cn.s, WHARF_ATTR_TLS_SERVER_SIDE), 1);
    expect_str_attr(cn.c, WHARF_ATTR_TLS_SERVER_NAME, "localhost");
    expect_str_attr(cn.s, WHARF_ATTR_TLS_SERVER_NAME, "localhost");
    expect_peer_cert(cn.c, srv_cert.x509);
    TU_ASSERT_RC(wharf_getattr(cn.s, WHARF_ATTR_TLS_PEER_CERT, buf, &len), -ENOENT);
    expect_str_attr(cn.c, WHARF_ATTR_TLS_PEER_SUBJECT, "CN=localhost");
    TU_ASSERT_RC(str_attr(cn.s, WHARF_ATTR_TLS_PEER_SUBJECT, buf, sizeof(buf)), -ENOENT);
    expect_channel_binding(&cn, 32);
    ck_assert_int_eq(int_attr(cn.c, WHARF_ATTR_TLS_RESUMED), 0);
    ck_assert_int_eq(int_attr(cn.s, WHARF_ATTR_TLS_RESUMED), 0);
    ck_assert_int_eq(SSL_is_server(ssl_attr(cn.c)), 0);
    ck_assert_int_eq(SSL_is_server(ssl_attr(cn.s)), 1);
    ck_assert_int_eq(int_attr(cn.c, WHARF_ATTR_TLS_STARTED), 1);
    TU_ASSERT_RC(wharf_getattr_int(cn.c, WHARF_ATTR_USER_FIRST, &v), -ENOENT);
    expect_inner_attrs(&cn);
    conn_close(&cn);
    return 0;
}
START_TEST(extra_attributes) { TU_RUN(t_extra_attributes, &_i); }
END_TEST

/* TLS 1.2 with an RSA certificate: tls-unique is a Finished message. */
static int t_extra_attributes_tls12(void *arg)
{
    struct conn cn;
    SSL_CTX *cctx = cli_ctx(ca, NULL);
    char buf[64];

    (void)arg;
    ck_assert_int_eq(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION), 1);
    conn_init(&cn, T_MEM, cctx, srv_ctx(&rsa_cert, NULL));
    conn_open(&cn);
    expect_version_cipher(&cn, "TLSv1.2");
    TU_ASSERT_RC(str_attr(cn.c, WHARF_ATTR_TLS_CIPHER, buf, sizeof(buf)), 0);
    ck_assert_msg(strstr(buf, "RSA") != NULL, "cipher %s", buf);
    expect_channel_binding(&cn, 12);
    expect_peer_cert(cn.c, rsa_cert.x509);
    TU_ASSERT_RC(str_attr(cn.c, WHARF_ATTR_TLS_ALPN, buf, sizeof(buf)), -ENOENT);
    conn_close(&cn);
    return 0;
}
START_TEST(extra_attributes_tls12) { TU_RUN(t_extra_attributes_tls12, NULL); }
END_TEST

/* The server's view of a client certificate, when it asks for one. */
static int t_client_cert_attributes(void *arg)
{
    struct conn cn;
    SSL_CTX *cctx = cli_ctx(ca, NULL), *sctx = srv_ctx(&srv_cert, NULL);

    (void)arg;
    ck_assert_int_eq(tu_ctx_use_cert(cctx, &cli_cert), 0);
    ck_assert_int_eq(X509_STORE_add_cert(SSL_CTX_get_cert_store(sctx), tu_ca_x509(ca)), 1);
    SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    conn_init(&cn, T_MEM, cctx, sctx);
    conn_open(&cn);
    expect_peer_cert(cn.s, cli_cert.x509);
    expect_str_attr(cn.s, WHARF_ATTR_TLS_PEER_SUBJECT, "CN=client");
    conn_close(&cn);
    return 0;
}
START_TEST(client_cert_attributes) { TU_RUN(t_client_cert_attributes, NULL); }
END_TEST

/* Before the handshake only what the stream is made with is known. */
static void expect_fresh_attrs(struct wharf_stream *s, int server_side)
{
    char buf[64];

    ck_assert_int_eq(int_attr(s, WHARF_ATTR_TLS_SERVER_SIDE), server_side);
    ck_assert_int_eq(int_attr(s, WHARF_ATTR_TLS_STARTED), 0);
    ck_assert_int_eq(SSL_is_server(ssl_attr(s)), server_side);
    TU_ASSERT_RC(str_attr(s, WHARF_ATTR_TLS_VERSION, buf, sizeof(buf)), -ENOENT);
    TU_ASSERT_RC(str_attr(s, WHARF_ATTR_TLS_CIPHER, buf, sizeof(buf)), -ENOENT);
    TU_ASSERT_RC(str_attr(s, WHARF_ATTR_TLS_ALPN, buf, sizeof(buf)), -ENOENT);
    ck_assert_int_eq(wharf_tls_started(s), 0);
    ck_assert_str_eq(wharf_tls_error(s), "");
}

/* wharf_tls_started before and after, also through a buffered stream. */
static int t_tls_started(void *arg)
{
    struct conn cn;
    struct wharf_stream *buffered;

    (void)arg;
    conn_init(&cn, T_MEM, cli_ctx(ca, alpn_h2), srv_ctx(&srv_cert, alpn_h2));
    conn_new(&cn);
    expect_fresh_attrs(cn.c, 0);
    expect_fresh_attrs(cn.s, 1);
    conn_handshake(&cn);
    TU_ASSERT_RC(cn.crc, 0);
    TU_ASSERT_RC(cn.src, 0);
    ck_assert_int_eq(wharf_tls_started(cn.c), 1);
    ck_assert_int_eq(wharf_tls_started(cn.s), 1);
    ck_assert_int_eq(int_attr(cn.s, WHARF_ATTR_TLS_STARTED), 1);
    ck_assert_str_eq(wharf_tls_error(cn.c), "");
    TU_ASSERT_RC(wharf_tls_handshake(cn.c), 0);         /* done already */
    ck_assert_ptr_nonnull(buffered = wharf_buffered_new(cn.c));
    cn.c = buffered;
    ck_assert_int_eq(wharf_tls_started(buffered), 1);
    expect_str_attr(buffered, WHARF_ATTR_TLS_ALPN, "h2");
    conn_close(&cn);
    return 0;
}
START_TEST(tls_started) { TU_RUN(t_tls_started, NULL); }
END_TEST

/* ---- ALPN ---------------------------------------------------------------- */

static int send_alpn_task(void *arg)
{
    struct conn *cn = arg;
    char p[64];

    TU_ASSERT_RC(str_attr(cn->s, WHARF_ATTR_TLS_ALPN, p, sizeof(p)), 0);
    TU_ASSERT_RC(wharf_send(cn->s, p, strlen(p)), 0);
    return 0;
}

/* AnyIO's test_alpn_negotiation: the server's preference among both lists. */
static int t_alpn_negotiation(void *arg)
{
    static const char *const sp[] = { "dummy1", "dummy2", NULL };
    static const char *const cp[] = { "dummy2", "dummy3", NULL };
    struct conn cn;
    struct wharf_group *g;

    conn_init(&cn, *(int *)arg, cli_ctx(ca, cp), srv_ctx(&srv_cert, sp));
    conn_open(&cn);
    expect_str_attr(cn.c, WHARF_ATTR_TLS_ALPN, "dummy2");
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, send_alpn_task, &cn), 0);
    expect_bytes(cn.c, "dummy2");
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    conn_close(&cn);
    return 0;
}
START_TEST(alpn_negotiation) { TU_RUN(t_alpn_negotiation, &_i); }
END_TEST

/* No protocol in common: both handshakes fail and say why. */
static int t_alpn_no_overlap(void *arg)
{
    static const char *const cp[] = { "http/1.1", NULL };
    struct conn cn;

    conn_init(&cn, *(int *)arg, cli_ctx(ca, cp), srv_ctx(&srv_cert, alpn_h2));
    conn_new(&cn);
    conn_handshake(&cn);
    TU_ASSERT_RC(cn.crc, WHARF_EBROKEN);
    TU_ASSERT_RC(cn.src, WHARF_EBROKEN);
    expect_error_has(cn.cerr, "no application protocol");
    expect_error_has(cn.serr, "no application protocol");
    ck_assert_int_eq(wharf_tls_started(cn.c), 0);
    conn_close(&cn);
    return 0;
}
START_TEST(alpn_no_overlap) { TU_RUN(t_alpn_no_overlap, &_i); }
END_TEST

/* A client that offers no ALPN is served by a server that has some. */
static int t_alpn_not_offered(void *arg)
{
    struct conn cn;
    char p[16];

    (void)arg;
    conn_init(&cn, T_MEM, cli_ctx(ca, NULL), srv_ctx(&srv_cert, alpn_h2));
    conn_open(&cn);
    TU_ASSERT_RC(str_attr(cn.c, WHARF_ATTR_TLS_ALPN, p, sizeof(p)), -ENOENT);
    TU_ASSERT_RC(str_attr(cn.s, WHARF_ATTR_TLS_ALPN, p, sizeof(p)), -ENOENT);
    conn_close(&cn);
    return 0;
}
START_TEST(alpn_not_offered) { TU_RUN(t_alpn_not_offered, NULL); }
END_TEST

/* ---- ragged EOF: server standard or not x client standard or not --------- */

static bool std_server(int i) { return (i >> 1) & 1; }
static bool std_client(int i) { return i & 1; }

static void conn_init_modes(struct conn *cn, int i)
{
    conn_init(cn, i / 4, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    cn->cflags = std_client(i) ? WHARF_TLS_STANDARD : 0;
    cn->sflags = WHARF_TLS_SERVER | (std_server(i) ? WHARF_TLS_STANDARD : 0);
}

/* AnyIO's serve_sync: a standard server unwraps (close_notify, then waits
 * for the client's); the other one drops its transport without a word. */
static int hello_then_leave(void *arg)
{
    struct conn *cn = arg;
    struct wharf_stream *inner = NULL;
    void *left = NULL;
    size_t len = 1;

    TU_ASSERT_RC(wharf_send(cn->s, "hello", 5), 0);
    if (!(cn->sflags & WHARF_TLS_STANDARD)) {
        wharf_close(cn->sraw);
        return 0;
    }
    TU_ASSERT_RC(wharf_tls_unwrap(cn->s, &inner, &left, &len), 0);
    cn->s = NULL;
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_null(left);
    wharf_free(inner);
    return 0;
}

/* The client's view (AnyIO's test_ragged_eofs). AnyIO's non-standard client
 * closes without close_notify, so its standard server fails to unwrap; a
 * wharf stream always sends one on close (tls.h, SPEC.md ragged_eof), so
 * here every server unwraps cleanly. */
static void ragged_client_view(int i)
{
    struct conn cn;
    struct wharf_group *g;
    int want = std_server(i) || !std_client(i) ? WHARF_EOF : WHARF_EBROKEN;

    conn_init_modes(&cn, i);
    conn_open(&cn);
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, hello_then_leave, &cn), 0);
    expect_bytes(cn.c, "hello");
    expect_end(cn.c, want);
    expect_end(cn.c, want);             /* repeatably */
    if (want == WHARF_EBROKEN)
        ck_assert_str_ne(wharf_tls_error(cn.c), "");
    wharf_free(cn.c);                   /* within the group: the unwrap waits for it */
    cn.c = NULL;
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    conn_close(&cn);
}

static int bye_then_end(void *arg)
{
    struct conn *cn = arg;
    int want = cn->sflags & WHARF_TLS_STANDARD ? WHARF_EBROKEN : WHARF_EOF;

    TU_ASSERT_RC(wharf_send(cn->s, "hello", 5), 0);
    expect_bytes(cn->s, "bye");
    expect_end(cn->s, want);
    expect_end(cn->s, want);
    if (want == WHARF_EBROKEN)
        ck_assert_str_ne(wharf_tls_error(cn->s), "");
    return 0;
}

/* The server's view: the client drops its transport under its TLS stream.
 * It reads "hello" first so that no unread byte (a TLS 1.3 ticket) turns
 * the TCP close into a reset. */
static void ragged_server_view(int i)
{
    struct conn cn;
    struct wharf_group *g;

    conn_init_modes(&cn, i);
    conn_open(&cn);
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, bye_then_end, &cn), 0);
    expect_bytes(cn.c, "hello");
    TU_ASSERT_RC(wharf_send(cn.c, "bye", 3), 0);
    TU_ASSERT_RC(wharf_close(cn.craw), 0);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    conn_close(&cn);
}

static int t_ragged_eofs(void *arg)
{
    ragged_client_view(*(int *)arg);
    ragged_server_view(*(int *)arg);
    return 0;
}
START_TEST(ragged_eofs) { TU_RUN(t_ragged_eofs, &_i); }
END_TEST

/* ---- after the end ------------------------------------------------------- */

static int hello_then_close(void *arg)
{
    struct conn *cn = arg;

    TU_ASSERT_RC(wharf_send(cn->s, "hello", 5), 0);
    wharf_free(cn->s);
    cn->s = NULL;
    return 0;
}

/* AnyIO's test_receive_send_after_eof: the server says hello and closes
 * (standard: close_notify, then it waits for the client's). The client
 * may still send (AnyIO's SSLObject.write allows it; the closing peer
 * discards it); after its own close every call is WHARF_ECLOSED. */
static int t_receive_send_after_eof(void *arg)
{
    struct conn cn;
    struct wharf_group *g;
    char buf[8];

    conn_init(&cn, *(int *)arg, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_open(&cn);
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, hello_then_close, &cn), 0);
    expect_bytes(cn.c, "hello");
    expect_end(cn.c, WHARF_EOF);
    expect_end(cn.c, WHARF_EOF);
    TU_ASSERT_RC(wharf_send(cn.c, "late", 4), 0);
    TU_ASSERT_RC(wharf_close(cn.c), 0);
    TU_ASSERT_RC(wharf_close(cn.c), 0);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    TU_ASSERT_RC(wharf_receive(cn.c, buf, sizeof(buf)), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send(cn.c, "x", 1), WHARF_ECLOSED);
    TU_ASSERT_RC(wharf_send_eof(cn.c), WHARF_ECLOSED);
    conn_close(&cn);
    return 0;
}
START_TEST(receive_send_after_eof) { TU_RUN(t_receive_send_after_eof, &_i); }
END_TEST

/* The peer said close_notify and is gone (a non-standard close does not
 * wait): a send has nobody to go to. Memory only: over TCP the first send
 * to a closed socket may still succeed. */
static int t_send_after_peer_gone(void *arg)
{
    struct conn cn;

    (void)arg;
    conn_init(&cn, T_MEM, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    cn.sflags = WHARF_TLS_SERVER;
    conn_open(&cn);
    hello_then_close(&cn);
    expect_bytes(cn.c, "hello");
    expect_end(cn.c, WHARF_EOF);
    TU_ASSERT_RC(wharf_send(cn.c, "late", 4), WHARF_EBROKEN);
    expect_end(cn.c, WHARF_EOF);
    conn_close(&cn);
    return 0;
}
START_TEST(send_after_peer_gone) { TU_RUN(t_send_after_peer_gone, NULL); }
END_TEST

/* AnyIO's test_send_eof_not_implemented [tlsv13, tlsv12]. */
static int t_send_eof_not_implemented(void *arg)
{
    struct conn cn;
    SSL_CTX *cctx = cli_ctx(ca, NULL);
    bool tls12 = *(int *)arg;

    if (tls12)
        ck_assert_int_eq(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION), 1);
    conn_init(&cn, T_MEM, cctx, srv_ctx(&srv_cert, NULL));
    conn_open(&cn);
    expect_str_attr(cn.c, WHARF_ATTR_TLS_VERSION, tls12 ? "TLSv1.2" : "TLSv1.3");
    TU_ASSERT_RC(wharf_send(cn.s, "hello", 5), 0);
    expect_bytes(cn.c, "hello");
    TU_ASSERT_RC(wharf_send_eof(cn.c), WHARF_ENOTSUP);
    TU_ASSERT_RC(wharf_send_eof(cn.s), WHARF_ENOTSUP);
    /* nothing was closed */
    TU_ASSERT_RC(wharf_send(cn.c, "still", 5), 0);
    expect_bytes(cn.s, "still");
    conn_close(&cn);
    return 0;
}
START_TEST(send_eof_not_implemented) { TU_RUN(t_send_eof_not_implemented, &_i); }
END_TEST

/* ---- closing ------------------------------------------------------------- */

struct closer {
    struct conn *cl_conn;
    double cl_sleep;        /* before the server reads */
    double cl_closed_at;    /* when the server closed */
    int cl_rc[2];           /* the server's two receives */
};

static int server_reads_end(void *arg)
{
    struct closer *cl = arg;
    struct wharf_stream *s = cl->cl_conn->s;
    char buf[8];

    TU_ASSERT_RC(wharf_sleep(cl->cl_sleep), 0);
    cl->cl_rc[0] = (int)wharf_receive(s, buf, sizeof(buf));
    cl->cl_rc[1] = (int)wharf_receive(s, buf, sizeof(buf));
    cl->cl_closed_at = wharf_clock();
    wharf_free(s);
    cl->cl_conn->s = NULL;
    return 0;
}

/* Frees the client while the server sleeps, then reads; returns how long
 * the client's close took. */
static double close_client_timed(struct conn *cn, struct closer *cl, double sleep)
{
    struct wharf_group *g = wharf_group_open();
    double t0;

    memset(cl, 0, sizeof(*cl));
    cl->cl_conn = cn;
    cl->cl_sleep = sleep;
    TU_ASSERT_RC(wharf_group_spawn(g, server_reads_end, cl), 0);
    t0 = wharf_clock();
    wharf_free(cn->c);
    cn->c = NULL;
    t0 = wharf_clock() - t0;
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    return t0;
}

/* A non-standard close sends close_notify and does not wait: the server
 * (standard or not, the loop's bit 0) reads a clean end, twice. */
static int t_close_sends_close_notify(void *arg)
{
    int i = *(int *)arg;
    struct conn cn;
    struct closer cl;

    conn_init(&cn, i / 2, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    cn.cflags = 0;
    cn.sflags = WHARF_TLS_SERVER | (i & 1 ? WHARF_TLS_STANDARD : 0);
    conn_open(&cn);
    ck_assert_double_lt(close_client_timed(&cn, &cl, 0.3), 0.2);
    TU_ASSERT_RC(cl.cl_rc[0], WHARF_EOF);
    TU_ASSERT_RC(cl.cl_rc[1], WHARF_EOF);
    conn_close(&cn);
    return 0;
}
START_TEST(close_sends_close_notify) { TU_RUN(t_close_sends_close_notify, &_i); }
END_TEST

/* A standard close returns only after the peer's close_notify. */
static int t_close_waits_for_peer(void *arg)
{
    struct conn cn;
    struct closer cl;
    double took;

    conn_init(&cn, *(int *)arg, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    cn.sflags = WHARF_TLS_SERVER;
    conn_open(&cn);
    took = close_client_timed(&cn, &cl, 0.3);
    TU_ASSERT_RC(cl.cl_rc[0], WHARF_EOF);
    ck_assert_double_ge(took, 0.3);
    ck_assert_double_lt(took, 2.0);
    conn_close(&cn);
    return 0;
}
START_TEST(close_waits_for_peer) { TU_RUN(t_close_waits_for_peer, &_i); }
END_TEST

/* A peer that never reads nor answers holds a standard close for
 * WHARF_TLS_CLOSE_TIMEOUT at most; the close_notify went out all the same. */
static int t_close_timeout(void *arg)
{
    struct conn cn;
    double t0;

    (void)arg;
    conn_init(&cn, T_MEM, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_open(&cn);
    t0 = wharf_clock();
    wharf_free(cn.c);
    cn.c = NULL;
    t0 = wharf_clock() - t0;
    ck_assert_double_ge(t0, WHARF_TLS_CLOSE_TIMEOUT - 0.05);
    ck_assert_double_lt(t0, WHARF_TLS_CLOSE_TIMEOUT + 1.0);
    expect_end(cn.s, WHARF_EOF);
    conn_close(&cn);
    return 0;
}
START_TEST(close_timeout) { TU_RUN(t_close_timeout, NULL); }
END_TEST

/* A close inside a cancelled scope still sends close_notify (shielded),
 * but does not wait for the peer's: the cancellation (a drain deadline, a
 * timeout) bounds the connection, and the peer answers late here. */
static int t_close_shielded(void *arg)
{
    struct conn cn;
    struct closer cl;
    struct wharf_scope sc;
    struct wharf_group *g;
    double t0;

    conn_init(&cn, *(int *)arg, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_open(&cn);
    memset(&cl, 0, sizeof(cl));
    cl.cl_conn = &cn;
    cl.cl_sleep = 0.1;
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, server_reads_end, &cl), 0);
    TU_ASSERT_RC(wharf_scope_enter(&sc, WHARF_FOREVER, 0), 0);
    wharf_scope_cancel(&sc);
    t0 = wharf_clock();
    wharf_free(cn.c);
    cn.c = NULL;
    t0 = wharf_clock() - t0;
    TU_ASSERT_RC(wharf_checkpoint(), WHARF_ECANCELLED);
    TU_ASSERT_RC(wharf_scope_exit(&sc, WHARF_ECANCELLED), 0);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    TU_ASSERT_RC(cl.cl_rc[0], WHARF_EOF);
    /* the server got close_notify (WHARF_EOF above); its answer, 0.1 s
     * later, was not waited for */
    ck_assert_double_lt(t0, 0.1);
    conn_close(&cn);
    return 0;
}
START_TEST(close_shielded) { TU_RUN(t_close_shielded, &_i); }
END_TEST

/* ---- unwrap -------------------------------------------------------------- */

static int server_unwraps(void *arg)
{
    struct conn *cn = arg;
    struct wharf_stream *inner = NULL;
    void *left = (void *)1;
    size_t len = 1;

    TU_ASSERT_RC(wharf_send(cn->s, "encrypted", 9), 0);
    TU_ASSERT_RC(wharf_tls_unwrap(cn->s, &inner, &left, &len), 0);
    cn->s = NULL;
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_null(left);
    TU_ASSERT_RC(wharf_send(inner, "unencrypted", 11), 0);
    expect_bytes(inner, "plain reply");
    ck_assert_ptr_eq(inner, cn->sraw);
    wharf_free(inner);
    return 0;
}

/* AnyIO's test_unwrap, both sides wharf streams, then plaintext both ways
 * over the inner streams. What came behind the server's close_notify may
 * be leftover or still in the transport: together it is the message. */
static int t_unwrap(void *arg)
{
    struct conn cn;
    struct wharf_group *g;
    struct wharf_stream *inner = NULL;
    char msg[16] = "";
    void *left = NULL;
    size_t len = 0;

    conn_init(&cn, *(int *)arg, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_open(&cn);
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, server_unwraps, &cn), 0);
    expect_bytes(cn.c, "encrypted");
    TU_ASSERT_RC(wharf_tls_unwrap(cn.c, &inner, &left, &len), 0);
    cn.c = NULL;
    ck_assert_ptr_eq(inner, cn.craw);
    ck_assert_uint_le(len, 11);
    ck_assert(len == 0 ? left == NULL : left != NULL);
    memcpy(msg, left ? left : "", len);
    expect_bytes(inner, "unencrypted" + len);
    ck_assert_mem_eq(msg, "unencrypted", len);
    TU_ASSERT_RC(wharf_send(inner, "plain reply", 11), 0);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    free(left);
    wharf_free(inner);
    conn_close(&cn);
    return 0;
}
START_TEST(unwrap) { TU_RUN(t_unwrap, &_i); }
END_TEST

/* The server's close_notify and plaintext arrive in one chunk: the
 * plaintext is the leftover, to the byte. */
static int raw_server_unwraps(void *arg)
{
    struct raw *r = arg;

    TU_ASSERT_RC(raw_call(r, RAW_HANDSHAKE, NULL, 0), 0);
    raw_write(r, "encrypted");
    TU_ASSERT_RC(raw_call(r, RAW_READ, (char[8]){ 0 }, 8), WHARF_EOF);
    ck_assert_int_eq(SSL_shutdown(r->r_ssl), 1);
    raw_flush(r, NULL, "unencrypted");
    expect_bytes(r->r_io, "plain reply");
    return 0;
}

static int t_unwrap_leftover(void *arg)
{
    struct raw r;
    struct wharf_group *g;
    struct wharf_stream *a, *b, *c = NULL, *inner = NULL;
    SSL_CTX *sctx = srv_ctx(&srv_cert, NULL), *cctx = cli_ctx(ca, NULL);
    void *left = NULL;
    size_t len = 0;

    (void)arg;
    TU_ASSERT_RC(wharf_memstream_pair(MEM_CHUNKS, &a, &b), 0);
    memset(&r, 0, sizeof(r));
    raw_init(&r, sctx, true, b);
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, raw_server_unwraps, &r), 0);
    TU_ASSERT_RC(wharf_tls_wrap(a, cctx, WHARF_TLS_STANDARD, "localhost", &c), 0);
    expect_bytes(c, "encrypted");
    TU_ASSERT_RC(wharf_tls_unwrap(c, &inner, &left, &len), 0);
    ck_assert_ptr_eq(inner, a);
    ck_assert_uint_eq(len, 11);
    ck_assert_mem_eq(left, "unencrypted", 11);
    TU_ASSERT_RC(wharf_send(inner, "plain reply", 11), 0);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    free(left);
    wharf_free(inner);
    raw_free(&r);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}
START_TEST(unwrap_leftover) { TU_RUN(t_unwrap_leftover, NULL); }
END_TEST

/* ---- failed handshakes --------------------------------------------------- */

/* AnyIO's connect_tcp_with_tls_cert_check_fail / test_truststore_ssl. */
static int t_untrusted_server(void *arg)
{
    struct conn cn;

    conn_init(&cn, *(int *)arg, cli_ctx(other_ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_new(&cn);
    conn_handshake(&cn);
    TU_ASSERT_RC(cn.crc, WHARF_EBROKEN);
    TU_ASSERT_RC(cn.src, WHARF_EBROKEN);
    expect_error_has(cn.cerr, "certificate verify failed");
    expect_error_has(cn.serr, "unknown ca");
    ck_assert_int_eq(wharf_tls_started(cn.c), 0);
    conn_close(&cn);
    return 0;
}
START_TEST(untrusted_server) { TU_RUN(t_untrusted_server, &_i); }
END_TEST

/* The name the client asks for is checked against the certificate's. */
static void expect_name_refused(const char *hostname, const char *why)
{
    struct conn cn;

    conn_init(&cn, T_MEM, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    cn.hostname = hostname;
    conn_new(&cn);
    conn_handshake(&cn);
    TU_ASSERT_RC(cn.crc, WHARF_EBROKEN);
    TU_ASSERT_RC(cn.src, WHARF_EBROKEN);
    expect_error_has(cn.cerr, "certificate verify failed");
    expect_error_has(cn.cerr, why);
    conn_close(&cn);
}

static int t_hostname_mismatch(void *arg)
{
    struct conn cn;
    char buf[64];

    (void)arg;
    expect_name_refused("example.org", "hostname mismatch");
    expect_name_refused("127.0.0.1", "IP address mismatch");
    /* without verification a name is only SNI; an address is not even that */
    conn_init(&cn, T_MEM, cli_ctx(NULL, NULL), srv_ctx(&srv_cert, NULL));
    cn.hostname = "127.0.0.1";
    conn_open(&cn);
    TU_ASSERT_RC(str_attr(cn.s, WHARF_ATTR_TLS_SERVER_NAME, buf, sizeof(buf)), -ENOENT);
    conn_close(&cn);
    conn_init(&cn, T_MEM, cli_ctx(NULL, NULL), srv_ctx(&srv_cert, NULL));
    cn.hostname = "example.org";
    conn_open(&cn);
    expect_str_attr(cn.s, WHARF_ATTR_TLS_SERVER_NAME, "example.org");
    conn_close(&cn);
    return 0;
}
START_TEST(hostname_mismatch) { TU_RUN(t_hostname_mismatch, NULL); }
END_TEST

/* wharf_tls_wrap frees what failed and leaves *out NULL. */
static int t_wrap_failure(void *arg)
{
    struct conn cn;
    struct wharf_group *g;
    struct wharf_stream *c = (struct wharf_stream *)&c;

    (void)arg;
    conn_init(&cn, T_MEM, cli_ctx(other_ca, NULL), srv_ctx(&srv_cert, NULL));
    transport_pair(cn.kind, &cn.craw, &cn.sraw);
    TU_ASSERT_RC(wharf_tls_new(cn.sraw, cn.sctx, cn.sflags, NULL, &cn.s), 0);
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, server_handshake_task, &cn), 0);
    TU_ASSERT_RC(wharf_tls_wrap(cn.craw, cn.cctx, WHARF_TLS_STANDARD, "localhost", &c),
                 WHARF_EBROKEN);
    ck_assert_ptr_null(c);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    TU_ASSERT_RC(cn.src, WHARF_EBROKEN);
    conn_close(&cn);
    return 0;
}
START_TEST(wrap_failure) { TU_RUN(t_wrap_failure, NULL); }
END_TEST

/* The server's handshake, bounded so that a server that waits for more
 * fails the test instead of hanging it. */
static int bounded_server_handshake(struct conn *cn)
{
    struct wharf_scope sc;
    int rc;

    TU_ASSERT_RC(wharf_fail_after(&sc, 3.0), 0);
    rc = handshake_side(cn->s, cn->serr, sizeof(cn->serr));
    return wharf_scope_exit(&sc, rc);
}

/* Not a ClientHello: an HTTP request, then zeros. The server fails at once
 * (while the client still holds its transport open) and nothing crashes. */
static void expect_garbage_refused(int kind, const char *junk, size_t len)
{
    struct conn cn;

    conn_init(&cn, kind, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_new(&cn);
    TU_ASSERT_RC(wharf_send(cn.craw, junk, len), 0);
    TU_ASSERT_RC(bounded_server_handshake(&cn), WHARF_EBROKEN);
    ck_assert_str_ne(cn.serr, "");
    conn_close(&cn);
}

static int t_garbage_client_hello(void *arg)
{
    static const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    static const char zeros[32];

    expect_garbage_refused(*(int *)arg, http, sizeof(http) - 1);
    expect_garbage_refused(*(int *)arg, zeros, sizeof(zeros));
    return 0;
}
START_TEST(garbage_client_hello) { TU_RUN(t_garbage_client_hello, &_i); }
END_TEST

/* A client that sends its ClientHello, reads the start of the server's
 * answer and goes away. Its TLS stream c only holds the transport. */
static int raw_client_leaves(void *arg)
{
    struct conn *cn = arg;
    struct raw r;
    char buf[512];

    memset(&r, 0, sizeof(r));
    raw_init(&r, SSL_get_SSL_CTX(ssl_attr(cn->c)), false, cn->craw);
    ck_assert_int_le(SSL_do_handshake(r.r_ssl), 0);
    raw_flush(&r, NULL, NULL);
    ck_assert_int_gt(wharf_receive(cn->craw, buf, sizeof(buf)), 0);
    SSL_free(r.r_ssl);
    TU_ASSERT_RC(wharf_close(cn->craw), 0);
    return 0;
}

/* A client that goes away during the handshake: before its ClientHello,
 * or after reading the beginning of the server's first flight. */
static void expect_client_vanishes(int kind, bool after_hello)
{
    struct conn cn;
    struct wharf_group *g;

    conn_init(&cn, kind, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_new(&cn);
    g = wharf_group_open();
    if (after_hello)
        TU_ASSERT_RC(wharf_group_spawn(g, raw_client_leaves, &cn), 0);
    else
        TU_ASSERT_RC(wharf_close(cn.craw), 0);
    TU_ASSERT_RC(bounded_server_handshake(&cn), WHARF_EBROKEN);
    ck_assert_str_ne(cn.serr, "");
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    conn_close(&cn);
}

/* The server goes away after reading the ClientHello. */
static int raw_server_vanishes(void *arg)
{
    struct conn *cn = arg;
    char buf[2048];

    ck_assert_int_gt(wharf_receive(cn->sraw, buf, sizeof(buf)), 0);
    TU_ASSERT_RC(wharf_close(cn->sraw), 0);
    return 0;
}

static void expect_server_vanishes(int kind)
{
    struct conn cn;
    struct wharf_group *g;

    conn_init(&cn, kind, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_new(&cn);
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, raw_server_vanishes, &cn), 0);
    TU_ASSERT_RC(wharf_tls_handshake(cn.c), WHARF_EBROKEN);
    ck_assert_str_ne(wharf_tls_error(cn.c), "");
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    conn_close(&cn);
}

static int t_peer_closes_during_handshake(void *arg)
{
    expect_client_vanishes(*(int *)arg, false);
    expect_client_vanishes(*(int *)arg, true);
    expect_server_vanishes(*(int *)arg);
    return 0;
}
START_TEST(peer_closes_during_handshake) { TU_RUN(t_peer_closes_during_handshake, &_i); }
END_TEST

/* A handshake with a silent peer, cut by move_on_after; the stream can
 * then only be closed, and closing it does not wait. */
static int t_handshake_cancelled(void *arg)
{
    struct conn cn;
    struct wharf_scope sc;
    double t0;
    int rc;

    (void)arg;
    conn_init(&cn, T_MEM, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_new(&cn);
    t0 = wharf_clock();
    TU_ASSERT_RC(wharf_move_on_after(&sc, 0.2), 0);
    rc = wharf_tls_handshake(cn.s);
    TU_ASSERT_RC(rc, WHARF_ECANCELLED);
    TU_ASSERT_RC(wharf_scope_exit(&sc, rc), 0);
    ck_assert(wharf_scope_cancelled_caught(&sc));
    ck_assert_double_ge(wharf_clock() - t0, 0.2);
    ck_assert_int_eq(wharf_tls_started(cn.s), 0);
    t0 = wharf_clock();
    wharf_free(cn.s);
    cn.s = NULL;
    ck_assert_double_lt(wharf_clock() - t0, 0.5);
    /* the client's side of it: the server is gone before answering */
    TU_ASSERT_RC(wharf_tls_handshake(cn.c), WHARF_EBROKEN);
    conn_close(&cn);
    return 0;
}
START_TEST(handshake_cancelled) { TU_RUN(t_handshake_cancelled, NULL); }
END_TEST

/* ---- STARTTLS ------------------------------------------------------------ */

/* The client: a plaintext line, then "STARTTLS\n" with its ClientHello
 * right behind in the same write, then lines over TLS. */
static int starttls_client(void *arg)
{
    struct raw *r = arg;

    TU_ASSERT_RC(wharf_send(r->r_io, "EHLO client\n", 12), 0);
    expect_bytes(r->r_io, "250 hello\n");
    ck_assert_int_le(SSL_do_handshake(r->r_ssl), 0);      /* the ClientHello */
    raw_flush(r, "STARTTLS\n", NULL);
    TU_ASSERT_RC(raw_call(r, RAW_HANDSHAKE, NULL, 0), 0);
    raw_write(r, "over tls\n");
    raw_expect(r, "250 secure\n");
    SSL_shutdown(r->r_ssl);
    raw_flush(r, NULL, NULL);
    TU_ASSERT_RC(raw_call(r, RAW_READ, (char[8]){ 0 }, 8), WHARF_EOF);
    return 0;
}

static void expect_line(struct wharf_stream *s, const char *want)
{
    char line[64];

    TU_ASSERT_RC(wharf_receive_until(s, "\n", 1, line, sizeof(line)), (ssize_t)strlen(want));
    ck_assert_mem_eq(line, want, strlen(want));
}

/* The server: a buffered stream over a deferred TLS stream, as wharfd
 * hands a handler with autostart = false. */
static void starttls_server(struct wharf_stream *b, SSL_CTX *sctx)
{
    struct wharf_stream *tls, *buf;

    TU_ASSERT_RC(wharf_tls_new(b, sctx, WHARF_TLS_SERVER | WHARF_TLS_STANDARD |
                               WHARF_TLS_DEFERRED, NULL, &tls), 0);
    ck_assert_ptr_nonnull(buf = wharf_buffered_new(tls));
    ck_assert_int_eq(wharf_tls_started(buf), 0);
    TU_ASSERT_RC(wharf_tls_handshake(tls), WHARF_EINVAL);       /* not started */
    expect_line(buf, "EHLO client");
    TU_ASSERT_RC(wharf_send(buf, "250 hello\n", 10), 0);
    expect_line(buf, "STARTTLS");
    ck_assert_uint_gt(wharf_buffered_size(buf), 5);             /* the ClientHello */
    TU_ASSERT_RC(wharf_start_tls(buf), 0);
    ck_assert_uint_eq(wharf_buffered_size(buf), 0);
    ck_assert_int_eq(wharf_tls_started(buf), 1);
    expect_str_attr(buf, WHARF_ATTR_TLS_VERSION, "TLSv1.3");
    expect_line(buf, "over tls");
    TU_ASSERT_RC(wharf_send(buf, "250 secure\n", 11), 0);
    TU_ASSERT_RC(wharf_start_tls(buf), WHARF_EINVAL);           /* twice */
    TU_ASSERT_RC(wharf_start_tls(tls), WHARF_EINVAL);
    expect_end(buf, WHARF_EOF);
    wharf_free(buf);
}

static int t_starttls(void *arg)
{
    struct raw r;
    struct wharf_group *g;
    struct wharf_stream *a, *b;
    SSL_CTX *sctx = srv_ctx(&srv_cert, NULL), *cctx = cli_ctx(ca, NULL);

    (void)arg;
    TU_ASSERT_RC(wharf_memstream_pair(MEM_CHUNKS, &a, &b), 0);
    memset(&r, 0, sizeof(r));
    raw_init(&r, cctx, false, a);
    g = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(g, starttls_client, &r), 0);
    starttls_server(b, sctx);
    TU_ASSERT_RC(wharf_group_close(g, 0), 0);
    raw_free(&r);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}
START_TEST(starttls) { TU_RUN(t_starttls, NULL); }
END_TEST

/* Nothing to start: a plain buffered stream, a TLS stream that started. */
static int t_start_tls_misuse(void *arg)
{
    struct wharf_stream *a, *b, *buf;
    struct conn cn;

    (void)arg;
    TU_ASSERT_RC(wharf_memstream_pair(MEM_CHUNKS, &a, &b), 0);
    ck_assert_ptr_nonnull(buf = wharf_buffered_new(a));
    TU_ASSERT_RC(wharf_start_tls(buf), WHARF_EINVAL);
    TU_ASSERT_RC(wharf_start_tls(b), WHARF_EINVAL);
    ck_assert_int_eq(wharf_tls_started(buf), 0);
    wharf_free(buf);
    wharf_free(b);
    conn_init(&cn, T_MEM, cli_ctx(ca, NULL), srv_ctx(&srv_cert, NULL));
    conn_new(&cn);
    TU_ASSERT_RC(wharf_start_tls(cn.s), WHARF_EINVAL);      /* autostart, not begun */
    conn_handshake(&cn);
    TU_ASSERT_RC(cn.crc, 0);
    TU_ASSERT_RC(wharf_start_tls(cn.c), WHARF_EINVAL);      /* done */
    conn_close(&cn);
    return 0;
}
START_TEST(start_tls_misuse) { TU_RUN(t_start_tls_misuse, NULL); }
END_TEST

/* ---- resumption [tls13, tls12] ------------------------------------------- */

static SSL_SESSION *first_session(SSL_CTX *cctx, SSL_CTX *sctx)
{
    struct conn cn;
    SSL_SESSION *sess;

    conn_init(&cn, T_MEM, ctx_ref(cctx), ctx_ref(sctx));
    conn_open(&cn);
    TU_ASSERT_RC(wharf_send(cn.s, "x", 1), 0);
    expect_bytes(cn.c, "x");            /* TLS 1.3: the tickets came before it */
    ck_assert_int_eq(int_attr(cn.c, WHARF_ATTR_TLS_RESUMED), 0);
    ck_assert_ptr_nonnull(sess = SSL_get1_session(ssl_attr(cn.c)));
    ck_assert_int_eq(SSL_SESSION_is_resumable(sess), 1);
    conn_close(&cn);
    return sess;
}

static int t_resumption(void *arg)
{
    SSL_CTX *cctx = cli_ctx(ca, NULL), *sctx = srv_ctx(&srv_cert, NULL);
    bool tls12 = *(int *)arg;
    SSL_SESSION *sess;
    struct conn cn;

    if (tls12)
        ck_assert_int_eq(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION), 1);
    sess = first_session(cctx, sctx);
    conn_init(&cn, T_MEM, cctx, sctx);
    conn_new(&cn);
    ck_assert_int_eq(SSL_set_session(ssl_attr(cn.c), sess), 1);
    conn_handshake(&cn);
    TU_ASSERT_RC(cn.crc, 0);
    TU_ASSERT_RC(cn.src, 0);
    ck_assert_int_eq(int_attr(cn.c, WHARF_ATTR_TLS_RESUMED), 1);
    ck_assert_int_eq(int_attr(cn.s, WHARF_ATTR_TLS_RESUMED), 1);
    expect_channel_binding(&cn, tls12 ? 12 : 32);
    TU_ASSERT_RC(wharf_send(cn.c, "again", 5), 0);
    expect_bytes(cn.s, "again");
    SSL_SESSION_free(sess);
    conn_close(&cn);
    return 0;
}
START_TEST(resumption) { TU_RUN(t_resumption, &_i); }
END_TEST

/* ---- the suite ----------------------------------------------------------- */

static TCase *tcase_new(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_set_timeout(tc, 20);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc;

    /* the loop index is the transport: T_MEM, T_TCP */
    tc = tcase_new(s, "stream");
    tcase_add_loop_test(tc, send_receive, T_MEM, T_TCP + 1);
    tcase_add_loop_test(tc, send_receive_large, T_MEM, T_TCP + 1);
    tcase_add_test(tc, concurrent_receive);
    tcase_add_test(tc, implicit_handshake_two_tasks);
    tcase_add_test(tc, receive_invalid_max_bytes);
    tcase_add_test(tc, bad_arguments);
    tcase_add_loop_test(tc, extra_attributes, T_MEM, T_TCP + 1);
    tcase_add_test(tc, extra_attributes_tls12);
    tcase_add_test(tc, client_cert_attributes);
    tcase_add_test(tc, tls_started);
    tcase_add_loop_test(tc, alpn_negotiation, T_MEM, T_TCP + 1);
    tcase_add_loop_test(tc, alpn_no_overlap, T_MEM, T_TCP + 1);
    tcase_add_test(tc, alpn_not_offered);
    tcase_add_loop_test(tc, send_eof_not_implemented, 0, 2);   /* tlsv13, tlsv12 */
    tcase_add_loop_test(tc, resumption, 0, 2);                 /* tlsv13, tlsv12 */

    tc = tcase_new(s, "ending");
    /* transport * 4 + server standard * 2 + client standard */
    tcase_add_loop_test(tc, ragged_eofs, 0, 8);
    tcase_add_loop_test(tc, receive_send_after_eof, T_MEM, T_TCP + 1);
    tcase_add_test(tc, send_after_peer_gone);
    /* transport * 2 + server standard */
    tcase_add_loop_test(tc, close_sends_close_notify, 0, 4);
    tcase_add_loop_test(tc, close_waits_for_peer, T_MEM, T_TCP + 1);
    tcase_add_test(tc, close_timeout);
    tcase_add_loop_test(tc, close_shielded, T_MEM, T_TCP + 1);
    tcase_add_loop_test(tc, unwrap, T_MEM, T_TCP + 1);
    tcase_add_test(tc, unwrap_leftover);

    tc = tcase_new(s, "handshake");
    tcase_add_loop_test(tc, untrusted_server, T_MEM, T_TCP + 1);
    tcase_add_test(tc, hostname_mismatch);
    tcase_add_test(tc, wrap_failure);
    tcase_add_loop_test(tc, garbage_client_hello, T_MEM, T_TCP + 1);
    tcase_add_loop_test(tc, peer_closes_during_handshake, T_MEM, T_TCP + 1);
    tcase_add_test(tc, handshake_cancelled);
    tcase_add_test(tc, starttls);
    tcase_add_test(tc, start_tls_misuse);
    return s;
}

/* Certificates for every test, made before Check forks them. */
static void certs_make(void)
{
    static const char *const localhost[] = { "localhost", NULL };

    tu_keys_warm();
    ca = tu_ca_new("wharf test CA", TU_KEY_EC);
    other_ca = tu_ca_new("another CA", TU_KEY_EC);
    if (!ca || !other_ca ||
        tu_cert_new(ca, "localhost", localhost, TU_KEY_EC, -60, 3600, 0, &srv_cert) < 0 ||
        tu_cert_new(ca, "localhost", localhost, TU_KEY_RSA, -60, 3600, 0, &rsa_cert) < 0 ||
        tu_cert_new(ca, "client", NULL, TU_KEY_EC, -60, 3600, 1, &cli_cert) < 0) {
        fprintf(stderr, "check_tls: cannot make the test certificates\n");
        exit(EXIT_FAILURE);
    }
}

int main(void)
{
    certs_make();
    return tu_run_suite(suite());
}
