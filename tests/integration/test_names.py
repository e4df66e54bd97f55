"""Names are refused whole when too long, never cut (issue 16, finding 5).

Before, a name an agent sent was copied into a fixed buffer (`char id[256]`),
so two names longer than 255 bytes that shared their first 255 became one
record, the second overwrote the first, and both callers were told
"success".  Now every path that takes a name (agent ids, service and model
names, user names, error sources, task types) refuses a name over 255 bytes
with a reply that names the limit and a count in
keel_bad_requests_total{reason="name_too_long"}, and changes nothing; a name
of exactly 255 bytes works."""
import json
import urllib.request

import pytest

from conftest import Keel

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
    for name in (LONG_A, LONG_B, PREFIX):
        assert core.request("core", {"action": "get_agent_endpoint", "agent_name": name})["status"] == "error"
    assert too_long(core, "core") == counted + 3

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
