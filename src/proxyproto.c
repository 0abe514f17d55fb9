/*
 * proxyproto.c: the PROXY protocol header a load balancer puts in front of
 * a connection (haproxy's proxy-protocol.txt, versions 1 and 2), read on a
 * listener with proxy_protocol = true before anything else (TLS included).
 * The header is read through a buffered stream so that not one byte past
 * it is taken from what follows (a ClientHello, a request). The parsers are
 * separate from the reading so that the tests feed them any bytes.
 * Not for: sending the header (the forward plugin does that).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "wharfd.h"

#define V1_MAX 107                  /* the whole line, CRLF included */
#define V2_SIG_LEN 12
#define V2_HEAD_LEN 16
#define V2_MAX_BODY 1024            /* addresses and TLVs: plenty for any balancer */

static const unsigned char v2_sig[V2_SIG_LEN] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

static int bad(const char **why, const char *reason)
{
    *why = reason;
    return WHARF_EINVAL;
}

/* ---- version 1 --------------------------------------------------------------- */

/* A decimal port: 0..65535, digits only, no leading zeros but "0". */
static bool parse_port(const char *s, unsigned *port)
{
    unsigned long v = 0;

    if (!*s || strlen(s) > 5 || (s[0] == '0' && s[1]))
        return false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    *port = (unsigned)v;
    return v <= 65535;
}

static bool set_inet(struct sockaddr_storage *ss, socklen_t *len, int family, const char *host,
                     unsigned port)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;

        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *len = sizeof(*in);
        return inet_pton(AF_INET, host, &in->sin_addr) == 1;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    *len = sizeof(*in6);
    return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1;
}

int proxy_parse_v1(const char *line, size_t len, struct proxy_hdr *h, const char **why)
{
    char buf[V1_MAX + 1], *field[6], *save = NULL;
    unsigned sport, dport;
    int n = 0, family;

    memset(h, 0, sizeof(*h));
    if (len > V1_MAX - 2)
        return bad(why, "a version 1 header longer than 107 bytes");
    memcpy(buf, line, len);
    buf[len] = '\0';
    if (memchr(line, '\0', len))
        return bad(why, "a NUL byte in a version 1 header");
    char *tok = strtok_r(buf, " ", &save);

    for (; tok && n < 6; tok = strtok_r(NULL, " ", &save))
        field[n++] = tok;
    if (n < 2 || strcmp(field[0], "PROXY") != 0)
        return bad(why, "not a PROXY header");
    if (strcmp(field[1], "UNKNOWN") == 0) {
        h->ph_local = true;         /* the balancer's own connection: keep the real peer */
        return 0;
    }
    if (strcmp(field[1], "TCP4") == 0)
        family = AF_INET;
    else if (strcmp(field[1], "TCP6") == 0)
        family = AF_INET6;
    else
        return bad(why, "an unknown protocol in a version 1 header (TCP4, TCP6, UNKNOWN)");
    if (n != 6 || tok)
        return bad(why, "a version 1 header without exactly two addresses and two ports");
    if (!parse_port(field[4], &sport) || !parse_port(field[5], &dport))
        return bad(why, "a bad port in a version 1 header");
    if (!set_inet(&h->ph_src, &h->ph_srclen, family, field[2], sport) ||
        !set_inet(&h->ph_dst, &h->ph_dstlen, family, field[3], dport))
        return bad(why, "a bad address in a version 1 header");
    return 0;
}

/* ---- version 2 ----------------------------------------------------------------- */

static void set_unix(struct sockaddr_storage *ss, socklen_t *len, const unsigned char *path)
{
    struct sockaddr_un *un = (struct sockaddr_un *)ss;

    memset(ss, 0, sizeof(*ss));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, 108 < sizeof(un->sun_path) ? 108 : sizeof(un->sun_path) - 1);
    un->sun_path[sizeof(un->sun_path) - 1] = '\0';
    *len = sizeof(*un);
}

