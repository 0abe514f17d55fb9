/*
 * proxy.c: the PROXY protocol header (haproxy's proxy-protocol.txt,
 * versions 1 and 2) that forward sends first to its target, so that the
 * target learns who the client is: the source is the client's address
 * (what an inbound PROXY header named, when the listener reads one), the
 * destination the listener's address. Version 2 adds the TLS facts of the
 * client's connection as TLVs: the agreed ALPN protocol, the SNI name as
 * authority, and PP2_TYPE_SSL with the version, the cipher, and whether a
 * client certificate was shown and verified (with its CN).
 * Not for: reading headers (wharfd's proxyproto.c does that).
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <openssl/x509.h>
#include <wharf/tls.h>

#include "forward.h"

#define PP2_SIG "\r\n\r\n\0\r\nQUIT\n"
#define PP2_SIG_LEN 12
#define PP2_HEAD_LEN 16
#define PP2_CMD_LOCAL 0x20
#define PP2_CMD_PROXY 0x21
#define PP2_FAM_UNSPEC 0x00
#define PP2_FAM_TCP4 0x11
#define PP2_FAM_TCP6 0x21
#define PP2_FAM_UNIX_STREAM 0x31
#define PP2_UNIX_ADDR_LEN 108

#define PP2_TYPE_ALPN 0x01
#define PP2_TYPE_AUTHORITY 0x02
#define PP2_TYPE_SSL 0x20
#define PP2_SUBTYPE_SSL_VERSION 0x21
#define PP2_SUBTYPE_SSL_CN 0x22
#define PP2_SUBTYPE_SSL_CIPHER 0x23

#define PP2_CLIENT_SSL 0x01
#define PP2_CLIENT_CERT_CONN 0x02
#define PP2_CLIENT_CERT_SESS 0x04

#define TLV_VALUE_MAX 255       /* what we put in one string TLV */

/* The connection's two ends, as the PROXY protocol sees them. */
struct ends {
    struct sockaddr_storage src, dst;
    socklen_t srclen, dstlen;
};

/* ---- addresses ------------------------------------------------------------ */

static bool get_ends(struct wharf_stream *client, struct ends *e)
{
    e->srclen = sizeof(e->src);
    e->dstlen = sizeof(e->dst);
    return wharf_getattr_addr(client, WHARF_ATTR_REMOTE_ADDRESS, &e->src, &e->srclen) == 0 &&
           wharf_getattr_addr(client, WHARF_ATTR_LOCAL_ADDRESS, &e->dst, &e->dstlen) == 0;
}

/* An IPv4 address as IPv4-mapped IPv6, so that both ends share a family. */
static struct sockaddr_storage mapped_v6(const struct sockaddr_storage *ss)
{
    struct sockaddr_storage out;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;

    memcpy(&in, ss, sizeof(in));
    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    in6.sin6_port = in.sin_port;
    in6.sin6_addr.s6_addr[10] = 0xff;
    in6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&in6.sin6_addr.s6_addr[12], &in.sin_addr, 4);
    memset(&out, 0, sizeof(out));
    memcpy(&out, &in6, sizeof(in6));
    return out;
}

/* AF_INET, AF_INET6 (both IP ends, IPv4 mapped when mixed), AF_UNIX (both
 * UNIX), or AF_UNSPEC when the ends are unknown or of no common kind. */
static int ends_family(struct ends *e)
{
    int s = e->src.ss_family, d = e->dst.ss_family;
    bool s_ip = s == AF_INET || s == AF_INET6, d_ip = d == AF_INET || d == AF_INET6;

    if (s_ip && d_ip) {
        if (s == d)
            return s;
        if (s == AF_INET)
            e->src = mapped_v6(&e->src);
        else
            e->dst = mapped_v6(&e->dst);
        return AF_INET6;
    }
    return s == AF_UNIX && d == AF_UNIX ? AF_UNIX : AF_UNSPEC;
}

static unsigned port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
                                    : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static const void *ip_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                                    : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
}

/* ---- version 1 -------------------------------------------------------------- */

/* "PROXY TCP4 src dst sport dport\r\n"; "PROXY UNKNOWN\r\n" for anything
 * else (UNIX clients: version 1 has no UNIX family). */
static size_t header_v1(struct ends *e, bool known, unsigned char *buf)
{
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    int family = known ? ends_family(e) : AF_UNSPEC;
    int n;

    if (family != AF_INET && family != AF_INET6)
        return (size_t)snprintf((char *)buf, FWD_PROXY_MAX, "PROXY UNKNOWN\r\n");
    inet_ntop(family, ip_of(&e->src), src, sizeof(src));
    inet_ntop(family, ip_of(&e->dst), dst, sizeof(dst));
    n = snprintf((char *)buf, FWD_PROXY_MAX, "PROXY %s %s %s %u %u\r\n",
                 family == AF_INET ? "TCP4" : "TCP6", src, dst, port_of(&e->src),
                 port_of(&e->dst));
    return (size_t)n;
}

/* ---- version 2 -------------------------------------------------------------- */

struct out {
    unsigned char *p;
    size_t len, cap;
};

static bool room(const struct out *o, size_t n)
{
    return o->cap - o->len >= n;
}

static void put(struct out *o, const void *v, size_t n)
{
    memcpy(o->p + o->len, v, n);
    o->len += n;
}

static void put16(struct out *o, size_t v)
{
    unsigned char b[2] = { (unsigned char)(v >> 8), (unsigned char)v };

    put(o, b, 2);
}

