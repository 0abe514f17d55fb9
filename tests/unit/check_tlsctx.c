/*
 * check_tlsctx.c: the listeners' TLS contexts (src/tlsctx.c). Configs are
 * written to a temporary directory with certificates made at test time
 * (tlsutil.h), loaded with conf_parse and tlsctx_load_all only (no
 * plugins): first a table of invalid ones with the exact lines the
 * operator would read, then real handshakes in-process, a client SSL and
 * the listener's SSL over a BIO pair driven in turns, for SNI, ALPN,
 * client certificates, versions, ciphers and session resumption.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "testutil.h"
#include "tlsutil.h"
#include "wharfd.h"

/* ---- fixtures: made once in the runner, inherited by every forked test ---- */

static struct tu_ca *ca, *other_ca;
static struct tu_cert ec_cert, rsa_cert, cn_cert, client_cert, stranger_cert;

static const char *tmp_path(const char *name)
{
    static char paths[8][PATH_MAX];
    static unsigned next;
    char *p = paths[next++ % 8];

    snprintf(p, PATH_MAX, "%s/%s", tu_tmpdir(), name);
    return p;
}

static void write_bytes(const char *name, const void *data, size_t len)
{
    FILE *fp = fopen(tmp_path(name), "wb");

    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
    ck_assert_int_eq(fclose(fp), 0);
}

/* A ticket key file: 16 bytes of name (all `tag`), then random keys. */
static void write_ticket_key(const char *name, char tag, size_t len)
{
    unsigned char k[100];

    ck_assert_uint_le(len, sizeof(k));
    ck_assert_int_eq(RAND_bytes(k, sizeof(k)), 1);
    memset(k, tag, 16);
    write_bytes(name, k, len);
}

/* A self-signed certificate re-dated to fixed times, so that the messages
 * about it can be written out in full. */
static void write_dated(const char *name, const char *not_before, const char *not_after)
{
    struct tu_cert c;

    ck_assert_int_eq(tu_cert_new(NULL, "dated.example", NULL, TU_KEY_EC, 0, 60, 0, &c), 0);
    ck_assert_int_eq(ASN1_TIME_set_string_X509(X509_getm_notBefore(c.x509), not_before), 1);
    ck_assert_int_eq(ASN1_TIME_set_string_X509(X509_getm_notAfter(c.x509), not_after), 1);
    ck_assert_int_gt(X509_sign(c.x509, c.key, EVP_sha256()), 0);
    ck_assert_int_eq(tu_write_cert(tmp_path(name), &c, NULL), 0);
    tu_cert_free(&c);
}

/* A self-signed certificate with an RSA key too small for OpenSSL's
 * default security level. */
static void write_weak(void)
{
    struct tu_cert c;
    EVP_PKEY *small = EVP_RSA_gen(512);

    ck_assert_ptr_nonnull(small);
    ck_assert_int_eq(tu_cert_new(NULL, "weak.example", NULL, TU_KEY_EC, -60, 3600, 0, &c), 0);
    ck_assert_int_eq(X509_set_pubkey(c.x509, small), 1);
    ck_assert_int_gt(X509_sign(c.x509, small, EVP_sha256()), 0);
    EVP_PKEY_free(c.key);
    c.key = small;
    ck_assert_int_eq(tu_write_cert(tmp_path("weak.pem"), &c, NULL), 0);
    ck_assert_int_eq(tu_write_key(tmp_path("weak.key"), &c), 0);
    tu_cert_free(&c);
}

static void write_pair(const char *cert, const char *key, const struct tu_cert *c)
{
    ck_assert_int_eq(tu_write_cert(tmp_path(cert), c, ca), 0);
    ck_assert_int_eq(tu_write_key(tmp_path(key), c), 0);
}

static void write_other_keys(void)
{
    struct tu_cert other = { ec_cert.x509, tu_key_new(TU_KEY_EC) };
    BIO *b = BIO_new_file(tmp_path("encrypted.key"), "w");

    ck_assert_ptr_nonnull(other.key);
    ck_assert_int_eq(tu_write_key(tmp_path("other.key"), &other), 0);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(PEM_write_bio_PrivateKey(b, ec_cert.key, EVP_aes_128_cbc(),
                                              (unsigned char *)"secret", 6, NULL, NULL), 1);
    BIO_free(b);
    EVP_PKEY_free(other.key);
}

static void make_certs(void)
{
    static const char *const ec_names[] = { "ec.example", "*.wild.example", NULL };
    static const char *const rsa_names[] = { "rsa.example", NULL };

    tu_keys_warm();
    ca = tu_ca_new("wharf test CA", TU_KEY_EC);
    other_ca = tu_ca_new("another CA", TU_KEY_EC);
    ck_assert(ca && other_ca);
    /* the EC certificate's CN is not among its SANs: it must not match */
    ck_assert_int_eq(tu_cert_new(ca, "ec-cn.example", ec_names, TU_KEY_EC, -60, 3600, 0,
                                 &ec_cert), 0);
    ck_assert_int_eq(tu_cert_new(ca, "rsa.example", rsa_names, TU_KEY_RSA, -60, 3600, 0,
                                 &rsa_cert), 0);
    ck_assert_int_eq(tu_cert_new(ca, "CN.Example", NULL, TU_KEY_EC, -60, 3600, 0, &cn_cert), 0);
    ck_assert_int_eq(tu_cert_new(ca, "client", NULL, TU_KEY_EC, -60, 3600, 1, &client_cert), 0);
    ck_assert_int_eq(tu_cert_new(other_ca, "stranger", NULL, TU_KEY_EC, -60, 3600, 1,
                                 &stranger_cert), 0);
}

