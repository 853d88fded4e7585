#!/usr/bin/env bash
# cli.sh WINE EXE: end-to-end tests of moonport.exe under wine: a script
# with its arguments, exit codes, error messages and tracebacks, -e, -v,
# stdin, bad options and backends, IO from a script (the Windows leg of
# tests/e2e/cli.sh).
set -u
WINE=${1:?usage: cli.sh WINE EXE} MP=${2:?usage: cli.sh WINE EXE}
export WINEDEBUG=${WINEDEBUG:--all}
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree,mshtml,winedbg.exe=d}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
mp() { timeout 60 "$WINE" "$MP" "$@"; }

check() { # name, condition (as a command)
  if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"
  else fail=$((fail + 1)); echo "not ok - $1"; fi
}

cat > "$tmp/ok.lua" <<'LUA'
local mp = require "moonport"
local t = mp.spawn(function(x) mp.sleep(0.01) return x end, ...)
print(select(2, t:join()), #arg, arg[0] ~= nil, mp.backend())
LUA
out=$(mp "$tmp/ok.lua" hello world | tr -d '\r'); st=$?
check "script runs as a task with its arguments, on iocp" \
  '[ $st -eq 0 ] && [ "$out" = "hello	2	true	iocp" ]'

cat > "$tmp/raise.lua" <<'LUA'
local mp = require "moonport"
local function inner() mp.sleep(0.001); error("kaboom") end
inner()
LUA
mp "$tmp/raise.lua" >"$tmp/out" 2>"$tmp/err"; st=$?
check "a raising script exits 1" '[ $st -eq 1 ]'
check "with the message on stderr" 'grep -q "raise.lua:2: kaboom" "$tmp/err"'
check "and a traceback" \
  'grep -q "stack traceback" "$tmp/err" && grep -q "in .*inner" "$tmp/err"'

cat > "$tmp/unjoined.lua" <<'LUA'
local mp = require "moonport"
mp.spawn(function() mp.sleep(0.001) error("lost error") end)
mp.spawn(function() mp.sleep(0.05) print("others kept running") end)
LUA
mp "$tmp/unjoined.lua" >"$tmp/out" 2>"$tmp/err"; st=$?
check "an unjoined task error makes the exit status 1" '[ $st -eq 1 ]'
check "it is reported" 'grep -q "lost error" "$tmp/err"'
check "other tasks keep running" 'grep -q "others kept running" "$tmp/out"'

mp -e 'os.exit(7)'; st=$?
check "os.exit's status is the exit status" '[ $st -eq 7 ]'
mp -e 'os.exit(false)'; st=$?
check "os.exit(false) exits 1" '[ $st -eq 1 ]'

out=$(mp -e 'local mp = require "moonport"; mp.sleep(0.001); print(1 + 1)' |
      tr -d '\r'); st=$?
check "-e runs a statement as a task" '[ $st -eq 0 ] && [ "$out" = 2 ]'
out=$(echo 'print((require "moonport").backend())' | mp - | tr -d '\r'); st=$?
check "- reads the script from stdin" '[ $st -eq 0 ] && [ "$out" = iocp ]'
out=$(mp -v | tr -d '\r'); st=$?
check "-v names the version and the backend" \
  '[ $st -eq 0 ] && echo "$out" | grep -q "^moonport .*(backend iocp)"'

mp -x >"$tmp/out" 2>"$tmp/err"; st=$?
check "a bad option prints the usage and exits 1" \
  '[ $st -eq 1 ] && grep -q "unrecognized option" "$tmp/err" && grep -q "usage:" "$tmp/err"'
mp --backend epoll -e 'print(1)' >"$tmp/out" 2>"$tmp/err"; st=$?
check "only iocp is a backend on Windows" \
  '[ $st -eq 1 ] && grep -q "unknown backend .epoll.*valid: iocp" "$tmp/err"'
mp "$tmp/missing.lua" >"$tmp/out" 2>"$tmp/err"; st=$?
check "a missing script is an error naming it" \
  '[ $st -eq 1 ] && grep -q "cannot open .*missing.lua" "$tmp/err"'
printf 'print("unclosed)\n' > "$tmp/syntax.lua"
mp "$tmp/syntax.lua" >"$tmp/out" 2>"$tmp/err"; st=$?
check "a syntax error is reported" \
  '[ $st -eq 1 ] && grep -q "syntax.lua:1: unfinished string" "$tmp/err"'

# IO from a script: a file written and read back, a timer, a TCP echo.
cat > "$tmp/io.lua" <<'LUA'
local mp = require "moonport"
local dir = assert(mp.fs.mkdtemp())
local p = dir .. "/f.txt"
assert(mp.fs.writefile(p, "line 1\nline 2\n"))
local f = assert(mp.fs.open(p))
local a, b = f:read("l", "l")
f:close()
assert(mp.fs.remove(p) and mp.fs.rmdir(dir))
local srv = assert(mp.net.listen("127.0.0.1", 0))
local _, port = srv:sockname()
mp.spawn(function()
  local c = assert(srv:accept())
  c:write(c:read("l") .. "!\n")
  c:close()
end)
local c = assert(mp.net.connect("127.0.0.1", port))
c:write("ping\n")
local echo = c:read("l")
c:close()
srv:close()
print(a, b, echo)
LUA
out=$(mp "$tmp/io.lua" 2>"$tmp/err" | tr -d '\r'); st=$?
check "files and sockets from a script" \
  '[ $st -eq 0 ] && [ "$out" = "line 1	line 2	ping!" ]' ||
  cat "$tmp/err"

cat > "$tmp/workers.lua" <<'LUA'
local mp = require "moonport"
mp.sleep(0.01)
print("worker " .. mp.worker())
LUA
out=$(mp --workers 2 "$tmp/workers.lua" 2>"$tmp/err" | tr -d '\r' | sort)
st=$?
check "--workers 2 runs the script in two workers" \
  '[ $st -eq 0 ] && [ "$out" = "worker 1
worker 2" ]' || cat "$tmp/err"

# A server on both workers sharing one port (reuseport: on Windows the
# listener the workers' record shares, runtime/share_win.c). Worker 1
# picks the port, worker 2 listens on it; a client task in worker 1 makes
# 20 connections one after the other and counts which worker answered;
# then both close their servers and end: exit 0.
cat > "$tmp/share.lua" <<'LUA'
local mp = require "moonport"
local me, n = mp.worker()
local ports = mp.shared_channel("port", n)
local ready = mp.shared_channel("ready", n)
local stop = mp.shared_channel("stop", n)
local srv
if me == 1 then
  srv = assert(mp.net.listen("127.0.0.1", 0, { reuseport = true }))
  local _, port = srv:sockname()
  for _ = 2, n do ports:send(port) end
else
  srv = assert(mp.net.listen("127.0.0.1", ports:recv(), { reuseport = true }))
  ready:send(me)
end
local served = 0
local acceptor = mp.spawn(function()
  while true do
    local c = srv:accept()
    if not c then return end
    served = served + 1
    c:write(me .. "\n")
    c:close()
  end
end)
if me == 1 then
  for _ = 2, n do ready:recv() end
  local _, port = srv:sockname()
  local by = {}
  for _ = 1, 20 do
    local c = assert(mp.net.connect("127.0.0.1", port))
    local w = assert(c:read("l"))
    c:close()
    by[w] = (by[w] or 0) + 1
  end
  print(("answered %d %d"):format(by["1"] or 0, by["2"] or 0))
  for _ = 2, n do stop:send(true) end
else
  stop:recv()
end
srv:close()
acceptor:join()
io.stderr:write(("worker %d served %d\n"):format(me, served))
LUA
mp --workers 2 "$tmp/share.lua" >"$tmp/out" 2>"$tmp/err"; st=$?
out=$(tr -d '\r' <"$tmp/out")
read -r word a b <<<"$out"
check "--workers 2: a reuseport server on both workers, each serves some" \
  '[ $st -eq 0 ] && [ "$word" = answered ] && [ $((a + b)) -eq 20 ] &&
   [ "$a" -ge 5 ] && [ "$b" -ge 5 ]' || { echo "$out"; cat "$tmp/err"; }
check "and both stop cleanly (each counted what it served)" \
  'grep -q "^worker 1 served $a" "$tmp/err" &&
   grep -q "^worker 2 served $b" "$tmp/err"'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
