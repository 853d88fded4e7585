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

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
