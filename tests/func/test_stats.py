#!/usr/bin/env python3
"""The statistics (SPEC.md section 6) and the stats plugin (section 5)
against the real wharfd: exactly N connections of each kind (TCP, UNIX,
UDP datagrams, TLS with one failed handshake and one ragged EOF) and every
counter checked against N through GET /stats on a UNIX socket; concurrent
clients on two workers give exact totals; /metrics parses line by line
(and with `promtool check metrics` when installed); malformed HTTP gets
its status and never blocks other clients; the plugin on a UDP listener
and with options is a config error; counters survive a reload, a failed
reload shows in `reloads`, and a removed listener with an open connection
is `draining`."""

import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener

LISTENER_KEYS = ["kind", "address", "tls", "plugin", "state", "accepted", "active", "closed",
                 "rejected", "errors", "bytes_in", "bytes_out", "datagrams_in", "datagrams_out",
                 "handshakes", "handshake_failures", "resumed", "ragged_eofs", "timeouts",
                 "tls_versions"]
TOP_KEYS = ["version", "pid", "started_at", "uptime_seconds", "workers", "reloads",
            "connections", "listeners", "plugins", "streams"]
COUNTERS = LISTENER_KEYS[5:-1]
TLS12 = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
TLS13 = (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# ---- HTTP, by hand -------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())


def read_response(sock, buf, timeout=wt.IO_TIMEOUT, head=False):
    """One response from sock, buf holding bytes already read (a
    bytearray, consumed). Returns a Response, or None at EOF before one."""
    deadline = time.monotonic() + timeout

    def more():
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timeout waiting for a response (have %r)" % bytes(buf[:200]))
        sock.settimeout(left)
        chunk = sock.recv(65536)
        buf.extend(chunk)
        return chunk

    while b"\r\n\r\n" not in buf:
        if not more():
            if buf:
                raise AssertionError("EOF inside a response head: %r" % bytes(buf[:200]))
            return None
    i = buf.index(b"\r\n\r\n")
    lines = bytes(buf[:i]).decode("latin-1").split("\r\n")
    del buf[:i + 4]
    m = re.match(r"^HTTP/1\.1 (\d{3}) .+$", lines[0])
    assert m, "bad status line %r" % lines[0]
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    assert "content-length" in headers, "no Content-Length: %r" % lines
    n = 0 if head else int(headers["content-length"])
    while len(buf) < n:
        if not more():
            raise AssertionError("EOF inside a body")
    body = bytes(buf[:n])
    del buf[:n]
    return Response(int(m.group(1)), headers, body)


def exchange(sock, data, count, timeout=wt.IO_TIMEOUT):
    """Sends data, reads count responses."""
    sock.sendall(data)
    buf = bytearray()
    out = [read_response(sock, buf, timeout) for _ in range(count)]
    assert not buf, "bytes after the responses: %r" % bytes(buf[:200])
    return out


def request(path, method="GET", headers=""):
    return ("%s %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % (method, path, headers)).encode()


# ---- the statistics ----------------------------------------------------------------------

class StatsCase(wt.ExtTestCase):
    STATS = "stats"

    def stats(self, d, name=None):
        """GET /stats on the stats listener, as JSON (its own connection is
        still counted as active there)."""
        s = d.connect(name or self.STATS)
        try:
            [r] = exchange(s, request("/stats", headers="Connection: close\r\n"), 1)
        finally:
            s.close()
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.header("content-type"), "application/json")
        return json.loads(r.body)

    def settled(self, d, names, pred=None, timeout=5.0):
        """/stats once every listener of names has no connection open and
        has closed all it accepted (and pred(stats) holds): connections end
        in wharfd a moment after the client saw their end."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats(d)
            ls = st["listeners"]
            if all(ls[n]["active"] == 0 and ls[n]["closed"] == ls[n]["accepted"] for n in names) \
                    and (pred is None or pred(st)):
                return st
            if time.monotonic() > deadline:
                self.fail("the counters did not settle within %.0f s:\n%s"
                          % (timeout, json.dumps(st, indent=2)))
            time.sleep(0.05)

    def wait_stats(self, d, pred, timeout=5.0):
        """/stats once pred(stats) holds."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats(d)
            if pred(st):
                return st
            if time.monotonic() > deadline:
                self.fail("not within %.0f s:\n%s" % (timeout, json.dumps(st, indent=2)))
            time.sleep(0.05)

    def assertCounters(self, l, what, **want):
        """Every counter of listener object l: those named in want, the
        others 0."""
        got = {k: l[k] for k in COUNTERS}
        expected = {k: want.get(k, 0) for k in COUNTERS}
        self.assertEqual(got, expected, what)


def hello(testcase, sock, name):
    sock.sendall(name + b"\n")
    testcase.assertEqual(wt.recv_all(sock), b"Hello, " + name + b"\n")


def pki():
    f = wt.certs()
    ca = f.ca("stats-ca")
    return ca, f.leaf("stats-srv", ca, dns=["localhost"])


class EveryKind(StatsCase):
    """N connections of each kind, every counter against N."""

    N = 6

    def setUp(self):
        super().setUp()
        self.ca, self.cert = pki()
        self.d = self.start([
            listener("stats", "unix", "stats"),
            listener("tcp", "tcp", "hello"),
            listener("unix", "unix", "hello"),
            listener("udp", "udp", "echo"),
            listener("tls", "tcp", "hello", tls={"certificate": self.cert.cert,
                                                  "key": self.cert.key}),
        ])

    def test_shape(self):
        st = self.stats(self.d)
        self.assertEqual(list(st), TOP_KEYS)
        self.assertEqual(st["version"], "0.1.0")
        self.assertEqual(st["pid"], self.d.pid)
        self.assertRegex(st["started_at"], ISO)
        self.assertIsInstance(st["uptime_seconds"], float)
        self.assertGreaterEqual(st["uptime_seconds"], 0)
        self.assertLess(st["uptime_seconds"], 60)
        self.assertEqual(st["workers"], 2)
        self.assertEqual(st["reloads"], {"ok": 0, "failed": 0, "last_error": None,
                                         "last_at": None})
        self.assertEqual(list(st["connections"]), ["active", "accepted"])
        self.assertEqual(list(st["listeners"]), ["stats", "tcp", "unix", "udp", "tls"])
        for name, l in st["listeners"].items():
            self.assertEqual(list(l), LISTENER_KEYS, name)
            self.assertEqual(l["state"], "active")
        want = {
            "stats": ("unix", self.d.addr("stats"), False, "stats"),
            "tcp": ("tcp", "%s:%d" % self.d.addr("tcp"), False, "hello"),
            "unix": ("unix", self.d.addr("unix"), False, "hello"),
            "udp": ("udp", "%s:%d" % self.d.addr("udp"), False, "echo"),
            "tls": ("tcp", "%s:%d" % self.d.addr("tls"), True, "hello"),
        }
        for name, (kind, address, tls, plugin) in want.items():
            l = st["listeners"][name]
            self.assertEqual((l["kind"], l["address"], l["tls"], l["plugin"]),
                             (kind, address, tls, plugin), name)
        # this very request: open on the stats listener
        self.assertEqual(st["listeners"]["stats"]["active"], 1)
        self.assertEqual(st["listeners"]["stats"]["accepted"], 1)
        self.assertEqual(st["connections"], {"active": 1, "accepted": 1})
        self.assertEqual(st["streams"], {})
        self.assertIn("stats", st["plugins"])      # the stats plugin's own figures
        self.assertEqual(st["plugins"]["stats"]["requests"], 0)

    def test_tcp_and_unix(self):
        names = [b"n%d" % i * (i + 1) for i in range(self.N)]
        for kind in ("tcp", "unix"):
            for name in names:
                hello(self, self.connect(self.d, kind), name)
        st = self.settled(self.d, ["tcp", "unix"])
        bytes_in = sum(len(n) + 1 for n in names)
        bytes_out = sum(len(n) + 8 for n in names)
        for kind in ("tcp", "unix"):
            self.assertCounters(st["listeners"][kind], kind, accepted=self.N, closed=self.N,
                                bytes_in=bytes_in, bytes_out=bytes_out)
            self.assertEqual(st["listeners"][kind]["tls_versions"], {})
        # a line too long and an EOF before the line: errors
        s = self.connect(self.d, "tcp")
        s.sendall(b"x" * 2000)
        wt.expect_closed_no_data(self, s)
        s = self.connect(self.d, "unix")
        s.sendall(b"half")
        s.shutdown(socket.SHUT_WR)
        wt.expect_closed_no_data(self, s)
        st = self.settled(self.d, ["tcp", "unix"])
        self.assertEqual(st["listeners"]["tcp"]["errors"], 1)
        self.assertEqual(st["listeners"]["tcp"]["accepted"], self.N + 1)
        self.assertEqual(st["listeners"]["unix"]["errors"], 1)
        self.assertEqual(st["listeners"]["unix"]["bytes_in"], bytes_in + 4)
        conns = st["connections"]
        stream = [l for l in st["listeners"].values() if l["kind"] != "udp"]
        self.assertEqual(conns["accepted"], sum(l["accepted"] for l in stream))
        self.assertEqual(conns["active"], sum(l["active"] for l in stream))

    def test_udp(self):
        u = self.client(wt.udp_socket())
        sizes = [0, 1, 100, 1000, 60000, 7]
        for i, n in enumerate(sizes[:self.N]):
            data = bytes([i]) * n
            u.sendto(data, self.d.addr("udp"))
            got, _ = u.recvfrom(65536)
            self.assertEqual(got, data)
        # the reply may reach us before wharfd has counted it
        st = self.wait_stats(self.d, lambda st: st["listeners"]["udp"]["datagrams_out"] >= self.N)
        total = sum(sizes[:self.N])
        self.assertCounters(st["listeners"]["udp"], "udp", datagrams_in=self.N,
                            datagrams_out=self.N, bytes_in=total, bytes_out=total)

    def tls_connect(self, ctx, session=None):
        raw = self.connect(self.d, "tls")
        return self.client(ctx.wrap_socket(raw, server_hostname="localhost", session=session,
                                           suppress_ragged_eofs=False))

    def test_tls(self):
        n12 = self.N // 2
        ctx12 = wt.tls_client_context(self.ca, versions=TLS12)
        ctx13 = wt.tls_client_context(self.ca, versions=TLS13)
        resumed = 0
        session = None
        for i in range(self.N):
            s = self.tls_connect(ctx12 if i < n12 else ctx13, session if i == 1 else None)
            resumed += s.session_reused
            hello(self, s, b"tls%d" % i)
            if i == 0:
                session = s.session         # TLS 1.2: resumed by the next one
            # the client's goodbye: its close_notify answers wharfd's, whose
            # close (standard mode) would otherwise wait for it up to its
            # 5 s bound, then the TCP close
            s.unwrap().close()
        self.assertEqual(resumed, 1, "the second TLS 1.2 connection was not resumed")
        # a failed handshake: no ClientHello at all
        s = self.connect(self.d, "tls")
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        wt.recv_all(s, allow_reset=True)
        # a ragged EOF: the TCP connection ends without close_notify, before
        # the line hello waits for (ragged_eof = false: also an error)
        s = self.tls_connect(ctx13)
        socket.socket.shutdown(s, socket.SHUT_WR)
        try:
            wt.recv_all(s, allow_reset=True)
        except ssl.SSLError:
            pass
        # well within the 5 s a close waits for a missing close_notify
        st = self.settled(self.d, ["tls"], lambda st: st["listeners"]["tls"]["ragged_eofs"] == 1,
                          timeout=3.0)
        names = [b"tls%d" % i for i in range(self.N)]
        self.assertCounters(st["listeners"]["tls"], "tls", accepted=self.N + 2,
                            closed=self.N + 2, errors=1, handshakes=self.N + 1,
                            handshake_failures=1, resumed=1, ragged_eofs=1,
                            bytes_in=sum(len(n) + 1 for n in names),
                            bytes_out=sum(len(n) + 8 for n in names))
        self.assertEqual(st["listeners"]["tls"]["tls_versions"],
                         {"TLSv1.2": n12, "TLSv1.3": self.N - n12 + 1})


class Workers(StatsCase):
    """Concurrent clients spread over two workers: the totals are exact."""

    def test_exact_totals(self):
        d = self.start([listener("stats", "unix", "stats"), listener("hello", "tcp", "hello"),
                        listener("echo", "unix", "echo")], {"workers": 2})
        threads, per, errors = 8, 24, []

        def client(t):
            try:
                for i in range(per):
                    s = d.connect("hello" if i % 2 else "echo")
                    try:
                        if i % 2:
                            hello(self, s, b"t%d-%d" % (t, i))
                        else:
                            wt.echo_roundtrip(self, s, b"0123456789")
                            s.shutdown(socket.SHUT_WR)
                            self.assertEqual(wt.recv_all(s), b"")
                    finally:
                        s.close()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        ts = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
        for t in ts:
            t.start()
        # meanwhile the statistics are read over and over: counters only grow
        last = {"hello": 0, "echo": 0}
        while any(t.is_alive() for t in ts):
            st = self.stats(d)
            for name in last:
                self.assertGreaterEqual(st["listeners"][name]["accepted"], last[name])
                last[name] = st["listeners"][name]["accepted"]
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        st = self.settled(d, ["hello", "echo"])
        n = threads * per // 2
        hello_in = sum(len(b"t%d-%d\n" % (t, i)) for t in range(threads)
                       for i in range(per) if i % 2)
        self.assertCounters(st["listeners"]["hello"], "hello", accepted=n, closed=n,
                            bytes_in=hello_in, bytes_out=hello_in + 7 * n)
        self.assertCounters(st["listeners"]["echo"], "echo", accepted=n, closed=n,
                            bytes_in=10 * n, bytes_out=10 * n)


# ---- /metrics ---------------------------------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(\{%s(?:,%s)*\})? (-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\+Inf|-Inf|NaN)$"
                    % (NAME, LABEL, LABEL))
