#!/usr/bin/env python3
"""Reload on SIGHUP (SPEC.md section 3, issue 5 tests (a)-(d)) against the
real wharfd: listeners kept across reloads never refuse a connection, even
under a client loop and 20 reloads in a row (plain and TLS); a connection
keeps the settings it started with and a new one gets the new ones; a
broken file (syntax error, missing certificate, unknown plugin, a port in
use) changes nothing; a removed listener refuses new connections, lets its
open ones finish, and cancels them after drain_timeout.

wharfd's words for a reload: `reload: loading FILE`, then `reload: done: N
listeners`, or each error as `error: reload: ...` then `reload failed:
nothing changed, the running configuration serves on`."""

import os
import re
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener

REFUSED_WITHIN = 2.0       # s after `reload: done` for a removed listener to refuse


def pki():
    f = wt.certs()
    ca = f.ca("ca", "ec")
    return {
        "ca": ca,
        "one": f.leaf("one", ca, dns=["one.example.test"]),
        "two": f.leaf("two", ca, dns=["two.example.test"]),
    }


def tls(cert):
    return {"certificates": [{"certificate": cert.cert, "key": cert.key}]}


def peer_cn(s):
    return wt.peer_names(s)[0]


class ReloadCase(wt.ExtTestCase):

    def setUp(self):
        super().setUp()
        self.p = pki()
        self.ctx = wt.tls_client_context(self.p["ca"])

    def tls_connect(self, d, name, timeout=wt.IO_TIMEOUT):
        raw = self.connect(d, name, timeout)
        s = self.ctx.wrap_socket(raw, suppress_ragged_eofs=False)
        self.client(s)
        return s

    def hello(self, s, name):
        """Sends a line to hello over s, returns everything before EOF."""
        s.sendall(name + b"\n")
        return wt.recv_all(s)

    def assertRefused(self, d, name, within=REFUSED_WITHIN, what=""):
        """New connections to listener name are refused (ECONNREFUSED),
        at the latest `within` seconds from now, then 5 times in a row."""
        addr = d.addr(name)
        deadline = time.monotonic() + within
        while True:
            r = wt.try_connect(addr, timeout=1.0)
            if isinstance(r, ConnectionRefusedError):
                break
            if isinstance(r, socket.socket):
                r.close()
            if time.monotonic() > deadline:
                self.fail("%s: %s:%d still accepts connections %.1f s later (last: %r); log:\n%s"
                          % (what or name, addr[0], addr[1], within, r, d.log()))
            time.sleep(0.02)
        for _ in range(5):
            r = wt.try_connect(addr, timeout=1.0)
            if isinstance(r, socket.socket):
                r.close()
            self.assertIsInstance(r, ConnectionRefusedError,
                                  "%s: refused once, then %r" % (what or name, r))

    def assertEchoes(self, d, name, data=b"ping\n", what=""):
        s = d.connect(name)
        try:
            wt.echo_roundtrip(self, s, data)
        finally:
            s.close()


# ---- (a) no refused connection across 20 reloads ----------------------------------------

class ClientLoop(threading.Thread):
    """New connections one after the other, as fast as it can, until told
    to stop; each must be served right. Records every failure."""

    def __init__(self, one, what):
        threading.Thread.__init__(self, daemon=True)
        self.one, self.what = one, what
        self.ok = 0
        self.failures = []
        self.stopping = threading.Event()

    def run(self):
        i = 0
        while not self.stopping.is_set():
            i += 1
            try:
                self.one(i)
                self.ok += 1
            except Exception as e:      # noqa: BLE001 - every kind of failure is recorded
                self.failures.append("%s #%d at %.3f: %s: %s"
                                     % (self.what, i, time.monotonic(), type(e).__name__, e))
                if len(self.failures) > 50:
                    return


