"""`keelctl migrate state` and `keelctl migrate rollback` (issue 8).

The legacy state is made the way the originals made it: a real
redis-server holding `service_registry:<agent_id>` keys written with plain
SET of the record's json.dumps (CO-23); a PerformanceLoggerAgent SQLite file
with its two tables and indexes; an error_system.db with ErrorBusService's
`errors` and ErrorManagementSystem's `error_log` tables; and the
AuthenticationAgent's users dict (unsalted SHA-256 hex), which the agent only
ever held in memory, dumped as JSON.  After the import `keeld all` runs on the
same data directory and every record is checked through the services' own
ZMQ actions.
"""
import datetime
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import time

import pytest
import yaml

from conftest import KEELCTL, KEELD, command, free_port, scaled, start_redis

NOW = time.time()


# -- a real Redis ---------------------------------------------------------------

def resp(sock, *args):
    """One Redis command over RESP; returns the decoded reply."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)
    f = sock.makefile("rb")
    line = f.readline()
    if line[:1] == b"$":
        n = int(line[1:])
        return None if n < 0 else f.read(n + 2)[:-2]
    return line[1:].strip()


@pytest.fixture
def redis_port():
    port = free_port()
    proc = start_redis(port)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


# -- legacy state, as the originals wrote it ------------------------------------

def iso_local(t):
    return datetime.datetime.fromtimestamp(t).isoformat()


REGISTRY = {
    "ChainOfThoughtAgent": {"host": "192.168.100.16", "port": 5612, "health_check_port": 6612,
                            "agent_type": "reasoning", "capabilities": ["cot", "plan"],
                            "metadata": {"gpu": True}, "last_registered": "2026-11-20T10:00:00.123456"},
    "StreamingTTSAgent": {"host": "localhost", "port": 5562, "health_check_port": None,
                          "agent_type": "tts", "capabilities": [], "metadata": {},
                          "last_registered": "2026-11-21T08:30:00+00:00"},
    "MemoryOrchestrator": {"host": "192.168.100.17", "port": 7140, "health_check_port": 8140,
                           "agent_type": "memory", "capabilities": ["store"],
                           "metadata": {"tier": {"hot": 1}}, "last_registered": "2026-11-22T12:00:00"},
}

METRICS = [  # agent, action, duration, timestamp, metadata
    ("LearningAdjusterAgent", "adjust", 0.25, iso_local(NOW - 3600), {"batch": 1}),
    ("LearningAdjusterAgent", "adjust", 0.5, iso_local(NOW - 1800), {}),
    ("LearningAdjusterAgent", "adjust", 0.5, iso_local(NOW - 1800), {}),  # a true duplicate row
    ("ModelManagerAgent", "load", 3.75, iso_local(NOW - 600), {"model": "phi"}),
]
USAGE = [  # agent, cpu_percent, memory_mb, timestamp, metadata
    ("ModelManagerAgent", 41.5, 2048.0, iso_local(NOW - 900), {"gpu": 0}),
    ("LearningAdjusterAgent", 3.0, 128.5, iso_local(NOW - 300), {}),
]
BUS_ERRORS = [  # ErrorBusService's errors table: timestamp, agent, error_type, message, severity, context
    (NOW - 500, "StreamingTTSAgent", "timeout_error", "TTS timed out after 5s", "WARNING",
     json.dumps({"source": "log_scan", "log_file": "logs/tts.log"})),
    (NOW - 400, "ModelManagerAgent", "resource_error", "Out of memory", "CRITICAL", json.dumps({})),
]
EMS_ERRORS = [  # ErrorManagementSystem's error_log: error_id, source, error_type, message, severity, timestamp, details
    ("err-0b7c5a4e-1111-4a1a-9a9a-000000000001", "LogScanner(tts)", "log_pattern_detected",
     "ERROR ZMQError: Resource temporarily unavailable", "warning", NOW - 300, json.dumps({})),
    ("err-0b7c5a4e-1111-4a1a-9a9a-000000000002", "MemoryOrchestrator", "db_error",
     "disk I/O error", "critical", NOW - 200, json.dumps({"table": "memories"})),
]
USERS = {"alice": "correct horse", "bob": "battery staple"}


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def write_registry(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        for agent_id, record in REGISTRY.items():
            assert resp(s, "SET", "service_registry:" + agent_id, json.dumps(record)) == b"OK"
        # another application's key: SCAN's MATCH must leave it out
        resp(s, "SET", "other:thing", "x")


def write_perf_db(path):
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE metrics (metric_id INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT, action TEXT,
                              duration REAL, timestamp TIMESTAMP, metadata TEXT);
        CREATE TABLE resource_usage (usage_id INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT,
                                     cpu_percent REAL, memory_mb REAL, timestamp TIMESTAMP, metadata TEXT);
        CREATE INDEX idx_metrics_agent ON metrics(agent);
        CREATE INDEX idx_metrics_timestamp ON metrics(timestamp);
        CREATE INDEX idx_resource_agent ON resource_usage(agent);
        CREATE INDEX idx_resource_timestamp ON resource_usage(timestamp);
    """)
    db.executemany("INSERT INTO metrics (agent, action, duration, timestamp, metadata) VALUES (?,?,?,?,?)",
                   [(a, b, c, d, json.dumps(e)) for a, b, c, d, e in METRICS])
    db.executemany("INSERT INTO resource_usage (agent, cpu_percent, memory_mb, timestamp, metadata)"
                   " VALUES (?,?,?,?,?)", [(a, b, c, d, json.dumps(e)) for a, b, c, d, e in USAGE])
    db.commit()
    db.close()