HELP = re.compile(r"^# HELP (%s) (.*)$" % NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|untyped|summary|histogram)$" % NAME)


def parse_metrics(testcase, text):
    """The exposition text, checked line by line: {(name, labels): value}
    and {name: type}."""
    samples, types, helps, family = {}, {}, set(), None
    testcase.assertTrue(text.endswith("\n"))
    for i, line in enumerate(text[:-1].split("\n"), 1):
        m = HELP.match(line)
        if m:
            testcase.assertNotIn(m.group(1), helps, "line %d: a second HELP" % i)
            helps.add(m.group(1))
            family = m.group(1)
            continue
        m = TYPE.match(line)
        if m:
            testcase.assertEqual(m.group(1), family, "line %d: TYPE without its HELP" % i)
            testcase.assertNotIn(family, types, "line %d: a second TYPE" % i)
            types[family] = m.group(2)
            if m.group(2) == "counter":
                testcase.assertTrue(family.endswith("_total"), "counter %s" % family)
            testcase.assertTrue(family.startswith("wharf_"), family)
            continue
        m = SAMPLE.match(line)
        testcase.assertIsNotNone(m, "line %d is not valid: %r" % (i, line))
        testcase.assertEqual(m.group(1), family, "line %d: outside its family" % i)
        testcase.assertIn(family, types, "line %d: a sample before its TYPE" % i)
        labels = tuple(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                  m.group(2) or ""))
        key = (m.group(1), labels)
        testcase.assertNotIn(key, samples, "line %d: a repeated sample" % i)
        samples[key] = float(m.group(3))
    return samples, types


