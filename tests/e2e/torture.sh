#!/usr/bin/env bash
# torture.sh: the task machinery under a full garbage collection on every
# line (MOONPORT_GC_TORTURE=1): spawn, join, cancel, timeouts, channels,
# scopes, the threadpool and IO inside user coroutines, with tasks dropped
# while their operations are in flight. Any object used without being
# pinned shows up here (as a crash, or under ASan as a use-after-free).
# Then the parts of torture.lua (channels, writefile, FIFOs).
set -u
MP=${MOONPORT:?}
out=$(MOONPORT_GC_TORTURE=1 timeout 120 "$MP" - <<'LUA'
local mp = require "moonport"
local results = {}
for round = 1, 3 do
  local ch = mp.channel(1)
  mp.scope(function(s)
    for i = 1, 4 do
      s:spawn(function()
        local gen = coroutine.wrap(function()
          for k = 1, 2 do mp.sleep(0.001) coroutine.yield(k) end
        end)
        ch:send(gen() + gen() + i)
      end)
    end
    for _ = 1, 4 do results[#results + 1] = ch:recv() end
  end)
  -- dropped tasks with work in flight: nobody keeps a reference
  for _ = 1, 5 do mp.spawn(function() mp.sleep(5) end) end
  local t = mp.spawn(function() return mp.work(function(x) return { x = x } end, round) end)
  assert(select(2, t:join()).x == round)
  local sleeper = mp.spawn(function() mp.sleep(5) end)
  mp.sleep(0.002)
  sleeper:cancel()
  assert(not sleeper:join())
  assert(not mp.timeout(0.005, mp.sleep, 5))
  collectgarbage()
end
local sum = 0
for _, v in ipairs(results) do sum = sum + v end
print(#results, sum)
os.exit(0)
LUA
)
st=$?
pass=0 fail=0
if [ $st -eq 0 ] && [ "$out" = "12	66" ]; then
  pass=$((pass + 1)); echo "ok - task machinery under GC torture"
else
  fail=$((fail + 1))
  echo "not ok - task machinery under GC torture (status $st, output '$out')"
fi

# torture.lua: channels under cancel/timeout storms (every value counted),
# writefile under cancel (no temporaries left), FIFOs with timeouts; each
# part once plainly and once under GC torture, with another seed.
here=$(dirname "$0")
for part in channels writefile fifo; do
  for run in "1 MOONPORT_GC_TORTURE=0" "2 MOONPORT_GC_TORTURE=1"; do
    set -- $run
    out=$(timeout 30 env "$2" "$MP" "$here/torture.lua" "$part" "$1" 2>&1)
    st=$?
    if [ $st -eq 0 ] && [ "$(echo "$out" | tail -1)" = "ok $part" ]; then
      pass=$((pass + 1)); echo "ok - $part seed $1 $2"
    else
      fail=$((fail + 1)); echo "not ok - $part seed $1 $2 (status $st)"
      echo "$out" | tail -5
    fi
  done
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
