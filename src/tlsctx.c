/*
 * tlsctx.c: the SSL_CTX of a TLS listener, built from its tls settings
 * (SPEC.md section 2) when a generation is loaded, so that `wharfd -t` and
 * a reload report every bad certificate, key, cipher list or key file
 * against its line before anything runs. What the callbacks need per
 * handshake (the certificates with their SNI names, the ALPN list, the
 * ticket keys, the ticket cipher) is read and fetched here once and hung
 * on the context, which frees it.
 * Not for: the handshakes and the stream (lib/tls.c), nor the settings'
 * syntax (conf.c).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "wharfd.h"

/* A modern TLS 1.2 list: forward secrecy and AEAD only, ECDSA and RSA. */
#define TLSCTX_CIPHERS                                                      \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"            \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"            \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* TLS 1.3 in the same order (Mozilla's): AES-128-GCM first, whose
 * SHA-256 key schedule and transcript use the CPU's SHA extensions where
 * SHA-384 has none, and whose AES has 10 rounds to AES-256's 14. OpenSSL's
 * own default puts TLS_AES_256_GCM_SHA384 first. */
#define TLSCTX_CIPHERSUITES \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

#define SETTING_MAX 1024
#define FILE_MAX (16L << 20)        /* no PEM or key file comes near it */
#define TICKET_KEY_FILE_SIZE 80     /* nginx's layout: name, HMAC key, AES key */

struct tc_cert {
    X509 *tc_x509;
    EVP_PKEY *tc_key;
    STACK_OF(X509) *tc_chain;       /* the rest of the file, for the peer */
    char **tc_names;                /* lower case: the DNS SANs, else the CNs */
    size_t tc_nnames;
};

struct tc_ticket_key {
    unsigned char tk_name[16];      /* libssl's key_name[16] */
    unsigned char tk_hmac[32];
    unsigned char tk_aes[32];
};

/* Everything the callbacks read, hung on the SSL_CTX (ex_data) and freed
 * with it; never changed once the context is built, so every worker reads
 * it without a lock. */
struct tlsctx {
    struct tc_cert *tx_certs;       /* the first is the default */
    size_t tx_ncerts;
    unsigned char *tx_alpn;         /* wire format, server preference order */
    size_t tx_alpn_len;
    struct tc_ticket_key *tx_keys;  /* the first encrypts, all decrypt */
    size_t tx_nkeys;
    EVP_CIPHER *tx_aes;             /* AES-256-CBC for tickets, fetched once */
};

/* One build: where its problems go. */
struct build {
    const struct conf *b_conf;
    const struct conf_listener *b_cl;
    const struct conf_tls *b_tls;
    struct conf_errors *b_errs;
    SSL_CTX *b_ctx;
    struct tlsctx *b_tx;
    bool b_failed;
    bool b_reported;                /* b_failed without this: out of memory */
};

static int tlsctx_index = -1;
static pthread_once_t tlsctx_once = PTHREAD_ONCE_INIT;

/* ---- reporting ------------------------------------------------------------ */

static void report(struct build *b, const char *setting, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(struct build *b, const char *setting, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    conf_report(b->b_conf, b->b_errs, setting, "%s", msg);
    b->b_failed = b->b_reported = true;
}

/* "listeners.[N].tls.NAME", or "listeners.[N].tls" for NULL */
static const char *tls_setting(const struct build *b, const char *name, char *buf)
{
    snprintf(buf, SETTING_MAX, "%s.tls%s%s", b->b_cl->lst_setting, name ? "." : "",
             name ? name : "");
    return buf;
}

/* OpenSSL's reason for the last error, copied, with the queue cleared so
 * that the next check starts clean. */
static const char *ssl_reason(char *buf, size_t size)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    snprintf(buf, size, "%s", r ? r : "unknown error");
    ERR_clear_error();
    return buf;
}

/* A path as the operator wrote it when it is under the config's directory:
 * the messages then read "cert.pem", not the absolute path. */
