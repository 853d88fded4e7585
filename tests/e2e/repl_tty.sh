#!/usr/bin/env bash
# repl_tty.sh: the REPL on a terminal (pty driven by repl_tty.py).
set -u
: "${MOONPORT:?}"
exec python3 "$(dirname "$0")/repl_tty.py"
