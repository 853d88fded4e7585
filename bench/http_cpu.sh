#!/usr/bin/env bash
# bench/http_cpu.sh: server CPU per request of moonport's HTTP responders
# against the plain C io_uring loop (bench/http_uring.c), in many short
# interleaved rounds, so that a 10% target (issue 16: <= 1.10x) can be
# decided on a 2-core machine whose speed drifts between runs.
#
# Every server starts once, pinned to CPU 0, and gets one warm-up; then
# each round runs `wrk -t1 -cCONNS -dSECS` (pinned to CPU 1) against each
# server in turn: C first, then the others. A server's CPU for a round is
# the utime+stime delta in /proc/PID/stat (all its threads) over the
# requests wrk completed in that round. Each peer's ratio is taken against
# the C loop's figure of the same round, so drift slower than a round
# cancels; the summary gives the median ratio over the rounds and its
# spread (min, quartiles, max). Read the median; if the quartile range
# straddles the target, run more rounds (ROUNDS=30).
#
# Peers (PEERS, in round order; the C loop is always first):
#   mp          bench/http/raw_hello.lua --serve on io_uring (issue 16's
#               responder: c:read("l") per line, one c:write)
#   mp_epoll    the same on MOONPORT_BACKEND=epoll
#   http        examples/http_hello.lua --serve: mp.http on io_uring
#   http_epoll  mp.http on epoll
#   base        the raw responder on io_uring run by another moonport
#               binary, BASE=path (e.g. main's build): before/after
#   base_epoll  the same on epoll
#   c_ms        the C loop itself with URING_MULTISHOT=1 (one multishot
#               receive per connection: what it saves in the kernel)
#
#   bench/http_cpu.sh                 ROUNDS=10 SECS=2 (about 2 minutes)
#   ROUNDS=30 PEERS="mp" bench/http_cpu.sh
#   BASE=../main/build/moonport PEERS="base mp" bench/http_cpu.sh
#   SYSCALLS=1 bench/http_cpu.sh      + one extra round per server under
#                                     perf stat: syscalls per request
#   INSNS=1 bench/http_cpu.sh         + user-space instructions per request
#                                     (callgrind, moonport peers only; slow)
set -u
cd "$(dirname "$0")/.."
MP=${MOONPORT:-./build/moonport}
ROUNDS=${ROUNDS:-10}
SECS=${SECS:-2}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-64}
PEERS=${PEERS:-mp mp_epoll http http_epoll}
BASEPORT=${BASEPORT:-18280}
OUT=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$OUT"
}
trap cleanup EXIT
export LUA_CPATH="$PWD/build/lib/?.so;;"

command -v wrk >/dev/null ||
  { echo "wrk not installed (apt-get install wrk)"; exit 1; }
cc -O2 -o "$OUT/http_uring" bench/http_uring.c -luring ||
  { echo "cannot build bench/http_uring.c (liburing-dev missing?)"; exit 1; }

names=(c $PEERS)
declare -A cmd=(
  [c]="$OUT/http_uring"
  [c_ms]="env URING_MULTISHOT=1 $OUT/http_uring"
  [mp]="env MOONPORT_BACKEND=io_uring $MP bench/http/raw_hello.lua --serve"
  [mp_epoll]="env MOONPORT_BACKEND=epoll $MP bench/http/raw_hello.lua --serve"
  [http]="env MOONPORT_BACKEND=io_uring $MP examples/http_hello.lua --serve"
  [http_epoll]="env MOONPORT_BACKEND=epoll $MP examples/http_hello.lua --serve"
  [base]="env MOONPORT_BACKEND=io_uring ${BASE:-none}
          bench/http/raw_hello.lua --serve"
  [base_epoll]="env MOONPORT_BACKEND=epoll ${BASE:-none}
                bench/http/raw_hello.lua --serve"
)
case " $PEERS " in
  *" base "*|*" base_epoll "*)
    [ -x "${BASE:-}" ] || { echo "base: set BASE=binary"; exit 1; }
esac
hz=$(getconf CLK_TCK)
# utime + stime of the whole process (field 14, 15; the name may hold
# spaces, so count from the closing parenthesis)
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12, $13}'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
# requests completed by a wrk run, from its output file
requests() { awk '/requests in/ {print $1}' "$1"; }

declare -A pid port
i=0
for n in "${names[@]}"; do
  [ -n "${cmd[$n]:-}" ] || { echo "unknown peer $n"; exit 1; }
  i=$((i + 1))
  port[$n]=$((BASEPORT + i))
  taskset -c 0 ${cmd[$n]} "${port[$n]}" >"$OUT/$n.log" 2>&1 &
  pid[$n]=$!
  pids+=("${pid[$n]}")
  wait_port "${port[$n]}" || { echo "$n did not start:"; cat "$OUT/$n.log"
                               exit 1; }
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${WARMUP}s" \
    "http://127.0.0.1:${port[$n]}/" >/dev/null 2>&1
done

# round PEER: one wrk run; appends "reqs ticks utime" to $OUT/PEER.rounds
round() {
  local n=$1 u0 s0 u1 s1 r
  read -r u0 s0 < <(ticks "${pid[$n]}")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" \
    "http://127.0.0.1:${port[$n]}/" >"$OUT/$n.wrk" 2>&1
  read -r u1 s1 < <(ticks "${pid[$n]}")
  r=$(requests "$OUT/$n.wrk")
  if grep -q 'Non-2xx\|Socket errors' "$OUT/$n.wrk"; then
    echo "  $n: $(grep 'Non-2xx\|Socket errors' "$OUT/$n.wrk")" >&2
  fi
  echo "${r:-0} $((u1 + s1 - u0 - s0)) $((u1 - u0))" >>"$OUT/$n.rounds"
}

