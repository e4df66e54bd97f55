"""ResourceManager+Scheduler, the VRAMOptimizerAgent side, against a fake
ModelManager that answers as the original does and the fake NVML with two
cards (RTX 4090 24564 MiB, 2000 used; RTX 3060 12288 MiB, 11000 used: the
one under pressure).  IDs are the RS-n checklist items (docs/logic-preservation.md).
Requests go with an administrator's token, as most of these routes need one
(no kept agent sends them): who may call what is test_privileges.py's
subject."""
import time

import pytest

from conftest import scaled
from fake_model_manager import FakePeer
from resource_util import config, fake_proc, gpu_env, vram_section


def req(k, msg, timeout_ms=5000):
    return k.admin("resource", msg, timeout_ms)


@pytest.fixture
def mma():
    peer = FakePeer()
    yield peer
    peer.close()


def model(mb, device, idle_s, active=False):
    return {"vram_usage_mb": mb, "device": device, "last_used": time.time() - idle_s,
            "is_active": active, "quantization": "FP16"}


def start(keel_factory, mma, gpus=True, state_file=None, **vram):
    section = vram_section(mma, **vram)
    section["proc_root"] = fake_proc()
    return keel_factory("resource", config=config(section),
                        env=gpu_env(state_file=state_file) if gpus else None)


def unloads(peer):
    return [r["model_name"] for r in peer.sent("UNLOAD_MODEL")]


# ---- commands ---------------------------------------------------------------


# Proves RS-40, RS-41, RS-46, RS-49 (docs/logic-preservation.md).
def test_commands_RS40_RS41_RS46_RS47_RS49_RS50(keel_factory, mma):
    k = start(keel_factory, mma)
    assert req(k, {"command": "TRACK_MODEL_USAGE", "model_id": "phi-3"}) == \
        {"status": "SUCCESS", "message": "Tracked usage of model phi-3"}
    assert req(k, {"command": "TRACK_MODEL_USAGE", "payload": {"model_id": "x"}})["status"] == "SUCCESS"
    assert req(k, {"command": "SET_IDLE_TIMEOUT", "timeout_seconds": 300}) == \
        {"status": "SUCCESS", "message": "Idle timeout set to 300 seconds"}
    assert req(k, {"command": "SET_VRAM_THRESHOLD", "threshold_type": "warning", "value": 0.8}) == \
        {"status": "SUCCESS", "message": "VRAM threshold warning set to 0.8"}
    # RS-47: not cross-validated
    assert req(k, {"command": "SET_VRAM_THRESHOLD", "threshold_type": "safe",
                   "value": 0.95})["status"] == "SUCCESS"
    assert req(k, {"command": "LAUNCH"}) == {"status": "ERROR", "message": "Unknown command: LAUNCH"}
    assert req(k, {"command": ""}) == {"status": "ERROR", "message": "Unknown command: "}
    st = req(k, {"command": "GET_VRAM_STATUS"})
    assert st["thresholds"] == {"critical": 0.9, "warning": 0.8, "safe": 0.95}
    policy = req(k, {"action": "get_vram_policy"})
    assert policy["idle_timeout"] == 300


# Proves RS-50 (docs/logic-preservation.md).
def test_defaults_RS50(keel_factory, mma):
    k = start(keel_factory, mma)
    st = req(k, {"command": "GET_VRAM_STATUS"})
    assert st["thresholds"] == {"critical": 0.9, "warning": 0.75, "safe": 0.5}
    assert req(k, {"action": "get_vram_policy"})["idle_timeout"] == 900


# Proves RS-43, RS-44 (docs/logic-preservation.md).
def test_vram_status_two_cards_RS43_RS44(keel_factory, mma):
    mma.models = {"llama": model(8000, "MainPC", 10)}
    k = start(keel_factory, mma, monitor_interval=0.2)
    assert mma.wait_for(lambda rs: any(r.get("command") == "GET_LOADED_MODELS_STATUS" for r in rs))
    time.sleep(0.3)
    st = req(k, {"command": "GET_VRAM_STATUS"})
    assert st["status"] == "SUCCESS"
    assert st["mainpc_vram"] == {"total_mb": 24564, "used_mb": 2000, "free_mb": 22564,
                                 "usage_ratio": pytest.approx(2000 / 24564)}
    assert st["pc2_vram"]["total_mb"] == 12288 and st["pc2_vram"]["used_mb"] == 11000
    assert st["pc2_vram"]["usage_ratio"] == pytest.approx(11000 / 12288)
    assert st["loaded_models"]["llama"]["vram_usage_mb"] == 8000


