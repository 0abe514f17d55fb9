/*
 * check_proxyproto.c: the PROXY protocol parsers and reader (src/proxyproto.c):
 * every form haproxy's proxy-protocol.txt allows (v1 TCP4, TCP6, UNKNOWN;
 * v2 PROXY and LOCAL over TCP4, TCP6, UNIX, UNSPEC, with TLVs), every way
 * a header can lie (bad addresses, ports, lengths, versions, commands,
 * truncation, oversize), and that reading one takes not a byte more than
 * the header from the stream.
 */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/un.h>

#include "testutil.h"
#include "wharfd.h"

static const unsigned char sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

static void assert_in4(const struct sockaddr_storage *ss, const char *ip, unsigned port)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
    char buf[INET_ADDRSTRLEN];

    ck_assert_int_eq(in->sin_family, AF_INET);
    ck_assert_str_eq(inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)), ip);
    ck_assert_uint_eq(ntohs(in->sin_port), port);
}

static void assert_in6(const struct sockaddr_storage *ss, const char *ip, unsigned port)
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    char buf[INET6_ADDRSTRLEN];

    ck_assert_int_eq(in6->sin6_family, AF_INET6);
    ck_assert_str_eq(inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf)), ip);
    ck_assert_uint_eq(ntohs(in6->sin6_port), port);
}

static int v1(const char *line, struct proxy_hdr *h, const char **why)
{
    return proxy_parse_v1(line, strlen(line), h, why);
}

/* ---- version 1 ----------------------------------------------------------------- */

START_TEST(test_v1_tcp4)
{
    struct proxy_hdr h;
    const char *why = NULL;

    ck_assert_int_eq(v1("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443", &h, &why), 0);
    ck_assert(!h.ph_local);
    assert_in4(&h.ph_src, "192.0.2.1", 56324);
    assert_in4(&h.ph_dst, "198.51.100.7", 443);
    ck_assert_uint_eq(h.ph_srclen, sizeof(struct sockaddr_in));
}
END_TEST

START_TEST(test_v1_tcp6)
{
    struct proxy_hdr h;
    const char *why = NULL;

    ck_assert_int_eq(v1("PROXY TCP6 2001:db8::1 ::1 65535 0", &h, &why), 0);
    assert_in6(&h.ph_src, "2001:db8::1", 65535);
    assert_in6(&h.ph_dst, "::1", 0);
}
END_TEST

START_TEST(test_v1_unknown)
{
    struct proxy_hdr h;
    const char *why = NULL;

    ck_assert_int_eq(v1("PROXY UNKNOWN", &h, &why), 0);
    ck_assert(h.ph_local);
    ck_assert_int_eq(v1("PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2", &h, &why), 0);
    ck_assert(h.ph_local);
}
END_TEST

/* Each of these is refused, with a reason. */
static const char *const v1_bad[] = {
    "PROXY",
    "PROXY TCP5 1.2.3.4 5.6.7.8 1 2",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3",
    "PROXY TCP4 1.2.3.400 5.6.7.8 1 2",
    "PROXY TCP4 ::1 5.6.7.8 1 2",             /* an IPv6 address in TCP4 */
    "PROXY TCP6 1.2.3.4 ::1 1 2",
    "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2",
    "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2",
    "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2",
    "PROXY TCP4 1.2.3.4 5.6.7.8 01 2",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1x 2",
    "proxy TCP4 1.2.3.4 5.6.7.8 1 2",
    "HELLO TCP4 1.2.3.4 5.6.7.8 1 2",
};

START_TEST(test_v1_bad)
{
    struct proxy_hdr h;
    const char *why = NULL;

    ck_assert_msg(v1(v1_bad[_i], &h, &why) == WHARF_EINVAL, "accepted: %s", v1_bad[_i]);
    ck_assert_ptr_nonnull(why);
}
END_TEST

START_TEST(test_v1_too_long)
{
    char line[200];
    struct proxy_hdr h;
    const char *why = NULL;

    memset(line, ' ', sizeof(line));
    memcpy(line, "PROXY UNKNOWN", 13);
    ck_assert_int_eq(proxy_parse_v1(line, 106, &h, &why), WHARF_EINVAL);
    ck_assert_int_eq(proxy_parse_v1("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2", 31, &h, &why),
                     WHARF_EINVAL);
}
END_TEST

/* ---- version 2 ------------------------------------------------------------------- */

static size_t v2(unsigned char *out, unsigned ver_cmd, unsigned fam, const void *body,
                 size_t blen)
{
    memcpy(out, sig, 12);
    out[12] = (unsigned char)ver_cmd;
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(blen >> 8);
    out[15] = (unsigned char)blen;
    if (blen > 0)
        memcpy(out + 16, body, blen);
    return 16 + blen;
}