class Metrics(StatsCase):

    def test_metrics(self):
        d = self.start([listener("stats", "unix", "stats"),
                        listener("stats-tcp", "tcp", "stats"),
                        listener("hello", "tcp", "hello")])
        for i in range(3):
            hello(self, self.connect(d, "hello"), b"m%d" % i)
        st = self.settled(d, ["hello"])
        s = self.connect(d, "stats-tcp")
        [r] = exchange(s, request("/metrics"), 1)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        text = r.body.decode("utf-8")
        samples, types = parse_metrics(self, text)
        lab = (("listener", "hello"),)
        self.assertEqual(samples[("wharf_listener_accepted_total", lab)], 3)
        self.assertEqual(samples[("wharf_listener_closed_total", lab)], 3)
        self.assertEqual(samples[("wharf_listener_bytes_in_total", lab)],
                         st["listeners"]["hello"]["bytes_in"])
        self.assertEqual(samples[("wharf_listener_active", lab)], 0)
        self.assertEqual(types["wharf_listener_active"], "gauge")
        self.assertEqual(types["wharf_listener_accepted_total"], "counter")
        self.assertEqual(samples[("wharf_workers", ())], 2)
        self.assertEqual(samples[("wharf_pid", ())], d.pid)
        self.assertEqual(samples[("wharf_reloads_ok_total", ())], 0)
        self.assertIn(("wharf_uptime_seconds", ()), samples)
        self.assertIn(("wharf_version_info", (("version", "0.1.0"),)), samples)
        info = [k for k in samples if k[0] == "wharf_listener_info" and k[1][0][1] == "hello"]
        self.assertEqual(info, [("wharf_listener_info",
                                 (("listener", "hello"), ("kind", "tcp"),
                                  ("address", "%s:%d" % d.addr("hello")), ("tls", "false"),
                                  ("plugin", "hello"), ("state", "active")))])
        # the stats plugin's own figures: this is the second request answered
        self.assertGreaterEqual(samples[("wharf_plugin_stats_requests", ())], 1)
        # every counter of every listener is there
        for name in st["listeners"]:
            for k in COUNTERS:
                metric = "wharf_listener_%s%s" % (k, "" if k == "active" else "_total")
                self.assertIn((metric, (("listener", name),)), samples)
        promtool = shutil.which("promtool")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=r.body,
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, "promtool check metrics:\n%s%s"
                             % (p.stdout.decode(), p.stderr.decode()))
        else:
            sys.stderr.write("note: promtool not installed (Debian: prometheus): "
                             "the format was checked line by line only\n")


