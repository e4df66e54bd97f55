"""SecurityGateway, AgentTrustScorer part (spec part B2, SG-26 ... SG-46,
SG-49) and security monitoring: the exact reference scores, the clamp,
persistence, the schema, ErrorBus events and /metrics counters.  log_performance
is an administrator's route (no kept agent sends it), so the client carries a
token; test_privileges.py shows it refused without one."""
import json
import os
import shutil
import sqlite3
import subprocess
import time

import pytest
import zmq

from conftest import free_port, http_get
from security_helpers import FAST, Client, config, sec


@pytest.fixture
def gw(keel_factory):
    return keel_factory("security", config=FAST)


def log(c, model, success, rt=None, **kw):
    msg = {"action": "log_performance", "model_id": model, "success": success}
    if rt is not None:
        msg["response_time"] = rt
    msg.update(kw)
    r = c(msg)
    assert r["status"] == "success", r
    return r["new_trust_score"]


# Proves SG-27, SG-28 (docs/logic-preservation.md).
def test_sg26_sg27_sg28_sg29_reference_values(gw):
    """SG-26..SG-29: the formula and the original's reference doubles."""
    c = sec(gw, admin=True)
    assert log(c, "a", True) == 1.0                 # rt defaults to 0.0
    assert log(c, "b", False, 0) == 0.3
    assert log(c, "c", True, 0) == 1.0 and log(c, "c", False, 0) == 0.6499999999999999
    log(c, "d", True, 0)
    assert log(c, "d", False, 1.0) == 0.59
    log(c, "e", True, 0)
    log(c, "e", True, 0)
    assert log(c, "e", False, 2.5) == 0.6166666666666666
    assert log(c, "f", True, 6.0) == 0.7


def test_sg30_sg31_no_smoothing_and_clamp(gw):
    """SG-30: the old score has no effect; SG-31: clamped to [0, 1] (the
    original returned 1.06 for rt = -1)."""
    c = sec(gw, admin=True)
    assert log(c, "g", True, -1.0) == 1.0
    log(c, "h", False, 100)
    assert log(c, "h", True, 0) == 0.5 * 0.7 + 0.3


# Proves SG-32, SG-33 (docs/logic-preservation.md).
def test_sg32_sg33_get_trust_score(gw):
    c = sec(gw, admin=True)
    assert c({"action": "get_trust_score", "model_id": "never"}) == {"status": "success", "trust_score": 0.5}
    conn = sqlite3.connect(os.path.join(gw.data_dir, "security", "agent_trust_scores.db"))
    assert conn.execute("SELECT COUNT(*) FROM model_scores").fetchone()[0] == 0
    s = log(c, "m", True, 1.234)
    assert c({"action": "get_trust_score", "model_id": "m"}) == {"status": "success", "trust_score": s}


def test_sg34_history(gw):
    """SG-34: default 10 entries, newest first, exact shape."""
    c = sec(gw, admin=True)
    for i in range(12):
        log(c, "h", i % 2 == 0, i / 10)
    r = c({"action": "get_performance_history", "model_id": "h"})
    hist = r["history"]
    assert r["status"] == "success" and len(hist) == 10
    assert hist[0]["response_time"] == 1.1 and hist[0]["success"] is False
    assert set(hist[0]) == {"success", "response_time", "timestamp"}
    assert time.strptime(hist[0]["timestamp"], "%Y-%m-%d %H:%M:%S.%f")
    assert hist[0]["timestamp"] >= hist[1]["timestamp"]
    assert len(c({"action": "get_performance_history", "model_id": "h", "limit": 3})["history"]) == 3
    assert len(c({"action": "get_performance_history", "model_id": "h", "limit": -1})["history"]) == 12


def test_sg35_missing_fields(gw):
    """SG-35: the original's KeyError texts."""
    c = sec(gw, admin=True)
    assert c({"action": "log_performance", "success": True}) == {"status": "error", "message": "'model_id'"}
    assert c({"action": "get_trust_score"}) == {"status": "error", "message": "'model_id'"}
    assert c({"action": "get_performance_history"}) == {"status": "error", "message": "'model_id'"}
    assert c({"action": "log_performance", "model_id": "x"}) == {"status": "error", "message": "'success'"}
    r = c({"action": "log_performance", "model_id": "x", "success": True, "response_time": "fast"})
    assert r["status"] == "error"
    assert log(c, "s", "false") == 0.3      # the string "false" is a failure (fixed)