START_TEST(test_v2_tcp4_with_tlvs)
{
    unsigned char body[12 + 9], hdr[64];
    struct proxy_hdr h;
    const char *why = NULL;
    size_t n;

    inet_pton(AF_INET, "203.0.113.9", body);
    inet_pton(AF_INET, "127.0.0.1", body + 4);
    body[8] = 0x1F; body[9] = 0x90;           /* 8080 */
    body[10] = 0x01; body[11] = 0xBB;         /* 443 */
    /* a TLV after the addresses (PP2_TYPE_ALPN "h2"): ignored */
    memcpy(body + 12, "\x01\x00\x02h2\x04\x00\x00\x00", 9);
    n = v2(hdr, 0x21, 0x11, body, sizeof(body));
    ck_assert_int_eq(proxy_parse_v2(hdr, n, &h, &why), 0);
    ck_assert(!h.ph_local);
    assert_in4(&h.ph_src, "203.0.113.9", 8080);
    assert_in4(&h.ph_dst, "127.0.0.1", 443);
}
END_TEST

START_TEST(test_v2_tcp6)
{
    unsigned char body[36], hdr[64];
    struct proxy_hdr h;
    const char *why = NULL;

    inet_pton(AF_INET6, "2001:db8::42", body);
    inet_pton(AF_INET6, "::1", body + 16);
    body[32] = 0; body[33] = 80;
    body[34] = 0; body[35] = 81;
    ck_assert_int_eq(proxy_parse_v2(hdr, v2(hdr, 0x21, 0x21, body, 36), &h, &why), 0);
    assert_in6(&h.ph_src, "2001:db8::42", 80);
    assert_in6(&h.ph_dst, "::1", 81);
}
END_TEST

START_TEST(test_v2_unix)
{
    unsigned char body[216] = { 0 }, hdr[256];
    struct proxy_hdr h;
    const char *why = NULL;

    strcpy((char *)body, "/run/client.sock");
    strcpy((char *)body + 108, "/run/wharf.sock");
    ck_assert_int_eq(proxy_parse_v2(hdr, v2(hdr, 0x21, 0x31, body, 216), &h, &why), 0);
    ck_assert_int_eq(h.ph_src.ss_family, AF_UNIX);
    ck_assert_str_eq(((struct sockaddr_un *)&h.ph_src)->sun_path, "/run/client.sock");
    ck_assert_str_eq(((struct sockaddr_un *)&h.ph_dst)->sun_path, "/run/wharf.sock");
}
END_TEST

START_TEST(test_v2_local_and_unspec)
{
    unsigned char body[12] = { 0 }, hdr[64];
    struct proxy_hdr h;
    const char *why = NULL;

    /* LOCAL: the balancer's own health check, whatever the family says */
    ck_assert_int_eq(proxy_parse_v2(hdr, v2(hdr, 0x20, 0x11, body, 12), &h, &why), 0);
    ck_assert(h.ph_local);
    ck_assert_int_eq(proxy_parse_v2(hdr, v2(hdr, 0x20, 0x00, NULL, 0), &h, &why), 0);
    ck_assert(h.ph_local);
    ck_assert_int_eq(proxy_parse_v2(hdr, v2(hdr, 0x21, 0x00, NULL, 0), &h, &why), 0);
    ck_assert(h.ph_local);
}
END_TEST

START_TEST(test_v2_bad)
{
    unsigned char body[216] = { 0 }, hdr[2048];
    struct proxy_hdr h;
    const char *why = NULL;
    size_t n;

    /* version 1 in a version 2 head, an unknown command, UDP */
    ck_assert_int_eq(proxy_parse_v2(hdr, v2(hdr, 0x11, 0x11, body, 12), &h, &why), WHARF_EINVAL);
    ck_assert_int_eq(proxy_parse_v2(hdr, v2(hdr, 0x22, 0x11, body, 12), &h, &why), WHARF_EINVAL);
    ck_assert_int_eq(proxy_parse_v2(hdr, v2(hdr, 0x21, 0x12, body, 12), &h, &why), WHARF_EINVAL);
    /* addresses longer than the length says */
    ck_assert_int_eq(proxy_parse_v2(hdr, v2(hdr, 0x21, 0x11, body, 11), &h, &why), WHARF_EINVAL);
    ck_assert_int_eq(proxy_parse_v2(hdr, v2(hdr, 0x21, 0x21, body, 35), &h, &why), WHARF_EINVAL);
    ck_assert_int_eq(proxy_parse_v2(hdr, v2(hdr, 0x21, 0x31, body, 215), &h, &why),
                     WHARF_EINVAL);
    /* truncated: the length says more than there is */
    n = v2(hdr, 0x21, 0x11, body, 12);
    ck_assert_int_eq(proxy_parse_v2(hdr, n - 1, &h, &why), WHARF_EINVAL);
    /* oversized */
    hdr[14] = 0x04;
    hdr[15] = 0x01;
    ck_assert_int_eq(proxy_parse_v2(hdr, sizeof(hdr), &h, &why), WHARF_EINVAL);
    ck_assert_ptr_nonnull(why);
    /* a wrong signature */
    n = v2(hdr, 0x21, 0x11, body, 12);
    hdr[3] ^= 1;
    ck_assert_int_eq(proxy_parse_v2(hdr, n, &h, &why), WHARF_EINVAL);
}
END_TEST