def write_error_db(path):
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE errors (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL, agent TEXT,
                             error_type TEXT, message TEXT, severity TEXT, context TEXT);
        CREATE TABLE agent_health (id INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT, status TEXT,
                                   last_heartbeat REAL, error_count INTEGER);
        CREATE TABLE error_log (error_id TEXT PRIMARY KEY, source TEXT, error_type TEXT, message TEXT,
                                severity TEXT, timestamp REAL, details TEXT);
    """)
    db.executemany("INSERT INTO errors (timestamp, agent, error_type, message, severity, context)"
                   " VALUES (?,?,?,?,?,?)", BUS_ERRORS)
    db.executemany("INSERT INTO error_log VALUES (?,?,?,?,?,?,?)", EMS_ERRORS)
    db.commit()
    db.close()


def write_users(path):
    users = {u: {"password_hash": sha256(p), "created_at": iso_local(NOW - 86400), "last_login": None}
             for u, p in USERS.items()}
    with open(path, "w") as f:
        json.dump(users, f)


@pytest.fixture
def legacy(tmp_path, redis_port):
    write_registry(redis_port)
    files = {"perf": str(tmp_path / "performance_metrics.db"), "errors": str(tmp_path / "error_system.db"),
             "users": str(tmp_path / "auth_users.json")}
    write_perf_db(files["perf"])
    write_error_db(files["errors"])
    write_users(files["users"])
    files["redis"] = "redis://127.0.0.1:%d/0" % redis_port
    files["data"] = str(tmp_path / "keel")
    return files


def migrate(data_dir, *args):
    env = dict(os.environ, KEEL_DATA_DIR=data_dir)
    return subprocess.run(command([KEELCTL, "--json", "migrate", "state"] + list(args)), env=env,
                          capture_output=True, text=True, timeout=scaled(60))


def all_sources(legacy):
    return ["--redis", legacy["redis"], "--perf-db", legacy["perf"], "--error-db", legacy["errors"],
            "--auth-users", legacy["users"]]


def counts(result):
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    return {s["source"]: (s["read"], s["new"], s["present"], s["invalid"]) for s in doc["sources"]}


EXPECTED = {
    "registry": 3, "perf metrics": 4, "perf resource usage": 2, "errors": 4, "users": 2,
}


# -- tests ----------------------------------------------------------------------

def test_migrated_state_is_served_record_by_record(legacy, keel_factory):
    """CO-19/CO-23, PLA get_agent_metrics, EB get_errors, SG login: every legacy
    record answers through the Keel service that absorbed its agent."""
    first = counts(migrate(legacy["data"], *all_sources(legacy)))
    assert first == {k: (n, n, 0, 0) for k, n in EXPECTED.items()}
    k = keel_factory("all", data_dir=legacy["data"])

    for agent_id, record in REGISTRY.items():
        reply = k.request("core", {"action": "get_agent_endpoint", "agent_name": agent_id})
        assert reply == dict(record, status="success"), agent_id

    window = {"start_time": iso_local(NOW - 86400), "end_time": iso_local(NOW + 60)}
    for agent in {m[0] for m in METRICS}:
        reply = k.request("observability", dict(window, action="get_agent_metrics", agent=agent))
        assert reply["status"] == "success", reply
        got = [(m["action"], m["duration"], m["timestamp"], m["metadata"]) for m in reply["metrics"]]
        want = sorted([(b, c, d, e) for a, b, c, d, e in METRICS if a == agent], key=lambda r: r[2])
        assert got == want, agent
    for agent in {u[0] for u in USAGE}:
        reply = k.request("observability", dict(window, action="get_agent_resource_usage", agent=agent))
        got = [(u["cpu_percent"], u["memory_mb"], u["timestamp"], u["metadata"]) for u in reply["usage"]]
        assert got == [(b, c, d, e) for a, b, c, d, e in USAGE if a == agent], agent

    reply = k.request("errorbus", {"action": "get_errors", "data": {"limit": 1000}})
    assert reply["status"] == "success", reply
    stored = {row["error_id"]: row for row in reply["data"]}
    for i, (ts, agent, etype, message, severity, context) in enumerate(BUS_ERRORS, start=1):
        (row,) = [r for e, r in stored.items() if e.startswith("legacy-errors-%d-" % i)]
        assert (row["agent"], row["error_type"], row["message"], row["severity"]) == \
            (agent, etype, message, severity)
        assert row["timestamp"] == pytest.approx(ts)
        assert json.loads(row["context"]) == json.loads(context)
    for error_id, source, etype, message, severity, ts, details in EMS_ERRORS:
        row = stored[error_id]
        assert (row["agent"], row["error_type"], row["message"], row["severity"]) == \
            (source, etype, message, severity)
        assert row["timestamp"] == pytest.approx(ts)
        assert json.loads(row["context"]) == json.loads(details)

    for user, password in USERS.items():
        reply = k.request("security", {"action": "login", "user_id": user, "password": password})
        assert reply["status"] == "success", (user, reply)
        assert len(reply["session"]["token"]) == 64
    db = sqlite3.connect(os.path.join(legacy["data"], "security", "security.db"))
    hashes = dict(db.execute("SELECT user_id, password_hash FROM users").fetchall())
    db.close()
    assert set(hashes) == set(USERS)
    assert all(h.startswith("$argon2id$") for h in hashes.values()), hashes


def test_second_run_is_idempotent(legacy):
    """Running twice imports nothing new: every record reports as present."""
    counts(migrate(legacy["data"], *all_sources(legacy)))
    second = counts(migrate(legacy["data"], *all_sources(legacy)))
    assert second == {k: (n, 0, n, 0) for k, n in EXPECTED.items()}
    db = sqlite3.connect(os.path.join(legacy["data"], "observability", "observability.db"))
    assert db.execute("SELECT count(*) FROM metrics").fetchone()[0] == len(METRICS)
    db.close()


def test_dry_run_writes_nothing(legacy):
    result = migrate(legacy["data"], "--dry-run", *all_sources(legacy))
    assert counts(result) == {k: (n, n, 0, 0) for k, n in EXPECTED.items()}
    assert json.loads(result.stdout)["dry_run"] is True
    assert not os.path.exists(legacy["data"]) or os.listdir(legacy["data"]) == []


def test_dry_run_after_import_reports_present(legacy):
    counts(migrate(legacy["data"], "--perf-db", legacy["perf"]))
    again = counts(migrate(legacy["data"], "--dry-run", "--perf-db", legacy["perf"]))
    assert again == {"perf metrics": (4, 0, 4, 0), "perf resource usage": (2, 0, 2, 0)}


def test_progress_is_one_line_per_source_without_a_tty(legacy):
    result = migrate(legacy["data"], *all_sources(legacy))
    lines = [l for l in result.stderr.splitlines() if "records read" in l]
    assert len(lines) == len(EXPECTED), result.stderr
    assert "[" not in result.stderr


def test_invalid_records_are_reported_not_imported(legacy, redis_port):
    with socket.create_connection(("127.0.0.1", redis_port)) as s:
        resp(s, "SET", "service_registry:Broken", "{not json")
        resp(s, "SET", "service_registry:NoPort", json.dumps({"host": "h", "agent_type": "x"}))
    doc = json.loads(migrate(legacy["data"], "--redis", legacy["redis"]).stdout)
    (reg,) = doc["sources"]
    assert (reg["read"], reg["new"], reg["invalid"]) == (5, 3, 2)
    assert {p["record"] for p in reg["problems"]} == {"Broken", "NoPort"}


@pytest.mark.parametrize("args, words", [
    (["--perf-db", "/nonexistent/performance_metrics.db"], "cannot read"),
    (["--error-db", "/nonexistent/error_system.db"], "cannot read"),
    (["--auth-users", "/nonexistent/users.json"], "cannot read"),
    (["--redis", "redis://127.0.0.1:1/0"], "cannot reach Redis"),
    (["--redis", "http://nowhere"], "bad Redis URL"),
])
def test_bad_input_is_a_clear_error(tmp_path, args, words):
    data = str(tmp_path / "keel")
    result = migrate(data, *args)
    assert result.returncode == 1
    assert words in result.stderr
    assert not os.path.exists(data)


def test_wrong_file_kind_is_refused_and_nothing_written(legacy, tmp_path):
    """A perf database without the PerformanceLoggerAgent tables fails the
    whole run before the registry (read first) is written."""
    result = migrate(legacy["data"], "--redis", legacy["redis"], "--perf-db", legacy["errors"])
    assert result.returncode == 1
    assert "none of the expected tables" in result.stderr
    assert not os.path.exists(legacy["data"])


def test_refuses_while_keeld_runs(legacy, keel_factory):
    os.makedirs(legacy["data"])
    k = keel_factory("all", data_dir=legacy["data"])
    result = migrate(legacy["data"], "--perf-db", legacy["perf"])
    assert result.returncode == 1
    assert "keeld (pid %d) is running" % k.proc.pid in result.stderr


def test_rollback_configuration_delegates_all_fifteen(tmp_path):
    out = str(tmp_path / "rollback.yaml")
    result = subprocess.run(command([KEELCTL, "migrate", "rollback", "--output", out,
                                     "--pc2-host", "192.168.100.17"]),
                            capture_output=True, text=True, timeout=scaled(10))
    assert result.returncode == 0, result.stderr
    check = subprocess.run(command([KEELD, "all", "--check", "--config", out]), capture_output=True,
                           text=True, timeout=scaled(10))
    assert check.returncode == 0, check.stderr
    doc = yaml.safe_load(open(out))
    modules = doc["modules"]
    ports = {"ServiceRegistry": 7100, "SystemDigitalTwin": 7120, "RequestCoordinator": 26002,
             "UnifiedSystemAgent": 7125, "VRAMOptimizerAgent": 5572, "PredictiveHealthMonitor": 5613}
    pc2 = {"ResourceManager": 7113, "TaskScheduler": 7115, "AsyncProcessor": 7101, "PerformanceMonitor": 7103,
           "HealthMonitor": 7114, "SystemHealthManager": 7117, "PerformanceLoggerAgent": 7128,
           "AuthenticationAgent": 7116, "AgentTrustScorer": 7122}
    assert set(modules) == set(ports) | set(pc2)
    for name, port in ports.items():
        assert modules[name] == {"mode": "delegate", "delegate_to": "tcp://127.0.0.1:%d" % port,
                                 "fallback": True}
    for name, port in pc2.items():
        assert modules[name]["delegate_to"] == "tcp://192.168.100.17:%d" % port
    assert doc["legacy_ports"] is False
    agents = {a["name"]: a for a in doc["core"]["agents"]}
    assert set(agents) == set(modules)
    assert agents["AuthenticationAgent"]["args"] == ["pc2_code/agents/ForPC2/AuthenticationAgent.py"]
    assert agents["ServiceRegistry"]["args"] == ["main_pc_code/agents/service_registry_agent.py"]


def test_rollback_for_one_machine_lists_its_agents_only(tmp_path):
    result = subprocess.run(command([KEELCTL, "--json", "migrate", "rollback", "--machine", "mainpc"]),
                            capture_output=True, text=True, timeout=scaled(10))
    doc = json.loads(result.stdout)
    assert len(doc["modules"]) == 15
    assert {a["name"] for a in doc["agents"]} == {
        "ServiceRegistry", "SystemDigitalTwin", "RequestCoordinator", "UnifiedSystemAgent",
        "VRAMOptimizerAgent", "PredictiveHealthMonitor"}


def test_error_databases_of_two_machines_do_not_collide(tmp_path):
    """ErrorBusService rows have no error_id; rows numbered alike in the
    databases of two machines are still two errors."""
    paths = []
    for machine in ("mainpc", "pc2"):
        path = str(tmp_path / ("%s_error_system.db" % machine))
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE errors (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL, agent TEXT,"
                   " error_type TEXT, message TEXT, severity TEXT, context TEXT)")
        db.execute("INSERT INTO errors (timestamp, agent, error_type, message, severity, context)"
                   " VALUES (?,?,?,?,?,?)", (NOW - 10, "Agent-" + machine, "t", "m", "ERROR", "{}"))
        db.commit()
        db.close()
        paths.append(path)
    data = str(tmp_path / "keel")
    assert counts(migrate(data, "--error-db", paths[0]))["errors"] == (1, 1, 0, 0)
    assert counts(migrate(data, "--error-db", paths[1]))["errors"] == (1, 1, 0, 0)
    assert counts(migrate(data, "--error-db", paths[1]))["errors"] == (1, 0, 1, 0)
