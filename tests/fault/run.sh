#!/usr/bin/env bash
# run.sh SEED RATE HARD CMD...: runs CMD with seeded fault injection: the
# LD_PRELOAD shim ($MP_FAULT_SHIM) on the epoll backends, the io_uring
# backend's own completion faults when MOONPORT_BACKEND=io_uring. Passes
# CMD's status through; fails if no fault was injected at all; on failure
# prints how to reproduce the same schedule.
set -u
seed=$1 rate=$2 hard=$3
shift 3
stats=$(mktemp)
trap 'rm -f "$stats"' EXIT
pre=${LD_PRELOAD:-}
if [ "${MOONPORT_BACKEND:-}" != io_uring ]; then
  pre="${pre:+$pre:}${MP_FAULT_SHIM:?the shim (libmp_fault.so)}"
fi
LD_PRELOAD=$pre MP_FAULT_SEED=$seed MP_FAULT_RATE=$rate MP_FAULT_HARD=$hard \
  MP_FAULT_STATS=$stats "$@"
st=$?
read -r calls faults < <(awk '{c += $3; f += $4} END {print c + 0, f + 0}' \
                         "$stats")
echo "fault injection: seed $seed, rate $rate, hard $hard: $faults faults in $calls calls"
if [ "$st" -eq 0 ] && [ "$faults" -eq 0 ]; then
  echo "no fault was injected: the injection is not working"; st=1
fi
if [ "$st" -ne 0 ]; then
  echo "FAILED under fault injection; reproduce with:"
  echo "  MOONPORT_BACKEND=${MOONPORT_BACKEND:-} MP_FAULT_SEED=$seed MP_FAULT_RATE=$rate MP_FAULT_HARD=$hard LD_PRELOAD=$pre $*"
fi
exit "$st"
