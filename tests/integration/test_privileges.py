"""Every route declares its privilege (public, agent, admin) in its table, and
the runtime enforces it alike on ZMQ and HTTP (issue 16, finding 1).  Each test
starts from the attack as it was made against Keel, asserts that it now fails,
and that the legitimate call still works: an administrator made with `keelctl
user add --admin` against the data directory, then logged in."""
import json
import os
import subprocess
import time

import pytest

from conftest import KEELCTL, KEELD, Keel, command, http_get, http_request, scaled
from resource_util import fake_proc
from security_helpers import FAST, Client, add_admin
from test_core_coordinator import FakeAgent, register
from test_security_curve import keys as curve_keys


def wait_for(pred, timeout=5.0):
    deadline = time.time() + scaled(timeout)
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def forbidden(reply, route):
    return reply == {"status": "error",
                     "error": "Forbidden: %s needs an administrator's token" % route}


def login(k, user, password):
    reply = k.request("security", {"action": "login", "user_id": user, "password": password})
    assert reply["status"] == "success", reply
    return reply["session"]["token"]


def metric(k, service, name, labels):
    _, body, _ = http_get(k.http(service, "/metrics"))
    for line in body.decode().splitlines():
        if line.startswith("%s{%s} " % (name, labels)):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def fleet():
    """keeld all with one supervised child, an administrator and a user."""
    config = FAST + ("metrics_source: mock\nresource: {proc_root: %s}\ncore:\n" % fake_proc() +
                     "  supervisor: {health_interval_s: 0.3, backoff_base_s: 0.3, stop_grace_s: 1}\n"
                     '  agents: [{"name": "Sleeper", "command": "/bin/sleep", "args": ["600"]}]\n')
    k = Keel("all", config=config)
    k.start()
    password = add_admin(k, "root", "admin-pass")
    k.admin_session = login(k, "root", password)
    assert k.request("security", {"action": "register", "user_id": "alice",
                                  "password": "correct horse"})["status"] == "success"
    k.user_session = login(k, "alice", "correct horse")
    yield k
    k.cleanup()


def sleeper(k):
    return k.request("core", {"action": "get_agent_status"})["agents"]["Sleeper"]["process"]


def test_stop_and_restart_agent_need_an_administrator(fleet):
    """Attack: `stop_agent` / `restart_agent` on 7000 with no credentials
    killed or restarted a supervised child (CO-69's process control).  Now
    refused, the child's pid unchanged, also with an ordinary user's session;
    an administrator's session token does it."""
    assert wait_for(lambda: sleeper(fleet)["state"] == "running")
    pid = sleeper(fleet)["pid"]
    before = metric(fleet, "core", "keel_bad_requests_total", 'service="core",reason="forbidden"')
    for action in ("stop_agent", "restart_agent"):
        assert forbidden(fleet.request("core", {"action": action, "agent": "Sleeper"}), action)
        assert forbidden(fleet.request("core", {"action": action, "agent": "Sleeper",
                                                "auth_token": fleet.user_session}), action)
        assert forbidden(fleet.request("core", {"action": action, "agent": "Sleeper",
                                                "auth_token": "0" * 64}), action)
    assert sleeper(fleet)["pid"] == pid and sleeper(fleet)["state"] == "running"
    assert os.path.exists("/proc/%d" % pid)
    assert metric(fleet, "core", "keel_bad_requests_total",
                  'service="core",reason="forbidden"') == before + 6

    reply = fleet.request("core", {"action": "restart_agent", "agent": "Sleeper",
                                   "auth_token": fleet.admin_session})
    assert reply["status"] == "success", reply
    assert wait_for(lambda: sleeper(fleet)["pid"] not in (None, pid))
    pid = sleeper(fleet)["pid"]
    reply = fleet.request("core", {"action": "stop_agent", "agent": "Sleeper",
                                   "auth_token": fleet.admin_session})
    assert reply["status"] == "success", reply
    assert wait_for(lambda: sleeper(fleet)["state"] == "exited")
    assert fleet.request("core", {"action": "restart_agent", "agent": "Sleeper",
                                  "auth_token": fleet.admin_session})["status"] == "success"
    assert wait_for(lambda: sleeper(fleet)["state"] == "running")