static const char *shown(const struct build *b, const char *path)
{
    const char *dir = b->b_conf->conf_dir;
    size_t n = dir ? strlen(dir) : 0;

    if (n > 0 && strncmp(path, dir, n) == 0 && path[n] == '/')
        return path + n + 1;
    return path;
}

/* ---- files ---------------------------------------------------------------- */

/* The whole of path into *data (malloc'd). 0, or -errno: -EFBIG beyond
 * FILE_MAX (a path such as /dev/zero must not eat the memory). */
static int file_read(const char *path, unsigned char **data, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *buf = NULL, *nb;
    size_t n = 0, cap = 0, got;
    int rc = 0;

    if (!fp)
        return -errno;
    do {
        if (n == cap) {
            if (cap >= (size_t)FILE_MAX || !(nb = realloc(buf, cap ? 2 * cap : 8192))) {
                rc = cap >= (size_t)FILE_MAX ? -EFBIG : -ENOMEM;
                break;
            }
            buf = nb;
            cap = cap ? 2 * cap : 8192;
        }
        got = fread(buf + n, 1, cap - n, fp);
        n += got;
    } while (got > 0);
    if (rc == 0 && ferror(fp))
        rc = errno ? -errno : -EIO;
    fclose(fp);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = n;
    return 0;
}

/* A memory BIO over path's content, or NULL after reporting against setting. */
static BIO *file_bio(struct build *b, const char *setting, const char *path,
                     unsigned char **data, size_t *len)
{
    BIO *bio;
    int rc = file_read(path, data, len);

    if (rc < 0) {
        report(b, setting, "cannot read \"%s\": %s", shown(b, path), strerror(-rc));
        return NULL;
    }
    if (!(bio = BIO_new_mem_buf(*data, (int)*len))) {
        report(b, setting, "cannot read \"%s\": %s", shown(b, path), strerror(ENOMEM));
        free(*data);
    }
    return bio;
}

/* Every PEM certificate of bio, in order. 0; -1 when one cannot be parsed
 * (OpenSSL's error left queued); none at all is 0 with an empty stack. */
static int pem_certs(BIO *bio, STACK_OF(X509) *out)
{
    X509 *x;

    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        if (!sk_X509_push(out, x)) {
            X509_free(x);
            return -1;
        }
    }
    /* the end of the input ends the loop this way */
    if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE)
        return -1;
    ERR_clear_error();
    return 0;
}

/* The certificates of path; NULL after reporting against setting. */
static STACK_OF(X509) *certs_load(struct build *b, const char *setting, const char *path)
{
    unsigned char *data = NULL;
    STACK_OF(X509) *sk;
    char why[256];
    size_t len;
    BIO *bio;

    if (!(bio = file_bio(b, setting, path, &data, &len)))
        return NULL;
    sk = sk_X509_new_null();
    if (!sk || pem_certs(bio, sk) < 0) {
        report(b, setting, "cannot read a certificate in \"%s\": %s", shown(b, path),
               ssl_reason(why, sizeof(why)));
        sk_X509_pop_free(sk, X509_free);
        sk = NULL;
    } else if (sk_X509_num(sk) == 0) {
        report(b, setting, "\"%s\" holds no PEM certificate", shown(b, path));
        sk_X509_free(sk);
        sk = NULL;
    }
    BIO_free(bio);
    free(data);
    return sk;
}

/* Never asks for a passphrase (OpenSSL would prompt on the terminal). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Why the key of path could not be read, in the operator's terms where
 * OpenSSL's are obscure ("unsupported" for a file without a key, such as
 * the certificate given twice). Every PEM key's label ends in
 * "PRIVATE KEY": PKCS#8, encrypted or not, and the legacy RSA and EC ones. */
static void key_report(struct build *b, const char *setting, const char *path,
                       const unsigned char *data, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    char why[256];

    if (!memmem(data, len, "PRIVATE KEY-----", 16))
        report(b, setting, "\"%s\" holds no PEM private key", shown(b, path));
    else if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_BAD_PASSWORD_READ)
        report(b, setting, "the key in \"%s\" is encrypted: wharfd takes no passphrase, "
               "give it unencrypted", shown(b, path));
    else
        report(b, setting, "cannot read a private key in \"%s\": %s", shown(b, path),
               ssl_reason(why, sizeof(why)));
    ERR_clear_error();
}

