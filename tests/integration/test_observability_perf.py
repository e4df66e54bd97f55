"""PerformanceMonitor and PerformanceLoggerAgent on 7002 (OH-8..OH-30), with
persistence across kill -9.  OH-n ids in names.  The hub's writes other than
log_metric need an administrator's token (no kept agent sends them), so
requests go with one: who may call what is test_privileges.py's subject."""
import datetime
import json
import sqlite3
import time

import pytest
import zmq

from observability_util import hub_config, wait_until


@pytest.fixture
def hub(keel_factory):
    return keel_factory("observability", config=hub_config())


def req(hub, msg):
    return hub.admin("observability", msg)


def log(hub, service, mtype, value):
    return req(hub, {"action": "log_metric", "service": service, "metric_type": mtype, "value": value})


# Proves OH-8, OH-9 (docs/logic-preservation.md).
def test_oh8_oh9_log_metric_required_parameters(hub):
    assert log(hub, "s", "response_time", 0) == {"status": "success", "message": "Metric logged"}
    missing = {"status": "error", "message": "Missing required parameters"}
    assert req(hub, {"action": "log_metric", "service": "s", "metric_type": "error"}) == missing
    assert req(hub, {"action": "log_metric", "service": "s", "metric_type": "error", "value": None}) == missing
    assert req(hub, {"action": "log_metric", "metric_type": "error", "value": 1}) == missing


# Proves OH-10, OH-12, OH-15 (docs/logic-preservation.md).
def test_oh10_oh12_oh15_formulas(hub):
    for v in range(1, 16):
        log(hub, "svc", "response_time", v)
        log(hub, "svc", "queue_size", v * 10)
    log(hub, "svc", "bogus_type", 99)
    m = req(hub, {"action": "get_metrics", "service": "svc"})["metrics"]
    assert m["response_time"]["current"] == pytest.approx(sum(range(6, 16)) / 10)
    assert m["response_time"]["average"] == pytest.approx(8.0)
    assert m["queue_size"] == pytest.approx(sum(range(6, 16)) * 10 / 10)


# Proves OH-13 (docs/logic-preservation.md).
def test_oh13_error_rate_without_requests_can_exceed_one(hub):
    for _ in range(3):
        log(hub, "e", "error", 1)
    assert req(hub, {"action": "get_metrics", "service": "e"})["metrics"]["error_rate"] == 3.0
    for _ in range(4):
        log(hub, "e", "request", 1)
    assert req(hub, {"action": "get_metrics", "service": "e"})["metrics"]["error_rate"] == 0.75


# Proves OH-14 (docs/logic-preservation.md).
def test_oh14_throughput_counts_entries_over_the_window(hub):
    req(hub, {"action": "get_metrics"})     # resets the window
    for _ in range(10):
        log(hub, "t", "throughput", 12345)
    time.sleep(0.5)
    tp = req(hub, {"action": "get_metrics", "service": "t"})["metrics"]["throughput"]
    assert 10 / 1.5 < tp < 10 / 0.45
    full = req(hub, {"action": "get_metrics"})["metrics"]["services"]["t"]["throughput"]
    assert full > 0
    time.sleep(0.3)
    after = req(hub, {"action": "get_metrics", "service": "t"})["metrics"]["throughput"]
    assert after > tp, "the full calculation must reset the window"


# Proves OH-11 (docs/logic-preservation.md).
def test_oh11_rings_keep_newest_1000(hub):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 5000)
    s.connect(hub.zmq("observability"))
    token = hub.admin_token()
    for i in range(1100):
        s.send_json({"action": "log_metric", "service": "r", "metric_type": "response_time",
                     "value": 0 if i < 100 else 2, "auth_token": token})
        assert s.recv_json()["status"] == "success"
    s.close()
    m = req(hub, {"action": "get_metrics", "service": "r"})["metrics"]
    assert m["response_time"]["average"] == 2.0


# Proves OH-16, OH-17, OH-18 (docs/logic-preservation.md).
def test_oh16_oh17_oh18_metrics_shapes(hub):
    log(hub, "a", "response_time", 1.0)
    full = req(hub, {"action": "get_metrics"})
    assert full["status"] == "success"
    m = full["metrics"]
    assert set(m) == {"timestamp", "resources", "averages", "services"}
    assert set(m["resources"]) == {"cpu_percent", "memory_percent", "timestamp"}
    assert set(m["averages"]) == {"cpu_avg", "memory_avg"}
    assert 0 <= m["resources"]["cpu_percent"] <= 100 and 0 < m["resources"]["memory_percent"] < 100
    one = req(hub, {"action": "get_metrics", "service": "nobody"})
    assert one == {"status": "success", "metrics": {"response_time": {"current": 0.0, "average": 0.0},
                                                    "error_rate": 0.0, "throughput": 0.0, "queue_size": 0.0}}


