"""The hub's web dashboard (issue 9) without a browser: the page compiled
into keeld, /api/dashboard with the other services down (they show as
unavailable, the page still answers at once), the 1 s cache shared by all
viewers, one agent's histories, and the two protected actions, with a real
CoreOrchestrator stand-in on the hub's configured core port; with keeld all,
the services' rates and the Security figures asked of SecurityGateway.  The browser
scenarios are in tests/browser (make browser)."""
import json
import time

import pytest

from conftest import free_offset, http_get, http_request
from observability_util import (StandInAgent, StandInCore, _Router, agent_entry, hub_config,
                                wait_until, write_jwt_keys)


class CoreAt(StandInCore):
    """StandInCore on a chosen port: the hub's default core endpoint.  Its
    get_agent_status says what CoreOrchestrator's supervisor says: an agent
    it runs has a `process`, one it only watches has none."""

    def __init__(self, port, restart_ok=True):
        self.agents = {}
        self.restart_ok = restart_ok
        self.on_restart = None
        _Router.__init__(self, port)

    def reply(self, request):
        if isinstance(request, dict) and request.get("action") == "get_agent_status":
            return {"status": "success", "agents": {
                "agent-up": {"status": "HEALTHY", "last_seen": None, "port": None,
                             "process": {"state": "running", "pid": 4242, "restarts": 0,
                                         "last_exit": None, "log": "agent-up.log"}},
                "agent-silent": {"status": "unknown", "last_seen": None, "port": None}}}
        return super().reply(request)


@pytest.fixture
def dash(keel_factory, tmp_path):
    offset = free_offset()
    up, silent = StandInAgent("ok"), StandInAgent("silent")
    core = CoreAt(7000 + offset)
    token = write_jwt_keys(str(tmp_path / "jwt.keys"))
    cfg = hub_config([agent_entry("agent-up", up), agent_entry("agent-silent", silent)],
                     metrics={"collection_interval_ms": 100}, history={"step_s": 1},
                     top={"security": {"jwt_keys_file": str(tmp_path / "jwt.keys")}})
    k = keel_factory("observability", config=cfg, offset=offset)
    k.token, k.core = token, core
    k.admin_token = lambda: token     # the configured key file, not the data directory's
    yield k
    for s in (up, silent, core):
        s.stop()


def get_json(k, path):
    status, body, _ = http_get(k.http("observability", path))
    return status, json.loads(body)


