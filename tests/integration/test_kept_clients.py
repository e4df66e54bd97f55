"""The kept agents, as they are written, against `keeld all` (issue 15).

One test per call site of the kept agents' own client code
(HaymayndzUltra/voice-assistant-prod at 8344b303), each naming the file and
function it reproduces.  Each sends what that code sends, byte for byte (a
dict through pyzmq's send_json is the same bytes as the agent's send_json;
BaseAgent.send_request_to_agent's envelope keys are added as it adds them),
to the port it dials (the old ports, `legacy_ports: true`, moved by the
test's PORT_OFFSET like every port), and asserts what that code reads from
the reply.  Where the original code could never have made the call (a bug
in the agent itself), the docstring says so and the test sends what the
code means to send.  The last test runs one whole kept agent, GoalManager,
as a stand-in written from its code (kept_goal_manager.py).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta

import pytest
import zmq

from conftest import PORTS, ROOT, Keel, free_port, http_get, scaled, zmq_request
from errorbus_util import rows
from keel_names import ALL as KEEL_NAMES
from observability_util import StandInAgent, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
LEGACY = os.path.join(os.path.dirname(ROOT), "shared", "legacy")

SDT, SR, RC, PHM, PLA = 7120, 7100, 26002, 5613, 7128      # the old ports the kept code dials
PLA_FOR_LEARNING_ADJUSTER, ATS_FOR_LEARNING_ADJUSTER = 5632, 5628

CONFIG = """\
legacy_ports: true
observability:
  interval_ms: 300
  discovery_interval_ms: 300
  timeout_ms: %d
  flap: {failures: 2, window: 3}
  memory_services: {enabled: false, timeout_ms: 300}
""" % int(scaled(500))


# What a Keel service's health answer says: ErrorBus answers "success" (EB's own
# form), ResourceManager "degraded" while the machine is past its thresholds.
ANSWERS = ("ok", "success", "degraded")


def probed(k, name, state):
    """The hub's record of `name` once a probe has answered and the state is `state`."""
    rec = hub_record(k, name)
    return rec if rec and rec["status"] != "unknown" and rec["state"] == state else None


def enriched(request, source):
    """BaseAgent.send_request_to_agent (common/core/base_agent.py): the request
    copied, then source_agent, request_id and timestamp added, in that order."""
    out = dict(request)
    out.update({"source_agent": source, "request_id": str(uuid.uuid4()),
                "timestamp": datetime.now().isoformat()})
    return out


def endpoint_of(k, name):
    rec = k.request("core", {"action": "get_agent_endpoint", "agent_name": name})
    return rec if rec.get("status") == "success" else None


@pytest.fixture(scope="module")
def keel():
    k = Keel("all", config=CONFIG)
    k.start()
    try:
        # Every service registers its names once it is ready (announce.h).
        assert wait_until(lambda: all(endpoint_of(k, n) for n in KEEL_NAMES), 15), \
            [n for n in KEEL_NAMES if not endpoint_of(k, n)]
        yield k
    finally:
        k.cleanup()


def hub_record(k, name):
    return k.request("observability", {"action": "get_agents_health"})["agents"].get(name)


def registry_row(k, name):
    rows_ = k.request("core", {"action": "describe_agents"})["agents"]
    return next((r for r in rows_ if r["agent_id"] == name), None)


def base_agent_registration(name, agent_type, port, health_port, capabilities=("basic_agent",)):
    """BaseAgent._register_with_digital_twin (common/core/base_agent.py): the
    AgentRegistration's fields in their declared order, under registration_data.
    host is 127.0.0.1, BaseAgent's value when the hostname does not resolve."""
    registration = {"agent_id": name, "agent_type": agent_type, "host": "127.0.0.1", "port": port,
                    "health_check_port": health_port, "capabilities": list(capabilities),
                    "dependencies": [], "metadata": {"start_time": datetime.now().isoformat(),
                                                     "python_version": sys.version}}
    return enriched({"action": "register_agent", "agent_name": name, "status": "HEALTHY",
                     "location": "MainPC", "registration_data": registration}, name)


# ---- discovery: every name, every dialect ------------------------------------------------

