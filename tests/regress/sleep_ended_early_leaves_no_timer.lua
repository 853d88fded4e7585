-- Sleeping tasks share one loop timer (lqueue.c, mp.sleep). A sleep that
-- ends before it is due (its task cancelled, an mp.timeout, its coroutine
-- abandoned, the task collected) takes its entry out; when no sleeper is
-- left, the timer must go too: one left armed for nothing is an op in
-- flight, so the scheduler did not see a deadlock until it fired (30 s
-- here, an hour in a real program) and a drained state waited for it.
local mp = require "moonport"

local function idle(what)
  mp.sleep(0) -- the cancelled timer's completion is taken
  local s = mp.debug.stats()
  assert(s.ops_inflight == 0 and s.timers == 0,
         what .. ": a timer is left armed (" .. s.ops_inflight .. " ops, "
         .. s.timers .. " timers)")
end

-- cancelled
local t = mp.spawn(function() mp.sleep(30) end)
mp.sleep(0)
t:cancel()
assert(select(2, t:join()) == "cancelled")
idle("cancel")

-- timed out, an earlier sleeper first
local early = mp.spawn(function() mp.sleep(0.001) end)
assert(mp.timeout(0.02, mp.sleep, 30) == false)
early:join()
idle("timeout")

-- abandoned: a coroutine sleeping inside a C call
assert(not pcall(table.sort, { 2, 1 }, function(a, b)
  coroutine.wrap(function() mp.sleep(30) end)()
  return a < b
end))
idle("abandoned")

print("ok")
