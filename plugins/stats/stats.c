/*
 * stats: wharfd's statistics over HTTP/1.1 (SPEC.md sections 5 and 6), for
 * a UNIX listener or a loopback TCP listener (TLS allowed).
 *
 *   GET /stats      the JSON object of section 6 (?pretty: indented)
 *   GET /metrics    the same figures, Prometheus text format 0.0.4
 *   GET /healthz    "ok\n"
 *
 * HEAD is served like GET without the body. Other paths: 404; other
 * methods on these paths: 405 (with Allow). Keep-alive and pipelining:
 * requests are answered one after the other, in order, on one connection
 * until the client closes, asks for `Connection: close`, or speaks
 * HTTP/1.0 without `Connection: keep-alive`. Every response has a
 * Content-Length. A malformed request (request line, header syntax,
 * control characters, a bad Content-Length, any Transfer-Encoding) gets
 * 400 and the connection closes; a request line and headers of more than
 * 8 KiB together get 431 and a close; an HTTP major version other than 1
 * gets 505 and a close. Each of these is returned as an error (the
 * listener's `errors`). A request body (Content-Length) is read and dropped,
 * up to 1 MiB; beyond that the response closes the connection. When the
 * host gives no statistics (wharf_plugin_env.stats is NULL, or returns
 * NULL), /stats and /metrics answer 503. A client that sends slowly is
 * bound by the listener's idle_timeout, as every connection is.
 *
 * Figures of its own (plugins.stats): `requests` answered, and
 * `responses` by status code.
 *
 * No options. Not for UDP listeners (no datagram handler: a config error).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <wharf/plugin.h>

#define HEAD_MAX 8192               /* request line and headers, line ends included */
#define METHOD_MAX 64               /* a longer first word is not a method: 400 */
#define BODY_MAX (1024 * 1024)      /* a larger request body is not read: close */

enum status { S200, S400, S404, S405, S431, S503, S505, NSTATUS };

static const struct {
    int code;
    const char *reason;
} statuses[NSTATUS] = {
    [S200] = { 200, "OK" },
    [S400] = { 400, "Bad Request" },
    [S404] = { 404, "Not Found" },
    [S405] = { 405, "Method Not Allowed" },
    [S431] = { 431, "Request Header Fields Too Large" },
    [S503] = { 503, "Service Unavailable" },
    [S505] = { 505, "HTTP Version Not Supported" },
};

/* One per listener generation: the host's callbacks, and counters that
 * every worker adds to. */
struct stats_plugin {
    json_t *(*sp_stats)(void);
    char *(*sp_prometheus)(const json_t *snapshot);
    atomic_ulong sp_responses[NSTATUS];
};

/* One request, as read: pointers into the connection's head buffer. */
struct request {
    const char *rq_method;
    char *rq_target;
    int rq_minor;                   /* HTTP/1.x */
    bool rq_close;                  /* Connection: close */
    bool rq_keep_alive;             /* Connection: keep-alive */
    long long rq_length;            /* Content-Length; -1: none */
};

/* What to answer. */
struct response {
    enum status rs_status;
    const char *rs_type;
    char *rs_body;                  /* malloc'd */
    size_t rs_len;
    bool rs_head;                   /* HEAD: no body on the wire */
    bool rs_close;
    bool rs_keep_alive_1_0;         /* say "Connection: keep-alive" */
};

struct http_conn {
    struct stats_plugin *hc_plugin;
    struct wharf_stream *hc_stream;
    size_t hc_used;                 /* bytes of the head so far */
    char hc_head[HEAD_MAX + 1];
};

/* ---- init ------------------------------------------------------------------- */

static void *stats_init(json_t *options, const struct wharf_plugin_env *env,
                        struct wharf_plugin_error *err)
{
    struct stats_plugin *p;
    const char *key;
    json_t *value;

