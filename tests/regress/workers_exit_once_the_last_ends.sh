#!/usr/bin/env bash
# moonport --workers ends as soon as its last worker ends: the main
# thread's loop turn that dispatched the last worker's end used to go on
# waiting (for signals) forever, about one run in eight.
set -u
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo 'local i = require("moonport").worker() print(i)' >"$tmp/w.lua"
for i in $(seq 40); do
  timeout 10 "$MOONPORT" --workers 3 "$tmp/w.lua" >"$tmp/out" 2>&1
  st=$?
  if [ $st -ne 0 ] || [ "$(sort "$tmp/out" | tr '\n' ' ')" != "1 2 3 " ]; then
    echo "run $i: status $st (124: hung), output:"; cat "$tmp/out"
    exit 1
  fi
done
