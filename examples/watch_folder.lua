-- watch_folder.lua: a folder watcher that processes new files. Files that
-- arrive complete (renamed into the folder, as mp.fs.writefile and `mv`
-- do) are processed at once; files written in place are processed once
-- they have been quiet for a moment. Each file is counted (lines, bytes)
-- and moved into done/. An overflow (changes came faster than they were
-- read) triggers a rescan of the folder, so nothing is missed.
--
--   moonport examples/watch_folder.lua          self-test in a temp folder
--   moonport examples/watch_folder.lua DIR      watches DIR until Ctrl-C
local mp = require "moonport"
local fs = mp.fs

local QUIET = 0.2 -- seconds without change before an in-place file is done

local function basename(p) return p:match("[^/]+$") end

-- Names that are not (yet) files to process: our own done/ folder and
-- writefile's temporaries (NAME.mp-tmp-...).
local function ignored(name)
  return name == "done" or name:find(".mp-tmp-", 1, true) ~= nil
end

local function process(dir, name, log)
  local path = dir .. "/" .. name
  local data = fs.readfile(path)
  if not data then return end -- gone meanwhile
  local _, lines = data:gsub("\n", "")
  if not fs.rename(path, dir .. "/done/" .. name) then return end
  log(("%s: %d lines, %d bytes"):format(name, lines, #data))
end

-- Watches dir; calls log for every file processed. Returns the watcher
-- (close it to stop) and the task running the loop.
local function watch_folder(dir, log)
  fs.mkdir(dir .. "/done")
  local w = assert(fs.watch(dir))
  local pending = {} -- name -> time of its last change (written in place)

  local function rescan()
    for _, name in ipairs(assert(fs.dir(dir))) do
      if not ignored(name) then pending[name] = 0 end
    end
  end

  -- Files written in place are done once quiet for QUIET seconds.
  local sweeper = mp.spawn(function()
    while true do
      mp.sleep(QUIET / 2)
      -- The due names first: processing suspends, and the watcher task
      -- changes pending meanwhile (no table traversal across that).
      local now, due = mp.now(), {}
      for name, t in pairs(pending) do
        if now - t >= QUIET then due[#due + 1] = name end
      end
      for _, name in ipairs(due) do
        pending[name] = nil
        local st = fs.stat(dir .. "/" .. name)
        if st and st.type == "file" then process(dir, name, log) end
      end
    end
  end)

  rescan() -- what was there before the watcher started
  local task = mp.spawn(function()
    while true do
      local ev = w:next()
      if not ev then break end -- closed
      local name = ev.path and basename(ev.path)
      if ev.event == "overflow" then
        rescan()
      elseif ev.event == "rename" then
        pending[basename(ev.from)] = nil
        if not ignored(name) then process(dir, name, log) end
      elseif ev.event == "delete" then
        pending[name] = nil
      elseif not ignored(name) then -- create, modify: written in place
        pending[name] = mp.now()
      end
    end
    sweeper:cancel()
  end)
  return w, task
end

if arg and arg[1] then
  local _, task = watch_folder(arg[1], print)
  task:join()
  return
end

-- Self-test: a producer drops 20 files (half atomically, half written in
-- place) while the watcher processes them; all must end up in done/.
local dir = os.tmpname()
os.remove(dir)
assert(fs.mkdir(dir))
local N, done = 20, 0
local w, task = watch_folder(dir, function(line)
  done = done + 1
  print(line)
end)
for i = 1, N do
  local name = ("%s/file%02d.txt"):format(dir, i)
  local body = ("line\n"):rep(i)
  if i % 2 == 0 then
    assert(fs.writefile(name, body))
  else
    local f <close> = assert(fs.open(name, "w"))
    assert(f:write(body))
  end
  mp.sleep(0.01)
end
local ok = mp.timeout(10, function()
  while done < N do mp.sleep(0.05) end
end)
w:close()
task:join()
local left = #assert(fs.dir(dir)) - 1 -- done/ itself
local moved = #assert(fs.dir(dir .. "/done"))
os.execute("rm -rf '" .. dir .. "'")
assert(ok, ("timed out: %d of %d files processed"):format(done, N))
assert(moved == N and left == 0, ("%d moved, %d left"):format(moved, left))
print(("processed %d files"):format(done))
