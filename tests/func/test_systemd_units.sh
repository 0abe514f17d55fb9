#!/usr/bin/env bash
# test_systemd_units.sh: the unit files make install puts in place, checked
# by systemd's own tools (SPEC.md section 4): `systemd-analyze verify` has
# nothing to say about wharf.service and wharf.socket, and
# `systemd-analyze security --offline=yes` rates wharf.service's exposure
# 2.0 or lower ("OK"). Skips (77) without a systemd-analyze that knows
# --offline (systemd >= 250; Debian: the systemd package).
set -u

builddir=${WHARF_BUILDDIR:-.}
srcdir=${WHARF_SRCDIR:-.}
unit=$builddir/systemd/wharf.service
# exposure is rated 0.0 .. 10.0; --threshold counts tenths
max_exposure=20

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

command -v systemd-analyze >/dev/null 2>&1 || skip "no systemd-analyze (Debian: apt-get install systemd)"
systemd-analyze --help 2>/dev/null | grep -q -- '--offline' ||
    skip "this systemd-analyze has no --offline (systemd >= 250 does): $(systemd-analyze --version | head -1)"
[ -f "$unit" ] || fail "$unit was not generated (make check builds it)"

if grep -n '@[a-z_]*@' "$unit"; then
    fail "$unit: placeholders left unsubstituted"
fi
grep -q '^ExecStart=/.*/wharfd -c /.*/wharf/wharf\.conf$' "$unit" ||
    fail "$unit: ExecStart= is not \"SBINDIR/wharfd -c SYSCONFDIR/wharf/wharf.conf\": $(grep ^ExecStart= "$unit")"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wharf-units-XXXXXX") || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

# verify wants ExecStart='s program to exist: the one just built stands in
# for the installed one; everything else is the generated unit as is.
sed "s|^ExecStart=[^ ]*/wharfd |ExecStart=$(cd "$builddir" && pwd)/src/wharfd |" "$unit" > "$tmp/wharf.service"
cp "$srcdir/systemd/wharf.socket" "$tmp/wharf.socket"

echo "== systemd-analyze verify wharf.service wharf.socket ($(systemd-analyze --version | head -1))"
out=$(cd "$tmp" && systemd-analyze verify ./wharf.service ./wharf.socket 2>&1)
rc=$?
[ -n "$out" ] && echo "$out"
[ $rc -eq 0 ] || fail "systemd-analyze verify exited with $rc"
if echo "$out" | grep -q 'wharf\.\(service\|socket\)'; then
    fail "systemd-analyze verify has something to say about the units"
fi
echo "verify: clean"

echo "== systemd-analyze security --offline=yes --threshold=$max_exposure wharf.service"
out=$(cd "$tmp" && systemd-analyze security --offline=yes --threshold=$max_exposure ./wharf.service 2>&1)
rc=$?
echo "$out" | grep -v '^✓' # what still counts against it, and the score
score=$(echo "$out" | sed -n 's/.*Overall exposure level for wharf\.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "no overall exposure level in the output"
[ $rc -eq 0 ] || fail "exposure $score is above $((max_exposure / 10)).$((max_exposure % 10)) (exit $rc)"
echo "security: exposure $score (at most $((max_exposure / 10)).$((max_exposure % 10)))"

# the example socket unit names its socket after a listener
grep -q '^FileDescriptorName=' "$tmp/wharf.socket" || fail "wharf.socket: no FileDescriptorName="
grep -q '^Service=wharf\.service$' "$tmp/wharf.socket" || fail "wharf.socket: no Service=wharf.service"
echo "PASS"
