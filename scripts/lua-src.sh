#!/bin/sh
# lua-src.sh DIR: Lua 5.4's sources for the Windows build, from Debian's
# source package (its patches are CVE fixes and the non-Windows part of
# luaconf.h), unpacked once into DIR; prints the src/ directory. Needs a
# deb-src entry, which scripts/deps.sh adds, and dpkg-dev.
set -e
dir=${1:?usage: lua-src.sh DIR}
mkdir -p "$dir"
cd "$dir"
src=$(ls -d lua5.4-*/src 2>/dev/null | head -n 1)
if [ -z "$src" ] || [ ! -f "$src/lua.h" ]; then
  rm -rf lua5.4-* lua5.4_*
  if ! apt-get source -qq lua5.4 >apt.log 2>&1; then
    cat apt.log >&2
    echo "lua-src: apt-get source lua5.4 failed (no deb-src entry? run" \
      "scripts/deps.sh)" >&2
    exit 1
  fi
  src=$(ls -d lua5.4-*/src | head -n 1)
fi
echo "$PWD/$src"
