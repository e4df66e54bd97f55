"""ErrorManagementSystem duties of the ErrorBus: heartbeats, the recovery
worker (through CoreOrchestrator's restart_agent), correlation and the log
scanner.  CoreOrchestrator is played by a pyzmq REP socket on 7000+offset
that records each request and answers as a real one would."""
import base64
import json
import os
import sqlite3
import threading
import time

import zmq

from conftest import free_offset
from errorbus_util import Publisher, metric, query, rows, stored, wait_for

FAST = """
errorbus:
  heartbeat_interval_s: 0.2
  heartbeat_timeout_s: 0.3
  max_missed_heartbeats: 3
  recovery_poll_s: 0.1
  recovery_timeout_s: 1
"""


class FakeCore:
    """REP on CoreOrchestrator's port: records the recovery requests, replies
    success or error.  The registrations of ErrorBus's own names (announce.h:
    register_agent, heartbeat) are answered and kept apart, in `announced`."""

    def __init__(self, port, succeed=True):
        self.requests = []
        self.announced = []
        self.succeed = succeed
        self.sock = zmq.Context.instance().socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 100)
        self.sock.bind("tcp://127.0.0.1:%d" % port)
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                request = json.loads(self.sock.recv())
            except zmq.Again:
                continue
            if request.get("action") == "register_agent" or \
                    (request.get("action") == "heartbeat" and "agent_name" in request):
                self.announced.append(request)
                self.sock.send_json({"status": "success", "ttl_s": 300})
                continue
            self.requests.append(request)
            if self.succeed:
                reply = {"status": "success", "message": "Restarted %s" % request.get("agent_name")}
            else:
                reply = {"status": "error", "message": "Agent not supervised"}
            self.sock.send_json(reply)

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


def start_with_core(keel_factory, succeed, config=FAST):
    offset = free_offset()
    core = FakeCore(7000 + offset, succeed)
    keel = keel_factory("errorbus", config=config, offset=offset)
    return keel, core


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_eb23_eb25_eb26_eb27_eb31_heartbeats_offline_restart(keel_factory):
    """EB-23, EB-25, EB-26, EB-27, EB-31: a silent agent gains missed beats,
    goes offline at 3 with exactly one restart (restart_agent to
    CoreOrchestrator), a recovery_actions row is written, and a heartbeat
    brings it back online."""
    k, core = start_with_core(keel_factory, True)
    try:
        reply = query(k, "heartbeat", {"agent_name": "Sleepy"})
        assert reply == {"status": "success", "message": "Heartbeat received."}
        agents = query(k, "get_system_status")["agents"]
        assert agents["Sleepy"]["status"] == "online" and agents["Sleepy"]["missed_heartbeats"] == 0
        assert wait_for(lambda: core.requests, 5)
        time.sleep(1.0)
        assert len(core.requests) == 1
        # restart_agent is an administrator's route: the bus signs itself a token
        claims = jwt_claims(core.requests[0].pop("auth_token"))
        assert claims["sub"] == "ErrorBus" and claims["scopes"] == ["admin"]
        assert core.requests == [{"action": "restart_agent", "agent_name": "Sleepy",
                                  "reason": "Missed heartbeats"}]
        status = query(k, "get_system_status")["agents"]["Sleepy"]
        assert status["status"] == "offline" and status["missed_heartbeats"] > 3
        actions = rows(k, "get_recovery_actions")
        assert len(actions) == 1
        a = actions[0]
        assert (a["agent_name"], a["action_type"], a["reason"], a["success"], a["details"]) == \
            ("Sleepy", "restart", "Agent recovery", 1, "")
        query(k, "heartbeat", {"agent_name": "Sleepy"})
        status = query(k, "get_system_status")["agents"]["Sleepy"]
        assert status["status"] == "online" and status["missed_heartbeats"] == 0
    finally:
        core.close()


