#!/usr/bin/env bash
# bench/http_floor.sh: user-space instructions per request of
# raw_hello.lua's serve() alone (bench/http/floor.c: a fake stream, no
# IO, one suspension per request), counted with callgrind as the
# difference of two runs (N and 2N requests), so that startup cancels.
# Compare with INSNS=1 bench/http_cpu.sh: moonport's part is the rest.
#
#   bench/http_floor.sh          N=100000
set -u
cd "$(dirname "$0")/.."
N=${N:-100000}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 1; }
cc -O2 -o "$OUT/floor" bench/http/floor.c \
  $(pkg-config --cflags --libs lua5.4) ||
  { echo "cannot build bench/http/floor.c (liblua5.4-dev missing?)"; exit 1; }
ir() {
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$1" \
    "$OUT/floor" "$1" bench/http/raw_hello.lua >/dev/null 2>&1 || exit 1
  awk '/^summary:/ { print $2 }' "$OUT/cg.$1"
}
a=$(ir "$N")
b=$(ir $((2 * N)))
awk -v a="$a" -v b="$b" -v n="$N" 'BEGIN {
  printf "serve() alone: %.0f user instructions per request\n", (b - a) / n }'
