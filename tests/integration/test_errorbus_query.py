"""ErrorBus query port 7003: the originals' actions in their exact reply
shapes, the new queries, bad input on every action, and that everything
acknowledged or received survives kill -9."""
import json
import os
import signal
import sqlite3
import subprocess
import time

from conftest import KEELCTL, command, http_get, scaled
from errorbus_util import Publisher, query, rows, stored, wait_for


def test_eb14_health_check_counts_errors(keel_factory):
    """EB-14: health_check returns {"status":"success","data":{status, uptime,
    errors_collected, db_path}}."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    reply = query(k, "health_check")
    assert reply["status"] == "success"
    data = reply["data"]
    assert data["status"] == "ok" and data["uptime"] >= 0
    assert data["errors_collected"] >= 1
    assert data["db_path"].endswith("errorbus/error_system.db")


def test_eb15_errors_collected_minus_one_when_count_fails(keel_factory):
    """EB-15: errors_collected is -1 when the count query fails."""
    k = keel_factory("errorbus")
    db = sqlite3.connect(os.path.join(k.data_dir, "errorbus", "error_system.db"), timeout=10)
    db.execute("DROP VIEW error_log")
    db.execute("ALTER TABLE errors RENAME TO errors_gone")
    db.commit()
    db.close()
    assert query(k, "health_check")["data"]["errors_collected"] == -1


def test_eb16_eb17_recent_errors_newest_first_and_limit(keel_factory):
    """EB-16, EB-17: get_recent_errors gives at most 100 rows newest first with
    the seven ErrorBusService keys; data.limit caps them."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    base = time.time() - 1000
    for i in range(120):
        pub.f1({"agent": "Recent", "timestamp": base + i, "message": "m%d" % i})
    stored(k, "Recent", 120)
    reply = query(k, "get_recent_errors")
    assert reply["status"] == "success"
    data = reply["data"]
    assert len(data) == 100
    assert set(data[0]) == {"id", "timestamp", "agent", "error_type", "message", "severity",
                            "context"}
    assert isinstance(data[0]["context"], str)
    stamps = [r["timestamp"] for r in data]
    assert stamps == sorted(stamps, reverse=True)
    five = query(k, "get_recent_errors", {"limit": 5})["data"]
    assert len(five) == 5
    assert five[0]["timestamp"] == max(stamps)


