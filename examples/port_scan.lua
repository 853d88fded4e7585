-- port_scan.lua: a concurrent TCP connect scanner, showing mp.scope and
-- timeouts. Each port is probed by its own task with a connect timeout;
-- the scope returns when every probe has finished.
--
--   moonport examples/port_scan.lua                 self-test on 127.0.0.1
--   moonport examples/port_scan.lua HOST FIRST LAST  scans HOST
local mp = require "moonport"

local function scan(host, first, last, timeout)
  local open = {}
  mp.scope(function(s)
    for port = first, last do
      s:spawn(function()
        local c = mp.net.connect(host, port, { timeout = timeout })
        if c then
          open[#open + 1] = port
          c:close()
        end
      end)
    end
  end)
  table.sort(open)
  return open
end

if arg and arg[1] then
  local host, first, last = arg[1], tonumber(arg[2]) or 1,
                            tonumber(arg[3]) or 1024
  local t0 = mp.now()
  local open = scan(host, first, last, 1.0)
  print(("%s: %d open of %d in %.2f s: %s"):format(host, #open,
        last - first + 1, mp.now() - t0, table.concat(open, " ")))
  return
end

-- Self-test: open three listeners, scan a window of ports around them.
local servers, want = {}, {}
for i = 1, 3 do
  servers[i] = assert(mp.net.listen("127.0.0.1", 0))
  local _, port = servers[i]:sockname()
  want[port] = true
end
local lo, hi = math.huge, 0
for port in pairs(want) do
  lo, hi = math.min(lo, port), math.max(hi, port)
end
if hi - lo > 2000 then lo = hi - 2000 end
local open = scan("127.0.0.1", lo, hi, 0.5)
local found = 0
for _, port in ipairs(open) do
  if want[port] then found = found + 1 end
end
print(("scanned %d ports, %d open, found %d of 3 listeners"):format(
  hi - lo + 1, #open, found))
assert(found == 3 or (hi - lo > 2000), "listener not found")
for _, s in ipairs(servers) do s:close() end
print("ok")
