/*
 * fuzz_proxy.c: libFuzzer target for what a load balancer's PROXY header
 * reader takes from the network (src/proxyproto.c proxy_read), over a
 * buffered memory stream as wharfd reads it from a socket.
 *
 * Input: byte 0 is the size of the chunks the bytes arrive in (1..256:
 * headers split anywhere), the rest is what the peer sends, then its EOF.
 * Checked beyond "no crash, no leak, no hang": a header read whole leaves
 * every byte behind it to the next reader, in order, and names addresses
 * of the family it says.
 */
#include "config.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <wharf/wharf.h>

#include "fuzz.h"
#include "wharfd.h"

static void check_addr(const struct sockaddr_storage *ss, socklen_t len)
{
    if (ss->ss_family == AF_INET && len == sizeof(struct sockaddr_in))
        return;
    if (ss->ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6))
        return;
    if (ss->ss_family == AF_UNIX && len > 0 && len <= sizeof(*ss))
        return;
    abort();
}

static int fz_task(void *arg)
{
    struct fz *f = arg;
    struct wharf_stream *a = NULL, *b = NULL, *in;
    struct proxy_hdr h;
    const char *why = NULL;
    unsigned char *rest;
    size_t got = 0;
    ssize_t n;
    int rc;

    if (wharf_memstream_pair(WHARF_UNBOUNDED, &a, &b) < 0 || fz_send(a, f) < 0 ||
        wharf_send_eof(a) < 0 || !(in = wharf_buffered_new(b)))
        abort();
    rc = proxy_read(in, &h, &why);
    if (rc == 0 && !h.ph_local) {
        check_addr(&h.ph_src, h.ph_srclen);
        check_addr(&h.ph_dst, h.ph_dstlen);
        if (h.ph_src.ss_family != h.ph_dst.ss_family)
            abort();
    } else if (rc < 0 && (rc != WHARF_EINVAL || !why)) {
        abort();                    /* a malformed header says why */
    }
    if (rc == 0) {
        /* what follows the header is the next reader's, every byte */
        if (!(rest = malloc(f->size + 1)))
            abort();
        while ((n = wharf_receive(in, rest + got, f->size + 1 - got)) > 0)
            got += (size_t)n;
        if (n != WHARF_EOF || got > f->size ||
            memcmp(rest, f->data + (f->size - got), got) != 0)
            abort();
        free(rest);
    }
    wharf_free(in);
    wharf_free(a);
    return 0;
}

FZ_ENTRY(fz_task)
