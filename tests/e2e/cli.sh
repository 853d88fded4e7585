#!/usr/bin/env bash
# cli.sh: end-to-end tests of the moonport command (exit codes, arg,
# tracebacks, unjoined task errors, lua.c's options and LUA_INIT, bytecode
# refusal, backends).
set -u
MP=${MOONPORT:?set MOONPORT to the moonport binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

check() { # name, condition (as a command)
  if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"
  else fail=$((fail + 1)); echo "not ok - $1"; fi
}

cat > "$tmp/ok.lua" <<'LUA'
local mp = require "moonport"
local t = mp.spawn(function(x) mp.sleep(0.01) return x end, ...)
print(select(2, t:join()), #arg, arg[0] ~= nil)
LUA
out=$("$MP" "$tmp/ok.lua" hello world); st=$?
check "script runs as a task with its arguments" '[ $st -eq 0 ] && [ "$out" = "hello	2	true" ]'

cat > "$tmp/raise.lua" <<'LUA'
local mp = require "moonport"
local function inner() mp.sleep(0.001); error("kaboom") end
inner()
LUA
"$MP" "$tmp/raise.lua" >"$tmp/out" 2>"$tmp/err"; st=$?
check "a raising script exits 1" '[ $st -eq 1 ]'
check "with the message on stderr" 'grep -q "raise.lua:2: kaboom" "$tmp/err"'
check "and a traceback" 'grep -q "stack traceback" "$tmp/err" && grep -q "in .*inner" "$tmp/err"'

cat > "$tmp/unjoined.lua" <<'LUA'
local mp = require "moonport"
mp.spawn(function() mp.sleep(0.001) error("lost error") end)
mp.spawn(function() mp.sleep(0.05) print("others kept running") end)
LUA
"$MP" "$tmp/unjoined.lua" >"$tmp/out" 2>"$tmp/err"; st=$?
check "an unjoined task error makes the exit status 1" '[ $st -eq 1 ]'
check "it is reported with a traceback" 'grep -q "lost error" "$tmp/err" && grep -q "stack traceback" "$tmp/err"'
check "other tasks keep running" 'grep -q "others kept running" "$tmp/out"'

cat > "$tmp/joined.lua" <<'LUA'
local mp = require "moonport"
local t = mp.spawn(function() error("handled") end)
assert(not t:join())
LUA
"$MP" "$tmp/joined.lua" >"$tmp/out" 2>"$tmp/err"; st=$?
check "a joined failure is not an error" '[ $st -eq 0 ] && [ ! -s "$tmp/err" ]'

out=$("$MP" -e 'local mp = require "moonport"; mp.sleep(0.001); print(1 + 1)'); st=$?
check "-e runs a statement as a task" '[ $st -eq 0 ] && [ "$out" = 2 ]'
out=$(echo 'print((require "moonport").backend())' | "$MP" -); st=$?
check "- reads the script from stdin" '[ $st -eq 0 ] && [ -n "$out" ]'
out=$("$MP" -l string -e 'print(string.rep("a", 2))'); st=$?
check "-l loads a library" '[ $st -eq 0 ] && [ "$out" = aa ]'
out=$("$MP" -v); st=$?
check "-v prints the version" '[ $st -eq 0 ] && echo "$out" | grep -q moonport'
out=$("$MP" --backend epoll -e 'print((require "moonport").backend())')
check "--backend selects epoll" '[ "$out" = epoll ]'
"$MP" --backend nonsense -e '' 2>"$tmp/err"; st=$?
check "--backend with a bad name fails, naming it and the valid ones" \
  '[ $st -eq 1 ] && grep -q "unknown backend .nonsense.*valid: .*epoll" "$tmp/err"'
MOONPORT_BACKEND=bogus "$MP" -e '' 2>"$tmp/err"; st=$?
check "MOONPORT_BACKEND with a bad name fails the same way" \
  '[ $st -eq 1 ] && grep -q "unknown backend .bogus. in MOONPORT_BACKEND" "$tmp/err"'
"$MP" --backend 2>"$tmp/err"; st=$?
check "--backend without a name is an error" \
  '[ $st -eq 1 ] && grep -q "'"'--backend' needs argument"'" "$tmp/err"'
out=$("$MP" --backend=epoll -e 'print((require "moonport").backend())')
check "--backend=NAME" '[ "$out" = epoll ]'

# lua.c's options and messages
"$MP" -x 2>"$tmp/err"; st=$?
check "an unknown option: lua's message and usage, exit 1" \
  '[ $st -eq 1 ] && grep -q "unrecognized option .-x." "$tmp/err" && grep -q "^usage: " "$tmp/err" && grep -q "  -W  " "$tmp/err"'
"$MP" -e 2>"$tmp/err"; st=$?
check "-e without its argument" '[ $st -eq 1 ] && grep -q "'"'-e' needs argument"'" "$tmp/err"'
"$MP" -l -e 1 2>"$tmp/err"; st=$?
check "-l followed by an option" '[ $st -eq 1 ] && grep -q "'"'-l' needs argument"'" "$tmp/err"'
out=$("$MP" -ex=6 -e'print(x * 7)'); check "-eSTAT" '[ "$out" = 42 ]'
out=$("$MP" -lstring -l s=string -e 'print(s.rep("b", 2), string == s)')
check "-lMOD and -l g=mod" '[ "$out" = "bb	true" ]'
out=$("$MP" -v); check "-v names moonport and prints Lua's copyright line" \
  'echo "$out" | grep -q "^moonport " && echo "$out" | grep -qx "$(lua5.4 -v)"'
out=$(LUA_INIT='print("init")' "$MP" -e 'print("e")')
check "LUA_INIT runs first" '[ "$out" = "$(printf "init\ne")" ]'
out=$(LUA_INIT_5_4='print("54")' LUA_INIT='print("plain")' "$MP" -e '')
check "LUA_INIT_5_4 wins over LUA_INIT" '[ "$out" = 54 ]'
echo 'print("from file")' > "$tmp/init.lua"
out=$(LUA_INIT="@$tmp/init.lua" "$MP" -e ''); check "LUA_INIT=@file" '[ "$out" = "from file" ]'
out=$(LUA_INIT='print("init")' LUA_PATH='/nowhere/?.lua' "$MP" -E -e 'print(package.path:find("nowhere") == nil)')
check "-E ignores LUA_INIT and LUA_PATH" '[ "$out" = true ]'
LUA_INIT='error("bad init")' "$MP" -e 'print("ran")' >"$tmp/out" 2>"$tmp/err"; st=$?
check "an error in LUA_INIT stops the command" \
  '[ $st -eq 1 ] && grep -q "LUA_INIT:1: bad init" "$tmp/err" && [ ! -s "$tmp/out" ]'
out=$("$MP" -W -e 'warn("w")' 2>&1); check "-W turns warnings on" '[ "$out" = "Lua warning: w" ]'

lua5.4 -e "local f = io.open('$tmp/bc.luac', 'wb'); f:write(string.dump(function() print('bytecode ran') end)); f:close()"
"$MP" "$tmp/bc.luac" >"$tmp/out" 2>"$tmp/err"; st=$?
check "precompiled chunks are refused" '[ $st -eq 1 ] && ! grep -q "bytecode ran" "$tmp/out"'

"$MP" "$tmp/missing.lua" 2>"$tmp/err"; st=$?
check "a missing script exits 1 with a message" '[ $st -eq 1 ] && grep -q "missing.lua" "$tmp/err"'

out=$("$MP" -e 'local mp = require "moonport"; mp.spawn(function() mp.channel():recv() end)' 2>"$tmp/err"); st=$?
check "a deadlock at the end is reported, exit 1" '[ $st -eq 1 ] && grep -q deadlock "$tmp/err"'

out=$("$MP" -e 'os.exit(3)'); st=$?
check "os.exit sets the status" '[ $st -eq 3 ]'

# io_uring refused at setup (seccomp, gVisor, memlock): silent fallback.
if command -v strace >/dev/null && [ -z "${MOONPORT_BACKEND:-}" ] &&
   [ "${MP_EXPECT_BACKEND:-}" != seccomp ]; then
  for e in ENOSYS EPERM ENOMEM; do
    out=$(strace -f -o /dev/null -e trace=io_uring_setup -e inject=io_uring_setup:error=$e \
      "$MP" -e 'local mp = require "moonport"; mp.sleep(0.001); print(mp.backend())' 2>"$tmp/err")
    check "io_uring_setup $e falls back to epoll silently" '[ "$out" = "epoll	$e" ] && [ ! -s "$tmp/err" ]'
  done
  out=$(MOONPORT_DEBUG=1 strace -f -o /dev/null -e trace=io_uring_setup -e inject=io_uring_setup:error=EPERM \
    "$MP" -e 'print((require "moonport").backend())' 2>"$tmp/err")
  check "MOONPORT_DEBUG=1 says why" 'grep -q "io_uring unavailable (EPERM)" "$tmp/err"'
  # setup allowed, but enter refused: must not end up with a half-working ring
  out=$(strace -f -o /dev/null -e trace=io_uring_enter -e inject=io_uring_enter:error=EPERM \
    "$MP" -e 'local mp = require "moonport"; mp.sleep(0.001); print(mp.backend())' 2>"$tmp/err")
  check "io_uring_enter refused falls back at init" '[ "$out" = "epoll	EPERM" ]'
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
