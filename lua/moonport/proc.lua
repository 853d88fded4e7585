-- moonport.proc: mp.proc, the Lua half of child processes and signals.
-- Argument checks, the process object and mp.proc.run live here; spawn,
-- wait, kill and the signal routing are C (bindings/lproc.c over
-- runtime/proc_unix.c). The chunk returns a constructor that init.lua
-- calls with the core table.
return function(core, M)
  local proc = {}
  local c_spawn, c_wait, c_kill = core.proc_spawn, core.proc_wait,
                                  core.proc_kill
  local c_reap, c_signal = core.proc_reap, core.proc_signal
  local fmt = string.format

  local function argerr(n, fname, msg)
    error(fmt("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
  end

  local MODES = { inherit = 0, null = 1, pipe = 2, stdout = 3 }

  local Proc = {}
  Proc.__index = Proc
  Proc.__name = "moonport.process"

  function Proc:wait()
    return c_wait(self[1])
  end

  function Proc:kill(sig)
    if sig ~= nil and type(sig) ~= "string" and math.type(sig) ~= "integer"
    then
      error("bad argument #1 to 'kill' (signal name or number expected, " ..
            "got " .. type(sig) .. ")", 2)
    end
    return c_kill(self[1], sig)
  end

  function Proc:__tostring()
    return fmt("process (%d)", self.pid)
  end

  local function check_argv(argv, fname)
    if type(argv) ~= "table" then
      argerr(1, fname, "table expected, got " .. type(argv))
    end
    if #argv == 0 then argerr(1, fname, "argv is empty") end
    local out = {}
    for i = 1, #argv do
      local a = argv[i]
      if type(a) == "number" then a = tostring(a) end
      if type(a) ~= "string" then
        argerr(1, fname, fmt("argv[%d] must be a string", i))
      end
      if a:find("\0", 1, true) then
        argerr(1, fname, fmt("argv[%d] contains a zero byte", i))
      end
      out[i] = a
    end
    return out
  end

  local function check_opts(opts, fname, run)
    if opts == nil then return {} end
    if type(opts) ~= "table" then
      argerr(2, fname, "options table expected, got " .. type(opts))
    end
    for _, k in ipairs({ "stdin", "stdout", "stderr" }) do
      local v = opts[k]
      if v ~= nil and (not MODES[v] or (v == "stdout" and k ~= "stderr"))
      then
        argerr(2, fname, fmt("opts.%s must be \"pipe\", \"inherit\" or " ..
                             "\"null\"", k))
      end
    end
    if opts.cwd ~= nil and type(opts.cwd) ~= "string" then
      argerr(2, fname, "opts.cwd must be a string")
    end
    if opts.env ~= nil and type(opts.env) ~= "table" then
      argerr(2, fname, "opts.env must be a table")
    end
    if run and opts.input ~= nil and type(opts.input) ~= "string" then
      argerr(2, fname, "opts.input must be a string")
    end
    return opts
  end

  local function env_list(env, fname)
    if not env then return nil end
    local out = {}
    for k, v in pairs(env) do
      if type(k) ~= "string" or k == "" or k:find("[=%z]") then
        argerr(2, fname, "opts.env: bad variable name " .. tostring(k))
      end
      if type(v) == "number" then v = tostring(v) end
      if type(v) ~= "string" or v:find("\0", 1, true) then
        argerr(2, fname, "opts.env." .. k .. " must be a string")
      end
      out[#out + 1] = k .. "=" .. v
    end
    table.sort(out)
    return out
  end

  local function spawn(argv, opts, fname)
    local h, pid, i, o, e = c_spawn(argv, env_list(opts.env, fname),
                                    opts.cwd, MODES[opts.stdin or "inherit"],
                                    MODES[opts.stdout or "inherit"],
                                    MODES[opts.stderr or "inherit"])
    if not h then return nil, pid, i end
    return setmetatable({ h, pid = pid, stdin = i, stdout = o,
                          stderr = e }, Proc)
  end

  function proc.spawn(argv, opts)
    argv = check_argv(argv, "spawn")
    opts = check_opts(opts, "spawn")
    return spawn(argv, opts, "spawn")
  end

  -- The child's output as a string, and how it ended. Interrupted
  -- (cancelled, timed out), the child is killed and reaped first.
  function proc.run(argv, opts)
    argv = check_argv(argv, "run")
    opts = check_opts(opts, "run", true)
    if opts.stdout ~= nil then
      argerr(2, "run", "opts.stdout is the result: leave it out")
    end
    if opts.stdin == "pipe" then
      argerr(2, "run", "opts.stdin: give opts.input instead of a pipe")
    end
    local input = opts.input
    local p, msg, code = spawn(argv, {
      stdin = input and "pipe" or (opts.stdin or "null"), stdout = "pipe",
      stderr = opts.stderr, cwd = opts.cwd, env = opts.env }, "run")
    if not p then return nil, msg, code end
    local writer
    local r = table.pack(pcall(function()
      if input then
        -- Its own task: a child may fill its output before reading all
        -- of its input. A child that exits early gets EPIPE: ignored.
        writer = M.spawn(function()
          local stdin <close> = p.stdin
          stdin:write(input)
        end)
      end
      local data, err, ecode = p.stdout:read("a")
      if data == nil then return nil, err, ecode end
      if writer then writer:join() end
      return data, p:wait()
    end))
    if writer then writer:cancel() end
    p.stdout:close()
    if r[1] and r[2] ~= nil then return table.unpack(r, 2, r.n) end
    c_kill(p[1], "KILL")
    c_reap(p[1])
    if not r[1] then error(r[2], 0) end
    return nil, r[3], r[4]
  end

  -- The name, once the process received that signal.
  function proc.signal(name)
    if type(name) ~= "string" then
      error("bad argument #1 to 'signal' (string expected, got " ..
            type(name) .. ")", 2)
    end
    return c_signal(name)
  end

  return proc
end
