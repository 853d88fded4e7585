#!/usr/bin/env bash
# bench/http.sh: wrk -t1 -c64 against the same HTTP/1.1 keep-alive
# "Hello, World!" responder written five ways, in one invocation:
# moonport (bench/http/raw_hello.lua --serve), luv (callbacks), cqueues,
# Node.js net, and a plain C io_uring loop (bench/http_uring.c).
#
# The server runs pinned to CPU 0 and wrk to CPU 1. On a 2-core machine
# wrk saturates its own core, so requests/s hides the difference: the
# number that matters is the server's CPU time per request, utime+stime
# from /proc/<pid>/stat over the measured run divided by the requests
# wrk completed. Also printed: requests/s, p99 latency, peak RSS (VmHWM).
# c_uring is the C loop with SINGLE_ISSUER|DEFER_TASKRUN (the fastest
# setup, which moonport's ring uses too); c_plain the same loop with
# default ring flags, for scale.
#
#   bench/http.sh            DURATION=10 WARMUP=2 CONNS=64 by default
#   MOONPORT_BACKEND=epoll bench/http.sh   (moonport on epoll)
set -u
cd "$(dirname "$0")/.."
MP=${MOONPORT:-./build/moonport}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
BASEPORT=${BASEPORT:-18080}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export LUA_CPATH="$PWD/build/lib/?.so;;"

command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)"; exit 1; }
cc -O2 -o "$OUT/http_uring" bench/http_uring.c -luring 2>/dev/null ||
  echo "note: cannot build bench/http_uring.c (liburing-dev missing?)"

names=(moonport luv cqueues node c_uring c_plain)
declare -A cmd=(
  [moonport]="$MP bench/http/raw_hello.lua --serve"
  [luv]="lua5.4 bench/http/luv.lua"
  [cqueues]="lua5.4 bench/http/cqueues.lua"
  [node]="node bench/http/node.js"
  [c_uring]="$OUT/http_uring"
  [c_plain]="env URING_PLAIN=1 $OUT/http_uring"
)
available() {
  case $1 in
    luv) lua5.4 -e 'require "luv"' 2>/dev/null ;;
    cqueues) lua5.4 -e 'require "cqueues"' 2>/dev/null ;;
    node) command -v node >/dev/null ;;
    c_uring|c_plain) [ -x "$OUT/http_uring" ] ;;
    *) true ;;
  esac
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# bench NAME PORT -> "reqs rps p99 us_per_req rss_mib"
bench() {
  local name=$1 port=$2
  taskset -c 0 ${cmd[$name]} "$port" >"$OUT/$name.log" 2>&1 &
  local pid=$!
  if ! wait_port "$port"; then
    kill "$pid" 2>/dev/null; echo "failed"; return
  fi
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$port/" >/dev/null 2>&1
  local t0; t0=$(ticks "$pid")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
    "http://127.0.0.1:$port/" >"$OUT/$name.wrk" 2>&1
  local t1; t1=$(ticks "$pid")
  local rss; rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  local reqs rps p99 errs
  reqs=$(awk '/requests in/ {print $1}' "$OUT/$name.wrk")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/$name.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$OUT/$name.wrk")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' "$OUT/$name.wrk")
  [ -n "$errs" ] && echo "  $name: $errs" >&2
  awk -v r="$reqs" -v rps="$rps" -v p="$p99" -v t="$((t1 - t0))" \
      -v hz="$hz" -v rss="$rss" 'BEGIN {
    printf "%s %s %s %.2f %.1f\n", r, rps, p, t / hz * 1e6 / r, rss / 1024 }'
}

echo "wrk -t1 -c$CONNS -d${DURATION}s; server on CPU 0, wrk on CPU 1;" \
     "moonport backend: ${MOONPORT_BACKEND:-default}"
declare -A res
i=0
for name in "${names[@]}"; do
  i=$((i + 1))
  if ! available "$name"; then res[$name]="n/a"; continue; fi
  res[$name]=$(bench "$name" $((BASEPORT + i)))
done
printf "%-9s %12s %10s %9s %12s %8s %10s\n" server requests "req/s" p99 \
       "CPU us/req" "RSS MiB" "vs C uring"
read -r _ _ _ cbase _ <<<"${res[c_uring]:-x x x 0 x}"
for name in "${names[@]}"; do
  if [ "${res[$name]}" = "n/a" ] || [ "${res[$name]}" = "failed" ]; then
    printf "%-9s %s\n" "$name" "${res[$name]}"; continue
  fi
  read -r reqs rps p99 us rss <<<"${res[$name]}"
  awk -v n="$name" -v q="$reqs" -v r="$rps" -v p="$p99" -v u="$us" \
      -v m="$rss" -v b="$cbase" 'BEGIN {
    printf "%-9s %12d %10.0f %9s %12.2f %8.1f %9s\n", n, q, r, p, u, m,
           (b > 0 ? sprintf("%.2fx", u / b) : "-") }'
done
