"""ObservabilityHub fleet health: parallel probes, damping, partitions,
registry discovery, HTTP checks, recovery tiers, memory services, the
Prometheus exporter and `keelctl health`.  Every agent is a real ZMQ (or
HTTP) stand-in on loopback.  OH-n ids in names.  Requests go
with an administrator's token, as the hub's writes need one (no kept agent sends
them): who may call what is test_privileges.py's subject."""
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest
import zmq

from conftest import free_port, http_get, scaled
from observability_util import (ErrorSink, StandInAgent, StandInCore, agent_entry, hub_config,
                                wait_until)


@pytest.fixture
def stand_ins():
    made = []

    def make(cls=StandInAgent, *args, **kwargs):
        obj = cls(*args, **kwargs)
        made.append(obj)
        return obj

    yield make
    for obj in made:
        obj.stop()


@pytest.fixture
def sink():
    s = ErrorSink()
    yield s
    s.close()


def req(hub, msg, timeout_ms=5000):
    return hub.admin("observability", msg, timeout_ms)


def agents(hub):
    return req(hub, {"action": "get_agents_health"})["agents"]


def wait_agents(hub, pred, timeout=10):
    return wait_until(lambda: (lambda a: a if pred(a) else None)(agents(hub)), timeout)


def events(hub, agent=None):
    msg = {"action": "get_health_events", "limit": 200}
    if agent:
        msg["agent_name"] = agent
    return list(reversed(req(hub, msg)["events"]))


# Proves OH-32, OH-33, OH-34, OH-39 (docs/logic-preservation.md).
def test_oh32_oh33_oh34_oh35_probe_records(keel_factory, stand_ins):
    ok, phm, bad, silent, garbage = (stand_ins(StandInAgent, m) for m in
                                     ("ok", "ok", "unhealthy", "silent", "garbage"))
    cfg = hub_config([agent_entry("Ok", ok), agent_entry("Phm", phm, probe="health"),
                      agent_entry("Bad", bad), agent_entry("Silent", silent),
                      agent_entry("Garbage", garbage), agent_entry("Optional", None, required=False)])
    hub = keel_factory("observability", config=cfg)
    a = wait_agents(hub, lambda a: all(a[n]["status"] != "unknown" for n in
                                       ("Ok", "Phm", "Bad", "Silent", "Garbage")))
    assert a["Ok"]["status"] == "healthy" and a["Ok"]["details"]["status"] == "ok"
    assert a["Ok"]["last_checked"]
    assert a["Bad"]["status"] == "unhealthy" and a["Bad"]["details"]["message"] == "degraded disk"
    assert a["Silent"]["status"] == "timeout" and a["Silent"]["error"] == "Request timed out"
    assert a["Garbage"]["status"] == "error" and a["Garbage"]["error"].startswith("Unexpected error")
    assert a["Optional"]["status"] == "not_checked", "OH-35: only required agents are probed"
    assert ok.count(lambda r: r == {"action": "health_check"}) >= 1
    assert phm.count(lambda r: r == {"action": "health"}) >= 1
    sysh = req(hub, {"action": "get_system_health"})["system"]
    assert sysh["overall_status"] == "unhealthy"


# Proves OH-36 (docs/logic-preservation.md).
def test_oh36_sweep_of_unreachable_agents_takes_one_timeout(keel_factory, stand_ins):
    silent = [stand_ins(StandInAgent, "silent") for _ in range(40)]
    cfg = hub_config([agent_entry("S%d" % i, s) for i, s in enumerate(silent)], timeout_ms=400,
                     interval_ms=300)
    hub = keel_factory("observability", config=cfg)
    wait_agents(hub, lambda a: all(r["status"] == "timeout" for r in a.values()))
    h = req(hub, {"action": "health"})["agent_specific_metrics"]
    assert h["monitored_agents_count"] == 40
    assert 0.35 < h["last_sweep_seconds"] < 0.9, h["last_sweep_seconds"]


