#!/usr/bin/env python3
"""The pubsub plugin (SPEC.md section 5) against the real wharfd: three
TCP clients on one listener (a line reaches the two others exactly, in
order, never its sender); a TLS, a plain TCP and a UDP listener naming one
topic form one pipeline; a slow consumer (queue = 4, a client that never
reads while another publishes 10000 lines) gets lines, then `ERR slow
consumer`, then the close, while its publisher is never blocked and a fast
subscriber misses nothing; the figures in plugins.pubsub and
streams["pubsub/default"]; on two workers, every subscriber gets every line
of every publisher (TCP, TLS, UDP) in that publisher's order; lines up to
64 KiB, a longer one ends its connection; a topic lives across reloads and
leaves `streams` with its last user; options are checked."""

import json
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener

SLOW = b"ERR slow consumer\n"


def pki():
    f = wt.certs()
    ca = f.ca("pubsub-ca")
    return ca, f.leaf("pubsub-srv", ca, dns=["localhost"])


class PubsubCase(wt.TestCase):

    def stats(self, d):
        """GET /stats on the "stats" listener, as JSON."""
        s = d.connect("stats")
        try:
            s.sendall(b"GET /stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            raw = wt.recv_all(s)
        finally:
            s.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        return json.loads(body)

    def wait_stats(self, d, pred, timeout=5.0, what="stats"):
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats(d)
            if pred(st):
                return st
            if time.monotonic() > deadline:
                self.fail("%s: not within %.0f s:\n%s" % (what, timeout, json.dumps(st, indent=2)))
            time.sleep(0.02)

    def wait_subscribers(self, d, n, topic="default"):
        """Until the topic has n subscribers (connections are subscribed a
        moment after the client's connect returned)."""
        return self.wait_stats(
            d, lambda st: st["plugins"].get("pubsub", {}).get("topics", {})
            .get(topic, {}).get("subscribers") == n, what="%d subscribers" % n)

    def tls_connect(self, d, name):
        ctx = wt.tls_client_context(ca=self.ca)
        raw = d.connect(name)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.settimeout(wt.IO_TIMEOUT)
        return s


def lines(prefix, n, width=0):
    return [(b"%s %d " % (prefix, i)).ljust(width, b"x") + b"\n" for i in range(n)]


class Basics(PubsubCase):

    def test_three_clients(self):
        d = self.start([listener("stats", "unix", "stats"),
                        listener("ps", "tcp", "pubsub")])
        a, b, c = (d.connect("ps") for _ in range(3))
        self.wait_subscribers(d, 3)
        want = lines(b"from-a", 200)
        a.sendall(b"".join(want))
        for s in (b, c):
            self.assertEqual(wt.recv_exact(s, len(b"".join(want))), b"".join(want))
        b.sendall(b"from b\r\n" + b"\n")    # bytes as they are; an empty line is a line
        for s in (a, c):
            self.assertEqual(wt.recv_exact(s, 9), b"from b\r\n\n")
        # nothing more anywhere: the sender got none of its own lines
        for s in (a, b, c):
            self.assertTrue(wt.still_open(s, 0.3), "unexpected data or close")
        st = self.stats(d)
        ps = st["plugins"]["pubsub"]
        self.assertEqual(ps["published"], 202)
        self.assertEqual(ps["delivered"], 2 * 202)
        self.assertEqual(ps["slow_consumers"], 0)
        self.assertEqual(ps["subscribers"], 3)
        self.assertEqual(ps["topics"], {"default": {"published": 202, "delivered": 404,
                                                    "slow_consumers": 0, "subscribers": 3}})
        self.assertEqual(st["streams"]["pubsub/default"]["max_buffer_size"], 1024)
        # a client that leaves is unsubscribed; its end of stream closes it
        a.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(a), b"")
        a.close()
        self.wait_subscribers(d, 2)
        b.sendall(b"x\n")
        self.assertEqual(wt.recv_exact(c, 2), b"x\n")
        b.close()
        c.close()
        self.wait_subscribers(d, 0)

    def test_long_lines(self):
        d = self.start([listener("stats", "unix", "stats"),
                        listener("ps", "tcp", "pubsub")])
        a, b = d.connect("ps"), d.connect("ps")
        self.wait_subscribers(d, 2)
        for n in (2047, 2048, 2049, 65536):     # 64 KiB before the newline is the limit
            line = b"%d " % n
            line = line + b"y" * (n - len(line)) + b"\n"
            a.sendall(line)
            self.assertEqual(wt.recv_exact(b, len(line)), line)
        a.sendall(b"z" * 65537 + b"\n")         # one byte more: the connection ends
        self.assertEqual(wt.recv_all(a, allow_reset=True), b"")
        self.assertTrue(wt.still_open(b, 0.2))
        self.wait_subscribers(d, 1)
        self.wait_stats(d, lambda st: st["listeners"]["ps"]["errors"] == 1, what="errors 1")

    def test_tls_tcp_and_udp_one_pipeline(self):
        self.ca, cert = pki()
        tls = {"certificate": cert.cert, "key": cert.key}
        h = {"plugin": "pubsub", "topic": "news"}
        d = self.start([listener("stats", "unix", "stats"),
                        listener("tls", "tcp", h, tls=tls),
                        listener("tcp", "tcp", h),
                        listener("udp", "udp", h),
                        listener("other", "tcp", "pubsub")])    # topic "default"
        t = self.tls_connect(d, "tls")
        p = d.connect("tcp")
        o = d.connect("other")
        self.wait_subscribers(d, 2, topic="news")
        u = wt.udp_socket()
        u.sendto(b"one", d.addr("udp"))
        u.sendto(b"two\n", d.addr("udp"))     # the newline is not doubled
        u.sendto(b"", d.addr("udp"))          # an empty datagram: an empty line
        for s in (t, p):
            self.assertEqual(wt.recv_exact(s, 9), b"one\ntwo\n\n")
        t.sendall(b"over tls\n")
        self.assertEqual(wt.recv_exact(p, 9), b"over tls\n")
        p.sendall(b"plain\n")
        self.assertEqual(wt.recv_exact(t, 6), b"plain\n")
        # nothing back to the UDP sender, nothing to the other topic
        u.settimeout(0.3)
        self.assertRaises(socket.timeout, u.recvfrom, 100)
        self.assertTrue(wt.still_open(o, 0.2))
        st = self.stats(d)
        self.assertIn("pubsub/news", st["streams"])
        self.assertIn("pubsub/default", st["streams"])
        self.assertEqual(st["plugins"]["pubsub"]["topics"]["news"]["published"], 5)
        self.assertEqual(st["listeners"]["udp"]["datagrams_out"], 0)
        for s in (t, p, o, u):
            s.close()


