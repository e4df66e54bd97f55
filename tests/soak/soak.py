#!/usr/bin/python3
"""Soak test: one real `keeld all` under a thousand simulated agents.

Each simulated agent does what an original BaseAgent-era agent did over its
life, with the same messages the integration tests pin down:

  core (7000)           register_agent in BaseAgent's form (agent_name +
                        registration_data), then `heartbeat {agent_id}`
                        every --heartbeat-s seconds (an administrator's
                        route: no kept agent sends it, so the simulated
                        agents carry a token signed with the data
                        directory's key file);
  observability (7002)  log_metric every --metric-s seconds (an
                        administrator's route too, with the same token),
                        cycling through
                        PerformanceMonitor's form {service, metric_type,
                        value} (response_time, queue_size, request,
                        throughput, error) and PerformanceLoggerAgent's
                        {metric: {agent, action, duration, timestamp,
                        metadata}};
  errorbus (7150)       an F1 frame `ERROR:{json}` (the error_bus_template
                        payload) every --error-s seconds on a PUB socket;
  health probes         the hub discovers every registered agent from the
                        registry and probes it, so the agents register a
                        health port that answers {"status":"ok"} (a few
                        ROUTER sockets shared by all agents, on base ports
                        7160.. + PORT_OFFSET).

The load generator is one thread: a pool of REQ sockets per service,
multiplexed with zmq.Poller, each socket with at most one request in
flight; every message names its agent, so a thousand distinct agents exist
without a thousand OS sockets.  Each kind of message is a stream issued at
a steady rate (agents round-robin), so the total is a few hundred requests
a second, not a max-out benchmark.

Checks (exit status 1, with the reason printed, when one fails):
  - no failed request: every request got a success reply within
    --timeout-ms (error replies and timeouts are both failures);
  - every agent is in core's list_agents at the end;
  - every error published is stored: the sum of the agents' error_count in
    get_agent_health equals what was sent (after a drain wait), and the
    bus dropped nothing;
  - keeld's resident memory is flat: VmRSS is sampled every --sample-s
    seconds; after a warm-up (20 % of the run or 30 s, whichever is less)
    the growth from the post-warm-up baseline to the end stays below
    max(8 MiB, 5 % of the baseline) (see RSS_BOUND_*);
  - no SQLite write-ahead log in the data directory ever reaches 64 MiB
    (WAL_BOUND_MIB; sampled with the memory).

    python3 tests/soak/soak.py --build build --seconds 60
"""
import argparse
import glob
import json
import os
import statistics
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Resident memory may settle by a few MiB after the warm-up without any leak:
# SQLite page caches (up to 2 MiB per connection, several connections) fill
# as the databases grow, glibc arenas of the wire workers reach their high
# water marks, libzmq keeps per-connection buffers.  A leak is growth that
# keeps going: 100 bytes per request at this rate (~450 requests/s) is
# ~2.7 MiB a minute, 27 MiB over the 10-minute soak, well past 8 MiB.  5 %
# keeps the bound proportionate should the baseline itself be large.
RSS_BOUND_MIB = 8.0
RSS_BOUND_RATIO = 0.05
# SQLite write-ahead logs must be copied back and started over as the run
# goes: ErrorBus truncates its WAL past 16 MiB, the other stores checkpoint
# every 1000 pages (~4 MiB).  A WAL that is never restarted grows by
# megabytes a second here (it did: ~200 MB a minute before the fix).
WAL_BOUND_MIB = 64.0

RESPONDER_BASES = (7160, 7161, 7162, 7163)
AGENT_PREFIX = "soak-agent-"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--build", default=os.environ.get("KEEL_BUILD", "build"))
    p.add_argument("--heartbeat-s", type=float, default=5.0, help="per agent (core heartbeat)")
    p.add_argument("--metric-s", type=float, default=4.0, help="per agent (hub log_metric)")
    p.add_argument("--error-s", type=float, default=10.0, help="per agent (ErrorBus F1 publish)")
    p.add_argument("--register-rate", type=float, default=500.0, help="registrations per second")
    p.add_argument("--pool", type=int, default=8, help="REQ sockets per service")
    p.add_argument("--timeout-ms", type=int, default=5000, help="a reply later than this is a failure")
    p.add_argument("--warmup-s", type=float, default=None,
                   help="VmRSS baseline taken after this (default: 20 %% of the run, at most 30 s)")
    p.add_argument("--sample-s", type=float, default=2.0, help="VmRSS sampling period")
    p.add_argument("--rss-log", help="write every VmRSS sample (seconds, KiB) to this file")
    p.add_argument("--drain-s", type=float, default=30.0, help="wait for the bus to store everything")
    return p.parse_args()


