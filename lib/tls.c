/*
 * tls.c: TLS over any byte stream (AnyIO's TLSStream). OpenSSL runs the
 * protocol over a BIO of queues (tlsbio.c: DESIGN.md's two memory BIOs,
 * without their idle buffers and copies); this file moves ciphertext
 * between them and the inner stream with its own receive and send, so a
 * TLS stream suspends its task like any other stream, wraps sockets and
 * memory connections alike, and can start on a stream that carried
 * plaintext (STARTTLS) or give the stream back (unwrap).
 *
 * One receiver and one sender may use a TLS stream at once (a proxy copies
 * both ways). Tasks of one worker never run at the same time, so the SSL
 * object is only touched between suspensions; what needs care are the two
 * suspending steps: reading ciphertext from the inner stream and writing
 * it out. Each has a flag and a queue: one task at a time reads (another
 * that needs input waits for that read to finish, then retries its SSL
 * call) and one at a time writes (bytes leave the write BIO in order).
 * Not for: building contexts from the config (the daemon's tlsctx.c).
 */
#include "config.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <wharf/tls.h>

#include "wharf-int.h"

#define TLS_IO_BUF (16 * 1024 + 512)    /* one record and its overhead */
#define TLS_WRITE_CHUNK (16 * 1024)     /* plaintext per SSL_write: bounded ciphertext */
/* A send of many records leaves in sends of up to this much ciphertext,
 * not one per 16 KiB record: a syscall per four records, not per record
 * (a 1 GiB transfer through forward: a quarter less CPU). */
#define TLS_OUT_BATCH (4 * TLS_IO_BUF)
/* A cancelled stream's close_notify gets this long to leave (a full socket
 * buffer); its peer's is not waited for. */
#define TLS_CANCELLED_CLOSE_TIMEOUT 0.5

struct tls_waiter {
    struct task *task;
    TAILQ_ENTRY(tls_waiter) link;
};
TAILQ_HEAD(tls_waitq, tls_waiter);

struct tls {
    struct wharf_stream t_base;     /* first; inner = the transport */
    SSL *t_ssl;
    struct tlsbio t_io;             /* ciphertext in, out (its BIO: t_ssl's) */
    unsigned t_flags;
    bool t_active;                  /* TLS on (a deferred stream: after start) */
    bool t_done;                    /* handshake finished */
    bool t_eof;                     /* clean end: close_notify, or ragged when relaxed */
    bool t_broken;                  /* receives and sends fail from now on */
    bool t_fatal;                   /* OpenSSL's state is dead: no close_notify */
    bool t_closed;
    bool t_detached;                /* unwrapped: inner is not ours */
    bool t_ragged;                  /* the transport ended without close_notify */
    bool t_reading, t_writing;      /* a task is in the inner receive / send */
    double t_hs_timeout;            /* wharf_start_tls's bound; 0: none */
    int t_hs_failed;                /* how wharf_start_tls's handshake failed */
    struct tls_waitq t_read_q, t_write_q;
    unsigned char *t_ibuf;          /* a transport that needs its own buffer */
    char *t_error;                  /* why it broke; allocated then (an idle stream has none) */
};

enum tls_op { TLS_HANDSHAKE, TLS_READ, TLS_WRITE, TLS_SHUTDOWN };

static const struct wharf_stream_ops tls_ops;

static struct tls *tls_of(struct wharf_stream *s)
{
    for (; s; s = s->inner)
        if (s->ops == &tls_ops)
            return (struct tls *)s;
    return NULL;
}

/* ---- waiting for the other task ------------------------------------------ */

static int tls_wait(struct tls_waitq *q)
{
    struct tls_waiter w = { task_current(), { NULL, NULL } };
    int rc;

    TAILQ_INSERT_TAIL(q, &w, link);
    rc = task_block();
    TAILQ_REMOVE(q, &w, link);
    return rc;
}

static void tls_wake_all(struct tls_waitq *q)
{
    struct tls_waiter *w;

    TAILQ_FOREACH(w, q, link)
        task_wake(w->task);
}

/* ---- errors ----------------------------------------------------------------- */

