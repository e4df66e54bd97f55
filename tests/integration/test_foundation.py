"""The runtime's contract, which every Keel service keeps whatever its own
actions are (issue 2, deliverable 4): the ten endpoints healthy, bad input
answered with an error and survived, a clean SIGTERM, valid /metrics,
`keelctl status`, and keeld's refusals of a bad configuration or service.

Services are filled in concurrently by their own issues, so these tests
check only what src/common/ guarantees: transport errors are decided before
any handler runs; an unknown action may be worded by the service (the
spec's "error" or "message" key) but must name the action."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import zmq

from conftest import KEELD, PORTS, command, free_offset, http_get, scaled

TITLES = {
    "core": "CoreOrchestrator",
    "resource": "ResourceManager",
    "observability": "ObservabilityHub",
    "errorbus": "ErrorBus",
    "security": "SecurityGateway",
}
PROMTOOL = shutil.which("promtool")


def raw_request(endpoint, frame, timeout_ms=5000):
    """Sends one raw frame on a fresh REQ socket; returns the decoded reply."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    sock.connect(endpoint)
    try:
        sock.send(frame)
        reply = sock.recv()
    finally:
        sock.close()
    return json.loads(reply)


def error_text(reply):
    assert isinstance(reply, dict), reply
    assert str(reply.get("status", "")).lower() == "error", reply
    text = reply.get("error", reply.get("message"))
    assert isinstance(text, str) and text, reply
    return text


def assert_answers(keel, name):
    reply = keel.request(name, {"action": "ping"})
    assert isinstance(reply, dict) and str(reply.get("status", "")).lower() != "error", reply


def test_ten_endpoints_healthy(keel):
    """5 ZMQ ports answer ping/health/health_check; 5 HTTP /health give 200
    with service, version and uptime."""
    for name in PORTS:
        for action in ("ping", "health", "health_check"):
            reply = keel.request(name, {"action": action})
            assert isinstance(reply, dict), reply
            assert str(reply.get("status", "")).lower() not in ("", "error"), (name, action, reply)
        status, body, headers = http_get(keel.http(name, "/health"))
        assert status == 200, (name, body)
        assert headers["Content-Type"].startswith("application/json")
        health = json.loads(body)
        assert health["service"] == TITLES[name]
        assert isinstance(health["version"], str) and health["version"]
        assert isinstance(health["uptime"], float) and 0 <= health["uptime"] < 600


BAD_FRAMES = [
    ("garbage", b"\x00\x01garbage{{", None),
    ("invalid_utf8", b'{"action": "\xff\xfe"}', "Invalid UTF-8 request"),
    ("json_list", b'[{"action": "ping"}]', "Invalid request format"),
    ("too_large", b'{"action":"ping","x":"' + b"a" * (2 * 1024 * 1024) + b'"}', "Request too large"),
]


