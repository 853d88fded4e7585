-- bench/ticker.lua: mp.ticker's drift under load. N ticks (default 1,000)
-- of P seconds (default 0.01) while a neighbour task keeps the CPU busy
-- (bursts of 1-8 ms of Lua, now and then 30 ms). Tick k is due at
-- start + k*P: for every next() it records how late the last tick it
-- reports came (now - (start + count*P)) and at the end how far the count
-- is from the elapsed time, in ticks; the same loop written with
-- mp.sleep(P) shows the drift the ticker avoids. Exits 1 if the ticker's
-- count is off by a tick or more.
--   moonport bench/ticker.lua [N [P]]
local mp = require "moonport"
local N = tonumber(arg and arg[1]) or 1000
local P = tonumber(arg and arg[2]) or 0.01

local busy = true
local function neighbour()
  local rng = 12345
  while busy do
    rng = (rng * 1103515245 + 12345) % 2147483648
    local ms = rng % 20 == 0 and 30 or 1 + rng % 8
    local t = os.clock() + ms / 1000
    while os.clock() < t do end
    mp.sleep(0)
  end
end

local function ticker_run()
  local start = mp.now()
  local tk = mp.ticker(P)
  local count, calls, coalesced, late_max, late_sum = 0, 0, 0, 0, 0
  while count < N do
    local n = tk:next()
    local now = mp.now()
    count, calls = count + n, calls + 1
    if n > 1 then coalesced = coalesced + 1 end
    local late = now - (start + count * P)
    late_max = math.max(late_max, late)
    late_sum = late_sum + late
  end
  local err = (mp.now() - start) / P - count
  tk:close()
  return err, late_max, late_sum / calls, calls, coalesced
end

local function sleep_run()
  local start = mp.now()
  for _ = 1, N do mp.sleep(P) end
  return (mp.now() - start) / P - N
end

local function with_neighbour(fn)
  busy = true
  local t = mp.spawn(neighbour)
  local r = table.pack(fn())
  busy = false
  t:join()
  return table.unpack(r, 1, r.n)
end

mp.run(function()
  local err, late_max, late_mean, calls, coalesced = with_neighbour(ticker_run)
  print(("ticker: %d ticks of %g ms under load: count error %.3f ticks; "
         .. "latest tick %.2f ms late (mean %.2f ms); %d next() calls, %d "
         .. "coalesced"):format(N, P * 1e3, err, late_max * 1e3,
                                late_mean * 1e3, calls, coalesced))
  local drift = with_neighbour(sleep_run)
  print(("mp.sleep loop: %d sleeps of %g ms under load: %.1f ticks behind")
        :format(N, P * 1e3, drift))
  if math.abs(err) >= 1 then
    print("FAIL: the ticker's count is off by a tick or more")
    os.exit(1)
  end
end)
