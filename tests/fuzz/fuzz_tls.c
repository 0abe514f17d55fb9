/*
 * fuzz_tls.c: libFuzzer target for what a TLS client may send to a TLS
 * listener: wharf's TLS stream (lib/tls.c, lib/tlsbio.c) on the server
 * side over a memory stream, OpenSSL behind it. The server runs the
 * handshake, then echoes what it receives until the end, then closes
 * (sending its close_notify) as wharfd does; the peer's bytes (fuzz.h's
 * chunks) and then its EOF arrive meanwhile, and what the server sends is
 * read and dropped. The seeds hold real ClientHellos, so that mutations
 * reach past the first record.
 *
 * Checked: no crash, no leak, no hang (5 s each), and the contract of the
 * calls: a handshake ends in 0 or WHARF_EBROKEN, a receive in bytes, EOF
 * or WHARF_EBROKEN.
 */
#include "config.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>

#include <wharf/tls.h>
#include <wharf/wharf.h>

#include "fuzz.h"


static SSL_CTX *server_ctx;

/* A self-signed ECDSA P-256 certificate made in memory, as listeners use. */
static SSL_CTX *make_server_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!key || !x || !ctx)
        abort();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, key, EVP_sha256()) || SSL_CTX_use_certificate(ctx, x) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1)
        abort();
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_num_tickets(ctx, 1);
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    server_ctx = make_server_ctx();
    return 0;
}

struct side {
    struct wharf_stream *s;
    const struct fz *f;
};

static int server(void *arg)
{
    struct side *sd = arg;
    struct wharf_stream *tls;
    char buf[4096];
    ssize_t n;
    int rc;

    rc = wharf_tls_wrap(sd->s, server_ctx, WHARF_TLS_SERVER | WHARF_TLS_STANDARD, NULL, &tls);
    sd->s = NULL;                   /* the TLS stream's, or freed */
    if (rc < 0) {
        if (rc != WHARF_EBROKEN && rc != WHARF_ECANCELLED)
            abort();
        return 0;
    }
    while ((n = wharf_receive(tls, buf, sizeof(buf))) > 0)
        if (wharf_send(tls, buf, (size_t)n) < 0)
            break;
    if (n < 0 && n != WHARF_EOF && n != WHARF_EBROKEN && n != WHARF_ECANCELLED)
        abort();
    wharf_free(tls);                /* close_notify, then the inner stream */
    return 0;
}

static int peer_reader(void *arg)
{
    struct wharf_stream *s = arg;
    char buf[4096];

    while (wharf_receive(s, buf, sizeof(buf)) > 0)
        ;
    return 0;
}

static int fz_task(void *arg)
{
    struct fz *f = arg;
    struct wharf_stream *a = NULL, *b = NULL;
    struct side sd;
    struct wharf_group *g;
    struct wharf_scope sc;

    fz_bound(&sc);
    if (wharf_memstream_pair(WHARF_UNBOUNDED, &a, &b) < 0 || !(g = wharf_group_open()))
        abort();
    sd.s = b;
    sd.f = f;
    if (wharf_group_spawn(g, server, &sd) < 0 || wharf_group_spawn(g, peer_reader, a) < 0)
        abort();
    if (fz_send(a, f) == 0)
        wharf_send_eof(a);
    wharf_group_close(g, 0);
    wharf_free(a);
    fz_bound_end(&sc, "fuzz_tls");
    return 0;
}

FZ_ENTRY(fz_task)
