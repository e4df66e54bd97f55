"""ObservabilityHub on 7002/8002: the wire contract, action collisions (OH-8,
OH-24), bad input on every action, and PHM discovery.  OH-n ids in names.
Requests go with an administrator's token, as most of the hub's writes need
one (no kept agent sends them): who may call what is test_privileges.py's
subject."""
import json
import time

import pytest
import zmq

from conftest import http_get
from observability_util import hub_config

ALL_ACTIONS = ["log_metric", "get_metrics", "get_alerts", "get_performance_health",
               "log_resource_usage", "get_agent_metrics", "get_agent_resource_usage",
               "get_agents_health", "get_services_health", "get_system_health", "get_status",
               "get_system_status", "get_health_events", "trigger_recovery"]


@pytest.fixture
def hub(keel_factory):
    return keel_factory("observability", config=hub_config())


def req(hub, msg, timeout_ms=5000):
    return hub.admin("observability", msg, timeout_ms)


# Proves OH-1, OH-7 (docs/logic-preservation.md).
def test_oh1_oh7_health_actions_answer_ok_with_uptime(hub):
    for action in ("health_check", "health", "ping"):
        r = req(hub, {"action": action})
        assert r["status"] == "ok", r
        assert r["uptime"] >= 0 and "timestamp" in r
        assert not r["timestamp"].endswith("Z")
        assert r["agent_specific_metrics"]["optimization_thread_alive"] is True
        assert r["agent_specific_metrics"]["model_loaded"] is False


# Proves OH-2, OH-3 (docs/logic-preservation.md).
def test_oh2_oh3_http_health_is_healthy_with_unified_services(hub):
    status, body, _ = http_get(hub.http("observability", "/health"))
    assert status == 200
    d = json.loads(body)
    assert d["status"] == "healthy" and d["service"] == "ObservabilityHub"
    assert d["timestamp"].endswith("Z") and d["uptime"] >= 0
    assert d["unified_services"] == {"health": True, "performance": True, "prediction": True}


# Proves OH-4 (docs/logic-preservation.md).
def test_oh4_invalid_json_gets_error_and_socket_stays_usable(hub):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.RCVTIMEO, 3000)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(hub.zmq("observability"))
    try:
        s.send(b"{not json")
        assert json.loads(s.recv()) == {"status": "error", "error": "Invalid JSON request"}
        s.send_json({"action": "ping"})
        assert json.loads(s.recv())["status"] == "ok"
    finally:
        s.close()


# Proves OH-6 (docs/logic-preservation.md).
def test_oh5_oh6_unknown_action_uses_message_key(hub):
    assert req(hub, {"action": "frobnicate"}) == {"status": "error", "message": "Unknown action: frobnicate"}
    assert req(hub, {"action": None}) == {"status": "error", "message": "Unknown action: None"}
    assert req(hub, {"foo": 1}) == {"status": "error", "message": "Unknown action: None"}


# Proves OH-31 (docs/logic-preservation.md).
def test_oh31_non_object_json_is_refused(hub):
    r = req(hub, b"[1,2,3]")
    assert r["status"] == "error" and "Invalid request format" in r["error"]


def test_oversized_frame_is_refused_and_counted(hub):
    r = req(hub, b'{"action":"log_metric","x":"' + b"a" * (1 << 20) + b'"}')
    assert r == {"status": "error", "error": "Request too large"}
    _, body, _ = http_get(hub.http("observability", "/metrics"))
    assert b'keel_bad_requests_total{service="observability",reason="too_large"} 1' in body


@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_bad_input_on_every_action_gets_one_clear_reply(hub, action):
    """OH-5: wrong types never crash the hub or wedge the socket."""
    for junk in ({"service": 5, "metric_type": [], "value": "x"}, {"metric": "str"},
                 {"usage": 7}, {"agent": {"a": 1}, "start_time": None}, {"agent_name": 42,
                 "strategy": "tier9", "limit": "x"}):
        msg = dict(junk, action=action)
        r = req(hub, msg, timeout_ms=8000)
        assert isinstance(r, dict) and "status" in r, (action, r)
    assert req(hub, {"action": "ping"})["status"] == "ok"


# Proves OH-8 (docs/logic-preservation.md).
def test_oh8_log_metric_collision_routes_by_schema(hub):
    """OH-8, OH-24: `metric` object → PerformanceLogger; service/metric_type → PerformanceMonitor."""
    r = req(hub, {"action": "log_metric", "service": "svc", "metric_type": "response_time", "value": 0.5})
    assert r == {"status": "success", "message": "Metric logged"}
    r = req(hub, {"action": "log_metric", "metric": {"agent": "a", "action": "x", "duration": 1.5,
                                                    "timestamp": "2025-07-16T10:00:00", "metadata": {}}})
    assert r == {"status": "success"}
    r = req(hub, {"action": "log_metric"})
    assert r == {"status": "error", "message": "Missing required parameters"}