    json_object_foreach(options, key, value) {
        (void)value;
        snprintf(err->key, sizeof(err->key), "%s", key);
        snprintf(err->message, sizeof(err->message),
                 "unknown option \"%s\" (stats takes none)", key);
        return NULL;
    }
    if (!(p = calloc(1, sizeof(*p))))
        return NULL;                /* err left empty: out of memory */
    p->sp_stats = env->stats;
    p->sp_prometheus = env->stats_prometheus;
    for (int i = 0; i < NSTATUS; i++)
        atomic_init(&p->sp_responses[i], 0);
    return p;
}

static void stats_fini(void *instance)
{
    free(instance);
}

static int stats_figures(void *instance, json_t *out)
{
    struct stats_plugin *p = instance;
    json_t *by_status = json_object();
    unsigned long total = 0;
    char code[8];
    int rc = 0;

    if (!by_status)
        return -ENOMEM;
    for (int i = 0; i < NSTATUS; i++) {
        unsigned long n = atomic_load_explicit(&p->sp_responses[i], memory_order_relaxed);

        total += n;
        snprintf(code, sizeof(code), "%d", statuses[i].code);
        rc |= json_object_set_new(by_status, code, json_integer((json_int_t)n));
    }
    rc |= json_object_set_new(out, "requests", json_integer((json_int_t)total));
    rc |= json_object_set_new(out, "responses", by_status);
    return rc < 0 ? -ENOMEM : 0;
}

/* ---- reading a request ------------------------------------------------------ */

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Text of a request line or header line: no control characters but HTAB. */
static bool clean(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return false;
    return true;
}

/* Reads the next line of the head into the connection's buffer, without
 * its '\n' and the '\r' before it, NUL-terminated. Returns its length;
 * WHARF_ENODELIM (the head would pass HEAD_MAX); -EPROTO (control
 * characters); the stream's errors. */
static ssize_t read_line(struct http_conn *c, char **line)
{
    size_t left = HEAD_MAX - c->hc_used;
    char *at = c->hc_head + c->hc_used;
    ssize_t n;

    if (left == 0)
        return WHARF_ENODELIM;
    n = wharf_receive_until(c->hc_stream, "\n", 1, at, left);
    if (n < 0)
        return n;
    if ((size_t)n >= left)
        return WHARF_ENODELIM;      /* the line and its '\n' do not fit */
    c->hc_used += (size_t)n + 1;
    if (n > 0 && at[n - 1] == '\r')
        n--;
    at[n] = '\0';
    *line = at;
    return clean(at, (size_t)n) ? n : -EPROTO;
}

/* The method: a token, read byte by byte up to its space, so that bytes
 * that cannot start a request (a TLS ClientHello, garbage) are refused as
 * they come rather than waited on. Empty lines before it are skipped (RFC
 * 9112 2.2). 0; 1: the client closed between requests; -EPROTO; the
 * stream's errors. */
static int read_method(struct http_conn *c, struct request *rq)
{
    char *m = c->hc_head, ch;
    size_t n = 0;
    ssize_t got;

    for (;;) {
        got = wharf_receive_exactly(c->hc_stream, &ch, 1);
        if (got < 0)
            return got == WHARF_EINCOMPLETE && n == 0 ? 1 : (int)got;
        if (++c->hc_used > HEAD_MAX)
            return WHARF_ENODELIM;
        if (n == 0 && (ch == '\r' || ch == '\n'))
            continue;
        if (ch == ' ')
            break;
        if (!is_tchar(ch) || n == METHOD_MAX)
            return -EPROTO;
        m[n++] = ch;
    }
    if (n == 0)
        return -EPROTO;
    m[n] = '\0';                    /* where the space was, or before */
    rq->rq_method = m;
    return 0;
}

/* The rest of the request line, "TARGET HTTP/1.x". 0; -EPROTO
 * (malformed); -EPROTONOSUPPORT (another major version); WHARF_ENODELIM
 * (over HEAD_MAX); the stream's errors. */
