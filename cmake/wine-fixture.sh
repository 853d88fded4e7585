#!/bin/sh
# wine-fixture.sh setup|cleanup WINE WINESERVER: the ctest fixture around
# the tests run under wine (docs/windows.md). setup starts a persistent
# wineserver and wine's services (creating the prefix the first time)
# outside ctest's pipes: started inside a test, the services inherit its
# stdout and ctest waits for them until the timeout. The server stays
# 30 s after the last wine process ends, then exits by itself: cleanup
# kills nothing (others may share the prefix).
cmd=$1 wine=$2 server=$3
prefix=${WINEPREFIX:-$HOME/.wine}
case $cmd in
  setup)
    mkdir -p "$prefix"
    "$server" -p30 </dev/null >/dev/null 2>&1 || true # running: fine
    # The first boot of a prefix takes ~10 s; later ones are quick.
    "$wine" wineboot </dev/null >/dev/null 2>&1
    r=$?
    [ $r -eq 0 ] || echo "wine-fixture: wineboot failed ($r)" >&2
    exit $r ;;
  cleanup)
    exit 0 ;;
  *)
    echo "usage: wine-fixture.sh setup|cleanup WINE WINESERVER" >&2
    exit 2 ;;
esac
