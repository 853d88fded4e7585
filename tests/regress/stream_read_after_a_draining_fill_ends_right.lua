-- After a fill that emptied the socket (it got less than it asked for: a
-- server that has read a request), stream:read's next receive waits for
-- readiness before it tries (mp_op_poll_first: on epoll the EAGAIN recv
-- is a syscall saved); recv(max) does the same. Every way such a wait
-- can end must end as any receive does: bytes already there when it
-- starts, bytes that come later, a timeout, a cancel, a close, EOF and a
-- reset mid-line, and the stream collected with the receive in flight.
-- A wait that is never armed hangs: each case has a deadline.
local mp = require "moonport"

local failed = 0
local function check(what, ok, ...)
  if not ok then
    failed = failed + 1
    print("FAIL: " .. what, ...)
  end
end

local srv = assert(mp.net.listen("127.0.0.1", 0))
local _, port = srv:sockname()

-- A connected pair whose reading side c has just drained its socket.
local function pair()
  local acc = mp.spawn(function() return assert(srv:accept()) end)
  local c = assert(mp.net.connect("127.0.0.1", port))
  local _, s = acc:join()
  assert(s:write("first\n"))
  assert(c:read("l") == "first")
  return c, s
end

-- read("l") under a deadline: its results, or "HUNG"
local function read_line(c)
  local r = table.pack(mp.timeout(2, c.read, c, "l"))
  if not r[1] then return "HUNG" end
  return table.unpack(r, 2, r.n)
end

mp.run(function()
  -- bytes already there when the wait starts
  local c, s = pair()
  assert(s:write("there\n"))
  mp.sleep(0.02)
  check("bytes already there", read_line(c) == "there")
  -- bytes that come later, and a line that comes in pieces
  mp.spawn(function()
    mp.sleep(0.02)
    s:write("la")
    mp.sleep(0.02)
    s:write("ter\n")
  end)
  check("bytes that come later", read_line(c) == "later")
  -- a timeout, then the stream still reads
  c:settimeout(0.03)
  local v, _, code = c:read("l")
  check("timeout", v == nil and code == "timeout", v, code)
  c:settimeout(nil)
  assert(s:write("after timeout\n"))
  check("read after a timeout", read_line(c) == "after timeout")
  -- a cancel, then the stream still reads
  local t = mp.spawn(function() return c:read("l") end)
  mp.sleep(0.02)
  t:cancel()
  local ok, err = t:join()
  check("cancel", not ok and err == "cancelled", ok, err)
  assert(s:write("after cancel\n"))
  check("read after a cancel", read_line(c) == "after cancel")
  -- closed by another task while it waits
  t = mp.spawn(function() return c:read("l") end)
  mp.sleep(0.02)
  c:close()
  local _, cv, _, ccode = t:join()
  check("close", cv == nil and ccode == "closed", cv, ccode)
  s:close()

  -- EOF mid-line: the partial line, then EOF
  c, s = pair()
  assert(s:write("par"))
  mp.sleep(0.02)
  s:close()
  local l1, _, code1 = read_line(c)
  local l2, _, code2 = read_line(c)
  check("EOF mid-line", (l1 == "par" and l2 == nil and code2 == "EOF") or
        (l1 == nil and code1 == "EOF"), l1, code1, l2, code2)
  c:close()

  -- reset mid-line
  c, s = pair()
  assert(s:write("GET"))
  s:setoption("linger", 0)
  mp.sleep(0.02)
  s:close()
  local r1, _, rc1 = read_line(c)
  local r2, _, rc2 = r1 and read_line(c)
  check("reset mid-line", rc1 == "ECONNRESET" or rc2 == "ECONNRESET" or
        rc2 == "EOF", r1, rc1, r2, rc2)
  c:close()

  -- recv(max) keeps the same hint: after one that emptied the socket,
  -- bytes already there, bytes later, a timeout, a close
  c, s = pair()
  assert(s:write("r1"))
  local rv = table.pack(mp.timeout(2, c.recv, c, 100))
  check("recv drains", rv[1] and rv[2] == "r1", rv[2])
  assert(s:write("r2"))
  mp.sleep(0.02)
  rv = table.pack(mp.timeout(2, c.recv, c, 100))
  check("recv: bytes already there", rv[1] and rv[2] == "r2", rv[2])
  mp.spawn(function() mp.sleep(0.02) s:write("r3") end)
  rv = table.pack(mp.timeout(2, c.recv, c, 100))
  check("recv: bytes that come later", rv[1] and rv[2] == "r3", rv[2])
  c:settimeout(0.03)
  local rt, _, rtc = c:recv(100)
  check("recv: timeout", rt == nil and rtc == "timeout", rt, rtc)
  c:settimeout(nil)
  t = mp.spawn(function() return c:recv(100) end)
  mp.sleep(0.02)
  c:close()
  local _, rcv, _, rcc = t:join()
  check("recv: close", rcv == nil and rcc == "closed", rcv, rcc)
  s:close()

  -- collected with the receive in flight: a coroutine left suspended in
  -- the read (resumed where the task cannot suspend: that raises, the
  -- receive is orphaned), then dropped
  c, s = pair()
  local co = coroutine.create(function() return c:read("l") end)
  table.sort({ 2, 1 }, function(a, b)
    pcall(coroutine.resume, co)
    return a < b
  end)
  check("the coroutine is left suspended in the read",
        coroutine.status(co) == "suspended", coroutine.status(co))
  co, c = nil, nil
  collectgarbage()
  collectgarbage()
  mp.sleep(0.02)
  s:write("nobody\n") -- the peer may be gone: any result, no crash
  s:close()
end)
srv:close()
os.exit(failed == 0 and 0 or 1)
