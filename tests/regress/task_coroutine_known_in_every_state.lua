-- A task's coroutine is known as one (coroutine.close refuses it) in
-- every state, now that no table maps coroutines to tasks: the task sits
-- at the base of its coroutine's stack. A plain coroutine that returned
-- a task still closes, and what a task returns or raises reaches join
-- whole (the task below its results is never one of them).
local mp = require "moonport"
local fails = 0
local function check(name, ok)
  if not ok then fails = fails + 1 print("not ok - " .. name) end
end
local function refused(co)
  local ok, err = pcall(coroutine.close, co)
  return not ok and tostring(err):find("cannot close", 1, true) ~= nil
end

-- sleeping, parked on a channel, finished, failed
local ch, cos = mp.channel(), {}
local sleeper = mp.spawn(function() cos.sleep = coroutine.running()
                                   mp.sleep(0.05) return "slept" end)
local parked = mp.spawn(function() cos.park = coroutine.running()
                                  return ch:recv() end)
local done = mp.spawn(function(...) cos.done = coroutine.running()
                                    return ... end, 1, nil, 3)
local failed = mp.spawn(function() cos.fail = coroutine.running()
                                   error({ code = 7 }) end)
mp.sleep(0.01)
for _, k in ipairs { "sleep", "park", "done", "fail" } do
  check("closing the " .. k .. " task's coroutine is refused",
        refused(cos[k]))
end
ch:send("v")
check("the sleeper returns", select(2, sleeper:join()) == "slept")
check("the parked task gets the value", select(2, parked:join()) == "v")
local r = table.pack(done:join())
check("results reach join whole",
      r.n == 4 and r[1] == true and r[2] == 1 and r[3] == nil and r[4] == 3)
local ok, e = failed:join()
check("the error reaches join", not ok and type(e) == "table" and e.code == 7)

-- a __close handler's newer error replaces the task's
local closing = mp.spawn(function()
  cos.closing = coroutine.running()
  local _ <close> = setmetatable({}, { __close = function()
    error("from close", 0) end })
  error("first", 0)
end)
local cok, cerr = closing:join()
check("the __close error reaches join", not cok and cerr == "from close")
check("that coroutine is refused too", refused(cos.closing))

-- a plain coroutine whose first result is a task is no task's coroutine
local plain = coroutine.create(function() return mp.spawn(function() end) end)
local _, t = coroutine.resume(plain)
check("a plain coroutine returning a task closes",
      coroutine.close(plain) == true)
check("that task still runs", t:join() == true)
local suspended = coroutine.create(function()
  coroutine.yield(mp.spawn(function() end))
end)
coroutine.resume(suspended)
check("a suspended plain coroutine closes",
      coroutine.close(suspended) == true)

-- a parked task nobody references survives collection and is woken
local ch2, got = mp.channel(), nil
mp.spawn(function() got = ch2:recv() end)
mp.sleep(0)
collectgarbage() collectgarbage()
ch2:send("late")
mp.sleep(0)
check("an unreferenced parked task is woken later", got == "late")

if fails > 0 then os.exit(1) end
print("ok")