def post(k, path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    status, data, _ = http_request(k.http("observability", path), body=body, headers=headers)
    return status, json.loads(data) if data else None


def test_page_and_assets_come_from_the_binary(dash):
    for path, kind, text in (("/", "text/html", b"<title>Keel dashboard</title>"),
                             ("/ui/app.js", "text/javascript", b"/api/dashboard"),
                             ("/ui/app.css", "text/css", b"tr.down"),
                             ("/ui/chart.min.js", "text/javascript", b"Chart.js v"),
                             ("/favicon.ico", "image/svg+xml", b"<svg"),
                             ("/ui/favicon.svg", "image/svg+xml", b"<svg")):
        status, body, headers = http_get(dash.http("observability", path))
        assert status == 200, path
        assert headers["Content-Type"].startswith(kind)
        assert text in body
    assert http_get(dash.http("observability", "/ui/nothing.js"))[0] == 404


def test_services_down_show_unavailable_and_the_fleet_still_answers(dash):
    started = time.time()
    status, doc = get_json(dash, "/api/dashboard")
    assert status == 200
    assert time.time() - started < 1.5
    for name in ("resource", "errorbus", "security"):
        assert doc["services"][name]["available"] is False
        assert doc["services"][name]["error"]
    assert doc["services"]["security"]["counters"] is None
    # The core stand-in answers get_agent_status only with an error: still an answer.
    assert doc["services"]["core"]["available"] is True

    def silent_down():
        fleet = get_json(dash, "/api/dashboard")[1]["fleet"]
        return fleet if fleet[0]["state"] == "down" else None
    fleet = wait_until(silent_down, timeout=10)
    assert fleet, "the silent agent turns down"
    assert [a["name"] for a in fleet] == ["agent-silent", "agent-up"], "worst first"
    assert fleet[1]["state"] == "up" and fleet[1]["latency_ms"] > 0
    assert "failure_probability" in fleet[0] and "recovery_tier" in fleet[0]
    # Restart is offered only where CoreOrchestrator runs the agent.
    assert fleet[1]["supervised"] is True and fleet[0]["supervised"] is False


def test_viewers_share_one_document_a_second(dash):
    first = get_json(dash, "/api/dashboard")[1]
    again = get_json(dash, "/api/dashboard")[1]
    assert again["generated_ts"] == first["generated_ts"]
    time.sleep(1.1)
    assert get_json(dash, "/api/dashboard")[1]["generated_ts"] > first["generated_ts"]


def test_one_agent_has_its_histories(dash):
    dash.admin("observability", {"action": "log_metric", "service": "agent-up",
                                   "metric_type": "response_time", "value": 0.25})
    doc = wait_until(lambda: (lambda d: d if d["series"] else None)(
        get_json(dash, "/api/agent?name=agent-up")[1]), timeout=10)
    assert doc["agent"]["name"] == "agent-up"
    assert doc["agent"]["supervised"] is True
    assert get_json(dash, "/api/agent?name=agent-silent")[1]["agent"]["supervised"] is False
    assert doc["series"]["response_time"][-1][1] == pytest.approx(0.25)
    assert doc["errors"] is None and doc["errors_unavailable"]
    assert get_json(dash, "/api/agent?name=nobody")[0] == 404
    assert get_json(dash, "/api/agent")[0] == 400


def test_restart_needs_a_token_and_goes_to_core(dash):
    assert post(dash, "/api/restart", {"agent_name": "agent-up"})[0] == 401
    assert post(dash, "/api/restart", {"agent_name": "agent-up"}, token="not-a-token")[0] in (401, 403)
    assert dash.core.restarts() == []
    status, reply = post(dash, "/api/restart", {"agent_name": "agent-up"}, token=dash.token)
    assert status == 200 and reply["status"] == "success"
    assert dash.core.restarts() == ["agent-up"]
    recovery = get_json(dash, "/api/agent?name=agent-up")[1]["recovery"]
    assert recovery[0]["action"] == "dashboard_restart" and recovery[0]["success"] is True
    assert post(dash, "/api/restart", {"agent_name": ""}, token=dash.token)[0] == 400
    assert post(dash, "/api/restart", b"not json", token=dash.token)[0] == 400


def test_restart_refused_by_core_is_reported(dash):
    dash.core.restart_ok = False
    status, reply = post(dash, "/api/restart", {"agent_name": "agent-up"}, token=dash.token)
    assert status == 400 and reply["error"] == "cannot restart"
    recovery = get_json(dash, "/api/agent?name=agent-up")[1]["recovery"]
    assert recovery[0]["success"] is False and recovery[0]["error"] == "cannot restart"


def test_alert_acknowledged_through_the_hub(dash):
    rule = {"rule_id": "dash_mem", "metric_name": "memory_percent", "condition": "gt",
            "threshold": 0, "severity": "warning", "for_s": 0}
    assert post(dash, "/add_alert_rule", rule, token=dash.token)[0] == 200

    def active():
        alerts = get_json(dash, "/api/dashboard")[1]["alerts"]["active_alerts"]
        return [a for a in alerts if a["rule_id"] == "dash_mem"]
    assert wait_until(active, timeout=10)
    ack = {"rule_id": "dash_mem", "metric_name": "memory_percent"}
    assert post(dash, "/api/ack", ack)[0] == 401
    status, reply = post(dash, "/api/ack", ack, token=dash.token)
    assert status == 200, reply
    assert wait_until(lambda: (active() or [{}])[0].get("acknowledged") is True, timeout=5)
    assert post(dash, "/api/ack", {"rule_id": "nothing", "metric_name": "x"}, token=dash.token)[0] == 404


def history(k, query):
    status, doc = get_json(k, "/api/history?" + query)
    assert status == 200, doc
    return doc


def test_agent_history_has_latency_and_failures(dash):
    def points(name, series):
        doc = history(dash, "range=15m&agent=" + name)
        return doc["series"]["agent/%s/%s" % (name, series)]
    up = wait_until(lambda: (lambda p: p if len(p) >= 2 else None)(points("agent-up", "latency_ms")),
                    timeout=15)
    assert all(p[1] > 0 for p in up), "an answered probe takes some time"
    assert up == sorted(up), "oldest first"
    assert all(p[1] == 0 for p in points("agent-up", "error_pct"))
    silent = wait_until(lambda: points("agent-silent", "error_pct"), timeout=10)
    assert all(p[1] == 100 for p in silent)
    assert points("agent-silent", "latency_ms") == [], "a probe that timed out has no latency"
    doc = history(dash, "range=15m&agent=agent-up")
    assert doc["step_s"] == 1 and doc["range_s"] == 900
    assert all(doc["now"] - 900 < p[0] <= doc["now"] for p in up)
    hour = history(dash, "range=1h&agent=agent-up")
    assert hour["step_s"] == 60 and hour["series"]["agent/agent-up/latency_ms"], "the open minute"
    assert history(dash, "range=24h&agent=agent-up")["step_s"] == 900
    for bad in ("range=2h", "", "range=15m&agent=", "range=15m&agent=" + "x" * 300):
        assert get_json(dash, "/api/history?" + bad)[0] == 400


def test_history_of_keel_services_and_error_levels(keel_factory):
    """keeld all: each service's requests/s, p99 and error replies from its
    own /metrics, and ErrorBus's stored events by level."""
    k = keel_factory("all", config=json.dumps({"observability": {"discover": False,
                                                                 "history": {"step_s": 1}}}))
    # A rate needs two readings: wait for the first interval, then make traffic.
    assert wait_until(lambda: history(k, "range=15m")["series"]["service/core/requests_per_s"], timeout=10)
    for _ in range(20):
        k.request("core", {"action": "ping"})
    k.request("core", {"action": "no_such_action"})
    for level in ("error", "error", "warning"):
        k.request("errorbus", {"action": "report_error", "agent": "dash-test", "error_type": "t",
                               "message": "m", "severity": level})

    def figures():
        series = history(k, "range=15m")["series"]
        core = series["service/core/requests_per_s"]
        errors = series["errorbus/error/per_min"]
        if sum(p[1] for p in core) > 0 and sum(p[1] for p in errors) > 0:
            return series
        k.request("core", {"action": "ping"})
        return None
    series = wait_until(figures, timeout=20)
    assert series, "rates appear within a few steps"
    assert sum(p[1] for p in series["service/core/errors_per_s"]) > 0
    assert series["service/core/p99_ms"] and all(p[1] > 0 for p in series["service/core/p99_ms"])
    assert sum(p[1] for p in series["errorbus/warning/per_min"]) > 0
    assert sum(p[1] for p in series["errorbus/critical/per_min"]) == 0
    assert set(series) == {"service/%s/%s" % (s, f) for s in ("core", "resource", "observability",
                                                             "errorbus", "security")
                           for f in ("requests_per_s", "p99_ms", "errors_per_s")} | \
        {"errorbus/%s/per_min" % lv for lv in ("debug", "info", "warning", "error", "critical")}


def test_security_figures_are_asked_of_the_gateway(keel_factory):
    """keeld all: the Security view's counts come from SecurityGateway's
    get_security_counters on 7005, not from its Prometheus text."""
    k = keel_factory("all", config=json.dumps({"observability": {"discover": False}}))
    for _ in range(2):
        k.request("security", {"action": "login", "user_id": "nobody", "password": "wrong"})

    def counted():
        security = get_json(k, "/api/dashboard")[1]["services"]["security"]
        return security if security["counters"] and security["counters"]["logins"]["failure"] == 2 else None
    security = wait_until(counted, timeout=10)
    assert security, "the failed logins reach the page"
    assert security["available"] is True
    assert security["counters"]["lockouts"] == {"user": 0, "source": 0}
