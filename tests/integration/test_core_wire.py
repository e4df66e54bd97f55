"""CoreOrchestrator transport and envelope (CO-1..CO-11,
CO-70..CO-73): one JSON reply per frame, the BaseAgent error texts, health on
ZMQ and HTTP, ErrorBus frames, fast failure on a taken port, clean SIGTERM."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest
import zmq

from conftest import KEELD, Keel, command, free_offset, http_get, scaled

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z?$")
HEALTH_KEYS = {"status", "ready", "initialized", "message", "timestamp", "uptime", "active_threads"}


@pytest.fixture(scope="module")
def core():
    k = Keel("core", config="metrics_source: mock\n")
    k.start()
    yield k
    k.cleanup()


def test_co1_every_frame_gets_exactly_one_reply(core):
    """CO-1: garbage of every kind is answered, and the socket keeps serving."""
    frames = [b"", b"\x00\x01", b"{", b"[]", b"null", b"42", b'"x"', b"{\"action\": 5}",
              b"{\"action\": null}", b"{\"command\": 7}", b"{\"type\": []}", b"x" * 2000,
              json.dumps({"action": "register_agent", "registration_data": {"agent_id": {"deep": [1] * 50}}}).encode()]
    for frame in frames:
        reply = core.request("core", frame)
        assert isinstance(reply, dict) and "status" in reply, frame
    assert core.request("core", {"action": "ping"})["status"] == "ok"


def test_co1_oversized_frame_is_refused(core):
    """CO-1: a frame over 1 MiB gets the pinned 'Request too large' reply."""
    reply = core.request("core", b"{\"action\":\"ping\",\"pad\":\"" + b"a" * (1 << 20) + b"\"}")
    assert reply == {"status": "error", "error": "Request too large"}


def test_co2_non_json(core):
    """CO-2"""
    assert core.request("core", b"hello there") == {"status": "error", "error": "Invalid JSON request"}


def test_co3_bad_utf8(core):
    """CO-3"""
    assert core.request("core", b"\xff\xfe{}") == {"status": "error", "error": "Invalid UTF-8 request"}


@pytest.mark.parametrize("frame", [b"[1,2]", b'"x"', b"3.5", b"true"])
def test_co4_not_an_object(core, frame):
    """CO-4"""
    assert core.request("core", frame) == {"status": "error", "error": "Invalid request format"}


def test_co5_unknown_action(core):
    """CO-5"""
    assert core.request("core", {"action": "foo"}) == {"status": "error", "error": "Unknown action: foo"}
    assert core.request("core", {}) == {"status": "error", "error": "Unknown action: None"}
    assert core.request("core", {"action": None}) == {"status": "error", "error": "Unknown action: None"}


def test_co6_envelope_keys_are_ignored(core):
    """CO-6: source_agent/request_id/timestamp change nothing."""
    env = {"source_agent": "X", "request_id": "r-1", "timestamp": "2025-07-16T10:00:00"}
    base = {"action": "register_agent", "agent_id": "EnvA", "agent_type": "t", "host": "h", "port": 1}
    assert core.request("core", dict(base, **env)) == core.request("core", base) == {"status": "success"}
    a = core.request("core", {"action": "get_agent_endpoint", "agent_name": "EnvA"})
    b = core.request("core", dict({"action": "get_agent_endpoint", "agent_name": "EnvA"}, **env))
    assert a == b and a["port"] == 1
    sim = {"action": "simulate_load", "load_type": "cpu", "value": 10}
    x, y = core.request("core", sim), core.request("core", dict(sim, **env))
    assert x["projected_cpu_percent"] == y["projected_cpu_percent"] == 35.0


def test_co7_raw_ping_gives_health(core):
    """CO-7"""
    reply = core.request("core", b"ping")
    assert reply["status"] in ("ok", "degraded")
    assert HEALTH_KEYS <= set(reply)


def test_co8_ping_action(core):
    """CO-8: SDT's pong form plus the health keys."""
    reply = core.request("core", {"action": "ping"})
    assert reply["status"] == "ok" and reply["message"] == "pong"
    assert ISO.match(reply["timestamp"])


