-- webhook_receiver.lua: receives webhooks over HTTP and writes each
-- delivery to its own file, atomically (mp.fs.writefile), so whatever
-- watches the directory never sees half a delivery.
--
--   POST /hook/<name>   with header X-Token: <secret>; the body is stored
--                       as DIR/<name>-<n>.json; 202 Accepted
--   GET  /hooks         the stored deliveries, one name per line
--
--   moonport examples/webhook_receiver.lua          self-test: a temporary
--       directory, deliveries from mp.http's client (one streamed), a bad
--       token, a body over the limit; checks the files; exits
--   moonport examples/webhook_receiver.lua --serve 8080 DIR SECRET
--       (try: curl -H 'X-Token: SECRET' -d '{"a":1}' 127.0.0.1:8080/hook/x)
local mp = require "moonport"
if not mp.http then print("mp.http is not built in") return end

local function receiver(dir, secret)
  local n = 0
  return function(req, res)
    local name = req.path:match("^/hook/([%w_-]+)$")
    if req.method == "POST" and name then
      if req.headers["x-token"] ~= secret then
        return res:status(401):finish("bad token\n")
      end
      local body = req.body -- raises past max_body: the server sends 413
      n = n + 1
      local file = ("%s/%s-%d.json"):format(dir, name, n)
      assert(mp.fs.writefile(file, body))
      print(("stored %d bytes in %s"):format(#body, file))
      return res:status(202):finish("stored\n")
    elseif req.method == "GET" and req.path == "/hooks" then
      local names = assert(mp.fs.dir(dir))
      table.sort(names)
      return res:finish(table.concat(names, "\n") .. "\n")
    end
    res:status(404):finish("unknown\n")
  end
end

local function serve(port, dir, secret)
  return assert(mp.http.serve("127.0.0.1", port, receiver(dir, secret),
                              { max_body = 1024 * 1024 }))
end

if arg and arg[1] == "--serve" then
  local dir, secret = assert(arg[3], "DIR expected"), arg[4] or "secret"
  local srv = serve(tonumber(arg[2]) or 8080, dir, secret)
  print("listening on", srv:sockname())
  return
end

-- Self-test.
local dir = assert(mp.fs.mkdtemp())
local srv = serve(0, dir, "s3cret")
local base = "http://127.0.0.1:" .. select(2, srv:sockname())
local auth = { ["X-Token"] = "s3cret" }
mp.scope(function(s)
  for i = 1, 3 do
    s:spawn(function()
      local res = assert(mp.http.request { url = base .. "/hook/build",
        method = "POST", headers = auth, body = ('{"run":%d}'):format(i) })
      assert(res.status == 202, res.status)
    end)
  end
end)
-- a streamed delivery: chunked on the wire
local parts, i = { '{"log":[', '"a",', '"b"', "]}" }, 0
local res = assert(mp.http.request { url = base .. "/hook/log",
  method = "POST", headers = auth,
  body = function() i = i + 1 return parts[i] end })
assert(res.status == 202)
res = assert(mp.http.request { url = base .. "/hook/x", method = "POST",
                               body = "{}", headers = { ["X-Token"] = "no" } })
assert(res.status == 401)
res = assert(mp.http.request { url = base .. "/hook/big", method = "POST",
  headers = auth, body = ("x"):rep(2 * 1024 * 1024) })
assert(res.status == 413, res.status)
local list = assert(mp.http.get(base .. "/hooks"))
assert(list == "build-1.json\nbuild-2.json\nbuild-3.json\nlog-4.json\n", list)
assert(mp.fs.readfile(dir .. "/log-4.json") == '{"log":["a","b"]}')
print("deliveries:", (list:gsub("\n", " ")))
mp.http.close_idle()
srv:close()
for _, f in ipairs(mp.fs.dir(dir)) do mp.fs.remove(dir .. "/" .. f) end
mp.fs.rmdir(dir)
print("ok")
