#!/usr/bin/env bash
# test_headers.sh: every public header compiles on its own, first in an
# otherwise empty translation unit, as C99 and as C++17, with -Wall -Wextra
# -Werror -pedantic: a plugin author includes any of them in any order, from
# C or C++ (issue 8). Needs a C compiler (CC, default cc) and a C++ one
# (CXX, default c++; skipped with a note when missing).
set -u
src=${WHARF_SRCDIR:?WHARF_SRCDIR is not set}
cc=${CC:-cc}
cxx=${CXX:-c++}
deps=$(pkg-config --cflags openssl jansson) || { echo "pkg-config: no openssl/jansson"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
have_cxx=1
command -v "$cxx" >/dev/null 2>&1 || { echo "note: no C++ compiler ($cxx): C++17 not checked"; have_cxx=0; }

for h in "$src"/include/wharf/*.h; do
    name=$(basename "$h")
    printf '#include <wharf/%s>\nint wharf_header_test_unit;\n' "$name" > "$tmp/t.c"
    # shellcheck disable=SC2086
    if ! $cc -std=c99 -Wall -Wextra -Werror -pedantic -I"$src/include" $deps \
            -c "$tmp/t.c" -o "$tmp/t.o" 2> "$tmp/err"; then
        echo "FAIL: <wharf/$name> as C99:"; cat "$tmp/err"; fail=1
    else
        echo "ok: <wharf/$name> as C99"
    fi
    [ $have_cxx = 1 ] || continue
    cp "$tmp/t.c" "$tmp/t.cc"
    # shellcheck disable=SC2086
    if ! $cxx -std=c++17 -Wall -Wextra -Werror -pedantic -I"$src/include" $deps \
            -c "$tmp/t.cc" -o "$tmp/t.o" 2> "$tmp/err"; then
        echo "FAIL: <wharf/$name> as C++17:"; cat "$tmp/err"; fail=1
    else
        echo "ok: <wharf/$name> as C++17"
    fi
done
exit $fail
