#!/usr/bin/env python3
"""TLS listeners of wharfd (SPEC.md section 2: tls, ragged_eof, TLS
details) with real clients (Python's ssl and `openssl s_client`): hello
over TLS 1.2 and 1.3 with a clean close; SNI between an ECDSA and an RSA
certificate (wildcard, unknown name, no SNI); ALPN agreed and refused;
client certificates required and optional; resumption; ragged EOF both
ways; garbage instead of a ClientHello; handshake_timeout; min_version and
the default ciphers; certificate problems at config time (-t, exit 78).

Certificates are made by the openssl CLI at test time (wharftest.certs()).
The log is rate limited to one line per second per listener: each test
expects at most one logged failure per listener."""

import os
import re
import socket
import ssl
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener

TLS12 = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
TLS13 = (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
ERROR_LINE = re.compile(r"^wharfd: (.+?):(\d+): (\S+): (.+)$")
# "listeners = (" is line 3 after workers and plugin_dir: listener i is on line 4 + i
FIRST_LISTENER_LINE = 4


def pki():
    """The CAs and certificates of this file (made once per process)."""
    f = wt.certs()
    ca = f.ca("ca", "ec")
    other = f.ca("other-ca", "ec")
    return {
        "ca": ca,
        "other": other,
        "ec": f.leaf("ec", ca, dns=["ec.example.test"], kind="ec"),
        "rsa": f.leaf("rsa", ca, dns=["rsa.example.test", "*.example.test"], kind="rsa"),
        "alice": f.leaf("alice", ca, cn="alice", client=True),
        "mallory": f.leaf("mallory", other, cn="mallory", client=True),
    }


def tls(*pairs, **settings):
    """A listener's tls group with these Certs (list form) and settings."""
    g = {"certificates": [{"certificate": c.cert, "key": c.key} for c in pairs]}
    g.update(settings)
    return g


class TlsCase(wt.TestCase):

    def setUp(self):
        super().setUp()
        self.p = pki()

    def tls_connect(self, d, name, ctx, hostname=None, handshake=True):
        """An SSLSocket to listener name (handshake done unless told), closed
        at the end of the test. A close without close_notify from wharfd is
        an SSLEOFError, not b''."""
        raw = self.connect(d, name)
        s = ctx.wrap_socket(raw, server_hostname=hostname, suppress_ragged_eofs=False,
                            do_handshake_on_connect=False)
        self.client(s)
        if handshake:
            s.do_handshake()
        return s

    def assertHello(self, s, name=b"Bob"):
        """hello's reply over s, then wharfd's close_notify (recv gives b'')."""
        s.sendall(name + b"\n")
        try:
            data = wt.recv_all(s)
        except ssl.SSLEOFError as e:
            self.fail("wharfd closed without close_notify (%s)" % e)
        self.assertEqual(data, b"Hello, " + name + b"\n")

    def assertRefused(self, d, name, ctx, hostname=None, what=""):
        """The TLS connection fails (handshake, or the first read after a TLS
        1.3 handshake that the server then rejects) and hello never answers.
        Returns the exception the client saw."""
        try:
            s = self.tls_connect(d, name, ctx, hostname)
            s.sendall(b"Bob\n")
            data = wt.recv_all(s, timeout=3.0)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
            return e
        self.fail("%s: served (got %r), expected the handshake to be refused" % (what, data))

    def peer(self, sock):
        host, port = sock.getsockname()[:2]
        return "%s:%d" % (host, port)


class Serve(TlsCase):
    """Connections that are served."""

    def test_hello_tls12(self):
        d = self.start([listener("hello", "tcp", "hello", tls=tls(self.p["ec"]))])
        s = self.tls_connect(d, "hello", wt.tls_client_context(self.p["ca"], versions=TLS12),
                             "ec.example.test")
        self.assertEqual(s.version(), "TLSv1.2")
        self.assertHello(s)
        s.unwrap()      # both close_notify alerts exchanged: a clean TLS close

    def test_hello_tls13(self):
        d = self.start([listener("hello", "tcp", "hello", tls=tls(self.p["ec"]))])
        s = self.tls_connect(d, "hello", wt.tls_client_context(self.p["ca"], versions=TLS13),
                             "ec.example.test")
        self.assertEqual(s.version(), "TLSv1.3")
        self.assertHello(s, b"Alice")
        s.unwrap()

    def test_hello_tls_over_unix(self):
        d = self.start([listener("hello-unix", "unix", "hello", tls=tls(self.p["ec"]))])
        s = self.tls_connect(d, "hello-unix", wt.tls_client_context(self.p["ca"]),
                             "ec.example.test")
        self.assertHello(s)

    def test_openssl_s_client(self):
        d = self.start([listener("hello", "tcp", "hello",
                                 tls=tls(self.p["ec"], self.p["rsa"]))])
        host, port = d.addr("hello")
        for version, sni in (("-tls1_2", "rsa.example.test"), ("-tls1_3", "ec.example.test")):
            with self.subTest(version=version):
                r = subprocess.run([wt.OPENSSL, "s_client", "-quiet", version,
                                    "-connect", "%s:%d" % (host, port), "-servername", sni,
                                    "-verify_hostname", sni, "-CAfile", self.p["ca"].cert,
                                    "-verify_return_error"],
                                   input=b"Bob\n", capture_output=True, timeout=10)
                self.assertEqual(r.stdout, b"Hello, Bob\n",
                                 "s_client %s stdout; stderr:\n%s"
                                 % (version, r.stderr.decode("utf-8", "replace")))
                self.assertEqual(r.returncode, 0, "s_client exit status; stderr:\n%s"
                                 % r.stderr.decode("utf-8", "replace"))


class Sni(TlsCase):
    """Two certificates: ECDSA ec.example.test first (the default), then
    RSA rsa.example.test and *.example.test."""

    def setUp(self):
        super().setUp()
        self.d = self.start([listener("sni", "tcp", "hello",
                                      tls=tls(self.p["ec"], self.p["rsa"]))])

    def cert_for(self, hostname, versions=TLS12):
        """(CN, DNS SANs, cipher) of what wharfd shows for hostname; TLS
        1.2 by default so that the cipher names the key type."""
        s = self.tls_connect(self.d, "sni", wt.tls_client_context(self.p["ca"], versions=versions),
                             hostname)
        cn, dns = wt.peer_names(s)
        cipher = s.cipher()[0]
        self.assertHello(s)
        return cn, dns, cipher

    def assertEcdsa(self, hostname, versions=TLS12):
        cn, dns, cipher = self.cert_for(hostname, versions)
        self.assertEqual((cn, dns), ("ec.example.test", ["ec.example.test"]),
                         "SNI %r did not get the ECDSA certificate" % hostname)
        if versions == TLS12:
            self.assertIn("ECDSA", cipher, "SNI %r: cipher %s" % (hostname, cipher))

    def assertRsa(self, hostname, versions=TLS12):
        cn, dns, cipher = self.cert_for(hostname, versions)
        self.assertEqual((cn, dns), ("rsa.example.test", ["rsa.example.test", "*.example.test"]),
                         "SNI %r did not get the RSA certificate" % hostname)
        if versions == TLS12:
            self.assertIn("RSA", cipher, "SNI %r: cipher %s" % (hostname, cipher))
            self.assertNotIn("ECDSA", cipher, "SNI %r: cipher %s" % (hostname, cipher))

    def test_exact_names(self):
        self.assertEcdsa("ec.example.test")
        self.assertRsa("rsa.example.test")
        self.assertRsa("rsa.example.test", TLS13)
        self.assertEcdsa("ec.example.test", TLS13)

    def test_wildcard(self):
        self.assertRsa("www.example.test")
        self.assertRsa("WWW.Example.TEST")          # names are case-insensitive

    def test_wildcard_is_one_label(self):
        self.assertEcdsa("a.b.example.test")
        self.assertEcdsa("example.test")

    def test_unknown_name_gets_the_first(self):
        self.assertEcdsa("unknown.test")
        self.assertEcdsa("unknown.test", TLS13)

    def test_no_sni_gets_the_first(self):
        self.assertEcdsa(None)
        self.assertEcdsa(None, TLS13)


class Alpn(TlsCase):

    def setUp(self):
        super().setUp()
        self.d = self.start([listener("alpn", "tcp", "hello",
                                      tls=tls(self.p["ec"], alpn=["h2", "http/1.1"]))])

    def ctx(self, offer):
        return wt.tls_client_context(self.p["ca"], alpn=offer)

    def test_agreed(self):
        s = self.tls_connect(self.d, "alpn", self.ctx(["http/1.1"]), "ec.example.test")
        self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
        self.assertHello(s)

    def test_server_preference(self):
        s = self.tls_connect(self.d, "alpn", self.ctx(["http/1.1", "h2"]), "ec.example.test")
        self.assertEqual(s.selected_alpn_protocol(), "h2")
        self.assertHello(s)

    def test_no_common_protocol(self):
        for versions in (TLS13, TLS12):
            with self.subTest(versions=versions[0].name):
                ctx = wt.tls_client_context(self.p["ca"], versions=versions, alpn=["foo"])
                raw = self.connect(self.d, "alpn")
                s = self.client(ctx.wrap_socket(raw, server_hostname="ec.example.test",
                                                do_handshake_on_connect=False))
                with self.assertRaises(ssl.SSLError) as cm:
                    s.do_handshake()
                reason = str(cm.exception).upper().replace("_", " ")
                self.assertIn("NO APPLICATION PROTOCOL", reason,
                              "the alert is not no_application_protocol")
        line = wt.wait_for_log(self.d, r'^.*listener "alpn": TLS handshake with '
                                       r'127\.0\.0\.1:\d+ failed: \S.*$')
        self.assertIsNotNone(line, "no handshake failure logged for the ALPN refusal")

    def test_client_offers_none(self):
        s = self.tls_connect(self.d, "alpn", self.ctx(None), "ec.example.test")
        self.assertIsNone(s.selected_alpn_protocol())
        self.assertHello(s)


class ClientCertificates(TlsCase):

    def setUp(self):
        super().setUp()
        p = self.p
        self.d = self.start([
            listener("require", "tcp", "hello",
                     tls=tls(p["ec"], client_ca=p["ca"].cert, verify_client="require")),
            listener("optional", "tcp", "hello",
                     tls=tls(p["ec"], client_ca=p["ca"].cert, verify_client="optional")),
        ])

    def ctx(self, cert, versions=None):
        return wt.tls_client_context(self.p["ca"], cert=cert, versions=versions)

    def test_require(self):
        for versions in (TLS13, TLS12):
            v = versions[0].name
            with self.subTest(versions=v):
                self.assertRefused(self.d, "require", self.ctx(None, versions),
                                   "ec.example.test", "require, no certificate, " + v)
                self.assertRefused(self.d, "require", self.ctx(self.p["mallory"], versions),
                                   "ec.example.test", "require, another CA's certificate, " + v)
                s = self.tls_connect(self.d, "require", self.ctx(self.p["alice"], versions),
                                     "ec.example.test")
                self.assertHello(s, b"alice")

    def test_optional(self):
        for versions in (TLS13, TLS12):
            v = versions[0].name
            with self.subTest(versions=v):
                s = self.tls_connect(self.d, "optional", self.ctx(None, versions),
                                     "ec.example.test")
                self.assertHello(s, b"anonymous")
                self.assertRefused(self.d, "optional", self.ctx(self.p["mallory"], versions),
                                   "ec.example.test", "optional, another CA's certificate, " + v)
                s = self.tls_connect(self.d, "optional", self.ctx(self.p["alice"], versions),
                                     "ec.example.test")
                self.assertHello(s, b"alice")


class Resumption(TlsCase):

    def setUp(self):
        super().setUp()
        self.d = self.start([listener("hello", "tcp", "hello", tls=tls(self.p["ec"]))])

    def resume(self, versions):
        ctx = wt.tls_client_context(self.p["ca"], versions=versions)
        s1 = self.tls_connect(self.d, "hello", ctx, "ec.example.test")
        self.assertFalse(s1.session_reused)
        self.assertHello(s1, b"first")       # TLS 1.3: the ticket comes after the handshake
        session = s1.session
        self.assertIsNotNone(session)
        self.assertTrue(session.has_ticket, "wharfd issued no session ticket")
        raw = self.connect(self.d, "hello")
        s2 = self.client(ctx.wrap_socket(raw, server_hostname="ec.example.test",
                                         session=session, suppress_ragged_eofs=False))
        self.assertTrue(s2.session_reused, "the second connection was not resumed")
        self.assertHello(s2, b"second")

    def test_resumption_tls12(self):
        self.resume(TLS12)

    def test_resumption_tls13(self):
        self.resume(TLS13)


class RaggedEof(TlsCase):
    """The client sends, reads the echo, then ends TCP (FIN) without a
    close_notify: its half-close keeps it able to see how wharfd ends."""

    def ragged(self, name):
        d = self.d
        s = self.tls_connect(d, name, wt.tls_client_context(self.p["ca"]), "ec.example.test")
        wt.echo_roundtrip(self, s, b"some data\n")
        peer = self.peer(s)
        # a TCP FIN only: SSLSocket.shutdown would also drop the SSL object
        socket.socket.shutdown(s, socket.SHUT_WR)
        try:
            end = wt.recv_all(s)
        except ssl.SSLEOFError:
            end = "EOF without close_notify"
        except ssl.SSLError as e:         # an alert
            end = "SSLError: %s" % e
        except AssertionError as e:       # a reset
            end = str(e)
        return peer, end

    def test_ragged_eof_false(self):
        self.d = self.start([listener("strict", "tcp", "echo",
                                      tls=tls(self.p["ec"], ragged_eof=False))])
        peer, end = self.ragged("strict")
        # how the stream ends for the client is not specified: any end, no data
        self.assertFalse(isinstance(end, bytes) and end, "data after the ragged EOF: %r" % (end,))
        line = wt.wait_for_log(self.d, r'^.*listener "strict": connection from %s: .*$'
                                       % re.escape(peer))
        self.assertIsNotNone(line, "no handler error logged for the ragged EOF of %s" % peer)
        self.assertIn("broken", line.group(0), "not a broken-resource error: " + line.group(0))

    def test_ragged_eof_true(self):
        self.d = self.start([listener("tolerant", "tcp", "echo",
                                      tls=tls(self.p["ec"], ragged_eof=True))])
        peer, end = self.ragged("tolerant")
        self.assertEqual(end, b"", "wharfd did not end with its close_notify after a "
                                   "tolerated ragged EOF (a clean end for its handler)")
        time.sleep(0.5)     # the log line, if any, comes after the close
        self.assertNotRegex(self.d.log(), r'listener "tolerant": connection from',
                            "an error was logged for a tolerated ragged EOF")

    def test_unread_input_does_not_cut_the_reply(self):
        # bytes the handler never reads, and a reply still queued when it
        # returns: closing then would reset the connection and destroy the
        # end of the reply; wharfd says goodbye and drains first, in both
        # modes (a client that reads slowly: a 4 KiB receive buffer)
        big = os.urandom(2 * 1024 * 1024)
        with open(os.path.join(self.tmp, "big"), "wb") as f:
            f.write(big)
        self.d = self.start([listener(name, "tcp", {"plugin": "file", "path": "big"},
                                      tls=tls(self.p["ec"], ragged_eof=ragged))
                             for name, ragged in (("tolerant", True), ("strict", False))])
        for name in ("tolerant", "strict"):
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # before connect
            self.client(raw)
            raw.connect(self.d.addr(name))
            s = wt.tls_client_context(self.p["ca"]).wrap_socket(
                raw, server_hostname="ec.example.test", suppress_ragged_eofs=False)
            self.client(s)
            s.sendall(b"bytes the file handler never reads\n" * 100)
            time.sleep(0.3)         # the handler has written all it could and returned
            try:
                data = wt.recv_all(s, timeout=20.0)
            except (ssl.SSLError, OSError) as e:
                self.fail("%s: the reply was cut off: %r" % (name, e))
            self.assertEqual(len(data), len(big), name)
            self.assertTrue(data == big, "%s: the reply differs" % name)

    def test_clean_close_is_no_error(self):
        # the control: the same exchange ended with close_notify logs nothing
        self.d = self.start([listener("strict", "tcp", "echo",
                                      tls=tls(self.p["ec"], ragged_eof=False))])
        s = self.tls_connect(self.d, "strict", wt.tls_client_context(self.p["ca"]),
                             "ec.example.test")
        wt.echo_roundtrip(self, s, b"some data\n")
        raw = s.unwrap()            # our close_notify, then wharfd's
        self.assertEqual(wt.recv_all(raw, allow_reset=True), b"")
        time.sleep(0.5)
        self.assertNotRegex(self.d.log(), r'listener "strict": connection from',
                            "an error was logged for a clean TLS close")


class BadPeers(TlsCase):

    def test_garbage_instead_of_client_hello(self):
        d = self.start([listener("hello", "tcp", "hello", tls=tls(self.p["ec"]))])
        s = self.connect(d, "hello")
        peer = self.peer(s)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)))
        data = wt.recv_all(s, timeout=3.0, allow_reset=True)
        # at most a TLS alert record (content type 21), never a reply
        self.assertTrue(data == b"" or (data[0] == 21 and len(data) <= 7),
                        "garbage got %r" % data[:100])
        line = wt.wait_for_log(d, r'^.*listener "hello": TLS handshake with %s failed: \S.*$'
                                  % re.escape(peer))
        self.assertIsNotNone(line, "no handshake failure logged for %s" % peer)
        self.assertRunning(d, "garbage")
        s = self.tls_connect(d, "hello", wt.tls_client_context(self.p["ca"]), "ec.example.test")
        self.assertHello(s)

    def test_handshake_timeout(self):
        d = self.start([listener("slow", "tcp", "hello", handshake_timeout=0.5,
                                 tls=tls(self.p["ec"]))])
        s = self.connect(d, "slow")
        peer = self.peer(s)
        t0 = time.monotonic()
        wt.expect_closed_no_data(self, s, timeout=3.0, what="silent client")
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.4, "closed before handshake_timeout")
        line = wt.wait_for_log(d, r'^.*listener "slow": TLS handshake with %s: not finished '
                                  r'within handshake_timeout \(0\.5s\)$' % re.escape(peer))
        self.assertIsNotNone(line, "no handshake timeout logged for %s" % peer)
        s = self.tls_connect(d, "slow", wt.tls_client_context(self.p["ca"]), "ec.example.test")
        self.assertHello(s)


