/*
 * fuzz.h: what the fuzz targets share. An input is byte 0, the size of the
 * chunks the peer's bytes arrive in less one (1..256: a header or line
 * split anywhere), then the bytes; a target's task (wharf_run) gets them
 * as a struct fz.
 */
#ifndef WHARF_FUZZ_H
#define WHARF_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <wharf/wharf.h>

#define FZ_DEADLINE 5.0             /* per input: longer is a hang */

struct fz {
    const uint8_t *data;
    size_t size, chunk;
};

/* Sends f's bytes to s chunk by chunk; the first failure. */
static inline int fz_send(struct wharf_stream *s, const struct fz *f)
{
    for (size_t off = 0; off < f->size; off += f->chunk) {
        size_t len = f->size - off < f->chunk ? f->size - off : f->chunk;
        int rc = wharf_send(s, f->data + off, len);

        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A conversation within FZ_DEADLINE: enter before it, end after it (a
 * conversation that ran into the deadline aborts, naming who). */
static inline void fz_bound(struct wharf_scope *sc)
{
    if (wharf_scope_enter(sc, wharf_clock() + FZ_DEADLINE, 0) < 0)
        abort();
}

static inline void fz_bound_end(struct wharf_scope *sc, const char *who)
{
    if (wharf_scope_exit(sc, 0) < 0 || wharf_scope_cancelled_caught(sc)) {
        fprintf(stderr, "%s: the conversation took over %.0f s\n", who, FZ_DEADLINE);
        abort();
    }
}

/* The libFuzzer entry: runs task(struct fz *) on each input. */
#define FZ_ENTRY(task)                                                    \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);         \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)          \
    {                                                                     \
        struct fz f = { data + 1, size - 1, 0 };                          \
                                                                          \
        if (size < 1)                                                     \
            return 0;                                                     \
        f.chunk = (size_t)data[0] + 1;                                    \
        if (wharf_run(task, &f) != 0)                                     \
            abort();                                                      \
        return 0;                                                         \
    }

#endif
