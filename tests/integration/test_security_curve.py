"""Encrypted ZMQ (SG-42 ... SG-44): `keelctl certs generate` writes keys with
mode 0600; with SECURE_ZMQ=1 the service is a CURVE server whose ZAP handler
admits only the public keys in authorized_clients/ (re-read live); a client
with another key, and a plaintext client, get no answer; keelctl talks CURVE
itself; world-readable secret keys stop the service from starting.  Every
socket is covered, not only the request ports (issue 16, finding 2): the
hub's status PUB speaks CURVE too.  The sockets the kept agents use (their
old ports, the error bus, the probes of them) speak CURVE only with
`agent_curve`, since the agents never turn CURVE on themselves: under CURVE
they stay open to the kept agents as they are, and `trusted_sources`
guards the state changes there."""
import http.server
import json
import os
import stat
import subprocess
import threading
import time

import pytest
import zmq
import zmq.auth

from conftest import KEELCTL, Keel, command, scaled
from observability_util import StandInAgent, agent_entry, hub_config
from security_helpers import FAST, Client


def certs(tmp_path, *extra):
    d = str(tmp_path / "certs")
    r = subprocess.run(command([KEELCTL, "certs", "generate", "--dir", d] + list(extra)),
                       capture_output=True, text=True, timeout=scaled(30))
    assert r.returncode == 0, r.stderr
    return d


def keys(d, name):
    pub, sec = zmq.auth.load_certificate(os.path.join(d, name + ".key_secret"))
    server, _ = zmq.auth.load_certificate(os.path.join(d, "server.key"))
    return pub, sec, server


@pytest.fixture
def secure(keel_factory, tmp_path):
    d = certs(tmp_path)
    k = keel_factory("security", config=FAST, env={"SECURE_ZMQ": "1", "ZMQ_CERTIFICATES_DIR": d})
    k.certs = d
    return k


def test_certs_generate_modes_0600(tmp_path):
    """`keelctl certs generate`: every key file 0600, directories 0700, and an
    existing set is not replaced without --force."""
    d = certs(tmp_path)
    files = ["server.key", "server.key_secret", "client.key", "client.key_secret",
             "authorized_clients/client.key"]
    for f in files:
        assert stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode) == 0o600, f
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert not os.path.exists(os.path.join(d, "authorized_clients", "client.key_secret"))
    r = subprocess.run(command([KEELCTL, "certs", "generate", "--dir", d]), capture_output=True,
                       text=True)
    assert r.returncode == 1 and "--force" in r.stderr
    before = open(os.path.join(d, "server.key")).read()
    certs(tmp_path, "--force")
    assert open(os.path.join(d, "server.key")).read() != before


def test_sg43_allowed_client_served(secure):
    """SG-43: a client with an allowed key gets the normal reply."""
    c = Client(secure.zmq("security"), curve=keys(secure.certs, "client"))
    assert c({"action": "health_check"})["status"] == "ok"


def test_sg43_unknown_key_refused(secure):
    """SG-43: a client whose public key is not in the allow-list gets nothing."""
    pub, sec = zmq.curve_keypair()
    _, _, server = keys(secure.certs, "client")
    c = Client(secure.zmq("security"), timeout_ms=1500, curve=(pub, sec, server))
    with pytest.raises(zmq.Again):
        c({"action": "health_check"})


def test_plaintext_client_refused(secure):
    """A plaintext client cannot talk to a secure service."""
    c = Client(secure.zmq("security"), timeout_ms=1500)
    with pytest.raises(zmq.Again):
        c({"action": "health_check"})


