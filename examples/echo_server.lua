-- echo_server.lua: a line echo server, one task per client.
--
--   moonport examples/echo_server.lua               self-test: serves on a
--       free port, runs a few clients against itself, exits
--   moonport examples/echo_server.lua --serve 7000  serves until killed
--       (try: nc 127.0.0.1 7000)
local mp = require "moonport"

local function handle(c)
  local peer, port = c:peername()
  print("connected", peer, port)
  while true do
    local line, err, code = c:read("L") -- keeps the newline
    if not line then
      if code ~= "EOF" then print("read failed:", err) end
      break
    end
    if not c:write(line) then break end
  end
  c:close()
  print("disconnected", peer, port)
end

local function serve(srv)
  while true do
    local c = srv:accept()
    if not c then return end -- the server was closed
    mp.spawn(handle, c)
  end
end

if arg and arg[1] == "--serve" then
  local srv = assert(mp.net.listen("*", tonumber(arg[2]) or 7000))
  print("echo server on", srv:sockname())
  serve(srv)
  return
end

local srv = assert(mp.net.listen("127.0.0.1", 0))
local _, port = srv:sockname()
local acceptor = mp.spawn(serve, srv)
mp.scope(function(s)
  for id = 1, 3 do
    s:spawn(function()
      local c <close> = assert(mp.net.connect("127.0.0.1", port))
      for i = 1, 3 do
        local msg = ("client %d line %d\n"):format(id, i)
        assert(c:write(msg))
        assert(c:read("L") == msg)
      end
      c:shutdown() -- the server sees EOF and hangs up
      assert(c:read("a") == "")
      print("client " .. id .. " done")
    end)
  end
end)
srv:close() -- the acceptor's pending accept returns nil, "closed"
acceptor:join()
print("ok")
