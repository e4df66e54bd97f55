"""Two machines, end to end (issue 8): MainPC runs `keeld core`, PC2 runs
`keeld errorbus`, `keeld observability`, `keeld resource` and
`keeld security`, each machine in its own network namespace joined by a
veth pair, configured as config/mainpc.yaml and config/pc2.yaml lay it out
(bind 0.0.0.0, the registry on MainPC, errors to the ErrorBus on PC2).

A Python stand-in agent on each machine registers with CoreOrchestrator
across the link, reports an error to the ErrorBus in framing F1, answers
the hub's health checks and heartbeats the registry.  The tests check that
both machines' registrations resolve from the other machine, that both
machines' errors are in ErrorBus's query API, that ObservabilityHub (which
finds the agents through the registry, across the link) sees both healthy,
that a stand-in killed with -9 is marked down within the sweep interval and
up again when restarted, and that CoreOrchestrator killed with -9 and
restarted keeps every registration (SQLite) while PC2's side recovers
without being restarted.

Every request is made from inside a namespace (netns.Relay), so it really
crosses the link or stays on that machine's loopback.

The link is plaintext, said explicitly (`secure_zmq: false`), with both
machines' addresses in `trusted_sources`, where the shipped configurations
turn CURVE on: CURVE on every socket (the hub's probes of the agents' health
ports among them) is the socket factory of issue 16, and what this file
proves is the layout across the link; agents' registrations from the other
machine are AGENT routes, which plaintext allows exactly to trusted sources
(test_privileges.py covers the CURVE side).  Both machines read one JWT key
file (`security.jwt_keys_file`), as the set-up steps copy PC2's to MainPC, so
the hub's automatic restarts through MainPC's CoreOrchestrator are accepted.  Namespaces need
root or CAP_NET_ADMIN: without them the tests skip and say so.
"""
import os
import random
import shutil
import sys
import tempfile
import time

import pytest

from conftest import KEELD, PORTS, admin_jwt, command, scaled
from keel_names import ALL as KEEL_NAMES
from netns import Link, NetnsUnavailable, NsProcess, Relay, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(HERE, "standin_agent.py")

SWEEP_MS = 250          # observability.interval_ms
PROBE_TIMEOUT_MS = 750  # observability.timeout_ms
FLAP_FAILURES = 2       # observability.flap.failures (of a window of 3)
PC2_SERVICES = ("errorbus", "observability", "resource", "security")
STANDIN_PORT = 7600     # + offset; the health port is the next one


def shared_config(link, keys):
    return """\
bind: 0.0.0.0
secure_zmq: false
trusted_sources: [127.0.0.0/8, "{mainpc}", "{pc2}"]
security: {{jwt_keys_file: {keys}}}
""".format(mainpc=link.mainpc_addr, pc2=link.pc2_addr, keys=keys)


def mainpc_config(link, offset, keys):
    return shared_config(link, keys) + """\
metrics_source: real
error_bus_endpoint: tcp://{pc2}:{bus}
advertise_host: {mainpc}
core:
  registry: {{backend: sqlite, ttl_s: 300}}
""".format(pc2=link.pc2_addr, mainpc=link.mainpc_addr, bus=7150 + offset)


def pc2_config(link, offset, keys):
    return shared_config(link, keys) + """\
metrics_source: real
error_bus_endpoint: tcp://127.0.0.1:{bus}
registry_endpoint: tcp://{mainpc}:{core}
advertise_host: {pc2}
resource:
  model_manager_endpoint: tcp://{mainpc}:{mm}
  vram: {{sdt_endpoint: "tcp://{mainpc}:{core}", health_probe_timeout_ms: 500}}
observability:
  machine: PC2
  interval_ms: {sweep}
  discovery_interval_ms: {sweep}
  timeout_ms: {probe}
  flap: {{failures: {fails}, window: 3}}
errorbus:
  recovery_endpoint: tcp://{mainpc}:{core}
""".format(mainpc=link.mainpc_addr, pc2=link.pc2_addr, bus=7150 + offset, mm=STANDIN_PORT + offset,
           core=7000 + offset,
           sweep=SWEEP_MS, probe=PROBE_TIMEOUT_MS, fails=FLAP_FAILURES)