@pytest.mark.parametrize("name", sorted(KEEL_NAMES))
def test_discover_service_finds_every_keel_name(keel, name):
    """main_pc_code/utils/service_discovery_client.py: ServiceDiscoveryClient.discover_service
    and get_service_address.  DISCOVER on SystemDigitalTwin's 7120; the client
    reads status == "SUCCESS" and builds tcp://{payload.ip}:{payload.port}.  The
    address is the service that absorbed the name, and it answers there."""
    reply = keel.request(SDT, {"command": "DISCOVER", "payload": {"name": name}})
    assert reply["status"] == "SUCCESS", reply
    info = reply["payload"]
    assert "ip" in info and "port" in info, info
    ip = "127.0.0.1" if info["ip"] == "0.0.0.0" else info["ip"]
    assert (ip, info["port"]) == ("127.0.0.1", keel.port(PORTS[KEEL_NAMES[name]][0]))
    assert zmq_request("tcp://%s:%d" % (ip, info["port"]), {"action": "ping"})["status"] in ANSWERS


@pytest.mark.parametrize("name", sorted(KEEL_NAMES))
def test_get_agent_endpoint_finds_every_keel_name(keel, name):
    """common/core/base_agent.py: BaseAgent.get_agent_endpoint, through
    send_request_to_agent to ServiceRegistry on 7100 (SERVICE_REGISTRY_PORT).
    It reads status == "success", then host and int(port); its health port,
    where a monitor sends health_check, answers too."""
    reply = keel.request(SR, enriched({"action": "get_agent_endpoint", "agent_name": name}, "Tester"))
    assert reply["status"] == "success", reply
    port = keel.port(PORTS[KEEL_NAMES[name]][0])
    assert (reply["host"], int(reply["port"])) == ("127.0.0.1", port)
    health = zmq_request("tcp://127.0.0.1:%d" % reply["health_check_port"], {"action": "health_check"})
    assert health["status"] in ANSWERS


def test_discover_unknown_name_is_not_retried(keel):
    """main_pc_code/utils/service_discovery_client.py: ServiceDiscoveryClient.discover_service
    gives up at once when the message says "not registered" or "not found"."""
    reply = keel.request(SDT, {"command": "DISCOVER", "payload": {"name": "NoSuchAgent"}})
    assert reply["status"] != "SUCCESS"
    assert "not registered" in reply["message"].lower()


def test_streaming_language_analyzer_finds_health_monitor_at_once(keel):
    """main_pc_code/agents/streaming_language_analyzer.py: StreamingLanguageAnalyzer.__init__
    calls get_service_address("HealthMonitor") and connects its health PUB there.
    Before, HealthMonitor was unknown and the client spent about 6 s in retries
    before falling back; now the first DISCOVER answers."""
    started = time.time()
    reply = keel.request(SDT, {"command": "DISCOVER", "payload": {"name": "HealthMonitor"}})
    assert time.time() - started < scaled(1.0)
    assert reply["status"] == "SUCCESS"
    assert "tcp://%s:%d" % (reply["payload"]["ip"], reply["payload"]["port"]) == keel.endpoint(7002)


@pytest.mark.parametrize("name,capabilities", [
    ("STTService", ["stt", "transcription", "multilingual", "batch_processing"]),
    ("TTSService", ["tts", "speech_synthesis", "multilingual"]),
])
def test_register_service_without_ip_gets_the_callers_address(keel, name, capabilities):
    """main_pc_code/services/stt_service.py and tts_service.py: _register_service calls
    service_discovery_client.register_service(name, port, additional_info), a
    REGISTER with no ip; it reads status == "SUCCESS".  A peer's
    get_service_address(name) then reads payload ip and port: the address the
    registration came from."""
    port = 5800 if name == "STTService" else 5801
    reply = keel.request(SDT, {"command": "REGISTER", "payload": {
        "name": name, "port": port, "capabilities": capabilities, "status": "online"}})
    assert reply["status"] == "SUCCESS", reply
    found = keel.request(SDT, {"command": "DISCOVER", "payload": {"name": name}})
    assert found["status"] == "SUCCESS"
    assert "tcp://%s:%d" % (found["payload"]["ip"], found["payload"]["port"]) == "tcp://127.0.0.1:%d" % port
    assert endpoint_of(keel, name)["host"] == "127.0.0.1"


