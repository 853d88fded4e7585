#!/usr/bin/env bash
# bench/http_server.sh: mp.http against Node's http module and against
# moonport's raw-socket responder, in one invocation: wrk -t1 -c64 on the
# same "Hello, World!" keep-alive server written three ways:
#   mp_http    examples/http_hello.lua --serve (mp.http: a real parser,
#              header table, request and response objects, Date header)
#   node_http  bench/http/node_http.js (Node's http: the same work)
#   mp_raw     bench/http/raw_hello.lua --serve (raw sockets: reads lines,
#              writes one canned response; the floor for moonport)
# The server runs pinned to CPU 0 and wrk to CPU 1; the number that
# matters is the server's CPU time per request (utime+stime from
# /proc/<pid>/stat over the measured run / requests completed). Targets
# (issue 15): mp_http at most 0.8x node_http and within 1.5x mp_raw.
#
#   bench/http_server.sh       DURATION=10 WARMUP=2 CONNS=64 ROUNDS=1
# ROUNDS>1 runs the three in turn that many times (interleaved, so load
# from elsewhere hits them alike) and reports each one's median.
set -u
cd "$(dirname "$0")/.."
MP=${MOONPORT:-./build/moonport}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-1}
BASEPORT=${BASEPORT:-18180}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export LUA_CPATH="$PWD/build/lib/?.so;;"

command -v wrk >/dev/null ||
  { echo "wrk not installed (apt-get install wrk)"; exit 1; }
names=(mp_http node_http mp_raw)
declare -A cmd=(
  [mp_http]="$MP examples/http_hello.lua --serve"
  [node_http]="node bench/http/node_http.js"
  [mp_raw]="$MP bench/http/raw_hello.lua --serve"
)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# bench NAME PORT -> "reqs rps p99 us_per_req"
bench() {
  local name=$1 port=$2
  taskset -c 0 ${cmd[$name]} "$port" >"$OUT/$name.log" 2>&1 &
  local pid=$!
  if ! wait_port "$port"; then kill "$pid" 2>/dev/null; echo failed; return; fi
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$port/" \
    >/dev/null 2>&1
  local t0; t0=$(ticks "$pid")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
    "http://127.0.0.1:$port/" >"$OUT/$name.wrk" 2>&1
  local t1; t1=$(ticks "$pid")
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  local errs; errs=$(awk '/Non-2xx|Socket errors/' "$OUT/$name.wrk")
  [ -n "$errs" ] && echo "  $name: $errs" >&2
  awk -v t="$((t1 - t0))" -v hz="$hz" '
    /requests in/ { r = $1 } /^Requests\/sec/ { rps = $2 }
    $1 == "99%" { p = $2 }
    END { printf "%d %.0f %s %.2f\n", r, rps, p, t / hz * 1e6 / r }' \
    "$OUT/$name.wrk"
}

echo "wrk -t1 -c$CONNS -d${DURATION}s x $ROUNDS; server on CPU 0, wrk on" \
     "CPU 1; moonport backend: ${MOONPORT_BACKEND:-default}"
declare -A all
for r in $(seq "$ROUNDS"); do
  i=0
  for name in "${names[@]}"; do
    i=$((i + 1))
    if [ "$name" = node_http ] && ! command -v node >/dev/null; then
      continue
    fi
    all[$name]+="$(bench "$name" $((BASEPORT + 10 * r + i)))"$'\n'
  done
done
declare -A us
printf "%-10s %10s %9s %12s\n" server "req/s" p99 "CPU us/req"
for name in "${names[@]}"; do
  [ -z "${all[$name]:-}" ] && { printf "%-10s n/a\n" "$name"; continue; }
  # the median round by CPU per request
  line=$(printf "%s" "${all[$name]}" | grep -v failed | sort -k4 -g |
         awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }')
  read -r _ rps p99 u <<<"$line"
  us[$name]=$u
  printf "%-10s %10s %9s %12s\n" "$name" "$rps" "$p99" "$u"
done
if [ -n "${us[mp_http]:-}" ] && [ -n "${us[mp_raw]:-}" ]; then
  awk -v h="${us[mp_http]}" -v r="${us[mp_raw]}" -v n="${us[node_http]:-0}" '
    BEGIN {
      printf "mp_http / mp_raw:    %.2fx (target <= 1.5x)\n", h / r
      if (n > 0) printf "mp_http / node_http: %.2fx (target <= 0.8x)\n", h / n
    }'
fi
