-- job_runner.lua: runs shell commands in parallel, at most N at a time
-- (mp.scope waits for all of them; a channel of tokens is the limit),
-- and prints each one's output in the order given.
--
--   moonport examples/job_runner.lua                  self-test: a few
--       jobs of different lengths, 3 at a time
--   moonport examples/job_runner.lua 4 'cmd1' 'cmd2'  your own commands
local mp = require "moonport"

local function run_all(limit, commands)
  local slots = mp.channel(limit)
  for _ = 1, limit do slots:send(true) end
  local results = {}
  mp.scope(function(s)
    for i, cmd in ipairs(commands) do
      s:spawn(function()
        slots:recv()
        local out, code, _, signo = mp.proc.run({ "sh", "-c", cmd },
                                                { stderr = "stdout" })
        slots:send(true)
        results[i] = { out = out, code = code, signo = signo }
      end)
    end
  end)
  return results
end

local limit, commands = tonumber(arg and arg[1]), { table.unpack(arg or {}, 2) }
if not limit or #commands == 0 then
  limit = 3
  commands = {}
  for i = 1, 6 do
    commands[i] = ("sleep 0.%d; echo job %d"):format(6 - i, i)
  end
end

local start = mp.now()
local results = run_all(limit, commands)
for i, r in ipairs(results) do
  io.write(("[%d] %s (exit %s)\n"):format(i, (r.out or ""):gsub("\n$", ""),
                                          r.code or ("signal " .. tostring(r.signo))))
end
print(("%d jobs, %d at a time, %.2f s"):format(#commands, limit,
                                               mp.now() - start))
if not (arg and arg[1]) then -- self-test: in order, and in parallel
  for i, r in ipairs(results) do assert(r.out == "job " .. i .. "\n") end
  assert(mp.now() - start < 1.45) -- 1.5 s of sleeps, run 3 at a time
  print("ok")
end