static int read_target_version(struct http_conn *c, struct request *rq)
{
    char *t, *sp, *v;
    ssize_t n = read_line(c, &t);

    if (n < 0)
        return (int)n;
    sp = strchr(t, ' ');
    if (!sp || sp == t || strchr(sp + 1, ' ') || strchr(t, '\t'))
        return -EPROTO;
    *sp = '\0';
    rq->rq_target = t;
    v = sp + 1;
    if (strlen(v) != 8 || strncmp(v, "HTTP/", 5) != 0 || v[6] != '.' ||
        v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
        return -EPROTO;
    if (v[5] != '1')
        return -EPROTONOSUPPORT;
    rq->rq_minor = v[7] - '0';
    return 0;
}

/* Connection: a comma-separated list of options. */
static void parse_connection(const char *value, struct request *rq)
{
    for (const char *p = value; *p;) {
        size_t n = strcspn(p, ",");
        const char *b = p, *e = p + n;

        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e - b == 5 && strncasecmp(b, "close", 5) == 0)
            rq->rq_close = true;
        else if (e - b == 10 && strncasecmp(b, "keep-alive", 10) == 0)
            rq->rq_keep_alive = true;
        p += n;
        if (*p == ',')
            p++;
    }
}

/* Content-Length: digits only; a repeated one must agree. */
static int parse_length(const char *value, struct request *rq)
{
    long long n = 0;
    const char *p = value;

    if (!*p)
        return -EPROTO;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || n > 100000000000000LL)
            return -EPROTO;
        n = n * 10 + (*p - '0');
    }
    if (rq->rq_length >= 0 && rq->rq_length != n)
        return -EPROTO;
    rq->rq_length = n;
    return 0;
}

/* "Name: value". 0 or -EPROTO. */
static int parse_header(char *line, struct request *rq)
{
    char *colon = strchr(line, ':'), *value, *end;

    if (!colon || colon == line)
        return -EPROTO;             /* also a folded line: it starts with SP/HTAB */
    *colon = '\0';
    for (const char *p = line; *p; p++)
        if (!is_tchar(*p))
            return -EPROTO;
    for (value = colon + 1; *value == ' ' || *value == '\t'; value++)
        ;
    for (end = value + strlen(value); end > value && (end[-1] == ' ' || end[-1] == '\t'); end--)
        ;
    *end = '\0';
    if (strcasecmp(line, "Connection") == 0)
        parse_connection(value, rq);
    else if (strcasecmp(line, "Content-Length") == 0)
        return parse_length(value, rq);
    else if (strcasecmp(line, "Transfer-Encoding") == 0)
        return -EPROTO;             /* no chunked bodies here */
    return 0;
}

/* Reads one request head. Returns 0; 1 when the client closed between
 * requests (the end of the conversation); -EPROTO, -EPROTONOSUPPORT,
 * WHARF_ENODELIM (a response is due, then close); the stream's errors (no
 * response). */
static int read_request(struct http_conn *c, struct request *rq)
{
    char *line;
    ssize_t n;
    int rc;

    memset(rq, 0, sizeof(*rq));
    rq->rq_length = -1;
    c->hc_used = 0;
    if ((rc = read_method(c, rq)) != 0 || (rc = read_target_version(c, rq)) != 0)
        return rc;
    while ((n = read_line(c, &line)) > 0)
        if ((rc = parse_header(line, rq)) < 0)
            return rc;
    return n < 0 ? (int)n : 0;
}

/* Reads and drops a request body of n bytes, into the head buffer (the
 * request is no longer needed). */
static int skip_body(struct http_conn *c, long long n)
{
    while (n > 0) {
        size_t chunk = n < HEAD_MAX ? (size_t)n : HEAD_MAX;
        ssize_t got = wharf_receive_exactly(c->hc_stream, c->hc_head, chunk);

        if (got < 0)
            return (int)got;
        n -= got;
    }
    return 0;
}

/* ---- answering ------------------------------------------------------------------ */