#define TLS_ERROR_MAX 256

/* Records why the stream failed (the last reason wins). */
static void tls_errorf(struct tls *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tls_errorf(struct tls *t, const char *fmt, ...)
{
    va_list ap;

    if (!t->t_error && !(t->t_error = malloc(TLS_ERROR_MAX)))
        return;                 /* the failure still stands; only its words are lost */
    va_start(ap, fmt);
    vsnprintf(t->t_error, TLS_ERROR_MAX, fmt, ap);
    va_end(ap);
}

/* OpenSSL's reason for the failure, with the verification result when a
 * certificate was refused; the error queue is left empty. */
static void tls_record_error(struct tls *t, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    long vr = SSL_get_verify_result(t->t_ssl);

    if (!reason)
        reason = fallback;
    if (vr != X509_V_OK && e && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
        tls_errorf(t, "%s (%s)", reason, X509_verify_cert_error_string(vr));
    else
        tls_errorf(t, "%s", reason);
    ERR_clear_error();
}

static int tls_break(struct tls *t, const char *why)
{
    tls_record_error(t, why);
    t->t_broken = true;
    t->t_fatal = true;
    return WHARF_EBROKEN;
}

/* ---- moving ciphertext ------------------------------------------------------ */

/* Sends what OpenSSL wrote, in order, one writer at a time. */
static int tls_flush(struct tls *t)
{
    const unsigned char *data;
    size_t len;
    void *block;
    int rc;

    while (tlsbio_out_pending(&t->t_io) > 0) {
        if (t->t_writing) {
            if ((rc = tls_wait(&t->t_write_q)) < 0)
                return rc;
            continue;
        }
        /* the send may suspend (and another task add records): the bytes
         * leave from the buffer they are in, taken from the queue, which
         * starts a new one; an idle stream holds none */
        block = tlsbio_take(&t->t_io, &data, &len);
        t->t_writing = true;
        rc = wharf_send(t->t_base.inner, data, len);
        t->t_writing = false;
        free(block);
        tls_wake_all(&t->t_write_q);
        if (rc < 0) {
            /* part of a record may have gone: nothing after it can be sent */
            t->t_broken = t->t_fatal = true;
            tls_errorf(t, "sending to the peer: %s", wharf_strerror(rc));
            return rc == WHARF_ECANCELLED ? rc : WHARF_EBROKEN;
        }
    }
    return 0;
}

#define TLS_FEED_EOF 1

/* Brings more ciphertext in, or waits for the task that is doing so.
 * Returns 0, TLS_FEED_EOF (the transport ended between records: a ragged
 * EOF, kept from OpenSSL so that its state stays alive and close_notify
 * can still be sent), or an error. */
static int tls_feed(struct tls *t)
{
    const unsigned char *data = NULL;
    ssize_t n;

    if (t->t_reading)
        return tls_wait(&t->t_read_q);
    if (t->t_ragged)
        return TLS_FEED_EOF;
    t->t_reading = true;
    /* an idle stream holds no buffer (stream_receive_scratch) */
    n = stream_receive_scratch(t->t_base.inner, TLS_IO_BUF, &data, &t->t_ibuf);
    t->t_reading = false;
    tls_wake_all(&t->t_read_q);
    if (n > 0) {
        /* read where they are by the SSL call that follows (tls_do) */
        tlsbio_lend(&t->t_io, data, (size_t)n);
        return 0;
    }
    if (n == WHARF_EOF) {
        if (t->t_done && !SSL_has_pending(t->t_ssl) && tlsbio_in_pending(&t->t_io) == 0) {
            t->t_ragged = true;
            return TLS_FEED_EOF;
        }
        /* in a record or the handshake: OpenSSL says what it is */
        t->t_io.io_in_eof = true;
        return 0;
    }
    if (n == WHARF_ECANCELLED || n == WHARF_ECLOSED)
        return (int)n;
    tls_errorf(t, "receiving from the peer: %s", wharf_strerror((int)n));
    return WHARF_EBROKEN;
}

/* ---- calling OpenSSL ------------------------------------------------------------ */

static int tls_do(struct tls *t, enum tls_op op, void *buf, size_t len, size_t *done)
{
    switch (op) {
    case TLS_HANDSHAKE: return SSL_do_handshake(t->t_ssl);
    case TLS_READ: return SSL_read_ex(t->t_ssl, buf, len, done);
    case TLS_WRITE: return SSL_write_ex(t->t_ssl, buf, len, done);
    case TLS_SHUTDOWN: return SSL_shutdown(t->t_ssl);
    }
    return -1;
}

/* The transport ended without close_notify: truncation, or a peer that
 * does not bother. Only after the handshake, and between records, may it
 * pass for an end. */
static int tls_ragged(struct tls *t, bool clean)
{
    t->t_ragged = true;
    ERR_clear_error();
    if (clean && t->t_done && !(t->t_flags & WHARF_TLS_STANDARD)) {
        t->t_eof = true;
        return WHARF_EOF;
    }
    tls_errorf(t, "the peer closed the connection without close_notify");
    t->t_broken = true;
    t->t_fatal |= !clean;
    return WHARF_EBROKEN;
}

/* Runs op until it completes, feeding and flushing as OpenSSL asks (AnyIO's
 * _call_sslobject_method). Returns op's result (> 0, or 0 for a shutdown
 * that sent ours and awaits the peer's), WHARF_EOF, or an error. */
static int tls_call_more(struct tls *t, enum tls_op op, void *buf, size_t len, size_t *done,
                         bool more)
{
    int r, err, rc;

    for (;;) {
        /* SSL_get_error reads the queue: it must hold only this call's
         * errors (ERR_clear_error walks all 16 slots: only when needed) */
        if (ERR_peek_error() != 0)
            ERR_clear_error();
        r = tls_do(t, op, buf, len, done);
        err = r > 0 || (op == TLS_SHUTDOWN && r == 0) ? SSL_ERROR_NONE
                                                       : SSL_get_error(t->t_ssl, r);
        /* the input it left unread (lent by tls_feed) is kept before
         * anything can suspend */
        if (tlsbio_keep(&t->t_io) < 0)
            return tls_break(t, "out of memory");
        /* whatever OpenSSL produced (data, a ticket, an alert) goes out;
         * a write with more to come keeps up to TLS_OUT_BATCH for later */
        if (more && err == SSL_ERROR_NONE && tlsbio_out_pending(&t->t_io) < TLS_OUT_BATCH)
            rc = 0;
        else
            rc = tls_flush(t);
        switch (err) {
        case SSL_ERROR_NONE:
            return rc < 0 ? rc : r;
        case SSL_ERROR_WANT_READ:
            if (rc < 0 || (rc = tls_feed(t)) < 0)
                return rc;
            if (rc == TLS_FEED_EOF)
                return tls_ragged(t, true);
            continue;
        case SSL_ERROR_WANT_WRITE:
            if (rc < 0)
                return rc;
            continue;
        case SSL_ERROR_ZERO_RETURN:         /* the peer's close_notify */
            t->t_eof = true;
            return WHARF_EOF;
        default:
            if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING ||
                (err == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0))
                return tls_ragged(t, false);
            return tls_break(t, "TLS protocol error");
        }
    }
}

static int tls_call(struct tls *t, enum tls_op op, void *buf, size_t len, size_t *done)
{
    return tls_call_more(t, op, buf, len, done, false);
}

/* ---- the handshake ------------------------------------------------------------------ */

struct hs_job {
    struct tls *t;
    int rc;
};

static int hs_task(void *arg)
{
    struct hs_job *j = arg;

    j->rc = tls_call(j->t, TLS_HANDSHAKE, NULL, 0, NULL);
    return 0;
}

/* OpenSSL's handshake is deep (a signature, a key exchange: some 20 KiB of
 * stack), and a task's stack keeps every page it ever touched. So the
 * handshake runs in a short-lived child task, whose stack goes back to the
 * scheduler's cache, hot for the next handshake: the caller's task, which
 * may live for hours with the connection, stays shallow (a page or two),
 * and nothing need be given back when it idles. Cancelling the caller
 * cancels the child (it runs in a group inside the caller's scopes). */
static int tls_handshake_call(struct tls *t)
{
    struct hs_job j = { t, 0 };
    struct wharf_group *g = wharf_group_open();
    int rc;

    if (!g)
        return -ENOMEM;
    if ((rc = wharf_group_spawn(g, hs_task, &j)) < 0) {
        wharf_group_close(g, 0);
        return rc;
    }
    rc = wharf_group_close(g, 0);
    return j.rc < 0 ? j.rc : rc;
}

static int tls_handshake(struct tls *t)
{
    int rc;

    if (t->t_done)
        return 0;
    if (t->t_broken)
        return WHARF_EBROKEN;
    rc = tls_handshake_call(t);
    if (rc == WHARF_EOF)        /* close_notify before the handshake ended */
        rc = tls_break(t, "the peer closed the connection during the handshake");
    if (rc < 0)
        return rc;
    t->t_done = true;
    return 0;
}

/* ---- the ops ------------------------------------------------------------------------- */

static int tls_enter(struct tls *t)
{
    if (t->t_closed)
        return WHARF_ECLOSED;
    if (t->t_broken)
        return WHARF_EBROKEN;
    return tls_handshake(t);
}

static ssize_t tls_receive(struct wharf_stream *s, void *buf, size_t max)
{
    struct tls *t = (struct tls *)s;
    size_t got = 0;
    int rc;

    if (!t->t_active)
        return t->t_closed ? WHARF_ECLOSED : wharf_receive(s->inner, buf, max);
    if (t->t_eof && !t->t_closed)
        return WHARF_EOF;       /* repeatably, even after a send failed since */
    if ((rc = tls_enter(t)) < 0)
        return rc;
    /* OpenSSL takes its record buffer (16 KiB) when SSL_read starts and,
     * finding no input, keeps it until a record comes: an idle stream
     * would hold one. With nothing buffered, wait for ciphertext first;
     * SSL_MODE_RELEASE_BUFFERS gives the buffer back once the record is
     * read. */
    while (!SSL_has_pending(t->t_ssl) && tlsbio_in_pending(&t->t_io) == 0 && !t->t_ragged) {
        if ((rc = tls_feed(t)) < 0)
            return rc;
        if (rc == TLS_FEED_EOF)
            break;              /* SSL_read below sees the end as before */
        if (tlsbio_in_pending(&t->t_io) == 0 && !t->t_reading)
            break;              /* an end inside a record: OpenSSL decides */
    }
    rc = tls_call(t, TLS_READ, buf, max > INT_MAX ? INT_MAX : max, &got);
    return rc < 0 ? rc : (ssize_t)got;
}

static int tls_send(struct wharf_stream *s, const void *buf, size_t len)
{
    struct tls *t = (struct tls *)s;
    const char *p = buf;
    size_t done;
    int rc;

    if (!t->t_active)
        return t->t_closed ? WHARF_ECLOSED : wharf_send(s->inner, buf, len);
    if ((rc = tls_enter(t)) < 0)
        return rc;
    while (len > 0) {
        size_t n = len < TLS_WRITE_CHUNK ? len : TLS_WRITE_CHUNK;

        done = 0;
        rc = tls_call_more(t, TLS_WRITE, (void *)(uintptr_t)p, n, &done, len > n);
        if (rc == WHARF_EOF)
            return WHARF_EBROKEN;   /* the peer closed: nobody reads any more */
        if (rc < 0)
            return rc;
        p += done;
        len -= done;
    }
    return 0;
}

static int tls_send_eof(struct wharf_stream *s)
{
    struct tls *t = (struct tls *)s;

    if (t->t_closed)
        return WHARF_ECLOSED;
    if (!t->t_active)
        return wharf_send_eof(s->inner);
    return WHARF_ENOTSUP;       /* TLS has no half-close (AnyIO: NotImplementedError) */
}

static int tls_wait_op(struct wharf_stream *s, unsigned events)
{
    struct tls *t = (struct tls *)s;

    if (t->t_closed)
        return WHARF_ECLOSED;
    if (t->t_active && (events & WHARF_READABLE) &&
        (SSL_pending(t->t_ssl) > 0 || tlsbio_in_pending(&t->t_io) > 0))
        return 0;
    return wharf_wait(s->inner, events);
}

/* The next read edge of the transport, unless something is readable
 * already: plaintext OpenSSL holds, ciphertext not yet given to it, the
 * transport's end. A record that comes in pieces then wakes the caller at
 * its first piece, to wait in wharf_receive for the rest. */
static int tls_notify_op(struct wharf_stream *s, void (*fn)(void *arg), void *arg)
{
    struct tls *t = (struct tls *)s;

    if (fn && t->t_closed)
        return WHARF_ECLOSED;
    if (fn && t->t_reading)
        return WHARF_EBUSY;
    if (fn && t->t_active &&
        (SSL_has_pending(t->t_ssl) || tlsbio_in_pending(&t->t_io) > 0 || t->t_eof ||
         t->t_ragged))
        return 1;
    return wharf_notify_readable(s->inner, fn, arg);
}

/* ---- attributes ------------------------------------------------------------------------ */

static int attr_str(void *out, size_t *len, const char *v)
{
    return v ? stream_attr_copy(out, len, v, strlen(v) + 1) : -ENOENT;
}

static int attr_subject(struct tls *t, void *out, size_t *len)
{
    X509 *peer = SSL_get0_peer_certificate(t->t_ssl);
    BIO *b;
    char *p;
    long n;
    int rc;

    if (!peer)
        return -ENOENT;
    if (!(b = BIO_new(BIO_s_mem())))
        return -ENOMEM;
    X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    BIO_write(b, "", 1);
    n = BIO_get_mem_data(b, &p);
    rc = stream_attr_copy(out, len, p, (size_t)n);
    BIO_free(b);
    return rc;
}

static int attr_peer_cert(struct tls *t, void *out, size_t *len)
{
    X509 *peer = SSL_get0_peer_certificate(t->t_ssl);
    unsigned char *der = NULL;
    int n, rc;

    if (!peer)
        return -ENOENT;
    if ((n = i2d_X509(peer, &der)) < 0)
        return -ENOMEM;
    rc = stream_attr_copy(out, len, der, (size_t)n);
    OPENSSL_free(der);
    return rc;
}

/* RFC 9266 tls-exporter for TLS 1.3; tls-unique (RFC 5929: the first
 * Finished message of the handshake) before. */
static int attr_channel_binding(struct tls *t, void *out, size_t *len)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    unsigned char v[64];
    bool first_is_ours;
    size_t n;

    if (SSL_version(t->t_ssl) >= TLS1_3_VERSION) {
        if (SSL_export_keying_material(t->t_ssl, v, 32, label, sizeof(label) - 1, NULL, 0,
                                       0) != 1)
            return -ENOENT;
        return stream_attr_copy(out, len, v, 32);
    }
    /* the client's Finished comes first in a full handshake, the server's
     * in a resumption */
    first_is_ours = (bool)!(t->t_flags & WHARF_TLS_SERVER) != (bool)SSL_session_reused(t->t_ssl);
    n = first_is_ours ? SSL_get_finished(t->t_ssl, v, sizeof(v))
                      : SSL_get_peer_finished(t->t_ssl, v, sizeof(v));
    return n ? stream_attr_copy(out, len, v, n) : -ENOENT;
}

