"""ErrorBus ingress (spec errorbus_security.md part A): the SUB bound on
7150 hears every framing and dialect the original agents publish, keeps
what it cannot use in quarantine, and re-publishes what it stored on 7151."""
import json
import os
import sqlite3
import time

import zmq

from errorbus_util import Publisher, metric, query, rows, stored, wait_for

CONFIG = """
errorbus:
  max_event_bytes: 65536
"""


def test_eb1_eb2_eb11_f1_single_frame_stored_in_sqlite(keel_factory):
    """EB-1, EB-2, EB-11: a legacy PUB connecting to 7150 and sending one F1
    frame gets exactly one row in errors of data/errorbus/error_system.db."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    pub.f1({"timestamp": time.time(), "agent": "MemoryClient", "error_type": "timeout",
            "message": "no reply", "severity": "ERROR", "details": {"k": 1}})
    got = stored(k, "MemoryClient", 1)
    assert len(got) == 1
    time.sleep(0.2)
    assert len(rows(k, agent="MemoryClient")) == 1
    path = os.path.join(k.data_dir, "errorbus", "error_system.db")
    db = sqlite3.connect(path)
    cols = [r[1] for r in db.execute("PRAGMA table_info(errors)")]
    assert cols[:7] == ["id", "timestamp", "agent", "error_type", "message", "severity", "context"]
    assert db.execute("SELECT count(*) FROM errors WHERE agent='MemoryClient'").fetchone()[0] == 1
    db.close()
    pub.close()


def test_eb3_eb4_f2_and_f3_framings(keel_factory):
    """EB-3, EB-4: ["ERROR:", json] and ["ERROR", json] (AuthenticationAgent,
    AgentTrustScorer) each store exactly one row."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    pub.f2({"error_type": "dispatch_failed", "message": "m", "severity": "ErrorSeverity.ERROR",
            "agent": "RequestCoordinator"})
    pub.f3({"timestamp": "2025-07-16T10:00:00", "agent": "AuthenticationAgent",
            "type": "LOGIN_ERROR", "message": "bad", "severity": "ERROR"})
    f2 = stored(k, "RequestCoordinator", 1)
    f3 = stored(k, "AuthenticationAgent", 1)
    assert len(f2) == 1 and f2[0]["framing"] == "F2"
    assert len(f3) == 1 and f3[0]["framing"] == "F3" and f3[0]["error_type"] == "LOGIN_ERROR"
    pub.close()