class TwoMachines:
    """The whole layout; `close` stops every process and removes the
    namespaces, whatever state a failed test left them in."""

    def __init__(self):
        self.link = Link()
        self.offset = random.randrange(1, 200) * 10
        self.tmp = tempfile.mkdtemp(prefix="keel-2m-")
        self.procs = {}
        self.relays = {}

    # -- addresses ----------------------------------------------------------
    def zmq(self, service):
        host = self.link.mainpc_addr if service == "core" else self.link.pc2_addr
        return "tcp://%s:%d" % (host, PORTS[service][0] + self.offset)

    def health_url(self, service):
        host = self.link.mainpc_addr if service == "core" else self.link.pc2_addr
        return "http://%s:%d/health" % (host, PORTS[service][1] + self.offset)

    # -- lifecycle ----------------------------------------------------------
    def open(self):
        self.link.create()
        self.relays["mainpc"] = Relay(self.link, self.link.mainpc)
        self.relays["pc2"] = Relay(self.link, self.link.pc2)
        keys = os.path.join(self.tmp, "jwt.keys")
        self.token = admin_jwt(keys)
        for name, text in (("mainpc", mainpc_config(self.link, self.offset, keys)),
                           ("pc2", pc2_config(self.link, self.offset, keys))):
            with open(os.path.join(self.tmp, name + ".yaml"), "w") as f:
                f.write(text)
        self.start_service("core")
        for service in PC2_SERVICES:
            self.start_service(service)
        for service in ("core",) + PC2_SERVICES:
            self.wait_healthy(service)
        self.start_standin("mainpc")
        self.start_standin("pc2")
        return self

    def start_service(self, service):
        machine = "mainpc" if service == "core" else "pc2"
        data_dir = os.path.join(self.tmp, service)
        os.makedirs(data_dir, exist_ok=True)
        env = dict(os.environ, PORT_OFFSET=str(self.offset), KEEL_DATA_DIR=data_dir,
                   KEEL_NVML_LIB=os.path.join(data_dir, "no-nvml.so"))
        argv = command([KEELD, service, "--config", os.path.join(self.tmp, machine + ".yaml")])
        ns = self.link.mainpc if machine == "mainpc" else self.link.pc2
        self.procs[service] = NsProcess(self.link, ns, argv, env=env, cwd=data_dir,
                                        log_path=os.path.join(data_dir, "keeld.log")).start()

    def wait_healthy(self, service, timeout=15):
        relay = self.relays["mainpc" if service == "core" else "pc2"]
        proc = self.procs[service]

        def up():
            if not proc.alive():
                raise AssertionError("keeld %s exited:\n%s" % (service, proc.log_tail()))
            return relay.http_status(self.health_url(service), 1) == 200

        assert wait_for(up, scaled(timeout), 0.05), "keeld %s not healthy:\n%s" % (service, proc.log_tail())

    def start_standin(self, machine):
        ns, addr = ((self.link.mainpc, self.link.mainpc_addr) if machine == "mainpc"
                    else (self.link.pc2, self.link.pc2_addr))
        argv = [sys.executable, STANDIN, "--name", self.standin_name(machine), "--host", addr,
                "--port", str(STANDIN_PORT + self.offset), "--core", self.zmq("core"),
                "--errorbus", "tcp://%s:%d" % (self.link.pc2_addr, 7150 + self.offset),
                "--location", "MainPC" if machine == "mainpc" else "PC2", "--token", self.token]
        self.procs["standin-" + machine] = NsProcess(
            self.link, ns, argv, log_path=os.path.join(self.tmp, "standin-%s.log" % machine)).start()

    @staticmethod
    def standin_name(machine):
        return "StandIn" + ("MainPC" if machine == "mainpc" else "PC2")

    def standin_stats(self, machine):
        endpoint = "tcp://127.0.0.1:%d" % (STANDIN_PORT + self.offset)
        return self.relays[machine].request(endpoint, {"action": "get_stats"}, 1000)

    def stop_all(self):
        """SIGTERM to every process, the services together and then the
        stand-ins, SIGKILL to any that ignores it; the exit codes by name."""
        codes = {}
        for standins in (False, True):
            group = [n for n in self.procs if n.startswith("standin-") == standins]
            for name in group:
                self.procs[name].terminate()
            for name in group:
                self.procs[name].stop(scaled(5))
                codes[name] = self.procs[name].proc.returncode
        return codes

    def close(self):
        """kill -9 everything: teardown must not wait on a service's clean
        stop, which test_every_process_stops_cleanly checks on its own."""
        for proc in self.procs.values():
            proc.kill9()
        for relay in self.relays.values():
            relay.close()
        self.link.destroy()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- queries -------------------------------------------------------------
    def request(self, machine, service, message, timeout_ms=3000):
        return self.relays[machine].request(self.zmq(service), message, timeout_ms)

    def hub_agents(self):
        reply = self.request("pc2", "observability", {"action": "get_agents_health"})
        assert reply and reply.get("status") == "ok", reply
        return reply["agents"]

    def hub_state(self, name):
        return self.hub_agents().get(name, {}).get("state")

    def errors_of(self, machine, agent):
        reply = self.request(machine, "errorbus", {"action": "get_errors_by_agent",
                                                   "data": {"agent": agent, "limit": 10}})
        assert reply and reply.get("status") == "success", reply
        return reply["data"]

    def wait_registered(self, name, timeout=10):
        def resolved():
            for machine in ("mainpc", "pc2"):
                rec = self.request(machine, "core", {"action": "get_agent_endpoint",
                                                     "agent_name": name})
                if not rec or rec.get("status") != "success":
                    return None
            return rec
        return wait_for(resolved, timeout)


