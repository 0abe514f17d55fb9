/*
 * scripted.h: a scripted byte stream for the unit tests of stream wrappers
 * (check_buffered, check_text): the test hands it exact chunks, so where a
 * chunk ends is under the test's control.
 *
 * receive hands out the queued chunks in order (the rest of a chunk that
 * does not fit stays for the next call) and waits while none is queued;
 * after script_end() it reports WHARF_EOF. With a peer, send queues on the
 * peer and closing the sender ends the peer (a one-way pipe, as a memory
 * stream pair); without one, sent bytes are kept in sc_sent. Send after
 * send_eof is WHARF_EBROKEN; WHARF_ATTR_FD reads 42 unless the script was
 * made with SCRIPT_NO_FD.
 */
#ifndef WHARF_TESTS_SCRIPTED_H
#define WHARF_TESTS_SCRIPTED_H

#include <stdbool.h>
#include <stddef.h>

#include "wharf-int.h"

struct script_chunk {
    unsigned char *data;
    size_t len, off;
};

struct script {
    struct wharf_stream sc_head;
    struct script_chunk *sc_q;
    size_t sc_first, sc_n, sc_cap;
    bool sc_eof, sc_closed, sc_sent_eof, sc_no_fd;
    struct task *sc_waiter;
    struct script *sc_peer;
    unsigned char sc_sent[256];
    size_t sc_nsent;
};

/* script_new_opts() flags */
#define SCRIPT_NO_FD 0x1u   /* no attributes of its own: WHARF_ATTR_FD is -ENOENT */

/* Per forked test: how often scripts were closed (for real) and freed. */
extern int script_closes, script_frees;

struct script *script_of(struct wharf_stream *s);
struct wharf_stream *script_new(void);
struct wharf_stream *script_new_opts(unsigned flags);
void script_pipe(struct wharf_stream **tx, struct wharf_stream **rx);
void script_push(struct wharf_stream *s, const void *data, size_t len);
void script_push_str(struct wharf_stream *s, const char *str);
void script_end(struct wharf_stream *s);

#endif
