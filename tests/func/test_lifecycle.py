#!/usr/bin/env python3
"""wharfd's life outside reloads (SPEC.md sections 3 and 4, issue 5 tests
(e)-(h)) against the real wharfd: SIGTERM and SIGINT with open
connections (drain, then cancel after drain_timeout with TLS close_notify,
exit 0; a second SIGTERM stops at once); the systemd notify protocol read
from a datagram socket the test binds (READY=1, RELOADING=1 with
MONOTONIC_USEC then READY=1, STOPPING=1, WATCHDOG=1); socket activation
by systemd-socket-activate (named sockets used instead of binding); and
the privilege drop to `user` when the test runs as root.

Only processes this file started are signalled, by their PID."""

import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
# what systemd-socket-activate must pass on (it gives the daemon only TERM,
# PATH, USER, HOME and the LISTEN_ variables unless told with -E)
PASS_ENV = ("ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS", "LD_LIBRARY_PATH", "LD_PRELOAD")


def pki():
    f = wt.certs()
    ca = f.ca("ca", "ec")
    return {"ca": ca, "one": f.leaf("one", ca, dns=["one.example.test"])}


class Case(wt.ExtTestCase):

    def wait_exit(self, d, timeout):
        """The exit status within timeout, and how long it took; fails after
        timeout (the cleanup then stops wharfd: SIGTERM, SIGKILL)."""
        t0 = time.monotonic()
        try:
            rc = d.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail("wharfd did not exit within %.1f s; log:\n%s" % (timeout, d.log()))
        d._reaped(rc)
        return rc, time.monotonic() - t0


# ---- (e) SIGTERM and SIGINT ------------------------------------------------------------

class Reader(threading.Thread):
    """Reads sock until EOF (as a client waiting for data does), then
    closes it: .data, .error, .at (monotonic time of the EOF)."""

    def __init__(self, sock, timeout=10.0):
        threading.Thread.__init__(self, daemon=True)
        self.sock, self.timeout = sock, timeout
        self.data, self.error, self.at = None, None, None

    def run(self):
        try:
            self.data = wt.recv_all(self.sock, timeout=self.timeout)
        except Exception as e:      # noqa: BLE001 - reported by the test
            self.error = "%s: %s" % (type(e).__name__, e)
        self.at = time.monotonic()
        self.sock.close()