static int v2_addresses(const unsigned char *b, size_t blen, unsigned fam, struct proxy_hdr *h,
                        const char **why)
{
    switch (fam >> 4) {
    case 0x1:                       /* AF_INET: 4 + 4 + 2 + 2 */
        if (blen < 12)
            return bad(why, "a version 2 header too short for its IPv4 addresses");
        {
            struct sockaddr_in *s = (struct sockaddr_in *)&h->ph_src;
            struct sockaddr_in *d = (struct sockaddr_in *)&h->ph_dst;

            s->sin_family = d->sin_family = AF_INET;
            memcpy(&s->sin_addr, b, 4);
            memcpy(&d->sin_addr, b + 4, 4);
            memcpy(&s->sin_port, b + 8, 2);
            memcpy(&d->sin_port, b + 10, 2);
            h->ph_srclen = h->ph_dstlen = sizeof(*s);
        }
        return 0;
    case 0x2:                       /* AF_INET6: 16 + 16 + 2 + 2 */
        if (blen < 36)
            return bad(why, "a version 2 header too short for its IPv6 addresses");
        {
            struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->ph_src;
            struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->ph_dst;

            s->sin6_family = d->sin6_family = AF_INET6;
            memcpy(&s->sin6_addr, b, 16);
            memcpy(&d->sin6_addr, b + 16, 16);
            memcpy(&s->sin6_port, b + 32, 2);
            memcpy(&d->sin6_port, b + 34, 2);
            h->ph_srclen = h->ph_dstlen = sizeof(*s);
        }
        return 0;
    case 0x3:                       /* AF_UNIX: 108 + 108 */
        if (blen < 216)
            return bad(why, "a version 2 header too short for its UNIX addresses");
        set_unix(&h->ph_src, &h->ph_srclen, b);
        set_unix(&h->ph_dst, &h->ph_dstlen, b + 108);
        return 0;
    default:                        /* AF_UNSPEC: nothing to take */
        h->ph_local = true;
        return 0;
    }
}

int proxy_parse_v2(const unsigned char *b, size_t len, struct proxy_hdr *h, const char **why)
{
    size_t body;
    unsigned ver_cmd, fam;

    memset(h, 0, sizeof(*h));
    if (len < V2_HEAD_LEN || memcmp(b, v2_sig, V2_SIG_LEN) != 0)
        return bad(why, "not a PROXY version 2 header");
    ver_cmd = b[12];
    fam = b[13];
    body = (size_t)b[14] << 8 | b[15];
    if ((ver_cmd >> 4) != 2)
        return bad(why, "a PROXY header of an unknown version");
    if (body > V2_MAX_BODY)
        return bad(why, "a version 2 header longer than 1024 bytes after its head");
    if (len < V2_HEAD_LEN + body)
        return bad(why, "a truncated version 2 header");
    switch (ver_cmd & 0xF) {
    case 0x0:                       /* LOCAL: health checks of the balancer */
        h->ph_local = true;
        return 0;
    case 0x1:
        break;
    default:
        return bad(why, "a version 2 header with an unknown command");
    }
    if ((fam & 0xF) != 0x1 && (fam >> 4) != 0)
        return bad(why, "a version 2 header for a datagram or unknown transport");
    return v2_addresses(b + V2_HEAD_LEN, body, fam, h, why);
}

/* ---- reading one ------------------------------------------------------------------ */

static int read_v2(struct wharf_stream *s, unsigned char *buf, struct proxy_hdr *h,
                   const char **why)
{
    size_t body;
    ssize_t n;

    n = wharf_receive_exactly(s, buf + V2_SIG_LEN, V2_HEAD_LEN - V2_SIG_LEN);
    if (n < 0)
        return n == WHARF_EINCOMPLETE || n == WHARF_EOF ? bad(why, "a truncated header") : (int)n;
    body = (size_t)buf[14] << 8 | buf[15];
    if (body > V2_MAX_BODY)
        return bad(why, "a version 2 header longer than 1024 bytes after its head");
    if (body > 0 && (n = wharf_receive_exactly(s, buf + V2_HEAD_LEN, body)) < 0)
        return n == WHARF_EINCOMPLETE || n == WHARF_EOF ? bad(why, "a truncated header") : (int)n;
    return proxy_parse_v2(buf, V2_HEAD_LEN + body, h, why);
}

static int read_v1(struct wharf_stream *s, unsigned char *buf, struct proxy_hdr *h,
                   const char **why)
{
    ssize_t n;

    n = wharf_receive_until(s, "\r\n", 2, buf + V2_SIG_LEN, V1_MAX - 2 - V2_SIG_LEN);
    if (n == WHARF_ENODELIM)
        return bad(why, "a version 1 header longer than 107 bytes");
    if (n < 0)
        return n == WHARF_EINCOMPLETE || n == WHARF_EOF ? bad(why, "a truncated header") : (int)n;
    return proxy_parse_v1((const char *)buf, V2_SIG_LEN + (size_t)n, h, why);
}

int proxy_read(struct wharf_stream *s, struct proxy_hdr *h, const char **why)
{
    unsigned char buf[V2_HEAD_LEN + V2_MAX_BODY];
    ssize_t n;

    /* 12 bytes tell the versions apart; the shortest header has 15 */
    n = wharf_receive_exactly(s, buf, V2_SIG_LEN);
    if (n < 0)
        return n == WHARF_EINCOMPLETE || n == WHARF_EOF ? bad(why, "a truncated header") : (int)n;
    if (memcmp(buf, v2_sig, V2_SIG_LEN) == 0)
        return read_v2(s, buf, h, why);
    if (memcmp(buf, "PROXY ", 6) == 0)
        return read_v1(s, buf, h, why);
    return bad(why, "no PROXY header (the listener has proxy_protocol = true)");
}
