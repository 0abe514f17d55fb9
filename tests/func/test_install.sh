#!/usr/bin/env bash
# test_install.sh: what a plugin author gets (issue 8). Installs the build
# into a DESTDIR, builds examples/rot13 against the installed tree with
# pkg-config only (PKG_CONFIG_PATH into the DESTDIR, nothing from the source
# tree) and runs its unit test with the installed test kit (make check),
# starts the installed wharfd with the plugin and talks to it; then builds
# the same plugin claiming another API major and checks the loader's
# refusal; last, builds the two C listings of the installed wharf-plugin(3)
# (a plugin and its unit test) the way the page says, and runs the test.
# Loopback only; stops only the wharfd it started.
set -u
src=${WHARF_SRCDIR:?WHARF_SRCDIR is not set}
build=${WHARF_BUILDDIR:?WHARF_BUILDDIR is not set}
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
die() { echo "FAIL: $*"; [ -f "$tmp/wharfd.log" ] && cat "$tmp/wharfd.log"; exit 1; }
command -v pkg-config >/dev/null || die "pkg-config is missing"
command -v python3 >/dev/null || die "python3 is missing"

dest=$tmp/dest
make -s -C "$build" install DESTDIR="$dest" > "$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; die "make install DESTDIR=$dest failed"; }
pc=$(find "$dest" -name wharf.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || die "no wharf.pc installed"
export PKG_CONFIG_PATH=$(dirname "$pc")
# the .pc names the final prefix; --define-prefix takes it from where the
# file is (pkgconf), so that the DESTDIR tree is used
PKG="pkg-config --define-prefix"
inc=$($PKG --variable=includedir wharf)
plugindir=$($PKG --variable=plugindir wharf)
case $inc in "$dest"/*) ;; *) die "includedir $inc is not in the DESTDIR";; esac
[ -f "$inc/wharf/plugin.h" ] || die "wharf/plugin.h is not installed in $inc"
for p in echo hello file starttls stats forward; do
    [ -f "$plugindir/$p.so" ] || die "plugin $p.so is not installed in $plugindir"
done
# the test kit: its header, its archive and its pkg-config module
[ -f "$inc/wharf/testkit.h" ] || die "wharf/testkit.h is not installed in $inc"
kitlib=$($PKG --variable=libdir wharf-testkit) || die "no wharf-testkit.pc installed"
[ -f "$kitlib/libwharf-testkit.a" ] || die "libwharf-testkit.a is not installed in $kitlib"
$PKG --exists check || die "pkg-config does not find check"
wharfd=$(find "$dest" -path '*/sbin/wharfd' | head -n 1)
[ -x "$wharfd" ] || die "wharfd is not installed"
echo "ok: installed: $wharfd, $inc/wharf, $plugindir"

# the example, built the way its Makefile says, out of the source tree
cp -r "$src/examples/rot13" "$tmp/rot13"
make -s -C "$tmp/rot13" PKG_CONFIG="$PKG" CFLAGS="-O2 -Wall -Wextra -Werror" > "$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log"; die "building examples/rot13 against the installed tree failed"; }
make -s -C "$tmp/rot13" PKG_CONFIG="$PKG" install > /dev/null 2>&1 ||
    die "make install of the example failed"
[ -f "$plugindir/rot13.so" ] || die "rot13.so is not in $plugindir"
echo "ok: examples/rot13 built with pkg-config only and installed"

# its unit test, built with `pkg-config --cflags --libs wharf-testkit check`
# only: the handler over an in-memory connection, no wharfd, no socket
make -s -C "$tmp/rot13" PKG_CONFIG="$PKG" CFLAGS="-O2 -Wall -Wextra -Werror" check \
        > "$tmp/rot13-check.log" 2>&1 ||
    { cat "$tmp/rot13-check.log"; die "make check of examples/rot13 with the installed test kit failed"; }
grep -q '^100%: Checks: [1-9][0-9]*, Failures: 0, Errors: 0' "$tmp/rot13-check.log" ||
    { cat "$tmp/rot13-check.log"; die "check_rot13 did not report every check passed"; }
