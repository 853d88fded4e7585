-- torture.lua PART SEED: concurrency torture, run by torture.sh (also under
-- MOONPORT_GC_TORTURE=1 and the sanitizers). Each part prints "ok PART"
-- last, or fails with what went wrong.
--   channels  producers and consumers under cancel and timeout storms;
--             every value is counted: the values whose send returned true
--             are exactly those received plus those left in the channel,
--             none twice, none whose send failed.
--   writefile mp.fs.writefile cancelled and timed out at random points:
--             each target holds an old or a new complete content, and no
--             temporary file is left in the directory.
--   fifo      FIFOs: opens with nobody at the other end come back in
--             bounded time (and the process still exits), data through a
--             FIFO intact and in order, a timed-out read leaves it usable.
local mp = require "moonport"
local part, seed = arg[1], tonumber(arg[2]) or 1
math.randomseed(seed)

local function check(cond, ...)
  if not cond then
    io.stderr:write("torture ", part, " seed ", seed, ": ",
                    table.concat({...}, " "), "\n")
    os.exit(1, true)
  end
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. d))
  return d
end

local function listdir(d)
  local names = {}
  local p = io.popen("ls -A '" .. d .. "'")
  for n in p:lines() do names[#names + 1] = n end
  p:close()
  return names
end

local parts = {}

function parts.channels()
  for round = 1, 4 do
    local ch = mp.channel(math.random(0, 3))
    local sent, got, dup = {}, {}, {}
    local nsent, ngot = 0, 0
    local tasks = {}
    for p = 1, 8 do
      tasks[#tasks + 1] = mp.spawn(function()
        for i = 1, 60 do
          local v = p * 1000 + i
          local ok, r = true, nil
          if math.random(3) == 1 then
            ok, r = mp.timeout(math.random() * 0.002, ch.send, ch, v)
          else
            r = ch:send(v)
          end
          if ok and r == true then sent[v] = true nsent = nsent + 1 end
          if ok and r == nil then return end -- closed
          if math.random(8) == 1 then mp.sleep(0) end
        end
      end)
    end
    for _ = 1, 6 do
      tasks[#tasks + 1] = mp.spawn(function()
        while true do
          local ok, v = true, nil
          if math.random(3) == 1 then
            ok, v = mp.timeout(math.random() * 0.002, ch.recv, ch)
          else
            v = ch:recv()
          end
          if ok and v == nil then return end -- closed and drained
          if ok then
            if got[v] then dup[#dup + 1] = v end
            got[v] = true
            ngot = ngot + 1
          end
          if math.random(6) == 1 then mp.sleep(math.random() * 0.001) end
        end
      end)
    end
    -- the storm: cancel random tasks while values are in transit
    for _ = 1, 30 do
      mp.sleep(math.random() * 0.001)
      local t = tasks[math.random(#tasks)]
      if math.random(4) == 1 then t:cancel() end
    end
    mp.sleep(0.01)
    -- no new producer runs past here: whatever is still in flight ends
    for i = 1, 8 do tasks[i]:cancel() end
    for i = 1, 8 do tasks[i]:join() end
    ch:close()
    for i = 9, #tasks do tasks[i]:join() end
    local left = 0
    while true do
      local v = ch:recv()
      if v == nil then break end
      if got[v] then dup[#dup + 1] = v end
      got[v] = true
      left = left + 1
    end
    check(#dup == 0, "round", round, "values delivered twice:",
          table.concat(dup, ","))
    for v in pairs(got) do
      check(sent[v], "round", round, "value", v,
            "received though its send did not return true")
    end
    for v in pairs(sent) do
      check(got[v], "round", round, "value", v,
            "lost: its send returned true, nobody got it")
    end
    check(nsent == ngot + left, "round", round, "sent", nsent, "received",
          ngot, "left", left)
  end
end

function parts.writefile()
  local d = tmpdir()
  local contents = {}
  for i = 1, 8 do
    contents[i] = { ("old %d\n"):format(i):rep(100) }
    local h = assert(io.open(d .. "/t" .. i, "wb"))
    h:write(contents[i][1])
    h:close()
  end
  for round = 1, 5 do
    local tasks = {}
    for k = 1, 40 do
      local i = math.random(8)
      local body = ("new %d %d %d\n"):format(i, round, k)
                   :rep(math.random(1, 20000))
      contents[i][#contents[i] + 1] = body
      tasks[k] = mp.spawn(function()
        if math.random(2) == 1 then
          mp.timeout(math.random() * 0.003, mp.fs.writefile,
                     d .. "/t" .. i, body)
        else
          mp.fs.writefile(d .. "/t" .. i, body)
        end
      end)
    end
    for _ = 1, 15 do
      mp.sleep(math.random() * 0.001)
      tasks[math.random(#tasks)]:cancel()
    end
    for _, t in ipairs(tasks) do t:join() end
    collectgarbage()
  end
  mp.sleep(0.05) -- closes of cancelled writers may still be on the pool
  local names = listdir(d)
  local stray = {}
  for _, n in ipairs(names) do
    if not n:match("^t%d+$") then stray[#stray + 1] = n end
  end
  for i = 1, 8 do
    local h = assert(io.open(d .. "/t" .. i, "rb"))
    local got = h:read("a")
    h:close()
    local known = false
    for _, c in ipairs(contents[i]) do known = known or c == got end
    check(known, "t" .. i, "holds a torn or unknown content of", #got,
          "bytes")
  end
  os.execute("rm -rf '" .. d .. "'")
  check(#stray == 0, #stray, "temporary files left behind:",
        table.concat(stray, " "))
end

function parts.fifo()
  local d = tmpdir()
  local path = d .. "/fifo"
  assert(os.execute("mkfifo '" .. path .. "'"))
  -- Opens with nobody at the other end come back in bounded time: with a
  -- file, an error (ENXIO) or the timeout, never a hang.
  for _, mode in ipairs({ "r", "w" }) do
    local t0 = mp.now()
    local ok, f = mp.timeout(0.1, mp.fs.open, path, mode)
    check(mp.now() - t0 < 2, "open", mode, "took", mp.now() - t0, "s")
    if ok and f then f:close() end
  end
  -- A cancelled open, too; then nothing may be left blocked.
  local opener = mp.spawn(function() return mp.fs.open(path, "r") end)
  mp.sleep(0.02)
  opener:cancel()
  local ok, f = opener:join()
  if ok and f then f:close() end
  -- Writers retry while no reader has the FIFO open yet (ENXIO).
  local function open_writer()
    for _ = 1, 200 do
      local ok2, file, _, c2 = mp.timeout(2, mp.fs.open, path, "w")
      if ok2 and file then return file end
      check(not ok2 or c2 == "ENXIO", "open w failed:", tostring(c2))
      mp.sleep(0.01)
    end
    check(false, "no reader ever showed up")
  end
  -- Data through the FIFO, intact and in order.
  local lines = {}
  for i = 1, 2000 do lines[i] = ("line %d %s"):format(i, ("x"):rep(i % 97)) end
  local reader = mp.spawn(function()
    local fr = assert(mp.fs.open(path, "r"))
    local n = 0
    while true do
      local l = fr:read("l")
      if not l then break end
      n = n + 1
      check(l == lines[n], "line", n, "arrived as", l)
    end
    fr:close()
    return n
  end)
  local w = open_writer()
  for i = 1, #lines do
    assert(w:write(lines[i], "\n"))
    if i % 500 == 0 then mp.sleep(0.001) end
  end
  w:close()
  local rok, n = reader:join()
  check(rok and n == #lines, "the reader got", tostring(n), "lines")
  -- A read that finds nothing times out and leaves the FIFO usable.
  local r2 = mp.spawn(function() return mp.fs.open(path, "r") end)
  local w2 = open_writer()
  local _, f2 = r2:join()
  check(f2, "open for reading failed")
  local tok = mp.timeout(0.05, f2.read, f2, "l")
  check(not tok, "a read of an empty FIFO did not time out")
  w2:write("after\n")
  local aok, after = mp.timeout(2, f2.read, f2, "l")
  check(aok and after == "after", "the FIFO was unusable after a ",
        "timed-out read:", tostring(after))
  w2:close()
  f2:close()
  os.execute("rm -rf '" .. d .. "'")
end

check(parts[part], "no part named", tostring(part))
parts[part]()
print("ok " .. part)
os.exit(0, true)