static EVP_PKEY *key_load(struct build *b, const char *setting, const char *path)
{
    unsigned char *data = NULL;
    EVP_PKEY *key;
    size_t len;
    BIO *bio;

    if (!(bio = file_bio(b, setting, path, &data, &len)))
        return NULL;
    if (!(key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)))
        key_report(b, setting, path, data, len);
    BIO_free(bio);
    OPENSSL_cleanse(data, len);     /* no copy of a private key left behind */
    free(data);
    return key;
}

/* ---- certificates ----------------------------------------------------------- */

static void time_iso(const ASN1_TIME *t, char *buf, size_t size)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (!ASN1_TIME_to_tm(t, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, size, "(an unreadable time)");
}

/* The certificate must be valid now: one that expired, or is not valid
 * yet, would fail every handshake. */
static void cert_check_time(struct build *b, const char *setting, const char *path, X509 *x)
{
    char when[64];

    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
        time_iso(X509_get0_notAfter(x), when, sizeof(when));
        report(b, setting, "\"%s\" expired on %s", shown(b, path), when);
    } else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
        time_iso(X509_get0_notBefore(x), when, sizeof(when));
        report(b, setting, "\"%s\" is not valid before %s", shown(b, path), when);
    }
    ERR_clear_error();
}

static int cert_add_name(struct tc_cert *tc, const unsigned char *s, int len)
{
    char **names, *name;

    /* a name with a NUL inside can never equal a host name */
    if (len <= 0 || memchr(s, '\0', (size_t)len))
        return 0;
    names = realloc(tc->tc_names, (tc->tc_nnames + 1) * sizeof(char *));
    if (!names)
        return -1;
    tc->tc_names = names;
    if (!(name = strndup((const char *)s, (size_t)len)))
        return -1;
    for (char *p = name; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
    tc->tc_names[tc->tc_nnames++] = name;
    return 0;
}

static int cert_dns_names(struct tc_cert *tc)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(tc->tc_x509, NID_subject_alt_name, NULL, NULL);
    int rc = 0;

    for (int i = 0; rc == 0 && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

        if (g->type == GEN_DNS)
            rc = cert_add_name(tc, ASN1_STRING_get0_data(g->d.dNSName),
                               ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(gens);
    return rc;
}

/* The names SNI is matched against: the DNS SANs, or the CNs without any
 * (RFC 6125's rule for the presented identifiers). */
static int cert_names(struct tc_cert *tc)
{
    const X509_NAME *subj = X509_get_subject_name(tc->tc_x509);
    int i = -1;

    if (cert_dns_names(tc) < 0)
        return -1;
    while (tc->tc_nnames == 0 && (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0) {
        unsigned char *utf8 = NULL;
        const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
        int len = ASN1_STRING_to_UTF8(&utf8, cn);
        int rc = len < 0 ? 0 : cert_add_name(tc, utf8, len);

        OPENSSL_free(utf8);
        if (rc < 0)
            return -1;
    }
    ERR_clear_error();
    return 0;
}

static void cert_clear(struct tc_cert *tc)
{
    X509_free(tc->tc_x509);
    EVP_PKEY_free(tc->tc_key);
    sk_X509_pop_free(tc->tc_chain, X509_free);
    for (size_t i = 0; i < tc->tc_nnames; i++)
        free(tc->tc_names[i]);
    free(tc->tc_names);
    memset(tc, 0, sizeof(*tc));
}

/* The key must be the certificate's: a mismatch fails every handshake. */
static int cert_check_key(struct build *b, const char *setting, const char *cert_path,
                          struct tc_cert *tc)
{
    int rc = 0;

    if (!X509_check_private_key(tc->tc_x509, tc->tc_key)) {
        report(b, setting, "the key does not match the certificate \"%s\"",
               shown(b, cert_path));
        rc = -1;
    }
    ERR_clear_error();
    return rc;
}

/* What OpenSSL would refuse at every handshake (a key too small for the
 * security level, a weak signature in the chain) is refused here, once,
 * by trying the pair on a scratch SSL of this context. */
static void cert_check_usable(struct build *b, const char *setting, const char *path,
                              const struct tc_cert *tc)
{
    SSL *ssl = SSL_new(b->b_ctx);
    char why[256];

    if (!ssl)
        b->b_failed = true;
    else if (SSL_use_cert_and_key(ssl, tc->tc_x509, tc->tc_key, tc->tc_chain, 1) != 1)
        report(b, setting, "\"%s\" cannot be used: %s", shown(b, path),
               ssl_reason(why, sizeof(why)));
    SSL_free(ssl);
    ERR_clear_error();
}

/* One certificates entry: its chain and key, both read (so that both get
 * reported), then checked against each other, the clock and the
 * context's security level. */
static void cert_load(struct build *b, const struct conf_cert *cc, struct tc_cert *tc)
{
    char set_cert[SETTING_MAX], set_key[SETTING_MAX];
    STACK_OF(X509) *sk;

    snprintf(set_cert, sizeof(set_cert), "%s.certificate", cc->cert_setting);
    snprintf(set_key, sizeof(set_key), "%s.key", cc->cert_setting);
    if ((sk = certs_load(b, set_cert, cc->cert_file))) {
        tc->tc_x509 = sk_X509_shift(sk);
        tc->tc_chain = sk;
        cert_check_time(b, set_cert, cc->cert_file, tc->tc_x509);
    }
    tc->tc_key = key_load(b, set_key, cc->cert_key_file);
    if (tc->tc_x509 && tc->tc_key && cert_check_key(b, set_key, cc->cert_file, tc) == 0)
        cert_check_usable(b, set_cert, cc->cert_file, tc);
    if (tc->tc_x509 && cert_names(tc) < 0)
        report(b, set_cert, "cannot read the names in \"%s\": %s", shown(b, cc->cert_file),
               strerror(ENOMEM));
}

static void certs_load_all(struct build *b)
{
    const struct conf_tls *tls = b->b_tls;

    b->b_tx->tx_certs = calloc(tls->tls_ncerts, sizeof(struct tc_cert));
    if (!b->b_tx->tx_certs) {
        b->b_failed = true;
        return;
    }
    b->b_tx->tx_ncerts = tls->tls_ncerts;
    for (size_t i = 0; i < tls->tls_ncerts; i++)
        cert_load(b, &tls->tls_certs[i], &b->b_tx->tx_certs[i]);
}

/* ---- choosing a certificate by SNI ---------------------------------------- */

/* RFC 6125: a wildcard is the whole left-most label and stands for exactly
 * one label; names compare case-insensitively. */
static bool name_matches(const char *pattern, const char *host)
{
    const char *dot;

    if (pattern[0] == '*' && pattern[1] == '.') {
        dot = strchr(host, '.');
        return dot && dot != host && strcasecmp(pattern + 1, dot) == 0;
    }
    return strcasecmp(pattern, host) == 0;
}

static const struct tc_cert *cert_for(const struct tlsctx *tx, const char *host)
{
    for (size_t i = 0; host && i < tx->tx_ncerts; i++)
        for (size_t j = 0; j < tx->tx_certs[i].tc_nnames; j++)
            if (name_matches(tx->tx_certs[i].tc_names[j], host))
                return &tx->tx_certs[i];
    return &tx->tx_certs[0];
}

/* The host_name of the ClientHello's server_name extension (RFC 6066
 * section 3), or false when there is none. OpenSSL checks the extension's
 * syntax itself after this callback; here a bad one just means no SNI. */
static bool client_hello_sni(SSL *ssl, char *out, size_t size)
{
    const unsigned char *p;
    size_t len, n;

    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) || len < 2 ||
        ((size_t)p[0] << 8 | p[1]) != len - 2)
        return false;
    for (p += 2, len -= 2; len >= 3; p += 3 + n, len -= 3 + n) {
        n = (size_t)p[1] << 8 | p[2];
        if (len < 3 + n)
            return false;
        if (p[0] != TLSEXT_NAMETYPE_host_name)
            continue;
        if (n == 0 || n >= size || memchr(p + 3, '\0', n))
            return false;
        memcpy(out, p + 3, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

/* Runs before OpenSSL chooses the cipher, so the chosen certificate's key
 * type decides the TLS 1.2 suites as it should. */
static int on_client_hello(SSL *ssl, int *alert, void *arg)
{
    const struct tlsctx *tx = arg;
    const struct tc_cert *c;
    char host[256];

    c = cert_for(tx, client_hello_sni(ssl, host, sizeof(host)) ? host : NULL);
    /* the default came with the context (ctx_setup): setting it again
     * would check the key against the certificate at every handshake */
    if (c == &tx->tx_certs[0])
        return SSL_CLIENT_HELLO_SUCCESS;
    /* only the chosen one: OpenSSL keeps one per key type and would
     * prefer an inherited ECDSA default to a chosen RSA certificate */
    SSL_certs_clear(ssl);
    if (SSL_use_cert_and_key(ssl, c->tc_x509, c->tc_key, c->tc_chain, 1) != 1) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Accepting SNI (the certificate was chosen already) makes OpenSSL keep
 * the name in the session, so SSL_get_servername still gives it after a
 * TLS 1.2 resumption; it also acknowledges the extension. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)ssl, (void)alert, (void)arg;
    return SSL_TLSEXT_ERR_OK;
}

/* ---- ALPN --------------------------------------------------------------------- */

static bool alpn_offered(const unsigned char *in, unsigned inlen, const unsigned char *name)
{
    for (unsigned i = 0; i < inlen && i + 1u + in[i] <= inlen; i += 1u + in[i])
        if (in[i] == name[0] && memcmp(in + i + 1, name + 1, name[0]) == 0)
            return true;
    return false;
}

/* The server's order decides; a client offering protocols of which none is
 * ours gets no_application_protocol (RFC 7301 section 3.2). */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    const struct tlsctx *tx = arg;

    (void)ssl;
    for (size_t i = 0; i < tx->tx_alpn_len; i += 1u + tx->tx_alpn[i]) {
        if (alpn_offered(in, inlen, tx->tx_alpn + i)) {
            *out = tx->tx_alpn + i + 1;
            *outlen = tx->tx_alpn[i];
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void alpn_setup(struct build *b)
{
    const struct conf_tls *tls = b->b_tls;
    struct tlsctx *tx = b->b_tx;
    unsigned char *p;
    size_t len = 0;

    if (tls->tls_nalpn == 0)
        return;
    for (size_t i = 0; i < tls->tls_nalpn; i++)
        len += 1 + strlen(tls->tls_alpn[i]);    /* conf.c keeps each under 256 */
    if (!(tx->tx_alpn = malloc(len))) {
        b->b_failed = true;
        return;
    }
    p = tx->tx_alpn;
    for (size_t i = 0; i < tls->tls_nalpn; i++) {
        *p = (unsigned char)strlen(tls->tls_alpn[i]);
        memcpy(p + 1, tls->tls_alpn[i], *p);
        p += 1 + *p;
    }
    tx->tx_alpn_len = len;
    SSL_CTX_set_alpn_select_cb(b->b_ctx, on_alpn, tx);
}

/* ---- session tickets ---------------------------------------------------------- */

static int ticket_init(const struct tlsctx *tx, const struct tc_ticket_key *k,
                       unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    static char sha256[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->tk_hmac,
                                          sizeof(k->tk_hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, sha256, 0),
        OSSL_PARAM_construct_end()
    };

    /* the digest goes by name: EVP_MAC offers no other way, and libssl's
     * own ticket keys do the same */
    if (!EVP_MAC_CTX_set_params(hctx, params))
        return -1;
    if (enc)
        return EVP_EncryptInit_ex(cctx, tx->tx_aes, NULL, k->tk_aes, iv) ? 0 : -1;
    return EVP_DecryptInit_ex(cctx, tx->tx_aes, NULL, k->tk_aes, iv) ? 0 : -1;
}

/* libssl's contract: encrypting, 1 (or -1); decrypting, 0 for a key we do
 * not know (a full handshake follows), 1, or 2 for a ticket under an older
 * key, which makes libssl issue a new one under the current key. */
static int on_ticket_key(SSL *ssl, unsigned char name[16], unsigned char *iv,
                         EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    const struct tlsctx *tx = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tlsctx_index);
    size_t i = 0;

    if (enc) {
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(tx->tx_aes)) <= 0)
            return -1;
        memcpy(name, tx->tx_keys[0].tk_name, sizeof(tx->tx_keys[0].tk_name));
    } else {
        while (i < tx->tx_nkeys && memcmp(name, tx->tx_keys[i].tk_name, 16) != 0)
            i++;
        if (i == tx->tx_nkeys)
            return 0;
    }
    if (ticket_init(tx, &tx->tx_keys[i], iv, cctx, hctx, enc) < 0)
        return -1;
    return i == 0 ? 1 : 2;
}

/* The setting of the i-th ticket key file: an element of the list, or the
 * single string. */
static const char *ticket_setting(const struct build *b, size_t i, char *buf)
{
    char elem[SETTING_MAX];

    tls_setting(b, "ticket_key_file", buf);
    if (snprintf(elem, sizeof(elem), "%s.[%zu]", buf, i) < (int)sizeof(elem) &&
        conf_line(b->b_conf, elem) > 0)
        memcpy(buf, elem, sizeof(elem));
    return buf;
}

static void ticket_key_load(struct build *b, size_t i, struct tc_ticket_key *k)
{
    const char *path = b->b_tls->tls_ticket_keys[i];
    char setting[SETTING_MAX];
    unsigned char *data = NULL;
    size_t len = 0;
    int rc = file_read(path, &data, &len);

    ticket_setting(b, i, setting);
    if (rc < 0)
        report(b, setting, "cannot read \"%s\": %s", shown(b, path), strerror(-rc));
    else if (len != TICKET_KEY_FILE_SIZE)
        report(b, setting, "\"%s\" holds %zu bytes, a ticket key file holds exactly %d",
               shown(b, path), len, TICKET_KEY_FILE_SIZE);
    else
        memcpy(k, data, sizeof(*k));
    if (data)
        OPENSSL_cleanse(data, len);
    free(data);
}

static void tickets_setup(struct build *b)
{
    const struct conf_tls *tls = b->b_tls;
    struct tlsctx *tx = b->b_tx;

    if (!tls->tls_session_tickets) {
        /* TLS 1.3 would otherwise send tickets for the session cache */
        SSL_CTX_set_options(b->b_ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(b->b_ctx, 0);
    } else {
        /* One TLS 1.3 ticket per full handshake, not OpenSSL's two: with
         * the session cache off they are stateless, and a client may
         * resume several connections with one; each costs an encryption,
         * a MAC and a record (about 30 us of a 400 us handshake). */
        SSL_CTX_set_num_tickets(b->b_ctx, 1);
    }
    if (tls->tls_nticket_keys == 0)
        return;
    tx->tx_keys = calloc(tls->tls_nticket_keys, sizeof(struct tc_ticket_key));
    tx->tx_aes = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (!tx->tx_keys || !tx->tx_aes) {
        b->b_failed = true;
        return;
    }
    tx->tx_nkeys = tls->tls_nticket_keys;
    for (size_t i = 0; i < tls->tls_nticket_keys; i++)
        ticket_key_load(b, i, &tx->tx_keys[i]);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(b->b_ctx, on_ticket_key);
}

/* ---- client certificates ---------------------------------------------------- */

static void client_ca_setup(struct build *b)
{
    const struct conf_tls *tls = b->b_tls;
    static const int modes[] = {
        [CONF_VERIFY_NONE] = SSL_VERIFY_NONE,
        [CONF_VERIFY_OPTIONAL] = SSL_VERIFY_PEER,
        [CONF_VERIFY_REQUIRE] = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
    };
    char setting[SETTING_MAX];
    STACK_OF(X509) *cas;
    X509_STORE *store = SSL_CTX_get_cert_store(b->b_ctx);

    if (!tls->tls_client_ca) {
        if (tls->tls_verify_client != CONF_VERIFY_NONE)
            report(b, tls_setting(b, "verify_client", setting), "needs client_ca");
        return;
    }
    if (!(cas = certs_load(b, tls_setting(b, "client_ca", setting), tls->tls_client_ca)))
        return;
    for (int i = 0; i < sk_X509_num(cas); i++) {
        X509 *x = sk_X509_value(cas, i);

        if (!X509_STORE_add_cert(store, x) || !SSL_CTX_add_client_CA(b->b_ctx, x))
            b->b_failed = true;
    }
    ERR_clear_error();
    sk_X509_pop_free(cas, X509_free);
    SSL_CTX_set_verify(b->b_ctx, modes[tls->tls_verify_client], NULL);
}

/* ---- the context -------------------------------------------------------------- */

static void tlsctx_free(struct tlsctx *tx)
{
    if (!tx)
        return;
    for (size_t i = 0; i < tx->tx_ncerts; i++)
        cert_clear(&tx->tx_certs[i]);
    free(tx->tx_certs);
    free(tx->tx_alpn);
    if (tx->tx_keys)
        OPENSSL_cleanse(tx->tx_keys, tx->tx_nkeys * sizeof(*tx->tx_keys));
    free(tx->tx_keys);
    EVP_CIPHER_free(tx->tx_aes);
    free(tx);
}

static void tlsctx_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                           long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    tlsctx_free(ptr);
}

static void tlsctx_index_init(void)
{
    tlsctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tlsctx_ex_free);
}

static void versions_ciphers_setup(struct build *b)
{
    const struct conf_tls *tls = b->b_tls;
    const char *ciphers = tls->tls_ciphers ? tls->tls_ciphers : TLSCTX_CIPHERS;
    const char *suites = tls->tls_ciphersuites ? tls->tls_ciphersuites : TLSCTX_CIPHERSUITES;
    char setting[SETTING_MAX], why[256];

    SSL_CTX_set_min_proto_version(b->b_ctx, tls->tls_min_version == CONF_TLS_1_3
                                            ? TLS1_3_VERSION : TLS1_2_VERSION);
    if (!SSL_CTX_set_cipher_list(b->b_ctx, ciphers))
        report(b, tls_setting(b, "ciphers", setting), "no cipher in \"%s\" is known: %s",
               ciphers, ssl_reason(why, sizeof(why)));
    if (!SSL_CTX_set_ciphersuites(b->b_ctx, suites))
        report(b, tls_setting(b, "ciphersuites", setting),
               "no cipher suite in \"%s\" is known: %s", suites,
               ssl_reason(why, sizeof(why)));
}

/* The session id context ties sessions to the listener (by name, so that
 * a fleet sharing a ticket key file resumes across hosts); OpenSSL refuses
 * to resume a session with a client certificate without one. Resumption
 * is by tickets only: no per-context cache to grow, and tickets survive a
 * reload (with a key file) and work across workers and hosts. */
static void sessions_setup(struct build *b)
{
    const char *name = b->b_cl->lst_name ? b->b_cl->lst_name : "";
    size_t len = strlen(name);

    if (len > SSL_MAX_SID_CTX_LENGTH)
        len = SSL_MAX_SID_CTX_LENGTH;
    if (!SSL_CTX_set_session_id_context(b->b_ctx, (const unsigned char *)name,
                                        (unsigned)len))
        b->b_failed = true;
    SSL_CTX_set_session_cache_mode(b->b_ctx, SSL_SESS_CACHE_OFF);
}

static void ctx_setup(struct build *b)
{
    SSL_CTX_set_ex_data(b->b_ctx, tlsctx_index, b->b_tx);
    SSL_CTX_set_options(b->b_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                  SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(b->b_ctx, SSL_MODE_RELEASE_BUFFERS);
    versions_ciphers_setup(b);
    certs_load_all(b);
    /* the default certificate is the context's, checked once; the
     * ClientHello callback sets another only when SNI picks one */
    if (!b->b_failed && b->b_tx->tx_ncerts > 0 && b->b_tx->tx_certs[0].tc_x509 &&
        b->b_tx->tx_certs[0].tc_key) {
        const struct tc_cert *c0 = &b->b_tx->tx_certs[0];

        if (SSL_CTX_use_cert_and_key(b->b_ctx, c0->tc_x509, c0->tc_key, c0->tc_chain, 1) != 1) {
            ERR_clear_error();  /* cert_check_usable has said why */
            b->b_failed = true;
        }
    }
    SSL_CTX_set_client_hello_cb(b->b_ctx, on_client_hello, b->b_tx);
    SSL_CTX_set_tlsext_servername_callback(b->b_ctx, on_servername);
    alpn_setup(b);
    client_ca_setup(b);
    sessions_setup(b);
    tickets_setup(b);
}

int tlsctx_new(const struct conf *conf, const struct conf_listener *cl,
               struct conf_errors *errs, SSL_CTX **out)
{
    struct build b = { conf, cl, cl->lst_tls, errs, NULL, NULL, false, false };
    char setting[SETTING_MAX], why[256];

    *out = NULL;
    pthread_once(&tlsctx_once, tlsctx_index_init);
    ERR_clear_error();
    if (b.b_tls->tls_ncerts == 0) {
        report(&b, tls_setting(&b, NULL, setting), "no certificate");
        return -1;
    }
    b.b_ctx = SSL_CTX_new(TLS_server_method());
    b.b_tx = calloc(1, sizeof(*b.b_tx));
    if (tlsctx_index < 0 || !b.b_ctx || !b.b_tx) {
        report(&b, tls_setting(&b, NULL, setting), "cannot make a TLS context: %s",
               ssl_reason(why, sizeof(why)));
        SSL_CTX_free(b.b_ctx);
        free(b.b_tx);
        return -1;
    }
    ctx_setup(&b);                  /* the context owns tx from its first line */
    if (b.b_failed && !b.b_reported)
        report(&b, tls_setting(&b, NULL, setting), "cannot make a TLS context: %s",
               strerror(ENOMEM));
    ERR_clear_error();
    if (b.b_failed) {
        SSL_CTX_free(b.b_ctx);
        return -1;
    }
    *out = b.b_ctx;
    return 0;
}

/* Whether conf.c left l's tls settings whole: the loader reported what is
 * missing already (conf_parse keeps going to report every problem). */
static bool tls_complete(const struct conf_listener *l)
{
    const struct conf_tls *tls = l->lst_tls;

    if (l->lst_kind == CONF_UDP || tls->tls_ncerts == 0 ||
        (tls->tls_verify_client != CONF_VERIFY_NONE && !tls->tls_client_ca))
        return false;
    for (size_t i = 0; i < tls->tls_ncerts; i++)
        if (!tls->tls_certs[i].cert_file || !tls->tls_certs[i].cert_key_file)
            return false;
    return true;
}

int tlsctx_load_all(struct conf *conf, struct conf_errors *errs)
{
    int rc = 0;

    for (size_t i = 0; i < conf->conf_nlisteners; i++) {
        struct conf_listener *l = &conf->conf_listeners[i];

        if (!l->lst_tls || l->lst_ssl_ctx || !tls_complete(l))
            continue;
        if (tlsctx_new(conf, l, errs, &l->lst_ssl_ctx) < 0)
            rc = -1;
    }
    return rc;
}
