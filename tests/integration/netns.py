"""Two machines on one host: a pair of network namespaces joined by a veth
pair, for the two-machine end-to-end test.

Each namespace has its own loopback and its own port space, so the test's
processes can never meet another test's, and the private addresses on the
veth pair never leave the namespaces this module creates.  Everything is
created with `ip` and removed by `Link.destroy`, which tolerates a half-made
link so a failed setup still cleans up.

The test process itself stays in the host namespace.  It talks to the
services through a `Relay`: a small pyzmq process started inside a
namespace that performs requests for it (JSON lines on stdin/stdout), so
every request really leaves from that machine's side of the link.

Run as a script, this module is the relay:  python3 netns.py relay
"""
import json
import os
import random
import select
import signal
import subprocess
import sys
import time

IP = "ip"


class NetnsUnavailable(Exception):
    """Namespaces cannot be made here (not root, no CAP_NET_ADMIN, no ip)."""


def _ip(*args, check=True):
    result = subprocess.run([IP] + list(args), capture_output=True, text=True, timeout=10)
    if check and result.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), result.stderr.strip()))
    return result


class Link:
    """Namespaces `<prefix>-mainpc` and `<prefix>-pc2` with a veth pair between
    them: mainpc has .1 and pc2 has .2 of a private /30."""

    def __init__(self):
        tag = "%06x" % random.randrange(1 << 24)
        self.mainpc = "keel-%s-mainpc" % tag
        self.pc2 = "keel-%s-pc2" % tag
        subnet = random.randrange(256)
        self.mainpc_addr = "10.231.%d.1" % subnet
        self.pc2_addr = "10.231.%d.2" % subnet
        self.veth = ("kv%sa" % tag, "kv%sb" % tag)
        self.made = []

    def create(self):
        try:
            result = _ip("netns", "add", self.mainpc, check=False)
        except (OSError, subprocess.SubprocessError) as e:
            raise NetnsUnavailable("cannot run `ip netns add`: %s" % e)
        if result.returncode != 0:
            raise NetnsUnavailable("`ip netns add` failed (needs root or CAP_NET_ADMIN): %s"
                                   % result.stderr.strip())
        self.made.append(self.mainpc)
        try:
            _ip("netns", "add", self.pc2)
            self.made.append(self.pc2)
            _ip("link", "add", self.veth[0], "type", "veth", "peer", "name", self.veth[1])
            _ip("link", "set", self.veth[0], "netns", self.mainpc)
            _ip("link", "set", self.veth[1], "netns", self.pc2)
            for ns, dev, addr in ((self.mainpc, self.veth[0], self.mainpc_addr),
                                  (self.pc2, self.veth[1], self.pc2_addr)):
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "addr", "add", addr + "/30", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
        except Exception:
            self.destroy()
            raise
        return self

    def destroy(self):
        """Deleting a namespace deletes the veth end inside it, and with it
        the peer; a veth never moved into a namespace is deleted here."""
        for ns in reversed(self.made):
            _ip("netns", "del", ns, check=False)
        self.made = []
        if os.path.exists("/sys/class/net/" + self.veth[0]):
            _ip("link", "del", self.veth[0], check=False)

    def exec_args(self, ns, argv):
        return [IP, "netns", "exec", ns] + list(argv)


class NsProcess:
    """A process started inside a namespace (`ip netns exec` execs the
    command, so the pid is the command's own)."""

    def __init__(self, link, ns, argv, env=None, log_path=None, cwd=None):
        self.argv = link.exec_args(ns, argv)
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.proc = None
        self.log = None
        self.terminating = False

    def start(self):
        self.log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, cwd=self.cwd)
        self.terminating = False
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.kill()
        if self.proc:
            self.proc.wait()
        self._close_log()

    def _close_log(self):
        if self.log not in (None, subprocess.DEVNULL):
            self.log.close()
        self.log = None

    def terminate(self):
        """SIGTERM, once: a second one may mean "stop now" to a daemon."""
        if self.alive() and not self.terminating:
            self.proc.send_signal(signal.SIGTERM)
            self.terminating = True

    def stop(self, timeout=5):
        if self.alive():
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._close_log()

    def log_tail(self, n=30):
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


class Relay:
    """Requests made from inside a namespace, on behalf of the test."""

    def __init__(self, link, ns):
        argv = link.exec_args(ns, [sys.executable, os.path.abspath(__file__), "relay"])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)

    def _call(self, op, timeout_s):
        self.proc.stdin.write((json.dumps(op) + "\n").encode())
        self.proc.stdin.flush()
        grace = 5 * float(os.environ.get("KEEL_TIME_FACTOR") or 1)    # a busy machine's slow start
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s + grace)
        if not ready:
            raise RuntimeError("relay did not answer %r" % op)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("relay exited")
        return json.loads(line)

    def request(self, endpoint, message, timeout_ms=3000):
        """The JSON reply, or None on timeout."""
        out = self._call({"op": "zmq", "endpoint": endpoint, "message": message,
                          "timeout_ms": timeout_ms}, timeout_ms / 1000.0)
        return out.get("reply")

    def http_status(self, url, timeout_s=2):
        """The HTTP status code, or None when nothing answered."""
        return self._call({"op": "http", "url": url, "timeout_s": timeout_s}, timeout_s).get("status")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(predicate, timeout, interval=0.1):
    """The first truthy value of predicate() within timeout, else the last one."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def _relay_main():
    import urllib.error
    import urllib.request

    import zmq

    ctx = zmq.Context()
    for line in sys.stdin:
        op = json.loads(line)
        out = {}
        if op["op"] == "zmq":
            sock = ctx.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVTIMEO, op["timeout_ms"])
            sock.setsockopt(zmq.SNDTIMEO, op["timeout_ms"])
            sock.connect(op["endpoint"])
            try:
                sock.send_json(op["message"])
                out["reply"] = json.loads(sock.recv())
            except zmq.Again:
                out["reply"] = None
            finally:
                sock.close()
        else:
            try:
                with urllib.request.urlopen(op["url"], timeout=op["timeout_s"]) as r:
                    out["status"] = r.status
            except urllib.error.HTTPError as e:
                out["status"] = e.code
            except OSError:
                out["status"] = None
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    ctx.term()


if __name__ == "__main__" and sys.argv[1:] == ["relay"]:
    _relay_main()
