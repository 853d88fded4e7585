#!/bin/sh
# readfloor.sh: the copy floor on reads (issue 16): f:read(65536) over a
# page-cached file against plain C, same invocation, same CPU pinning:
#   c_read       read(2) into one 64 KiB buffer (the floor)
#   c_readcopy   read(2), then each chunk copied into a fresh malloc'd
#                block (the one copy a Lua string API must make)
#   lua_io       stock lua5.4, io.open + f:read(65536)
#   mp_cmd       the moonport command, mp.fs.open + f:read(65536)
#   mp_require   stock lua5.4 with require "moonport", the same script
#   cmd_io       the moonport command, io.open (its allocator, stock io)
# Each runs RUNS times (default 5), alternating; the best time counts.
# Ratios: C read time / peer time (1: the floor; the target is >= 0.75
# for moonport, and moonport no slower than lua_io).
#   bench/readfloor.sh [build-dir]   env: CPUS (default 0), RUNS, SIZE_MB
#   (default 1024)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-$root/build}
cpus=${CPUS:-0}
runs=${RUNS:-5}
size_mb=${SIZE_MB:-1024}
work=$(mktemp -d /tmp/mpfloor.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
[ -x "$build/moonport" ] || { echo "no $build/moonport: build first" >&2; exit 1; }
cc -O2 -o "$work/files_c" "$here/files_c.c"
export LUA_CPATH="$build/lib/?.so;;"
pin="taskset -c $cpus"
dd if=/dev/urandom of="$work/big" bs=1M count="$size_mb" status=none
cat "$work/big" > /dev/null # page-cache it

names="c_read c_readcopy lua_io mp_cmd mp_require cmd_io"
run_one() {
  case $1 in
    c_read) $pin "$work/files_c" read "$work/big" ;;
    c_readcopy) $pin "$work/files_c" readcopy "$work/big" ;;
    lua_io) $pin lua5.4 "$here/readfloor.lua" io "$work/big" ;;
    mp_cmd) $pin "$build/moonport" "$here/readfloor.lua" mp "$work/big" ;;
    mp_require) $pin lua5.4 "$here/readfloor.lua" mp "$work/big" ;;
    cmd_io) $pin "$build/moonport" "$here/readfloor.lua" io "$work/big" ;;
  esac
}
for n in $names; do eval "best_$n="; done
r=0
while [ $r -lt "$runs" ]; do
  for n in $names; do
    out=$(run_one "$n")
    ms=${out%% *}
    eval "b=\$best_$n"
    if [ -z "$b" ] || awk "BEGIN{exit !($ms < $b)}"; then eval "best_$n=$ms"; fi
  done
  r=$((r+1))
done
echo "read $size_mb MiB in 64 KiB reads, page-cached; pinned: taskset -c" \
     "$cpus; backend: $("$build/moonport" -e 'print((require "moonport").backend())')"
for n in $names; do
  eval "b=\$best_$n"
  printf '  %-12s %9.1f ms   C read / this %s\n' "$n" "$b" \
    "$(awk "BEGIN{printf \"%.2f\", $best_c_read / $b}")"
done
echo "  time / lua_io's: mp_cmd $(awk "BEGIN{printf \"%.2f\", $best_mp_cmd / $best_lua_io}")," \
     "mp_require $(awk "BEGIN{printf \"%.2f\", $best_mp_require / $best_lua_io}") (<= 1: no slower)"