ARGS = parse_args()
os.environ["KEEL_BUILD"] = ARGS.build       # read by conftest at import
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import zmq                                  # noqa: E402
from conftest import Keel                   # noqa: E402
from errorbus_util import Publisher         # noqa: E402


def agent_name(i):
    return "%s%04d" % (AGENT_PREFIX, i)


def iso_now():
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())


# ---- messages, as the original agents send them ----------------------------

def register_msg(i, port):
    name = agent_name(i)
    return {"action": "register_agent", "agent_name": name, "status": "HEALTHY",
            "location": "MainPC",
            "registration_data": {"agent_id": name, "agent_type": "SoakAgent", "host": "127.0.0.1",
                                  "port": port, "health_check_port": port,
                                  "capabilities": ["basic_agent"], "dependencies": [],
                                  "metadata": {"start_time": time.time(), "python_version": "3.10.12"}},
            "source_agent": name, "request_id": str(uuid.uuid4()), "timestamp": iso_now()}


def heartbeat_msg(i, token):
    return {"action": "heartbeat", "agent_id": agent_name(i), "auth_token": token}


# One agent's metric cycle: both ring series come first so every
# service's rings are touched early, in the warm-up.
METRIC_CYCLE = ("response_time", "queue_size", "logger", "request", "throughput", "logger", "error")


def metric_msg(i, round_no, token):
    name = agent_name(i)
    kind = METRIC_CYCLE[round_no % len(METRIC_CYCLE)]
    if kind == "logger":
        return {"action": "log_metric", "auth_token": token,
                "metric": {"agent": name, "action": "process_request", "duration": 0.01 + (i % 50) / 1000,
                           "timestamp": iso_now(), "metadata": {"round": round_no}}}
    value = {"response_time": 0.05 + (i % 20) / 100, "queue_size": i % 7, "request": 1,
             "throughput": 1, "error": 1}[kind]
    return {"action": "log_metric", "service": name, "metric_type": kind, "value": value,
            "auth_token": token}


ERROR_TYPES = ("timeout", "connection_refused", "model_load_failed", "queue_full")


def error_payload(i, n):
    severity = "WARNING" if n % 3 else "ERROR"
    return {"timestamp": time.time(), "agent": agent_name(i), "error_type": ERROR_TYPES[n % len(ERROR_TYPES)],
            "message": "request %d to peer %d timed out after 5000 ms" % (n, i % 13),
            "severity": severity, "details": {"attempt": n % 3, "peer": i % 13}}


def reply_ok(kind, reply):
    if not isinstance(reply, dict):
        return False
    if kind == "metric_pm":
        return reply == {"status": "success", "message": "Metric logged"}
    return reply.get("status") == "success"


# ---- the REQ pool -----------------------------------------------------------

class Pool:
    """REQ sockets to one service, at most one request in flight on each."""

    def __init__(self, ctx, poller, endpoint, size, stats):
        self.ctx, self.poller, self.endpoint, self.stats = ctx, poller, endpoint, stats
        self.free = [self._open() for _ in range(size)]
        self.busy = {}              # socket -> (sent_at, kind, agent)

    def _open(self):
        s = self.ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.endpoint)
        self.poller.register(s, zmq.POLLIN)
        return s

    def send(self, kind, agent, message):
        if not self.free:
            return False
        s = self.free.pop()
        s.send(json.dumps(message).encode())
        self.busy[s] = (time.monotonic(), kind, agent)
        self.stats.sent(kind)
        return True

    def owns(self, s):
        return s in self.busy

    def receive(self, s):
        sent_at, kind, agent = self.busy.pop(s)
        raw = s.recv()
        latency = time.monotonic() - sent_at
        try:
            reply = json.loads(raw)
        except ValueError:
            reply = raw
        if reply_ok(kind, reply):
            self.stats.ok(kind, latency)
        else:
            self.stats.fail(kind, "%s: error reply %r" % (agent, reply))
        self.free.append(s)

    def expire(self, now, timeout_s):
        for s, (sent_at, kind, agent) in list(self.busy.items()):
            if now - sent_at > timeout_s:
                del self.busy[s]
                self.poller.unregister(s)
                s.close()
                self.free.append(self._open())
                self.stats.fail(kind, "%s: no reply in %.1f s" % (agent, timeout_s))

    def idle(self):
        return not self.busy

    def close(self):
        for s in self.free + list(self.busy):
            self.poller.unregister(s)
            s.close()