def test_coordinator_resolves_agents_under_their_registered_names(keel):
    """The coordinator looks downstream agents up as GOT_TOTAgent, StreamingTTSAgent and
    MemoryOrchestrator; the agents register as GoTToTAgent (the startup
    configuration's key for FORMAINPC/GOT_TOTAgent.py), StreamingTtsAgent
    (main_pc_code/agents/streaming_tts_agent.py) and MemoryOrchestratorService
    (pc2_code/agents/memory_orchestrator_service.py).  core.aliases maps them:
    an audio request reaches GoTToTAgent, and its `speak` and `memory_entry`
    reach the other two."""
    got = StandInAgent({"status": "success", "speak": "kumusta", "memory_entry": {"text": "hello"}})
    tts = StandInAgent({"status": "success"})
    memory = StandInAgent({"status": "success"})
    try:
        for name, agent in (("GoTToTAgent", got), ("StreamingTtsAgent", tts), ("MemoryOrchestratorService", memory)):
            keel.request(SDT, base_agent_registration(name, name, agent.port, agent.port))
        assert endpoint_of(keel, "GOT_TOTAgent")["port"] == got.port
        # no kept agent sends a `type` request: an administrator's (test_privileges.py)
        reply = keel.admin(RC, {"type": "audio", "audio_data": "AAAA", "user_id": "u1"})
        assert reply["status"] == "success", reply
        assert wait_until(lambda: got.count(lambda r: r.get("task_type") == "audio_processing"), 5)
        assert wait_until(lambda: tts.count(lambda r: r == {"text": "kumusta"}), 5)
        assert wait_until(lambda: memory.count(lambda r: r.get("action") == "save"
                                               and r.get("data") == {"text": "hello"}), 5)
    finally:
        for name, agent in (("GoTToTAgent", got), ("StreamingTtsAgent", tts), ("MemoryOrchestratorService", memory)):
            agent.stop()
            keel.request("core", {"action": "unregister_agent", "agent_name": name})


# ---- BaseAgent: registration, ping, the health loop ----------------------------------------

def test_base_agent_registration(keel):
    """common/core/base_agent.py: BaseAgent._register_with_digital_twin sends
    register_agent with registration_data to SystemDigitalTwin (localhost:7120)
    through send_request_to_agent; it only needs a JSON reply.  The agent is
    then found by get_agent_endpoint and DISCOVER."""
    reply = keel.request(SDT, base_agent_registration("RegisteredByBaseAgent", "TestAgent", 5999, 6000))
    assert reply["status"] == "success" and reply["agent_id"] == "RegisteredByBaseAgent"
    rec = endpoint_of(keel, "RegisteredByBaseAgent")
    assert (rec["host"], rec["port"], rec["health_check_port"]) == ("127.0.0.1", 5999, 6000)
    found = keel.request(SDT, {"command": "DISCOVER", "payload": {"name": "RegisteredByBaseAgent"}})
    assert (found["payload"]["ip"], found["payload"]["port"]) == ("127.0.0.1", 5999)


def test_ping_system_digital_twin(keel):
    """main_pc_code/scripts/test_sdt_improved.py (and simple_agent_health_test.py):
    {"action": "ping"} to SystemDigitalTwin on 7120; any JSON reply is success.
    BaseAgent's own ping, with the envelope, is answered the same way."""
    assert keel.request(SDT, {"action": "ping"})["status"] == "ok"
    assert keel.request(SDT, enriched({"action": "ping"}, "Tester"))["message"] == "pong"