static int tls_getattr(struct wharf_stream *s, int attr, void *out, size_t *len)
{
    struct tls *t = (struct tls *)s;
    const unsigned char *alpn;
    unsigned alpn_len;

    if (attr == WHARF_ATTR_TLS_SERVER_SIDE)
        return stream_attr_int(out, len, !!(t->t_flags & WHARF_TLS_SERVER));
    if (attr == WHARF_ATTR_TLS_STARTED)
        return stream_attr_int(out, len, t->t_done);
    if (attr == WHARF_ATTR_TLS_SSL)
        return stream_attr_copy(out, len, &t->t_ssl, sizeof(t->t_ssl));
    if (attr < WHARF_ATTR_TLS_FIRST || attr > WHARF_ATTR_TLS_STARTED)
        return -ENOENT;         /* not ours: the inner stream's, maybe */
    if (!t->t_done)
        return -ENOENT;
    switch (attr) {
    case WHARF_ATTR_TLS_ALPN:
        SSL_get0_alpn_selected(t->t_ssl, &alpn, &alpn_len);
        if (alpn_len == 0)
            return -ENOENT;
        {
            char p[256];

            memcpy(p, alpn, alpn_len);
            p[alpn_len] = '\0';
            return stream_attr_copy(out, len, p, alpn_len + 1);
        }
    case WHARF_ATTR_TLS_CIPHER: return attr_str(out, len, SSL_get_cipher_name(t->t_ssl));
    case WHARF_ATTR_TLS_VERSION: return attr_str(out, len, SSL_get_version(t->t_ssl));
    case WHARF_ATTR_TLS_SERVER_NAME:
        return attr_str(out, len, SSL_get_servername(t->t_ssl, TLSEXT_NAMETYPE_host_name));
    case WHARF_ATTR_TLS_PEER_CERT: return attr_peer_cert(t, out, len);
    case WHARF_ATTR_TLS_PEER_SUBJECT: return attr_subject(t, out, len);
    case WHARF_ATTR_TLS_CHANNEL_BINDING: return attr_channel_binding(t, out, len);
    case WHARF_ATTR_TLS_RESUMED: return stream_attr_int(out, len, SSL_session_reused(t->t_ssl));
    }
    return -ENOENT;
}

