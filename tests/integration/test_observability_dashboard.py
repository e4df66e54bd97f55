"""The hub's web dashboard (issue 9) without a browser: the page compiled
into keeld, /api/dashboard with the other services down (they show as
unavailable, the page still answers at once), the 1 s cache shared by all
viewers, one agent's histories, and the two protected actions, with a real
CoreOrchestrator stand-in on the hub's configured core port.  The browser
scenarios are in tests/browser (make browser)."""
import json
import time

import pytest

from conftest import free_offset, http_get, http_request
from observability_util import (StandInAgent, StandInCore, _Router, agent_entry, hub_config,
                                wait_until, write_jwt_keys)


class CoreAt(StandInCore):
    """StandInCore on a chosen port: the hub's default core endpoint."""

    def __init__(self, port, restart_ok=True):
        self.agents = {}
        self.restart_ok = restart_ok
        self.on_restart = None
        _Router.__init__(self, port)


@pytest.fixture
def dash(keel_factory, tmp_path):
    offset = free_offset()
    up, silent = StandInAgent("ok"), StandInAgent("silent")
    core = CoreAt(7000 + offset)
    token = write_jwt_keys(str(tmp_path / "jwt.keys"))
    cfg = hub_config([agent_entry("agent-up", up), agent_entry("agent-silent", silent)],
                     metrics={"collection_interval_ms": 100},
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
                             ("/ui/app.css", "text/css", b"tr.down")):
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


def test_viewers_share_one_document_a_second(dash):
    first = get_json(dash, "/api/dashboard")[1]
    again = get_json(dash, "/api/dashboard")[1]
    assert again["generated_ts"] == first["generated_ts"]
    time.sleep(1.1)
    assert get_json(dash, "/api/dashboard")[1]["generated_ts"] > first["generated_ts"]


def test_one_agent_has_its_histories(dash):
    dash.admin("observability", {"action": "log_metric", "service": "agent-up",
                                   "metric_type": "response_time", "value": 0.25})
    doc = wait_until(lambda: (lambda d: d if len(d["latency_ms"]) >= 2 else None)(
        get_json(dash, "/api/agent?name=agent-up")[1]), timeout=10)
    assert doc["agent"]["name"] == "agent-up"
    assert all(len(p) == 2 and p[1] >= 0 for p in doc["latency_ms"])
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