class Stop(Case):

    def test_sigterm_without_connections(self):
        d = self.start([listener("echo", "tcp", "echo")], {"limits": {"drain_timeout": 30.0}})
        d.send_signal(signal.SIGTERM)
        rc, took = self.wait_exit(d, 5.0)
        self.assertEqual(rc, 0, d.log())
        self.assertLess(took, 2.0, "exit %.2f s after SIGTERM with nothing open" % took)
        self.assertRegex(d.log(), r" info: stopped$")

    def test_sigterm_waits_for_open_connection(self):
        """drain_timeout 10: after SIGTERM the open connection is served on,
        and wharfd exits 0 once it ends."""
        d = self.start([listener("echo", "tcp", "echo")], {"limits": {"drain_timeout": 10.0}})
        c = self.connect(d, "echo")
        wt.echo_roundtrip(self, c, b"before\n")
        d.send_signal(signal.SIGTERM)
        self.assertIsNotNone(wt.wait_for_log(d, r"stopping; connections may finish"),
                             "no log line for SIGTERM")
        for i in range(3):
            time.sleep(0.3)
            self.assertRunning(d, "SIGTERM with a connection open, drain_timeout 10")
            wt.echo_roundtrip(self, c, b"draining %d\n" % i)
        t0 = time.monotonic()
        c.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(c), b"")
        rc, took = self.wait_exit(d, 5.0)
        self.assertEqual(rc, 0, d.log())
        self.assertLess(time.monotonic() - t0, 2.0, "exit after the last connection ended")

    def test_sigterm_stops_accepting(self):
        """drain_timeout 10, a connection open: after SIGTERM new connections
        are refused (within 2 s), not taken into a backlog nobody serves."""
        d = self.start([listener("echo", "tcp", "echo")], {"limits": {"drain_timeout": 10.0}})
        c = self.connect(d, "echo")
        wt.echo_roundtrip(self, c, b"before\n")
        d.send_signal(signal.SIGTERM)
        self.assertIsNotNone(wt.wait_for_log(d, r"stopping; connections may finish"),
                             "no log line for SIGTERM")
        deadline = time.monotonic() + 2.0
        while True:
            r = wt.try_connect(d.addr("echo"), timeout=1.0)
            if isinstance(r, ConnectionRefusedError):
                break
            if isinstance(r, socket.socket):
                # what such a connection gets: nothing (wharfd no longer accepts)
                r.sendall(b"late\n")
                served = not wt.still_open(r, 0.3)
                r.close()
                if time.monotonic() > deadline:
                    self.fail("connect() still succeeds %.0f s after SIGTERM (a connection "
                              "%s), expected ECONNREFUSED" % (2.0, "answered" if served else
                                                              "never served: no reply in 0.3 s"))
            time.sleep(0.02)
        wt.echo_roundtrip(self, c, b"still served\n")

    def check_cancelled(self, sig):
        """drain_timeout 1: an idle plain connection and an idle TLS one
        whose client waits in recv() (and closes when it gets EOF) are
        cancelled about 1 s after sig, the TLS one with close_notify; exit
        0 within drain_timeout."""
        p = pki()
        d = self.start([listener("echo", "tcp", "echo"),
                        listener("hello", "tcp", "hello",
                                 tls={"certificate": p["one"].cert, "key": p["one"].key})],
                       {"limits": {"drain_timeout": 1.0}})
        plain = self.connect(d, "echo")
        wt.wait_accepted(self, plain)
        ctx = wt.tls_client_context(p["ca"])
        t = self.client(ctx.wrap_socket(self.connect(d, "hello"), suppress_ragged_eofs=False))
        reader = Reader(t)
        reader.start()
        t0 = time.monotonic()
        d.send_signal(sig)
        rc, took = self.wait_exit(d, 8.0)
        reader.join(5.0)
        self.assertEqual(rc, 0, "exit status after %s; log:\n%s" % (sig.name, d.log()))
        self.assertGreaterEqual(took, 0.8, "exit %.2f s after %s: before drain_timeout"
                                % (took, sig.name))
        self.assertLess(took, 3.0, "exit %.2f s after %s, drain_timeout 1" % (took, sig.name))
        self.assertEqual(wt.recv_all(plain, timeout=2.0, allow_reset=True), b"",
                         "the plain connection")
        self.assertIsNotNone(reader.at, "the TLS client still waits for EOF")
        self.assertIsNone(reader.error, "the TLS connection: %s" % reader.error)
        self.assertEqual(reader.data, b"", "the TLS connection")
        self.assertGreaterEqual(reader.at - t0, 0.8, "TLS close_notify %.2f s after %s"
                                % (reader.at - t0, sig.name))

    def test_sigterm_cancels_after_drain_timeout(self):
        """(e) with drain_timeout = 1."""
        self.check_cancelled(signal.SIGTERM)

    def test_sigint_like_sigterm(self):
        self.check_cancelled(signal.SIGINT)

    def test_sigterm_tls_peer_silent(self):
        """(e) with drain_timeout = 1 and a TLS client that neither reads
        nor answers close_notify (it just stays connected): wharfd still
        exits 0 within drain_timeout, and the client then finds wharfd's
        close_notify."""
        p = pki()
        d = self.start([listener("hello", "tcp", "hello",
                                 tls={"certificate": p["one"].cert, "key": p["one"].key})],
                       {"limits": {"drain_timeout": 1.0}})
        ctx = wt.tls_client_context(p["ca"])
        t = self.client(ctx.wrap_socket(self.connect(d, "hello"), suppress_ragged_eofs=False))
        d.send_signal(signal.SIGTERM)
        rc, took = self.wait_exit(d, 10.0)
        self.assertEqual(rc, 0, d.log())
        self.assertLess(took, 3.0, "exit %.2f s after SIGTERM, drain_timeout 1, a silent TLS "
                        "client open" % took)
        try:
            data = wt.recv_all(t, timeout=2.0)
        except ssl.SSLEOFError as e:
            self.fail("the TLS connection was cancelled without close_notify (%s)" % e)
        self.assertEqual(data, b"")

    def test_second_sigterm_stops_at_once(self):
        d = self.start([listener("echo", "tcp", "echo")], {"limits": {"drain_timeout": 30.0}})
        c = self.connect(d, "echo")
        wt.echo_roundtrip(self, c, b"open\n")
        d.send_signal(signal.SIGTERM)
        self.assertIsNotNone(wt.wait_for_log(d, r"stopping; connections may finish"))
        time.sleep(0.5)
        self.assertRunning(d, "one SIGTERM, a connection open, drain_timeout 30")
        d.send_signal(signal.SIGTERM)
        rc, took = self.wait_exit(d, 5.0)
        self.assertEqual(rc, 0, d.log())
        self.assertLess(took, 1.0, "exit %.2f s after the second SIGTERM" % took)
        self.assertRegex(d.log(), r"stopping now")
        self.assertEqual(wt.recv_all(c, timeout=2.0, allow_reset=True), b"")