/* ---- closing ------------------------------------------------------------------------- */

/* Our close_notify, and in standard mode the peer's, within a shielded
 * deadline: a cancelled handler still closes TLS properly, a peer that
 * never answers does not hold the close. */
static void tls_goodbye(struct tls *t)
{
    struct wharf_scope sc;
    bool cancelled;
    int rc;

    if (!wharf_in_task()) {                 /* no I/O can wait: send what fits */
        SSL_shutdown(t->t_ssl);
        if (tlsbio_out_pending(&t->t_io) > 0 && !t->t_writing) {
            const unsigned char *data;
            size_t len;
            void *block = tlsbio_take(&t->t_io, &data, &len);

            wharf_send_nowait(t->t_base.inner, data, len);
            free(block);
        }
        return;
    }
    /* a cancelled task (a drain deadline, a timeout) says goodbye but does
     * not wait for the peer's: the cancellation bounds the connection */
    cancelled = wharf_checkpoint_if_cancelled() == WHARF_ECANCELLED;
    if (wharf_scope_enter(&sc, wharf_clock() + (cancelled ? TLS_CANCELLED_CLOSE_TIMEOUT
                                                          : WHARF_TLS_CLOSE_TIMEOUT),
                          WHARF_SCOPE_SHIELD) < 0)
        return;
    rc = tls_call(t, TLS_SHUTDOWN, NULL, 0, NULL);
    /* 0: ours is sent; the standard waits for the peer's (unless it came,
     * or its transport is gone already) */
    while (rc == 0 && !cancelled && (t->t_flags & WHARF_TLS_STANDARD) && !t->t_eof &&
           !t->t_ragged)
        rc = tls_call(t, TLS_SHUTDOWN, NULL, 0, NULL);
    wharf_scope_exit(&sc, 0);
}

