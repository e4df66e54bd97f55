"""A stand-in for ModelManagerAgent (model_manager_agent_fixed.py) as the
VRAM optimizer sees it: a REP socket answering the `command` requests
exactly as the original does (RS-73).

  GET_LOADED_MODELS_STATUS -> {"status":"SUCCESS","loaded_models":{...},"total_models":n,
                               "total_vram_used_mb":n,"total_vram_mb":n}
  UNLOAD_MODEL {model_name}  -> {"status":"SUCCESS",...} (also when the model is not loaded)
  LOAD_MODEL {model_name, device, quantization_level} -> {"status":"SUCCESS",...}
  HEALTH_CHECK               -> {"status":"SUCCESS",...}

Every request is recorded (`requests`), so tests assert what the optimizer
sent, in order.  Knobs for failure cases: `fail_unload` (names answered
with ERROR), `silent` (requests to swallow without a reply, to exercise the
5 s timeout and the Lazy Pirate reconnect), `used_mb` (total_vram_used_mb
to report; defaults to the sum of the models).

The same class serves as the other peers the optimizer pings (SDT, RC, MEF)
through `extra`, a dict of request-key -> reply.
"""
import json
import threading
import time

import zmq

from conftest import scaled


class FakePeer:
    def __init__(self, models=None, used_mb=None, total_mb=24564):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.models = dict(models or {})
        self.used_mb = used_mb
        self.total_mb = total_mb
        self.fail_unload = set()
        self.silent = 0
        self.extra = {}
        self.requests = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    # -- what the original ModelManagerAgent answers --------------------------
    def answer(self, req):
        command = req.get("command")
        action = req.get("action")
        key = command or action
        if key in self.extra:
            reply = self.extra[key]
            return reply(req) if callable(reply) else reply
        if command == "GET_LOADED_MODELS_STATUS":
            used = self.used_mb
            if used is None:
                used = sum(m.get("vram_usage_mb", 0) for m in self.models.values())
            return {"status": "SUCCESS", "loaded_models": self.models,
                    "total_models": len(self.models), "total_vram_used_mb": used,
                    "total_vram_mb": self.total_mb}
        if command == "UNLOAD_MODEL":
            name = req.get("model_name")
            if name in self.fail_unload:
                return {"status": "ERROR", "message": "Failed to unload model %s" % name}
            self.models.pop(name, None)
            return {"status": "SUCCESS", "message": "Model %s unloaded successfully" % name}
        if command == "LOAD_MODEL":
            name = req.get("model_name")
            self.models[name] = {"vram_usage_mb": 1000, "device": req.get("device"),
                                 "last_used": time.time(), "is_active": False,
                                 "quantization": req.get("quantization_level")}
            return {"status": "SUCCESS", "message": "Model %s loaded successfully" % name}
        if command == "HEALTH_CHECK":
            return {"status": "SUCCESS", "message": "ModelManagerAgent is healthy",
                    "loaded_models": len(self.models)}
        return {"status": "ERROR", "message": "Unknown command: %s" % command}

    def _serve(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while self.running:
            if not poller.poll(50):
                continue
            frames = self.sock.recv_multipart()
            try:
                req = json.loads(frames[-1])
            except ValueError:
                req = {"raw": frames[-1].decode(errors="replace")}
            with self.lock:
                self.requests.append(req)
                if self.silent > 0:
                    self.silent -= 1
                    continue
                reply = self.answer(req)
            self.sock.send_multipart(frames[:-1] + [json.dumps(reply).encode()])

    # -- for tests --------------------------------------------------------------
    def sent(self, command=None):
        with self.lock:
            return [r for r in self.requests
                    if command is None or r.get("command") == command or r.get("action") == command]

    def wait_for(self, predicate, timeout=10.0):
        deadline = time.time() + scaled(timeout)
        while time.time() < deadline:
            with self.lock:
                if predicate(list(self.requests)):
                    return True
            time.sleep(0.05)
        return False

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()
