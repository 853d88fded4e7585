-- skip.lua: what the specs cannot do on Windows, per spec file: the full
-- name of a test (its describe blocks' names and its own, joined by
-- spaces) or of a describe block (all its tests), and why. busted.lua
-- prints each skip with its reason and fails on an entry that names no
-- test. docs/windows.md lists the same differences for users.
local PERM = "Windows files have no permission bits, only a read-only " ..
  "attribute: modes read 0444 or 0666 (0777 for directories)"
local AS_USER = "runs a script as another user (setpriv) after a chmod: " ..
  "neither exists under wine"
local FIFO = "mkfifo: Windows has no FIFOs (close and cancel of pending " ..
  "pipe reads: tests/c/test-iocp.c)"
local SYMLINK = "wine 8 makes no symbolic links (CreateSymbolicLinkW " ..
  "claims success and makes nothing: MP_ENOSYS); READLINK is MP_ENOSYS " ..
  "on Windows"
return {
  -- W2: files (runtime/fs_win.c, backend_iocp.c)
  ["fs_spec.lua"] = {
    ["mp.fs modes permissions are applied to new files"] = PERM,
    ["mp.fs misuse raises a second concurrent read on one file raises"] =
      FIFO,
    ["mp.fs path functions stat, lstat, dir, mkdir, rename, remove, " ..
     "rmdir"] = PERM .. "; and ln -s. " .. SYMLINK,
    ["mp.fs close, cancel and collection with ops in flight close " ..
     "completes a pending read with 'closed'"] = FIFO,
    ["mp.fs close, cancel and collection with ops in flight a cancelled " ..
     "read loses no data"] = FIFO,
    ["mp.fs close, cancel and collection with ops in flight collecting " ..
     "a file with a read in flight is safe"] = FIFO,
    ["mp.fs.readfile reads a /proc file whose size says 0"] =
      "no /proc on Windows",
    ["mp.fs.readfile waits for a FIFO's writer and reads until it " ..
     "closes"] = FIFO,
    ["mp.fs.readfile a timeout or cancel mid-readfile closes what it " ..
     "opened"] = FIFO,
    ["mp.fs.readfile a cancel in the turn that started it is not lost"] =
      FIFO,
    ["mp.fs buffered writes a write error found while flushing is " ..
     "reported, not lost"] = "mounts a 64 KiB tmpfs to fill",
  },
  ["fsx_spec.lua"] = {
    ["fs.chmod sets the permission bits, as a number or octal digits"] =
      PERM,
    ["fs.chown EPERM for an unprivileged user"] = AS_USER,
    ["fs.symlink, fs.readlink, fs.realpath make and read links, resolve " ..
     "paths"] = SYMLINK,
    ["fs.symlink, fs.readlink, fs.realpath fail with the path named"] =
      SYMLINK,
    ["fs.symlink, fs.readlink, fs.realpath EACCES for an unprivileged " ..
     "user"] = AS_USER,
    ["fs.truncate EACCES for an unprivileged user"] = AS_USER,
    ["fs.mkdtemp makes private, distinct directories"] = PERM,
    ["fs.mkdtemp EACCES for an unprivileged user"] = AS_USER,
    ["fs.tmpfile is a w+ file without a name, as io.tmpfile"] =
      "a delete-on-close file keeps its name (link count 1) until " ..
      "closed: Windows has no O_TMPFILE",
    ["fs.fdopen reads, writes and appends to inherited descriptors"] =
      "runs lua5.4 with descriptors 3.. redirected by the shell: " ..
      "neither under wine",
    ["fs.fdopen starts at the descriptor's position"] =
      "runs lua5.4 with descriptors 3.. redirected by the shell",
    ["fs.fdopen refuses a mode the descriptor was not opened for"] =
      "runs lua5.4 with descriptors 3.. redirected by the shell",
    ["fs.copy copies a large file with its permissions"] = PERM,
    ["fs.copy replaces an existing file in place, as cp"] = PERM ..
      "; CopyFileW replaces the target (cp rewrites it in place)",
    ["fs.copy fails naming the path concerned"] = SYMLINK ..
      "; and /dev/null",
    ["fs.copy EACCES for an unprivileged user"] = AS_USER,
    ["fs.copy a cancelled copy stops between chunks, not at the end"] =
      "COPYFILE on Windows is one CopyFileExW call on the pool, not " ..
      "chunks: a cancel does not stop it midway (known gap: its progress " ..
      "callback could return PROGRESS_CANCEL)",
  },
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
    t["mp.stdin, mp.stdout, mp.stderr writes what waits in stdout's " ..
      "buffer before a child that inherits stdout starts"] = unix
    t["mp.stdin, mp.stdout, mp.stderr mp.stdout:write to a pipe does not " ..
      "suspend while it fits in stdout's buffer (no op per line), nor a " ..
      "write the stream takes at once"] = "mp.stdout does not share the " ..
      "C runtime's stdout buffer on Windows (msvcrt does not tell how " ..
      "much waits in it) and no pipe write is tried at once: each " ..
      "write is an op of the loop"
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
