"""Instructions per request, under callgrind, for the requests issue 17 is
about: every service's ping, CoreOrchestrator's get_agent_endpoint and
durable register_agent, SecurityGateway's validate_token for a session
and for a JWT; and, as the floor under all of them, a bare libzmq ROUTER
answering the same pings (build/bench/zmq_echo).

Wall-clock figures on a shared machine move with whatever else runs there;
the number of instructions a request costs does not.  So each service is
started alone (`keeld NAME`) under valgrind's callgrind with
instrumentation off; what the requests need (an administrator, a session,
a JWT, the agents looked up) is made uninstrumented; then for each request
type the counters are zeroed, instrumentation switched on, a fixed number
of requests sent from a few REQ clients at once (so the server drains
batches, as under load), instrumentation switched off and the counters
dumped.  Instructions over requests is the cost of one request in every
thread of the process, ZMQ's I/O thread included (not the kernel's work,
which callgrind does not see).  The service's background loops run
meanwhile, so an idle window as long as its longest row is measured too
and its rate taken off ("net"); it is small beside the requests.

    python3 bench/profile.py [BUILD] [--requests N] [--clients C]
                             [--services zmq_echo,core,...]
                             [--only ping_core,lookup,...] [--keep DIR]

Prints one row per request type, then for each the functions that cost
most per request: Keel's own, inclusive (which call the cost comes
through), and every function, exclusive.  --keep leaves the callgrind
dumps in DIR for callgrind_annotate.  Takes a few minutes: a service runs
about fifty times slower under callgrind.  Needs valgrind
(scripts/install-deps.sh --test) and pyzmq.  docs/performance.md
("Profiles") has the figures before and after issue 17.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ports  # noqa: E402

SERVICES = {"core": 7000, "resource": 7001, "observability": 7002,
            "errorbus": 7003, "security": 7005}
HTTP = {"core": 8000, "resource": 8001, "observability": 8002,
        "errorbus": 8003, "security": 8005}
LOOKUP_AGENTS = 16


def call(ctx, endpoint, request, timeout_ms=120000):
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, timeout_ms)
    s.connect(endpoint)
    try:
        s.send_json(request)
        return s.recv_json()
    finally:
        s.close()


def drive(ctx, endpoint, frames, total, clients):
    """Sends `total` frames (cycling through `frames`) from `clients` REQ
    sockets, each with one request in flight; returns the replies that
    did not carry what a success carries."""
    socks = []
    poller = zmq.Poller()
    for _ in range(clients):
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        socks.append(s)
        poller.register(s, zmq.POLLIN)
    sent = done = 0
    bad = []
    for s in socks:
        if sent < total:
            s.send(frames[sent % len(frames)])
            sent += 1
    while done < sent:
        events = dict(poller.poll(120000))
        if not events:
            raise SystemExit("profile.py: no reply for 120 s")
        for s in events:
            reply = s.recv()
            done += 1
            if b'"error"' in reply or b'"valid":false' in reply:
                bad.append(reply[:200])
            if sent < total:
                s.send(frames[sent % len(frames)])
                sent += 1
    for s in socks:
        s.close()
    return bad


def control(pid, *args):
    subprocess.run(["callgrind_control", *args, str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def newest_dump(dir, before):
    """The dump callgrind_control -d just wrote: cg.out.PID.PART, the
    highest PART (cg.out.PID itself is written only at exit)."""
    dumps = [f for f in os.listdir(dir) if re.match(r"cg\.out\.\d+\.\d+$", f) and f not in before]
    if not dumps:
        raise SystemExit("profile.py: callgrind wrote no dump")
    return os.path.join(dir, max(dumps, key=lambda f: int(f.rsplit(".", 1)[1])))


def total_of(dump):
    with open(dump) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    return 0


def top_functions(dump, n, per, inclusive):
    """The n costliest functions, per request: exclusive over everything,
    or inclusive over Keel's own (src/), which says which of its calls
    the exclusive costs in the libraries come from."""
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100",
                          "--inclusive=%s" % ("yes" if inclusive else "no"), dump],
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([\s\d.]+%\)\s+)?(\S.*)$", line)
        if not m or "PROGRAM TOTALS" in line or "=>" in line:
            continue
        name = m.group(2).split(" [")[0]
        name = re.sub(r"^.*?/?(src/)", r"\1", name)
        if inclusive and not name.startswith("src/"):
            continue
        rows.append((int(m.group(1).replace(",", "")), name))
    rows.sort(reverse=True)
    return [(cost / per, name) for cost, name in rows[:n]]


class Keeld:
    """One service, `keeld NAME`, under callgrind with instrumentation off;
    or, for the service "zmq_echo", build/bench/zmq_echo: the bare libzmq
    ROUTER that is the floor under every request."""

    def __init__(self, build, service, dir, out):
        self.service, self.out = service, out
        self.log = open(os.path.join(dir, service + ".log"), "w")
        if service == "zmq_echo":
            self.endpoint = "tcp://127.0.0.1:%d" % ports.ports(1)[0]
            command = [os.path.join(build, "bench", "zmq_echo"), self.endpoint]
            self.env = dict(os.environ)
        else:
            self.offset = ports.offset([SERVICES[service], HTTP[service], 7150, 7151], 1)
            self.endpoint = "tcp://127.0.0.1:%d" % (SERVICES[service] + self.offset)
            self.env = dict(os.environ, PORT_OFFSET=str(self.offset),
                            KEEL_DATA_DIR=os.path.join(dir, service), KEEL_LOG_LEVEL="warn",
                            KEEL_NVML_LIB=os.path.join(dir, "none.so"))
            command = [os.path.join(build, "keeld"), service, "--config", os.path.join(dir, "keel.yaml")]
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             "--callgrind-out-file=%s/cg.out.%%p" % out] + command,
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_healthy(self, seconds):
        if self.service == "zmq_echo":
            return self.wait_echo(seconds)
        url = "http://127.0.0.1:%d/health" % (HTTP[self.service] + self.offset)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("profile.py: keeld %s exited with %d"
                                 % (self.service, self.proc.returncode))
            try:
                if urllib.request.urlopen(url, timeout=5).status == 200:
                    return
            except OSError:
                pass
            time.sleep(1)
        raise SystemExit("profile.py: keeld %s did not become healthy" % self.service)

    def wait_echo(self, seconds):
        ctx = zmq.Context.instance()
        try:
            call(ctx, self.endpoint, {"action": "ping"}, int(seconds * 1000))
        except zmq.Again:
            raise SystemExit("profile.py: zmq_echo did not answer")

    def measure(self, name, work):
        """Runs work() instrumented; returns (instructions, seconds, dump, work's result)."""
        before = set(os.listdir(self.out))
        control(self.proc.pid, "-z")
        control(self.proc.pid, "-i", "on")
        t0 = time.monotonic()
        result = work()
        took = time.monotonic() - t0
        control(self.proc.pid, "-i", "off")
        control(self.proc.pid, "-d", name)
        dump = newest_dump(self.out, before)
        return total_of(dump), took, dump, result

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def cases_of(ctx, svc, build):
    """The request types profiled on one service: [(row, frames)], after
    making what they need (uninstrumented)."""
    ping = [b'{"action":"ping"}']
    if svc.service == "zmq_echo":
        return [("zmq_echo_floor", ping)]
    rows = [("ping_" + svc.service, ping)]
    if svc.service == "core":
        for i in range(LOOKUP_AGENTS):
            call(ctx, svc.endpoint, {"action": "register_agent", "agent_id": "look-%d" % i,
                                     "agent_type": "bench", "host": "127.0.0.1",
                                     "port": 20000 + i})
        rows.append(("lookup", [('{"action":"get_agent_endpoint","agent_name":"look-%d"}' % i)
                                .encode() for i in range(LOOKUP_AGENTS)]))
        rows.append(("register", [('{"action":"register_agent","agent_id":"reg-%d",'
                                   '"agent_type":"bench","host":"127.0.0.1","port":%d}'
                                   % (i % 64, 30000 + i % 64)).encode() for i in range(64)]))
    elif svc.service == "security":
        subprocess.run([os.path.join(build, "keelctl"), "--port-offset", str(svc.offset),
                        "--timeout", "120000", "user", "add", "bench", "--admin",
                        "--password-stdin"], input=b"bench-pass\n", check=True,
                       stdout=subprocess.DEVNULL, env=svc.env)
        login = call(ctx, svc.endpoint, {"action": "login", "user_id": "bench",
                                         "password": "bench-pass"})
        session = login["session"]["token"]
        jwt = call(ctx, svc.endpoint, {"action": "issue_token", "auth_token": session,
                                       "subject": "bench", "scopes": ["admin"],
                                       "ttl_s": 3600})["token"]
        for kind, token in (("session", session), ("jwt", jwt)):
            rows.append(("validate_" + kind,
                         [('{"action":"validate_token","token":"%s"}' % token).encode()]))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--services", default=",".join(["zmq_echo"] + list(SERVICES)))
    ap.add_argument("--only", default="", help="rows to profile (ping_core,lookup,...)")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--keep", help="a directory to keep the callgrind dumps in")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if not shutil.which(tool):
            raise SystemExit("profile.py: %s is missing (apt-get install valgrind)" % tool)
    dir = tempfile.mkdtemp(prefix="keel-profile-")
    out = args.keep or dir
    os.makedirs(out, exist_ok=True)
    # The registration row makes new names from one address: the
    # per-source limit on new names would profile refusals instead.
    with open(os.path.join(dir, "keel.yaml"), "w") as f:
        f.write("core:\n  coordinator: {interrupt_endpoint: \"\", language_endpoint: \"\"}\n"
                "  registry: {new_names: {burst: 0}}\n")
    only = set(filter(None, args.only.split(",")))
    ctx = zmq.Context()
    print("each service alone under callgrind, %d requests per row from %d REQ clients;"
          % (args.requests, args.clients))
    print("net = all of keeld's threads, less its background loops' rate while idle")
    print("%-18s %14s %14s %10s" % ("request", "net instr/req", "gross", "seconds"))
    report = []
    try:
        for service in filter(None, args.services.split(",")):
            svc = Keeld(args.build, service, dir, out)
            try:
                svc.wait_healthy(600)
                rows = [r for r in cases_of(ctx, svc, args.build) if not only or r[0] in only]
                measured = []
                for name, frames in rows:
                    drive(ctx, svc.endpoint, frames, min(50, args.requests), args.clients)   # warm
                    measured.append((name, svc.measure(name, lambda: drive(
                        ctx, svc.endpoint, frames, args.requests, args.clients))))
                if not measured:
                    continue
                idle_s = max(5.0, max(m[1][1] for m in measured))
                idle, idle_took, _, _ = svc.measure("idle", lambda: time.sleep(idle_s))
                rate = idle / idle_took
                for name, (total, took, dump, bad) in measured:
                    print("%-18s %14.0f %14.0f %10.1f%s" % (
                        name, (total - rate * took) / args.requests, total / args.requests, took,
                        "  (%d failed: %r)" % (len(bad), bad[0]) if bad else ""))
                    sys.stdout.flush()
                    report.append((name, dump))
                print("%-18s %14s %14.0f %10.1f  (%s idle: instructions per second)"
                      % ("", "", rate, idle_took, service))
            finally:
                svc.stop()
        for name, dump in report:
            for inclusive in (True, False):
                print("\n%s: instructions per request, %s" % (
                    name, "inclusive, Keel's functions" if inclusive else "exclusive"))
                for cost, fn in top_functions(dump, args.top, args.requests, inclusive):
                    print("  %10.0f  %s" % (cost, fn))
    finally:
        ctx.destroy(linger=0)
        for f in os.listdir(dir):
            if f.endswith(".log") and args.keep:
                shutil.copy(os.path.join(dir, f), out)
        shutil.rmtree(dir, ignore_errors=True)


if __name__ == "__main__":
    main()
