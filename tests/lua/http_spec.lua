-- http_spec.lua: mp.http: the server against real clients (curl, Python's
-- http.client, raw sockets), the client against Python's http.server and
-- our server; limits, malformed requests, deadlines, pooling, redirects,
-- graceful close. 127.0.0.1 only; every test ends with no descriptor,
-- task or op left (helper.lua's leak check).
local H = require "helper"
local mp = H.mp
local http = mp.http

if not http then -- a build without libhttp-parser (MP_WITH_HTTP off)
  describe("mp.http", function() it("is not built in", function() end) end)
  return
end

local LOCAL = "127.0.0.1"
local QUIET = { on_error = function() end }

local function opts(t)
  local o = { on_error = QUIET.on_error }
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

-- The servers a test started: closed when it fails, so that mp.run
-- returns and reports the failure instead of waiting for them.
local servers = {}

-- Runs fn as a task; closes its servers and pooled connections however
-- it ends.
local function test(fn)
  return function()
    H.run(function()
      local ok, err = pcall(fn)
      for srv in pairs(servers) do pcall(srv.close, srv) end
      servers = {}
      http.close_idle()
      if not ok then error(err, 0) end
    end)
  end
end

-- A server on a free port: srv, base URL, port.
local function serve(handler, o)
  local srv = assert(http.serve(LOCAL, 0, handler, opts(o)))
  servers[srv] = true
  local _, port = srv:sockname()
  return srv, "http://127.0.0.1:" .. port, port
end

-- Sends bytes on a new connection, returns everything received until the
-- server closes (or "<timeout>" appended when it does not in `wait`).
local function raw(port, data, wait)
  local c = assert(mp.net.connect(LOCAL, port))
  c:settimeout(wait or 5)
  if type(data) == "table" then
    for _, d in ipairs(data) do
      assert(c:write(d))
      mp.sleep(0.01)
    end
  else
    assert(c:write(data))
  end
  local out, parts = nil, {}
  while true do
    local s, _, code = c:recv(65536)
    if not s then
      if code == "timeout" then parts[#parts + 1] = "<timeout>" end
      break
    end
    parts[#parts + 1] = s
  end
  c:close()
  out = table.concat(parts)
  return out
end

-- The clients run without LD_PRELOAD: under the sanitizers it names the
-- ASan runtime (for lua5.4), which hangs curl.
local CHILD_ENV = { PATH = os.getenv("PATH") or "/usr/bin:/bin",
                    HOME = os.getenv("HOME") or "/tmp", LANG = "C" }

local function run(argv, input)
  local out, status = mp.proc.run(argv, { input = input, env = CHILD_ENV })
  return out, status
end

local function echo(req, res)
  if req.path == "/echo" then
    res:header("Content-Type", "application/octet-stream")
    res:finish(req.body)
  elseif req.path == "/chunks" then
    for i = 1, 3 do res:write("part " .. i .. "\n") end
    res:finish()
  elseif req.path == "/fail" then
    error("handler failed on purpose")
  elseif req.path == "/headers" then
    res:header("Set-Cookie", "a=1")
    res:header("Set-Cookie", "b=2")
    res:header("X-Seen", req.headers["x-test"] or "none")
    res:finish(req.method .. " " .. req.path .. " " .. (req.query or ""))
  else
    res:header("Content-Type", "text/plain")
    res:finish("Hello, World!")
  end
end

describe("mp.http server", function()
  it("answers our client: status, body, lower-case headers, cookies",
     test(function()
    local srv, base = serve(echo)
    local body, status, headers = http.get(base .. "/")
    assert.are.equal("Hello, World!", body)
    assert.are.equal(200, status)
    assert.are.equal("text/plain", headers["content-type"])
    assert.are.equal("13", headers["content-length"])
    local res = assert(http.request { url = base .. "/headers?x=1&y=2",
      headers = { ["X-Test"] = "yes" } })
    assert.are.equal("GET /headers x=1&y=2", res.body)
    assert.are.same({ "a=1", "b=2" }, res.headers["set-cookie"])
    assert.are.equal("yes", res.headers["x-seen"])
    http.close_idle()
    srv:close()
  end))

  it("keeps a curl connection alive across requests", test(function()
    local srv, base = serve(echo)
    local out = run { "curl", "-s", "-w", " %{num_connects}\n",
                      base .. "/", base .. "/" }
    assert.are.equal("Hello, World! 1\nHello, World! 0\n", out)
    srv:close()
  end))

  it("takes a chunked upload from curl", test(function()
    local srv, base = serve(echo)
    local data = ("0123456789abcdef"):rep(20000) -- 320 KB
    local out = run({ "curl", "-s", "-H", "Transfer-Encoding: chunked",
                      "--data-binary", "@-", base .. "/echo" }, data)
    assert.are.equal(#data, #out)
    assert.is_true(out == data)
    srv:close()
  end))

  it("serves HTTP/1.0: no chunks, the close ends the body", test(function()
    local srv, base = serve(echo)
    local out = run { "curl", "-s", "-i", "--http1.0", base .. "/chunks" }
    assert.truthy(out:find("^HTTP/1.1 200 OK\r\n"))
    assert.falsy(out:lower():find("transfer%-encoding"))
    assert.truthy(out:find("\r\n\r\npart 1\npart 2\npart 3\n$"))
    out = run { "curl", "-s", "-i", "--http1.0", base .. "/" }
    assert.truthy(out:find("Connection: close\r\n", 1, true))
    assert.truthy(out:find("Content-Length: 13\r\n", 1, true))
    srv:close()
  end))

  it("sends 100 Continue when the handler reads the body", test(function()
    local srv, base, port = serve(echo)
    local out = run({ "curl", "-s", "-H", "Expect: 100-continue",
                      "--data-binary", "@-", base .. "/echo" },
                    "continued body")
    assert.are.equal("continued body", out)
    local c = assert(mp.net.connect(LOCAL, port))
    c:settimeout(5)
    c:write("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n" ..
            "Content-Length: 4\r\n\r\n")
    assert.are.equal("HTTP/1.1 100 Continue\r\n\r\n", c:read(25))
    c:write("body")
    local head = c:read("l")
    assert.are.equal("HTTP/1.1 200 OK\r", head)
    repeat local l = c:read("l") until l == "\r"
    assert.are.equal("body", c:read(4))
    c:close()
    srv:close()
  end))

  it("a handler that ignores an expected body closes the connection",
     test(function()
    local srv, _, port = serve(echo)
    local out = raw(port, "POST / HTTP/1.1\r\nHost: x\r\n" ..
      "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert.truthy(out:find("^HTTP/1.1 200 OK"))
    assert.falsy(out:find("100 Continue", 1, true))
    assert.truthy(out:find("Connection: close", 1, true))
    assert.falsy(out:find("<timeout>", 1, true))
    srv:close()
  end))

  it("talks to Python's http.client: keep-alive, POST, HEAD, chunks",
     test(function()
    local srv, _, port = serve(echo)
    local script = [[
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
for i in range(3):
    c.request("GET", "/")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"Hello, World!", i
c.request("POST", "/echo", body=b"py" * 1000)
r = c.getresponse()
assert r.read() == b"py" * 1000
c.request("HEAD", "/")
r = c.getresponse()
assert r.status == 200 and r.getheader("Content-Length") == "13"
assert r.read() == b""
c.request("GET", "/chunks")
r = c.getresponse()
assert r.getheader("Transfer-Encoding") == "chunked"
assert r.read() == b"part 1\npart 2\npart 3\n"
c.request("GET", "/")
assert c.getresponse().read() == b"Hello, World!"
print("ok", c.sock.getsockname()[1])
]]
    local out, status = run { "python3", "-c", script, tostring(port) }
    assert.are.equal(0, status)
    assert.truthy(out:find("^ok %d+"))
    srv:close()
  end))

  it("answers wrk's pipelined requests in order", test(function()
    local srv, base = serve(echo)
    local dir = H.tmpdir()
    local f = assert(io.open(dir .. "/pipe.lua", "w"))
    f:write([[
init = function(args)
  local r = {}
  for i = 1, 8 do r[i] = wrk.format("GET", "/") end
  req = table.concat(r)
end
request = function() return req end
]])
    f:close()
    local out, status = run { "wrk", "-t1", "-c4", "-d1s", "-s",
                              dir .. "/pipe.lua", base .. "/" }
    H.rmtree(dir)
    assert.are.equal(0, status)
    local n = tonumber(out:match("(%d+) requests in"))
    assert.truthy(n and n > 100, out)
    assert.falsy(out:find("Non%-2xx"), out)
    assert.falsy(out:find("Socket errors"), out)
    srv:close()
  end))

  it("answers pipelined requests in order on one connection", test(function()
    local srv, _, port = serve(function(req, res)
      if req.path == "/slow" then mp.sleep(0.05) end
      res:finish(req.path .. ":" .. (req.body or ""))
    end)
    local out = raw(port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" ..
      "POST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi" ..
      "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" ..
      "3\r\nabc\r\n0\r\n\r\n" ..
      "GET /d HTTP/1.1\r\nConnection: close\r\n\r\n")
    local bodies = {}
    for b in out:gmatch("\r\n\r\n([^H]*)") do bodies[#bodies + 1] = b end
    assert.are.same({ "/slow:", "/b:hi", "/c:abc", "/d:" }, bodies)
    srv:close()
  end))

  it("HEAD gets the headers of the GET without a body", test(function()
    local srv, _, port = serve(echo)
    local out = raw(port, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" ..
                          "HEAD /chunks HTTP/1.1\r\nConnection: close\r\n\r\n")
    local first, second = out:match("^(.-\r\n\r\n)(.*)$")
    assert.truthy(first:find("Content-Length: 13\r\n", 1, true))
    assert.truthy(second:find("^HTTP/1.1 200 OK\r\n"))
    assert.truthy(second:find("\r\n\r\n$"))
    srv:close()
  end))

  it("a handler that raises gets a 500 and the connection stays usable",
     test(function()
    local errors = {}
    local srv, _, port = serve(echo, { on_error = function(e, req)
      errors[#errors + 1] = req.path .. " " .. tostring(e):match("[^\n]*")
    end })
    local out = raw(port, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\n" ..
                          "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert.truthy(out:find("^HTTP/1.1 500 Internal Server Error\r\n"))
    assert.truthy(out:find("Hello, World!$"))
    assert.are.equal(1, #errors)
    assert.truthy(errors[1]:find("^/fail .*handler failed on purpose"))
    srv:close()
  end))

  it("finishes what a handler left unfinished; a broken stream closes",
     test(function()
    local srv, _, port = serve(function(req, res)
      if req.path == "/nothing" then return end
      if req.path == "/half" then
        res:write("half")
        return
      end
      res:write("streamed")
      error("after the headers")
    end)
    local out = raw(port, "GET /nothing HTTP/1.1\r\n\r\n" ..
                          "GET /half HTTP/1.1\r\n\r\n" ..
                          "GET /raise HTTP/1.1\r\n\r\n" ..
                          "GET /never HTTP/1.1\r\n\r\n")
    local a, b, c = out:match("^(HTTP/1.1 200 OK\r\n.-\r\n\r\n)" ..
      "(HTTP/1.1 200 OK\r\n.-\r\n\r\n4\r\nhalf\r\n0\r\n\r\n)" ..
      "(HTTP/1.1 200 OK\r\n.-\r\n\r\n8\r\nstreamed\r\n)$")
    assert.truthy(a, out)
    assert.truthy(a:find("Content-Length: 0\r\n", 1, true))
    assert.truthy(b and c, out)
    srv:close()
  end))

  it("res methods check their use", test(function()
    local errs = {}
    local srv, base = serve(function(req, res)
      errs[#errs + 1] = select(2, pcall(res.header, res, "Bad Name", "x"))
      errs[#errs + 1] = select(2, pcall(res.header, res, "X", "a\r\nb"))
      errs[#errs + 1] = select(2, pcall(res.status, res, 42))
      res:finish("done")
      errs[#errs + 1] = select(2, pcall(res.write, res, "more"))
    end)
    assert.are.equal("done", (http.get(base .. "/")))
    assert.are.equal(4, #errs)
    assert.truthy(errs[1]:find("bad argument #1 to 'header'", 1, true))
    assert.truthy(errs[2]:find("bad argument #2 to 'header'", 1, true))
    assert.truthy(errs[3]:find("bad argument #1 to 'status'", 1, true))
    assert.truthy(errs[4]:find("the response is finished", 1, true))
    srv:close()
  end))

  it("refuses malformed requests with 400 and closes", test(function()
    local srv, _, port = serve(echo)
    local cases = {
      "GARBAGE\r\n\r\n",
      "GET / HTTP/1.1 extra\r\n\r\n",
      "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
      -- request smuggling: conflicting framing
      "POST / HTTP/1.1\r\nContent-Length: 3\r\n" ..
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc",
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
    }
    for i, req in ipairs(cases) do
      local out = raw(port, req)
      assert.truthy(out:find("^HTTP/1.1 400 Bad Request\r\n"), i .. ": " .. out)
      assert.truthy(out:find("Connection: close\r\n", 1, true), i)
      assert.falsy(out:find("<timeout>", 1, true), i)
      assert.falsy(out:find("HTTP/1.1 200", 1, true), i)
    end
    srv:close()
  end))

  it("431 for an oversized header, 413 for an oversized body", test(function()
    local seen = 0
    local srv, _, port = serve(function(req, res)
      seen = seen + 1
      res:finish(req.body)
    end, { max_header = 1024, max_body = 1000 })
    local out = raw(port, "GET / HTTP/1.1\r\nX-Big: " ..
                          ("a"):rep(2000) .. "\r\n\r\n")
    assert.truthy(out:find("^HTTP/1.1 431 "), out)
    -- many small header lines add up too
    out = raw(port, "GET / HTTP/1.1\r\n" .. ("X: y\r\n"):rep(300) .. "\r\n")
    assert.truthy(out:find("^HTTP/1.1 431 "), out)
    -- a header that never ends
    local c = assert(mp.net.connect(LOCAL, port))
    c:settimeout(5)
    c:write("GET / HTTP/1.1\r\nX: ")
    for _ = 1, 20 do
      if not c:write(("b"):rep(100)) then break end
    end
    local got = c:read("a")
    c:close()
    assert.truthy(got:find("^HTTP/1.1 431 "), got)
    -- a length above the limit: refused before the body comes
    out = raw(port, "POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n")
    assert.truthy(out:find("^HTTP/1.1 413 "), out)
    -- a chunked body growing past the limit, read by the handler
    out = raw(port, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" ..
                    ("100\r\n" .. ("z"):rep(256) .. "\r\n"):rep(5) ..
                    "0\r\n\r\n")
    assert.truthy(out:find("^HTTP/1.1 413 "), out)
    assert.truthy(out:find("Connection: close", 1, true))
    -- within the limits
    out = raw(port, "POST / HTTP/1.1\r\nContent-Length: 3\r\n" ..
                    "Connection: close\r\n\r\nabc")
    assert.truthy(out:find("^HTTP/1.1 200 .*abc$"), out)
    assert.are.equal(2, seen)
    srv:close()
  end))

  it("drops a client too slow with its headers (slowloris)", test(function()
    local srv, _, port = serve(echo, { timeout = 0.3 })
    local t0 = mp.now()
    local c = assert(mp.net.connect(LOCAL, port))
    c:settimeout(5)
    local closed
    for _, b in ipairs { "G", "E", "T", " ", "/", " ", "H", "T", "T",
                         "P", "/", "1", ".", "1", "\r", "\n" } do
      local ok = c:write(b)
      mp.sleep(0.05)
      if not ok then closed = true break end
    end
    local got, _, code = c:read("a")
    c:close()
    assert.are.equal("", got or "", code)
    assert.truthy(mp.now() - t0 < 3)
    -- a client that sends nothing at all is dropped too
    t0 = mp.now()
    assert.are.equal("", raw(port, "", 5))
    assert.truthy(mp.now() - t0 < 3)
    srv:close()
  end))

  it("closes a keep-alive connection left idle", test(function()
    local srv, _, port = serve(echo, { idle = 0.2 })
    local t0 = mp.now()
    local out = raw(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5)
    assert.truthy(out:find("Hello, World!$"))
    assert.truthy(mp.now() - t0 < 3)
    srv:close()
  end))

  it("survives a peer closing mid-body", test(function()
    local got = mp.channel(1)
    local srv, base, port = serve(function(req, res)
      got:send(table.pack(req:read("a")))
      res:finish("x")
    end)
    local c = assert(mp.net.connect(LOCAL, port))
    c:write("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789")
    mp.sleep(0.05)
    c:close()
    local r = got:recv()
    assert.is_nil(r[1])
    assert.are.equal("string", type(r[2]))
    assert.are.equal("EHTTP", r[3])
    -- the server goes on
    local body = http.get(base .. "/x")
    assert.are.equal("x", body)
    http.close_idle()
    srv:close()
  end))

  it("streams a request body to the handler with read formats", test(function()
    local srv, base = serve(function(req, res)
      local lines = {}
      for _ = 1, 3 do lines[#lines + 1] = req:read("l") end
      local n = req:read("n")
      local rest = req:read(4)
      local tail = req:read("a")
      res:finish(table.concat(lines, ",") .. "|" .. tostring(n) .. "|" ..
                 rest .. "|" .. tail .. "|" .. tostring(req:read("l")))
    end)
    local pieces = { "one\ntw", "o\n", "three\n 42", " abcd", "efg" }
    local i = 0
    local res = assert(http.request { url = base, method = "POST",
      body = function() i = i + 1 return pieces[i] end })
    assert.are.equal("one,two,three|42| abc|defg|nil", res.body)
    -- a count longer than what is left fails and leaves the bytes
    srv:close()
    srv, base = serve(function(req, res)
      local a, msg, code = req:read(10)
      res:finish(tostring(a) .. " " .. code .. " " .. req:read("a"))
    end)
    assert.are.equal("nil EOF short", (http.request { url = base,
      method = "POST", body = "short" }).body)
    http.close_idle()
    srv:close()
  end))

  it("server:close() finishes the requests in flight", test(function()
    local started = mp.event()
    local srv, _, port = serve(function(req, res)
      started:set()
      mp.sleep(0.2)
      res:finish("late")
    end)
    local idle = assert(mp.net.connect(LOCAL, port))
    local t = mp.spawn(raw, port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    started:wait()
    mp.sleep(0.01)
    srv:close() -- returns once the in-flight request is answered
    local _, out = t:join()
    assert.truthy(out:find("Connection: close\r\n", 1, true))
    assert.truthy(out:find("late$"))
    idle:settimeout(5)
    assert.are.equal("", idle:read("a"))
    idle:close()
    assert.is_nil(mp.net.connect(LOCAL, port))
  end))

  it("serves 1,000 keep-alive clients at once", test(function()
    -- both ends live in this process: 2,000 descriptors (fewer clients
    -- where the descriptor limit is lower)
    local p = io.popen("ulimit -n")
    local limit = tonumber(p:read("l")) or 1024
    p:close()
    local N = math.min(1000, (limit - 200) // 2)
    local srv, _, port = serve(echo, { backlog = 1024 })
    local conns = {}
    for i = 1, N do
      conns[i] = assert(mp.net.connect(LOCAL, port))
      conns[i]:settimeout(20)
    end
    local req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    local want = "Hello, World!"
    mp.scope(function(s)
      for i = 1, N do
        s:spawn(function()
          local c = conns[i]
          for _ = 1, 2 do
            assert(c:write(req))
            local len
            repeat
              local l = assert(c:read("l"))
              len = len or tonumber(l:match("^Content%-Length: (%d+)"))
            until l == "\r"
            assert.are.equal(want, c:read(len))
          end
        end)
      end
    end)
    for i = 1, N do conns[i]:close() end
    srv:close()
  end))
end)

describe("mp.http client", function()
  local function pyserver(dir)
    local p = assert(mp.proc.spawn({ "python3", "-u", "-m", "http.server",
      "--bind", LOCAL, "0", "--directory", dir },
      { stdout = "pipe", stderr = "null", env = CHILD_ENV }))
    local line = assert(p.stdout:read("l"))
    local port = assert(tonumber(line:match("port (%d+)")), line)
    return p, "http://127.0.0.1:" .. port
  end

  it("gets files from Python's http.server, a 404 is no error", test(function()
    local dir = H.tmpdir()
    local data = ("line of text\n"):rep(10000)
    assert(mp.fs.writefile(dir .. "/a.txt", data))
    local p, base = pyserver(dir)
    local body, status, headers = http.get(base .. "/a.txt")
    assert.are.equal(200, status)
    assert.is_true(body == data)
    assert.are.equal(tostring(#data), headers["content-length"])
    body, status = http.get(base .. "/missing")
    assert.are.equal(404, status)
    assert.truthy(body:find("File not found"))
    local res = assert(http.request { url = base .. "/a.txt",
                                      method = "HEAD" })
    assert.are.equal("", res.body)
    res = assert(http.request { url = base .. "/a.txt", stream = true })
    local n = 0
    for _ = 1, 10000 do
      assert.are.equal("line of text", res:read("l"))
      n = n + 1
    end
    assert.is_nil(res:read("l"))
    assert.are.equal(10000, n)
    http.close_idle()
    p:kill()
    p:wait()
    p.stdout:close()
    H.rmtree(dir)
  end))

  it("reuses pooled connections, and retries one the server closed",
     test(function()
    local peers = {}
    local srv, base = serve(function(req, res)
      peers[req.headers["x-n"]] = true
      res:finish("ok")
    end, { idle = 0.1 })
    local seen = {}
    local srv2, base2 = serve(function(req, res)
      res:finish(req.headers.host)
    end)
    for i = 1, 5 do
      assert.are.equal("ok", (http.get(base .. "/", { headers = {
        ["X-N"] = tostring(i) } })))
    end
    assert.are.equal("127.0.0.1:" .. select(2, srv2:sockname()),
                     (http.get(base2 .. "/")))
    mp.sleep(0.3) -- the server closed the idle connection meanwhile
    assert.are.equal("ok", (http.get(base .. "/", { headers = {
      ["X-N"] = "6" } })))
    http.close_idle()
    srv:close()
    srv2:close()
  end))

  it("follows redirects only when asked", test(function()
    local srv, base = serve(function(req, res)
      if req.path == "/a" then
        res:status(302):header("Location", "/b?from=a"):finish()
      elseif req.path == "/b" then
        res:status(303):header("Location", "c"):finish()
      elseif req.path == "/c" then
        res:finish(req.method .. " c " .. (req.body or "") ..
                   (req.query or ""))
      elseif req.path == "/loop" then
        res:status(307):header("Location", "/loop"):finish()
      end
    end)
    local body, status, headers = http.get(base .. "/a")
    assert.are.equal(302, status)
    assert.are.equal("/b?from=a", headers.location)
    body, status = http.get(base .. "/a", { redirects = 5 })
    assert.are.equal(200, status)
    assert.are.equal("GET c ", body)
    local res = assert(http.request { url = base .. "/loop",
                                      redirects = 3 })
    assert.are.equal(307, res.status)
    http.close_idle()
    srv:close()
  end))

  it("times out: connect + headers + body under one deadline", test(function()
    local srv, base = serve(function(req, res)
      if req.path == "/slowbody" then
        res:write("first")
        mp.sleep(1)
        res:finish("second")
      else
        mp.sleep(1)
        res:finish("late")
      end
    end)
    local t0 = mp.now()
    local body, msg, code = http.get(base .. "/", { timeout = 0.2 })
    assert.is_nil(body)
    assert.are.equal("timeout", code, msg)
    body, msg, code = http.get(base .. "/slowbody", { timeout = 0.2 })
    assert.is_nil(body)
    assert.are.equal("timeout", code, msg)
    assert.truthy(mp.now() - t0 < 1.5)
    http.close_idle()
    srv:close()
  end))

  it("reports failures as nil, msg, code", test(function()
    local l = assert(mp.net.listen(LOCAL, 0))
    local _, port = l:sockname()
    l:close()
    local body, msg, code = http.get("http://127.0.0.1:" .. port .. "/")
    assert.is_nil(body)
    assert.are.equal("ECONNREFUSED", code, msg)
    body, msg, code = http.get("ftp://x/")
    assert.is_nil(body)
    assert.are.equal("EINVAL", code, msg)
    -- a peer that answers garbage
    local g = assert(mp.net.listen(LOCAL, 0))
    local _, gport = g:sockname()
    local t = mp.spawn(function()
      local c = g:accept()
      c:read("l")
      c:write("SPDY/9 nonsense\r\n\r\n")
      c:close()
    end)
    body, msg, code = http.get("http://127.0.0.1:" .. gport .. "/")
    assert.is_nil(body)
    assert.are.equal("EHTTP", code, msg)
    t:join()
    g:close()
    -- a body function that raises, or returns something else
    local srv2, base2 = serve(echo)
    assert.has_error(function()
      http.request { url = base2 .. "/echo", method = "POST",
                     body = function() error("no more data") end }
    end, "no more data")
    assert.has_error(function()
      http.request { url = base2 .. "/echo", method = "POST",
                     body = function() return {} end }
    end, "opts.body returned a table (string or nil expected)")
    srv2:close()
    assert.has_error(function() http.get(42) end)
    assert.has_error(function() http.request { url = "http://x/",
                                               method = "GE T" } end)
    assert.has_error(function() http.serve(LOCAL, 0, 42) end)
    -- header names and values that would split the request, at the
    -- caller's line, before any connection is made
    local line = debug.getinfo(1, "l").currentline
    for _, h in ipairs { { ["X\nY"] = "v" }, { X = "a\nb" },
                         { X = { "ok", "c\r\nd" } }, { X = { 1, "\r" } } } do
      local ok, err = pcall(function()
        local r = http.request { url = "http://127.0.0.1:1/", headers = h }
        return r
      end)
      assert.is_false(ok)
      assert.matches(":" .. line + 4 .. ": bad header %a+ in opts.headers$",
                     err)
    end
  end))

  it("sends a streamed body and reads a streamed response", test(function()
    local srv, base = serve(function(req, res)
      res:header("Content-Type", "text/plain")
      while true do
        local l = req:read("L")
        if not l then break end
        res:write(l:upper())
      end
      res:finish()
    end)
    local i = 0
    local res = assert(http.request { url = base .. "/up", method = "PUT",
      body = function()
        i = i + 1
        if i <= 100 then return "line " .. i .. "\n" end
      end, stream = true })
    assert.are.equal(200, res.status)
    assert.are.equal("chunked", res.headers["transfer-encoding"])
    assert.is_nil(res.body)
    for k = 1, 100 do assert.are.equal("LINE " .. k, res:read("l")) end
    assert.is_nil(res:read("l"))
    http.close_idle()
    srv:close()
  end))
end)

describe("mp.http over TLS", function()
  if not mp.net.tls then
    it("is not built in (MP_WITH_TLS off)", function() end)
    return
  end
  local dir = H.tmpdir()
  assert(os.execute("cd " .. dir .. " && openssl req -x509 -newkey ec " ..
    "-pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem " ..
    "-out cert.pem -days 2 -subj /CN=localhost " ..
    "-addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null"))
  local tls = { cert = dir .. "/cert.pem", key = dir .. "/key.pem" }

  it("serves https to curl and to our client, keep-alive included",
     test(function()
    local srv = serve(echo, { tls = tls })
    local _, port = srv:sockname()
    local base = "https://127.0.0.1:" .. port
    local out = run { "curl", "-s", "--cacert", tls.cert, "-w",
                      " %{num_connects}\n", base .. "/", base .. "/" }
    assert.are.equal("Hello, World! 1\nHello, World! 0\n", out)
    local body, status = http.get(base .. "/", { tls = {
      cafile = tls.cert } })
    assert.are.equal(200, status)
    assert.are.equal("Hello, World!", body)
    local res = assert(http.request { url = base .. "/echo", method = "POST",
      body = ("s"):rep(100000), tls = { cafile = tls.cert } })
    assert.are.equal(100000, #res.body)
    -- an unknown issuer is refused
    local b, msg, code = http.get("https://localhost:" .. port .. "/")
    assert.is_nil(b)
    assert.are.equal("ECERT", code, msg)
    http.close_idle()
    srv:close()
  end))

  it("cleans up", function() H.rmtree(dir) end)
end)
