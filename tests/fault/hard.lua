-- hard.lua: run under MP_FAULT_HARD=1 (tests/fault/run.sh): socket and file
-- ops fail with errors nobody asked for (ECANCELED on io_uring although
-- nobody cancelled; ENOMEM, EMFILE, EAGAIN from the shim on epoll), among
-- the transient faults. Every call must come back in bounded time with its
-- result or nil, message, code: never hang, never raise "cancelled" (the
-- task was not cancelled), never crash.
local mp = require "moonport"
local seen, calls = 0, 0
local function call(what, fn, ...)
  local ok, r, msg, code = mp.timeout(5, fn, ...)
  assert(ok, what .. ": " .. tostring(r) .. " (hung or raised)")
  calls = calls + 1
  if r == nil then
    assert(type(msg) == "string" and code, what .. ": error without a code")
    seen = seen + 1
  end
  return r
end

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))
local srv = assert(mp.net.listen("127.0.0.1", 0))
local _, port = srv:sockname()
for i = 1, 40 do
  local c = call("connect", mp.net.connect, "127.0.0.1", port)
  if c then
    local s = call("accept", srv.accept, srv)
    if s then
      call("write", c.write, c, ("x"):rep(100000), "\n")
      c:close() -- so the reads below end at EOF at the latest
      call("read", s.read, s, "l")
      call("recv", s.recv, s, 10)
      s:close()
    else
      c:close()
    end
  end
  local f = mp.fs.open(dir .. "/f" .. i, "w+")
  if f then
    if call("file write", f.write, f, ("y"):rep(70000)) then
      call("flush", f.flush, f)
    end
    call("file seek+read", function()
      f:seek("set", 0)
      return f:read("a")
    end)
    f:close()
  end
  call("readfile", mp.fs.readfile, "/etc/passwd")
end
srv:close()
os.execute("rm -rf " .. dir)
assert(seen > 0, "no injected error reached a caller")
print("ok", calls, seen)
