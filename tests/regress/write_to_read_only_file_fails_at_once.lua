-- Writing to a file opened "r" fails at the write, as io does
-- (io.open(p, "r"):write("x") is nil, "Bad file descriptor", 9): nothing
-- is buffered, and the calls after it are not blamed.
local mp = require "moonport"
local fs = mp.fs

local path = os.tmpname()
assert(fs.writefile(path, "hello\n"))
local fails = 0
local function expect(what, cond, ...)
  if not cond then
    fails = fails + 1
    print("FAIL " .. what, ...)
  end
end

local io_f = assert(io.open(path, "r"))
local io_r = table.pack(io_f:write("x"))
io_f:close()
expect("lua5.4 reference", io_r.n == 3 and io_r[1] == nil, table.unpack(io_r))

local f = assert(fs.open(path, "r"))
local r = table.pack(f:write("x"))
expect("write returns 3 values", r.n == 3, table.unpack(r, 1, r.n))
expect("write fails", r[1] == nil, r[1])
expect("message as io's, with the path", r[2] == path .. ": " .. io_r[2], r[2])
expect("code", r[3] == "EBADF", r[3])
-- a second, larger write fails the same way (not buffered either)
local r2 = table.pack(f:write(string.rep("y", 100000)))
expect("big write fails", r2[1] == nil and r2[3] == "EBADF", r2[1], r2[3])
-- as io: writing nothing succeeds (fwrite of 0 bytes cannot fail)
expect("empty write", f:write() == f and f:write("") == f)
r2 = table.pack(f:pwrite("z", 0))
expect("pwrite fails", r2[1] == nil and r2[3] == "EBADF", r2[1], r2[3])
-- the next calls are not blamed
local s = table.pack(f:read("a"))
expect("read after failed write", s[1] == "hello\n", table.unpack(s, 1, s.n))
expect("seek after failed write", f:seek("set") == 0)
expect("flush after failed write", f:flush() == f)
local c = table.pack(f:close())
expect("close after failed write", c[1] == true, table.unpack(c, 1, c.n))
expect("file untouched", fs.readfile(path) == "hello\n")

-- the same with a to-be-closed variable: nothing surfaces at __close
do
  local g <close> = assert(fs.open(path, "rb"))
  expect("tbc write", g:write("abc") == nil)
end
expect("file untouched after tbc", fs.readfile(path) == "hello\n")

-- reading a file opened only for writing fails at the read, as io
local w = assert(fs.open(path, "a"))
local rr = table.pack(w:read("l"))
expect("read on append-only", rr[1] == nil and rr[3] == "EBADF",
       table.unpack(rr, 1, rr.n))
expect("write after failed read", w:write("more\n") == w)
expect("close", w:close() == true)
expect("appended", fs.readfile(path) == "hello\nmore\n")
os.remove(path)
if fails > 0 then os.exit(1) end
print("ok")
