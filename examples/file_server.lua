-- file_server.lua: a static file server over HTTP/1.0 whose file bytes
-- never pass through Lua (stream:sendfile), one task per connection.
--
--   moonport examples/file_server.lua              self-test: serves a
--       private temporary directory (fs.mkdtemp) on a free port, fetches
--       its files, checks them, cleans up, exits
--   moonport examples/file_server.lua --serve DIR PORT   serves DIR
local mp = require "moonport"
local fs = mp.fs

local function reply(c, status, body)
  c:write("HTTP/1.0 ", status, "\r\nContent-Length: ", #body, "\r\n\r\n",
          body)
end

-- One request: GET /name, a file of root (no subdirectories, no "..").
local function serve(c, root)
  local line = c:read("l")
  repeat local h = c:read("l") until not h or h == "" or h == "\r"
  local name = line and line:match("^GET /([%w._-]+) HTTP/1%.[01]\r?$")
  local f = name and not name:find("..", 1, true) and
            fs.open(root .. "/" .. name)
  local st = f and f:stat()
  if not st or st.type ~= "file" then
    if f then f:close() end
    reply(c, "404 Not Found", "not found\n")
  else
    c:write("HTTP/1.0 200 OK\r\nContent-Length: ", st.size, "\r\n\r\n")
    local sent, err = c:sendfile(f)
    if not sent then io.stderr:write(name, ": ", err, "\n") end
    f:close()
  end
  c:close()
end

local function listen(root, port)
  local srv = assert(mp.net.listen("127.0.0.1", port))
  mp.spawn(function()
    while true do
      local c = srv:accept()
      if not c then break end -- closed
      mp.spawn(serve, c, root)
    end
  end)
  return srv
end

local function get(port, name)
  local c = assert(mp.net.connect("127.0.0.1", port))
  c:write("GET /", name, " HTTP/1.0\r\n\r\n")
  local status = c:read("l")
  local len
  repeat
    local h = c:read("l")
    len = len or tonumber(h:match("^Content%-Length: (%d+)"))
  until h == "\r" or h == ""
  local body = c:read("a")
  c:close()
  assert(#body == len, "short body")
  return status:match(" (%d+)"), body
end

if arg[1] == "--serve" then
  mp.run(function()
    listen(assert(arg[2], "DIR"), tonumber(arg[3]) or 8080)
    print("serving " .. arg[2])
  end)
  return
end

mp.run(function()
  local root = assert(fs.mkdtemp())
  local big = string.rep("moonport sendfile\n", 100000) -- 1.8 MB
  assert(fs.writefile(root .. "/big.txt", big))
  assert(fs.writefile(root .. "/empty", ""))
  local srv = listen(root, 0)
  local _, port = srv:sockname()
  local code, body = get(port, "big.txt")
  assert(code == "200" and body == big, "big.txt differs")
  code, body = get(port, "empty")
  assert(code == "200" and body == "")
  code = get(port, "missing")
  assert(code == "404")
  code = get(port, "..")
  assert(code == "404")
  srv:close()
  for _, name in ipairs(fs.dir(root)) do fs.remove(root .. "/" .. name) end
  assert(fs.rmdir(root))
  print("file_server: ok")
end)