# Proves RS-45 (docs/logic-preservation.md).
def test_vram_status_no_gpu_fallback_RS45_RS44_RS71_RS72(keel_factory, mma):
    k = start(keel_factory, mma, gpus=False, mainpc_vram_budget_mb=12345)
    st = req(k, {"command": "GET_VRAM_STATUS"})
    assert st["mainpc_vram"] == {"total_mb": 12345, "used_mb": 0, "free_mb": 12345,
                                 "usage_ratio": 0.0}
    assert st["pc2_vram"] is None and st["loaded_models"] == {}
    # RS-72: the budget is a fallback total, not a cap on what may be loaded
    r = req(k, {"action": "can_accommodate_model", "vram_mb": 9000})
    assert r["can_accommodate"] is True


# Proves RS-48 (docs/logic-preservation.md).
def test_health_check_peers_RS48(keel_factory, mma):
    sdt = FakePeer()
    sdt.extra = {"PING": {"status": "SUCCESS"}}
    rc = FakePeer()
    rc.extra = {"ping": {"status": "success"}}
    mef = FakePeer()
    try:
        k = start(keel_factory, mma, sdt_endpoint=sdt.endpoint, rc_endpoint=rc.endpoint,
                  mef_endpoint=mef.endpoint)
        h = req(k, {"command": "HEALTH_CHECK"})
        assert h["status"] == "SUCCESS"
        hs = h["health_status"]
        assert hs["status"] == "HEALTHY" and isinstance(hs["uptime_seconds"], int)
        assert hs["connected_services"] == {"SystemDigitalTwin": True, "ModelManagerAgent": True,
                                            "RequestCoordinator": True,
                                            "ModelEvaluationFramework": True}
        assert sdt.sent("PING") and rc.sent("ping") and mef.sent("HEALTH_CHECK")
        rc.close()
        t0 = time.time()
        hs = req(k, {"command": "HEALTH_CHECK"})["health_status"]
        assert hs["status"] == "UNHEALTHY" and hs["rc_reachable"] is False
        assert hs["mma_reachable"] is True
        assert time.time() - t0 < 3          # peers asked at once, one 1 s timeout
    finally:
        sdt.close()
        mef.close()


# ---- the monitor ----------------------------------------------------------------


# Proves RS-51, RS-53, RS-54, RS-66 (docs/logic-preservation.md).
def test_warning_unloads_one_lru_idle_model_per_cycle_RS51_RS53_RS54(keel_factory, mma):
    """PC2 (the 3060) sits at 0.895: warning.  One idle model per cycle,
    oldest first; the active-recently model and MainPC's stay."""
    mma.models = {"older": model(3000, "PC2", 3000), "old": model(2000, "PC2", 2000),
                  "recent": model(1000, "PC2", 5), "mainpc-idle": model(4000, "MainPC", 5000)}
    k = start(keel_factory, mma, monitor_interval=0.3)
    assert mma.wait_for(lambda rs: len([r for r in rs if r.get("command") == "UNLOAD_MODEL"]) >= 2)
    seq = [r.get("command") for r in mma.sent()]
    assert seq[0] == "GET_LOADED_MODELS_STATUS"
    assert unloads(mma)[:2] == ["older", "old"]
    # one unload between two refreshes
    i = seq.index("UNLOAD_MODEL")
    assert seq[i + 1] == "GET_LOADED_MODELS_STATUS"
    time.sleep(0.8)
    assert "recent" not in unloads(mma) and "mainpc-idle" not in unloads(mma)
    assert req(k, {"action": "ping"})["message"] == "pong"


# Proves RS-52, RS-57 (docs/logic-preservation.md).
def test_critical_unloads_largest_then_second_RS52_RS57(keel_factory, mma, tmp_path):
    """PC2 at 12000/12288 = 0.977 >= 0.9: the largest PC2 model; the first
    unload fails (ERROR reply), so the second largest, then nothing more
    that cycle."""
    state = tmp_path / "nvml"
    state.write_text("2000\n12000\n")
    mma.models = {"huge": model(5000, "PC2", 1), "big": model(4000, "PC2", 1),
                  "small": model(1000, "PC2", 1), "other": model(9000, "MainPC", 1)}
    mma.fail_unload = {"huge"}
    start(keel_factory, mma, state_file=str(state), monitor_interval=0.3)
    assert mma.wait_for(lambda rs: len([r for r in rs if r.get("command") == "UNLOAD_MODEL"]) >= 2)
    n = len(mma.sent("GET_LOADED_MODELS_STATUS"))
    assert mma.wait_for(lambda rs: len([r for r in rs
                                        if r.get("command") == "GET_LOADED_MODELS_STATUS"]) > n)
    seq = [(r.get("command"), r.get("model_name")) for r in mma.sent()]
    first = seq.index(("UNLOAD_MODEL", "huge"))
    assert seq[first + 1] == ("UNLOAD_MODEL", "big")
    assert seq[first + 2][0] == "GET_LOADED_MODELS_STATUS"      # no third that cycle
    assert ("UNLOAD_MODEL", "other") not in seq                  # MainPC is not under pressure
    assert mma.sent("UNLOAD_MODEL")[0] == {"command": "UNLOAD_MODEL", "model_name": "huge"}


