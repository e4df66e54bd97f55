"""CoreOrchestrator agent supervision (CO-67..CO-69,
UnifiedSystemAgent): status sweeps, system info, the service actions, and real
process management of configured agents: dependency order, restart with
backoff, output captured to log files, exit codes, give-up on ErrorBus, and
keelctl agent restart."""
import json
import os
import re
import time

import pytest

from conftest import Keel, free_offset, free_port, scaled

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$")

PINGER = ("import zmq,sys,json\n"
          "s=zmq.Context().socket(zmq.REP); s.bind('tcp://127.0.0.1:%d')\n"
          "while True:\n"
          "    s.recv(); s.send_json({'status':'ok'})\n")


def wait_for(pred, timeout=5.0):
    deadline = time.time() + scaled(timeout)
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def yaml_agents(agents):
    return "core:\n  supervisor: {health_interval_s: 0.3, backoff_base_s: 0.8, max_restarts: 2, stop_grace_s: 1}\n" \
           "  agents: %s\n" % json.dumps(agents)


@pytest.fixture(scope="module")
def sup():
    pport, dead = free_port(), free_port()
    agents = [
        {"name": "Pinger", "command": "/usr/bin/python3", "args": ["-c", PINGER % pport], "port": pport,
         "restart": "always"},
        {"name": "Crasher", "command": "/bin/sh", "args": ["-c", "echo to-stdout; echo to-stderr >&2; exit 3"],
         "restart": "on-failure"},
        {"name": "Sleeper", "command": "/bin/sh", "args": ["-c", "echo $GREETING; exec sleep 60"],
         "env": {"GREETING": "hello-env"}, "depends_on": ["Pinger"]},
        {"name": "Lazy", "command": "/bin/sleep", "args": ["60"], "autostart": False},
        {"name": "Watched", "port": dead},
        {"name": "NoPort"},
    ]
    offset = free_offset()
    import zmq
    ctx = zmq.Context.instance()
    bus = ctx.socket(zmq.SUB)
    bus.setsockopt(zmq.LINGER, 0)
    bus.setsockopt(zmq.SUBSCRIBE, b"")
    bus.bind("tcp://127.0.0.1:%d" % (7150 + offset))
    k = Keel("core", config="metrics_source: mock\n" + yaml_agents(agents), offset=offset)
    k.start()
    # The common error publisher drops its very first frame (its PUB socket
    # learns the subscription on first use), so warm it up.
    for _ in range(20):
        k.request("core", {"action": "report_error", "error": {
            "error_id": "warm", "agent_id": "t", "severity": "info", "error_type": "warm_up", "message": "m"}})
        if bus.poll(100):
            break
    k.bus = bus
    k.admin_token()     # writes the key file keelctl signs its administrator's token with
    yield k
    k.cleanup()
    bus.close()


def status(k):
    return k.request("core", {"action": "get_agent_status"})["agents"]


def test_co67_agent_status_sweep(sup):
    """CO-67: unknown/null before any check, active with ISO last_seen when the
    agent answers ok, inactive with null when it does not."""
    s = status(sup)
    assert s["NoPort"] == {"status": "unknown", "last_seen": None, "port": None}
    assert wait_for(lambda: status(sup)["Pinger"]["status"] == "active", 8)
    assert ISO.match(status(sup)["Pinger"]["last_seen"])
    assert wait_for(lambda: status(sup)["Watched"]["status"] == "inactive", 5)
    assert status(sup)["Watched"]["last_seen"] is None


def test_co67_get_agent_info_agent_key(sup):
    """CO-67/CO-33: variant A's get_agent_info by `agent`."""
    r = sup.request("core", {"action": "get_agent_info", "agent": "Watched"})
    assert r["status"] == "success" and r["agent"]["name"] == "Watched" and "status" in r["agent"]["status"]


def test_co68_system_info(sup):
    """CO-68"""
    info = sup.request("core", {"action": "get_system_info"})["system_info"]
    assert isinstance(info["hostname"], str) and info["platform"] == "Linux"
    assert info["cpu_count"] >= 1 and info["memory_total"] > 1 << 20


def test_co69_service_actions(sup):
    """CO-69"""
    assert sup.admin("core", {"action": "start_service", "service_name": "x"}) == {
        "status": "success", "message": "Started service x"}
    assert sup.admin("core", {"action": "stop_service", "service_name": "x"}) == {
        "status": "success", "message": "Stopped service x"}
    r = sup.admin("core", {"action": "restart_service", "service_name": "x"})
    assert isinstance(r, dict) and r["status"] == "success"
    assert sup.request("core", {"action": "get_service_status", "service_name": "x"}) == {
        "status": "success", "service": "x", "info": {}}
    assert sup.admin("core", {"action": "cleanup_system"})["message"] == "System cleanup completed"
    services = sup.request("core", {"action": "list_services"})["services"]
    assert set(services) == {"Pinger", "Crasher", "Sleeper", "Lazy"}


