/*
 * forward.h: the forward plugin's table of contents: its instance (the
 * options of one listener, read-only once init returns, and the counters
 * every worker adds to) and what its files give each other.
 *
 * Internal names are hidden: wharfd exports its own symbols, and a
 * plugin's global of the same name would bind to the daemon's.
 */
#ifndef WHARF_FORWARD_H
#define WHARF_FORWARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <openssl/ssl.h>
#include <wharf/plugin.h>

#define FWD_HIDDEN __attribute__((visibility("hidden")))

#define FWD_BUF (64 * 1024)             /* per direction while data streams */
#define FWD_SMALL 1024                  /* per direction, always (forward.c) */
#define FWD_DATAGRAM_MAX 65535          /* the largest UDP payload */

enum fwd_proxy { FWD_PROXY_NONE, FWD_PROXY_V1, FWD_PROXY_V2 };

struct fwd {
    /* the target: host and port, or a UNIX path */
    char *fwd_host;                     /* NULL for a UNIX target */
    unsigned fwd_port;
    char *fwd_path;                     /* absolute; NULL for HOST:PORT */
    double fwd_connect_timeout;
    int fwd_send_proxy;                 /* enum fwd_proxy */

    /* TLS to the target: NULL ctx for plain */
    SSL_CTX *fwd_ssl_ctx;
    char *fwd_server_name;              /* SNI and the name verified, or NULL */
    pthread_mutex_t fwd_session_lock;
    SSL_SESSION *fwd_session;           /* the latest, offered for resumption */

    /* datagram listeners */
    double fwd_udp_idle_timeout;
    unsigned fwd_udp_max_assoc;

    /* the stats hook's figures (relaxed atomics: every worker adds) */
    atomic_ullong fwd_bytes_up;         /* client to target */
    atomic_ullong fwd_bytes_down;       /* target to client */
    atomic_ullong fwd_connections;      /* established to the target */
    atomic_ullong fwd_connect_failures;
    atomic_ullong fwd_assoc_opened;     /* UDP associations */
    atomic_ullong fwd_assoc_evicted;    /* closed to make room for a new one */
    atomic_ullong fwd_assoc_active;
    atomic_ullong fwd_parked;           /* connections whose handler is parked now */
};

static inline void fwd_count(atomic_ullong *c, unsigned long long n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* options.c: reading the options into an instance. */

/* Fills f (zeroed by the caller) from the handler's options, building the
 * client SSL_CTX when tls is given. 0, or -1 with err filled in (an empty
 * message: out of memory); f then holds what to release with
 * fwd_options_free. */
FWD_HIDDEN int fwd_options(struct fwd *f, json_t *options, const struct wharf_plugin_env *env,
                           struct wharf_plugin_error *err);
FWD_HIDDEN void fwd_options_free(struct fwd *f);

/* proxy.c: the PROXY protocol header sent first to the target. */

#define FWD_PROXY_MAX 1536              /* room for any header we make */

/* Builds the header of version `version` (FWD_PROXY_V1 or _V2) for the
 * connection `client` (its addresses, and for v2 its TLS facts as TLVs)
 * into buf (FWD_PROXY_MAX bytes). Returns its length. Never fails: an
 * unknown address gives "PROXY UNKNOWN" (v1) or the LOCAL command (v2). */
FWD_HIDDEN size_t fwd_proxy_header(int version, struct wharf_stream *client,
                                   unsigned char *buf);

/* datagram.c: UDP listeners. */

/* The datagram handler: per-sender associations to the target. */
FWD_HIDDEN int fwd_serve_datagrams(void *instance, struct wharf_stream *socket);

#endif /* WHARF_FORWARD_H */
