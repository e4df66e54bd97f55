"""ObservabilityHub robustness: internal faults reported to ErrorBus (OH-74,
OH-75, OH-76), unreachable peers never blocking (OH-78), failing /proc
sources (OH-79), and running with no configuration at all (OH-80).  Requests go
with an administrator's token, as the hub's writes need one (no kept agent sends
them): who may call what is test_privileges.py's subject."""
import json
import time

from conftest import http_get
from observability_util import ErrorSink, StandInAgent, agent_entry, hub_config


def req(hub, msg):
    return hub.admin("observability", msg)


def test_oh74_oh75_oh76_internal_faults_reach_the_error_bus(keel_factory):
    sink = ErrorSink()
    try:
        hub = keel_factory("observability", config=hub_config(max_services=1,
                                                              top={"error_bus_endpoint": sink.endpoint}))
        for _ in range(2):      # a service that comes back is never evicted for a new name
            assert req(hub, {"action": "log_metric", "service": "one", "metric_type": "request", "value": 1}) \
                == {"status": "success", "message": "Metric logged"}
        r = req(hub, {"action": "log_metric", "service": "two", "metric_type": "request", "value": 1})
        assert r == {"status": "error", "message": "Metric could not be logged: the performance table is full "
                     "(observability.max_services = 1) of services that keep reporting"}
        ev = sink.wait_for(lambda e: e["error_type"] == "metric_logging_error")
        assert ev, "OH-76 metric_logging_error"
        e = ev[0]
        assert e["agent"] == "ObservabilityHub" and e["severity"] == "ERROR"
        assert isinstance(e["timestamp"], float) and "two" in e["message"]
        r = req(hub, {"action": "get_metrics", "service": ["not", "a", "name"]})
        assert r["status"] == "error"
        assert sink.wait_for(lambda e: e["error_type"] == "service_metrics_error")
    finally:
        sink.close()


def test_oh78_unreachable_peers_never_block_requests(keel_factory):
    silent = [StandInAgent("silent") for _ in range(3)]
    try:
        cfg = hub_config([agent_entry("Gone", silent[0])], timeout_ms=2000,
                         self_healing_endpoint="tcp://127.0.0.1:%d" % silent[1].port,
                         memory_services={"enabled": True, "interval_ms": 100, "timeout_ms": 3000},
                         memory_orchestrator_endpoint="tcp://127.0.0.1:%d" % silent[2].port,
                         top={"error_bus_endpoint": "tcp://127.0.0.1:9"})
        hub = keel_factory("observability", config=cfg)
        time.sleep(0.5)     # a sweep, a memory check and an alert are all waiting now
        for _ in range(10):
            t = time.time()
            assert req(hub, {"action": "health"})["status"] == "ok"
            status, _, _ = http_get(hub.http("observability", "/health"))
            assert status == 200
            assert time.time() - t < 1.5
    finally:
        for s in silent:
            s.stop()


def test_oh79_failed_proc_source_becomes_error_object(keel_factory, tmp_path):
    hub = keel_factory("observability", config=hub_config(proc_root=str(tmp_path / "no-proc")))
    h = req(hub, {"action": "health"})
    sm = h["agent_specific_metrics"]["system_metrics"]
    assert sm["cpu_percent"] == 0
    for key in ("memory", "disk", "network"):
        assert set(sm[key]) == {"error"} and sm[key]["error"]
    assert req(hub, {"action": "get_metrics"})["status"] == "success"


def test_oh80_runs_with_no_configuration(keel_factory):
    hub = keel_factory("observability")
    assert req(hub, {"action": "ping"})["status"] == "ok"
    status, body, _ = http_get(hub.http("observability", "/health"))
    assert status == 200 and json.loads(body)["status"] == "healthy"
    assert req(hub, {"action": "get_metrics"})["status"] == "success"
    status, body, _ = http_get(hub.http("observability", "/metrics.json"))
    assert status == 200
