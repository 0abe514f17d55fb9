#!/usr/bin/env python3
"""The hello plugin through wharfd (SPEC.md section 5): one line in, one
greeting out, then EOF; CRLF; the max_line bound (default 1024, and the
option); EOF before the newline; hello on UDP."""

import socket
import sys

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener


class Hello(wt.TestCase):

    def setUp(self):
        super().setUp()
        self.d = self.start([
            listener("hello", "tcp", "hello"),
            listener("hello16", "tcp", {"plugin": "hello", "max_line": 16}),
            listener("hello-unix", "unix", "hello"),
            listener("hello-udp", "udp", "hello"),
        ])

    def ask(self, data, name="hello", shut=False):
        """Sends data (then write EOF when shut) and returns every byte the
        server sends before its EOF."""
        s = self.connect(self.d, name)
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        return wt.recv_all(s)

    def test_name(self):
        self.assertEqual(self.ask(b"Bob\n"), b"Hello, Bob\n")

    def test_name_over_unix(self):
        self.assertEqual(self.ask(b"Bob\n", "hello-unix"), b"Hello, Bob\n")

    def test_crlf(self):
        self.assertEqual(self.ask(b"Bob\r\n"), b"Hello, Bob\n")

    def test_empty_line(self):
        self.assertEqual(self.ask(b"\n"), b"Hello, \n")

    def test_line_in_pieces(self):
        s = self.connect(self.d, "hello")
        for piece in (b"B", b"o", b"b", b"\n"):
            s.sendall(piece)
        self.assertEqual(wt.recv_all(s), b"Hello, Bob\n")

    def test_1024_byte_line(self):
        name = bytes(0x41 + i % 26 for i in range(1024))
        self.assertEqual(self.ask(name + b"\n"), b"Hello, " + name + b"\n")

    def test_1025_bytes_without_newline(self):
        name = b"x" * 1025
        self.assertEqual(self.ask(name), b"", "a reply to a line over max_line")

    def test_eof_before_newline(self):
        self.assertEqual(self.ask(b"Bob", shut=True), b"", "a reply without a newline")

    def test_eof_at_once(self):
        self.assertEqual(self.ask(b"", shut=True), b"")

    def test_max_line_option(self):
        name = b"0123456789abcdef"               # 16 bytes
        self.assertEqual(self.ask(name + b"\n", "hello16"), b"Hello, " + name + b"\n")
        self.assertEqual(self.ask(name + b"g", "hello16"), b"", "17 bytes without newline")
        # the default listener still takes what max_line = 16 refuses
        self.assertEqual(self.ask(name + b"g\n"), b"Hello, " + name + b"g\n")

    def test_udp(self):
        u = self.client(wt.udp_socket())
        for dgram in (b"Bob", b"Bob\n", b"\x00\xffbinary"):
            u.sendto(dgram, self.d.addr("hello-udp"))
            data, frm = u.recvfrom(70000)
            self.assertEqual(data, b"Hello, " + dgram)
            self.assertEqual(frm, self.d.addr("hello-udp"))


if __name__ == "__main__":
    wt.main()
