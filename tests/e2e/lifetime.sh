#!/usr/bin/env bash
# lifetime.sh: a Lua state closed with work still in flight (sleeping tasks,
# a task parked on a channel, a threadpool job, deadlines) must release
# every op only after its completion, leak nothing and not crash. Under the
# sanitizer build LSan checks the leaks; here we check exit status and time.
set -u
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; fi; }
MP=${MOONPORT:?}

run_lua() { # lua5.4 with the module (and the ASan runtime when needed)
  local pre=""
  if ldd "$(dirname "$MP")/lib/moonport.so" 2>/dev/null | grep -q libasan; then
    pre=$(gcc -print-file-name=libasan.so)
  fi
  LD_PRELOAD=$pre LUA_CPATH="$(dirname "$MP")/lib/?.so;;" timeout 20 lua5.4 -e "$1"
}

start=$(date +%s%N)
run_lua '
local mp = require "moonport"
for i = 1, 100 do mp.spawn(function() mp.sleep(100) end) end
mp.spawn(function() mp.channel():recv() end)
mp.spawn(function() mp.timeout(50, mp.sleep, 100) end)
mp.spawn(function() mp.work(function() local t = os.time() while os.time() - t < 1 do end end) end)
mp.sleep(0.05)
print("closing with work in flight")
'
st=$?
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
check "state closes with ops in flight (exit 0)" '[ $st -eq 0 ]'
check "close does not wait for long timers (${elapsed} ms)" '[ $elapsed -lt 5000 ]'

run_lua '
local mp = require "moonport"
-- tasks never started, a task mid-timeout, a task joined by another
local a = mp.spawn(function() mp.sleep(100) end)
mp.spawn(function() a:join() end)
mp.spawn(function() error("never joined") end)
' 2>/dev/null
check "state closes with unstarted tasks" '[ $? -eq 0 ]'

"$MP" -e '
local mp = require "moonport"
mp.spawn(function() mp.sleep(100) end)
mp.sleep(0.01)
os.exit(0, true)
'
check "os.exit(0, true) with a sleeping task" '[ $? -eq 0 ]'

# Bytes a file buffered are written when the script ends without closing
# it, and when it calls os.exit (which closes the state in the command).
tmpf=$(mktemp)
"$MP" -e "local f = require('moonport').fs.open('$tmpf', 'w'); f:write('at the end')"
check "buffered writes reach the file at the end of the script" '[ "$(cat "$tmpf")" = "at the end" ]'
"$MP" -e "local f = require('moonport').fs.open('$tmpf', 'w'); f:write('at exit'); os.exit(3)"
st=$?
check "and at os.exit" '[ $st -eq 3 ] && [ "$(cat "$tmpf")" = "at exit" ]'
rm -f "$tmpf"

# Under a stock lua5.4, tasks alive when the state closes are dropped with
# a word on stderr; mp.run() at the end of the main chunk runs them.
err=$(run_lua 'local mp = require "moonport"
mp.spawn(function() mp.sleep(100) end)' 2>&1 >/dev/null)
check "lua5.4 says that a pending task was dropped" \
  'echo "$err" | grep -q "1 task(s) had not ended when the Lua state closed"'
out=$(run_lua 'local mp = require "moonport"
mp.spawn(function() mp.sleep(0.01) print("ran") end)
mp.run()' 2>&1)
check "mp.run() at the end runs them, silently" '[ "$out" = "ran" ]'
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
