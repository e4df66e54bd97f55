"""SecurityGateway, AuthenticationAgent part (checklist SG-1 ... SG-25,
SG-47, SG-48, SG-50): the wire replies
pinned by the original, the deliberate changes (one generic login failure,
lockout, closed registration), durability of sessions across kill -9, and
bad input of every kind."""
import datetime
import hashlib
import os
import re
import threading
import time

import pytest

from conftest import http_request
from security_helpers import FAST, Client, add_admin, config, db, register_login, sec


@pytest.fixture
def gw(keel_factory):
    return keel_factory("security", config=FAST)


def test_sg1_sg48_actions_routed_and_envelope_keys_ignored(gw):
    """SG-1, SG-48: every action is routed on port 7005 (+offset); BaseAgent's
    envelope keys are accepted."""
    c = sec(gw)
    envelope = {"source_agent": "X", "request_id": "r-1", "timestamp": "2025-07-16T10:00:00"}
    r = c(dict(envelope, action="register", user_id="u1", password="pw"))
    assert r == {"status": "success", "message": "User registered successfully"}
    for action in ("login", "logout", "validate_token", "log_performance", "get_trust_score",
                   "get_performance_history", "health_check"):
        r = c(dict(envelope, action=action))
        assert "Unknown action" not in r.get("message", ""), (action, r)


def test_sg2_sg3_sg4_register(gw):
    """SG-2, SG-3, SG-4: missing/empty fields, duplicates, success."""
    c = sec(gw)
    missing = {"status": "error", "message": "Missing user_id or password"}
    assert c({"action": "register", "user_id": "a"}) == missing
    assert c({"action": "register", "password": "p"}) == missing
    assert c({"action": "register", "user_id": "", "password": "p"}) == missing
    assert c({"action": "register", "user_id": "a", "password": ""}) == missing
    assert c({"action": "register", "user_id": "a", "password": "p"}) == \
        {"status": "success", "message": "User registered successfully"}
    assert c({"action": "register", "user_id": "a", "password": "q"}) == \
        {"status": "error", "message": "User already exists"}


def test_registration_closed_by_default(keel_factory):
    """DESIGN decision: registration is closed unless security.allow_registration."""
    k = keel_factory("security", config="security: {argon2: {opslimit: 1, memlimit_kib: 8}}\n")
    r = sec(k)({"action": "register", "user_id": "a", "password": "p"})
    assert r == {"status": "error", "message": "Registration is disabled"}


def test_sg5_sg6_sg7_one_generic_login_failure(gw):
    """SG-5; SG-6 and SG-7 changed on purpose: unknown user and wrong password
    get the same message, so the reply never tells which names exist."""
    c = sec(gw)
    assert c({"action": "login", "user_id": "a"}) == \
        {"status": "error", "message": "Missing user_id or password"}
    register_login(c, "alice", "pw")
    unknown = c({"action": "login", "user_id": "nobody", "password": "pw"})
    wrong = c({"action": "login", "user_id": "alice", "password": "nope"})
    assert unknown == wrong == {"status": "error", "message": "Invalid user_id or password"}


def test_sg8_sg9_sg10_login_reply_and_token_shape(keel_factory):
    """SG-8, SG-9, SG-10: reply shape, 64 lowercase hex tokens all distinct over
    1000 logins, expires_at = login + 86400 s in local ISO form."""
    k = keel_factory("security", config=config("  max_sessions_per_user: 2000\n"))
    c = sec(k)
    register_login(c, "bob", "pw")
    tokens = set()
    for _ in range(1000):
        before = time.time()
        r = c({"action": "login", "user_id": "bob", "password": "pw"})
        assert r["status"] == "success" and r["message"] == "Login successful"
        assert set(r["session"]) == {"token", "expires_at"}
        token = r["session"]["token"]
        assert re.fullmatch(r"[0-9a-f]{64}", token)
        tokens.add(token)
    assert len(tokens) == 1000
    expires = datetime.datetime.fromisoformat(r["session"]["expires_at"])
    assert expires.tzinfo is None
    assert abs(expires.timestamp() - (before + 86400)) < 2


