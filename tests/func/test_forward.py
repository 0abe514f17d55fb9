#!/usr/bin/env python3
"""The forward plugin through wharfd (SPEC.md section 5): a TLS listener
forwarding to a plain backend the test runs (10 MB each way at once, byte
exact), half-closes both ways, a TLS client learning the end from
close_notify, a UNIX target; a target that refuses, one that never
answers the connect (connect_timeout) and one that accepts and then says
nothing (idle_timeout), each logged; the PROXY header sent to the target
(v1, v2 with the TLS facts as TLVs, and the addresses an inbound PROXY
header named); TLS to the target, verified and refused; UDP forwarding
with an association per sender; and options that are config errors.

The backends are Python servers on loopback, one thread per connection;
they parse the PROXY header themselves."""

import json
import os
import select
import socket
import ssl
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener

MB = 1024 * 1024
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


# ---- backends ----------------------------------------------------------------------

class Backend:
    """A server on 127.0.0.1 (or a UNIX path): serve(conn, backend) runs in
    a thread per connection; what it returns is appended to self.results.
    Exceptions in it are kept and raised by results_wait."""

    def __init__(self, testcase, serve, tls=None, unix_path=None, backlog=16):
        self.serve, self.tls = serve, tls
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            self.target = "unix:" + unix_path
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.target = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.sock.listen(backlog)
        self.results, self.errors, self.conns = [], [], []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        testcase.addCleanup(self.close)

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            conn.settimeout(wt.IO_TIMEOUT * 2)
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
            r = self.serve(conn, self)
            with self.cond:
                self.results.append(r)
                self.cond.notify_all()
        except Exception as e:      # reported by results_wait
            with self.cond:
                self.errors.append(e)
                self.cond.notify_all()
        finally:
            conn.close()

    def results_wait(self, n=1, timeout=wt.IO_TIMEOUT * 3):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.results) < n and not self.errors:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the backend served %d of %d connections"
                                         % (len(self.results), n))
                self.cond.wait(left)
            if self.errors:
                raise AssertionError("backend failed: %r" % (self.errors[0],))
            return list(self.results)

    def close(self):
        if not self.closed:
            self.closed = True
            self.sock.close()
            for c in self.conns:
                c.close()


def recv_until_eof(conn):
    buf = bytearray()
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            return bytes(buf)
        buf += chunk


def read_proxy(conn):
    """The PROXY header at the start of conn: the v1 line (without CRLF)
    or the whole v2 header, as bytes."""
    first = wt.recv_exact(conn, 5)
    if first == b"PROXY":
        line = bytearray(first)
        while not line.endswith(b"\r\n"):
            line += wt.recv_exact(conn, 1)
            assert len(line) <= 107, "v1 line too long"
        return bytes(line[:-2])
    head = first + wt.recv_exact(conn, 11)
    assert head[:12] == SIG[:12] and len(head) == 16, "neither v1 nor v2: %r" % head
    (length,) = struct.unpack("!H", head[14:16])
    return head + (wt.recv_exact(conn, length) if length else b"")


def parse_tlvs(b):
    out = {}
    while b:
        assert len(b) >= 3, "truncated TLV"
        t, n = b[0], struct.unpack("!H", b[1:3])[0]
        assert len(b) >= 3 + n, "TLV longer than the header"
        out.setdefault(t, b[3:3 + n])
        b = b[3 + n:]
    return out


def parse_v2(h):
    """cmd, fam, (src, sport), (dst, dport), {TLV type: value}."""
    cmd, fam, length = h[12], h[13], struct.unpack("!H", h[14:16])[0]
    assert len(h) == 16 + length
    body = h[16:]
    if fam == 0x11:
        src, dst = socket.inet_ntop(socket.AF_INET, body[0:4]), socket.inet_ntop(socket.AF_INET, body[4:8])
        sport, dport = struct.unpack("!HH", body[8:12])
        rest = body[12:]
    elif fam == 0x21:
        src, dst = (socket.inet_ntop(socket.AF_INET6, body[0:16]),
                    socket.inet_ntop(socket.AF_INET6, body[16:32]))
        sport, dport = struct.unpack("!HH", body[32:36])
        rest = body[36:]
    else:
        src = dst = sport = dport = None
        rest = body[216:] if fam == 0x31 else body
    return cmd, fam, (src, sport), (dst, dport), parse_tlvs(rest)


