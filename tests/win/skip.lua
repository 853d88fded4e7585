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
}
