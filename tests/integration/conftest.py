"""Integration harness: starts the real build/keeld on a free PORT_OFFSET with
a temporary data directory, waits for /health, and always stops what it
started.  Tests talk to it the way the original Python agents do: pyzmq REQ
sockets sending one JSON frame.

Fixtures
  keel          a running `keeld all` (function scope)
  keel_factory  start(service="all", config=None, env=None) -> Keel, for tests
                that need their own configuration, several instances, or
                restarts; every instance is stopped at teardown.

Under valgrind (KEEL_VALGRIND=1) every keeld and keelctl the tests start --
through Keel, or through command() for the tests that run the binaries
themselves -- runs under memcheck with its log in one directory per pytest
worker (KEEL_VALGRIND_DIR, else a temporary one).  A log is read once its
process has exited: at Keel.cleanup for that instance's processes, after every
test for the others (keelctl), and at the end of the session for whatever a
module-scoped fixture still held.  Any memcheck error or definite leak fails
the test whose teardown found it, with the log's excerpt; a clean log is
deleted, a failing one kept.  A process killed with SIGKILL writes no leak
summary, but errors it made before the kill are still in its log and count.

Every wait the harness makes (health, stop, requests, keelctl) is multiplied
by TIME_FACTOR: KEEL_TIME_FACTOR, else 10 under valgrind, 3 under ASan and 1
without.
"""
import base64
import fcntl
import glob
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("KEEL_BUILD", "build"))
KEELD = os.path.join(BUILD, "keeld")
KEELCTL = os.path.join(BUILD, "keelctl")
FAKE_NVML = os.path.join(BUILD, "tests", "libfake-nvml.so")

VALGRIND = os.environ.get("KEEL_VALGRIND") == "1"
# `make sanitize` sets KEEL_SANITIZED=1: ASan keeps freed memory in its
# quarantine (256 MiB) and shadows the rest, so resident size means nothing there.
SANITIZED = os.environ.get("KEEL_SANITIZED") == "1"
# memcheck slows a keeld about tenfold, ASan two to three times.  Exported,
# so every helper module and every process a test starts waits alike.
TIME_FACTOR = float(os.environ.get("KEEL_TIME_FACTOR") or (10 if VALGRIND else 3 if SANITIZED else 1))
os.environ["KEEL_TIME_FACTOR"] = str(TIME_FACTOR)
VALGRIND_SUPP = os.path.join(ROOT, "tests", "valgrind.supp")
VALGRIND_EXIT = 97
# skipif marker for the few tests that measure speed or memory footprint,
# which memcheck changes by an order of magnitude and ASan by several times.
not_instrumented = pytest.mark.skipif(VALGRIND or SANITIZED, reason="measures speed or memory; "
                                      "memcheck and ASan make the process slower and larger")

# base ports of the five services: (zmq, http)
PORTS = {
    "core": (7000, 8000),
    "resource": (7001, 8001),
    "observability": (7002, 8002),
    "errorbus": (7003, 8003),
    "security": (7005, 8005),
}
# Bound by default too: the error bus (7150, 7151), the coordinator's suggestion
# port (5591) and the hub's status PUB (6584).
EXTRA_PORTS = (7150, 7151, 5591, 6584)
# The absorbed agents' old ports and side channels, bound with legacy_ports: true,
# and the two ports kept agents dial by default though no original bound them
# (LearningAdjusterAgent: PerformanceLogger on 5632, AgentTrustScorer on 5628).
LEGACY_PORTS = (7100, 8100, 7120, 7121, 8120, 26002, 26003, 27002, 7125, 8125, 5591, 5568, 5569,
                7113, 8113, 7115, 8115, 7101, 8101, 5572, 6572,
                7103, 8103, 7114, 8114, 7128, 8128, 7117, 8117, 5613, 6613, 5619, 5620, 7152,
                7116, 8116, 7122, 8122, 5632, 5628)


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# -- ports -------------------------------------------------------------------
# Tests run side by side (-n 2) and pick their ports at random, so two picks
# can meet: another test's keeld, stand-in agent or Redis on a port chosen
# for this one, between the check and the bind or after a kill -9 freed it.
# Every pick is therefore claimed on one file that all test processes of the
# machine share, as a one-byte POSIX record lock at the port's number: the
# kernel keeps it, and drops it with the process that held it, so a crashed
# worker leaves nothing behind.  A process never conflicts with its own
# record locks, so this process's claims are also kept in a set.  A Keel
# gives its offset's ports back at cleanup; what a test picks itself
# (free_offset, free_port) goes back when the test ends.
_claims = {"fd": None, "ports": set(), "test": []}


