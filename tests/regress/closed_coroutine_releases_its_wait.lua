-- coroutine.close(co) on a script's coroutine suspended in moonport
-- releases what co waited on: a channel waiter leaves its queue, so every
-- value sent with `true` afterwards reaches a live receiver (counted: none
-- lost, none received from a sender that never returned); a value handed
-- to co before the close is given to the next receiver; an op is
-- cancelled and co's task goes on at once, its resume returning false,
-- "cannot resume dead coroutine". For recv, send, sleep, sleep(0), join
-- and a socket read, nested coroutines, closed from another task or by
-- the task itself.
local mp = require "moonport"

local failures = 0
local function check(cond, what)
  if not cond then
    failures = failures + 1
    print("FAIL: " .. what)
  end
end

local N = 10

-- Runs body in a coroutine of a new task (nest: inside a second one) and
-- waits until body says it is about to suspend; returns the coroutine to
-- close, and the task, whose result is coroutine.resume's.
local function host(body, nest)
  local state = {}
  local co = coroutine.create(function()
    state.started = true
    return body()
  end)
  local outer = co
  if nest then
    outer = coroutine.create(function()
      return coroutine.resume(co)
    end)
  end
  local t = mp.spawn(function() return coroutine.resume(outer) end)
  while not state.started do mp.sleep(0) end
  return nest and outer or co, t
end

-- The task ends promptly, its resume of the closed coroutine failed.
local function ended(t, what)
  local ok, tok, rok, err = mp.timeout(5, t.join, t)
  check(ok, what .. ": its task did not go on after the close")
  if ok then
    check(tok and rok == false and tostring(err):find("dead coroutine"),
          what .. ": the task's resume gave " .. tostring(rok) .. ", "
          .. tostring(err))
  end
end

-- A receiver task counting what ch delivers until it is closed.
local function counter(ch)
  return mp.spawn(function()
    local got = {}
    while true do
      local v = ch:recv()
      if v == nil then return got end
      got[#got + 1] = v
    end
  end)
end

local function sends(ch, what, extra)
  local r = counter(ch)
  local sent = extra or 0
  for i = 1, N do
    if ch:send(i) == true then sent = sent + 1 end
  end
  ch:close()
  local ok, tok, got = mp.timeout(5, r.join, r)
  check(ok and tok, what .. ": the receiver did not end")
  if not (ok and tok) then return end
  check(#got == sent, ("%s: sent %d with true, received %d"):format(
        what, sent, #got))
  for _, v in ipairs(got) do
    check(v ~= "ghost", what .. ": received the closed sender's value")
  end
end

for _, nest in ipairs { false, true } do
  local how = nest and " (nested)" or ""

  -- closed while waiting in recv
  local ch = mp.channel()
  local co, t = host(function() return ch:recv() end, nest)
  check(coroutine.close(co), "close a receiver")
  ended(t, "recv" .. how)
  sends(ch, "recv" .. how)

  -- closed while waiting in send: its value is never received
  ch = mp.channel()
  co, t = host(function() return ch:send("ghost") end, nest)
  check(coroutine.close(co), "close a sender")
  ended(t, "send" .. how)
  sends(ch, "send" .. how)

  -- a buffered channel full, the sender waiting
  ch = mp.channel(2)
  ch:send(-1)
  ch:send(-2)
  co, t = host(function() return ch:send("ghost") end, nest)
  check(coroutine.close(co), "close a sender on a full channel")
  ended(t, "send, buffered" .. how)
  sends(ch, "send, buffered" .. how, 2)

  -- handed a value, closed before its task ran: the value is not lost
  ch = mp.channel()
  co, t = host(function() return ch:recv() end, nest)
  check(ch:send(0) == true, "send to the waiting receiver")
  check(coroutine.close(co), "close a receiver that was handed a value")
  ended(t, "recv handed a value" .. how)
  sends(ch, "recv handed a value" .. how, 1)

  -- an op: sleep; sleep(0); join; a socket read
  co, t = host(function() return mp.sleep(30) end, nest)
  check(coroutine.close(co), "close a sleeper")
  ended(t, "sleep" .. how)

  co, t = host(function() return mp.sleep(0) end, nest)
  check(coroutine.close(co), "close a sleep(0)")
  ended(t, "sleep(0)" .. how)

  local release = mp.channel()
  local other = mp.spawn(function() return release:recv() end)
  co, t = host(function() return other:join() end, nest)
  check(coroutine.close(co), "close a joiner")
  ended(t, "join" .. how)
  release:send(1)
  other:join()

  local server = assert(mp.net.listen("127.0.0.1", 0))
  local _, port = server:sockname()
  local client = assert(mp.net.connect("127.0.0.1", port))
  local peer = assert(server:accept())
  co, t = host(function() return peer:read(1) end, nest)
  check(coroutine.close(co), "close a reader")
  ended(t, "read" .. how)
  check(client:write("x"), "write after the close")
  local s = assert(mp.timeout(5, peer.read, peer, 1))
  client:close()
  peer:close()
  server:close()
  check(s, "the socket works after the close")
end

-- Closed by the task itself: its coroutine gave up a recv (the resume ran
-- inside table.sort, which cannot suspend), then the task closes it.
local ch = mp.channel()
local co = coroutine.create(function() return ch:recv() end)
local ok = pcall(table.sort, { 1, 2 }, function()
  coroutine.resume(co)
  return false
end)
check(not ok, "resume inside table.sort cannot suspend")
check(coroutine.close(co), "the task closes its own coroutine")
sends(ch, "closed by its task")

-- closing what is not suspended in moonport behaves as lua's close
local _, err = pcall(function() coroutine.close(1) end)
check(err:find("bad argument #1 to 'close' (thread expected, got number)",
               1, true), "close(1) raises as in lua: " .. err)
local self
self = coroutine.create(function()
  return select(2, pcall(coroutine.close, self))
end)
check(select(2, coroutine.resume(self)) == "cannot close a running coroutine",
      "close the running coroutine")
local plain = coroutine.create(function() coroutine.yield(1) end)
coroutine.resume(plain)
check(coroutine.close(plain) and coroutine.status(plain) == "dead",
      "close a plain yield")

if failures > 0 then os.exit(1) end
print("ok")
