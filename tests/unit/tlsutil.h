/*
 * tlsutil.h: certificates made at test time for the TLS suites, with the
 * OpenSSL 3 API (no openssl command, no files in the tree): a CA, leaves
 * signed by it (or self-signed), PEM files for configs, and ready
 * SSL_CTXs for stream tests.
 *
 * Keys: RSA 2048 takes 50-200 ms to generate, so leaves share one key pair
 * per kind for the whole process (tu_cert_new up-refs it); a CA always
 * gets a key of its own, so that two CAs never verify each other's
 * certificates. A test that needs a leaf with a key of its own (a key that
 * does not match a certificate) makes one with tu_key_new and puts it in a
 * struct tu_cert itself. Calling tu_keys_warm() in main() before the suite
 * runs makes the shared keys once for every forked test.
 */
#ifndef WHARF_TLSUTIL_H
#define WHARF_TLSUTIL_H

#include <openssl/ssl.h>
#include <openssl/x509.h>

enum tu_key { TU_KEY_EC, TU_KEY_RSA };          /* EC: P-256; RSA: 2048 */

/* A fresh key pair (the caller frees it with EVP_PKEY_free), or NULL. */
EVP_PKEY *tu_key_new(enum tu_key kind);

/* Makes the shared leaf keys of both kinds now (aborts if it cannot). */
void tu_keys_warm(void);

/* A key and its self-signed CA certificate (CA:TRUE, keyCertSign), valid
 * from an hour ago for ten years. NULL on failure. */
struct tu_ca;
struct tu_ca *tu_ca_new(const char *cn, enum tu_key kind);
void tu_ca_free(struct tu_ca *ca);
X509 *tu_ca_x509(const struct tu_ca *ca);       /* borrowed */

struct tu_cert { X509 *x509; EVP_PKEY *key; };

/* A leaf signed by ca (NULL: self-signed) with the shared key of kind;
 * dns: NULL-terminated DNS SANs (NULL: no SAN, the CN only); valid from
 * now+not_before to now+not_after seconds; client: the clientAuth EKU
 * instead of serverAuth. 0, or -1 with *out zeroed. */
int tu_cert_new(struct tu_ca *ca, const char *cn, const char *const *dns,
                enum tu_key kind, long not_before, long not_after, int client,
                struct tu_cert *out);
/* Frees both members (either may be NULL) and zeroes them. */
void tu_cert_free(struct tu_cert *c);

/* PEM files: the cert (then the CA's cert when ca is given: a chain), the
 * key (unencrypted PKCS#8), a CA bundle. 0 or -1. */
int tu_write_cert(const char *path, const struct tu_cert *c, const struct tu_ca *ca);
int tu_write_key(const char *path, const struct tu_cert *c);
int tu_write_ca(const char *path, const struct tu_ca *ca);

/* Ready contexts for stream tests, TLS 1.2 at least. The server presents c
 * and chooses ALPN in the order of alpn (NULL-terminated, copied; NULL: no
 * ALPN), failing the handshake (no_application_protocol) when a client
 * offers protocols and none is in alpn; it asks for no client certificate.
 * The client verifies the server against ca (NULL: SSL_VERIFY_NONE;
 * no host name check unless the stream is given a hostname) and offers
 * alpn. NULL on failure; the caller frees them with SSL_CTX_free. */
SSL_CTX *tu_server_ctx(const struct tu_cert *c, const char *const *alpn);
SSL_CTX *tu_client_ctx(const struct tu_ca *ca, const char *const *alpn);

/* Makes ctx present c (a client certificate, say). 0 or -1. */
int tu_ctx_use_cert(SSL_CTX *ctx, const struct tu_cert *c);

#endif /* WHARF_TLSUTIL_H */
