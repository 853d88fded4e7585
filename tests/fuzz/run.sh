#!/bin/sh
# run.sh BINARY SOURCEDIR WORKDIR: fuzzes one libFuzzer target for
# FUZZ_SECONDS (default 30) from its committed seeds (SOURCEDIR/corpus/NAME,
# read only) and the inputs earlier runs found (WORKDIR/corpus/NAME), with
# SOURCEDIR/NAME.dict when present. Prints one PASS or FAIL line; on a
# failure (crash, leak, timeout, mismatch) the reproducer is saved under
# WORKDIR/artifacts/NAME/ and the command to replay it is printed.
set -u
bin=$1 src=$2 work=$3
name=$(basename "$bin")
name=${name#fuzz_}
secs=${FUZZ_SECONDS:-30}
corpus=$work/corpus/$name
arts=$work/artifacts/$name
log=$work/$name.log
mkdir -p "$corpus" "$arts"
set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$arts/"
[ -f "$src/$name.dict" ] && set -- "$@" -dict="$src/$name.dict"
before=$(ls "$arts" | wc -l)
# libFuzzer stops itself; the outer bound is for a hang it cannot see
timeout -k 10 $((secs * 2 + 120)) \
  "$bin" "$@" "$corpus" "$src/corpus/$name" >"$log" 2>&1
rc=$?
runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) sec.*/\1 runs in \2 s/p' \
  "$log")
if [ $rc -eq 0 ]; then
  n=$(ls "$corpus" | wc -l)
  echo "fuzz $name: PASS ($runs, $n inputs in the work corpus)"
  exit 0
fi
tail -n 60 "$log"
repro=$(ls -t "$arts" | head -n 1)
echo "fuzz $name: FAIL (exit $rc; full log: $log)"
if [ "$(ls "$arts" | wc -l)" -gt "$before" ] && [ -n "$repro" ]; then
  echo "fuzz $name: reproducer saved: $arts/$repro"
  echo "fuzz $name: replay with: $bin $arts/$repro"
fi
exit 1
