"""wharftest: the shared harness of the functional tests of wharfd.

Each tests/func/test_*.py is an executable script that imports this module,
defines unittest.TestCase subclasses of wharftest.TestCase, and calls
wharftest.main(). It exits 0 when every test passed, 1 when one failed and
77 when every test was skipped (automake's convention).

Environment: WHARF_BUILDDIR (the build directory: src/wharfd, plugins/.libs,
tests/plugins/.libs) and WHARF_SRCDIR (the source directory). Without them
the build directory is the current one and the source directory is the one
this file lives in, two levels up.

What a test gets from TestCase:
  self.tmp                   a temporary directory, removed after the test
  self.start(listeners, settings)
                             a running wharfd (-f -c CONF), ready; stopped with
                             SIGTERM after the test and required to exit 0
  self.run_wharfd(args)      a one-shot run (-t, -V, ...): returncode/stdout/stderr
  self.write_conf(...)       a config file in self.tmp
and module helpers for listeners, free ports, and clients (recv_all,
recv_exact, expect_closed_no_data, ...), certificates made with the
openssl CLI (certs()), TLS client contexts (tls_client_context) and the
log (wait_for_log).

Only loopback is used; the only process ever signalled is a wharfd this
harness started, by its PID.
"""

import atexit
import os
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.environ.get("WHARF_SRCDIR") or os.path.join(HERE, "..", ".."))
BUILDDIR = os.path.abspath(os.environ.get("WHARF_BUILDDIR") or os.getcwd())
WHARFD = os.path.join(BUILDDIR, "src", "wharfd")
PLUGIN_DIR = os.path.join(BUILDDIR, "plugins", ".libs")
TEST_PLUGIN_DIR = os.path.join(BUILDDIR, "tests", "plugins", ".libs")

READY_MARK = " info: ready: "
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
IO_TIMEOUT = 5.0
# The whole file: a hung test must not hang `make check`.
FILE_TIMEOUT = int(os.environ.get("WHARF_TEST_TIMEOUT", "120"))

EX_OK, EX_USAGE, EX_OSERR, EX_CONFIG = 0, 64, 71, 78

# Every wharfd this process started and has not reaped yet: the only
# processes the watchdog and atexit may kill.
_live = []


# ---- config files --------------------------------------------------------------

