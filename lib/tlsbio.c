/*
 * tlsbio.c: the ciphertext queues between OpenSSL and a TLS stream's
 * transport (tls.c), as one BIO of our own instead of two memory BIOs.
 *
 * Why not BIO_s_mem: a memory BIO keeps the largest buffer it ever held
 * (the handshake's flights: some 1.2 KiB per idle connection, and 16 KiB
 * and more for a stream that once carried bulk), every byte is copied into
 * it and out of it again, and each BIO carries a lock. Here:
 *  - a queue holds a buffer only while it holds bytes: an idle stream has
 *    none;
 *  - input is lent: the bytes a receive brought (in the transport's scratch
 *    buffer) are read by OpenSSL where they are; only what it leaves
 *    unread is copied, before the task can suspend (tlsbio_keep);
 *  - output is taken whole (tlsbio_take): the send goes out of the
 *    queue's own buffer, and OpenSSL's next records start a new one;
 *  - one BIO serves both directions (read: input, write: output).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <openssl/bio.h>

#include "wharf-int.h"

#define QUEUE_MIN 1024          /* a first buffer for small records */

/* ---- a queue -------------------------------------------------------------------- */

static size_t queue_pending(const struct tls_queue *q)
{
    return q->q_len + q->q_lent_len;
}

/* Appends n bytes after the owned ones (lent bytes are newer than owned
 * ones only while a call runs: tlsbio_keep moves them behind). */
static int queue_append(struct tls_queue *q, const void *p, size_t n)
{
    size_t need = q->q_len + n;

    if (q->q_off + need > q->q_cap) {
        if (need <= q->q_cap) {                 /* room at the front */
            memmove(q->q_buf, q->q_buf + q->q_off, q->q_len);
        } else {
            size_t cap = q->q_cap * 2;
            unsigned char *b;

            if (cap < need)
                cap = need;
            if (cap < QUEUE_MIN)
                cap = QUEUE_MIN;
            if (q->q_len == 0 && n >= q->q_big_from && cap < q->q_big)
                cap = q->q_big;                 /* the first of many records */
            if (q->q_off == 0 && q->q_buf) {
                if (!(b = realloc(q->q_buf, cap)))
                    return -ENOMEM;
            } else {
                if (!(b = malloc(cap)))
                    return -ENOMEM;
                if (q->q_len)
                    memcpy(b, q->q_buf + q->q_off, q->q_len);
                free(q->q_buf);
            }
            q->q_buf = b;
            q->q_cap = cap;
        }
        q->q_off = 0;
    }
    memcpy(q->q_buf + q->q_off + q->q_len, p, n);
    q->q_len += n;
    return 0;
}

/* Takes up to max bytes from the front: owned, then lent. An emptied
 * queue gives its buffer back. */
static size_t queue_read(struct tls_queue *q, void *out, size_t max)
{
    size_t n = 0, k;

    if (q->q_len > 0) {
        k = q->q_len < max ? q->q_len : max;
        memcpy(out, q->q_buf + q->q_off, k);
        q->q_off += k;
        q->q_len -= k;
        n = k;
        if (q->q_len == 0) {
            free(q->q_buf);
            q->q_buf = NULL;
            q->q_off = q->q_cap = 0;
        }
    }
    if (n < max && q->q_lent_len > 0) {
        k = q->q_lent_len < max - n ? q->q_lent_len : max - n;
        memcpy((unsigned char *)out + n, q->q_lent, k);
        q->q_lent += k;
        q->q_lent_len -= k;
        n += k;
    }
    return n;
}

static void queue_clear(struct tls_queue *q)
{
    free(q->q_buf);
    *q = (struct tls_queue){ .q_big = q->q_big, .q_big_from = q->q_big_from };
}

/* ---- the BIO method --------------------------------------------------------------- */

static int bio_read(BIO *b, char *out, int len)
{
    struct tlsbio *io = BIO_get_data(b);
    size_t n;

    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if ((n = queue_read(&io->io_in, out, (size_t)len)) > 0)
        return (int)n;
    if (io->io_in_eof)
        return 0;                   /* the transport ended: OpenSSL decides */
    BIO_set_retry_read(b);
    return -1;
}

static int bio_write(BIO *b, const char *p, int len)
{
    struct tlsbio *io = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    return queue_append(&io->io_out, p, (size_t)len) < 0 ? -1 : len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct tlsbio *io = BIO_get_data(b);

    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_PENDING: return (long)queue_pending(&io->io_in);
    case BIO_CTRL_WPENDING: return (long)queue_pending(&io->io_out);
    case BIO_CTRL_EOF: return io->io_in_eof && queue_pending(&io->io_in) == 0;
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DUP: return 1;
    default: return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_method_once = PTHREAD_ONCE_INIT;

static void bio_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wharf tls");

    if (m && BIO_meth_set_read(m, bio_read) == 1 && BIO_meth_set_write(m, bio_write) == 1 &&
        BIO_meth_set_ctrl(m, bio_ctrl) == 1 && BIO_meth_set_create(m, bio_create) == 1) {
        bio_method = m;
        return;
    }
    BIO_meth_free(m);
}

/* ---- for tls.c ------------------------------------------------------------------- */

BIO *tlsbio_new(struct tlsbio *io, size_t out_big)
{
    BIO *b;

    *io = (struct tlsbio){ .io_out = { .q_big = out_big, .q_big_from = out_big / 8 } };
    pthread_once(&bio_method_once, bio_method_make);
    if (!bio_method || !(b = BIO_new(bio_method)))
        return NULL;
    BIO_set_data(b, io);
    return b;
}

void tlsbio_clear(struct tlsbio *io)
{
    queue_clear(&io->io_in);
    queue_clear(&io->io_out);
}

void tlsbio_lend(struct tlsbio *io, const void *p, size_t n)
{
    io->io_in.q_lent = p;
    io->io_in.q_lent_len = n;
}

int tlsbio_keep(struct tlsbio *io)
{
    struct tls_queue *q = &io->io_in;
    const unsigned char *p = q->q_lent;
    size_t n = q->q_lent_len;

    q->q_lent = NULL;
    q->q_lent_len = 0;
    return n > 0 ? queue_append(q, p, n) : 0;
}

int tlsbio_put_in(struct tlsbio *io, const void *p, size_t n)
{
    return queue_append(&io->io_in, p, n);
}

size_t tlsbio_get_in(struct tlsbio *io, void *out, size_t max)
{
    return queue_read(&io->io_in, out, max);
}

size_t tlsbio_in_pending(const struct tlsbio *io)
{
    return queue_pending(&io->io_in);
}

size_t tlsbio_out_pending(const struct tlsbio *io)
{
    return io->io_out.q_len;
}

void *tlsbio_take(struct tlsbio *io, const unsigned char **data, size_t *len)
{
    struct tls_queue *q = &io->io_out;
    void *block = q->q_buf;

    *data = q->q_buf + q->q_off;
    *len = q->q_len;
    q->q_buf = NULL;
    q->q_off = q->q_len = q->q_cap = 0;
    return block;
}
