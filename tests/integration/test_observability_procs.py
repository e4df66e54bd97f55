"""Agents the hub runs itself (observability.agents entries with a command):
dependency order, no-op start of a running agent, SIGTERM then SIGKILL with
reaping, spawn retries, child output logged with the agent's name, and
local restarts by the recovery tiers.  OH-n ids in names."""
import json
import os
import signal
import sys
import textwrap
import time

import pytest

from observability_util import free_port, hub_config, wait_until

CHILD = textwrap.dedent('''
    import json, signal, sys, time, zmq
    port, name, order, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    if mode == "deaf":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(order, "a") as f:
        f.write(name + "\\n")
    print("hello from %s" % name, flush=True)
    print("oops %s" % name, file=sys.stderr, flush=True)
    s = zmq.Context().socket(zmq.REP)
    s.bind("tcp://127.0.0.1:%d" % port)
    while True:
        s.recv()
        s.send_json({"status": "ok", "agent": name})
''')


@pytest.fixture
def managed(keel_factory, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    order = tmp_path / "order.txt"
    ports = {n: free_port() for n in ("Dep", "Main", "Deaf")}

    def entry(name, mode="normal", **extra):
        e = {"name": name, "host": "127.0.0.1", "port": ports[name], "command": sys.executable,
             "args": [str(script), str(ports[name]), name, str(order), mode]}
        e.update(extra)
        return e

    agents = [entry("Main", dependencies=["Dep"], auto_recover=True), entry("Dep"),
              entry("Deaf", "deaf"),
              {"name": "Broken", "port": free_port(), "command": "/nonexistent/agent", "required": False}]
    cfg = hub_config(agents, stop_grace_s=0.5, spawn_retry_s=0.1, timeout_ms=500,
                     recovery={"cooldown_s": 0.5})
    hub = keel_factory("observability", config=cfg)
    hub.order = order
    return hub


def procs(hub):
    return hub.request("observability", {"action": "get_processes"})["processes"]


def start_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def up(hub, *names):
    a = hub.request("observability", {"action": "get_agents_health"})["agents"]
    return all(a[n]["state"] == "up" for n in names)


# Proves OH-63, OH-67 (docs/logic-preservation.md).
def test_oh63_oh67_dependencies_first_and_output_logged(managed):
    assert wait_until(lambda: up(managed, "Main", "Dep", "Deaf"), timeout=15)
    pids = procs(managed)
    # spawned in dependency order: Dep's process is the older one
    assert start_ticks(pids["Dep"]) <= start_ticks(pids["Main"])
    order = managed.order.read_text().split()
    assert order.count("Dep") == 1, "Dep was already running when Main started it"
    log = wait_until(lambda: (lambda t: t if "[Main] oops Main" in t else None)(managed.log_tail(200)))
    assert "[Main] hello from Main" in log
    line = [l for l in log.splitlines() if "[Main] oops Main" in l][0]
    assert "error" in line.lower()


# Proves OH-64 (docs/logic-preservation.md).
def test_oh64_restart_keeps_a_running_dependency(managed):
    assert wait_until(lambda: up(managed, "Main", "Dep"), timeout=15)
    before = procs(managed)
    r = managed.admin("observability", {"action": "trigger_recovery", "agent_name": "Main", "strategy": "tier1"})
    assert r["status"] == "success", r
    after = procs(managed)
    assert after["Dep"] == before["Dep"], "starting a running agent is a no-op"
    assert after["Main"] != before["Main"] and after["Main"] > 0


# Proves OH-65 (docs/logic-preservation.md).
def test_oh65_deaf_child_is_killed_and_reaped(managed):
    assert wait_until(lambda: procs(managed)["Deaf"] > 0, timeout=15)
    old = procs(managed)["Deaf"]
    started = time.time()
    r = managed.admin("observability", {"action": "trigger_recovery", "agent_name": "Deaf",
                                           "strategy": "tier1"}, timeout_ms=10000)
    assert r["status"] == "success"
    assert time.time() - started >= 0.5, "SIGTERM was ignored: the grace period must pass"
    assert not os.path.exists("/proc/%d" % old), "killed and reaped, no zombie"
    assert procs(managed)["Deaf"] not in (0, old)
    assert "ignored SIGTERM" in managed.log_tail(200)


# Proves OH-66 (docs/logic-preservation.md).
def test_oh66_spawn_failure_is_retried_then_reported(managed):
    log = wait_until(lambda: (lambda t: t if "attempt 3 of 3" in t else None)(managed.log_tail(300)), timeout=10)
    assert "cannot start Broken (attempt 1 of 3)" in log
    assert procs(managed)["Broken"] == 0
    r = managed.admin("observability", {"action": "trigger_recovery", "agent_name": "Broken",
                                           "strategy": "tier1"})
    assert r["status"] == "error"
    assert "No such file" in r["results"][0]["error"]


def test_killed_child_is_restarted_locally(managed):
    assert wait_until(lambda: up(managed, "Main"), timeout=15)
    old = procs(managed)["Main"]
    os.kill(old, signal.SIGKILL)
    assert wait_until(lambda: procs(managed)["Main"] not in (0, old), timeout=15)
    assert wait_until(lambda: up(managed, "Main"), timeout=15)
    events = managed.request("observability", {"action": "get_health_events", "agent_name": "Main"})["events"]
    assert any(e["event_type"] == "recovery_attempted" for e in events)