class NoRefusal(ReloadCase):

    def test_20_reloads_under_a_client_loop(self):
        """(a) Plain echo and TLS hello, both KEEP, get connections as fast as
        two client threads can make them for ~3 s while wharfd reloads 20
        times, each reload changing options of both (idle_timeout of echo;
        the certificate and max_line of hello): no refused or failed
        connection, every reply right, 20 `reload: done`."""
        certs = (self.p["one"], self.p["two"])
        d = self.start([listener("echo", "tcp", "echo"),
                        listener("hello", "tcp", {"plugin": "hello", "max_line": 1024},
                                 tls=tls(certs[0]))])
        ea, ha = d.addr("echo"), d.addr("hello")
        ctx = self.ctx

        def echo_once(i):
            msg = b"echo-%d\n" % i
            with socket.create_connection(ea, timeout=wt.IO_TIMEOUT) as s:
                s.sendall(msg)
                got = wt.recv_exact(s, len(msg))
                if got != msg:
                    raise AssertionError("echo returned %r for %r" % (got, msg))

        def hello_once(i):
            name = b"tls-%d" % i
            with socket.create_connection(ha, timeout=wt.IO_TIMEOUT) as raw:
                with ctx.wrap_socket(raw, suppress_ragged_eofs=False) as s:
                    cn = peer_cn(s)
                    if cn not in ("one.example.test", "two.example.test"):
                        raise AssertionError("certificate %r" % cn)
                    s.sendall(name + b"\n")
                    got = wt.recv_all(s)
                    if got != b"Hello, " + name + b"\n":
                        raise AssertionError("hello returned %r" % got)

        loops = [ClientLoop(echo_once, "echo"), ClientLoop(hello_once, "tls hello")]
        for t in loops:
            t.start()
        results = []
        try:
            t0 = time.monotonic()
            for i in range(20):
                d.reconf([listener("echo", "tcp", "echo", idle_timeout=300.0 + (i % 2)),
                          listener("hello", "tcp",
                                   {"plugin": "hello", "max_line": 1024 - (i % 2)},
                                   tls=tls(certs[(i + 1) % 2]))])
                results.append(d.reload())
                # spread the 20 reloads over ~3 s
                time.sleep(max(0.0, t0 + 0.15 * (i + 1) - time.monotonic()))
            time.sleep(0.2)
        finally:
            for t in loops:
                t.stopping.set()
            for t in loops:
                t.join(20)
        elapsed = time.monotonic() - t0
        for i, (ok, text) in enumerate(results):
            self.assertTrue(ok, "reload %d failed:\n%s" % (i + 1, text))
        failures = [f for t in loops for f in t.failures]
        self.assertEqual(failures, [], "%d failed connections during 20 reloads "
                         "(%d echo and %d TLS served); first ones:\n%s"
                         % (len(failures), loops[0].ok, loops[1].ok, "\n".join(failures[:10])))
        done = re.findall(r" info: reload: done: 2 listeners$", d.log(), re.M)
        self.assertEqual(len(done), 20, "`reload: done` lines")
        self.assertNotRegex(d.log(), r" error: ", "errors in the log")
        # the loops did run during the reloads
        self.assertGreater(loops[0].ok, 50, "echo connections served in %.1f s" % elapsed)
        self.assertGreater(loops[1].ok, 20, "TLS connections served in %.1f s" % elapsed)
        sys.stderr.write("[%d echo and %d TLS connections in %.1f s, 20 reloads] "
                         % (loops[0].ok, loops[1].ok, elapsed))
        # the last reload's certificate (the 20th: certs[20 % 2]) serves now
        s = self.tls_connect(d, "hello")
        self.assertEqual(peer_cn(s), "one.example.test")


# ---- (b) open connections keep their settings --------------------------------------------

class KeepSettings(ReloadCase):

    def check_max_line(self, tls_on):
        """hello's max_line 64 -> 16 -> 64: a connection accepted before
        each reload keeps the limit it started with, a new one gets the
        new one."""
        extra = {"tls": tls(self.p["one"])} if tls_on else {}
        connect = (lambda: self.tls_connect(d, "hello")) if tls_on else \
            (lambda: self.connect(d, "hello"))
        d = self.start([listener("hello", "tcp", {"plugin": "hello", "max_line": 64}, **extra)])
        name20 = b"abcdefghijklmnopqrst"        # 20 bytes: over 16, under 64

        old = connect()
        if not tls_on:
            wt.wait_accepted(self, old)     # a TLS handshake proves it already
        old.sendall(name20)                 # under 64: hello waits for the newline
        d.reconf([listener("hello", "tcp", {"plugin": "hello", "max_line": 16}, **extra)])
        self.reload_ok(d, "reload to max_line = 16")
        # the new connection: 20 bytes without a newline are over 16
        new = connect()
        new.sendall(name20 + b"\n")
        self.assertEqual(wt.recv_all(new, allow_reset=True), b"",
                         "a new connection after the reload to max_line = 16 answered "
                         "a 20-byte line")
        # the old one still has 64
        old.sendall(b"\n")
        self.assertEqual(wt.recv_all(old), b"Hello, " + name20 + b"\n",
                         "the connection opened before the reload lost its max_line = 64")

        # and back: one opened under 16 keeps 16 after a reload to 64
        old = connect()
        if not tls_on:
            wt.wait_accepted(self, old)
        d.reconf([listener("hello", "tcp", {"plugin": "hello", "max_line": 64}, **extra)])
        self.reload_ok(d, "reload to max_line = 64")
        new = connect()
        self.assertEqual(self.hello(new, name20), b"Hello, " + name20 + b"\n",
                         "a new connection after the reload to max_line = 64")
        old.sendall(name20 + b"\n")
        self.assertEqual(wt.recv_all(old, allow_reset=True), b"",
                         "the connection opened under max_line = 16 took the new 64")

    def test_max_line_plain(self):
        """(b) over plain TCP."""
        self.check_max_line(False)

    def test_max_line_tls(self):
        """(b) over TLS, and the certificate: the old connection keeps the
        one it has, new connections get the new one."""
        self.check_max_line(True)

    def test_new_certificate_for_new_connections(self):
        d = self.start([listener("hello", "tcp", "hello", tls=tls(self.p["one"]))])
        old = self.tls_connect(d, "hello")
        self.assertEqual(peer_cn(old), "one.example.test")
        d.reconf([listener("hello", "tcp", "hello", tls=tls(self.p["two"]))])
        self.reload_ok(d)
        new = self.tls_connect(d, "hello")
        self.assertEqual(peer_cn(new), "two.example.test", "the certificate after the reload")
        self.assertEqual(self.hello(new, b"new"), b"Hello, new\n")
        self.assertEqual(self.hello(old, b"old"), b"Hello, old\n",
                         "the TLS connection opened before the reload")


