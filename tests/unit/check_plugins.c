/*
 * check_plugins.c: the wire behaviour of the bundled plugins echo, hello and
 * file (SPEC.md section 5), byte for byte, and their options (section 2).
 *
 * Each plugin is loaded the way wharfd loads it: dlopen of its .so from the
 * build tree and the `wharf_plugin` descriptor; this program exports the
 * runtime, which the plugin's wharf_* calls resolve against. Stream
 * handlers serve one end of an in-memory connection (a buffered stream, as
 * wharfd hands them) while the test drives the other end; datagram
 * handlers serve a UDP socket on loopback. The daemon's own part (closing
 * the stream after the handler, counting its errors) is played by
 * serve_task below.
 */
#include "config.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <wharf/plugin.h>

#include "testutil.h"

#define MIB (1024 * 1024)

/* ---- loading and init ------------------------------------------------------ */

static const struct wharf_plugin *load(const char *name)
{
    const char *dir = getenv("WHARF_BUILDDIR");
    const struct wharf_plugin *p;
    char path[4096];
    void *so;

    ck_assert_msg(dir != NULL, "WHARF_BUILDDIR is not set");
    snprintf(path, sizeof(path), "%s/plugins/.libs/%s.so", dir, name);
    so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(so != NULL, "dlopen: %s", dlerror());
    p = dlsym(so, WHARF_PLUGIN_SYMBOL);
    ck_assert_msg(p != NULL, "%s: no descriptor", path);
    ck_assert_uint_eq(p->api_major, WHARF_API_MAJOR);
    ck_assert_uint_le(p->api_minor, WHARF_API_MINOR);
    ck_assert_uint_eq(p->size, sizeof(struct wharf_plugin));
    ck_assert_str_eq(p->name, name);
    ck_assert_ptr_nonnull(p->init);
    return p;
}

/* Calls init with options given as JSON text, the way the loader does. */
static void *init_json(const struct wharf_plugin *p, const char *json, int kind,
                       struct wharf_plugin_error *err)
{
    struct wharf_plugin_env env = { tu_tmpdir(), "test", kind };
    json_error_t jerr;
    json_t *options = json_loads(json, 0, &jerr);
    void *instance;

    ck_assert_msg(options != NULL, "%s: %s", json, jerr.text);
    memset(err, 0, sizeof(*err));
    instance = p->init(options, &env, err);
    json_decref(options);
    return instance;
}

/* An instance that must be accepted. */
static void *init_ok(const struct wharf_plugin *p, const char *json, int kind)
{
    struct wharf_plugin_error err;
    void *instance = init_json(p, json, kind, &err);

    ck_assert_msg(instance != NULL, "%s %s rejected: [%s] %s", p->name, json,
                  err.key, err.message);
    return instance;
}

/* Options that must be rejected, naming `key`; returns the message. */
static const char *init_rejected(const struct wharf_plugin *p, const char *json,
                                 const char *key)
{
    static struct wharf_plugin_error err;
    void *instance = init_json(p, json, WHARF_LISTENER_STREAM, &err);

    ck_assert_msg(instance == NULL, "%s %s accepted", p->name, json);
    ck_assert_str_eq(err.key, key);
    ck_assert_msg(err.message[0] != '\0', "%s %s: no message", p->name, json);
    return err.message;
}

static void fini(const struct wharf_plugin *p, void *instance)
{
    if (p->fini)
        p->fini(instance);
}

/* Files live in tu_tmpdir(), the config_dir init is given. */
static const char *tmp_path(const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", tu_tmpdir(), name);
    return path;
}