def claim_ports(ports):
    """Claims all of `ports` for this process, or none of them: True when
    no test process had claimed any of them and each is free to bind."""
    if _claims["fd"] is None:
        path = os.path.join(tempfile.gettempdir(), "keel-test-ports-%d" % os.getuid())
        _claims["fd"] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    got = []
    for port in sorted(set(ports)):
        if port in _claims["ports"]:
            break
        try:
            fcntl.lockf(_claims["fd"], fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
        except OSError:
            break
        got.append(port)
        if not port_free(port):
            break
    else:
        _claims["ports"].update(got)
        return True
    for port in got:
        fcntl.lockf(_claims["fd"], fcntl.LOCK_UN, 1, port)
    return False


def release_ports(ports):
    """Gives back what claim_ports claimed; other ports are left alone."""
    for port in ports:
        if port in _claims["ports"]:
            _claims["ports"].discard(port)
            fcntl.lockf(_claims["fd"], fcntl.LOCK_UN, 1, port)


def offset_ports(offset, extra=()):
    """Every port a keeld at `offset` may bind: the Keel ports, the legacy
    ones (they count for every keeld, whatever its configuration, so one
    that turns them on can never land them in the ephemeral range), and
    `extra` base ports."""
    bases = ([p for pair in PORTS.values() for p in pair] + list(EXTRA_PORTS) + list(LEGACY_PORTS)
             + list(extra))
    return [b + offset for b in bases]


def claim_offset(extra=()):
    """A PORT_OFFSET whose offset_ports are claimed for this process until
    release_ports.  Kept below the ephemeral range where the ports allow: a
    port free now but ephemeral may be taken by any outgoing connection
    before keeld binds it."""
    top = (_ephemeral_low() - max(offset_ports(0, extra))) // 10
    top = top if top > 150 else 3000
    for _ in range(200):
        offset = random.randrange(100, min(top, 3000)) * 10
        if claim_ports(offset_ports(offset, extra)):
            return offset
    raise RuntimeError("no free PORT_OFFSET found")


def free_offset(extra=()):
    """claim_offset for the rest of the running test."""
    offset = claim_offset(extra)
    _claims["test"].extend(offset_ports(offset, extra))
    return offset


def free_port():
    """One port below the ephemeral range, for a stand-in agent, a Redis or
    a NATS server, claimed for the rest of the running test."""
    for _ in range(200):
        port = random.randrange(2000, _ephemeral_low())
        if claim_ports([port]):
            _claims["test"].append(port)
            return port
    raise RuntimeError("no free port found")


def scaled(seconds):
    """A wait the harness makes, stretched for a slowed-down keeld."""
    return seconds * TIME_FACTOR


@pytest.fixture(autouse=True)
def _ports_go_back_after_each_test():
    """First set up, so last torn down: after what the test started stopped."""
    yield
    release_ports(_claims["test"])
    _claims["test"].clear()


# -- valgrind -----------------------------------------------------------------
_vg_dir = None
_vg_checked = set()
_VG_ERROR = re.compile(r"^==\d+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised"
                       r"|Syscall param|Mismatched free|Source and destination overlap"
                       r"|Argument '|.*fishy value"
                       r"|Process terminating with default action of signal (4|6|7|8|11) )")


def valgrind_dir():
    """This worker's log directory: xdist workers never read each other's logs."""
    global _vg_dir
    if _vg_dir is None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        base = os.environ.get("KEEL_VALGRIND_DIR")
        if base:
            _vg_dir = os.path.join(os.path.abspath(base), worker)
            os.makedirs(_vg_dir, exist_ok=True)
        else:
            _vg_dir = tempfile.mkdtemp(prefix="keel-vg-%s-" % worker)
    return _vg_dir


def command(argv):
    """argv for running keeld or keelctl: itself, or under memcheck when KEEL_VALGRIND=1.
    The log's name carries the program and the running test, for whoever reads it."""
    argv = list(argv)
    if not VALGRIND:
        return argv
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].split(" ")[0]
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", "%s.%s" % (os.path.basename(argv[0]), test))[:80]
    vg = ["valgrind", "--tool=memcheck", "--error-exitcode=%d" % VALGRIND_EXIT,
          "--leak-check=full", "--errors-for-leak-kinds=definite",
          "--show-leak-kinds=definite", "--track-fds=no", "--num-callers=30",
          # A child forked by keeld (observability's managed agents) that fails
          # to exec and _exit()s holds the parent's heap without its threads:
          # memcheck would call blocks only those threads point to lost.
          "--child-silent-after-fork=yes",
          "--log-file=%s/valgrind.%s.%%p.log" % (valgrind_dir(), tag)]
    if os.path.exists(VALGRIND_SUPP):
        vg.append("--suppressions=" + VALGRIND_SUPP)
    return vg + argv


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def valgrind_problems(pids=None):
    """Reads the logs of exited processes (of `pids`, else all) not read before;
    returns one excerpt per failing log.  Clean logs are removed."""
    if not VALGRIND:
        return []
    problems = []
    for path in sorted(glob.glob(os.path.join(valgrind_dir(), "valgrind.*.log"))):
        if path in _vg_checked:
            continue
        pid = int(path.rsplit(".", 2)[-2])
        if pids is not None and pid not in pids:
            continue
        with open(path, errors="replace") as f:
            text = f.read()
        summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        if summary is None and _pid_alive(pid):
            continue                        # still running: read later
        _vg_checked.add(path)
        lost = re.search(r"definitely lost: ([\d,]+) bytes", text)
        bad = ((summary and int(summary.group(1)) > 0)
               or (lost and int(lost.group(1).replace(",", "")) > 0)
               or any(_VG_ERROR.match(line) for line in text.splitlines()))
        if bad:
            problems.append("%s:\n%s" % (path, _excerpt(text)))
        else:
            os.unlink(path)
    return problems