def test_allow_list_is_live(secure, tmp_path):
    """Adding a client key works without a restart; removing it refuses the
    next connection."""
    r = subprocess.run(command([KEELCTL, "certs", "generate", "--dir", secure.certs,
                                "--client", "agent7"]), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    c = Client(secure.zmq("security"), curve=keys(secure.certs, "agent7"))
    assert c({"action": "health_check"})["status"] == "ok"
    c.close()
    os.unlink(os.path.join(secure.certs, "authorized_clients", "agent7.key"))
    c = Client(secure.zmq("security"), timeout_ms=1500, curve=keys(secure.certs, "agent7"))
    with pytest.raises(zmq.Again):
        c({"action": "health_check"})


def test_keelctl_speaks_curve(secure):
    """keelctl uses the client keys: `status` reaches the secure service."""
    r = secure.keelctl("--json", "status")
    assert '"SecurityGateway"' in r.stdout
    import json
    rows = {row["service"]: row for row in json.loads(r.stdout)}
    assert rows["SecurityGateway"]["status"] == "ok"


def test_sg42_plaintext_by_default(keel_factory):
    """SG-42: without SECURE_ZMQ the socket is plaintext (legacy clients work)."""
    k = keel_factory("security", config=FAST, env={"SECURE_ZMQ": "0"})
    assert Client(k.zmq("security"))({"action": "health_check"})["status"] == "ok"


def test_sg44_world_readable_secret_refused(tmp_path):
    """SG-44: a secret key readable by others stops the service from starting;
    no key material ships in the build (keys exist only once generated)."""
    d = certs(tmp_path)
    os.chmod(os.path.join(d, "server.key_secret"), 0o644)
    k = Keel("security", FAST, {"SECURE_ZMQ": "1", "ZMQ_CERTIFICATES_DIR": d})
    try:
        with pytest.raises(RuntimeError):
            k.start(timeout=5)
        assert k.proc.returncode == 2
        assert "readable by group or others" in k.log_tail()
    finally:
        k.cleanup()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shipped = subprocess.run(["git", "-C", root, "ls-files", "*.key_secret", "*.key"],
                             capture_output=True, text=True).stdout
    assert shipped.strip() == ""


def test_missing_keys_refused(tmp_path):
    """SECURE_ZMQ=1 without keys: the service refuses to start in plaintext."""
    k = Keel("security", FAST, {"SECURE_ZMQ": "1", "ZMQ_CERTIFICATES_DIR": str(tmp_path / "none")})
    try:
        with pytest.raises(RuntimeError):
            k.start(timeout=5)
        assert "keelctl certs generate" in k.log_tail()
    finally:
        k.cleanup()


class _Health(http.server.BaseHTTPRequestHandler):
    """An agent's HTTP health endpoint whose answer the test flips."""

    def do_GET(self):
        self.send_response(self.server.code)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args):
        pass


def test_status_pub_and_probes_are_curve(keel_factory, tmp_path):
    """The attack: under SECURE_ZMQ a plaintext SUB on the hub's status PUB
    (6584) received agent_status events.  Now it receives nothing while a
    CURVE client with the allowed keys receives them (the events come from
    an agent checked over HTTP, flipped between 200 and 503).  And with
    agent_curve (agents that speak CURVE) the hub's probe, a REQ client,
    reaches an agent that is a CURVE server, so that agent comes up at all."""
    d = certs(tmp_path)
    _, server_secret = zmq.auth.load_certificate(os.path.join(d, "server.key_secret"))
    agent = StandInAgent("ok", curve_secret=server_secret)
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    web.code = 200
    threading.Thread(target=web.serve_forever, daemon=True).start()
    curve = keys(d, "client")
    ctx = zmq.Context.instance()
    plain, sealed = ctx.socket(zmq.SUB), ctx.socket(zmq.SUB)
    public, secret, server = curve
    sealed.curve_publickey, sealed.curve_secretkey, sealed.curve_serverkey = public, secret, server
    try:
        entries = [agent_entry("Sealed", agent),
                   {"name": "Web", "host": "127.0.0.1", "port": 1, "http_port": web.server_port,
                    "check": "http"}]
        cfg = hub_config(entries, flap={"failures": 1, "window": 1}, top={"agent_curve": True})
        hub = keel_factory("observability", config=cfg, extra_ports=(6584,),
                           env={"SECURE_ZMQ": "1", "ZMQ_CERTIFICATES_DIR": d})
        for s in (plain, sealed):
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SUBSCRIBE, b"")
            s.connect(hub.endpoint(6584))
        # Flip the web agent until the allowed subscriber has seen a change
        # (a subscription takes a moment to reach a PUB).
        seen, leaked = [], []
        deadline = time.time() + scaled(20)
        while not seen and time.time() < deadline:
            web.code = 503 if web.code == 200 else 200
            end = time.time() + scaled(2)
            while not seen and time.time() < end:
                if plain.poll(0):
                    leaked.append(plain.recv())
                if sealed.poll(100):
                    seen.append(json.loads(sealed.recv()))
        if plain.poll(int(scaled(500))):
            leaked.append(plain.recv())
        assert leaked == [], "a plaintext SUB received status events: %r" % leaked[:2]
        assert seen, "the CURVE subscriber received no agent_status event"
        assert seen[0]["type"] == "agent_status"

        hub_client = Client(hub.zmq("observability"), curve=curve)
        try:
            def state():
                return hub_client({"action": "get_agents_health"})["agents"]["Sealed"]["state"]
            deadline = time.time() + scaled(10)
            while state() != "up" and time.time() < deadline:
                time.sleep(0.05)
            assert state() == "up", "the hub's CURVE probe never reached the CURVE agent"
        finally:
            hub_client.close()
    finally:
        plain.close()
        sealed.close()
        web.shutdown()
        web.server_close()
        agent.stop()