def test_dead_agents_beyond_the_in_flight_bound_never_starve_a_live_one(keel_factory, stand_ins):
    """A sweep has at most 128 probes in flight (gather.h), each dead agent
    holding its place for the whole timeout.  With 140 dead agents listed
    before a live one, the first sweep's deadline passes before the live
    agent's probe is sent; from then on the agents that failed are probed
    last, so the live one is up and the dead ones down."""
    live = stand_ins(StandInAgent, "ok")
    entries = [agent_entry("D%d" % i, None) for i in range(140)] + [agent_entry("Live", live)]
    hub = keel_factory("observability", config=hub_config(entries, timeout_ms=int(scaled(400)),
                                                         interval_ms=300))
    a = wait_agents(hub, lambda a: a["Live"]["state"] == "up"
                    and all(a["D%d" % i]["state"] == "down" for i in range(140)), timeout=scaled(20))
    assert a["Live"]["status"] == "healthy", a["Live"]


# Proves OH-37 (docs/logic-preservation.md).
def test_oh37_default_interval_is_2s(keel_factory, stand_ins):
    """Issue 14 (fix): 2 s, not the original's 30 s, so a dead agent is down
    within two intervals and one probe timeout."""
    ok = stand_ins(StandInAgent, "ok")
    cfg = json.dumps({"observability": {"agents": [agent_entry("Ok", ok)], "discover": False}})
    keel_factory("observability", config=cfg)
    # When each probe arrives, read every 10 ms: the gaps are the interval.
    arrivals, seen, deadline = [], 0, time.time() + scaled(12)
    while len(arrivals) < 4 and time.time() < deadline:
        if ok.count() > seen:
            seen = ok.count()
            arrivals.append(time.time())
        time.sleep(0.01)
    assert len(arrivals) == 4, arrivals
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert all(1.7 < g < scaled(3.0) for g in gaps), gaps


def test_dead_agent_is_down_within_the_default_bound(keel_factory, stand_ins):
    """Defaults only (2 s interval, 2 s probe timeout, 2 failures of 3): an
    agent that stops answering is down at most 2 x 2 s + 2 s later; the page
    adds its 1 s cache and 1 s poll, within 10 s in all."""
    agent = stand_ins(StandInAgent, "ok")
    cfg = json.dumps({"observability": {"agents": [agent_entry("Dies", agent)], "discover": False}})
    hub = keel_factory("observability", config=cfg)
    wait_agents(hub, lambda a: a["Dies"]["state"] == "up")
    agent.mode = "silent"
    died = time.time()
    wait_agents(hub, lambda a: a["Dies"]["state"] == "down", timeout=15)
    assert time.time() - died < scaled(8)


def test_memory_services_probed_only_where_configured(keel_factory, stand_ins, sink):
    """Issue 14: no MemoryOrchestrator/MemoryScheduler probe (and no
    memory_*_timeout every minute) unless their endpoints are configured."""
    silent = stand_ins(StandInAgent, "silent")
    configured = keel_factory("observability", config=json.dumps({
        "observability": {"discover": False, "memory_services": {"interval_ms": 100, "timeout_ms": 200},
                          "memory_orchestrator_endpoint": "tcp://127.0.0.1:%d" % silent.port},
        "error_bus_endpoint": sink.endpoint}))
    assert sink.wait_for(lambda e: e["error_type"] == "memory_orchestrator_timeout")
    configured.stop()
    sink.events.clear()
    bare = keel_factory("observability", config=json.dumps({
        "observability": {"discover": False, "memory_services": {"interval_ms": 100, "timeout_ms": 200}},
        "error_bus_endpoint": sink.endpoint}))
    assert sink.wait_for(lambda e: e["error_type"].startswith("memory_"), timeout=1.5) == []
    assert req(bare, {"action": "get_services_health"})["services"] == {}


