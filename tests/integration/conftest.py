"""Integration harness: starts the real build/keeld on a free PORT_OFFSET with
a temporary data directory, waits for /health, and always stops what it
started.  Tests talk to it the way the original Python agents do: pyzmq REQ
sockets sending one JSON frame.

Fixtures
  keel          a running `keeld all` (function scope)
  keel_factory  start(service="all", config=None, env=None) -> Keel, for tests
                that need their own configuration, several instances, or
                restarts; every instance is stopped at teardown.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("KEEL_BUILD", "build"))
KEELD = os.path.join(BUILD, "keeld")
KEELCTL = os.path.join(BUILD, "keelctl")
FAKE_NVML = os.path.join(BUILD, "tests", "libfake-nvml.so")

# base ports of the five services: (zmq, http)
PORTS = {
    "core": (7000, 8000),
    "resource": (7001, 8001),
    "observability": (7002, 8002),
    "errorbus": (7003, 8003),
    "security": (7005, 8005),
}
EXTRA_PORTS = (7150, 7151)
# The absorbed agents' old ports and side channels, bound with legacy_ports: true.
LEGACY_PORTS = (7100, 8100, 7120, 7121, 8120, 26002, 26003, 27002, 7125, 8125, 5591, 5568, 5569,
                7113, 8113, 7115, 8115, 7101, 8101, 5572, 6572,
                7103, 8103, 7114, 8114, 7128, 8128, 7117, 8117, 5613, 6613, 5619, 5620, 7152,
                7116, 8116, 7122, 8122)


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_offset(extra=()):
    """A PORT_OFFSET at which every Keel port (and `extra` base ports) is free."""
    bases = [p for pair in PORTS.values() for p in pair] + list(EXTRA_PORTS) + list(extra)
    for _ in range(200):
        offset = random.randrange(100, 3000) * 10
        if all(port_free(b + offset) for b in bases):
            return offset
    raise RuntimeError("no free PORT_OFFSET found")


def zmq_request(endpoint, message, timeout_ms=5000):
    """One request on a fresh REQ socket, as BaseAgent.send_request_to_agent does.
    `message` is a dict (sent as JSON) or raw bytes; returns the decoded JSON reply."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
    sock.connect(endpoint)
    try:
        if isinstance(message, (bytes, bytearray)):
            sock.send(message)
        else:
            sock.send_json(message)
        return json.loads(sock.recv())
    finally:
        sock.close()


def http_get(url, timeout=5, headers=None):
    """Returns (status, body bytes, headers)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def http_request(url, method="POST", body=None, headers=None, timeout=5):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


class Keel:
    """One keeld process."""

    def __init__(self, service="all", config=None, env=None, offset=None, data_dir=None,
                 extra_ports=()):
        self.service = service
        if config is not None and "legacy_ports: true" in str(config):
            extra_ports = tuple(extra_ports) + LEGACY_PORTS
        self.offset = offset if offset is not None else free_offset(extra_ports)
        self.owns_data_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="keel-test-")
        self.config_path = None
        if config is not None:
            self.config_path = os.path.join(self.data_dir, "keel.yaml")
            with open(self.config_path, "w") as f:
                f.write(config if isinstance(config, str) else json.dumps(config))
        self.env = dict(os.environ)
        self.env.update({"PORT_OFFSET": str(self.offset), "KEEL_DATA_DIR": self.data_dir})
        self.env.setdefault("KEEL_NVML_LIB", os.path.join(self.data_dir, "no-nvml.so"))
        if env:
            self.env.update(env)
        self.proc = None
        self.stderr_path = os.path.join(self.data_dir, "keeld.stderr")

    # -- addresses ---------------------------------------------------------
    def port(self, base):
        return base + self.offset

    def endpoint(self, base):
        return "tcp://127.0.0.1:%d" % (base + self.offset)

    def zmq(self, name):
        return self.endpoint(PORTS[name][0])

    def http(self, name, path="/health"):
        return "http://127.0.0.1:%d%s" % (PORTS[name][1] + self.offset, path)

    def request(self, name_or_port, message, timeout_ms=5000):
        endpoint = (self.zmq(name_or_port) if isinstance(name_or_port, str)
                    else self.endpoint(name_or_port))
        return zmq_request(endpoint, message, timeout_ms)

    def services(self):
        return list(PORTS) if self.service == "all" else [self.service]

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout=15):
        args = [KEELD, self.service]
        if self.config_path:
            args += ["--config", self.config_path]
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(args, env=self.env, stdout=self.stderr, stderr=self.stderr,
                                     cwd=self.data_dir)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=15):
        deadline = time.time() + timeout
        pending = set(self.services())
        while pending and time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("keeld exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
            for name in list(pending):
                try:
                    status, _, _ = http_get(self.http(name), timeout=1)
                    if status == 200:
                        pending.discard(name)
                except (OSError, urllib.error.URLError):
                    pass
            if pending:
                time.sleep(0.05)
        if pending:
            raise RuntimeError("not healthy in %ss: %s\n%s" % (timeout, pending, self.log_tail()))

    def log_tail(self, n=40):
        try:
            with open(self.stderr_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops the process; returns its exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout=15):
        self.stop()
        return self.start(timeout)

    def keelctl(self, *args, input=None, timeout=30):
        return subprocess.run([KEELCTL, "--port-offset", str(self.offset)] + list(args),
                              env=self.env, input=input, capture_output=True, timeout=timeout,
                              text=True, cwd=self.data_dir)

    def cleanup(self):
        try:
            self.stop()
        finally:
            if getattr(self, "stderr", None):
                self.stderr.close()
            if self.owns_data_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture
def keel_factory():
    started = []

    def start(service="all", config=None, env=None, **kwargs):
        k = Keel(service, config, env, **kwargs)
        started.append(k)
        return k.start()

    yield start
    for k in reversed(started):
        k.cleanup()


@pytest.fixture
def keel(keel_factory):
    return keel_factory("all")
