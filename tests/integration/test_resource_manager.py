"""ResourceManager+Scheduler, the ResourceManager side: transport, health,
the six ResourceManager actions with their exact replies, reservations that
really hold capacity (MiB, per device), leases, dead agents, and bad input on
every action.  IDs are the RS-n checklist items (docs/logic-preservation.md).
Requests go with an administrator's token, as most of these routes need one
(no kept agent sends them): who may call what is test_privileges.py's
subject."""
import os
import time

import pytest
import zmq

from conftest import http_get
from resource_util import config, fake_proc, gpu_env


@pytest.fixture
def rm(keel_factory):
    return keel_factory("resource", config=config({"proc_root": fake_proc()}))


@pytest.fixture
def rm_gpu(keel_factory):
    return keel_factory("resource", config=config({"proc_root": fake_proc()}), env=gpu_env())


def req(k, msg, timeout_ms=5000):
    return k.admin("resource", msg, timeout_ms)


# ---- transport and health -------------------------------------------------

def test_transport_one_reply_each_RS1_RS2_RS5(rm):
    """RS-1/RS-2: one JSON frame each way on the ROUTER socket; garbage gets
    the BaseAgent error and the socket stays usable.  RS-5: ping."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 5000)
    s.connect(rm.zmq("resource"))
    s.send(b"{not json")
    assert s.recv_json() == {"status": "error", "error": "Invalid JSON request"}
    s.send_json({"action": "ping"})
    assert s.recv_json() == {"status": "success", "message": "pong"}
    s.send(b"\xff\xfe")
    assert s.recv_json()["error"] == "Invalid UTF-8 request"
    s.send(b"[1,2]")
    assert s.recv_json()["status"] == "error"
    s.send(b"x" * (1024 * 1024 + 10))
    assert s.recv_json() == {"status": "error", "error": "Request too large"}
    s.send_json({"action": "ping", "source_agent": "X", "request_id": "r", "timestamp": "t"})
    assert s.recv_json()["message"] == "pong"
    s.close()
    status, body, _ = http_get(rm.http("resource", "/metrics"))
    assert status == 200 and b"keel_bad_requests_total" in body


# Proves RS-3, RS-4 (docs/logic-preservation.md).
def test_http_health_RS3_RS4(rm):
    status, body, _ = http_get(rm.http("resource"))
    assert status == 200
    import json
    h = json.loads(body)
    assert h["status"] == "ok" and h["initialization_status"] == "complete"
    assert h["service"] == "ResourceManager"
    assert h["port"] == rm.port(7001) and h["health_port"] == rm.port(8001)
    assert "T" in h["timestamp"] and isinstance(h["uptime"], float)
    assert "initialization_error" not in h
    assert set(h["queue_stats"]["queue_sizes"]) == {"high", "medium", "low"}


def test_health_check_action_RS6_RS7(rm):
    """RS-6 shape; RS-7: fake /proc puts CPU at 0 and memory at 25 %: ok."""
    h = req(rm, {"action": "health_check"})
    assert h["status"] == "ok"
    assert h["service"] == "ResourceManagerScheduler"
    assert h["stats"]["cpu_percent"] == 0.0 and h["stats"]["memory_percent"] == 25.0
    assert isinstance(h["stats"]["timestamp"], float)
    assert "gpu_memory_percent" not in h["stats"]          # no GPU: key absent
    assert set(h["queue_stats"]["queue_sizes"]) == {"high", "medium", "low"}
    assert h["queue_stats"]["task_stats"] == {}
    assert "T" in h["timestamp"]


def test_health_degraded_by_gpu_pressure_RS7(keel_factory):
    """The 3060 at 11000/12288 MiB is 89.5 % > 80: degraded; memory > 80 too."""
    k = keel_factory("resource", config=config({"proc_root": fake_proc()}), env=gpu_env())
    h = req(k, {"action": "health_check"})
    assert h["stats"]["gpu_memory_percent"] == 89.5
    assert h["status"] == "degraded"
    k2 = keel_factory("resource", config=config({"proc_root": fake_proc(16384000, 1638400)}))
    assert req(k2, {"action": "health_check"})["status"] == "degraded"   # memory 90 %


# ---- statistics -------------------------------------------------------------


# Proves RS-10, RS-12, RS-8, RS-9 (docs/logic-preservation.md).
def test_get_stats_fields_RS8_RS9_RS10_RS12_RS13(rm):
    r = req(rm, {"action": "get_stats"})
    assert r["status"] == "success"
    s = r["stats"]
    for key in ("cpu_percent", "memory_percent", "memory_available", "memory_total",
                "disk_usage", "timestamp", "gpu_memory_percent"):
        assert key in s
    assert s["memory_total"] == 16384000 * 1024 and s["memory_available"] == 12288000 * 1024
    assert isinstance(s["memory_total"], int)
    assert s["memory_percent"] == 25.0
    st = os.statvfs("/")
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    expect = round(used / (used + st.f_bavail * st.f_frsize) * 100, 1)
    assert abs(s["disk_usage"] - expect) <= 0.2
    assert len(s["timestamp"]) in (19, 26) and s["timestamp"][10] == "T"
    assert not s["timestamp"].endswith("Z")
    assert s["gpu_memory_percent"] == 0.0                    # RS-13: no GPU
    assert "gpu_memory_allocated" not in s and "gpu_memory_reserved" not in s   # RS-14


# Proves RS-11 (docs/logic-preservation.md).
def test_cpu_percent_system_wide_RS11(keel_factory):
    """Real /proc: a system-wide percentage between samples.  (That the very
    first sample is 0.0 is proved in TU::test_stats_history_100_RS27_RS11;
    here the start-up sample has already been taken.)"""
    k = keel_factory("resource")
    for _ in range(3):
        cpu = req(k, {"action": "get_stats"})["stats"]["cpu_percent"]
        assert isinstance(cpu, float) and 0.0 <= cpu <= 100.0
        time.sleep(0.15)


# Proves RS-67 (docs/logic-preservation.md).
def test_gpu_fields_with_gpu_RS14(rm_gpu):
    s = req(rm_gpu, {"action": "get_stats"})["stats"]
    assert s["gpu_memory_percent"] == 89.5
    assert s["gpu_memory_allocated"] == (2000 + 11000) * 1024 * 1024
    assert s["gpu_memory_reserved"] == 0
    assert [g["total_mb"] for g in s["gpus"]] == [24564, 12288]


# Proves RS-15, RS-16 (docs/logic-preservation.md).
def test_check_resources_thresholds_RS15_RS16(rm):
    assert req(rm, {"action": "check_resources"}) == {"status": "success", "available": True}
    st = req(rm, {"action": "get_status"})
    assert st["thresholds"] == {"cpu": 80, "memory": 80, "gpu": 80}
    # memory is 25.0: a threshold of 25 is not exceeded (strict >), 24.9 is
    req(rm, {"action": "set_thresholds", "memory_threshold": 25})
    assert req(rm, {"action": "check_resources"})["available"] is True
    req(rm, {"action": "set_thresholds", "memory_threshold": 24.9})
    assert req(rm, {"action": "check_resources"})["available"] is False


# ---- allocations --------------------------------------------------------------


# Proves RS-17, RS-20 (docs/logic-preservation.md).
def test_allocate_replies_RS17_RS18_RS19_RS20(rm):
    r = req(rm, {"action": "allocate_resources", "resource_id": "job1", "resource_type": "custom"})
    assert r == {"status": "success", "resource_id": "job1", "message": "Allocated 1.0 custom"}
    r = req(rm, {"action": "allocate_resources", "resource_id": "job2", "resource_type": "slots",
                 "amount": 2})
    assert r["message"] == "Allocated 2 slots"
    r = req(rm, {"action": "allocate_resources", "resource_id": "job3", "resource_type": "slots",
                 "amount": 0.25})
    assert r["message"] == "Allocated 0.25 slots"
    # RS-18: the duplicate check runs first, even when resources are short
    req(rm, {"action": "set_thresholds", "memory_threshold": 10})     # the fake /proc uses 25 %
    r = req(rm, {"action": "allocate_resources", "resource_id": "job1", "resource_type": "custom"})
    assert r == {"status": "error", "message": "Resource ID job1 already allocated"}
    # RS-19: short resources: refused, nothing recorded
    r = req(rm, {"action": "allocate_resources", "resource_id": "job4", "resource_type": "custom"})
    assert r["status"] == "error" and r["message"] == "Insufficient system resources"
    assert "job4" not in req(rm, {"action": "get_status"})["allocated_resources"]
    # a null id is a key "null", shown as None
    req(rm, {"action": "set_thresholds", "memory_threshold": 80})
    r = req(rm, {"action": "allocate_resources", "resource_type": "custom"})
    assert r["status"] == "success" and r["resource_id"] is None
    r = req(rm, {"action": "allocate_resources", "resource_type": "custom"})
    assert r["message"] == "Resource ID None already allocated"


# Proves RS-22, RS-23, RS-24 (docs/logic-preservation.md).
def test_allocation_record_and_release_RS21_RS22_RS23_RS24(rm):
    req(rm, {"action": "allocate_resources", "resource_id": "a", "resource_type": "custom",
             "amount": 3})
    req(rm, {"action": "allocate_resources", "resource_id": "b", "resource_type": "custom"})
    st = req(rm, {"action": "get_status"})
    assert st["status"] == "success" and st["resources_available"] is True
    assert set(st) >= {"current_stats", "allocated_resources", "resources_available", "thresholds"}
    a = st["allocated_resources"]["a"]
    assert a["type"] == "custom" and a["amount"] == 3 and a["status"] == "active"
    assert a["allocated_at"][10] == "T"
    r = req(rm, {"action": "release_resources", "resource_id": "a"})
    assert r == {"status": "success", "resource_id": "a",
                 "message": "Resources released successfully"}
    assert "a" not in req(rm, {"action": "get_status"})["allocated_resources"]
    r = req(rm, {"action": "release_resources", "resource_id": "a"})
    assert r == {"status": "error", "message": "Resource ID a not found"}


# Proves RS-21 (docs/logic-preservation.md).
def test_memory_reservations_hold_capacity_RS21(rm):
    """Deliberate change: memory is reserved in MiB.  Fake /proc: 16000 MiB
    total, 4000 used; at an 80 % limit 8800 MiB are free to reserve."""
    ok = req(rm, {"action": "allocate_resources", "resource_id": "m1", "resource_type": "memory",
                  "amount": 8000})
    assert ok["status"] == "success"
    r = req(rm, {"action": "allocate_resources", "resource_id": "m2", "resource_type": "memory",
                 "amount": 1000})
    assert r["status"] == "error" and r["reason"] == "capacity"
    assert 799 < r["available"] < 801
    req(rm, {"action": "release_resources", "resource_id": "m1"})
    assert req(rm, {"action": "allocate_resources", "resource_id": "m2", "resource_type": "memory",
                    "amount": 1000})["status"] == "success"


def test_vram_reservations_per_device_in_mib_RS21(rm_gpu):
    """Two cards: the 4090 with 22564 MiB free, the 3060 with 1288."""
    req(rm_gpu, {"action": "set_thresholds", "gpu_threshold": 100})
    r = req(rm_gpu, {"action": "allocate_resources", "resource_id": "llm", "resource_type": "vram",
                     "amount": 20000})
    assert r["status"] == "success" and r["device"] == 0
    r = req(rm_gpu, {"action": "allocate_resources", "resource_id": "tts", "resource_type": "vram",
                     "amount": 3000})
    assert r["status"] == "error" and r["reason"] == "capacity"
    r = req(rm_gpu, {"action": "allocate_resources", "resource_id": "tts", "resource_type": "vram",
                     "amount": 1200, "device": 1})
    assert r["status"] == "success" and r["device"] == 1
    s = req(rm_gpu, {"action": "get_stats"})["stats"]
    assert s["gpus"][0]["reserved_mb"] == 20000 and s["gpus"][1]["reserved_mb"] == 1200
    assert s["gpu_memory_reserved"] == 21200 * 1024 * 1024
    req(rm_gpu, {"action": "release_resources", "resource_id": "llm"})
    assert req(rm_gpu, {"action": "allocate_resources", "resource_id": "x", "resource_type": "gpu",
                        "amount": 3000})["status"] == "success"


def test_gpu_threshold_blocks_allocation_RS19(rm_gpu):
    """GPU percent is device level (89.5 % on the 3060) > 80: refused."""
    r = req(rm_gpu, {"action": "allocate_resources", "resource_id": "z", "resource_type": "custom"})
    assert r["message"] == "Insufficient system resources" and r["reason"] == "threshold"


def test_lease_expiry_renew_and_dead_agent(rm):
    r = req(rm, {"action": "allocate_resources", "resource_id": "short", "resource_type": "memory",
                 "amount": 10, "lease_s": 0.6})
    assert r["lease_s"] == 0.6
    req(rm, {"action": "allocate_resources", "resource_id": "long", "resource_type": "memory",
             "amount": 10, "lease_s": 0.6})
    assert req(rm, {"action": "renew_resources", "resource_id": "long",
                    "lease_s": 30})["status"] == "success"
    req(rm, {"action": "allocate_resources", "resource_id": "o1", "resource_type": "custom",
             "owner": "TTSAgent"})
    req(rm, {"action": "allocate_resources", "resource_id": "o2", "resource_type": "custom",
             "source_agent": "TTSAgent"})
    time.sleep(1.5)
    held = req(rm, {"action": "get_status"})["allocated_resources"]
    assert "short" not in held and "long" in held
    r = req(rm, {"action": "agent_dead", "agent_name": "TTSAgent"})
    assert sorted(r["released"]) == ["o1", "o2"]
    held = req(rm, {"action": "get_status"})["allocated_resources"]
    assert "o1" not in held and "o2" not in held and "long" in held
    assert req(rm, {"action": "renew_resources", "resource_id": "short"})["message"] == \
        "Resource ID short not found"


# Proves RS-25 (docs/logic-preservation.md).
def test_set_thresholds_RS25(rm):
    r = req(rm, {"action": "set_thresholds", "cpu_threshold": 90, "memory_threshold": None})
    assert r == {"status": "success", "thresholds": {"cpu": 90, "memory": 80, "gpu": 80}}
    r = req(rm, {"action": "set_thresholds", "gpu_threshold": 70.5})
    assert r["thresholds"] == {"cpu": 90, "memory": 80, "gpu": 70.5}


# Proves RS-26 (docs/logic-preservation.md).
def test_unknown_action_RS26(rm):
    assert req(rm, {"action": "launch"}) == {"status": "error", "message": "Unknown action: launch"}
    assert req(rm, {"action": None}) == {"status": "error", "message": "Unknown action: None"}


# Proves RS-28 (docs/logic-preservation.md).
def test_restart_forgets_allocations_RS28(keel_factory):
    k = keel_factory("resource", config=config({"proc_root": fake_proc()}))
    req(k, {"action": "allocate_resources", "resource_id": "a", "resource_type": "custom"})
    req(k, {"action": "set_thresholds", "cpu_threshold": 10})
    req(k, {"action": "schedule_task", "type": "logging", "data": "x"})
    k.restart()
    st = req(k, {"action": "get_status"})
    assert st["allocated_resources"] == {} and st["thresholds"]["cpu"] == 80
    assert req(k, {"action": "health_check"})["queue_stats"]["task_stats"] == {}


# Proves RS-68 (docs/logic-preservation.md).
def test_no_gpu_everything_answers_RS67_RS68(rm):
    """The conftest points KEEL_NVML_LIB at a missing file: no NVML at all."""
    for msg in ({"action": "get_stats"}, {"action": "check_resources"}, {"action": "get_status"},
                {"command": "GET_VRAM_STATUS"}, {"action": "health_check"},
                {"action": "can_accommodate_model", "vram_mb": 100}):
        r = req(rm, msg)
        assert r["status"] in ("success", "SUCCESS", "ok"), (msg, r)
    r = req(rm, {"action": "allocate_resources", "resource_id": "g", "resource_type": "vram"})
    assert r["reason"] == "no GPU device"


BAD = [
    ({"action": "allocate_resources", "resource_id": {"a": 1}}, "unhashable type: 'dict'"),
    ({"action": "allocate_resources", "resource_id": [1]}, "unhashable type: 'list'"),
    ({"action": "allocate_resources", "resource_id": "x", "amount": "lots"}, "Invalid amount"),
    ({"action": "allocate_resources", "resource_id": "x", "amount": -1}, "Invalid amount"),
    ({"action": "allocate_resources", "resource_id": "x", "lease_s": "soon"}, "Invalid lease_s"),
    ({"action": "allocate_resources", "resource_id": "x", "resource_type": "vram", "device": "a"},
     "Invalid device"),
    ({"action": "allocate_resources", "resource_id": "x" * 5000}, "longer than"),
    ({"action": "release_resources", "resource_id": {}}, "unhashable"),
    ({"action": "renew_resources", "resource_id": []}, "unhashable"),
    ({"action": "agent_dead"}, "Missing agent_name"),
    ({"action": "set_thresholds", "cpu_threshold": "high"}, "Invalid cpu_threshold"),
    ({"action": "set_thresholds", "gpu_threshold": True}, "Invalid gpu_threshold"),
    ({"action": "set_thresholds", "cpu_threshold": -1}, "Invalid cpu_threshold: -1 is not a percentage"),
    ({"action": "set_thresholds", "memory_threshold": 0}, "Invalid memory_threshold: 0 is not a percentage"),
    ({"action": "set_thresholds", "gpu_threshold": 100.5}, "Invalid gpu_threshold: 100.5 is not"),
    ({"action": "get_task", "task_id": "one"}, "Invalid task_id"),
    ({"action": "list_tasks", "limit": 0}, "Invalid limit"),
    ({"action": "schedule_task", "type": "logging", "data": 1, "wait": "yes"}, "Invalid wait"),
    ({"action": "schedule_task", "type": "logging", "data": 1, "delay_s": "x"}, "Invalid delay_s"),
    ({"action": "schedule_task", "type": "logging", "data": 1, "timeout_s": -1}, "Invalid timeout_s"),
    ({"action": "schedule_task", "type": "logging", "data": 1, "max_retries": 99},
     "Invalid max_retries"),
    ({"action": "can_accommodate_model", "vram_mb": "big"}, "Invalid vram_mb"),
    ({"action": "make_room_for_model", "vram_mb": 1, "loaded_models": []}, "Invalid loaded_models"),
    ({"action": "update_vram_status", "current_vram_mb": 1}, "Invalid total_vram_mb"),
    ({"action": "register_model_manager", "vram_budget_mb": "x"}, "Invalid registration"),
    ({"action": "register_model_manager", "vram_budget_mb": -1}, "vram_budget_mb must be above 0"),
    ({"action": "register_model_manager", "idle_timeout": 10 ** 9}, "idle_timeout from 0 to 2592000"),
]


@pytest.mark.parametrize("msg,text", BAD)
def test_bad_input_every_action(rm, msg, text):
    r = req(rm, msg)
    assert r["status"] == "error", r
    assert text in (r.get("message") or r.get("error")), r
    assert req(rm, {"action": "ping"})["message"] == "pong"


# Proves RS-41, RS-46, RS-47 (docs/logic-preservation.md).
def test_bad_input_legacy_commands_RS41_RS46_RS47(rm):
    assert req(rm, {"command": "TRACK_MODEL_USAGE"}) == {"status": "ERROR",
                                                         "message": "Missing model_id parameter"}
    assert req(rm, {"command": "TRACK_MODEL_USAGE", "model_id": ""})["status"] == "ERROR"
    for bad in (0, -5, 300.0, "300", None):
        assert req(rm, {"command": "SET_IDLE_TIMEOUT", "timeout_seconds": bad}) == \
            {"status": "ERROR", "message": "Invalid timeout parameter"}
    # Past 30 days an idle model would never be unloaded: refused, the timeout kept.
    assert req(rm, {"command": "SET_IDLE_TIMEOUT", "timeout_seconds": 2592001}) == \
        {"status": "ERROR", "message": "Invalid timeout parameter: at most 2592000 seconds"}
    assert req(rm, {"command": "SET_IDLE_TIMEOUT", "timeout_seconds": 2592000})["status"] == "SUCCESS"
    for t, v in (("critical", 1.0), ("critical", 0), ("warning", 1.5), ("bogus", 0.5),
                 ("safe", "0.5"), (None, 0.5)):
        assert req(rm, {"command": "SET_VRAM_THRESHOLD", "threshold_type": t, "value": v}) == \
            {"status": "ERROR", "message": "Invalid threshold parameters"}


def test_inside_keeld_all(keel):
    """The service also runs beside the other four in `keeld all`."""
    assert req(keel, {"action": "ping"}) == {"status": "success", "message": "pong"}
    assert req(keel, {"action": "schedule_task", "type": "logging",
                      "data": "x"})["status"] == "success"
    assert req(keel, {"command": "GET_VRAM_STATUS"})["status"] == "SUCCESS"


def test_legacy_ports_RS1(keel_factory):
    """legacy_ports: true also serves the four agents' old ports (+offset)."""
    k = keel_factory("resource", extra_ports=(7113, 7115, 7101, 5572),
                     config=config({"proc_root": fake_proc()}, {"legacy_ports": True}))
    assert k.request(7113, {"action": "check_resources"})["available"] is True
    assert k.request(7115, {"action": "ping"})["message"] == "pong"
    assert k.admin(7101, {"type": "logging", "data": 1})["status"] == "success"
    assert k.request(5572, {"command": "GET_VRAM_STATUS"})["status"] == "SUCCESS"


def test_initialization_error_reported_RS3_RS4(keel_factory, tmp_path):
    """When the first sample cannot be taken the service still answers, and
    /health says initializing with the reason."""
    import json
    k = keel_factory("resource", config=config({"proc_root": str(tmp_path / "missing")}))
    status, body, _ = http_get(k.http("resource"))
    h = json.loads(body)
    assert status == 200
    assert h["status"] == "initializing" and h["initialization_status"] == "in_progress"
    assert h["initialization_error"] == "cannot read system statistics"
    assert req(k, {"action": "ping"})["message"] == "pong"
    assert req(k, {"action": "get_stats"})["stats"]["memory_total"] == 0