# Proves OH-40 (docs/logic-preservation.md).
def test_oh40_get_status_shape(hub):
    r = req(hub, {"action": "get_status"})
    assert r["status"] == "success" and r["agent_status"] == {} and "timestamp" in r


# Proves OH-38, OH-39 (docs/logic-preservation.md).
def test_oh38_oh39_empty_fleet_is_healthy(hub):
    assert req(hub, {"action": "get_agents_health"}) == {"status": "ok", "agents": {}}
    assert req(hub, {"action": "get_services_health"}) == {"status": "ok", "services": {}}
    r = req(hub, {"action": "get_system_health"})
    assert r["status"] == "ok"
    assert r["system"]["overall_status"] == "healthy"
    assert set(r["system"]) >= {"timestamp", "agents", "services", "overall_status"}


# Proves OH-71, OH-72, OH-73 (docs/logic-preservation.md).
def test_oh71_oh72_oh73_discovery_request_type(hub):
    r = req(hub, {"request_type": "register", "machine_id": "pc2", "agent_name": "A"})
    assert r == {"status": "success", "message": "Registered agent A on machine pc2"}
    assert req(hub, {"request_type": "heartbeat", "machine_id": "pc2", "agent_name": "B"}) == {"status": "success"}
    st = req(hub, {"request_type": "get_status"})
    assert st["status"] == "success"
    assert set(st["agents"]) == {"pc2/A", "pc2/B"}
    assert st["agents"]["pc2/A"]["status"] == "running"
    r = req(hub, {"request_type": "unregister", "machine_id": "pc2", "agent_name": "A"})
    assert r == {"status": "success", "message": "Unregistered agent A on machine pc2"}
    assert set(req(hub, {"request_type": "get_status"})["agents"]) == {"pc2/B"}
    assert req(hub, {"request_type": "register", "agent_name": "A"}) == \
        {"status": "error", "error": "Missing machine_id or agent_name"}
    assert req(hub, {"request_type": "explode"}) == {"status": "error", "error": "Unknown request type: explode"}


# Proves OH-77 (docs/logic-preservation.md).
def test_oh77_health_requests_are_fast_even_while_busy(hub):
    started = time.time()
    for _ in range(20):
        assert req(hub, {"action": "health"})["status"] == "ok"
    assert (time.time() - started) / 20 < 0.2


LEGACY = {"PerformanceMonitor": 7103, "HealthMonitor": 7114, "PerformanceLoggerAgent": 7128,
          "SystemHealthManager": 7117, "PredictiveHealthMonitor": 5613}


def test_legacy_ports_serve_each_agents_routes(keel_factory):
    """DESIGN legacy_ports: each absorbed agent answers on its old port."""
    hub = keel_factory("observability", config=hub_config(top={"legacy_ports": True}),
                       extra_ports=tuple(LEGACY.values()) + (5619, 5620, 6584))
    r = hub.admin(7103, {"action": "log_metric", "service": "s", "metric_type": "request", "value": 1})
    assert r == {"status": "success", "message": "Metric logged"}
    assert hub.request(7103, {"action": "get_metrics", "service": "s"})["status"] == "success"
    assert hub.request(7114, {"action": "get_status"})["status"] == "success"
    r = hub.request(7128, {"action": "get_agent_metrics", "agent": "a", "start_time": "2025-01-01T00:00:00",
                           "end_time": "2025-01-02T00:00:00"})
    assert r == {"status": "success", "metrics": []}
    for port in LEGACY.values():
        assert hub.request(port, {"action": "health_check"})["status"] == "ok"
    assert hub.request(7114, {"action": "get_agent_metrics"})["status"] == "error"


def test_module_delegation_forwards_to_the_legacy_agent(keel_factory):
    from observability_util import StandInAgent
    legacy = StandInAgent("success")
    try:
        cfg = hub_config(top={"modules": {"PerformanceLoggerAgent": {
            "mode": "delegate", "delegate_to": "tcp://127.0.0.1:%d" % legacy.port}}})
        hub = keel_factory("observability", config=cfg)
        r = req(hub, {"action": "get_agent_metrics", "agent": "a", "start_time": "x", "end_time": "y"})
        assert r == {"status": "success"}
        assert legacy.count(lambda m: m.get("action") == "get_agent_metrics") == 1
        assert req(hub, {"action": "get_metrics", "service": "a"})["metrics"]["error_rate"] == 0.0
    finally:
        legacy.stop()
