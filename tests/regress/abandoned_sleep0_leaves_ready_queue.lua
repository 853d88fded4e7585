-- mp.sleep(0) queues its task as ready, then yields. When that yield
-- cannot reach the scheduler (a coroutine.wrap called where the task
-- cannot suspend, here a table.sort comparator), the task was left in the
-- ready queue while it went on running: once it ended and was collected,
-- the queue held freed memory (a use-after-free under ASan, a crash or a
-- double finish otherwise). Found by the allocation sweep (coroutine_wrap,
-- N=17: the same stale entry after a memory error in the wrapper).
local mp = require "moonport"

local t = mp.spawn(function()
  local ok, err = pcall(table.sort, {3, 1, 2}, function(a, b)
    local g = coroutine.wrap(function() mp.sleep(0) end)
    g()
    return a < b
  end)
  assert(not ok and err:find("C%-call boundary"), err)
  return "done"
end)
assert(select(2, t:join()) == "done")
t = nil
collectgarbage()
collectgarbage()
-- More turns: a stale entry would be resumed (or freed memory read) now.
for _ = 1, 3 do mp.sleep(0) end
mp.sleep(0.01)
local s = mp.debug.stats()
assert(s.tasks == 1, "tasks alive: " .. s.tasks) -- the script itself
print("ok")