def test_eb24_system_status_recent_errors(keel_factory):
    """EB-24: get_system_status has agents and at most 20 error_log rows."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    for i in range(25):
        pub.f1({"source": "SysStat", "error_type": "t", "message": "m%d" % i, "details": {"i": i}})
    stored(k, "SysStat", 25)
    reply = query(k, "get_system_status")
    assert reply["status"] == "success" and isinstance(reply["agents"], dict)
    recent = reply["recent_errors"]
    assert len(recent) == 20
    assert set(recent[0]) == {"error_id", "source", "error_type", "message", "severity",
                              "timestamp", "details"}
    assert isinstance(recent[0]["details"], str)


def test_eb28_eb32_failed_restarts_escalate_and_worker_survives(keel_factory):
    """EB-28, EB-32: a restart that fails is retried to 3 attempts, then one
    critical recovery_failed event from RecoveryManager is stored and an
    alert raised; the worker keeps serving the FIFO queue afterwards."""
    k, core = start_with_core(keel_factory, False)
    try:
        query(k, "heartbeat", {"agent_name": "Doomed"})
        failed = wait_for(lambda: rows(k, agent="RecoveryManager"), 10)
        assert len(failed) == 1
        e = failed[0]
        assert (e["error_type"], e["severity"], e["message"]) == \
            ("recovery_failed", "critical", "Failed to restart Doomed after 3 attempts")
        assert [r["agent_name"] for r in core.requests] == ["Doomed"] * 3
        alerts = [a for a in rows(k, "get_alerts") if a["kind"] == "recovery_failed"]
        assert len(alerts) == 1 and alerts[0]["subject"] == "Doomed"
        assert rows(k, "get_recovery_actions") == []
        core.succeed = True
        query(k, "heartbeat", {"agent_name": "Second"})
        assert wait_for(lambda: rows(k, "get_recovery_actions"), 10)
        assert core.requests[-1]["agent_name"] == "Second"
    finally:
        core.close()


def test_eb29_eb30_restart_goes_through_core_orchestrator(keel_factory):
    """EB-29, EB-30 (changed): recovery asks CoreOrchestrator (7000+offset) to
    restart_agent instead of spawning python3 itself; no CoreOrchestrator
    means the attempt fails within the timeout and is retried."""
    k = keel_factory("errorbus", config=FAST)
    query(k, "heartbeat", {"agent_name": "NoCore"})
    failed = wait_for(lambda: rows(k, agent="RecoveryManager"), 15)
    assert failed and "NoCore" in failed[0]["message"]


def test_eb33_eb34_eb35_correlation_and_investigate(keel_factory):
    """EB-33, EB-34, EB-35: pairs from different sources less than 60 s apart
    among the newest 100 are correlations (ISO timestamps parsed), one
    investigate task is enqueued and consumed with only a log line."""
    k = keel_factory("errorbus", config="errorbus:\n  correlation_interval_s: 0.3\n"
                                        "  recovery_poll_s: 0.1\n")
    pub = Publisher(k)
    pub.join()
    now = time.time()
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now - 20))
    pub.f1({"agent": "CorA", "error_id": "ca", "timestamp": now - 500, "message": "a"})
    pub.f1({"agent": "CorB", "error_id": "cb", "timestamp": now - 490, "message": "b"})
    pub.f1({"agent": "CorB", "error_id": "cb2", "timestamp": now - 300, "message": "b2"})
    pub.f1({"agent": "CorC", "error_id": "cc", "timestamp": iso, "message": "c"})
    stored(k, "CorC", 1)
    found = wait_for(lambda: [c for c in rows(k, "get_correlations")
                              if {c["error_id_a"], c["error_id_b"]} == {"ca", "cb"}], 5)
    assert found and found[0]["delta_s"] == 10 or abs(found[0]["delta_s"] - 10) < 0.01
    pairs = {frozenset((c["error_id_a"], c["error_id_b"])) for c in rows(k, "get_correlations")}
    assert frozenset(("cb", "cb2")) not in pairs          # same source
    assert frozenset(("ca", "cc")) not in pairs           # far apart
    assert wait_for(lambda: query(k, "get_statistics")["data"]["investigations"] >= 1, 5)
    assert wait_for(lambda: query(k, "get_statistics")["data"]["recovery_queue"] == 0, 5)
    assert query(k, "ping")["status"] == "ok"


def test_eb36_eb37_error_log_ids_and_separate_tables(keel_factory):
    """EB-36, EB-37: error_log has the payload error_id or err-<uuid4>, a
    duplicate id does not crash ingestion, and recovery_actions has EMS's
    columns only."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    pub.f1({"agent": "Dup", "error_id": "same-id", "message": "one"})
    pub.f1({"agent": "Dup", "error_id": "same-id", "message": "two"})
    pub.f1({"agent": "Dup", "message": "three"})
    stored(k, "Dup", 2)
    assert wait_for(lambda: query(k, "get_statistics")["data"]["duplicates"] >= 1, 5)
    time.sleep(0.2)
    ids = sorted(r["error_id"] for r in rows(k, agent="Dup"))
    assert ids[1] == "same-id" and ids[0].startswith("err-") and len(ids) == 2
    db = sqlite3.connect(os.path.join(k.data_dir, "errorbus", "error_system.db"))
    cols = [r[1] for r in db.execute("PRAGMA table_info(recovery_actions)")]
    assert cols == ["action_id", "agent_name", "action_type", "reason", "timestamp", "success",
                    "details"]
    log_cols = [r[1] for r in db.execute("PRAGMA table_info(error_log)")]
    assert log_cols == ["error_id", "source", "error_type", "message", "severity", "timestamp",
                        "details"]
    db.close()
    assert query(k, "ping")["status"] == "ok"