# ---- HTTP -------------------------------------------------------------------------------

class Http(StatsCase):

    def setUp(self):
        super().setUp()
        self.d = self.start([listener("stats", "unix", "stats"),
                             listener("http", "tcp", "stats")])

    def test_statuses_and_keep_alive(self):
        s = self.connect(self.d, "http")
        rs = exchange(s, request("/healthz") + request("/nope") + request("/stats", "POST")
                      + request("/stats?pretty") + request("/stats"), 5)
        self.assertEqual([r.status for r in rs], [200, 404, 405, 200, 200])
        self.assertEqual(rs[0].body, b"ok\n")
        self.assertEqual(rs[2].header("allow"), "GET, HEAD")
        self.assertIn(b'\n  "version": "0.1.0",\n', rs[3].body)
        self.assertNotIn(b"\n ", rs[4].body)
        self.assertEqual(json.loads(rs[4].body)["pid"], self.d.pid)
        # still open: one more, then Connection: close is honoured
        [r] = exchange(s, request("/healthz", headers="Connection: close\r\n"), 1)
        self.assertEqual(r.header("connection"), "close")
        self.assertEqual(wt.recv_all(s), b"")

    def test_http10_closes(self):
        s = self.connect(self.d, "http")
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        data = wt.recv_all(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK\r\n"), data)
        self.assertTrue(data.endswith(b"\r\n\r\nok\n"), data)

    def test_curl(self):
        curl = shutil.which("curl")
        if not curl:
            self.skipTest("curl is not installed")
        out = subprocess.run([curl, "-sS", "--unix-socket", self.d.addr("stats"),
                              "http://localhost/stats?pretty"], capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["workers"], 2)
        host, port = self.d.addr("http")
        out = subprocess.run([curl, "-sS", "http://%s:%d/healthz" % (host, port),
                              "http://%s:%d/metrics" % (host, port)], capture_output=True,
                             timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stdout.startswith(b"ok\n# HELP "), out.stdout[:100])

    def test_malformed_never_blocks_others(self):
        """Bad clients at once, each on its own connection, while a good
        client is answered at once: garbage gets 400, a 100 KB header 431,
        a request in 1-byte writes 200, pipelined requests their answers in
        order, and a client that stops in the middle of a request holds
        nobody up."""
        d = self.d
        stuck = self.connect(d, "http")
        stuck.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n")   # and nothing more
        t0 = time.monotonic()
        good = self.connect(d, "http")
        [r] = exchange(good, request("/healthz"), 1)
        self.assertEqual(r.status, 200)
        self.assertLess(time.monotonic() - t0, 2.0)

        garbage = self.connect(d, "http")
        garbage.sendall(bytes(range(1, 256)) * 4)
        data = wt.recv_all(garbage, allow_reset=True)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data[:100])
        self.assertIn(b"\r\nConnection: close\r\n", data)

        big = self.connect(d, "http")
        try:
            big.sendall(b"GET /stats HTTP/1.1\r\nX-Big: " + b"b" * 100000 + b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass        # wharfd may stop reading once it has seen 8 KiB
        data = wt.recv_all(big, allow_reset=True)
        self.assertTrue(data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
                        data[:100])

        slow = self.connect(d, "http")
        req = request("/stats")
        for i in range(len(req)):
            slow.send(req[i:i + 1])
            time.sleep(0.001)
        [r] = exchange(slow, b"", 1)
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(r.body)["workers"], 2)

        piped = self.connect(d, "http")
        rs = exchange(piped, request("/metrics") + request("/x") + request("/healthz")
                      + request("/stats", "DELETE") + request("/healthz"), 5)
        self.assertEqual([r.status for r in rs], [200, 404, 200, 405, 200])

        bad = self.connect(d, "http")
        bad.sendall(b"GET /stats HTTP/1.1\r\nNo colon\r\n\r\n")
        data = wt.recv_all(bad)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data[:100])

        # the stuck client is still there, and the good one still served
        self.assertTrue(wt.still_open(stuck))
        [r] = exchange(good, request("/healthz"), 1)
        self.assertEqual(r.status, 200)
        # errors: the garbage, the big header and the bad header line (each
        # counted once wharfd has closed it: after its lingering close)
        for sock in (garbage, big, bad):
            sock.close()
        st = self.wait_stats(d, lambda st: st["listeners"]["http"]["errors"] >= 3)
        self.assertEqual(st["listeners"]["http"]["errors"], 3)
        self.assertEqual(st["plugins"]["stats"]["responses"]["400"], 2)
        self.assertEqual(st["plugins"]["stats"]["responses"]["431"], 1)


