-- zerocopy.lua: stream:sendfile against read + write through Lua, and
-- fs.copy against fs.open/read/write, on a page-cached file, in one
-- process (a task on the other end of 127.0.0.1 drains the socket with
-- recv, the same in both runs). Best of RUNS (default 3).
--   LUA_CPATH='build/lib/?.so;;' lua5.4 bench/zerocopy.lua [size_mb]
local mp = require "moonport"
local fs = mp.fs
local size_mb = tonumber(arg[1]) or 256
local runs = tonumber(os.getenv("RUNS")) or 3

local function best(fn)
  local t = math.huge
  for _ = 1, runs do
    local t0 = mp.now()
    fn()
    local dt = mp.now() - t0
    if dt < t then t = dt end
  end
  return t
end

mp.run(function()
  local dir = assert(fs.mkdtemp())
  local src = dir .. "/src"
  local f = assert(fs.open(src, "w"))
  local block = string.rep("0123456789abcdef", 4096) -- 64 KiB
  for _ = 1, size_mb * 16 do f:write(block) end
  assert(f:close())
  local bytes = size_mb * 1048576

  local srv = assert(mp.net.listen("127.0.0.1", 0))
  local _, port = srv:sockname()
  local function transfer(send)
    local drained = mp.spawn(function()
      local c = assert(srv:accept())
      local n = 0
      while true do
        local s = c:recv(1 << 20)
        if not s then break end
        n = n + #s
      end
      c:close()
      return n
    end)
    local c = assert(mp.net.connect("127.0.0.1", port))
    local file = assert(fs.open(src))
    send(c, file)
    file:close()
    c:close()
    local _, n = drained:join()
    assert(n == bytes, n)
  end

  local t_sf = best(function()
    transfer(function(c, file) assert(c:sendfile(file) == bytes) end)
  end)
  local t_rw = best(function()
    transfer(function(c, file)
      while true do
        local s = file:read(1 << 18)
        if not s then break end
        assert(c:write(s))
      end
    end)
  end)
  local t_cp = best(function() assert(fs.copy(src, dir .. "/dst")) end)
  local t_lua = best(function()
    local i, o = assert(fs.open(src)), assert(fs.open(dir .. "/dst2", "w"))
    while true do
      local s = i:read(1 << 18)
      if not s then break end
      o:write(s)
    end
    i:close()
    assert(o:close())
  end)
  local function row(name, t)
    print(("%-34s %8.1f ms %8.0f MiB/s"):format(name, t * 1000,
                                                size_mb / t))
  end
  print(("%d MiB, backend %s, best of %d"):format(size_mb, mp.backend(),
                                                  runs))
  row("stream:sendfile(file)", t_sf)
  row("file:read(256 KiB) + stream:write", t_rw)
  row("fs.copy", t_cp)
  row("file:read + file:write", t_lua)
  for _, n in ipairs(fs.dir(dir)) do fs.remove(dir .. "/" .. n) end
  fs.rmdir(dir)
  srv:close()
end)