def _excerpt(text, limit=12000):
    """The log less its banner: the error records and the summaries."""
    lines = [l for l in text.splitlines()
             if not re.match(r"^==\d+== (Memcheck,|Copyright|Using Valgrind|Command:|Parent PID:|$)", l)]
    out = "\n".join(lines)
    return out if len(out) <= limit else out[:limit] + "\n... (truncated; see the log)"


def assert_valgrind_clean(pids=None):
    problems = valgrind_problems(pids)
    if problems:
        raise AssertionError("valgrind found errors:\n" + "\n\n".join(problems))


@pytest.fixture(autouse=True)
def _valgrind_per_test():
    """Fails a test's teardown when a process it ran (keelctl, a keeld it started
    itself) left memcheck errors.  Autouse fixtures are set up first, so this
    teardown runs after keel_factory's."""
    yield
    assert_valgrind_clean()


@pytest.fixture(scope="session", autouse=True)
def _valgrind_session():
    """Whatever module-scoped fixtures stopped after the last test of a module."""
    yield
    assert_valgrind_clean()


def zmq_request(endpoint, message, timeout_ms=5000):
    """One request on a fresh REQ socket, as BaseAgent.send_request_to_agent does.
    `message` is a dict (sent as JSON) or raw bytes; returns the decoded JSON reply."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(scaled(timeout_ms)))
    sock.setsockopt(zmq.SNDTIMEO, int(scaled(timeout_ms)))
    sock.connect(endpoint)
    try:
        if isinstance(message, (bytes, bytearray)):
            sock.send(message)
        else:
            sock.send_json(message)
        return json.loads(sock.recv())
    finally:
        sock.close()


def http_get(url, timeout=5, headers=None):
    """Returns (status, body bytes, headers)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=scaled(timeout)) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def http_request(url, method="POST", body=None, headers=None, timeout=5):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=scaled(timeout)) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True,
                          text=True).stdout