def serve_exchange(expect_len, reply):
    """Receives expect_len bytes (None: until EOF) while sending reply, then
    shuts its sending side; returns what it received."""
    def serve(conn, backend):
        t = threading.Thread(target=conn.sendall, args=(reply,), daemon=True)
        t.start()
        got = wt.recv_exact(conn, expect_len, timeout=30) if expect_len is not None \
            else recv_until_eof(conn)
        t.join(30)
        return got
    return serve


def serve_reply_after_eof(reply, proxy=False):
    """Reads until EOF (after a PROXY header when proxy), then replies and
    closes; returns (header, request)."""
    def serve(conn, backend):
        hdr = read_proxy(conn) if proxy else None
        req = recv_until_eof(conn)
        conn.sendall(reply)
        return hdr, req
    return serve


def serve_request_reply(n, reply, proxy=False):
    """Reads n bytes (after a PROXY header when proxy), replies, closes;
    returns (header, request)."""
    def serve(conn, backend):
        hdr = read_proxy(conn) if proxy else None
        req = wt.recv_exact(conn, n)
        conn.sendall(reply)
        return hdr, req
    return serve


# ---- clients ---------------------------------------------------------------------------

def pump(sock, payload, timeout=60.0):
    """Sends payload and receives until EOF at the same time, on one
    non-blocking socket (an SSLSocket may not be shared by two threads).
    Returns the bytes received."""
    sock.setblocking(False)
    view, sent, got, eof = memoryview(payload), 0, bytearray(), False
    deadline = time.monotonic() + timeout
    while not eof or sent < len(payload):
        if time.monotonic() > deadline:
            raise AssertionError("pump: %d of %d sent, %d received, eof %s after %.0f s"
                                 % (sent, len(payload), len(got), eof, timeout))
        select.select([sock] if not eof else [], [sock] if sent < len(payload) else [], [], 0.05)
        if sent < len(payload):
            try:
                sent += sock.send(view[sent:sent + 65536])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                pass
        while not eof:
            try:
                chunk = sock.recv(1 << 20)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            if not chunk:
                eof = True
            got += chunk
    return bytes(got)