/* Whether the query asks for ?pretty (pretty=0, false or no do not). */
static bool want_pretty(const char *query)
{
    while (query && *query) {
        size_t n = strcspn(query, "&"), name = strcspn(query, "=&");

        if (name == 6 && strncmp(query, "pretty", 6) == 0) {
            const char *v = query + 6;
            size_t vlen = n - 6;

            if (vlen == 0)
                return true;
            v++;
            vlen--;
            return !((vlen == 1 && *v == '0') || (vlen == 5 && strncmp(v, "false", 5) == 0) ||
                     (vlen == 2 && strncmp(v, "no", 2) == 0));
        }
        query += n + (query[n] == '&');
    }
    return false;
}

static int set_body(struct response *rs, enum status st, const char *type, char *body)
{
    if (!body)
        return -ENOMEM;
    rs->rs_status = st;
    rs->rs_type = type;
    rs->rs_body = body;
    rs->rs_len = strlen(body);
    return 0;
}

static int text_body(struct response *rs, enum status st, const char *text)
{
    return set_body(rs, st, "text/plain; charset=utf-8", strdup(text));
}

/* An error page: "404 Not Found\n". */
static int error_body(struct response *rs, enum status st)
{
    char text[64];

    snprintf(text, sizeof(text), "%d %s\n", statuses[st].code, statuses[st].reason);
    return text_body(rs, st, text);
}

/* The JSON, with a newline (curl's output then ends its line); reals
 * with 15 digits (0.586, not 0.58599999999999997). */
static char *json_text(const json_t *snap, bool pretty)
{
    size_t flags = JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15) |
                   (pretty ? JSON_INDENT(2) : JSON_COMPACT);
    char *s = json_dumps(snap, flags);
    size_t n;
    char *t;

    if (!s)
        return NULL;
    n = strlen(s);
    if ((t = realloc(s, n + 2)) == NULL) {
        free(s);
        return NULL;
    }
    t[n] = '\n';
    t[n + 1] = '\0';
    return t;
}

static int serve_figures(struct stats_plugin *p, struct response *rs, bool metrics, bool pretty)
{
    json_t *snap = p->sp_stats ? p->sp_stats() : NULL;
    char *body;

    if (!snap || (metrics && !p->sp_prometheus)) {
        json_decref(snap);
        return text_body(rs, S503, "503 Service Unavailable: no statistics\n");
    }
    body = metrics ? p->sp_prometheus(snap) : json_text(snap, pretty);
    json_decref(snap);
    return set_body(rs, S200, metrics ? "text/plain; version=0.0.4; charset=utf-8"
                                      : "application/json", body);
}

/* The path of a target (origin form, or absolute form "http://host/path"),
 * cut at '?' with *query set after it (NULL: none). */
static const char *target_path(char *target, const char **query)
{
    char *q;

    if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
        char *slash = strchr(strstr(target, "//") + 2, '/');

        target = slash ? slash : (char *)"/";
    }
    *query = NULL;
    if ((q = strchr(target, '?')) != NULL) {
        *q = '\0';
        *query = q + 1;
    }
    return target;
}

static int route(struct stats_plugin *p, struct request *rq, struct response *rs)
{
    static const char *const paths[] = { "/stats", "/metrics", "/healthz" };
    bool get = strcmp(rq->rq_method, "GET") == 0, head = strcmp(rq->rq_method, "HEAD") == 0;
    const char *path, *query;
    size_t i;

    if (rq->rq_target[0] != '/' && strncasecmp(rq->rq_target, "http", 4) != 0)
        return error_body(rs, S400);
    path = target_path(rq->rq_target, &query);
    for (i = 0; i < 3 && strcmp(path, paths[i]) != 0; i++)
        ;
    if (i == 3)
        return error_body(rs, S404);
    if (!get && !head)
        return error_body(rs, S405);
    rs->rs_head = head;
    if (i == 2)
        return text_body(rs, S200, "ok\n");
    return serve_figures(p, rs, i == 1, want_pretty(query));
}

