/*
 * tls_floor.c: what OpenSSL's server side of one full TLS 1.3 handshake
 * costs on this machine, with no sockets, no kernel and no terminator
 * around it: the floor under any terminator's CPU per handshake. A client
 * and a server SSL in one thread talk over a BIO pair; only the server's
 * calls (SSL_new to SSL_free, its tickets included) are timed, on the
 * thread's CPU clock. bench/proxy prints it beside the terminators'
 * figures, for two server settings:
 *
 *   wharf      wharfd's defaults: TLS_AES_128_GCM_SHA256 first, one ticket
 *   openssl    OpenSSL's defaults (HAProxy's and nginx's): its suite order
 *              (TLS_AES_256_GCM_SHA384 first), two tickets
 *
 *   tls_floor -c CERT -k KEY [-n HANDSHAKES] [-r ROUNDS]
 *       prints "floor SETTING us=MEDIAN min=MIN max=MAX n=N cipher=C
 *       group=G tickets=T" per setting; ROUNDS (default 5) alternate the
 *       two settings, N handshakes each (default 300), MEDIAN over rounds.
 * The client is OpenSSL's default one (X25519 key share, no session
 * offered), like bench/proxy_tls hs.
 */
#include "config.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct setting {
    const char *name;
    SSL_CTX *ctx;
    double us[64];
    long tickets;
    char cipher[64], group[32];
};

static double cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "tls_floor: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static SSL_CTX *server_ctx(const char *cert, const char *key, bool wharf)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        die("cannot load the certificate and key");
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (wharf) {
        /* as src/tlsctx.c sets them */
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
        if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                          "TLS_CHACHA20_POLY1305_SHA256") != 1)
            die("ciphersuites");
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(ctx, 1);
    }
    return ctx;
}

static int on_ticket(SSL *ssl, SSL_SESSION *sess)
{
    long *n = SSL_get_ex_data(ssl, 0);

    (void)sess;
    (*n)++;
    return 0;               /* not kept: OpenSSL frees it */
}

/* One handshake; the server's CPU seconds, or a negative value. */
static double one(struct setting *st, SSL_CTX *cctx)
{
    BIO *sb = NULL, *cb = NULL;
    SSL *c = SSL_new(cctx), *s;
    double t0, spent = 0;
    char buf[64];
    int cdone = 0, sdone = 0;

    if (!c || !BIO_new_bio_pair(&sb, 0, &cb, 0))
        die("client");
    SSL_set_ex_data(c, 0, &st->tickets);
    SSL_set_bio(c, cb, cb);
    SSL_set_connect_state(c);
    t0 = cpu_now();
    if (!(s = SSL_new(st->ctx)))
        die("server");
    SSL_set_bio(s, sb, sb);
    SSL_set_accept_state(s);
    spent += cpu_now() - t0;
    for (int i = 0; i < 20 && !(cdone && sdone); i++) {
        if (!cdone) {
            int r = SSL_do_handshake(c);

            if (r == 1)
                cdone = 1;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                return -1;
        }
        if (!sdone) {
            int r;

            t0 = cpu_now();
            r = SSL_do_handshake(s);
            spent += cpu_now() - t0;
            if (r == 1)
                sdone = 1;
            else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
                return -1;
        }
    }
    if (!(cdone && sdone))
        return -1;
    /* the client takes the tickets the server sent after its Finished */
    if (SSL_read(c, buf, sizeof(buf)) > 0)
        return -1;
    if (!st->cipher[0]) {
        snprintf(st->cipher, sizeof(st->cipher), "%s", SSL_get_cipher_name(s));
        snprintf(st->group, sizeof(st->group), "%s",
                 SSL_group_to_name(s, SSL_get_shared_group(s, 0)) ?: "?");
    }
    t0 = cpu_now();
    SSL_free(s);
    spent += cpu_now() - t0;
    SSL_free(c);
    return spent;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL;
    int n = 300, rounds = 5, opt;
    struct setting st[2] = { { .name = "wharf" }, { .name = "openssl" } };
    SSL_CTX *cctx;

    while ((opt = getopt(argc, argv, "c:k:n:r:")) != -1) {
        switch (opt) {
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'n': n = atoi(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        default: cert = NULL; break;
        }
    }
    if (!cert || !key || n < 1 || rounds < 1 || rounds > 64) {
        fprintf(stderr, "usage: tls_floor -c CERT -k KEY [-n HANDSHAKES] [-r ROUNDS]\n");
        return 64;
    }
    st[0].ctx = server_ctx(cert, key, true);
    st[1].ctx = server_ctx(cert, key, false);
    if (!(cctx = SSL_CTX_new(TLS_client_method())))
        die("client context");
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(cctx, on_ticket);
    for (int w = 0; w < 2; w++)         /* warm-up: first fetches, caches */
        for (int i = 0; i < 20; i++)
            if (one(&st[w], cctx) < 0)
                die("a handshake failed");
    st[0].tickets = st[1].tickets = 0;
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 2; k++) {
            struct setting *x = &st[(r + k) % 2];
            double sum = 0, v;

            for (int i = 0; i < n; i++) {
                if ((v = one(x, cctx)) < 0)
                    die("a handshake failed");
                sum += v;
            }
            x->us[r] = sum / n * 1e6;
        }
    }
    for (int k = 0; k < 2; k++) {
        struct setting *x = &st[k];
        double sorted[64];

        memcpy(sorted, x->us, sizeof(double) * (size_t)rounds);
        qsort(sorted, (size_t)rounds, sizeof(double), cmp);
        printf("floor %s us=%.1f min=%.1f max=%.1f n=%d cipher=%s group=%s tickets=%.2f\n",
               x->name, sorted[rounds / 2], sorted[0], sorted[rounds - 1], n * rounds,
               x->cipher, x->group, (double)x->tickets / (n * rounds));
        SSL_CTX_free(x->ctx);
    }
    SSL_CTX_free(cctx);
    return 0;
}
