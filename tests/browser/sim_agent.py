#!/usr/bin/python3
"""A simulated agent for the dashboard's browser tests: a ZMQ REP socket
that answers every request as a BaseAgent's health port does, with its pid
(so a test can tell a restarted agent from the old one).  It stops on
SIGTERM, as the supervisor asks.

    sim_agent.py NAME PORT [COUNT]

With COUNT, one socket listens on PORT .. PORT+COUNT-1: a thousand agents
for the price of one process.
"""
import json
import os
import resource
import signal
import sys

import zmq


def main():
    name, port = sys.argv[1], int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    # Each port listens on a descriptor and each probe connects on another.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    for p in range(port, port + count):
        sock.bind("tcp://127.0.0.1:%d" % p)
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while running[0]:
        if not poller.poll(100):
            continue
        sock.recv()
        sock.send_string(json.dumps({"status": "ok", "agent": name, "pid": os.getpid()}))
    sock.close()
    ctx.term()


if __name__ == "__main__":
    main()