class Slow(PubsubCase):

    N = 10000
    WIDTH = 1000        # 10 MB: more than the kernel's buffers hold

    def slow_client(self, d, name):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(wt.IO_TIMEOUT)
        s.connect(d.addr(name))
        return s

    def check_slow(self, data, want):
        self.assertTrue(data.endswith(SLOW), "no ERR at the end: %r" % data[-200:])
        got = data[:-len(SLOW)]
        self.assertTrue(len(got) < len(b"".join(want)), "it got every line")
        n = got.count(b"\n")
        self.assertEqual(got, b"".join(want[:n]), "not a prefix of whole lines in order")
        return n

    def test_slow_consumer(self):
        d = self.start([listener("stats", "unix", "stats"),
                        listener("ps", "tcp", {"plugin": "pubsub", "queue": 4})])
        slow = self.slow_client(d, "ps")
        pub = d.connect("ps")
        self.wait_subscribers(d, 2)
        want = lines(b"line", self.N, self.WIDTH)
        t0 = time.monotonic()
        pub.sendall(b"".join(want))
        took = time.monotonic() - t0
        self.assertLess(took, 3.0, "the publisher was blocked")
        st = self.wait_stats(d, lambda st: st["plugins"]["pubsub"]["published"] == self.N,
                             what="every line published")
        self.assertEqual(st["plugins"]["pubsub"]["slow_consumers"], 1)
        self.assertEqual(st["streams"]["pubsub/default"]["max_buffer_size"], 4)
        data = wt.recv_all(slow, timeout=10.0)
        n = self.check_slow(data, want)
        self.assertGreater(n, 0)
        # the publisher is still served
        self.assertTrue(wt.still_open(pub, 0.2))
        st = self.wait_subscribers(d, 1)
        self.assertEqual(st["plugins"]["pubsub"]["delivered"], n)
        pub.close()

    def test_others_miss_nothing(self):
        d = self.start([listener("stats", "unix", "stats"),
                        listener("ps", "tcp", "pubsub")])
        slow = self.slow_client(d, "ps")
        fast = d.connect("ps")
        pub = d.connect("ps")
        self.wait_subscribers(d, 3)
        want = lines(b"line", self.N, self.WIDTH)
        total = len(b"".join(want))
        got = {}

        def read():
            try:
                got["data"] = wt.recv_exact(fast, total, timeout=20.0)
            except AssertionError as e:
                got["error"] = e

        th = threading.Thread(target=read)
        th.start()
        # Paced (100 KB every 5 ms, some 20 MB/s), so that a subscriber
        # that reads keeps up whatever the machine's load: one that cannot
        # follow the publishers is, by design, a slow consumer.
        t0 = time.monotonic()
        for i in range(0, self.N, 100):
            pub.sendall(b"".join(want[i:i + 100]))
            time.sleep(0.005)
        self.assertLess(time.monotonic() - t0, 5.0, "the publisher was blocked")
        th.join(25.0)
        self.assertNotIn("error", got)
        self.assertEqual(got["data"], b"".join(want), "the fast subscriber missed lines")
        self.check_slow(wt.recv_all(slow, timeout=10.0), want)
        st = self.stats(d)
        self.assertEqual(st["plugins"]["pubsub"]["slow_consumers"], 1)
        for s in (slow, fast, pub):
            s.close()