def test_damped_state_needs_n_of_m_and_changes_are_published(keel_factory, stand_ins):
    agent = stand_ins(StandInAgent, "ok")
    cfg = hub_config([agent_entry("Flap", agent, machine="PC2")], interval_ms=1000,
                     flap={"failures": 2, "window": 3})
    hub = keel_factory("observability", config=cfg, extra_ports=(6584,))
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(hub.endpoint(6584))     # HealthMonitor's STATUS_PORT
    try:
        wait_agents(hub, lambda a: a["Flap"]["state"] == "up")
        agent.mode = "silent"
        a = wait_agents(hub, lambda a: a["Flap"]["status"] == "timeout")
        assert a["Flap"]["state"] == "up", "one failure must not flip the state"
        wait_agents(hub, lambda a: a["Flap"]["state"] == "down")
        seen = []
        while sub.poll(3000):
            seen.append(json.loads(sub.recv()))
            if seen[-1]["status"] == "down":
                break
        event = seen[-1]        # an earlier unknown -> up may come first
        assert event["type"] == "agent_status" and event["agent"] == "Flap"
        assert (event["previous"], event["status"], event["machine"]) == ("up", "down", "PC2")
        assert any(e["event_type"] == "health_check_failed" for e in events(hub, "Flap"))
        agent.mode = "ok"
        a = wait_agents(hub, lambda a: a["Flap"]["status"] == "healthy")
        assert a["Flap"]["state"] == "down", "one success must not flip it back"
        wait_agents(hub, lambda a: a["Flap"]["state"] == "up")
    finally:
        sub.close()


def test_partition_marks_machine_unknown_and_never_restarts(keel_factory, stand_ins):
    core = stand_ins(StandInCore)
    far = [stand_ins(StandInAgent, "silent") for _ in range(3)]
    near = stand_ins(StandInAgent, "ok")
    entries = [agent_entry("Far%d" % i, s, machine="PC2", auto_recover=True) for i, s in enumerate(far)]
    entries.append(agent_entry("Near", near, machine="MainPC"))
    local = [stand_ins(StandInAgent, "silent") for _ in range(3)]
    entries += [agent_entry("Local%d" % i, s) for i, s in enumerate(local)]     # the hub's machine
    cfg = hub_config(entries, registry_endpoint="tcp://127.0.0.1:%d" % core.port,
                     recovery={"cooldown_s": 0.1})
    hub = keel_factory("observability", config=cfg)
    a = wait_agents(hub, lambda a: all(a["Far%d" % i]["state"] == "unknown"
                                       and "suspected cut off" in a["Far%d" % i]["reason"] for i in range(3)))
    assert a["Near"]["state"] == "up"
    a = wait_agents(hub, lambda a: all(a["Local%d" % i]["state"] == "down" for i in range(3)))
    assert a["Local0"]["machine"] == "local", "loopback has no link to suspect: really down"
    machines = req(hub, {"action": "get_system_health"})["system"]["machines"]
    assert machines["PC2"]["status"] == "partitioned" and machines["PC2"]["partitioned"] == 3
    assert machines["MainPC"]["status"] == "healthy"
    time.sleep(0.8)
    assert core.restarts() == []


def test_registry_discovery_adds_and_removes_agents(keel_factory, stand_ins):
    reg_agent = stand_ins(StandInAgent, "ok")
    core = stand_ins(StandInCore, {"RegAgent": {"host": "127.0.0.1", "port": reg_agent.port,
                                                "health_check_port": reg_agent.port,
                                                "metadata": {"location": "PC2"}}})
    cfg = hub_config(discover=True, registry_endpoint="tcp://127.0.0.1:%d" % core.port,
                     discovery_interval_ms=200)
    hub = keel_factory("observability", config=cfg)
    a = wait_agents(hub, lambda a: a.get("RegAgent", {}).get("status") == "healthy")
    assert a["RegAgent"]["source"] == "registry" and a["RegAgent"]["machine"] == "PC2"
    core.agents.clear()
    assert wait_until(lambda: "RegAgent" not in agents(hub))


class _Health(http.server.BaseHTTPRequestHandler):
    code = 200

    def do_GET(self):
        self.send_response(self.server.code if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args):
        pass


# Proves OH-44 (docs/logic-preservation.md).
def test_oh44_http_health_checks_are_stored(keel_factory):
    servers = []
    for code in (200, 503):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
        srv.code = code
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    try:
        entries = [{"name": "WebOk", "host": "127.0.0.1", "port": servers[0].server_port - 1, "check": "http"},
                   {"name": "WebBad", "host": "127.0.0.1", "port": 1, "http_port": servers[1].server_port,
                    "check": "http"}]
        hub = keel_factory("observability", config=hub_config(entries))
        a = wait_agents(hub, lambda a: a["WebOk"]["status"] != "unknown" and a["WebBad"]["status"] != "unknown")
        assert a["WebOk"]["status"] == "healthy" and a["WebOk"]["details"] == {"http_status": 200}
        assert a["WebBad"]["status"] == "unhealthy" and a["WebBad"]["details"] == {"http_status": 503}
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()