static void fixtures_setup(void)
{
    make_certs();
    write_pair("ec.pem", "ec.key", &ec_cert);
    write_pair("rsa.pem", "rsa.key", &rsa_cert);
    write_pair("cn.pem", "cn.key", &cn_cert);
    ck_assert_int_eq(tu_write_ca(tmp_path("ca.pem"), ca), 0);
    write_other_keys();
    write_weak();
    write_dated("expired.pem", "20000101000000Z", "20010101000000Z");
    write_dated("future.pem", "29990101000000Z", "29991231000000Z");
    write_bytes("garbage.pem", "not a PEM file\n", 15);
    write_bytes("broken.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 60);
    write_ticket_key("a.key", 'A', 80);
    write_ticket_key("b.key", 'B', 80);
    write_ticket_key("short.key", 'S', 79);
}

static void fixtures_teardown(void)
{
    char cmd[PATH_MAX + 16];

    tu_cert_free(&ec_cert);
    tu_cert_free(&rsa_cert);
    tu_cert_free(&cn_cert);
    tu_cert_free(&client_cert);
    tu_cert_free(&stranger_cert);
    tu_ca_free(ca);
    tu_ca_free(other_ca);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'/*", tu_tmpdir());
    ck_assert_int_eq(system(cmd), 0);
}

/* ---- configs ----------------------------------------------------------------- */

/* The tls group's body starts on line 3; "}; } );" closes it. */
static const char *write_conf(const char *tls_body)
{
    const char *path = tmp_path("wharf.conf");
    FILE *fp = fopen(path, "w");

    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "listeners = ( { name = \"t\"; tcp = \"127.0.0.1:1\"; handler = \"echo\";\n"
                " tls = {\n%s\n }; } );\n", tls_body);
    ck_assert_int_eq(fclose(fp), 0);
    return path;
}

/* Every message of conf_parse and tlsctx_load_all joined by '\n', each
 * without the leading "FILE:" (the temporary path). */
static char *errors_of(const char *tls_body)
{
    static char out[8192];
    const char *path = write_conf(tls_body);
    struct conf_errors *errs = conf_errors_new();
    struct conf *conf = NULL;
    size_t n = 0, plen = strlen(path);
    int rc = conf_parse(path, &conf, errs);

    ck_assert_ptr_nonnull(conf);
    rc |= tlsctx_load_all(conf, errs);
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_null(conf->conf_listeners[0].lst_ssl_ctx);
    out[0] = '\0';
    for (size_t i = 0; i < errs->err_count; i++) {
        const char *t = errs->err_items[i].ce_text;

        ck_assert_msg(strncmp(t, path, plen) == 0 && t[plen] == ':', "%s", t);
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", i ? "\n" : "", t + plen + 1);
    }
    conf_errors_free(errs);
    conf_free(conf);
    return out;
}

/* The loaded config (the caller frees it); its listener's context in *ctx. */
static struct conf *load_ok(const char *tls_body, SSL_CTX **ctx)
{
    const char *path = write_conf(tls_body);
    struct conf_errors *errs = conf_errors_new();
    struct conf *conf = NULL;
    int rc = conf_load(path, &conf, errs);

    if (rc == 0)
        rc = tlsctx_load_all(conf, errs);
    ck_assert_msg(rc == 0, "%s", errs->err_count ? errs->err_items[0].ce_text : "(no message)");
    conf_errors_free(errs);
    *ctx = conf->conf_listeners[0].lst_ssl_ctx;
    ck_assert_ptr_nonnull(*ctx);
    return conf;
}

#define EC_PAIR "certificate = \"ec.pem\"; key = \"ec.key\";"
#define CERTS(list) "certificates = ( " list " );"
#define ENTRY(c, k) "{ certificate = \"" c "\"; key = \"" k "\"; }"
#define T "listeners.[0].tls"

/* ---- invalid configs ------------------------------------------------------- */

struct bad {
    const char *body;
    const char *want;
};