# Proves EB-39, EB-40 (docs/logic-preservation.md).
def test_eb38_eb39_eb40_eb41_eb42_log_scanner(keel_factory, tmp_path):
    """EB-38..EB-42: both scanners' rules, byte offsets (no line twice),
    truncation re-read from 0, and the bus's own lines never ingested."""
    logs = tmp_path / "logs"
    logs.mkdir()
    config = "errorbus:\n  logs_dir: %s\n  log_scan_interval_s: 0.2\n" % logs
    k = keel_factory("errorbus", config=config)
    agent_log = logs / "model_manager.log"
    agent_log.write_text(
        "2025-07-16 ERROR zmq.error.ZMQError: Connection refused by peer\n"
        "2025-07-16 INFO TimeoutError but not an error line\n"
        "2025-07-16 CRITICAL CUDA out of memory on device 0\n"
        "2025-07-16 WARNING Out of memory soon\n")
    (logs / "errorbus.log").write_text("ERROR TimeoutError Connection refused\n")
    (logs / "keel.log").write_text('{"ts":"x","level":"error","component":"errorbus",'
                                   '"msg":"ERROR TimeoutError Connection refused"}\n')
    ems = wait_for(lambda: (lambda r: r if len(r) >= 2 else None)(
        rows(k, agent="LogScanner(model_manager)")), 5)
    assert sorted(r["message"] for r in ems) == [
        "2025-07-16 CRITICAL CUDA out of memory on device 0",
        "2025-07-16 ERROR zmq.error.ZMQError: Connection refused by peer"]
    assert all(r["error_type"] == "log_pattern_detected" and r["severity"] == "warning"
               and r["error_id"].startswith("log-") for r in ems)
    cfg = wait_for(lambda: (lambda r: r if len(r) >= 3 else None)(rows(k, agent="model_manager")), 5)
    kinds = sorted((r["error_type"], r["severity"]) for r in cfg)
    assert kinds == [("connection_error", "ERROR"), ("resource_error", "CRITICAL"),
                     ("timeout_error", "WARNING")]
    assert json.loads(cfg[0]["context"]) == {"source": "log_scan", "log_file": str(agent_log)}
    assert rows(k, agent="errorbus") == [] and rows(k, agent="LogScanner(errorbus)") == []
    assert rows(k, agent="LogScanner(keel)") == [] and rows(k, agent="keel") == []
    time.sleep(0.6)
    assert len(rows(k, agent="LogScanner(model_manager)")) == 2
    with open(agent_log, "a") as f:
        f.write("2025-07-16 ERROR TimeoutError in request\n")
    assert wait_for(lambda: len(rows(k, agent="LogScanner(model_manager)")) == 3, 5)
    agent_log.write_text("ERROR ZMQError again\n")
    assert wait_for(lambda: len(rows(k, agent="LogScanner(model_manager)")) == 4, 5)
    time.sleep(0.6)
    assert len(rows(k, agent="LogScanner(model_manager)")) == 4


def test_log_offsets_survive_restart(keel_factory, tmp_path):
    """EB-41: a restart of the bus does not ingest the same log lines again."""
    logs = tmp_path / "logs"
    logs.mkdir()
    config = "errorbus:\n  logs_dir: %s\n  log_scan_interval_s: 0.2\n" % logs
    k = keel_factory("errorbus", config=config)
    (logs / "a.log").write_text("ERROR Connection refused\n")
    assert wait_for(lambda: len(rows(k, agent="LogScanner(a)")) == 1, 5)
    k.restart()
    time.sleep(0.8)
    assert len(rows(k, agent="LogScanner(a)")) == 1


