"""Gradual migration (issue 8): legacy ports answer an unchanged agent on its
original port, and a module in `mode: delegate` forwards to a stand-in of the
original agent, switchable by a configuration reload without a restart.  Every
request carries an administrator's token (some of these routes need one): who
may call what is test_privileges.py's subject, where a request is answered is
this file's."""
import json
import signal
import threading
import time

import pytest
import zmq

from conftest import free_offset, http_get, scaled
from security_helpers import admin_jwt


class StandIn:
    """A stand-in for a still-running legacy agent: a REP socket answering
    every request with a recognisable reply."""

    def __init__(self, port):
        self.port = port
        self.requests = []
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:%d" % port)
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while self.running:
            if not poller.poll(50):
                continue
            request = json.loads(self.sock.recv())
            self.requests.append(request)
            self.sock.send_json({"status": "success", "answered_by": "legacy",
                                 "action": request.get("action")})

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


# Every absorbed agent: (Keel service, module, old port, old health port, a
# request its clients send).  The old port must answer it exactly as Keel's
# own port does.
AGENTS = [
    ("core", "ServiceRegistry", 7100, 8100, {"action": "get_agent_endpoint", "agent_name": "Nobody"}),
    ("core", "SystemDigitalTwin", 7120, 7121, {"command": "DISCOVER", "payload": {"name": "Nobody"}}),
    ("core", "UnifiedSystemAgent", 7125, 8125, {"action": "get_agent_status"}),
    # what RequestCoordinator's clients send: a `type` request, no action
    ("core", "RequestCoordinator", 26002, 26003, {"type": "text", "data": "hi"}),
    ("resource", "ResourceManager", 7113, 8113,
     {"action": "release_resources", "resource_id": "nothing-held"}),
    ("resource", "TaskScheduler", 7115, 8115,
     {"action": "schedule_task", "type": "logging", "data": {"message": "hi"},
      "priority": "medium"}),
    # AsyncProcessor's clients send bare tasks: `type` and `data`, no action
    ("resource", "AsyncProcessor", 7101, 8101, {"type": "logging", "data": {"message": "hi"}}),
    ("resource", "VRAMOptimizerAgent", 5572, 6572,
     {"command": "SET_IDLE_TIMEOUT", "payload": {"timeout_seconds": 600}}),
    # PredictiveHealthMonitor is absent: its main port served only ping /
    # health / health_check (docs/wire-protocol.md, Health), so it has no
    # request of its own to compare or to delegate.
    ("security", "AuthenticationAgent", 7116, 8116,
     {"action": "validate_token", "token": "0" * 64}),
    ("security", "AgentTrustScorer", 7122, 8122,
     {"action": "get_trust_score", "model_id": "m"}),
    ("observability", "PerformanceMonitor", 7103, 8103,
     {"action": "get_metrics", "service": "nobody"}),
    ("observability", "HealthMonitor", 7114, 8114, {"action": "get_status"}),
    ("observability", "PerformanceLoggerAgent", 7128, 8128,
     {"action": "get_agent_metrics", "agent": "nobody", "metric_type": "cpu"}),
    ("observability", "SystemHealthManager", 7117, 8117, {"action": "get_system_status"}),
]


def config(mode, legacy_port, fallback=False, module="ServiceRegistry"):
    # SystemHealthManager's status waits on the memory services, absent here
    return ("legacy_ports: true\n"
            "observability: {memory_services: {timeout_ms: 300}}\n"
            "modules:\n"
            "  %s: {mode: %s, delegate_to: \"tcp://127.0.0.1:%d\", fallback: %s,"
            " timeout_ms: 500}\n" % (module, mode, legacy_port, "true" if fallback else "false"))


def without_clock(reply):
    """Replies carry timestamps and uptimes; compare the rest."""
    if isinstance(reply, dict):
        return {k: without_clock(v) for k, v in reply.items()
                if k not in ("timestamp", "uptime", "active_threads", "requests", "time")}
    return reply


@pytest.mark.parametrize("service,module,port,health_port,request_", AGENTS,
                         ids=[a[1] for a in AGENTS])
def test_original_requests_on_original_ports(keel_factory, stand_in, service, module, port,
                                             health_port, request_):
    k = keel_factory(service, config=config("unified", stand_in.port, module=module))
    assert without_clock(k.admin(port, request_)) == without_clock(k.admin(service, request_))
    # the old health port answers anything, as BaseAgent's health socket did
    assert k.request(health_port, b"anything at all")["status"] in ("ok", "healthy", "success")
    # an unknown action is still refused on the old port
    other = {"action": "no_such_action_here"}
    assert k.admin(port, other)["status"] == "error"


@pytest.mark.parametrize("service,module,port,health_port,request_", AGENTS,
                         ids=[a[1] for a in AGENTS])