static const struct bad bad_configs[] = {
    /* certificates and keys */
    { "certificate = \"missing.pem\"; key = \"ec.key\";",
      "3: " T ".certificate: cannot read \"missing.pem\": No such file or directory" },
    { CERTS(ENTRY("missing.pem", "ec.key")),
      "3: " T ".certificates.[0].certificate: cannot read \"missing.pem\": No such file or directory" },
    { CERTS(ENTRY("ec.pem", "missing.key")),
      "3: " T ".certificates.[0].key: cannot read \"missing.key\": No such file or directory" },
    { "certificates = (\n" ENTRY("/nonexistent/x.pem", "/nonexistent/x.key") "\n);",
      "4: " T ".certificates.[0].certificate: cannot read \"/nonexistent/x.pem\": No such file or directory\n"
      "4: " T ".certificates.[0].key: cannot read \"/nonexistent/x.key\": No such file or directory" },
    { CERTS(ENTRY(".", "ec.key")),
      "3: " T ".certificates.[0].certificate: cannot read \".\": Is a directory" },
    { CERTS(ENTRY("/dev/zero", "ec.key")),
      "3: " T ".certificates.[0].certificate: cannot read \"/dev/zero\": File too large" },
    { CERTS(ENTRY("garbage.pem", "ec.key")),
      "3: " T ".certificates.[0].certificate: \"garbage.pem\" holds no PEM certificate" },
    { CERTS(ENTRY("ec.pem", "garbage.pem")),
      "3: " T ".certificates.[0].key: \"garbage.pem\" holds no PEM private key" },
    { CERTS(ENTRY("ec.pem", "ec.pem")),
      "3: " T ".certificates.[0].key: \"ec.pem\" holds no PEM private key" },
    { CERTS(ENTRY("ec.key", "ec.key")),
      "3: " T ".certificates.[0].certificate: \"ec.key\" holds no PEM certificate" },
    { CERTS(ENTRY("ec.pem", "encrypted.key")),
      "3: " T ".certificates.[0].key: the key in \"encrypted.key\" is encrypted: "
      "wharfd takes no passphrase, give it unencrypted" },
    { CERTS(ENTRY("ec.pem", "broken.key")),
      "3: " T ".certificates.[0].key: cannot read a private key in \"broken.key\": nested asn1 error" },
    { CERTS(ENTRY("ec.pem", "other.key")),
      "3: " T ".certificates.[0].key: the key does not match the certificate \"ec.pem\"" },
    { CERTS(ENTRY("rsa.pem", "ec.key")),
      "3: " T ".certificates.[0].key: the key does not match the certificate \"rsa.pem\"" },
    { CERTS(ENTRY("expired.pem", "ec.key")),
      "3: " T ".certificates.[0].certificate: \"expired.pem\" expired on 2001-01-01T00:00:00Z" },
    { "certificates = (\n" ENTRY("ec.pem", "ec.key") ",\n" ENTRY("future.pem", "ec.key") "\n);",
      "5: " T ".certificates.[1].certificate: \"future.pem\" is not valid before 2999-01-01T00:00:00Z" },
    { CERTS(ENTRY("weak.pem", "weak.key")),
      "3: " T ".certificates.[0].certificate: \"weak.pem\" cannot be used: ee key too small" },
    /* versions and ciphers */
    { EC_PAIR "\n ciphers = \"FOO\";",
      "4: " T ".ciphers: no cipher in \"FOO\" is known: no cipher match" },
    { EC_PAIR "\n ciphersuites = \"TLS_FOO\";",
      "4: " T ".ciphersuites: no cipher suite in \"TLS_FOO\" is known: no cipher match" },
    /* client certificates */
    { EC_PAIR "\n client_ca = \"missing.pem\"; verify_client = \"require\";",
      "4: " T ".client_ca: cannot read \"missing.pem\": No such file or directory" },
    { EC_PAIR "\n client_ca = \"garbage.pem\";",
      "4: " T ".client_ca: \"garbage.pem\" holds no PEM certificate" },
    /* reported once, by the loader: tlsctx_load_all skips the listener */
    { EC_PAIR "\n verify_client = \"optional\";",
      "2: " T ": verify_client \"optional\" needs client_ca" },
    /* ticket keys */
    { EC_PAIR "\n ticket_key_file = \"short.key\";",
      "4: " T ".ticket_key_file: \"short.key\" holds 79 bytes, a ticket key file holds exactly 80" },
    { EC_PAIR "\n ticket_key_file = \"ec.pem\";",
      NULL /* its size varies: ticket_key_size below */ },
    { EC_PAIR "\n ticket_key_file = [ \"a.key\",\n \"missing.key\" ];",
      "5: " T ".ticket_key_file.[1]: cannot read \"missing.key\": No such file or directory" },
    /* everything at once, in file order */
    { "certificates = (\n" ENTRY("ec.pem", "other.key") ",\n" ENTRY("missing.pem", "rsa.key") "\n);\n"
      " ciphers = \"FOO\";\n ticket_key_file = [ \"a.key\", \"short.key\" ];",
      "4: " T ".certificates.[0].key: the key does not match the certificate \"ec.pem\"\n"
      "5: " T ".certificates.[1].certificate: cannot read \"missing.pem\": No such file or directory\n"
      "7: " T ".ciphers: no cipher in \"FOO\" is known: no cipher match\n"
      "8: " T ".ticket_key_file.[1]: \"short.key\" holds 79 bytes, a ticket key file holds exactly 80" },
};

START_TEST(invalid_config)
{
    const struct bad *b = &bad_configs[_i];
    const char *got;

    if (!b->want)
        return;
    got = errors_of(b->body);
    ck_assert_msg(strcmp(got, b->want) == 0, "config:\n%s\ngot:\n%s\nwant:\n%s", b->body, got,
                  b->want);
}
END_TEST

/* A file of the wrong size: the message gives its size. */
START_TEST(ticket_key_size)
{
    char want[256];
    FILE *fp = fopen(tmp_path("ec.pem"), "rb");
    long size;

    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
    size = ftell(fp);
    fclose(fp);
    snprintf(want, sizeof(want), "4: " T ".ticket_key_file: \"ec.pem\" holds %ld bytes, "
             "a ticket key file holds exactly 80", size);
    ck_assert_str_eq(errors_of(EC_PAIR "\n ticket_key_file = \"ec.pem\";"), want);
}
END_TEST

/* Every listener is tried: both bad ones are reported, the good one gets
 * its context. */
START_TEST(every_listener)
{
    const char *path = tmp_path("wharf.conf");
    struct conf_errors *errs = conf_errors_new();
    struct conf *conf = NULL;
    FILE *fp = fopen(path, "w");

    ck_assert_ptr_nonnull(fp);
#define LST(n, port) " { name = \"" n "\"; tcp = \"127.0.0.1:" port "\"; handler = \"echo\";"
    fputs("listeners = (\n"
          LST("a", "1") " tls = { certificate = \"x.pem\"; key = \"ec.key\"; }; },\n"
          LST("b", "2") " tls = { " EC_PAIR " }; },\n"
          LST("c", "3") " },\n"
          LST("d", "4") " tls = { " EC_PAIR " ciphers = \"X\"; }; }\n"
          ");\n", fp);
#undef LST
    ck_assert_int_eq(fclose(fp), 0);
    ck_assert_int_eq(conf_load(path, &conf, errs), 0);
    ck_assert_int_eq(tlsctx_load_all(conf, errs), -1);
    ck_assert_uint_eq(errs->err_count, 2);
    ck_assert_ptr_nonnull(strstr(errs->err_items[0].ce_text,
                                 ":2: listeners.[0].tls.certificate: cannot read \"x.pem\""));
    ck_assert_ptr_nonnull(strstr(errs->err_items[1].ce_text, ":5: listeners.[3].tls.ciphers: "));
    ck_assert_ptr_null(conf->conf_listeners[0].lst_ssl_ctx);
    ck_assert_ptr_nonnull(conf->conf_listeners[1].lst_ssl_ctx);
    ck_assert_ptr_null(conf->conf_listeners[2].lst_ssl_ctx);
    ck_assert_ptr_null(conf->conf_listeners[3].lst_ssl_ctx);
    conf_errors_free(errs);
    conf_free(conf);
}
END_TEST

