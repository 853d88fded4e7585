-- watch_spec.lua: mp.fs.watch: every kind of change, renames, recursive
-- watches, overflow, close while waiting, failures. Changes are made with
-- Lua's io/os (blocking, from another implementation), so the events are
-- already queued when next() is called. Runs on every backend (ctest).
local H = require "helper"
local mp = H.mp
local fs = mp.fs

local dir
before_each(function() dir = H.tmpdir() end)
after_each(function() H.rmtree(dir) end)

local function path(name) return dir .. "/" .. name end

local function put(p, data)
  local f = assert(io.open(p, "wb"))
  f:write(data)
  f:close()
end

-- Events until one matches want (event, path[, from]), within 5 s; the
-- list of what came, for the assertion message.
local function wait_for(w, event, p, from)
  local seen = {}
  local ok, found = mp.timeout(5, function()
    while true do
      local ev, err = w:next()
      assert(ev, err)
      seen[#seen + 1] = ev.event .. " " .. tostring(ev.path) ..
                        (ev.from and " from " .. ev.from or "")
      if ev.event == event and ev.path == p and ev.from == from then
        return true
      end
    end
  end)
  assert(ok and found, ("no %s %s (%s); got:\n%s"):format(event, p,
         tostring(found), table.concat(seen, "\n")))
  return seen
end

describe("mp.fs.watch", function()
  it("reports create, modify and delete in a directory", function()
    H.run(function()
      local w <close> = assert(fs.watch(dir))
      put(path("a"), "")
      wait_for(w, "create", path("a"))
      put(path("a"), "more")
      wait_for(w, "modify", path("a"))
      assert(os.remove(path("a")))
      wait_for(w, "delete", path("a"))
    end)
  end)

  it("watches a single file", function()
    H.run(function()
      put(path("f"), "x")
      local w <close> = assert(fs.watch(path("f")))
      put(path("f"), "changed")
      wait_for(w, "modify", path("f"))
    end)
  end)

  it("reports a rename as one event with from", function()
    H.run(function()
      put(path("old"), "x")
      local w <close> = assert(fs.watch(dir .. "/")) -- trailing slash
      assert(os.rename(path("old"), path("new")))
      local seen = wait_for(w, "rename", path("new"), path("old"))
      for _, s in ipairs(seen) do
        assert.is_nil(s:match("^delete"), "rename split: " .. s)
      end
    end)
  end)

  it("reports a move out of the tree as delete, in as create", function()
    H.run(function()
      local other = H.tmpdir()
      put(path("out"), "x")
      put(other .. "/in", "y")
      local w <close> = assert(fs.watch(dir))
      assert(os.rename(path("out"), other .. "/out"))
      assert(os.rename(other .. "/in", path("in")))
      wait_for(w, "delete", path("out"))
      wait_for(w, "create", path("in"))
      H.rmtree(other)
    end)
  end)

  it("recursive: watches new subdirectories and what they hold", function()
    H.run(function()
      assert(H.mkdir_p(path("old/deep")))
      local w <close> = assert(fs.watch(dir, { recursive = true }))
      -- an existing subdirectory is watched from the start
      put(path("old/deep/f"), "")
      wait_for(w, "create", path("old/deep/f"))
      -- a new one (and what was made in it before it was watched)
      if H.windows then -- (the system watches the whole tree itself)
        assert(H.mkdir_p(path("new/a/b")))
        put(path("new/a/b/early"), "")
      else
        assert(os.execute("mkdir -p " .. path("new/a/b") .. " && touch " ..
                          path("new/a/b/early")))
      end
      wait_for(w, "create", path("new/a/b/early"))
      put(path("new/a/b/late"), "")
      wait_for(w, "create", path("new/a/b/late"))
      -- a renamed subdirectory keeps being watched under its new name
      assert(os.rename(path("new"), path("renamed")))
      wait_for(w, "rename", path("renamed"), path("new"))
      put(path("renamed/a/x"), "")
      wait_for(w, "create", path("renamed/a/x"))
    end)
  end)

  it("not recursive: changes in subdirectories are not reported",
     function()
    H.run(function()
      assert(os.execute("mkdir " .. path("sub")))
      local w <close> = assert(fs.watch(dir))
      put(path("sub/hidden"), "")
      put(path("marker"), "")
      local seen = wait_for(w, "create", path("marker"))
      for _, s in ipairs(seen) do
        assert.is_nil(s:match("hidden"), "reported: " .. s)
      end
    end)
  end)

  it("reports an overflow when 10,000 quick changes pile up", function()
    H.run(function()
      local w <close> = assert(fs.watch(dir))
      -- Blocking io calls: the loop does not run, nothing is read, and
      -- two changes per file exceed the system's queue (16,384 by
      -- default; more files where it was raised).
      local f = io.open("/proc/sys/fs/inotify/max_queued_events")
      local limit = f and tonumber(f:read("l")) or 16384
      if f then f:close() end
      local files = math.max(10000, limit // 2 + 100)
      for i = 1, files do
        local p = path(tostring(i))
        put(p, "")
        os.remove(p)
      end
      local n, over = 0, false
      local ok = mp.timeout(20, function()
        while not over do
          local ev = assert(w:next())
          n = n + 1
          if ev.event == "overflow" then
            over = true
            assert.is_nil(ev.path)
          end
        end
      end)
      assert.is_true(ok, "timed out after " .. n .. " events")
      assert.is_true(over)
      assert.is_true(n <= 2 * files + 1, "more events than changes: " .. n)
      -- still usable afterwards
      put(path("after"), "")
      wait_for(w, "create", path("after"))
    end)
  end)

  it("close while a task waits wakes it with closed", function()
    H.run(function()
      local w = assert(fs.watch(dir))
      local t = mp.spawn(function() return w:next() end)
      mp.sleep(0.05)
      assert.is_true(w:close())
      local ok, ev, msg, code = t:join()
      assert.is_true(ok)
      assert.is_nil(ev)
      assert.equal("closed", code)
      assert.equal("watch " .. dir .. ": closed", msg)
      -- closed: next() keeps saying so; close() again is fine
      local ev2, _, code2 = w:next()
      assert.is_nil(ev2)
      assert.equal("closed", code2)
      assert.is_true(w:close())
      assert.equal("watcher (closed)", tostring(w))
    end)
  end)

  it("a cancelled waiter loses no event", function()
    H.run(function()
      local w <close> = assert(fs.watch(dir))
      local t = mp.spawn(function() return w:next() end)
      mp.sleep(0.05)
      t:cancel()
      assert.same({ false, "cancelled" }, { t:join() })
      put(path("kept"), "")
      wait_for(w, "create", path("kept"))
    end)
  end)

  it("two tasks cannot wait on one watcher", function()
    H.run(function()
      local w <close> = assert(fs.watch(dir))
      local t = mp.spawn(function() return w:next() end)
      mp.sleep(0.05)
      local ok, err = pcall(w.next, w)
      assert.is_false(ok)
      assert.matches("another task is waiting", err)
      t:cancel()
      t:join()
    end)
  end)

  it("fails on a path that does not exist", function()
    H.run(function()
      local w, msg, code = fs.watch(path("missing"))
      assert.is_nil(w)
      assert.equal("ENOENT", code)
      assert.matches(path("missing"), msg, 1, true)
    end)
  end)

  it("raises on bad arguments", function()
    assert.has_error(function() fs.watch() end)
    assert.has_error(function() fs.watch("a\0b") end)
    assert.has_error(function() fs.watch(dir, 1) end)
    assert.has_error(function() fs.watch(dir, { recursive = "yes" }) end)
  end)

  it("a cancelled open leaks nothing, whenever the cancel comes", function()
    H.run(function()
      -- Cancelled before the pool starts it, the open never happens;
      -- once started it finishes and the task gets the watcher (a wake
      -- that came first wins over the cancel).
      if H.windows then
        for i = 1, 100 do assert(H.mkdir_p(path("d" .. i .. "/s"))) end
      else
        assert(os.execute("cd " .. dir .. " && mkdir -p $(seq -f 'd%g/s' 100)"))
      end
      local base = H.fd_count()
      for i = 1, 10 do
        local t = mp.spawn(fs.watch, dir, { recursive = true })
        if i % 2 == 0 then mp.sleep(0) end
        t:cancel()
        local ok, w = t:join()
        if ok then w:close() else assert.equal("cancelled", w) end
      end
      assert.is_true(H.fds_back_to(base))
    end)
  end)

  it("a state closed while an open runs closes what it opened", function()
    -- The open (a walk of 500 directories) is running on the pool when
    -- the command's os.exit closes the state: the op is orphaned, and its
    -- descriptor must be closed when it completes (the leak check at
    -- state close ends the process with status 3 otherwise).
    local bin = assert(os.getenv("MOONPORT"), "MOONPORT not set")
    assert(os.execute("cd " .. dir .. " && mkdir -p $(seq -f 'd%g/s' 500)"))
    put(path("s.lua"), ([[
      local mp = require "moonport"
      mp.spawn(mp.fs.watch, %q, { recursive = true })
      mp.sleep(0.01)
      os.exit(0)
    ]]):format(dir))
    local p = io.popen("MOONPORT_LEAK_CHECK=1 " .. bin .. " " ..
                       path("s.lua") .. " 2>&1")
    local out = p:read("a")
    assert.same({ true, "exit", 0 }, { p:close() }, out)
    assert.equal("", out)
  end)

  it("leaks no descriptor, closed or collected", function()
    H.run(function()
      local base = H.fd_count()
      for _ = 1, 20 do
        local w = assert(fs.watch(dir, { recursive = true }))
        if _ % 2 == 0 then w:close() end
      end
      collectgarbage()
      collectgarbage()
      assert.is_true(H.fds_back_to(base))
    end)
  end)
end)
