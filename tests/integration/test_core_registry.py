"""CoreOrchestrator registry (CO-12..CO-24): the
ServiceRegistry wire format, pydantic-lax validation, the flat
get_agent_endpoint reply, SQLite durability across kill -9, the Redis backend
against a real redis-server (SCAN, outage, recovery), and what the original
lacked: unregister, heartbeats with a TTL, keelctl agents."""
import json
import re
import time

import pytest

from conftest import Keel, free_port, redis_cli, scaled, start_redis
from observability_util import wait_until

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
RECORD_KEYS = {"host", "port", "health_check_port", "agent_type", "capabilities", "metadata", "last_registered"}


def reg(k, **fields):
    return k.request("core", dict({"action": "register_agent"}, **fields))


def lookup(k, name):
    return k.request("core", {"action": "get_agent_endpoint", "agent_name": name})


@pytest.fixture(scope="module")
def core():
    k = Keel("core", config="metrics_source: mock\n")
    k.start()
    yield k
    k.cleanup()


def test_co12_flat_register(core):
    """CO-12"""
    assert reg(core, agent_id="A", agent_type="t", host="h", port=1234) == {"status": "success"}
    assert lookup(core, "A")["port"] == 1234


def test_co13_registration_data_form(core):
    """CO-13: the record is stored under registration_data.agent_id, and the
    status table learns the agent as HEALTHY."""
    r = reg(core, agent_name="Outer", status="HEALTHY", registration_data={
        "agent_id": "Inner", "agent_type": "t", "host": "10.0.0.9", "port": 5000,
        "metadata": {"location": "PC2"}})
    assert r["status"] == "success"
    assert lookup(core, "Inner")["host"] == "10.0.0.9"
    assert lookup(core, "Outer")["status"] == "error"
    info = core.request("core", {"action": "get_agent_info", "agent_name": "Inner"})
    assert info["agent_info"]["status"] == "HEALTHY" and info["agent_info"]["location"] == "PC2"


@pytest.mark.parametrize("missing", ["agent_id", "agent_type", "host", "port"])
def test_co14_missing_required_field(core, missing):
    """CO-14: a missing required field is an error and nothing is stored."""
    fields = {"agent_id": "M_" + missing, "agent_type": "t", "host": "h", "port": 1}
    del fields[missing]
    for r in (reg(core, registration_data=fields), reg(core, **dict(fields, agent_id=fields.get("agent_id", "M")))
              if missing != "agent_id" else reg(core, registration_data=fields)):
        assert r["status"] == "error" and r["error"]
        assert missing in r["error"]
    listed = core.request("core", {"action": "list_agents"})["agents"]
    assert "M_" + missing not in listed


@pytest.mark.parametrize("bad", [None, "text", [1, 2], 5, True])
def test_co15_registration_data_not_an_object(core, bad):
    """CO-15"""
    assert reg(core, registration_data=bad) == {
        "status": "error", "error": "Invalid registration_data, expected dictionary"}


def test_co16_lax_int_and_type_errors(core):
    """CO-16: "1234" becomes 1234; 12.5, "abc" and a numeric agent_id are refused."""
    assert reg(core, agent_id="P", agent_type="t", host="h", port="1234")["status"] == "success"
    assert lookup(core, "P")["port"] == 1234 and isinstance(lookup(core, "P")["port"], int)
    assert reg(core, agent_id="P2", agent_type="t", host="h", port=7100.0)["status"] == "success"
    assert lookup(core, "P2")["port"] == 7100
    for bad in ({"port": 12.5}, {"port": "abc"}, {"agent_id": 5}, {"port": None}, {"host": 7},
                {"capabilities": ["a", 1]}, {"metadata": "x"}, {"port": 70000}):
        fields = dict({"agent_id": "Bad", "agent_type": "t", "host": "h", "port": 1}, **bad)
        r = reg(core, **fields)
        assert r["status"] == "error" and "validation error" in r["error"], bad
    assert lookup(core, "Bad")["status"] == "error"


def test_co17_stored_record_shape(core):
    """CO-17: exactly the seven keys; defaults; dependencies not echoed."""
    reg(core, agent_id="Shape", agent_type="t", host="h", port=1, dependencies=["x"], extra="ignored")
    r = lookup(core, "Shape")
    assert set(r) - {"status"} == RECORD_KEYS
    assert r["health_check_port"] is None and r["capabilities"] == [] and r["metadata"] == {}
    assert ISO_UTC.match(r["last_registered"])


def test_co18_reregister_replaces(core):
    """CO-18"""
    reg(core, agent_id="R", agent_type="t", host="h", port=1, capabilities=["a"], metadata={"k": 1})
    first = lookup(core, "R")
    time.sleep(0.01)
    reg(core, agent_id="R", agent_type="u", host="h2", port=2)
    second = lookup(core, "R")
    assert second["host"] == "h2" and second["capabilities"] == [] and second["metadata"] == {}
    assert second["last_registered"] > first["last_registered"]


