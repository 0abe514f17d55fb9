#!/usr/bin/env python3
"""The PROXY protocol on listeners (SPEC.md section 2, proxy_protocol = true;
section 8): v1 and v2 headers before the handler's bytes and before TLS,
the client they name taking the place of the balancer in the log, the
balancer's own LOCAL connections, and headers that lie: malformed,
truncated, oversized, or never sent (handshake_timeout). Each bad one
closes only its connection, and wharfd serves on."""

import socket
import ssl
import struct
import sys
import time

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(src, dst, sport, dport, cmd=0x21, tlvs=b""):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    body += tlvs
    return SIG + bytes([cmd, 0x11]) + struct.pack("!H", len(body)) + body


def v2_local():
    return SIG + bytes([0x20, 0x00, 0x00, 0x00])


class Proxy(wt.TestCase):

    def hello(self, d, name, payload, expect):
        s = self.connect(d, name)
        s.sendall(payload)
        self.assertEqual(wt.recv_all(s), expect)

    def test_v1_and_v2_before_a_plain_handler(self):
        d = self.start([listener("pp", "tcp", "hello", proxy_protocol=True)])
        self.hello(d, "pp", b"PROXY TCP4 192.0.2.1 127.0.0.1 40000 80\r\nBob\n", b"Hello, Bob\n")
        self.hello(d, "pp", b"PROXY TCP6 2001:db8::1 ::1 40000 80\r\nAnn\n", b"Hello, Ann\n")
        self.hello(d, "pp", b"PROXY UNKNOWN\r\nEve\n", b"Hello, Eve\n")
        self.hello(d, "pp", v2("198.51.100.7", "127.0.0.1", 5555, 80) + b"Al\n", b"Hello, Al\n")
        self.hello(d, "pp", v2_local() + b"Hc\n", b"Hello, Hc\n")
        # a header sent a byte at a time is still one header
        s = self.connect(d, "pp")
        for b in b"PROXY TCP4 192.0.2.9 127.0.0.1 1 2\r\nSlow\n":
            s.sendall(bytes([b]))
        self.assertEqual(wt.recv_all(s), b"Hello, Slow\n")

    def test_the_named_client_is_the_peer(self):
        # hello refuses a line without a newline and logs the peer: the
        # address from the header, not the balancer's
        d = self.start([listener("pp", "tcp", "hello", proxy_protocol=True)])
        s = self.connect(d, "pp")
        s.sendall(b"PROXY TCP4 203.0.113.77 127.0.0.1 41234 80\r\nno newline")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(s, allow_reset=True), b"")
        self.assertIsNotNone(wt.wait_for_log(d, r'listener "pp": connection from '
                                                r'203\.0\.113\.77:41234: '),
                             "the log does not name the client of the PROXY header:\n" + d.log())

    def test_before_tls(self):
        c = wt.certs()
        ca = c.ca("proxy-ca")
        leaf = c.leaf("proxy-leaf", ca, dns=("localhost",))
        d = self.start([listener("pp-tls", "tcp", "hello", proxy_protocol=True,
                                 tls={"certificate": leaf.cert, "key": leaf.key})])
        ctx = wt.tls_client_context(ca=ca)
        for header in (b"PROXY TCP4 192.0.2.1 127.0.0.1 40000 443\r\n",
                       v2("192.0.2.2", "127.0.0.1", 40001, 443)):
            raw = self.connect(d, "pp-tls")
            raw.sendall(header)
            with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                t.sendall(b"Tls\n")
                self.assertEqual(t.recv(100), b"Hello, Tls\n")

    def test_bad_headers_close_only_their_connection(self):
        bad = [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                      # no header at all
            b"PROXY TCP4 1.2.3.400 127.0.0.1 1 2\r\nBob\n",           # a bad address
            b"PROXY TCP4 1.2.3.4 127.0.0.1 99999 2\r\nBob\n",         # a bad port
            b"PROXY TCP9 1.2.3.4 127.0.0.1 1 2\r\nBob\n",             # a bad protocol
            b"PROXY TCP4 " + b"9" * 200 + b"\r\n",                    # oversized v1
            SIG + bytes([0x21, 0x11, 0xFF, 0xFF]),                     # oversized v2
            SIG + bytes([0x21, 0x11, 0x00, 0x0C]) + b"\x01\x02",       # truncated v2
            SIG + bytes([0x31, 0x11, 0x00, 0x00]),                     # version 3
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,   # a ClientHello
        ]
        d = self.start([listener("pp", "tcp", "hello", proxy_protocol=True)])
        for payload in bad:
            s = self.connect(d, "pp")
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass        # closed already: wharfd saw enough to refuse it
            self.assertEqual(wt.recv_all(s, allow_reset=True), b"",
                             "a reply to a bad header %r" % payload[:40])
        self.assertRunning(d, "bad PROXY headers")
        self.assertIsNotNone(wt.wait_for_log(d, r'listener "pp": PROXY header from '),
                             "a bad header is not logged:\n" + d.log())
        self.hello(d, "pp", b"PROXY TCP4 192.0.2.1 127.0.0.1 40000 80\r\nStill\n",
                   b"Hello, Still\n")

    def test_header_never_sent(self):
        d = self.start([listener("pp", "tcp", "hello", proxy_protocol=True,
                                 handshake_timeout=0.5)])
        s = self.connect(d, "pp")
        t0 = time.monotonic()
        s.sendall(b"PROXY TCP4 1.2")            # and then nothing
        self.assertEqual(wt.recv_all(s, timeout=5.0, allow_reset=True), b"")
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 0.4, "closed after %.2f s, before handshake_timeout" % took)
        self.assertLess(took, 3.0, "closed after %.2f s" % took)
        self.assertIsNotNone(wt.wait_for_log(d, r"not received within handshake_timeout"),
                             d.log())


if __name__ == "__main__":
    wt.main()