# Proves RS-65 (docs/logic-preservation.md).
def test_mma_failure_empties_table_and_reconnects_RS51_RS65_RS66(keel_factory, mma):
    """The first GET_LOADED_MODELS_STATUS gets no reply: the table is {} and
    requests on 7001 keep being answered; the next cycle works again on a
    fresh socket (Lazy Pirate)."""
    mma.models = {"m": model(100, "MainPC", 1)}
    mma.silent = 1
    k = start(keel_factory, mma, monitor_interval=0.2, timeout_ms=3000)
    assert mma.wait_for(lambda rs: len(rs) >= 1)                 # the loop is now stuck waiting
    t0 = time.time()
    assert req(k, {"command": "GET_VRAM_STATUS"})["loaded_models"] == {}
    assert req(k, {"action": "ping"})["message"] == "pong"
    assert time.time() - t0 < 1.5
    deadline = time.time() + 6
    while time.time() < deadline:
        if req(k, {"command": "GET_VRAM_STATUS"})["loaded_models"]:
            break
        time.sleep(0.1)
    assert "m" in req(k, {"command": "GET_VRAM_STATUS"})["loaded_models"]
    assert len(mma.sent("GET_LOADED_MODELS_STATUS")) >= 2


# Proves RS-55, RS-56 (docs/logic-preservation.md).
def test_idle_sweep_order_and_devices_RS55_RS56(keel_factory, mma):
    mma.models = {"p-old": model(100, "PC2", 5000), "m-new": model(100, "MainPC", 1000),
                  "m-old": model(100, "MainPC", 4000), "busy": model(100, "MainPC", 1),
                  "gpu0": model(100, "cuda:0", 9000), "lower": model(100, "mainpc", 9000)}
    mma.used_mb = 500
    k = start(keel_factory, mma, gpus=False, monitor_interval=0.2, idle_check_interval=1.0,
              unload_pause=0.05)
    assert mma.wait_for(lambda rs: len([r for r in rs if r.get("command") == "UNLOAD_MODEL"]) >= 3,
                        timeout=8)
    assert unloads(mma)[:3] == ["m-old", "m-new", "p-old"]
    time.sleep(0.3)
    assert not {"busy", "gpu0", "lower"} & set(unloads(mma))
    assert req(k, {"action": "get_vram_policy"})["unloads"] >= 3


# ---- prediction ----------------------------------------------------------------------


# Proves RS-58, RS-59, RS-60 (docs/logic-preservation.md).
def test_queue_predictor_loads_once_RS58_RS59_RS60(keel_factory, mma):
    rc = FakePeer()
    rc.extra = {"get_queue_status": {"status": "success",
                                     "queue": [{"task_type": "tts"}, {"task_type": "chat"},
                                               {"task_type": "asr"}]}}
    try:
        start(keel_factory, mma, rc_endpoint=rc.endpoint, prediction_interval=0.3,
              monitor_interval=0.2)
        assert mma.wait_for(lambda rs: any(r.get("command") == "LOAD_MODEL" for r in rs))
        assert mma.sent("LOAD_MODEL")[0] == {"command": "LOAD_MODEL", "model_name": "gpt-3.5-turbo",
                                             "device": "MainPC", "quantization_level": "FP16"}
        # the next cycle sees gpt loaded and moves to whisper
        assert mma.wait_for(lambda rs: [r.get("model_name") for r in rs
                                        if r.get("command") == "LOAD_MODEL"][:2]
                            == ["gpt-3.5-turbo", "whisper-large-v3"])
    finally:
        rc.close()


def test_predictor_off_RS59(keel_factory, mma):
    rc = FakePeer()
    rc.extra = {"get_queue_status": {"status": "success", "queue": [{"task_type": "chat"}]}}
    try:
        start(keel_factory, mma, rc_endpoint=rc.endpoint, prediction_interval=0.2,
              predictive_loading_enabled=False)
        time.sleep(1.0)
        assert mma.sent("LOAD_MODEL") == [] and rc.sent() == []
    finally:
        rc.close()