/* Sends the status line, the headers and (unless HEAD) the body at once. */
static int respond(struct http_conn *c, const struct response *rs)
{
    char date[64], *out;
    struct tm tm;
    time_t now = time(NULL);
    int n, rc;

    if (!gmtime_r(&now, &tm) || strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
        date[0] = '\0';
    out = malloc(512 + (rs->rs_head ? 0 : rs->rs_len));
    if (!out)
        return -ENOMEM;
    n = snprintf(out, 512,
                 "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Cache-Control: no-store\r\n%s%s\r\n",
                 statuses[rs->rs_status].code, statuses[rs->rs_status].reason, date,
                 rs->rs_type, rs->rs_len,
                 rs->rs_status == S405 ? "Allow: GET, HEAD\r\n" : "",
                 rs->rs_close ? "Connection: close\r\n"
                 : rs->rs_keep_alive_1_0 ? "Connection: keep-alive\r\n" : "");
    if (n < 0 || n >= 512) {
        free(out);
        return -EOVERFLOW;
    }
    if (!rs->rs_head)
        memcpy(out + n, rs->rs_body, rs->rs_len);
    atomic_fetch_add_explicit(&c->hc_plugin->sp_responses[rs->rs_status], 1,
                              memory_order_relaxed);
    rc = wharf_send(c->hc_stream, out, (size_t)n + (rs->rs_head ? 0 : rs->rs_len));
    free(out);
    return rc;
}

/* A request that could not be read to its end: answer and close. The
 * return value makes the connection count as an error. */
static int refuse(struct http_conn *c, int why)
{
    struct response rs = { .rs_close = true };
    enum status st = why == WHARF_ENODELIM ? S431 : why == -EPROTONOSUPPORT ? S505 : S400;
    int rc = error_body(&rs, st);

    if (rc == 0)
        rc = respond(c, &rs);
    free(rs.rs_body);
    if (rc < 0)
        return rc;
    return why == WHARF_ENODELIM ? -EMSGSIZE : why;
}

/* Answers one request that was read whole. Returns 0 to go on with the
 * next, 1 after a response that closes, or an error. */
static int answer(struct http_conn *c, struct request *rq)
{
    struct response rs = { 0 };
    bool keep = rq->rq_minor >= 1 ? !rq->rq_close : rq->rq_keep_alive && !rq->rq_close;
    int rc;

    if ((rc = route(c->hc_plugin, rq, &rs)) < 0)
        return rc;
    if (rs.rs_status == S400) {
        free(rs.rs_body);
        return refuse(c, -EPROTO);
    }
    if (rq->rq_length > BODY_MAX) {
        keep = false;               /* not worth reading: close instead */
    } else if (rq->rq_length > 0 && (rc = skip_body(c, rq->rq_length)) < 0) {
        free(rs.rs_body);           /* the body did not come: no answer */
        return rc;
    }
    rs.rs_close = !keep;
    rs.rs_keep_alive_1_0 = keep && rq->rq_minor == 0;
    rc = respond(c, &rs);
    free(rs.rs_body);
    if (rc < 0)
        return rc;
    return keep ? 0 : 1;
}

static int stats_serve(void *instance, struct wharf_stream *stream)
{
    struct http_conn *c = malloc(sizeof(*c));
    struct request rq;
    int rc;

    if (!c)
        return -ENOMEM;
    c->hc_plugin = instance;
    c->hc_stream = stream;
    for (;;) {
        rc = read_request(c, &rq);
        if (rc == 1) {
            rc = 0;                 /* the client is done */
            break;
        }
        if (rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == WHARF_ENODELIM) {
            rc = refuse(c, rc);
            break;
        }
        if (rc < 0 || (rc = answer(c, &rq)) != 0)
            break;
    }
    free(c);
    return rc > 0 ? 0 : rc;
}

const struct wharf_plugin wharf_plugin = {
    WHARF_PLUGIN_HEAD("stats"),
    .init = stats_init,
    .handle_stream = stats_serve,
    .stats = stats_figures,
    .fini = stats_fini,
};
