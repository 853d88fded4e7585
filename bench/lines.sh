#!/bin/sh
# lines.sh: a line filter over a large pipe, read and written line by line:
# moonport (mp.stdin:lines / mp.stdout:write, a timer task ticking beside
# it) against stock lua5.4 (io.lines / io.write, the synchronous floor)
# and cat. Best of RUNS (default 3); input SIZE_MB (default 256) of lines
# of 1..120 bytes.
#   bench/lines.sh [build-dir]     env: SIZE_MB, RUNS, MOONPORT_BACKEND
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$(dirname "$here")/build}
size_mb=${SIZE_MB:-256}
runs=${RUNS:-3}
work=$(mktemp -d /tmp/mplines.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
cat > "$work/gen.lua" <<'LUA'
local out, n, target = io.open(arg[1], "wb"), 0, arg[2] * 1048576
local t = {}
for i = 1, 4096 do t[i] = string.rep(string.char(97 + i % 26), i % 120) end
local chunk = table.concat(t, "\n") .. "\n"
while n < target do out:write(chunk) n = n + #chunk end
out:close()
LUA
lua5.4 "$work/gen.lua" "$work/in" "$size_mb"
cat > "$work/lua.lua" <<'LUA'
for line in io.lines() do io.write(line, "\n") end
LUA
cat > "$work/mp.lua" <<'LUA'
local mp = require "moonport"
local ticks = 0
local t = mp.spawn(function() while true do mp.sleep(0.01) ticks = ticks + 1 end end)
local out = mp.stdout
for line in mp.stdin:lines() do out:write(line, "\n") end
t:cancel()
io.stderr:write("ticks ", ticks, "\n")
LUA
best() { # command...: the best wall time of runs, in seconds
  b=
  for _ in $(seq "$runs"); do
    s=$(date +%s.%N)
    cat "$work/in" | "$@" | cat >/dev/null
    t=$(echo "$(date +%s.%N) - $s" | bc)
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
  done
  echo "$b"
}
c=$(best cat)
l=$(best lua5.4 "$work/lua.lua")
m=$(best "$build/moonport" "$work/mp.lua")
echo "$size_mb MiB: cat $c s, lua5.4 io.lines $l s, moonport $m s" \
     "(backend ${MOONPORT_BACKEND:-default}); lua/moonport $(echo "scale=2; $l / $m" | bc)"