def silent_target():
    """A listener with a backlog of 0 that never accepts, filled by two
    connects: the kernel drops further SYNs, so a connect neither succeeds
    nor fails. Returns (listener, fillers) to keep alive."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    fillers = []
    for _ in range(2):
        f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        f.setblocking(False)
        try:
            f.connect(ls.getsockname())
        except BlockingIOError:
            pass
        fillers.append(f)
    time.sleep(0.1)
    return ls, fillers


def fwd(target, **options):
    h = {"plugin": "forward", "target": target}
    h.update(options)
    return h


class ForwardCase(wt.TestCase):

    def setUp(self):
        super().setUp()
        f = wt.certs()
        self.ca = f.ca("ca", "ec")
        self.other_ca = f.ca("other-ca", "ec")
        self.front = f.leaf("front", self.ca, dns=["fwd.example.test"])
        self.back = f.leaf("backend", self.ca, dns=["backend.example.test"])

    def tls_in(self, **settings):
        g = {"certificates": [{"certificate": self.front.cert, "key": self.front.key}]}
        g.update(settings)
        return g

    def tls_connect(self, d, name, alpn=None):
        ctx = wt.tls_client_context(self.ca, alpn=alpn)
        raw = self.connect(d, name)
        s = ctx.wrap_socket(raw, server_hostname="fwd.example.test", suppress_ragged_eofs=False)
        return self.client(s)

    def backend_tls(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.back.cert, self.back.key)
        return ctx

    def stats(self, d):
        s = self.connect(d, "stats")
        s.sendall(b"GET /stats HTTP/1.0\r\n\r\n")
        head, _, body = wt.recv_all(s).partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1."), head)
        return json.loads(body)

    def closed_soon(self, d, name, what):
        """A client whose connection wharfd closes without a byte; returns
        the seconds it took."""
        s = self.connect(d, name, timeout=10)
        s.sendall(b"anyone there?\n")
        t0 = time.monotonic()
        wt.expect_closed_no_data(self, s, timeout=10, what=what)
        return time.monotonic() - t0


# ---- bytes both ways -------------------------------------------------------------------------

class Stream(ForwardCase):

    def test_tls_in_plain_out_10mb_each_way(self):
        up, down = os.urandom(10 * MB), os.urandom(10 * MB)
        b = Backend(self, serve_exchange(len(up), down))
        d = self.start([listener("fwd", "tcp", fwd(b.target), tls=self.tls_in())])
        s = self.tls_connect(d, "fwd")
        got = pump(s, up)
        # the backend closed after its 10 MB: the TLS client learnt it from
        # close_notify (an SSLEOFError would have been raised otherwise)
        self.assertEqual(len(got), len(down))
        self.assertTrue(got == down, "the client received other bytes")
        received = b.results_wait()[0]
        self.assertTrue(received == up, "the backend received other bytes")

    def test_plain_half_close_from_the_client(self):
        b = Backend(self, serve_reply_after_eof(b"the reply\n"))
        d = self.start([listener("fwd", "tcp", fwd(b.target))])
        s = self.connect(d, "fwd")
        s.sendall(b"line one\nline two\n")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(s), b"the reply\n")
        self.assertEqual(b.results_wait()[0], (None, b"line one\nline two\n"))

    def test_plain_half_close_from_the_target(self):
        def serve(conn, backend):
            conn.sendall(b"220 banner\r\n")
            conn.shutdown(socket.SHUT_WR)
            return recv_until_eof(conn)
        b = Backend(self, serve)
        d = self.start([listener("fwd", "tcp", fwd(b.target))])
        s = self.connect(d, "fwd")
        self.assertEqual(wt.recv_all(s), b"220 banner\r\n")
        s.sendall(b"still talking\n")          # the other direction is open
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(b.results_wait()[0], b"still talking\n")

    def test_tls_client_gets_close_notify_when_the_target_ends(self):
        b = Backend(self, serve_request_reply(4, b"HTTP/1.0 200 OK\r\n\r\nbody"))
        d = self.start([listener("fwd", "tcp", fwd(b.target), tls=self.tls_in())])
        s = self.tls_connect(d, "fwd")
        s.sendall(b"GET\n")
        try:
            data = wt.recv_all(s)
        except ssl.SSLEOFError as e:
            self.fail("wharfd closed without close_notify (%s)" % e)
        self.assertEqual(data, b"HTTP/1.0 200 OK\r\n\r\nbody")

    def test_unix_target_and_unix_listener(self):
        path = os.path.join(self.tmp, "backend.sock")
        b = Backend(self, serve_reply_after_eof(b"pong\n"), unix_path=path)
        d = self.start([listener("fwd", "unix", fwd(b.target))])
        s = self.connect(d, "fwd")
        s.sendall(b"ping\n")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(s), b"pong\n")

    def test_many_connections(self):
        b = Backend(self, serve_reply_after_eof(b"ok\n"))
        d = self.start([listener("fwd", "tcp", fwd(b.target))])
        socks = [self.connect(d, "fwd") for _ in range(20)]
        for i, s in enumerate(socks):
            s.sendall(b"client %d\n" % i)
            s.shutdown(socket.SHUT_WR)
        for s in socks:
            self.assertEqual(wt.recv_all(s), b"ok\n")
        got = sorted(r[1] for r in b.results_wait(20))
        self.assertEqual(got, sorted(b"client %d\n" % i for i in range(20)))


# ---- targets that fail ------------------------------------------------------------------------

class Failures(ForwardCase):

    def test_unreachable_target_is_logged(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()                               # nobody listens there now
        d = self.start([listener("fwd", "tcp", fwd("127.0.0.1:%d" % port))])
        self.closed_soon(d, "fwd", "unreachable target")
        self.assertIsNotNone(wt.wait_for_log(
            d, r'listener "fwd": connection from 127\.0\.0\.1:\d+: Connection refused'),
            "no log line for the refused target:\n" + d.log())
        self.assertRunning(d)

    def test_connect_timeout(self):
        ls, fillers = silent_target()
        self.addCleanup(ls.close)
        for f in fillers:
            self.addCleanup(f.close)
        target = "127.0.0.1:%d" % ls.getsockname()[1]
        d = self.start([listener("fwd", "tcp", fwd(target, connect_timeout=0.5))])
        took = self.closed_soon(d, "fwd", "silent target")
        self.assertLess(took, 3.0, "connect_timeout 0.5 took %.1f s" % took)
        self.assertIsNotNone(wt.wait_for_log(
            d, r'listener "fwd": connection from 127\.0\.0\.1:\d+: timed out'),
            "no log line for the connect timeout:\n" + d.log())

    def test_target_accepts_and_never_answers(self):
        def serve(conn, backend):
            return recv_until_eof(conn)         # reads, never writes
        b = Backend(self, serve)
        d = self.start([listener("fwd", "tcp", fwd(b.target), idle_timeout=1.0)])
        s = self.connect(d, "fwd", timeout=10)
        s.sendall(b"hello?\n")
        t0 = time.monotonic()
        self.assertEqual(wt.recv_all(s, timeout=10, allow_reset=True), b"")
        took = time.monotonic() - t0
        self.assertGreater(took, 0.8)
        self.assertLess(took, 5.0)
        # the target sees the end too, after the request
        self.assertEqual(b.results_wait()[0], b"hello?\n")


# ---- idle connections park ---------------------------------------------------------------------

class Parked(ForwardCase):
    """Half a second without a byte either way, a connection's handler
    parks: it keeps no task frame until either side sends. What a user
    sees across a park: every byte, either side speaking first;
    idle_timeout; shutdown."""

    def ping(self, s):
        s.sendall(b"ping")
        self.assertEqual(wt.recv_exact(s, 4), b"pong")

    @staticmethod
    def serve_pong(conn, backend):
        """The target: "pong" for "ping", then silence until the end;
        returns what came after the ping."""
        wt.recv_exact(conn, 4)
        conn.sendall(b"pong")
        return recv_until_eof(conn)

    def start_fwd(self, b, **settings):
        return self.start([listener("fwd", "tcp", fwd(b.target), tls=self.tls_in(), **settings),
                           listener("stats", "tcp", "stats")])

    def expect_parked(self, d, n, timeout=3.0):
        """Waits until plugins.forward.parked says n."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.stats(d).get("plugins", {}).get("forward", {}).get("parked")
            if got == n or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(got, n, "plugins.forward.parked")

    def test_bytes_resume_either_way(self):
        pushed = threading.Event()

        def serve(conn, backend):
            got = wt.recv_exact(conn, 4)
            conn.sendall(b"pong")
            pushed.wait(10)
            conn.sendall(b"push")                   # the target speaks first
            got += wt.recv_exact(conn, 2, timeout=10)
            conn.sendall(b"later")
            return got + recv_until_eof(conn)
        b = Backend(self, serve)
        d = self.start_fwd(b)
        s = self.tls_connect(d, "fwd")
        self.ping(s)
        self.expect_parked(d, 1)
        pushed.set()
        self.assertEqual(wt.recv_exact(s, 4, timeout=10), b"push")
        self.expect_parked(d, 1)                    # parked again
        s.sendall(b"go")                            # the client speaks first
        self.assertEqual(wt.recv_exact(s, 5), b"later")
        s.sendall(b"bye")
        s.close()
        self.assertEqual(b.results_wait()[0], b"pinggobye")
        self.assertRunning(d)

    def test_idle_timeout_ends_a_parked_connection(self):
        b = Backend(self, self.serve_pong)
        d = self.start_fwd(b, idle_timeout=2.0)
        s = self.tls_connect(d, "fwd")
        self.ping(s)
        t0 = time.monotonic()
        self.expect_parked(d, 1)
        try:
            self.assertEqual(wt.recv_all(s, timeout=10), b"")
        except ssl.SSLEOFError as e:
            self.fail("wharfd closed without close_notify (%s)" % e)
        took = time.monotonic() - t0
        self.assertGreater(took, 1.8)
        self.assertLess(took, 6.0)
        self.assertEqual(b.results_wait()[0], b"")  # the target sees the end

    def test_shutdown_ends_parked_connections(self):
        b = Backend(self, self.serve_pong)
        d = self.start_fwd(b, drain_timeout=1.0)
        clients = [self.tls_connect(d, "fwd") for _ in range(10)]
        for s in clients:
            self.ping(s)
        self.expect_parked(d, 10)
        t0 = time.monotonic()
        self.assertEqual(d.stop(), 0)               # drained, then cancelled
        self.assertLess(time.monotonic() - t0, 5.0)
        for s in clients:
            self.assertEqual(wt.recv_all(s, timeout=5, allow_reset=True), b"")
        self.assertEqual(b.results_wait(10), [b""] * 10)