@pytest.fixture
def machines():
    """A fresh layout per test (about a second to build), so the tests hold
    in any order and under pytest-xdist, and a test that kills something
    leaves nothing behind for the next."""
    layout = TwoMachines()
    try:
        layout.open()
    except NetnsUnavailable as e:
        layout.close()
        pytest.skip("two-machine test needs network namespaces: %s" % e)
    except BaseException:
        layout.close()
        raise
    try:
        for machine in ("mainpc", "pc2"):
            assert layout.wait_registered(layout.standin_name(machine)), \
                "%s never registered:\n%s" % (machine, layout.procs["standin-" + machine].log_tail())
        yield layout
    finally:
        layout.close()


def test_registrations_resolve_across_the_link(machines):
    """Both machines' agents register with CoreOrchestrator on MainPC and
    each resolves, from either machine, to the address it registered from
    (CO-13, CO-19 across the link)."""
    for machine, addr in (("mainpc", machines.link.mainpc_addr), ("pc2", machines.link.pc2_addr)):
        name = machines.standin_name(machine)
        for asker in ("mainpc", "pc2"):
            rec = machines.request(asker, "core", {"action": "get_agent_endpoint", "agent_name": name})
            assert rec["status"] == "success", rec
            assert rec["host"] == addr
            assert rec["port"] == STANDIN_PORT + machines.offset
            assert rec["health_check_port"] == STANDIN_PORT + machines.offset + 1
    listed = machines.request("pc2", "core", {"action": "list_agents"})
    assert {machines.standin_name("mainpc"), machines.standin_name("pc2")} <= set(listed["agents"])


