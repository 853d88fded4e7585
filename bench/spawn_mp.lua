-- spawn_mp.lua N: spawns /bin/true N times, 32 at a time, and waits for
-- each; prints the seconds taken.
local mp = require "moonport"
local n = tonumber(arg[1]) or 1000
local t0 = mp.now()
mp.run(function()
  local left = n
  mp.scope(function(s)
    for _ = 1, 32 do
      s:spawn(function()
        while left > 0 do
          left = left - 1
          local p = assert(mp.proc.spawn({ "/bin/true" }))
          assert(p:wait() == 0)
        end
      end)
    end
  end)
end)
print(string.format("%.3f", mp.now() - t0))