# ---- the PROXY header --------------------------------------------------------------------------

class SendProxy(ForwardCase):

    def test_v1(self):
        b = Backend(self, serve_reply_after_eof(b"ok\n", proxy=True))
        d = self.start([listener("fwd", "tcp", fwd(b.target, send_proxy="v1"))])
        s = self.connect(d, "fwd")
        s.sendall(b"payload")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(s), b"ok\n")
        hdr, req = b.results_wait()[0]
        host, port = s.getsockname()[:2]
        lhost, lport = d.addr("fwd")
        self.assertEqual(hdr, ("PROXY TCP4 %s %s %d %d" % (host, lhost, port, lport)).encode())
        self.assertEqual(req, b"payload")

    def test_v2_with_tls_facts(self):
        b = Backend(self, serve_request_reply(7, b"ok\n", proxy=True))
        d = self.start([listener("fwd", "tcp", fwd(b.target, send_proxy="v2"),
                                 tls=self.tls_in(alpn=["h2", "http/1.1"]))])
        s = self.tls_connect(d, "fwd", alpn=["http/1.1"])
        s.sendall(b"payload")
        self.assertEqual(wt.recv_all(s), b"ok\n")
        hdr, req = b.results_wait()[0]
        self.assertEqual(req, b"payload")
        cmd, fam, src, dst, tlvs = parse_v2(hdr)
        self.assertEqual((cmd, fam), (0x21, 0x11))
        self.assertEqual(src, s.getsockname()[:2])
        self.assertEqual(dst, d.addr("fwd"))
        self.assertEqual(tlvs.get(0x01), b"http/1.1")                 # ALPN
        self.assertEqual(tlvs.get(0x02), b"fwd.example.test")         # authority (SNI)
        ssl_tlv = tlvs.get(0x20)
        self.assertIsNotNone(ssl_tlv, "no PP2_TYPE_SSL")
        client, verify = ssl_tlv[0], struct.unpack("!I", ssl_tlv[1:5])[0]
        self.assertEqual(client, 0x01)          # over TLS, no client certificate
        self.assertNotEqual(verify, 0)
        subs = parse_tlvs(ssl_tlv[5:])
        self.assertEqual(subs.get(0x21), s.version().encode())
        self.assertEqual(subs.get(0x23), s.cipher()[0].encode())

    def test_inbound_proxy_header_is_passed_on(self):
        b = Backend(self, serve_reply_after_eof(b"ok\n", proxy=True))
        d = self.start([listener("fwd", "tcp", fwd(b.target, send_proxy="v2"),
                                 proxy_protocol=True)])
        s = self.connect(d, "fwd")
        s.sendall(b"PROXY TCP4 192.0.2.10 198.51.100.1 40000 443\r\npayload")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(s), b"ok\n")
        hdr, req = b.results_wait()[0]
        self.assertEqual(req, b"payload")
        cmd, fam, src, dst, tlvs = parse_v2(hdr)
        self.assertEqual((cmd, fam, src, dst), (0x21, 0x11, ("192.0.2.10", 40000),
                                                ("198.51.100.1", 443)))
        self.assertEqual(tlvs, {})


