-- A script's own coroutine suspended in a moonport call, then abandoned
-- (its resumer could not suspend the task: table.sort's comparator under
-- pcall) or resumed by another task, must raise "operation abandoned" when
-- resumed, never touch the operation it gave up (a segfault in the read
-- continuation), and leave the object it used working: for every call that
-- suspends.
local mp = require "moonport"
local fs, net = mp.fs, mp.net
-- files read from the page cache, and opened from the dentry cache on
-- epoll, would not suspend at all (files.md): every file call an op
fs._nowait(false)

local failures = 0
local function check(cond, what)
  if not cond then
    failures = failures + 1
    print("FAIL: " .. what)
  end
end

local dir = os.tmpname()
os.remove(dir)
assert(fs.mkdir(dir))
local n = 0
local function tmpfile(content)
  n = n + 1
  local p = dir .. "/f" .. n
  local h = assert(io.open(p, "wb"))
  h:write(content or "")
  h:close()
  return p
end
local function slurp(p)
  local h = assert(io.open(p, "rb"))
  local s = h:read("a")
  h:close()
  return s
end

-- Churns the op pool and the allocator so a stale pointer would be reused.
local function churn()
  for _ = 1, 3 do
    local f = assert(fs.open(tmpfile("x\n")))
    f:read("a")
    f:close()
    mp.sleep(0.001)
  end
  collectgarbage()
end

-- Abandons the coroutine running fn in a table.sort comparator, then
-- resumes it and expects "operation abandoned"; after() checks the object.
local function abandoned(name, fn, after)
  local co = coroutine.create(fn)
  local ok, err = pcall(table.sort, { 1, 2 }, function(a, b)
    coroutine.resume(co)
    return a < b
  end)
  check(not ok and tostring(err):find("C%-call boundary"),
        name .. ": suspending in the comparator: " .. tostring(err))
  check(coroutine.status(co) == "suspended", name .. ": still suspended")
  churn()
  local rok, rerr = coroutine.resume(co)
  check(not rok and tostring(rerr):find("operation abandoned", 1, true),
        name .. ": resumed later: " .. tostring(rok) .. " " .. tostring(rerr))
  churn()
  if after then after() end
end

-- Task a suspends in fn inside its coroutine; task b resumes that
-- coroutine: b gets "operation abandoned", a goes on at once (it stops
-- waiting for what it started; its coroutine is dead).
local function stolen(name, fn, after)
  local co = coroutine.create(fn)
  local a = mp.spawn(function() return coroutine.resume(co) end)
  mp.sleep(0) -- a suspends
  local b = mp.spawn(function() return coroutine.resume(co) end)
  local _, bok, berr = b:join()
  check(not bok and tostring(berr):find("operation abandoned", 1, true),
        name .. " (stolen): " .. tostring(bok) .. " " .. tostring(berr))
  local r = table.pack(mp.timeout(5, a.join, a))
  check(r[1] == true and r[2] == true and r[3] == false,
        name .. " (stolen): the first task went on: " .. tostring(r[1])
        .. " " .. tostring(r[2]) .. " " .. tostring(r[3]))
  churn()
  if after then after() end
end

-- Files -------------------------------------------------------------------
for _, fmt in ipairs { "l", "L", "n", "a", 5 } do
  local f = assert(fs.open(tmpfile("12\nline two\n")))
  abandoned("read " .. fmt, function() return f:read(fmt) end, function()
    check(f:read("a") == "12\nline two\n", "read " .. fmt ..
          ": the file reads from the start afterwards")
    f:close()
  end)
end
do
  local f = assert(fs.open(tmpfile("a\nb\n")))
  abandoned("lines", function() for l in f:lines() do return l end end,
            function()
    check(f:read("l") == "a", "lines: file usable")
    f:close()
  end)
  local g = assert(fs.open(tmpfile("a\nb\n")))
  stolen("read", function() return g:read("l") end, function()
    check(g:read("a") ~= nil, "read (stolen): file usable")
    g:close()
  end)
end
do
  local p = tmpfile()
  local f = assert(fs.open(p, "w"))
  abandoned("flush", function() f:write("hello") return f:flush() end,
            function()
    check(f:write("!"), "flush: file usable")
    f:close()
  end)
  local f2 = assert(fs.open(tmpfile(), "w"))
  abandoned("seek", function() f2:write("xyz") return f2:seek("set", 1) end,
            function() f2:close() end)
  local f3 = assert(fs.open(tmpfile("abc"), "r+"))
  abandoned("stat", function() return f3:stat() end, function()
    check(f3:stat().size == 3, "stat: file usable")
  end)
  abandoned("pread", function() return f3:pread(2, 0) end, function()
    check(f3:pread(2, 1) == "bc", "pread: file usable")
  end)
  abandoned("pwrite", function() return f3:pwrite("Z", 0) end)
  abandoned("sync", function() return f3:sync() end)
  -- The abandoned sync may still be in flight on a loaded machine (an
  -- fsync on the pool); close would then leave the closing to it and not
  -- suspend at all. Wait until it is done.
  local t0 = mp.now()
  while mp.debug.stats().ops_inflight > 0 and mp.now() - t0 < 10 do
    mp.sleep(0.001)
  end
  abandoned("close", function() return f3:close() end)
  stolen("sync", function() return assert(fs.open(p, "r+")):sync() end)