class Https(StatsCase):

    def test_over_tls(self):
        ca, cert = pki()
        d = self.start([listener("stats", "unix", "stats"),
                        listener("https", "tcp", "stats",
                                 tls={"certificate": cert.cert, "key": cert.key})])
        ctx = wt.tls_client_context(ca)
        s = self.client(ctx.wrap_socket(self.connect(d, "https"), server_hostname="localhost"))
        rs = exchange(s, request("/healthz") + request("/stats"), 2)
        self.assertEqual([r.status for r in rs], [200, 200])
        self.assertTrue(json.loads(rs[1].body)["listeners"]["https"]["tls"])


class Config(StatsCase):

    def check(self, text, rx):
        path = self.write_conf("workers = 1;\nplugin_dir = \"%s\";\n%s" % (wt.PLUGIN_DIR, text))
        r = self.run_wharfd(["-t", "-c", path])
        self.assertExit(r, wt.EX_CONFIG)
        self.assertRegex(r.stderr, rx)

    def test_udp_is_a_config_error(self):
        self.check('listeners = ( { name = "s"; udp = "127.0.0.1:9"; handler = "stats"; } );\n',
                   r'wharf\.conf:3: listeners\.\[0\]\.handler: plugin "stats" cannot serve udp')

    def test_options_rejected(self):
        self.check('listeners = ( { name = "s"; unix = "/tmp/x.sock";\n'
                   '  handler = { plugin = "stats"; pretty = true; }; } );\n',
                   r'wharf\.conf:4: listeners\.\[0\]\.handler\.pretty: unknown option "pretty"')