# ---- TLS to the target ----------------------------------------------------------------------------

class TlsOut(ForwardCase):

    def test_verified(self):
        b = Backend(self, serve_request_reply(5, b"world"), tls=self.backend_tls())
        d = self.start([listener("fwd", "tcp", fwd(
            b.target, tls={"ca": self.ca.cert, "server_name": "backend.example.test"}))])
        s = self.connect(d, "fwd")
        s.sendall(b"hello")
        self.assertEqual(wt.recv_all(s), b"world")
        self.assertEqual(b.results_wait()[0], (None, b"hello"))

    def test_wrong_ca_is_refused_and_logged(self):
        b = Backend(self, serve_request_reply(5, b"world"), tls=self.backend_tls())
        d = self.start([listener("fwd", "tcp", fwd(
            b.target, tls={"ca": self.other_ca.cert, "server_name": "backend.example.test"}))])
        self.closed_soon(d, "fwd", "a target with a certificate of another CA")
        self.assertIsNotNone(wt.wait_for_log(
            d, r'listener "fwd": connection from 127\.0\.0\.1:\d+: Protocol error'),
            "no log line for the failed verification:\n" + d.log())


# ---- UDP -------------------------------------------------------------------------------------------

class Udp(ForwardCase):

    def test_associations_per_sender(self):
        backend = wt.udp_socket()
        self.client(backend)
        seen = []

        def run():
            while True:
                try:
                    data, frm = backend.recvfrom(70000)
                except OSError:
                    return
                seen.append((frm[1], data))
                backend.sendto(b"re:" + data, frm)
        threading.Thread(target=run, daemon=True).start()
        target = "127.0.0.1:%d" % backend.getsockname()[1]
        d = self.start([listener("udp", "udp", fwd(target, udp_idle_timeout=5.0))])
        server = d.addr("udp")
        a, c = self.client(wt.udp_socket()), self.client(wt.udp_socket())
        for sock, msg in ((a, b"a1"), (c, b"c1"), (a, b"a2" * 1000), (c, b"")):
            sock.sendto(msg, server)
            data, frm = sock.recvfrom(70000)
            self.assertEqual(data, b"re:" + msg)
            self.assertEqual(frm, server, "the reply comes from another address")
        ports = [p for p, _ in seen]
        self.assertEqual(ports[0], ports[2], "a's datagrams left from two ports")
        self.assertEqual(ports[1], ports[3], "c's datagrams left from two ports")
        self.assertNotEqual(ports[0], ports[1], "a and c share an association")


