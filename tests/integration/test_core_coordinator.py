"""CoreOrchestrator request coordinator (CO-55..CO-66):
requests by `type`, the priority formula, the bounded queue, dispatch to the
downstream agents found in the registry behind circuit breakers, the
suggestion port, interrupts, language-analysis frames (JSON and pickles through
the safe decoder), the metrics file and error-bus reports; frames over the
subscriptions' cap and non-UTF-8 pickled bytes (issue 16, finding 5).  No kept
agent sends a `type` request, so the route is an administrator's and every one
here carries a token."""
import json
import os
import pickle
import threading
import time

import pytest
import zmq

from conftest import Keel, free_offset, free_port, http_get, not_instrumented, scaled, zmq_request

BASE = "metrics_source: mock\n"


class FakeAgent:
    """A downstream agent (REP) that records what it gets and answers `reply`."""

    def __init__(self, reply=None, delay=0.0):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.reply = reply if reply is not None else {"status": "success"}
        self.delay = delay
        self.got = []
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while self.running:
            if self.sock.poll(50):
                self.got.append(json.loads(self.sock.recv()))
                time.sleep(self.delay)
                self.sock.send_json(self.reply)

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


def register(k, name, port):
    r = k.request("core", {"action": "register_agent", "agent_id": name, "agent_type": "t",
                           "host": "127.0.0.1", "port": port})
    assert r["status"] == "success"


def settle(agent):
    """Waits until the agent has received nothing new for a while."""
    for _ in range(50):
        n = len(agent.got)
        time.sleep(scaled(0.3))
        if len(agent.got) == n:
            return


def wait_for(pred, timeout=5.0):
    deadline = time.time() + scaled(timeout)
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@pytest.fixture(scope="module")
def core():
    k = Keel("core", config=BASE)
    k.start()
    yield k
    k.cleanup()


def test_co55_text_request(core):
    """CO-55"""
    r = core.admin("core", {"type": "text", "data": "hi"})
    assert r["status"] == "success" and r["message"] == "Text request queued"
    for key in ("data", "speak", "memory_entry", "error"):
        assert key in r and r[key] is None
    assert r["metadata"] == {} and isinstance(r["timestamp"], str)


def test_co56_audio_and_vision(core):
    """CO-56"""
    assert core.admin("core", {"type": "audio", "audio_data": "UklGRg=="})["message"] == "Audio request queued"
    assert core.admin("core", {"type": "vision", "image_data": "/9j/"})["message"] == "Vision request queued"


def test_co57_validation_and_unknown_type(core):
    """CO-57 (and bad input of every kind gets a clear error)."""
    r = core.admin("core", {"type": "text"})
    assert r["status"] == "error" and r["message"] and r["error"] == r["message"]
    assert "data" in r["message"]
    assert core.admin("core", {"type": "video"})["message"] == "Unknown request type: video"
    assert core.admin("core", {"type": "video"})["error"] is None
    for bad in ({"type": "text", "data": 5}, {"type": "text", "data": "x", "metadata": "m"},
                {"type": "audio", "audio_data": "x", "sample_rate": "fast"},
                {"type": "text", "data": "x", "user_id": 3}, {"type": "vision"},
                {"type": "text", "data": "x", "timestamp": "yesterday"}):
        r = core.admin("core", bad)
        assert r["status"] == "error" and r["error"], bad
    assert core.admin("core", {"type": 5})["message"].startswith("Unknown request type")


