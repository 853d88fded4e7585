-- port_scan.lua: a concurrent TCP connect scanner, showing mp.scope and
-- timeouts. Each port is probed by its own task with a connect timeout;
-- the scope returns when every probe has finished.
--
--   moonport examples/port_scan.lua                 self-test on 127.0.0.1
--   moonport examples/port_scan.lua HOST FIRST LAST  scans HOST
local mp = require "moonport"

-- Probes every port in the array; returns the open ones, sorted.
local function scan(host, ports, timeout)
  local open = {}
  mp.scope(function(s)
    for _, port in ipairs(ports) do
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
  local t0, ports = mp.now(), {}
  for port = first, last do ports[#ports + 1] = port end
  local open = scan(host, ports, 1.0)
  print(("%s: %d open of %d in %.2f s: %s"):format(host, #open,
        last - first + 1, mp.now() - t0, table.concat(open, " ")))
  return
end

-- Self-test: open three listeners and scan the 21 ports around each.
local servers, want, ports, seen = {}, {}, {}, {}
for i = 1, 3 do
  servers[i] = assert(mp.net.listen("127.0.0.1", 0))
  local _, port = servers[i]:sockname()
  want[port] = true
  for p = math.max(1, port - 10), math.min(65535, port + 10) do
    if not seen[p] then
      seen[p] = true
      ports[#ports + 1] = p
    end
  end
end
local open = scan("127.0.0.1", ports, 0.5)
local found = 0
for _, port in ipairs(open) do
  if want[port] then found = found + 1 end
end
print(("scanned %d ports, %d open, found %d of 3 listeners"):format(
  #ports, #open, found))
assert(found == 3, "a listener was not found")
for _, s in ipairs(servers) do s:close() end
print("ok")