class VersionsAndCiphers(TlsCase):

    def test_min_version_tls13(self):
        d = self.start([listener("tls13", "tcp", "hello",
                                 tls=tls(self.p["ec"], min_version="TLSv1.3"))])
        e = self.assertRefused(d, "tls13", wt.tls_client_context(self.p["ca"], versions=TLS12),
                               "ec.example.test", "a TLS 1.2 client, min_version TLSv1.3")
        self.assertIsInstance(e, ssl.SSLError)
        s = self.tls_connect(d, "tls13", wt.tls_client_context(self.p["ca"]), "ec.example.test")
        self.assertEqual(s.version(), "TLSv1.3")
        self.assertHello(s)

    def test_default_min_version_serves_tls12(self):
        d = self.start([listener("hello", "tcp", "hello", tls=tls(self.p["rsa"]))])
        s = self.tls_connect(d, "hello", wt.tls_client_context(self.p["ca"], versions=TLS12),
                             "rsa.example.test")
        self.assertEqual(s.version(), "TLSv1.2")
        self.assertHello(s)

    def test_default_ciphers_refuse_non_aead(self):
        # an RSA certificate, so that the RSA and ECDHE-RSA CBC suites would be possible
        d = self.start([listener("rsa", "tcp", "hello", tls=tls(self.p["rsa"]))])
        for cipher in ("AES128-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"):
            with self.subTest(cipher=cipher):
                ctx = wt.tls_client_context(self.p["ca"], versions=TLS12, ciphers=cipher)
                e = self.assertRefused(d, "rsa", ctx, "rsa.example.test",
                                       "a TLS 1.2 client offering only " + cipher)
                self.assertIsInstance(e, ssl.SSLError)
        # the control: an AEAD suite with the same key
        ctx = wt.tls_client_context(self.p["ca"], versions=TLS12,
                                    ciphers="ECDHE-RSA-AES128-GCM-SHA256")
        s = self.tls_connect(d, "rsa", ctx, "rsa.example.test")
        self.assertEqual(s.cipher()[0], "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertHello(s)


class ConfigErrors(TlsCase):
    """-t: exit 78, one line per problem naming file:line:setting."""

    def conf(self, listeners):
        text = wt.render_conf({"workers": 2, "plugin_dir": wt.PLUGIN_DIR}, listeners)
        return self.write_conf(text)

    def check(self, listeners):
        conf = self.conf(listeners)
        r = self.run_wharfd(["-t", "-c", conf])
        self.assertExit(r, wt.EX_CONFIG)
        self.assertEqual(r.stdout.strip(), "", "errors go to stderr only")
        return conf, [l for l in r.stderr.splitlines() if l.strip()], r.stderr

    def assertErrorLine(self, line, conf, lineno, setting, *words):
        m = ERROR_LINE.match(line)
        self.assertIsNotNone(m, "not a `wharfd: FILE:LINE: SETTING: message` line: %r" % line)
        self.assertEqual((m.group(1), int(m.group(2)), m.group(3)), (conf, lineno, setting),
                         "wrong file, line or setting in %r" % line)
        for w in words:
            self.assertIn(w, m.group(4), "%r does not say %r" % (line, w))

    def port(self):
        return "127.0.0.1:%d" % wt.free_ports(1)[0]

    def expired(self):
        return wt.certs().leaf("expired", self.p["ca"], dns=["old.example.test"],
                               not_before=-10 * 86400, not_after=-86400)

    def test_valid(self):
        conf = self.conf([{"name": "ok", "tcp": self.port(), "handler": "hello",
                           "tls": tls(self.p["ec"], self.p["rsa"], alpn=["h2"],
                                      client_ca=self.p["ca"].cert, verify_client="optional")},
                          {"name": "short", "tcp": self.port(), "handler": "hello",
                           "tls": {"certificate": self.p["rsa"].cert,
                                   "key": self.p["rsa"].key}}])
        r = self.run_wharfd(["-t", "-c", conf])
        self.assertExit(r, 0)

    def test_expired_certificate(self):
        conf, lines, err = self.check([{"name": "old", "tcp": self.port(), "handler": "hello",
                                        "tls": tls(self.expired())}])
        self.assertEqual(len(lines), 1, "expected one error line:\n" + err)
        self.assertErrorLine(lines[0], conf, FIRST_LISTENER_LINE,
                             "listeners.[0].tls.certificates.[0].certificate", "expired.pem",
                             "expired")

    def test_not_yet_valid_certificate(self):
        future = wt.certs().leaf("future", self.p["ca"], dns=["new.example.test"],
                                 not_before=10 * 86400, not_after=20 * 86400)
        conf, lines, err = self.check([{"name": "new", "tcp": self.port(), "handler": "hello",
                                        "tls": tls(future)}])
        self.assertEqual(len(lines), 1, "expected one error line:\n" + err)
        self.assertErrorLine(lines[0], conf, FIRST_LISTENER_LINE,
                             "listeners.[0].tls.certificates.[0].certificate", "future.pem",
                             "not valid before")

    def test_key_does_not_match(self):
        pair = {"certificate": self.p["ec"].cert, "key": self.p["rsa"].key}
        conf, lines, err = self.check([{"name": "mix", "tcp": self.port(), "handler": "hello",
                                        "tls": {"certificates": [pair]}}])
        self.assertEqual(len(lines), 1, "expected one error line:\n" + err)
        self.assertErrorLine(lines[0], conf, FIRST_LISTENER_LINE,
                             "listeners.[0].tls.certificates.[0].key", "does not match")

    def test_missing_certificate_file(self):
        # the shorthand, relative to the config's directory, as in SPEC.md section 1
        conf, lines, err = self.check([{"name": "gone", "tcp": self.port(), "handler": "hello",
                                        "tls": {"certificate": "missing.pem",
                                                "key": self.p["ec"].key}}])
        self.assertEqual(len(lines), 1, "expected one error line:\n" + err)
        self.assertErrorLine(lines[0], conf, FIRST_LISTENER_LINE, "listeners.[0].tls.certificate",
                             "cannot read", "missing.pem", "No such file or directory")

    def test_tls_on_udp(self):
        conf, lines, err = self.check([{"name": "dgram", "udp": self.port(), "handler": "echo",
                                        "tls": tls(self.p["ec"])}])
        self.assertEqual(len(lines), 1, "expected one error line:\n" + err)
        self.assertErrorLine(lines[0], conf, FIRST_LISTENER_LINE, "listeners.[0].tls",
                             "udp")

    def test_every_problem_in_one_run(self):
        conf, lines, err = self.check([
            {"name": "old", "tcp": self.port(), "handler": "hello", "tls": tls(self.expired())},
            {"name": "mix", "tcp": self.port(), "handler": "hello",
             "tls": {"certificates": [{"certificate": self.p["ec"].cert,
                                       "key": self.p["rsa"].key}]}},
            {"name": "gone", "tcp": self.port(), "handler": "hello",
             "tls": {"certificate": "missing.pem", "key": self.p["ec"].key}},
            {"name": "dgram", "udp": self.port(), "handler": "echo", "tls": tls(self.p["ec"])},
        ])
        got = sorted((ERROR_LINE.match(l).group(2, 3) if ERROR_LINE.match(l) else (l, ""))
                     for l in lines)
        first = FIRST_LISTENER_LINE
        self.assertEqual(got, sorted([
            (str(first), "listeners.[0].tls.certificates.[0].certificate"),
            (str(first + 1), "listeners.[1].tls.certificates.[0].key"),
            (str(first + 2), "listeners.[2].tls.certificate"),
            (str(first + 3), "listeners.[3].tls"),
        ]), "expected the four problems, one line each:\n" + err)


if __name__ == "__main__":
    wt.main()
