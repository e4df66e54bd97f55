"""ResourceManager+Scheduler, the TaskScheduler/AsyncProcessor side:
schedule_task and bare task messages with the exact replies, priorities,
bounded queues that say when they are full, synchronous replies,
statistics, one worker per GPU, timeouts and retries with backoff for
handler endpoints, the error bus, the health broadcast, and accepted tasks
surviving kill -9.  IDs are the RS-n checklist items (docs/logic-preservation.md).
Requests go with an administrator's token, as most of these routes need one
(no kept agent sends them): who may call what is test_privileges.py's
subject."""
import json
import threading
import time

import pytest
import zmq

from conftest import scaled
from resource_util import config, fake_proc, gpu_env


def req(k, msg, timeout_ms=5000):
    return k.admin("resource", msg, timeout_ms)


@pytest.fixture
def ts(keel_factory):
    return keel_factory("resource", config=config({"proc_root": fake_proc()}))


class Handler:
    """A task handler endpoint: fails the first `fail` attempts of each
    task, sleeps `delay` before answering, records what it got."""

    def __init__(self, fail=0, delay=0.0, silent=False):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.fail, self.delay, self.silent = fail, delay, silent
        self.got = []
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while self.running:
            if not poller.poll(50):
                continue
            frames = self.sock.recv_multipart()
            task = json.loads(frames[-1])
            task["at"] = time.time()
            self.got.append(task)
            if self.silent:
                continue
            time.sleep(self.delay)
            attempts = sum(1 for t in self.got if t["task_id"] == task["task_id"])
            reply = ({"status": "error", "error": "busy"} if attempts <= self.fail
                     else {"status": "success"})
            self.sock.send_multipart(frames[:-1] + [json.dumps(reply).encode()])

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


# ---- the task path ----------------------------------------------------------


# Proves RS-29 (docs/logic-preservation.md).
def test_schedule_task_same_as_bare_task_RS29_RS38(ts):
    for body in ({"type": "logging", "data": {"msg": "hi"}, "priority": "high"},
                 {"type": "nope", "data": "x"},
                 {"type": "memory", "data": ""}):
        via_action = req(ts, dict(body, action="schedule_task"))
        bare = req(ts, body)
        assert via_action == bare, body
    # RS-38: neither command nor action, and no type at all
    assert req(ts, {"data": "x"}) == {"status": "error",
                                      "error": "Invalid task format. Required fields: type, data"}


# Proves RS-31 (docs/logic-preservation.md).
def test_known_types_succeed_RS31_RS34(ts):
    for kind in ("logging", "analysis", "memory"):
        r = req(ts, {"action": "schedule_task", "type": kind, "data": {"n": 1}})
        assert r == {"status": "success", "message": "Task %s processed successfully" % kind}
    # RS-34: synchronous: by the time the reply came the stats say so
    stats = req(ts, {"action": "health_check"})["queue_stats"]["task_stats"]
    assert stats["logging"]["success"] == 1 and stats["memory"]["success"] == 1


# Proves RS-33 (docs/logic-preservation.md).
@pytest.mark.parametrize("falsy", [None, "", 0, 0.0, False, {}, []])
def test_falsy_fields_invalid_RS33_RS36(ts, falsy):
    err = {"status": "error", "error": "Invalid task format. Required fields: type, data"}
    assert req(ts, {"action": "schedule_task", "type": "logging", "data": falsy}) == err
    assert req(ts, {"type": falsy, "data": "x"}) == err
    assert req(ts, {"action": "health_check"})["queue_stats"]["task_stats"] == {}   # RS-36


# Proves RS-35 (docs/logic-preservation.md).
def test_stats_per_type_RS35(ts):
    req(ts, {"type": "logging", "data": 1})
    req(ts, {"type": "logging", "data": 2})
    req(ts, {"type": "weird", "data": 3})
    stats = req(ts, {"action": "health_check"})["queue_stats"]["task_stats"]
    assert stats["logging"]["success"] == 2 and stats["logging"]["failed"] == 0
    assert isinstance(stats["logging"]["total_time"], float)
    assert stats["weird"] == {"success": 0, "failed": 1, "total_time": 0.0}


