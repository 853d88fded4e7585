#!/usr/bin/env bash
# A coroutine parked in ch:recv()/ch:send() whose suspension was swallowed
# by a resume that bypasses moonport's coroutine wrappers (a library loaded
# before moonport keeps the stock coroutine.resume; C code calling
# lua_resume) leaves its task running on without it: its waiter must not
# get values. Counted: every value sent with true is received by a live
# receiver or left in the channel, none twice, none from a send that never
# returned. The task cancelling itself after such a swallowed park is
# cancelled once, never queued while it runs (it used to be resumed later
# with its operation still in flight). Through the wrappers a coroutine
# cannot be dropped while its waiter is queued: abandoned (table.sort),
# then dropped, it left its queue. Run from a stock lua5.4, where the
# bypassing resume exists.
set -u
MP=${MOONPORT:?}
pre=""
if ldd "$(dirname "$MP")/lib/moonport.so" 2>/dev/null | grep -q libasan; then
  pre=$(gcc -print-file-name=libasan.so)
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/t.lua" <<'EOF'
local raw_resume = coroutine.resume -- kept before moonport is loaded
local mp = require "moonport"

local failures = 0
local function check(cond, what)
  if not cond then
    failures = failures + 1
    print("FAIL: " .. what)
  end
end

local N = 10

-- A coroutine parked in op (on ch), resumed by the stock resume: the park
-- is swallowed and the task runs on; the coroutine is dropped.
local function swallow(ch, op, v)
  local co = coroutine.create(function() return ch[op](ch, v) end)
  local ok, s = raw_resume(co)
  check(ok and type(s) == "userdata" and coroutine.status(co) ==
        "suspended", op .. ": the stock resume did not swallow the park")
  return co
end

-- Sends 1..N from a task to a receiver task counting them and checks
-- the counts: sent with true = received + left in ch.
local function traffic(ch, what)
  local got, sent = {}, 0
  local r = mp.spawn(function()
    while true do
      local v = ch:recv()
      if v == nil then return end
      got[#got + 1] = v
    end
  end)
  local s = mp.spawn(function()
    for i = 1, N do
      if ch:send(i) == true then sent = sent + 1 end
    end
  end)
  mp.timeout(5, s.join, s)
  local left = {}
  while #ch > 0 do left[#left + 1] = ch:recv() end
  ch:close()
  check(mp.timeout(5, r.join, r), what .. ": the receiver hung")
  check(s:done(), what .. ": the sender hung")
  local seen = {}
  for _, l in ipairs { got, left } do
    for _, v in ipairs(l) do
      check(v ~= "ghost", what .. ": got the swallowed sender's value")
      check(not seen[v], what .. ": got " .. tostring(v) .. " twice")
      seen[v] = true
    end
  end
  check(#got + #left == sent, ("%s: sent %d with true, received %d, " ..
        "left %d"):format(what, sent, #got, #left))
end

mp.run(function()
  -- a swallowed receiver first in line, then a live one
  local ch = mp.channel()
  swallow(ch, "recv")
  collectgarbage()
  traffic(ch, "recv swallowed")

  -- the same, on a buffered channel
  ch = mp.channel(2)
  swallow(ch, "recv")
  traffic(ch, "recv swallowed, buffered")

  -- the task itself sends after the swallowed park
  ch = mp.channel(1)
  swallow(ch, "recv")
  check(ch:send(1) == true and #ch == 1, "own send: not buffered")
  check(ch:recv() == 1, "own send: value lost")

  -- a swallowed sender first in line: its value is never received
  ch = mp.channel()
  swallow(ch, "send", "ghost")
  traffic(ch, "send swallowed")
  ch = mp.channel(1)
  ch:send(0)
  swallow(ch, "send", "ghost")
  check(ch:recv() == 0, "full channel: the buffered value")
  traffic(ch, "send swallowed, buffered")

  -- through the wrappers: abandoned inside table.sort, then dropped
  for _, op in ipairs { "recv", "send" } do
    ch = mp.channel()
    local co = coroutine.create(function() return ch[op](ch, "ghost") end)
    check(not pcall(table.sort, { 1, 2 }, function()
      coroutine.resume(co)
      return false
    end), op .. ": suspended inside table.sort")
    co = nil
    collectgarbage()
    traffic(ch, op .. " abandoned, dropped")
  end

  -- cancelling itself after the swallowed park: cancelled once
  ch = mp.channel()
  swallow(ch, "recv")
  mp.current():cancel()
  local ok, err = pcall(mp.sleep, 0.01)
  check(not ok and err == "cancelled", "self-cancel: " .. tostring(err))
  for _ = 1, 2 do
    ok, err = pcall(mp.sleep, 0.02)
    check(ok, "self-cancel: later sleeps raised " .. tostring(err))
  end

  -- skipped, then resumed again: back in line, so it sees the close
  ch = mp.channel(1)
  local co = swallow(ch, "recv")
  check(ch:send(1) == true, "skipped: send")
  check(raw_resume(co) and coroutine.status(co) == "suspended",
        "skipped: parks again")
  check(ch:recv() == 1, "skipped: the buffered value")
  ch:close()
  local ok, v, err = raw_resume(co)
  check(ok and v == nil and err == "closed",
        "skipped, resumed after the close: " .. tostring(err))
end)

if failures > 0 then os.exit(1) end
print("ok")
EOF
cd "$dir" && LD_PRELOAD=$pre LUA_CPATH="$(dirname "$MP")/lib/?.so;;" \
  timeout 60 "${LUA54:-lua5.4}" t.lua
