#!/usr/bin/python3
"""Rebuilds fuzz/corpus/ from the tests' real messages: every literal JSON
request in tests/integration/*.py, the config files, pickles Python itself
writes (protocols 2 to 5) and the ErrorBus framings.  Deterministic, so a
re-run changes nothing unless the tests did.  Requests carry "root", the
fuzz targets' administrator's token (fuzz/service_harness.h), so they reach
the handlers behind every privilege.  Run from the repository root."""
import ast
import glob
import hashlib
import json
import os
import pickle
import shutil

OUT = "fuzz/corpus"
LIMIT = 16          # files per target: the corpus stays small


def save(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if len(os.listdir(d)) >= LIMIT:
        return
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def requests(pattern="test_*.py"):
    """Dict literals with a dialect key, in the order the tests send them."""
    seen = []
    for path in sorted(glob.glob("tests/integration/" + pattern)):
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Dict):
                continue
            try:
                value = ast.literal_eval(node)
            except ValueError:
                continue
            if any(k in value for k in ("action", "command", "type")) and value not in seen:
                seen.append(value)
    return seen


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    reqs = requests()
    by_action = {}
    for r in reqs:
        by_action.setdefault(str(r.get("action", r.get("command", r.get("type")))), r)
    for r in by_action.values():
        save("wire", json.dumps(dict(r, auth_token="root")))
    for raw in ("hello there", "{\"action\":", "\xff\xfe", "[1,2]", "{\"action\":\"ping\"}GARBAGE"):
        save("wire", raw)
    for r in list(by_action.values())[:10]:
        save("wirejson", json.dumps(r))
    for raw in ("{\"a\": [1, 2.5e-3, -0, true, null], \"b\\n\": \"\\u00e9\\t\"}",
                "[\"caf\u00e9\", 123456789012345678901, 1e400]", "{\"a\":1}x", " \"\\/\" "):
        save("wirejson", raw)
    for r in reqs:
        if r.get("action") == "register_agent" or "agent_id" in r:
            save("registry", json.dumps(r))
        if r.get("action") in ("report_error", "publish_error") or "error_type" in r:
            save("normalise", json.dumps(r))
        if "type" in r and "action" not in r:
            save("coordinator", json.dumps(r))
    for v in ("1.0", "0.85", "1e16", "1.5e-05", "-0.0", "null", "true", "\"gpu\"",
              "[1, \"a\", null]", "{\"a\": 1}", "12345678901234567"):
        save("pycompat", v)
    for svc in ("security", "core", "errorbus", "resource", "observability"):
        for r in requests("test_%s_*.py" % svc):
            save(svc, json.dumps(dict(r, auth_token="root")))
    for path in sorted(glob.glob("config/*.yaml")):
        save("config", open(path, "rb").read())
    save("config", "port_offset: 100\ndata_dir: /tmp/x\ncore:\n  ttl: 30\n")
    sample = {"type": "language", "text": "hallo", "confidence": 0.85, "final": True,
              "tokens": [1, 2, 3], "meta": None, "raw": b"\x00\x01", "pair": (1, "a"),
              "big": 2 ** 70, "neg": -5}
    for proto in (2, 3, 4, 5):
        save("pickle", pickle.dumps(sample, protocol=proto))
        save("pickle", pickle.dumps([1, 2.5, "x" * 300, {}], protocol=proto))
    frame = {"agent": "stt", "error_type": "Timeout", "message": "took 31.2s at 0xdeadbeef",
             "severity": "ErrorSeverity.WARNING", "details": {"host": "10.0.0.2"}}
    body = json.dumps(frame)
    save("normalise", "ERROR:" + body)
    save("normalise", "ERROR:\x1f" + body)
    save("normalise", "ERROR\x1f" + body)
    save("normalise", json.dumps({"source": "tts", "type": "oom", "context": {"a": 1},
                                  "severity": "high", "timestamp": "2025-07-16T10:00:00"}))
    save("jwt", "\x00eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
    save("jwt", "\x00" + "a" * 64)
    now = 1752660000
    save("jwt", "\x01" + json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}) + "\x1f"
         + json.dumps({"iss": "keel", "sub": "agent", "iat": now, "exp": 4102444800,
                       "scopes": ["admin"]}))
    save("jwt", "\x01" + json.dumps({"alg": "none"}) + "\x1f" + json.dumps({"sub": "x"}))
    # http: a steering byte (0: also sent to the server, pieces of one byte;
    # 0x41: parser only, pieces of nine), then a connection's bytes.
    for steer, raw in (
            ("\x00", "GET /echo?q=a+b%20c&flag HTTP/1.1\r\nHost: localhost:8002\r\n\r\n"),
            ("\x00", "POST /echo HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
                     "\r\n{\"a\": [1]}"),
            ("\x00", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     "Expect: 100-continue\r\n\r\n4;ext=1\r\nkeel\r\n0\r\nTrailer: t\r\n\r\n"),
            ("\x00", "GET /items/a%2Fb HTTP/1.1\r\nHost: x\r\n\r\nHEAD /echo HTTP/1.1\r\n"
                     "Host: x\r\n\r\nGET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            ("\x00", "POST /secret HTTP/1.1\r\nAuthorization: Bearer root\r\nContent-Length: 2\r\n"
                     "X-Folded: a\r\n b\r\n\r\n{}"),
            ("\x41", "\r\nGET / HTTP/1.0\nConnection: keep-alive\n\n"),
            ("\x41", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "1\r\nx\r\n0\r\n\r\n")):
        save("http", steer + raw)


if __name__ == "__main__":
    main()