/* ---- a valid context ------------------------------------------------------------ */

START_TEST(valid_context)
{
    const uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                          SSL_OP_NO_COMPRESSION;
    STACK_OF(SSL_CIPHER) *ciphers;
    SSL_CTX *ctx;
    struct conf *conf = load_ok(EC_PAIR, &ctx);

    ck_assert_uint_eq(SSL_CTX_get_options(ctx) & opts, opts);
    ck_assert_uint_eq(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET, 0);
    ck_assert_uint_ne(SSL_CTX_get_mode(ctx) & SSL_MODE_RELEASE_BUFFERS, 0);
    ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
    /* TLS 1.2: forward secret AEAD suites only */
    ciphers = SSL_CTX_get_ciphers(ctx);
    ck_assert_int_gt(sk_SSL_CIPHER_num(ciphers), 3);
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(ciphers, i);

        if (strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") == 0)
            continue;
        ck_assert_msg(SSL_CIPHER_is_aead(c), "%s", SSL_CIPHER_get_name(c));
        ck_assert_msg(SSL_CIPHER_get_kx_nid(c) == NID_kx_ecdhe, "%s", SSL_CIPHER_get_name(c));
    }
    conf_free(conf);
}
END_TEST

START_TEST(settings_applied)
{
    SSL_CTX *ctx;
    struct conf *conf = load_ok(EC_PAIR "\n min_version = \"TLSv1.3\"; session_tickets = false;\n"
                                " client_ca = \"ca.pem\"; verify_client = \"require\";", &ctx);

    ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
    ck_assert_uint_ne(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET, 0);
    ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx),
                     SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    /* the CA names go to the client in the CertificateRequest */
    ck_assert_int_eq(sk_X509_NAME_num(SSL_CTX_get_client_CA_list(ctx)), 1);
    ck_assert_int_eq(X509_NAME_cmp(sk_X509_NAME_value(SSL_CTX_get_client_CA_list(ctx), 0),
                                   X509_get_subject_name(tu_ca_x509(ca))), 0);
    conf_free(conf);
}
END_TEST

/* ---- handshakes ----------------------------------------------------------------- */

/* A client and the listener's SSL over a BIO pair, each stepped in turn. */
struct pair {
    SSL *pr_c, *pr_s;
    int pr_cst, pr_sst;             /* 0 in progress, 1 done, -1 failed */
    char pr_cwhy[256], pr_swhy[256];/* OpenSSL's reason for a failure */
};

static void pair_start(struct pair *p, SSL_CTX *server, SSL_CTX *client, const char *sni,
                       SSL_SESSION *sess)
{
    BIO *bs, *bc;

    memset(p, 0, sizeof(*p));
    ck_assert_int_eq(BIO_new_bio_pair(&bs, 0, &bc, 0), 1);
    p->pr_s = SSL_new(server);
    p->pr_c = SSL_new(client);
    ck_assert(p->pr_s && p->pr_c);
    SSL_set_bio(p->pr_s, bs, bs);
    SSL_set_bio(p->pr_c, bc, bc);
    SSL_set_accept_state(p->pr_s);
    SSL_set_connect_state(p->pr_c);
    if (sni)
        ck_assert_int_eq(SSL_set_tlsext_host_name(p->pr_c, sni), 1);
    if (sess)
        ck_assert_int_eq(SSL_set_session(p->pr_c, sess), 1);
}

/* One step of one side; both share this thread's error queue, so each
 * takes its reason out at once. */
static void side_step(SSL *ssl, int *st, char *why, size_t size)
{
    int r, e;

    if (*st != 0)
        return;
    ERR_clear_error();
    if ((r = SSL_do_handshake(ssl)) == 1) {
        *st = 1;
        return;
    }
    e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return;
    *st = -1;
    snprintf(why, size, "%s", ERR_reason_error_string(ERR_peek_last_error())
                              ? ERR_reason_error_string(ERR_peek_last_error()) : "?");
    ERR_clear_error();
}

/* Runs both sides until each is done or failed (a side still waiting when
 * the other failed has read its alert by then, or never will). Then the
 * client reads once, for TLS 1.3's tickets and a late alert. Returns
 * whether both sides finished. */
static bool pair_run(struct pair *p)
{
    unsigned char byte;

    for (int i = 0; i < 50 && (p->pr_cst == 0 || p->pr_sst == 0); i++) {
        side_step(p->pr_c, &p->pr_cst, p->pr_cwhy, sizeof(p->pr_cwhy));
        side_step(p->pr_s, &p->pr_sst, p->pr_swhy, sizeof(p->pr_swhy));
        if (i > 10 && (p->pr_cst < 0 || p->pr_sst < 0))
            break;
    }
    if (p->pr_cst == 1 && SSL_read(p->pr_c, &byte, 1) <= 0 &&
        SSL_get_error(p->pr_c, 0) == SSL_ERROR_SSL) {
        p->pr_cst = -1;
        snprintf(p->pr_cwhy, sizeof(p->pr_cwhy), "%s",
                 ERR_reason_error_string(ERR_peek_last_error()));
    }
    ERR_clear_error();
    return p->pr_cst == 1 && p->pr_sst == 1;
}

/* A clean close first: freeing an SSL that did not send close_notify
 * makes its session unresumable (OpenSSL's ssl_clear_bad_session). */
static void pair_free(struct pair *p)
{
    if (p->pr_cst == 1)
        SSL_shutdown(p->pr_c);
    if (p->pr_sst == 1)
        SSL_shutdown(p->pr_s);
    ERR_clear_error();
    SSL_free(p->pr_c);
    SSL_free(p->pr_s);
}

