-- busted.lua: the part of busted's API the specs in tests/lua use, for
-- running them where busted cannot run: under wine, busted's C modules
-- are Linux ones. Run by moonport.exe outside any task, as busted runs
-- them under lua5.4 (`-l` requires this module on the main state):
--
--   moonport -l busted SPEC.lua      (LUA_PATH: tests/win/?.lua first)
--
-- describe / it / pending / setup (lazy_setup) / teardown (lazy_teardown)
-- / before_each / after_each / finally, the luassert assertions the specs
-- use (equal, same, is_true, is_false, is_nil, truthy, has_error,
-- matches, is_string, is_number, is_function, with are/is/has and not), and
-- busted.subscribe for the test start/end events (helper.lua's leak
-- check). The result is printed like TAP, one line per test; the process
-- exits 0 only when no test failed or errored.
--
-- Skips are explicit: tests/win/skip.lua lists, per spec file, the full
-- names of tests (or of describe blocks) that cannot run here, each with
-- its reason. A skipped test is printed with the reason and counted; an
-- entry that names no test fails the run, so the list cannot go stale.

local M = {}

---------------------------------------------------------------------------
-- Assertions (luassert's semantics for what the specs use)

local function fmt(v)
  if type(v) == "string" then return ("%q"):format(v) end
  return tostring(v)
end

local function deepcompare(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not deepcompare(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- Marks an assertion failure (a "failure"), as against an "error".
local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(f) return f.message end

local function fail(msg, level)
  local info = debug.getinfo(level + 1, "Sl")
  local where = info and info.short_src .. ":" .. (info.currentline or 0)
    .. ": " or ""
  error(setmetatable({ message = where .. msg }, Failure), level + 1)
end

-- Each assertion: fn(...) returns ok, description of what was expected.
local checks = {}

function checks.equal(expected, actual)
  return expected == actual,
    ("Expected objects to be equal.\nPassed in:\n%s\nExpected:\n%s"):format(
      fmt(actual), fmt(expected))
end

function checks.same(expected, actual)
  return deepcompare(expected, actual),
    ("Expected objects to be the same.\nPassed in:\n%s\nExpected:\n%s")
      :format(fmt(actual), fmt(expected))
end

function checks.is_true(v)
  return v == true, "Expected true, got " .. fmt(v)
end

function checks.is_false(v)
  return v == false, "Expected false, got " .. fmt(v)
end

function checks.is_nil(v)
  return v == nil, "Expected nil, got " .. fmt(v)
end

function checks.truthy(v)
  return v ~= nil and v ~= false, "Expected to be truthy, got " .. fmt(v)
end

function checks.is_string(v)
  return type(v) == "string", "Expected a string, got " .. fmt(v)
end

function checks.is_number(v)
  return type(v) == "number", "Expected a number, got " .. fmt(v)
end

function checks.is_function(v)
  return type(v) == "function", "Expected a function, got " .. fmt(v)
end

function checks.matches(pattern, actual, init, plain)
  if type(init) == "string" then init = nil end -- a failure message
  if type(plain) == "string" then plain = nil end
  local s = (type(actual) == "number" or type(actual) == "string")
    and tostring(actual) or nil
  if not s then
    local mt = getmetatable(actual)
    if mt and mt.__tostring then s = tostring(actual) end
  end
  if type(pattern) ~= "string" or not s then
    return false, "matches: bad arguments " .. fmt(pattern) .. ", "
      .. fmt(actual)
  end
  return s:find(pattern, init, plain) ~= nil,
    ("Expected strings to match.\nPassed in:\n%s\nExpected:\n%s"):format(
      fmt(s), fmt(pattern))
end

function checks.has_error(fn, expected)
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    return false, "has_error: argument 1 is not callable"
  end
  local ok, err = pcall(fn)
  if getmetatable(err) == Failure then err = err.message end
  if type(err) == "string" then
    err = err:gsub("^.-:%d+: ", "", 1) -- luassert drops "file:line: "
  end
  local msg = ("Expected a different error.\nCaught:\n%s\nExpected:\n%s")
    :format(ok and "(no error)" or fmt(err),
            expected == nil and "(error)" or fmt(expected))
  if ok or expected == nil then return not ok, msg end
  if type(expected) == "string" then
    local mt = getmetatable(err)
    if mt and mt.__tostring then err = tostring(err) end
    if type(err) == "string" then return expected == err, msg end
  elseif type(expected) == "number" and type(err) == "string" then
    return tostring(expected) == tostring(tonumber(err)), msg
  end
  return deepcompare(expected, err), msg
end

local aliases = {
  equals = "equal", ["true"] = "is_true", ["false"] = "is_false",
  ["nil"] = "is_nil", is_truthy = "truthy", ["error"] = "has_error",
  errors = "has_error", match = "matches", string = "is_string",
  number = "is_number", ["function"] = "is_function",
}
-- Modifiers, and whether they negate.
local modifiers = { are = false, is = false, has = false, does = false,
                    ["not"] = true, no = true, are_not = true,
                    is_not = true, has_no = true, does_not = true }

-- assert.X.Y...: modifiers, then a check ("are.equal", "is_not_nil").
local function chain(negate)
  return setmetatable({}, {
    __index = function(_, key)
      if modifiers[key] ~= nil then
        return chain(negate ~= modifiers[key])
      end
      local k, neg = key, negate
      for _, prefix in ipairs({ "are_not_", "is_not_", "has_no_", "not_" }) do
        if k:sub(1, #prefix) == prefix then
          neg, k = not neg, k:sub(#prefix + 1)
          break
        end
      end
      local check = checks[k] or checks[aliases[k] or ""]
        or checks["is_" .. k]
      if not check then
        error("busted.lua: no assertion '" .. key .. "'", 2)
      end
      return function(...)
        local ok, msg = check(...)
        if neg then ok, msg = not ok, "(negated) " .. msg end
        if not ok then fail(msg, 2) end
        return ...
      end
    end,
  })
end

local assert_obj = chain(false)
getmetatable(assert_obj).__call = function(_, v, msg, ...)
  if not v then error(msg == nil and "assertion failed!" or msg, 2) end
  return v, msg, ...
end

---------------------------------------------------------------------------
-- The tree of describe blocks and tests, collected first, then run.

local function new_block(name, parent)
  return { name = name, parent = parent, children = {}, setup = {},
           teardown = {}, before = {}, after = {} }
end

local root = new_block(nil, nil)
local current = root
local running -- the test running now (pending and finally act on it)

local function fullname(node)
  local parts = {}
  while node and node.name do
    table.insert(parts, 1, node.name)
    node = node.parent
  end
  return table.concat(parts, " ")
end

function M.describe(name, fn)
  local b = new_block(name, current)
  table.insert(current.children, b)
  local saved = current
  current = b
  local ok, err = xpcall(fn, debug.traceback)
  current = saved
  if not ok then b.error = err end -- every test of the block errors
end

function M.it(name, fn)
  table.insert(current.children, { test = true, name = name, fn = fn,
                                   parent = current })
end

local Pending = {}
function M.pending(msg, fn)
  if running then error(setmetatable({ message = msg }, Pending), 2) end
  table.insert(current.children, { test = true, name = msg, fn = fn,
                                   pending = true, parent = current })
end

function M.setup(fn) table.insert(current.setup, fn) end
function M.teardown(fn) table.insert(current.teardown, fn) end
function M.before_each(fn) table.insert(current.before, fn) end
function M.after_each(fn) table.insert(current.after, fn) end
function M.finally(fn)
  assert(running, "finally outside a test")
  running.finally = fn
end

local subscribers = { start = {}, ["end"] = {} }
-- busted.subscribe({"test", "start"|"end"}, fn): fn(element, parent,
-- status) around each test; an error it raises makes the test an error.
function M.subscribe(event, fn)
  assert(event[1] == "test" and subscribers[event[2]],
         "busted.lua: only test start/end events")
  table.insert(subscribers[event[2]], fn)
end

---------------------------------------------------------------------------
-- Running

local counts = { success = 0, failure = 0, error = 0, pending = 0,
                 skipped = 0 }
local nth = 0
local skips, used = {}, {}

local function report(status, name, detail)
  nth = nth + 1
  counts[status] = counts[status] + 1
  if status == "success" then
    print(("ok %d - %s"):format(nth, name))
  elseif status == "pending" or status == "skipped" then
    print(("ok %d - %s # %s %s"):format(nth, name,
          status == "pending" and "PENDING" or "SKIP", detail or ""))
  else
    print(("not ok %d - %s"):format(nth, name))
    print("# " .. status .. ": " .. tostring(detail):gsub("\n", "\n# "))
  end
  io.stdout:flush()
end

-- The error of a protected call, classified as busted does.
local function classify(err)
  if getmetatable(err) == Pending then return "pending", err.message end
  if getmetatable(err) == Failure then return "failure", err.message end
  return "error", err
end

local function handler(err)
  if type(err) == "table" then return err end
  return debug.traceback(tostring(err), 2)
end

local function skip_reason(node)
  local n = node
  while n and n.name do
    local name = fullname(n)
    if skips[name] then
      used[name] = true
      return skips[name]
    end
    n = n.parent
  end
end

local function ancestors(node)
  local list = {}
  local b = node.parent
  while b do
    table.insert(list, 1, b)
    b = b.parent
  end
  return list
end

local function run_test(t)
  local name = fullname(t)
  local reason = skip_reason(t)
  if reason then return report("skipped", name, reason) end
  if t.pending then return report("pending", name) end
  for _, b in ipairs(ancestors(t)) do
    if b.error then return report("error", name, b.error) end
  end
  local chain_ = ancestors(t)
  local status, detail = "success", nil
  local ran = 0
  for i, b in ipairs(chain_) do
    for _, fn in ipairs(b.before) do
      local ok, err = xpcall(fn, handler)
      if not ok then
        status, detail = classify(err)
        break
      end
    end
    ran = i
    if status ~= "success" then break end
  end
  if status == "success" then
    for _, fn in ipairs(subscribers.start) do
      local ok, err = xpcall(fn, handler, t, t.parent)
      if not ok then status, detail = "error", err break end
    end
  end
  if status == "success" then
    running = t
    local ok, err = xpcall(t.fn, handler)
    if not ok then status, detail = classify(err) end
    if t.finally then
      local fok, ferr = xpcall(t.finally, handler)
      if not fok and status == "success" then status, detail = classify(ferr) end
    end
    running = nil
    for _, fn in ipairs(subscribers["end"]) do
      local eok, eerr = xpcall(fn, handler, t, t.parent, status)
      if not eok and status == "success" then
        status, detail = "error", eerr
      end
    end
  end
  for i = ran, 1, -1 do
    for _, fn in ipairs(chain_[i].after) do
      local ok, err = xpcall(fn, handler)
      if not ok and status == "success" then status, detail = classify(err) end
    end
  end
  report(status, name, detail)
end

local function has_tests(b)
  for _, c in ipairs(b.children) do
    if c.test or has_tests(c) then return true end
  end
  return false
end

local function run_block(b)
  if not has_tests(b) then return end
  local skipped = b.name and skip_reason(b)
  if not skipped and not b.error then
    for _, fn in ipairs(b.setup) do
      local ok, err = xpcall(fn, handler)
      if not ok then
        b.error = select(2, classify(err))
        break
      end
    end
  end
  for _, c in ipairs(b.children) do
    if c.test then run_test(c) else run_block(c) end
  end
  if not skipped then
    for _, fn in ipairs(b.teardown) do
      local ok, err = xpcall(fn, handler)
      if not ok then
        report("error", fullname(b) .. " (teardown)", err)
      end
    end
  end
end

-- Runs the spec file path; returns the process's exit status.
function M.run(path)
  local base = path:match("([^/\\]+)$")
  local list = require("skip")[base] or {}
  for k, v in pairs(list) do skips[k] = v end
  local env = setmetatable({
    describe = M.describe, context = M.describe, it = M.it,
    pending = M.pending, setup = M.setup, lazy_setup = M.setup,
    teardown = M.teardown, lazy_teardown = M.teardown,
    before_each = M.before_each, after_each = M.after_each,
    finally = M.finally, assert = assert_obj,
  }, { __index = _G })
  local chunk, err = loadfile(path, "t", env)
  if not chunk then
    print("not ok 1 - " .. path .. "\n# error: " .. err)
    return 1
  end
  _G.assert = assert_obj -- helper.lua and friends see luassert's too
  local t0 = os.clock()
  local ok, lerr = xpcall(chunk, debug.traceback)
  if not ok then root.error = lerr end
  if root.error then
    report("error", base, root.error)
  else
    run_block(root)
  end
  local stale = {}
  for k in pairs(skips) do
    if not used[k] then stale[#stale + 1] = k end
  end
  table.sort(stale)
  for _, k in ipairs(stale) do
    report("error", "skip.lua", "the skip entry names no test: " .. k)
  end
  print(("%d successes / %d failures / %d errors / %d pending / %d skipped"
        .. " : %.2f seconds (cpu)"):format(counts.success, counts.failure,
        counts.error, counts.pending, counts.skipped, os.clock() - t0))
  return (counts.failure + counts.error == 0 and nth > 0) and 0 or 1
end

-- moonport -l busted SPEC: the spec is the script; run it here and exit
-- (the script itself never runs as a task).
if arg and arg[0] and arg[0]:match("_spec%.lua$") then
  package.loaded.busted = M
  local status = M.run(arg[0])
  os.exit(status, true)
end

return M