# ---- the stats hook ------------------------------------------------------------------------------------

class StatsHook(ForwardCase):

    def test_figures_in_stats(self):
        b = Backend(self, serve_reply_after_eof(b"0123456789"))
        d = self.start([listener("fwd", "tcp", fwd(b.target)),
                        listener("down", "tcp", fwd("unix:" + os.path.join(self.tmp, "none"))),
                        listener("stats", "tcp", "stats")])
        s = self.connect(d, "fwd")
        s.sendall(b"abc")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(s), b"0123456789")
        self.closed_soon(d, "down", "a UNIX target that is not there")
        want = {"bytes_up": 3, "bytes_down": 10, "connections": 1, "connect_failures": 1}
        deadline = time.monotonic() + wt.IO_TIMEOUT
        while True:
            got = self.stats(d).get("plugins", {}).get("forward", {})
            if all(got.get(k) == v for k, v in want.items()) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for k, v in want.items():
            self.assertEqual(got.get(k), v, "plugins.forward.%s in %r" % (k, got))


# ---- options -------------------------------------------------------------------------------------------

class Options(ForwardCase):

    def test_bad_options_are_config_errors(self):
        conf = wt.render_conf({"workers": 1, "plugin_dir": wt.PLUGIN_DIR}, [
            {"name": "a", "tcp": "127.0.0.1:1", "handler": fwd("127.0.0.1:0")},
            {"name": "b", "tcp": "127.0.0.1:2", "handler": fwd("h:1", tls={"ca": "nope.pem"})},
            {"name": "c", "tcp": "127.0.0.1:3", "handler": fwd("h:1", send_proxy="v3")},
            {"name": "d", "udp": "127.0.0.1:4", "handler": fwd("h:1", tls={})},
            {"name": "e", "tcp": "127.0.0.1:5", "handler": {"plugin": "forward"}},
            {"name": "f", "tcp": "127.0.0.1:6", "handler": fwd("h:1", conect_timeout=1.0)},
        ])
        r = self.run_wharfd(["-t", "-c", self.write_conf(conf)])
        self.assertExit(r, wt.EX_CONFIG)
        for pattern in (r"listeners\.\[0\]\.handler\.target: target \"127\.0\.0\.1:0\": the port",
                        r"listeners\.\[1\]\.handler\.tls\.ca: cannot read .*nope\.pem\": No such",
                        r"listeners\.\[2\]\.handler\.send_proxy: send_proxy must be",
                        r"listeners\.\[3\]\.handler\.tls: tls .* not UDP",
                        r"listeners\.\[4\]\.handler(\.plugin)?: forward needs a target",
                        r"listeners\.\[5\]\.handler\.conect_timeout: unknown option"):
            self.assertRegex(r.stderr, r":\d+: " + pattern)

    def test_good_options_check(self):
        conf = wt.render_conf({"workers": 1, "plugin_dir": wt.PLUGIN_DIR}, [
            {"name": "a", "tcp": "127.0.0.1:1", "handler": fwd(
                "backend.example.test:443", connect_timeout=2, send_proxy="v2",
                tls={"ca": self.ca.cert, "server_name": "b.test", "alpn": ["h2"]})},
            {"name": "u", "udp": "127.0.0.1:2", "handler": fwd(
                "127.0.0.1:53", udp_idle_timeout=30.0, udp_max_associations=100)},
        ])
        r = self.run_wharfd(["-t", "-c", self.write_conf(conf)])
        self.assertExit(r, wt.EX_OK)


if __name__ == "__main__":
    wt.main()