def test_co58_priority_in_dispatched_tasks():
    """CO-58: the priority each task carries when it reaches the downstream."""
    k = Keel("core", config=BASE)
    k.start()
    cot, got = FakeAgent(), FakeAgent()
    try:
        register(k, "ChainOfThoughtAgent", cot.port)
        register(k, "GOT_TOTAgent", got.port)
        k.admin("core", {"type": "text", "data": "a"})
        k.admin("core", {"type": "audio", "audio_data": "b", "metadata": {"urgency": "critical"}})
        k.admin("core", {"type": "vision", "image_data": "c", "user_id": "u",
                           "metadata": {"user_type": "guest", "urgency": "low"}})
        k.admin("core", {"type": "text", "data": "d", "metadata": {"user_type": "admin"}})
        k.admin("core", {"type": "text", "data": "e", "user_id": "u", "metadata": {"user_type": "admin"}})
        assert wait_for(lambda: len(cot.got) == 3 and len(got.got) == 2)
        prio = {t["parameters"]["request"].get("data") or t["parameters"]["request"].get("audio_data")
                or t["parameters"]["request"].get("image_data"): t["priority"] for t in cot.got + got.got}
        assert prio == {"a": 2, "b": 1, "c": 5, "d": 2, "e": 1}
        task = cot.got[0]
        assert task["agent_id"] == "RequestCoordinator" and task["task_id"].startswith("task_")
        assert task["task_type"] == "text_processing" and isinstance(task["created_at"], str)
    finally:
        cot.close()
        got.close()
        k.cleanup()


def test_co59_co60_queue_bound_load_and_order():
    """CO-59, CO-60: the load term once the queue holds more than 80 %, a full
    queue answered honestly, and dispatch by priority then arrival (GoT/ToT
    for audio/vision, CoT for text)."""
    offset = free_offset()
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    ip = free_port()
    pub.bind("tcp://127.0.0.1:%d" % ip)
    cfg = BASE + ("core:\n  coordinator: {queue_max_size: 10, interrupt_pause_s: 3,"
                  " interrupt_endpoint: \"tcp://127.0.0.1:%d\"}\n" % ip)
    k = Keel("core", config=cfg, offset=offset)
    k.start()
    cot, got = FakeAgent(), FakeAgent()
    try:
        register(k, "ChainOfThoughtAgent", cot.port)
        register(k, "GOT_TOTAgent", got.port)
        # pause dispatch so the queue fills
        assert wait_for(lambda: (pub.send(b"interrupt"), k.request("core", {"action": "health"})["coordinator"]["paused"])[1], 3)
        replies = [k.admin("core", {"type": "text", "data": "t%d" % i}) for i in range(8)]
        replies.append(k.admin("core", {"type": "text", "data": "urgent", "metadata": {"urgency": "critical"}}))
        replies.append(k.admin("core", {"type": "audio", "audio_data": "late"}))
        assert all(r["status"] == "success" for r in replies)
        full = k.admin("core", {"type": "text", "data": "overflow"})
        assert full["status"] == "error" and "full" in full["message"]
        h = k.request("core", {"action": "health"})
        assert h["queue_size"] == 10
        assert wait_for(lambda: len(cot.got) + len(got.got) == 10, 8)
        order = [t["parameters"]["request"]["data"] for t in cot.got]
        # lower number first, equal priorities in arrival order
        assert order == ["urgent"] + ["t%d" % i for i in range(8)]
        # "urgent" arrived with 8 queued: not more than 0.8 * 10, no load term
        assert [t["priority"] for t in cot.got] == [1] + [2] * 8
        # the audio task came 10th, with 9 queued (> 8): base 1 + load 1 = 2
        assert got.got[0]["priority"] == 2
        _, body, _ = http_get(k.http("core", "/metrics"))
        assert b'keel_core_tasks_dropped_total{reason="queue_full"} 1' in body
    finally:
        cot.close()
        got.close()
        pub.close()
        k.cleanup()


def test_co61_breaker_opens_and_half_opens():
    """CO-61: 3 failures open the breaker; tasks are dropped without a send;
    after the reset timeout one probe goes through and a success closes it."""
    port = free_port()
    cfg = BASE + "core:\n  coordinator: {task_timeout_ms: 200, breaker: {reset_s: 2.0}}\n"
    k = Keel("core", config=cfg)
    k.start()
    try:
        register(k, "ChainOfThoughtAgent", port)       # nothing listens there
        for i in range(3):
            k.admin("core", {"type": "text", "data": "f%d" % i})
        assert wait_for(lambda: k.request("core", {"action": "health"})["circuit_breakers"]
                        ["ChainOfThoughtAgent"]["state"] == "open", 5)
        k.admin("core", {"type": "text", "data": "dropped"})
        time.sleep(0.3)
        _, body, _ = http_get(k.http("core", "/metrics"))
        assert b'keel_core_tasks_dropped_total{reason="breaker_open"} 1' in body
        agent = FakeAgent()
        register(k, "ChainOfThoughtAgent", agent.port)
        time.sleep(2.1)
        k.admin("core", {"type": "text", "data": "probe"})
        assert wait_for(lambda: len(agent.got) == 1, 3)
        assert agent.got[0]["parameters"]["request"]["data"] == "probe"
        assert wait_for(lambda: k.request("core", {"action": "health"})["circuit_breakers"]
                        ["ChainOfThoughtAgent"]["state"] == "closed", 3)
        agent.close()
    finally:
        k.cleanup()