/* ---- reading from a stream --------------------------------------------------------- */

struct read_case {
    const void *bytes;
    size_t len;
    int rc;                 /* expected from proxy_read */
    const char *rest;       /* what the stream still holds afterwards */
};

static struct read_case rc_cur;

static int read_task(void *arg)
{
    struct wharf_stream *a, *b, *buf;
    struct proxy_hdr h;
    const char *why = NULL;
    char rest[64] = "";
    ssize_t n;

    (void)arg;
    ck_assert_int_eq(wharf_memstream_pair(16, &a, &b), 0);
    ck_assert_int_eq(wharf_send(a, rc_cur.bytes, rc_cur.len), 0);
    ck_assert_int_eq(wharf_send_eof(a), 0);
    ck_assert_ptr_nonnull(buf = wharf_buffered_new(b));
    TU_ASSERT_RC(proxy_read(buf, &h, &why), rc_cur.rc);
    if (rc_cur.rest) {
        n = wharf_receive(buf, rest, sizeof(rest) - 1);
        ck_assert_int_eq(n, (ssize_t)strlen(rc_cur.rest));
        rest[n] = '\0';
        ck_assert_str_eq(rest, rc_cur.rest);
    }
    wharf_free(buf);
    wharf_free(a);
    return 0;
}

static void read_case(const void *bytes, size_t len, int rc, const char *rest)
{
    rc_cur = (struct read_case){ bytes, len, rc, rest };
    TU_RUN(read_task, NULL);
}

START_TEST(test_read_keeps_what_follows)
{
    static const char v1line[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n\x16\x03\x01hello";
    unsigned char hdr[64], body[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2 };
    size_t n = v2(hdr, 0x21, 0x11, body, 12);

    read_case(v1line, sizeof(v1line) - 1, 0, "\x16\x03\x01hello");
    memcpy(hdr + n, "GET /", 5);
    read_case(hdr, n + 5, 0, "GET /");
}
END_TEST

START_TEST(test_read_refuses)
{
    static const char none[] = "GET / HTTP/1.1\r\n\r\n";
    static const char shortv1[] = "PROXY TCP4";
    static const char nocrlf[] =
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    unsigned char hdr[64], body[12] = { 0 };
    size_t n = v2(hdr, 0x21, 0x11, body, 12);

    read_case(none, sizeof(none) - 1, WHARF_EINVAL, NULL);
    read_case(shortv1, sizeof(shortv1) - 1, WHARF_EINVAL, NULL);
    read_case(nocrlf, sizeof(nocrlf) - 1, WHARF_EINVAL, NULL);
    read_case(hdr, n - 3, WHARF_EINVAL, NULL);        /* truncated by EOF */
    read_case(hdr, 13, WHARF_EINVAL, NULL);
    hdr[14] = 0xFF;                                    /* 65 KB announced */
    read_case(hdr, n, WHARF_EINVAL, NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("proxyproto");
    TCase *tc = tcase_create("parse");
    TCase *rd = tcase_create("read");

    tcase_add_test(tc, test_v1_tcp4);
    tcase_add_test(tc, test_v1_tcp6);
    tcase_add_test(tc, test_v1_unknown);
    tcase_add_loop_test(tc, test_v1_bad, 0, (int)(sizeof(v1_bad) / sizeof(v1_bad[0])));
    tcase_add_test(tc, test_v1_too_long);
    tcase_add_test(tc, test_v2_tcp4_with_tlvs);
    tcase_add_test(tc, test_v2_tcp6);
    tcase_add_test(tc, test_v2_unix);
    tcase_add_test(tc, test_v2_local_and_unspec);
    tcase_add_test(tc, test_v2_bad);
    suite_add_tcase(s, tc);
    tcase_add_test(rd, test_read_keeps_what_follows);
    tcase_add_test(rd, test_read_refuses);
    suite_add_tcase(s, rd);
    return s;
}

int main(void)
{
    return tu_run_suite(suite());
}