@pytest.mark.parametrize("action", ["health", "health_check"])
def test_co9_health_actions(core, action):
    """CO-9"""
    reply = core.request("core", {"action": action})
    assert HEALTH_KEYS <= set(reply)
    assert reply["message"] == "CoreOrchestrator is healthy"


def test_co10_http_health(core):
    """CO-10 (and /health carries registry size, queue size and breaker states)."""
    t0 = time.time()
    status, body, headers = http_get(core.http("core", "/health"))
    assert time.time() - t0 < 1.0
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    d = json.loads(body)
    assert HEALTH_KEYS <= set(d)
    assert d["registry_size"] >= 5
    assert d["queue_size"] == 0
    assert d["circuit_breakers"]["ChainOfThoughtAgent"]["state"] == "closed"
    assert set(d["agent_specific_metrics"]) >= {"twin_status", "registered_agents_count", "db_connected"}


def test_co10_metrics_endpoint_counts_bad_input(core):
    """CO-10: /metrics is Prometheus text and counts bad frames."""
    core.request("core", b"not json")
    status, body, _ = http_get(core.http("core", "/metrics"))
    text = body.decode()
    assert status == 200
    assert re.search(r'keel_bad_requests_total\{[^}]*reason="invalid_json"[^}]*\} [1-9]', text)
    assert "keel_core_registry_agents" in text


def test_co11_timestamps_are_iso(core):
    """CO-11: every reply timestamp is an ISO string; uptime is a float."""
    h = core.request("core", {"action": "health"})
    assert ISO.match(h["timestamp"]) and isinstance(h["uptime"], float)
    m = core.request("core", {"action": "get_metrics"})
    assert ISO.match(m["metrics"]["timestamps"])
    t = core.admin("core", {"type": "text", "data": "x"})
    assert ISO.match(t["timestamp"])
    e = core.request("core", {"action": "get_agent_endpoint", "agent_name": "CoreOrchestrator"})
    assert ISO.match(e["last_registered"])


def test_co70_errors_reach_the_error_bus():
    """CO-70: errors go out as one frame `ERROR:{json}` to the error bus
    endpoint, and an unreachable bus never blocks a request."""
    offset = free_offset()
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.bind("tcp://127.0.0.1:%d" % (7150 + offset))
    k = Keel("core", config="metrics_source: mock\n", offset=offset)
    k.start()
    try:
        # PUB/SUB joins late: the first reports may go before the link is up
        for _ in range(20):
            reply = k.request("core", {"action": "report_error", "error": {
                "error_id": "e1", "agent_id": "A", "severity": "error", "error_type": "boom", "message": "it broke"}})
            assert reply["status"] == "success"
            if sub.poll(250):
                break
        assert sub.poll(0), "no frame on the error bus"
        frames = sub.recv_multipart()
        assert len(frames) == 1 and frames[0].startswith(b"ERROR:")
        event = json.loads(frames[0][6:])
        assert event["error_type"] == "boom" and event["agent"] == "CoreOrchestrator"
        assert event["details"]["error_id"] == "e1"
    finally:
        sub.close()
        k.cleanup()
    # nothing listens on the bus now: requests are still answered at once
    k2 = Keel("core", config="metrics_source: mock\n")
    k2.start()
    try:
        t0 = time.time()
        for _ in range(5):
            k2.request("core", {"action": "report_error", "error": {
                "error_id": "e", "agent_id": "A", "severity": "info", "error_type": "x", "message": "m"}})
        assert time.time() - t0 < 1.0
    finally:
        k2.cleanup()


@pytest.mark.parametrize("base", [7000, 8000, 5591])
def test_co71_taken_port_fails_fast(base):
    """CO-71: if 7000, 8000 or the suggestion port (+offset) is taken the
    process exits non-zero within ~5 s."""
    offset = free_offset((5591,))
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", base + offset))
    blocker.listen(1)
    k = Keel("core", offset=offset)
    try:
        t0 = time.time()
        proc = subprocess.run(command([KEELD, "core"]), env=k.env, cwd=k.data_dir,
                              capture_output=True, timeout=scaled(10))
        assert proc.returncode != 0
        assert time.time() - t0 < scaled(6)
    finally:
        blocker.close()
        k.cleanup()