def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        return r if ("." in r or "e" in r) else r + ".0"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, dict):
        return "{ " + " ".join("%s = %s;" % (k, _value(x)) for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        if any(isinstance(x, dict) for x in v):
            return "( " + ", ".join(_value(x) for x in v) + " )"
        return "[ " + ", ".join(_value(x) for x in v) + " ]"
    raise TypeError("cannot write %r into a config" % (v,))


def render_conf(settings, listeners):
    """libconfig text: one top-level setting a line, one listener a line."""
    lines = ["%s = %s;" % (k, _value(v)) for k, v in settings.items()]
    if listeners is not None:
        lines.append("listeners = (")
        for i, l in enumerate(listeners):
            lines.append("  " + _value(l) + ("," if i < len(listeners) - 1 else ""))
        lines.append(");")
    return "\n".join(lines) + "\n"


class Listener:
    """A listener to be given an address when wharfd starts.

    kind: "tcp" (127.0.0.1, a free port), "tcp6" ([::1], a free port),
    "udp" (127.0.0.1, a free port), "unix" (NAME.sock in the test's temp
    dir unless path= is given). address= fixes the address instead.
    Other keyword arguments are settings of the listener's group.
    """

    def __init__(self, name, kind, handler, address=None, path=None, **settings):
        assert kind in ("tcp", "tcp6", "udp", "unix"), kind
        self.name, self.kind, self.handler = name, kind, handler
        self.fixed = address or path
        self.settings = settings
        self.address = None      # set by Daemon: (host, port) or a path

    def group(self):
        key = "tcp" if self.kind == "tcp6" else self.kind
        if self.kind == "unix":
            addr = self.address
        elif self.kind == "tcp6":
            addr = "[%s]:%d" % self.address
        else:
            addr = "%s:%d" % self.address
        g = {"name": self.name, key: addr}
        g.update(self.settings)
        g["handler"] = self.handler
        return g


def listener(name, kind, handler, **kw):
    return Listener(name, kind, handler, **kw)


# ---- ports and facilities --------------------------------------------------------

def free_ports(n, family=socket.AF_INET, host="127.0.0.1"):
    """n distinct port numbers, each free for TCP and UDP on host right now."""
    ports, held = [], []
    try:
        for _ in range(200):
            if len(ports) == n:
                break
            s = socket.socket(family, socket.SOCK_STREAM)
            s.bind((host, 0))
            port = s.getsockname()[1]
            held.append(s)      # held until all are chosen: no duplicates
            u = socket.socket(family, socket.SOCK_DGRAM)
            try:
                u.bind((host, port))
            except OSError:
                continue
            finally:
                u.close()
            ports.append(port)
    finally:
        for s in held:
            s.close()
    if len(ports) < n:
        raise RuntimeError("cannot find %d free ports on %s" % (n, host))
    return ports


_ipv6 = None


def have_ipv6_loopback():
    global _ipv6
    if _ipv6 is None:
        try:
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                s.bind(("::1", 0))
                _ipv6 = True
            finally:
                s.close()
        except OSError:
            _ipv6 = False
    return _ipv6


# ---- clients ---------------------------------------------------------------------

def recv_exact(sock, n, timeout=IO_TIMEOUT):
    """Exactly n bytes, or an AssertionError (EOF first, or timeout)."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timeout: %d of %d bytes after %.1f s" % (len(buf), n, timeout))
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(n - len(buf), 1 << 20))
        except socket.timeout:
            continue
        if not chunk:
            raise AssertionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_all(sock, timeout=IO_TIMEOUT, allow_reset=False):
    """Every byte until EOF. A reset is an AssertionError unless allow_reset,
    then it ends the data like EOF. Returns the bytes."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timeout after %.1f s waiting for EOF (%d bytes so far: %r)"
                                 % (timeout, len(buf), bytes(buf[:200])))
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            if allow_reset:
                return bytes(buf)
            raise AssertionError("connection reset after %d bytes (%r), expected EOF"
                                 % (len(buf), bytes(buf[:200])))
        if not chunk:
            return bytes(buf)
        buf += chunk


def expect_closed_no_data(testcase, sock, timeout=3.0, allow_reset=True, what=""):
    """The server closes sock within timeout without sending a byte."""
    prefix = what + ": " if what else ""
    try:
        data = recv_all(sock, timeout=timeout, allow_reset=allow_reset)
    except AssertionError as e:
        raise AssertionError("%snot closed by wharfd: %s" % (prefix, e)) from None
    testcase.assertEqual(data, b"", "%sexpected a close with no data, got %d bytes: %r"
                         % (prefix, len(data), data[:200]))


def still_open(sock, wait=0.2):
    """True when sock has neither data nor EOF nor an error within wait."""
    r, _, _ = select.select([sock], [], [], wait)
    return not r


def echo_roundtrip(testcase, sock, data, timeout=IO_TIMEOUT):
    sock.sendall(data)
    got = recv_exact(sock, len(data), timeout)
    testcase.assertEqual(got, data, "echo returned other bytes")


def udp_socket(family=socket.AF_INET, host="127.0.0.1", timeout=IO_TIMEOUT):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(timeout)
    return s