# Proves OH-19, OH-20, OH-22 (docs/logic-preservation.md).
def test_oh19_oh20_oh21_oh22_thresholds_health_and_alerts(keel_factory):
    # thresholds configurable: resources always "high" with a memory limit of 0 %
    hub = keel_factory("observability", config=hub_config(thresholds={"memory_percent": 0}))
    for v in (3.0, 3.0):
        log(hub, "slow", "response_time", v)
    log(hub, "slow", "error", 1)
    log(hub, "q", "queue_size", 500)
    log(hub, "fine", "response_time", 0.1)
    h = req(hub, {"action": "get_performance_health"})
    assert set(h) == {"timestamp", "status", "resources", "services", "service", "uptime"}
    assert h["status"] == "degraded" and h["resources"]["status"] == "degraded"
    assert h["services"]["slow"] == {"status": "degraded", "alerts": ["High response time", "High error rate"]}
    assert h["services"]["q"] == {"status": "degraded", "alerts": ["Large queue size"]}
    assert h["services"]["fine"] == {"status": "ok", "alerts": []}
    alerts = req(hub, {"action": "get_alerts"})
    assert alerts["status"] == "success"
    kinds = [(a["type"], a.get("service"), a["level"], a["message"]) for a in alerts["alerts"]]
    assert ("resource", None, "warning", "High resource usage detected") in kinds
    assert ("service", "slow", "warning", "High response time") in kinds
    assert ("service", "slow", "error", "High error rate") in kinds
    assert not any(a.get("service") == "q" for a in alerts["alerts"]), "no queue alert in get_alerts"


# Proves OH-21 (docs/logic-preservation.md).
def test_oh21_all_ok_when_resources_fine(keel_factory):
    hub = keel_factory("observability", config=hub_config(thresholds={"cpu_percent": 100.0,
                                                                      "memory_percent": 100.0}))
    log(hub, "fine", "response_time", 0.1)
    h = req(hub, {"action": "get_performance_health"})
    assert h["status"] == "ok" and h["resources"]["status"] == "ok"


# Proves OH-23 (docs/logic-preservation.md).
def test_oh23_legacy_pub_feeds(keel_factory):
    hub = keel_factory("observability", config=hub_config(performance_feeds=True, broadcast_interval_ms=100),
                       extra_ports=(5619, 5620, 6584))
    ctx = zmq.Context.instance()
    subs = []
    for port in (5619, 5620):
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SUBSCRIBE, b"")
        s.connect(hub.endpoint(port))
        subs.append(s)
    try:
        assert subs[0].poll(5000)
        metrics = json.loads(subs[0].recv())
        assert set(metrics) == {"timestamp", "resources", "averages", "services"}
        assert subs[1].poll(5000)
        health = json.loads(subs[1].recv())
        assert health["service"] == "PerformanceMonitor" and health["status"] in ("ok", "degraded")
    finally:
        for s in subs:
            s.close()


def iso(dt):
    return dt.isoformat()


# Proves OH-24, OH-27 (docs/logic-preservation.md).
def test_oh24_oh27_logger_roundtrip_filtered_and_sorted(hub):
    now = datetime.datetime.now()
    rows = [(now - datetime.timedelta(hours=h), "act%d" % h) for h in (3, 1, 2, 30)]
    for ts, action in rows:
        r = req(hub, {"action": "log_metric", "metric": {"agent": "LA", "action": action, "duration": 0.25,
                                                        "timestamp": iso(ts), "metadata": {"k": action}}})
        assert r == {"status": "success"}
    r = req(hub, {"action": "get_agent_metrics", "agent": "LA",
                  "start_time": iso(now - datetime.timedelta(hours=24)), "end_time": iso(now)})
    assert r["status"] == "success"
    assert [m["action"] for m in r["metrics"]] == ["act3", "act2", "act1"]
    assert r["metrics"][0]["metadata"] == {"k": "act3"} and r["metrics"][0]["duration"] == 0.25
    edge = req(hub, {"action": "get_agent_metrics", "agent": "LA", "start_time": iso(rows[0][0]),
                     "end_time": iso(rows[0][0])})
    assert [m["action"] for m in edge["metrics"]] == ["act3"], "BETWEEN is inclusive"


# Proves OH-25, OH-28 (docs/logic-preservation.md).
def test_oh25_oh28_resource_usage_roundtrip(hub):
    ts = datetime.datetime.now().isoformat()
    r = req(hub, {"action": "log_resource_usage", "usage": {"agent": "RA", "cpu_percent": 12.5,
                                                           "memory_mb": 256, "timestamp": ts,
                                                           "metadata": {"gpu": 0}}})
    assert r == {"status": "success"}
    got = req(hub, {"action": "get_agent_resource_usage", "agent": "RA", "start_time": ts, "end_time": ts})
    assert got == {"status": "success", "usage": [{"cpu_percent": 12.5, "memory_mb": 256, "timestamp": ts,
                                                  "metadata": {"gpu": 0}}]}