# Proves RS-32, RS-69, RS-70 (docs/logic-preservation.md).
def test_unknown_type_reaches_error_bus_RS32_RS69_RS70(keel_factory):
    """The error bus endpoint is configurable; the event is one frame
    ERROR:{json} with the spec's fields and a stack trace for ERROR."""
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    port = sub.bind_to_random_port("tcp://127.0.0.1")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    k = keel_factory("resource", config=config({"proc_root": fake_proc()},
                                               {"error_bus_endpoint": "tcp://127.0.0.1:%d" % port}))
    frame = None
    deadline = time.time() + 8
    while frame is None and time.time() < deadline:   # PUB joins late: resend until seen
        r = req(k, {"type": "teleport", "data": "x"})
        assert r == {"status": "error", "error": "Unknown task type: teleport"}
        if sub.poll(300):
            frame = sub.recv()
    sub.close()
    assert frame is not None and frame.startswith(b"ERROR:")
    event = json.loads(frame[len(b"ERROR:"):])
    assert event["error_type"] == "task_processing_error"
    assert event["severity"] == "ERROR" and "stack_trace" in event["details"]
    assert event["message"] == "Unknown task type: teleport"
    assert isinstance(event["timestamp"], float) and event["agent"]


# Proves RS-30, RS-37 (docs/logic-preservation.md).
def test_priorities_and_full_queue_RS30_RS37(keel_factory):
    """Three tasks fit per level here; the fourth is refused, honestly."""
    k = keel_factory("resource", config=config({"proc_root": fake_proc(),
                                                "scheduler": {"queue_size": 3}}))
    for prio in ("high", "high", "high", None, "urgent", "low"):
        body = {"action": "schedule_task", "type": "logging", "data": 1, "delay_s": 60}
        if prio:
            body["priority"] = prio
        r = req(k, body)
        assert r["status"] == "success" and r["message"] == "Task queued", r
    sizes = req(k, {"action": "health_check"})["queue_stats"]["queue_sizes"]
    assert sizes == {"high": 3, "medium": 2, "low": 1}
    r = req(k, {"action": "schedule_task", "type": "logging", "data": 1, "priority": "high",
                "wait": False})
    assert r["status"] == "error" and r["error"].startswith("Task queue full: priority high")
    assert req(k, {"action": "schedule_task", "type": "logging", "data": 1,
                   "priority": "low"})["status"] == "success"
    listed = req(k, {"action": "list_tasks"})["tasks"]
    assert [t["priority"] for t in listed[:3]] == ["high"] * 3          # high first


# Proves RS-28 (docs/logic-preservation.md).
def test_accepted_tasks_survive_kill9(keel_factory):
    """Accepted (journalled) tasks come back after kill -9 and then run."""
    k = keel_factory("resource", config=config({"proc_root": fake_proc()}))
    ids = []
    for i in range(5):      # the delay outlasts the restart, which valgrind slows
        r = req(k, {"action": "schedule_task", "type": "analysis", "data": {"i": i},
                    "priority": "low", "delay_s": scaled(2.5)})
        ids.append(r["task_id"])
    k.kill9()
    k.start()
    listed = req(k, {"action": "list_tasks"})
    assert sorted(t["task_id"] for t in listed["tasks"]) == ids
    assert listed["queue_sizes"]["low"] == 5
    deadline = time.time() + scaled(10)
    while time.time() < deadline:
        states = [req(k, {"action": "get_task", "task_id": i})["task"]["state"] for i in ids]
        if states == ["succeeded"] * 5:
            break
        time.sleep(0.2)
    assert states == ["succeeded"] * 5
    deadline = time.time() + 3          # the deletes share a later commit
    while req(k, {"action": "list_tasks"})["tasks"] and time.time() < deadline:
        time.sleep(0.05)
    assert req(k, {"action": "list_tasks"})["tasks"] == []
    r = req(k, {"action": "schedule_task", "type": "logging", "data": 1, "wait": False})
    assert r["task_id"] > max(ids)                       # ids never reused


def test_retries_with_backoff_then_success(keel_factory):
    h = Handler(fail=2)
    try:
        k = keel_factory("resource", config=config({
            "proc_root": fake_proc(),
            "scheduler": {"handlers": {"transcribe": h.endpoint}, "retry_backoff_s": 0.2}}))
        r = req(k, {"action": "schedule_task", "type": "transcribe", "data": {"f": "a.wav"}},
                timeout_ms=8000)
        assert r == {"status": "success", "message": "Task transcribe processed successfully"}
        assert len(h.got) == 3
        gaps = [b["at"] - a["at"] for a, b in zip(h.got, h.got[1:])]
        assert gaps[0] >= 0.18 and gaps[1] >= 0.38          # 0.2 s, then doubled
        assert [t["attempt"] for t in h.got] == [1, 2, 3]
        assert h.got[0]["action"] == "process_task" and h.got[0]["data"] == {"f": "a.wav"}
    finally:
        h.close()


