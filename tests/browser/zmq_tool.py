#!/usr/bin/python3
"""The browser tests' hands on ZMQ (node has no ZMQ binding in Debian), acting
exactly as the Python agents do:

    zmq_tool.py request ENDPOINT JSON      one REQ request; prints the reply
    zmq_tool.py publish ENDPOINT FRAME     one PUB frame (ErrorBus's F1 ingress)
"""
import sys
import time

import zmq


def main():
    verb, endpoint, text = sys.argv[1], sys.argv[2], sys.argv[3]
    ctx = zmq.Context()
    if verb == "request":
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 5000)
        sock.connect(endpoint)
        sock.send_string(text)
        print(sock.recv().decode())
    elif verb == "publish":
        sock = ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 2000)
        sock.connect(endpoint)
        time.sleep(0.5)     # PUB/SUB's slow joiner: let the subscription arrive first
        sock.send_string(text)
    else:
        sys.stderr.write("unknown verb %s\n" % verb)
        return 2
    sock.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