def test_co19_flat_endpoint_reply(core):
    """CO-19: flat, not nested, as BaseAgent.get_agent_endpoint needs."""
    reg(core, agent_id="F", agent_type="t", host="1.2.3.4", port=99, health_check_port=100,
        capabilities=["c"], metadata={"m": True})
    assert lookup(core, "F") == dict(lookup(core, "F"), status="success", host="1.2.3.4", port=99,
                                     health_check_port=100, agent_type="t", capabilities=["c"],
                                     metadata={"m": True})
    assert "agent" not in lookup(core, "F")


def test_lookup_replies_follow_every_change():
    """CO-18, CO-19: lookups are answered from the reply text kept since the
    last change; every registration, re-registration and unregistration
    changes the next answer, for the name and for an alias of it."""
    k = Keel("core", config="metrics_source: mock\ncore:\n  aliases: {Alias: [Target]}\n")
    k.start()
    try:
        reg(k, agent_id="Target", agent_type="t", host="h", port=1)
        for _ in range(3):      # the first builds the text, the others reuse it
            assert lookup(k, "Target")["port"] == 1 and lookup(k, "Alias")["port"] == 1
        reg(k, agent_id="Other", agent_type="t", host="o", port=9)
        reg(k, agent_id="Target", agent_type="t", host="h", port=2)
        assert lookup(k, "Target")["port"] == 2 and lookup(k, "Alias")["port"] == 2
        assert lookup(k, "Other")["port"] == 9
        assert k.admin("core", {"action": "unregister_agent", "agent_id": "Target"})["status"] == "success"
        assert lookup(k, "Target") == {"status": "error", "error": "Agent Target not found"}
        assert lookup(k, "Alias") == {"status": "error", "error": "Agent Alias not found"}
        reg(k, agent_id="Target", agent_type="t", host="h", port=3)
        assert lookup(k, "Alias")["port"] == 3
        assert set(lookup(k, "Target")) == RECORD_KEYS | {"status"}
    finally:
        k.cleanup()


def test_co20_unknown_agent(core):
    """CO-20"""
    assert lookup(core, "X") == {"status": "error", "error": "Agent X not found"}


@pytest.mark.parametrize("req", [{}, {"agent_name": ""}, {"agent_name": None}])
def test_co21_missing_agent_name(core, req):
    """CO-21"""
    assert core.request("core", dict({"action": "get_agent_endpoint"}, **req)) == {
        "status": "error", "error": "Missing 'agent_name'"}


def test_co21_wrong_type_agent_name(core):
    """CO-21: a non-string name is refused clearly, never a crash."""
    r = core.request("core", {"action": "get_agent_endpoint", "agent_name": 7})
    assert r["status"] == "error"


def test_co22_list_agents_in_registration_order():
    """CO-22 (memory backend): every id once, first-registration order."""
    k = Keel("core", config="metrics_source: mock\ncore:\n  registry: {backend: memory}\n")
    k.start()
    try:
        for name in ("Z1", "A1", "M1", "A1"):
            reg(k, agent_id=name, agent_type="t", host="h", port=1)
        agents = k.request("core", {"action": "list_agents"})["agents"]
        assert agents[-3:] == ["Z1", "A1", "M1"] and agents.count("A1") == 1
        assert agents[:5] == ["CoreOrchestrator", "ServiceRegistry", "SystemDigitalTwin",
                              "RequestCoordinator", "UnifiedSystemAgent"]
    finally:
        k.cleanup()


def test_co22_sqlite_registrations_survive_kill9(tmp_path):
    """CO-22, CO-23 (sqlite default): what was acknowledged survives kill -9."""
    k = Keel("core", config="metrics_source: mock\n")
    k.start()
    try:
        for i in range(30):
            assert reg(k, agent_id="D%d" % i, agent_type="t", host="h", port=1000 + i)["status"] == "success"
        k.request("core", {"command": "REGISTER", "payload": {"name": "Legacy1", "ip": "10.1.1.1", "port": 4444}})
        k.request("core", {"action": "register_agent", "agent_name": "St", "status": "OK"})
        k.kill9()
        k.start()
        assert lookup(k, "D29")["port"] == 1029
        agents = k.request("core", {"action": "list_agents"})["agents"]
        assert all("D%d" % i in agents for i in range(30))
        assert k.request("core", {"command": "DISCOVER", "payload": {"name": "Legacy1"}})["payload"]["port"] == 4444
        assert k.request("core", {"action": "get_all_agents"})["agents"]["St"]["status"] == "OK"
    finally:
        k.cleanup()


