#!/usr/bin/env bash
# repl.sh: the REPL (moonport -i, stdin from a pipe): values print,
# incomplete chunks continue, errors do not end it, background tasks keep
# running between entries, Ctrl-C stops a runaway or sleeping entry but not
# the process, Ctrl-D (end of input) exits 0.
set -u
MP=${MOONPORT:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null' EXIT
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; cat "$tmp/out" "$tmp/err"; fi; }

mkfifo "$tmp/in"
"$MP" -i <"$tmp/in" >"$tmp/out" 2>"$tmp/err" &
pid=$!
exec 3>"$tmp/in"
send() { printf '%s\n' "$1" >&3; sleep "${2:-0.1}"; }
send 'mp = require "moonport"'
send '6 * 7'
send 'function twice(a)'
send '  return a * 2'
send 'end'
send 'twice(21) + 1'
send 'ticks = 0; mp.spawn(function() while true do mp.sleep(0.01) ticks = ticks + 1 end end)'
send 'srv = assert(mp.net.listen("127.0.0.1", 0)); print("PORT", select(2, srv:sockname()))'
send 'mp.spawn(function() while true do local c = srv:accept(); c:write("hi from the repl\n"); c:close() end end)'
# The REPL now waits for input; its server must keep answering meanwhile.
port=$(sed -n 's/^PORT\t//p' "$tmp/out")
served=$(timeout 10 "$MP" -e "local mp = require 'moonport'
  local c = assert(mp.net.connect('127.0.0.1', $port)); print(c:read('l'))")
send 'error("oops")' 0.3
send 'ticks > 5'
send 'while true do end' 0.3
kill -INT "$pid"; sleep 0.2
send 'mp.sleep(100)' 0.2
kill -INT "$pid"; sleep 0.2
send 'print("still alive")'
exec 3>&-
wait "$pid"; st=$?
pid=
check "Ctrl-D exits 0" '[ $st -eq 0 ]'
check "expressions print their values" 'grep -qx 42 "$tmp/out"'
check "incomplete chunks continue on the next line" 'grep -qx 43 "$tmp/out"'
check "errors print and the REPL goes on" 'grep -q "oops" "$tmp/err" && grep -q "still alive" "$tmp/out"'
check "background tasks run between entries" 'grep -qx true "$tmp/out"'
check "a server started at the prompt answers while the REPL waits" '[ "$served" = "hi from the repl" ]'
check "Ctrl-C stops a runaway entry" 'grep -q "interrupted!" "$tmp/err"'
check "Ctrl-C stops a sleeping entry too" '[ "$(grep -cE "^(interrupted!|cancelled)" "$tmp/err")" -ge 2 ]'

# Not a terminal: prompts, echo and results exactly as lua5.4 -i prints
# them (after the version banner), with _PROMPT/_PROMPT2, "=expr", errors
# and print = nil.
input='1+1
for i = 1, 2 do
print(i)
end
=3
_PROMPT = "P> " _PROMPT2 = setmetatable({}, {__tostring = function() return "P2> " end})
local t = {
}
error("x")
print = nil
10
'
printf '%s' "$input" | lua5.4 -i >"$tmp/lua.out" 2>"$tmp/lua.err"
printf '%s' "$input" | "$MP" -i >"$tmp/mp.out" 2>"$tmp/mp.err"; st=$?
check "without a terminal the REPL prints what lua5.4 -i prints" \
  '[ $st -eq 0 ] && diff <(sed 1d "$tmp/lua.out") <(sed 1,2d "$tmp/mp.out") && diff "$tmp/lua.err" "$tmp/mp.err"'
check "print = nil does not end it" 'grep -q "error calling .print." "$tmp/mp.err"'

# An entry waiting for what nothing in flight can bring (a channel nobody
# feeds) sleeps until Ctrl-C: it used to spin a whole CPU.
rm -f "$tmp/in2"; mkfifo "$tmp/in2"
"$MP" -i <"$tmp/in2" >"$tmp/out" 2>"$tmp/err" &
pid=$!
exec 3>"$tmp/in2"
send 'require("moonport").channel():recv()' 0.5
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
c1=$(cpu); sleep 1; c2=$(cpu)
kill -INT "$pid"; sleep 0.3
send 'print("woke")'
exec 3>&-
wait "$pid"; st=$?
pid=
check "a waiting entry costs no CPU ($((c2 - c1)) ticks in 1 s)" \
  '[ $((c2 - c1)) -lt 20 ]'
check "and Ctrl-C still interrupts it" \
  '[ $st -eq 0 ] && grep -q "^woke" "$tmp/out" && grep -q "interrupted!" "$tmp/err"'
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
