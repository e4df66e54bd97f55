"""SecurityGateway service tokens (HS256 JWTs) and the administrator's check
every service makes: forged tokens (wrong key, alg none, tampered claims),
expired tokens, key rotation with two keys accepted, and the rule that
mutating HTTP routes need an administrator's bearer (401 without one, 403
with one that is not) while /health and /metrics stay open."""
import base64
import hashlib
import hmac
import json
import os
import time

import pytest

from conftest import http_get, http_request, scaled
from security_helpers import FAST, add_admin, sec


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header, claims, key):
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = b64(hmac.new(key, signing.encode(), hashlib.sha256).digest()) if key else ""
    return signing + "." + sig


@pytest.fixture
def gw(keel_factory):
    k = keel_factory("security", config=FAST)
    add_admin(k, "root", "admin-pass")
    c = sec(k)
    k.admin_session = c({"action": "login", "user_id": "root", "password": "admin-pass"})["session"]["token"]
    return k


def issue(k, subject="agent-7", scopes=("admin",), ttl=600):
    r = sec(k)({"action": "issue_token", "auth_token": k.admin_session, "subject": subject,
                "scopes": list(scopes), "ttl_s": ttl})
    assert r["status"] == "success", r
    return r["token"]


def rotate(k, bearer):
    status, body, _ = http_request(k.http("security", "/jwt/rotate"), "POST", b"",
                                   {"Authorization": "Bearer " + bearer})
    return status


# Proves SG-14 (docs/logic-preservation.md).
def test_jwt_issue_and_verify(gw):
    """A JWT carries iss, sub, exp, scopes and validates; authorize checks scope."""
    jwt = issue(gw)
    header, claims, _ = jwt.split(".")
    h = json.loads(base64.urlsafe_b64decode(header + "=="))
    c = json.loads(base64.urlsafe_b64decode(claims + "=="))
    assert h["alg"] == "HS256" and c["iss"] == "keel" and c["sub"] == "agent-7"
    assert c["scopes"] == ["admin"] and c["exp"] > time.time()
    s = sec(gw)
    assert s({"action": "validate_token", "token": jwt}) == {"status": "success", "valid": True}
    assert s({"action": "authorize", "token": jwt, "scope": "admin"})["valid"] is True
    reader = issue(gw, "agent-8", ("read",))
    assert s({"action": "authorize", "token": reader, "scope": "admin"})["valid"] is False


def test_jwt_as_libjwt_wrote_it_and_pyjwt_reads_it(gw):
    """A token is what libjwt wrote before Keel wrote its own: header alg,
    kid, typ and claims exp, iat, iss, scopes, sub, compact JSON with sorted
    keys, signed with the key file's first key; PyJWT, which the kept Python
    agents may use, decodes it with that key."""
    pyjwt = pytest.importorskip("jwt", reason="PyJWT (python3-jwt) is not installed")
    token = issue(gw, subject="agent-7", scopes=("admin", "read"), ttl=600)
    header, claims, _ = token.split(".")
    with open(os.path.join(gw.data_dir, "security", "jwt.keys")) as f:
        kid, secret = f.readline().strip().split(":")
    compact = {"separators": (",", ":"), "sort_keys": True, "ensure_ascii": False}
    assert base64.urlsafe_b64decode(header + "==").decode() == json.dumps(
        {"alg": "HS256", "kid": kid, "typ": "JWT"}, **compact)
    c = json.loads(base64.urlsafe_b64decode(claims + "=="))
    assert base64.urlsafe_b64decode(claims + "==").decode() == json.dumps(c, **compact)
    assert sorted(c) == ["exp", "iat", "iss", "scopes", "sub"]
    assert c["exp"] - c["iat"] == 600 and abs(c["iat"] - time.time()) < scaled(60)
    assert pyjwt.get_unverified_header(token) == {"alg": "HS256", "kid": kid, "typ": "JWT"}
    decoded = pyjwt.decode(token, bytes.fromhex(secret), algorithms=["HS256"], issuer="keel")
    assert decoded == c and decoded["sub"] == "agent-7" and decoded["scopes"] == ["admin", "read"]
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(token, os.urandom(32), algorithms=["HS256"])


def test_issue_token_needs_an_admin(gw):
    s = sec(gw)
    s({"action": "register", "user_id": "plain", "password": "pw"})
    user = s({"action": "login", "user_id": "plain", "password": "pw"})["session"]["token"]
    r = s({"action": "issue_token", "auth_token": user, "subject": "x", "scopes": ["admin"]})
    assert r == {"status": "error", "error": "Forbidden: issue_token needs an administrator's token"}
    r = s({"action": "issue_token", "subject": "x", "scopes": ["admin"]})
    assert r == {"status": "error", "error": "Forbidden: issue_token needs an administrator's token"}