echo "wrk -t1 -c$CONNS -d${SECS}s x $ROUNDS rounds, servers on CPU 0," \
     "wrk on CPU 1; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "columns: each server's CPU us per request, then each one's ratio to c"
printf "%5s" round
for n in "${names[@]}"; do printf " %9s" "$n"; done
for n in $PEERS; do printf " %12s" "$n/c"; done
echo
for r in $(seq "$ROUNDS"); do
  for n in "${names[@]}"; do round "$n"; done
  printf "%5d" "$r"
  for n in "${names[@]}"; do
    tail -n1 "$OUT/$n.rounds" | awk -v hz="$hz" '{
      printf " %9.2f", ($1 > 0 ? $2 / hz * 1e6 / $1 : 0) }'
  done
  c=$(tail -n1 "$OUT/c.rounds")
  for n in $PEERS; do
    tail -n1 "$OUT/$n.rounds" | awk -v c="$c" '{
      split(c, a, " ")
      v = $1 > 0 ? $2 / $1 : 0; cv = a[1] > 0 ? a[2] / a[1] : 0
      r = cv > 0 ? v / cv : 0
      printf " %12.3f", r; print r >> "'"$OUT/$n"'.ratio" }'
  done
  echo
done

# quartiles of a column of numbers (linear interpolation)
stats() {
  sort -g | awk '{ v[NR] = $1 }
    function q(p,  h, l) { h = (NR - 1) * p + 1; l = int(h)
      return l >= NR ? v[NR] : v[l] + (h - l) * (v[l + 1] - v[l]) }
    END { if (NR) printf "%.3f %.3f %.3f %.3f %.3f", q(0), q(.25), q(.5),
                         q(.75), q(1) }'
}
echo
echo "server CPU per request (us): median [min .. max] over $ROUNDS rounds;" \
     "median user part; requests/s"
for n in "${names[@]}"; do
  read -r mn _ md _ mx < <(awk -v hz="$hz" '$1 > 0 {
    print $2 / hz * 1e6 / $1 }' "$OUT/$n.rounds" | stats)
  read -r _ _ us _ _ < <(awk -v hz="$hz" '$1 > 0 {
    print $3 / hz * 1e6 / $1 }' "$OUT/$n.rounds" | stats)
  reqs=$(awk '{ s += $1 } END { printf "%.0f", s / NR / '"$SECS"' }' \
    "$OUT/$n.rounds")
  printf "  %-11s %6.2f [%.2f .. %.2f]  user %.2f  %s req/s\n" "$n" "$md" \
         "$mn" "$mx" "$us" "$reqs"
done
echo "ratio to the C loop (same round): median, quartiles, range"
for n in $PEERS; do
  read -r mn q1 md q3 mx < <(stats <"$OUT/$n.ratio")
  printf "  %-11s %.3fx  IQR %.3f-%.3f  range %.3f-%.3f\n" "$n" "$md" \
         "$q1" "$q3" "$mn" "$mx"
done

if [ "${SYSCALLS:-0}" = 1 ]; then
  echo "syscalls per request (one extra ${SECS}s round under perf stat):"
  for n in "${names[@]}"; do
    perf stat -x, -e raw_syscalls:sys_enter \
      -e syscalls:sys_enter_io_uring_enter -p "${pid[$n]}" \
      -o "$OUT/$n.perf" -- sleep $((SECS + 1)) &
    p=$!
    sleep 0.2
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" \
      "http://127.0.0.1:${port[$n]}/" >"$OUT/$n.wrk" 2>&1
    wait "$p"
    awk -F, -v r="$(requests "$OUT/$n.wrk")" -v n="$n" '
      /raw_syscalls/ { s = $1 } /io_uring_enter/ { u = $1 }
      END { printf "  %-11s %.3f syscalls, %.3f io_uring_enter\n", n,
            s / r, u / r }' "$OUT/$n.perf"
  done
fi

if [ "${INSNS:-0}" = 1 ]; then
  command -v valgrind >/dev/null || { echo "valgrind not installed"; exit; }
  echo "user-space instructions per request (callgrind, one ${SECS}s run" \
       "after a warm-up, counters zeroed in between):"
  for n in $PEERS; do
    p=$((BASEPORT + 50))
    bin=$MP
    case $n in base*) bin=$BASE ;; esac
    ${cmd[$n]/$bin/valgrind --tool=callgrind \
      --callgrind-out-file=$OUT/$n.cg $bin} "$p" >"$OUT/$n.vg" 2>&1 &
    vp=$!
    wait_port "$p" || { echo "  $n: no start under valgrind"; continue; }
    wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$p/" >/dev/null 2>&1
    callgrind_control -z "$vp" >/dev/null 2>&1
    wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$p/" \
      >"$OUT/$n.wrk" 2>&1
    callgrind_control -d "$vp" >/dev/null 2>&1
    kill "$vp"; wait "$vp" 2>/dev/null
    ir=$(cat "$OUT"/$n.cg.* 2>/dev/null | awk '/^summary:/ { s += $2 }
      END { print s + 0 }')
    awk -v ir="$ir" -v r="$(requests "$OUT/$n.wrk")" -v n="$n" 'BEGIN {
      printf "  %-11s %.0f instructions (%d requests)\n", n, ir / r, r }'
  done
fi