def plain_request(endpoint, message, timeout_ms):
    """One request from a plaintext REQ, as a kept agent sends it; None when
    no answer comes."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    try:
        s.send_json(message)
        return s.recv_json() if s.poll(timeout_ms) else None
    finally:
        s.close()


def test_kept_agents_reach_their_ports_in_plaintext_under_curve(keel_factory, tmp_path):
    """The shipped two-machine configurations turn CURVE on, and the kept
    agents cannot speak it (their secure_zmq.py hands every socket back
    unchanged).  Under CURVE,
    Keel's own ports answer only CURVE clients, while the agents' old ports
    and the error bus still serve the agents as they are: a plaintext
    DISCOVER on 7120 (service_discovery_client) is answered, an
    ERROR:{json} published to 7150 (BaseAgent) is stored, and the hub's
    plaintext probe sees a plaintext agent up.  With agent_curve those
    ports want CURVE too."""
    d = certs(tmp_path)
    curve = keys(d, "client")
    agent = StandInAgent("ok")
    try:
        config = json.loads(hub_config([agent_entry("Plain", agent)]))
        config["legacy_ports"] = True
        k = keel_factory("all", config=json.dumps(config), env={"SECURE_ZMQ": "1", "ZMQ_CERTIFICATES_DIR": d})
        timeout = int(scaled(2000))
        discover = {"command": "DISCOVER", "payload": {"name": "SystemDigitalTwin"}}
        assert plain_request(k.endpoint(7120), discover, timeout)["status"] == "SUCCESS"
        assert plain_request(k.zmq("core"), {"action": "ping"}, int(scaled(500))) is None
        sealed = Client(k.zmq("core"), curve=curve)
        try:
            assert sealed({"action": "ping"})["status"] == "ok"
        finally:
            sealed.close()
        pub = zmq.Context.instance().socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.connect(k.endpoint(7150))
        hub = Client(k.zmq("observability"), curve=curve)
        bus = Client(k.zmq("errorbus"), curve=curve)
        try:
            deadline = time.time() + scaled(15)
            stored = False
            while not stored and time.time() < deadline:
                pub.send_string("ERROR:" + json.dumps({"agent": "PlainAgent", "error_type": "plain",
                                                        "message": "from a plaintext publisher"}))
                time.sleep(0.2)
                reply = bus({"action": "get_errors_by_agent", "data": {"agent": "PlainAgent"}})
                stored = bool(reply.get("data"))
            assert stored, "a plaintext agent's error never reached the store under CURVE"
            deadline = time.time() + scaled(10)
            while time.time() < deadline and hub({"action": "get_agents_health"})["agents"]["Plain"]["state"] != "up":
                time.sleep(0.05)
            assert hub({"action": "get_agents_health"})["agents"]["Plain"]["state"] == "up"
        finally:
            pub.close()
            hub.close()
            bus.close()
        k.stop()
        closed = keel_factory("core", config="legacy_ports: true\nagent_curve: true\n",
                              env={"SECURE_ZMQ": "1", "ZMQ_CERTIFICATES_DIR": d})
        assert plain_request(closed.endpoint(7120), discover, int(scaled(500))) is None
    finally:
        agent.stop()