# Every form the kept agents' health replies take (BaseAgent._health_check_loop
# answers any frame with the agent's _get_health_status()), and the one state
# the hub makes of it.
HEALTH_FORMS = [
    ("main_pc_code/agents/goal_manager.py:GoalManager._get_health_status",
     {"status": "HEALTHY", "ready": True, "service": "GoalManager", "goal_count": 0}, "up"),
    ("main_pc_code/agents/knowledge_base.py:KnowledgeBase._get_health_status",
     {"status": "HEALTHY", "service": "KnowledgeBase", "uptime_seconds": 3, "request_count": 0,
      "timestamp": 1752650000.5}, "up"),
    ("common/core/base_agent.py:BaseAgent._get_health_status",
     {"status": "ok", "ready": True, "initialized": True, "message": "X is healthy"}, "up"),
    ("main_pc_code/agents/executor.py:ExecutorAgent.health_check",
     {"status": "OK", "uptime": 12.0}, "up"),
    ("main_pc_code/agents/streaming_tts_agent.py:UltimateTTSAgent._get_health_status",
     {"agent": "StreamingTtsAgent", "status": "online", "uptime": 5, "error": None}, "up"),
    ("main_pc_code/agents/nlu_agent.py:NLUAgent._get_health_status",
     {"status": "initializing", "message": "NLUAgent is running"}, "degraded"),
    ("main_pc_code/agents/active_learning_monitor.py:ActiveLearningMonitor._get_health_status",
     {"status": "degraded", "agent_specific_metrics": {"zmq_ready": False}}, "degraded"),
    ("main_pc_code/agents/executor.py:ExecutorAgent._get_health_status",
     {"status": "UNHEALTHY", "details": {"status_message": "Agent is not running"}}, "down"),
]


@pytest.mark.parametrize("where,reply,state", HEALTH_FORMS, ids=[f[0].split(":")[1] for f in HEALTH_FORMS])
def test_health_replies_read_as_the_agents_write_them(keel, where, reply, state):
    """Health as the agents write it, and one truth per agent: the agent
    registers as BaseAgent does, its health port answers as `where` does, and
    the hub's record, get_system_health and the registry's describe_agents
    (keelctl agents) all show the same state; an unhealthy answer keeps the
    reply's own words in the reason."""
    name = "Health_" + where.split(":")[1].replace(".", "_")
    agent = StandInAgent(reply)
    try:
        keel.request(SDT, base_agent_registration(name, "HealthForm", agent.port, agent.port))
        rec = wait_until(lambda: probed(keel, name, state), 10)
        assert rec, hub_record(keel, name)
        assert rec["details"]["status"] == reply["status"]
        if state != "up":
            assert "'%s'" % reply["status"] in rec["reason"], rec
        assert wait_until(lambda: (registry_row(keel, name) or {}).get("state") == state, 5), \
            registry_row(keel, name)
        assert registry_row(keel, name)["state_source"] == "ObservabilityHub"
        system = keel.request(PHM, {"action": "get_system_health"})["system"]
        assert system["agents"][name]["state"] == state
    finally:
        agent.stop()
        keel.request("core", {"action": "unregister_agent", "agent_name": name})


# ---- the error bus: all four framings -------------------------------------------------------

class ErrorPub:
    """A PUB connected to the ErrorBus ingress as an agent's reporter is; it
    sends once the bus has subscribed (an XPUB sees the subscription arrive,
    on the wire it is a PUB), so nothing is lost to the slow joiner."""

    def __init__(self, k):
        self.sock = zmq.Context.instance().socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 2000)
        self.sock.connect(k.endpoint(7150))
        assert self.sock.poll(int(scaled(5000))), "the ErrorBus never subscribed"
        self.sock.recv()

    def close(self):
        self.sock.close()


def stored(k, agent, pred, timeout=10):
    return wait_until(lambda: [r for r in rows(k, agent=agent, limit=100) if pred(r)], timeout)


def test_error_f1_send_string(keel):
    """main_pc_code/agents/knowledge_base.py: KnowledgeBase._report_error (framing F1, as
    memory_client, session_memory_agent, stt/tts_service...):
    send_string(f"ERROR:{json.dumps(error_data)}")."""
    pub = ErrorPub(keel)
    try:
        error_data = {"timestamp": time.time(), "agent": "KnowledgeBase", "error_type": "add_fact_error",
                      "message": "Client not connected to orchestrator.", "severity": "ERROR"}
        pub.sock.send_string("ERROR:%s" % json.dumps(error_data))
        row = stored(keel, "KnowledgeBase", lambda r: r["error_type"] == "add_fact_error")[0]
        assert (row["framing"], row["message"]) == ("F1", "Client not connected to orchestrator.")
    finally:
        pub.close()


