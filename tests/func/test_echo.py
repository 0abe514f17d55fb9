#!/usr/bin/env python3
"""The echo plugin through wharfd (SPEC.md section 5): TCP over IPv4 and
IPv6, UNIX (stale socket file, unix_mode), UDP with several senders, a 10 MB
transfer, half-close, and many concurrent connections."""

import os
import socket
import stat
import sys
import threading

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener


class Echo(wt.TestCase):

    def echo_stream(self, d, name):
        s = self.connect(d, name)
        for msg in (b"hello\n", b"\x00\x01\x02\xff binary \r\n", os.urandom(20000)):
            wt.echo_roundtrip(self, s, msg)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(wt.recv_all(s), b"", "bytes after the echo, before EOF")

    def test_tcp_ipv4(self):
        d = self.start([listener("echo", "tcp", "echo")])
        self.echo_stream(d, "echo")
        self.echo_stream(d, "echo")      # and a second connection

    def test_tcp_ipv6(self):
        if not wt.have_ipv6_loopback():
            self.skipTest("no IPv6 loopback")
        d = self.start([listener("echo6", "tcp6", "echo")])
        self.echo_stream(d, "echo6")

    def test_unix(self):
        d = self.start([listener("echo", "unix", "echo")])
        self.assertTrue(stat.S_ISSOCK(os.stat(d.addr("echo")).st_mode))
        self.echo_stream(d, "echo")

    def test_unix_stale_socket_file_replaced(self):
        path = os.path.join(self.tmp, "stale.sock")
        old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old.bind(path)
        old.close()                      # the file stays, nobody listens on it
        self.assertTrue(os.path.exists(path))
        d = self.start([listener("echo", "unix", "echo", path=path)])
        self.echo_stream(d, "echo")

    def test_unix_mode(self):
        d = self.start([listener("echo", "unix", "echo", unix_mode="0600")])
        mode = stat.S_IMODE(os.stat(d.addr("echo")).st_mode)
        self.assertEqual(mode, 0o600, "socket file mode %04o, expected 0600" % mode)
        self.echo_stream(d, "echo")

    def test_udp_several_senders(self):
        d = self.start([listener("udp", "udp", "echo")])
        server = d.addr("udp")
        senders = [self.client(wt.udp_socket()) for _ in range(4)]
        for rnd in range(5):
            msgs = [b"sender %d round %d " % (i, rnd) + os.urandom(100 * i)
                    for i in range(len(senders))]
            for s, m in zip(senders, msgs):
                s.sendto(m, server)
            for i, (s, m) in enumerate(zip(senders, msgs)):
                data, frm = s.recvfrom(70000)
                self.assertEqual(data, m, "sender %d got another datagram" % i)
                self.assertEqual(frm, server, "the reply comes from another address")

    def test_10mb_byte_exact(self):
        d = self.start([listener("echo", "tcp", "echo")])
        payload = os.urandom(10 * 1024 * 1024)
        s = self.connect(d, "echo", timeout=10)
        errors = []

        def send():
            try:
                view = memoryview(payload)
                for off in range(0, len(payload), 65536):
                    s.sendall(view[off:off + 65536])
                s.shutdown(socket.SHUT_WR)
            except Exception as e:       # reported by the main thread
                errors.append(e)

        t = threading.Thread(target=send, daemon=True)
        t.start()
        got = wt.recv_all(s, timeout=30)
        t.join(10)
        self.assertFalse(t.is_alive(), "the sender is stuck")
        self.assertEqual(errors, [])
        self.assertEqual(len(got), len(payload), "received %d of %d bytes" % (len(got), len(payload)))
        self.assertTrue(got == payload, "10 MB came back with other bytes")

    def test_half_close(self):
        d = self.start([listener("echo", "tcp", "echo"), listener("echo-unix", "unix", "echo")])
        for name in ("echo", "echo-unix"):
            with self.subTest(listener=name):
                s = self.connect(d, name)
                data = b"".join(b"line %d of the request\n" % i for i in range(2000))
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)   # write EOF, still reading
                self.assertEqual(wt.recv_all(s), data)

    def test_200_concurrent_connections(self):
        d = self.start([listener("echo", "tcp", "echo", backlog=511)])
        n = 200
        socks = [self.connect(d, "echo") for _ in range(n)]
        msgs = [b"connection %d: " % i + os.urandom(64) + b"\n" for i in range(n)]
        for s, m in zip(socks, msgs):
            s.sendall(m)
        for i, (s, m) in enumerate(zip(socks, msgs)):
            self.assertEqual(wt.recv_exact(s, len(m)), m, "connection %d" % i)
        for s, m in zip(socks, msgs):        # all still open, a second round
            s.sendall(m[::-1])
        for s, m in zip(socks, msgs):
            self.assertEqual(wt.recv_exact(s, len(m)), m[::-1])
            s.shutdown(socket.SHUT_WR)
        for i, s in enumerate(socks):
            self.assertEqual(wt.recv_all(s), b"", "connection %d: no EOF" % i)
            s.close()


if __name__ == "__main__":
    wt.main()
