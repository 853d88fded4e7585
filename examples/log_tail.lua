-- log_tail.lua: follows a log file with `tail -F` in a child process and
-- reacts to the lines that match, while other tasks keep running.
--
--   moonport examples/log_tail.lua                    self-test: writes a
--       log in a task, follows it, stops after the "shutdown" line
--   moonport examples/log_tail.lua FILE [PATTERN]     follows FILE and
--       prints the lines matching PATTERN (a Lua pattern; default ERROR)
local mp = require "moonport"

-- Calls on_line for each line appended to path (from line `from` on;
-- default: only new ones), until it returns true.
local function follow(path, on_line, from)
  local start = from and "+" .. from or "0"
  local tail = assert(mp.proc.spawn({ "tail", "-n", start, "-F", path },
                                    { stdout = "pipe", stderr = "null" }))
  for line in tail.stdout:lines() do
    if on_line(line) then break end
  end
  tail:kill()
  tail:wait()
  tail.stdout:close()
end

if arg and arg[1] then
  local pattern = arg[2] or "ERROR"
  follow(arg[1], function(line)
    if line:match(pattern) then print(line) end
  end)
  return
end

local path = os.tmpname()
local seen = {}
local follower = mp.spawn(follow, path, function(line)
  if line:match("ERROR") then seen[#seen + 1] = line end
  return line == "shutdown"
end, 1) -- from the first line: whenever tail starts, it sees them all
local log = assert(mp.fs.open(path, "a"))
for i = 1, 5 do
  log:write(i % 2 == 0 and "ERROR " or "info ", i, "\n")
  log:flush()
  mp.sleep(0.02)
end
log:write("shutdown\n")
log:close()
assert(mp.timeout(10, follower.join, follower))
os.remove(path)
print(table.concat(seen, "; "))
assert(#seen == 2 and seen[1] == "ERROR 2" and seen[2] == "ERROR 4")
print("ok")