def test_co62_co66_downstream_replies_and_side_calls():
    """CO-62: success/failure counting, speak -> TTS, memory_entry -> memory;
    CO-66: a failed task is reported on the error bus with its context."""
    offset = free_offset()
    ctx = zmq.Context.instance()
    bus = ctx.socket(zmq.SUB)
    bus.setsockopt(zmq.LINGER, 0)
    bus.setsockopt(zmq.SUBSCRIBE, b"")
    bus.bind("tcp://127.0.0.1:%d" % (7150 + offset))
    k = Keel("core", config=BASE + "core:\n  coordinator: {task_timeout_ms: 300}\n", offset=offset)
    k.start()
    cot = FakeAgent({"status": "success", "speak": "hello", "memory_entry": {"k": "v"}})
    got = FakeAgent({"status": "failed"})
    tts, mem = FakeAgent(), FakeAgent()
    try:
        for name, agent in (("ChainOfThoughtAgent", cot), ("GOT_TOTAgent", got),
                            ("StreamingTTSAgent", tts), ("MemoryOrchestrator", mem)):
            register(k, name, agent.port)
        k.admin("core", {"type": "text", "data": "x"})
        k.admin("core", {"type": "vision", "image_data": "y"})
        assert wait_for(lambda: tts.got and mem.got and got.got)
        assert tts.got[0] == {"text": "hello"}
        assert mem.got[0] == {"action": "save", "data": {"k": "v"}}
        m = k.request("core", {"action": "health"})["coordinator"]["metrics"]
        assert m["success"] == 1 and m["failure"] == 1
        # now a downstream that is gone: the failure goes to the error bus
        k.request("core", {"action": "register_agent", "agent_id": "GOT_TOTAgent", "agent_type": "t",
                           "host": "127.0.0.1", "port": free_port()})
        event = None
        for _ in range(10):
            k.admin("core", {"type": "audio", "audio_data": "z"})
            if bus.poll(600):
                event = json.loads(bus.recv()[6:])
                break
        assert event and event["error_type"] == "task_processing_error"
        assert set(event["details"]) == {"task_id", "service", "task_type"}
        assert event["details"]["service"] == "GOT_TOTAgent" and event["details"]["task_type"] == "audio_processing"
    finally:
        for a in (cot, got, tts, mem):
            a.close()
        bus.close()
        k.cleanup()


def test_co63_interrupt_clears_queue_and_pauses():
    """CO-63: any message on the interrupt subscription clears the queue and
    pauses dispatch (a pickled dict, as StreamingInterruptHandler sends)."""
    ip = free_port()
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind("tcp://127.0.0.1:%d" % ip)
    cfg = BASE + ("core:\n  coordinator: {interrupt_pause_s: 2, interrupt_endpoint: \"tcp://127.0.0.1:%d\"}\n" % ip)
    k = Keel("core", config=cfg)
    k.start()
    cot = FakeAgent()
    try:
        register(k, "ChainOfThoughtAgent", cot.port)
        msg = pickle.dumps({"type": "interrupt", "timestamp": time.time()})
        assert wait_for(lambda: (pub.send(msg), k.request("core", {"action": "health"})["coordinator"]["paused"])[1], 3)
        for i in range(5):
            k.admin("core", {"type": "text", "data": "q%d" % i})
        assert k.request("core", {"action": "health"})["queue_size"] == 5
        pub.send(msg)
        assert wait_for(lambda: k.request("core", {"action": "health"})["queue_size"] == 0, 2)
        time.sleep(0.5)
        assert cot.got == []
        k.admin("core", {"type": "text", "data": "after"})
        assert wait_for(lambda: len(cot.got) == 1, 5)
        assert cot.got[0]["parameters"]["request"]["data"] == "after"
    finally:
        cot.close()
        pub.close()
        k.cleanup()


