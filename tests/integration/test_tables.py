"""Tables that junk cannot fill (issue 16, finding 4).

Before, the hub's tables filled first come, first served: after 4,096 names
the hub watched no new agent, so 6,000 junk registrations hid a real one,
and after 500 service names log_metric refused every new service, with the
junk persisted and read back at start.  Each test here starts from that
attack, sent the way an attacker on the network would (many DEALER sockets,
pipelined, from one source address), and asserts that the real entries
still get in, are watched or recorded, and survive a restart, while the
evictions and refusals are counted.

The tables are configured small (observability.max_agents,
max_services) so that the junk fills them within a bounded test; the
per-source limits on new names (core.registry.new_names,
observability.new_services) keep their defaults."""
import json
import os
import threading
import time
import urllib.request

import zmq

from conftest import free_port, scaled
from observability_util import StandInAgent, agent_entry, wait_until

JUNK = 6000


def metric(k, service, name, labels=""):
    """The sum of a family's series on one service whose labels contain `labels`."""
    text = urllib.request.urlopen(k.http(service, "/metrics"), timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {" and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def from_address(source, endpoint):
    """The endpoint dialled from `source` (a loopback address other than
    127.0.0.1 stands for a second machine)."""
    return "tcp://%s:0;%s" % (source, endpoint[len("tcp://"):])


def flood(endpoint, messages, sockets=8):
    """Sends every message at once over `sockets` DEALERs, pipelined, and
    returns the replies (one per message, or fewer when the deadline passed)."""
    ctx = zmq.Context.instance()
    socks = []
    poller = zmq.Poller()
    for _ in range(sockets):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 0)
        s.setsockopt(zmq.RCVHWM, 0)
        s.connect(endpoint)
        poller.register(s, zmq.POLLIN)
        socks.append(s)
    try:
        for i, m in enumerate(messages):
            socks[i % sockets].send_multipart([b"", json.dumps(m).encode()])
        replies = []
        deadline = time.time() + scaled(60)
        while len(replies) < len(messages) and time.time() < deadline:
            for s, _ in poller.poll(100):
                while True:
                    try:
                        frames = s.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    replies.append(json.loads(frames[-1]))
        return replies
    finally:
        for s in socks:
            s.close()


def register(k, name, port, source="127.0.0.1"):
    return flood(from_address(source, k.zmq("core")), [
        {"action": "register_agent", "agent_id": name, "agent_type": "real", "host": "127.0.0.1",
         "port": port}], sockets=1)[0]


class Heartbeats(threading.Thread):
    """An agent that keeps telling the registry it is alive."""

    def __init__(self, k, name):
        super().__init__(daemon=True)
        self.k, self.name = k, name
        self.stopping = threading.Event()
        self.start()

    def run(self):
        while not self.stopping.is_set():
            r = self.k.request("core", {"action": "heartbeat", "agent_name": self.name})
            assert r["status"] == "success", r
            self.stopping.wait(0.3)

    def stop(self):
        self.stopping.set()
        self.join(scaled(10))


def test_junk_registrations_from_one_address_do_not_hide_a_real_agent(keel_factory):
    """6,000 junk registrations from one address, against a table of 40.
    The registry refuses nearly all of them (one address may create 256 new
    names at once); the hub still watches, probes and shows as up the
    configured agent, an agent that registered before the flood and keeps
    heartbeating, and an agent that registered after it from another
    address (evicting junk that never answered), and counts what it
    evicted and refused."""
    configured, early, late = StandInAgent(), StandInAgent(), StandInAgent()
    beats = None
    try:
        cfg = {"observability": {"max_agents": 40, "interval_ms": 300, "discovery_interval_ms": 200,
                                 "timeout_ms": int(scaled(300)),
                                 "agents": [agent_entry("Configured", configured)]}}
        k = keel_factory("all", config=json.dumps(cfg))
        assert register(k, "Early", early.port)["status"] == "success"
        beats = Heartbeats(k, "Early")

        dead = free_port()      # nothing listens: junk never answers a probe
        replies = flood(k.zmq("core"), [{"action": "register_agent", "agent_id": "junk-%05d" % i,
                                         "agent_type": "junk", "host": "127.0.0.1", "port": dead}
                                        for i in range(JUNK)])
        assert len(replies) == JUNK, "every registration is answered"
        refused = [r for r in replies if r["status"] != "success"]
        assert len(refused) > JUNK - 256, "one address creates at most 256 names at once"
        assert all(r["error"].startswith("Too many new names from 127.0.0.1: at most 256 at once")
                   for r in refused), refused[:2]
        # (Keel's own services announce their names from this address too)
        assert metric(k, "core", "keel_core_new_names_refused_total", 'table="agents"') >= len(refused)

        # the hub has seen the junk: its table is full, and names wait outside it
        assert wait_until(lambda: metric(k, "observability", "keel_unwatched_agents") > 0, 20)
        assert register(k, "Late", late.port, source="127.0.0.2")["status"] == "success"

        def shown():       # probed and answered, and up in the one state
            agents = k.request("observability", {"action": "get_agents_health"})["agents"]
            return all(agents.get(n, {}).get("status") == "healthy" and agents[n]["state"] == "up"
                       for n in ("Configured", "Early", "Late")) and agents
        agents = wait_until(shown, 20)
        assert agents and shown(), {n: agents.get(n) for n in ("Configured", "Early", "Late")}
        assert late.count() > 0 and early.count() > 0 and configured.count() > 0, "each one is probed"
        watched_junk = [n for n in agents if n.startswith("junk-")]
        assert 0 < len(watched_junk) <= 40 - 3
        assert metric(k, "observability", "keel_watched_agents_evicted_total") >= 1
        assert metric(k, "observability", "keel_watched_agents_refused_total") >= 1
        assert metric(k, "observability", "keel_unwatched_agents") >= 1
    finally:
        if beats:
            beats.stop()
        for a in (configured, early, late):
            a.stop()


def log_metric(service, metric_type="request", value=1):
    return {"action": "log_metric", "service": service, "metric_type": metric_type, "value": value}


def stored_services(k):
    """The services whose rows the hub's database holds (what a start reads back)."""
    import sqlite3
    db = sqlite3.connect(os.path.join(k.data_dir, "observability", "observability.db"))
    try:
        return {row[0] for row in db.execute("SELECT service FROM perf_samples UNION "
                                             "SELECT service FROM perf_counters")}
    finally:
        db.close()


def test_junk_service_names_do_not_stop_real_metrics_or_come_back(keel_factory):
    """600 junk service names in log_metric from one address, against a
    table of 50.  One address creates at most 256 new services at once; the
    junk that gets in churns among itself, evicted with its rows, while a
    service that reported before the attack and one that starts after it
    from another address are recorded; after a kill -9 and a start both are
    read back whole and none of the evicted junk is."""
    cfg = {"observability": {"max_services": 50, "discover": False}}
    k = keel_factory("observability", config=json.dumps(cfg))
    hub = k.zmq("observability")
    for v in (0.1, 0.2, 0.3):
        assert k.request("observability", log_metric("RealBefore", "response_time", v))["status"] == "success"

    replies = flood(hub, [log_metric("junk-%04d" % i) for i in range(600)])
    assert len(replies) == 600
    refused = [r for r in replies if r["status"] != "success"]
    assert 600 - 256 <= len(refused) < 600
    assert all(r["message"].startswith("Metric could not be logged: too many new services from 127.0.0.1")
               for r in refused), refused[:2]

    for v in (1.0, 3.0):
        r = flood(from_address("127.0.0.2", hub), [log_metric("RealAfter", "response_time", v)], sockets=1)
        assert r == [{"status": "success", "message": "Metric logged"}]

    def real_ones():
        services = k.request("observability", {"action": "get_metrics"})["metrics"]["services"]
        return services, services["RealBefore"]["response_time"]["average"], \
            services["RealAfter"]["response_time"]["average"]
    services, before, after = real_ones()
    assert (round(before, 6), round(after, 6)) == (0.2, 2.0)
    assert len(services) <= 50
    assert metric(k, "observability", "keel_perf_agents_evicted_total") >= 600 - len(refused) - 50
    assert metric(k, "observability", "keel_perf_agents_refused_total", 'reason="rate_limited"') \
        == len(refused)
    junk_kept = {n for n in services if n.startswith("junk-")}
    assert stored_services(k) == set(services), "an evicted service's rows go with it"

    k.kill9()
    k.start()
    services, before, after = real_ones()
    assert (round(before, 6), round(after, 6)) == (0.2, 2.0)
    assert {n for n in services if n.startswith("junk-")} <= junk_kept
