-- At a task's top level (the script's main chunk runs as a task) the
-- script is where lua's main chunk would be: coroutine.yield fails with
-- lua's message, catchably, instead of failing the task; running() says
-- "main" and isyieldable() is false. Coroutines the script creates, and
-- IO inside them, are unaffected.
local mp = require "moonport"
local failed = 0
local function check(what, ok)
  if not ok then failed = failed + 1 print("FAIL: " .. what) end
end

local function top_level(where)
  local ok, err = pcall(coroutine.yield, 1)
  check(where .. ": pcall(coroutine.yield) is false",
        ok == false and err == "attempt to yield from outside a coroutine")
  local co, main = coroutine.running()
  check(where .. ": running() reports the main thread",
        type(co) == "thread" and main == true)
  check(where .. ": status of running() is running",
        coroutine.status(co) == "running")
  check(where .. ": isyieldable() is false", coroutine.isyieldable() == false)
  check(where .. ": isyieldable(co) is false",
        coroutine.isyieldable(co) == false)
  -- inside a coroutine of the script: the usual behaviour, IO included
  local gen = coroutine.wrap(function(a)
    local c, m = coroutine.running()
    check(where .. ": inside a coroutine running() is not main",
          c ~= co and m == false)
    check(where .. ": inside a coroutine isyieldable()",
          coroutine.isyieldable())
    mp.sleep(0.001)
    local b = coroutine.yield(a + 1)
    return b * 2
  end)
  check(where .. ": yield inside a coroutine works", gen(1) == 2)
  check(where .. ": and resumes", gen(21) == 42)
end

top_level("script")
local t = mp.spawn(top_level, "task")
check("the spawned task ended well", t:join() == true)
-- an uncaught yield at the top level is an ordinary error
local t2 = mp.spawn(function() coroutine.yield() end)
local ok, err = t2:join()
check("an uncaught top-level yield fails the task with lua's message",
      ok == false and tostring(err):find("attempt to yield from outside"))
if failed > 0 then os.exit(1) end
print("ok")
