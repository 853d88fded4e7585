#!/usr/bin/env python3
"""wrap.py (run by wrap.sh): the parent side of mp.net.wrap's tests.

Each case hands descriptors to a moonport script as fd 3, 4, ... (left
blocking, as inherited descriptors usually are), plays the peer, and
checks what the script printed, that it exited 0, and that the shared
descriptors are still blocking afterwards (wrap never changes a mode it
shares with another process)."""
import fcntl
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading

MP = os.environ["MOONPORT"]
fails = 0


def run(name, script, fds, peer=None, want=None):
    """Runs script with fds as 3, 4, ...; peer() plays the other side."""
    global fails
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write("local mp = require('moonport')\n" + script)
    # dup2 the descriptors to 3.. in the child (pass_fds keeps numbers)
    pre = fds[:]
    def child():
        # above the targets first: a source may be one of them
        tmp = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in pre]
        for i, fd in enumerate(tmp):
            os.dup2(fd, 3 + i, inheritable=True)
    p = subprocess.Popen([MP, f.name], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, preexec_fn=child,
                         close_fds=False)
    got = {}
    t = None
    if peer:
        t = threading.Thread(target=lambda: got.setdefault("peer", peer()))
        t.start()
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        err += b"\n(timed out)"
    if t:
        t.join(20)
    os.unlink(f.name)
    out = out.decode()
    ok = p.returncode == 0 and (want is None or out == want)
    for fd in fds:
        if not os.get_blocking(fd):
            ok = False
            err += b"\nfd switched to non-blocking"
    if peer and got.get("peer") is not True:
        ok = False
        err += ("\npeer: %r" % got.get("peer")).encode()
    print(("ok - " if ok else "not ok - ") + name)
    if not ok:
        fails += 1
        print("  stdout: %r\n  want:   %r\n  stderr: %s" %
              (out, want, err.decode(errors="replace")))


def recv_all(s):
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            return data
        data += b


# A socketpair end: a stream.
a, b = socket.socketpair()
a.settimeout(15)
def pair_peer():
    line = b""
    while not line.endswith(b"\n"):
        line += a.recv(100)
    a.sendall(b"pong " + line)
    a.shutdown(socket.SHUT_WR)
    return line == b"ping\n"
run("socketpair end", """
local s = assert(mp.net.wrap(3))
print(tostring(s):match("^%a+"))
assert(s:write("ping\\n"))
print(s:read("l"))
print(s:read("a") == "", s:close())
""", [b.fileno()], pair_peer, "stream\npong ping\ntrue\ttrue\n")
a.close()
b.close()

# Pipes: fd 3 reads what the parent writes; a task writes more than a
# pipe holds to fd 4, which the parent drains only once the script has
# answered on fd 5: a write that blocked the loop (a blocking pipe on
# epoll) would keep that answer from coming.
r1, w1 = os.pipe()
r2, w2 = os.pipe()
r3, w3 = os.pipe()
BIG = 200000
def pipe_peer():
    os.write(w1, b"hello\nrest")
    os.close(w1)
    ready, _, _ = select.select([r3], [], [], 10)
    alive = ready and os.read(r3, 100) == b"HELLO\n"
    data = b""
    while len(data) < BIG:  # the parent keeps w2: no end of file
        d = os.read(r2, 65536)
        if not d:
            break
        data += d
    return bool(alive) and data == b"x" * BIG
run("pipes", """
local i = assert(mp.net.wrap(3))
local o = assert(mp.net.wrap(4))
local a = assert(mp.net.wrap(5))
local t = mp.spawn(function() assert(o:write(string.rep("x", BIG))) end)
assert(a:write(assert(i:read("l")):upper() .. "\\n"))
assert(t:join())
assert(i:read("a") == "rest")
assert(i:read("a") == "")
local ok, msg, code = o:peername()
print(ok, code)
i:close()
o:close()
a:close()
""".replace("BIG", str(BIG)), [r1, w2, w3], pipe_peer, "nil\tENOTSOCK\n")
for fd in (r1, w1, r2, w2, r3, w3):
    try:
        os.close(fd)
    except OSError:
        pass

# A pipe nobody reads any more: EPIPE (the command ignores SIGPIPE).
r4, w4 = os.pipe()
os.close(r4)
run("pipe without a reader", """
local o = assert(mp.net.wrap(3))
print(select(3, o:write("x")))
""", [w4], None, "EPIPE\t0\n")  # and no byte written
os.close(w4)

# A listening socket: a server.
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
port = srv.getsockname()[1]
def listen_peer():
    c = socket.create_connection(("127.0.0.1", port), timeout=15)
    c.sendall(b"hi\n")
    data = recv_all(c)
    c.close()
    return data == b"got hi\n"
run("listening socket", """
local srv = assert(mp.net.wrap(3))
print(tostring(srv):match("^%a+"), select(2, srv:sockname()) == PORT)
local c = assert(srv:accept())
assert(c:write("got " .. c:read("l") .. "\\n"))
c:close()
srv:close()
""".replace("PORT", str(port)), [srv.fileno()], listen_peer, "server\ttrue\n")
srv.close()

# A UDP socket: a udp object.
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v.sendto(b"datagram", u.getsockname())
run("udp socket", """
local u = assert(mp.net.wrap(3))
print(tostring(u):match("^%a+"), (u:recvfrom()))
u:close()
""", [u.fileno()], None, "udp\tdatagram\n")
u.close()
v.close()

# Neither socket nor pipe, and no descriptor at all: failures.
with tempfile.TemporaryFile() as f:
    run("a file and a closed descriptor fail", """
print(mp.net.wrap(3))
print(select(3, mp.net.wrap(200)))
local function err(...) return select(2, pcall(mp.net.wrap, ...)) end
print((err(-1):match("bad argument.*")))
print((err("x"):match("bad argument.*")))
""", [f.fileno()], None,
        "nil\twrap 3: Socket operation on non-socket\tENOTSOCK\n"
        "EBADF\nbad argument #1 to '?' (descriptor expected)\n"
        "bad argument #1 to '?' (number expected, got string)\n")

sys.exit(1 if fails else 0)