class Stats:
    def __init__(self):
        self.counts = {}            # kind -> [sent, ok, failed, latencies]
        self.failures = []

    def _k(self, kind):
        return self.counts.setdefault(kind, [0, 0, 0, []])

    def sent(self, kind):
        self._k(kind)[0] += 1

    def ok(self, kind, latency):
        c = self._k(kind)
        c[1] += 1
        c[3].append(latency)

    def fail(self, kind, why):
        self._k(kind)[2] += 1
        if len(self.failures) < 20:
            self.failures.append("%s %s" % (kind, why))

    def total(self, index):
        return sum(c[index] for c in self.counts.values())


class Stream:
    """One kind of message at a steady rate, agents round-robin."""

    def __init__(self, kind, rate, limit, issue):
        self.kind, self.rate, self.limit, self.issue = kind, rate, limit, issue
        self.issued = 0
        self.start = None

    def due(self, now):
        if self.start is None:
            return 0
        want = int((now - self.start) * self.rate) + 1
        if self.limit is not None:
            want = min(want, self.limit)
        return want - self.issued

    def next_at(self):
        if self.start is None or (self.limit is not None and self.issued >= self.limit):
            return None
        return self.start + self.issued / self.rate

    def pump(self, now):
        """Issues what is due; returns False when a pool had no free socket."""
        while self.due(now) > 0:
            if not self.issue(self.issued):
                return False
            self.issued += 1
        return True


# ---- keeld's resident memory ------------------------------------------------