def test_co64_suggestions_after_inactivity():
    """CO-64: raw get_suggestion with nothing pending -> null; after the
    inactivity time -> the reminder, FIFO, then null again."""
    cfg = BASE + "core:\n  coordinator: {inactivity_s: 1.5, inactivity_check_s: 0.2}\n"
    k = Keel("core", config=cfg)
    k.start()
    try:
        ep = k.endpoint(5591)
        k.admin("core", {"type": "text", "data": "hi"})
        assert zmq_request(ep, b"get_suggestion") == {"suggestion": None}
        assert zmq_request(ep, b"something else") == {"suggestion": None}
        assert zmq_request(ep, {"action": "get_suggestion"}) == {"suggestion": None}
        time.sleep(2.2)
        assert zmq_request(ep, b"get_suggestion") == {
            "suggestion": "Paalala: Huwag kalimutang i-save ang iyong trabaho."}
    finally:
        k.cleanup()


def test_co65_metrics_file_saved_and_loaded():
    """CO-65: the metrics file is saved periodically (lists cut to 100) and
    loaded again at start."""
    cfg = BASE + "core:\n  coordinator: {metrics_save_s: 0.3}\n"
    k = Keel("core", config=cfg)
    k.start()
    try:
        for i in range(105):
            k.admin("core", {"type": "text", "data": "m%d" % i})
        path = os.path.join(k.data_dir, "core", "request_coordinator_metrics.json")
        assert wait_for(lambda: os.path.exists(path) and json.load(open(path))["requests_total"] == 105, 3)
        saved = json.load(open(path))
        assert len(saved["queue_sizes"]) == 100 and len(saved["response_times"]["text"]) == 100
        assert saved["last_updated"]
        k.restart()
        k.admin("core", {"type": "audio", "audio_data": "a"})
        m = k.request("core", {"action": "health"})["coordinator"]["metrics"]
        assert m["requests_total"] == 106 and m["requests_by_type"]["text"] == 105
    finally:
        k.cleanup()


def test_language_analysis_frames_json_and_pickle():
    """CO-60 input path: language-analysis frames (JSON and pickle) become text
    tasks; a pickle that names a class is rejected, never executed."""
    lp = free_port()
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind("tcp://127.0.0.1:%d" % lp)
    cfg = BASE + ("core:\n  coordinator: {language_endpoint: \"tcp://127.0.0.1:%d\"}\n" % lp)
    k = Keel("core", config=cfg)
    k.start()
    cot = FakeAgent()
    try:
        register(k, "ChainOfThoughtAgent", cot.port)
        msg = {"type": "language_analysis", "transcription": "kumusta", "translated_text": "hello",
               "detected_language": "tl", "translation_status": "ok", "analysis": {"intent": "greet"}}
        assert wait_for(lambda: (pub.send(pickle.dumps(msg)), len(cot.got) > 0)[1], 5)
        settle(cot)     # frames sent before the first was seen are still arriving
        req = cot.got[0]["parameters"]["request"]
        assert req["data"] == "hello" and req["context"]["original_text"] == "kumusta"
        assert req["metadata"] == {"source": "speech_recognition", "was_translated": True,
                                   "translation_status": "ok", "original_language": "tl"}
        n = len(cot.got)
        pub.send(json.dumps(dict(msg, translated_text=None, transcription="json path")).encode())
        assert wait_for(lambda: len(cot.got) > n, 3)
        assert cot.got[-1]["parameters"]["request"]["data"] == "json path"
        assert cot.got[-1]["parameters"]["request"]["metadata"]["was_translated"] is False

        class Evil:
            def __reduce__(self):
                return (os.system, ("touch /tmp/keel-pwned",))
        n = len(cot.got)
        pub.send(pickle.dumps(Evil()))
        pub.send(pickle.dumps({"type": "metrics", "cpu": 3}))
        time.sleep(scaled(0.5))
        assert len(cot.got) == n
        _, body, _ = http_get(k.http("core", "/metrics"))
        assert b'keel_core_language_frames_total{outcome="rejected"} 1' in body
        assert b'keel_core_language_frames_total{outcome="ignored"} 1' in body
    finally:
        cot.close()
        pub.close()
        k.cleanup()