def test_co69_list_services_empty_without_agents():
    """CO-69: with no configured agents list_services is {}."""
    k = Keel("core", config="metrics_source: mock\n")
    k.start()
    try:
        assert k.request("core", {"action": "list_services"}) == {"status": "success", "services": {}}
    finally:
        k.cleanup()


def test_crash_loop_backoff_logs_and_give_up(sup):
    """Restart with backoff, exit codes recorded, output in the log file, and
    the give-up is an ErrorBus event (never silent)."""
    assert wait_for(lambda: status(sup)["Crasher"]["process"]["state"] == "failed", 8)
    p = status(sup)["Crasher"]["process"]
    assert p["last_exit"] == 3 and p["restarts"] == 3 and p["pid"] is None
    with open(p["log"]) as f:
        text = f.read()
    assert text.count("to-stdout") == 3 and text.count("to-stderr") == 3
    seen = []
    while sup.bus.poll(200):
        seen.append(json.loads(sup.bus.recv()[6:]))
    assert any(e["error_type"] == "agent_restart_give_up" and e["details"]["agent"] == "Crasher" for e in seen)
    health = sup.request("core", {"action": "health"})
    assert health["status"] == "degraded" and health["supervisor"]["failed"] == 1


def test_env_dependencies_restart_stop_start(sup):
    """Dependency order, env passed, restart/stop/start by action and keelctl."""
    assert wait_for(lambda: status(sup)["Sleeper"]["process"]["state"] == "running", 5)
    s = status(sup)
    assert s["Pinger"]["process"]["started_at"] <= s["Sleeper"]["process"]["started_at"]
    with open(s["Sleeper"]["process"]["log"]) as f:
        assert "hello-env" in f.read()
    pid = s["Sleeper"]["process"]["pid"]
    out = sup.keelctl("agent", "restart", "Sleeper")
    assert out.returncode == 0, out.stderr
    assert wait_for(lambda: status(sup)["Sleeper"]["process"]["pid"] not in (None, pid), 5)
    assert sup.admin("core", {"action": "stop_agent", "agent": "Sleeper"})["status"] == "success"
    assert wait_for(lambda: status(sup)["Sleeper"]["process"]["state"] == "exited", 5)
    assert status(sup)["Lazy"]["process"]["state"] == "stopped"
    assert sup.admin("core", {"action": "start_agent", "agent": "Lazy"})["status"] == "success"
    assert wait_for(lambda: status(sup)["Lazy"]["process"]["state"] == "running", 5)


def test_agent_actions_bad_input(sup):
    """Unknown and unmanaged agents get clear errors."""
    assert sup.admin("core", {"action": "restart_agent", "agent": "Ghost"}) == {
        "status": "error", "supervised": False,
        "error": "Agent Ghost is not supervised by Keel (it is not in core.agents), so Keel cannot"
                 " restart it: restart it where it runs"}
    assert sup.admin("core", {"action": "restart_agent"})["status"] == "error"
    assert sup.admin("core", {"action": "restart_agent", "agent": 5})["status"] == "error"
    assert "no command" in sup.admin("core", {"action": "start_agent", "agent": "Watched"})["error"]
    out = sup.keelctl("agent", "restart", "Ghost")
    assert out.returncode == 1 and "Ghost is not supervised by Keel" in out.stderr
    assert sup.keelctl("agent").returncode == 2


# Proves CO-73 (docs/logic-preservation.md).
def test_children_stopped_with_the_service():
    """Supervised processes do not outlive a SIGTERM of keeld."""
    k = Keel("core", config="metrics_source: mock\n" + yaml_agents(
        [{"name": "S1", "command": "/bin/sleep", "args": ["60"]}]))
    k.start()
    try:
        assert wait_for(lambda: status(k)["S1"]["process"]["state"] == "running", 5)
        pid = status(k)["S1"]["process"]["pid"]
        assert k.stop() == 0
        assert wait_for(lambda: not os.path.exists("/proc/%d" % pid)
                        or open("/proc/%d/stat" % pid).read().split()[2] == "Z", 3)
    finally:
        k.cleanup()


def test_co67_agent_going_silent_is_reported(sup):
    """CO-67: an agent that was active and stops answering becomes inactive,
    and the change is reported on ErrorBus (error_type health_check)."""
    assert wait_for(lambda: status(sup)["Pinger"]["status"] == "active", 5)
    while sup.bus.poll(100):
        sup.bus.recv()
    assert sup.admin("core", {"action": "stop_agent", "agent": "Pinger"})["status"] == "success"
    assert wait_for(lambda: status(sup)["Pinger"]["status"] == "inactive", 5)
    assert status(sup)["Pinger"]["last_seen"] is None
    seen = []
    while sup.bus.poll(500):
        seen.append(json.loads(sup.bus.recv()[6:]))
    assert any(e["error_type"] == "health_check" and e["details"]["agent"] == "Pinger" for e in seen), seen