def test_eb18_agent_health_ordered(keel_factory):
    """EB-18: every agent_health row, ordered by last_heartbeat DESC."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    pub.f1({"agent": "First"})
    stored(k, "First", 1)
    time.sleep(0.1)
    pub.f1({"agent": "Second"})
    stored(k, "Second", 1)
    agents = [r["agent"] for r in rows(k, "get_agent_health")]
    assert agents.index("Second") < agents.index("First")


# Proves EB-20, EB-21 (docs/logic-preservation.md).
def test_eb19_eb20_eb21_eb22_bad_requests(keel_factory):
    """EB-19..EB-22: unknown action (message key), non-object JSON, non-JSON
    bytes, envelope keys ignored; one reply to every request."""
    k = keel_factory("errorbus")
    assert query(k, "nope") == {"status": "error", "message": "Unknown action: nope"}
    assert k.request("errorbus", {"x": 1}) == {"status": "error", "message": "Unknown action: None"}
    reply = k.request("errorbus", b"[1, 2]")
    assert reply["status"] == "error"
    assert (reply.get("message") or reply.get("error")) == "Invalid request format"
    assert k.request("errorbus", b"{not json") == {"status": "error", "error": "Invalid JSON request"}
    reply = k.request("errorbus", {"action": "health_check", "source_agent": "X",
                                   "request_id": "r-1", "timestamp": "2025-07-16T10:00:00"})
    assert reply["status"] == "success"
    assert k.request("errorbus", b"x" * (1024 * 1024 + 10))["error"] == "Request too large"


def test_query_parameters_validated(keel_factory):
    """Every query action refuses parameters of the wrong type with a clear message."""
    k = keel_factory("errorbus")
    bad = [
        ("get_recent_errors", {"limit": "ten"}, "limit must be a positive integer"),
        ("get_recent_errors", {"limit": 0}, "limit must be a positive integer"),
        ("get_errors", {"severity": "apocalyptic"}, "Unknown severity: apocalyptic"),
        ("get_errors", {"agent": 5}, "agent must be a string"),
        ("get_errors", {"since": "yesterday"}, "since must be epoch seconds or an ISO-8601 time"),
        ("get_errors", {"after_id": "x"}, "after_id must be an integer"),
        ("get_errors_by_agent", {}, "Missing agent"),
        ("get_errors_by_severity", {}, "Missing severity"),
        ("get_errors_by_time_range", {}, "Missing since or until"),
        ("get_error_groups", {"across_sources": "yes"}, "across_sources must be true or false"),
        ("get_correlations", {"limit": -1}, "limit must be a positive integer"),
        ("heartbeat", {}, "Missing agent_name"),
        ("heartbeat", {"agent_name": 7}, "agent_name must be a string"),
    ]
    for action, data, message in bad:
        assert query(k, action, data) == {"status": "error", "message": message}, action
    assert k.request("errorbus", {"action": "get_errors", "data": [1]}) == \
        {"status": "error", "message": "data must be an object"}
    assert query(k, "report_error", None)["status"] == "success"
    assert query(k, "ping")["status"] == "ok"


def test_queries_by_agent_severity_and_time_range(keel_factory):
    """Recent errors, by agent, by severity (any vocabulary) and by time range."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    now = time.time()
    pub.f1({"agent": "QA", "severity": "ERROR", "timestamp": now - 3600, "message": "old"})
    pub.f1({"agent": "QA", "severity": "critical", "timestamp": now - 10, "message": "new"})
    pub.f1({"agent": "QB", "severity": "high", "timestamp": now - 5, "message": "b"})
    stored(k, "QA", 2)
    stored(k, "QB", 1)
    assert [r["message"] for r in rows(k, "get_errors_by_agent", agent="QA")] == ["new", "old"]
    errors = rows(k, "get_errors_by_severity", severity="ERROR")
    assert {r["message"] for r in errors if r["agent"] != "probe"} == {"old", "b"}
    crit = rows(k, "get_errors_by_severity", severity="ErrorSeverity.CRITICAL")
    assert [r["message"] for r in crit] == ["new"]
    ranged = rows(k, "get_errors_by_time_range", since=now - 60, until=now)
    assert {r["message"] for r in ranged if r["agent"] != "probe"} == {"new", "b"}
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now - 60))
    assert {r["message"] for r in rows(k, "get_errors", since=iso, agent="QA")} == {"new"}
    first = rows(k, "get_errors", agent="QA")[-1]["id"]
    after = rows(k, "get_errors", after_id=first, agent="QA")
    assert [r["message"] for r in after] == ["new"]


def test_eb50_report_error_acknowledged_once_stored(keel_factory):
    """EB-50: report_error replies "Error reported successfully" once the
    event is stored; severity defaults to low; BaseAgent's {"error":{...}}."""
    k = keel_factory("errorbus")
    reply = k.request("errorbus", {"action": "report_error", "error_type": "vram",
                                   "message": "too big", "source": "ModelManager",
                                   "details": {"mb": 100}})
    assert reply["status"] == "success" and reply["message"] == "Error reported successfully"
    got = rows(k, agent="ModelManager")
    assert len(got) == 1 and got[0]["severity"] == "low" and got[0]["level"] == "info"
    assert json.loads(got[0]["context"]) == {"mb": 100}
    reply = k.request("errorbus", {"action": "report_error", "error": {
        "error_id": "rep-1", "agent_id": "Planner", "severity": "ErrorSeverity.ERROR",
        "error_type": "plan", "message": "failed", "timestamp": "2025-07-16T10:00:00",
        "context": {}}})
    assert reply["error_id"] == "rep-1"
    assert rows(k, agent="Planner")[0]["error_id"] == "rep-1"


def test_eb51_get_error_stats(keel_factory):
    """EB-51: error_patterns by type {count, last_occurrence, severity} with
    precedence critical>high>medium>low, total_errors and the last 10."""
    k = keel_factory("errorbus")
    for sev in ("low", "high", "medium"):
        k.request("errorbus", {"action": "report_error", "error_type": "mixed", "severity": sev,
                               "source": "S", "message": "m"})
    k.request("errorbus", {"action": "report_error", "error_type": "lone", "severity": "critical",
                           "source": "S", "message": "m"})
    reply = query(k, "get_error_stats")
    assert reply["status"] == "success"
    mixed = reply["error_patterns"]["mixed"]
    assert mixed["count"] == 3 and mixed["severity"] == "high"
    assert "T" in mixed["last_occurrence"]
    assert reply["error_patterns"]["lone"]["severity"] == "critical"
    assert reply["total_errors"] == 4
    assert len(reply["recent_errors"]) == 4 and reply["recent_errors"][0]["type"] == "lone"


