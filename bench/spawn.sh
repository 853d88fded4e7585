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
# Runs alternate (moonport, luv, moonport, ...) so that a change in the
# machine's load hits both alike.
have_luv=0; lua5.4 -e 'require "luv"' 2>/dev/null && have_luv=1
mp= luv=
min() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc)" = 1 ]; then echo "$2"
        else echo "$1"; fi; }
for _ in $(seq "$runs"); do
  mp=$(min "$mp" "$(lua5.4 "$here/spawn_mp.lua" "$n")")
  [ $have_luv = 1 ] && luv=$(min "$luv" "$(lua5.4 "$here/spawn_luv.lua" "$n")")
done
echo "moonport ($(lua5.4 -e 'print(require("moonport").backend())')):" \
     "$mp s for $n spawns"
if [ $have_luv = 1 ]; then
  echo "luv: $luv s; ratio luv/moonport $(echo "scale=2; $luv / $mp" | bc)"
else
  echo "luv: not installed (lua-luv)"
fi
