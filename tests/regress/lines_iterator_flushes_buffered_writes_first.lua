-- file:lines() over a file with buffered writes writes them first and
-- reads from the position after them, as io's lines does (the flush used
-- to look for the file at stack slot 1, where a for loop passes nil:
-- "bad argument #1 to 'for iterator'").
local mp = require "moonport"
local fs = mp.fs

local path = os.tmpname()
local fails = 0
local function expect(what, cond, ...)
  if not cond then
    fails = fails + 1
    print("FAIL " .. what, ...)
  end
end

local function lines_after_write(f)
  f:write("one\ntwo\nthree\n")
  f:seek("set", 0)
  f:write("ONE\n") -- buffered: the position is 4
  local got = {}
  for l in f:lines() do got[#got + 1] = l end
  return got
end

-- the reference: Lua's io
local h = assert(io.open(path, "w+"))
local want = lines_after_write(h)
h:close()
expect("io reference", #want == 2 and want[1] == "two", table.concat(want, ","))

mp.run(function()
  local f = assert(fs.open(path, "w+"))
  local ok, got = pcall(lines_after_write, f)
  expect("lines after a buffered write", ok, got)
  if ok then
    expect("same lines as io", table.concat(got, ",") == table.concat(want, ","),
           table.concat(got, ","))
  end
  expect("close", f:close() == true)
  expect("the buffered bytes are in the file",
         fs.readfile(path) == "ONE\ntwo\nthree\n", fs.readfile(path))
end)
os.remove(path)
if fails > 0 then os.exit(1) end
print("ok")