echo "ok: examples/rot13: make check with the installed test kit: $(grep '^100%' "$tmp/rot13-check.log")"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$tmp/wharf.conf" <<CONF
workers = 1;
plugin_dir = "$plugindir";
listeners = ( { name = "rot13"; tcp = "127.0.0.1:$port"; handler = { plugin = "rot13"; timeout = 2.0; }; } );
CONF
"$wharfd" -t -c "$tmp/wharf.conf" 2> "$tmp/check.log" || { cat "$tmp/check.log"; die "wharfd -t refused the config"; }
"$wharfd" -f -c "$tmp/wharf.conf" 2> "$tmp/wharfd.log" &
pid=$!
for _ in $(seq 100); do grep -q ' info: ready: ' "$tmp/wharfd.log" && break; sleep 0.05; done
grep -q ' info: ready: ' "$tmp/wharfd.log" || die "the installed wharfd did not start"
reply=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"Hello, World\nQUIT\n")
data = b""
while True:
    b = s.recv(100)
    if not b:
        break
    data += b
print(data.decode(), end="")
PY
)
[ "$reply" = "Uryyb, Jbeyq" ] || die "rot13 answered '$reply', not 'Uryyb, Jbeyq'"
echo "ok: the installed wharfd serves the example plugin"
kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
[ $rc -eq 0 ] || die "wharfd exited $rc after SIGTERM"

# the same plugin claiming another major: refused, saying which versions
sed 's/WHARF_PLUGIN_HEAD("rot13")/.api_major = WHARF_API_MAJOR + 1, .api_minor = 0, .size = sizeof(struct wharf_plugin), .name = "rot13"/' \
    "$tmp/rot13/rot13.c" > "$tmp/rot13/rot13_wrong.c"
grep -q 'WHARF_API_MAJOR + 1' "$tmp/rot13/rot13_wrong.c" || die "could not make the wrong-major plugin"
cc -shared -fPIC $($PKG --cflags wharf) -o "$plugindir/rot13.so" "$tmp/rot13/rot13_wrong.c" ||
    die "building the wrong-major plugin failed"
"$wharfd" -t -c "$tmp/wharf.conf" 2> "$tmp/check.log"; rc=$?
[ $rc -eq 78 ] || die "wharfd -t exited $rc with a wrong-major plugin, not 78"
grep -q 'plugin "rot13" (.*rot13.so) was built for plugin API 1.0; this wharfd provides 0\.[0-9]*: rebuild the plugin' "$tmp/check.log" ||
    { cat "$tmp/check.log"; die "the loader's message does not say which versions and what to do"; }
echo "ok: a plugin built for another major is refused: $(cat "$tmp/check.log")"

# wharf-plugin(3)'s listings as installed: EXAMPLE (the shout plugin) and
# TESTING (its Check test), out of the roff, built as the page says
man3=$(find "$dest" -name wharf-plugin.3 -path '*/man3/*' | head -n 1)
[ -f "$man3" ] || die "wharf-plugin.3 is not installed"
mkdir "$tmp/shout"
python3 - "$man3" "$tmp/shout" <<'PY' || die "could not take the listings out of $man3"
import re, sys
# the escapes the page's listings use, and what they print
ESC = {"-": "-", "e": "\\", "(aq": "'", "(dq": '"', "&": "", "(rs": "\\"}
lines, blocks, cur = open(sys.argv[1]).read().split("\n"), [], None
for line in lines:
    if line == ".EX":
        cur = []
    elif line == ".EE":
        blocks.append(cur)
        cur = None
    elif cur is not None:
        cur.append(re.sub(r"\\(\(..|.)", lambda m: ESC[m.group(1)], line))
want = {"shout.c": lambda b: b[0] == "/*" and b[1:2] and b[1].startswith(" * shout: "),
        "check_shout.c": lambda b: b[0].startswith("/* check_shout.c: ")}
for name, match in want.items():
    found = [b for b in blocks if b and match(b)]
    if len(found) != 1:
        sys.exit("%d listings of %s" % (len(found), name))
    with open(sys.argv[2] + "/" + name, "w") as f:
        f.write("\n".join(found[0]) + "\n")
PY
(
    cd "$tmp/shout" &&
    cc -shared -fPIC -O2 -Wall -Wextra -Werror $($PKG --cflags wharf) -o shout.so shout.c &&
    cc -O2 -Wall -Wextra -Werror -o check_shout check_shout.c shout.c \
        $($PKG --cflags --libs wharf-testkit check)
) > "$tmp/shout.log" 2>&1 || { cat "$tmp/shout.log"; die "the listings of wharf-plugin(3) do not build"; }
"$tmp/shout/check_shout" > "$tmp/shout.log" 2>&1 ||
    { cat "$tmp/shout.log"; die "check_shout, the listing of wharf-plugin(3), failed"; }
echo "ok: wharf-plugin(3)'s listings build and pass: $(grep '^100%' "$tmp/shout.log")"
exit 0