@pytest.mark.parametrize("kind,frame,expected", BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_bad_frames_get_error_and_service_survives(keel, kind, frame, expected):
    """Every service answers each bad frame with an error reply and keeps serving."""
    for name in PORTS:
        text = error_text(raw_request(keel.zmq(name), frame))
        if expected:
            assert text == expected, (name, kind, text)
        assert_answers(keel, name)


def test_unknown_action_everywhere(keel):
    for name in PORTS:
        text = error_text(keel.request(name, {"action": "no_such_action_xyz"}))
        assert "no_such_action_xyz" in text, (name, text)
        assert_answers(keel, name)
    # The bad input above is counted: no silent drops.
    for name in PORTS:
        _, body, _ = http_get(keel.http(name, "/metrics"))
        assert 'outcome="error"' in body.decode(), name


def test_bad_requests_leave_no_stuck_socket(keel):
    """A burst of bad frames from one REQ socket, reply by reply: the server
    answers every one (a missing reply would leave REQ stuck and time out)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(keel.zmq("core"))
    try:
        for frame in [b"", b"{", b"null", b"5", b'{"action": 5}', b"{}", b"\xc0\xaf"] * 5:
            sock.send(frame)
            error_text(json.loads(sock.recv()))
    finally:
        sock.close()


def test_sigterm_exits_zero_promptly(keel):
    """Every loop is an actor whose stop ends its wait at once (a ticker's
    interval, a runner's poll through its stop descriptor), so no service
    waits out a timeout: issue 17 asks for under 300 ms, measured at 0.03 to
    0.07 s on a busy 2-core machine; the bound leaves room for a busier one."""
    for name in PORTS:
        assert_answers(keel, name)
    started = time.monotonic()
    keel.proc.send_signal(signal.SIGTERM)
    rc = keel.proc.wait(timeout=scaled(5))
    took = time.monotonic() - started
    assert rc == 0, keel.log_tail()
    assert took < scaled(0.6), took


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed")
def test_promtool_accepts_every_metrics_page(keel):
    for name in PORTS:
        keel.request(name, {"action": "ping"})
        keel.request(name, {"action": "nope"})
        raw_request(keel.zmq(name), b"not json")
    for name in PORTS:
        status, body, headers = http_get(keel.http(name, "/metrics"))
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = body.decode()
        assert 'keel_requests_total{service="%s",action="ping",outcome="ok"}' % name in text
        assert "keel_request_duration_seconds_bucket" in text
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                               timeout=30)
        assert check.returncode == 0, (name, check.stdout, check.stderr)


def test_keelctl_status_table_and_json(keel):
    for _ in range(3):
        keel.request("errorbus", {"action": "ping"})
    out = keel.keelctl("status")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split() == ["SERVICE", "STATUS", "PID", "VERSION", "ZMQ", "HTTP", "UPTIME", "REQUESTS"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == set(TITLES.values())
    for name, title in TITLES.items():
        assert rows[title][1] == "ok"
        assert rows[title][2] == str(keel.proc.pid)
        assert rows[title][4] == str(keel.port(PORTS[name][0]))
        assert rows[title][5] == str(keel.port(PORTS[name][1]))

    out = keel.keelctl("--json", "status")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {d["service"] for d in data} == set(TITLES.values())
    for d in data:
        assert d["status"] == "ok"
        assert d["health"]["uptime"] >= 0
        assert d["pid"] == keel.proc.pid
    errorbus = next(d for d in data if d["service"] == "ErrorBus")
    assert errorbus["port"] == keel.port(7003)
    assert errorbus["ports"] == {"zmq": keel.port(7003), "http": keel.port(8003)}
    assert errorbus["health"]["requests"] >= 3


def test_keelctl_status_reports_down_services(keel_factory):
    k = keel_factory("core")
    # The one deadline, stretched for a slowed keeld (valgrind: 3 s).
    out = k.keelctl("--timeout", str(int(scaled(0.3) * 1000)), "--json", "status")
    assert out.returncode == 1
    status = {d["service"]: d["status"] for d in json.loads(out.stdout)}
    assert status["CoreOrchestrator"] == "ok"
    assert status["ErrorBus"] == "down"


def run_keeld(args, tmp_path, timeout=10):
    env = dict(os.environ)
    env.update({"PORT_OFFSET": str(free_offset()), "KEEL_DATA_DIR": str(tmp_path)})
    env.pop("KEEL_CONFIG", None)
    return subprocess.run(command([KEELD] + args), env=env, capture_output=True, text=True,
                          timeout=scaled(timeout), cwd=str(tmp_path))


def test_keeld_bad_config_names_key_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("log_level: info\nsecurity:\n  lockout:\n    failures: lots\n")
    out = run_keeld(["all", "--config", str(path)], tmp_path)
    assert out.returncode != 0
    assert "%s:4: key 'security.lockout.failures': expected integer, got string" % path in out.stderr
    path.write_text("bind: 127.0.0.1\nprot_offset: 3\n")
    out = run_keeld(["core", "--config", str(path)], tmp_path)
    assert out.returncode != 0
    assert "%s:2: unknown key 'prot_offset'" % path in out.stderr


def test_keeld_unknown_service_exits_2(tmp_path):
    out = run_keeld(["bogus"], tmp_path)
    assert out.returncode == 2
    assert "bogus" in out.stderr
    out = run_keeld([], tmp_path)
    assert out.returncode == 2