static int tls_close(struct wharf_stream *s)
{
    struct tls *t = (struct tls *)s;

    if (t->t_closed)
        return 0;
    if (t->t_active && t->t_done && !t->t_fatal &&
        !(SSL_get_shutdown(t->t_ssl) & SSL_SENT_SHUTDOWN))
        tls_goodbye(t);
    t->t_closed = true;
    if (!t->t_detached)
        wharf_close(s->inner);
    tls_wake_all(&t->t_read_q);
    tls_wake_all(&t->t_write_q);
    return 0;
}

static void tls_free(struct wharf_stream *s)
{
    struct tls *t = (struct tls *)s;

    SSL_free(t->t_ssl);
    tlsbio_clear(&t->t_io);
    free(t->t_error);
    if (!t->t_detached)
        wharf_free(s->inner);
    free(t->t_ibuf);
    free(t);
}

static const struct wharf_stream_ops tls_ops = {
    .size = sizeof(struct wharf_stream_ops),
    .kind = "tls",
    .guard = WHARF_GUARD_RECEIVE | WHARF_GUARD_SEND,
    .receive = tls_receive,
    .send = tls_send,
    .send_eof = tls_send_eof,
    .wait = tls_wait_op,
    .getattr = tls_getattr,
    .notify_readable = tls_notify_op,
    .close = tls_close,
    .free = tls_free,
};