def test_error_f2_multipart_with_colon(keel):
    """main_pc_code/agents/streaming_tts_agent.py: UltimateTTSAgent.report_error (framing F2, as
    request_coordinator, streaming_interrupt_handler, active_learning_monitor):
    send_multipart([b"ERROR:", msg]) with no agent and no timestamp."""
    pub = ErrorPub(keel)
    try:
        message = "TTS engine failed %s" % uuid.uuid4().hex
        error_data = {"error_type": "tts_error", "message": message, "severity": "ERROR", "context": {}}
        pub.sock.send_multipart([b"ERROR:", json.dumps(error_data).encode("utf-8")])
        row = stored(keel, "unknown", lambda r: r["message"] == message)[0]
        assert (row["framing"], row["error_type"]) == ("F2", "tts_error")
    finally:
        pub.close()


def test_error_f3_multipart_without_colon(keel):
    """pc2_code/agents/tutoring_agent.py: TutoringAgent.report_error (framing F3, as
    DreamingModeAgent, filesystem_assistant_agent, advanced_router...):
    send_multipart([b"ERROR", json]) with `type`, not error_type.  (These files do
    not parse at 8344b303, so the originals never ran; these are the bytes their
    code sends.)"""
    pub = ErrorPub(keel)
    try:
        error_report = {"timestamp": datetime.now().isoformat(), "agent": "TutoringAgent",
                        "type": "LESSON_GENERATION_ERROR", "message": "Error generating lesson: x",
                        "severity": "ERROR"}
        pub.sock.send_multipart([b"ERROR", json.dumps(error_report).encode("utf-8")])
        row = stored(keel, "TutoringAgent", lambda r: r["error_type"] == "LESSON_GENERATION_ERROR")[0]
        assert row["framing"] == "F3"
    finally:
        pub.close()


def test_error_publisher_nested_report(keel):
    """main_pc_code/agents/error_publisher.py: ErrorPublisher.publish_error, used by
    face_recognition_agent (source = class name): F1 framing around the nested
    {message_type, source, timestamp, error_data} report, details a string."""
    pub = ErrorPub(keel)
    try:
        payload = {"message_type": "error_report", "source": "FaceRecognitionAgent",
                   "timestamp": datetime.utcnow().isoformat(),
                   "error_data": {"error_id": str(uuid.uuid4()), "error_type": "zmq_init_failure",
                                  "severity": "error", "details": "Address already in use"}}
        pub.sock.send_string("ERROR:%s" % json.dumps(payload))
        row = stored(keel, "FaceRecognitionAgent", lambda r: r["error_type"] == "zmq_init_failure")[0]
        assert row["framing"] == "F1"
    finally:
        pub.close()


# ---- ModelManagerAgent -----------------------------------------------------------------------

MMA = "main_pc_code/agents/model_manager_agent_fixed.py"


def vram_optimizer(keel):
    """ModelManagerAgent finds VRAMOptimizerAgent with discover_service("VRAMOptimizerAgent").
    (Its code then calls .get("host") on the (success, response) tuple that
    discover_service returns, so the original never got further; the
    address is the DISCOVER reply's payload, as get_service_address reads it.)"""
    reply = keel.request(SDT, {"command": "DISCOVER", "payload": {"name": "VRAMOptimizerAgent"}})
    assert reply["status"] == "SUCCESS", reply
    return "tcp://%s:%d" % (reply["payload"]["ip"], reply["payload"]["port"])


def test_model_manager_registers_and_reports_to_vram_optimizer(keel):
    """model_manager_agent_fixed.py: ModelManagerAgent._memory_management_loop:
    register_model_manager, then update_vram_status every cycle; it reads
    status == "ok" and unload_models."""
    ep = vram_optimizer(keel)
    reply = zmq_request(ep, {"action": "register_model_manager", "vram_budget_mb": 19660.8, "idle_timeout": 300})
    assert reply["status"] == "ok", reply
    reply = zmq_request(ep, {"action": "update_vram_status", "current_vram_mb": 4000.0, "total_vram_mb": 24576.0,
                             "loaded_models": {"phi-2": {"priority": "medium", "vram_mb": 2000,
                                                         "last_used": time.time()}}})
    assert reply["status"] == "ok" and isinstance(reply["unload_models"], list), reply


