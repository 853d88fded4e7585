-- A value ch:send handed to a parked receiver (send returned true) belongs
-- to that receiver even if it is cancelled or times out before it runs;
-- a sender whose value a receiver took returns true even if cancelled
-- before it runs. The interruption applies to the next suspension.
local mp = require "moonport"

local failures = 0
local function same(want, got, what)
  local ok = want.n == got.n
  for i = 1, math.max(want.n, got.n) do ok = ok and want[i] == got[i] end
  if not ok then
    failures = failures + 1
    local w, g = {}, {}
    for i = 1, want.n do w[i] = tostring(want[i]) end
    for i = 1, got.n do g[i] = tostring(got[i]) end
    print("FAIL: " .. what .. ": want {" .. table.concat(w, ", ")
          .. "}, got {" .. table.concat(g, ", ") .. "}")
  end
end
local P = table.pack

for _, cap in ipairs { 0, 2 } do
  -- receiver cancelled after the hand-over
  local ch = mp.channel(cap)
  local r = mp.spawn(function() return ch:recv() end)
  mp.sleep(0) -- r parks
  same(P(true), P(ch:send("v")), "cap " .. cap .. ": send to a receiver")
  r:cancel()
  same(P(true, "v"), P(r:join()), "cap " .. cap .. ": cancelled receiver")
  same(P(0), P(#ch), "cap " .. cap .. ": nothing left behind")

  -- ... and the cancel applies to its next suspension
  local r2 = mp.spawn(function()
    local v = ch:recv()
    local ok, err = pcall(mp.sleep, 0.01)
    return v, ok, err
  end)
  mp.sleep(0)
  ch:send("w")
  r2:cancel()
  same(P(true, "w", false, "cancelled"), P(r2:join()),
       "cap " .. cap .. ": cancel applies to the next suspension")

  -- receiver whose mp.timeout expires after the hand-over
  local r3 = mp.spawn(function() return mp.timeout(0, ch.recv, ch) end)
  mp.sleep(0) -- r3 parks; its deadline fires at the next loop turn
  same(P(true), P(ch:send("x")), "cap " .. cap .. ": send before timeout")
  same(P(true, true, "x"), P(r3:join()),
       "cap " .. cap .. ": timed-out receiver keeps the value")
end

-- sender cancelled after its value was taken (unbuffered: rendezvous;
-- buffered: moved into the buffer by a receiver making room)
for _, cap in ipairs { 0, 1 } do
  local ch = mp.channel(cap)
  for i = 1, cap do ch:send("fill" .. i) end
  local s = mp.spawn(function() return ch:send("s") end)
  mp.sleep(0) -- s parks
  local got = ch:recv()
  s:cancel()
  same(P(true, true), P(s:join()), "cap " .. cap .. ": cancelled sender")
  local rest = {}
  while #ch > 0 do rest[#rest + 1] = ch:recv() end
  same(P(cap == 0 and "s" or "fill1"), P(got), "cap " .. cap .. ": received")
  same(P(table.unpack(cap == 0 and {} or { "s" })), P(table.unpack(rest)),
       "cap " .. cap .. ": delivered once")
  -- timed out after the take
  local s2 = mp.spawn(function()
    return mp.timeout(0, ch.send, ch, "t")
  end)
  for i = 1, cap do ch:send("g" .. i) end
  mp.sleep(0)
  ch:recv()
  same(P(true, true, true), P(s2:join()), "cap " .. cap
       .. ": timed-out sender whose value was taken")
end

if failures > 0 then
  print(failures .. " failure(s)")
  os.exit(1)
end
print("ok")
