-- bench/timers/moonport.lua MODE N: "sleep" (N tasks each sleep a random
-- 0-100 ms once) or "spawn" (spawn N trivial tasks, join them all).
local mp = require "moonport"
local mode, n = arg[1], tonumber(arg[2])
local t0 = mp.now()
if mode == "sleep" then
  local done = 0
  math.randomseed(42)
  for _ = 1, n do
    mp.spawn(function(d) mp.sleep(d) done = done + 1 end, math.random() * 0.1)
  end
  while done < n do mp.sleep(0.01) end
else
  local tasks = {}
  local function f(i) return i end
  for i = 1, n do tasks[i] = mp.spawn(f, i) end
  for i = 1, n do assert(select(2, tasks[i]:join()) == i) end
end
print(("%.1f"):format((mp.now() - t0) * 1000))
