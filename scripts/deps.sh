#!/bin/sh
# deps.sh: installs the Debian packages moonport needs to build and test,
# only those missing. Idempotent and quiet when everything is there.
# MP_DEPS_EXTRA adds packages (the benchmarks use it for their peers).
set -e
# clang builds the fuzz targets (make test-fuzz); their runtime (libFuzzer,
# ASan, UBSan for clang) is libclang-rt-14-dev, only a recommendation of
# clang, which --no-install-recommends leaves out. python3 drives the REPL
# on a pty (tests/e2e/repl_tty.py).
# TLS (bindings/ltls.c): OpenSSL 3, the system's CA store, and the openssl
# command the TLS tests make their certificates with.
tls_pkgs="libssl-dev ca-certificates openssl"
pkgs="$tls_pkgs cmake make gcc g++ pkg-config liblua5.4-dev lua5.4 liburing-dev libreadline-dev lua-busted luarocks strace clang libclang-rt-14-dev python3 $MP_DEPS_EXTRA"
# mp.http: its parser, and the real clients its tests drive (issue 15).
pkgs="$pkgs libhttp-parser-dev curl wrk"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
