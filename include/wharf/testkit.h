/*
 * wharf/testkit.h: unit-testing a plugin's handler without sockets and
 * without wharfd, over an in-memory connection (wharf_memstream_pair).
 *
 * Not part of the plugin API: these functions are in libwharf-testkit.a
 * only (`pkg-config --cflags --libs wharf-testkit`), which a test program
 * links together with the plugin's own source; wharfd does not provide
 * them, so a plugin that calls them does not load. The test program calls
 * the plugin's descriptor, `wharf_plugin`, directly:
 *
 *     struct wharf_plugin_error err;
 *     char reply[256];
 *     int handler_rc;
 *     void *inst = wharf_testkit_init(&wharf_plugin, "{\"timeout\": 2}", NULL, &err);
 *
 *     rc = wharf_testkit_talk(&wharf_plugin, inst, "hello\nQUIT\n", 0,
 *                             reply, sizeof(reply), &handler_rc);
 *     wharf_testkit_fini(&wharf_plugin, inst);
 *
 * wharf_testkit_talk plays one whole conversation from outside a task. For
 * finer control (answers checked one by one, the handler blocked on
 * purpose), run a task of your own with wharf_run() and use
 * wharf_testkit_open(), wharf_testkit_client() and wharf_testkit_close()
 * around wharf_send() / wharf_receive_until() on the client end.
 *
 * The handler is served as wharfd serves it: in a task of its own, with a
 * 64 KiB stack, on a buffered stream (wharf_buffered_new), which is closed
 * when the handler returns. What the kit does not play: wharfd's
 * idle_timeout and drain (run the handler inside a cancel scope of your
 * own to test cancellation), TLS (wrap the ends yourself with wharf/tls.h),
 * the statistics callbacks of the env (NULL unless you pass an env).
 */
#ifndef WHARF_TESTKIT_H
#define WHARF_TESTKIT_H

#include <stddef.h>
#include <sys/types.h>
#include <wharf/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An in-memory connection served by a plugin's handler. */
struct wharf_testkit_conn;

/* After the data, end the client's sending direction (wharf_send_eof):
 * the handler's next receive returns WHARF_EOF. */
#define WHARF_TESTKIT_EOF 0x1u

/* How many chunks wharf_testkit_talk lets each direction buffer. */
#define WHARF_TESTKIT_CHUNKS 16

/* Makes an instance the way wharfd does: `options` is the handler group's
 * settings as JSON text ("{\"timeout\": 2.0}"; NULL means "{}"); `env` may be
 * NULL for a test env (config_dir ".", listener "test", kind
 * WHARF_LISTENER_STREAM, no statistics callbacks). Need not run in a task.
 * Returns the instance, or NULL with err filled in (err may be NULL):
 * init's own rejection; options that are not a JSON object (err->key "",
 * err->message says where); p or p->init NULL (says so). */
void *wharf_testkit_init(const struct wharf_plugin *p, const char *options,
                         const struct wharf_plugin_env *env,
                         struct wharf_plugin_error *err);

/* Calls p->fini(instance) when the plugin has one. A NULL instance is
 * ignored. */
void wharf_testkit_fini(const struct wharf_plugin *p, void *instance);

/* Inside a task: opens an in-memory connection whose directions buffer
 * max_chunks chunks each (0: every send waits for the receiver), starts
 * p->handle_stream(instance, server end) in a new task, and stores the
 * connection in *conn. The handler's task belongs to a task group opened
 * in the calling task: close the connection from that task, in LIFO order
 * with the scopes and groups it enters (wharf/task.h). The handler's
 * result does not cancel the caller (wharfd only counts it): read it from
 * wharf_testkit_close. Returns 0; WHARF_EINVAL (a NULL argument, no
 * handle_stream, max_chunks < 0, outside a task); -ENOMEM. */
int wharf_testkit_open(const struct wharf_plugin *p, void *instance,
                       long max_chunks, struct wharf_testkit_conn **conn);

/* The client's end: a byte stream, buffered (wharf_receive_until works on
 * it), that receives WHARF_EOF once the handler has returned. The
 * connection owns it: do not close or free it. NULL for NULL. */
struct wharf_stream *wharf_testkit_client(const struct wharf_testkit_conn *conn);

/* Hangs up and waits: closes the client's end (the handler then receives
 * WHARF_EOF, and its sends fail with WHARF_EBROKEN), waits for the handler
 * to return and frees the connection. Call it from the task that opened
 * the connection, after every other task using the client end has
 * returned. Returns what handle_stream returned (WHARF_ECANCELLED when the
 * calling task was cancelled meanwhile, if the handler passes that on);
 * WHARF_EINVAL for NULL. */
int wharf_testkit_close(struct wharf_testkit_conn *conn);

/* Sends all of the NUL-terminated text on s, then with WHARF_TESTKIT_EOF
 * ends the sending direction. Returns 0; the errors of wharf_send and
 * wharf_send_eof; WHARF_EINVAL (NULL). */
int wharf_testkit_send_all(struct wharf_stream *s, const char *text, unsigned flags);

/* Receives until the end of stream: stores up to size - 1 bytes in buf and
 * a NUL after them. Returns the number stored; -ENOBUFS when size - 1
 * bytes came and the stream has not ended (buf holds them, a byte more was
 * read and dropped); WHARF_EINVAL (NULL, size 0); the other errors of
 * wharf_receive (buf holds what came before, NUL-terminated). */
ssize_t wharf_testkit_receive_all(struct wharf_stream *s, char *buf, size_t size);

/* A whole conversation, from outside a task (it calls wharf_run): opens a
 * connection (WHARF_TESTKIT_CHUNKS), sends `input` (NULL: nothing) from a
 * task of its own, so that a handler that answers while it reads never
 * waits for a reader (a send that fails because the handler has returned
 * is not an error), then applies flags (WHARF_TESTKIT_EOF); meanwhile
 * receives everything until the handler returns, as
 * wharf_testkit_receive_all into reply; then hangs up, and stores what
 * handle_stream returned in *handler_rc (may be NULL). Returns 0; the
 * errors of wharf_testkit_receive_all (-ENOBUFS ...) and
 * wharf_testkit_open; WHARF_EINVAL inside a task (use the calls above). */
int wharf_testkit_talk(const struct wharf_plugin *p, void *instance,
                       const char *input, unsigned flags,
                       char *reply, size_t size, int *handler_rc);

#ifdef __cplusplus
}
#endif
#endif /* WHARF_TESTKIT_H */
