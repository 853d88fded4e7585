#!/usr/bin/env bash
# bench/timers.sh: 100,000 tasks each sleeping a random 0-100 ms once, and
# spawn/join throughput, for moonport and its peers in one invocation:
# luv (callbacks), cqueues (coroutines) and Node.js (async functions).
# Prints wall time (median of RUNS), peak RSS, and ratios to moonport.
set -u
cd "$(dirname "$0")/.."
MP=${MOONPORT:-./build/moonport}
N=${N:-100000}
RUNS=${RUNS:-3}
T=bench/timers
export LUA_CPATH="$PWD/build/lib/?.so;;"

declare -A cmd=(
  [moonport]="$MP $T/moonport.lua"
  [luv]="lua5.4 $T/luv.lua"
  [cqueues]="lua5.4 $T/cqueues.lua"
  [node]="node $T/node.js"
)
available() {
  case $1 in
    luv) lua5.4 -e 'require "luv"' 2>/dev/null ;;
    cqueues) lua5.4 -e 'require "cqueues"' 2>/dev/null ;;
    node) command -v node >/dev/null ;;
    *) true ;;
  esac
}

# run NAME MODE -> "median_ms peak_rss_kib"
run() {
  local times=() rss=0
  for _ in $(seq "$RUNS"); do
    local out
    out=$( { /usr/bin/time -f "RSS %M" ${cmd[$1]} "$2" "$N"; } 2>&1 ) || { echo "failed"; return; }
    times+=("$(echo "$out" | head -1)")
    local r; r=$(echo "$out" | awk '/^RSS/ {print $2}')
    [ "$r" -gt "$rss" ] && rss=$r
  done
  local med; med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$med $rss"
}

printf "%-10s %-28s %-28s\n" "" "sleep ${N} x rand(0-100ms)" "spawn+join ${N}"
printf "%-10s %10s %8s %8s   %10s %8s\n" runtime "wall ms" "MiB" "ratio" "wall ms" "ratio"
declare -A sw ss sr
for name in moonport luv cqueues node; do
  if ! available "$name"; then printf "%-10s (not installed)\n" "$name"; continue; fi
  read -r sw[$name] sr[$name] <<<"$(run "$name" sleep)"
  read -r ss[$name] _ <<<"$(run "$name" spawn)"
done
for name in moonport luv cqueues node; do
  [ -n "${sw[$name]:-}" ] || continue
  awk -v n="$name" -v w="${sw[$name]}" -v r="${sr[$name]}" -v s="${ss[$name]}" \
      -v mw="${sw[moonport]}" -v ms="${ss[moonport]}" 'BEGIN {
    printf "%-10s %10.1f %8.1f %7.2fx   %10.1f %7.2fx\n", n, w, r / 1024, w / mw, s, s / ms }'
done
echo "(ratio = peer time / moonport time: above 1 means moonport is faster)"
