-- reverse_proxy.lua: a small HTTP reverse proxy on mp.http. Each request
-- is forwarded to the upstream with mp.http's client (pooled keep-alive
-- connections); bodies stream both ways, never held whole in memory.
--
--   moonport examples/reverse_proxy.lua      self-test: an upstream, the
--       proxy in front of it, requests through the proxy (a streamed
--       upload, a streamed download, an upstream that is down), exits
--   moonport examples/reverse_proxy.lua --serve 8080 http://127.0.0.1:9000
local mp = require "moonport"
if not mp.http then print("mp.http is not built in") return end

-- Headers that belong to one connection, not to the message (RFC 9110).
local HOP = { connection = true, ["keep-alive"] = true, te = true,
              trailer = true, ["transfer-encoding"] = true, upgrade = true,
              ["proxy-connection"] = true, host = true,
              ["content-length"] = true }

local function proxy(upstream)
  return function(req, res)
    local headers = { ["X-Forwarded-For"] = "client" }
    for name, value in pairs(req.headers) do
      if not HOP[name] then headers[name] = value end
    end
    local body -- the request body, streamed in pieces as it arrives
    if req.headers["content-length"] or req.headers["transfer-encoding"] then
      body = function()
        local piece = req:read(16384)
        if piece then return piece end
        local rest = req:read("a") -- what is left past the last full piece
        if rest and rest ~= "" then return rest end
      end
    end
    local up, msg = mp.http.request { url = upstream .. req.url,
      method = req.method, headers = headers, body = body, stream = true,
      timeout = 30 }
    if not up then
      return res:status(502):finish("upstream: " .. msg .. "\n")
    end
    res:status(up.status)
    for name, value in pairs(up.headers) do
      if not HOP[name] then
        if type(value) == "table" then -- set-cookie
          for _, v in ipairs(value) do res:header(name, v) end
        else
          res:header(name, value)
        end
      end
    end
    while true do
      local piece = up:read(16384)
      if not piece then
        local rest = up:read("a")
        if rest and rest ~= "" then res:write(rest) end
        break
      end
      if not res:write(piece) then up:close() return end -- client gone
    end
    res:finish()
  end
end

if arg and arg[1] == "--serve" then
  local srv = assert(mp.http.serve("127.0.0.1", tonumber(arg[2]) or 8080,
                                   proxy(arg[3] or "http://127.0.0.1:9000")))
  print("listening on", srv:sockname())
  return
end

-- Self-test: an upstream that echoes uploads (upper-cased) and serves a
-- large generated download.
local upstream = assert(mp.http.serve("127.0.0.1", 0, function(req, res)
  if req.path == "/upper" then
    res:header("Content-Type", "text/plain")
    for line in function() return req:read("L") end do
      res:write(line:upper())
    end
    res:finish()
  elseif req.path == "/big" then
    res:header("Set-Cookie", "a=1"):header("Set-Cookie", "b=2")
    for i = 1, 1000 do res:write(("row %04d\n"):format(i)) end
    res:finish()
  else
    res:status(404):finish("no " .. req.path .. "\n")
  end
end))
local up_url = "http://127.0.0.1:" .. select(2, upstream:sockname())
local front = assert(mp.http.serve("127.0.0.1", 0, proxy(up_url)))
local base = "http://127.0.0.1:" .. select(2, front:sockname())

local i = 0
local res = assert(mp.http.request { url = base .. "/upper", method = "POST",
  body = function()
    i = i + 1
    if i <= 3 then return "line " .. i .. "\n" end
  end })
assert(res.status == 200 and res.body == "LINE 1\nLINE 2\nLINE 3\n", res.body)
res = assert(mp.http.request { url = base .. "/big" })
assert(res.status == 200 and #res.body == 9000, #res.body)
assert(res.headers["set-cookie"][2] == "b=2")
local body, status = mp.http.get(base .. "/nothing")
assert(status == 404 and body == "no /nothing\n", status)
print("through the proxy: upload, 9000-byte download, 404")
upstream:close()
mp.http.close_idle()
body, status = mp.http.get(base .. "/upper")
assert(status == 502, status)
print("upstream down:", status, (body:gsub("\n", "")))
mp.http.close_idle()
front:close()
print("ok")