def test_oh60_tiers_escalate_to_tier4_then_give_up(keel_factory, stand_ins, sink):
    """OH-60 tiers in order, OH-68 health_events, OH-74/OH-75 ErrorBus reports."""
    core = stand_ins(StandInCore, restart_ok=False)
    flaky = stand_ins(StandInAgent, "silent")
    other = stand_ins(StandInAgent, "ok")
    entries = [agent_entry("Flaky", flaky, auto_recover=True, dependencies=["DepA"]),
               agent_entry("Other", other, auto_recover=True)]
    cfg = hub_config(entries, registry_endpoint="tcp://127.0.0.1:%d" % core.port,
                     recovery={"cooldown_s": 0.2, "timeout_ms": 500},
                     top={"error_bus_endpoint": sink.endpoint})
    hub = keel_factory("observability", config=cfg)
    gave_up = wait_until(lambda: [e for e in events(hub, "Flaky") if e["event_type"] == "recovery_gave_up"],
                         timeout=20)
    assert gave_up
    attempts = [e["details"]["strategy"] for e in events(hub, "Flaky") if e["event_type"] == "recovery_attempted"]
    assert attempts == ["tier1", "tier2", "tier3", "tier4"]
    actions = [e["details"]["actions"] for e in events(hub, "Flaky") if e["event_type"] == "recovery_attempted"]
    assert actions == [["restart_agent"], ["clear_agent_state", "restart_agent"],
                       ["restart_dependencies", "clear_agent_state", "restart_agent"], ["restart_all_agents"]]
    assert sum(1 for e in events(hub, "Flaky") if e["event_type"] == "recovery_failed") == 4
    assert core.restarts()[:4] == ["Flaky", "Flaky", "DepA", "Flaky"]
    assert sorted(core.restarts()[4:6]) == ["Flaky", "Other"], "tier4 restarts every recoverable agent"
    assert sink.wait_for(lambda e: e["error_type"] == "recovery_gave_up" and e["severity"] == "CRITICAL"), [e["error_type"] for e in sink.events]
    assert sink.wait_for(lambda e: e["error_type"] == "recovery_failed")
    ev = sink.wait_for(lambda e: e["error_type"] == "recovery_attempted")[0]
    assert ev["agent"] == "ObservabilityHub" and {"timestamp", "message", "severity"} <= set(ev)
    n = len(core.restarts())
    time.sleep(0.8)
    assert len(core.restarts()) == n, "no restarts after giving up"


# Proves OH-61, OH-62 (docs/logic-preservation.md).
def test_oh61_oh62_cooldown_and_auto_recover_off(keel_factory, stand_ins):
    core = stand_ins(StandInCore, restart_ok=False)
    slow = stand_ins(StandInAgent, "silent")
    manual = stand_ins(StandInAgent, "silent")
    entries = [agent_entry("Slow", slow, auto_recover=True, recovery_strategy="tier2"),
               agent_entry("Manual", manual)]
    cfg = hub_config(entries, registry_endpoint="tcp://127.0.0.1:%d" % core.port,
                     recovery={"timeout_ms": 500})
    hub = keel_factory("observability", config=cfg)
    wait_until(lambda: core.restarts(), timeout=10)
    time.sleep(1.5)
    assert core.restarts() == ["Slow"], "the 60 s cooldown holds back tier3"
    assert [e["details"]["strategy"] for e in events(hub, "Slow")
            if e["event_type"] == "recovery_attempted"] == ["tier2"]
    assert wait_agents(hub, lambda a: a["Manual"]["state"] == "down")
    assert all(e["event_type"] != "recovery_attempted" for e in events(hub, "Manual"))


def test_recovery_success_resets_the_tier(keel_factory, stand_ins):
    agent = stand_ins(StandInAgent, "silent")
    core = stand_ins(StandInCore, on_restart=lambda name: setattr(agent, "mode", "ok"))
    cfg = hub_config([agent_entry("Phoenix", agent, auto_recover=True)],
                     registry_endpoint="tcp://127.0.0.1:%d" % core.port, recovery={"cooldown_s": 0.2})
    hub = keel_factory("observability", config=cfg)
    wait_until(lambda: [e for e in events(hub, "Phoenix") if e["event_type"] == "recovery_succeeded"], 15)
    a = agents(hub)["Phoenix"]
    assert a["state"] == "up" and a["recovery_tier"] == 0
    assert core.restarts() == ["Phoenix"]