def set_linger_zero(sock):
    """close() then sends a reset instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# ---- TLS: certificates and clients ------------------------------------------------

OPENSSL = os.environ.get("OPENSSL", "openssl")


def _openssl(args, cwd, stdin=None):
    r = subprocess.run([OPENSSL] + list(args), cwd=cwd, input=stdin, capture_output=True,
                       timeout=30, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: exit %d\n%s%s" % (" ".join(args), r.returncode,
                                                          r.stdout, r.stderr))
    return r


def _asn1_time(t):
    """An `openssl ca -startdate/-enddate` time: YYYYMMDDHHMMSSZ, UTC."""
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(t))


class CA:
    """A self-signed CA (cert, key: paths) able to sign leaves with any
    validity period (`openssl ca -startdate -enddate`: OpenSSL 3.0's x509
    has no -not_before)."""

    def __init__(self, factory, name, kind):
        self.name, self.kind = name, kind
        self.dir = os.path.join(factory.dir, "ca-" + name)
        os.mkdir(self.dir)
        self.cert = os.path.join(self.dir, "ca.pem")
        self.key = os.path.join(self.dir, "ca.key")
        _openssl(["req", "-x509", "-nodes", "-subj", "/CN=" + name, "-days", "3650",
                  "-keyout", self.key, "-out", self.cert,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
                 + CertFactory.newkey_args(kind), self.dir)
        with open(os.path.join(self.dir, "index.txt"), "w"):
            pass
        with open(os.path.join(self.dir, "ca.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca = d\n"
                    "[d]\ndatabase = index.txt\nnew_certs_dir = .\ndefault_md = sha256\n"
                    "policy = p\nunique_subject = no\nrand_serial = yes\n"
                    "[p]\ncommonName = supplied\n")


class Cert:
    """A leaf: cert and key paths, its CN and DNS names."""

    def __init__(self, cert, key, cn, dns):
        self.cert, self.key, self.cn, self.dns = cert, key, cn, tuple(dns)


class CertFactory:
    """Keys and certificates made at test time with the openssl CLI in dir.

    ca(name, kind)       a CA ("ec": ECDSA P-256, "rsa": RSA 2048)
    leaf(name, ca, ...)  a leaf signed by ca: DNS SANs (none: the CN only),
                         serverAuth or clientAuth, valid from now+not_before
                         to now+not_after seconds (negative: in the past)
    Names are file names too: each is made once."""

    def __init__(self, directory):
        self.dir = directory
        self._cas, self._leaves = {}, {}

    @staticmethod
    def newkey_args(kind):
        if kind == "ec":
            return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        if kind == "rsa":
            return ["-newkey", "rsa:2048"]
        raise ValueError("key kind %r: ec or rsa" % (kind,))

    def ca(self, name, kind="ec"):
        if name not in self._cas:
            self._cas[name] = CA(self, name, kind)
        return self._cas[name]

    def leaf(self, name, ca, cn=None, dns=(), kind="ec", client=False,
             not_before=-86400, not_after=30 * 86400):
        if name in self._leaves:
            return self._leaves[name]
        cn = cn or (dns[0] if dns else name)
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".pem")
        ext = os.path.join(self.dir, name + ".ext")
        _openssl(["req", "-new", "-nodes", "-subj", "/CN=" + cn, "-keyout", key, "-out", csr]
                 + self.newkey_args(kind), self.dir)
        usage = "digitalSignature" + (",keyEncipherment" if kind == "rsa" else "")
        with open(ext, "w") as f:
            f.write("[x]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,%s\n"
                    "extendedKeyUsage = %s\nsubjectKeyIdentifier = hash\n"
                    "authorityKeyIdentifier = keyid:always\n"
                    % (usage, "clientAuth" if client else "serverAuth"))
            if dns:
                f.write("subjectAltName = %s\n" % ",".join("DNS:" + d for d in dns))
        now = time.time()
        _openssl(["ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", ca.cert,
                  "-keyfile", ca.key, "-in", csr, "-out", cert,
                  "-startdate", _asn1_time(now + not_before),
                  "-enddate", _asn1_time(now + not_after),
                  "-extfile", ext, "-extensions", "x"], ca.dir)
        self._leaves[name] = Cert(cert, key, cn, dns)
        return self._leaves[name]


_certs = None


def certs():
    """The process's CertFactory: one directory for every test of a file
    (keys are slow to make), removed at exit."""
    global _certs
    if _certs is None:
        d = tempfile.mkdtemp(prefix="wharf-certs-")
        atexit.register(shutil.rmtree, d, True)
        _certs = CertFactory(d)
    return _certs


def tls_client_context(ca=None, cert=None, versions=None, alpn=None, ciphers=None):
    """A client SSLContext: verifies against ca (a CA or a path; None: no
    verification), host names not checked (tests look at the certificate
    themselves); cert: a Cert to present; versions: (min, max) of
    ssl.TLSVersion; alpn: protocols to offer; ciphers: TLS 1.2 cipher list."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if ca is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile=getattr(ca, "cert", ca))
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    if versions:
        ctx.minimum_version, ctx.maximum_version = versions
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def peer_names(ssl_sock):
    """(CN, [DNS SANs]) of the certificate the peer showed (verified)."""
    pc = ssl_sock.getpeercert()
    cn = [v for rdn in pc.get("subject", ()) for k, v in rdn if k == "commonName"]
    return (cn[0] if cn else None), [v for k, v in pc.get("subjectAltName", ()) if k == "DNS"]


