#!/usr/bin/env bash
# stress.sh: tests/e2e/stress.lua with a few seeds (and once with a full
# garbage collection on every line); each run must end cleanly.
set -u
MP=${MOONPORT:?}
here=$(dirname "$0")
pass=0 fail=0
run() {
  out=$(timeout 120 env "$@" "$MP" "$here/stress.lua" "$seed" 2>&1); st=$?
  if [ $st -eq 0 ] && [ "$(echo "$out" | tail -1)" = "ok	$seed" ]; then
    pass=$((pass + 1)); echo "ok - seed $seed $*"
  else
    fail=$((fail + 1)); echo "not ok - seed $seed $* (status $st)"; echo "$out" | tail -20
  fi
}
for seed in 1 2 3; do run MOONPORT_GC_TORTURE=0; done
seed=4 run MOONPORT_GC_TORTURE=1
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