end
do
  local p = tmpfile("data")
  abandoned("fs.open", function() return fs.open(p) end)
  abandoned("fs.stat", function() return fs.stat(p) end)
  abandoned("fs.lstat", function() return fs.lstat(p) end)
  abandoned("fs.rename", function() return fs.rename(p, p .. ".2") end)
  abandoned("fs.remove", function() return fs.remove(tmpfile()) end)
  abandoned("fs.mkdir", function() return fs.mkdir(dir .. "/d") end)
  abandoned("fs.rmdir", function() return fs.rmdir(dir .. "/nonexistent") end)
  abandoned("fs.dir", function() return fs.dir(dir) end, function()
    check(#assert(fs.dir(dir)) > 0, "fs.dir: works afterwards")
  end)
  stolen("fs.dir", function() return fs.dir(dir) end)
  abandoned("fs.readfile", function() return fs.readfile(p) end)
  local w = dir .. "/written"
  abandoned("fs.writefile", function() return fs.writefile(w, "new") end,
            function()
    check(fs.writefile(w, "again") and slurp(w) == "again",
          "fs.writefile: works afterwards")
  end)
end

-- Sockets -------------------------------------------------------------------
do
  local srv = assert(net.listen("127.0.0.1", 0))
  local host, port = srv:sockname()
  abandoned("accept", function() return srv:accept() end, function()
    local c = assert(net.connect(host, port))
    local s = assert(mp.timeout(5, srv.accept, srv))
    check(s, "accept: server usable")
    c:close()
  end)
  stolen("accept", function() return srv:accept() end, function()
    local c = assert(net.connect(host, port))
    local ok, s = mp.timeout(5, srv.accept, srv)
    check(ok and s, "accept (stolen): server usable")
    c:close()
    if s then s:close() end
  end)
  do -- its own server: the abandoned connection may still be accepted
    local srv2 = assert(net.listen("127.0.0.1", 0))
    local h2, p2 = srv2:sockname()
    abandoned("connect", function() return net.connect(h2, p2) end)
    srv2:close()
  end
  local c = assert(net.connect(host, port))
  local s = assert(srv:accept())
  abandoned("stream read", function() return s:read("l") end, function()
    c:write("ping\n")
    local ok, line = mp.timeout(5, s.read, s, "l")
    check(ok and line == "ping", "stream read: no byte lost: "
          .. tostring(line))
  end)
  abandoned("recv", function() return s:recv(10) end, function()
    c:write("pong")
    local ok, data = mp.timeout(5, s.recv, s, 10)
    check(ok and data == "pong", "recv: stream usable: " .. tostring(data))
  end)
  stolen("stream read", function() return s:read("l") end, function()
    c:write("x\n")
    local ok, line = mp.timeout(5, s.read, s, "l")
    check(ok and line == "x", "stream read (stolen): no byte lost: "
          .. tostring(line))
  end)
  local big = string.rep("x", 16 * 1024 * 1024)
  abandoned("stream write", function() return c:write(big) end, function()
    c:close()
    s:close()
  end)
  srv:close()
  abandoned("resolve", function() return net.resolve("localhost") end)
  local u = assert(net.udp("127.0.0.1", 0))
  abandoned("udp recvfrom", function() return u:recvfrom() end, function()
    local uh, up = u:sockname()
    local v = assert(net.udp("127.0.0.1", 0))
    assert(v:sendto("dgram", uh, up))
    local ok, d = mp.timeout(5, u.recvfrom, u)
    check(ok and d == "dgram", "udp recvfrom: socket usable")
    v:close()
  end)
  u:close()
end

-- Tasks, time, work, channels -------------------------------------------------
abandoned("sleep", function() return mp.sleep(0.01) end)
abandoned("sleep(0)", function() return mp.sleep(0) end, function()
  -- the task must not be left in the ready queue
  local t0 = mp.now()
  mp.sleep(0.05)
  check(mp.now() - t0 >= 0.04, "sleep(0): later sleeps still wait")
end)
stolen("sleep", function() return mp.sleep(0.01) end)
abandoned("work", function() return mp.work(function() return 1 end) end)
stolen("work", function() return mp.work(function() return 1 end) end)
do
  local t = mp.spawn(function() mp.sleep(0.02) return "joined" end)
  abandoned("join", function() return t:join() end, function()
    local ok, v = t:join()
    check(ok and v == "joined", "join: target still joinable")
  end)
  local t2 = mp.spawn(function() mp.sleep(0.02) end)
  stolen("join", function() return t2:join() end)
end
do
  local ch = mp.channel()
  abandoned("channel recv", function() return ch:recv() end, function()
    mp.spawn(function() ch:send(42) end)
    local ok, v = mp.timeout(5, ch.recv, ch)
    check(ok and v == 42, "channel recv: the value went to a live receiver: "
          .. tostring(ok) .. " " .. tostring(v))
  end)
  abandoned("channel send", function() return ch:send(1) end, function()
    mp.spawn(function() ch:send(2) end)
    local ok, v = mp.timeout(5, ch.recv, ch)
    check(ok and v == 2, "channel send: the abandoned value was not sent: "
          .. tostring(v))
  end)
  stolen("channel recv", function() return ch:recv() end, function()
    mp.spawn(function() ch:send(3) end)
    local ok, v = mp.timeout(5, ch.recv, ch)
    check(ok and v == 3, "channel recv (stolen): value delivered: "
          .. tostring(v))
  end)
end

for _, name in ipairs(assert(fs.dir(dir))) do fs.remove(dir .. "/" .. name) end
fs.rmdir(dir)
if failures > 0 then
  print(failures .. " failure(s)")
  os.exit(1)
end
print("ok")
