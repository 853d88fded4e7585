-- Senders and receivers under random cancels and mp.timeout: every value
-- sent with `true` is received exactly once (or left in the channel), no
-- value whose send failed is received. Seeded; MP_SEED=n repeats one run.
local mp = require "moonport"

local failures = 0
local function fail(msg)
  failures = failures + 1
  print("FAIL: " .. msg)
end

-- Calls fn plainly or under a short mp.timeout; true, result or false.
local function attempt(fn, ...)
  local r
  if math.random() < 0.3 then
    r = table.pack(pcall(mp.timeout, math.random(0, 2) * 0.0005, fn, ...))
    if r[1] and r[2] then return true, r[3] end
  else
    r = table.pack(pcall(fn, ...))
    if r[1] then return true, r[2] end
  end
  local err = r[1] and r[3] or r[2]
  if err ~= "cancelled" and err ~= "timeout" then error(err, 0) end
  return false
end

local function storm(seed, cap)
  math.randomseed(seed)
  local what = ("seed %d, capacity %d"):format(seed, cap)
  local ch = mp.channel(cap)
  local sent, got, tasks, senders, receivers = {}, {}, {}, {}, {}
  for s = 1, 5 do
    local t = mp.spawn(function()
      for i = 1, 40 do
        local id = s * 1000 + i
        local ok, res = attempt(ch.send, ch, id)
        if ok and res == true then sent[id] = true end
        if math.random() < 0.2 then pcall(mp.sleep, 0) end
      end
    end)
    senders[#senders + 1], tasks[#tasks + 1] = t, t
  end
  for _ = 1, 5 do
    local t = mp.spawn(function()
      while true do
        local ok, v = attempt(ch.recv, ch)
        if ok then
          if v == nil then return end -- closed and drained
          got[v] = (got[v] or 0) + 1
        end
        if math.random() < 0.2 then pcall(mp.sleep, 0) end
      end
    end)
    receivers[#receivers + 1], tasks[#tasks + 1] = t, t
  end
  local stop = false
  local chaos = mp.spawn(function()
    while not stop do
      tasks[math.random(#tasks)]:cancel()
      if math.random() < 0.5 then mp.sleep(0) else mp.sleep(0.0002) end
    end
  end)
  for _, t in ipairs(senders) do
    local ok, err = t:join()
    if not ok then fail(what .. ": sender failed: " .. tostring(err)) end
  end
  stop = true
  chaos:join()
  ch:close()
  for _, t in ipairs(receivers) do
    local ok, err = mp.timeout(10, t.join, t)
    if not ok then fail(what .. ": receiver stuck") end
    if ok and not err then
      fail(what .. ": receiver failed")
    end
  end
  local left = 0
  while #ch > 0 do
    local v = ch:recv()
    got[v] = (got[v] or 0) + 1
    left = left + 1
  end
  local nsent, nrecv = 0, 0
  for id in pairs(sent) do
    nsent = nsent + 1
    if got[id] ~= 1 then
      fail(what .. (": value %d sent with true, received %d times")
           :format(id, got[id] or 0))
    end
  end
  for id, k in pairs(got) do
    nrecv = nrecv + k
    if not sent[id] then
      fail(what .. (": value %d received %d times, its send failed")
           :format(id, k))
    end
  end
  return nsent, nrecv, left
end

local seeds = os.getenv("MP_SEED") and { tonumber(os.getenv("MP_SEED")) }
              or { 1, 2, 3 }
for _, seed in ipairs(seeds) do
  for _, cap in ipairs { 0, 1, 4 } do
    local nsent, nrecv, left = storm(seed, cap)
    if nsent < 20 then
      fail(("seed %d, capacity %d: only %d values went through")
           :format(seed, cap, nsent))
    end
    print(("seed %d, capacity %d: %d sent, %d received (%d left in the "
           .. "channel)"):format(seed, cap, nsent, nrecv, left))
  end
end
if failures > 0 then
  print(failures .. " failure(s)")
  os.exit(1)
end
print("ok")
