-- Argument errors from mp.net carry the position of the caller's line, not
-- a line inside moonport.net, whichever check raised them.
local mp = require "moonport"
local failed = 0
local function expect(fn, pattern)
  local line = debug.getinfo(fn, "S").linedefined
  local ok, err = pcall(fn)
  local want = "net_argument_errors_blame_the_caller.lua:" .. line .. ": "
  if ok or not err:find(want, 1, true) or not err:find(pattern) then
    failed = failed + 1
    print("FAIL line " .. line .. ": " .. tostring(err))
  end
end
expect(function() mp.net.connect(nil, 80) end, "#1 to 'connect'")
expect(function() mp.net.connect("h", "x") end, "#2 to 'connect'")
expect(function() mp.net.connect("h", 99999) end, "out of range")
expect(function() mp.net.connect("h", 1, 5) end, "#3 to 'connect'")
expect(function() mp.net.listen("h", 1, { timeout = -1 }) end, "timeout")
expect(function() mp.net.listen("h", 1, { backlog = 0 }) end, "backlog")
expect(function() mp.net.resolve(false) end, "#1 to 'resolve'")
expect(function() mp.net.connect_unix(1) end, "'connect_unix'")
local u = assert(mp.net.udp())
expect(function() u:sendto("x", "h", 0) end, "'sendto'")
u:close()
if failed > 0 then os.exit(1) end
print("ok")