class TwoWorkers(PubsubCase):
    """Every subscriber on both workers (plain TCP and TLS) gets every line
    of every publisher (TCP, TLS, UDP) in that publisher's order."""

    PER = 2000

    def test_order_per_publisher(self):
        self.ca, cert = pki()
        tls = {"certificate": cert.cert, "key": cert.key}
        # A queue that outlasts the machine's scheduling: on a loaded
        # 2-core box a worker can be off the CPU for milliseconds while the
        # other publishes a thousand lines, and this test is about order
        # across workers, not about overflow (Slow is).
        h = {"plugin": "pubsub", "queue": 100000}
        d = self.start([listener("stats", "unix", "stats"),
                        listener("tcp", "tcp", h),
                        listener("tls", "tcp", h, tls=tls),
                        listener("udp", "udp", h)], {"workers": 2})
        clients = [d.connect("tcp") for _ in range(4)] + [self.tls_connect(d, "tls")
                                                           for _ in range(4)]
        self.wait_subscribers(d, len(clients))
        pubs = {i: lines(b"c%d" % i, self.PER) for i in range(0, len(clients), 2)}
        udp_lines = lines(b"u", 200)
        results, errors = {}, []

        expected = {}
        for i in range(len(clients)):
            expected[i] = sum(len(v) for k, v in pubs.items() if k != i) + len(udp_lines)

        def client(i, s, n):
            """Publishes pubs[i] (if any), paced (100 lines, then a read of
            up to 2 ms), and reads until it has n lines. One thread per
            client: an SSLSocket must not read and write in two threads."""
            buf = bytearray()
            try:
                mine = pubs.get(i, [])
                for j in range(0, len(mine), 100):
                    s.sendall(b"".join(mine[j:j + 100]))
                    s.settimeout(0.002)
                    try:
                        while True:
                            chunk = s.recv(1 << 16)
                            if not chunk:
                                raise AssertionError("EOF after %d lines" % buf.count(b"\n"))
                            buf += chunk
                    except socket.timeout:
                        pass
                deadline = time.monotonic() + 30
                while buf.count(b"\n") < n:
                    s.settimeout(max(0.1, deadline - time.monotonic()))
                    chunk = s.recv(1 << 16)
                    if not chunk:
                        raise AssertionError("EOF after %d lines" % buf.count(b"\n"))
                    buf += chunk
            except Exception as e:      # noqa: BLE001 (reported by the test)
                errors.append("client %d: %r" % (i, e))
            results[i] = bytes(buf)

        threads = [threading.Thread(target=client, args=(i, s, expected[i]))
                   for i, s in enumerate(clients)]
        for t in threads:
            t.start()
        u = wt.udp_socket()
        for ln in udp_lines:
            u.sendto(ln, d.addr("udp"))
            time.sleep(0.001)       # loopback UDP may drop a burst: pace it
        for t in threads:
            t.join(35)
        self.assertEqual(errors, [])
        for i in range(len(clients)):
            got = results[i].split(b"\n")[:-1]
            self.assertEqual(len(got), expected[i])
            by_pub = {}
            for ln in got:
                by_pub.setdefault(ln.split(b" ")[0], []).append(ln + b"\n")
            for k, v in pubs.items():
                if k != i:
                    self.assertEqual(by_pub.pop(b"c%d" % k), v, "client %d from %d" % (i, k))
            self.assertEqual(by_pub.pop(b"u"), udp_lines)
            self.assertEqual(by_pub, {})
        st = self.stats(d)
        self.assertEqual(st["plugins"]["pubsub"]["slow_consumers"], 0)
        for s in clients:
            s.close()
        u.close()


