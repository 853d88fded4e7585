#!/usr/bin/env bash
# bench/parked.sh: the memory a parked task costs, per item, against a
# bare Lua coroutine resumed once into a yield (the floor: a task is a
# coroutine plus its record). N items parked at once, each held in a
# table; "Lua" is the collectgarbage("count") delta, "RSS" the VmRSS
# delta, both after full collections, divided by N (median of RUNS, each
# in a fresh process). Runs bench/parked/moonport.lua under the moonport
# command and under stock lua5.4 with require "moonport", and the peers
# beside them: cqueues (coroutines in cqueues.sleep), luv (a timer and a
# callback closure each) and Node.js (async functions awaiting a timer).
set -u
cd "$(dirname "$0")/.."
MP=${MOONPORT:-./build/moonport}
N=${N:-100000}
NREAD=${NREAD:-5000} # connections: two descriptors each
RUNS=${RUNS:-3}
export LUA_CPATH="$PWD/build/lib/?.so;;"

# median CMD... -> "lua_bytes rss_bytes" (medians of RUNS runs)
median() {
  local out=()
  for _ in $(seq "$RUNS"); do out+=("$("$@")") || return; done
  local l r
  l=$(printf '%s\n' "${out[@]}" | awk '{print $1}' | sort -n |
      awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  r=$(printf '%s\n' "${out[@]}" | awk '{print $2}' | sort -n |
      awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  echo "$l $r"
}

row() { # NAME LUA RSS REFLUA REFRSS
  awk -v n="$1" -v l="$2" -v r="$3" -v bl="$4" -v br="$5" 'BEGIN {
    printf "%-22s %7d %7d %6.2fx %6.2fx\n", n, l, r, l / bl, r / br }'
}

for host in "the command" "lua5.4 + require"; do
  if [ "$host" = "the command" ]; then run=("$MP" bench/parked/moonport.lua)
  else run=(lua5.4 bench/parked/moonport.lua); fi
  echo "moonport via $host (N=$N; read: N=$NREAD)"
  printf "%-22s %7s %7s %7s %7s\n" "bytes per item" Lua RSS "Lua x" "RSS x"
  read -r bl br <<<"$(median "${run[@]}" coroutine "$N")"
  row "bare coroutine" "$bl" "$br" "$bl" "$br"
  for kind in sleep recv send lock acquire join read; do
    n=$N; [ "$kind" = read ] && n=$NREAD
    read -r l r <<<"$(median "${run[@]}" "$kind" "$n")"
    [ -n "${l:-}" ] || { echo "$kind: failed"; continue; }
    row "task in $kind" "$l" "$r" "$bl" "$br"
  done
  echo
done

echo "peers under lua5.4 (ratio to lua5.4's bare coroutine above)"
read -r bl br <<<"$(median lua5.4 bench/parked/moonport.lua coroutine "$N")"
if lua5.4 -e 'require "cqueues"' 2>/dev/null; then
  read -r l r <<<"$(median lua5.4 bench/parked/cqueues.lua "$N")"
  row "cqueues sleep" "$l" "$r" "$bl" "$br"
fi
if lua5.4 -e 'require "luv"' 2>/dev/null; then
  read -r l r <<<"$(median lua5.4 bench/parked/luv.lua "$N")"
  row "luv timer+callback" "$l" "$r" "$bl" "$br"
fi
if command -v node >/dev/null; then
  read -r l r <<<"$(median node --expose-gc bench/parked/node.js "$N")"
  printf "%-22s %7d %7d   (V8 heap, RSS)\n" "node async+timer" "$l" "$r"
fi
echo "(x = bytes / the bare coroutine's under the same host)"