# ---- (c) a broken file changes nothing ------------------------------------------------------

class KeepDatagrams(ReloadCase):

    def test_udp_listener_takes_the_new_handler(self):
        """A UDP listener kept by a reload serves datagrams with the new
        handler and options on the same socket (the handler task is
        restarted), and wharfd survives the old plugin instance going."""
        d = self.start([listener("dg", "udp", "echo")])
        u = wt.udp_socket()
        self.addCleanup(u.close)
        addr = d.addr("dg")
        u.sendto(b"one", addr)
        self.assertEqual(u.recvfrom(100)[0], b"one")
        for round_ in range(3):
            d.reconf([listener("dg", "udp", "hello")])
            self.reload_ok(d, "echo -> hello on UDP")
            u.sendto(b"two", addr)
            self.assertEqual(u.recvfrom(100)[0], b"Hello, two",
                             "the kept UDP listener still runs the old handler")
            d.reconf([listener("dg", "udp", "echo")])
            self.reload_ok(d, "hello -> echo on UDP")
            u.sendto(b"three", addr)
            self.assertEqual(u.recvfrom(100)[0], b"three")
        self.assertRunning(d, "reloads of a UDP listener")

    def test_deaf_handler_is_cancelled_after_drain_timeout(self):
        """A third-party datagram handler that does not return when a
        reload asks it to restart (good's, asleep after "sleep") gets the
        listener's drain_timeout, then its scope is cancelled with a
        warning naming the listener, and the new handler serves."""
        def dg(greeting):
            return listener("dg", "udp", {"plugin": "good", "greeting": greeting,
                                          "datagrams": "echo"}, drain_timeout=1.0)
        d = self.start([dg("one:")], {"workers": 1, "plugin_dir": wt.TEST_PLUGIN_DIR})
        u = self.client(wt.udp_socket())
        addr = d.addr("dg")
        u.sendto(b"ping", addr)
        self.assertEqual(u.recvfrom(100)[0], b"one:ping")
        u.sendto(b"sleep", addr)
        time.sleep(0.2)                 # taken: the handler sleeps
        d.reconf([dg("two:")])
        t0 = time.monotonic()
        self.reload_ok(d, "greeting one: -> two:")
        u.sendto(b"pong", addr)
        self.assertEqual(u.recvfrom(100)[0], b"two:pong",
                         "the datagram after the reload, answered by the new handler")
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 0.8, "answered %.2f s after the reload" % took)
        self.assertLess(took, 3.0, "answered %.2f s after the reload, drain_timeout 1" % took)
        self.assertRegex(d.log(), r' warning: listener "dg" on worker 0: the datagram handler '
                         r"did not restart within drain_timeout \(1\.0s\) of a reload: cancelled")
        self.assertRunning(d, "a deaf datagram handler")

    def test_unchanged_udp_forward_keeps_its_associations(self):
        """A reload that changes only another listener leaves a UDP
        forward listener's handler running: a client's association (the
        source port the target sees from wharfd) survives, and the
        target's replies still reach the client on its port."""
        backend = wt.udp_socket()
        self.addCleanup(backend.close)
        seen = []

        def run():
            while True:
                try:
                    data, frm = backend.recvfrom(70000)
                except socket.timeout:
                    continue
                except OSError:
                    return
                seen.append(frm[1])
                backend.sendto(b"re:" + data, frm)
        threading.Thread(target=run, daemon=True).start()
        fwd = {"plugin": "forward", "target": "127.0.0.1:%d" % backend.getsockname()[1],
               "udp_idle_timeout": 60.0}
        d = self.start([listener("fwd", "udp", fwd), listener("other", "tcp", "echo")])
        c = wt.udp_socket()
        self.addCleanup(c.close)
        addr = d.addr("fwd")
        c.sendto(b"before", addr)
        self.assertEqual(c.recvfrom(100)[0], b"re:before")
        for handler in ("hello", "echo"):
            d.reconf([listener("fwd", "udp", fwd), listener("other", "tcp", handler)])
            self.reload_ok(d, "another listener's plugin -> " + handler)
            c.sendto(b"after " + handler.encode(), addr)
            self.assertEqual(c.recvfrom(100)[0], b"re:after " + handler.encode(),
                             "the client's flow after the reload")
        self.assertEqual(len(seen), 3, "datagrams at the target")
        self.assertEqual(len(set(seen)), 1,
                         "the target saw wharfd's datagrams from ports %s: a reload that "
                         "changed another listener dropped the association" % seen)
        self.assertEchoes(d, "other")


