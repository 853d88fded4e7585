#!/bin/bash
# On a terminal, mp.stdout and C stdio's stdout stay as stdio made them:
# mp.stdout's writes show at once (a prompt before the read), and
# io.write's lines show at their newline even while the program is busy
# (mp.stdout shares stdio's buffer only when stdout is fully buffered;
# a terminal is marked line-buffered by stdio only when its buffer is
# made, so mp.stdout must not make it fully buffered first).
# Under the command and under lua5.4 with require (where nothing touched
# stdout before the script).
set -u
: "${MOONPORT:?}" "${LUA54:?}"
export LUA_CPATH="$(dirname "$MOONPORT")/lib/?.so;;"
asan=""
if ldd "$(dirname "$MOONPORT")/lib/moonport.so" 2>/dev/null | grep -q libasan
then
  asan=$(gcc -print-file-name=libasan.so)
fi
for prog in "$MOONPORT" "$LUA54"; do
pre=""
[ "$prog" = "$LUA54" ] && pre=$asan
python3 - "$prog" "$pre" <<'PY' || exit 1
import os, pty, select, sys, time
mp = sys.argv[1]
script = r'''
local mp = require "moonport"
mp.stdout:write("name? ")
local name = mp.stdin:read("l")
mp.stdout:write("hi ", name, "\n")
io.write("busy\n")
os.execute("sleep 6")
'''
pid, fd = pty.fork()
if pid == 0:
    if sys.argv[2]:
        os.environ["LD_PRELOAD"] = sys.argv[2]  # an ASan build's module
    os.execvp(mp, [mp, "-e", script])
out = b""
def wait_for(s, timeout):
    global out
    end = time.time() + timeout
    while s not in out:
        left = end - time.time()
        if left <= 0:
            return False
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                return s in out
    return True
ok = wait_for(b"name? ", 10)
if ok:
    os.write(fd, b"bob\n")
    ok = wait_for(b"busy", 4) and b"hi bob" in out  # within the sleep
os.kill(pid, 9)
os.waitpid(pid, 0)
if not ok:
    print("%s: output on the terminal: %r" % (mp, out))
    sys.exit(1)
PY
done
