-- bench/timers/luv.lua MODE N: the same workloads with luv callbacks
-- (no coroutines): a timer per sleeper; "spawn" schedules N zero-delay
-- callbacks on the next turn and counts them back.
local uv = require "luv"
local mode, n = arg[1], tonumber(arg[2])
local t0 = uv.hrtime()
local done = 0
if mode == "sleep" then
  math.randomseed(42)
  for _ = 1, n do
    local t = uv.new_timer()
    t:start(math.floor(math.random() * 100), 0, function()
      t:close()
      done = done + 1
    end)
  end
else
  local results = {}
  local idle = uv.new_idle()
  local queue, head = {}, 1
  local function f(i) return i end
  for i = 1, n do queue[i] = i end
  idle:start(function()
    while head <= n do
      local i = queue[head]
      head = head + 1
      results[i] = f(i)
      done = done + 1
    end
    idle:stop()
    idle:close()
  end)
end
uv.run()
assert(done == n)
print(("%.1f"):format((uv.hrtime() - t0) / 1e6))