class BrokenReload(ReloadCase):
    """Each broken file would also remove "echo", change hello's max_line to
    4 and add a NEW listener "new": after the failed reload, "echo" still
    serves, hello still answers long names, and nothing listens for "new"."""

    def setUp(self):
        super().setUp()
        self.d = self.start([listener("echo", "tcp", "echo"),
                             listener("hello", "tcp", "hello", tls=tls(self.p["one"]))])
        self.good = self.d.conf_text()
        # a connection open across the failed reload
        self.open = self.connect(self.d, "echo")
        wt.echo_roundtrip(self, self.open, b"before\n")

    def changed(self, hello_tls=None, new_handler="echo", new_address=None, extra=""):
        """Writes the broken file: listeners hello (max_line 4) and new."""
        hello = listener("hello", "tcp", {"plugin": "hello", "max_line": 4},
                         tls=hello_tls or tls(self.p["one"]))
        new = listener("new", "tcp", new_handler, address=new_address)
        return self.d.reconf([hello, new], extra=extra)

    def assertNothingChanged(self, text, error_rx):
        d = self.d
        self.assertRegex(text, re.compile(r"^.* error: reload: .*" + error_rx, re.M),
                         "the specific error")
        self.assertNotIn("reload: done", text)
        self.assertNotIn("removed", text)
        self.assertRunning(d, "a failed reload")
        # the old listeners serve exactly as before
        self.assertEchoes(d, "echo", b"after\n", "echo after the failed reload")
        wt.echo_roundtrip(self, self.open, b"open across\n")
        s = self.tls_connect(d, "hello")
        self.assertEqual(peer_cn(s), "one.example.test")
        self.assertEqual(self.hello(s, b"LongerThanFour"), b"Hello, LongerThanFour\n",
                         "hello's max_line changed by a failed reload")
        # the NEW listener of the broken file is not bound
        if d.by_name["new"].fixed is None:
            r = wt.try_connect(d.addr("new"), timeout=1.0)
            if isinstance(r, socket.socket):
                r.close()
            self.assertIsInstance(r, ConnectionRefusedError,
                                  "the new listener of a failed reload accepts connections")
        # and the good file reloads fine afterwards
        with open(d.conf, "w") as f:
            f.write(self.good)
        d.listeners = [d.by_name["echo"], d.by_name["hello"]]
        self.reload_ok(d, "the good file again")
        self.assertEchoes(d, "echo", b"again\n")

    def test_syntax_error(self):
        self.changed(extra="this is not libconfig\n")
        text = self.reload_failed(self.d, "syntax error")
        self.assertNothingChanged(text, re.escape(self.d.conf) + r":\d+: syntax error")

    def test_missing_certificate(self):
        # relative: against the config's directory (self.tmp), where it is not
        self.changed(hello_tls={"certificate": "missing.pem", "key": self.p["one"].key})
        text = self.reload_failed(self.d, "missing certificate")
        self.assertNothingChanged(text, r'listeners\.\[0\]\.tls\.certificate: cannot read '
                                  r'"missing\.pem": No such file or directory')

    def test_unknown_plugin(self):
        self.changed(new_handler="nosuchplugin")
        text = self.reload_failed(self.d, "unknown plugin")
        self.assertNothingChanged(text, r"listeners\.\[1\]\.handler: cannot load plugin: "
                                  r".*nosuchplugin")

    def test_port_in_use(self):
        """NEW listener "busy" on a port the test holds, and "new" on a free
        port: the reload fails, and "new", bound by it, is closed again."""
        held = self.client(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        hello = listener("hello", "tcp", {"plugin": "hello", "max_line": 4},
                         tls=tls(self.p["one"]))
        self.d.reconf([hello, listener("new", "tcp", "echo"),
                       listener("busy", "tcp", "echo", address=("127.0.0.1", port))])
        text = self.reload_failed(self.d, "port in use")
        self.assertNothingChanged(text, r'listener "busy": cannot bind 127\.0\.0\.1:%d: '
                                  r"Address already in use" % port)
        # the port is still the test's alone
        self.assertEqual(wt.listening_inodes(port), [os.fstat(held.fileno()).st_ino],
                         "listening sockets on the port the test holds")
        c = socket.create_connection(("127.0.0.1", port), timeout=2)
        a, _ = held.accept()
        a.close()
        c.close()


# ---- (d) removing a listener ------------------------------------------------------------------

class RemoveListener(ReloadCase):

    def test_open_connection_finishes(self):
        """drain_timeout 10: after the reload new connections are refused,
        the open one keeps working until the client ends it, then `drained
        and closed`; the kept listener serves on."""
        d = self.start([listener("keep", "tcp", "echo"),
                        listener("gone", "tcp", "echo", drain_timeout=10.0)])
        c = self.connect(d, "gone")
        wt.echo_roundtrip(self, c, b"before\n")
        d.reconf([listener("keep", "tcp", "echo")])
        text = self.reload_ok(d)
        self.assertIn('listener "gone": removed: stops accepting, connections drain for up to '
                      '10.0s', text)
        self.assertIn("reload: done: 1 listeners", text)
        self.assertRefused(d, "gone")
        # the open connection works on, for longer than an instant
        for i in range(3):
            wt.echo_roundtrip(self, c, b"during %d\n" % i)
            time.sleep(0.3)
        self.assertNotIn('"gone": drained and closed', d.log(),
                         "closed while a connection was open")
        self.assertEchoes(d, "keep", b"keep\n")
        # it ends on its own: the client's EOF, echo's EOF
        c.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(c), b"")
        self.assertIsNotNone(wt.wait_for_log(d, r'listener "gone": drained and closed', 5.0),
                             "no `drained and closed` after the last connection ended")

    def test_idle_connection_cancelled_after_drain_timeout(self):
        """drain_timeout = 1: an idle connection is closed by wharfd about
        1 s after the reload; then `drained and closed`."""
        d = self.start([listener("keep", "tcp", "echo"),
                        listener("gone", "tcp", "echo", drain_timeout=1.0)])
        c = self.connect(d, "gone")
        wt.wait_accepted(self, c)
        d.reconf([listener("keep", "tcp", "echo")])
        t0 = time.monotonic()
        text = self.reload_ok(d)
        self.assertIn('listener "gone": removed: stops accepting, connections drain for up to '
                      '1.0s', text)
        self.assertRefused(d, "gone")
        self.assertTrue(wt.still_open(c, 0.5), "closed well before drain_timeout")
        self.assertEqual(wt.recv_all(c, timeout=5.0, allow_reset=True), b"")
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 0.8, "closed %.2f s after the reload" % took)
        self.assertLess(took, 3.0, "closed %.2f s after the reload, drain_timeout 1" % took)
        self.assertIsNotNone(wt.wait_for_log(d, r'listener "gone": drained and closed', 3.0),
                             "no `drained and closed`")
        self.assertEchoes(d, "keep")

    def test_removed_then_added_again(self):
        """A listener removed and, while it drains, added again on its port:
        the new one binds and serves, the old one's connection drains."""
        d = self.start([listener("gone", "tcp", "echo", drain_timeout=5.0)])
        c = self.connect(d, "gone")
        wt.echo_roundtrip(self, c, b"old\n")
        addr = d.addr("gone")
        d.reconf([listener("keep", "tcp", "echo")])
        self.reload_ok(d, "removing")
        self.assertRefused(d, "gone")
        d.reconf([listener("keep", "tcp", "echo"),
                  listener("back", "tcp", "echo", address=addr)])
        self.reload_ok(d, "adding it again")
        self.assertEchoes(d, "back", b"back\n")
        wt.echo_roundtrip(self, c, b"still draining\n")


if __name__ == "__main__":
    wt.main()
