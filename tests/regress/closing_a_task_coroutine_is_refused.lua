-- coroutine.close on a task's own coroutine (what coroutine.running()
-- returns at a task's top level) is refused, as lua refuses to close its
-- main thread: closing it left the task waiting on a dead coroutine, a
-- value sent to its channel was lost and join deadlocked.
local mp = require "moonport"
local fails = 0
local function check(name, ok)
  if not ok then fails = fails + 1 print("not ok - " .. name) end
end

local ch, co = mp.channel()
local t = mp.spawn(function() co = coroutine.running() return ch:recv() end)
mp.sleep(0.01)
local ok, err = pcall(coroutine.close, co)
check("closing a parked task's coroutine raises",
      not ok and err:find("cannot close a normal coroutine", 1, true))
check("the value sent afterwards reaches the task", ch:send("precious"))
local jok, v = t:join()
check("the task returns it", jok and v == "precious")

-- a finished task keeps its results for join
local done = mp.spawn(function() return coroutine.running(), 42 end)
local _, dco = done:join()
check("a finished task's coroutine cannot be closed either",
      not pcall(coroutine.close, dco))
local r = table.pack(done:join())
check("its results stay", r[1] == true and r[3] == 42)

-- the script's own top level: running, as in lua
local main = coroutine.running()
check("closing the running task raises",
      not pcall(coroutine.close, main))

-- coroutines the script creates still close normally
local c = coroutine.create(function() coroutine.yield() end)
coroutine.resume(c)
check("a script's coroutine closes", coroutine.close(c) == true)

if fails > 0 then os.exit(1) end
print("ok")
