"""A stand-in for GoalManager, one of the kept agents, written from its code
(main_pc_code/agents/goal_manager.py and common/core/base_agent.py at
8344b303), for test_kept_clients.py's end-to-end test.

What it does is what the original does, in the same order and with the same
bytes on the wire:
- BaseAgent.__init__: binds its main port and its health port (REP
  sockets), starts the health loop, which answers every frame with
  GoalManager._get_health_status() ({"status": "HEALTHY", ...}), and
  registers with SystemDigitalTwin (BaseAgent._register_with_digital_twin:
  register_agent with registration_data, through send_request_to_agent,
  which adds source_agent, request_id and timestamp; 3 tries 2 s apart).
- GoalManager.__init__: its MemoryClient, whose MemoryOrchestratorService
  never answers here, and its error-bus PUB connected to the ErrorBus.
- The main loop (BaseAgent.run) hands each request to
  GoalManager.handle_request: set_goal stores the goal through
  MemoryClient.add_memory, which times out (5 s) and answers "Request timed
  out. Reconnection attempted."; set_goal then calls report_error
  ("goal_creation_error", framing F1 with a lowercase severity) and answers
  {"status": "error", "message": ...}.

Three liberties, none visible to Keel: every address is a parameter (the
tests move every port by an offset; the original reads PC2_IP, 7150 and
localhost:7120); the MemoryClient inside GoalManager, itself a BaseAgent with
ports and a registration of its own, is reduced to its add_memory call;
and the registration host is 127.0.0.1, the value BaseAgent falls back to
when the hostname does not resolve.

  python3 kept_goal_manager.py --port P --health-port H --sdt EP --errorbus EP --memory EP
"""
import argparse
import json
import sys
import threading
import time
import uuid
from datetime import datetime

import zmq

NAME = "GoalManager"


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--health-port", type=int, required=True)
    p.add_argument("--sdt", required=True, help="SystemDigitalTwin, tcp://localhost:7120 in the original")
    p.add_argument("--errorbus", required=True)
    p.add_argument("--memory", required=True, help="MemoryOrchestratorService, which never answers here")
    return p.parse_args()


class GoalManager:
    def __init__(self, args):
        self.args = args
        self.start_time = time.time()
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind("tcp://*:%d" % args.port)
        self.health_context = zmq.Context()
        self.health_socket = self.health_context.socket(zmq.REP)
        self.health_socket.setsockopt(zmq.LINGER, 0)
        self.health_socket.bind("tcp://*:%d" % args.health_port)
        threading.Thread(target=self.health_loop, daemon=True).start()
        self.register_with_digital_twin()
        self.goals, self.task_queue = {}, []
        self.memory = self.context.socket(zmq.REQ)      # MemoryClient._initialize_client_socket
        self.memory.connect(args.memory)
        self.memory.setsockopt(zmq.LINGER, 0)
        self.memory.setsockopt(zmq.RCVTIMEO, 5000)
        self.memory.setsockopt(zmq.SNDTIMEO, 5000)
        self.error_bus_pub = self.context.socket(zmq.PUB)
        self.error_bus_pub.connect(args.errorbus)

    # -- BaseAgent --------------------------------------------------------
    def base_health(self):
        return {"status": "ok", "ready": True, "initialized": True, "message": "%s is healthy" % NAME,
                "timestamp": datetime.now().isoformat(), "uptime": time.time() - self.start_time,
                "active_threads": threading.active_count()}

    def get_health_status(self):
        status = self.base_health()
        status.update({"service": NAME, "uptime_seconds": int(time.time() - self.start_time),
                       "goal_count": len(self.goals), "task_queue_size": len(self.task_queue),
                       "status": "HEALTHY"})
        return status

    def health_loop(self):
        while True:
            if self.health_socket.poll(1000):
                self.health_socket.recv()
                self.health_socket.send_json(self.get_health_status())
            time.sleep(0.1)

    def send_request_to_agent(self, endpoint, request, timeout=5000, retries=1, retry_delay=1.0):
        for attempt in range(retries):
            sock = self.context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVTIMEO, timeout)
            sock.connect(endpoint)
            enriched = request.copy()
            enriched.update({"source_agent": NAME, "request_id": str(uuid.uuid4()),
                             "timestamp": datetime.now().isoformat()})
            try:
                sock.send_json(enriched)
                return sock.recv_json()
            except zmq.error.Again:
                pass
            finally:
                sock.close()
            if attempt < retries - 1:
                time.sleep(retry_delay)
        raise RuntimeError("Failed to communicate with SystemDigitalTwin after %d attempts" % retries)

    def register_with_digital_twin(self):
        registration = {"agent_id": NAME, "agent_type": "GoalManager", "host": "127.0.0.1",
                        "port": self.args.port, "health_check_port": self.args.health_port,
                        "capabilities": ["basic_agent"], "dependencies": [],
                        "metadata": {"start_time": datetime.now().isoformat(), "python_version": sys.version}}
        self.send_request_to_agent(self.args.sdt, {
            "action": "register_agent", "agent_name": NAME, "status": "HEALTHY", "location": "MainPC",
            "registration_data": registration}, retries=3, retry_delay=2.0)

    # -- GoalManager --------------------------------------------------------
    def add_memory(self, content, memory_type, memory_tier, importance, metadata, tags):
        payload = {"action": "add_memory", "data": {"content": content, "memory_type": memory_type,
                                                      "memory_tier": memory_tier, "importance": importance,
                                                      "created_by": NAME}}
        payload["data"]["metadata"] = metadata
        payload["data"]["tags"] = tags
        try:
            self.memory.send_json(payload)
            return self.memory.recv_json()
        except zmq.error.Again:
            self.memory.close()
            self.memory = self.context.socket(zmq.REQ)
            self.memory.connect(self.args.memory)
            self.memory.setsockopt(zmq.LINGER, 0)
            self.memory.setsockopt(zmq.RCVTIMEO, 5000)
            return {"status": "error", "message": "Request timed out. Reconnection attempted."}

    def report_error(self, error_type, message, severity):
        error_data = {"timestamp": time.time(), "agent": NAME, "error_type": error_type,
                      "message": message, "severity": severity}
        self.error_bus_pub.send_string("ERROR:%s" % json.dumps(error_data))

    def set_goal(self, data):
        goal_desc = data.get("description")
        if not goal_desc:
            return {"status": "error", "message": "Goal description is required."}
        goal_metadata = {"description": goal_desc, "status": "pending",
                         "created_at": datetime.now().isoformat(),
                         "user_id": data.get("user_id", "default"), "priority": data.get("priority", 5)}
        response = self.add_memory(goal_desc, "goal", "medium", 0.8, goal_metadata, ["goal", "planning"])
        if response.get("status") == "success":
            return {"status": "success", "goal_id": response.get("memory_id"),
                    "message": "Goal received and is being planned."}
        error_msg = response.get("message", "Failed to store goal in memory system")
        self.report_error("goal_creation_error", error_msg, "error")
        return {"status": "error", "message": error_msg}

    def handle_request(self, request):
        action = request.get("action")
        if action == "set_goal":
            return self.set_goal(request.get("data", {}))
        return {"status": "error", "message": "Unknown action: %s" % action}

    def run(self):
        while True:
            if self.socket.poll(1000):
                request = json.loads(self.socket.recv().decode())
                self.socket.send_json(self.handle_request(request))
            time.sleep(0.1)


if __name__ == "__main__":
    GoalManager(parse_args()).run()
