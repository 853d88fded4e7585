-- helper.lua: shared by the busted specs. Loads moonport from the build
-- tree (ctest sets LUA_CPATH) and gives run(fn): fn runs as a task and the
-- loop is driven until every task has ended; an error or failed assertion
-- inside the task fails the spec.
local mp = require "moonport"

local H = { mp = mp }

function H.run(fn, ...)
  return mp.run(fn, ...)
end

-- The backend the suite was asked to run on (ctest sets it).
function H.expected_backend()
  local b = os.getenv("MP_EXPECT_BACKEND")
  if b == "seccomp" then return "epoll" end
  return b
end

-- A fresh temporary directory, removed by the caller with H.rmtree.
function H.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. p))
  return p
end

function H.rmtree(p)
  os.execute("rm -rf '" .. p .. "'")
end

-- Counts this process's open descriptors (for leak checks).
function H.fd_count()
  local n = 0
  local pipe = io.popen("ls /proc/" .. H.pid() .. "/fd")
  for _ in pipe:lines() do n = n + 1 end
  pipe:close()
  return n
end

-- Waits (up to 2 s, inside a task) until at most n descriptors are open:
-- closes complete asynchronously. A descriptor of an earlier spec may
-- close meanwhile, hence "at most".
function H.fds_back_to(n)
  for _ = 1, 200 do
    if H.fd_count() <= n then return true end
    mp.sleep(0.01)
  end
  return false
end

function H.pid()
  local f = io.open("/proc/self/stat")
  local pid = f:read("n")
  f:close()
  return pid
end

return H