def rss_kib(pid):
    """(VmRSS, RssAnon, RssFile, RssShmem) in KiB."""
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                fields[key] = int(value.split()[0])
    return tuple(fields.get(k, 0) for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"))


def slope_mib_per_min(samples):
    if len(samples) < 2:
        return 0.0
    ts = [t for t, _ in samples]
    vs = [v / 1024.0 for _, v in samples]
    mt, mv = statistics.fmean(ts), statistics.fmean(vs)
    den = sum((t - mt) ** 2 for t in ts)
    return 0.0 if den == 0 else 60.0 * sum((t - mt) * (v - mv) for t, v in zip(ts, vs)) / den


def rss_verdict(samples, seconds, warmup=None):
    """Returns (summary dict, failure reason or None)."""
    if warmup is None:
        warmup = min(0.2 * seconds, 30.0)
    after = [(t, v) for t, v in samples if t >= warmup]
    if len(after) < 4:
        return {}, "too few VmRSS samples after the warm-up (%d)" % len(after)
    # Baseline and final are medians over a window of samples (20 s, at most
    # a quarter of what follows the warm-up): the hub's health sweep (every
    # 10 s, a REQ socket per agent) lifts VmRSS by ~25 MiB for an instant,
    # and what libzmq frees after the sweep's malloc_trim stays resident
    # until the next one, so a single sample can sit ~10 MiB high for 10 s.
    n = max(3, min(int(20 / ARGS.sample_s), len(after) // 4))
    baseline = statistics.median(v for _, v in after[:n]) / 1024.0
    final = statistics.median(v for _, v in after[-n:]) / 1024.0
    peak = max(v for _, v in after) / 1024.0
    bound = max(RSS_BOUND_MIB, RSS_BOUND_RATIO * baseline)
    summary = {"warmup_s": warmup, "samples": len(after), "window": n, "baseline": baseline, "final": final,
               "max": peak, "growth": final - baseline, "bound": bound,
               "slope": slope_mib_per_min(after), "start": samples[0][1] / 1024.0}
    if final - baseline >= bound:
        return summary, ("keeld VmRSS grew %.1f MiB after the warm-up (%.1f -> %.1f), bound %.1f MiB"
                         % (final - baseline, baseline, final, bound))
    return summary, None


# ---- the run -----------------------------------------------------------------

class Soak:
    def __init__(self, keel, args):
        self.k, self.args = keel, args
        self.token = keel.admin_token()
        self.ctx = zmq.Context.instance()
        self.poller = zmq.Poller()
        self.stats = Stats()
        self.responders = []
        for base in RESPONDER_BASES:
            s = self.ctx.socket(zmq.ROUTER)
            s.setsockopt(zmq.LINGER, 0)
            s.bind(keel.endpoint(base))
            self.poller.register(s, zmq.POLLIN)
            self.responders.append(s)
        self.probes_answered = 0
        self.pools = {name: Pool(self.ctx, self.poller, keel.zmq(name), args.pool, self.stats)
                      for name in ("core", "observability")}
        self.publisher = Publisher(keel)
        self.published = {}         # agent -> count
        self.rss = []               # (seconds into the run, VmRSS KiB)
        self.rss_detail = []        # (seconds, VmRSS, RssAnon, RssFile, RssShmem)
        self.wal_max = (0, None)    # the largest *-wal file seen: (bytes, path)
        self.elapsed = self.periodic_elapsed = 0.0
        self.lag_max = 0

    def _responder_port(self, i):
        return self.k.port(RESPONDER_BASES[i % len(RESPONDER_BASES)])

    def _issue_register(self, n):
        return self.pools["core"].send("register", agent_name(n), register_msg(n, self._responder_port(n)))

    def _issue_heartbeat(self, n):
        i = n % self.args.agents
        return self.pools["core"].send("heartbeat", agent_name(i), heartbeat_msg(i, self.token))

    def _issue_metric(self, n):
        i, r = n % self.args.agents, n // self.args.agents
        msg = metric_msg(i, r, self.token)
        kind = "metric_pl" if "metric" in msg else "metric_pm"
        return self.pools["observability"].send(kind, agent_name(i), msg)

    def _issue_error(self, n):
        i = n % self.args.agents
        self.publisher.f1(error_payload(i, n))
        name = agent_name(i)
        self.published[name] = self.published.get(name, 0) + 1
        self.stats.sent("error_pub")
        self.stats.ok("error_pub", 0.0)
        return True

    def _answer_probes(self, s):
        while True:
            try:
                frames = s.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            # [identity, "", request]: a REQ prober's envelope.
            s.send_multipart(frames[:-1] + [b'{"status": "ok"}'])
            self.probes_answered += 1

    def _poll(self, until):
        wait_ms = max(0, int((until - time.monotonic()) * 1000))
        for s, _ in self.poller.poll(min(wait_ms, 200)):
            if s in self.responders:
                self._answer_probes(s)
                continue
            for pool in self.pools.values():
                if pool.owns(s):
                    pool.receive(s)
                    break

    def _sample(self, t0, next_sample):
        now = time.monotonic()
        if now < next_sample:
            return next_sample
        if self.k.proc.poll() is not None:
            raise RuntimeError("keeld exited with %s:\n%s" % (self.k.proc.returncode, self.k.log_tail()))
        for wal in glob.glob(os.path.join(self.k.data_dir, "*", "*-wal")):
            try:
                size = os.path.getsize(wal)
            except OSError:
                continue
            if size > self.wal_max[0]:
                self.wal_max = (size, os.path.relpath(wal, self.k.data_dir))
        sample = rss_kib(self.k.proc.pid)
        self.rss.append((now - t0, sample[0]))
        self.rss_detail.append((now - t0,) + sample)
        return next_sample + self.args.sample_s

    def run(self):
        a = self.args
        self.publisher.join()
        n = a.agents
        register = Stream("register", a.register_rate, n, self._issue_register)
        periodic = [Stream("heartbeat", n / a.heartbeat_s, None, self._issue_heartbeat),
                    Stream("metric", n / a.metric_s, None, self._issue_metric),
                    Stream("error", n / a.error_s, None, self._issue_error)]
        t0 = time.monotonic()
        end = t0 + a.seconds
        register.start = t0
        next_sample = t0
        while time.monotonic() < end:
            now = time.monotonic()
            next_sample = self._sample(t0, next_sample)
            for pool in self.pools.values():
                pool.expire(now, a.timeout_ms / 1000.0)
            register.pump(now)
            reg = self.stats.counts.get("register", [0, 0, 0])
            if periodic[0].start is None and reg[1] + reg[2] >= n:
                # Heartbeats need the agent registered: the periodic
                # streams begin when every registration is answered.
                self.registered_at = now - t0
                for s in periodic:
                    s.start = now
            # A stream whose pool is full waits for a reply, not for its
            # next due time (already past): no busy polling.
            ready = [s for s in [register] + periodic if s.pump(now)]
            for s in periodic:
                self.lag_max = max(self.lag_max, s.due(now))
            nexts = [x for x in [s.next_at() for s in ready] if x is not None]
            self._poll(min(nexts + [next_sample, end]))
        self.elapsed = time.monotonic() - t0
        self.periodic_elapsed = self.elapsed - getattr(self, "registered_at", self.elapsed)
        self.streams = [register] + periodic
        # Let what is in flight finish; late replies still count as failures.
        deadline = time.monotonic() + a.timeout_ms / 1000.0 + 1
        while not all(p.idle() for p in self.pools.values()) and time.monotonic() < deadline:
            self._poll(time.monotonic() + 0.1)
            for pool in self.pools.values():
                pool.expire(time.monotonic(), a.timeout_ms / 1000.0)
        next_sample = self._sample(t0, 0)

    # -- final checks ---------------------------------------------------------
    def check_registry(self):
        reply = self.k.request("core", {"action": "list_agents"}, timeout_ms=10000)
        listed = set(reply.get("agents") or [])
        missing = [agent_name(i) for i in range(self.args.agents) if agent_name(i) not in listed]
        self.listed = len([x for x in listed if x.startswith(AGENT_PREFIX)])
        if missing:
            return "%d of %d agents missing from list_agents (first: %s)" % (
                len(missing), self.args.agents, missing[:3])
        return None

    def _stored_counts(self):
        reply = self.k.request("errorbus", {"action": "get_agent_health"}, timeout_ms=10000)
        if reply.get("status") != "success":
            raise RuntimeError("get_agent_health: %r" % reply)
        return {r["agent"]: r["error_count"] for r in reply["data"] if r["agent"].startswith(AGENT_PREFIX)}

    def check_errors(self):
        want = sum(self.published.values())
        deadline = time.monotonic() + self.args.drain_s
        while True:
            counts = self._stored_counts()
            self.stored = sum(counts.values())
            if counts == self.published or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        stats = self.k.request("errorbus", {"action": "get_statistics"}, timeout_ms=10000)["data"]
        self.bus_stats = stats
        self.errors_collected = self.k.request("errorbus", {"action": "health_check"})["data"]["errors_collected"]
        if counts != self.published:
            wrong = [a for a in self.published if counts.get(a) != self.published[a]]
            return "ErrorBus stored %d of %d published errors (%d agents differ, e.g. %s: %s of %s)" % (
                self.stored, want, len(wrong), wrong[0], counts.get(wrong[0]), self.published[wrong[0]])
        if stats["dropped"] or stats["write_failed"]:
            return "ErrorBus dropped %s, write_failed %s" % (stats["dropped"], stats["write_failed"])
        return None

    def check_disk(self):
        self.data_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(self.k.data_dir)
                              for f in files if os.path.exists(os.path.join(d, f)))
        size, path = self.wal_max
        if size >= WAL_BOUND_MIB * 1024 * 1024:
            return "%s reached %.1f MiB (bound %.0f MiB)" % (path, size / 1048576.0, WAL_BOUND_MIB)
        return None

    def close(self):
        for pool in self.pools.values():
            pool.close()
        for s in self.responders:
            self.poller.unregister(s)
            s.close()
        self.publisher.close()


def report(soak, rss, failures):
    a, st = soak.args, soak.stats
    print()
    print("soak: %d agents, %.0f s (periodic load for %.0f s after registration in %.1f s)" % (
        a.agents, soak.elapsed, soak.periodic_elapsed, getattr(soak, "registered_at", float("nan"))))
    print("%-10s %9s %9s %7s %9s %9s %9s %9s" % ("kind", "sent", "ok", "failed", "rate/s", "target/s",
                                                   "p50 ms", "p99 ms"))
    targets = {"heartbeat": a.agents / a.heartbeat_s, "error_pub": a.agents / a.error_s}
    for kind in ("register", "heartbeat", "metric_pm", "metric_pl", "error_pub"):
        sent, ok, failed, lat = st.counts.get(kind, [0, 0, 0, []])
        span = soak.elapsed if kind == "register" else max(soak.periodic_elapsed, 1e-9)
        lat = sorted(lat)
        p50 = 1000 * lat[len(lat) // 2] if lat and kind != "error_pub" else float("nan")
        p99 = 1000 * lat[int(len(lat) * 0.99)] if lat and kind != "error_pub" else float("nan")
        target = targets.get(kind, float("nan"))
        print("%-10s %9d %9d %7d %9.1f %9.1f %9.2f %9.2f" % (kind, sent, ok, failed, sent / span, target,
                                                            p50, p99))
    print("%-10s %9d %9d %7d   (requests; metric target %.1f/s in all)" % (
        "total req", st.total(0) - st.counts.get("error_pub", [0])[0],
        st.total(1) - st.counts.get("error_pub", [0, 0])[1], st.total(2), a.agents / a.metric_s))
    print("health probes answered: %d; largest backlog of a stream: %d" % (soak.probes_answered,
                                                                            soak.lag_max))
    if hasattr(soak, "listed"):
        print("registry: %d soak agents listed" % soak.listed)
    if hasattr(soak, "stored"):
        b = soak.bus_stats
        print("errorbus: published %d, stored for soak agents %d; bus received %s stored %s dropped %s "
              "duplicates %s quarantined %s; errors_collected %s" % (
                  sum(soak.published.values()), soak.stored, b["received"], b["stored"], b["dropped"],
                  b["duplicates"], b["quarantined"], soak.errors_collected))
    if hasattr(soak, "data_bytes"):
        print("disk: data dir %.1f MiB at the end; largest WAL seen %.1f MiB (%s)" % (
            soak.data_bytes / 1048576.0, soak.wal_max[0] / 1048576.0, soak.wal_max[1]))
    if rss:
        print("keeld VmRSS (MiB): start %.1f, baseline %.1f (after %.0f s warm-up), final %.1f (medians of "
              "%d samples), max %.1f, growth %+.1f (bound %.1f), slope %+.2f MiB/min over %d samples" % (
                  rss["start"], rss["baseline"], rss["warmup_s"], rss["final"], rss["window"], rss["max"],
                  rss["growth"], rss["bound"], rss["slope"], rss["samples"]))
    for f in st.failures:
        print("  failed: %s" % f)
    if failures:
        print("SOAK FAILED:")
        for f in failures:
            print("  - %s" % f)
    else:
        print("SOAK PASSED")


CONFIG = """\
# A thousand agents each log metrics under their own service name: the
# default table bound (500) is for a normal fleet, not this one.  And all of
# them start at once on one address: the per-source limits on new names
# (256 at once) are for a normal fleet too.
core:
  registry:
    new_names: {burst: %(services)d}
observability:
  max_services: %(services)d
  new_services: {burst: %(services)d}
  # The hub discovers the registered agents and probes them; discovery every
  # 2 s puts the whole fleet under watch within the warm-up.
  discovery_interval_ms: 2000
  interval_ms: 10000
"""


def main():
    a = ARGS
    keel = Keel("all", config=CONFIG % {"services": a.agents + 64},
                extra_ports=RESPONDER_BASES)
    failures = []
    soak = None
    rss = {}
    try:
        keel.start(timeout=30)
        print("keeld pid %d, PORT_OFFSET %d, data %s" % (keel.proc.pid, keel.offset, keel.data_dir),
              flush=True)
        soak = Soak(keel, a)
        soak.run()
        if soak.stats.total(2):
            failures.append("%d failed requests" % soak.stats.total(2))
        for check in (soak.check_registry, soak.check_errors, soak.check_disk):
            why = check()
            if why:
                failures.append(why)
        if a.rss_log:
            with open(a.rss_log, "w") as f:
                f.write("# seconds VmRSS RssAnon RssFile RssShmem (KiB)\n")
                f.writelines("%.1f %d %d %d %d\n" % sample for sample in soak.rss_detail)
        rss, why = rss_verdict(soak.rss, a.seconds, a.warmup_s)
        if why:
            failures.append(why)
        if keel.proc.poll() is not None:
            failures.append("keeld exited with %s" % keel.proc.returncode)
    except Exception as e:          # a crash of keeld or of the harness is a failure too
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        try:
            rc = keel.stop(timeout=20)
            if rc not in (0, None):
                failures.append("keeld exit status %s on SIGTERM" % rc)
        except Exception as e:
            failures.append("stopping keeld: %s: %s" % (type(e).__name__, e))
        if soak:
            report(soak, rss, failures)
            soak.close()
        elif failures:
            print("SOAK FAILED: %s" % failures)
        if failures:
            print("--- keeld log tail ---\n%s" % keel.log_tail(30))
        keel.cleanup()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