def test_names_resolve_to_the_machine_that_serves_them(machines):
    """Every name Keel answers for -- the fifteen absorbed agents and the five
    services -- resolves from either machine, in both lookup dialects, to the
    machine whose service absorbed it (issue 15): CoreOrchestrator's names to
    MainPC, ResourceManager's, HealthMonitor's, AgentTrustScorer's... to PC2's
    advertised address, where the PC2 services registered them over the link."""
    def where(service):
        return machines.link.mainpc_addr if service == "core" else machines.link.pc2_addr

    def resolved(asker, name, service):
        rec = machines.request(asker, "core", {"action": "get_agent_endpoint", "agent_name": name})
        return rec and rec.get("host") == where(service) and rec

    for name, service in KEEL_NAMES.items():
        port = PORTS[service][0] + machines.offset
        for asker in ("mainpc", "pc2"):
            rec = wait_for(lambda: resolved(asker, name, service), 10)
            assert rec, (name, machines.request(asker, "core", {"action": "get_agent_endpoint",
                                                                "agent_name": name}))
            assert (rec["status"], rec["port"], rec["health_check_port"]) == ("success", port, port), rec
            found = machines.request(asker, "core", {"command": "DISCOVER", "payload": {"name": name}})
            assert found["status"] == "SUCCESS", found
            assert (found["payload"]["ip"], found["payload"]["port"]) == (where(service), port), found


def test_errors_from_both_machines_reach_the_errorbus(machines):
    """An F1 error published on MainPC crosses the link to the ErrorBus on
    PC2 and is stored next to PC2's own; both are queryable from MainPC
    (EB-2 across the link)."""
    for machine in ("mainpc", "pc2"):
        name = machines.standin_name(machine)
        rows = wait_for(lambda: machines.errors_of("mainpc", name), 10)
        assert len(rows) == 1, rows
        row = rows[0]
        assert row["agent"] == name
        assert row["error_type"] == "two_machine_test"
        assert row["framing"] == "F1"
        assert ("on %s" % ("MainPC" if machine == "mainpc" else "PC2")) in row["message"]
    assert machines.errors_of("pc2", machines.standin_name("mainpc"))[0]["agent"] == \
        machines.standin_name("mainpc")


def test_hub_sees_both_machines_healthy(machines):
    """ObservabilityHub on PC2 discovers both stand-ins through the registry
    on MainPC and probes each on its own machine (OH-32, OH-34 across the
    link): both up, each under the machine it registered from."""
    expected = {machines.standin_name("mainpc"): "MainPC", machines.standin_name("pc2"): "PC2"}

    def both_up():
        # Up by heartbeat, and probed: a heartbeat can mark an agent up
        # before the first sweep has checked it (status "unknown" till then).
        agents = machines.hub_agents()
        return all(agents.get(n, {}).get("state") == "up" and agents[n].get("last_checked")
                   for n in expected) and agents

    agents = wait_for(both_up, 10)
    assert agents, machines.hub_agents()
    for name, machine in expected.items():
        assert agents[name]["status"] == "healthy", agents[name]
        assert agents[name]["machine"] == machine
        assert agents[name]["source"] == "registry"
        assert agents[name]["details"]["agent"] == name
    system = machines.request("mainpc", "observability", {"action": "get_system_health"})
    assert system["system"]["machines"]["MainPC"]["up"] >= 1


def resource_peers(machines):
    reply = machines.request("pc2", "resource", {"command": "HEALTH_CHECK"}, 5000) or {}
    return reply.get("health_status", {})


def test_pc2_resource_reaches_the_mainpc_model_manager(machines):
    """ResourceManager on PC2 reaches the ModelManager on MainPC (the
    stand-in, `command: HEALTH_CHECK`) across the link.  SystemDigitalTwin
    is not asserted: the original SDT answered the `command: PING` probe
    with an error, so `sdt_reachable` is false by RS-73."""
    peers = resource_peers(machines)
    assert peers.get("mma_reachable") is True, peers
    assert peers["connected_services"]["ModelManagerAgent"] is True