# Proves OH-26 (docs/logic-preservation.md).
def test_oh26_missing_key_inserts_nothing(hub):
    r = req(hub, {"action": "log_metric", "metric": {"agent": "X", "action": "a", "duration": 1,
                                                    "timestamp": "2025-01-01T00:00:00"}})
    assert r == {"status": "error", "message": "'metadata'"}
    r = req(hub, {"action": "log_resource_usage", "usage": {"agent": "X"}})
    assert r == {"status": "error", "message": "'cpu_percent'"}
    got = req(hub, {"action": "get_agent_metrics", "agent": "X", "start_time": "2000-01-01T00:00:00",
                    "end_time": "2100-01-01T00:00:00"})
    assert got["metrics"] == []
    assert req(hub, {"action": "get_agent_metrics", "agent": "X"}) == {"status": "error", "message": "'start_time'"}


# Proves OH-29 (docs/logic-preservation.md).
def test_oh29_schema_is_exact(hub):
    req(hub, {"action": "ping"})
    db = sqlite3.connect("%s/observability/observability.db" % hub.data_dir)
    try:
        cols = lambda t: [r[1] for r in db.execute("PRAGMA table_info(%s)" % t)]
        assert cols("metrics") == ["metric_id", "agent", "action", "duration", "timestamp", "metadata"]
        assert cols("resource_usage") == ["usage_id", "agent", "cpu_percent", "memory_mb", "timestamp", "metadata"]
        idx = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"idx_metrics_agent", "idx_metrics_timestamp", "idx_resource_agent",
                "idx_resource_timestamp"} <= idx
        assert "health_events" in {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()


# Proves OH-30 (docs/logic-preservation.md).
def test_oh30_retention_uses_real_timestamps(keel_factory):
    hub = keel_factory("observability", config=hub_config())
    now = datetime.datetime.now(datetime.timezone.utc)
    cases = {
        "old_metric": (now - datetime.timedelta(days=31), "log_metric"),
        "new_metric": (now - datetime.timedelta(days=29), "log_metric"),
        "old_usage": (now - datetime.timedelta(days=8), "log_resource_usage"),
        "new_usage": (now - datetime.timedelta(days=6), "log_resource_usage"),
    }
    # A zone-qualified stamp: 30 days + 2 h ago in UTC, written at +05:00, so its
    # text sorts after the cut-off but the instant is before it.
    tricky = (now - datetime.timedelta(days=30, hours=2)).astimezone(datetime.timezone(datetime.timedelta(hours=5)))
    for name, (ts, action) in cases.items():
        body = {"agent": name, "timestamp": ts.isoformat(), "metadata": None}
        if action == "log_metric":
            msg = {"action": action, "metric": dict(body, action="x", duration=1.0)}
        else:
            msg = {"action": action, "usage": dict(body, cpu_percent=1.0, memory_mb=1.0)}
        assert req(hub, msg) == {"status": "success"}
    assert req(hub, {"action": "log_metric", "metric": {"agent": "tricky", "action": "x", "duration": 1,
                                                       "timestamp": tricky.isoformat(), "metadata": None}}) \
        == {"status": "success"}
    hub.stop()
    hub.start()     # retention runs at start, on the housekeeping thread

    def agents():
        db = sqlite3.connect("%s/observability/observability.db" % hub.data_dir)
        try:
            return {r[0] for r in db.execute("SELECT agent FROM metrics UNION SELECT agent FROM resource_usage")}
        finally:
            db.close()
    wait_until(lambda: agents() == {"new_metric", "new_usage"}, timeout=5)
    assert agents() == {"new_metric", "new_usage"}


def test_metrics_and_logger_rows_survive_kill9(keel_factory):
    hub = keel_factory("observability", config=hub_config())
    for v in (1.0, 2.0, 3.0):
        log(hub, "durable", "response_time", v)
    log(hub, "durable", "error", 1)
    log(hub, "durable", "request", 1)
    log(hub, "durable", "request", 1)
    ts = datetime.datetime.now().isoformat()
    req(hub, {"action": "log_metric", "metric": {"agent": "D", "action": "a", "duration": 2.0,
                                                "timestamp": ts, "metadata": {}}})
    hub.kill9()
    hub.start()
    m = req(hub, {"action": "get_metrics", "service": "durable"})["metrics"]
    assert m["response_time"] == {"current": 2.0, "average": 2.0}
    assert m["error_rate"] == 0.5
    got = req(hub, {"action": "get_agent_metrics", "agent": "D", "start_time": ts, "end_time": ts})
    assert len(got["metrics"]) == 1


def test_oh19_thresholds_reload_on_sighup(keel_factory):
    """SIGHUP re-reads observability.thresholds.* while serving."""
    import signal
    hub = keel_factory("observability", config=hub_config(thresholds={"memory_percent": 0}))
    assert req(hub, {"action": "get_performance_health"})["resources"]["status"] == "degraded"
    with open(hub.config_path, "w") as f:
        f.write(hub_config(thresholds={"cpu_percent": 100.0, "memory_percent": 100.0}))
    hub.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: req(hub, {"action": "get_performance_health"})["resources"]["status"] == "ok")
