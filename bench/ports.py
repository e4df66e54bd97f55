"""Free loopback ports for the bench drivers, through bench/lib.sh.

A driver starts keeld at a PORT_OFFSET and its peer on a port of its own,
while other tests may be using the machine: every port is checked by
binding it, as the harness does (tests/integration/conftest.py).

    ports.py offset [--span N] BASE...   a PORT_OFFSET at which BASE+offset
                                         (and the N-1 ports after each) are free
    ports.py ports N                     N free ports
    ports.py range N                     the first of N consecutive free ports
"""
import random
import socket
import sys


def free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def offset(bases, span):
    for _ in range(500):
        off = random.randrange(100, 2000) * 10
        if all(free(b + off + i) for b in bases for i in range(span)):
            return off
    sys.exit("ports.py: no free PORT_OFFSET")


def ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    found = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return found


def consecutive(n):
    for _ in range(200):
        base = random.randrange(30000, 60000 - n)
        if all(free(p) for p in range(base, base + n)):
            return base
    sys.exit("ports.py: no %d consecutive free ports" % n)


def main(argv):
    if argv[:1] == ["offset"]:
        args, span = argv[1:], 1
        if args[:1] == ["--span"]:
            span, args = int(args[1]), args[2:]
        print(offset([int(b) for b in args], span))
    elif argv[:1] == ["ports"] and len(argv) == 2:
        print(" ".join(str(p) for p in ports(int(argv[1]))))
    elif argv[:1] == ["range"] and len(argv) == 2:
        print(consecutive(int(argv[1])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
