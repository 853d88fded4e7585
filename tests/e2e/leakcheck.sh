#!/usr/bin/env bash
# leakcheck.sh: the leak checks can fail. Each planted leak must fail its
# check with a message naming what leaked: the C runner's (descriptor,
# op record, thread), busted's after each test (tests/leak/planted_spec.lua),
# and the one a state runs at close under MOONPORT_LEAK_CHECK (the
# allocation sweep's planted hosts).
set -u
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; fi; }
MP=${MOONPORT:?}
BUILD=$(dirname "$MP")
SRC=${MP_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run_planted() { # name: runs one planted C test, output in $tmp/err
  "$BUILD/tests/mp_tests" "$1" >/dev/null 2>"$tmp/err"
}

run_planted planted_fd_leak; st=$?
check "C runner: a leaked descriptor fails the test" '[ $st -ne 0 ]'
check "  and is named" 'grep -q "planted_fd_leak: leaked 1 descriptor: [0-9]*=/dev/null" "$tmp/err"'
run_planted planted_op_leak; st=$?
check "C runner: an op record never released fails the test" '[ $st -ne 0 ]'
check "  and is named" 'grep -q "1 op record never released" "$tmp/err"'
run_planted planted_thread_leak; st=$?
check "C runner: a thread left running fails the test" '[ $st -ne 0 ]'
check "  and is named" 'grep -q "planted_thread_leak: 1 thread still running" "$tmp/err"'

pre=""
if ldd "$BUILD/lib/moonport.so" 2>/dev/null | grep -q libasan; then
  pre=$(gcc -print-file-name=libasan.so)
fi
(cd "$SRC/tests/leak" && MP_LEAK_WAIT=0.5 LD_PRELOAD=$pre \
  ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 \
  LUA_CPATH="$BUILD/lib/?.so;;" LUA_PATH="$SRC/tests/lua/?.lua;;" \
  timeout 60 lua5.4 /usr/bin/busted -o utfTerminal planted_spec.lua) \
  >"$tmp/out" 2>&1; st=$?
check "busted: planted leaks fail the run" '[ $st -ne 0 ]'
check "  a kept socket is named" 'grep -q "keeps a listening socket: leaked 1 descriptor: [0-9]*=socket:" "$tmp/out"'
check "  a sleeping task is named" 'grep -q "leaves a task sleeping: .*1 ops still in flight.*1 tasks still alive.*1 timers still armed" "$tmp/out"'
check "  a clean test passes" 'grep -q "2 errors" "$tmp/out" && ! grep -q "leaks nothing:" "$tmp/out"'

SWEEP="$BUILD/tests/mp_alloc_sweep"
ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 "$SWEEP" planted-fd 2>"$tmp/err"; st=$?
check "state close: a leaked descriptor ends the process with status 3" '[ $st -eq 3 ]'
check "  and is named" 'grep -q "moonport: leak check: leaked 1 descriptor: [0-9]*=/dev/null" "$tmp/err"'
ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 "$SWEEP" planted-op 2>"$tmp/err"; st=$?
check "state close: an op record never released ends it with status 3" '[ $st -eq 3 ]'
check "  and is named" 'grep -q "moonport: leak check: 1 op record never released" "$tmp/err"'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