def test_forged_jwts_refused(gw):
    """Wrong key, alg none, tampered claims, expired, other issuer: all invalid."""
    now = int(time.time())
    good_claims = {"iss": "keel", "sub": "x", "exp": now + 600, "scopes": ["admin"]}
    jwt = issue(gw)
    header, claims, sig = jwt.split(".")
    tampered = header + "." + b64(json.dumps(dict(good_claims, sub="mallory")).encode()) + "." + sig
    cases = {
        "wrong key": forge({"alg": "HS256", "typ": "JWT"}, good_claims, b"k" * 32),
        "alg none": forge({"alg": "none", "typ": "JWT"}, good_claims, None),
        "alg none upper": forge({"alg": "NONE"}, good_claims, None),
        "alg HS512": forge({"alg": "HS512"}, good_claims, b"k" * 32),
        "tampered": tampered,
        "truncated": jwt[:-5],
        "garbage": "a.b.c",
        "four parts": jwt + ".x",
    }
    s = sec(gw)
    for name, token in cases.items():
        assert s({"action": "validate_token", "token": token})["valid"] is False, name
        assert rotate(gw, token) == 403, name


def test_expired_jwt_refused(gw):
    ttl = int(scaled(1))    # long enough to validate it once, under valgrind too
    jwt = issue(gw, ttl=ttl)
    assert sec(gw)({"action": "validate_token", "token": jwt})["valid"] is True
    time.sleep(ttl + 1.1)
    assert sec(gw)({"action": "validate_token", "token": jwt})["valid"] is False
    assert rotate(gw, jwt) == 403


def test_http_mutating_route_needs_admin_bearer(gw):
    """No bearer: 401; a plain user's session, a reader JWT, an unknown
    session: 403; an admin session or admin JWT: 200.  /health and /metrics
    stay open."""
    s = sec(gw)
    s({"action": "register", "user_id": "plain", "password": "pw"})
    user = s({"action": "login", "user_id": "plain", "password": "pw"})["session"]["token"]
    status, _, _ = http_request(gw.http("security", "/jwt/rotate"), "POST", b"")
    assert status == 401
    assert rotate(gw, user) == 403
    assert rotate(gw, issue(gw, "r", ("read",))) == 403
    assert rotate(gw, "0" * 64) == 403
    assert rotate(gw, gw.admin_session) == 200
    assert rotate(gw, issue(gw)) == 200
    assert http_get(gw.http("security", "/health"))[0] == 200
    assert http_get(gw.http("security", "/metrics"))[0] == 200


def test_key_rotation_two_keys_accepted(gw):
    """After one rotation a token signed with the old key still verifies; after
    a second rotation it no longer does."""
    old = issue(gw)
    s = sec(gw)
    assert s({"action": "rotate_jwt_key", "auth_token": gw.admin_session})["status"] == "success"
    new = issue(gw)
    assert s({"action": "validate_token", "token": old})["valid"] is True
    assert s({"action": "validate_token", "token": new})["valid"] is True
    assert s({"action": "rotate_jwt_key", "auth_token": gw.admin_session})["status"] == "success"
    assert s({"action": "validate_token", "token": old})["valid"] is False
    assert s({"action": "validate_token", "token": new})["valid"] is True
    import os
    import stat
    mode = os.stat(os.path.join(gw.data_dir, "security", "jwt.keys")).st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_every_service_uses_the_authorizer(keel_factory):
    """In `keeld all`, another service's mutating route (ObservabilityHub's
    POST /add_alert_rule) refuses a missing (401) or forged (403) bearer and
    accepts an admin JWT and an admin session token (checked with
    SecurityGateway)."""
    k = keel_factory("all", config=FAST)
    add_admin(k, "root", "admin-pass")
    session = sec(k)({"action": "login", "user_id": "root", "password": "admin-pass"})["session"]["token"]
    jwt = sec(k)({"action": "issue_token", "auth_token": session, "subject": "ops",
                  "scopes": ["admin"]})["token"]
    url = k.http("observability", "/add_alert_rule")
    body = {"name": "r", "metric": "cpu", "threshold": 90}
    assert http_request(url, "POST", body)[0] == 401
    assert http_request(url, "POST", body, {"Authorization": "Bearer " + forge({"alg": "none"}, {}, None)})[0] == 403
    assert http_request(url, "POST", body, {"Authorization": "Bearer " + "0" * 64})[0] == 403
    assert http_request(url, "POST", body, {"Authorization": "Bearer " + jwt})[0] not in (401, 403)
    assert http_request(url, "POST", body, {"Authorization": "Bearer " + session})[0] not in (401, 403)
