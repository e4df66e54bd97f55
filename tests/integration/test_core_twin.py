"""CoreOrchestrator digital twin (CO-25..CO-54):
the agent status table, metrics and history, simulate_load with the exact
limits and reasons, VRAM reports, events and error reports, and the legacy
`command` protocol sharing one store with the registry."""
import json
import re
import time

import pytest

from conftest import FAKE_NVML, Keel

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$")


@pytest.fixture(scope="module")
def core():
    k = Keel("core", config="metrics_source: mock\ncore:\n  twin: {poll_interval_s: 0.1, history_length: 5}\n")
    k.start()
    yield k
    k.cleanup()


def act(k, action, **fields):
    return k.request("core", dict({"action": action}, **fields))


def admin_act(k, action, **fields):
    return k.admin("core", dict({"action": action}, **fields))


# ---- status table ------------------------------------------------------------

def test_co25_own_entry_at_startup(core):
    """CO-25"""
    own = act(core, "get_all_agents")["agents"]["CoreOrchestrator"]
    assert own["location"] == "MainPC" and own["status"] == "HEALTHY" and ISO.match(own["last_seen"])


def test_co26_co27_simple_register(core):
    """CO-26, CO-27: new agent, then an update that keeps the location."""
    assert act(core, "register_agent", agent_name="B", status="HEALTHY") == {
        "status": "success", "message": "Registered new agent B at Unknown with status HEALTHY", "agent": "B"}
    assert act(core, "register_agent", agent_name="B", status="UNHEALTHY") == {
        "status": "success", "message": "Updated B status to UNHEALTHY", "agent": "B"}
    assert act(core, "get_all_agents")["agents"]["B"]["location"] == "Unknown"
    act(core, "register_agent", agent_name="B", status="HEALTHY", location="PC2")
    assert act(core, "get_all_agents")["agents"]["B"]["location"] == "PC2"
    act(core, "register_agent", agent_name="B", status="NO_RESPONSE")
    assert act(core, "get_all_agents")["agents"]["B"]["location"] == "PC2"


@pytest.mark.parametrize("fields,error", [
    ({"status": "HEALTHY"}, "Missing or invalid agent_name parameter"),
    ({"agent_name": 5, "status": "HEALTHY"}, "Missing or invalid agent_name parameter"),
    ({"agent_name": "C"}, "Missing or invalid status parameter"),
    ({"agent_name": "C", "status": 3}, "Missing or invalid status parameter"),
])
def test_co28_simple_register_errors(core, fields, error):
    """CO-28"""
    assert act(core, "register_agent", **fields) == {"status": "error", "error": error}


def test_co29_get_all_agents_shape(core):
    """CO-29"""
    agents = act(core, "get_all_agents")["agents"]
    assert all(set(v) == {"location", "status", "last_seen"} for v in agents.values())


def test_co30_get_registered_agents(core):
    """CO-30: rows with last_updated filled, endpoint fields for registry names."""
    act(core, "register_agent", registration_data={"agent_id": "Both", "agent_type": "t", "host": "h",
                                                    "port": 77, "metadata": {"script_path": "a/b.py"}})
    rows = {r["name"]: r for r in act(core, "get_registered_agents")["agents"]}
    assert rows["Both"]["port"] == 77 and rows["Both"]["script_path"] == "a/b.py"
    assert ISO.match(rows["Both"]["last_updated"])
    # "B" is registered by test_co26 when it ran first on this worker's core.
    assert rows.get("B", {}).get("port") is None


def test_co31_get_ok_agents(core):
    """CO-31: only status.lower() == 'ok' counts."""
    act(core, "register_agent", agent_name="Ok1", status="OK")
    act(core, "register_agent", agent_name="Ok2", status="ok")
    r = act(core, "get_ok_agents")
    assert r["status"] == "success" and set(r["agents"]) == {"Ok1", "Ok2"} and r["count"] == 2


def test_co32_get_agent_info(core):
    """CO-32"""
    assert act(core, "get_agent_info", agent_name="Z") == {"status": "error", "error": "Agent Z not found in registry"}
    info = act(core, "get_agent_info", agent_name="CoreOrchestrator")
    assert info["status"] == "success" and {"location", "status", "last_seen"} <= set(info["agent_info"])
    assert act(core, "get_agent_info", agent_name="")["error"] == "Missing or invalid agent_name parameter"


def test_co33_get_agent_info_with_agent_key(core):
    """CO-33: USA semantics with key `message`."""
    assert act(core, "get_agent_info", agent="Nobody") == {"status": "error", "message": "Unknown agent: Nobody"}


# ---- metrics -------------------------------------------------------------------