def test_eb5_other_topics_ignored(keel_factory):
    """EB-5: messages whose first frame does not start with ERROR store nothing."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    pub.raw(b'WARNING:{"agent": "Noise", "message": "x"}')
    pub.raw([b"INFO", b'{"agent": "Noise"}'])
    pub.f1({"agent": "After", "message": "kept"})
    assert len(stored(k, "After", 1)) == 1
    assert rows(k, agent="Noise") == []
    assert rows(k, "get_quarantine") == []
    assert query(k, "ping")["status"] == "ok"


def test_eb6_bad_bodies_quarantined_and_next_stored(keel_factory):
    """EB-6: non-JSON or non-object bodies, wrong framings and oversized
    messages are counted and kept in quarantine; the next valid one is stored."""
    k = keel_factory("errorbus", config=CONFIG)
    pub = Publisher(k)
    pub.join()
    pub.raw(b"ERROR:not json at all")
    pub.raw([b"ERROR:", b"[1, 2, 3]"])
    pub.raw(b"ERRORS{}")
    pub.raw([b"ERROR:", b"{}", b"{}"])
    pub.raw([b"ERROR:", b"\xff\xfe garbage"])
    pub.raw(b"ERROR:" + json.dumps({"agent": "Huge", "message": "x" * 100000}).encode())
    pub.f1({"agent": "StillAlive", "message": "after the garbage"})
    assert len(stored(k, "StillAlive", 1)) == 1
    q = wait_for(lambda: (lambda r: r if len(r) >= 6 else None)(rows(k, "get_quarantine")))
    reasons = sorted(r["reason"].split(":")[0] for r in q)
    assert reasons == ["framing", "framing", "payload", "payload", "payload", "too_large"], q
    assert any("\\xff" in r["sample"] for r in q)
    assert rows(k, agent="Huge") == []
    assert metric(k, "keel_errorbus_quarantined_total") >= 6
    assert query(k, "get_statistics")["data"]["quarantined"] >= 6


def test_eb7_eb8_eb9_eb10_eb12_every_dialect(keel_factory):
    """EB-7, EB-8, EB-9, EB-10, EB-12, EB-48: the payload dialects of A1.3, as
    their agents send them, land in the same columns with raw severities kept."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    pub.f1({"timestamp": 1752650000.5, "agent": "A1", "error_type": "t1", "message": "m1",
            "severity": "ERROR", "details": {"stack_trace": "Traceback"}})
    pub.f1({"source": "A2", "timestamp": "2025-07-16T08:00:00Z", "severity": "WARNING",
            "message": "m2", "context": {"c": 2}})
    pub.f1({"agent_id": "A3", "error_id": "fixed-id-3", "severity": "critical",
            "error_type": "t3", "message": "m3"})
    pub.f1({"message_type": "error_report", "source": "A4", "timestamp": "2025-07-16T10:00:00Z",
            "error_data": {"error_id": "e4", "error_type": "t4", "severity": "high",
                           "details": {"description": "d4"}}})
    pub.f2({"error_type": "t5", "message": "m5", "severity": "ErrorSeverity.WARNING",
            "agent": "A5"})
    pub.f1({"agent": "A6"})
    by = {}
    for name in ["A1", "A2", "A3", "A4", "A5", "A6"]:
        r = stored(k, name, 1)
        assert len(r) == 1, name
        by[name] = r[0]
    assert by["A1"]["timestamp"] == 1752650000.5
    assert json.loads(by["A1"]["context"]) == {"stack_trace": "Traceback"}
    assert by["A2"]["error_type"] == "unknown" and by["A2"]["timestamp"] == 1752652800.0
    assert json.loads(by["A2"]["context"]) == {"c": 2}
    assert by["A3"]["error_id"] == "fixed-id-3" and by["A3"]["level"] == "critical"
    assert by["A4"]["message"] == "d4" and by["A4"]["severity"] == "high"
    assert by["A4"]["level"] == "error" and by["A4"]["error_id"] == "e4"
    assert by["A5"]["severity"] == "ErrorSeverity.WARNING" and by["A5"]["level"] == "warning"
    assert by["A6"]["message"] == "" and by["A6"]["severity"] == "ERROR"
    assert by["A6"]["error_type"] == "unknown"
    assert abs(by["A6"]["timestamp"] - time.time()) < 30