/* A client context verifying the server against the test CA. */
static SSL_CTX *client_ctx(int max_version, const char *const *alpn)
{
    SSL_CTX *c = tu_client_ctx(ca, alpn);

    ck_assert_ptr_nonnull(c);
    if (max_version)
        ck_assert_int_eq(SSL_CTX_set_max_proto_version(c, max_version), 1);
    return c;
}

static bool handshake(SSL_CTX *server, SSL_CTX *client, const char *sni, struct pair *p)
{
    pair_start(p, server, client, sni, NULL);
    return pair_run(p);
}

/* ---- SNI ------------------------------------------------------------------------ */

struct sni_case {
    const char *sni;
    const struct tu_cert *want;     /* NULL: the default, rsa_cert */
};

static const struct sni_case sni_cases[] = {
    { "rsa.example", &rsa_cert },
    { "ec.example", &ec_cert },
    { "EC.Example", &ec_cert },                 /* names compare case-insensitively */
    { "x.wild.example", &ec_cert },             /* the wildcard: one label */
    { "X-1.WILD.example", &ec_cert },
    { "wild.example", NULL },                   /* not zero labels */
    { "a.b.wild.example", NULL },               /* nor two */
    { "cn.example", &cn_cert },                 /* no SAN: the CN */
    { "ec-cn.example", NULL },                  /* SANs present: the CN does not count */
    { "unknown.example", NULL },
    { NULL, NULL },                             /* no SNI */
};

#define SNI_CONF CERTS(ENTRY("rsa.pem", "rsa.key") ", " ENTRY("ec.pem", "ec.key") ", " \
                       ENTRY("cn.pem", "cn.key"))

/* Each case over TLS 1.2 and 1.3: _i / 2 is the case, _i % 2 the version. */
START_TEST(sni_selects)
{
    const struct sni_case *sc = &sni_cases[_i / 2];
    const struct tu_cert *want = sc->want ? sc->want : &rsa_cert;
    int version = _i % 2 ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX *ctx, *cctx = client_ctx(version, NULL);
    struct conf *conf = load_ok(SNI_CONF, &ctx);
    struct pair p;
    X509 *got;

    ck_assert_msg(handshake(ctx, cctx, sc->sni, &p), "%s: %s / %s", sc->sni, p.pr_cwhy, p.pr_swhy);
    ck_assert_int_eq(SSL_version(p.pr_c), version);
    got = SSL_get1_peer_certificate(p.pr_c);
    ck_assert_msg(X509_cmp(got, want->x509) == 0, "SNI %s", sc->sni ? sc->sni : "(none)");
    X509_free(got);
    ck_assert_int_eq(SSL_get_verify_result(p.pr_c), X509_V_OK);
    /* the chain of the file follows the leaf: here, the CA */
    ck_assert_int_eq(sk_X509_num(SSL_get_peer_cert_chain(p.pr_c)), 2);
    ck_assert_int_eq(X509_cmp(sk_X509_value(SSL_get_peer_cert_chain(p.pr_c), 1),
                              tu_ca_x509(ca)), 0);
    /* the TLS 1.2 suite follows the chosen key */
    if (version == TLS1_2_VERSION)
        ck_assert_int_eq(SSL_CIPHER_get_auth_nid(SSL_get_current_cipher(p.pr_c)),
                         want == &rsa_cert ? NID_auth_rsa : NID_auth_ecdsa);
    if (sc->sni)
        ck_assert_str_eq(SSL_get_servername(p.pr_s, TLSEXT_NAMETYPE_host_name), sc->sni);
    else
        ck_assert_ptr_null(SSL_get_servername(p.pr_s, TLSEXT_NAMETYPE_host_name));
    pair_free(&p);
    SSL_CTX_free(cctx);
    conf_free(conf);
}
END_TEST

/* ---- ALPN ----------------------------------------------------------------------- */

static const char *const alpn_h2_h1[] = { "h2", "http/1.1", NULL };
static const char *const alpn_h1_h2[] = { "http/1.1", "h2", NULL };
static const char *const alpn_h1[] = { "http/1.1", NULL };
static const char *const alpn_other[] = { "spdy/3", "imap", NULL };

static void assert_alpn(const struct pair *p, const char *want)
{
    const unsigned char *got;
    unsigned len;

    SSL_get0_alpn_selected(p->pr_s, &got, &len);
    if (!want) {
        ck_assert_uint_eq(len, 0);
        return;
    }
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_int_eq(memcmp(got, want, len), 0);
    SSL_get0_alpn_selected(p->pr_c, &got, &len);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_int_eq(memcmp(got, want, len), 0);
}

START_TEST(alpn_server_order)
{
    SSL_CTX *ctx, *c1 = client_ctx(0, alpn_h1_h2), *c2 = client_ctx(0, alpn_h1);
    SSL_CTX *c3 = client_ctx(0, NULL);
    struct conf *conf = load_ok(EC_PAIR "\n alpn = [ \"h2\", \"http/1.1\" ];", &ctx);
    struct pair p;

    /* the client prefers http/1.1, the server h2: the server's order wins */
    ck_assert(handshake(ctx, c1, NULL, &p));
    assert_alpn(&p, "h2");
    pair_free(&p);
    ck_assert(handshake(ctx, c2, NULL, &p));
    assert_alpn(&p, "http/1.1");
    pair_free(&p);
    /* a client that offers none is served, with none */
    ck_assert(handshake(ctx, c3, NULL, &p));
    assert_alpn(&p, NULL);
    pair_free(&p);
    SSL_CTX_free(c1);
    SSL_CTX_free(c2);
    SSL_CTX_free(c3);
    conf_free(conf);
}
END_TEST

START_TEST(alpn_no_overlap)
{
    SSL_CTX *ctx, *cctx = client_ctx(_i ? TLS1_3_VERSION : TLS1_2_VERSION, alpn_other);
    struct conf *conf = load_ok(EC_PAIR "\n alpn = [ \"h2\", \"http/1.1\" ];", &ctx);
    struct pair p;

    ck_assert(!handshake(ctx, cctx, NULL, &p));
    ck_assert_int_eq(p.pr_sst, -1);
    ck_assert_int_eq(p.pr_cst, -1);
    ck_assert_str_eq(p.pr_cwhy, "tlsv1 alert no application protocol");
    pair_free(&p);
    SSL_CTX_free(cctx);
    conf_free(conf);
}
END_TEST

