-- raw_hello.lua: the "Hello, World!" HTTP/1.1 keep-alive responder on raw
-- sockets (what examples/http_hello.lua was before mp.http): bench/http.sh
-- and bench/http_server.sh compare mp.http and other runtimes with it.
-- One task per connection, in plain sequential Lua.
--
--   moonport bench/http/raw_hello.lua               self-test: serves on a
--       free port, sends a few keep-alive requests to itself, exits
--   moonport bench/http/raw_hello.lua --serve 8080  serves until killed
--       (the benchmarks drive it with wrk)
local mp = require "moonport"

local BODY = "Hello, World!"
local RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" ..
                 "Content-Length: " .. #BODY .. "\r\n\r\n" .. BODY
local RESPONSE_CLOSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" ..
                       "Content-Length: " .. #BODY ..
                       "\r\nConnection: close\r\n\r\n" .. BODY

-- Serves one connection: requests (a request line and headers, no body)
-- until the peer closes or asks for Connection: close.
local function serve(c)
  c:setoption("nodelay", true)
  while true do
    local line = c:read("l")
    if not line then break end
    local keep = not line:find("HTTP/1.0", 1, true)
    while true do
      local h = c:read("l")
      if not h then c:close() return end
      if h == "\r" or h == "" then break end
      local b = h:byte(1)
      if b == 67 or b == 99 then -- only "Connection:" matters here
        local name, value = h:match("^([%w-]+):%s*(.-)\r?$")
        if name and name:lower() == "connection" then
          value = value:lower()
          if value == "close" then keep = false
          elseif value == "keep-alive" then keep = true end
        end
      end
    end
    if not c:write(keep and RESPONSE or RESPONSE_CLOSE) or not keep then
      break
    end
  end
  c:close()
end

local function listen(port)
  local srv = assert(mp.net.listen("127.0.0.1", port, { backlog = 1024 }))
  mp.spawn(function()
    while true do
      local c = srv:accept()
      if not c then break end -- closed
      mp.spawn(serve, c)
    end
  end)
  return srv
end

if arg and arg[1] == "--serve" then
  local srv = listen(tonumber(arg[2]) or 8080)
  print("listening on", srv:sockname())
  return
end

-- Self-test: three clients, each sending three keep-alive requests (one
-- of them split across writes), then a Connection: close request.
local srv = listen(0)
local _, port = srv:sockname()
mp.scope(function(s)
  for id = 1, 3 do
    s:spawn(function()
      local c = assert(mp.net.connect("127.0.0.1", port, { timeout = 5 }))
      c:settimeout(5)
      for i = 1, 4 do
        if i == 2 then
          c:write("GET / HTTP/1.1\r\nHo")
          mp.sleep(0.01)
          c:write("st: x\r\n\r\n")
        elseif i == 4 then
          c:write("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        else
          c:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        end
        local status = assert(c:read("l"))
        local len
        repeat
          local h = assert(c:read("l"))
          len = len or tonumber(h:match("^Content%-Length: (%d+)"))
        until h == "\r"
        local body = assert(c:read(len))
        assert(status == "HTTP/1.1 200 OK\r" and body == BODY)
        print(("client %d request %d: %s"):format(id, i, body))
      end
      local rest, err = c:read("a")
      assert(rest == "", err) -- the server closed after the last one
      c:close()
    end)
  end
end)
srv:close()
print("ok")