def wait_for_log(d, pattern, timeout=IO_TIMEOUT):
    """The first match of the regex pattern in d's log within timeout, or
    None."""
    rx = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout
    while True:
        m = rx.search(d.log())
        if m or time.monotonic() > deadline:
            return m
        time.sleep(0.02)


# ---- the daemon ------------------------------------------------------------------

class StartError(AssertionError):
    def __init__(self, msg, rc=None):
        AssertionError.__init__(self, msg)
        self.rc = rc


def _child_env():
    env = dict(os.environ)
    # Not the test's business: systemd protocols would change how wharfd logs
    # and where it takes its sockets from.
    for k in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
              "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(k, None)
    return env


class Daemon:
    """One wharfd -f -c CONF, started by TestCase.start."""

    def __init__(self, tmp, listeners, settings, conf_name="wharf.conf", cwd="/"):
        self.tmp = tmp
        self.listeners = list(listeners)
        self.by_name = {l.name: l for l in self.listeners}
        self.settings = settings
        self.conf = os.path.join(tmp, conf_name)
        self.cwd = cwd
        self.proc = None
        self.logfile = None
        self.returncode = None
        self._log_cache = ""
        self.attempts = 0
        self.failed_start = False

    # addresses
    def _assign(self):
        n4 = sum(1 for l in self.listeners if l.kind in ("tcp", "udp") and not l.fixed)
        n6 = sum(1 for l in self.listeners if l.kind == "tcp6" and not l.fixed)
        p4 = free_ports(n4) if n4 else []
        p6 = free_ports(n6, socket.AF_INET6, "::1") if n6 else []
        for l in self.listeners:
            if l.fixed:
                l.address = l.fixed
            elif l.kind == "unix":
                l.address = os.path.join(self.tmp, l.name + ".sock")
            elif l.kind == "tcp6":
                l.address = ("::1", p6.pop())
            else:
                l.address = ("127.0.0.1", p4.pop())

    def write_conf(self):
        text = render_conf(self.settings, [l.group() for l in self.listeners])
        with open(self.conf, "w") as f:
            f.write(text)
        return text

    def start(self):
        """Starts, waits for the ready line; once more on 71 (a port race)."""
        for attempt in (1, 2):
            self.attempts = attempt
            self._assign()
            self.write_conf()
            try:
                self._start_once(attempt)
                return self
            except StartError as e:
                if e.rc == EX_OSERR and attempt == 1 and any(
                        l.kind != "unix" and not l.fixed for l in self.listeners):
                    continue
                self.failed_start = True
                raise

    def _start_once(self, attempt):
        self.logfile = os.path.join(self.tmp, "wharfd.%d.log" % attempt)
        self.returncode = None
        with open(self.logfile, "wb") as err, open(self.logfile + ".out", "wb") as out:
            self.proc = subprocess.Popen([WHARFD, "-f", "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, cwd=self.cwd, env=_child_env())
        _live.append(self)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            log = self.log()
            if READY_MARK in log:
                return
            rc = self.proc.poll()
            if rc is not None:
                self._reaped(rc)
                raise StartError("wharfd exited with %s before it was ready; config:\n%s\nlog:\n%s"
                                 % (rc, self.conf_text(), self.log()), rc)
            if time.monotonic() > deadline:
                self.kill()
                raise StartError("wharfd did not log %r within %.0f s; config:\n%s\nlog:\n%s"
                                 % (READY_MARK, READY_TIMEOUT, self.conf_text(), self.log()))
            time.sleep(0.02)

    def _reaped(self, rc):
        self.returncode = rc
        self.log()
        if self in _live:
            _live.remove(self)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.returncode is None and self.proc.poll() is None

    def send_signal(self, sig):
        """Sends sig to this wharfd (its PID, nothing else)."""
        if self.running():
            os.kill(self.proc.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig and waits for the exit; returns the exit status. After
        timeout, SIGKILL and an AssertionError."""
        if self.proc is None:
            return None
        if self.returncode is not None:
            return self.returncode
        rc = self.proc.poll()
        if rc is None:
            os.kill(self.proc.pid, sig)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("wharfd did not exit within %.0f s of %s; log:\n%s"
                                     % (timeout, signal.Signals(sig).name, self.log())) from None
        self._reaped(rc)
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()        # SIGKILL to this PID only
            self.proc.wait()
        if self.proc is not None:
            self._reaped(self.proc.returncode)

    def log(self):
        """The log so far (kept in memory, so it outlives the temp dir)."""
        try:
            with open(self.logfile, "rb") as f:
                self._log_cache = f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            pass
        return self._log_cache

    def conf_text(self):
        try:
            with open(self.conf) as f:
                return f.read()
        except OSError:
            return "(gone)"

    # clients
    def addr(self, name):
        return self.by_name[name].address

    def connect(self, name, timeout=IO_TIMEOUT):
        l = self.by_name[name]
        if l.kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(l.address)
            except Exception:
                s.close()
                raise
            return s
        assert l.kind in ("tcp", "tcp6"), "connect() on %s listener %s" % (l.kind, name)
        return socket.create_connection(l.address, timeout=timeout)


# ---- the test case -----------------------------------------------------------------

class TestCase(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wharf-func-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self._wharf_daemons = []

    def start(self, listeners, settings=None, **kw):
        """Starts wharfd with these listeners and top-level settings (workers
        = 2 and plugin_dir = the build's plugins unless given) and returns
        the ready Daemon. At the end of the test it gets SIGTERM and must
        exit 0 within 10 s."""
        s = {"workers": 2, "plugin_dir": PLUGIN_DIR}
        s.update(settings or {})
        d = Daemon(self.tmp, listeners, s, **kw)
        self._wharf_daemons.append(d)
        self.addCleanup(self._stop_daemon, d)
        return d.start()

    def _stop_daemon(self, d):
        if d.proc is None or d.failed_start:
            return
        rc = d.stop()
        self.assertEqual(rc, 0, "wharfd exit status after SIGTERM: %s; log:\n%s"
                         % (rc, d.log()))

    def assertRunning(self, d, what=""):
        rc = d.proc.poll()
        if rc is not None:
            d._reaped(rc)
        self.assertIsNone(rc, "wharfd is no longer running%s (exit status %s); log:\n%s"
                          % (" after " + what if what else "", rc, d.log()))

    def client(self, sock):
        """Closes sock at the end of the test (before wharfd is stopped)."""
        self.addCleanup(sock.close)
        return sock

    def connect(self, d, name, timeout=IO_TIMEOUT):
        return self.client(d.connect(name, timeout))

    def write_conf(self, text, name="wharf.conf"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_wharfd(self, args, timeout=10.0):
        """One run of wharfd with args (no -f added); its CompletedProcess
        with stdout and stderr as text."""
        try:
            return subprocess.run([WHARFD] + list(args), stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout, cwd="/",
                                  env=_child_env(), errors="replace", text=True)
        except subprocess.TimeoutExpired as e:
            self.fail("wharfd %s did not exit within %.0f s; stderr:\n%s"
                      % (" ".join(args), timeout, e.stderr))

    def assertExit(self, r, code, what=""):
        self.assertEqual(r.returncode, code,
                         "%s: exit status %s, expected %s\n--- stdout:\n%s--- stderr:\n%s"
                         % (what or " ".join(r.args), r.returncode, code, r.stdout, r.stderr))


# ---- running a file ------------------------------------------------------------------

class _Result(unittest.TextTestResult):
    def _dump(self, test):
        for d in getattr(test, "_wharf_daemons", []):
            self.stream.write("\n----- wharfd log (pid %s, %s) -----\n%s----- end of log -----\n"
                              % (d.proc.pid if d.proc else "-", d.conf, d.log()))
            self.stream.write("----- config -----\n%s" % render_conf(
                d.settings, [l.group() for l in d.listeners if l.address is not None]))
        self.stream.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._dump(test)

    def addError(self, test, err):
        super().addError(test, err)
        self._dump(test)


def _kill_live(note):
    for d in list(_live):
        if d.proc is not None and d.proc.poll() is None:
            sys.stderr.write("%s: killing wharfd pid %d; log:\n%s\n" % (note, d.proc.pid, d.log()))
            d.proc.kill()
            d.proc.wait()
        if d in _live:
            _live.remove(d)


def _watchdog(signum, frame):
    sys.stderr.write("\nFAIL: the test file took longer than %d s\n" % FILE_TIMEOUT)
    _kill_live("watchdog")
    sys.stderr.flush()
    os._exit(1)


def main():
    """Runs the TestCases of __main__; exits 0, 1, or 77 when all skipped."""
    if not os.access(WHARFD, os.X_OK):
        sys.stderr.write("FAIL: %s is not built (WHARF_BUILDDIR=%s)\n" % (WHARFD, BUILDDIR))
        sys.exit(1)
    atexit.register(_kill_live, "exit")
    signal.signal(signal.SIGALRM, _watchdog)
    signal.alarm(FILE_TIMEOUT)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=_Result, stream=sys.stderr)
    prog = unittest.main(module="__main__", testRunner=runner, exit=False,
                         argv=[sys.argv[0]] + sys.argv[1:])
    signal.alarm(0)
    r = prog.result
    if not r.wasSuccessful():
        sys.exit(1)
    if r.testsRun == 0 or r.testsRun == len(r.skipped):
        sys.exit(77)
    sys.exit(0)


# ==== reload, lifecycle and the systemd protocols (test_reload.py, test_lifecycle.py) ====
# One block: a Daemon that can be reconfigured and reloaded, started with an
# environment of its own, under a wrapper (systemd-socket-activate) or
# without -f; the server side of a TCP connection seen in /proc; a
# NOTIFY_SOCKET that records what wharfd says.

RELOAD_OUTCOME = r"^.* (?:info: reload: done: \d+ listeners|error: reload failed: .*)$"


def _proc_net_addr(family, ip, port):
    """A (ip, port) as /proc/net/tcp{,6} writes it: words in host order."""
    if family == socket.AF_INET:
        return "%08X:%04X" % (struct.unpack("=I", socket.inet_aton(ip))[0], port)
    words = struct.unpack("=4I", socket.inet_pton(socket.AF_INET6, ip))
    return "%s:%04X" % ("".join("%08X" % w for w in words), port)


def _proc_net_tcp():
    """Rows of /proc/net/tcp and tcp6: (local, remote, state, inode)."""
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            p = line.split()
            if len(p) >= 10:
                rows.append((p[1], p[2], p[3], int(p[9])))
    return rows


def server_side_accepted(sock):
    """True when the server has accept()ed the TCP connection of the client
    socket sock: the server side's row in /proc/net/tcp has an inode (a
    connection still in the accept queue has none, inode 0)."""
    family = sock.family
    lip, lport = sock.getsockname()[:2]
    rip, rport = sock.getpeername()[:2]
    local, remote = _proc_net_addr(family, rip, rport), _proc_net_addr(family, lip, lport)
    return any(r[0] == local and r[1] == remote and r[3] != 0 for r in _proc_net_tcp())


def wait_accepted(testcase, sock, timeout=IO_TIMEOUT, what="connection"):
    """Waits until wharfd has accepted sock's connection (see
    server_side_accepted); fails the test after timeout."""
    deadline = time.monotonic() + timeout
    while not server_side_accepted(sock):
        if time.monotonic() > deadline:
            testcase.fail("%s: not accepted by wharfd within %.1f s" % (what, timeout))
        time.sleep(0.01)


def listening_inodes(port):
    """The inodes of the TCP sockets listening on port (any address)."""
    return sorted(r[3] for r in _proc_net_tcp()
                  if r[2] == "0A" and r[0].rsplit(":", 1)[1] == "%04X" % port)


def socket_inodes(pid):
    """{fd: inode} of the sockets process pid has open."""
    out = {}
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            out[int(fd)] = int(t[8:-1])
    return out


def try_connect(addr, timeout=IO_TIMEOUT):
    """A connected TCP socket, or the OSError connect() raised (refused...)."""
    try:
        return socket.create_connection(addr, timeout=timeout)
    except OSError as e:
        return e


def proc_status(pid):
    """/proc/PID/status as {key: value text}."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


class NotifySocket:
    """The test's end of NOTIFY_SOCKET: an AF_UNIX datagram socket bound to
    a path, or to an abstract name (abstract=NAME: NOTIFY_SOCKET is @NAME).
    .env is what to give wharfd; .messages the datagrams received so far,
    each (monotonic time of receipt, [(key, value), ...], raw text, the
    sender's PID from SCM_CREDENTIALS, as systemd sees it)."""

    def __init__(self, path=None, abstract=None):
        assert (path is None) != (abstract is None)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract is not None:
            self.sock.bind("\0" + abstract)
            self.name = "@" + abstract
        else:
            self.sock.bind(path)
            self.name = path
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.setblocking(False)
        self.messages = []
        self.on_message = None      # called with each message as it arrives

    @property
    def env(self):
        return {"NOTIFY_SOCKET": self.name}

    def close(self):
        self.sock.close()

    def poll(self, wait=0.0):
        """Reads what arrived (waiting up to wait for the first datagram)."""
        r, _, _ = select.select([self.sock], [], [], wait)
        while r:
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
            except BlockingIOError:
                break
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("=iII", cdata[:12])[0]
            text = data.decode("utf-8", "replace")
            pairs = [tuple(l.split("=", 1)) if "=" in l else (l, None)
                     for l in text.split("\n") if l]
            msg = (time.monotonic(), pairs, text, pid)
            self.messages.append(msg)
            if self.on_message:
                self.on_message(msg)
            r, _, _ = select.select([self.sock], [], [], 0)

    def wait_for(self, key, value=None, start=0, timeout=IO_TIMEOUT):
        """The index (>= start) of the first message with key (= value when
        given), or None after timeout."""
        deadline = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.messages):
                if any(k == key and (value is None or v == value) for k, v in self.messages[i][1]):
                    return i
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.poll(min(left, 0.05))

    @staticmethod
    def get(msg, key):
        for k, v in msg[1]:
            if k == key:
                return v
        return None

    def dump(self):
        return "\n".join("%.3f pid %s %r" % (m[0], m[3], m[2]) for m in self.messages) or "(none)"


class ExtDaemon(Daemon):
    """A Daemon with more ways to start, and reloads.

    env: variables added to wharfd's environment (a None value unsets one);
    wrap: a callable(daemon) giving the argv put before wharfd (called once
    the addresses are known), e.g. systemd-socket-activate; on_spawn: a
    callable(daemon) run right after the process started, before the wait
    for the ready line; foreground=False: no -f. The log is read from the
    config's log_file when it sets one (then stderr is kept apart, in
    .stderr()), else from stderr."""

    def __init__(self, tmp, listeners, settings, env=None, wrap=None, on_spawn=None,
                 foreground=True, **kw):
        Daemon.__init__(self, tmp, listeners, settings, **kw)
        self.env = dict(env or {})
        self.wrap = wrap
        self.on_spawn = on_spawn
        self.foreground = foreground
        self.errfile = None
        self.reloads = 0

    def argv(self):
        pre = list(self.wrap(self)) if self.wrap else []
        return pre + [WHARFD] + (["-f"] if self.foreground else []) + ["-c", self.conf]

    def child_env(self):
        env = _child_env()
        for k, v in self.env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def _start_once(self, attempt):
        self.errfile = os.path.join(self.tmp, "wharfd.%d.stderr" % attempt)
        self.logfile = self.settings.get("log_file") or self.errfile
        self.returncode = None
        self._log_cache = ""
        with open(self.errfile, "wb") as err, open(self.errfile + ".out", "wb") as out:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, cwd=self.cwd, env=self.child_env())
        _live.append(self)
        if self.on_spawn:
            self.on_spawn(self)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if READY_MARK in self.log():
                return
            rc = self.proc.poll()
            if rc is not None:
                self._reaped(rc)
                raise StartError("wharfd exited with %s before it was ready; argv: %s\nconfig:\n%s"
                                 "\nlog:\n%s" % (rc, " ".join(self.proc.args), self.conf_text(),
                                                 self.log()), rc)
            if time.monotonic() > deadline:
                self.kill()
                raise StartError("wharfd did not log %r within %.0f s; config:\n%s\nlog:\n%s"
                                 % (READY_MARK, READY_TIMEOUT, self.conf_text(), self.log()))
            time.sleep(0.02)

    def stderr(self):
        try:
            with open(self.errfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def log(self):
        text = Daemon.log(self)
        if self.logfile != self.errfile:
            err = self.stderr()
            if err:
                text += "----- stderr -----\n" + err
        return text

    # ---- reconfiguring and reloading ----

    def reconf(self, listeners=None, settings=None, extra=""):
        """Rewrites the config file: these listeners (None: the same ones;
        a listener whose name ran before keeps its address unless fixed,
        others get a free port) and settings (merged into the current ones;
        a None value removes one), then extra text. Returns the text. The
        listeners a reload removes stay reachable by name in by_name."""
        if listeners is not None:
            new = [l for l in listeners
                   if not l.fixed and l.name not in self.by_name and l.kind in ("tcp", "udp")]
            ports = free_ports(len(new)) if new else []
            for l in listeners:
                if l.fixed:
                    l.address = l.fixed
                elif l.name in self.by_name and self.by_name[l.name].kind == l.kind:
                    l.address = self.by_name[l.name].address
                elif l.kind == "unix":
                    l.address = os.path.join(self.tmp, l.name + ".sock")
                elif l.kind == "tcp6":
                    l.address = ("::1", free_ports(1, socket.AF_INET6, "::1")[0])
                else:
                    l.address = ("127.0.0.1", ports.pop())
            self.listeners = list(listeners)
            self.by_name.update({l.name: l for l in self.listeners})
        for k, v in (settings or {}).items():
            if v is None:
                self.settings.pop(k, None)
            else:
                self.settings[k] = v
        text = render_conf(self.settings, [l.group() for l in self.listeners]) + extra
        with open(self.conf, "w") as f:
            f.write(text)
        return text

    def outcomes(self):
        return re.findall(RELOAD_OUTCOME, self.log(), re.M)

    def reload(self, timeout=10.0):
        """SIGHUP, then waits for that reload's outcome line. Returns
        (ok, text): whether it logged `reload: done`, and the log lines from
        its `reload: loading` on."""
        before = len(self.outcomes())
        start = len(self.log())
        self.send_signal(signal.SIGHUP)
        self.reloads += 1
        deadline = time.monotonic() + timeout
        while True:
            found = self.outcomes()
            if len(found) > before:
                break
            if not self.running() or time.monotonic() > deadline:
                raise AssertionError("no outcome of reload %d within %.0f s (running: %s); log:\n%s"
                                     % (self.reloads, timeout, self.running(), self.log()))
            time.sleep(0.01)
        text = self.log()[start:]
        i = text.find("reload: loading")
        text = text[text.rfind("\n", 0, i) + 1:] if i >= 0 else text
        return "reload: done:" in found[before], text


class ExtTestCase(TestCase):
    """TestCase whose start() makes an ExtDaemon (env=, wrap=, on_spawn=,
    foreground=)."""

    def start(self, listeners, settings=None, **kw):
        s = {"workers": 2, "plugin_dir": PLUGIN_DIR}
        s.update(settings or {})
        d = ExtDaemon(self.tmp, listeners, s, **kw)
        self._wharf_daemons.append(d)
        self.addCleanup(self._stop_daemon, d)
        return d.start()

    def notify_socket(self, abstract=False):
        """A NotifySocket (a path in self.tmp, or an abstract name), closed
        at the end of the test."""
        if abstract:
            n = NotifySocket(abstract="wharf-test-%d-%d" % (os.getpid(), id(self)))
        else:
            n = NotifySocket(path=os.path.join(self.tmp, "notify"))
        self.addCleanup(n.close)
        return n

    def reload_ok(self, d, what="reload"):
        ok, text = d.reload()
        self.assertTrue(ok, "%s failed:\n%s" % (what, text))
        return text

    def reload_failed(self, d, what="reload"):
        ok, text = d.reload()
        self.assertFalse(ok, "%s succeeded, expected it to fail:\n%s" % (what, text))
        self.assertIn("reload failed: nothing changed, the running configuration serves on", text)
        return text
