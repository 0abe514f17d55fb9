/*
 * echo: sends back what it receives (SPEC.md section 5).
 *
 * Stream listeners (TCP, UNIX, TLS): every byte the peer sends comes back,
 * in order, until the peer's end of stream; then the handler returns 0 and
 * wharfd closes the connection. A peer that half-closes (sends EOF and
 * keeps reading) still gets the replies to everything it sent before.
 *
 * UDP listeners: each datagram goes back to its sender as it is, an empty
 * datagram included, until wharfd cancels the handler.
 *
 * Options: none; any option is a config error.
 *
 * The smallest complete plugin: a descriptor, an init that checks the
 * options, and straight-line handlers. It keeps no state at all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <wharf/plugin.h>

#define ECHO_CHUNK 8192            /* on the task's stack */
#define ECHO_DATAGRAM_MAX 65535    /* the largest UDP payload */

/* echo has nothing to configure, so every listener shares one instance:
 * any non-NULL pointer will do, and this one is never written. */
static const char echo_instance;

static void *echo_init(json_t *options, const struct wharf_plugin_env *env,
                       struct wharf_plugin_error *err)
{
    const char *key;
    json_t *value;

    (void)env;
    json_object_foreach(options, key, value) {
        snprintf(err->key, sizeof(err->key), "%s", key);
        snprintf(err->message, sizeof(err->message),
                 "unknown option \"%s\" (echo takes none)", key);
        return NULL;
    }
    return (void *)&echo_instance;
}

static int echo_serve(void *instance, struct wharf_stream *stream)
{
    char buf[ECHO_CHUNK];
    ssize_t n;
    int rc;

    (void)instance;
    while ((n = wharf_receive(stream, buf, sizeof(buf))) > 0) {
        if ((rc = wharf_send(stream, buf, (size_t)n)) < 0)
            return rc;
    }
    return n == WHARF_EOF ? 0 : (int)n;
}

/* Loops until cancelled (reload, shutdown), which it returns. A reply that
 * cannot be sent (the sender's port is unreachable, say) is dropped: one
 * peer must not stop the listener. */
static int echo_serve_datagrams(void *instance, struct wharf_stream *socket)
{
    struct sockaddr_storage from;
    socklen_t fromlen;
    ssize_t n;
    int rc = 0;
    char *buf = malloc(ECHO_DATAGRAM_MAX);

    (void)instance;
    if (!buf)
        return -ENOMEM;
    for (;;) {
        fromlen = sizeof(from);
        n = wharf_receive_from(socket, buf, ECHO_DATAGRAM_MAX,
                               (struct sockaddr *)&from, &fromlen);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        rc = wharf_send_to(socket, buf, (size_t)n, (struct sockaddr *)&from, fromlen);
        if (rc == WHARF_ECANCELLED || rc == WHARF_ECLOSED)
            break;
    }
    free(buf);
    return rc;
}

const struct wharf_plugin wharf_plugin = {
    WHARF_PLUGIN_HEAD("echo"),
    .init = echo_init,
    .handle_stream = echo_serve,
    .handle_datagrams = echo_serve_datagrams,
};
