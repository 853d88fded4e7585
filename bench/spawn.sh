#!/bin/sh
# spawn.sh: spawning /bin/true N times (default 1000, 32 in flight) with
# mp.proc.spawn + wait against luv's uv.spawn, same invocation. The best
# of RUNS (default 3) counts; ratio > 1: moonport is faster.
#   bench/spawn.sh [build-dir]     env: N, RUNS
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$(dirname "$here")/build}
n=${N:-1000}
runs=${RUNS:-3}
export LUA_CPATH="$build/lib/?.so;;"
best() {
  b=
  for _ in $(seq "$runs"); do
    t=$("$@")
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
  done
  echo "$b"
}
mp=$(best lua5.4 "$here/spawn_mp.lua" "$n")
echo "moonport  ($(MOONPORT_BACKEND=${MOONPORT_BACKEND:-} lua5.4 -e \
  'print(require("moonport").backend())')): $mp s for $n spawns"
if lua5.4 -e 'require "luv"' 2>/dev/null; then
  luv=$(best lua5.4 "$here/spawn_luv.lua" "$n")
  echo "luv: $luv s; ratio luv/moonport $(echo "scale=2; $luv / $mp" | bc)"
else
  echo "luv: not installed (lua-luv)"
fi