def test_original_requests_in_delegate_mode(keel_factory, stand_in, service, module, port,
                                            health_port, request_):
    k = keel_factory(service, config=config("delegate", stand_in.port, module=module))
    for target in (service, port):
        reply = k.admin(target, request_)
        assert reply["answered_by"] == "legacy", (target, reply)
    # With ServiceRegistry delegated, Keel's own names are registered with the
    # original registry too (it answers the lookups now): not this test's traffic.
    theirs = [r for r in stand_in.requests if "alias_of" not in r.get("metadata", {})]
    assert [r.get("action", r.get("command")) for r in theirs] == \
        [request_.get("action", request_.get("command"))] * 2


@pytest.fixture
def stand_in():
    port = free_offset((7990,)) + 7990    # checked free, not only the Keel ports
    agent = StandIn(port)
    yield agent
    agent.close()




def rewrite(k, text):
    with open(k.config_path, "w") as f:
        f.write(text)


def until(probe, timeout=5.0):
    """probe() until it returns something true; the reload is asynchronous."""
    deadline = time.time() + scaled(timeout)
    while True:
        value = probe()
        if value or time.time() > deadline:
            return value
        time.sleep(0.05)


def answered_by_legacy(k, target, request_):
    return k.admin(target, request_).get("answered_by") == "legacy"


def two_modules(mode, port, first, second):
    return ("legacy_ports: true\nmodules:\n"
            "  %s: {mode: %s, delegate_to: \"tcp://127.0.0.1:%d\", timeout_ms: 500}\n"
            "  %s: {mode: %s, delegate_to: \"tcp://127.0.0.1:%d\", timeout_ms: 500}\n"
            % (first, mode, port, second, mode, port))


def test_core_switches_modes_on_sighup(keel_factory, stand_in):
    """Issue 8: SystemDigitalTwin and RequestCoordinator go from unified to
    delegate and back by SIGHUP alone, the same process throughout, on the
    main port and the old ports, including register_agent, which is routed
    to SDT by its flat form."""
    k = keel_factory("core", config=two_modules("unified", stand_in.port,
                                                 "SystemDigitalTwin", "RequestCoordinator"))
    pid = k.proc.pid
    discover = {"command": "DISCOVER", "payload": {"name": "Nobody"}}
    flat = {"action": "register_agent", "agent_name": "Flat", "status": "OK"}
    text = {"type": "text", "data": "hi"}
    assert k.admin("core", discover)["status"] == "NOT_FOUND"
    assert k.admin(26002, text)["message"] == "Text request queued"

    rewrite(k, two_modules("delegate", stand_in.port, "SystemDigitalTwin", "RequestCoordinator"))
    k.proc.send_signal(signal.SIGHUP)
    assert until(lambda: answered_by_legacy(k, "core", discover))
    for target, request_ in ((7120, discover), ("core", flat), (26002, text), ("core", text)):
        assert answered_by_legacy(k, target, request_), (target, request_)
    # the registry's own form of register_agent stays in C
    assert k.admin("core", {"action": "register_agent", "agent_id": "Reg", "agent_type": "t",
                              "host": "h", "port": 1}) == {"status": "success"}
    health = k.admin("core", {"action": "health"})["delegated"]
    assert set(health) == {"SystemDigitalTwin", "RequestCoordinator"}
    assert health["SystemDigitalTwin"]["breaker"] == "CLOSED"

    rewrite(k, two_modules("unified", stand_in.port, "SystemDigitalTwin", "RequestCoordinator"))
    k.proc.send_signal(signal.SIGHUP)
    assert until(lambda: not answered_by_legacy(k, "core", discover))
    assert k.admin(7120, discover)["status"] == "NOT_FOUND"
    assert k.admin(26002, text)["message"] == "Text request queued"
    assert k.admin("core", flat)["status"] == "success" and "answered_by" not in k.admin("core", flat)
    assert k.admin("core", {"action": "health"})["delegated"] == {}
    assert k.proc.pid == pid and k.proc.poll() is None
    _, body, _ = http_get(k.http("core", "/metrics"))
    assert ('keel_delegated_requests_total{service="core",module="SystemDigitalTwin",'
            'outcome="forwarded"}') in body.decode()