def test_model_manager_asks_can_accommodate(keel):
    """model_manager_agent_fixed.py: ModelManagerAgent._can_accommodate_model: reads
    status == "ok" and can_accommodate."""
    reply = zmq_request(vram_optimizer(keel), {"action": "can_accommodate_model", "vram_mb": 1024})
    assert reply["status"] == "ok" and isinstance(reply["can_accommodate"], bool), reply


def test_model_manager_asks_to_make_room(keel):
    """model_manager_agent_fixed.py: ModelManagerAgent._make_room_for_model: reads
    status == "ok", unload_models and success."""
    reply = zmq_request(vram_optimizer(keel), {"action": "make_room_for_model", "vram_mb": 2048,
                                               "loaded_models": {"tinyllama": {"priority": "low", "vram_mb": 1200,
                                                                               "last_used": 0}}})
    assert reply["status"] == "ok" and isinstance(reply["unload_models"], list), reply
    assert isinstance(reply["success"], bool)


def test_model_manager_reports_vram_to_system_digital_twin(keel):
    """model_manager_agent_fixed.py: ModelManagerAgent._report_vram_status_to_sdt (and
    report_vram_metrics_to_sdt): get_service_address("SystemDigitalTwin"), then
    REPORT_MODEL_VRAM; it reads status == "SUCCESS".  The twin then serves it."""
    found = keel.request(SDT, {"command": "DISCOVER", "payload": {"name": "SystemDigitalTwin"}})
    sdt = "tcp://%s:%d" % (found["payload"]["ip"], found["payload"]["port"])
    payload = {"agent_name": "ModelManagerAgent", "total_vram_mb": 24000, "total_vram_used_mb": 3000,
               "loaded_models": {"phi-2": {"vram_usage_mb": 3000, "device": "MainPC", "last_used": time.time(),
                                           "is_active": True, "quantization": "FP16"}},
               "timestamp": time.time()}
    reply = zmq_request(sdt, {"command": "REPORT_MODEL_VRAM", "payload": payload})
    assert reply["status"] == "SUCCESS", reply


def test_model_manager_finds_a_delegated_vram_optimizer_at_its_delegate(keel_factory):
    """In delegate mode a name resolves where its requests are answered: with
    VRAMOptimizerAgent delegated to its still-running original, discover_service
    finds the original; after a reload to unified mode, Keel again."""
    original = StandInAgent({"status": "ok", "answered_by": "original"})
    try:
        delegated = "modules:\n  VRAMOptimizerAgent: {mode: delegate, delegate_to: 'tcp://127.0.0.1:%d'}\n"
        k = keel_factory("all", config=CONFIG + delegated % original.port)
        assert wait_until(lambda: (endpoint_of(k, "VRAMOptimizerAgent") or {}).get("port") == original.port, 10)
        assert vram_optimizer(k) == "tcp://127.0.0.1:%d" % original.port
        with open(k.config_path, "w") as f:
            f.write(CONFIG)
        k.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: (endpoint_of(k, "VRAMOptimizerAgent") or {}).get("port") == k.port(7001), 10)
        assert vram_optimizer(k) == k.endpoint(7001)
    finally:
        original.stop()


# ---- LearningAdjusterAgent's three calls, PerformanceLogger, check_health, ProactiveAgent -----

LAA = "pc2_code/agents/LearningAdjusterAgent.py"


def window():
    end = datetime.now() + timedelta(minutes=1)
    return (end - timedelta(hours=24)).isoformat(), end.isoformat()


def test_performance_logger_log_metric_on_7128(keel):
    """pc2_code/agents/PerformanceLoggerAgent.py: PerformanceLoggerAgent.handle_request's
    log_metric, {"metric": {agent, action, duration, timestamp, metadata}}, on its
    port 7128: stored (it answered "Unknown action: log_metric" there before)."""
    metric = {"agent": "LearnedAgent", "action": "infer", "duration": 0.25,
              "timestamp": datetime.now().isoformat(), "metadata": {"model": "phi-2"}}
    assert keel.request(PLA, {"action": "log_metric", "metric": metric}) == {"status": "success"}


