-- A sleeping task has no op: the sleepers' timer readies it when due
-- (lqueue.c, mp.sleep). When its mp.timeout deadline (or a cancel) had
-- readied it already in the same loop turn, the timer queued it a second
-- time: the ready queue looped on it, and the task was resumed again
-- after it ended ("cannot resume dead coroutine", or a freed task).
-- Here the script holds the loop until both timers are due, so they
-- fire in one turn.
local mp = require "moonport"

local function hold(s) -- the loop waits meanwhile
  local t0 = os.clock()
  while os.clock() - t0 < s do end
end

for round = 1, 5 do
  local ends = 0
  local tasks = {}
  for i = 1, 4 do
    tasks[i] = mp.spawn(function()
      local ok, why = mp.timeout(0.001, mp.sleep, 0.002)
      assert(ok == false and why == "timeout", tostring(why))
      ends = ends + 1
      return i
    end)
  end
  local c = mp.spawn(function() mp.sleep(0.002) end)
  mp.sleep(0) -- every task is asleep
  c:cancel()  -- readied by the cancel, due in the same turn
  hold(0.01)
  for i = 1, 4 do
    local ok, v = tasks[i]:join()
    assert(ok and v == i, "round " .. round .. ": task " .. i .. ": "
           .. tostring(v))
  end
  assert(select(2, c:join()) == "cancelled")
  assert(ends == 4, "round " .. round .. ": " .. ends .. " ends")
  for _ = 1, 3 do mp.sleep(0) end -- a stale entry would run now
end
print("ok")