# Proves RS-62 (docs/logic-preservation.md).
def test_large_load_consults_sdt_RS62(keel_factory, mma):
    sdt = FakePeer()
    verdict = {"status": "success", "recommendation": "deny"}
    sdt.extra = {"simulate_load": lambda r: verdict}
    try:
        k = start(keel_factory, mma, sdt_endpoint=sdt.endpoint, admission_timeout_ms=500)
        assert req(k, {"action": "can_accommodate_model", "vram_mb": 2000})["can_accommodate"] is True
        assert sdt.sent("simulate_load") == []                     # 2048 MB or less: no consult
        assert req(k, {"action": "can_accommodate_model", "vram_mb": 3000})["can_accommodate"] is False
        consult = sdt.sent("simulate_load")[0]
        assert consult["load_type"] == "vram" and consult["value_mb"] == 3000
        verdict["recommendation"] = "proceed"
        assert req(k, {"action": "can_accommodate_model", "vram_mb": 3000})["can_accommodate"] is True
        sdt.silent = 5                                              # fail-open on silence
        assert req(k, {"action": "can_accommodate_model", "vram_mb": 3000})["can_accommodate"] is True
    finally:
        sdt.close()


# Proves RS-63, RS-64 (docs/logic-preservation.md).
def test_defragmentation_and_batch_tuning_RS63(keel_factory, mma):
    """MMA holds 10000 MiB but its models account for 2000: fragmentation
    0.8 > 0.70, so idle models are unloaded and loaded again; MainPC is
    below half, so batch sizes are tuned."""
    mma.models = {"a": model(1500, "MainPC", 100), "b": model(500, "MainPC", 100, active=True)}
    mma.used_mb = 10000
    k = start(keel_factory, mma, monitor_interval=0.2, optimization_interval=0.6)
    assert mma.wait_for(lambda rs: any(r.get("command") == "LOAD_MODEL" for r in rs), timeout=8)
    assert mma.sent("UNLOAD_MODEL")[0]["model_name"] == "a"
    load = mma.sent("LOAD_MODEL")[0]
    assert load == {"command": "LOAD_MODEL", "model_name": "a", "device": "MainPC",
                    "quantization_level": "FP16"}
    assert "b" not in unloads(mma)                                 # active models stay
    # "a" has no batch size between its unload and the next status report
    deadline = time.time() + scaled(5)
    policy = req(k, {"action": "get_vram_policy"})
    while "a" not in policy["batch_sizes"] and time.time() < deadline:
        time.sleep(0.05)
        policy = req(k, {"action": "get_vram_policy"})
    # 1 - 2000/10000, or 1 - 1500/10000 once a cycle has seen "a" reloaded
    assert policy["defrags"] >= 1 and round(policy["fragmentation"], 6) in (0.8, 0.85)
    # free 22564 MiB * 0.8 / the model's size: 1500 MiB, or 1000 once the
    # fake has reloaded it (it reports reloaded models at 1000 MiB)
    assert policy["batch_sizes"]["a"] in (int(22564 * 0.8 / 1500), int(22564 * 0.8 / 1000))


# ---- the ModelManager's requests --------------------------------------------------------