def test_eb13_agent_health_one_row_per_agent(keel_factory):
    """EB-13: the first error inserts agent_health(A,'error',now,1), later
    ones bump error_count on the same row."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    for i in range(5):
        pub.f1({"agent": "Counted", "message": "m%d" % i})
    stored(k, "Counted", 5)
    health = wait_for(lambda: [r for r in rows(k, "get_agent_health")
                               if r["agent"] == "Counted" and r["error_count"] == 5])
    assert len(health) == 1
    assert health[0]["status"] == "error"
    assert abs(health[0]["last_heartbeat"] - time.time()) < 30
    assert set(health[0]) == {"id", "agent", "status", "last_heartbeat", "error_count"}


def test_eb49_fanout_topics_by_severity_and_source(keel_factory):
    """EB-49: each stored event is re-published on the PUB bound on 7151 as
    [topic, normalised json], topics ERROR:<level>:<agent>."""
    k = keel_factory("errorbus")
    ctx = zmq.Context.instance()
    everything = ctx.socket(zmq.SUB)
    everything.setsockopt(zmq.SUBSCRIBE, b"ERROR:")
    everything.connect(k.endpoint(7151))
    critical = ctx.socket(zmq.SUB)
    critical.setsockopt(zmq.SUBSCRIBE, b"ERROR:critical:")
    critical.connect(k.endpoint(7151))
    for s in (everything, critical):
        s.setsockopt(zmq.RCVTIMEO, 5000)
    pub = Publisher(k)
    pub.join()
    time.sleep(0.3)
    pub.f1({"agent": "FanA", "severity": "warning", "message": "w"})
    pub.f3({"agent": "FanB", "type": "T", "severity": "CRITICAL", "message": "c"})
    seen = {}
    while len(seen) < 2:
        topic, body = everything.recv_multipart()
        event = json.loads(body)
        if event["agent"] in ("FanA", "FanB"):
            seen[event["agent"]] = (topic, event)
    assert seen["FanA"][0] == b"ERROR:warning:FanA"
    assert seen["FanB"][0] == b"ERROR:critical:FanB"
    assert seen["FanB"][1]["error_type"] == "T" and seen["FanB"][1]["raw"]["type"] == "T"
    topic, body = critical.recv_multipart()
    assert topic == b"ERROR:critical:FanB"
    for s in (everything, critical):
        s.close()


def test_eb55_burst_of_10000_all_stored_memory_bounded(keel_factory):
    """EB-55: a burst of 10 000 messages is stored in full (none dropped) and
    the process memory stays bounded."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.sock.setsockopt(zmq.SNDHWM, 20000)
    pub.join()

    def rss():
        with open("/proc/%d/status" % k.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    before = rss()
    for i in range(10000):
        pub.f1({"agent": "Burst", "error_type": "b", "message": "burst %d" % i, "seq": i})
    assert len(stored(k, "Burst", 10000, timeout=20)) == 10000
    stats = query(k, "get_statistics")["data"]
    assert stats["dropped"] == 0 and stats["quarantined"] == 0, stats
    assert rss() - before < 200 * 1024


def test_eb1_in_keeld_all_and_metrics_pass_promtool(keel):
    """EB-1 inside `keeld all`: the bus shares the process with the other
    four services and still hears its ingress; /metrics passes promtool."""
    import shutil
    import subprocess
    import urllib.request
    pub = Publisher(keel)
    pub.join()
    pub.f2({"agent": "AllTogether", "error_type": "t", "message": "in keeld all"})
    assert len(stored(keel, "AllTogether", 1)) == 1
    if shutil.which("promtool"):
        text = urllib.request.urlopen(keel.http("errorbus", "/metrics"), timeout=5).read()
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
        assert check.returncode == 0, check.stderr


def test_eb1_secure_zmq_ingress_and_fanout_are_curve_servers(keel_factory, tmp_path):
    """With SECURE_ZMQ=1 and agent_curve (agents that speak CURVE) the
    ingress and the fan-out are CURVE servers: an allowed client key
    publishes and subscribes; plaintext is not heard.  (Without agent_curve
    the ingress stays open to the kept agents as they are:
    test_security_curve.py.)"""
    import subprocess
    import zmq.auth
    from conftest import KEELCTL, command
    d = str(tmp_path / "certs")
    r = subprocess.run(command([KEELCTL, "certs", "generate", "--dir", d]), capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    k = keel_factory("errorbus", config="agent_curve: true\n",
                     env={"SECURE_ZMQ": "1", "ZMQ_CERTIFICATES_DIR": d})
    pub_key, sec_key = zmq.auth.load_certificate(os.path.join(d, "client.key_secret"))
    server_key, _ = zmq.auth.load_certificate(os.path.join(d, "server.key"))

    def curve(sock):
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = \
            pub_key, sec_key, server_key
        return sock

    ctx = zmq.Context.instance()
    sub = curve(ctx.socket(zmq.SUB))
    sub.setsockopt(zmq.SUBSCRIBE, b"ERROR:")
    sub.setsockopt(zmq.RCVTIMEO, 5000)
    sub.connect(k.endpoint(7151))
    plain = ctx.socket(zmq.PUB)
    plain.connect(k.endpoint(7150))
    secure = curve(ctx.socket(zmq.PUB))
    secure.setsockopt(zmq.LINGER, 1000)
    secure.connect(k.endpoint(7150))
    req = curve(ctx.socket(zmq.REQ))
    req.setsockopt(zmq.RCVTIMEO, 5000)
    req.connect(k.endpoint(7003))

    def count(agent):
        req.send_json({"action": "get_errors", "data": {"agent": agent}})
        return len(json.loads(req.recv())["data"])

    def probe():
        secure.send(b"ERROR:" + json.dumps({"agent": "Curve", "message": "sealed"}).encode())
        plain.send(b"ERROR:" + json.dumps({"agent": "Plain", "message": "open"}).encode())
        return count("Curve")

    assert wait_for(probe, 10, 0.2)
    topic, body = sub.recv_multipart()
    assert topic == b"ERROR:error:Curve"
    assert count("Plain") == 0
    for s in (sub, plain, secure, req):
        s.close()