def test_learning_adjuster_gets_performance_metrics(keel):
    """pc2_code/agents/LearningAdjusterAgent.py: LearningAdjusterAgent._get_performance_metrics:
    get_agent_metrics to PerformanceLoggerAgent on 5632 (its default); reads
    status == "success" and a list of dicts under `metrics`."""
    metric = {"agent": "AdjustedAgent", "action": "infer", "duration": 0.5,
              "timestamp": datetime.now().isoformat(), "metadata": {}}
    assert keel.request(PLA, {"action": "log_metric", "metric": metric})["status"] == "success"
    start, end = window()
    reply = keel.request(PLA_FOR_LEARNING_ADJUSTER, {"action": "get_agent_metrics", "agent": "AdjustedAgent",
                                                     "start_time": start, "end_time": end})
    assert reply["status"] == "success", reply
    assert [m["action"] for m in reply["metrics"] if isinstance(m, dict)] == ["infer"]


def test_learning_adjuster_gets_resource_usage(keel):
    """pc2_code/agents/LearningAdjusterAgent.py: LearningAdjusterAgent._get_resource_usage:
    get_agent_resource_usage on 5632; reads status == "success" and `usage`."""
    usage = {"agent": "AdjustedAgent", "cpu_percent": 12.5, "memory_mb": 300.0,
             "timestamp": datetime.now().isoformat(), "metadata": {}}
    assert keel.admin(PLA, {"action": "log_resource_usage", "usage": usage})["status"] == "success"
    start, end = window()
    reply = keel.request(PLA_FOR_LEARNING_ADJUSTER, {"action": "get_agent_resource_usage",
                                                     "agent": "AdjustedAgent", "start_time": start,
                                                     "end_time": end})
    assert reply["status"] == "success", reply
    assert [u["cpu_percent"] for u in reply["usage"] if isinstance(u, dict)] == [12.5]


def test_learning_adjuster_gets_trust_scores(keel):
    """pc2_code/agents/LearningAdjusterAgent.py: LearningAdjusterAgent._get_trust_scores:
    get_agent_scores to AgentTrustScorer on 5628 (its default); reads
    status == "success" and `scores`, names to numbers."""
    keel.admin(7122, {"action": "log_performance", "model_id": "phi-2", "success": True,
                      "response_time": 0.2})
    reply = keel.request(ATS_FOR_LEARNING_ADJUSTER, {"action": "get_agent_scores", "agent": "AdjustedAgent"})
    assert reply["status"] == "success", reply
    scores = {k: float(v) for k, v in reply["scores"].items() if isinstance(v, (int, float))}
    assert 0.0 <= scores["phi-2"] <= 1.0


def test_check_health_asks_predictive_health_monitor(keel):
    """main_pc_code/check_health.py: {'action': 'get_system_health'} to localhost:5613
    (PredictiveHealthMonitor's port), printed whole.  OH-39: overall_status is
    healthy only if every record it lists is."""
    reply = keel.request(PHM, {"action": "get_system_health"})
    assert reply["status"] == "ok", reply
    system = reply["system"]
    every = all(r["status"] == "healthy" for r in system["agents"].values())
    assert system["overall_status"] == ("healthy" if every else "unhealthy")
    assert system["agents"], "the hub watches Keel's own names at least"


def test_proactive_agent_executes_a_task(keel):
    """main_pc_code/agents/ProactiveAgent.py: ProactiveAgent._execute_task sends
    {'action': 'execute_task', 'task': task} to the RequestCoordinator (26002);
    it reads response['status'] == 'success' (else logs `message`).  The task
    reaches ChainOfThoughtAgent as a background task."""
    cot = StandInAgent({"status": "success"})
    try:
        keel.request(SDT, base_agent_registration("ChainOfThoughtAgent", "ChainOfThoughtAgent", cot.port, cot.port))
        task = {"description": "water the plants", "scheduled_time": datetime.now().isoformat(),
                "id": "task_20250716_100000", "status": "pending", "created_at": datetime.now().isoformat()}
        reply = keel.request(RC, {"action": "execute_task", "task": task})
        assert reply["status"] == "success", reply
        assert wait_until(lambda: cot.count(lambda r: r.get("task_type") == "background_task"
                                            and r["parameters"]["task"] == task), 5)
    finally:
        cot.stop()
        keel.request("core", {"action": "unregister_agent", "agent_name": "ChainOfThoughtAgent"})


# ---- the extra ports, and bad input on the new routes ----------------------------------------

