/*
 * tlsutil.c: certificates and contexts made at test time (tlsutil.h).
 * Not for: the daemon's contexts (src/tlsctx.c builds those from the
 * config); this file only serves the tests, so failures return -1/NULL
 * without saying why beyond OpenSSL's error queue.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tlsutil.h"

struct tu_ca {
    X509 *ca_x509;
    EVP_PKEY *ca_key;
};

/* the leaves' key pairs, one per kind, made once per process */
static EVP_PKEY *tu_shared_keys[2];

/* ---- keys ----------------------------------------------------------------- */

EVP_PKEY *tu_key_new(enum tu_key kind)
{
    if (kind == TU_KEY_RSA)
        return EVP_RSA_gen(2048);
    return EVP_EC_gen("P-256");
}

static EVP_PKEY *tu_key_shared(enum tu_key kind)
{
    EVP_PKEY **k = &tu_shared_keys[kind == TU_KEY_RSA];

    if (!*k)
        *k = tu_key_new(kind);
    return *k;
}

void tu_keys_warm(void)
{
    if (!tu_key_shared(TU_KEY_EC) || !tu_key_shared(TU_KEY_RSA)) {
        fprintf(stderr, "tlsutil: cannot make the shared keys\n");
        abort();
    }
}

/* ---- certificates ------------------------------------------------------- */

static int tu_add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    int ok;

    if (!e)
        return -1;
    ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

/* a random positive serial, so that no two certificates of a run collide */
static int tu_set_serial(X509 *x)
{
    BIGNUM *bn = BN_new();
    int rc = -1;

    if (bn && BN_rand(bn, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
        rc = 0;
    BN_free(bn);
    return rc;
}

/* version, serial, subject CN=cn, validity and public key of a new cert */
static X509 *tu_x509_base(const char *cn, EVP_PKEY *key, long not_before, long not_after)
{
    X509 *x = X509_new();
    X509_NAME *name;

    if (!x || !X509_set_version(x, X509_VERSION_3) || tu_set_serial(x) < 0)
        goto fail;
    name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0))
        goto fail;
    if (!X509_gmtime_adj(X509_getm_notBefore(x), not_before) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), not_after) || !X509_set_pubkey(x, key))
        goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

/* "DNS:a,DNS:b" for the subjectAltName extension; NULL when out of memory */
static char *tu_san_value(const char *const *dns)
{
    size_t len = 1;
    char *s;

    for (size_t i = 0; dns[i]; i++)
        len += strlen(dns[i]) + 5;
    if (!(s = calloc(1, len)))
        return NULL;
    for (size_t i = 0; dns[i]; i++) {
        if (i > 0)
            strcat(s, ",");
        strcat(s, "DNS:");
        strcat(s, dns[i]);
    }
    return s;
}

struct tu_ca *tu_ca_new(const char *cn, enum tu_key kind)
{
    struct tu_ca *ca = calloc(1, sizeof(*ca));
    X509V3_CTX v3;