def start_redis(port, *options):
    """A real redis-server on 127.0.0.1:`port`, in memory unless `options`
    (later directives win) say otherwise, once it answers PING."""
    proc = subprocess.Popen(["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"] + list(options),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + scaled(10)
    while proc.poll() is None and time.time() < deadline:
        if redis_cli(port, "PING").strip() == "PONG":
            return proc
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError("redis-server did not start on %d" % port)


def admin_jwt(keys_path, subject="tester", ttl_s=3600):
    """An administrator's JWT (scope admin) signed with the first key of a
    key file as token.c reads it; the file is written first, one fresh key,
    when missing."""
    if not os.path.exists(keys_path):
        os.makedirs(os.path.dirname(keys_path) or ".", exist_ok=True)
        with open(keys_path, "w") as f:
            f.write("test:%s\n" % os.urandom(32).hex())
        os.chmod(keys_path, 0o600)
    with open(keys_path) as f:
        kid, secret = f.readline().strip().split(":")

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    claims = b64(json.dumps({"iss": "keel", "sub": subject, "iat": now, "exp": now + ttl_s,
                             "scopes": ["admin"]}).encode())
    signing = ("%s.%s" % (header, claims)).encode()
    sig = b64(hmac.new(bytes.fromhex(secret), signing, hashlib.sha256).digest())
    return "%s.%s.%s" % (header, claims, sig)


class Keel:
    """One keeld process."""

    def __init__(self, service="all", config=None, env=None, offset=None, data_dir=None,
                 extra_ports=()):
        self.service = service
        # An offset the harness chose is claimed (claim_ports) until cleanup,
        # restarts included; a process that is no test may still hold one of
        # its ports, and start() then moves to another offset.
        self.extra_ports = extra_ports
        self.offset_pinned = offset is not None
        self.offset = offset if offset is not None else claim_offset(extra_ports)
        self.owns_data_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="keel-test-")
        self.config_path = None
        if config is not None:
            self.config_path = os.path.join(self.data_dir, "keel.yaml")
            with open(self.config_path, "w") as f:
                f.write(config if isinstance(config, str) else json.dumps(config))
        self.env = dict(os.environ)
        self.env.update({"PORT_OFFSET": str(self.offset), "KEEL_DATA_DIR": self.data_dir})
        self.env.setdefault("KEEL_NVML_LIB", os.path.join(self.data_dir, "no-nvml.so"))
        if env:
            self.env.update(env)
        self.proc = None
        self.pids = []
        self.stderr_path = os.path.join(self.data_dir, "keeld.stderr")

    # -- addresses ---------------------------------------------------------
    def port(self, base):
        return base + self.offset

    def endpoint(self, base):
        return "tcp://127.0.0.1:%d" % (base + self.offset)

    def zmq(self, name):
        return self.endpoint(PORTS[name][0])

    def http(self, name, path="/health"):
        return "http://127.0.0.1:%d%s" % (PORTS[name][1] + self.offset, path)

    def request(self, name_or_port, message, timeout_ms=5000):
        endpoint = (self.zmq(name_or_port) if isinstance(name_or_port, str)
                    else self.endpoint(name_or_port))
        return zmq_request(endpoint, message, timeout_ms)

    def admin_token(self):
        """An administrator's JWT for this keeld's data directory."""
        return admin_jwt(os.path.join(self.data_dir, "security", "jwt.keys"))

    def admin(self, name_or_port, message, timeout_ms=5000):
        """A request that needs an administrator's token (an ADMIN route);
        anything but a JSON object goes as it is."""
        if isinstance(message, dict):
            message = dict(message, auth_token=self.admin_token())
        return self.request(name_or_port, message, timeout_ms)

    def services(self):
        return list(PORTS) if self.service == "all" else [self.service]

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout=15):
        args = [KEELD, self.service]
        if self.config_path:
            args += ["--config", self.config_path]
        for attempt in range(3):
            self.stderr = open(self.stderr_path, "ab")
            self.proc = subprocess.Popen(command(args), env=self.env, stdout=self.stderr,
                                         stderr=self.stderr, cwd=self.data_dir)
            self.pids.append(self.proc.pid)
            try:
                self.wait_healthy(timeout)
                return self
            except BaseException as e:
                lost_race = (isinstance(e, RuntimeError) and self.proc.poll() is not None
                             and not self.offset_pinned and "Address already in use" in self.log_tail())
                if not lost_race or attempt == 2:
                    # A fixture whose start() fails gets no teardown, so
                    # the keeld it started must not outlive the failure.
                    try:
                        self.stop()
                    except subprocess.TimeoutExpired:
                        pass    # stop() killed it
                    raise
                self.stderr.close()
                release_ports(offset_ports(self.offset, self.extra_ports))
                self.offset = claim_offset(self.extra_ports)
                self.env["PORT_OFFSET"] = str(self.offset)
        return self

    def wait_healthy(self, timeout=15):
        timeout = scaled(timeout)
        deadline = time.time() + timeout
        pending = set(self.services())
        while pending and time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("keeld exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
            for name in list(pending):
                try:
                    status, body, _ = http_get(self.http(name), timeout=1)
                    if status == 200 and self.answered_by_us(body):
                        pending.discard(name)
                except (OSError, urllib.error.URLError, http.client.HTTPException):
                    # HTTPException: the port is held by another test's
                    # keeld, whose ZMQ greeting is no HTTP status line.
                    pass
            if pending:
                time.sleep(0.05)
        if pending:
            raise RuntimeError("not healthy in %ss: %s\n%s" % (timeout, pending, self.log_tail()))

    def answered_by_us(self, body):
        """Whether a /health reply came from this keeld.  After a kill -9 its
        ports are free, and a keeld of a test running beside it may take some
        of them before this one binds: that keeld's 200 must not count, or
        the test would go on talking to it while this one exits with
        "Address already in use" (seen once in CI: all 168 registrations
        "lost" after a restart, read from another test's registry)."""
        try:
            return json.loads(body).get("pid") == self.proc.pid
        except (ValueError, AttributeError):
            return False

    def log_tail(self, n=40):
        try:
            with open(self.stderr_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops the process; returns its exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout=15):
        self.stop()
        return self.start(timeout)

    def keelctl(self, *args, input=None, timeout=30):
        return subprocess.run(command([KEELCTL, "--port-offset", str(self.offset)] + list(args)),
                              env=self.env, input=input, capture_output=True,
                              timeout=scaled(timeout), text=True, cwd=self.data_dir)

    def cleanup(self):
        try:
            self.stop()
        finally:
            if getattr(self, "stderr", None):
                self.stderr.close()
            if self.owns_data_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)
            if not self.offset_pinned:
                release_ports(offset_ports(self.offset, self.extra_ports))
        assert_valgrind_clean(set(self.pids))


@pytest.fixture
def keel_factory():
    started = []

    def start(service="all", config=None, env=None, **kwargs):
        k = Keel(service, config, env, **kwargs)
        started.append(k)
        return k.start()

    yield start
    # Every instance is stopped even when an earlier one's cleanup fails.
    failure = None
    for k in reversed(started):
        try:
            k.cleanup()
        except Exception as e:
            failure = failure or e
    if failure:
        raise failure


@pytest.fixture
def keel(keel_factory):
    return keel_factory("all")
