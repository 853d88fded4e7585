-- demo.lua: what `make run` shows. Tasks, timers, a channel, a timeout and
-- a threadpool job, all as plain sequential calls; each call suspends only
-- the task that makes it.
local mp = require "moonport"

print(("moonport on %s"):format(mp.backend()))
local t0 = mp.now()
local function stamp(fmt, ...)
  print(("[%4.0f ms] " .. fmt):format((mp.now() - t0) * 1000, ...))
end

-- A producer and two consumers share a channel with room for two items.
local jobs = mp.channel(2)
local results = mp.channel()

local producer = mp.spawn(function()
  for i = 1, 6 do
    jobs:send(i)
    stamp("produced job %d", i)
  end
  jobs:close()
end)

local function worker(name, delay)
  for job in function() return jobs:recv() end do
    mp.sleep(delay)                         -- pretend to work
    results:send(("%s finished job %d"):format(name, job))
  end
end

-- Structured concurrency: the scope returns when both workers are done.
mp.spawn(function()
  mp.scope(function(s)
    s:spawn(worker, "fast", 0.01)
    s:spawn(worker, "slow", 0.03)
  end)
  results:close()
end)

for line in function() return results:recv() end do stamp("%s", line) end
producer:join()

-- A deadline around a slow operation.
local ok, err = mp.timeout(0.05, function() mp.sleep(10) end)
stamp("mp.timeout(0.05, sleep 10) -> %s, %s", ok, err)

-- CPU-bound work on the threadpool, while a ticker keeps running.
local ticks = 0
local ticker = mp.spawn(function()
  while true do mp.sleep(0.005) ticks = ticks + 1 end
end)
local primes = mp.work(function(n)
  local count = 0
  for i = 2, n do
    local prime = true
    for d = 2, math.floor(math.sqrt(i)) do
      if i % d == 0 then prime = false break end
    end
    if prime then count = count + 1 end
  end
  return count
end, 200000)
ticker:cancel()
stamp("mp.work counted %d primes below 200000; the ticker ticked %d times meanwhile",
      primes, ticks)