# Proves SG-14, SG-15 (docs/logic-preservation.md).
def test_sg11_sg12_sg13_sg14_sg15_validate(gw):
    """SG-11 (absolute expiry), SG-12 (independent sessions), SG-13..15."""
    c = sec(gw)
    register_login(c, "carol", "pw")
    r1 = c({"action": "login", "user_id": "carol", "password": "pw"})["session"]
    r2 = c({"action": "login", "user_id": "carol", "password": "pw"})["session"]
    assert r1["token"] != r2["token"]
    for _ in range(3):
        assert c({"action": "validate_token", "token": r1["token"]}) == {"status": "success", "valid": True}
        assert c({"action": "validate_token", "token": r2["token"]}) == {"status": "success", "valid": True}
    row = db(gw).execute("SELECT expires_at - created_at FROM sessions").fetchall()
    assert all(abs(x[0] - 86400) < 1e-3 for x in row)      # validations never extended it
    assert c({"action": "validate_token"}) == {"status": "error", "message": "Missing token"}
    assert c({"action": "validate_token", "token": "0" * 64}) == {"status": "success", "valid": False}


def test_sg16_sg17_sg18_expiry_logout_sweep(keel_factory):
    """SG-16: an expired token validates false and is deleted; SG-17 logout;
    SG-18 the sweep removes expired sessions (active_sessions falls)."""
    k = keel_factory("security", config=config("  session_ttl_s: 1\n  sweep_interval_s: 0.3\n"))
    c = sec(k)
    t = register_login(c, "dave", "pw")
    assert c({"action": "health_check"})["active_sessions"] == 1
    time.sleep(1.5)
    assert c({"action": "health_check"})["active_sessions"] == 0
    t2 = c({"action": "login", "user_id": "dave", "password": "pw"})["session"]["token"]
    time.sleep(1.2)
    assert c({"action": "validate_token", "token": t2}) == {"status": "success", "valid": False}
    assert c({"action": "logout", "token": t2}) == {"status": "error", "message": "Invalid token"}
    assert c({"action": "logout", "token": t}) == {"status": "error", "message": "Invalid token"}
    assert db(k).execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0


def test_sg17_logout(gw):
    """SG-17: missing, unknown, success, then the token is invalid."""
    c = sec(gw)
    t = register_login(c)
    assert c({"action": "logout"}) == {"status": "error", "message": "Missing token"}
    assert c({"action": "logout", "token": "f" * 64}) == {"status": "error", "message": "Invalid token"}
    assert c({"action": "logout", "token": t}) == {"status": "success", "message": "Logout successful"}
    assert c({"action": "validate_token", "token": t})["valid"] is False


def test_sg19_sg45_health(gw):
    """SG-19: health_check fields of both agents; SG-45: GET /health 200 ok."""
    from conftest import http_get
    import json
    c = sec(gw)
    register_login(c)
    h = c({"action": "health_check"})
    assert h["status"] == "ok" and h["agent_type"] == "authentication"
    assert h["active_sessions"] == 1 and h["registered_users"] == 1
    assert h["cleanup_thread_alive"] is True and h["uptime_seconds"] >= 0
    assert h["service"] == "AgentTrustScorer" and h["additional_info"] == {}
    status, body, _ = http_get(gw.http("security"))
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_sg20_sg21_sg22_bad_requests(gw):
    """SG-20 unknown action, SG-21 non-JSON (and the socket keeps serving),
    SG-22 non-string password."""
    c = sec(gw)
    assert c({"action": "frobnicate"}) == {"status": "error", "message": "Unknown action: frobnicate"}
    assert c({"user_id": "x"}) == {"status": "error", "message": "Unknown action: "}
    r = c(b"{not json")
    assert r["status"] == "error" and r["message"].startswith("Internal server error: ")
    r = c({"action": "register", "user_id": "x", "password": 123})
    assert r["status"] == "error" and "string" in r["message"]
    r = c({"action": "login", "user_id": ["x"], "password": {"a": 1}})
    assert r["status"] == "error"
    assert c({"action": "validate_token", "token": 12345}) == {"status": "success", "valid": False}
    assert c({"action": "health_check"})["status"] == "ok"


