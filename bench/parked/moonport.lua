-- bench/parked/moonport.lua KIND N: the memory N items parked at once
-- cost, per item: "<lua bytes> <rss bytes>" (collectgarbage("count") and
-- VmRSS deltas, after full collections, every item held in a table).
-- Runs under the moonport command and under lua5.4 with the module.
-- KIND: coroutine (a bare Lua coroutine resumed once into a yield: the
-- reference), sleep, recv, send (a full channel), lock, acquire (a
-- semaphore), join, read (a stream read on a TCP connection over
-- loopback; its connections are made before the baseline, so only the
-- parked read is counted).
local mp = require "moonport"
local kind, n = arg[1], tonumber(arg[2] or 100000)

local function rss()
  local f = assert(io.open("/proc/self/status"))
  local kb = f:read("a"):match("VmRSS:%s*(%d+)")
  f:close()
  return tonumber(kb) * 1024
end

local function settle()
  for _ = 1, 3 do mp.sleep(0) end -- every new task reaches its park
  collectgarbage()
  collectgarbage()
end

local keep, setup = {}, {}
local make -- make(i): one parked item, held in keep[i]

if kind == "coroutine" then
  make = function(i)
    local co = coroutine.create(function() coroutine.yield() end)
    coroutine.resume(co)
    keep[i] = co
  end
elseif kind == "sleep" then
  make = function(i) keep[i] = mp.spawn(function() mp.sleep(3600) end) end
elseif kind == "recv" then
  local ch = mp.channel()
  setup.ch = ch
  make = function(i) keep[i] = mp.spawn(function() ch:recv() end) end
elseif kind == "send" then
  local ch = mp.channel(0) -- no room: every sender waits for a receiver
  setup.ch = ch
  -- the value is the task's argument (on its stack, as a bare
  -- coroutine's would be), so the closure is shaped as recv's: capturing
  -- i instead would add its upvalue (48 bytes) to every item
  make = function(i) keep[i] = mp.spawn(function(v) ch:send(v) end, i) end
elseif kind == "lock" then
  local l = mp.lock()
  l:lock() -- held by the main program until the end
  setup.l = l
  make = function(i) keep[i] = mp.spawn(function() l:lock() end) end
elseif kind == "acquire" then
  local s = mp.semaphore(1)
  s:acquire() -- held by the main program until the end
  setup.s = s
  make = function(i) keep[i] = mp.spawn(function() s:acquire() end) end
elseif kind == "join" then
  local target = mp.spawn(function() mp.sleep(3600) end)
  setup.target = target
  make = function(i) keep[i] = mp.spawn(function() target:join() end) end
elseif kind == "read" then
  local server = assert(mp.net.listen("127.0.0.1", 0))
  local port = select(2, server:sockname())
  local streams = {}
  for i = 1, n do
    local c = assert(mp.net.connect("127.0.0.1", port))
    streams[i] = { c, assert(server:accept()) }
  end
  setup.server, setup.streams = server, streams
  make = function(i)
    local s = streams[i][1]
    keep[i] = mp.spawn(function() s:read(1) end)
  end
else
  error("unknown kind: " .. tostring(kind))
end

settle()
local lua0, rss0 = collectgarbage("count") * 1024, rss()
for i = 1, n do make(i) end
settle()
local lua1, rss1 = collectgarbage("count") * 1024, rss()
print(("%.0f %.0f"):format((lua1 - lua0) / n, (rss1 - rss0) / n))
io.stdout:flush()
os.exit(0) -- the parked tasks would wait for an hour
