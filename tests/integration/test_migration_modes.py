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
    ("core", "ServiceRegistry", 7100, 8100, {"action": "get_agent_endpoint", "agent_name": "Nobody"}),
    ("core", "SystemDigitalTwin", 7120, 7121, {"command": "DISCOVER", "payload": {"name": "Nobody"}}),
    ("core", "UnifiedSystemAgent", 7125, 8125, {"action": "get_agent_status"}),
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
    assert without_clock(k.request(port, request_)) == without_clock(k.request(service, request_))
    # the old health port answers anything, as BaseAgent's health socket did
    assert k.request(health_port, b"anything at all")["status"] in ("ok", "healthy", "success")
    # an unknown action is still refused on the old port
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
    assert [r.get("action", r.get("command")) for r in stand_in.requests] == \
        [request_.get("action", request_.get("command"))] * 2


@pytest.fixture
def stand_in():
    port = free_offset() + 7990
    agent = StandIn(port)
    yield agent
    agent.close()