def test_co34_co35_get_metrics_mock(core):
    """CO-34, CO-35"""
    m = act(core, "get_metrics")
    assert m["status"] == "success"
    assert m["metrics"]["cpu_usage"] == 25.0 and m["metrics"]["vram_usage_mb"] == 8000.0
    assert m["metrics"]["ram_usage_mb"] == 16000.0 and m["metrics"]["network_latency_ms"] == 50.0
    assert ISO.match(m["metrics"]["timestamps"])


def test_co36_co37_history_bounded_and_aligned(core):
    """CO-36, CO-37: samples at the configured interval, at most history_length."""
    time.sleep(0.8)
    h = act(core, "get_history")["history"]
    lengths = {len(h[k]) for k in ("timestamps", "cpu_usage", "vram_usage_mb", "ram_usage_mb", "network_latency_ms")}
    assert lengths == {5}
    assert all(ISO.match(t) for t in h["timestamps"]) and h["timestamps"] == sorted(h["timestamps"])


def test_co36_default_history_holds_60():
    """CO-36: the default history length is 60 samples."""
    k = Keel("core", config="metrics_source: mock\ncore:\n  twin: {poll_interval_s: 0.05}\n")
    k.start()
    try:
        deadline = time.time() + 8
        while time.time() < deadline:
            n = len(act(k, "get_history")["history"]["timestamps"])
            if n >= 60:
                break
            time.sleep(0.2)
        time.sleep(0.3)
        assert len(act(k, "get_history")["history"]["cpu_usage"]) == 60
    finally:
        k.cleanup()


def test_co34_real_metrics_with_fake_gpu():
    """CO-34 with metrics_source real (the default): /proc and NVML figures."""
    k = Keel("core", config="core:\n  twin: {poll_interval_s: 0.1}\n",
             env={"KEEL_NVML_LIB": FAKE_NVML, "FAKE_NVML_DEVICES": "RTX 4090:24564:3000:10"})
    k.start()
    try:
        time.sleep(0.3)
        m = act(k, "get_metrics")["metrics"]
        assert abs(m["vram_usage_mb"] - 3000.0) < 1.0
        assert m["ram_usage_mb"] > 0 and m["ram_usage_mb"] != 16000.0
        assert 0.0 <= m["cpu_usage"] <= 100.0
        assert act(k, "health")["agent_specific_metrics"]["metrics_source"] == "real"
    finally:
        k.cleanup()


