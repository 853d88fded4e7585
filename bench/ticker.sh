#!/usr/bin/env bash
# bench/ticker.sh: mp.ticker's drift under a CPU-busy neighbour task, 1,000
# ticks of 10 ms, against a plain mp.sleep loop (bench/ticker.lua).
set -eu
cd "$(dirname "$0")/.."
MP=${MOONPORT:-./build/moonport}
"$MP" bench/ticker.lua "${N:-1000}" "${P:-0.01}"
