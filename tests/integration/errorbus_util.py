"""Helpers shared by the ErrorBus integration tests: publishers that send
exactly what the original agents send (pyzmq PUB connected to the bus's
bound SUB, framings F1/F2/F3), a wait that proves the publisher is joined
before a test counts anything, and small query wrappers (which carry an
administrator's token: heartbeat needs one, as no kept agent sends it; who may
call what is test_privileges.py's subject)."""
import json
import time

import zmq

from conftest import scaled


def wait_for(predicate, timeout=10.0, interval=0.05):
    deadline = time.time() + scaled(timeout)
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def query(k, action, data=None, timeout_ms=5000):
    message = {"action": action}
    if data is not None:
        message["data"] = data
    return k.admin("errorbus", message, timeout_ms)


def rows(k, action="get_errors", **data):
    reply = query(k, action, data)
    assert reply["status"] == "success", reply
    return reply["data"]


class Publisher:
    """A PUB socket connected to the ingress, as an agent's error reporter."""

    def __init__(self, k, port=7150):
        self.k = k
        self.sock = zmq.Context.instance().socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 2000)
        # pyzmq's default SNDHWM (1000) drops inside the publisher when a test
        # sends faster than its I/O thread is scheduled; no bus can see that.
        self.sock.setsockopt(zmq.SNDHWM, 200000)
        self.sock.connect(k.endpoint(port))
        self.joined = False

    def f1(self, payload):
        self.sock.send(b"ERROR:" + json.dumps(payload).encode())

    def f2(self, payload):
        self.sock.send_multipart([b"ERROR:", json.dumps(payload).encode()])

    def f3(self, payload):
        self.sock.send_multipart([b"ERROR", json.dumps(payload).encode()])

    def raw(self, frames):
        if isinstance(frames, bytes):
            self.sock.send(frames)
        else:
            self.sock.send_multipart(frames)

    def join(self, timeout=10):
        """Sends probes until one is stored: the subscription has reached us."""
        if self.joined:
            return
        n = [0]

        def probe():
            n[0] += 1
            self.f1({"agent": "probe", "error_type": "probe", "message": "p%d" % n[0]})
            return rows(self.k, agent="probe", limit=1)

        assert wait_for(probe, timeout, 0.1), "publisher never joined the ingress"
        self.joined = True

    def close(self):
        self.sock.close()


def stored(k, agent, expect, timeout=10):
    """Waits until `expect` events of `agent` are stored; returns them."""
    got = wait_for(lambda: (lambda r: r if len(r) >= expect else None)(
        rows(k, agent=agent, limit=10000)), timeout)
    return got or rows(k, agent=agent, limit=10000)


def metric(k, name, labels=None):
    import urllib.request
    text = urllib.request.urlopen(k.http("errorbus", "/metrics"), timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            if labels and labels not in line:
                continue
            total += float(line.rsplit(" ", 1)[1])
    return total
