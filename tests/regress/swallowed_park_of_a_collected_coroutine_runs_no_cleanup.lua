-- A park swallowed by a resume that bypasses the coroutine wrappers
-- (core.waiting's case; here lua's own resume, as a script that saved it
-- before moonport wrapped it would have) leaves the task's wait pointing
-- at that coroutine. Once the coroutine is collected, nothing may read
-- its stack: a waiter keeps its cleanup's arguments in the coroutine's
-- frame, and core.abandon (the sentinel yielded again inside a C call)
-- ran that cleanup from the freed coroutine: a wrong error, or a crash.
local mp = require "moonport"

local raw
for i = 1, 10 do
  local n, v = debug.getupvalue(coroutine.resume, i)
  if n == "co_resume" then raw = v end
end
assert(raw, "lua's coroutine.resume not found behind the wrapper")

local function swallow(make)
  local co = coroutine.create(make())
  local _, s = raw(co) -- suspended in moonport; the task runs on
  return s
end

local waits = {
  recv = function()
    local ch = mp.channel()
    return function() return ch:recv() end
  end,
  send = function()
    local ch = mp.channel()
    return function() return ch:send(1) end
  end,
  lock = function()
    local l = mp.lock()
    mp.spawn(function() l:lock() mp.sleep(0.05) l:unlock() end)
    mp.sleep(0)
    return function() return l:lock() end
  end,
}

for name, make in pairs(waits) do
  for round = 1, 20 do
    local s = swallow(make)
    for _ = 1, 2 do collectgarbage() end
    local junk = {} -- reuse the collected coroutine's memory
    for i = 1, 50 do
      junk[i] = coroutine.create(function(...) coroutine.yield(...) end)
      coroutine.resume(junk[i], i, "x", {})
    end
    local ok, err = pcall(table.sort, { 1, 2 }, function(a, b)
      coroutine.wrap(function() coroutine.yield(s) end)()
      return a < b
    end)
    assert(not ok and tostring(err):find("across a C%-call boundary"),
           name .. ", round " .. round .. ": " .. tostring(err))
  end
end
print("ok")
