-- bench/parked/luv.lua N: per-item memory of N luv timers pending for an
-- hour, each with its own callback closure ("<lua bytes> <rss bytes>").
local uv = require "luv"
local n = tonumber(arg[1] or 100000)
local function rss()
  local f = assert(io.open("/proc/self/status"))
  local kb = f:read("a"):match("VmRSS:%s*(%d+)")
  f:close()
  return tonumber(kb) * 1024
end
local keep = {}
collectgarbage()
collectgarbage()
local lua0, rss0 = collectgarbage("count") * 1024, rss()
for i = 1, n do
  local t = uv.new_timer()
  t:start(3600 * 1000, 0, function() keep[i] = nil end)
  keep[i] = t
end
uv.run("nowait")
collectgarbage()
collectgarbage()
local lua1, rss1 = collectgarbage("count") * 1024, rss()
print(("%.0f %.0f"):format((lua1 - lua0) / n, (rss1 - rss0) / n))
os.exit(0)