def metric(k, line):
    _, body, _ = http_get(k.http("core", "/metrics"))
    for row in body.decode().splitlines():
        if row.startswith(line + " "):
            return float(row.split()[-1])
    return 0.0


def peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for row in f:
            if row.startswith("VmHWM:"):
                return int(row.split()[1])
    raise AssertionError("no VmHWM")


@not_instrumented
def test_subscription_frames_are_capped_and_bytes_stay_bytes():
    """The attack: the interrupt and language-analysis subscriptions took
    frames of any size, and a pickled non-UTF-8 `bytes` value became one
    JSON integer per byte (20-26 times the frame in memory).  Now a frame
    over core.coordinator.max_frame_bytes never reaches the handler (libzmq
    drops it before allocating it, and the connection, which Keel counts and
    makes anew) and nothing crashes; the next normal interrupt still works; and ten 200 KB non-UTF-8 transcriptions are
    decoded (and ignored: bytes are not text) without keeld's peak resident
    memory growing by their JSON-integer size."""
    ip, lp = free_port(), free_port()
    ctx = zmq.Context.instance()
    interrupts, language = ctx.socket(zmq.PUB), ctx.socket(zmq.PUB)
    for s, port in ((interrupts, ip), (language, lp)):
        s.setsockopt(zmq.LINGER, 0)
        s.bind("tcp://127.0.0.1:%d" % port)
    cfg = BASE + ("core:\n  coordinator: {interrupt_pause_s: 0.2, max_frame_bytes: 262144,"
                  " interrupt_endpoint: \"tcp://127.0.0.1:%d\", language_endpoint: \"tcp://127.0.0.1:%d\"}\n"
                  % (ip, lp))
    k = Keel("core", config=cfg)
    k.start()
    counter = 'keel_core_interrupts_total{source="interrupt"}'
    try:
        small = pickle.dumps({"type": "interrupt", "timestamp": time.time()})
        assert wait_for(lambda: (interrupts.send(small), metric(k, counter) >= 1)[1], 5)
        time.sleep(scaled(0.5))         # interrupts sent before the first was counted land
        before = metric(k, counter)
        huge = pickle.dumps({"type": "interrupt", "pad": "x" * (1 << 20)})
        for _ in range(5):
            interrupts.send(huge)
        time.sleep(scaled(1.0))
        assert metric(k, counter) == before, "a frame over the cap reached the interrupt handler"
        assert metric(k, 'keel_core_subscription_drops_total{channel="interrupt"}') >= 1
        assert k.request("core", {"action": "health"})["status"] in ("ok", "healthy")
        # The subscription comes back (libzmq reconnects) and serves normal frames.
        assert wait_for(lambda: (interrupts.send(small), metric(k, counter) > before)[1], 10)

        ignored = 'keel_core_language_frames_total{outcome="ignored"}'
        probe = pickle.dumps({"type": "language_analysis", "transcription": b"\xff" * 10})
        assert wait_for(lambda: (language.send(probe), metric(k, ignored) >= 1)[1], 5)
        time.sleep(scaled(0.5))
        start_peak = peak_rss_kib(k.proc.pid)
        frame = pickle.dumps({"type": "language_analysis", "transcription": b"\xff" * 200000})
        assert len(frame) < 262144
        for _ in range(10):         # one at a time: the peak is one frame's decoding
            done = metric(k, ignored)
            language.send(frame)
            assert wait_for(lambda: metric(k, ignored) > done, 10)
        grown = peak_rss_kib(k.proc.pid) - start_peak
        # One frame as JSON integers took about 10 MB at its peak; as base64, 270 KB.
        assert grown < 4 * 1024, "peak resident memory grew by %d KiB" % grown
    finally:
        interrupts.close()
        language.close()
        k.cleanup()
