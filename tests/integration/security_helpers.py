"""Shared helpers for the SecurityGateway integration tests: a configuration
with cheap Argon2id parameters (so a test can log in hundreds of times), and
a REQ client that keeps one socket, as a long-lived agent does."""
import json
import os
import sqlite3
import socket

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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