    if (!ca || !(ca->ca_key = tu_key_new(kind)))
        goto fail;
    ca->ca_x509 = tu_x509_base(cn, ca->ca_key, -3600, 10L * 365 * 86400);
    if (!ca->ca_x509 ||
        !X509_set_issuer_name(ca->ca_x509, X509_get_subject_name(ca->ca_x509)))
        goto fail;
    X509V3_set_ctx(&v3, ca->ca_x509, ca->ca_x509, NULL, NULL, 0);
    if (tu_add_ext(ca->ca_x509, &v3, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
        tu_add_ext(ca->ca_x509, &v3, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
        tu_add_ext(ca->ca_x509, &v3, NID_subject_key_identifier, "hash") < 0 ||
        !X509_sign(ca->ca_x509, ca->ca_key, EVP_sha256()))
        goto fail;
    return ca;
fail:
    tu_ca_free(ca);
    return NULL;
}

void tu_ca_free(struct tu_ca *ca)
{
    if (!ca)
        return;
    X509_free(ca->ca_x509);
    EVP_PKEY_free(ca->ca_key);
    free(ca);
}

X509 *tu_ca_x509(const struct tu_ca *ca)
{
    return ca->ca_x509;
}

static int tu_leaf_exts(X509 *x, X509 *issuer, const char *const *dns,
                        enum tu_key kind, int client)
{
    X509V3_CTX v3;
    char *san;
    int rc;

    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    if (tu_add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        tu_add_ext(x, &v3, NID_key_usage, kind == TU_KEY_RSA
                   ? "critical,digitalSignature,keyEncipherment"
                   : "critical,digitalSignature") < 0 ||
        tu_add_ext(x, &v3, NID_ext_key_usage, client ? "clientAuth" : "serverAuth") < 0 ||
        tu_add_ext(x, &v3, NID_subject_key_identifier, "hash") < 0 ||
        tu_add_ext(x, &v3, NID_authority_key_identifier, "keyid:always") < 0)
        return -1;
    if (!dns)
        return 0;
    if (!(san = tu_san_value(dns)))
        return -1;
    rc = tu_add_ext(x, &v3, NID_subject_alt_name, san);
    free(san);
    return rc;
}

int tu_cert_new(struct tu_ca *ca, const char *cn, const char *const *dns,
                enum tu_key kind, long not_before, long not_after, int client,
                struct tu_cert *out)
{
    EVP_PKEY *key = tu_key_shared(kind);
    X509 *issuer;

    memset(out, 0, sizeof(*out));
    if (!key || !EVP_PKEY_up_ref(key))
        return -1;
    out->key = key;
    if (!(out->x509 = tu_x509_base(cn, key, not_before, not_after)))
        goto fail;
    issuer = ca ? ca->ca_x509 : out->x509;
    if (!X509_set_issuer_name(out->x509, X509_get_subject_name(issuer)) ||
        tu_leaf_exts(out->x509, issuer, dns, kind, client) < 0 ||
        !X509_sign(out->x509, ca ? ca->ca_key : key, EVP_sha256()))
        goto fail;
    return 0;
fail:
    tu_cert_free(out);
    return -1;
}

void tu_cert_free(struct tu_cert *c)
{
    X509_free(c->x509);
    EVP_PKEY_free(c->key);
    c->x509 = NULL;
    c->key = NULL;
}

/* ---- PEM files ------------------------------------------------------------ */

int tu_write_cert(const char *path, const struct tu_cert *c, const struct tu_ca *ca)
{
    BIO *b = BIO_new_file(path, "w");
    int ok;

    if (!b)
        return -1;
    ok = PEM_write_bio_X509(b, c->x509) && (!ca || PEM_write_bio_X509(b, ca->ca_x509));
    return BIO_free(b) && ok ? 0 : -1;
}

int tu_write_key(const char *path, const struct tu_cert *c)
{
    BIO *b = BIO_new_file(path, "w");
    int ok;

    if (!b)
        return -1;
    ok = PEM_write_bio_PrivateKey(b, c->key, NULL, NULL, 0, NULL, NULL);
    return BIO_free(b) && ok ? 0 : -1;
}

int tu_write_ca(const char *path, const struct tu_ca *ca)
{
    BIO *b = BIO_new_file(path, "w");
    int ok;

    if (!b)
        return -1;
    ok = PEM_write_bio_X509(b, ca->ca_x509);
    return BIO_free(b) && ok ? 0 : -1;
}

/* ---- contexts ------------------------------------------------------------- */

/* ALPN's wire format: a length byte before each name. NULL (and *len 0)
 * when alpn is NULL or empty or a name does not fit a byte. */
static unsigned char *tu_alpn_wire(const char *const *alpn, size_t *len)
{
    unsigned char *w, *p;
    size_t n = 0;

    *len = 0;
    for (size_t i = 0; alpn && alpn[i]; i++) {
        if (strlen(alpn[i]) == 0 || strlen(alpn[i]) > 255)
            return NULL;
        n += 1 + strlen(alpn[i]);
    }
    if (n == 0 || !(w = malloc(n)))
        return NULL;
    p = w;
    for (size_t i = 0; alpn[i]; i++) {
        *p = (unsigned char)strlen(alpn[i]);
        memcpy(p + 1, alpn[i], *p);
        p += 1 + *p;
    }
    *len = n;
    return w;
}

/* the server's list, in wire format, hung on its SSL_CTX */
struct tu_alpn {
    unsigned char *ta_wire;
    size_t ta_len;
};

static void tu_alpn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                         long argl, void *argp)
{
    struct tu_alpn *a = ptr;

    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (a)
        free(a->ta_wire);
    free(a);
}

static int tu_alpn_index(void)
{
    static int idx = -1;

    if (idx < 0)
        idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tu_alpn_free);
    return idx;
}

/* Whether the wire-format list in/inlen holds the name at p. */
static int tu_alpn_has(const unsigned char *in, unsigned inlen, const unsigned char *p)
{
    for (unsigned i = 0; i < inlen; i += 1u + in[i])
        if (in[i] == p[0] && i + 1u + in[i] <= inlen && memcmp(in + i + 1, p + 1, p[0]) == 0)
            return 1;
    return 0;
}

/* the server's order decides, as in the daemon (src/tlsctx.c) */
static int tu_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned inlen, void *arg)
{
    const struct tu_alpn *a = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tu_alpn_index());

    (void)arg;
    for (size_t i = 0; a && i < a->ta_len; i += 1u + a->ta_wire[i]) {
        if (tu_alpn_has(in, inlen, a->ta_wire + i)) {
            *out = a->ta_wire + i + 1;
            *outlen = a->ta_wire[i];
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int tu_server_alpn(SSL_CTX *ctx, const char *const *alpn)
{
    struct tu_alpn *a;

    if (!alpn)
        return 0;
    if (tu_alpn_index() < 0 || !(a = calloc(1, sizeof(*a))))
        return -1;
    if (!(a->ta_wire = tu_alpn_wire(alpn, &a->ta_len)) ||
        !SSL_CTX_set_ex_data(ctx, tu_alpn_index(), a)) {
        free(a->ta_wire);
        free(a);
        return -1;
    }
    SSL_CTX_set_alpn_select_cb(ctx, tu_alpn_select, NULL);
    return 0;
}

int tu_ctx_use_cert(SSL_CTX *ctx, const struct tu_cert *c)
{
    if (SSL_CTX_use_certificate(ctx, c->x509) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, c->key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
        return -1;
    return 0;
}

SSL_CTX *tu_server_ctx(const struct tu_cert *c, const char *const *alpn)
{
    static const unsigned char sid_ctx[] = "tlsutil";
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        tu_ctx_use_cert(ctx, c) < 0 ||
        !SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) ||
        tu_server_alpn(ctx, alpn) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *tu_client_ctx(const struct tu_ca *ca, const char *const *alpn)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    unsigned char *wire = NULL;
    size_t len;
    int ok;

    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
        goto fail;
    if (ca && !X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca->ca_x509))
        goto fail;
    SSL_CTX_set_verify(ctx, ca ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (alpn) {
        wire = tu_alpn_wire(alpn, &len);
        /* SSL_CTX_set_alpn_protos returns 0 on success */
        ok = wire && SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)len) == 0;
        free(wire);
        if (!ok)
            goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}
