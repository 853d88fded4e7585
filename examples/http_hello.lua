-- http_hello.lua: an HTTP/1.1 "Hello, World!" server on mp.http: keep-
-- alive, pipelining, limits and errors are the library's; the handler is
-- plain sequential Lua. (The same responder on raw sockets, for the
-- benchmarks, is bench/http/raw_hello.lua.)
--
--   moonport examples/http_hello.lua               self-test: serves on a
--       free port, sends itself requests with mp.http's client, exits
--   moonport examples/http_hello.lua --serve 8080  serves until killed
--       (bench/http_server.sh drives it with wrk; try curl 127.0.0.1:8080)
local mp = require "moonport"
if not mp.http then print("mp.http is not built in") return end

local function hello(req, res)
  res:header("Content-Type", "text/plain")
  if req.path == "/" then
    res:finish("Hello, World!")
  elseif req.path == "/echo" then -- the request body, back
    res:finish(req.body)
  else
    res:status(404):finish("no page " .. req.path .. "\n")
  end
end

if arg and arg[1] == "--serve" then
  local srv = assert(mp.http.serve("127.0.0.1", tonumber(arg[2]) or 8080,
                                   hello))
  print("listening on", srv:sockname())
  return
end

-- Self-test: three clients, each sending a few keep-alive requests.
local srv = assert(mp.http.serve("127.0.0.1", 0, hello))
local _, port = srv:sockname()
local base = "http://127.0.0.1:" .. port
mp.scope(function(s)
  for id = 1, 3 do
    s:spawn(function()
      local body, status = assert(mp.http.get(base .. "/"))
      assert(status == 200 and body == "Hello, World!")
      local res = assert(mp.http.request { url = base .. "/echo",
        method = "POST", body = "client " .. id })
      assert(res.status == 200 and res.body == "client " .. id)
      body, status = mp.http.get(base .. "/missing")
      assert(status == 404, status)
      print(("client %d: %s, echo %q, then %d"):format(id,
            "Hello, World!", res.body, status))
    end)
  end
end)
mp.http.close_idle()
srv:close()
print("ok")