/* ---- making one ------------------------------------------------------------------- */

/* The client's name: SNI for a host name, and the name (or address) to
 * check in the certificate when the context verifies. */
static int tls_set_hostname(SSL *ssl, const char *hostname)
{
    unsigned char addr[16];
    bool is_ip = inet_pton(AF_INET, hostname, addr) == 1 ||
                 inet_pton(AF_INET6, hostname, addr) == 1;

    if (!is_ip && SSL_set_tlsext_host_name(ssl, hostname) != 1)
        return WHARF_EINVAL;
    if (!(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER))
        return 0;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), hostname) == 1 ? 0
                                                                              : WHARF_EINVAL;
    return SSL_set1_host(ssl, hostname) == 1 ? 0 : WHARF_EINVAL;
}

static int tls_setup(struct tls *t, SSL_CTX *ctx, const char *hostname)
{
    BIO *b;

    if (!(t->t_ssl = SSL_new(ctx)))
        return -ENOMEM;
    if (!(b = tlsbio_new(&t->t_io, TLS_OUT_BATCH + TLS_IO_BUF)))
        return -ENOMEM;
    SSL_set_bio(t->t_ssl, b, b);                /* one reference, for both */
    if (t->t_flags & WHARF_TLS_SERVER) {
        SSL_set_accept_state(t->t_ssl);
        return 0;
    }
    SSL_set_connect_state(t->t_ssl);
    return hostname ? tls_set_hostname(t->t_ssl, hostname) : 0;
}

