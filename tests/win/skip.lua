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
}
