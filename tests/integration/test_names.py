"""Names are refused whole when too long, never cut (issue 16, finding 5).

Before, a name an agent sent was copied into a fixed buffer (`char id[256]`),
so two names longer than 255 bytes that shared their first 255 became one
record, the second overwrote the first, and both callers were told
"success".  Now every path that takes a name (agent ids, service and model
names, user names, error sources, task types) refuses a name over 255 bytes
with a reply that names the limit and a count in
keel_bad_requests_total{reason="name_too_long"}, and changes nothing; a name
of exactly 255 bytes works.  Requests to routes that are an administrator's
carry a token (Keel.admin): who may call what is test_privileges.py's
subject."""
import json
import urllib.request

import pytest

from conftest import Keel, http_request
from errorbus_util import Publisher, rows, stored, wait_for
from observability_util import hub_config, write_jwt_keys
from security_helpers import FAST

LIMIT = 255
PREFIX = "N" * LIMIT
LONG_A = PREFIX + "-first"
LONG_B = PREFIX + "-second-and-longer"
AT_LIMIT = "L" * (LIMIT - 3) + "end"


def metric(k, service, name, labels=""):
    """The sum of a family's series on one service whose labels contain `labels`."""
    text = urllib.request.urlopen(k.http(service, "/metrics"), timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {" and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def too_long(k, service):
    return metric(k, service, "keel_bad_requests_total", 'reason="name_too_long"')


def says_limit(reply):
    text = json.dumps(reply)
    return "255 bytes" in text


@pytest.fixture(scope="module")
def core():
    k = Keel("core", config="metrics_source: mock\n")
    k.start()
    yield k
    k.cleanup()


def registry(k):
    return sorted(k.request("core", {"action": "list_agents"})["agents"])


def test_two_long_agent_ids_with_one_prefix_are_both_refused(core):
    """The attack: two agent ids sharing their first 255 bytes.  Both get an
    error naming the limit, the registry is unchanged, and neither name (nor
    their common prefix) resolves; an id of exactly 255 bytes registers and
    resolves to its own record."""
    before, counted = registry(core), too_long(core, "core")
    for i, name in enumerate((LONG_A, LONG_B)):
        r = core.request("core", {"action": "register_agent", "agent_id": name, "agent_type": "t",
                                  "host": "10.0.0.%d" % (i + 1), "port": 5000 + i})
        assert r["status"] == "error" and says_limit(r), r
        assert "agent_id" in r["error"]
    r = core.request("core", {"action": "register_agent", "agent_name": LONG_B, "status": "HEALTHY",
                              "registration_data": {"agent_id": LONG_B, "agent_type": "t", "host": "h",
                                                    "port": 1}})
    assert r["status"] == "error" and says_limit(r), r
    assert registry(core) == before
    for name in (LONG_A, LONG_B):
        r = core.request("core", {"action": "get_agent_endpoint", "agent_name": name})
        assert r["status"] == "error" and says_limit(r), r
    r = core.request("core", {"action": "get_agent_endpoint", "agent_name": PREFIX})
    assert r == {"status": "error", "error": "Agent %s not found" % PREFIX}
    assert too_long(core, "core") == counted + 5

    r = core.request("core", {"action": "register_agent", "agent_id": AT_LIMIT, "agent_type": "t",
                              "host": "10.0.0.9", "port": 5009})
    assert r == {"status": "success"}
    found = core.request("core", {"action": "get_agent_endpoint", "agent_name": AT_LIMIT})
    assert found["status"] == "success" and found["host"] == "10.0.0.9" and found["port"] == 5009
    watched = core.request("core", {"action": "watch_registry", "since": 0})
    assert AT_LIMIT in [c["agent_id"] for c in watched["changes"]], "the change log keeps the whole name"


def test_long_names_in_the_legacy_and_simple_forms_are_refused(core):
    """REGISTER (the legacy protocol) and the twin's simple register_agent
    form refuse the same way, in their own dialects."""
    counted = too_long(core, "core")
    for name in (LONG_A, LONG_B):
        r = core.request("core", {"command": "REGISTER", "payload": {"name": name, "ip": "10.1.1.1",
                                                                     "port": 7000}})
        assert r["status"] == "ERROR" and says_limit(r), r
        r = core.request("core", {"action": "register_agent", "agent_name": name, "status": "HEALTHY"})
        assert r["status"] == "error" and says_limit(r), r
    assert too_long(core, "core") == counted + 4
    for name in (LONG_A, PREFIX):
        r = core.request("core", {"command": "DISCOVER", "payload": {"name": name}})
        assert r["status"] == "NOT_FOUND" and r["message"] == "Service '%s' not registered" % name
    assert PREFIX not in core.request("core", {"action": "get_all_agents"})["agents"]

    r = core.request("core", {"command": "REGISTER", "payload": {"name": AT_LIMIT + "", "ip": "10.1.1.2",
                                                                 "port": 7001}})
    assert r["status"] == "SUCCESS" and AT_LIMIT in r["message"]
    r = core.request("core", {"action": "register_agent", "agent_name": "S" * LIMIT, "status": "HEALTHY"})
    assert r["status"] == "success" and r["agent"] == "S" * LIMIT


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    keys = tmp_path_factory.mktemp("names") / "jwt.keys"
    token = write_jwt_keys(str(keys))
    k = Keel("observability", config=hub_config(top={"security": {"jwt_keys_file": str(keys)}}))
    k.start()
    k.token = token
    yield k
    k.cleanup()


def admin(hub, message):
    """A request with an administrator's JWT signed with the hub's key file."""
    return hub.request("observability", dict(message, auth_token=hub.token))


def test_long_names_reaching_the_hub_are_refused(hub):
    """log_metric in both forms, log_resource_usage, the cross-machine
    registry, and the HTTP routes that name agents or rules: each refuses a
    name over the limit, and takes one at the limit."""
    counted = too_long(hub, "observability")
    forms = [
        lambda n: {"action": "log_metric", "service": n, "metric_type": "request", "value": 1},
        lambda n: {"action": "log_metric", "metric": {"agent": n, "action": "a", "duration": 0.1,
                                                      "timestamp": "2025-01-01T00:00:00", "metadata": {}}},
        lambda n: {"action": "log_resource_usage", "usage": {"agent": n, "cpu_percent": 1, "memory_mb": 2,
                                                             "timestamp": "2025-01-01T00:00:00",
                                                             "metadata": {}}},
        lambda n: {"request_type": "register", "machine_id": "pc2", "agent_name": n},
        lambda n: {"request_type": "register", "machine_id": n, "agent_name": "a"},
    ]
    for form in forms:
        for name in (LONG_A, LONG_B):
            r = admin(hub, form(name))
            assert r["status"] == "error" and says_limit(r), (form(name), r)
        assert admin(hub, form(AT_LIMIT))["status"] == "success", form(AT_LIMIT)
    assert too_long(hub, "observability") == counted + 2 * len(forms)

    services = admin(hub, {"action": "get_metrics"})["metrics"]["services"]
    assert AT_LIMIT in services and not any(s.startswith(PREFIX) for s in services)
    agents = admin(hub, {"request_type": "get_status"})["agents"]
    assert "pc2/" + AT_LIMIT in agents and AT_LIMIT + "/a" in agents
    assert not any(PREFIX in key for key in agents)
    r = admin(hub, {"request_type": "register", "machine_id": "a/b", "agent_name": "c"})
    assert r == {"status": "error", "error": "machine_id must not contain '/'"}

    auth = {"Authorization": "Bearer " + hub.token, "Content-Type": "application/json"}
    for path, body in (("/update_agent_health", {"agent_name": LONG_A, "status": "healthy"}),
                       ("/add_alert_rule", {"rule_id": LONG_A, "metric_name": "cpu_percent", "condition": "gt",
                                          "threshold": 1})):
        status, text, _ = http_request(hub.http("observability", path), body=body, headers=auth)
        assert status == 400 and b"255 bytes" in text, (path, status, text)
    status, _, _ = http_request(hub.http("observability", "/update_agent_health"),
                                body={"agent_name": AT_LIMIT, "status": "healthy"}, headers=auth)
    assert status == 200


def test_long_error_sources_are_refused_or_quarantined(keel_factory):
    """An error reported with report_error from a source over the limit is
    refused with the limit in the reply; one published on the bus, which
    cannot be answered, is kept whole in quarantine with that reason; a
    source at the limit is stored under its whole name."""
    k = keel_factory("errorbus")
    counted = too_long(k, "errorbus")
    for name in (LONG_A, LONG_B):
        r = k.request("errorbus", {"action": "report_error", "agent": name, "error_type": "t", "message": "m"})
        assert r["status"] == "error" and says_limit(r), r
    pub = Publisher(k)
    try:
        pub.join()
        for name in (LONG_A, LONG_B):
            pub.f1({"agent": name, "error_type": "t", "message": "published"})
        pub.f1({"agent": AT_LIMIT, "error_type": "t", "message": "published"})
        assert len(stored(k, AT_LIMIT, 1)) == 1
        q = wait_for(lambda: (lambda r: r if len(r) >= 2 else None)(rows(k, "get_quarantine")))
        assert sorted(r["reason"].split(":")[0] for r in q) == ["name_too_long"] * 2, q
        assert all("255 bytes" in r["reason"] for r in q)
    finally:
        pub.close()
    r = k.request("errorbus", {"action": "report_error", "agent": AT_LIMIT, "error_type": "t", "message": "m",
                               "error_id": "E" * 100})
    assert r["status"] == "success" and r["error_id"] == "E" * 100, "the id is returned whole"
    assert rows(k, agent=PREFIX) == []
    assert too_long(k, "errorbus") == counted + 4


def test_long_model_names_and_task_types_are_refused(keel_factory):
    """ResourceManager: model names (VRAMOptimizerAgent's TRACK_MODEL_USAGE,
    ModelManagerAgent's can_accommodate_model and update_vram_status) and
    task types over the limit are refused; names at the limit work whole."""
    k = keel_factory("resource")
    counted = too_long(k, "resource")
    for name in (LONG_A, LONG_B):
        r = k.admin("resource", {"command": "TRACK_MODEL_USAGE", "model_id": name})
        assert r["status"] == "ERROR" and says_limit(r), r
        r = k.admin("resource", {"action": "can_accommodate_model", "vram_mb": 1, "model_name": name})
        assert r["status"] == "error" and says_limit(r), r
        r = k.admin("resource", {"action": "update_vram_status", "current_vram_mb": 1, "total_vram_mb": 2,
                                   "loaded_models": {name: {"vram_mb": 1}}})
        assert r["status"] == "error" and says_limit(r), r
        r = k.admin("resource", {"type": name, "data": {"x": 1}})
        assert r["status"] == "error" and says_limit(r), r
    assert too_long(k, "resource") == counted + 8
    r = k.admin("resource", {"command": "TRACK_MODEL_USAGE", "model_id": AT_LIMIT})
    assert r == {"status": "SUCCESS", "message": "Tracked usage of model %s" % AT_LIMIT}
    r = k.admin("resource", {"action": "update_vram_status", "current_vram_mb": 1, "total_vram_mb": 2,
                               "loaded_models": {AT_LIMIT: {"vram_mb": 1}}})
    assert r["status"] == "ok", r


def test_long_user_and_model_names_are_refused(keel_factory):
    """SecurityGateway: a user name over its limit (128 bytes by default, 255
    at most: security.max_user_id_bytes cannot be set higher) and a model name
    over 255 are refused with the limit in the reply and counted."""
    k = keel_factory("security", config=FAST + "  max_user_id_bytes: 255\n")
    counted = too_long(k, "security")
    for name in (LONG_A, LONG_B):
        r = k.admin("security", {"action": "register", "user_id": name, "password": "pw"})
        assert r == {"status": "error", "message": "user_id is longer than 255 bytes"}, r
        r = k.admin("security", {"action": "log_performance", "model_id": name, "success": True,
                                   "response_time": 0.1})
        assert r["status"] == "error" and says_limit(r), r
    assert too_long(k, "security") == counted + 4
    r = k.admin("security", {"action": "register", "user_id": AT_LIMIT, "password": "pw"})
    assert r["status"] == "success", r
    r = k.admin("security", {"action": "login", "user_id": AT_LIMIT, "password": "pw"})
    assert r["status"] == "success", r
    r = k.admin("security", {"action": "authorize", "token": r["session"]["token"]})
    assert r["valid"] is True and r["subject"] == AT_LIMIT, "the whole name comes back"
