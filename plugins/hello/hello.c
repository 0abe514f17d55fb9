/*
 * hello: greets by name (SPEC.md section 5).
 *
 * Stream listeners (TCP, UNIX, TLS): receives one line of up to max_line
 * bytes before its '\n', replies "Hello, NAME\n" where NAME is the line
 * without the '\n' and without one trailing '\r', and returns 0 (wharfd
 * then closes; bytes after the line are ignored). No '\n' within max_line
 * bytes: returns WHARF_ENODELIM without a reply. End of stream before the
 * '\n': returns WHARF_EINCOMPLETE without a reply. Either counts an error.
 *
 * UDP listeners: replies "Hello, " followed by the datagram's bytes as they
 * are (no newline added, none removed), until wharfd cancels the handler.
 *
 * Options: max_line, an integer from 1 (default 1024) up to 2^30, a bound
 * that only keeps the buffers' sizes sane. Any other option is a config
 * error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wharf/plugin.h>

#define HELLO_DEFAULT_MAX_LINE 1024
#define HELLO_MAX_LINE_LIMIT (1 << 30)
#define HELLO_DATAGRAM_MAX 65535

static const char greeting[] = "Hello, ";
#define GREETING_LEN (sizeof(greeting) - 1)

/* One per listener generation; read-only once init returns, so the workers
 * share it without locks. */
struct hello {
    size_t max_line;
};

static void *hello_init(json_t *options, const struct wharf_plugin_env *env,
                        struct wharf_plugin_error *err)
{
    json_int_t max_line = HELLO_DEFAULT_MAX_LINE;
    struct hello *h;
    const char *key;
    json_t *value;

    (void)env;
    json_object_foreach(options, key, value) {
        snprintf(err->key, sizeof(err->key), "%s", key);
        if (strcmp(key, "max_line") != 0) {
            snprintf(err->message, sizeof(err->message),
                     "unknown option \"%s\" (hello takes max_line)", key);
            return NULL;
        }
        if (!json_is_integer(value) || json_integer_value(value) < 1 ||
            json_integer_value(value) > HELLO_MAX_LINE_LIMIT) {
            snprintf(err->message, sizeof(err->message),
                     "max_line must be an integer from 1 to %d", HELLO_MAX_LINE_LIMIT);
            return NULL;
        }
        max_line = json_integer_value(value);
    }
    if (!(h = malloc(sizeof(*h)))) {
        err->key[0] = err->message[0] = '\0';   /* out of memory */
        return NULL;
    }
    h->max_line = (size_t)max_line;
    return h;
}

/* The reply is built in place: the line is received right behind the
 * greeting, and its '\n' (or "\r\n") is put back as the reply's '\n'.
 * receive_until may take max_line + 1 bytes, so that a line of exactly
 * max_line bytes is served even when its '\n' arrives in a later chunk;
 * a longer one is refused here. */
static int hello_serve(void *instance, struct wharf_stream *stream)
{
    const struct hello *h = instance;
    char *reply = malloc(GREETING_LEN + h->max_line + 1);
    char *name = reply + GREETING_LEN;
    ssize_t n;
    int rc;

    if (!reply)
        return -ENOMEM;
    memcpy(reply, greeting, GREETING_LEN);
    n = wharf_receive_until(stream, "\n", 1, name, h->max_line + 1);
    if (n > (ssize_t)h->max_line)
        n = WHARF_ENODELIM;
    if (n < 0) {
        free(reply);
        return (int)n;
    }
    if (n > 0 && name[n - 1] == '\r')
        n--;
    name[n] = '\n';
    rc = wharf_send(stream, reply, GREETING_LEN + (size_t)n + 1);
    free(reply);
    return rc;
}

/* Loops until cancelled (reload, shutdown), which it returns. A reply that
 * cannot be sent (too large, an unreachable sender) is dropped: one peer
 * must not stop the listener. */
static int hello_serve_datagrams(void *instance, struct wharf_stream *socket)
{
    struct sockaddr_storage from;
    socklen_t fromlen;
    ssize_t n;
    int rc = 0;
    char *reply = malloc(GREETING_LEN + HELLO_DATAGRAM_MAX);

    (void)instance;
    if (!reply)
        return -ENOMEM;
    memcpy(reply, greeting, GREETING_LEN);
    for (;;) {
        fromlen = sizeof(from);
        n = wharf_receive_from(socket, reply + GREETING_LEN, HELLO_DATAGRAM_MAX,
                               (struct sockaddr *)&from, &fromlen);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        rc = wharf_send_to(socket, reply, GREETING_LEN + (size_t)n,
                           (struct sockaddr *)&from, fromlen);
        if (rc == WHARF_ECANCELLED || rc == WHARF_ECLOSED)
            break;
    }
    free(reply);
    return rc;
}

static void hello_fini(void *instance)
{
    free(instance);
}

const struct wharf_plugin wharf_plugin = {
    WHARF_PLUGIN_HEAD("hello"),
    .init = hello_init,
    .handle_stream = hello_serve,
    .handle_datagrams = hello_serve_datagrams,
    .fini = hello_fini,
};