/* One TLV; left out when it does not fit. */
static void put_tlv(struct out *o, unsigned type, const void *v, size_t n)
{
    unsigned char t = (unsigned char)type;

    if (n > 0xffff || !room(o, 3 + n))
        return;
    put(o, &t, 1);
    put16(o, n);
    put(o, v, n);
}

/* A string attribute of the client's TLS as a TLV, when there is one. */
static void put_attr_tlv(struct out *o, unsigned type, struct wharf_stream *client, int attr)
{
    char v[TLV_VALUE_MAX + 1];
    size_t len = sizeof(v);

    if (wharf_getattr(client, attr, v, &len) == 0 && len > 1)
        put_tlv(o, type, v, len - 1);      /* without the NUL */
}

static void put_unix(struct out *o, const struct sockaddr_storage *ss, socklen_t len)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)ss;
    unsigned char path[PP2_UNIX_ADDR_LEN] = { 0 };
    size_t n = len > offsetof(struct sockaddr_un, sun_path)
               ? len - offsetof(struct sockaddr_un, sun_path) : 0;

    memcpy(path, sun->sun_path, n < sizeof(path) ? n : sizeof(path));
    put(o, path, sizeof(path));
}

/* The address block after the 16-byte head; returns the family byte. */
static unsigned put_addresses(struct out *o, struct ends *e, int family)
{
    size_t alen = family == AF_INET ? 4 : 16;

    if (family == AF_UNIX) {
        put_unix(o, &e->src, e->srclen);
        put_unix(o, &e->dst, e->dstlen);
        return PP2_FAM_UNIX_STREAM;
    }
    put(o, ip_of(&e->src), alen);
    put(o, ip_of(&e->dst), alen);
    put16(o, port_of(&e->src));
    put16(o, port_of(&e->dst));
    return family == AF_INET ? PP2_FAM_TCP4 : PP2_FAM_TCP6;
}

/* The CN of the client certificate, UTF-8, as a sub-TLV. */
static void put_cn_tlv(struct out *o, X509 *cert)
{
    X509_NAME *name = X509_get_subject_name(cert);
    int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    unsigned char *utf8 = NULL;
    int n;

    if (i < 0)
        return;
    n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
    if (n > 0)
        put_tlv(o, PP2_SUBTYPE_SSL_CN, utf8, (size_t)n < TLV_VALUE_MAX ? (size_t)n
                                                                      : TLV_VALUE_MAX);
    OPENSSL_free(utf8);
}

/* PP2_TYPE_SSL: client flags, verify (0: a certificate was shown and
 * verified), then the version, the CN and the cipher as sub-TLVs. */
static void put_ssl_tlv(struct out *o, struct wharf_stream *client)
{
    SSL *ssl = NULL;
    size_t len = sizeof(ssl), head, body;
    X509 *cert;
    uint32_t verify = 1;
    unsigned char flags = PP2_CLIENT_SSL;

    if (wharf_getattr(client, WHARF_ATTR_TLS_SSL, &ssl, &len) < 0 || !ssl || !room(o, 8))
        return;
    if ((cert = SSL_get0_peer_certificate(ssl))) {
        flags |= PP2_CLIENT_CERT_SESS;
        if (!SSL_session_reused(ssl))
            flags |= PP2_CLIENT_CERT_CONN;
        verify = (uint32_t)SSL_get_verify_result(ssl);
    }
    head = o->len;
    put(o, "\x20\0\0", 3);                  /* PP2_TYPE_SSL; length below */
    put(o, &flags, 1);
    verify = htonl(verify);
    put(o, &verify, 4);
    put_attr_tlv(o, PP2_SUBTYPE_SSL_VERSION, client, WHARF_ATTR_TLS_VERSION);
    if (cert)
        put_cn_tlv(o, cert);
    put_attr_tlv(o, PP2_SUBTYPE_SSL_CIPHER, client, WHARF_ATTR_TLS_CIPHER);
    body = o->len - head - 3;
    o->p[head + 1] = (unsigned char)(body >> 8);
    o->p[head + 2] = (unsigned char)body;
}

static size_t header_v2(struct ends *e, bool known, struct wharf_stream *client,
                        unsigned char *buf)
{
    struct out o = { buf, 0, FWD_PROXY_MAX };
    int family = known ? ends_family(e) : AF_UNSPEC;
    unsigned char cmd_fam[2] = { PP2_CMD_LOCAL, PP2_FAM_UNSPEC };
    size_t body;

    put(&o, PP2_SIG, PP2_SIG_LEN);
    put(&o, cmd_fam, 2);
    put16(&o, 0);                           /* the length, below */
    if (family != AF_UNSPEC) {
        buf[12] = PP2_CMD_PROXY;
        buf[13] = (unsigned char)put_addresses(&o, e, family);
    }
    if (wharf_tls_started(client)) {
        put_attr_tlv(&o, PP2_TYPE_ALPN, client, WHARF_ATTR_TLS_ALPN);
        put_attr_tlv(&o, PP2_TYPE_AUTHORITY, client, WHARF_ATTR_TLS_SERVER_NAME);
        put_ssl_tlv(&o, client);
    }
    body = o.len - PP2_HEAD_LEN;
    buf[14] = (unsigned char)(body >> 8);
    buf[15] = (unsigned char)body;
    return o.len;
}

size_t fwd_proxy_header(int version, struct wharf_stream *client, unsigned char *buf)
{
    struct ends e;
    bool known = get_ends(client, &e);

    return version == FWD_PROXY_V1 ? header_v1(&e, known, buf)
                                   : header_v2(&e, known, client, buf);
}