def test_unified_system_agent_service_control_needs_an_administrator(fleet):
    """UnifiedSystemAgent's start/stop/restart_service on 7000, and on its
    old port's actions through the same table, answer only an administrator;
    its reads stay public."""
    for action in ("start_service", "stop_service", "restart_service", "cleanup_system"):
        assert forbidden(fleet.request("core", {"action": action, "service_name": "x"}), action)
        reply = fleet.request("core", {"action": action, "service_name": "x",
                                       "auth_token": fleet.admin_session})
        assert reply["status"] == "success", (action, reply)
    assert fleet.request("core", {"action": "list_services"})["status"] == "success"
    assert fleet.request("core", {"action": "get_service_status", "service_name": "x"})["status"] == "success"


def test_the_handler_never_sees_the_token(fleet):
    """A request's `auth_token` is checked, then removed: a handler that
    passes its request on (the coordinator queues whole requests for the
    reasoning agents) cannot leak an administrator's token downstream."""
    cot = FakeAgent()
    try:
        register(fleet, "ChainOfThoughtAgent", cot.port)
        reply = fleet.request("core", {"type": "text", "data": "hi", "auth_token": fleet.admin_session})
        assert reply["status"] == "success", reply
        assert wait_for(lambda: cot.got)
        assert cot.got[0]["parameters"]["request"]["data"] == "hi"
        assert fleet.admin_session not in repr(cot.got)
    finally:
        cot.close()


def keelctl_with(k, env, *args):
    return subprocess.run(command([KEELCTL, "--port-offset", str(k.offset)] + list(args)),
                          env=dict(k.env, **env), capture_output=True, timeout=scaled(30), text=True,
                          cwd=k.data_dir)


def test_keelctl_signs_its_own_token(fleet):
    """`keelctl agent restart` runs as whoever can read the key file and
    signs itself a short administrator's token with it; given a KEEL_TOKEN
    that is not an administrator's, it is refused."""
    pid = sleeper(fleet)["pid"]
    out = fleet.keelctl("agent", "restart", "Sleeper")
    assert out.returncode == 0, out.stderr
    assert wait_for(lambda: sleeper(fleet)["state"] == "running" and sleeper(fleet)["pid"] != pid)
    out = keelctl_with(fleet, {"KEEL_TOKEN": fleet.user_session}, "agent", "restart", "Sleeper")
    assert out.returncode == 4 and "Forbidden: restart_agent" in out.stderr, out.stderr


def test_set_thresholds_is_an_administrators_and_range_checked(fleet):
    """Attack (RS-25): `set_thresholds` with cpu/memory/gpu = -1, unauthenticated,
    after which every allocate_resources failed.  Now refused without a token;
    with one, an out-of-range value is refused with a clear error and changes
    nothing, not even the valid values beside it; allocate_resources still
    succeeds afterwards (RS-17)."""
    before = fleet.request("resource", {"action": "get_status"})["thresholds"]
    attack = {"action": "set_thresholds", "cpu_threshold": -1, "memory_threshold": -1, "gpu_threshold": -1}
    assert forbidden(fleet.request("resource", attack), "set_thresholds")
    reply = fleet.request("resource", dict(attack, auth_token=fleet.admin_session))
    assert reply["status"] == "error" and reply["message"].startswith(
        "Invalid cpu_threshold: -1 is not a percentage above 0 and at most 100"), reply
    mixed = {"action": "set_thresholds", "cpu_threshold": 50, "gpu_threshold": 101,
             "auth_token": fleet.admin_session}
    assert fleet.request("resource", mixed)["message"].startswith("Invalid gpu_threshold")
    assert fleet.request("resource", {"action": "get_status"})["thresholds"] == before
    reply = fleet.request("resource", {"action": "allocate_resources", "resource_id": "after-attack",
                                       "resource_type": "custom", "auth_token": fleet.admin_session})
    assert reply["status"] == "success", reply
    # The VRAM optimizer's settings, in the command dialect's own words.
    assert fleet.request("resource", {"command": "SET_IDLE_TIMEOUT", "payload": {"timeout_seconds": 5}}) == {
        "status": "ERROR", "message": "Forbidden: SET_IDLE_TIMEOUT needs an administrator's token"}


