#!/usr/bin/env bash
# bench/workers.sh: the same HTTP/1.1 keep-alive responder
# (examples/http_workers.lua --serve) with 1 worker and with 2, driven by
# wrk -t2, in one invocation. Printed per run: requests/s, the server's
# CPU time per request (utime+stime of every thread from /proc/<pid>/stat
# over the measured run, divided by the requests wrk completed) and each
# worker's share of the requests (each worker counts what it served,
# warm-up included, and prints it when SIGTERM stops it).
#
# On a 2-core machine wrk shares the cores with the server, so
# requests/s says little; CPU per request says whether the workers cost
# each other anything (no shared state, no lock: it should not rise with
# 2), and the shares whether reuseport spreads the load. A worker's cost
# per request falls as its connections grow (more completions per loop
# turn), so the workers are compared at the same connections per worker
# (CONNS each: 1 worker with CONNS, 2 with 2*CONNS); 1 worker with
# 2*CONNS is printed too.
#
#   bench/workers.sh          DURATION=10 WARMUP=2 CONNS=32 RUNS=3
set -u
cd "$(dirname "$0")/.."
MP=${MOONPORT:-./build/moonport}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
RUNS=${RUNS:-3}
PORT=${PORT:-18090}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)"; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# run WORKERS CONNS -> "rps us_per_req share1 share2 ..."
run() {
  local w=$1 conns=$2 log=$OUT/w$1.log
  "$MP" --workers "$w" examples/http_workers.lua --serve "$PORT" >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    [ "$(grep -c listening "$log")" -ge "$w" ] && break
    sleep 0.05
  done
  wrk -t2 -c"$conns" -d"${WARMUP}s" "http://127.0.0.1:$PORT/" >/dev/null 2>&1
  kill -0 "$pid" || { echo "failed"; return; }
  local t0; t0=$(ticks "$pid")
  wrk -t2 -c"$conns" -d"${DURATION}s" "http://127.0.0.1:$PORT/" \
    >"$OUT/w$w.wrk" 2>&1
  local t1; t1=$(ticks "$pid")
  kill -TERM "$pid"; wait "$pid"
  local reqs rps
  reqs=$(awk '/requests in/ {print $1}' "$OUT/w$w.wrk")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/w$w.wrk")
  local shares
  shares=$(awk '/^worker [0-9]+ served/ {n[$2] = $4; t += $4}
    END {for (i = 1; i in n; i++) printf " %.1f%%", 100 * n[i] / t}' "$log")
  awk -v r="$reqs" -v rps="$rps" -v d="$((t1 - t0))" -v hz="$hz" \
      -v s="$shares" 'BEGIN {printf "%10.0f %12.2f %s\n", rps,
                             1e6 * d / hz / r, s}'
}

echo "moonport --workers N examples/http_workers.lua, wrk -t2" \
     "-d${DURATION}s, $(nproc) CPUs, best of $RUNS by CPU per request"
printf "%-8s %6s %10s %12s  %s\n" workers conns "req/s" "us CPU/req" \
       "share per worker"
for cfg in "1 $CONNS" "2 $((2 * CONNS))" "1 $((2 * CONNS))"; do
  set -- $cfg
  best=
  for _ in $(seq "$RUNS"); do
    line=$(run "$1" "$2")
    cpu=$(echo "$line" | awk '{print $2}')
    if [ -z "$best" ] || awk -v a="$cpu" -v b="$(echo "$best" | awk '{print $2}')" \
        'BEGIN {exit !(a < b)}'; then best=$line; fi
  done
  printf "%-8s %6s %s\n" "$1" "$2" "$best"
done
