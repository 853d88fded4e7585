-- fs.writefile cancelled or timed out at any point leaves no temporary
-- file behind, and the target holds either its old or its new contents.
local mp = require "moonport"
local fs = mp.fs

local dir = os.tmpname()
os.remove(dir)
assert(fs.mkdir(dir))
local fails = 0
local function fail(...)
  fails = fails + 1
  print("FAIL", ...)
end

local old = string.rep("o", 300000)
local new = string.rep("n", 300000)
local path = dir .. "/target"
local interrupted = 0
for round = 1, 60 do
  assert(fs.writefile(path, old))
  local t = mp.spawn(fs.writefile, path, new)
  -- interrupt it after a varying number of loop turns, or by a timeout
  if round % 3 == 0 then
    local ok = mp.timeout((round % 7) * 0.0002, function()
      return fs.writefile(path, new)
    end)
    if not ok then interrupted = interrupted + 1 end
  end
  for _ = 1, round % 5 do mp.sleep(0) end
  t:cancel()
  local ok, err = t:join()
  if not ok then
    if err ~= "cancelled" then fail("round", round, err) end
    interrupted = interrupted + 1
  end
  local data = fs.readfile(path)
  if data ~= old and data ~= new then
    fail("round", round, "torn contents", #data)
  end
  for _, name in ipairs(assert(fs.dir(dir))) do
    if name ~= "target" then
      fail("round", round, "left behind:", name)
      fs.remove(dir .. "/" .. name)
    end
  end
end
assert(interrupted > 0, "nothing was interrupted: the test proves nothing")
assert(fs.remove(path))
assert(fs.rmdir(dir))
if fails > 0 then os.exit(1) end
print("ok", interrupted .. " interrupted")
