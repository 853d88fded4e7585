#!/bin/bash
# The command starts the collector in generational mode, as lua.c does:
# in incremental mode a stream of 64 KiB reads ran a full collection
# cycle every few strings (f:read(65536) at 0.55x a C read loop, slower
# than the same script under lua5.4). Both report the mode they ran in.
set -u
mine=$("$MOONPORT" -e 'io.write(collectgarbage("incremental"))')
stock=$("$LUA54" -e 'io.write(collectgarbage("incremental"))')
if [ "$mine" != "$stock" ] || [ "$mine" != generational ]; then
  echo "moonport started the collector in '$mine' mode, lua5.4 in '$stock'"
  exit 1
fi
