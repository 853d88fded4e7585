-- bench/http/luv.lua: the http_hello responder with luv callbacks.
local uv = require "luv"
local port = tonumber(arg[1]) or 8080
local BODY = "Hello, World!"
local RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" ..
                 "Content-Length: " .. #BODY .. "\r\n\r\n" .. BODY
local server = uv.new_tcp()
server:bind("127.0.0.1", port)
server:listen(1024, function()
  local c = uv.new_tcp()
  server:accept(c)
  c:nodelay(true)
  local pending = ""
  c:read_start(function(err, data)
    if err or not data then c:close() return end
    pending = pending .. data
    local n, at = 0, 1
    while true do -- one response per complete request head
      local e = pending:find("\r\n\r\n", at, true)
      if not e then break end
      n, at = n + 1, e + 4
    end
    pending = pending:sub(at)
    if n > 0 then c:write(n == 1 and RESPONSE or RESPONSE:rep(n)) end
  end)
end)
uv.run()
