-- file:write("") writes nothing and moves nothing, as io's: on a file
-- opened "a+" it reset the position to 0 (an append-mode buffer was
-- started for no bytes, which dropped the read buffer).
local mp = require "moonport"
local p = os.tmpname()
local h = assert(io.open(p, "w"))
h:write("hello world")
h:close()

local function run(open, mode)
  local f = assert(open(p, mode))
  f:seek("set", 3)
  local a = f:read(2)
  assert(f:write(""))
  assert(f:write())
  local pos = f:seek()
  local b = f:read(2)
  f:close()
  return table.concat({ tostring(a), tostring(pos), tostring(b) }, "|")
end

local failures = 0
mp.run(function()
  for _, mode in ipairs { "a+", "r+", "w+" } do
    if mode == "w+" then
      local w = assert(io.open(p, "w")); w:write("hello world"); w:close()
    end
    local want = run(io.open, mode)
    if mode == "w+" then
      local w = assert(io.open(p, "w")); w:write("hello world"); w:close()
    end
    local got = run(mp.fs.open, mode)
    if got ~= want then
      failures = failures + 1
      print("FAIL " .. mode .. ": io " .. want .. ", mp.fs " .. got)
    end
  end
end)
os.remove(p)
if failures > 0 then os.exit(1) end
print("ok")
