"""A stand-in for one of the ~70 Python agents, for the two-machine test.

It does what BaseAgent does at the wire: registers with CoreOrchestrator
(`register_agent` with `registration_data`), answers health checks on its
main and health ports, publishes an error to the ErrorBus in framing F1
(`ERROR:{json}`, as error_bus_template.report_error does), and keeps
sending `heartbeat` to the registry over one REQ socket, resetting it on a
timeout (Lazy Pirate) so a registry restart is survived without a restart
of the agent.  No kept agent heartbeats, so that route is an
administrator's: the heartbeats carry the --token given.  `get_stats` on either port tells the test how the
heartbeats went, and the `command` requests HEALTH_CHECK and
GET_LOADED_MODELS_STATUS are answered as ModelManagerAgent does, so
MainPC's stand-in is also ResourceManager's ModelManager across the link.

The error is sent only after the ErrorBus's subscription has reached this
side (an XPUB sees it arrive; on the wire it is a PUB), so nothing is lost
to the slow-joiner window and the test need not retry.

  python3 standin_agent.py --name N --host ADDR --port P --core EP --errorbus EP --location L \
      --token JWT
"""
import argparse
import json
import sys
import time

import zmq


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--core", required=True)
    p.add_argument("--errorbus", required=True)
    p.add_argument("--location", required=True)
    p.add_argument("--token", required=True, help="an administrator's token, for the heartbeats")
    p.add_argument("--heartbeat-s", type=float, default=0.2)
    p.add_argument("--timeout-ms", type=int, default=500)
    return p.parse_args()


class Registry:
    """One REQ socket to CoreOrchestrator, reset after a timeout.  Calls
    never block: the agent keeps answering health checks while the
    registry is away, as a BaseAgent's separate health thread would."""

    def __init__(self, ctx, endpoint, timeout_ms):
        self.ctx = ctx
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.sock = None
        self.deadline = None

    def send(self, message):
        if self.sock is None:
            self.sock = self.ctx.socket(zmq.REQ)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.connect(self.endpoint)
        self.sock.send_json(message)
        self.deadline = time.time() + self.timeout_ms / 1000.0

    def pending(self):
        return self.deadline is not None

    def receive(self):
        self.deadline = None
        return json.loads(self.sock.recv())

    def expired(self):
        """True (and the socket reset) once the pending call timed out."""
        if self.deadline is None or time.time() < self.deadline:
            return False
        self.sock.close()
        self.sock = None
        self.deadline = None
        return True


class Agent:
    def __init__(self, args):
        self.args = args
        self.ctx = zmq.Context()
        self.servers = []
        for port in (args.port, args.port + 1):
            s = self.ctx.socket(zmq.ROUTER)
            s.setsockopt(zmq.LINGER, 0)
            s.bind("tcp://*:%d" % port)
            self.servers.append(s)
        self.registry = Registry(self.ctx, args.core, args.timeout_ms)
        self.errors = self.ctx.socket(zmq.XPUB)
        self.errors.setsockopt(zmq.LINGER, 2000)
        self.errors.connect(args.errorbus)
        self.stats = {"registered": False, "error_sent": False, "heartbeats_ok": 0,
                      "heartbeats_failed": 0, "last_heartbeat_ok": None}

    def registration(self):
        a = self.args
        data = {"agent_id": a.name, "agent_type": "StandInAgent", "host": a.host, "port": a.port,
                "health_check_port": a.port + 1, "capabilities": ["basic_agent"], "dependencies": [],
                "metadata": {"start_time": time.time(), "python_version": sys.version.split()[0],
                             "location": a.location}}
        return {"action": "register_agent", "agent_name": a.name, "status": "HEALTHY",
                "location": a.location, "registration_data": data, "source_agent": a.name,
                "request_id": "%s-%f" % (a.name, time.time()), "timestamp": time.time()}

    def error_report(self):
        a = self.args
        return {"timestamp": time.time(), "agent": a.name, "error_type": "two_machine_test",
                "message": "stand-in %s on %s reports an error" % (a.name, a.location),
                "severity": "ERROR", "details": {"location": a.location}}

    @staticmethod
    def model_manager(command):
        """MainPC's stand-in is also ResourceManager's ModelManagerAgent peer,
        with no model loaded (the original's `command` replies)."""
        if command == "HEALTH_CHECK":
            return {"status": "SUCCESS", "message": "ModelManagerAgent is healthy"}
        if command == "GET_LOADED_MODELS_STATUS":
            return {"status": "SUCCESS", "loaded_models": {}, "total_models": 0,
                    "total_vram_used_mb": 0, "total_vram_mb": 24564}
        return {"status": "ERROR", "message": "Unknown command: %s" % command}

    def answer(self, sock):
        frames = sock.recv_multipart()
        try:
            request = json.loads(frames[-1])
        except ValueError:
            request = {}
        action = request.get("action") if isinstance(request, dict) else None
        command = request.get("command") if isinstance(request, dict) else None
        if command:
            reply = self.model_manager(command)
        elif action == "get_stats":
            reply = dict(self.stats, status="success")
        elif action in ("health_check", "health", "ping"):
            reply = {"status": "ok", "agent": self.args.name, "location": self.args.location}
        else:
            reply = {"status": "error", "error": "Unknown action: %s" % action}
        sock.send_multipart(frames[:-1] + [json.dumps(reply).encode()])

    def tick(self):
        if self.registry.pending():
            if self.registry.expired() and self.stats["registered"]:
                self.stats["heartbeats_failed"] += 1
            return
        if not self.stats["registered"]:
            self.registry.send(self.registration())
        else:
            self.registry.send({"action": "heartbeat", "agent_name": self.args.name,
                                "auth_token": self.args.token})

    def on_registry_reply(self):
        reply = self.registry.receive()
        ok = isinstance(reply, dict) and reply.get("status") == "success"
        if not self.stats["registered"]:
            self.stats["registered"] = ok
        elif ok:
            self.stats["heartbeats_ok"] += 1
            self.stats["last_heartbeat_ok"] = time.time()
        else:
            self.stats["heartbeats_failed"] += 1

    def run(self):
        next_tick = 0.0
        while True:
            poller = zmq.Poller()
            for s in self.servers:
                poller.register(s, zmq.POLLIN)
            poller.register(self.errors, zmq.POLLIN)
            if self.registry.pending():
                poller.register(self.registry.sock, zmq.POLLIN)
            wait_ms = max(0, int((next_tick - time.time()) * 1000))
            for sock, _ in poller.poll(min(wait_ms, 50)):
                if sock is self.errors:
                    # A subscription arrived: the bus will now see what we send.
                    if self.errors.recv().startswith(b"\x01") and not self.stats["error_sent"]:
                        self.errors.send(b"ERROR:" + json.dumps(self.error_report()).encode())
                        self.stats["error_sent"] = True
                elif self.registry.pending() and sock is self.registry.sock:
                    self.on_registry_reply()
                else:
                    self.answer(sock)
            if time.time() >= next_tick:
                self.tick()
                next_tick = time.time() + self.args.heartbeat_s


if __name__ == "__main__":
    Agent(parse_args()).run()