/* Without alpn in the config a client's ALPN is ignored, not refused. */
START_TEST(alpn_not_configured)
{
    SSL_CTX *ctx, *cctx = client_ctx(0, alpn_h2_h1);
    struct conf *conf = load_ok(EC_PAIR, &ctx);
    struct pair p;

    ck_assert(handshake(ctx, cctx, NULL, &p));
    assert_alpn(&p, NULL);
    pair_free(&p);
    SSL_CTX_free(cctx);
    conf_free(conf);
}
END_TEST

/* ---- client certificates ----------------------------------------------------- */

/* A client offering `cert` (NULL: none) at TLS 1.2 or 1.3. */
static SSL_CTX *client_with(const struct tu_cert *cert, int version)
{
    SSL_CTX *c = client_ctx(version, NULL);

    if (cert)
        ck_assert_int_eq(tu_ctx_use_cert(c, cert), 0);
    return c;
}

/* Whether the listener (verify_client = mode) accepts a client with cert;
 * the server's verdict counts (a TLS 1.3 client finishes first). */
static bool client_accepted(const char *mode, const struct tu_cert *cert, int version)
{
    char body[256];
    SSL_CTX *ctx, *cctx = client_with(cert, version);
    struct conf *conf;
    struct pair p;
    bool ok;

    snprintf(body, sizeof(body), EC_PAIR "\n client_ca = \"ca.pem\"; verify_client = \"%s\";",
             mode);
    conf = load_ok(body, &ctx);
    handshake(ctx, cctx, "ec.example", &p);
    ok = p.pr_sst == 1;
    if (ok) {
        X509 *peer = SSL_get1_peer_certificate(p.pr_s);

        if (cert && strcmp(mode, "none") != 0) {
            ck_assert_int_eq(X509_cmp(peer, cert->x509), 0);
            ck_assert_int_eq(SSL_get_verify_result(p.pr_s), X509_V_OK);
        } else {
            ck_assert_ptr_null(peer);   /* none: not even asked for */
        }
        X509_free(peer);
    }
    pair_free(&p);
    SSL_CTX_free(cctx);
    conf_free(conf);
    return ok;
}

START_TEST(verify_require)
{
    int v = _i ? TLS1_3_VERSION : TLS1_2_VERSION;

    ck_assert(!client_accepted("require", NULL, v));
    ck_assert(!client_accepted("require", &stranger_cert, v));
    ck_assert(client_accepted("require", &client_cert, v));
}
END_TEST

START_TEST(verify_optional)
{
    int v = _i ? TLS1_3_VERSION : TLS1_2_VERSION;

    ck_assert(client_accepted("optional", NULL, v));
    ck_assert(!client_accepted("optional", &stranger_cert, v));
    ck_assert(client_accepted("optional", &client_cert, v));
}
END_TEST

/* none: a client certificate is neither asked for nor looked at */
START_TEST(verify_none)
{
    ck_assert(client_accepted("none", NULL, 0));
    ck_assert(client_accepted("none", &stranger_cert, 0));
}
END_TEST

/* ---- versions and ciphers --------------------------------------------------- */

START_TEST(min_version_tls13)
{
    SSL_CTX *ctx, *c12 = client_ctx(TLS1_2_VERSION, NULL), *c13 = client_ctx(0, NULL);
    struct conf *conf = load_ok(EC_PAIR "\n min_version = \"TLSv1.3\";", &ctx);
    struct pair p;

    ck_assert(!handshake(ctx, c12, NULL, &p));
    ck_assert_int_eq(p.pr_sst, -1);
    ck_assert_str_eq(p.pr_swhy, "unsupported protocol");
    pair_free(&p);
    ck_assert(handshake(ctx, c13, NULL, &p));
    ck_assert_int_eq(SSL_version(p.pr_s), TLS1_3_VERSION);
    pair_free(&p);
    SSL_CTX_free(c12);
    SSL_CTX_free(c13);
    conf_free(conf);
}
END_TEST

/* The default minimum is TLS 1.2: a TLS 1.1 client is refused. */
START_TEST(default_refuses_tls11)
{
    SSL_CTX *ctx, *cctx = client_ctx(TLS1_1_VERSION, NULL);
    struct conf *conf = load_ok(EC_PAIR, &ctx);
    struct pair p;

    ck_assert_int_eq(SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION), 1);
    ck_assert_int_eq(SSL_CTX_set_cipher_list(cctx, "DEFAULT:@SECLEVEL=0"), 1);
    ck_assert(!handshake(ctx, cctx, NULL, &p));
    ck_assert_int_eq(p.pr_sst, -1);
    ck_assert_str_eq(p.pr_swhy, "unsupported protocol");
    pair_free(&p);
    SSL_CTX_free(cctx);
    conf_free(conf);
}
END_TEST

/* A TLS 1.2 client limited to `ciphers` against the listener's body. */
static bool tls12_with(const char *body, const char *ciphers, const char *want)
{
    SSL_CTX *ctx, *cctx = client_ctx(TLS1_2_VERSION, NULL);
    struct conf *conf = load_ok(body, &ctx);
    struct pair p;
    bool ok;

    ck_assert_int_eq(SSL_CTX_set_cipher_list(cctx, ciphers), 1);
    ok = handshake(ctx, cctx, NULL, &p);
    if (ok && want)
        ck_assert_str_eq(SSL_CIPHER_get_name(SSL_get_current_cipher(p.pr_s)), want);
    if (!ok)
        ck_assert_str_eq(p.pr_swhy, "no shared cipher");
    pair_free(&p);
    SSL_CTX_free(cctx);
    conf_free(conf);
    return ok;
}