def test_trigger_recovery_action(keel_factory, stand_ins):
    core = stand_ins(StandInCore)
    cfg = hub_config(registry_endpoint="tcp://127.0.0.1:%d" % core.port)
    hub = keel_factory("observability", config=cfg)
    r = req(hub, {"action": "trigger_recovery", "agent_name": "X", "strategy": "tier1"})
    assert r["status"] == "success" and r["actions"] == ["restart_agent"]
    assert core.restarts() == ["X"]
    assert req(hub, {"action": "trigger_recovery", "agent_name": "X", "strategy": "tier7"})["status"] == "error"


# Proves OH-69 (docs/logic-preservation.md).
def test_oh69_failure_prediction_alerts_self_healing(keel_factory, stand_ins):
    healer = stand_ins(StandInAgent, "success")
    doomed = stand_ins(StandInAgent, "silent")
    cfg = hub_config([agent_entry("Doomed", doomed)],
                     self_healing_endpoint="tcp://127.0.0.1:%d" % healer.port)
    hub = keel_factory("observability", config=cfg)
    wait_until(lambda: healer.count(), timeout=10)
    alert = healer.requests[0]
    assert alert["action"] == "alert" and alert["agent_name"] == "Doomed"
    assert alert["alert_type"] == "failure_predicted" and 0.7 < alert["severity"] <= 1.0
    assert "timestamp" in alert
    fp = [e for e in events(hub, "Doomed") if e["event_type"] == "failure_predicted"]
    assert fp and fp[0]["details"]["probability"] > 0.7
    assert agents(hub)["Doomed"]["failure_probability"] == 1.0


# Proves OH-38, OH-41, OH-42, OH-43, EB-53, EB-54 (docs/logic-preservation.md).
def test_oh41_oh42_oh43_memory_services(keel_factory, stand_ins, sink):
    orch = stand_ins(StandInAgent, "success")
    sched = stand_ins(StandInAgent, "silent")
    cfg = hub_config(memory_services={"enabled": True, "interval_ms": 200, "timeout_ms": 300},
                     memory_orchestrator_endpoint="tcp://127.0.0.1:%d" % orch.port,
                     memory_scheduler_endpoint="tcp://127.0.0.1:%d" % sched.port,
                     top={"error_bus_endpoint": sink.endpoint})
    hub = keel_factory("observability", config=cfg)
    assert sink.wait_for(lambda e: e["error_type"] == "memory_scheduler_timeout"
                         and e["message"] == "Health check request timed out")
    assert orch.count(lambda r: r == {"action": "health_check", "data": {}}) >= 1
    services = req(hub, {"action": "get_services_health"})["services"]
    assert services["memory_orchestrator"]["status"] == "healthy"
    assert services["memory_scheduler"]["status"] == "timeout"
    sched.mode = "list"
    assert sink.wait_for(lambda e: e["error_type"] == "memory_scheduler_invalid_response"
                         and e["message"].startswith("Invalid response format: "))
    sched.mode = "unhealthy"
    assert sink.wait_for(lambda e: e["error_type"] == "memory_scheduler_health_check_failed"
                         and e["message"] == "degraded disk")
    st = req(hub, {"action": "get_system_status"})
    assert st["status"] == "success"
    assert st["memory_system"]["orchestrator"] == {"status": "success"}
    assert st["memory_system"]["scheduler"] == {"status": "error", "message": "degraded disk"}
    sched.mode = "silent"
    st = req(hub, {"action": "get_system_status"})
    assert st["memory_system"]["scheduler"] == {"status": "error", "message": "Request timed out"}


