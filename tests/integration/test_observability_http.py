"""ObservabilityHub's HTTP routes on 8002 (the prior hub's, OH-45..OH-58):
pushed health and its summary, alert rules and history, anomalies, system
metrics as JSON.  Mutating routes need an admin bearer token.  OH-n ids."""
import json
import time

import pytest

from conftest import http_get, http_request
from observability_util import hub_config, wait_until, write_jwt_keys


@pytest.fixture
def hub(keel_factory, tmp_path):
    token = write_jwt_keys(str(tmp_path / "jwt.keys"))
    cfg = hub_config(metrics={"collection_interval_ms": 100}, stale_after_s=1, stale_check_ms=200,
                     top={"security": {"jwt_keys_file": str(tmp_path / "jwt.keys")}})
    k = keel_factory("observability", config=cfg)
    k.token = token
    k.admin_token = lambda: token     # the configured key file, not the data directory's
    return k


def post(hub, path, body, token=True):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + hub.token
    status, data, _ = http_request(hub.http("observability", path), body=body, headers=headers)
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data


def get(hub, path):
    status, data, _ = http_get(hub.http("observability", path))
    return status, json.loads(data)


# Proves OH-45 (docs/logic-preservation.md).
def test_oh45_update_agent_health_needs_auth_and_stores(hub):
    status, _ = post(hub, "/update_agent_health", {"agent_name": "A", "status": "healthy"}, token=False)
    assert status in (401, 403)
    status, r = post(hub, "/update_agent_health", {"agent_name": "A", "status": "healthy",
                                                   "location": "PC2", "details": {"x": 1}})
    assert status == 200 and r == {"status": "success", "message": "Updated health for A"}
    status, s = get(hub, "/health_summary")
    assert status == 200 and s["agents_by_location"]["PC2"][0]["name"] == "A"
    assert s["agents_by_location"]["PC2"][0]["last_seen"].endswith("Z")


def test_update_agent_health_bad_input(hub):
    assert post(hub, "/update_agent_health", {"status": "healthy"})[0] == 400
    assert post(hub, "/update_agent_health", b"{nope")[0] == 400
    assert post(hub, "/update_agent_health", {"agent_name": "A", "status": "ok", "details": "x"})[0] == 400


# Proves OH-46, OH-47 (docs/logic-preservation.md).
def test_oh46_oh47_oh48_summary_stale_and_unknown_location(hub):
    post(hub, "/update_agent_health", {"agent_name": "Old", "status": "healthy", "location": "MainPC"})
    post(hub, "/update_agent_health", {"agent_name": "Odd", "status": "warning", "location": "Mars"})
    status, s = get(hub, "/health_summary")
    assert status == 200
    assert s["overall_status"] == "warning"
    assert [a["name"] for a in s["agents_by_location"]["Unknown"]] == ["Odd"], "OH-48"
    assert s["total_agents"] == 2 and s["agent_counts"]["warning"] == 1
    time.sleep(1.5)    # stale_after_s is 1 here (300 by default)
    s = wait_until(lambda: (lambda s: s if s["agent_counts"]["unknown"] >= 2 else None)(get(hub, "/health_summary")[1]))
    assert "Old" in s["stale_agents"]
    assert [a["status"] for a in s["agents_by_location"]["MainPC"]] == ["unknown"]
    post(hub, "/update_agent_health", {"agent_name": "Odd", "status": "critical"})
    assert get(hub, "/health_summary")[1]["overall_status"] == "critical"


def test_oh47_overall_degraded_and_healthy(hub):
    assert get(hub, "/health_summary")[1]["overall_status"] == "healthy"
    post(hub, "/update_agent_health", {"agent_name": "U", "status": "unknown"})
    assert get(hub, "/health_summary")[1]["overall_status"] == "degraded"


