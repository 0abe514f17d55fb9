#!/usr/bin/env python3
"""Limits (SPEC.md section 2): max_connections, in the listener and in the
global limits group (with a listener overriding it), and idle_timeout."""

import os
import resource
import select
import socket
import sys
import time

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Limits(wt.TestCase):

    def try_served(self, d, name, timeout=1.0):
        """A new connection and one echo round trip: the socket when served,
        None when wharfd closed it without data."""
        s = d.connect(name)
        try:
            s.sendall(b"ping\n")
            got = wt.recv_exact(s, 5, timeout)
        except (AssertionError, OSError):
            s.close()
            return None
        self.assertEqual(got, b"ping\n")
        return self.client(s)

    def check_max_2(self, d, name):
        c1 = self.connect(d, name)
        wt.echo_roundtrip(self, c1, b"one\n")
        c2 = self.connect(d, name)
        wt.echo_roundtrip(self, c2, b"two\n")
        # the third is accepted (connect succeeds) and closed at once
        c3 = self.connect(d, name)
        wt.expect_closed_no_data(self, c3, timeout=3.0, what="third connection")
        # the two first are still served
        wt.echo_roundtrip(self, c1, b"one again\n")
        wt.echo_roundtrip(self, c2, b"two again\n")
        # one leaves: a new connection is served again (soon)
        c1.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(c1), b"")
        c1.close()
        deadline = time.monotonic() + 5.0
        c4 = None
        while c4 is None and time.monotonic() < deadline:
            c4 = self.try_served(d, name)
            if c4 is None:
                time.sleep(0.1)
        self.assertIsNotNone(c4, "no connection served within 5 s after one of two closed")
        wt.echo_roundtrip(self, c2, b"two still\n")
        # and the limit holds again with c2 and c4 open
        c5 = self.connect(d, name)
        wt.expect_closed_no_data(self, c5, timeout=3.0, what="third connection, again")
        for s in (c2, c4):
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(wt.recv_all(s), b"")

    def test_max_connections_in_listener(self):
        d = self.start([listener("echo", "tcp", "echo", max_connections=2)])
        self.check_max_2(d, "echo")

    def test_max_connections_in_global_limits(self):
        d = self.start([listener("echo", "tcp", "echo"),
                        listener("more", "tcp", "echo", max_connections=5)],
                       {"limits": {"max_connections": 2}})
        self.check_max_2(d, "echo")
        # a listener's own setting overrides the global one
        socks = [self.connect(d, "more") for _ in range(4)]
        for i, s in enumerate(socks):
            wt.echo_roundtrip(self, s, b"more %d\n" % i)
        for s in socks:
            s.close()

    def test_idle_timeout(self):
        d = self.start([listener("echo", "tcp", "echo", idle_timeout=0.5)])
        idle = self.connect(d, "echo")
        wt.echo_roundtrip(self, idle, b"x")
        t0 = time.monotonic()
        busy = self.connect(d, "echo")
        wt.echo_roundtrip(self, busy, b"y")
        closed_after = None
        # busy: a byte every 0.2 s for 2 s, each echoed; meanwhile idle must
        # be closed by the server.
        for i in range(10):
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                r, _, _ = select.select([idle] if closed_after is None else [], [], [],
                                        max(0.0, end - time.monotonic()))
                if r:
                    data = wt.recv_all(idle, timeout=1.0, allow_reset=True)
                    self.assertEqual(data, b"", "data on the idle connection")
                    closed_after = time.monotonic() - t0
            wt.echo_roundtrip(self, busy, bytes([0x61 + i]), timeout=1.0)
        if closed_after is None:
            wt.expect_closed_no_data(self, idle, timeout=max(0.0, 3.0 - (time.monotonic() - t0)),
                                     what="the idle connection (idle_timeout = 0.5), within 3 s")
            closed_after = time.monotonic() - t0
        self.assertLessEqual(closed_after, 3.0, "the idle connection was closed after %.2f s"
                             % closed_after)
        self.assertGreaterEqual(closed_after, 0.4, "the idle connection was closed after "
                                "%.2f s, before idle_timeout = 0.5" % closed_after)
        # the busy one stayed open all along and is still served
        self.assertTrue(wt.still_open(busy, 0.05), "the busy connection got EOF or data")
        wt.echo_roundtrip(self, busy, b"still here\n")
        busy.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(busy), b"")

    def test_emfile_pauses_accept(self):
        # Out of descriptors, accept(2) fails at once on a socket that stays
        # readable: wharfd must pause instead of spinning, and serve the
        # waiting clients once descriptors are free again.
        d = self.start([listener("echo", "tcp", "echo")], {"workers": 1})
        nfds = len(os.listdir("/proc/%d/fd" % d.pid))
        soft, hard = resource.prlimit(d.pid, resource.RLIMIT_NOFILE)
        try:
            resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (nfds + 2, hard))
        except OSError as e:
            self.skipTest("cannot lower wharfd's RLIMIT_NOFILE here: %s" % e)
        served = [self.connect(d, "echo") for _ in range(2)]
        for i, s in enumerate(served):
            wt.echo_roundtrip(self, s, b"served %d\n" % i)
        waiting = [self.connect(d, "echo") for _ in range(2)]   # queued in the backlog
        for s in waiting:
            s.sendall(b"waiting\n")
        cpu0, t0 = cpu_seconds(d.pid), time.monotonic()
        time.sleep(1.0)
        cpu = cpu_seconds(d.pid) - cpu0
        elapsed = time.monotonic() - t0
        self.assertLess(cpu, 0.5 * elapsed, "wharfd used %.2f s of CPU in %.2f s while out of "
                        "descriptors: it spins on accept" % (cpu, elapsed))
        self.assertIn("Too many open files", d.log(), "the pause is not logged")
        for s in served:
            s.close()
        # two descriptors are free again: both waiting clients get their echo
        for s in waiting:
            self.assertEqual(wt.recv_exact(s, 8, timeout=5.0), b"waiting\n")
        resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (soft, hard))


if __name__ == "__main__":
    wt.main()
