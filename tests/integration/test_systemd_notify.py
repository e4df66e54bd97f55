"""keeld under systemd's Type=notify, without systemd (issue 18): the test binds
the NOTIFY_SOCKET datagram socket itself, as systemd would, and reads what
keeld says on it.  READY=1 comes only once all five services answer /health,
WATCHDOG=1 every half WATCHDOG_USEC while every service loop is alive and not
while one is stuck, STOPPING=1 on SIGTERM; the agents keeld supervises never
inherit the socket."""
import re
import signal
import socket
import threading
import time

import pytest

from conftest import PORTS, free_offset, http_get, not_instrumented, scaled, zmq_request


class NotifySocket:
    """The datagram socket systemd would listen on, with every message kept
    and the monotonic time it arrived."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []
        self.lock = threading.Lock()
        self.on_message = None
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.on_message:
                self.on_message(data)
            with self.lock:
                self.messages.append((time.monotonic(), data))

    def wait_for(self, prefix, timeout):
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            with self.lock:
                for t, m in self.messages:
                    if m.startswith(prefix):
                        return t, m
            time.sleep(0.02)
        raise AssertionError("no %s in %ss; got %r" % (prefix, timeout, self.texts()))

    def texts(self):
        with self.lock:
            return [m for _, m in self.messages]

    def times(self, prefix):
        with self.lock:
            return [t for t, m in self.messages if m.startswith(prefix)]

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    n = NotifySocket(str(tmp_path / "notify"))
    yield n
    n.close()


def test_ready_only_once_every_service_answers_then_watchdog_then_stopping(notify, tmp_path,
                                                                          keel_factory):
    health_at_ready = {}

    def on_message(text):
        # Checked the moment READY=1 arrives: were it sent early, a service
        # still starting would answer 503 or not at all.
        if text.startswith("READY=1") and not health_at_ready:
            for name, (_, http) in PORTS.items():
                try:
                    status, _, _ = http_get("http://127.0.0.1:%d/health" % (http + offset), timeout=2)
                except OSError as e:
                    status = str(e)
                health_at_ready[name] = status

    env_file = tmp_path / "agent-env.txt"
    config = {"core": {"agents": [{"name": "EnvDump", "command": "/bin/sh",
                                   "args": ["-c", "env > %s; exec sleep 60" % env_file]}]}}
    offset = free_offset()
    notify.on_message = on_message
    k = keel_factory("all", config=config, offset=offset,
                     env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"})
    ready_at, ready = notify.wait_for("READY=1", 15)
    assert "STATUS=Running: 5 service(s) ready" in ready
    assert health_at_ready == {name: 200 for name in PORTS}
    assert notify.texts()[0] == ready, "nothing comes before READY=1"
    # WATCHDOG=1 every 0.2 s while running.
    time.sleep(scaled(1.5))
    pings = [t for t in notify.times("WATCHDOG=1") if t > ready_at]
    assert len(pings) >= 4, notify.texts()
    assert max(b - a for a, b in zip(pings, pings[1:])) < scaled(0.6)
    # The supervised agent did not inherit systemd's socket.
    deadline = time.monotonic() + scaled(10)
    while not env_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    env = env_file.read_text()
    assert "PATH=" in env
    assert "NOTIFY_SOCKET" not in env and "WATCHDOG_USEC" not in env
    assert k.stop() == 0
    stopping_at, _ = notify.wait_for("STOPPING=1", 5)
    assert not [t for t in notify.times("WATCHDOG=1") if t > stopping_at]
    assert notify.times("READY=1") == [ready_at]


def test_reload_says_reloading_then_ready(notify, keel_factory):
    k = keel_factory("core", env={"NOTIFY_SOCKET": notify.path})
    notify.wait_for("READY=1", 15)
    k.proc.send_signal(signal.SIGHUP)
    reloading_at, _ = notify.wait_for("RELOADING=1", 10)
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline and not [t for t in notify.times("READY=1") if t > reloading_at]:
        time.sleep(0.02)
    assert [t for t in notify.times("READY=1") if t > reloading_at], notify.texts()
    assert not notify.times("WATCHDOG=1"), "no WATCHDOG_USEC, no watchdog"


@not_instrumented
def test_watchdog_starves_while_a_wire_thread_is_stuck(notify, keel_factory, tmp_path):
    """A request of a module delegated to an agent that never answers holds the
    CoreOrchestrator thread that forwards it (the wire thread, or a worker when
    delegation runs handlers on workers) for the forward's timeout.  With loop_stall_s 1 the watchdog must stop within about
    a second and start again once the thread comes back."""
    silent = socket.socket()                # a port nobody answers ZMQ on
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    config = {"loop_stall_s": 1,
              "modules": {"ServiceRegistry": {"mode": "delegate", "timeout_ms": 4000,
                                              "delegate_to": "tcp://127.0.0.1:%d" % port}}}
    k = keel_factory("core", config=config,
                     env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"})
    notify.wait_for("READY=1", 15)
    deadline = time.monotonic() + scaled(10)
    while len(notify.times("WATCHDOG=1")) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    sent = time.monotonic()
    reply = zmq_request(k.zmq("core"), {"action": "list_agents"}, timeout_ms=8000)
    back = time.monotonic()
    silent.close()
    assert reply["status"] == "error"       # the forward failed; no fallback configured
    assert back - sent > 3.5
    deadline = time.monotonic() + scaled(5)
    while not [t for t in notify.times("WATCHDOG=1") if t > back] and time.monotonic() < deadline:
        time.sleep(0.02)
    pings = notify.times("WATCHDOG=1")
    during = [t for t in pings if sent + 1.5 < t < back - 0.2]
    assert not during, "the watchdog was fed while the wire thread was stuck"
    assert len([t for t in pings if t < sent]) >= 3, "fed before the stall"
    assert [t for t in pings if t > back], "fed again once the thread came back"
    log = k.log_tail(200)
    assert re.search(r"core wire (thread|worker \d+) \(quiet for [\d.]+ s\) has stalled", log), log
    assert "every service loop is running again" in log