START_TEST(default_ciphers_aead_only)
{
    ck_assert(!tls12_with(EC_PAIR, "AES128-SHA", NULL));
    ck_assert(!tls12_with(EC_PAIR, "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384", NULL));
    ck_assert(!tls12_with(EC_PAIR, "AES128-GCM-SHA256", NULL));   /* no forward secrecy */
    ck_assert(tls12_with(EC_PAIR, "ECDHE-ECDSA-CHACHA20-POLY1305",
                         "ECDHE-ECDSA-CHACHA20-POLY1305"));
    ck_assert(tls12_with(CERTS(ENTRY("rsa.pem", "rsa.key")), "ECDHE-RSA-AES256-GCM-SHA384",
                         "ECDHE-RSA-AES256-GCM-SHA384"));
}
END_TEST

/* ciphers is OpenSSL's syntax and replaces the default list; the server's
 * order wins. */
START_TEST(ciphers_configured)
{
    ck_assert(tls12_with(EC_PAIR "\n ciphers = \"ECDHE-ECDSA-AES128-SHA\";",
                         "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA"));
    ck_assert(tls12_with(EC_PAIR "\n ciphers = \"ECDHE-ECDSA-AES256-GCM-SHA384:"
                         "ECDHE-ECDSA-AES128-GCM-SHA256\";",
                         "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
                         "ECDHE-ECDSA-AES256-GCM-SHA384"));
}
END_TEST

/* A TLS 1.3 handshake of client against ctx: the suite the server chose. */
static void assert_tls13_suite(SSL_CTX *ctx, SSL_CTX *client, const char *want)
{
    struct pair p;

    ck_assert(handshake(ctx, client, NULL, &p));
    ck_assert_int_eq(SSL_version(p.pr_s), TLS1_3_VERSION);
    ck_assert_str_eq(SSL_CIPHER_get_name(SSL_get_current_cipher(p.pr_s)), want);
    pair_free(&p);
}

START_TEST(ciphersuites_configured)
{
    SSL_CTX *ctx, *cctx = client_ctx(0, NULL);
    struct conf *conf = load_ok(EC_PAIR "\n ciphersuites = \"TLS_CHACHA20_POLY1305_SHA256\";",
                                &ctx);

    assert_tls13_suite(ctx, cctx, "TLS_CHACHA20_POLY1305_SHA256");
    SSL_CTX_free(cctx);
    conf_free(conf);
}
END_TEST

/* Without ciphersuites, a client that prefers AES-256 (OpenSSL's own
 * order) gets TLS_AES_128_GCM_SHA256: the server's order, Mozilla's. */
START_TEST(ciphersuites_default)
{
    SSL_CTX *ctx, *cctx = client_ctx(0, NULL);
    struct conf *conf = load_ok(EC_PAIR, &ctx);

    ck_assert_int_eq(SSL_CTX_set_ciphersuites(cctx, "TLS_AES_256_GCM_SHA384:"
                                              "TLS_CHACHA20_POLY1305_SHA256:"
                                              "TLS_AES_128_GCM_SHA256"), 1);
    assert_tls13_suite(ctx, cctx, "TLS_AES_128_GCM_SHA256");
    /* a client without it still gets one of the others */
    ck_assert_int_eq(SSL_CTX_set_ciphersuites(cctx, "TLS_CHACHA20_POLY1305_SHA256"), 1);
    assert_tls13_suite(ctx, cctx, "TLS_CHACHA20_POLY1305_SHA256");
    SSL_CTX_free(cctx);
    conf_free(conf);
}
END_TEST

/* ---- resumption ------------------------------------------------------------------- */

/* A full handshake against server; the client's session (with its ticket)
 * for a later resume. */
static SSL_SESSION *first_session(SSL_CTX *server, SSL_CTX *client, const char *sni)
{
    SSL_SESSION *s;
    struct pair p;

    pair_start(&p, server, client, sni, NULL);
    ck_assert_msg(pair_run(&p), "%s / %s", p.pr_cwhy, p.pr_swhy);
    ck_assert(!SSL_session_reused(p.pr_s));
    s = SSL_get1_session(p.pr_c);
    ck_assert_ptr_nonnull(s);
    pair_free(&p);
    return s;
}

/* Whether server resumes sess; *next (if given) gets the client's new
 * session, with the ticket the server issued then. */
static bool resumes(SSL_CTX *server, SSL_CTX *client, const char *sni, SSL_SESSION *sess,
                    SSL_SESSION **next)
{
    struct pair p;
    bool reused;

    pair_start(&p, server, client, sni, sess);
    ck_assert_msg(pair_run(&p), "%s / %s", p.pr_cwhy, p.pr_swhy);
    reused = SSL_session_reused(p.pr_s);
    ck_assert_int_eq(SSL_session_reused(p.pr_c), reused);
    if (reused && sni)      /* the name outlives the resumption (TLS 1.2 keeps it in the session) */
        ck_assert_str_eq(SSL_get_servername(p.pr_s, TLSEXT_NAMETYPE_host_name), sni);
    if (next)
        *next = SSL_get1_session(p.pr_c);
    pair_free(&p);
    return reused;
}

static int loop_version(int i)
{
    return i ? TLS1_3_VERSION : TLS1_2_VERSION;
}

START_TEST(tickets_resume)
{
    SSL_CTX *ctx, *cctx = client_ctx(loop_version(_i), NULL);
    struct conf *conf = load_ok(EC_PAIR, &ctx);
    SSL_SESSION *s = first_session(ctx, cctx, "ec.example");

    ck_assert(SSL_SESSION_has_ticket(s));
    ck_assert(resumes(ctx, cctx, "ec.example", s, NULL));
    SSL_SESSION_free(s);
    SSL_CTX_free(cctx);
    conf_free(conf);
}
END_TEST

