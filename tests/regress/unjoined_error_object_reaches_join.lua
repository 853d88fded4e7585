-- An error object (a table, a number, nil, ...) raised by a task nobody
-- has joined yet is reported at once and still reaches a later join as
-- the same value.
local mp = require "moonport"

local failures = 0
local function check(cond, what)
  if not cond then
    failures = failures + 1
    print("FAIL: " .. what)
  end
end

local E = setmetatable({ code = 7 }, { __tostring = function() return "E!" end })
local plain = { plain = true }
local cases = {
  { "table with __tostring", E },
  { "plain table", plain },
  { "table whose __tostring returns a number",
    setmetatable({}, { __tostring = function() return 1 end }) },
  { "integer", 42 },
  { "float", 2.5 },
  { "boolean", false },
  { "function", print },
}
local tasks = {}
for i, c in ipairs(cases) do
  tasks[i] = mp.spawn(function() error(c[2]) end)
end
local tnil = mp.spawn(function() error() end)
mp.sleep(0.01) -- every task has failed and been reported, nobody joined
for i, c in ipairs(cases) do
  local r = table.pack(tasks[i]:join())
  check(r.n == 2 and r[1] == false and rawequal(r[2], c[2])
        and math.type(r[2]) == math.type(c[2]),
        c[1] .. ": join returned " .. tostring(r[1]) .. ", "
        .. type(r[2]) .. " " .. tostring(r[2]))
  -- and again: a task may be joined any number of times
  local ok, e = tasks[i]:join()
  check(not ok and rawequal(e, c[2]), c[1] .. ": second join")
end
local r = table.pack(tnil:join())
check(r.n == 2 and r[1] == false and r[2] == nil, "error(): join returned "
      .. tostring(r[1]) .. ", " .. tostring(r[2]))
if failures > 0 then
  print(failures .. " failure(s)")
  os.exit(1)
end
print("ok")
