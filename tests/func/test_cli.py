#!/usr/bin/env python3
"""wharfd's command line (SPEC.md section 1): -V, -h, bad flags, -t on valid
and invalid configs, a missing config file, a listener that cannot be bound,
and a clean exit on SIGTERM and SIGINT."""

import os
import re
import signal
import socket
import sys

sys.dont_write_bytecode = True     # nothing written next to the sources
import wharftest as wt  # noqa: E402
from wharftest import listener

LIBRARIES = ("libevent", "OpenSSL", "libconfig", "jansson")
ERROR_LINE = re.compile(r"^wharfd: (.+?):(\d+): (\S+): (.+)$")


class Cli(wt.TestCase):

    def conf(self, listeners, settings=None, name="wharf.conf"):
        s = {"workers": 2, "plugin_dir": wt.PLUGIN_DIR}
        s.update(settings or {})
        return self.write_conf(wt.render_conf(s, listeners), name)

    def error_lines(self, r):
        return [l for l in r.stderr.splitlines() if l.strip()]

    def assertErrorLine(self, line, conf, lineno, setting, *words):
        m = ERROR_LINE.match(line)
        self.assertIsNotNone(m, "not a `wharfd: FILE:LINE: SETTING: message` line: %r" % line)
        self.assertEqual((m.group(1), int(m.group(2)), m.group(3)), (conf, lineno, setting),
                         "wrong file, line or setting in %r" % line)
        for w in words:
            self.assertIn(w, m.group(4), "%r does not say %r" % (line, w))

    # ---- -V, -h, bad command lines

    def test_version(self):
        r = self.run_wharfd(["-V"])
        self.assertExit(r, 0)
        lines = r.stdout.splitlines()
        self.assertTrue(any(l.startswith("wharfd 0.1.0") for l in lines),
                        "no line starting 'wharfd 0.1.0' on stdout:\n" + r.stdout)
        for lib in LIBRARIES:
            self.assertTrue(any(lib.lower() in l.lower() and re.search(r"\d+\.\d+", l)
                                for l in lines),
                            "-V names no %s version on stdout:\n%s" % (lib, r.stdout))

    def test_help(self):
        r = self.run_wharfd(["-h"])
        self.assertExit(r, 0)
        self.assertRegex(r.stdout.lower(), "usage")
        for flag in ("-c", "-t", "-f", "-V", "-h"):
            self.assertIn(flag, r.stdout, "usage does not mention " + flag)

    def test_bad_flag(self):
        r = self.run_wharfd(["-Z"])
        self.assertExit(r, wt.EX_USAGE)
        self.assertRegex(r.stderr.lower(), "usage", "no usage on stderr")
        self.assertEqual(r.stdout, "", "a bad flag prints on stdout")

    def test_c_without_file(self):
        r = self.run_wharfd(["-c"])
        self.assertExit(r, wt.EX_USAGE)

    # ---- -t

    def test_check_valid(self):
        data = os.path.join(self.tmp, "greeting.txt")
        with open(data, "w") as f:
            f.write("hi\n")
        # The TCP port is held by the test: -t must not bind anything.
        held = self.client(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        sock_path = os.path.join(self.tmp, "echo.sock")
        conf = self.conf([
            {"name": "hello", "tcp": "127.0.0.1:%d" % port,
             "handler": {"plugin": "hello", "max_line": 64}, "idle_timeout": 5.0},
            {"name": "echo-unix", "unix": sock_path, "unix_mode": "0600", "handler": "echo"},
            {"name": "echo-udp", "udp": "127.0.0.1:%d" % wt.free_ports(1)[0], "handler": "echo"},
            {"name": "file", "tcp": "127.0.0.1:%d" % wt.free_ports(1)[0],
             "handler": {"plugin": "file", "path": "greeting.txt"}},
        ], {"log_level": "info", "limits": {"max_connections": 100, "idle_timeout": 30.0}})
        r = self.run_wharfd(["-t", "-c", conf])
        self.assertExit(r, 0)
        bad = [l for l in r.stderr.splitlines() if ERROR_LINE.match(l)]
        self.assertEqual(bad, [], "-t on a valid config printed errors")
        self.assertFalse(os.path.exists(sock_path), "-t created the UNIX socket %s" % sock_path)

    def test_check_three_errors(self):
        p1, p2 = wt.free_ports(2)
        conf = self.write_conf(
            "workers = 2;\n"                                                     # 1
            'plugin_dir = "%s";\n' % wt.PLUGIN_DIR +                            # 2
            "wokers = 3;\n"                                                      # 3
            "listeners = (\n"                                                    # 4
            '  { name = "a"; tcp = "127.0.0.1:%d"; handler = "echo"; },\n' % p1 +   # 5
            '  { name = "a"; tcp = "127.0.0.1:%d"; handler = "echo"; },\n' % p2 +   # 6
            '  { name = "b"; tcp = "127.0.0.1:70000"; handler = "echo"; }\n'     # 7
            ");\n")                                                              # 8
        r = self.run_wharfd(["-t", "-c", conf])
        self.assertExit(r, wt.EX_CONFIG)
        lines = self.error_lines(r)
        self.assertEqual(len(lines), 3, "expected 3 error lines on stderr:\n" + r.stderr)
        self.assertErrorLine(lines[0], conf, 3, "wokers", "unknown setting")
        self.assertErrorLine(lines[1], conf, 6, "listeners.[1].name", "duplicate", '"a"')
        self.assertErrorLine(lines[2], conf, 7, "listeners.[2].tcp", "70000", "out of range")
        self.assertEqual(r.stdout.strip(), "", "errors go to stderr only")

    def test_check_missing_plugin(self):
        conf = self.conf([{"name": "x", "tcp": "127.0.0.1:%d" % wt.free_ports(1)[0],
                           "handler": "nosuch"}])
        r = self.run_wharfd(["-t", "-c", conf])
        self.assertExit(r, wt.EX_CONFIG)
        lines = self.error_lines(r)
        self.assertEqual(len(lines), 1, "expected one error line:\n" + r.stderr)
        # line 3: workers, plugin_dir, "listeners = (", the listener
        self.assertErrorLine(lines[0], conf, 4, "listeners.[0].handler", "nosuch.so")

    def test_check_every_plugin_error(self):
        # every listener's plugin is tried: both problems in one run
        p1, p2 = wt.free_ports(2)
        conf = self.conf([
            {"name": "x", "tcp": "127.0.0.1:%d" % p1, "handler": "nosuch"},
            {"name": "y", "tcp": "127.0.0.1:%d" % p2, "handler": {"plugin": "echo", "colour": 1}},
        ])
        r = self.run_wharfd(["-t", "-c", conf])
        self.assertExit(r, wt.EX_CONFIG)
        lines = self.error_lines(r)
        self.assertEqual(len(lines), 2, "expected two error lines:\n" + r.stderr)
        self.assertErrorLine(lines[0], conf, 4, "listeners.[0].handler", "nosuch.so")
        self.assertErrorLine(lines[1], conf, 5, "listeners.[1].handler.colour", "colour")

    def test_check_file_and_plugin_errors_at_once(self):
        # errors in the file do not hide a plugin error: every problem in one run
        p1, p2 = wt.free_ports(2)
        conf = self.write_conf(
            'plugin_dir = "%s";\n' % wt.PLUGIN_DIR +                            # 1
            "listeners = (\n"                                                    # 2
            '  { name = "a"; tcp = "127.0.0.1:%d"; handler = "nosuch"; },\n' % p1 +  # 3
            '  { name = "b"; tcp = "127.0.0.1:%d"; handler = "echo"; colour = 1; }\n' % p2 +  # 4
            ");\n")                                                              # 5
        r = self.run_wharfd(["-t", "-c", conf])
        self.assertExit(r, wt.EX_CONFIG)
        lines = self.error_lines(r)
        self.assertEqual(len(lines), 2, "expected two error lines:\n" + r.stderr)
        self.assertErrorLine(lines[0], conf, 3, "listeners.[0].handler", "nosuch.so")
        self.assertErrorLine(lines[1], conf, 4, "listeners.[1].colour", "unknown setting")

    def test_check_wrong_abi_plugin(self):
        conf = self.conf([{"name": "w", "tcp": "127.0.0.1:%d" % wt.free_ports(1)[0],
                           "handler": "wrong_abi"}], {"plugin_dir": wt.TEST_PLUGIN_DIR})
        r = self.run_wharfd(["-t", "-c", conf])
        self.assertExit(r, wt.EX_CONFIG)
        lines = self.error_lines(r)
        self.assertEqual(len(lines), 1, "expected one error line:\n" + r.stderr)
        self.assertErrorLine(lines[0], conf, 4, "listeners.[0].handler", "wrong_abi")

    def test_check_good_test_plugin(self):
        # the control for the test above: same directory, a well-formed plugin
        conf = self.conf([{"name": "g", "tcp": "127.0.0.1:%d" % wt.free_ports(1)[0],
                           "handler": "good"}], {"plugin_dir": wt.TEST_PLUGIN_DIR})
        r = self.run_wharfd(["-t", "-c", conf])
        self.assertExit(r, 0)

    def test_missing_config_file(self):
        missing = os.path.join(self.tmp, "nonexistent.conf")
        for args in (["-t", "-c", missing], ["-f", "-c", missing]):
            with self.subTest(args=args):
                r = self.run_wharfd(args)
                self.assertExit(r, wt.EX_CONFIG)
                self.assertIn(missing, r.stderr, "the message does not name the file")

    # ---- binding

    def test_port_held_by_another_socket(self):
        for kind, stype in (("tcp", socket.SOCK_STREAM), ("udp", socket.SOCK_DGRAM)):
            with self.subTest(kind=kind):
                held = socket.socket(socket.AF_INET, stype)      # no SO_REUSEPORT
                try:
                    held.bind(("127.0.0.1", 0))
                    if stype == socket.SOCK_STREAM:
                        held.listen(1)
                    addr = "127.0.0.1:%d" % held.getsockname()[1]
                    conf = self.conf([
                        {"name": "free", "tcp": "127.0.0.1:%d" % wt.free_ports(1)[0],
                         "handler": "echo"},
                        {"name": "busy-" + kind, kind: addr, "handler": "echo"},
                    ], name="busy-%s.conf" % kind)
                    r = self.run_wharfd(["-f", "-c", conf])
                    self.assertExit(r, wt.EX_OSERR)
                    self.assertIn("busy-" + kind, r.stderr, "the message does not name the listener")
                    self.assertIn(addr, r.stderr, "the message does not name the address")
                    self.assertNotIn(wt.READY_MARK, r.stderr, "wharfd said ready")
                finally:
                    held.close()

    # ---- signals

    def stop_by(self, sig):
        d = self.start([listener("echo", "tcp", "echo"), listener("udp", "udp", "echo")])
        with d.connect("echo") as s:
            wt.echo_roundtrip(self, s, b"before %s\n" % signal.Signals(sig).name.encode())
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(wt.recv_all(s), b"")
        rc = d.stop(sig)
        self.assertEqual(rc, 0, "exit status after %s; log:\n%s"
                         % (signal.Signals(sig).name, d.log()))

    def test_sigterm_exits_0(self):
        self.stop_by(signal.SIGTERM)

    def test_sigint_exits_0(self):
        self.stop_by(signal.SIGINT)


if __name__ == "__main__":
    wt.main()
