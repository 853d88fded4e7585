-- An mp.timeout whose fn is suspended in a script's coroutine that the
-- task then leaves (closed, abandoned from a table.sort comparator, or
-- just dropped) must not interrupt the task's later suspensions when its
-- deadline fires: the deadline belongs to that coroutine's frame. Closing
-- or collecting the coroutine drops the deadline (its timer cancelled); a
-- coroutine left suspended and resumed later still times out inside its
-- own mp.timeout. Each case runs in its own task, whose unrelated sleep
-- must end normally (without pcall: a stray timeout would fail the task).
local mp = require "moonport"

local failures = 0
local function check(cond, what)
  if not cond then
    failures = failures + 1
    print("FAIL: " .. what)
  end
end

local function timers()
  collectgarbage()
  collectgarbage()
  mp.sleep(0.01) -- a cancelled timer goes when its completion arrives
  return mp.debug.stats().timers
end

local base = timers()

-- Runs leave(co) in a task after start(co) suspended co inside
-- mp.timeout(0.05), then sleeps past that deadline; the task must end
-- normally.
local function case(what, body, start, leave)
  local t = mp.spawn(function()
    local co = coroutine.create(function()
      return mp.timeout(0.05, body)
    end)
    start(co)
    check(coroutine.status(co) == "suspended", what .. ": not suspended")
    leave(co)
    co = nil
    mp.sleep(0.2) -- the deadline fires meanwhile
    return "slept"
  end)
  local ok, tok, r = mp.timeout(10, t.join, t)
  check(ok, what .. ": the task hung")
  check(tok and r == "slept", what .. ": the task's own sleep raised "
        .. tostring(r))
  check(timers() == base, what .. ": the deadline's timer is left")
end

local function yield() coroutine.yield() end
local function sleep() mp.sleep(30) end
local function close(co) check(coroutine.close(co), "close") end
local function drop() end
-- The task cannot wait for co's sleep inside table.sort: co is abandoned.
local function sort(co)
  local ok = pcall(table.sort, { 1, 2 }, function()
    coroutine.resume(co)
    return false
  end)
  check(not ok, "a resume inside table.sort cannot suspend")
end

case("plain yield, closed", yield, coroutine.resume, close)
case("plain yield, dropped", yield, coroutine.resume, drop)
case("sleep, abandoned in table.sort, dropped", sleep, sort, drop)
case("sleep, abandoned in table.sort, closed", sleep, sort, close)

-- Closed from another task while its own task waits in it: that task
-- goes on, and its later sleep is not interrupted.
do
  local co = coroutine.create(function()
    return mp.timeout(0.05, sleep)
  end)
  local t = mp.spawn(function()
    local ok, err = coroutine.resume(co)
    check(not ok and err:find("dead coroutine"), "resume of the closed one")
    mp.sleep(0.2)
    return "slept"
  end)
  mp.sleep(0)
  check(coroutine.close(co), "close from another task")
  local ok, tok, r = mp.timeout(10, t.join, t)
  check(ok and tok and r == "slept", "closed from another task: "
        .. tostring(r))
  check(timers() == base, "closed from another task: the timer is left")
end

-- Left suspended past its deadline, then resumed: the task's sleep in
-- between is not interrupted, and the coroutine's own next suspension
-- times out inside its mp.timeout.
do
  local co = coroutine.create(function()
    return mp.timeout(0.05, function()
      coroutine.yield("paused")
      mp.sleep(30)
      return "slept"
    end)
  end)
  local _, v = coroutine.resume(co)
  check(v == "paused", "paused")
  local ok, err = pcall(mp.sleep, 0.2)
  check(ok, "the sleep between raised " .. tostring(err))
  local rok, tok, terr = coroutine.resume(co)
  check(rok and tok == false and terr == "timeout",
        "resumed after its deadline: " .. tostring(tok) .. ", "
        .. tostring(terr))
  check(timers() == base, "resumed: the timer is left")
end

-- Still interrupted where it applies: a suspension in a coroutine that
-- the mp.timeout's fn resumes (nested, the deadline on its chain).
do
  local ok, err = mp.timeout(0.05, function()
    local inner = coroutine.wrap(function()
      return mp.timeout(30, sleep)
    end)
    return inner()
  end)
  check(ok == false and err == "timeout", "nested: " .. tostring(err))
  check(timers() == base, "nested: a timer is left")
end

if failures > 0 then os.exit(1) end
print("ok")
