#!/usr/bin/env python3
"""The starttls plugin through wharfd (SPEC.md section 5) on a listener
with tls.autostart = false: PLAIN lines, STARTTLS (no reply, then the
handshake on the same connection), TLS lines, STARTTLS twice, QUIT -> BYE
and a clean close; STARTTLS and the ClientHello in one write (and a line,
STARTTLS and the ClientHello in one write); a handshake that fails; a
STARTTLS handshake counted and bounded like one at accept; a listener
without tls (ERR TLS not available); starttls on UDP (-t, 78)."""

import json
import re
import ssl
import sys
import time

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener

HOST = "ec.example.test"
ERROR_LINE = re.compile(r"^wharfd: (.+?):(\d+): (\S+): (.+)$")


def pki():
    f = wt.certs()
    ca = f.ca("ca", "ec")
    return ca, f.leaf("ec", ca, dns=[HOST], kind="ec")


class StartTls(wt.TestCase):

    def setUp(self):
        super().setUp()
        self.ca, cert = pki()
        self.d = self.start([
            listener("st", "tcp", "starttls",
                     tls={"certificate": cert.cert, "key": cert.key, "autostart": False}),
            listener("plain", "tcp", "starttls"),
        ])

    def ctx(self):
        return wt.tls_client_context(self.ca)

    def say(self, sock, line, reply):
        """Sends line (and its \\n) and expects exactly reply (and its \\n)."""
        sock.sendall(line + b"\n")
        self.assertEqual(wt.recv_exact(sock, len(reply) + 1), reply + b"\n",
                         "the reply to %r" % line)

    def upgrade(self, raw):
        """STARTTLS on raw: no reply, then the handshake over the same socket."""
        raw.sendall(b"STARTTLS\n")
        self.assertTrue(wt.still_open(raw, 0.2), "a reply (or a close) after STARTTLS")
        s = self.client(self.ctx().wrap_socket(raw, server_hostname=HOST,
                                               suppress_ragged_eofs=False))
        self.assertEqual(wt.peer_names(s), (HOST, [HOST]), "not the listener's certificate")
        return s

    def assertQuit(self, s):
        """QUIT -> BYE, then wharfd's close: close_notify and the TCP end."""
        s.sendall(b"QUIT\n")
        try:
            data = wt.recv_all(s)
        except ssl.SSLEOFError as e:
            self.fail("wharfd closed without close_notify after BYE (%s)" % e)
        self.assertEqual(data, b"BYE\n")
        raw = s.unwrap()        # ours; wharfd's came already
        self.assertEqual(wt.recv_all(raw), b"", "bytes after the TLS close")

    def test_dialogue(self):
        raw = self.connect(self.d, "st")
        self.say(raw, b"hi", b"PLAIN hi")
        self.say(raw, b"hello there", b"PLAIN hello there")
        s = self.upgrade(raw)
        self.say(s, b"hi", b"TLS hi")
        self.say(s, b"STARTTLS", b"ERR already secure")
        self.say(s, b"hi again", b"TLS hi again")
        self.assertQuit(s)

    def test_upgrade_at_once(self):
        raw = self.connect(self.d, "st")
        s = self.upgrade(raw)
        self.say(s, b"first", b"TLS first")
        self.assertQuit(s)

    def test_quit_in_plaintext(self):
        raw = self.connect(self.d, "st")
        self.say(raw, b"hi", b"PLAIN hi")
        raw.sendall(b"QUIT\n")
        self.assertEqual(wt.recv_all(raw), b"BYE\n")

    def handshake_behind(self, prefix, plain_replies=b""):
        """Sends prefix + b"STARTTLS\\n" + the ClientHello in one write, reads
        the plaintext replies, then completes the handshake over memory
        BIOs. Returns (sock, SSLObject, incoming, outgoing)."""
        raw = self.connect(self.d, "st")
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx().wrap_bio(incoming, outgoing, server_hostname=HOST)
        with self.assertRaises(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = outgoing.read()
        self.assertTrue(hello and hello[0] == 22, "no ClientHello record")
        raw.sendall(prefix + b"STARTTLS\n" + hello)
        if plain_replies:
            self.assertEqual(wt.recv_exact(raw, len(plain_replies)), plain_replies)
        raw.settimeout(wt.IO_TIMEOUT)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    raw.sendall(outgoing.read())
                data = raw.recv(65536)
                if not data:
                    self.fail("wharfd closed during the handshake: the bytes behind "
                              "STARTTLS were not kept for TLS")
                incoming.write(data)
        if outgoing.pending:
            raw.sendall(outgoing.read())
        return raw, tls, incoming, outgoing

    def mem_say(self, raw, tls, incoming, outgoing, line, reply):
        tls.write(line + b"\n")
        raw.sendall(outgoing.read())
        got = b""
        while len(got) < len(reply) + 1:
            try:
                got += tls.read(65536)
            except ssl.SSLWantReadError:
                data = raw.recv(65536)
                if not data:
                    break
                incoming.write(data)
        self.assertEqual(got, reply + b"\n", "the reply to %r" % line)

    def test_starttls_and_client_hello_in_one_write(self):
        raw, tls, i, o = self.handshake_behind(b"")
        self.assertEqual(tls.getpeercert()["subjectAltName"], (("DNS", HOST),))
        self.mem_say(raw, tls, i, o, b"hi", b"TLS hi")
        self.mem_say(raw, tls, i, o, b"STARTTLS", b"ERR already secure")
        self.mem_say(raw, tls, i, o, b"QUIT", b"BYE")

    def test_line_starttls_and_client_hello_in_one_write(self):
        raw, tls, i, o = self.handshake_behind(b"hi\n", b"PLAIN hi\n")
        self.mem_say(raw, tls, i, o, b"hi", b"TLS hi")

    def test_failed_handshake(self):
        raw = self.connect(self.d, "st")
        self.say(raw, b"hi", b"PLAIN hi")
        raw.sendall(b"STARTTLS\nthis is no ClientHello\r\n\r\n" + bytes(range(256)))
        data = wt.recv_all(raw, timeout=3.0, allow_reset=True)
        # at most a TLS alert record (content type 21), never a line
        self.assertTrue(data == b"" or (data[0] == 21 and len(data) <= 7),
                        "garbage after STARTTLS got %r" % data[:100])
        self.assertRunning(self.d, "a failed STARTTLS handshake")
        s = self.upgrade(self.connect(self.d, "st"))
        self.say(s, b"still", b"TLS still")

    def test_listener_without_tls(self):
        raw = self.connect(self.d, "plain")
        self.say(raw, b"hi", b"PLAIN hi")
        self.say(raw, b"STARTTLS", b"ERR TLS not available")
        self.say(raw, b"hi", b"PLAIN hi")
        raw.sendall(b"QUIT\n")
        self.assertEqual(wt.recv_all(raw), b"BYE\n")


def get_stats(d, name):
    """GET /stats on the stats listener name, as JSON."""
    s = d.connect(name)
    try:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = wt.recv_all(s)
    finally:
        s.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


class StartTlsLimits(wt.TestCase):
    """A STARTTLS handshake is a listener's TLS handshake: bounded by its
    handshake_timeout (from the STARTTLS), and a failed or timed-out one
    counts in handshake_failures, not errors (SPEC.md section 6)."""

    def setUp(self):
        super().setUp()
        self.ca, cert = pki()
        self.d = self.start([
            listener("st", "tcp", "starttls", handshake_timeout=1.0,
                     tls={"certificate": cert.cert, "key": cert.key, "autostart": False}),
            listener("stats", "tcp", "stats"),
        ])

    def ended(self, want):
        """The st counters once `want` connections have closed."""
        deadline = time.monotonic() + 5.0
        while True:
            st = get_stats(self.d, "stats")["listeners"]["st"]
            if st["closed"] >= want or time.monotonic() > deadline:
                return st
            time.sleep(0.05)

    def test_garbage_after_starttls(self):
        raw = self.connect(self.d, "st")
        raw.sendall(b"hi\n")
        self.assertEqual(wt.recv_exact(raw, 9), b"PLAIN hi\n")
        raw.sendall(b"STARTTLS\nthis is no ClientHello\r\n\r\n" + bytes(range(256)))
        wt.recv_all(raw, timeout=3.0, allow_reset=True)
        st = self.ended(1)
        self.assertEqual((st["closed"], st["handshake_failures"], st["errors"],
                          st["handshakes"]), (1, 1, 0, 0),
                         "closed, handshake_failures, errors, handshakes: %s" % st)
        self.assertIsNotNone(wt.wait_for_log(
            self.d, r'listener "st": TLS handshake with 127\.0\.0\.1:\d+ failed: '), self.d.log())

    def test_nothing_after_starttls(self):
        raw = self.connect(self.d, "st")
        raw.sendall(b"hi\n")
        self.assertEqual(wt.recv_exact(raw, 9), b"PLAIN hi\n")
        raw.sendall(b"STARTTLS\n")
        t0 = time.monotonic()
        self.assertEqual(wt.recv_all(raw, timeout=5.0, allow_reset=True), b"",
                         "a client silent after STARTTLS got bytes")
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 0.8, "closed %.2f s after STARTTLS" % took)
        self.assertLess(took, 3.0, "closed %.2f s after STARTTLS, handshake_timeout 1" % took)
        st = self.ended(1)
        self.assertEqual((st["handshake_failures"], st["errors"], st["timeouts"]), (1, 0, 0),
                         "handshake_failures, errors, timeouts: %s" % st)
        self.assertIsNotNone(wt.wait_for_log(
            self.d, r'listener "st": TLS handshake with 127\.0\.0\.1:\d+: not finished within '
            r'handshake_timeout \(1\.0s\)'), self.d.log())

    def test_good_starttls_is_a_handshake(self):
        raw = self.connect(self.d, "st")
        raw.sendall(b"STARTTLS\n")
        s = self.client(wt.tls_client_context(self.ca).wrap_socket(
            raw, server_hostname=HOST, suppress_ragged_eofs=False))
        s.sendall(b"QUIT\n")
        self.assertEqual(wt.recv_all(s), b"BYE\n")
        st = self.ended(1)
        self.assertEqual((st["handshakes"], st["handshake_failures"], st["errors"]), (1, 0, 0),
                         "handshakes, handshake_failures, errors: %s" % st)


class StartTlsConfig(wt.TestCase):

    def test_starttls_on_udp(self):
        conf = self.write_conf(wt.render_conf(
            {"workers": 2, "plugin_dir": wt.PLUGIN_DIR},
            [{"name": "st-udp", "udp": "127.0.0.1:%d" % wt.free_ports(1)[0],
              "handler": "starttls"}]))
        r = self.run_wharfd(["-t", "-c", conf])
        self.assertExit(r, wt.EX_CONFIG)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "expected one error line:\n" + r.stderr)
        m = ERROR_LINE.match(lines[0])
        self.assertIsNotNone(m, "not a `wharfd: FILE:LINE: SETTING: message` line: %r" % lines[0])
        # line 4: workers, plugin_dir, "listeners = (", the listener
        self.assertEqual((m.group(1), int(m.group(2)), m.group(3)),
                         (conf, 4, "listeners.[0].handler"), lines[0])
        self.assertIn("starttls", m.group(4))
        self.assertIn("udp", m.group(4))


if __name__ == "__main__":
    wt.main()
