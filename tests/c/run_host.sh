#!/usr/bin/env bash
# run_host.sh PROGRAM PATTERN...: runs a host program; it must exit 0 and
# print a line matching each (extended) pattern.
set -u
prog=$1; shift
out=$("$prog"); st=$?
printf '%s\n' "$out"
[ $st -eq 0 ] || { echo "not ok - $prog exited $st"; exit 1; }
for pat in "$@"; do
  printf '%s\n' "$out" | grep -Eq "$pat" || { echo "not ok - no line matches: $pat"; exit 1; }
done
echo "ok - $prog"
