#!/usr/bin/env bash
# bench/zerocopy.sh: mp.fs.copy and stream:sendfile against the same
# syscalls from C (bench/zerocopy_c.c: a copy_file_range loop, a sendfile
# loop) and cp(1), in one invocation, on a page-cached file. Each command
# is a process of its own, timed from start to exit (the peers take
# turns, RUNS rounds, the best of each counts); the
# socket's other end is the same C drain for both senders. Ratios are
# the C program's time over moonport's (>= 1: moonport as fast).
#   bench/zerocopy.sh       env: SIZE_MB (default 256), RUNS (5), PORT
set -u
cd "$(dirname "$0")/.."
MP=${MOONPORT:-./build/moonport}
SIZE_MB=${SIZE_MB:-256}
RUNS=${RUNS:-5}
PORT=${PORT:-18095}
work=$(mktemp -d "${TMPDIR:-/tmp}/mpzc.XXXXXX")
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/zc" bench/zerocopy_c.c || exit 1
dd if=/dev/urandom of="$work/src" bs=1M count="$SIZE_MB" status=none
cat "$work/src" >/dev/null # in the page cache

now() { date +%s%N; }
# time_ms CMD...: the wall time of one run, in ms
time_ms() {
  rm -f "$work/dst"
  local t0 t1; t0=$(now)
  "$@" >/dev/null || { echo "failed: $*" >&2; exit 1; }
  t1=$(now)
  echo $(( (t1 - t0) / 1000000 ))
}
# A sender against the C drain: the drain starts first, then the sender
# runs; returns once the drain has counted every byte.
send() {
  rm -f "$work/drain" # a stale "ready" must not be read
  "$work/zc" drain "$PORT" >"$work/drain" &
  local d=$!
  for _ in $(seq 500); do grep -qs ready "$work/drain" && break; sleep 0.01; done
  "$@" || { kill "$d"; wait "$d"; return 1; }
  wait "$d"
  [ "$(tail -1 "$work/drain")" = "$((SIZE_MB * 1048576))" ]
}

# The peers take turns, RUNS rounds, so a load that comes and goes on the
# machine weighs on all of them; the best time of each counts.
names=(c_copy cp_copy mp_copy c_sf mp_sf)
declare -A cmd=(
  [c_copy]="$work/zc copy $work/src $work/dst"
  [cp_copy]="cp $work/src $work/dst"
  [mp_copy]="$MP bench/zerocopy_mp.lua copy $work/src $work/dst"
  [c_sf]="send $work/zc sendfile $work/src $PORT"
  [mp_sf]="send $MP bench/zerocopy_mp.lua sendfile $work/src $PORT"
)
declare -A best
for _ in $(seq "$RUNS"); do
  for n in "${names[@]}"; do
    t=$(time_ms ${cmd[$n]})
    if [ -z "${best[$n]:-}" ] || [ "$t" -lt "${best[$n]}" ]; then best[$n]=$t; fi
  done
done
c_copy=${best[c_copy]} cp_copy=${best[cp_copy]} mp_copy=${best[mp_copy]}
c_sf=${best[c_sf]} mp_sf=${best[mp_sf]}

echo "$SIZE_MB MiB page-cached, best of $RUNS, $(stat -f -c %T "$work")," \
     "backend ${MOONPORT_BACKEND:-default}"
row() { awk -v n="$1" -v t="$2" -v p="$3" -v mb="$SIZE_MB" 'BEGIN {
  printf "%-28s %6d ms %7.0f MiB/s", n, t, mb * 1000 / (t > 0 ? t : 1)
  if (p != "") printf "   C/moonport %.2f", p / (t > 0 ? t : 1)
  printf "\n" }'; }
row "C copy_file_range loop" "$c_copy" ""
row "cp" "$cp_copy" ""
row "mp.fs.copy" "$mp_copy" "$c_copy"
row "C sendfile loop" "$c_sf" ""
row "stream:sendfile" "$mp_sf" "$c_sf"
