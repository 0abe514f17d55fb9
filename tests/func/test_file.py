#!/usr/bin/env python3
"""The file plugin through wharfd (SPEC.md section 5): exactly the file's
bytes, then EOF; a relative path is resolved against the config file's
directory (wharfd runs in another working directory)."""

import os
import sys

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener


class File(wt.TestCase):

    def test_file_bytes_then_eof(self):
        os.mkdir(os.path.join(self.tmp, "data"))
        small = b"the content of a small file\n"
        big = os.urandom(3 * 1024 * 1024 + 17)
        for name, content in (("small.txt", small), ("data/big.bin", big), ("empty", b"")):
            with open(os.path.join(self.tmp, name), "wb") as f:
                f.write(content)
        d = self.start([
            listener("small", "tcp", {"plugin": "file", "path": "small.txt"}),
            listener("big", "tcp", {"plugin": "file", "path": "data/big.bin"}),
            listener("empty", "tcp", {"plugin": "file", "path": "empty"}),
            listener("small-unix", "unix", {"plugin": "file", "path": "small.txt"}),
        ], cwd="/")
        for name, content in (("small", small), ("big", big), ("empty", b""),
                              ("small-unix", small)):
            for attempt in range(2):         # opened again for each connection
                with self.subTest(listener=name, connection=attempt):
                    s = self.connect(d, name)
                    got = wt.recv_all(s, timeout=10)
                    self.assertEqual(len(got), len(content))
                    self.assertTrue(got == content, "other bytes than the file's")
                    s.close()

    def test_file_sent_without_reading_the_peer(self):
        content = b"a short file\n" * 50
        with open(os.path.join(self.tmp, "f"), "wb") as f:
            f.write(content)
        d = self.start([listener("f", "tcp", {"plugin": "file", "path": "f"})])
        s = self.connect(d, "f")
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")     # ignored by the plugin
        self.assertEqual(wt.recv_all(s, allow_reset=True), content)


if __name__ == "__main__":
    wt.main()