int wharf_tls_new(struct wharf_stream *inner, SSL_CTX *ctx, unsigned flags,
                  const char *hostname, struct wharf_stream **out)
{
    struct tls *t;
    int rc;

    if (out)
        *out = NULL;
    if (!inner || !ctx || !out ||
        (flags & ~(WHARF_TLS_SERVER | WHARF_TLS_STANDARD | WHARF_TLS_DEFERRED))) {
        wharf_free(inner);
        return WHARF_EINVAL;
    }
    if (!(t = calloc(1, sizeof(*t)))) {
        wharf_free(inner);
        return -ENOMEM;
    }
    wharf_stream_init(&t->t_base, &tls_ops, inner);
    t->t_flags = flags;
    t->t_active = !(flags & WHARF_TLS_DEFERRED);
    TAILQ_INIT(&t->t_read_q);
    TAILQ_INIT(&t->t_write_q);
    if ((rc = tls_setup(t, ctx, hostname)) < 0) {
        tls_free(&t->t_base);
        ERR_clear_error();
        return rc;
    }
    *out = &t->t_base;
    return 0;
}

int wharf_tls_handshake(struct wharf_stream *s)
{
    struct tls *t = s && s->ops == &tls_ops ? (struct tls *)s : NULL;

    if (!t || !t->t_active)
        return WHARF_EINVAL;
    return t->t_closed ? WHARF_ECLOSED : tls_handshake(t);
}

int wharf_tls_wrap(struct wharf_stream *inner, SSL_CTX *ctx, unsigned flags,
                   const char *hostname, struct wharf_stream **out)
{
    int rc = wharf_tls_new(inner, ctx, flags, hostname, out);

    if (rc == 0 && !(flags & WHARF_TLS_DEFERRED) && (rc = wharf_tls_handshake(*out)) < 0) {
        wharf_free(*out);
        *out = NULL;
    }
    return rc;
}

/* STARTTLS's handshake, bounded as a daemon bounds the one at accept: a
 * failure or a timeout is remembered for its counters. */
