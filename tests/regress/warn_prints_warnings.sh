#!/usr/bin/env bash
# warn() works as in lua: off by default, "@on"/"@off" control messages,
# -W turns it on, pieces of a message are joined.
set -u
err=$("$MOONPORT" -e 'warn("hidden")' 2>&1)
[ -z "$err" ] || { echo "FAIL: warnings are off by default: '$err'"; exit 1; }
err=$("$MOONPORT" -W -e 'warn("a", "b") warn("@off") warn("hidden")' 2>&1)
[ "$err" = "Lua warning: ab" ] || { echo "FAIL: -W: '$err'"; exit 1; }
err=$("$MOONPORT" -e 'warn("@on") warn("x")' 2>&1)
[ "$err" = "Lua warning: x" ] || { echo "FAIL: @on: '$err'"; exit 1; }
exit 0