# ---- reloads --------------------------------------------------------------------------------

class Reload(StatsCase):

    def test_counters_survive_and_reloads_counted(self):
        d = self.start([listener("stats", "unix", "stats"), listener("hello", "tcp", "hello")])
        for i in range(4):
            hello(self, self.connect(d, "hello"), b"before")
        self.settled(d, ["hello"])
        # a reload that changes hello's options keeps its counters
        d.reconf([listener("stats", "unix", "stats"),
                  listener("hello", "tcp", {"plugin": "hello", "max_line": 100})])
        self.reload_ok(d)
        for i in range(3):
            hello(self, self.connect(d, "hello"), b"after")
        st = self.settled(d, ["hello"])
        self.assertEqual(st["listeners"]["hello"]["accepted"], 7)
        self.assertEqual(st["listeners"]["hello"]["closed"], 7)
        self.assertEqual(st["listeners"]["hello"]["bytes_in"], 4 * 7 + 3 * 6)
        self.assertEqual(st["reloads"]["ok"], 1)
        self.assertEqual(st["reloads"]["failed"], 0)
        self.assertIsNone(st["reloads"]["last_error"])
        self.assertRegex(st["reloads"]["last_at"], ISO)
        # a failed one: counted, its first error kept, nothing changed
        d.reconf(extra="this is not libconfig\n")
        self.reload_failed(d)
        st = self.wait_stats(d, lambda st: st["reloads"]["failed"] == 1)
        self.assertEqual((st["reloads"]["ok"], st["reloads"]["failed"]), (1, 1))
        self.assertIn("syntax error", st["reloads"]["last_error"])
        self.assertIn(d.conf, st["reloads"]["last_error"])
        self.assertEqual(st["listeners"]["hello"]["accepted"], 7)

    def test_removed_listener_draining(self):
        d = self.start([listener("stats", "unix", "stats"),
                        listener("gone", "tcp", "echo", drain_timeout=10.0)])
        c = self.connect(d, "gone")
        wt.echo_roundtrip(self, c, b"open\n")
        d.reconf([listener("stats", "unix", "stats")])
        self.reload_ok(d)
        st = self.stats(d)
        gone = st["listeners"]["gone"]
        self.assertEqual(gone["state"], "draining")
        self.assertEqual((gone["accepted"], gone["active"]), (1, 1))
        self.assertEqual(st["connections"]["active"], 2)    # it and this request
        wt.echo_roundtrip(self, c, b"still\n")
        c.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(c), b"")
        deadline = time.monotonic() + 5
        while "gone" in self.stats(d)["listeners"]:
            self.assertLess(time.monotonic(), deadline, "a drained listener is still listed")
            time.sleep(0.05)

    def test_moved_listener_listed_once(self):
        """Moved to another port while a connection is open at the old one:
        one entry, the new address, active, with the old one's counters."""
        d = self.start([listener("stats", "unix", "stats"),
                        listener("echo", "tcp", "echo", drain_timeout=10.0)])
        c = self.connect(d, "echo")
        wt.echo_roundtrip(self, c, b"old port\n")
        new_port = wt.free_ports(1)[0]
        d.reconf([listener("stats", "unix", "stats"),
                  listener("echo", "tcp", "echo", address=("127.0.0.1", new_port))])
        self.reload_ok(d)
        st = self.stats(d)
        self.assertEqual(list(st["listeners"]), ["stats", "echo"])
        echo = st["listeners"]["echo"]
        self.assertEqual((echo["state"], echo["address"]), ("active", "127.0.0.1:%d" % new_port))
        self.assertEqual((echo["accepted"], echo["active"]), (1, 1))
        c.close()


if __name__ == "__main__":
    wt.main()