class Reload(PubsubCase, wt.ExtTestCase):
    """A topic lives while a listener names it: across a reload that keeps
    the listener, connections of the old and the new generation share it;
    once no listener names it and its last connection ended, it is gone
    from `streams`."""

    def test_topic_across_reloads(self):
        ps = listener("ps", "tcp", "pubsub")
        st_l = listener("stats", "unix", "stats")
        d = self.start([st_l, ps])
        old = d.connect("ps")
        self.wait_subscribers(d, 1)
        self.reload_ok(d)
        new = d.connect("ps")
        self.wait_subscribers(d, 2)
        new.sendall(b"after\n")
        self.assertEqual(wt.recv_exact(old, 6), b"after\n")
        old.sendall(b"before\n")
        self.assertEqual(wt.recv_exact(new, 7), b"before\n")
        self.assertIn("pubsub/default", self.stats(d)["streams"])
        d.reconf([st_l])
        self.reload_ok(d, "reload without pubsub")
        self.assertIn("pubsub/default", self.stats(d)["streams"])    # old, new still open
        old.close()
        new.close()
        self.wait_stats(d, lambda st: "pubsub/default" not in st["streams"],
                        what="pubsub/default removed")


class Config(wt.TestCase):

    def check(self, handler, rx):
        path = self.write_conf('workers = 1;\nplugin_dir = "%s";\n'
                               'listeners = ( { name = "p"; tcp = "127.0.0.1:9";\n'
                               '  handler = { plugin = "pubsub"; %s }; } );\n'
                               % (wt.PLUGIN_DIR, handler))
        r = self.run_wharfd(["-t", "-c", path])
        self.assertExit(r, wt.EX_CONFIG)
        self.assertRegex(r.stderr, rx)

    def test_unknown_option(self):
        self.check("color = 1;", r'wharf\.conf:4: listeners\.\[0\]\.handler\.color: '
                                 r'unknown option "color"')

    def test_queue_range(self):
        for q in ("0", "1000001", '"10"'):
            self.check("queue = %s;" % q, r'handler\.queue: queue must be an integer from 1')

    def test_topic(self):
        self.check('topic = "";', r'handler\.topic: topic must be a non-empty string')

    def test_good(self):
        path = self.write_conf('workers = 1;\nplugin_dir = "%s";\n'
                               'listeners = ( { name = "p"; udp = "127.0.0.1:9";\n'
                               '  handler = { plugin = "pubsub"; topic = "t"; queue = 1; }; } );\n'
                               % wt.PLUGIN_DIR)
        self.assertExit(self.run_wharfd(["-t", "-c", path]), wt.EX_OK)


if __name__ == "__main__":
    wt.main()
