#!/usr/bin/env bash
# proc.sh: signals from outside: SIGTERM and SIGINT to the graceful server
# example mid-request (the request completes, the exit is clean), and
# SIGINT to a script blocked in mp.proc.signal("INT").
set -u
MP=${MOONPORT:?set MOONPORT to the moonport binary}
SRC=${MP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

check() { # name, condition (as a command)
  if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"
  else fail=$((fail + 1)); echo "not ok - $1"; fi
}

for sig in TERM INT; do
  out=$tmp/out-$sig
  "$MP" "$SRC/examples/graceful_server.lua" --serve 0 >"$out" 2>&1 &
  pid=$!
  port=
  for _ in $(seq 200); do
    port=$(sed -n 's/^listening on\t[^\t]*\t\([0-9]*\)$/\1/p' "$out")
    [ -n "$port" ] && break
    sleep 0.05
  done
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  echo "req $sig" >&3
  for _ in $(seq 200); do # in flight (the handler takes 0.2 s)
    grep -q "^handling req $sig$" "$out" && break
    sleep 0.02
  done
  kill -"$sig" "$pid"
  reply=$(timeout 10 cat <&3)
  exec 3<&-
  timeout 10 tail --pid="$pid" -f /dev/null
  wait "$pid"; st=$?
  check "SIG$sig: the request in flight completes" \
    '[ "$reply" = "done: req $sig" ]'
  check "SIG$sig: clean exit" \
    '[ $st -eq 0 ] && grep -q "^clean exit$" "$out" && grep -q "^got SIG$sig" "$out"'
done

cat > "$tmp/int.lua" <<'LUA'
local mp = require "moonport"
local ticks = 0
mp.spawn(function() while true do mp.sleep(0.01) ticks = ticks + 1 end end)
mp.timeout(0.001, mp.proc.signal, "INT") -- routed from here on
io.stdout:write("waiting\n") io.stdout:flush()
print(mp.proc.signal("INT"), ticks > 0)
os.exit(0)
LUA
"$MP" "$tmp/int.lua" >"$tmp/out" 2>&1 &
pid=$!
for _ in $(seq 200); do grep -q waiting "$tmp/out" && break; sleep 0.05; done
sleep 0.05 # its timer ticks meanwhile
kill -INT "$pid"
timeout 10 tail --pid="$pid" -f /dev/null
wait "$pid"; st=$?
check "SIGINT wakes mp.proc.signal('INT'), timers kept ticking" \
  '[ $st -eq 0 ] && grep -q "^INT	true$" "$tmp/out"'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