def test_unregister_and_heartbeat_ttl():
    """CO-18 extension: unregister, heartbeats, and each agent's one state
    from its heartbeat while ObservabilityHub has given no verdict (the rule
    of agentstate.h): up within the TTL, degraded past it, down past twice it."""
    k = Keel("core", config="metrics_source: mock\ncore:\n  registry: {ttl_s: 1}\n")
    k.start()
    try:
        reg(k, agent_id="H", agent_type="t", host="h", port=1, health_check_port=2)
        rows = {r["agent_id"]: r for r in k.request("core", {"action": "describe_agents"})["agents"]}
        assert rows["H"]["state"] == "up" and rows["H"]["health_check_port"] == 2
        assert rows["H"]["state_source"] == "registry" and "no verdict from ObservabilityHub" in rows["H"]["reason"]
        time.sleep(1.2)
        rows = {r["agent_id"]: r for r in k.request("core", {"action": "describe_agents"})["agents"]}
        assert rows["H"]["state"] == "degraded" and "heartbeat stale" in rows["H"]["reason"]
        # the service's own names are kept fresh by its announcer's heartbeats
        assert rows["CoreOrchestrator"]["state"] == "up"
        assert k.request("core", {"action": "heartbeat", "agent_id": "H"})["status"] == "success"
        rows = {r["agent_id"]: r for r in k.request("core", {"action": "describe_agents"})["agents"]}
        assert rows["H"]["state"] == "up"
        time.sleep(2.2)
        rows = {r["agent_id"]: r for r in k.request("core", {"action": "describe_agents"})["agents"]}
        assert rows["H"]["state"] == "down" and "no heartbeat for" in rows["H"]["reason"]
        assert k.request("core", {"action": "heartbeat", "agent_id": "Nope"})["error"] == "Agent Nope not found"
        assert k.request("core", {"action": "heartbeat"})["error"] == "Missing 'agent_name'"
        assert k.admin("core", {"action": "unregister_agent", "agent_id": "H"})["status"] == "success"
        assert lookup(k, "H")["error"] == "Agent H not found"
        assert k.admin("core", {"action": "unregister_agent", "agent_id": "H"})["status"] == "error"
    finally:
        k.cleanup()


def test_hub_verdicts_are_the_state_shown():
    """One truth per agent: ObservabilityHub's report_agent_states is what
    describe_agents (and keelctl agents) shows while it is fresh; bad reports
    get one clear error and change nothing."""
    k = Keel("core", config="metrics_source: mock\n")
    k.start()
    try:
        reg(k, agent_id="V", agent_type="t", host="h", port=1)
        verdict = {"state": "down", "reason": "health checks fail: timeout: Request timed out",
                   "since": "2026-01-01T00:00:00Z"}
        r = k.request("core", {"action": "report_agent_states", "source_agent": "ObservabilityHub",
                               "valid_s": scaled(1.0), "states": {"V": verdict}})
        assert r == {"status": "success", "accepted": 1}
        rows = {r["agent_id"]: r for r in k.request("core", {"action": "describe_agents"})["agents"]}
        assert (rows["V"]["state"], rows["V"]["reason"], rows["V"]["state_source"]) == \
            ("down", verdict["reason"], "ObservabilityHub")
        for bad in ({"states": []}, {"states": {"V": {"state": "sideways", "reason": "x"}}},
                    {"states": {"V": {"state": "up"}}}, {"states": {}, "valid_s": -1}):
            r = k.request("core", dict(bad, action="report_agent_states"))
            assert r["status"] == "error" and r["error"], r
        assert wait_until(lambda: {r["agent_id"]: r for r in k.request("core", {"action": "describe_agents"})
                                   ["agents"]}["V"]["state_source"] == "registry", 5)
    finally:
        k.cleanup()


def test_keelctl_agents_table():
    """keelctl agents lists agents with their state, reason and last heartbeat; --json for scripts."""
    k = Keel("core", config="metrics_source: mock\n")
    k.start()
    try:
        reg(k, agent_id="CtlAgent", agent_type="t", host="h", port=4321)
        out = k.keelctl("agents")
        assert out.returncode == 0, out.stderr
        line = [l for l in out.stdout.splitlines() if l.startswith("CtlAgent")][0]
        assert "4321" in line and " up " in line and "no verdict from ObservabilityHub" in line
        data = json.loads(k.keelctl("--json", "agents").stdout)
        assert any(a["agent_id"] == "CtlAgent" for a in data)
    finally:
        k.cleanup()


# ---- Redis ------------------------------------------------------------------

@pytest.fixture
def redis_port():
    port = free_port()
    proc = start_redis(port)
    holder = {"proc": proc}
    yield port, holder
    if holder["proc"].poll() is None:
        holder["proc"].terminate()
        holder["proc"].wait()