# Proves OH-70 (docs/logic-preservation.md).
def test_oh70_optimiser_never_kills_by_default(keel_factory, sink):
    cfg = hub_config(optimizer={"interval_ms": 100, "memory_threshold": 0},
                     top={"error_bus_endpoint": sink.endpoint})
    hub = keel_factory("observability", config=cfg)
    ev = sink.wait_for(lambda e: e["error_type"] == "resource_pressure")
    assert ev and ev[0]["details"]["kill_processes"] is False
    assert ev[0]["details"]["processes_terminated"] == 0
    assert any(e["event_type"] == "resource_pressure" for e in events(hub, "ObservabilityHub"))


def prom_families(text):
    fams = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            fams[name] = kind
    return fams


# Proves OH-58 (docs/logic-preservation.md).
def test_prometheus_exporter_passes_promtool_and_a_real_scrape(keel_factory, stand_ins):
    ok = stand_ins(StandInAgent, "ok")
    down = stand_ins(StandInAgent, "silent")
    hub = keel_factory("observability", config=hub_config([agent_entry("Up", ok, machine="MainPC"),
                                                           agent_entry("Dn", down, machine="MainPC")]))
    req(hub, {"action": "log_metric", "service": "tts", "metric_type": "response_time", "value": 0.25})
    wait_agents(hub, lambda a: a["Up"]["state"] == "up" and a["Dn"]["failure_probability"] == 1.0)
    status, body, headers = http_get(hub.http("observability", "/metrics"))
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert 'keel_agent_up{agent="Up",machine="MainPC"} 1' in text
    assert 'keel_agent_up{agent="Dn",machine="MainPC"} 0' in text
    assert 'keel_agent_failure_probability{agent="Dn",machine="MainPC"} 1' in text
    assert 'keel_agent_recovery_tier{agent="Up",machine="MainPC"} 0' in text
    assert 'keel_perf_response_time_seconds{agent="tts"} 0.25' in text
    fams = prom_families(text)
    assert fams["keel_agent_check_latency_seconds"] == "gauge"
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
        assert r.returncode == 0, r.stdout + r.stderr
    prometheus = shutil.which("prometheus")
    if not prometheus:
        pytest.skip("prometheus not installed: promtool check done, live scrape skipped")
    workdir = tempfile.mkdtemp(prefix="keel-prom-")
    port = free_port()
    with open(os.path.join(workdir, "prom.yml"), "w") as f:
        f.write("global: {scrape_interval: 1s}\nscrape_configs:\n- job_name: hub\n"
                "  static_configs: [{targets: ['127.0.0.1:%d']}]\n" % hub.port(8002))
    proc = subprocess.Popen([prometheus, "--config.file=%s/prom.yml" % workdir,
                             "--storage.tsdb.path=%s/data" % workdir,
                             "--web.listen-address=127.0.0.1:%d" % port],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def query():
            try:
                url = "http://127.0.0.1:%d/api/v1/query?query=keel_agent_up" % port
                data = json.loads(urllib.request.urlopen(url, timeout=2).read())
                return {r["metric"]["agent"]: r["value"][1] for r in data["data"]["result"]} or None
            except OSError:
                return None
        got = wait_until(query, timeout=20, interval=0.5)
        assert got == {"Up": "1", "Dn": "0"}
        url = "http://127.0.0.1:%d/api/v1/targets" % port
        target = json.loads(urllib.request.urlopen(url, timeout=2).read())["data"]["activeTargets"][0]
        assert target["health"] == "up" and not target["lastError"]
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def test_keelctl_health_lists_worst_first(keel_factory, stand_ins):
    ok = stand_ins(StandInAgent, "ok")
    bad = stand_ins(StandInAgent, "silent")
    hub = keel_factory("observability", config=hub_config([agent_entry("Alpha", ok),
                                                           agent_entry("Zulu", bad)]))
    wait_agents(hub, lambda a: a["Alpha"]["state"] == "up" and a["Zulu"]["state"] == "down")
    r = hub.keelctl("health")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert lines[0].split()[:4] == ["AGENT", "MACHINE", "STATE", "PROBE"]
    assert lines[1].split()[0] == "Zulu" and "down" in lines[1]
    assert lines[2].split()[0] == "Alpha" and "up" in lines[2]
    j = json.loads(hub.keelctl("--json", "health").stdout)
    assert [x["agent"] for x in j] == ["Zulu", "Alpha"]
    assert j[0]["failure_probability"] > j[1]["failure_probability"]
