-- planted_spec.lua: tests that leak on purpose, to show that the leak
-- check of tests/lua/helper.lua fails them and names what leaked. Not part
-- of the suite's specs: tests/e2e/leakcheck.sh runs it and expects these
-- failures.
local H = require "helper"
local mp = H.mp

describe("planted leaks", function()
  it("keeps a listening socket", function()
    H.run(function() LEAKED_SERVER = assert(mp.net.listen("127.0.0.1", 0)) end)
  end)

  it("leaks nothing", function()
    H.run(function()
      local s = assert(mp.net.listen("127.0.0.1", 0))
      s:close()
    end)
  end)

  -- Last: mp.run in a later test would wait for this task.
  it("leaves a task sleeping", function()
    LEAKED_TASK = mp.spawn(mp.sleep, 100)
  end)
end)
