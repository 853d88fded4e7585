-- bench/parked/cqueues.lua N: per-item memory of N cqueues coroutines
-- parked in cqueues.sleep(3600) ("<lua bytes> <rss bytes>", as
-- moonport.lua measures it).
local cqueues = require "cqueues"
local n = tonumber(arg[1] or 100000)
local function rss()
  local f = assert(io.open("/proc/self/status"))
  local kb = f:read("a"):match("VmRSS:%s*(%d+)")
  f:close()
  return tonumber(kb) * 1024
end
local cq, keep = cqueues.new(), {}
local function settle()
  for _ = 1, 3 do assert(cq:step(0)) end
  collectgarbage()
  collectgarbage()
end
settle()
local lua0, rss0 = collectgarbage("count") * 1024, rss()
for i = 1, n do
  keep[i] = cq:wrap(function() cqueues.sleep(3600) end)
end
settle()
local lua1, rss1 = collectgarbage("count") * 1024, rss()
print(("%.0f %.0f"):format((lua1 - lua0) / n, (rss1 - rss0) / n))
os.exit(0)