@pytest.mark.skipif(not os.path.isdir(LEGACY), reason="../shared/legacy is not beside the checkout")
def test_extra_legacy_ports_are_used_by_no_kept_agent():
    """5632 and 5628 (and their +1000 health ports) are bound with legacy_ports
    only because no agent in either machine's startup configuration uses them."""
    used = set()
    for name in sorted(os.listdir(LEGACY)):
        if name.endswith(".yaml"):
            with open(os.path.join(LEGACY, name)) as f:
                text = f.read()
            assert "health_check_port" in text, "not a startup configuration: " + name
            used |= {(name, port) for port in (5632, 5628, 6632, 6628) if re.search(r"\b%d\b" % port, text)}
    assert used == set()


def test_bad_input_on_the_kept_routes_gets_one_clear_error(keel):
    """Bad input stays as it was: one error reply, no crash."""
    assert keel.request(RC, {"action": "execute_task", "task": "water"})["status"] == "error"
    assert keel.request(PLA, {"action": "log_metric", "metric": "x"})["status"] == "error"
    assert keel.request(SDT, {"command": "REGISTER", "payload": {"port": 1}})["status"] == "ERROR"
    assert keel.request(SDT, {"command": "DISCOVER", "payload": {"name": 5}})["status"] == "ERROR"
    assert keel.request(PHM, b"not json")["status"] == "error"
    assert keel.request("core", {"action": "report_agent_states", "states": "up"})["status"] == "error"
    assert keel.request(SDT, {"action": "ping"})["status"] == "ok"


# ---- one whole kept agent ---------------------------------------------------------------------

def test_goal_manager_end_to_end(keel):
    """GoalManager (main_pc_code/agents/goal_manager.py), run as a stand-in written from
    its code (kept_goal_manager.py): it registers as BaseAgent does, the hub
    probes its health port, which answers "HEALTHY", and sees it up (so does
    the registry's view: one state), and a set_goal whose memory store times
    out makes it publish goal_creation_error (F1), which ErrorBus stores."""
    port, health_port, memory = free_port(), free_port(), free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "kept_goal_manager.py"), "--port", str(port),
                             "--health-port", str(health_port), "--sdt", keel.endpoint(SDT),
                             "--errorbus", keel.endpoint(7150), "--memory", "tcp://127.0.0.1:%d" % memory],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        rec = wait_until(lambda: endpoint_of(keel, "GoalManager"), 10)
        assert rec and (rec["port"], rec["health_check_port"]) == (port, health_port)
        hub = wait_until(lambda: probed(keel, "GoalManager", "up"), 10)
        assert hub and hub["details"]["status"] == "HEALTHY", hub_record(keel, "GoalManager")
        assert wait_until(lambda: (registry_row(keel, "GoalManager") or {}).get("state") == "up", 5)
        # One state in every view: keelctl agents, keelctl health, the dashboard's data, get_system_health.
        listed = json.loads(keel.keelctl("--json", "agents").stdout)
        assert [(a["state"], a["state_source"]) for a in listed if a["agent_id"] == "GoalManager"] == \
            [("up", "ObservabilityHub")]
        fleet = json.loads(keel.keelctl("--json", "health").stdout)
        assert [a["state"] for a in fleet if a["agent"] == "GoalManager"] == ["up"]
        status, body, _ = http_get(keel.http("observability", "/api/dashboard"))
        assert status == 200
        assert [a["state"] for a in json.loads(body)["fleet"] if a["name"] == "GoalManager"] == ["up"]
        system = keel.request(PHM, {"action": "get_system_health"})["system"]
        assert system["agents"]["GoalManager"]["state"] == "up"
        reply = zmq_request("tcp://127.0.0.1:%d" % port, {"action": "set_goal", "data": {"description": "plan a trip"}},
                            timeout_ms=15000)
        assert reply == {"status": "error", "message": "Request timed out. Reconnection attempted."}
        row = stored(keel, "GoalManager", lambda r: r["error_type"] == "goal_creation_error")[0]
        assert (row["framing"], row["message"]) == ("F1", "Request timed out. Reconnection attempted.")
        events = keel.request("observability", {"action": "get_health_events", "agent_name": "GoalManager"})
        assert not [e for e in events["events"] if "recovery" in e.get("event_type", "")], events
    finally:
        proc.kill()
        proc.wait()