/* Client certificates and resumption: the session id context lets it. */
START_TEST(tickets_resume_client_cert)
{
    SSL_CTX *ctx, *cctx = client_with(&client_cert, loop_version(_i));
    struct conf *conf = load_ok(EC_PAIR "\n client_ca = \"ca.pem\"; verify_client = \"require\";",
                                &ctx);
    SSL_SESSION *s = first_session(ctx, cctx, NULL);

    ck_assert(resumes(ctx, cctx, NULL, s, NULL));
    SSL_SESSION_free(s);
    SSL_CTX_free(cctx);
    conf_free(conf);
}
END_TEST

START_TEST(tickets_off)
{
    SSL_CTX *ctx, *cctx = client_ctx(loop_version(_i), NULL);
    struct conf *conf = load_ok(EC_PAIR "\n session_tickets = false;", &ctx);
    SSL_SESSION *s = first_session(ctx, cctx, NULL);

    ck_assert(!SSL_SESSION_has_ticket(s));
    ck_assert(!resumes(ctx, cctx, NULL, s, NULL));
    SSL_SESSION_free(s);
    SSL_CTX_free(cctx);
    conf_free(conf);
}
END_TEST

/* The name of the key a ticket was made with: its first 16 bytes. */
static void assert_ticket_key(const SSL_SESSION *s, char tag)
{
    const unsigned char *t;
    size_t len;
    unsigned char want[16];

    memset(want, tag, sizeof(want));
    SSL_SESSION_get0_ticket(s, &t, &len);
    ck_assert_uint_gt(len, 16);
    ck_assert_int_eq(memcmp(t, want, 16), 0);
}

/* Rotation: contexts loaded separately (two hosts, or two generations)
 * share tickets through the files: A's ticket resumes under [B, A] and is
 * renewed under B, and not under [B] alone. */
START_TEST(ticket_key_rotation)
{
    SSL_CTX *a, *ba, *b, *cctx = client_ctx(loop_version(_i), NULL);
    struct conf *ca_ = load_ok(EC_PAIR "\n ticket_key_file = \"a.key\";", &a);
    struct conf *cba = load_ok(EC_PAIR "\n ticket_key_file = [ \"b.key\", \"a.key\" ];", &ba);
    struct conf *cb = load_ok(EC_PAIR "\n ticket_key_file = [ \"b.key\" ];", &b);
    SSL_SESSION *s = first_session(a, cctx, NULL), *renewed = NULL;

    assert_ticket_key(s, 'A');
    ck_assert(resumes(a, cctx, NULL, s, NULL));
    ck_assert(resumes(ba, cctx, NULL, s, &renewed));
    assert_ticket_key(renewed, 'B');
    ck_assert(resumes(b, cctx, NULL, renewed, NULL));
    ck_assert(!resumes(b, cctx, NULL, s, NULL));
    SSL_SESSION_free(s);
    SSL_SESSION_free(renewed);
    SSL_CTX_free(cctx);
    conf_free(ca_);
    conf_free(cba);
    conf_free(cb);
}
END_TEST

/* Without a key file each context has its own keys: a new generation does
 * not resume the old one's tickets. */
START_TEST(ticket_keys_per_context)
{
    SSL_CTX *c1, *c2, *cctx = client_ctx(0, NULL);
    struct conf *conf1 = load_ok(EC_PAIR, &c1), *conf2 = load_ok(EC_PAIR, &c2);
    SSL_SESSION *s = first_session(c1, cctx, NULL);

    ck_assert(!resumes(c2, cctx, NULL, s, NULL));
    SSL_SESSION_free(s);
    SSL_CTX_free(cctx);
    conf_free(conf1);
    conf_free(conf2);
}
END_TEST

/* ---- the suite ---------------------------------------------------------------------- */

static Suite *suite(void)
{
    Suite *s = suite_create("check_tlsctx");
    TCase *tc = tcase_create("invalid");

    tcase_add_unchecked_fixture(tc, fixtures_setup, fixtures_teardown);
    tcase_add_loop_test(tc, invalid_config, 0, (int)(sizeof(bad_configs) / sizeof(bad_configs[0])));
    tcase_add_test(tc, ticket_key_size);
    tcase_add_test(tc, every_listener);
    suite_add_tcase(s, tc);

    tc = tcase_create("context");
    tcase_add_unchecked_fixture(tc, fixtures_setup, fixtures_teardown);
    tcase_add_test(tc, valid_context);
    tcase_add_test(tc, settings_applied);
    suite_add_tcase(s, tc);

    tc = tcase_create("handshakes");
    tcase_add_unchecked_fixture(tc, fixtures_setup, fixtures_teardown);
    tcase_add_loop_test(tc, sni_selects, 0, (int)(2 * sizeof(sni_cases) / sizeof(sni_cases[0])));
    tcase_add_test(tc, alpn_server_order);
    tcase_add_loop_test(tc, alpn_no_overlap, 0, 2);
    tcase_add_test(tc, alpn_not_configured);
    tcase_add_loop_test(tc, verify_require, 0, 2);
    tcase_add_loop_test(tc, verify_optional, 0, 2);
    tcase_add_test(tc, verify_none);
    tcase_add_test(tc, min_version_tls13);
    tcase_add_test(tc, default_refuses_tls11);
    tcase_add_test(tc, default_ciphers_aead_only);
    tcase_add_test(tc, ciphers_configured);
    tcase_add_test(tc, ciphersuites_configured);
    tcase_add_test(tc, ciphersuites_default);
    tcase_add_loop_test(tc, tickets_resume, 0, 2);
    tcase_add_loop_test(tc, tickets_resume_client_cert, 0, 2);
    tcase_add_loop_test(tc, tickets_off, 0, 2);
    tcase_add_loop_test(tc, ticket_key_rotation, 0, 2);
    tcase_add_test(tc, ticket_keys_per_context);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int rc = tu_run_suite(suite());

    rmdir(tu_tmpdir());
    return rc;
}
