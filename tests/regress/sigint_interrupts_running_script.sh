#!/usr/bin/env bash
# Ctrl-C (SIGINT) while the script runs raises "interrupted!" in it, as in
# lua: in Lua code that spins, and in a script suspended in the loop; the
# error is reported with its traceback (exit status 1) and the script's
# to-be-closed variables are closed on the way out.
set -u
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
spin='mp.spawn(function() while true do end end)'
for body in 'while true do end' 'mp.sleep(60)' "$spin mp.sleep(60)"; do
  "$MOONPORT" -e "local mp = require 'moonport'
    local x <close> = setmetatable({},
      { __close = function() print('closed') end })
    print('started') io.stdout:flush() $body" \
    >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 100); do grep -q started "$tmp/out" && break; sleep 0.05; done
  sleep 0.2
  kill -INT $pid
  for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
  if kill -0 $pid 2>/dev/null; then
    kill -9 $pid; echo "FAIL: still running after SIGINT: $body"; exit 1
  fi
  wait $pid; st=$?
  if [ $st -ne 1 ] || ! grep -q "interrupted!" "$tmp/err" ||
     ! grep -q "stack traceback" "$tmp/err" || ! grep -q closed "$tmp/out"; then
    echo "FAIL: $body: status $st"; cat "$tmp/err"; exit 1
  fi
done
exit 0
