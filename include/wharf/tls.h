/*
 * wharf/tls.h: TLS over any byte stream (AnyIO's TLSStream), client and
 * server side, with OpenSSL doing the protocol over memory BIOs: the
 * encrypted bytes go through the inner stream's own receive and send, so
 * a TLS stream wraps a socket, a memory connection in a test, or a stream
 * that already carried a plaintext dialogue (STARTTLS).
 *
 *     struct wharf_stream *tls;
 *     rc = wharf_tls_wrap(sock, ctx, WHARF_TLS_SERVER | WHARF_TLS_STANDARD, NULL, &tls);
 *     n = wharf_receive(tls, buf, sizeof(buf));      // plaintext
 *     wharf_free(tls);                                // close_notify, then the socket
 *
 * Ragged EOF (the peer closes its transport without a close_notify alert):
 * with WHARF_TLS_STANDARD (AnyIO's standard_compatible=True) a receive
 * then fails with WHARF_EBROKEN, since the data may have been truncated;
 * without it, the receive returns WHARF_EOF like a clean end. After the
 * peer's close_notify both modes give WHARF_EOF, repeatably.
 *
 * Closing (wharf_close, wharf_free) sends close_notify when the handshake
 * was done and the stream is not broken; with WHARF_TLS_STANDARD it then
 * waits for the peer's close_notify, shielded from cancellation and for
 * WHARF_TLS_CLOSE_TIMEOUT seconds at most; then it closes the inner
 * stream. Closed by a task that is cancelled (a timeout, a drain
 * deadline), it still sends close_notify (within half a second) but does
 * not wait for the peer's. wharf_send_eof returns WHARF_ENOTSUP (TLS has
 * no half-close).
 *
 * The SSL_CTX is the caller's: the stream takes a reference to it
 * (SSL_CTX_up_ref), so one context serves many streams and may be freed
 * by its owner while they run. Client-side verification is the context's
 * (SSL_CTX_set_verify and the trust store); `hostname` adds SNI and, when
 * the context verifies, the host name check.
 */
#ifndef WHARF_TLS_H
#define WHARF_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>
#include <wharf/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Typed attributes of a TLS stream (wharf_getattr). Strings are
 * NUL-terminated; -ENOENT when there is no value (no ALPN agreed, no SNI,
 * no peer certificate) or before the handshake. */
enum wharf_tls_attr {
    WHARF_ATTR_TLS_ALPN = WHARF_ATTR_TLS_FIRST, /* char[]: the agreed protocol */
    WHARF_ATTR_TLS_CIPHER,          /* char[]: OpenSSL's cipher name */
    WHARF_ATTR_TLS_VERSION,         /* char[]: "TLSv1.2", "TLSv1.3" */
    WHARF_ATTR_TLS_SERVER_SIDE,     /* int: 1 server, 0 client */
    WHARF_ATTR_TLS_SERVER_NAME,     /* char[]: SNI: what the client asked for / sent */
    WHARF_ATTR_TLS_PEER_CERT,       /* bytes: the peer's certificate, DER */
    WHARF_ATTR_TLS_PEER_SUBJECT,    /* char[]: its subject, one line (RFC 2253) */
    WHARF_ATTR_TLS_CHANNEL_BINDING, /* bytes: tls-unique (TLS 1.2) or tls-exporter (1.3, 32 bytes) */
    WHARF_ATTR_TLS_RESUMED,         /* int: 1 when the session was resumed */
    WHARF_ATTR_TLS_SSL,             /* SSL *: OpenSSL's object, for what the rest does not cover */
    WHARF_ATTR_TLS_STARTED          /* int: 1 once the handshake is done */
};

#define WHARF_TLS_SERVER   0x1u     /* server side (default: client) */
#define WHARF_TLS_STANDARD 0x2u     /* standard_compatible: ragged EOF is WHARF_EBROKEN,
                                     * close waits for the peer's close_notify */
#define WHARF_TLS_DEFERRED 0x4u     /* plaintext until wharf_start_tls (STARTTLS) */

/* How long a standard-mode close waits for the peer's close_notify. */
#define WHARF_TLS_CLOSE_TIMEOUT 5.0

/* Makes a TLS stream over inner (owned from now on: freed on failure too)
 * without any I/O. The handshake runs at wharf_tls_handshake, or on the
 * first receive or send; with WHARF_TLS_DEFERRED the stream passes
 * plaintext through until wharf_start_tls. Returns 0 with *out, or
 * WHARF_EINVAL (NULL inner or ctx, unknown flags), -ENOMEM. */
int wharf_tls_new(struct wharf_stream *inner, SSL_CTX *ctx, unsigned flags,
                  const char *hostname, struct wharf_stream **out);

/* Runs the handshake (at once if done already). Returns 0; WHARF_EBROKEN
 * when it failed (a protocol error, a certificate that does not verify, no
 * common ALPN protocol; wharf_tls_error says why), or the peer went away
 * (its transport's EOF or reset); WHARF_ECANCELLED (the stream is then
 * unusable: only close it); WHARF_ECLOSED; the inner stream's errors. A
 * deferred stream not started yet: WHARF_EINVAL. */
int wharf_tls_handshake(struct wharf_stream *s);

/* wharf_tls_new + wharf_tls_handshake: on failure the stream (and inner) is
 * freed and *out is NULL. Same returns. */
int wharf_tls_wrap(struct wharf_stream *inner, SSL_CTX *ctx, unsigned flags,
                   const char *hostname, struct wharf_stream **out);

/* STARTTLS: starts TLS on s, a stream that carried plaintext so far, and
 * runs the handshake. s is a deferred TLS stream, or a buffered stream (the
 * one wharfd hands a handler) over one: the bytes the buffered layer
 * already holds beyond what the handler consumed are the beginning of the
 * peer's handshake and go to TLS first. Afterwards s carries plaintext
 * over TLS. Returns as wharf_tls_handshake; WHARF_ETIMEDOUT when the
 * stream's owner bounds the handshake (wharfd: the listener's
 * handshake_timeout; a failed or timed-out handshake counts in its
 * handshake_failures, not in errors); WHARF_EINVAL when there is no TLS
 * stream under s (a listener without tls) or TLS was started already (a
 * listener with autostart = true, or a second call). */
int wharf_start_tls(struct wharf_stream *s);

/* AnyIO's unwrap: sends close_notify, waits for the peer's, and gives back
 * the inner stream (the caller's now; s is freed) and the bytes that came
 * after the peer's close_notify (*leftover: malloc'd, the caller frees it;
 * NULL when *len is 0). Returns 0; or WHARF_EBROKEN, WHARF_ECANCELLED, the
 * inner stream's errors, and s is left as it is, to be freed. */
int wharf_tls_unwrap(struct wharf_stream *s, struct wharf_stream **inner,
                     void **leftover, size_t *len);

/* Why the last handshake or I/O of s failed, in OpenSSL's words with the
 * alert or verification result where there is one ("" if nothing failed);
 * valid until the next call on s. NULL s or not a TLS stream: "". */
const char *wharf_tls_error(struct wharf_stream *s);

/* Whether s (or a stream it wraps) is a TLS stream and its handshake is
 * done. */
int wharf_tls_started(struct wharf_stream *s);

#ifdef __cplusplus
}
#endif
#endif /* WHARF_TLS_H */