def test_keel_services_errors_arrive(keel_factory):
    """Every Keel service reports through errpub (F1 to 7150+offset); a
    report from a process using the same framing is stored under its title."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    pub.f1({"timestamp": time.time(), "agent": "CoreOrchestrator", "error_type": "supervisor",
            "message": "agent x exited", "severity": "ERROR", "details": {}})
    assert stored(k, "CoreOrchestrator", 1)[0]["error_type"] == "supervisor"
    assert wait_for(lambda: metric(k, "keel_errorbus_received_total", 'framing="F1"') >= 2, 5)


def test_eb43_eb44_legacy_config_file_and_env_substitution(keel_factory, tmp_path):
    """EB-43, EB-44: documentation/error_management/error_bus_config.yaml is
    read when present; a value that is exactly ${VAR} takes the environment
    value (or stays literal when unset); embedded ${VAR} stays as written."""
    conf = tmp_path / "documentation" / "error_management"
    conf.mkdir(parents=True)
    logs = tmp_path / "legacy_logs"
    logs.mkdir()
    (conf / "error_bus_config.yaml").write_text(
        "error_bus:\n  port: 7150\n  topic: 'ERROR:'\n"
        "error_management:\n"
        "  logs_dir: ${EB_TEST_LOGS}\n"
        "  scan_interval: 0.2\n"
        "  error_patterns:\n"
        "    - pattern: '.*Disk full.*'\n"
        "      error_type: ${EB_TEST_TYPE}\n"
        "      severity: ${EB_TEST_UNSET}\n"
        "    - pattern: '.*Kernel panic.*'\n"
        "      error_type: 'prefix-${EB_TEST_TYPE}'\n"
        "      severity: CRITICAL\n")
    env = {"EB_TEST_LOGS": str(logs), "EB_TEST_TYPE": "disk_error"}
    env.pop("EB_TEST_UNSET", None)
    k = keel_factory("errorbus", env=env, data_dir=str(tmp_path))
    (logs / "storage.log").write_text("Disk full on /dev/sda1\nKernel panic now\n")
    got = wait_for(lambda: (lambda r: r if len(r) >= 2 else None)(rows(k, agent="storage")), 5)
    kinds = sorted((r["error_type"], r["severity"]) for r in got)
    assert kinds == [("disk_error", "${EB_TEST_UNSET}"), ("prefix-${EB_TEST_TYPE}", "CRITICAL")]


def test_eb26_eb31_restart_by_the_real_core_orchestrator(keel_factory):
    """EB-26, EB-31 end to end in `keeld all`: CoreOrchestrator supervises a
    process; when it stops sending heartbeats the bus asks CoreOrchestrator
    to restart_agent it, and the success is recorded."""
    config = FAST + "core:\n  agents:\n    - {name: Sleeper, command: /bin/sleep, args: ['300']}\n"
    k = keel_factory("all", config=config)
    query(k, "heartbeat", {"agent_name": "Sleeper"})
    actions = wait_for(lambda: rows(k, "get_recovery_actions"), 10)
    assert [(a["agent_name"], a["success"]) for a in actions] == [("Sleeper", 1)]
    assert rows(k, agent="RecoveryManager") == []


def test_delegate_mode_forwards_ems_actions(keel_factory):
    """modules.ErrorManagementSystem.mode: delegate forwards heartbeat and
    get_system_status to the still-running original; other actions stay."""
    import socket as pysocket
    with pysocket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    original = FakeCore(port, True)
    try:
        config = ("modules:\n  ErrorManagementSystem: {mode: delegate, delegate_to: "
                  "'tcp://127.0.0.1:%d'}\n" % port)
        k = keel_factory("errorbus", config=config)
        reply = query(k, "heartbeat", {"agent_name": "Forwarded"})
        assert reply["status"] == "success"
        assert original.requests and original.requests[-1]["action"] == "heartbeat"
        assert original.requests[-1]["data"] == {"agent_name": "Forwarded"}
        query(k, "get_system_status")
        assert original.requests[-1]["action"] == "get_system_status"
        assert query(k, "health_check")["data"]["status"] == "ok"
        assert all(r["action"] != "health_check" for r in original.requests)
    finally:
        original.close()
