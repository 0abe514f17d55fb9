/*
 * starttls: a line protocol that upgrades to TLS in the middle (SPEC.md
 * section 5), for listeners with tls.autostart = false.
 *
 * Each line of up to 1024 bytes before its '\n' (a trailing '\r' is
 * dropped) gets one reply: "PLAIN LINE\n" before TLS, "TLS LINE\n" after.
 * "STARTTLS" gets no reply: the TLS handshake starts at once, and the bytes
 * the client sent right behind the line (the start of its handshake) go to
 * TLS. "STARTTLS" again, or on a listener whose TLS started at accept
 * (autostart = true): "ERR already secure\n". On a listener without TLS:
 * "ERR TLS not available\n". "QUIT": "BYE\n", then
 * the handler returns and wharfd closes. The peer's end of stream ends the
 * dialogue without an error; a longer line is refused (WHARF_ENODELIM, no
 * reply), as is a failed handshake: both count as errors.
 *
 * No options. Not for UDP listeners (no datagram handler: a config error).
 */
#include <stdio.h>
#include <string.h>
#include <wharf/plugin.h>
#include <wharf/tls.h>

#define STARTTLS_MAX_LINE 1024

static void *starttls_init(json_t *options, const struct wharf_plugin_env *env,
                           struct wharf_plugin_error *err)
{
    static const int instance;
    const char *key;
    json_t *value;

    (void)env;
    json_object_foreach(options, key, value) {
        (void)value;
        snprintf(err->key, sizeof(err->key), "%s", key);
        snprintf(err->message, sizeof(err->message),
                 "unknown option \"%s\" (starttls takes none)", key);
        return NULL;
    }
    return (void *)&instance;
}

static int reply(struct wharf_stream *s, bool secure, const char *line, size_t n)
{
    char out[STARTTLS_MAX_LINE + 8];
    int len = snprintf(out, sizeof(out), "%s %.*s\n", secure ? "TLS" : "PLAIN", (int)n, line);

    return wharf_send(s, out, (size_t)len);
}

static int upgrade(struct wharf_stream *s, bool *secure)
{
    static const char already[] = "ERR already secure\n";
    static const char unavailable[] = "ERR TLS not available\n";
    int rc;

    if (*secure)
        return wharf_send(s, already, sizeof(already) - 1);
    rc = wharf_start_tls(s);
    if (rc == WHARF_EINVAL)
        return wharf_send(s, unavailable, sizeof(unavailable) - 1);
    *secure = rc == 0;
    return rc;
}

/* Returns 1 after QUIT, 0 to go on, or an error. */
static int serve_line(struct wharf_stream *s, char *line, size_t n, bool *secure)
{
    static const char bye[] = "BYE\n";

    if (n > 0 && line[n - 1] == '\r')
        n--;
    if (n == 8 && memcmp(line, "STARTTLS", 8) == 0)
        return upgrade(s, secure);
    if (n == 4 && memcmp(line, "QUIT", 4) == 0) {
        int rc = wharf_send(s, bye, sizeof(bye) - 1);

        return rc < 0 ? rc : 1;
    }
    return reply(s, *secure, line, n);
}

static int starttls_serve(void *instance, struct wharf_stream *stream)
{
    char line[STARTTLS_MAX_LINE + 1];
    bool secure = wharf_tls_started(stream);
    ssize_t n;
    int rc;

    (void)instance;
    for (;;) {
        n = wharf_receive_until(stream, "\n", 1, line, sizeof(line));
        if (n == WHARF_EOF || n == WHARF_EINCOMPLETE)
            return 0;           /* the client left: the end of the dialogue */
        if (n > STARTTLS_MAX_LINE)
            return WHARF_ENODELIM;
        if (n < 0)
            return (int)n;
        if ((rc = serve_line(stream, line, (size_t)n, &secure)) != 0)
            return rc > 0 ? 0 : rc;
    }
}

const struct wharf_plugin wharf_plugin = {
    WHARF_PLUGIN_HEAD("starttls"),
    .init = starttls_init,
    .handle_stream = starttls_serve,
};
