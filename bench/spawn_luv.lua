-- spawn_luv.lua N: the same with luv's uv.spawn (32 at a time).
local uv = require "luv"
local n = tonumber(arg[1]) or 1000
local left = n
local t0 = uv.hrtime()
local function one()
  if left == 0 then return end
  left = left - 1
  local h
  h = uv.spawn("/bin/true", { args = {} }, function(code)
    assert(code == 0)
    h:close()
    one()
  end)
  assert(h)
end
for _ = 1, 32 do one() end
uv.run()
print(string.format("%.3f", (uv.hrtime() - t0) / 1e9))