def test_co34_prometheus_queries():
    """CO-34 with core.prometheus_url: the four instant queries, bytes turned
    into MB, and prometheus_connected in health."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from urllib.parse import parse_qs, urlparse
    values = {"node_cpu_utilization": "42.5", "nvidia_gpu_memory_used_bytes": str(2000 * 1048576),
              "node_memory_MemUsed_bytes": str(4096 * 1048576), "network_round_trip_time_milliseconds": "12"}
    asked = []

    class Prom(BaseHTTPRequestHandler):
        def do_GET(self):
            url = urlparse(self.path)
            q = parse_qs(url.query)["query"][0]
            asked.append((url.path, q))
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {}, "value": [1700000000.0, values[q]]}]}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    server = HTTPServer(("127.0.0.1", 0), Prom)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    k = Keel("core", config="core:\n  prometheus_url: \"http://127.0.0.1:%d\"\n  twin: {poll_interval_s: 0.2}\n"
             % server.server_address[1])
    k.start()
    try:
        time.sleep(0.3)
        m = act(k, "get_metrics")["metrics"]
        assert m["cpu_usage"] == 42.5 and m["vram_usage_mb"] == 2000.0
        assert m["ram_usage_mb"] == 4096.0 and m["network_latency_ms"] == 12.0
        assert ("/api/v1/query", "node_cpu_utilization") in asked
        h = act(k, "health")["agent_specific_metrics"]
        assert h["prometheus_connected"] is True and h["metrics_source"] == "prometheus"
    finally:
        k.cleanup()
        server.shutdown()


def test_co34_prometheus_source_falls_back_when_down():
    """CO-34: with prometheus_url set but unreachable, every query falls back
    to its default and requests are still answered."""
    k = Keel("core", config="core:\n  prometheus_url: \"http://127.0.0.1:1\"\n  twin: {poll_interval_s: 0.2}\n")
    k.start()
    try:
        m = act(k, "get_metrics")["metrics"]
        assert m["cpu_usage"] == 0.0 and m["network_latency_ms"] == 50.0
        assert act(k, "health")["agent_specific_metrics"]["prometheus_connected"] is False
    finally:
        k.cleanup()


# ---- simulate_load ------------------------------------------------------------------

def test_co38_vram_deny(core):
    """CO-38"""
    r = act(core, "simulate_load", load_type="vram", value=15000)
    assert r["projected_vram_mb"] == 23000.0 and r["vram_capacity_mb"] == 24000
    assert r["recommendation"] == "deny_insufficient_resources"
    assert r["reason"] == "Projected VRAM (23000.00MB) exceeds 95% of capacity."


def test_co39_vram_threshold_is_strict(core):
    """CO-39"""
    r = act(core, "simulate_load", load_type="vram", value=14800)
    assert r["projected_vram_mb"] == 22800.0 and r["recommendation"] == "proceed" and "reason" not in r


def test_co40_cpu(core):
    """CO-40"""
    r = act(core, "simulate_load", load_type="cpu", value=70)
    assert r["projected_cpu_percent"] == 95.0 and r["recommendation"] == "caution_high_cpu"
    assert r["reason"] == "Projected CPU (95.00%) exceeds 90%."
    assert act(core, "simulate_load", load_type="cpu", value=500)["projected_cpu_percent"] == 100.0


def test_co41_ram(core):
    """CO-41"""
    r = act(core, "simulate_load", load_type="ram", value=12801)
    assert r["projected_ram_mb"] == 28801.0 and r["ram_capacity_mb"] == 32000
    assert r["recommendation"] == "deny_insufficient_resources"
    assert r["reason"] == "Projected RAM (28801.00MB) exceeds 90% of capacity."


def test_co42_unknown_load_type(core):
    """CO-42"""
    r = act(core, "simulate_load", load_type="disk", value=1)
    assert r["status"] == "error" and r["error"] == "Unknown load type: disk"
    assert r["recommendation"] == "error_invalid_request"
    assert {"current_state", "load_type", "requested_value", "timestamp"} <= set(r)


def test_co43_bad_arguments(core):
    """CO-43"""
    assert act(core, "simulate_load", load_type=5, value=1) == {"status": "error", "error": "load_type must be a string"}
    assert act(core, "simulate_load", load_type="cpu", value="abc") == {"status": "error", "error": "value must be a number"}
    assert act(core, "simulate_load", load_type="cpu", value=[1]) == {"status": "error", "error": "value must be a number"}
    assert act(core, "simulate_load", load_type="cpu")["requested_value"] == 0.0
    assert act(core, "simulate_load", load_type="vram", value_mb=999)["requested_value"] == 0.0
    assert act(core, "simulate_load", load_type="cpu", value="12.5")["projected_cpu_percent"] == 37.5


def test_co44_success_keys(core):
    """CO-44"""
    for lt in ("vram", "cpu", "ram"):
        r = act(core, "simulate_load", load_type=lt, value=1)
        assert r["status"] == "success"
        assert {"timestamp", "current_state", "load_type", "requested_value", "recommendation"} <= set(r)
        assert ISO.match(r["timestamp"]) and ISO.match(r["current_state"]["timestamps"])


def test_co45_update_vram_metrics(core):
    """CO-45: the state is visible through the legacy GET_METRICS vram view."""
    r = admin_act(core, "update_vram_metrics", payload={"total_vram_mb": 24000, "total_vram_used_mb": 5000,
                                                  "loaded_models": {"m": {"device": "PC2", "vram_usage_mb": 3000}}})
    assert r == {"status": "success", "message": "VRAM metrics updated successfully"}
    v = core.request("core", {"command": "GET_METRICS", "payload": {"metrics": ["vram_usage"]}})["payload"]
    assert v["mainpc_vram_free_mb"] == 19000 and v["pc2_vram_used_mb"] == 3000 and v["pc2_vram_free_mb"] == 9000
    assert "loaded_models" not in v
    assert admin_act(core, "update_vram_metrics", payload=None)["status"] == "error"
    assert admin_act(core, "update_vram_metrics", payload={"total_vram_mb": "x"})["status"] == "error"
    assert admin_act(core, "update_vram_metrics", payload={"loaded_models": []})["status"] == "error"


# ---- events and errors --------------------------------------------------------------

EVENT = {"event_id": "ev1", "event_type": "t", "source_agent": "S"}
ERROR = {"error_id": "er1", "agent_id": "A", "severity": "warning", "error_type": "x", "message": "m"}


def test_co46_publish_event_errors(core):
    """CO-46"""
    for bad in ({}, {"event": {}}, {"event": None}):
        assert act(core, "publish_event", **bad) == {"status": "error", "error": "Missing required parameter: event"}
    for key in ("event_id", "event_type", "source_agent"):
        ev = dict(EVENT)
        del ev[key]
        r = act(core, "publish_event", event=ev)
        assert r["status"] == "error" and r["error"].startswith("Invalid event data: ") and key in r["error"]
    assert act(core, "publish_event", event=dict(EVENT, ttl="x"))["error"].startswith("Invalid event data: ")
    assert act(core, "publish_event", event="str")["error"].startswith("Invalid event data: ")


def test_co47_publish_event(core):
    """CO-47"""
    assert act(core, "publish_event", event=dict(EVENT, timestamp="2025-07-16T10:00:00")) == {
        "status": "success", "message": "Event ev1 published successfully", "event_id": "ev1"}


def test_co48_report_error_errors(core):
    """CO-48"""
    assert act(core, "report_error") == {"status": "error", "error": "Missing required parameter: error"}
    r = act(core, "report_error", error=dict(ERROR, severity="medium"))
    assert r["status"] == "error" and r["error"].startswith("Invalid error report data: ")


def test_co49_report_error(core):
    """CO-49"""
    assert act(core, "report_error", error=ERROR) == {
        "status": "success", "message": "Error er1 recorded successfully", "error_id": "er1"}


# ---- legacy command protocol ----------------------------------------------------------

def cmd(k, command, payload=None):
    m = {"command": command}
    if payload is not None:
        m["payload"] = payload
    return k.request("core", m)


def test_co50_legacy_register(core):
    """CO-50"""
    assert cmd(core, "REGISTER", {"name": "S", "ip": "10.0.0.2", "port": 5555}) == {
        "status": "SUCCESS", "message": "Service S registered successfully"}


def test_co51_legacy_register_without_name(core):
    """CO-51"""
    for payload in ({"ip": "1.2.3.4"}, None, {"name": 5}):
        assert cmd(core, "REGISTER", payload) == {
            "status": "ERROR", "message": "Missing required field 'name' in registration payload"}


def test_co52_legacy_discover(core):
    """CO-52, and the shared store: a legacy REGISTER is visible to
    get_agent_endpoint, and a modern registration to DISCOVER."""
    cmd(core, "REGISTER", {"name": "S", "ip": "10.0.0.2", "port": 5555})
    assert cmd(core, "DISCOVER", {"name": "S"}) == {
        "status": "SUCCESS", "payload": {"name": "S", "ip": "10.0.0.2", "port": 5555}}
    assert cmd(core, "DISCOVER", {"name": "S2"}) == {"status": "NOT_FOUND", "message": "Service 'S2' not registered"}
    assert cmd(core, "DISCOVER", {}) == {"status": "ERROR", "message": "Missing required field 'name' in discovery payload"}
    ep = act(core, "get_agent_endpoint", agent_name="S")
    assert ep["host"] == "10.0.0.2" and ep["port"] == 5555
    act(core, "register_agent", agent_id="Modern", agent_type="t", host="10.9.9.9", port=6000)
    d = cmd(core, "DISCOVER", {"name": "Modern"})
    assert d["status"] == "SUCCESS" and d["payload"]["ip"] == "10.9.9.9" and d["payload"]["port"] == 6000


def test_co53_report_model_vram(core):
    """CO-53"""
    r = cmd(core, "REPORT_MODEL_VRAM", {"agent_name": "ModelManagerAgent", "total_vram_mb": 24000,
                                        "total_vram_used_mb": 5000, "timestamp": time.time(),
                                        "loaded_models": {"m2": {"device": "PC2", "vram_usage_mb": 3000,
                                                                 "is_active": True, "quantization": "fp16"}}})
    assert r == {"status": "SUCCESS", "message": "VRAM metrics updated successfully"}
    v = cmd(core, "GET_METRICS", {"metrics": ["vram_usage", "cpu_usage"]})["payload"]
    assert v["mainpc_vram_free_mb"] == 19000 and v["pc2_vram_free_mb"] == 9000 and v["cpu_usage"] == 25.0
    assert cmd(core, "GET_METRICS", {"metrics": []})["payload"]["cpu_usage"] == 25.0
    assert cmd(core, "REPORT_MODEL_VRAM", {"loaded_models": "x"})["status"] == "ERROR"


@pytest.mark.parametrize("name", ["SystemDigitalTwin", "CoreOrchestrator", "ServiceRegistry",
                                  "RequestCoordinator", "UnifiedSystemAgent"])
def test_co54_aliases_resolve_to_core(core, name):
    """CO-54: legacy clients looking up the old names land on CoreOrchestrator."""
    d = cmd(core, "DISCOVER", {"name": name})
    assert d["status"] == "SUCCESS" and d["payload"]["ip"] == "127.0.0.1" and d["payload"]["port"] == core.port(7000)
    ep = act(core, "get_agent_endpoint", agent_name=name)
    # health_check_port is where a monitor's ZMQ health_check is answered
    assert ep["port"] == core.port(7000) and ep["health_check_port"] == core.port(7000)


def test_legacy_unknown_command_and_raw_status(core):
    """CO-52: an unknown command gets an UPPERCASE error; raw GET_ALL_STATUS the bare map."""
    assert cmd(core, "EXPLODE") == {"status": "ERROR", "message": "Unknown command: EXPLODE"}
    assert core.request("core", {"command": 5})["status"] == "ERROR"
    bare = core.request("core", b"GET_ALL_STATUS")
    assert bare["CoreOrchestrator"]["status"] == "HEALTHY" and "status" not in bare