static void write_file(const char *name, const void *data, size_t len)
{
    char path[4096];
    FILE *f = fopen(tmp_path(name, path, sizeof(path)), "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void remove_file(const char *name)
{
    char path[4096];

    unlink(tmp_path(name, path, sizeof(path)));
}

/* Bytes that do not repeat with any short period, to catch reordering. */
static char *pattern(size_t len)
{
    char *data = malloc(len);
    size_t i;

    ck_assert_ptr_nonnull(data);
    for (i = 0; i < len; i++)
        data[i] = (char)((i * 7 + i / 251) & 0xff);
    return data;
}

/* ---- one connection -------------------------------------------------------- */

struct conn {
    const struct wharf_plugin *plugin;
    void *instance;
    struct wharf_stream *client, *server;   /* server: buffered, as wharfd gives it */
    const char *input;                      /* what the client sends, */
    size_t input_len, chunk;                /* in chunks of this size, */
    bool eof;                               /* then its end of stream or not */
    int handler_rc;
    char *reply;                            /* what the client received */
    size_t reply_len;
};

/* wharfd's part: run the handler, then close the connection. */
static int serve_task(void *arg)
{
    struct conn *c = arg;

    c->handler_rc = c->plugin->handle_stream(c->instance, c->server);
    wharf_close(c->server);
    return 0;
}

/* The client's sending half; the handler may stop reading early, so a send
 * that fails is no failure of the test. */
static int send_task(void *arg)
{
    struct conn *c = arg;
    size_t off, n;

    for (off = 0; off < c->input_len; off += n) {
        n = c->input_len - off < c->chunk ? c->input_len - off : c->chunk;
        if (wharf_send(c->client, c->input + off, n) < 0)
            return 0;
    }
    if (c->eof)
        wharf_send_eof(c->client);
    return 0;
}

/* The client's receiving half: everything up to the end of stream. */
static void receive_all(struct conn *c)
{
    size_t cap = 0;
    ssize_t n;

    for (;;) {
        if (cap - c->reply_len < 65536) {
            cap = cap ? cap * 2 : 65536;
            c->reply = realloc(c->reply, cap);
            ck_assert_ptr_nonnull(c->reply);
        }
        n = wharf_receive(c->client, c->reply + c->reply_len, cap - c->reply_len);
        if (n == WHARF_EOF)
            break;
        ck_assert_msg(n > 0, "client receive: %s", wharf_strerror((int)n));
        c->reply_len += (size_t)n;
    }
}

/* Serves one connection over an in-memory pair of rendezvous streams (each
 * send waits for the receiver, so chunks arrive one by one): the client
 * sends c->input in chunks and receives until the end of stream. */
static void converse(struct conn *c)
{
    struct wharf_stream *server;
    struct wharf_group *tg;

    TU_ASSERT_RC(wharf_memstream_pair(0, &c->client, &server), 0);
    c->server = wharf_buffered_new(server);
    ck_assert_ptr_nonnull(c->server);
    tg = wharf_group_open();
    ck_assert_ptr_nonnull(tg);
    TU_ASSERT_RC(wharf_group_spawn(tg, serve_task, c), 0);
    TU_ASSERT_RC(wharf_group_spawn(tg, send_task, c), 0);
    receive_all(c);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    wharf_free(c->server);
    wharf_free(c->client);
}

/* A connection to a fresh instance of `name` with options `json`: the
 * client sends `input` in chunks of `chunk` bytes, then its EOF when `eof`. */
static struct conn talk(const char *name, const char *json, const char *input,
                        size_t len, size_t chunk, bool eof)
{
    struct conn c = { 0 };

    c.plugin = load(name);
    c.instance = init_ok(c.plugin, json, WHARF_LISTENER_STREAM);
    c.input = input;
    c.input_len = len;
    c.chunk = chunk ? chunk : 1;
    c.eof = eof;
    converse(&c);
    fini(c.plugin, c.instance);
    return c;
}

/* Asserts the handler's result and the exact reply, and frees the reply. */
static void expect(struct conn *c, int rc, const char *reply, size_t len)
{
    TU_ASSERT_RC(c->handler_rc, rc);
    ck_assert_uint_eq(c->reply_len, len);
    ck_assert_msg(len == 0 || memcmp(c->reply, reply, len) == 0,
                  "reply differs: \"%.*s\"", (int)c->reply_len, c->reply);
    free(c->reply);
}

#define EXPECT(c, rc, lit) expect(&(c), (rc), (lit), sizeof(lit) - 1)

/* ---- descriptors and options ----------------------------------------------- */

START_TEST(descriptors)
{
    ck_assert_ptr_nonnull(load("echo")->handle_stream);
    ck_assert_ptr_nonnull(load("echo")->handle_datagrams);
    ck_assert_ptr_nonnull(load("hello")->handle_stream);
    ck_assert_ptr_nonnull(load("hello")->handle_datagrams);
    ck_assert_ptr_nonnull(load("file")->handle_stream);
    ck_assert_ptr_null(load("file")->handle_datagrams);    /* udp: config error */
}
END_TEST

START_TEST(echo_options)
{
    const struct wharf_plugin *p = load("echo");

    fini(p, init_ok(p, "{}", WHARF_LISTENER_STREAM));
    fini(p, init_ok(p, "{}", WHARF_LISTENER_DATAGRAM));
    ck_assert_ptr_nonnull(strstr(init_rejected(p, "{\"foo\": 1}", "foo"), "foo"));
    init_rejected(p, "{\"max_line\": 10}", "max_line");
}
END_TEST

START_TEST(hello_options)
{
    const struct wharf_plugin *p = load("hello");

    fini(p, init_ok(p, "{}", WHARF_LISTENER_STREAM));
    fini(p, init_ok(p, "{\"max_line\": 1}", WHARF_LISTENER_STREAM));
    fini(p, init_ok(p, "{\"max_line\": 65536}", WHARF_LISTENER_DATAGRAM));
    ck_assert_ptr_nonnull(strstr(init_rejected(p, "{\"nmae\": \"x\"}", "nmae"), "nmae"));
    init_rejected(p, "{\"max_line\": 10, \"path\": \"x\"}", "path");
    init_rejected(p, "{\"max_line\": 0}", "max_line");
    init_rejected(p, "{\"max_line\": -5}", "max_line");
    init_rejected(p, "{\"max_line\": \"100\"}", "max_line");
    init_rejected(p, "{\"max_line\": 10.5}", "max_line");
    init_rejected(p, "{\"max_line\": true}", "max_line");
    init_rejected(p, "{\"max_line\": [10]}", "max_line");
    init_rejected(p, "{\"max_line\": 1099511627776}", "max_line");
}
END_TEST

START_TEST(file_options)
{
    const struct wharf_plugin *p = load("file");
    const char *msg;
    char abs[4096], *text;
    json_t *o;

    write_file("ok.txt", "ok\n", 3);
    fini(p, init_ok(p, "{\"path\": \"ok.txt\"}", WHARF_LISTENER_STREAM));
    o = json_pack("{s:s}", "path", tmp_path("ok.txt", abs, sizeof(abs)));
    text = json_dumps(o, 0);
    fini(p, init_ok(p, text, WHARF_LISTENER_STREAM));    /* an absolute path */
    free(text);
    json_decref(o);
    msg = init_rejected(p, "{}", "");
    ck_assert_msg(strstr(msg, "path") != NULL, "%s", msg);
    init_rejected(p, "{\"path\": \"ok.txt\", \"mode\": 1}", "mode");
    init_rejected(p, "{\"path\": 42}", "path");
    init_rejected(p, "{\"path\": \"\"}", "path");
    init_rejected(p, "{\"path\": [\"ok.txt\"]}", "path");

    msg = init_rejected(p, "{\"path\": \"missing.txt\"}", "path");
    ck_assert_msg(strstr(msg, "missing.txt\": No such file or directory") != NULL,
                  "%s", msg);
    ck_assert_msg(strncmp(msg, "cannot read \"", 13) == 0, "%s", msg);
    msg = init_rejected(p, "{\"path\": \".\"}", "path");
    ck_assert_msg(strstr(msg, "Is a directory") != NULL, "%s", msg);
    if (geteuid() != 0) {       /* root reads anything */
        char locked[4096];

        write_file("locked.txt", "x", 1);
        ck_assert_int_eq(chmod(tmp_path("locked.txt", locked, sizeof(locked)), 0), 0);
        msg = init_rejected(p, "{\"path\": \"locked.txt\"}", "path");
        ck_assert_msg(strstr(msg, "Permission denied") != NULL, "%s", msg);
        remove_file("locked.txt");
    }
    remove_file("ok.txt");
}
END_TEST

/* ---- echo -------------------------------------------------------------------- */

static int t_echo_chunks(void *arg)
{
    static const char text[] = "one, two\nthree\r\n\0four";
    struct conn c;

    c = talk("echo", "{}", text, sizeof(text), 3, true);
    expect(&c, 0, text, sizeof(text));
    c = talk("echo", "{}", text, sizeof(text), sizeof(text), true);
    expect(&c, 0, text, sizeof(text));
    c = talk("echo", "{}", "", 0, 1, true);     /* EOF at once: nothing, 0 */
    EXPECT(c, 0, "");
    return 0;
}
START_TEST(echo_chunks) { TU_RUN(t_echo_chunks, NULL); }
END_TEST

static int t_echo_mebibyte(void *arg)
{
    char *data = pattern(MIB);
    struct conn c = talk("echo", "{}", data, MIB, 16384 + 3, true);

    expect(&c, 0, data, MIB);
    free(data);
    return 0;
}
START_TEST(echo_mebibyte) { TU_RUN(t_echo_mebibyte, NULL); }
END_TEST

/* The client sends, then its EOF, and only then reads: the replies still
 * come, then the end of stream. */
static int t_echo_half_close(void *arg)
{
    struct conn c = { load("echo") };
    struct wharf_stream *server;
    struct wharf_group *tg;

    c.instance = init_ok(c.plugin, "{}", WHARF_LISTENER_STREAM);
    TU_ASSERT_RC(wharf_memstream_pair(4, &c.client, &server), 0);
    c.server = wharf_buffered_new(server);
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(tg, serve_task, &c), 0);
    TU_ASSERT_RC(wharf_send(c.client, "ping\n", 5), 0);
    TU_ASSERT_RC(wharf_send(c.client, "pong\n", 5), 0);
    TU_ASSERT_RC(wharf_send_eof(c.client), 0);
    receive_all(&c);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    EXPECT(c, 0, "ping\npong\n");
    wharf_free(c.server);
    wharf_free(c.client);
    fini(c.plugin, c.instance);
    return 0;
}
START_TEST(echo_half_close) { TU_RUN(t_echo_half_close, NULL); }
END_TEST

/* ---- hello ------------------------------------------------------------------- */

static int t_hello_line(void *arg)
{
    struct conn c;

    c = talk("hello", "{}", "world\n", 6, 6, true);
    EXPECT(c, 0, "Hello, world\n");
    c = talk("hello", "{}", "world\n", 6, 1, false);     /* byte by byte, no EOF */
    EXPECT(c, 0, "Hello, world\n");
    c = talk("hello", "{}", "bob\r\n", 5, 5, true);       /* CRLF */
    EXPECT(c, 0, "Hello, bob\n");
    c = talk("hello", "{}", "a\r\r\n", 4, 4, true);      /* one '\r' only */
    EXPECT(c, 0, "Hello, a\r\n");
    c = talk("hello", "{}", "\n", 1, 1, true);             /* empty name */
    EXPECT(c, 0, "Hello, \n");
    c = talk("hello", "{}", "x\ny\n", 4, 4, false);        /* one line only */
    EXPECT(c, 0, "Hello, x\n");
    return 0;
}
START_TEST(hello_line) { TU_RUN(t_hello_line, NULL); }
END_TEST

/* A name of exactly max_line bytes is served, also when its '\n' comes in
 * a chunk of its own; one byte more is refused without a reply. */
static int t_hello_max_line(void *arg)
{
    char line[1026], reply[1040];
    struct conn c;

    memset(line, 'n', sizeof(line));
    line[1024] = '\n';
    memcpy(reply, "Hello, ", 7);
    memcpy(reply + 7, line, 1025);
    c = talk("hello", "{}", line, 1025, 512, true);
    expect(&c, 0, reply, 7 + 1025);
    c = talk("hello", "{}", line, 1025, 1, true);
    expect(&c, 0, reply, 7 + 1025);

    line[1024] = 'n';                              /* 1025 bytes, no '\n' */
    c = talk("hello", "{}", line, 1025, 100, true);
    EXPECT(c, WHARF_ENODELIM, "");
    c = talk("hello", "{}", line, 1025, 1025, false);
    EXPECT(c, WHARF_ENODELIM, "");
    line[1025] = '\n';                             /* 1025 bytes, then '\n' */
    c = talk("hello", "{}", line, 1026, 1026, true);
    EXPECT(c, WHARF_ENODELIM, "");
    return 0;
}
START_TEST(hello_max_line) { TU_RUN(t_hello_max_line, NULL); }
END_TEST

static int t_hello_max_line_option(void *arg)
{
    struct conn c;

    c = talk("hello", "{\"max_line\": 5}", "abcde\n", 6, 2, true);
    EXPECT(c, 0, "Hello, abcde\n");
    c = talk("hello", "{\"max_line\": 5}", "abcdef\n", 7, 2, true);
    EXPECT(c, WHARF_ENODELIM, "");
    /* the '\r' counts in max_line: it is part of the line */
    c = talk("hello", "{\"max_line\": 5}", "abcd\r\n", 6, 6, true);
    EXPECT(c, 0, "Hello, abcd\n");
    c = talk("hello", "{\"max_line\": 1}", "a\n", 2, 2, true);
    EXPECT(c, 0, "Hello, a\n");
    return 0;
}
START_TEST(hello_max_line_option) { TU_RUN(t_hello_max_line_option, NULL); }
END_TEST

static int t_hello_incomplete(void *arg)
{
    struct conn c;

    c = talk("hello", "{}", "world", 5, 2, true);
    EXPECT(c, WHARF_EINCOMPLETE, "");
    c = talk("hello", "{}", "", 0, 1, true);
    EXPECT(c, WHARF_EINCOMPLETE, "");
    return 0;
}
START_TEST(hello_incomplete) { TU_RUN(t_hello_incomplete, NULL); }
END_TEST

/* Several connections at once on one instance, as the workers do. */
static int t_hello_shared_instance(void *arg)
{
    const struct wharf_plugin *p = load("hello");
    void *instance = init_ok(p, "{}", WHARF_LISTENER_STREAM);
    static const char *names[] = { "ann\n", "bo\r\n", "cy" };
    struct conn c[3] = { { 0 } };
    struct wharf_stream *server;
    struct wharf_group *tg = wharf_group_open();
    int i;

    for (i = 0; i < 3; i++) {
        c[i] = (struct conn){ .plugin = p, .instance = instance, .input = names[i],
                              .input_len = strlen(names[i]), .chunk = 1, .eof = true };
        TU_ASSERT_RC(wharf_memstream_pair(0, &c[i].client, &server), 0);
        c[i].server = wharf_buffered_new(server);
        TU_ASSERT_RC(wharf_group_spawn(tg, serve_task, &c[i]), 0);
        TU_ASSERT_RC(wharf_group_spawn(tg, send_task, &c[i]), 0);
    }
    for (i = 0; i < 3; i++)
        receive_all(&c[i]);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    EXPECT(c[0], 0, "Hello, ann\n");
    EXPECT(c[1], 0, "Hello, bo\n");
    EXPECT(c[2], WHARF_EINCOMPLETE, "");
    for (i = 0; i < 3; i++) {
        wharf_free(c[i].server);
        wharf_free(c[i].client);
    }
    fini(p, instance);
    return 0;
}
START_TEST(hello_shared_instance) { TU_RUN(t_hello_shared_instance, NULL); }
END_TEST

/* ---- file ------------------------------------------------------------------- */

static int t_file_content(void *arg)
{
    char *data = pattern(MIB + 123);
    struct conn c;

    write_file("small.txt", "line one\nline two\n", 18);
    c = talk("file", "{\"path\": \"small.txt\"}", "", 0, 1, false);
    EXPECT(c, 0, "line one\nline two\n");
    c = talk("file", "{\"path\": \"small.txt\"}", "ignored\n", 8, 8, true);
    EXPECT(c, 0, "line one\nline two\n");

    write_file("big.bin", data, MIB + 123);
    c = talk("file", "{\"path\": \"big.bin\"}", "", 0, 1, true);
    expect(&c, 0, data, MIB + 123);

    write_file("empty", "", 0);
    c = talk("file", "{\"path\": \"empty\"}", "", 0, 1, true);
    EXPECT(c, 0, "");
    free(data);
    return 0;
}
START_TEST(file_content)
{
    TU_RUN(t_file_content, NULL);
    remove_file("small.txt");
    remove_file("big.bin");
    remove_file("empty");
}
END_TEST

/* Opened per connection: an edited file is served as it is now. */
static int t_file_current(void *arg)
{
    const struct wharf_plugin *p = load("file");
    struct conn c = { p };

    write_file("now.txt", "old\n", 4);
    c.instance = init_ok(p, "{\"path\": \"now.txt\"}", WHARF_LISTENER_STREAM);
    write_file("now.txt", "new content\n", 12);
    converse(&c);
    EXPECT(c, 0, "new content\n");
    fini(p, c.instance);
    remove_file("now.txt");
    return 0;
}
START_TEST(file_current) { TU_RUN(t_file_current, NULL); }
END_TEST

/* ---- datagrams -------------------------------------------------------------- */

struct dgram {
    const struct wharf_plugin *plugin;
    void *instance;
    struct wharf_stream *socket;
    int handler_rc;
};

static int datagrams_task(void *arg)
{
    struct dgram *d = arg;

    d->handler_rc = d->plugin->handle_datagrams(d->instance, d->socket);
    return 0;
}

/* Serves `name` on a loopback UDP socket; for each of the n datagrams sent
 * by a client, expects `prefix` then the datagram back from the server. */
static void datagram_exchange(const char *name, const char *prefix,
                              const char *const *msgs, const size_t *lens, size_t n)
{
    struct dgram d = { load(name) };
    struct wharf_stream *client;
    struct wharf_group *tg;
    struct sockaddr_storage to, from;
    socklen_t tolen = sizeof(to), fromlen;
    size_t plen = strlen(prefix), i;
    char *buf = malloc(65536 + plen);
    char addr[64];
    int port;
    ssize_t got;

    ck_assert_ptr_nonnull(buf);
    d.instance = init_ok(d.plugin, "{}", WHARF_LISTENER_DATAGRAM);
    TU_ASSERT_RC(wharf_udp_open("127.0.0.1", 0, 0, &d.socket), 0);
    TU_ASSERT_RC(wharf_udp_open("127.0.0.1", 0, 0, &client), 0);
    TU_ASSERT_RC(wharf_getattr_int(d.socket, WHARF_ATTR_LOCAL_PORT, &port), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    TU_ASSERT_RC(wharf_addr_parse(addr, &to, &tolen), 0);
    tg = wharf_group_open();
    TU_ASSERT_RC(wharf_group_spawn(tg, datagrams_task, &d), 0);
    for (i = 0; i < n; i++) {
        TU_ASSERT_RC(wharf_send_to(client, msgs[i], lens[i], (struct sockaddr *)&to,
                                   tolen), 0);
        fromlen = sizeof(from);
        got = wharf_receive_from(client, buf, 65536 + plen, (struct sockaddr *)&from,
                                 &fromlen);
        TU_ASSERT_RC(got, (ssize_t)(plen + lens[i]));
        ck_assert_int_eq(memcmp(buf, prefix, plen), 0);
        ck_assert_int_eq(memcmp(buf + plen, msgs[i], lens[i]), 0);
        ck_assert_int_eq(memcmp(&from, &to, tolen), 0);   /* from the listener */
    }
    wharf_group_cancel(tg);
    TU_ASSERT_RC(wharf_group_close(tg, 0), 0);
    TU_ASSERT_RC(d.handler_rc, WHARF_ECANCELLED);
    wharf_free(client);
    wharf_free(d.socket);
    fini(d.plugin, d.instance);
    free(buf);
}

static int t_echo_datagrams(void *arg)
{
    char *big = pattern(60000);
    const char *msgs[] = { "abc", "", "two\nlines\n", big };
    size_t lens[] = { 3, 0, 11, 60000 };

    datagram_exchange("echo", "", msgs, lens, 4);
    free(big);
    return 0;
}
START_TEST(echo_datagrams) { TU_RUN(t_echo_datagrams, NULL); }
END_TEST

static int t_hello_datagrams(void *arg)
{
    const char *msgs[] = { "abc", "", "x\r\n", "a\0b" };
    size_t lens[] = { 3, 0, 3, 3 };

    datagram_exchange("hello", "Hello, ", msgs, lens, 4);
    return 0;
}
START_TEST(hello_datagrams) { TU_RUN(t_hello_datagrams, NULL); }
END_TEST

static Suite *plugins_suite(void)
{
    Suite *s = suite_create("plugins");
    TCase *tc = tcase_create("plugins");

    tcase_add_test(tc, descriptors);
    tcase_add_test(tc, echo_options);
    tcase_add_test(tc, hello_options);
    tcase_add_test(tc, file_options);
    tcase_add_test(tc, echo_chunks);
    tcase_add_test(tc, echo_mebibyte);
    tcase_add_test(tc, echo_half_close);
    tcase_add_test(tc, echo_datagrams);
    tcase_add_test(tc, hello_line);
    tcase_add_test(tc, hello_max_line);
    tcase_add_test(tc, hello_max_line_option);
    tcase_add_test(tc, hello_incomplete);
    tcase_add_test(tc, hello_shared_instance);
    tcase_add_test(tc, hello_datagrams);
    tcase_add_test(tc, file_content);
    tcase_add_test(tc, file_current);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(plugins_suite());
}