def test_killed_standin_is_marked_down_then_up(machines):
    """kill -9 of MainPC's stand-in: the hub on PC2 marks it down within the
    flap window (2 failed sweeps) plus a probe timeout, PC2's stand-in stays
    up, ResourceManager on PC2 sees its ModelManager gone, and once the
    stand-in is restarted both see it again, neither restarted."""
    name = machines.standin_name("mainpc")
    assert wait_for(lambda: machines.hub_state(name) == "up", 10)
    killed = time.time()
    machines.procs["standin-mainpc"].kill9()
    bound = (FLAP_FAILURES + 1) * (SWEEP_MS + PROBE_TIMEOUT_MS) / 1000.0 + 1.0
    assert wait_for(lambda: machines.hub_state(name) == "down", bound, 0.05), machines.hub_agents()[name]
    assert time.time() - killed <= bound
    assert machines.hub_state(machines.standin_name("pc2")) == "up"
    events = machines.request("pc2", "observability", {"action": "get_health_events"})
    assert name in str(events), events

    # The same stand-in is ResourceManager's ModelManager: gone for it too.
    assert resource_peers(machines).get("mma_reachable") is False

    machines.start_standin("mainpc")
    assert wait_for(lambda: machines.hub_state(name) == "up", 10), machines.hub_agents()[name]
    assert wait_for(lambda: resource_peers(machines).get("mma_reachable") is True, 5)


def test_hub_sees_core_orchestrator_up(machines):
    """CoreOrchestrator on MainPC, as the hub finds it in the registry, is up."""
    assert wait_for(lambda: machines.hub_state("CoreOrchestrator") == "up", 2), \
        machines.hub_agents().get("CoreOrchestrator")


def test_core_kill9_restart_keeps_registrations_and_pc2_recovers(machines):
    """kill -9 of CoreOrchestrator on MainPC, then a restart on the same data
    directory: both machines' registrations are still there (SQLite), PC2's
    stand-in's heartbeats resume on the same socket without a restart of
    the agent, and the hub on PC2 discovers an agent registered after the
    restart without being restarted itself."""
    core = machines.procs["core"]
    pc2_standin = machines.procs["standin-pc2"]
    hub = machines.procs["observability"]
    pc2_name = machines.standin_name("pc2")
    assert wait_for(lambda: machines.hub_state(pc2_name) == "up", 10), machines.hub_agents()
    assert wait_for(lambda: (machines.standin_stats("pc2") or {}).get("heartbeats_ok", 0) > 0, 5)

    core.kill9()
    # While MainPC's core is away, PC2's heartbeats fail and PC2 still serves.
    assert wait_for(lambda: (machines.standin_stats("pc2") or {}).get("heartbeats_failed", 0) > 0, 5)
    assert machines.hub_state(pc2_name) == "up"
    down_since = time.time()

    machines.start_service("core")
    machines.wait_healthy("core")
    for machine in ("mainpc", "pc2"):
        rec = machines.request("pc2", "core", {"action": "get_agent_endpoint",
                                               "agent_name": machines.standin_name(machine)})
        assert rec["status"] == "success", rec
        assert rec["host"] == getattr(machines.link, machine + "_addr")

    def heartbeating_again():
        stats = machines.standin_stats("pc2") or {}
        return (stats.get("last_heartbeat_ok") or 0) > down_since and stats
    assert wait_for(heartbeating_again, 5), machines.standin_stats("pc2")
    assert pc2_standin.alive() and hub.alive()

    late = {"action": "register_agent", "registration_data": {
        "agent_id": "LateMainPCAgent", "agent_type": "StandInAgent",
        "host": machines.link.mainpc_addr, "port": STANDIN_PORT + machines.offset,
        "health_check_port": STANDIN_PORT + machines.offset + 1,
        "capabilities": [], "dependencies": [], "metadata": {"location": "MainPC"}}}
    assert machines.request("mainpc", "core", late)["status"] == "success"
    assert wait_for(lambda: machines.hub_state("LateMainPCAgent") == "up", 5), machines.hub_agents()


def test_every_process_stops_cleanly(machines):
    """SIGTERM stops every keeld of both machines with exit status 0, the
    CoreOrchestrator restarted after a kill -9 included (under ASan a leak
    or memory error would make it non-zero)."""
    machines.procs["core"].kill9()
    machines.start_service("core")
    machines.wait_healthy("core")
    assert machines.wait_registered(machines.standin_name("pc2"))
    codes = machines.stop_all()
    services = {n: c for n, c in codes.items() if not n.startswith("standin-")}
    assert services == {n: 0 for n in ("core",) + PC2_SERVICES}, \
        {n: machines.procs[n].log_tail(10) for n, c in services.items() if c != 0}
