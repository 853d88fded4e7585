-- coroutine.wrap closes a coroutine that failed, running its pending
-- __close handlers; an error raised by one of them replaces the original
-- error, as lua's auxwrap does (testes/locals.lua, Lua 5.4.4).
local failed = 0
local function check(what, ok)
  if not ok then failed = failed + 1 print("FAIL: " .. what) end
end

local closed = false
local f = coroutine.wrap(function()
  local x <close> = setmetatable({}, { __close = function(_, e)
    closed = e
    error("from close", 0)
  end })
  error("original", 0)
end)
local ok, err = pcall(f)
check("the __close error propagates", ok == false and err == "from close")
check("the handler saw the original error", closed == "original")
ok, err = pcall(f)
check("then the coroutine is dead",
      ok == false and err == "cannot resume dead coroutine")

-- a handler that does not raise: the original error comes through, and
-- a string error gets the caller's position (level 2) like auxwrap
local g = coroutine.wrap(function()
  local y <close> = setmetatable({}, { __close = function() end })
  error("plain", 0)
end)
local function call_g() local r = g() return r end
ok, err = pcall(call_g)
check("the original error otherwise, with the caller's position",
      ok == false and err:find("plain$") and err:find("^[^:]+:%d+: "))
if failed > 0 then os.exit(1) end
print("ok")