def test_resource_switches_modes_on_reload(keel_factory, stand_in):
    """Issue 8: AsyncProcessor (bare tasks, whether routed by `type` or with
    no dialect key at all) and VRAMOptimizerAgent (its commands, known or
    not) go to delegate and back by `keelctl reload`, without a restart."""
    k = keel_factory("resource", config=two_modules("unified", stand_in.port,
                                                     "AsyncProcessor", "VRAMOptimizerAgent"))
    pid = k.proc.pid
    task = {"type": "logging", "data": {"message": "hi"}}
    no_type = {"data": {"message": "hi"}}
    status = {"command": "GET_VRAM_STATUS"}
    odd = {"command": "NO_SUCH_COMMAND"}
    assert k.admin("resource", task)["status"] == "success"
    assert k.admin("resource", odd) == {"status": "ERROR", "message": "Unknown command: NO_SUCH_COMMAND"}

    rewrite(k, two_modules("delegate", stand_in.port, "AsyncProcessor", "VRAMOptimizerAgent"))
    token = admin_jwt(k.data_dir)
    out = k.keelctl("reload", "--token", token)
    assert out.returncode == 0, out.stderr
    assert until(lambda: answered_by_legacy(k, "resource", task))
    for target, request_ in ((7101, task), ("resource", no_type), (5572, status), ("resource", odd)):
        assert answered_by_legacy(k, target, request_), (target, request_)
    # ResourceManager was not delegated
    assert k.admin("resource", {"action": "check_resources"})["status"] == "success"
    assert set(k.admin("resource", {"action": "health"})["delegated"]) == {
        "AsyncProcessor", "VRAMOptimizerAgent"}

    rewrite(k, two_modules("unified", stand_in.port, "AsyncProcessor", "VRAMOptimizerAgent"))
    assert k.keelctl("reload", "--token", token).returncode == 0
    assert until(lambda: not answered_by_legacy(k, "resource", task))
    assert k.admin(5572, status)["status"] == "SUCCESS"
    assert k.admin("resource", no_type)["error"].startswith("Invalid task format")
    assert k.proc.pid == pid and k.proc.poll() is None


FALLBACK_CASES = [
    # (service, module, request, what the C implementation answers)
    ("core", "SystemDigitalTwin", {"action": "register_agent", "agent_name": "F", "status": "OK"},
     {"status": "success", "agent": "F", "message": "Registered new agent F at Unknown with status OK"}),
    ("resource", "VRAMOptimizerAgent",
     {"command": "SET_IDLE_TIMEOUT", "payload": {"timeout_seconds": 600}},
     {"status": "SUCCESS", "message": "Idle timeout set to 600 seconds"}),
]


@pytest.mark.parametrize("service,module,request_,c_answer", FALLBACK_CASES,
                         ids=[c[0] for c in FALLBACK_CASES])
def test_fallback_when_the_legacy_agent_is_down(keel_factory, service, module, request_, c_answer):
    """Issue 8: with the legacy agent down, `fallback: true` answers with the
    C implementation (counted as outcome="fallback"); after a reload to
    `fallback: false` the caller gets a clear error naming the module."""
    down = free_offset((7991,)) + 7991     # nothing listens there
    k = keel_factory(service, config=config("delegate", down, fallback=True, module=module))
    assert k.admin(service, request_) == c_answer
    _, body, _ = http_get(k.http(service, "/metrics"))
    assert ('keel_delegated_requests_total{service="%s",module="%s",outcome="fallback"} 1'
            % (service, module)) in body.decode()

    rewrite(k, config("delegate", down, fallback=False, module=module))
    k.proc.send_signal(signal.SIGHUP)
    reply = until(lambda: k.admin(service, request_).get("error"))
    assert reply.startswith("Delegate for %s unavailable" % module), reply
    _, body, _ = http_get(k.http(service, "/metrics"))
    assert 'module="%s",outcome="failed"}' % module in body.decode()


def test_a_slow_legacy_agent_holds_up_only_its_own_callers(keel_factory, stand_in):
    """Issue 8: forwards run on core's worker threads with the delegation
    table unlocked, so while one caller waits out a silent SystemDigitalTwin,
    another module's forward and the health dict answer at once."""
    ctx = zmq.Context.instance()
    silent = ctx.socket(zmq.ROUTER)     # takes requests, never answers
    silent.setsockopt(zmq.LINGER, 0)
    silent_port = silent.bind_to_random_port("tcp://127.0.0.1")
    try:
        # The silent delegate's wait and the bound on the others' answers
        # stretch alike, so "at once" stays well apart from "after it".
        wait_ms = int(scaled(2000))
        cfg = ("modules:\n"
               "  SystemDigitalTwin: {mode: delegate, delegate_to: \"tcp://127.0.0.1:%d\", timeout_ms: %d}\n"
               "  RequestCoordinator: {mode: delegate, delegate_to: \"tcp://127.0.0.1:%d\"}\n"
               % (silent_port, wait_ms, stand_in.port))
        k = keel_factory("core", config=cfg)
        waited = {}
        slow = threading.Thread(target=lambda: waited.update(
            reply=k.admin("core", {"action": "get_metrics"}, timeout_ms=4 * wait_ms)))
        slow.start()
        time.sleep(0.3)
        t0 = time.time()
        assert answered_by_legacy(k, "core", {"type": "text", "data": "hi"})
        assert k.admin("core", {"action": "health"})["delegated"]["SystemDigitalTwin"]["breaker"] == "CLOSED"
        assert time.time() - t0 < scaled(1.0)
        slow.join()
        assert waited["reply"]["error"].startswith("Delegate for SystemDigitalTwin unavailable")
    finally:
        silent.close()