def test_co72_slow_downstream_does_not_delay_replies():
    """CO-72: while the dispatcher waits on a silent downstream, registry and
    health requests are still answered at once."""
    k = Keel("core", config="metrics_source: mock\ncore:\n  coordinator: {task_timeout_ms: 3000}\n")
    k.start()
    try:
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        silent.close()
        k.request("core", {"action": "register_agent", "agent_id": "ChainOfThoughtAgent", "agent_type": "cot",
                           "host": "127.0.0.1", "port": port})
        for i in range(3):
            assert k.admin("core", {"type": "text", "data": "q%d" % i})["status"] == "success"
        for _ in range(20):
            t0 = time.time()
            assert k.request("core", {"action": "get_agent_endpoint", "agent_name": "ChainOfThoughtAgent"})["port"] == port
            assert k.request("core", {"action": "health"})["status"] == "ok"
            assert time.time() - t0 < 1.0
    finally:
        k.cleanup()


def test_co73_sigterm_flushes_and_exits_zero():
    """CO-73: SIGTERM stops the loops, writes the coordinator metrics file, exit 0."""
    k = Keel("core", config="metrics_source: mock\n")
    k.start()
    try:
        k.admin("core", {"type": "text", "data": "count me"})
        path = os.path.join(k.data_dir, "core", "request_coordinator_metrics.json")
        rc = k.stop(signal.SIGTERM)
        assert rc == 0, k.log_tail()
        with open(path) as f:
            saved = json.load(f)
        assert saved["requests_total"] >= 1 and saved["requests_by_type"]["text"] >= 1
        assert ISO.match(saved["last_updated"])
    finally:
        k.cleanup()


def test_legacy_ports_serve_the_old_agents():
    """CO-54 with `legacy_ports: true`: the old main ports (7100 ServiceRegistry,
    7120 SystemDigitalTwin, 26002 RequestCoordinator, 7125 UnifiedSystemAgent)
    answer like 7000, and their health ports answer any frame with health."""
    extra = (7100, 7120, 26002, 7125, 8100, 7121, 26003, 8125)
    k = Keel("core", config="metrics_source: mock\nlegacy_ports: true\n", offset=free_offset(extra))
    k.start()
    try:
        sdt = k.request(7120, {"command": "DISCOVER", "payload": {"name": "SystemDigitalTwin"}})
        assert sdt["status"] == "SUCCESS" and sdt["payload"]["port"] == k.port(7000)
        assert k.request(7100, {"action": "register_agent", "agent_id": "Old", "agent_type": "t",
                                "host": "h", "port": 1}) == {"status": "success"}
        assert k.request("core", {"action": "get_agent_endpoint", "agent_name": "Old"})["port"] == 1
        assert k.admin(26002, {"type": "text", "data": "hi"})["message"] == "Text request queued"
        assert k.request(7125, {"action": "get_system_info"})["status"] == "success"
        for port in (8100, 7121, 26003, 8125):
            for frame in (b"anything", {"action": "whatever"}):
                assert HEALTH_KEYS <= set(k.request(port, frame))
    finally:
        k.cleanup()


