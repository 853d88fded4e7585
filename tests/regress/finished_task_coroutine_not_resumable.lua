-- A finished task's coroutine keeps the task at index 1 and its results
-- above it: lua's resume took it for a coroutine not yet started and
-- called its last value (the task, or the last result), the error it
-- left then let coroutine.close reset the stack, and join read past it.
-- As for lua's main thread, resuming it is refused; join is unharmed.
local mp = require "moonport"
local fails = 0
local function check(name, ok)
  if not ok then fails = fails + 1 print("not ok - " .. name) end
end
-- lua's own refusals ("non-suspended" as for its main thread; "dead" if
-- the task's coroutine ever keeps nothing on its stack)
local function refused(co)
  local ok, err = coroutine.resume(co)
  return ok == false and (err == "cannot resume non-suspended coroutine"
                          or err == "cannot resume dead coroutine")
end

local co0, co5, cof
local none = mp.spawn(function() co0 = coroutine.running() end)
local five = mp.spawn(function() co5 = coroutine.running()
                                 return 1, 2, 3, 4, 5 end)
local failed = mp.spawn(function() cof = coroutine.running()
                                   mp.sleep(0) error("boom", 0) end)
local joined -- joining before it fails: no report on stderr
mp.spawn(function() joined = table.pack(failed:join()) end)
mp.sleep(0.01)
check("resuming a task that returned nothing is refused", refused(co0))
check("resuming a task that returned values is refused", refused(co5))
check("resuming a failed task is refused", refused(cof))
for _, co in ipairs { co0, co5, cof } do
  check("closing it is still refused", not pcall(coroutine.close, co))
end
local r = table.pack(five:join())
check("join returns the results whole", r.n == 6 and r[1] == true and
      r[2] == 1 and r[3] == 2 and r[4] == 3 and r[5] == 4 and r[6] == 5)
local n = table.pack(none:join())
check("join of the empty task", n.n == 1 and n[1] == true)
check("join of the failed task",
      joined[1] == false and joined[2] == "boom")
local ok, e = failed:join()
check("and again", ok == false and e == "boom")

-- plain coroutines resume as in lua
local plain = coroutine.create(function(x) return x + 1 end)
local pok, pv = coroutine.resume(plain, 1)
check("a plain coroutine resumes", pok and pv == 2)
local dok, derr = coroutine.resume(plain)
check("a dead one is refused as in lua",
      dok == false and derr == "cannot resume dead coroutine")
local w = coroutine.wrap(function(a) local b = coroutine.yield(a)
                                     return b * 2 end)
check("wrap still works", w(3) == 3 and w(4) == 8)

if fails > 0 then os.exit(1) end
print("ok")
