-- A failed task's error is reported (its __tostring called) while its
-- coroutine still holds the error, before moonport closes it: a
-- coroutine.close of it from that __tostring is refused as for any task
-- coroutine, and join still gets the error object.
local mp = require "moonport"
local fails = 0
local function check(name, ok)
  if not ok then fails = fails + 1 print("not ok - " .. name) end
end

local co, refused
local obj = setmetatable({}, { __tostring = function()
  refused = not pcall(coroutine.close, co)
  return "the error"
end })
local t = mp.spawn(function()
  co = coroutine.running()
  error(obj)
end)
mp.sleep(0.01) -- nobody joins yet: the failure is reported
check("closing it from the report is refused", refused == true)
local ok, err = t:join()
check("join gets the error object", not ok and err == obj)
check("still refused afterwards", not pcall(coroutine.close, co))

if fails > 0 then os.exit(1) end
print("ok")
