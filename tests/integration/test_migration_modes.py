"""Gradual migration (issue 8): legacy ports answer an unchanged agent on its
original port, and a module in `mode: delegate` forwards to a stand-in of the
original agent, switchable by a configuration reload without a restart."""
import json
import os
import signal
import threading
import time

import pytest
import zmq

from conftest import free_offset, http_get, zmq_request


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
    return ("legacy_ports: true\n"
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
    assert without_clock(k.request(port, request_)) == without_clock(k.request(service, request_))
    # the old health port answers anything, as BaseAgent's health socket did
    assert k.request(health_port, b"anything at all")["status"] in ("ok", "healthy", "success")
    # the old port serves only its own agent's routes
    other = {"action": "no_such_action_here"}
    assert k.request(port, other)["status"] == "error"


@pytest.mark.parametrize("service,module,port,health_port,request_", AGENTS,
                         ids=[a[1] for a in AGENTS])
def test_original_requests_in_delegate_mode(keel_factory, stand_in, service, module, port,
                                            health_port, request_):
    k = keel_factory(service, config=config("delegate", stand_in.port, module=module))
    for target in (service, port):
        reply = k.request(target, request_)
        assert reply["answered_by"] == "legacy", (target, reply)
    assert stand_in.requests == [request_, request_]


@pytest.fixture
def stand_in():
    port = free_offset() + 7990
    agent = StandIn(port)
    yield agent
    agent.close()


def metric(k, name, needle):
    _, body, _ = http_get(k.http("core", "/metrics"))
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith(name) and needle in line)


def test_legacy_port_serves_the_module_unified(keel_factory, stand_in):
    k = keel_factory("core", config=config("unified", stand_in.port))
    request = {"action": "get_agent_endpoint", "agent_name": "Nobody"}
    on_new = k.request("core", request)
    on_old = k.request(7100, request)   # ServiceRegistry's own port, + PORT_OFFSET
    assert on_old == on_new
    assert on_old["status"] == "error" and "answered_by" not in on_old
    # only the module's routes and health live on the legacy port
    assert k.request(7100, {"action": "ping"})["status"] in ("ok", "success")
    assert stand_in.requests == []


def test_delegate_mode_forwards_and_reload_switches_back(keel_factory, stand_in):
    k = keel_factory("core", config=config("delegate", stand_in.port))
    request = {"action": "get_agent_endpoint", "agent_name": "Anyone"}
    reply = k.request("core", request)
    assert reply == {"status": "success", "answered_by": "legacy", "action": "get_agent_endpoint"}
    assert k.request(7100, request)["answered_by"] == "legacy"
    assert k.request("core", {"action": "ping"}).get("answered_by") is None
    assert metric(k, "keel_delegated_requests_total", 'outcome="forwarded"') == 2

    with open(k.config_path, "w") as f:
        f.write(config("unified", stand_in.port))
    k.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while time.time() < deadline and "answered_by" in k.request("core", request):
        time.sleep(0.05)
    assert "answered_by" not in k.request("core", request)
    assert k.proc.poll() is None        # switched without a restart
    assert len(stand_in.requests) == 2


def test_delegate_down_answers_clearly_or_falls_back(keel_factory, stand_in):
    stand_in.close()
    k = keel_factory("core", config=config("delegate", stand_in.port))
    reply = k.request("core", {"action": "get_agent_endpoint", "agent_name": "X"})
    assert reply["status"] == "error"
    assert "Delegate for ServiceRegistry unavailable" in reply["error"]

    with open(k.config_path, "w") as f:
        f.write(config("delegate", stand_in.port, fallback=True))
    k.keelctl("reload")
    time.sleep(0.3)
    reply = k.request("core", {"action": "get_agent_endpoint", "agent_name": "X"})
    assert "Delegate" not in json.dumps(reply)
    assert metric(k, "keel_delegated_requests_total", 'outcome="fallback"') >= 1
