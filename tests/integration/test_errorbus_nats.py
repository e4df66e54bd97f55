"""The ErrorBus NATS bridge against a real nats-server started here: every
stored event is published with Nats-Msg-Id = its error id on
keel.errors.<level>.<agent>, events published on NATS are taken in, and the
bridge reconnects when the server restarts.  The test's NATS client speaks
the plain text protocol over a socket (no Python NATS library needed)."""
import json
import os
import socket
import subprocess
import time

import pytest

from conftest import Keel, free_port, scaled
from errorbus_util import Publisher, query, rows, stored, wait_for

NATS_SERVER = "/usr/sbin/nats-server"


class NatsServer:
    def __init__(self, port):
        self.port = port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + scaled(10)
        while self.proc.poll() is None and time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


class NatsClient:
    """Just enough of the NATS protocol: CONNECT with headers, SUB, PUB/HPUB, MSG/HMSG."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 5)
        self.sock.settimeout(5)
        self.buf = b""
        assert self.line().startswith(b"INFO")
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"protocol":1}\r\nPING\r\n')
        assert self.expect_pong()

    def line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self, n):
        while len(self.buf) < n + 2:
            self.buf += self.sock.recv(65536)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def expect_pong(self):
        while True:
            line = self.line()
            if line == b"PONG":
                return True
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")

    def subscribe(self, subject):
        self.sock.sendall(b"SUB %s 1\r\nPING\r\n" % subject.encode())
        self.expect_pong()

    def publish(self, subject, payload, headers=None):
        body = json.dumps(payload).encode()
        if headers:
            hdr = b"NATS/1.0\r\n" + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode())
                                             for k, v in headers.items()) + b"\r\n"
            self.sock.sendall(b"HPUB %s %d %d\r\n%s%s\r\n" % (subject.encode(), len(hdr),
                                                              len(hdr) + len(body), hdr, body))
        else:
            self.sock.sendall(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(body), body))

    def next_message(self):
        """(subject, headers dict, payload dict)."""
        while True:
            line = self.line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            parts = line.split()
            if parts[0] == b"MSG":
                return parts[1].decode(), {}, json.loads(self.read(int(parts[-1])))
            if parts[0] == b"HMSG":
                hlen, total = int(parts[-2]), int(parts[-1])
                data = self.read(total)
                headers = {}
                for h in data[:hlen].split(b"\r\n")[1:]:
                    if b":" in h:
                        key, value = h.split(b":", 1)
                        headers[key.decode()] = value.strip().decode()
                return parts[1].decode(), headers, json.loads(data[hlen:])

    def close(self):
        self.sock.close()


def bus_bridged_to(keel_factory, port):
    """An ErrorBus whose bridge has connected to the nats-server on `port`."""
    k = keel_factory("errorbus", config="errorbus:\n  nats_url: nats://127.0.0.1:%d\n" % port)
    assert wait_for(lambda: query(k, "get_statistics")["data"]["nats"]["connected"], 5)
    return k


@pytest.mark.skipif(not os.path.exists(NATS_SERVER), reason="nats-server is not installed")
def test_nats_bridge_publish_accept_and_reconnect(keel_factory):
    """Bridge: Nats-Msg-Id = error id, subjects by level and agent, events
    from NATS stored (framing nats), and reconnection after a server restart."""
    port = free_port()
    server = NatsServer(port).start()
    client = None
    try:
        k = bus_bridged_to(keel_factory, port)
        assert "libnats" in maps_of(k)          # loaded by the bridge (natslib.h)
        client = NatsClient(port)
        client.subscribe("keel.errors.>")
        pub = Publisher(k)
        pub.join()
        pub.f1({"agent": "Natty Agent", "error_id": "nats-1", "severity": "critical",
                "error_type": "t", "message": "to nats"})
        while True:
            subject, headers, event = client.next_message()
            if event["agent"] == "Natty Agent":
                break
        assert subject == "keel.errors.critical.Natty_Agent"
        assert headers["Nats-Msg-Id"] == "nats-1" and event["error_id"] == "nats-1"
        assert event["level"] == "critical"

        client.publish("keel.errors.error.Remote", {"agent": "RemoteBus", "error_id": "remote-1",
                                                    "error_type": "far", "message": "from afar"})
        got = stored(k, "RemoteBus", 1)
        assert got[0]["framing"] == "nats" and got[0]["error_id"] == "remote-1"
        client.publish("keel.errors.error.Remote", {"agent": "RemoteBus", "error_id": "remote-1",
                                                    "message": "replayed"},
                       headers={"Nats-Msg-Id": "remote-1"})
        assert wait_for(lambda: query(k, "get_statistics")["data"]["duplicates"] >= 1, 5)
        assert len(rows(k, agent="RemoteBus")) == 1
        client.sock.sendall(b"PUB keel.errors.x 8\r\nnot json\r\n")
        assert wait_for(lambda: [q for q in rows(k, "get_quarantine") if q["framing"] == "nats"], 5)

        client.close()
        client = None
        server.stop()
        assert wait_for(lambda: not query(k, "get_statistics")["data"]["nats"]["connected"], 5)
        pub.f1({"agent": "WhileDown", "error_id": "down-1", "message": "buffered"})
        stored(k, "WhileDown", 1)
        server.start()
        assert wait_for(lambda: query(k, "get_statistics")["data"]["nats"]["reconnects"] >= 1, 10)
        client = NatsClient(port)
        client.subscribe("keel.errors.>")
        pub.f1({"agent": "AfterRestart", "error_id": "after-1", "message": "again"})
        while True:
            subject, headers, event = client.next_message()
            if event["agent"] == "AfterRestart":
                break
        assert headers["Nats-Msg-Id"] == "after-1"
        nats = query(k, "get_statistics")["data"]["nats"]
        assert nats["published"] >= 3 and nats["received"] >= 1
    finally:
        if client:
            client.close()
        server.stop()


def maps_of(k):
    with open("/proc/%d/maps" % k.proc.pid) as f:
        return f.read()


def test_a_bus_without_a_bridge_never_maps_libnats(keel_factory):
    """Issue 17: libnats, and OpenSSL with it, cost every keeld process some
    1.9 MB resident; they are loaded only by a bridge.  Nor is libmicrohttpd,
    with the GnuTLS its constructor started, mapped at all: Keel serves HTTP
    itself (src/common/httpd.c)."""
    k = keel_factory("all")
    maps = maps_of(k)
    assert "libnats" not in maps and "libcrypto" not in maps and "libssl" not in maps
    assert "libmicrohttpd" not in maps and "libgnutls" not in maps


def test_a_bridge_without_libnats_refuses_to_start():
    """errorbus.nats_url set but libnats missing: the bus does not start
    half-way, it says which library it could not load."""
    k = Keel("errorbus", "errorbus:\n  nats_url: nats://127.0.0.1:%d\n" % free_port(),
             {"KEEL_NATS_LIB": "/nonexistent/libnats.so.3.4"})
    try:
        with pytest.raises(RuntimeError):
            k.start(timeout=5)
        assert "cannot load /nonexistent/libnats.so.3.4" in k.log_tail()
    finally:
        k.cleanup()
