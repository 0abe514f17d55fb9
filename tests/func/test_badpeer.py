#!/usr/bin/env python3
"""Bad peers (SPEC.md section 8): garbage to hello, connect-and-close
storms, a reset in the middle of a transfer, UDP datagrams of 0 and 65507
bytes. After each, wharfd still serves a normal request and still runs;
at the end it exits 0 on SIGTERM (the harness checks that)."""

import os
import socket
import sys
import time

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener


class BadPeer(wt.TestCase):

    def setUp(self):
        super().setUp()
        self.d = self.start([
            listener("hello", "tcp", "hello"),
            listener("echo", "tcp", "echo"),
            listener("echo-unix", "unix", "echo"),
            listener("udp", "udp", "echo"),
        ])

    def assertServes(self, what):
        """wharfd runs and answers a normal request on each listener."""
        self.assertRunning(self.d, what)
        s = self.connect(self.d, "hello")
        s.sendall(b"Bob\n")
        self.assertEqual(wt.recv_all(s), b"Hello, Bob\n", "hello after " + what)
        s.close()
        for name in ("echo", "echo-unix"):
            s = self.connect(self.d, name)
            wt.echo_roundtrip(self, s, b"normal request\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(wt.recv_all(s), b"", "%s after %s" % (name, what))
            s.close()
        u = self.client(wt.udp_socket())
        u.sendto(b"normal datagram", self.d.addr("udp"))
        self.assertEqual(u.recvfrom(70000), (b"normal datagram", self.d.addr("udp")),
                         "udp echo after " + what)
        u.close()
        self.assertRunning(self.d, what)

    def test_garbage_to_hello(self):
        # binary with a newline: a greeting with the same bytes
        junk = bytes(range(256)).replace(b"\n", b"") * 3
        s = self.connect(self.d, "hello")
        s.sendall(junk + b"\n")
        self.assertEqual(wt.recv_all(s), b"Hello, " + junk + b"\n")
        s.close()
        # a TLS ClientHello-like record to a plain listener, then random bytes
        for payload in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(500),
                        os.urandom(64 * 1024),
                        b"\r\n" * 2000,
                        b"\x00" * 5000):
            s = self.connect(self.d, "hello")
            try:
                s.sendall(payload)
                # then EOF: a short payload without a newline is otherwise
                # rightly waited for (the rest of the line may come)
                s.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass                         # it may close before reading it all
            data = wt.recv_all(s, allow_reset=True)
            self.assertLessEqual(len(data), len(b"Hello, \n") + 1024, "an oversized reply")
            s.close()
            self.assertRunning(self.d, "garbage to hello")
        self.assertServes("garbage to hello")

    def test_connect_and_close_storm(self):
        for name in ("hello", "echo", "echo-unix"):
            for i in range(500):
                s = self.d.connect(name)
                if i % 2:
                    wt.set_linger_zero(s)    # every other one with a reset
                s.close()
            self.assertRunning(self.d, "500 connect-and-close on " + name)
        self.assertServes("connect-and-close storms")

    def test_reset_mid_transfer(self):
        for name in ("echo", "echo-unix"):
            for _ in range(5):
                s = self.d.connect(name)
                s.setblocking(False)
                # send without reading until both directions' buffers are full
                sent, blocked, chunk = 0, 0, os.urandom(65536)
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline and blocked < 3:
                    try:
                        sent += s.send(chunk)
                        blocked = 0
                    except BlockingIOError:
                        blocked += 1
                        time.sleep(0.02)
                self.assertGreater(sent, 0)
                if name == "echo":
                    wt.set_linger_zero(s)
                s.close()
            self.assertRunning(self.d, "a reset in the middle of a transfer on " + name)
        self.assertServes("resets in the middle of transfers")

    def test_udp_datagram_sizes(self):
        u = self.client(wt.udp_socket())
        u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        server = self.d.addr("udp")
        for size in (0, 1, 65507, 0, 65507):
            payload = os.urandom(size)
            u.sendto(payload, server)
            data, frm = u.recvfrom(70000)
            self.assertEqual((len(data), frm), (size, server), "echo of a %d-byte datagram" % size)
            self.assertTrue(data == payload, "the %d-byte datagram came back changed" % size)
        self.assertServes("datagrams of 0 and 65507 bytes")


if __name__ == "__main__":
    wt.main()
