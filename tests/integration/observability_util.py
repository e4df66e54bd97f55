"""Stand-ins for the agents ObservabilityHub watches, for the hub's tests.

Each stand-in is a real ZMQ ROUTER socket on loopback, answering exactly as
a BaseAgent health socket would (or failing in a chosen way), so the hub is
exercised over the wire: nothing in the hub is mocked.

  StandInAgent   health replies: ok | success | unhealthy | silent | garbage | list, or a
                 dict answered to every request
  StandInCore    CoreOrchestrator's describe_agents / report_agent_states / list_agents /
                 get_agent_endpoint / restart_agent
  ErrorSink      a SUB bound where the hub's errpub connects (the ErrorBus ingress)
"""
import json
import threading
import time

import zmq

from conftest import admin_jwt, free_port, scaled


class _Router(threading.Thread):
    """`curve_secret`: be a CURVE server with that secret key, as a kept agent
    is under SECURE_ZMQ (its secure_zmq.configure_secure_server)."""

    def __init__(self, port=None, curve_secret=None):
        super().__init__(daemon=True)
        self.port = port or free_port()
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve_secret:
            self.sock.curve_server = True
            self.sock.curve_secretkey = curve_secret
        self.sock.bind("tcp://127.0.0.1:%d" % self.port)
        self.stopping = threading.Event()
        self.requests = []
        self.lock = threading.Lock()
        self.start()

    def reply(self, request):
        raise NotImplementedError

    def run(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self.stopping.is_set():
            if not poller.poll(50):
                continue
            frames = self.sock.recv_multipart()
            body = frames[-1]
            try:
                request = json.loads(body)
            except ValueError:
                request = body
            with self.lock:
                self.requests.append(request)
            answer = self.reply(request)
            if answer is None:
                continue
            data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.sock.send_multipart(frames[:-1] + [data])
        self.sock.close()

    def stop(self):
        self.stopping.set()
        self.join(2)

    def count(self, pred=lambda r: True):
        with self.lock:
            return sum(1 for r in self.requests if pred(r))


class StandInAgent(_Router):
    def __init__(self, mode="ok", port=None, curve_secret=None):
        self.mode = mode
        super().__init__(port, curve_secret)

    def reply(self, request):
        mode = self.mode
        if isinstance(mode, dict):      # a kept agent's own health reply, answered to anything
            return mode
        if mode == "ok":
            return {"status": "ok", "uptime": 1.0}
        if mode == "success":
            return {"status": "success"}
        if mode == "unhealthy":
            return {"status": "error", "message": "degraded disk"}
        if mode == "garbage":
            return b"not json"
        if mode == "list":
            return [1, 2]
        return None     # silent


class StandInCore(_Router):
    """Answers the registry (describe_agents with each agent's heartbeat age,
    report_agent_states, whose last report it keeps in `states`) and
    restart_agent; `on_restart(name)` decides."""

    def __init__(self, agents=None, restart_ok=True, on_restart=None, ttl_s=300.0):
        self.agents = agents or {}
        self.restart_ok = restart_ok
        self.on_restart = on_restart
        self.ttl_s = ttl_s
        self.states = {}
        super().__init__()

    def reply(self, request):
        action = request.get("action") if isinstance(request, dict) else None
        if action == "describe_agents":
            rows = [dict(rec, agent_id=name, heartbeat_age_s=rec.get("heartbeat_age_s", 0.0))
                    for name, rec in list(self.agents.items())]
            return {"status": "success", "agents": rows, "ttl_s": self.ttl_s}
        if action == "report_agent_states":
            self.states = request["states"]
            return {"status": "success", "accepted": len(self.states)}
        if action == "list_agents":
            return {"status": "success", "agents": list(self.agents)}
        if action == "get_agent_endpoint":
            rec = self.agents.get(request.get("agent_name"))
            if rec is None:
                return {"status": "error", "error": "Agent %s not found" % request.get("agent_name")}
            return dict(rec, status="success")
        if action == "restart_agent":
            ok = self.restart_ok(request["agent_name"]) if callable(self.restart_ok) else self.restart_ok
            if ok and self.on_restart:
                self.on_restart(request["agent_name"])
            return {"status": "success"} if ok else {"status": "error", "error": "cannot restart"}
        return {"status": "error", "error": "Unknown action: %s" % action}

    def restarts(self):
        with self.lock:
            return [r["agent_name"] for r in self.requests
                    if isinstance(r, dict) and r.get("action") == "restart_agent"]


class ErrorSink(threading.Thread):
    """The ErrorBus side of errpub: a SUB bound on a free port.  It is read
    continuously by its own thread: a SUB socket only attaches a new
    publisher (and sends it the subscription) while someone calls into it,
    so an idle SUB would make the publisher drop everything."""

    def __init__(self):
        super().__init__(daemon=True)
        self.port = free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.bind(self.endpoint)
        self.events = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.start()

    def run(self):
        while not self.stopping.is_set():
            if self.sock.poll(50):
                text = b"".join(self.sock.recv_multipart()).decode()
                if text.startswith("ERROR:"):
                    with self.lock:
                        self.events.append(json.loads(text[len("ERROR:"):]))
        self.sock.close()

    def wait_for(self, pred, timeout=10):
        deadline = time.time() + scaled(timeout)
        while time.time() < deadline:
            with self.lock:
                hits = [e for e in self.events if pred(e)]
            if hits:
                return hits
            time.sleep(0.05)
        return []

    def close(self):
        self.stopping.set()
        self.join(2)


def wait_until(fn, timeout=10, interval=0.05):
    deadline = time.time() + scaled(timeout)
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    return last


def agent_entry(name, agent, **extra):
    entry = {"name": name, "host": "127.0.0.1", "port": agent.port if agent else free_port()}
    entry.update(extra)
    return entry


def hub_config(agents=(), **obs):
    """YAML (as JSON, which YAML reads) for a hub with fast loops.  The probe
    timeout is scaled: under valgrind a first probe (connect and handshake)
    alone can take longer than 300 ms."""
    cfg = {"observability": {"agents": list(agents), "interval_ms": 200,
                             "timeout_ms": int(scaled(300)),
                             "discover": False,
                             "memory_services": {"enabled": False, "timeout_ms": 300},
                             "memory_orchestrator_endpoint": "tcp://127.0.0.1:%d" % free_port(),
                             "memory_scheduler_endpoint": "tcp://127.0.0.1:%d" % free_port()}}
    extra = obs.pop("top", {})
    cfg["observability"].update(obs)
    cfg.update(extra)
    return json.dumps(cfg)


def write_jwt_keys(path):
    """A key file as token.c reads it; returns an admin JWT signed with it."""
    return admin_jwt(path)
