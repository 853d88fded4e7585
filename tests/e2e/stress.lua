-- stress.lua SEED: a seeded mix of everything at once (sockets closed or
-- left to the GC mid-operation, buffered file writes, timeouts around
-- coroutine generators, channels, threadpool jobs, UDP), with a third of
-- the tasks cancelled at a random point. Run by stress.sh; under the ASan
-- build any use-after-free or leak aborts it.
local mp = require "moonport"
local seed = tonumber(arg[1]) or 1
math.randomseed(seed)
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)
local srv = assert(mp.net.listen("127.0.0.1", 0))
local _, port = srv:sockname()
local acceptor = mp.spawn(function()
  while true do
    local c = srv:accept()
    if not c then return end
    mp.spawn(function()
      local r = math.random(4)
      if r == 1 then c:close() return
      elseif r == 2 then c:write(("x"):rep(math.random(100000)))
      elseif r == 3 then local l = c:read("l") if l then c:write(l, "\n") end
      else mp.sleep(math.random() * 0.01) end
      if math.random(2) == 1 then c:close() end -- else leave it to GC
    end)
  end
end)
local tasks = {}
for i = 1, 200 do
  tasks[#tasks + 1] = mp.spawn(function()
    local r = math.random(6)
    if r == 1 then
      local c = mp.net.connect("127.0.0.1", port)
      if c then
        c:settimeout(math.random() * 0.01)
        c:write("hello\n")
        c:read("l")
        if math.random(2) == 1 then c:close() end
      end
    elseif r == 2 then
      local f = mp.fs.open(dir .. "/f" .. math.random(5), "a+")
      if f then
        for _ = 1, math.random(50) do f:write("line ", i, "\n") end
        f:seek("set", 0)
        f:read("l")
        if math.random(2) == 1 then f:close() end
      end
    elseif r == 3 then
      mp.timeout(math.random() * 0.005, function()
        local g = coroutine.wrap(function() mp.sleep(0.01) coroutine.yield(1) end)
        g()
      end)
    elseif r == 4 then
      local ch = mp.channel(math.random(0, 2))
      mp.spawn(function() ch:send(1) ch:send(2) end)
      ch:recv()
      ch:close() -- a sender still waiting gets "closed"
    elseif r == 5 then
      mp.work(function(t) return #t end, { 1, 2, 3 })
    else
      local u = mp.net.udp("127.0.0.1", 0)
      local _, up = u:sockname()
      u:sendto("ping", "127.0.0.1", up)
      mp.timeout(0.01, u.recvfrom, u)
    end
  end)
end
for i = 1, #tasks, 3 do tasks[i]:cancel() end
mp.sleep(0.02)
collectgarbage()
for _, t in ipairs(tasks) do t:join() end
srv:close()
acceptor:join()
collectgarbage()
os.execute("rm -rf " .. dir)
print("ok", seed)
