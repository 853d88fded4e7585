-- skip.lua: what the specs cannot do on Windows, per spec file: the full
-- name of a test (its describe blocks' names and its own, joined by
-- spaces) or of a describe block (all its tests), and why. busted.lua
-- prints each skip with its reason and fails on an entry that names no
-- test. docs/windows.md lists the same differences for users.
return {
  -- W3: sockets (runtime/net_win.c)
  ["net_spec.lua"] = {
    ["mp.net echo over Unix-domain sockets"] = "wine 8 has no AF_UNIX " ..
      "(Windows 10 has): 'or EAFNOSUPPORT where the system has none' " ..
      "tests the refusal",
    ["mp.net errors a Unix server with a full backlog: EAGAIN on every " ..
     "backend"] = "wine 8 has no AF_UNIX",
    ["mp.net load backs off on EMFILE instead of spinning, and resumes"] =
      "Windows has no descriptor limit to lower (ulimit -n): handles " ..
      "run out only with memory",
  },
  -- W3: processes (runtime/proc_win.c); "mp.proc with a moonport child"
  -- tests the same contract with a child that exists everywhere.
  ["proc_spec.lua"] = (function()
    local unix = "runs Unix programs (echo, sh, sleep, cat, ls, /proc); " ..
      "the same is tested by 'mp.proc with a moonport child'"
    local t = { ["mp.proc.run"] = unix }
    for _, name in ipairs({
      "runs a program with a piped stdout and gives its exit code",
      "reports an exit by signal as nil, 'signal', signo",
      "raises on misuse", "round-trips 1 MiB through cat",
      "reads 1 MiB from stdout and from stderr in two tasks",
      "gives EPIPE, not SIGPIPE, writing to a child that exited",
      "pipes have stream:lines",
      "sets the environment and the working directory",
      "passes no descriptor but 0..2 to the child",
      "with /dev/null: stdin reads nothing, stdout is dropped",
      "reaps 100 children at once: no zombies",
      "reaps a child whose process object was collected",
      "lets any number of tasks wait",
      "leaves the child waitable after a timed-out or cancelled wait",
      "kill on a reaped child is ESRCH" }) do
      t["mp.proc.spawn " .. name] = unix
    end
    t["mp.proc.signal delivers a signal to a waiting task and keeps one " ..
      "nobody waits for"] = "Windows has no USR1 and no kill(1): only " ..
      "the console's Ctrl-C/Ctrl-Break (INT, BREAK) and its closing " ..
      "(HUP) reach a process, and wine offers no console to raise them"
    t["mp.proc.signal children start with default dispositions and no " ..
      "mask"] = "no signal masks or dispositions on Windows (/proc, sh)"
    t["mp.stdin, mp.stdout, mp.stderr a child moonport reads mp.stdin " ..
      "from a pipe while its timer ticks"] = "print and io.write write " ..
      "\"\\r\\n\" on Windows (text mode, as lua.exe); mp.stdin on a " ..
      "pipe is tested by 'mp.proc with a moonport child'"
    t["mp.stdin, mp.stdout, mp.stderr works over regular files and " ..
      "/dev/null"] = unix
    return t
  end)(),
  -- W3: watching (runtime/watch_win.c)
  ["watch_spec.lua"] = {
    ["mp.fs.watch a state closed while an open runs closes what it " ..
     "opened"] = "runs the command through sh (env prefix, seq); the " ..
      "orphaned open is the same code on every system",
    ["mp.fs.watch recursive: watches new subdirectories and what they " ..
     "hold"] = "wine 8's ReadDirectoryChangesW reports nothing below " ..
      "the directory (bWatchSubtree), which Windows does",
  },
}
