#!/bin/sh
# files.sh: mp.fs against plain C read(2), luv (Debian lua-luv) and Node.js
# fs.promises, same invocation, same CPU pinning.
#   (a) read a 1 GiB page-cached file in 64 KiB chunks
#   (b) open+read+close 10,000 files of 4 KiB, 64 in flight (C: sequential,
#       and the C io_uring peer files_uring.c: linked open/read/close on
#       direct descriptors), and mp.fs.readfile of the same files
# Each peer runs RUNS times (default 3); the best time counts. Ratios are
# throughput relative to moonport (>1: moonport is faster).
#   bench/files.sh [build-dir]     env: CPUS (taskset list, default 0),
#   RUNS, SIZE_MB (default 1024), NFILES (default 10000)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-$root/build}
cpus=${CPUS:-0}
runs=${RUNS:-3}
size_mb=${SIZE_MB:-1024}
nfiles=${NFILES:-10000}
inflight=64
work=$(mktemp -d /tmp/mpbench.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

cc -O2 -o "$work/files_c" "$here/files_c.c"
cc -O2 -o "$work/files_uring" "$here/files_uring.c" -luring
pin="taskset -c $cpus"
[ -f "$build/lib/moonport.so" ] || { echo "no $build/lib/moonport.so: build first" >&2; exit 1; }
export LUA_CPATH="$build/lib/?.so;;"
have_luv=0; lua5.4 -e 'require "luv"' 2>/dev/null && have_luv=1
have_node=0; command -v node >/dev/null && have_node=1

echo "creating $size_mb MiB file and $nfiles small files under $work"
dd if=/dev/urandom of="$work/big" bs=1M count="$size_mb" status=none
mkdir "$work/small"
head -c 4096 /dev/urandom > "$work/small/f1"
i=2
while [ $i -le "$nfiles" ]; do cp "$work/small/f1" "$work/small/f$i"; i=$((i+1)); done
cat "$work/big" > /dev/null # page-cache it
cat "$work"/small/* > /dev/null

# best NAME CMD...: runs CMD RUNS times, prints and records the best ms.
best() {
  name=$1; shift
  b=
  r=0
  while [ $r -lt "$runs" ]; do
    out=$("$@")
    ms=${out%% *}
    if [ -z "$b" ] || awk "BEGIN{exit !($ms < $b)}"; then b=$ms; fi
    r=$((r+1))
  done
  printf '  %-28s %9.1f ms\n' "$name" "$b"
  eval "t_$(echo "$name" | tr -c 'a-zA-Z0-9\n' _)=$b"
}

ratio() { awk "BEGIN{printf \"%.2f\", $1 / $2}"; }

echo "pinned: taskset -c $cpus; backend: $(lua5.4 -e 'print((require "moonport").backend())')"
echo "(a) read $size_mb MiB in 64 KiB chunks"
best c_read $pin "$work/files_c" read "$work/big"
best mp_read $pin lua5.4 "$here/files_mp.lua" read "$work/big"
[ $have_luv = 1 ] && best luv_read $pin lua5.4 "$here/files_luv.lua" read "$work/big"
[ $have_node = 1 ] && best node_read $pin node "$here/files_node.mjs" read "$work/big"
echo "  moonport/C throughput:    $(ratio "$t_c_read" "$t_mp_read")x (target >= 0.9)"
[ $have_luv = 1 ] && echo "  moonport/luv throughput:  $(ratio "$t_luv_read" "$t_mp_read")x"
[ $have_node = 1 ] && echo "  moonport/node throughput: $(ratio "$t_node_read" "$t_mp_read")x"

echo "(b) open+read+close $nfiles x 4 KiB, $inflight in flight"
best c_small_sequential $pin "$work/files_c" small "$work/small" "$nfiles"
best c_small_uring $pin "$work/files_uring" "$work/small" "$nfiles" $inflight
best mp_small $pin lua5.4 "$here/files_mp.lua" small "$work/small" "$nfiles" $inflight
best mp_readfile $pin lua5.4 "$here/files_mp.lua" readfile "$work/small" "$nfiles" $inflight
[ $have_luv = 1 ] && best luv_small $pin lua5.4 "$here/files_luv.lua" small "$work/small" "$nfiles" $inflight
[ $have_node = 1 ] && best node_small $pin node "$here/files_node.mjs" small "$work/small" "$nfiles" $inflight
echo "  moonport/C throughput:    $(ratio "$t_c_small_sequential" "$t_mp_small")x"
echo "  moonport/C io_uring:      $(ratio "$t_c_small_uring" "$t_mp_small")x," \
     "readfile $(ratio "$t_c_small_uring" "$t_mp_readfile")x (target >= 0.67: within 1.5x)"
[ $have_luv = 1 ] && echo "  moonport/luv throughput:  $(ratio "$t_luv_small" "$t_mp_small")x," \
     "readfile $(ratio "$t_luv_small" "$t_mp_readfile")x (target >= 3)"
[ $have_node = 1 ] && echo "  moonport/node throughput: $(ratio "$t_node_small" "$t_mp_small")x"
exit 0