def post(k, service, path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    status, _, _ = http_request(k.http(service, path), body=body, headers=headers)
    return status


def test_trigger_recovery_alike_on_zmq_and_http(fleet):
    """Attack: `trigger_recovery` on 7002 (OH-60's tiers) restarted agents for
    anyone.  The same route is refused alike on ZMQ and on HTTP's
    POST /trigger_recovery (401 without a token, 403 with a user's), the
    child untouched; an administrator's session opens both, and the hub's
    restart through CoreOrchestrator carries the hub's own token."""
    assert wait_for(lambda: sleeper(fleet)["state"] == "running")
    pid = sleeper(fleet)["pid"]
    body = {"agent_name": "Sleeper", "strategy": "tier1"}
    assert forbidden(fleet.request("observability", dict(body, action="trigger_recovery")),
                     "trigger_recovery")
    assert forbidden(fleet.request("observability", dict(body, action="trigger_recovery",
                                                         auth_token=fleet.user_session)), "trigger_recovery")
    assert post(fleet, "observability", "/trigger_recovery", body) == 401
    assert post(fleet, "observability", "/trigger_recovery", body, fleet.user_session) == 403
    assert sleeper(fleet)["pid"] == pid

    reply = fleet.request("observability", dict(body, action="trigger_recovery",
                                                auth_token=fleet.admin_session))
    assert reply["status"] == "success" and reply["actions"] == ["restart_agent"], reply
    assert wait_for(lambda: sleeper(fleet)["pid"] not in (None, pid))
    pid = sleeper(fleet)["pid"]
    assert post(fleet, "observability", "/trigger_recovery", body, fleet.admin_session) == 200
    assert wait_for(lambda: sleeper(fleet)["pid"] not in (None, pid))
    assert metric(fleet, "observability", "keel_bad_requests_total",
                  'service="observability",reason="forbidden"') >= 4


def test_log_metric_needs_a_trusted_source(keel_factory, fleet):
    """log_metric is the kept agents' telemetry (issue 15: PerformanceLoggerAgent's
    form on 7128), so it is an agent's route: a stranger outside
    `trusted_sources` cannot fill the hub's tables or move its alerts, while
    an agent on a trusted address (loopback by default) and an administrator
    can."""
    metric_ = {"action": "log_metric", "service": "intruder", "metric_type": "response_time", "value": 9}
    get = {"action": "get_metrics", "service": "intruder"}
    hub = keel_factory("observability", config="trusted_sources: [10.99.0.0/16]\n")
    assert hub.request("observability", metric_) == {"status": "error", "error": AGENT_REFUSAL.replace(
        "register_agent", "log_metric")}
    assert hub.request("observability", get)["metrics"]["response_time"]["current"] == 0.0
    assert hub.admin("observability", metric_) == {"status": "success", "message": "Metric logged"}
    assert hub.request("observability", get)["metrics"]["response_time"]["current"] == 9
    assert fleet.request("observability", metric_) == {"status": "success", "message": "Metric logged"}


def test_twenty_log_performance_calls_do_not_move_a_trust_score(fleet):
    """Attack (SG-26, SG-27): twenty unauthenticated `log_performance` calls
    with success false drove a model's trust score from 0.994 to 0.033.  Now
    each is refused and the score stays where it was; with an administrator's
    token the same call moves it, as the formula says."""
    model = {"model_id": "victim"}
    admin = dict(model, action="log_performance", success=True, response_time=0.1,
                 auth_token=fleet.admin_session)
    assert fleet.request("security", admin)["status"] == "success"
    score = fleet.request("security", dict(model, action="get_trust_score"))["trust_score"]
    assert score > 0.99
    for _ in range(20):
        reply = fleet.request("security", dict(model, action="log_performance", success=False))
        assert forbidden(reply, "log_performance")
    assert fleet.request("security", dict(model, action="get_trust_score"))["trust_score"] == score
    reply = fleet.request("security", dict(admin, success=False, response_time=0.0))
    assert reply["new_trust_score"] < score


def test_service_tokens_and_the_signing_key_are_an_administrators(fleet):
    """issue_token and rotate_jwt_key take the administrator's token in
    `auth_token` like every other route; an ordinary user's session gets the
    same refusal as no token."""
    for token in (None, fleet.user_session):
        request = {"action": "issue_token", "subject": "x", "scopes": ["admin"]}
        if token:
            request["auth_token"] = token
        assert forbidden(fleet.request("security", request), "issue_token")
    reply = fleet.request("security", {"action": "issue_token", "subject": "ops", "scopes": ["admin"],
                                       "auth_token": fleet.admin_session})
    assert reply["status"] == "success"
    # the JWT just issued is itself an administrator's token, on another service too
    assert fleet.request("core", {"action": "cleanup_system", "auth_token": reply["token"]})["status"] == "success"


# BaseAgent._register_with_digital_twin (common/core/base_agent.py), as it sends it.
def base_agent_registration(name):
    return {"action": "register_agent", "agent_name": name, "status": "HEALTHY", "location": "MainPC",
            "registration_data": {"agent_id": name, "agent_type": "KnowledgeBase", "host": "127.0.0.1",
                                  "port": 5715, "health_check_port": 6715, "capabilities": [],
                                  "dependencies": [], "metadata": {"start_time": "2025-07-16T10:00:00",
                                                                   "python_version": "3.10.12"}}}


AGENT_REFUSAL = ("Forbidden: register_agent needs a CURVE client key, a trusted source address or "
                 "an administrator's token")


def test_agent_routes_from_an_untrusted_plaintext_source_are_refused(keel_factory, fleet):
    """Attack: anyone who could reach 7000 registered (or re-pointed) an agent.
    In plaintext mode an AGENT route is open to `trusted_sources` only: with a
    list that leaves out loopback, a kept agent's registration from 127.0.0.1
    is refused, in the command dialect's words too; with the default list
    (loopback) the same registration is accepted."""
    k = keel_factory("core", config="trusted_sources: [10.99.0.0/16]\n")
    reply = k.request("core", base_agent_registration("KnowledgeBase"))
    assert reply == {"status": "error", "error": AGENT_REFUSAL}
    # service_discovery_client.register_service's legacy form
    reply = k.request("core", {"command": "REGISTER", "payload": {"name": "stt", "port": 5800}})
    assert reply["status"] == "ERROR" and reply["message"].startswith("Forbidden: REGISTER needs")
    assert "KnowledgeBase" not in k.request("core", {"action": "list_agents"})["agents"]
    # an administrator's token still opens it
    assert k.admin("core", base_agent_registration("KnowledgeBase"))["status"] == "success"

    assert fleet.request("core", base_agent_registration("KnowledgeBase"))["status"] == "success"
    assert fleet.request("core", {"action": "get_agent_endpoint",
                                  "agent_name": "KnowledgeBase"})["port"] == 5715


def test_agent_routes_open_to_curve_clients_whatever_their_address(keel_factory, tmp_path):
    """With CURVE on, the peer the ZAP handler admitted is an agent, whatever
    its address: the registration goes through although trusted_sources
    leaves the loopback out; an administrator's route still needs the token."""
    certs = str(tmp_path / "certs")
    out = subprocess.run(command([KEELCTL, "certs", "generate", "--dir", certs]), capture_output=True,
                         text=True, timeout=scaled(30))
    assert out.returncode == 0, out.stderr
    k = keel_factory("core", config="trusted_sources: []\n",
                     env={"SECURE_ZMQ": "1", "ZMQ_CERTIFICATES_DIR": certs})
    c = Client(k.zmq("core"), curve=curve_keys(certs, "client"))
    assert c(base_agent_registration("KnowledgeBase"))["status"] == "success"
    assert forbidden(c({"action": "stop_agent", "agent": "KnowledgeBase"}), "stop_agent")
    c.close()


SERVICES = ("core", "resource", "observability", "errorbus", "security")
PRIVILEGES = {"public", "agent", "admin"}


def routes_of(k, service):
    status, body, _ = http_get(k.http(service, "/routes"))
    assert status == 200
    return json.loads(body)


def test_every_route_of_every_service_declares_a_privilege_and_a_known_module(fleet):
    """The table walk: every route of the five services, as attached at run
    time (GET /routes), declares public, agent or admin, names no module but
    its own service's, and the state changes the issue found open are now
    an administrator's on both transports."""
    seen = {}
    for service in SERVICES:
        table = routes_of(fleet, service)
        assert table["zmq"] and table["http"], service
        for route in table["zmq"]:
            assert route["privilege"] in PRIVILEGES, (service, route)
            assert route["module"] is None or route["module"] in table["modules"], (service, route)
            seen[(service, route["dialect"], route["name"])] = route["privilege"]
        for route in table["http"]:
            assert route["privilege"] in PRIVILEGES, (service, route)
            seen[(service, "http", route["method"] + " " + route["path"])] = route["privilege"]
    admin = [("core", "action", a) for a in ("stop_agent", "start_agent", "restart_agent", "start_service",
                                             "stop_service", "restart_service")]
    admin += [("resource", "action", "set_thresholds"), ("observability", "action", "trigger_recovery"),
              ("security", "action", "rotate_jwt_key"), ("security", "action", "log_performance"),
              ("observability", "http", "POST /trigger_recovery"), ("observability", "http", "POST /api/restart"),
              ("security", "http", "POST /jwt/rotate")]
    for key in admin:
        assert seen[key] == "admin", key
    for key in (("core", "action", "register_agent"), ("core", "command", "REGISTER"),
                ("core", "action", "report_error"), ("errorbus", "action", "report_error")):
        assert seen[key] == "agent", key
    for key in (("core", "action", "get_agent_endpoint"), ("core", "raw", None),
                ("security", "action", "login"), ("core", "http", "GET /health")):
        assert seen[key] == "public", key


def test_shipped_configurations_turn_curve_on_and_bad_sources_are_refused(tmp_path):
    """Attack: the two-machine configurations bound 0.0.0.0 with
    `secure_zmq: false`.  They now ship with CURVE on (SG-43) for Keel's own
    sockets, the kept agents' ports plaintext (they never turn CURVE on)
    and open to the two machines only; and a `trusted_sources` entry that is
    not an address is a configuration error that `keeld --check` reports,
    not a silently empty list."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    for name in ("mainpc.yaml", "pc2.yaml"):
        path = os.path.join(root, "config", name)
        text = open(path).read()
        assert "\nbind: 0.0.0.0\n" in text and "\nsecure_zmq: true\n" in text, name
        assert "\nagent_curve: false\n" in text, name
        assert "\ntrusted_sources: [127.0.0.0/8, \"::1\", 192.168.100.16, 192.168.100.17]\n" in text, name
    bad = tmp_path / "bad.yaml"
    bad.write_text("trusted_sources: [192.168.100.0/33]\n")
    out = subprocess.run(command([KEELD, "all", "--check", "--config", str(bad)]), capture_output=True,
                         text=True, timeout=scaled(30))
    assert out.returncode == 2
    assert 'trusted_sources: "192.168.100.0/33" is not an address or CIDR' in out.stderr