# ---- (f) the notify protocol --------------------------------------------------------------

def monotonic_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notify(Case):

    def start_notified(self, abstract=False, env=None, **kw):
        """wharfd with NOTIFY_SOCKET; each message arriving is recorded with
        the log at that moment and whether the listener accepted then."""
        n = self.notify_socket(abstract)
        self.seen = []          # (message, log then, connect then)
        holder = {}

        def on_message(msg):
            d = holder["d"]
            r = wt.try_connect(d.addr("echo"), timeout=1.0)
            if isinstance(r, socket.socket):
                r.close()
            self.seen.append((msg, d.log(), r))

        def on_spawn(d):
            holder["d"] = d
            n.on_message = on_message
            n.wait_for("READY", "1", timeout=wt.READY_TIMEOUT)

        e = dict(n.env)
        e.update(env or {})
        d = self.start([listener("echo", "tcp", "echo")], env=e, on_spawn=on_spawn, **kw)
        return d, n

    def find(self, n, key, value=None, start=0, timeout=wt.IO_TIMEOUT, what=""):
        i = n.wait_for(key, value, start, timeout)
        self.assertIsNotNone(i, "no %s=%s%s within %.0f s; received:\n%s"
                             % (key, value or "*", what, timeout, n.dump()))
        return i

    def seen_at(self, i):
        return self.seen[i]

    def test_ready_reload_stopping(self):
        d, n = self.start_notified()
        i = self.find(n, "READY", "1", what=" after the start")
        msg, log, conn = self.seen_at(i)
        self.assertIn(wt.READY_MARK, log, "READY=1 came before the ready log line")
        self.assertIsInstance(conn, socket.socket,
                              "READY=1 came before the listener accepted: %r" % (conn,))
        self.assertTrue(n.get(msg, "STATUS"), "READY=1 without STATUS=: %r" % msg[2])
        self.assertEqual(msg[3], d.pid, "the sender of READY=1 (SCM_CREDENTIALS pid) is not "
                         "wharfd's main PID, which NotifyAccess=main requires")
        before = [m[2] for m in n.messages[:i]]
        self.assertFalse(any("RELOADING" in b or "STOPPING" in b for b in before), before)

        # a reload: RELOADING=1 with MONOTONIC_USEC, then READY=1
        t_sent = monotonic_usec()
        ok, text = d.reload()
        self.assertTrue(ok, text)
        j = self.find(n, "RELOADING", "1", i + 1, what=" after SIGHUP")
        usec = n.get(n.messages[j], "MONOTONIC_USEC")
        self.assertIsNotNone(usec, "RELOADING=1 without MONOTONIC_USEC=: %r" % n.messages[j][2])
        self.assertRegex(usec, r"^[0-9]+$")
        self.assertGreaterEqual(int(usec), t_sent, "MONOTONIC_USEC before the SIGHUP")
        self.assertLessEqual(int(usec), monotonic_usec(), "MONOTONIC_USEC in the future")
        k = self.find(n, "READY", "1", j + 1, what=" after RELOADING=1")
        self.assertIn("reload: done", self.seen_at(k)[1], "READY=1 before the reload ended")
        self.assertEqual(n.messages[k][3], d.pid)

        # a failed reload: RELOADING=1 then READY=1 as well (systemd waits for it)
        with open(d.conf, "a") as f:
            f.write("this is not libconfig\n")
        ok, text = d.reload()
        self.assertFalse(ok, text)
        j = self.find(n, "RELOADING", "1", k + 1, what=" after a SIGHUP with a broken file")
        k = self.find(n, "READY", "1", j + 1, what=" after a failed reload")
        self.assertIn("reload failed", self.seen_at(k)[1])

        # SIGTERM: STOPPING=1
        d.send_signal(signal.SIGTERM)
        s = self.find(n, "STOPPING", "1", k + 1, what=" after SIGTERM")
        self.assertEqual(n.messages[s][3], d.pid)
        rc, _ = self.wait_exit(d, 5.0)
        self.assertEqual(rc, 0, d.log())
        later = [m[2] for m in n.messages[s + 1:]]
        self.assertFalse(any("READY=1" in m for m in later), "READY=1 after STOPPING=1: %r"
                         % later)

    def test_abstract_socket(self):
        """NOTIFY_SOCKET=@name: the abstract namespace."""
        d, n = self.start_notified(abstract=True)
        self.assertTrue(n.name.startswith("@"))
        i = self.find(n, "READY", "1", what=" on an abstract socket")
        self.assertIn(wt.READY_MARK, self.seen_at(i)[1])
        self.reload_ok(d)
        j = self.find(n, "RELOADING", "1", i + 1)
        self.find(n, "READY", "1", j + 1)
        d.send_signal(signal.SIGTERM)
        self.find(n, "STOPPING", "1", j + 1)
        rc, _ = self.wait_exit(d, 5.0)
        self.assertEqual(rc, 0, d.log())

    def test_watchdog(self):
        """WATCHDOG_USEC=200000: WATCHDOG=1 every 0.1 s (half of it)."""
        d, n = self.start_notified(env={"WATCHDOG_USEC": "200000"})
        self.find(n, "READY", "1")
        t0 = time.monotonic()
        while time.monotonic() < t0 + 1.5:
            n.poll(0.05)
        times = [m[0] for m in n.messages if m[0] >= t0 and ("WATCHDOG", "1") in m[1]]
        self.assertGreaterEqual(len(times), 8, "WATCHDOG=1 %d times in 1.5 s with "
                                "WATCHDOG_USEC=200000 (expected ~15); received:\n%s"
                                % (len(times), n.dump()))
        gaps = [b - a for a, b in zip([t0] + times, times)]
        self.assertLess(max(gaps), 0.5, "a gap of %.2f s between WATCHDOG=1 (systemd kills "
                        "after 0.2 s)" % max(gaps))
        self.assertTrue(all(m[3] == d.pid for m in n.messages if ("WATCHDOG", "1") in m[1]))

    def test_watchdog_for_another_pid(self):
        """WATCHDOG_PID naming another process: the watchdog is not ours."""
        d, n = self.start_notified(env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
        self.find(n, "READY", "1")
        t0 = time.monotonic()
        while time.monotonic() < t0 + 0.8:
            n.poll(0.05)
        wd = [m[2] for m in n.messages if ("WATCHDOG", "1") in m[1]]
        self.assertEqual(wd, [], "WATCHDOG=1 sent though WATCHDOG_PID=1")

    def test_no_notify_socket(self):
        """Without NOTIFY_SOCKET nothing changes (the harness's default)."""
        d = self.start([listener("echo", "tcp", "echo")])
        self.reload_ok(d)
        c = self.connect(d, "echo")
        wt.echo_roundtrip(self, c, b"x\n")


# ---- a listener's task in trouble ------------------------------------------------------

def cpu_seconds(pid):
    """The user + system CPU time process pid has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def take_fd(pid, fd):
    """A duplicate of descriptor fd of process pid (pidfd_getfd(2)), or None
    where the kernel or the permissions do not allow it."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None
    try:
        r = libc.syscall(438, pidfd, fd, 0)     # SYS_pidfd_getfd (x86-64, aarch64: 438)
    finally:
        os.close(pidfd)
    return r if r >= 0 else None


class ListenerTask(Case):

    def test_datagram_handler_that_returns_closes_its_socket(self):
        """A datagram handler that returns 0 on one worker (good's, on
        "quit"): an error line names the listener, the worker and the
        result, and that worker's SO_REUSEPORT socket is closed, so that
        the kernel sends every sender to the other worker: none is lost to
        a socket nobody reads."""
        d = self.start([listener("dg", "udp", {"plugin": "good", "greeting": "g:",
                                               "datagrams": "echo"})],
                       {"plugin_dir": wt.TEST_PLUGIN_DIR})
        addr = d.addr("dg")
        q = self.client(wt.udp_socket())
        q.sendto(b"quit", addr)
        m = wt.wait_for_log(d, r' error: listener "dg" on worker [01]: the datagram handler '
                            r"returned 0; this worker's socket is closed", 5.0)
        self.assertIsNotNone(m, "no error line for the handler that returned; log:\n" + d.log())
        lost = []
        for i in range(24):
            c = wt.udp_socket(timeout=1.0)
            try:
                c.sendto(b"n%d" % i, addr)
                try:
                    self.assertEqual(c.recvfrom(100)[0], b"g:n%d" % i)
                except socket.timeout:
                    lost.append(c.getsockname()[1])
            finally:
                c.close()
        self.assertEqual(lost, [], "senders (by source port) that no worker answered, "
                         "of 24; log:\n" + d.log())
        self.assertRunning(d, "a datagram handler that returned")

    def test_accept_error_does_not_spin(self):
        """Listening sockets that fail every accept (shut down under wharfd:
        EINVAL): the accept loops pause between tries, as for EMFILE,
        instead of spinning on the CPU; the error is logged, rate-limited,
        and wharfd stops cleanly."""
        d = self.start([listener("e", "tcp", "echo")])
        port = d.addr("e")[1]
        listening = set(wt.listening_inodes(port))
        self.assertEqual(len(listening), 2, "listening sockets on the port (2 workers)")
        fds = {ino: fd for fd, ino in wt.socket_inodes(d.pid).items() if ino in listening}
        taken = [take_fd(d.pid, fd) for fd in fds.values()]
        if None in taken:
            self.skipTest("pidfd_getfd(2) is not available here")
        for fd in taken:
            s = socket.socket(fileno=fd)
            s.shutdown(socket.SHUT_RD)      # a listening socket: closed, accept fails
            s.close()
        self.assertIsNotNone(wt.wait_for_log(d, r'warning: listener "e": accept: ', 5.0),
                             "no log line for the failing accept; log:\n" + d.log())
        t0 = cpu_seconds(d.pid)
        time.sleep(1.0)
        used = cpu_seconds(d.pid) - t0
        self.assertLess(used, 0.3, "wharfd used %.2f s of CPU in 1 s of failing accepts" % used)
        lines = re.findall(r'listener "e": accept: ', d.log())
        self.assertLess(len(lines), 6, "accept failures logged more than once a second")
        self.assertRunning(d, "failing accepts")


# ---- (g) socket activation -------------------------------------------------------------

@unittest.skipUnless(SOCKET_ACTIVATE, "systemd-socket-activate not found (Debian package "
                        "systemd): socket activation not tested")
class SocketActivation(Case):

    def start_activated(self, listeners, passed, extra_sockets=()):
        """wharfd under systemd-socket-activate passing the addresses of the
        listeners named in passed (fd names = listener names) and of
        extra_sockets ((fdname, port) pairs). The first connection, to the
        first passed listener, is what makes systemd-socket-activate exec
        wharfd (same PID); it is returned, sent b"first\\n"."""
        first = {}

        def wrap(d):
            argv = [SOCKET_ACTIVATE]
            names = []
            for name in passed:
                argv += ["-l", "%s:%d" % d.addr(name)]
                names.append(name)
            for fdname, port in extra_sockets:
                argv += ["-l", "127.0.0.1:%d" % port]
                names.append(fdname)
            argv.append("--fdname=" + ":".join(names))
            for k in PASS_ENV:
                if k in os.environ:
                    argv += ["-E", k]
            return argv + ["--"]

        def on_spawn(d):
            deadline = time.monotonic() + wt.READY_TIMEOUT
            while time.monotonic() < deadline and d.proc.poll() is None:
                r = wt.try_connect(d.addr(passed[0]), timeout=wt.IO_TIMEOUT)
                if isinstance(r, socket.socket):
                    r.sendall(b"first\n")
                    first["sock"] = self.client(r)
                    return
                time.sleep(0.02)

        d = self.start(listeners, wrap=wrap, on_spawn=on_spawn)
        self.assertIn("sock", first, "could not connect to systemd-socket-activate")
        return d, first["sock"]

    def assertPassedSocketUsed(self, d, name, fd):
        self.assertRegex(d.log(), r'info: listener "%s": using the socket systemd passed' % name)
        inode = wt.socket_inodes(d.pid).get(fd)
        self.assertIsNotNone(inode, "wharfd has no socket on fd %d" % fd)
        port = d.addr(name)[1]
        self.assertEqual(wt.listening_inodes(port), [inode],
                         "listening sockets on port %d (%s): only the one systemd passed, "
                         "fd %d" % (port, name, fd))

    def test_named_sockets(self):
        """(g) Two sockets passed (echo, hello), a third listener bound by
        wharfd itself; all serve, the first connection (made before wharfd
        ran) included; a reload keeps the passed sockets."""
        d, first = self.start_activated([listener("echo", "tcp", "echo"),
                                         listener("hello", "tcp", "hello"),
                                         listener("own", "tcp", "echo")], ["echo", "hello"])
        self.assertEqual(wt.recv_exact(first, 6), b"first\n",
                         "the connection that started wharfd")
        self.assertPassedSocketUsed(d, "echo", 3)
        self.assertPassedSocketUsed(d, "hello", 4)
        self.assertNotIn('"own": using the socket systemd passed', d.log())
        env = open("/proc/%d/environ" % d.pid, "rb").read().split(b"\0")
        self.assertIn(b"LISTEN_FDNAMES=echo:hello", env, "what systemd-socket-activate passed")
        for name in ("echo", "own"):
            c = self.connect(d, name)
            wt.echo_roundtrip(self, c, b"to %s\n" % name.encode())
        h = self.connect(d, "hello")
        h.sendall(b"Bob\n")
        self.assertEqual(wt.recv_all(h), b"Hello, Bob\n")

        self.reload_ok(d, "a reload with passed sockets")
        self.assertPassedSocketUsed(d, "echo", 3)
        c = self.connect(d, "echo")
        wt.echo_roundtrip(self, c, b"after the reload\n")
        wt.echo_roundtrip(self, first, b"first, still\n")

    def test_unclaimed_socket_closed(self):
        """A passed socket that no listener names is closed, and said so."""
        stray = wt.free_ports(1)[0]
        d, first = self.start_activated([listener("echo", "tcp", "echo")], ["echo"],
                                        [("stray", stray)])
        self.assertEqual(wt.recv_exact(first, 6), b"first\n")
        self.assertRegex(d.log(), r'warning: systemd passed a socket named "stray" that no '
                         r'listener has: closed')
        self.assertEqual(wt.listening_inodes(stray), [], "the stray socket still listens")
        self.assertPassedSocketUsed(d, "echo", 3)

    def test_passed_socket_that_does_not_match(self):
        """A socket passed under a listener's name but bound elsewhere (or of
        another kind) is refused before READY: exit 71, naming the listener,
        not a silent failure of every worker."""
        other = wt.free_ports(1)[0]

        def wrap(d):
            argv = [SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % other, "--fdname=echo"]
            for k in PASS_ENV:
                if k in os.environ:
                    argv += ["-E", k]
            return argv + ["--"]

        def on_spawn(d):
            deadline = time.monotonic() + wt.READY_TIMEOUT
            while time.monotonic() < deadline and d.proc.poll() is None:
                r = wt.try_connect(("127.0.0.1", other), timeout=wt.IO_TIMEOUT)
                if isinstance(r, socket.socket):
                    r.close()
                    return
                time.sleep(0.02)

        with self.assertRaises(wt.StartError) as cm:
            self.start([listener("echo", "tcp", "echo")], wrap=wrap, on_spawn=on_spawn)
        self.assertEqual(cm.exception.rc, wt.EX_OSERR, str(cm.exception))
        self.assertRegex(str(cm.exception), r'listener "echo": cannot use the socket systemd '
                         r'passed for 127\.0\.0\.1:\d+: Cannot assign requested address')


# ---- (h) dropping privileges -----------------------------------------------------------------

def free_low_port():
    """A free TCP port below 1024 on 127.0.0.1 (as root), or None."""
    for port in range(1019, 900, -7):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    return None


@unittest.skipUnless(os.geteuid() == 0, "not run as root: the privilege drop to `user` "
                        "and the refusal to run as root without it are not tested")
class Privileges(Case):

    def test_drop_to_nobody(self):
        """(h) user = "nobody", no -f, log_file: after binding a port below
        1024, every thread runs as nobody with nobody's groups and no
        capability, and serves."""
        pw = pwd.getpwnam("nobody")
        groups = sorted(set(os.getgrouplist(pw.pw_name, pw.pw_gid)))
        low = free_low_port()
        ls = [listener("echo", "tcp", "echo")]
        if low:
            ls.append(listener("low", "tcp", "echo", address=("127.0.0.1", low)))
        log = os.path.join(self.tmp, "wharfd-nobody.log")
        d = self.start(ls, {"user": "nobody", "log_file": log}, foreground=False)
        self.assertRegex(d.log(), r'running as user "nobody" \(uid %d, gid %d\)'
                         % (pw.pw_uid, pw.pw_gid))
        tasks = os.listdir("/proc/%d/task" % d.pid)
        self.assertGreaterEqual(len(tasks), 3, "threads: the main one and 2 workers")
        for tid in tasks:
            st = wt.proc_status(int(tid))
            ids = "%d\t%d\t%d\t%d" % ((pw.pw_uid,) * 4)
            self.assertEqual(st["Uid"], ids, "thread %s: Uid" % tid)
            self.assertEqual(st["Gid"], "%d\t%d\t%d\t%d" % ((pw.pw_gid,) * 4),
                             "thread %s: Gid" % tid)
            self.assertEqual(sorted(int(g) for g in st["Groups"].split()), groups,
                             "thread %s: supplementary groups" % tid)
            for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                self.assertEqual(int(st[cap], 16), 0, "thread %s: %s = %s" % (tid, cap, st[cap]))
        for l in ls:
            c = self.connect(d, l.name)
            wt.echo_roundtrip(self, c, b"as nobody\n")
        self.assertEqual(d.stderr(), "", "stderr without -f, with log_file")

    def test_root_without_user_refused(self):
        """Root, no `user`, no -f: exit 78 naming `user`; nothing bound."""
        port = wt.free_ports(1)[0]
        log = os.path.join(self.tmp, "wharfd-root.log")
        conf = self.write_conf(wt.render_conf(
            {"workers": 2, "plugin_dir": wt.PLUGIN_DIR, "log_file": log},
            [{"name": "echo", "tcp": "127.0.0.1:%d" % port, "handler": "echo"}]))
        r = self.run_wharfd(["-c", conf])
        self.assertExit(r, wt.EX_CONFIG, "root without user and without -f")
        self.assertRegex(r.stderr, r"\buser\b", "the message does not name `user`")
        self.assertRegex(r.stderr, re.escape(conf), "the message does not name the file")
        self.assertEqual(wt.listening_inodes(port), [])


if __name__ == "__main__":
    wt.main()
