-- Durations are numbers: mp.sleep("1"), mp.timeout("1", fn) and
-- settimeout("1") raise "number expected, got string" naming the
-- function, as the README documents, instead of converting the string
-- as Lua's own libraries would (a duration read as text is a mistake).
local mp = require "moonport"
local failed = 0
local function expect(what, pattern, fn)
  local ok, err = pcall(fn)
  if ok or not tostring(err):find(pattern, 1, true) then
    failed = failed + 1
    print("FAIL " .. what .. ": " .. (ok and "no error" or tostring(err)))
  end
end
expect("sleep", "bad argument #1 to 'sleep' (number expected, got string)",
       function() mp.sleep("1") end)
expect("sleep 0", "bad argument #1 to 'sleep' (number expected, got string)",
       function() mp.sleep("0") end)
expect("timeout", "bad argument #1 to 'timeout' (non-negative number "
       .. "expected, got string)", function() mp.timeout("1", print) end)
local server = assert(mp.net.listen("127.0.0.1", 0))
local _, port = server:sockname()
local udp = assert(mp.net.udp("127.0.0.1", 0))
local client = assert(mp.net.connect("127.0.0.1", port))
local peer = assert(server:accept())
for name, obj in pairs { stream = client, server = server, udp = udp } do
  expect(name .. ":settimeout",
         "bad argument #1 to 'settimeout' (number expected, got string)",
         function() obj:settimeout("1") end)
end
-- numbers still work
mp.sleep(0.001)
mp.sleep(0)
assert(client:settimeout(1) == client and client:settimeout(nil) == client)
assert(mp.timeout(1, function() return true end))
for _, s in ipairs { client, peer, server, udp } do s:close() end
if failed > 0 then os.exit(1) end
print("ok")