def test_timeout_gives_up_after_retries(keel_factory):
    h = Handler(silent=True)
    try:
        k = keel_factory("resource", config=config({
            "proc_root": fake_proc(),
            "scheduler": {"handlers": {"render": h.endpoint}, "retry_backoff_s": 0.1}}))
        t0 = time.time()
        r = req(k, {"action": "schedule_task", "type": "render", "data": 1, "timeout_s": 0.3,
                    "max_retries": 1}, timeout_ms=8000)
        assert r["status"] == "error"
        assert r["error"].startswith("Task render failed after 2 attempts: no reply")
        assert time.time() - t0 >= 0.6
        assert len(h.got) == 2
        stats = req(k, {"action": "health_check"})["queue_stats"]["task_stats"]
        assert stats["render"]["failed"] == 1
        assert req(k, {"action": "ping"})["message"] == "pong"
    finally:
        h.close()


def test_one_worker_per_gpu_single_queue(keel_factory):
    h = Handler(delay=0.1)
    try:
        k = keel_factory("resource", config=config({
            "proc_root": fake_proc(), "scheduler": {"handlers": {"infer": h.endpoint}}}),
            env=gpu_env())
        assert req(k, {"action": "list_tasks"})["workers"] == 2
        ids = [req(k, {"action": "schedule_task", "type": "infer", "data": i,
                       "wait": False})["task_id"] for i in range(1, 9)]
        deadline = time.time() + 8
        while time.time() < deadline and len(h.got) < 8:
            time.sleep(0.05)
        assert {t["gpu"] for t in h.got} == {0, 1}
        workers = set()
        for i in ids:
            for _ in range(50):
                t = req(k, {"action": "get_task", "task_id": i})["task"]
                if t["state"] == "succeeded":
                    workers.add(t["worker"])
                    break
                time.sleep(0.05)
        assert workers == {0, 1}
    finally:
        h.close()


# Proves RS-39 (docs/logic-preservation.md).
def test_health_broadcast_RS39(keel_factory):
    k = keel_factory("resource", extra_ports=(7199,), config=config({
        "proc_root": fake_proc(), "health_broadcast_port": 7199,
        "health_broadcast_interval_s": 0.3}))
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(k.endpoint(7199))
    try:
        assert sub.poll(5000)
        frame = json.loads(sub.recv())
    finally:
        sub.close()
    assert set(frame) == {"status", "stats", "queue_stats", "timestamp"}
    assert frame["status"] == "ok" and "queue_sizes" in frame["queue_stats"]


def test_health_broadcast_off_by_default_RS39(ts):
    """No broadcast port configured: nothing binds 7199 or 7103."""
    from conftest import port_free
    assert port_free(ts.port(7103)) and port_free(ts.port(7199))


def test_delegation_mode_forwards_to_legacy_agents(keel_factory):
    """modules.<Agent>: {mode: delegate}: the VRAM optimizer's commands and
    AsyncProcessor's bare tasks go to the legacy agents unchanged; the
    ResourceManager stays in C; a dead delegate gets a clear error, then the
    breaker opens."""
    from fake_model_manager import FakePeer
    legacy_vram, legacy_ap = FakePeer(), FakePeer()
    legacy_vram.extra = {"GET_VRAM_STATUS": {"status": "SUCCESS", "from": "legacy"},
                         "CUSTOM_CMD": {"status": "SUCCESS", "custom": True}}
    legacy_ap.extra = {}
    legacy_ap.answer = lambda r: {"status": "success", "message": "legacy AP %s" % r.get("type")}
    try:
        k = keel_factory("resource", config=config(
            {"proc_root": fake_proc()},
            {"modules": {"VRAMOptimizerAgent": {"mode": "delegate",
                                                "delegate_to": legacy_vram.endpoint,
                                                "timeout_ms": 500},
                         "AsyncProcessor": {"mode": "delegate", "delegate_to": legacy_ap.endpoint}}}))
        assert req(k, {"command": "GET_VRAM_STATUS"}) == {"status": "SUCCESS", "from": "legacy"}
        assert req(k, {"command": "CUSTOM_CMD", "x": 1})["custom"] is True
        assert legacy_vram.sent("CUSTOM_CMD") == [{"command": "CUSTOM_CMD", "x": 1}]
        assert req(k, {"type": "logging", "data": 1}) == {"status": "success",
                                                          "message": "legacy AP logging"}
        assert req(k, {"action": "check_resources"})["status"] == "success"   # still in C
        legacy_vram.close()
        for _ in range(3):
            r = req(k, {"command": "GET_VRAM_STATUS"})
            assert r["status"] == "error" and "Delegate for VRAMOptimizerAgent unavailable" in r["error"]
        assert "circuit open" in req(k, {"command": "GET_VRAM_STATUS"})["error"]
    finally:
        legacy_ap.close()
        if legacy_vram.running:
            legacy_vram.close()
