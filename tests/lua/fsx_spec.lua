-- fsx_spec.lua: the rest of mp.fs (chmod, chown, utime, symlink,
-- readlink, realpath, truncate, file:truncate, mkdtemp, tmpfile, fdopen,
-- copy) and stream:sendfile: success and failure paths, errors naming the
-- path, permission failures as an unprivileged user. Runs on every
-- backend (ctest).
local H = require "helper"
local mp = H.mp
local fs = mp.fs

local dir
setup(function() dir = H.tmpdir() end)
teardown(function() H.rmtree(dir) end)

local function path(name) return dir .. "/" .. name end

local function put(p, data)
  local f = assert(io.open(p, "wb"))
  f:write(data)
  f:close()
end

local function get(p)
  local f = assert(io.open(p, "rb"))
  local d = f:read("a")
  f:close()
  return d
end

-- nil, "<what>: ...", code
local function fails(code, what, r, msg, c)
  assert.is_nil(r)
  assert.are.equal(code, c)
  assert.is_string(msg)
  assert.are.equal(what .. ": ", msg:sub(1, #what + 2))
end

local root = io.popen("id -u"):read("l") == "0"

-- Runs a Lua script as an unprivileged user and returns its output: as
-- nobody through setpriv when root, else as ourselves (already
-- unprivileged). nil (and a visible pending) when that is impossible.
local function as_user(src)
  if root and os.execute("command -v setpriv >/dev/null") ~= true then
    pending("setpriv not available: permission checks skipped")
    return nil
  end
  local script = path("as_user_" .. math.random(1e9) .. ".lua")
  put(script, src)
  os.execute("chmod 755 '" .. dir .. "'; chmod 644 '" .. script .. "'")
  local cmd = ("%senv LUA_CPATH=%q lua5.4 %q 2>&1"):format(
    root and "setpriv --reuid=65534 --regid=65534 --clear-groups " or "",
    package.cpath, script)
  local h = io.popen(cmd)
  local out = h:read("a")
  h:close()
  return out
end

-- A script printing "code|msg" of fs[fn](args...).
local function user_call(fn, ...)
  local args = {}
  for i, a in ipairs({...}) do args[i] = ("%q"):format(a) end
  return as_user(([[
    local mp = require "moonport"
    local r, msg, code = mp.fs.%s(%s)
    io.write(tostring(r), "|", tostring(code), "|", tostring(msg))
  ]]):format(fn, table.concat(args, ", ")))
end

describe("fs.chmod", function()
  it("sets the permission bits, as a number or octal digits", function()
    put(path("m"), "x")
    H.run(function()
      assert.is_true(fs.chmod(path("m"), 448)) -- 0700
      assert.are.equal(448, fs.stat(path("m")).mode)
      assert.is_true(fs.chmod(path("m"), "644"))
      assert.are.equal(420, fs.stat(path("m")).mode)
      assert.is_true(fs.chmod(path("m"), "4755"))
      assert.are.equal(2541, fs.stat(path("m")).mode)
    end)
  end)

  it("fails with the path named", function()
    put(path("f"), "x")
    H.run(function()
      fails("ENOENT", path("nope"), fs.chmod(path("nope"), 420))
      fails("ENOTDIR", path("f/x"), fs.chmod(path("f/x"), 420))
    end)
  end)

  it("raises on a bad mode", function()
    assert.has_error(function() fs.chmod(path("m"), -1) end)
    assert.has_error(function() fs.chmod(path("m"), 8 ^ 5) end)
    assert.has_error(function() fs.chmod(path("m"), "9") end)
    assert.has_error(function() fs.chmod(path("m"), "") end)
    assert.has_error(function() fs.chmod(path("m")) end)
  end)

  it("EPERM on another user's file", function()
    put(path("theirs"), "x")
    if not root then
      pending("not root: no file of another user to try")
      return
    end
    local out = user_call("chmod", path("theirs"), 511)
    if not out then return end
    assert.are.equal("nil|EPERM|" .. path("theirs") ..
                     ": Operation not permitted", out)
    assert.are_not.equal(511, H.run(function()
      return fs.stat(path("theirs")).mode end))
  end)
end)

describe("fs.chown", function()
  it("keeps the ids given as -1 or nil", function()
    put(path("o"), "x")
    H.run(function()
      local st = fs.stat(path("o"))
      assert.is_true(fs.chown(path("o"), -1, -1))
      assert.is_true(fs.chown(path("o")))
      local st2 = fs.stat(path("o"))
      assert.are.equal(st.uid, st2.uid)
      assert.are.equal(st.gid, st2.gid)
    end)
  end)

  it("gives a file to another user (root only)", function()
    put(path("give"), "x")
    if not root then
      pending("not root: cannot give a file away")
      return
    end
    H.run(function()
      assert.is_true(fs.chown(path("give"), 65534, 65534))
      local st = fs.stat(path("give"))
      assert.are.equal(65534, st.uid)
      assert.are.equal(65534, st.gid)
      assert.is_true(fs.chown(path("give"), 0))
      assert.are.equal(0, fs.stat(path("give")).uid)
      assert.are.equal(65534, fs.stat(path("give")).gid)
    end)
  end)

  it("fails with the path named", function()
    put(path("f"), "x")
    H.run(function()
      fails("ENOENT", path("nope"), fs.chown(path("nope"), -1, -1))
      fails("ENOTDIR", path("f/x"), fs.chown(path("f/x"), -1, -1))
    end)
    assert.has_error(function() fs.chown(path("f"), -2) end)
    assert.has_error(function() fs.chown(path("f"), 0, "x") end)
  end)

  it("EPERM for an unprivileged user", function()
    put(path("mine"), "x")
    local out = user_call("chown", path("mine"), 0, 0)
    if not out then return end
    if root then
      assert.are.equal("nil|EPERM|" .. path("mine") ..
                       ": Operation not permitted", out)
    else -- our own file to root
      assert.truthy(out:find("^nil|EPERM|"))
    end
  end)
end)

describe("fs.utime", function()
  it("sets both times, with fractions and before 1970", function()
    put(path("t"), "x")
    H.run(function()
      assert.is_true(fs.utime(path("t"), 1000, 2000.25))
      local st = fs.stat(path("t"))
      assert.are.equal(1000, st.atime)
      assert.are.equal(2000.25, st.mtime)
      assert.is_true(fs.utime(path("t"), -10.5))
      st = fs.stat(path("t"))
      assert.are.equal(-10.5, st.atime)
      assert.are.equal(-10.5, st.mtime) -- mtime defaults to atime
    end)
  end)

  it("defaults to now", function()
    put(path("now"), "x")
    H.run(function()
      assert.is_true(fs.utime(path("now"), 1, 1))
      assert.is_true(fs.utime(path("now")))
      local st = fs.stat(path("now"))
      assert.is_true(math.abs(st.mtime - os.time()) < 60)
      assert.is_true(math.abs(st.atime - os.time()) < 60)
    end)
  end)

  it("fails with the path named", function()
    put(path("f"), "x")
    H.run(function()
      fails("ENOENT", path("nope"), fs.utime(path("nope"), 1, 1))
      fails("ENOTDIR", path("f/x"), fs.utime(path("f/x"), 1, 1))
    end)
    assert.has_error(function() fs.utime(path("f"), "soon") end)
    assert.has_error(function() fs.utime(path("f"), 1e300) end)
  end)

  it("EPERM on another user's file", function()
    put(path("theirs_t"), "x")
    if not root then
      pending("not root: no file of another user to try")
      return
    end
    local out = user_call("utime", path("theirs_t"), 5, 5)
    if not out then return end
    assert.are.equal("nil|EPERM|" .. path("theirs_t") ..
                     ": Operation not permitted", out)
  end)
end)

describe("fs.symlink, fs.readlink, fs.realpath", function()
  it("make and read links, resolve paths", function()
    put(path("target"), "x")
    H.run(function()
      assert.is_true(fs.symlink("target", path("link")))
      assert.are.equal("link", fs.lstat(path("link")).type)
      assert.are.equal("target", fs.readlink(path("link")))
      assert.are.equal("x", fs.readfile(path("link")))
      -- a dangling link is fine to make and read
      assert.is_true(fs.symlink("/no/such/thing", path("dangling")))
      assert.are.equal("/no/such/thing", fs.readlink(path("dangling")))
      local real = fs.realpath(dir)
      assert.are.equal("/", real:sub(1, 1))
      assert.are.equal(real .. "/target", fs.realpath(path("link")))
      assert.is_true(fs.mkdir(path("sub")))
      assert.are.equal(real .. "/target",
                       fs.realpath(path("sub/../link")))
    end)
  end)

  it("fail with the path named", function()
    put(path("plain"), "x")
    H.run(function()
      fs.symlink("plain", path("l2"))
      fails("EEXIST", path("l2"), fs.symlink("other", path("l2")))
      fails("ENOENT", path("nodir/l"), fs.symlink("x", path("nodir/l")))
      fails("EINVAL", path("plain"), fs.readlink(path("plain")))
      fails("ENOENT", path("nope"), fs.readlink(path("nope")))
      fails("ENOTDIR", path("plain/x"), fs.readlink(path("plain/x")))
      fails("ENOENT", path("nope"), fs.realpath(path("nope")))
      fails("ENOTDIR", path("plain/x"), fs.realpath(path("plain/x")))
      fs.symlink("loop2", path("loop1"))
      fs.symlink("loop1", path("loop2"))
      fails("ELOOP", path("loop1"), fs.realpath(path("loop1")))
    end)
    assert.has_error(function() fs.readlink("a\0b") end)
    assert.has_error(function() fs.symlink("x") end)
  end)

  it("EACCES for an unprivileged user", function()
    assert(os.execute("mkdir -p '" .. path("closed") .. "'"))
    H.run(function()
      assert(fs.symlink("t", path("closed/l")))
      assert(fs.chmod(path("closed"), 448))
    end)
    local out = user_call("readlink", path("closed/l"))
    if not out then return end
    if root then
      assert.are.equal("nil|EACCES|" .. path("closed/l") ..
                       ": Permission denied", out)
    else
      assert.are.equal("t|nil|nil", out) -- our own directory
    end
    out = user_call("symlink", "t", path("closed/l2"))
    if root then
      assert.are.equal("nil|EACCES|" .. path("closed/l2") ..
                       ": Permission denied", out)
    end
  end)
end)

describe("fs.truncate", function()
  it("shortens and extends with zeros", function()
    put(path("tr"), "hello world")
    H.run(function()
      assert.is_true(fs.truncate(path("tr"), 5))
      assert.are.equal("hello", fs.readfile(path("tr")))
      assert.is_true(fs.truncate(path("tr"), 8))
      assert.are.equal("hello\0\0\0", fs.readfile(path("tr")))
      assert.is_true(fs.truncate(path("tr")))
      assert.are.equal("", fs.readfile(path("tr")))
    end)
  end)

  it("fails with the path named", function()
    put(path("f"), "x")
    H.run(function()
      fails("ENOENT", path("nope"), fs.truncate(path("nope"), 1))
      fails("ENOTDIR", path("f/x"), fs.truncate(path("f/x"), 1))
      fails("EISDIR", dir, fs.truncate(dir, 1))
    end)
    assert.has_error(function() fs.truncate(path("f"), -1) end)
  end)

  it("EACCES for an unprivileged user", function()
    put(path("ro"), "keep")
    os.execute("chmod 644 '" .. path("ro") .. "'")
    if not root then os.execute("chmod 444 '" .. path("ro") .. "'") end
    local out = user_call("truncate", path("ro"), 0)
    if not out then return end
    assert.are.equal("nil|EACCES|" .. path("ro") .. ": Permission denied",
                     out)
    assert.are.equal("keep", get(path("ro")))
  end)
end)

describe("file:truncate", function()
  it("writes buffered bytes first, keeps the position", function()
    H.run(function()
      local f = assert(fs.open(path("ft"), "w+"))
      f:write("hello world") -- buffered
      assert.is_true(f:truncate(5))
      assert.are.equal("hello", get(path("ft")))
      assert.are.equal(11, f:seek()) -- the position stays
      f:write("!")
      assert.are.equal(f, f:flush())
      assert.are.equal("hello\0\0\0\0\0\0!", get(path("ft")))
      f:close()
    end)
  end)

  it("defaults to the position; reads see the new end", function()
    put(path("ft2"), "abcdefgh")
    H.run(function()
      local f = assert(fs.open(path("ft2"), "r+"))
      assert.are.equal("abc", f:read(3)) -- the rest is buffered
      assert.is_true(f:truncate())
      assert.are.equal("abc", get(path("ft2")))
      assert.is_nil(f:read(1)) -- not the stale buffered "d"
      f:seek("set")
      assert.are.equal("abc", f:read("a"))
      f:close()
    end)
  end)

  it("fails on a file not opened for writing; raises when closed", function()
    put(path("ft3"), "abc")
    H.run(function()
      local f = assert(fs.open(path("ft3")))
      fails("EBADF", path("ft3"), f:truncate(1))
      assert.are.equal("abc", get(path("ft3")))
      assert.has_error(function() f:truncate(-1) end)
      f:close()
      assert.has_error(function() f:truncate(0) end)
    end)
  end)

  it("refuses a device", function()
    H.run(function()
      local f = assert(fs.open("/dev/full", "w"))
      fails("EINVAL", "/dev/full", f:truncate(0))
      f:close()
    end)
  end)
end)

describe("fs.mkdtemp", function()
  it("makes private, distinct directories", function()
    H.run(function()
      local a = assert(fs.mkdtemp())
      local b = assert(fs.mkdtemp())
      assert.are_not.equal(a, b)
      for _, d in ipairs({a, b}) do
        local st = fs.stat(d)
        assert.are.equal("directory", st.type)
        assert.are.equal(448, st.mode)
        assert.is_true(fs.rmdir(d))
      end
      local tmp = os.getenv("TMPDIR")
      tmp = tmp and tmp ~= "" and tmp or "/tmp"
      assert.are.equal(tmp .. "/moonport-", a:sub(1, #tmp + 10))
      local c = assert(fs.mkdtemp(path("job-")))
      assert.are.equal(path("job-"), c:sub(1, #path("job-")))
      assert.are.equal(#path("job-") + 6, #c)
      assert.are.equal("directory", fs.stat(c).type)
    end)
  end)

  it("fails with the template named", function()
    put(path("f"), "x")
    H.run(function()
      fails("ENOENT", path("nope/x-XXXXXX"), fs.mkdtemp(path("nope/x-")))
      fails("ENOTDIR", path("f/x-XXXXXX"), fs.mkdtemp(path("f/x-")))
    end)
    assert.has_error(function() fs.mkdtemp({}) end)
  end)

  it("EACCES for an unprivileged user", function()
    assert(os.execute("mkdir -p '" .. path("locked") .. "'"))
    os.execute("chmod 755 '" .. path("locked") .. "'")
    if not root then os.execute("chmod 555 '" .. path("locked") .. "'") end
    local out = user_call("mkdtemp", path("locked/t-"))
    if not out then return end
    assert.are.equal("nil|EACCES|" .. path("locked/t-XXXXXX") ..
                     ": Permission denied", out)
    os.execute("chmod 755 '" .. path("locked") .. "'")
  end)
end)

describe("fs.tmpfile", function()
  it("is a w+ file without a name, as io.tmpfile", function()
    H.run(function()
      local before = H.fd_count()
      local f = assert(fs.tmpfile())
      assert.are.equal(0, f:stat().nlink) -- nothing to remove later
      assert.are.equal(f, f:write("line 1\n", 42, "\n"))
      assert.are.equal(0, f:seek("set"))
      assert.are.equal("line 1", f:read("l"))
      assert.are.equal(42, f:read("n"))
      assert.is_true(f:truncate(4))
      f:seek("set")
      assert.are.equal("line", f:read("a"))
      assert.is_true(f:close())
      assert.is_true(H.fds_back_to(before))
    end)
  end)
end)

describe("fs.fdopen", function()
  local function child(redir, body)
    local script = path("fd_" .. math.random(1e9) .. ".lua")
    put(script, "local mp = require 'moonport'\n" .. body)
    local h = io.popen(("env LUA_CPATH=%q lua5.4 %q %s 2>&1"):format(
      package.cpath, script, redir))
    local out = h:read("a")
    h:close()
    return out
  end

  it("reads, writes and appends to inherited descriptors", function()
    put(path("in"), "first\nsecond\n")
    local out = child("3<'" .. path("in") .. "'", [[
      local f = assert(mp.fs.fdopen(3, "r"))
      io.write(f:read("l"), "|", f:read("a"), "|", tostring(f:close()))
      io.write("|", select(3, mp.fs.fdopen(999))) -- not open
    ]])
    assert.are.equal("first|second\n|true|EBADF", out)
    put(path("out"), "keep\n")
    out = child("3>>'" .. path("out") .. "' 4<>'" .. path("in") .. "'", [[
      local f = assert(mp.fs.fdopen(3, "a"))
      assert(f:write("appended\n"))
      assert(f:close())
      local g = assert(mp.fs.fdopen(4, "r+"))
      assert(g:seek("set", 6))
      assert(g:write("SECOND"))
      io.write(tostring(g:close()))
    ]])
    assert.are.equal("true", out)
    assert.are.equal("keep\nappended\n", get(path("out")))
    assert.are.equal("first\nSECOND\n", get(path("in")))
  end)

  it("starts at the descriptor's position", function()
    put(path("pos"), "0123456789")
    -- the shell's "exec 3<file; read -n 4 <&3" leaves fd 3 at 4
    local script = path("pos.lua")
    put(script, [[
      local f = assert(require("moonport").fs.fdopen(3))
      io.write(f:read("a"))
    ]])
    local h = io.popen(("bash -c 'exec 3<%q; read -n 4 -u 3 x; " ..
                        "LUA_CPATH=%q lua5.4 %q'"):format(
                          path("pos"), package.cpath, script))
    local out = h:read("a")
    h:close()
    assert.are.equal("456789", out)
  end)

  it("refuses a mode the descriptor was not opened for", function()
    put(path("ro"), "x")
    local out = child("3<'" .. path("ro") .. "'", [[
      local r, msg, code = mp.fs.fdopen(3, "w")
      io.write(tostring(r), "|", code, "|", msg, "|")
      io.write(mp.fs.fdopen(3, "r"):read("a"))
    ]])
    assert.are.equal("nil|EINVAL|fd 3: Invalid argument|x", out)
  end)

  it("fails on a closed descriptor; raises on misuse", function()
    H.run(function()
      fails("EBADF", "fd 1000000", fs.fdopen(1000000, "r"))
    end)
    assert.has_error(function() fs.fdopen(-1) end)
    assert.has_error(function() fs.fdopen(0, "q") end)
    assert.has_error(function() fs.fdopen("x") end)
  end)
end)

describe("fs.copy", function()
  local function pattern(n)
    local t, chunk = {}, {}
    for i = 1, 256 do chunk[i] = string.char((i * 7 + 3) % 256) end
    chunk = table.concat(chunk)
    for i = 1, n // 256 do t[i] = chunk .. string.pack("<I4", i) end
    return table.concat(t):sub(1, n)
  end

  it("copies an empty file", function()
    put(path("empty"), "")
    H.run(function()
      assert.is_true(fs.copy(path("empty"), path("empty2")))
      assert.are.equal("file", fs.stat(path("empty2")).type)
      assert.are.equal("", get(path("empty2")))
    end)
  end)

  it("copies a large file with its permissions", function()
    local data = pattern(5 * 1024 * 1024 + 77)
    put(path("large"), data)
    os.execute("chmod 640 '" .. path("large") .. "'")
    H.run(function()
      assert.is_true(fs.copy(path("large"), path("large2")))
      assert.are.equal(416, fs.stat(path("large2")).mode)
    end)
    assert.is_true(get(path("large2")) == data)
  end)

  it("a cancelled copy stops between chunks, not at the end", function()
    -- 256 MiB: far more than one chunk. Cancelled at once, the copy
    -- running on the pool must stop at its next chunk; without that it
    -- copied everything before the cancel took effect.
    local size = 256 * 1024 * 1024
    local f = assert(io.open(path("huge"), "w"))
    f:seek("set", size - 1)
    f:write("x")
    f:close()
    H.run(function()
      local t = mp.spawn(fs.copy, path("huge"), path("huge2"))
      mp.sleep(0.001)
      t:cancel()
      assert.are.same({ false, "cancelled" }, { t:join() })
      while mp.debug.stats().pool_jobs > 0 do mp.sleep(0.001) end
    end)
    local st = fs.stat(path("huge2"))
    assert.is_true(st == nil or st.size < size, "the whole file was copied")
    os.remove(path("huge"))
    os.remove(path("huge2"))
  end)

  it("replaces an existing file in place, as cp", function()
    put(path("src"), "short")
    put(path("dst"), string.rep("long old contents ", 100))
    os.execute("chmod 600 '" .. path("dst") .. "'")
    H.run(function()
      local ino = fs.stat(path("dst")).ino
      assert.is_true(fs.copy(path("src"), path("dst")))
      local st = fs.stat(path("dst"))
      assert.are.equal(ino, st.ino)
      assert.are.equal(384, st.mode)
      assert.are.equal(5, st.size)
    end)
    assert.are.equal("short", get(path("dst")))
  end)

  it("copies what the kernel cannot (/proc, another filesystem)", function()
    H.run(function()
      assert.is_true(fs.copy("/proc/self/status", path("status")))
      assert.truthy(get(path("status")):find("Pid:", 1, true))
      local shm = fs.stat("/dev/shm")
      if not shm or shm.type ~= "directory" then
        print("  (no /dev/shm: cross-filesystem copy not tried)")
        return
      end
      local data = pattern(300000)
      put(path("x-fs"), data)
      local d = assert(fs.mkdtemp("/dev/shm/mp-copy-"))
      assert.is_true(fs.copy(path("x-fs"), d .. "/c"))
      assert.is_true(get(d .. "/c") == data)
      assert.is_true(fs.copy(d .. "/c", path("x-fs-back")))
      assert.is_true(get(path("x-fs-back")) == data)
      fs.remove(d .. "/c")
      fs.rmdir(d)
    end)
  end)

  it("fails naming the path concerned", function()
    put(path("s"), "data")
    H.run(function()
      fails("ENOENT", path("nope"), fs.copy(path("nope"), path("d1")))
      assert.is_nil(fs.stat(path("d1")))
      fails("ENOENT", path("nodir/d"), fs.copy(path("s"), path("nodir/d")))
      fails("ENOTDIR", path("s/d"), fs.copy(path("s"), path("s/d")))
      fails("EISDIR", dir, fs.copy(dir, path("d2")))
      fails("EISDIR", dir, fs.copy(path("s"), dir))
      fails("EINVAL", path("s"), fs.copy(path("s"), path("s")))
      fs.symlink("s", path("s-link"))
      fails("EINVAL", path("s-link"), fs.copy(path("s"), path("s-link")))
      assert.are.equal("data", fs.readfile(path("s")))
      fails("EINVAL", "/dev/null", fs.copy("/dev/null", path("d3")))
    end)
    assert.has_error(function() fs.copy(path("s")) end)
  end)

  it("EACCES for an unprivileged user", function()
    put(path("pub"), "public")
    os.execute("chmod 644 '" .. path("pub") .. "'")
    assert(os.execute("mkdir -p '" .. path("ro_dir") .. "'"))
    os.execute("chmod 755 '" .. path("ro_dir") .. "'")
    if not root then os.execute("chmod 555 '" .. path("ro_dir") .. "'") end
    local out = user_call("copy", path("pub"), path("ro_dir/c"))
    if not out then return end
    assert.are.equal("nil|EACCES|" .. path("ro_dir/c") ..
                     ": Permission denied", out)
    os.execute("chmod 755 '" .. path("ro_dir") .. "'")
  end)
end)

describe("stream:sendfile", function()
  -- A server task that reads everything (or only `first` bytes, then
  -- closes) and returns it.
  local function server(first)
    local srv = assert(mp.net.listen("127.0.0.1", 0))
    local _, port = srv:sockname()
    local t = mp.spawn(function()
      local c = assert(srv:accept())
      local got
      if first then got = c:read(first) else got = c:read("a") end
      c:close()
      srv:close()
      return got
    end)
    return port, t
  end

  local data
  setup(function()
    local t = {}
    for i = 1, 150000 do t[i] = ("%06d\n"):format(i) end
    data = table.concat(t) -- 1.05 MB
  end)

  it("sends a range, or the rest from the file's position", function()
    put(path("sf"), data)
    H.run(function()
      local port, t = server()
      local c = assert(mp.net.connect("127.0.0.1", port))
      local f = assert(fs.open(path("sf")))
      assert.are.equal(1000, c:sendfile(f, 7, 1000))
      assert.are.equal(0, f:seek()) -- an offset leaves the position
      assert.are.equal(0, c:sendfile(f, 5, 0))
      assert.are.equal(3, c:sendfile(f, #data - 3, 100)) -- short at EOF
      assert.are.equal(0, c:sendfile(f, #data + 10))
      assert.are.equal("000001\n", f:read("L"))
      assert.are.equal(#data - 7, c:sendfile(f)) -- from the position
      assert.are.equal(#data, f:seek())
      assert.is_nil(f:read(1))
      c:close()
      local got = select(2, assert(t:join()))
      assert.are.equal(1003 + #data - 7, #got)
      assert.is_true(got == data:sub(8, 1007) .. data:sub(-3) ..
                            data:sub(8))
      f:close()
    end)
  end)

  it("sends what write() buffered first", function()
    H.run(function()
      local port, t = server()
      local c = assert(mp.net.connect("127.0.0.1", port))
      local f = assert(fs.open(path("sfw"), "w+"))
      f:write("buffered ", "bytes")
      assert.are.equal(14, c:sendfile(f, 0))
      assert.are.equal(0, c:sendfile(f)) -- the position is at the end
      c:close()
      assert.are.equal("buffered bytes", select(2, t:join()))
      f:close()
    end)
  end)

  it("reports a peer that closes early, with the count sent", function()
    put(path("sfbig"), string.rep(data, 16)) -- 17 MB: more than fits
    H.run(function()
      local port, t = server(100)
      local c = assert(mp.net.connect("127.0.0.1", port))
      local f = assert(fs.open(path("sfbig")))
      local r, msg, code, sent = c:sendfile(f)
      assert.is_nil(r)
      assert.is_true(code == "ECONNRESET" or code == "EPIPE", code)
      assert.is_string(msg)
      assert.is_true(sent >= 100 and sent < #data * 16, sent)
      assert.are.equal(sent, f:seek()) -- what was sent is consumed
      assert.are.equal(100, #select(2, assert(t:join())))
      -- the connection is gone: EPIPE now, and no SIGPIPE kills us
      r, msg, code, sent = c:sendfile(f, 0, 1000)
      assert.is_nil(r)
      assert.are.equal("EPIPE", code)
      assert.are.equal(0, sent)
      c:close()
      f:close()
    end)
  end)

  it("is cancelled by a timeout and by closing the file", function()
    put(path("sfbig2"), string.rep(data, 16))
    H.run(function()
      local srv = assert(mp.net.listen("127.0.0.1", 0))
      local _, port = srv:sockname()
      local peer
      local acc = mp.spawn(function() peer = srv:accept() end)
      local c = assert(mp.net.connect("127.0.0.1", port))
      acc:join()
      local f = assert(fs.open(path("sfbig2")))
      c:settimeout(0.2) -- nobody reads: the socket fills up
      local r, _, code, sent = c:sendfile(f, 0)
      assert.is_nil(r)
      assert.are.equal("timeout", code)
      assert.is_true(sent > 0 and sent < #data * 16)
      c:settimeout(nil)
      local t = mp.spawn(function() return c:sendfile(f, 0) end)
      mp.sleep(0.05)
      f:close()
      local _, r2, _, code2 = t:join()
      assert.is_nil(r2)
      assert.are.equal("closed", code2)
      c:close()
      peer:close()
      srv:close()
    end)
  end)

  it("is cancelled with its task and by closing the stream", function()
    put(path("sfbig3"), string.rep(data, 16))
    H.run(function()
      local srv = assert(mp.net.listen("127.0.0.1", 0))
      local _, port = srv:sockname()
      local peer
      local acc = mp.spawn(function() peer = srv:accept() end)
      local c = assert(mp.net.connect("127.0.0.1", port))
      acc:join()
      local f = assert(fs.open(path("sfbig3")))
      -- nobody reads: the send waits for room until interrupted
      local t = mp.spawn(function() return c:sendfile(f, 0) end)
      mp.sleep(0.05)
      t:cancel()
      assert.are.same({ false, "cancelled" }, { t:join() })
      t = mp.spawn(function() return c:sendfile(f, 0) end)
      mp.sleep(0.05)
      c:close()
      local ok, r, _, code, sent = t:join()
      assert.is_true(ok)
      assert.is_nil(r)
      assert.are.equal("closed", code)
      assert.is_true(sent >= 0 and sent < #data * 16)
      -- the file is still usable, the peer sees the bytes sent, then EOF
      assert.are.equal(#data, #f:read(#data))
      f:close()
      local got = peer:read("a")
      assert.is_true(#got < #data * 16)
      peer:close()
      srv:close()
    end)
  end)

  it("fails on a file not opened for reading; raises on misuse", function()
    H.run(function()
      local port, t = server()
      local c = assert(mp.net.connect("127.0.0.1", port))
      local w = assert(fs.open(path("wo"), "w"))
      fails("EBADF", path("wo"), c:sendfile(w))
      assert.has_error(function() c:sendfile("x") end)
      assert.has_error(function() c:sendfile(w, -1) end)
      assert.has_error(function() c:sendfile(w, 0, -1) end)
      w:close()
      assert.has_error(function() c:sendfile(w) end)
      local r = assert(fs.open(path("wo")))
      c:close()
      assert.has_error(function() c:sendfile(r) end)
      r:close()
      assert.are.equal("", select(2, t:join()))
    end)
  end)
end)
