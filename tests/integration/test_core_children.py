"""The agents ObservabilityHub used to run itself (observability.agents
entries with a command) are CoreOrchestrator's now, and the hub's recovery
asks CoreOrchestrator to restart them over the wire, with the service JWT it
signs itself.  Two keeld processes on one machine, as keel@core and
keel@observability run them, sharing the configuration file and the key
file: dependency order (a dependency nobody asked for is started, a failed
one fails its dependents), output logged with the agent's name, SIGTERM then
SIGKILL with reaping, spawn failures retried with backoff then given up and
reported, and the hub's recovery tiers restarting a killed agent through
CoreOrchestrator.  A configuration that still gives the hub a command is
refused with the key it moved to.  OH-n ids in names."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import KEELD, command, free_port
from observability_util import hub_config, wait_until

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

GRACE_S = 0.5


@pytest.fixture
def machine(keel_factory, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    order = tmp_path / "order.txt"
    ports = {n: free_port() for n in ("Dep", "Main", "Deaf", "Broken")}

    def run(name, mode="normal", **extra):
        e = {"name": name, "port": ports[name], "command": sys.executable, "output": "log",
             "args": [str(script), str(ports[name]), name, str(order), mode]}
        e.update(extra)
        return e

    def watch(name, **extra):
        return dict({"name": name, "host": "127.0.0.1", "port": ports[name]}, **extra)

    core_agents = [run("Main", depends_on=["Dep"], restart="never"), run("Dep", autostart=False),
                   run("Deaf", "deaf"), {"name": "Broken", "command": "/nonexistent/agent"},
                   {"name": "Orphan", "command": "/bin/sleep", "args": ["60"], "depends_on": ["Broken"]}]
    cfg = hub_config([watch("Main", dependencies=["Dep"], auto_recover=True), watch("Dep"),
                      watch("Deaf"), watch("Broken")],
                     timeout_ms=500, recovery={"cooldown_s": 0.5},
                     top={"metrics_source": "mock",
                          "core": {"agents": core_agents,
                                   "supervisor": {"stop_grace_s": GRACE_S, "backoff_base_s": 0.1,
                                                  "max_restarts": 2}}})
    core = keel_factory("core", config=cfg)
    hub = keel_factory("observability", config=cfg, offset=core.offset, data_dir=core.data_dir)
    hub.core = core
    hub.order = order
    return hub


def processes(m):
    agents = m.core.request("core", {"action": "get_agent_status"})["agents"]
    return {name: a["process"] for name, a in agents.items()}


def pid(m, name):
    return processes(m)[name]["pid"] or 0


def start_ticks(p):
    with open("/proc/%d/stat" % p) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def up(m, *names):
    a = m.request("observability", {"action": "get_agents_health"})["agents"]
    return all(a[n]["state"] == "up" for n in names)


def log_has(m, text):
    return (lambda t: t if text in t else None)(m.log_tail(100000))


# Proves OH-63, OH-67 (docs/logic-preservation.md).
def test_oh63_oh67_dependencies_first_and_output_logged(machine):
    assert wait_until(lambda: up(machine, "Main", "Dep", "Deaf"), timeout=15)
    # Dep is not started on its own (autostart: false): Main needed it first
    assert start_ticks(pid(machine, "Dep")) <= start_ticks(pid(machine, "Main"))
    order = machine.order.read_text().split()
    assert order.count("Dep") == 1
    log = wait_until(lambda: log_has(machine, "[Main] oops Main"))
    assert log and "[Main] hello from Main" in log
    line = [l for l in log.splitlines() if "[Main] oops Main" in l][0]
    assert "error" in line.lower()
    # a dependency given up on fails its dependents, loudly
    assert wait_until(lambda: processes(machine)["Orphan"]["state"] == "failed", timeout=10)
    assert processes(machine)["Orphan"]["pid"] is None
    assert log_has(machine, "Agent Orphan cannot start: its dependency Broken was given up on")


# Proves OH-64 (docs/logic-preservation.md).
def test_oh64_recovery_restart_keeps_a_running_dependency(machine):
    assert wait_until(lambda: up(machine, "Main", "Dep"), timeout=15)
    dep, main = pid(machine, "Dep"), pid(machine, "Main")
    r = machine.admin("observability", {"action": "trigger_recovery", "agent_name": "Main", "strategy": "tier1"})
    assert r["status"] == "success", r
    assert wait_until(lambda: pid(machine, "Main") not in (0, main), timeout=10)
    assert pid(machine, "Dep") == dep, "a running dependency is left alone"
    assert machine.order.read_text().split().count("Dep") == 1


# Proves OH-65 (docs/logic-preservation.md).
def test_oh65_deaf_child_is_killed_and_reaped(machine):
    assert wait_until(lambda: up(machine, "Deaf"), timeout=15)   # SIGTERM ignored by now
    old = pid(machine, "Deaf")
    asked = time.time()
    r = machine.admin("observability", {"action": "trigger_recovery", "agent_name": "Deaf",
                                           "strategy": "tier1"})
    assert r["status"] == "success", r
    assert wait_until(lambda: pid(machine, "Deaf") not in (0, old), timeout=10)
    assert time.time() - asked >= GRACE_S, "SIGTERM was ignored: the grace period must pass"
    assert not os.path.exists("/proc/%d" % old), "killed and reaped, no zombie"
    assert log_has(machine, "Deaf (pid %d) ignored SIGTERM" % old)


# Proves OH-66 (docs/logic-preservation.md).
def test_oh66_spawn_failure_is_retried_then_reported(machine):
    assert wait_until(lambda: processes(machine)["Broken"]["state"] == "failed", timeout=10)
    p = processes(machine)["Broken"]
    assert p["error"] == "/nonexistent/agent: No such file or directory" and p["last_exit"] == 127
    log = machine.log_tail(100000)
    assert log.count("cannot start Broken: /nonexistent/agent: No such file or directory") == 3
    assert "Agent Broken keeps failing (exit 127); gave up after 2 restarts" in log
    # Asked again, CoreOrchestrator says at once why it cannot, and the hub records it.
    r = machine.admin("observability", {"action": "trigger_recovery", "agent_name": "Broken",
                                           "strategy": "tier1"})
    assert r["status"] == "error"
    assert "No such file" in r["results"][0]["error"]


def test_killed_child_is_restarted_through_core(machine):
    """Main's policy is restart: never, so only the hub's recovery, asking
    CoreOrchestrator, brings it back."""
    assert wait_until(lambda: up(machine, "Main"), timeout=15)
    old = pid(machine, "Main")
    os.kill(old, signal.SIGKILL)
    assert wait_until(lambda: pid(machine, "Main") not in (0, old), timeout=15)
    assert wait_until(lambda: up(machine, "Main"), timeout=15)
    events = machine.request("observability", {"action": "get_health_events", "agent_name": "Main"})["events"]
    attempts = [e for e in events if e["event_type"] == "recovery_attempted"]
    assert attempts and attempts[0]["details"]["results"][0]["success"] is True


def test_hub_command_is_refused_with_its_new_key(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(json.dumps({"observability": {"agents": [{"name": "A", "command": "/bin/a"}]}}))
    out = subprocess.run(command([KEELD, "observability", "--check", "--config", str(path)]),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "key 'observability.agents[0].command' has moved to core.agents[].command" in out.stderr