static int tls_start_handshake(struct tls *t)
{
    struct wharf_scope sc;
    int rc;

    if (t->t_hs_timeout <= 0)
        rc = tls_handshake(t);
    else if ((rc = wharf_scope_enter(&sc, wharf_clock() + t->t_hs_timeout,
                                     WHARF_SCOPE_FAIL)) == 0)
        rc = wharf_scope_exit(&sc, tls_handshake(t));
    if (rc == WHARF_ETIMEDOUT) {
        /* OpenSSL stopped in the middle: nothing more can go over it */
        t->t_broken = t->t_fatal = true;
        tls_errorf(t, "not finished in time");
    }
    if (rc < 0 && rc != WHARF_ECANCELLED && rc != -ENOMEM)
        t->t_hs_failed = rc;
    return rc;
}

void tls_set_handshake_timeout(struct wharf_stream *s, double seconds)
{
    struct tls *t = tls_of(s);

    if (t)
        t->t_hs_timeout = seconds;
}

int tls_handshake_failure(struct wharf_stream *s)
{
    struct tls *t = tls_of(s);

    return t ? t->t_hs_failed : 0;
}

int wharf_start_tls(struct wharf_stream *s)
{
    struct tls *t = tls_of(s);
    struct evbuffer *held = NULL;
    unsigned char chunk[4096];
    int n;

    if (!t || t->t_active)
        return WHARF_EINVAL;
    /* a buffered layer above holds what came right behind the last line:
     * the start of the handshake */
    for (struct wharf_stream *x = s; x && x != &t->t_base; x = x->inner)
        if ((held = buffered_evbuffer(x)))
            break;
    while (held && (n = evbuffer_remove(held, chunk, sizeof(chunk))) > 0)
        if (tlsbio_put_in(&t->t_io, chunk, (size_t)n) < 0)
            return -ENOMEM;
    t->t_active = true;
    return t->t_closed ? WHARF_ECLOSED : tls_start_handshake(t);
}

int wharf_tls_unwrap(struct wharf_stream *s, struct wharf_stream **inner,
                     void **leftover, size_t *len)
{
    struct tls *t = s && s->ops == &tls_ops ? (struct tls *)s : NULL;
    size_t n;
    int rc;

    if (!t || !inner || !leftover || !len || !t->t_active)
        return WHARF_EINVAL;
    if ((rc = tls_enter(t)) < 0)
        return rc;
    do
        rc = tls_call(t, TLS_SHUTDOWN, NULL, 0, NULL);
    while (rc == 0);
    if (rc < 0 && rc != WHARF_EOF)
        return rc;
    n = tlsbio_in_pending(&t->t_io);
    *leftover = NULL;
    if (n > 0) {
        if (!(*leftover = malloc(n)))
            return -ENOMEM;
        tlsbio_get_in(&t->t_io, *leftover, n);
    }
    *len = n;
    *inner = s->inner;
    t->t_detached = true;
    t->t_closed = true;
    s->inner = NULL;
    tls_free(s);
    return 0;
}

const char *wharf_tls_error(struct wharf_stream *s)
{
    struct tls *t = tls_of(s);

    return t && t->t_error ? t->t_error : "";
}

struct wharf_stream *tls_close_notify(struct wharf_stream *s)
{
    struct tls *t = tls_of(s);

    if (!t || !t->t_active || t->t_closed || t->t_detached)
        return s;
    /* the standard's goodbye, at its close, reads the peer's bytes until
     * its close_notify, its end or the bound: that drains already */
    if (t->t_flags & WHARF_TLS_STANDARD)
        return NULL;
    if (t->t_done && !t->t_fatal && !(SSL_get_shutdown(t->t_ssl) & SSL_SENT_SHUTDOWN))
        tls_goodbye(t);
    return t->t_base.inner;
}

bool tls_ragged_seen(struct wharf_stream *s)
{
    struct tls *t = tls_of(s);

    return t && t->t_ragged;
}

int wharf_tls_started(struct wharf_stream *s)
{
    struct tls *t = tls_of(s);

    return t && t->t_done;
}
