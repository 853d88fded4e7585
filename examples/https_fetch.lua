-- https_fetch.lua: an HTTPS client fetching from a local moonport HTTPS
-- server (docs/tls.md). The server is a keep-alive "Hello, World!"
-- responder; the client verifies its certificate against a test CA made
-- with the openssl command, as a real client checks against the system's.
--
--   moonport examples/https_fetch.lua       self-test: makes a CA and a
--       localhost certificate, serves on a free port, fetches three times
--       over one connection, exits
--   moonport examples/https_fetch.lua --serve PORT CERT KEY
--       serves until killed (bench/https.sh drives it with wrk)
local mp = require "moonport"

local BODY = "Hello, World!"
local RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" ..
                 "Content-Length: " .. #BODY .. "\r\n\r\n" .. BODY

-- One connection: requests (request line and headers, no body) until the
-- peer closes; the TLS handshake runs on the first read, in this task.
local function serve(c)
  c:setoption("nodelay", true)
  c:settimeout(30) -- covers the handshake too: a silent client is dropped
  while c:read("l") do
    repeat
      local h = c:read("l")
      if not h then c:close() return end
    until h == "\r" or h == ""
    if not c:write(RESPONSE) then break end
  end
  c:close()
end

local function listen(port, cert, key)
  local srv = assert(mp.net.listen("127.0.0.1", port, {
    backlog = 1024, tls = { cert = cert, key = key } }))
  mp.spawn(function()
    while true do
      local c = srv:accept() -- returns at once: no handshake here
      if not c then break end
      mp.spawn(serve, c)
    end
  end)
  return srv
end

if arg and arg[1] == "--serve" then
  local srv = listen(tonumber(arg[2]), arg[3], arg[4])
  print("listening on", srv:sockname())
  return
end

-- A GET over an open connection: the status line and the body.
local function get(s, path)
  assert(s:write("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n\r\n"))
  local status = assert(s:read("l"))
  local length
  while true do
    local h = assert(s:read("l"))
    if h == "\r" or h == "" then break end
    length = tonumber(h:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")) or length
  end
  return status:gsub("\r$", ""), assert(s:read(length))
end

-- Self-test.
if not mp.net.tls then
  print("moonport was built without TLS: nothing to show")
  return
end

local dir = assert(mp.fs.mkdtemp())
local function openssl(...)
  local out, status = mp.proc.run({ "openssl", ... },
                                  { stderr = "stdout" })
  assert(status == 0, out)
end
local EC = { "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes" }
local function args(t, ...)
  local r = {}
  for _, v in ipairs(t) do r[#r + 1] = v end
  for _, v in ipairs({ ... }) do r[#r + 1] = v end
  return table.unpack(r)
end
local p = function(f) return dir .. "/" .. f end
openssl("req", "-x509", args(EC, "-keyout", p("ca.key"), "-out",
        p("ca.pem"), "-days", "1", "-subj", "/CN=example CA"))
openssl("req", args(EC, "-keyout", p("localhost.key"), "-out",
        p("localhost.csr"), "-subj", "/CN=localhost"))
assert(mp.fs.writefile(p("ext.cnf"), "subjectAltName=DNS:localhost\n"))
openssl("x509", "-req", "-in", p("localhost.csr"), "-CA", p("ca.pem"),
        "-CAkey", p("ca.key"), "-CAcreateserial", "-out",
        p("localhost.pem"), "-days", "1", "-extfile", p("ext.cnf"))

local srv = listen(0, p("localhost.pem"), p("localhost.key"))
local _, port = srv:sockname()
local s = assert(mp.net.connect("localhost", port, {
  timeout = 10, tls = { cafile = p("ca.pem") } }))
local info = s:tlsinfo()
print(("connected: %s, %s, server %s"):format(info.version, info.cipher,
                                              info.peer))
for i = 1, 3 do
  local status, body = get(s, "/" .. i)
  print(status, body)
  assert(body == BODY)
end
s:close()
-- A client without the CA refuses the server, as it should.
local bad, msg, code = mp.net.connect("localhost", port, { tls = true })
assert(not bad and code == "ECERT", msg)
print("without the CA: " .. code)
srv:close()
for _, f in ipairs(mp.fs.dir(dir)) do mp.fs.remove(p(f)) end
mp.fs.rmdir(dir)