def test_groups_fingerprints_strip_numbers_and_ids(keel_factory):
    """Grouping: same source, type and stripped message form one group with a
    grouping version; across_sources joins the same signature from many agents."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    for i, agent in enumerate(["GA", "GA", "GA", "GB"]):
        pub.f1({"agent": agent, "error_type": "timeout",
                "message": "no reply from tcp://10.0.0.%d:71%02d after %d ms (req 0x%x)"
                % (i, i, 100 * i, 4096 + i)})
    stored(k, "GA", 3)
    stored(k, "GB", 1)
    groups = [g for g in rows(k, "get_error_groups") if g["agent"] in ("GA", "GB")]
    by_agent = {g["agent"]: g for g in groups}
    assert len(groups) == 2
    assert by_agent["GA"]["count"] == 3 and by_agent["GA"]["grouping_version"] == 1
    assert by_agent["GA"]["pattern"] == "no reply from <url> after <n> ms (req <hex>)"
    assert by_agent["GA"]["signature"] == by_agent["GB"]["signature"]
    across = [g for g in rows(k, "get_error_groups", across_sources=True)
              if g["signature"] == by_agent["GA"]["signature"]]
    assert across[0]["count"] == 4 and across[0]["sources"] == 2


def test_statistics_error_rates_per_agent(keel_factory):
    """Error rate per agent over the last minute, and pipeline counters."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    for _ in range(7):
        pub.f1({"agent": "Rated", "message": "x"})
    stored(k, "Rated", 7)
    data = query(k, "get_statistics")["data"]
    rate = [r for r in data["error_rates"] if r["agent"] == "Rated"][0]
    assert rate["last_minute"] == 7
    assert data["stored"] >= 8 and data["dropped"] == 0 and data["queued"] >= 0
    assert data["by_level_last_hour"]["error"] >= 7


def test_eb52_threshold_alerts(keel_factory):
    """EB-52: alerts at 1/3/5/10 for critical/high/medium/low, once per window."""
    k = keel_factory("errorbus", config="errorbus:\n  alert_interval_s: 0.2\n")
    send = lambda t, s: k.request("errorbus", {"action": "report_error", "error_type": t,
                                               "severity": s, "source": "Al", "message": "m"})
    send("crit_type", "critical")
    send("high_type", "high")
    send("high_type", "high")
    time.sleep(0.8)
    alerts = rows(k, "get_alerts")
    subjects = [a["subject"] for a in alerts if a["kind"] == "error_threshold"]
    assert subjects == ["crit_type"], alerts
    send("high_type", "high")
    wait_for(lambda: len(rows(k, "get_alerts")) >= 2, 5)
    time.sleep(0.6)
    subjects = sorted(a["subject"] for a in rows(k, "get_alerts"))
    assert subjects == ["crit_type", "high_type"]
    high = [a for a in rows(k, "get_alerts") if a["subject"] == "high_type"][0]
    assert high["severity"] == "high" and high["count"] == 3


def test_rate_alert_per_agent(keel_factory):
    """An agent above errorbus.rate_alert_per_min raises one error_rate alert."""
    k = keel_factory("errorbus", config="errorbus:\n  alert_interval_s: 0.2\n"
                                        "  rate_alert_per_min: 20\n")
    pub = Publisher(k)
    pub.join()
    for _ in range(25):
        pub.f1({"agent": "Noisy", "severity": "info", "error_type": "n%d" % _})
    stored(k, "Noisy", 25)
    got = wait_for(lambda: [a for a in rows(k, "get_alerts") if a["kind"] == "error_rate"], 5)
    assert len(got) == 1 and got[0]["subject"] == "Noisy" and got[0]["count"] >= 25


def test_eb45_eb47_http_health_and_prompt_shutdown(keel_factory):
    """EB-45: GET /health on 8003 is 200 with "status":"ok".  EB-46 (the old
    health REP is not kept: 7151 is the fan-out now): health answers on 7003
    (ping, health) and HTTP instead.  EB-47: SIGTERM stops the service within
    about 2 s with exit code 0."""
    k = keel_factory("errorbus")
    status, body, _ = http_get(k.http("errorbus"))
    assert status == 200 and json.loads(body)["status"] == "ok"
    for action in ("ping", "health"):
        reply = query(k, action)
        assert reply["status"] == "ok" and reply["service"] == "ErrorBus"
    started = time.time()
    assert k.stop(signal.SIGTERM) == 0
    assert time.time() - started < 2.5


