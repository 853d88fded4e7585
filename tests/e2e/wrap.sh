#!/usr/bin/env bash
# wrap.sh: mp.net.wrap over descriptors a parent passed in (wrap.py makes
# them: a socketpair end, pipes, a listening socket, a UDP socket, a
# file), each left blocking as inherited descriptors usually are.
exec python3 "$(dirname "$0")/wrap.py"