def test_delegation_mode_forwards_to_the_legacy_agent():
    """Delegation (docs/wire-protocol.md) (CO-6 envelope passes through): with
    modules.SystemDigitalTwin.mode delegate, its requests go to the legacy
    agent and come back unchanged, the registry stays local, and a dead
    legacy agent gets a clear error and then an open breaker."""
    import threading
    ctx = zmq.Context.instance()
    legacy = ctx.socket(zmq.REP)
    legacy.setsockopt(zmq.LINGER, 0)
    port = legacy.bind_to_random_port("tcp://127.0.0.1")
    got = []
    running = [True]

    def serve():
        while running[0]:
            if legacy.poll(50):
                msg = json.loads(legacy.recv())
                got.append(msg)
                legacy.send_json({"status": "success", "from": "legacy-sdt"})
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    cfg = ("metrics_source: mock\nmodules:\n  SystemDigitalTwin: {mode: delegate, delegate_to: \"tcp://127.0.0.1:%d\","
           " timeout_ms: 300}\n" % port)
    k = Keel("core", config=cfg)
    k.start()
    try:
        assert k.request("core", {"action": "get_metrics", "request_id": "r1"}) == {
            "status": "success", "from": "legacy-sdt"}
        assert got[-1] == {"action": "get_metrics", "request_id": "r1"}
        assert k.request("core", {"command": "DISCOVER", "payload": {"name": "X"}})["from"] == "legacy-sdt"
        assert k.request("core", {"action": "register_agent", "agent_name": "B", "status": "OK"})["from"] == "legacy-sdt"
        assert k.request("core", {"action": "register_agent", "agent_id": "A", "agent_type": "t", "host": "h",
                                  "port": 1}) == {"status": "success"}
        assert k.request("core", {"action": "get_agent_endpoint", "agent_name": "A"})["port"] == 1
        h = k.request("core", {"action": "health"})
        assert h["delegated"]["SystemDigitalTwin"]["breaker"] == "CLOSED"
        running[0] = False
        t.join()
        legacy.close()
        for _ in range(3):
            r = k.request("core", {"action": "get_metrics"})
            assert r["status"] == "error" and "Delegate for SystemDigitalTwin unavailable" in r["error"]
        t0 = time.time()
        r = k.request("core", {"action": "get_metrics"})
        assert "circuit open" in r["error"] and time.time() - t0 < 0.2
        assert k.request("core", {"action": "list_agents"})["status"] == "success"
    finally:
        running[0] = False
        k.cleanup()


ACTIONS = ["ping", "health", "health_check", "register_agent", "get_agent_endpoint", "list_agents",
           "unregister_agent", "heartbeat", "describe_agents", "watch_registry", "get_metrics", "get_history",
           "get_all_agents", "get_registered_agents", "get_agent_info", "get_ok_agents", "simulate_load",
           "update_vram_metrics", "publish_event", "report_error", "get_agent_status", "get_system_info",
           "start_agent", "stop_agent", "restart_agent", "start_service", "stop_service", "restart_service",
           "list_services", "get_service_status", "cleanup_system"]
WEIRD = [None, 0, -1, 1.5, True, "", "x" * 5000, [], [1, [2, [3]]], {}, {"a": {"b": None}}, "\u00e9\u4e2d"]
FIELDS = ["agent_name", "agent_id", "agent", "name", "status", "location", "registration_data", "agent_type",
          "host", "port", "health_check_port", "capabilities", "metadata", "load_type", "value", "payload",
          "event", "error", "service_name", "since", "epoch"]


@pytest.mark.parametrize("action", ACTIONS)
def test_bad_input_on_every_action(core, action):
    """CO-1, CO-6: every action, fed every field with wrong types, answers one
    JSON object with a status and the service keeps serving (with an
    administrator's token, so that the handlers of admin routes see the input)."""
    for i, weird in enumerate(WEIRD):
        body = {"action": action}
        for j, field in enumerate(FIELDS):
            body[field] = WEIRD[(i + j) % len(WEIRD)]
        reply = core.admin("core", body)
        assert isinstance(reply, dict) and "status" in reply, (action, weird)
    for verb in ("REGISTER", "DISCOVER", "REPORT_MODEL_VRAM", "GET_METRICS"):
        for weird in WEIRD:
            reply = core.request("core", {"command": verb, "payload": weird})
            assert reply["status"] in ("SUCCESS", "ERROR", "NOT_FOUND")
    for weird in WEIRD:
        assert core.admin("core", {"type": "text", "data": weird, "metadata": weird})["status"] in ("success", "error")
    assert core.request("core", {"action": "health"})["status"] == "ok"
