"""Shared helpers for the SecurityGateway integration tests: a configuration
with cheap Argon2id parameters (so a test can log in hundreds of times), a
REQ client that keeps one socket, as a long-lived agent does, and an
administrator's JWT signed with a data directory's key file, for tests whose
keeld runs no SecurityGateway."""
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import time

import zmq

from conftest import scaled

FAST = """
security:
  allow_registration: true
  argon2: {opslimit: 1, memlimit_kib: 8}
  lockout: {failures: 5, window_s: 900, base_lock_s: 60}
"""


def config(extra="", base=FAST):
    return base + extra


class Client:
    """One REQ socket kept open (a long-lived agent); with `token`, every
    JSON object it sends carries it as `auth_token`."""

    def __init__(self, endpoint, timeout_ms=5000, curve=None, token=None):
        self.token = token
        self.sock = zmq.Context.instance().socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, int(scaled(timeout_ms)))
        self.sock.setsockopt(zmq.SNDTIMEO, int(scaled(timeout_ms)))
        if curve:
            public, secret, server = curve
            self.sock.curve_publickey = public
            self.sock.curve_secretkey = secret
            self.sock.curve_serverkey = server
        self.sock.connect(endpoint)

    def __call__(self, message):
        if self.token and isinstance(message, dict):
            message = dict(message, auth_token=self.token)
        self.sock.send(message if isinstance(message, (bytes, bytearray)) else json.dumps(message).encode())
        return json.loads(self.sock.recv())

    def close(self):
        self.sock.close()


def sec(k, admin=False):
    """A client of SecurityGateway; with `admin`, an administrator's (a JWT
    signed with the data directory's key file)."""
    return Client(k.zmq("security"), token=k.admin_token() if admin else None)


def db(k, name="security.db"):
    return sqlite3.connect(os.path.join(k.data_dir, "security", name))


def register_login(c, user="alice", password="correct horse"):
    assert c({"action": "register", "user_id": user, "password": password})["status"] == "success"
    reply = c({"action": "login", "user_id": user, "password": password})
    assert reply["status"] == "success", reply
    return reply["session"]["token"]


def add_admin(k, name="root", password="admin-pass"):
    r = k.keelctl("user", "add", name, "--admin", "--password-stdin", input=password + "\n")
    assert r.returncode == 0, r.stderr
    return password


def admin_jwt(data_dir, ttl_s=3600):
    """A JWT with scope admin that every service of `data_dir` accepts: signed
    with the first key of <data_dir>/security/jwt.keys, which is written (one
    fresh key, as token.c would) when no SecurityGateway made it."""
    path = os.path.join(data_dir, "security", "jwt.keys")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write("test:%s\n" % os.urandom(32).hex())
    with open(path) as f:
        kid, secret = f.readline().strip().split(":")

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    claims = b64(json.dumps({"iss": "keel", "sub": "tester", "iat": now, "exp": now + ttl_s,
                             "scopes": ["admin"]}).encode())
    signing = ("%s.%s" % (header, claims)).encode()
    sig = b64(hmac.new(bytes.fromhex(secret), signing, hashlib.sha256).digest())
    return "%s.%s.%s" % (header, claims, sig)
