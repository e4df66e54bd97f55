"""The harness itself, against what running tests side by side (-n 2) does to
it: another test's process may hold one of the ports chosen for this keeld,
between the harness's check and keeld's bind, or after a kill -9 freed them.
Whatever answers there, an HTTP server of another process or a ZMQ socket
whose greeting is no HTTP status line, must neither count as this keeld's
health nor stop the wait with an exception of its own: keeld then exits
with "Address already in use" and start() moves to another offset.  CI saw
both: 168 registrations read from another test's registry, and a
BadStatusLine that failed a test's set-up under valgrind.  Between test
processes, the claims of conftest.claim_ports keep two picks apart."""
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest
import zmq

from conftest import (PORTS, Keel, claim_ports, free_port, http_get, port_free, release_ports,
                      scaled)

HERE = os.path.dirname(os.path.abspath(__file__))


class OtherHealth(http.server.BaseHTTPRequestHandler):
    """Another process's /health: a 200 that is not from our keeld."""

    def do_GET(self):
        body = json.dumps({"status": "ok", "pid": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Impostor:
    """Holds one port the way another test's process would."""

    def __init__(self, kind, port):
        self.kind = kind
        if kind == "zmq":
            self.ctx = zmq.Context()
            self.sock = self.ctx.socket(zmq.ROUTER)
            self.sock.setsockopt(zmq.LINGER, 0)
            # The socket closes the connection once the HTTP request fails
            # its handshake, as one does when its process closes it: the
            # client is left with the greeting alone, no status line (CI's
            # BadStatusLine).  libzmq's own handshake limit, 30 s, would
            # outlast the harness's read.
            self.sock.setsockopt(zmq.HANDSHAKE_IVL, 100)
            self.sock.bind("tcp://127.0.0.1:%d" % port)
        else:
            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), OtherHealth)
            self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
            self.thread.start()

    def close(self):
        if self.kind == "zmq":
            self.sock.close()
            self.ctx.term()
        else:
            self.server.shutdown()
            self.server.server_close()


def health_port(keel):
    return keel.port(PORTS["core"][1])


@pytest.mark.parametrize("kind", ["zmq", "http"])
def test_health_wait_does_not_count_or_trip_on_another_process(kind):
    """A live process that never answers, beside an impostor on its health
    port: the wait ends in its own 'not healthy', never in an exception from
    the impostor's reply, and never in success."""
    keel = Keel("core")
    impostor = Impostor(kind, health_port(keel))
    keel.proc = subprocess.Popen(["sleep", "600"])
    try:
        with pytest.raises(RuntimeError, match="not healthy"):
            keel.wait_healthy(timeout=1)
    finally:
        keel.proc.kill()
        keel.proc.wait()
        impostor.close()
        keel.cleanup()


@pytest.mark.parametrize("kind", ["zmq", "http"])
def test_start_moves_past_a_port_another_process_holds(kind):
    keel = Keel("core")
    first_offset = keel.offset
    impostor = Impostor(kind, health_port(keel))
    try:
        keel.start()
        assert keel.offset != first_offset
        status, body, _ = http_get(keel.http("core"))
        assert status == 200 and json.loads(body)["pid"] == keel.proc.pid
        assert "Address already in use" in keel.log_tail()
    finally:
        impostor.close()
        keel.cleanup()


def test_a_port_claimed_by_another_test_process_is_not_handed_out():
    """Two xdist workers pick at random: a port one of them claimed is not
    the other's until that process is gone, whatever it did with it."""
    port = free_port()
    release_ports([port])
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.path.insert(0, %r); import conftest\n"
         "print(conftest.claim_ports([%d]), flush=True); sys.stdin.read()" % (HERE, port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        assert not claim_ports([port])
        assert not claim_ports([port - 1, port])
        assert claim_ports([port - 1]) or not port_free(port - 1)
    finally:
        holder.stdin.close()
        holder.wait(scaled(30))
    assert claim_ports([port])
    assert not claim_ports([port]), "this process's own claim"
    release_ports([port, port - 1])


def test_a_start_that_fails_leaves_no_keeld_behind():
    """A fixture whose start() raises gets no teardown: test_core_twin's
    module fixture once left its keeld running after a failed start."""
    keel = Keel("core")
    try:
        with pytest.raises(RuntimeError, match="not healthy"):
            keel.start(timeout=0.001)
        assert keel.proc.poll() is not None
    finally:
        keel.cleanup()