def test_co23_redis_backend_persists_across_restart(redis_port):
    """CO-23: key <prefix>A holds the record JSON with no TTL; a restarted
    process still resolves A; the prefix comes from SERVICE_REGISTRY_REDIS_PREFIX."""
    port, _ = redis_port
    cfg = "metrics_source: mock\ncore:\n  registry: {backend: redis, redis_url: \"redis://127.0.0.1:%d/0\"}\n" % port
    k = Keel("core", config=cfg, env={"SERVICE_REGISTRY_REDIS_PREFIX": "test_registry:"})
    k.start()
    try:
        assert reg(k, agent_id="A", agent_type="t", host="h", port=1234)["status"] == "success"
        stored = json.loads(redis_cli(port, "GET", "test_registry:A"))
        assert stored["port"] == 1234 and set(stored) == RECORD_KEYS
        assert redis_cli(port, "TTL", "test_registry:A").strip() == "-1"
        k.restart()
        assert lookup(k, "A")["port"] == 1234
        agents = k.request("core", {"action": "list_agents"})["agents"]
        assert "A" in agents and agents.count("A") == 1
        redis_cli(port, "SET", "test_registry:Broken", "{not json")
        assert lookup(k, "Broken")["error"] == "Agent Broken not found"
        assert k.request("core", {"action": "health"})["registry_backend"] == "redis"
    finally:
        k.cleanup()


def test_co24_redis_outage_and_recovery(redis_port):
    """CO-24: Redis down -> clear error replies, one ErrorBus event, process up,
    /health degraded; Redis back -> registry works again."""
    import zmq
    from conftest import free_offset
    port, holder = redis_port
    offset = free_offset()
    bus = zmq.Context.instance().socket(zmq.SUB)
    bus.setsockopt(zmq.LINGER, 0)
    bus.setsockopt(zmq.SUBSCRIBE, b"")
    bus.bind("tcp://127.0.0.1:%d" % (7150 + offset))
    cfg = "metrics_source: mock\ncore:\n  registry: {backend: redis, redis_url: \"redis://127.0.0.1:%d/0\"}\n" % port
    k = Keel("core", config=cfg, offset=offset)
    k.start()
    try:
        for _ in range(20):     # the error publisher's link is up once one report arrives
            k.request("core", {"action": "report_error", "error": {
                "error_id": "w", "agent_id": "t", "severity": "info", "error_type": "warm_up", "message": "m"}})
            if bus.poll(100):
                break
        while bus.poll(100):
            bus.recv()
        holder["proc"].terminate()
        holder["proc"].wait()
        r = reg(k, agent_id="A", agent_type="t", host="h", port=1)
        assert r["status"] == "error" and "Redis" in r["error"]
        seen = []
        while bus.poll(1000):
            seen.append(json.loads(bus.recv()[6:])["error_type"])
            if seen[-1] == "registry_backend_unavailable":
                break
        assert seen and seen[-1] == "registry_backend_unavailable", seen
        assert lookup(k, "A")["status"] == "error"
        assert k.request("core", {"action": "list_agents"})["status"] == "error"
        assert k.request("core", {"action": "ping"})["status"] == "degraded"
        from conftest import http_get
        status, body, _ = http_get(k.http("core"))
        assert status == 200 and json.loads(body)["status"] == "degraded"
        holder["proc"] = start_redis(port)
        assert reg(k, agent_id="A", agent_type="t", host="h", port=1)["status"] == "success"
        assert lookup(k, "A")["port"] == 1
        assert k.request("core", {"action": "ping"})["status"] == "ok"
    finally:
        bus.close()
        k.cleanup()


def test_watch_registry_revisions(core):
    """CO-18 extension (etcd's lesson): every change gets a revision and a
    watcher resumes from the last one it saw without missing a change."""
    w = core.request("core", {"action": "watch_registry", "since": 0})
    assert w["complete"] and w["revision"] >= 5
    assert [c["agent_id"] for c in w["changes"][:5]] == [
        "CoreOrchestrator", "ServiceRegistry", "SystemDigitalTwin", "RequestCoordinator", "UnifiedSystemAgent"]
    rev, epoch = w["revision"], w["epoch"]
    reg(core, agent_id="W1", agent_type="t", host="h", port=1)
    core.request("core", {"command": "REGISTER", "payload": {"name": "W2", "port": 2}})
    core.admin("core", {"action": "unregister_agent", "agent_id": "W1"})
    w = core.request("core", {"action": "watch_registry", "since": rev, "epoch": epoch})
    assert [(c["op"], c["agent_id"]) for c in w["changes"]] == [("put", "W1"), ("put", "W2"), ("delete", "W1")]
    assert w["revision"] == rev + 3 and w["complete"]
    stale = core.request("core", {"action": "watch_registry", "since": 1, "epoch": "another-process"})
    assert stale["complete"] is False and stale["changes"] == []
    assert core.request("core", {"action": "watch_registry", "since": "x"})["status"] == "error"
