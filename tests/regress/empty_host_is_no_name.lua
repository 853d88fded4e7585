-- An empty host names nothing: resolve, connect and udp:sendto fail with
-- EAI_NONAME, as a name the resolver refuses (only listen and udp treat
-- "" as every local address, not tried here: tests bind 127.0.0.1 only).
-- The portable getaddrinfo op reads an empty host as the loopback; the
-- binding must not pass it on.
local mp = require "moonport"
local failed = 0
local function expect_noname(what, ok, msg, code)
  if ok or code ~= "EAI_NONAME" or not tostring(msg):find("^resolve : ") then
    failed = failed + 1
    print(("FAIL %s: %s %s %s"):format(what, tostring(ok), tostring(msg),
                                      tostring(code)))
  end
end
mp.run(function()
  expect_noname("resolve", mp.net.resolve(""))
  expect_noname("connect", mp.net.connect("", 9))
  local u = assert(mp.net.udp("127.0.0.1", 0))
  local _, port = u:sockname()
  local s = assert(mp.net.udp())
  expect_noname("sendto", s:sendto("x", "", port))
  s:close()
  u:close()
end)
if failed > 0 then os.exit(1) end
print("ok")