def test_kill9_loses_nothing_received(keel_factory):
    """Durability: N events published, seen by the query API, kill -9, restart:
    all N are still there; so is an acknowledged report_error."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    n = 3000
    for i in range(n):
        pub.f1({"agent": "Durable", "message": "d%d" % i, "error_id": "dur-%d" % i})
    assert len(stored(k, "Durable", n, timeout=20)) == n
    ack = k.request("errorbus", {"action": "report_error", "source": "Acked", "message": "a"})
    assert ack["status"] == "success"
    k.kill9()
    k.start()
    got = rows(k, agent="Durable", limit=10000)
    assert sorted(r["error_id"] for r in got) == sorted("dur-%d" % i for i in range(n))
    assert len(rows(k, agent="Acked")) == 1
    # a replay of the same ids after the restart is recognised as duplicates
    pub2 = Publisher(k)
    pub2.join()
    for i in range(10):
        pub2.f1({"agent": "Durable", "message": "again", "error_id": "dur-%d" % i})
    wait_for(lambda: query(k, "get_statistics")["data"]["duplicates"] >= 10, 5)
    assert len(rows(k, agent="Durable", limit=10000)) == n


def test_retention_removes_old_events(keel_factory):
    """errorbus.retention_days: events older than the window are deleted."""
    k = keel_factory("errorbus", config="errorbus:\n  retention_days: 1\n"
                                        "  retention_interval_s: 0.2\n")
    pub = Publisher(k)
    pub.join()
    pub.f1({"agent": "Old", "timestamp": time.time() - 5 * 86400, "message": "old"})
    pub.f1({"agent": "Young", "message": "young"})
    stored(k, "Young", 1)
    assert wait_for(lambda: rows(k, agent="Old") == [] and len(rows(k, agent="Young")) == 1, 5)
    assert query(k, "health_check")["data"]["errors_collected"] >= 1


def test_keelctl_errors_tail_filter_follow_groups(keel_factory):
    """keelctl errors (tail, --agent, --severity, --follow) and errors groups."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    pub.f1({"agent": "CtlA", "severity": "critical", "error_type": "boom", "message": "first"})
    pub.f1({"agent": "CtlB", "severity": "info", "error_type": "meh", "message": "second"})
    stored(k, "CtlB", 1)
    out = k.keelctl("errors")
    assert out.returncode == 0 and "CtlA" in out.stdout and "CtlB" in out.stdout
    assert out.stdout.splitlines()[0].split()[:3] == ["ID", "TIME", "LEVEL"]
    out = k.keelctl("errors", "--severity", "critical")
    assert "CtlA" in out.stdout and "CtlB" not in out.stdout
    out = k.keelctl("--json", "errors", "--agent", "CtlB")
    assert [r["agent"] for r in json.loads(out.stdout)] == ["CtlB"]
    out = k.keelctl("errors", "groups")
    assert out.returncode == 0 and "boom" in out.stdout and out.stdout.startswith("COUNT")
    bad = k.keelctl("errors", "--severity", "nonsense")
    assert bad.returncode == 1 and "Unknown severity" in bad.stderr
    follow = subprocess.Popen(command([KEELCTL, "--port-offset", str(k.offset), "errors", "--follow",
                                       "--agent", "CtlF"]), stdout=subprocess.PIPE, text=True,
                              env=k.env)
    try:
        # Published until seen: a subscriber misses what is sent before it
        # has joined, and how long joining takes depends on the machine.
        import select
        line = ""
        deadline = time.time() + scaled(10)
        while "followed line" not in line and time.time() < deadline:
            pub.f1({"agent": "CtlF", "message": "followed line"})
            ready, _, _ = select.select([follow.stdout], [], [], 0.5)
            if ready:
                line = follow.stdout.readline()
        assert "followed line" in line
    finally:
        follow.send_signal(signal.SIGINT)
        assert follow.wait(scaled(5)) == 0


def test_clean_stop_writes_everything_received(keel_factory):
    """SIGTERM: what the ingress received is written out before exit, even
    when it was still queued; after a restart all of it is there."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    n = 20000
    base = query(k, "get_statistics")["data"]["received"]
    for i in range(n):
        pub.f1({"agent": "Drained", "message": "q%d" % i})
    assert wait_for(lambda: query(k, "get_statistics")["data"]["received"] >= base + n, 20)
    assert k.stop(signal.SIGTERM) == 0
    k.start()
    db = sqlite3.connect(os.path.join(k.data_dir, "errorbus", "error_system.db"), timeout=10)
    assert db.execute("SELECT count(*) FROM errors WHERE agent='Drained'").fetchone()[0] == n
    db.close()
    assert len(rows(k, agent="Drained", limit=n)) == 10000      # the query cap
