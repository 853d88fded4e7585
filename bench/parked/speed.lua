-- bench/parked/speed.lua MODE N: the time (ms) the waiter queues take,
-- printed alone. MODE: pingpong (N values to and fro between two tasks
-- over two rendezvous channels: every send finds the receiver parked),
-- buffered (N values from 4 producers to 4 consumers over a channel of
-- capacity 16: senders and receivers both queue), lock (N lock/unlock
-- pairs by 100 tasks, each holding the lock across a sleep(0), so every
-- lock waits in line and every unlock hands it over), select (N values
-- received by mp.select over two channels). Compare builds with
-- alternating runs (docs/performance.md, "Parked tasks", fourth pass).
local mp = require "moonport"
local mode, n = arg[1], tonumber(arg[2] or 200000)

local function pingpong()
  local a, b = mp.channel(), mp.channel()
  local t = mp.spawn(function()
    for _ = 1, n do b:send(a:recv()) end
  end)
  for i = 1, n do
    a:send(i)
    b:recv()
  end
  t:join()
end

local function buffered()
  local ch = mp.channel(16)
  mp.scope(function(s)
    for _ = 1, 4 do
      s:spawn(function() for i = 1, n // 4 do ch:send(i) end end)
      s:spawn(function() for _ = 1, n // 4 do ch:recv() end end)
    end
  end)
end

local function lock()
  local l = mp.lock()
  mp.scope(function(s)
    for _ = 1, 100 do
      s:spawn(function()
        for _ = 1, n // 100 do
          l:lock()
          mp.sleep(0)
          l:unlock()
        end
      end)
    end
  end)
end

local function select()
  local a, b = mp.channel(), mp.channel()
  local t = mp.spawn(function()
    for i = 1, n do (i % 2 == 0 and a or b):send(i) end
  end)
  for _ = 1, n do mp.select(a, b) end
  t:join()
end

local f = ({ pingpong = pingpong, buffered = buffered, lock = lock,
             select = select })[mode]
assert(f, "mode: pingpong, buffered, lock or select")
mp.run(function()
  local t0 = mp.now()
  f()
  print(("%.1f"):format((mp.now() - t0) * 1000))
end)