# Proves RS-73 (docs/logic-preservation.md).
def test_model_manager_requests_RS73(keel_factory, mma):
    """Deliberate extension: the four requests are answered with status ok,
    so the ModelManager asks the ResourceManager before any GPU load."""
    k = start(keel_factory, mma)
    r = req(k, {"action": "register_model_manager", "vram_budget_mb": 20000, "idle_timeout": 600})
    assert r["status"] == "ok"
    # MainPC (the 4090): 24564 * 0.9 - 2000 = 20107.6 MiB may still be loaded
    r = req(k, {"action": "can_accommodate_model", "vram_mb": 1800, "model_name": "llama"})
    assert r["status"] == "ok" and r["can_accommodate"] is True
    assert r["free_mb"] == pytest.approx(20107.6)
    st = req(k, {"action": "get_stats"})["stats"]
    assert st["gpus"][0]["reserved_mb"] == 1800                      # held for the load
    r = req(k, {"action": "can_accommodate_model", "vram_mb": 19000})
    assert r["can_accommodate"] is False                              # 18307.6 left
    # the model arrives: its reservation ends
    r = req(k, {"action": "update_vram_status", "current_vram_mb": 1800, "total_vram_mb": 20000,
                "loaded_models": {"llama": {"priority": "high", "vram_mb": 1800,
                                            "last_used": time.time()}}})
    assert r == {"status": "ok", "usage_ratio": 0.09, "unload_models": []}
    assert req(k, {"action": "get_stats"})["stats"]["gpus"][0]["reserved_mb"] == 0
    # the ModelManager's own budget: 1800 + 18500 > 20000
    assert req(k, {"action": "can_accommodate_model",
                   "vram_mb": 18500})["can_accommodate"] is False
    # critical by MMA's figures: the largest model goes
    r = req(k, {"action": "update_vram_status", "current_vram_mb": 19000, "total_vram_mb": 20000,
                "loaded_models": {"a": {"vram_mb": 9000, "last_used": time.time()},
                                  "b": {"vram_mb": 10000, "last_used": time.time()}}})
    assert r["unload_models"] == ["b"]
    r = req(k, {"action": "update_vram_status", "current_vram_mb": 16000, "total_vram_mb": 20000,
                "loaded_models": {"a": {"vram_mb": 8000, "last_used": time.time() - 5000},
                                  "b": {"vram_mb": 8000, "last_used": time.time() - 4000},
                                  "c": {"vram_mb": 10, "last_used": time.time()}}})
    assert r["unload_models"] == ["a"]
    r = req(k, {"action": "make_room_for_model", "vram_mb": 21000,
                "loaded_models": {"x": {"priority": "low", "vram_mb": 500, "last_used": 5},
                                  "y": {"priority": "high", "vram_mb": 3000, "last_used": 1},
                                  "z": {"priority": "low", "vram_mb": 200, "last_used": 9}}})
    assert r["status"] == "ok" and r["success"] is True
    assert r["unload_models"] == ["x", "z", "y"]
    r = req(k, {"action": "make_room_for_model", "vram_mb": 100, "loaded_models": {}})
    assert r == {"status": "ok", "success": True, "unload_models": [], "needed_mb": 0.0,
                 "freed_mb": 0.0}
    r = req(k, {"action": "make_room_for_model", "vram_mb": 90000, "loaded_models": {}})
    assert r["success"] is False and r["unload_models"] == []


# Proves RS-42, RS-71 (docs/logic-preservation.md).
def test_track_usage_window_RS42(keel_factory, mma):
    k = start(keel_factory, mma, prediction_window=0.5)
    for _ in range(3):
        req(k, {"command": "TRACK_MODEL_USAGE", "model_id": "m"})
    time.sleep(0.7)
    req(k, {"command": "TRACK_MODEL_USAGE", "model_id": "m"})
    assert req(k, {"action": "get_vram_policy"})["usage_patterns"]["m"] == 1


def test_keelctl_resources(keel_factory, mma):
    """keelctl resources: devices with VRAM used/reserved/free, models, queue."""
    mma.models = {"llama": model(8000, "MainPC", 10)}
    k = start(keel_factory, mma, monitor_interval=0.2)
    assert mma.wait_for(lambda rs: len(rs) >= 2)
    time.sleep(0.3)
    req(k, {"action": "set_thresholds", "gpu_threshold": 100})
    req(k, {"action": "allocate_resources", "resource_id": "r1", "resource_type": "vram",
            "amount": 1500, "device": 0})
    req(k, {"action": "schedule_task", "type": "logging", "data": 1, "delay_s": 60,
            "priority": "high"})
    out = k.keelctl("resources")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "RTX 4090" in text and "RTX 3060" in text and "RESERVED MiB" in text
    assert "1500" in text and "llama" in text and "high 1" in text
    out = k.keelctl("--json", "resources")
    import json
    data = json.loads(out.stdout)
    assert data["gpus"][0]["reserved_mb"] == 1500
    assert data["queue_sizes"]["high"] == 1 and "llama" in data["loaded_models"]
    assert "r1" in data["allocated_resources"]


def test_pc2_budget_is_a_fallback_total_RS71_RS72(keel_factory, mma):
    """A second card that reports no size falls back to pc2_vram_budget_mb."""
    section = vram_section(mma, pc2_vram_budget_mb=7777)
    section["proc_root"] = fake_proc()
    k = keel_factory("resource", config=config(section),
                     env=gpu_env(devices="NVIDIA GeForce RTX 4090:24564:2000:10,Odd board:0:0:0"))
    st = req(k, {"command": "GET_VRAM_STATUS"})
    assert st["mainpc_vram"]["total_mb"] == 24564
    assert st["pc2_vram"] == {"total_mb": 7777, "used_mb": 0, "free_mb": 7777, "usage_ratio": 0.0}
    assert req(k, {"action": "get_stats"})["status"] == "success"