# Proves SG-37 (docs/logic-preservation.md).
def test_sg36_sg37_sg38_sg39_schema_persistence(keel_factory):
    """SG-36/37: tables and columns; SG-38: both rows per call; SG-39: scores
    persist across kill -9."""
    k = keel_factory("security", config=FAST)
    c = sec(k, admin=True)
    s = log(c, "p", True, 0.5, error_message="none")
    log(c, "p", False, 0.5, error_message="timeout")
    c.close()
    k.kill9()
    path = os.path.join(k.data_dir, "security", "agent_trust_scores.db")
    conn = sqlite3.connect(path)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(model_scores)")]
    assert cols == ["model_id", "trust_score", "total_interactions", "successful_interactions", "last_updated"]
    cols = [r[1] for r in conn.execute("PRAGMA table_info(performance_logs)")]
    assert cols == ["id", "model_id", "success", "response_time", "error_message", "timestamp"]
    assert conn.execute("SELECT total_interactions, successful_interactions FROM model_scores").fetchone() == (2, 1)
    assert [r[0] for r in conn.execute("SELECT error_message FROM performance_logs ORDER BY id")] == \
        ["none", "timeout"]
    conn.close()
    k.start()
    c = sec(k, admin=True)
    assert c({"action": "get_trust_score", "model_id": "p"})["trust_score"] == 0.5 * 0.7 + 0.9 * 0.3
    assert s == 1.0 * 0.7 + 0.9 * 0.3


def test_sg46_get_agent_scores(gw):
    """SG-46: implemented (LearningAdjusterAgent's request)."""
    c = sec(gw, admin=True)
    log(c, "m1", True)
    log(c, "m2", False)
    r = c({"action": "get_agent_scores", "agent": "LearningAdjusterAgent"})
    assert r == {"status": "success", "scores": {"m1": 1.0, "m2": 0.3}}


def test_sg49_legacy_ports(keel_factory):
    """SG-49: with legacy_ports, 7116 serves auth and 7122 serves trust."""
    k = keel_factory("security", config=config("legacy_ports: true\n"), extra_ports=(7116, 7122))
    auth, trust = Client(k.endpoint(7116)), Client(k.endpoint(7122), token=k.admin_token())
    assert auth({"action": "register", "user_id": "a", "password": "p"})["status"] == "success"
    assert auth({"action": "log_performance", "model_id": "x", "success": True})["message"] == \
        "Unknown action: log_performance"
    assert trust({"action": "log_performance", "model_id": "x", "success": True})["new_trust_score"] == 1.0
    assert trust({"nothing": 1}) == {"status": "error", "message": "Unknown action: None"}


def bus(port):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"ERROR")
    sub.bind("tcp://127.0.0.1:%d" % port)
    return sub


def events(sub, wait_s=3.0, until=None):
    seen = []
    deadline = time.time() + wait_s
    while time.time() < deadline:
        if sub.poll(100):
            frame = sub.recv()
            assert frame.startswith(b"ERROR:")
            seen.append(json.loads(frame[6:]))
            if until and any(e["error_type"] == until for e in seen):
                break
    return seen


# Proves SG-41 (docs/logic-preservation.md).
def test_sg40_sg41_security_events_on_errorbus_and_metrics(keel_factory):
    """SG-40/41 and security monitoring: a burst of failed logins, a lockout,
    a forged token, a sharp trust drop and a non-JSON request are published
    to the ErrorBus (F1 framing) and counted in /metrics."""
    port = free_port()
    sub = bus(port)
    k = keel_factory("security", config=config(
        "  monitor: {failed_login_burst: 3, event_interval_s: 0}\n"
        "error_bus_endpoint: tcp://127.0.0.1:%d\n" % port))
    c = sec(k, admin=True)
    sub.poll(700)       # lets the SUB socket attach the new peer and send its subscription
    for _ in range(5):
        c({"action": "login", "user_id": "victim", "password": "x"})
    c({"action": "validate_token", "token": "a.b.c"})
    log(c, "t", True, 0)
    log(c, "t", False, 10)               # 1.0 -> 0.35
    c(b"not json")
    c({"action": "register", "user_id": "x", "password": 123})
    c({"action": "login", "user_id": "x", "password": [1]})
    seen = events(sub, 3.0)
    types = {e["error_type"] for e in seen}
    assert {"SECURITY_LOGIN_BURST", "SECURITY_LOCKOUT", "SECURITY_TOKEN_MISUSE", "SECURITY_TRUST_DROP",
            "PROCESSING_ERROR", "REGISTRATION_ERROR", "LOGIN_ERROR"} <= types, types
    assert all(e["agent"] == "SecurityGateway" and "timestamp" in e and "severity" in e for e in seen)
    _, body, _ = http_get(k.http("security", "/metrics"))
    text = body.decode()
    assert 'keel_security_logins_total{outcome="failure"} 5' in text
    assert 'keel_security_lockouts_total{kind="user"} 1' in text
    assert 'keel_security_token_misuse_total{kind="forged"} 1' in text
    assert "keel_security_trust_drops_total 1" in text
    # The same counts over the wire, to anyone (the dashboard asks so), every kind named.
    counters = k.request("security", {"action": "get_security_counters"})
    assert counters["status"] == "success", counters
    assert counters["logins"] == {"success": 0, "failure": 5, "locked": 0}
    assert counters["lockouts"]["user"] == 1
    assert counters["token_misuse"]["forged"] == 1 and counters["token_misuse"]["expired"] == 0
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
        assert check.returncode == 0, check.stderr
    sub.close()
