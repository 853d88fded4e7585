#!/bin/sh
# deps.sh: installs the Debian packages moonport needs to build and test,
# only those missing. Idempotent and quiet when everything is there.
# MP_DEPS_EXTRA adds packages (the benchmarks use it for their peers).
set -e
# The Windows build (make test-windows, docs/windows.md): mingw-w64's C
# compiler, wine to run the tests, dpkg-dev for `apt-get source lua5.4`.
pkgs_win="wine64 gcc-mingw-w64-x86-64-win32 dpkg-dev"
# clang builds the fuzz targets (make test-fuzz); their runtime (libFuzzer,
# ASan, UBSan for clang) is libclang-rt-14-dev, only a recommendation of
# clang, which --no-install-recommends leaves out. python3 drives the REPL
# on a pty (tests/e2e/repl_tty.py).
# TLS (bindings/ltls.c): OpenSSL 3, the system's CA store, and the openssl
# command the TLS tests make their certificates with.
tls_pkgs="libssl-dev ca-certificates openssl"
pkgs="$pkgs_win $tls_pkgs cmake make gcc g++ pkg-config liblua5.4-dev lua5.4 liburing-dev libreadline-dev lua-busted luarocks strace clang libclang-rt-14-dev python3 $MP_DEPS_EXTRA"
# mp.http: its parser, and the real clients its tests drive (issue 15).
pkgs="$pkgs libhttp-parser-dev curl wrk"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Lua's source package (scripts/lua-src.sh) needs a deb-src entry: a
# fresh Debian 12 lists only binary ones. Added once, next to them.
update=""
if ! ls /var/lib/apt/lists/*_Sources* >/dev/null 2>&1; then
  if ! grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list \
       /etc/apt/sources.list.d/; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      sed 's/^Types: deb$/Types: deb-src/' \
        /etc/apt/sources.list.d/debian.sources |
        $SUDO tee /etc/apt/sources.list.d/moonport-src.sources >/dev/null
    elif [ -f /etc/apt/sources.list ]; then
      sed -n 's/^deb /deb-src /p' /etc/apt/sources.list |
        $SUDO tee /etc/apt/sources.list.d/moonport-src.list >/dev/null
    fi
  fi
  update=1
fi
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
[ -z "$missing" ] && [ -z "$update" ] && exit 0
$SUDO apt-get update -qq >/dev/null
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