def test_sg50_oversized_inputs(gw):
    """SG-50: a request over 64 KiB is refused with a JSON error; long fields
    and tokens are refused without hashing them."""
    c = sec(gw)
    r = c({"action": "login", "user_id": "x", "password": "p" * 70000})
    assert r == {"status": "error", "error": "Request too large"}
    r = c({"action": "register", "user_id": "u" * 500, "password": "p"})
    assert r == {"status": "error", "message": "user_id is longer than 128 bytes"}
    r = c({"action": "login", "user_id": "x", "password": "p" * 5000})
    assert r == {"status": "error", "message": "password is longer than 1024 bytes"}
    assert c({"action": "validate_token", "token": "a" * 60000})["valid"] is False
    assert c({"action": "health_check"})["status"] == "ok"


@pytest.mark.parametrize("token", ["abc", "G" * 64, "A" * 64, "0" * 63, "0" * 65, "a.b.c", "..", "€" * 64,
                                   "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
def test_malformed_tokens_validate_false(gw, token):
    """Malformed tokens are a plain `valid: false`, never an error or a crash."""
    c = sec(gw)
    assert c({"action": "validate_token", "token": token}) == {"status": "success", "valid": False}


def test_sg23_argon2id_stored_and_legacy_sha256_rehashed(keel_factory):
    """SG-23: no plaintext stored, Argon2id with the configured parameters; a
    legacy unsalted SHA-256 hash is accepted once and replaced by Argon2id."""
    k = keel_factory("security", config="security: {allow_registration: true}\n")
    c = sec(k)
    c({"action": "register", "user_id": "eve", "password": "s3cret-pw"})
    (h,) = db(k).execute("SELECT password_hash FROM users WHERE user_id='eve'").fetchone()
    assert h.startswith("$argon2id$v=19$m=65536,t=3,p=1$") and "s3cret-pw" not in h
    legacy = hashlib.sha256(b"old-pw").hexdigest()
    add_admin(k, "root", "admin-pass")
    r = k.keelctl("--user", "root", "user", "add", "legacy", "--legacy-sha256",
                  input="admin-pass\n" + legacy + "\n")
    assert r.returncode == 0, r.stderr
    assert c({"action": "login", "user_id": "legacy", "password": "bad"})["status"] == "error"
    assert db(k).execute("SELECT password_hash FROM users WHERE user_id='legacy'").fetchone()[0] == legacy
    assert c({"action": "login", "user_id": "legacy", "password": "old-pw"})["status"] == "success"
    (h,) = db(k).execute("SELECT password_hash FROM users WHERE user_id='legacy'").fetchone()
    assert h.startswith("$argon2id$")
    assert c({"action": "login", "user_id": "legacy", "password": "old-pw"})["status"] == "success"


def test_sg24_no_token_or_password_in_logs(keel_factory):
    """SG-24: neither a token nor a password reaches a log file."""
    k = keel_factory("security", config=config("  session_ttl_s: 1\n  sweep_interval_s: 0.3\n"))
    c = sec(k)
    t = register_login(c, "frank", "Pa55-word-xyz")
    c({"action": "login", "user_id": "frank", "password": "Wrong-pass-xyz"})
    c({"action": "validate_token", "token": t})
    time.sleep(1.5)
    c({"action": "validate_token", "token": t})
    k.stop()
    text = open(k.stderr_path, "rb").read() + open(os.path.join(k.data_dir, "keel.log"), "rb").read()
    for secret in (t.encode(), t[:16].encode(), b"Pa55-word-xyz", b"Wrong-pass-xyz"):
        assert secret not in text


def test_sg25_thread_safe_under_load_and_sweep(keel_factory):
    """SG-25: logins, validations and logouts from 8 clients while the sweep
    runs every 100 ms: every reply is well-formed and the service stays up."""
    k = keel_factory("security", config=config("  session_ttl_s: 0.5\n  sweep_interval_s: 0.1\n"))
    register_login(sec(k), "gina", "pw")
    errors = []

    def worker():
        c = sec(k)
        try:
            for _ in range(40):
                r = c({"action": "login", "user_id": "gina", "password": "pw"})
                assert r["status"] == "success", r
                t = r["session"]["token"]
                assert c({"action": "validate_token", "token": t})["status"] == "success"
                c({"action": "logout", "token": t})
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert sec(k)({"action": "health_check"})["cleanup_thread_alive"] is True


# Proves SG-39 (docs/logic-preservation.md).
def test_sessions_and_users_survive_kill9(keel_factory):
    """Acknowledged registrations and logins survive kill -9 (durable commits)."""
    k = keel_factory("security", config=FAST)
    c = sec(k)
    t = register_login(c, "henry", "pw")
    c.close()
    k.kill9()
    k.start()
    c = sec(k)
    assert c({"action": "validate_token", "token": t}) == {"status": "success", "valid": True}
    assert c({"action": "login", "user_id": "henry", "password": "pw"})["status"] == "success"
    (n,) = db(k).execute("SELECT COUNT(*) FROM sessions WHERE token_hash = ?",
                         (hashlib.sha256(t.encode()).hexdigest(),)).fetchone()
    assert n == 1          # only the hash is stored
    assert db(k).execute("SELECT COUNT(*) FROM sessions WHERE token_hash = ?", (t,)).fetchone()[0] == 0


def test_password_reset_ends_sessions(keel_factory):
    """The attack: a password reset left the user's sessions valid, so whoever
    had stolen one kept it.  Now `keelctl user passwd` (SecurityGateway's
    set_password, an administrator's) ends every session of that user at once,
    on ZMQ and as an HTTP bearer, and they stay ended after a restart; other
    users keep theirs, and the new password logs in."""
    k = keel_factory("security", config=FAST)
    c = sec(k)
    stolen = register_login(c, "jack", "old-pw")
    bystander = register_login(c, "kate", "pw")
    add_admin(k, "root", "admin-pw")
    admin = c({"action": "login", "user_id": "root", "password": "admin-pw"})["session"]["token"]
    status, _, _ = http_request(k.http("security", "/jwt/rotate"), "POST", b"",
                                {"Authorization": "Bearer " + admin})
    assert status == 200
    assert c({"action": "validate_token", "token": stolen})["valid"] is True

    r = k.keelctl("--token", admin, "user", "passwd", "jack", "--password-stdin", input="new-pw\n")
    assert r.returncode == 0, r.stderr
    r = k.keelctl("--token", admin, "user", "passwd", "root", "--password-stdin", input="admin-pw2\n")
    assert r.returncode == 0, r.stderr
    assert c({"action": "validate_token", "token": stolen})["valid"] is False
    status, _, _ = http_request(k.http("security", "/jwt/rotate"), "POST", b"",
                                {"Authorization": "Bearer " + admin})
    assert status == 403                # a token, but no longer an administrator's
    assert c({"action": "validate_token", "token": bystander})["valid"] is True
    assert c({"action": "login", "user_id": "jack", "password": "old-pw"})["status"] == "error"
    fresh = c({"action": "login", "user_id": "jack", "password": "new-pw"})["session"]["token"]
    assert c({"action": "validate_token", "token": fresh})["valid"] is True
    c.close()
    k.restart()
    c = sec(k)
    assert c({"action": "validate_token", "token": stolen})["valid"] is False
    assert c({"action": "validate_token", "token": fresh})["valid"] is True


def test_session_limit_per_user(keel_factory):
    """At most security.max_sessions_per_user sessions: the oldest go first."""
    k = keel_factory("security", config=config("  max_sessions_per_user: 3\n"))
    c = sec(k)
    first = register_login(c, "ivy", "pw")
    later = [c({"action": "login", "user_id": "ivy", "password": "pw"})["session"]["token"] for _ in range(3)]
    assert c({"action": "validate_token", "token": first})["valid"] is False
    assert all(c({"action": "validate_token", "token": t})["valid"] for t in later)


LOCKED = "Account temporarily locked after repeated failed logins; try again later"


def test_sg47_brute_force_lockout(keel_factory):
    """SG-47 and DESIGN's lockout: the 5th failure within the window locks; while
    locked even the right password gets the locked answer, which does not
    extend the lock; the lock expires; the next lock lasts longer; the
    success reply keeps its shape."""
    k = keel_factory("security", config=FAST.replace("base_lock_s: 60", "base_lock_s: 1"))
    c = sec(k)
    register_login(c, "jack", "pw")
    for i in range(5):
        r = c({"action": "login", "user_id": "jack", "password": "guess%d" % i})
        assert r == {"status": "error", "message": "Invalid user_id or password"}, (i, r)
    r = c({"action": "login", "user_id": "jack", "password": "pw"})
    assert r["status"] == "error" and r["message"] == LOCKED and r["retry_after_s"] == 1
    (until,) = db(k).execute("SELECT locked_until FROM lockouts WHERE kind='user' AND key='jack'").fetchone()
    for _ in range(3):
        assert c({"action": "login", "user_id": "jack", "password": "x"})["message"] == LOCKED
    assert db(k).execute("SELECT locked_until FROM lockouts WHERE kind='user' AND key='jack'").fetchone()[0] == until
    time.sleep(1.2)
    r = c({"action": "login", "user_id": "jack", "password": "pw"})
    assert r["status"] == "success" and set(r) == {"status", "message", "session"}
    for i in range(5):                  # lock again: level was reset by the success, so 1 s
        c({"action": "login", "user_id": "jack", "password": "bad"})
    assert c({"action": "login", "user_id": "jack", "password": "pw"})["retry_after_s"] == 1
    time.sleep(1.2)
    for i in range(5):                  # the next lock in a row doubles: 2 s
        c({"action": "login", "user_id": "jack", "password": "bad"})
    r = c({"action": "login", "user_id": "jack", "password": "pw"})
    assert r["message"] == LOCKED and r["retry_after_s"] == 2


def test_lockout_unknown_user_same_answer_and_persisted(keel_factory):
    """Unknown users are counted and locked like known ones (same answer), and
    a lock survives kill -9."""
    k = keel_factory("security", config=FAST)
    c = sec(k)
    for _ in range(5):
        assert c({"action": "login", "user_id": "ghost", "password": "x"})["message"] == \
            "Invalid user_id or password"
    assert c({"action": "login", "user_id": "ghost", "password": "x"})["message"] == LOCKED
    c.close()
    k.kill9()
    k.start()
    assert sec(k)({"action": "login", "user_id": "ghost", "password": "x"})["message"] == LOCKED


def test_lockout_per_source(keel_factory):
    """A source (the client's address, not a claimed source_agent) spraying
    passwords over many users is locked after security.lockout.source_failures
    failures, for every user; another address is not."""
    k = keel_factory("security", config=FAST.replace("base_lock_s: 60", "base_lock_s: 60, source_failures: 6"))
    port = k.port(7005)
    evil = Client("tcp://127.0.0.2:0;127.0.0.1:%d" % port)
    good = Client("tcp://127.0.0.3:0;127.0.0.1:%d" % port)
    register_login(good, "kate", "pw")
    for i in range(6):
        r = evil({"action": "login", "user_id": "user%d" % i, "password": "x", "source_agent": "good"})
        assert r["message"] == "Invalid user_id or password"
    r = evil({"action": "login", "user_id": "kate", "password": "pw", "source_agent": "good"})
    assert r["message"] == LOCKED
    assert good({"action": "login", "user_id": "kate", "password": "pw", "source_agent": "evil"})["status"] == "success"
    evil.close()
    good.close()


def test_parallel_guesses_share_one_counter(keel_factory):
    """20 parallel wrong guesses cannot exceed the limit: exactly 5 are checked."""
    k = keel_factory("security", config=FAST)
    register_login(sec(k), "leo", "pw")
    replies = []

    def guess():
        c = sec(k)
        replies.append(c({"action": "login", "user_id": "leo", "password": "bad"}))
        c.close()

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    checked = [r for r in replies if r["message"] == "Invalid user_id or password"]
    assert len(checked) == 5 and len(replies) == 20


def test_keelctl_user_add_admin_while_running(gw):
    """`keelctl user add NAME --admin --password-stdin` makes the first
    administrator through the running service, which can use it at once."""
    add_admin(gw, "root", "admin-pass")
    c = sec(gw)
    r = c({"action": "login", "user_id": "root", "password": "admin-pass"})
    assert r["status"] == "success"
    a = c({"action": "authorize", "token": r["session"]["token"], "scope": "admin"})
    assert a == {"status": "success", "valid": True, "subject": "root", "admin": True}
    r = gw.keelctl("user", "add", "x", "--admin")
    assert r.returncode == 2
