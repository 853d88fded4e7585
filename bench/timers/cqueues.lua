-- bench/timers/cqueues.lua MODE N: the same workloads with cqueues
-- coroutines (cq:wrap) and cqueues.sleep.
local cqueues = require "cqueues"
local mode, n = arg[1], tonumber(arg[2])
local cq = cqueues.new()
local t0 = cqueues.monotime()
local done = 0
if mode == "sleep" then
  math.randomseed(42)
  for _ = 1, n do
    local d = math.random() * 0.1
    cq:wrap(function() cqueues.sleep(d) done = done + 1 end)
  end
else
  local function f(i) done = done + 1 return i end
  for i = 1, n do cq:wrap(f, i) end
end
assert(cq:loop())
assert(done == n)
print(("%.1f"):format((cqueues.monotime() - t0) * 1000))