# Proves OH-50, OH-51, OH-52 (docs/logic-preservation.md).
def test_oh49_oh50_oh51_oh52_alert_rules_fire_and_clear(hub):
    status, alerts = get(hub, "/alerts")
    assert status == 200 and set(alerts) == {"active_alerts", "alert_history"}
    for bad in ({"metric_name": "cpu_percent", "condition": "gt", "threshold": 1},
                {"rule_id": "r", "metric_name": "m", "condition": "between", "threshold": 1},
                {"rule_id": "r", "metric_name": "m", "condition": "gt", "threshold": "high"}):
        assert post(hub, "/add_alert_rule", bad)[0] == 400
    status, r = post(hub, "/add_alert_rule", {"rule_id": "always", "metric_name": "memory_percent",
                                              "condition": "gt", "threshold": 0, "severity": "critical"})
    assert status == 200 and r == {"status": "success", "rule_id": "always"}
    active = wait_until(lambda: [a for a in get(hub, "/alerts")[1]["active_alerts"] if a["rule_id"] == "always"])
    a = active[0]
    assert set(a) >= {"rule_id", "metric_name", "metric_value", "threshold", "severity", "timestamp", "source"}
    assert a["metric_name"] == "memory_percent" and a["metric_value"] > 0 and a["severity"] == "critical"
    # lt 0 never holds: replacing the rule clears the alert
    post(hub, "/add_alert_rule", {"rule_id": "always", "metric_name": "memory_percent",
                                  "condition": "lt", "threshold": 0})
    assert wait_until(lambda: not [a for a in get(hub, "/alerts")[1]["active_alerts"] if a["rule_id"] == "always"])
    history = get(hub, "/alerts")[1]["alert_history"]
    assert [h["state"] for h in history if h["rule_id"] == "always"] == ["firing", "resolved"]
    assert len(history) <= 50


def test_alert_history_and_rules_survive_kill9(hub):
    """Alerts can be acknowledged (Alertmanager's lesson); all of it survives kill -9."""
    post(hub, "/add_alert_rule", {"rule_id": "mem", "metric_name": "memory_percent", "condition": "gt",
                                  "threshold": 0})
    wait_until(lambda: get(hub, "/alerts")[1]["active_alerts"])
    assert post(hub, "/acknowledge_alert", {"rule_id": "nope", "metric_name": "memory_percent"})[0] == 404
    status, r = post(hub, "/acknowledge_alert", {"rule_id": "mem", "metric_name": "memory_percent"})
    assert status == 200 and r == {"status": "success", "alert": "mem_memory_percent"}
    hub.kill9()
    hub.start()
    alerts = get(hub, "/alerts")[1]
    assert any(h["rule_id"] == "mem" and h["state"] == "firing" for h in alerts["alert_history"])
    assert any(a["rule_id"] == "mem" and a["acknowledged"] for a in alerts["active_alerts"])
    assert [h["state"] for h in alerts["alert_history"] if h["rule_id"] == "mem"] == ["firing", "acknowledged"]


# Proves OH-49 (docs/logic-preservation.md).
def test_oh49_default_rules_exist(hub):
    status, rules = get(hub, "/alert_rules")
    assert status == 200
    got = {k: (r["metric_name"], r["condition"], r["threshold"], r["severity"], r["enabled"])
           for k, r in rules["rules"].items()}
    assert got == {"cpu_high": ("cpu_percent", "gt", 90, "critical", True),
                   "memory_high": ("memory_percent", "gt", 85, "warning", True),
                   "disk_full": ("disk_percent", "gt", 95, "critical", True)}


# Proves OH-57, OH-58 (docs/logic-preservation.md).
def test_oh57_oh58_oh59_metrics_json(hub):
    m = wait_until(lambda: (lambda m: m if "disk_percent" in m["metrics"] else None)(get(hub, "/metrics.json")[1]))
    assert set(m) == {"status", "metrics", "collection_time"}
    for name in ("cpu_percent", "memory_percent", "memory_available_gb", "disk_percent"):
        entry = m["metrics"][name]
        assert set(entry) == {"value", "timestamp", "source", "tags"}
        assert entry["source"] == "system" and entry["tags"] == {"type": "system"}
    assert 0 < m["metrics"]["memory_available_gb"]["value"] < 1e4
    assert not any(k.startswith("gpu") for k in m["metrics"]), "OH-59: no GPU, no constants"


# Proves OH-56 (docs/logic-preservation.md).
def test_oh56_anomalies_route(hub):
    status, a = get(hub, "/anomalies")
    assert status == 200 and isinstance(a["anomalies"], list)


def test_performance_metrics_route(hub):
    hub.admin("observability", {"action": "log_metric", "service": "tts", "metric_type": "response_time",
                                  "value": 0.5})
    status, r = get(hub, "/performance_metrics/tts")
    assert status == 200 and r["metrics"]["response_time"]["current"] == 0.5


def test_trigger_recovery_route_auth_and_bad_input(hub):
    assert post(hub, "/trigger_recovery", {"agent_name": "A"}, token=False)[0] in (401, 403)
    assert post(hub, "/trigger_recovery", b"[1]")[0] == 400
    status, r = post(hub, "/trigger_recovery", {"strategy": "tier1"})
    assert status == 400 and r["message"] == "Missing agent_name"
    status, r = post(hub, "/trigger_recovery", {"agent_name": "A", "strategy": "tier9"})
    assert status == 400 and r["message"] == "strategy must be tier1..tier4"
    assert post(hub, "/acknowledge_alert", {"rule_id": 5})[0] == 400
