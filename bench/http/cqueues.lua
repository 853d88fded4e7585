-- bench/http/cqueues.lua: the http_hello responder with cqueues coroutines.
local cqueues = require "cqueues"
local socket = require "cqueues.socket"
local port = tonumber(arg[1]) or 8080
local BODY = "Hello, World!"
local RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" ..
                 "Content-Length: " .. #BODY .. "\r\n\r\n" .. BODY
local cq = cqueues.new()
local srv = socket.listen { host = "127.0.0.1", port = port, nodelay = true }
cq:wrap(function()
  for c in srv:clients() do
    cq:wrap(function()
      -- cqueues raises on a reset peer (wrk closes with RST): end quietly
      c:onerror(function(_, _, code) return code end)
      c:setmode("b", "bf") -- binary, output fully buffered (flushed per reply)
      while true do
        local line = c:read("*l")
        if not line then break end
        repeat
          local h = c:read("*l")
          if not h then c:close() return end
        until h == "" or h == "\r"
        c:write(RESPONSE)
        c:flush()
      end
      c:close()
    end)
  end
end)
assert(cq:loop())
