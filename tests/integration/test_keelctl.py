"""keelctl as operators expect it (issue 14, the keelctl half; issue 16,
finding 5).  Each test starts from what the issue reported:

- global options after the command were silently ignored;
- `--help` after a command ran the command (`reload --help` reloaded);
- `user add` wrote ./var/keel/security/security.db in the current directory,
  which the running SecurityGateway never saw; there was no --data-dir;
- `reload` ignored --port-offset and found keeld through one keeld.pid per
  data directory, which two keeld sharing it overwrite;
- `status` with everything down took 10 s (five 2 s timeouts in a row);
- `--json errors` printed JSON lines, or an empty line for none; `--json
  reload` printed text; `health`'s LAST CHECK showed the probe result;
  `agents` showed AGE 0.0s for Keel's own entries registered minutes ago;
- restarting an agent Keel does not supervise said "Unknown agent";
- `agents` and `errors` printed agents' escape sequences raw.

keelctl runs here with an environment stripped of PORT_OFFSET, KEEL_DATA_DIR,
KEEL_CONFIG and KEEL_TOKEN, so that only its command line says where to go."""
import json
import os
import re
import select
import signal
import subprocess
import time

import pytest

from conftest import KEELCTL, ROOT, command, free_offset, scaled
from errorbus_util import Publisher, stored
from observability_util import agent_entry, hub_config, wait_until
from security_helpers import FAST, admin_jwt, sec

CLEAN = ("PORT_OFFSET", "KEEL_DATA_DIR", "KEEL_CONFIG", "KEEL_TOKEN")
MAN_PAGE = os.path.join(ROOT, "man", "keelctl.1")
COMPLETION = os.path.join(ROOT, "deploy", "completion", "keelctl.bash")
TITLES = ["CoreOrchestrator", "ResourceManager", "ObservabilityHub", "ErrorBus", "SecurityGateway"]


def ctl(*args, env=None, input=None, cwd=None, timeout=30):
    clean = {k: v for k, v in os.environ.items() if k not in CLEAN}
    clean.update(env or {})
    return subprocess.run(command([KEELCTL] + [str(a) for a in args]), env=clean, input=input,
                          capture_output=True, text=True, timeout=scaled(timeout), cwd=cwd)


def at(k):
    return ("--port-offset", str(k.offset))


def login(k, user, password):
    reply = sec(k)({"action": "login", "user_id": user, "password": password})
    return reply.get("session", {}).get("token")


def valid(k, token):
    return sec(k)({"action": "validate_token", "token": token})["valid"]


@pytest.fixture
def gw(keel_factory):
    return keel_factory("security", config=FAST)


# ---- the command line ---------------------------------------------------------

def test_global_options_anywhere(keel):
    """`keelctl status --json --port-offset N` asks the services at N."""
    for args in (("status", "--json", "--port-offset", keel.offset),
                 ("status", "-j", "-p", keel.offset),
                 ("status", "--port-offset=%d" % keel.offset, "--json")):
        r = ctl(*args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        data = json.loads(r.stdout)
        assert [d["status"] for d in data] == ["ok"] * 5
        assert data[0]["port"] == keel.port(7000)
    r = ctl("errors", "--limit", "5", "--json", *at(keel))
    assert r.returncode == 0 and isinstance(json.loads(r.stdout), list)


def command_paths():
    """Every command and subcommand `keelctl --help` and each command's help list."""
    def listed(text, section):
        block = text.split(section, 1)[1].split("\n\n", 1)[0]
        return [line.split()[0] for line in block.splitlines()[1:] if line.startswith("  ")]

    top = ctl("--help")
    assert top.returncode == 0
    paths = []
    for name in listed(top.stdout, "\ncommands:"):
        paths.append((name,))
        sub = ctl(name, "--help").stdout
        if "\ncommands (" in sub:
            paths += [(name, s) for s in listed(sub, "\ncommands (")]
    return paths


def test_help_on_every_command_prints_usage_and_does_nothing(keel):
    """--help (or -h) anywhere after a command prints that command's usage on
    stdout, exits 0 and runs nothing: no reload, no user, no follow."""
    paths = command_paths()
    for must in [("status",), ("reload",), ("errors",), ("errors", "groups"), ("migrate",),
                 ("migrate", "config"), ("user", "add"), ("agent", "restart"), ("certs", "generate")]:
        assert must in paths
    for path in paths:
        for flag in ("--help", "-h"):
            r = ctl(*path, flag, *at(keel))
            assert r.returncode == 0, (path, r.stderr)
            assert r.stdout.startswith("usage: keelctl " + " ".join(path)), (path, r.stdout)
            assert r.stderr == ""
    # With everything a real run needs on the line, still nothing happens.
    token = admin_jwt(keel.data_dir)
    assert ctl("reload", "--token", token, "--help", *at(keel)).returncode == 0
    r = ctl("user", "add", "ghost", "--admin", "--password-stdin", "--help", *at(keel), input="pw\n")
    assert r.returncode == 0
    started = time.time()
    assert ctl("errors", "--follow", "--help", *at(keel), timeout=10).returncode == 0
    assert time.time() - started < scaled(5)
    assert "reloaded" not in keel.log_tail(500)
    assert login(keel, "ghost", "pw") is None


def test_usage_errors_exit_2(keel):
    cases = [(("status", "--bogus"), "unknown option --bogus"),
             (("user", "add"), "user add: missing NAME"),
             (("migrate",), "which command"),
             (("errors", "--limit"), "missing the argument of --limit"),
             (("errors", "--limit", "0"), "--limit takes a number"),
             (("frobnicate",), "unknown command 'frobnicate'"),
             (("reload", "nosuch"), "unknown service 'nosuch'"),
             (("status", "extra"), "unexpected argument 'extra'"),
             (("status", "--timeout", "soon"), "--timeout takes milliseconds")]
    for args, words in cases:
        r = ctl(*at(keel), *args)
        assert r.returncode == 2, (args, r.stderr)
        assert words in r.stderr, (args, r.stderr)
    assert ctl("--version").stdout.strip() == "keelctl 0.1.0"


# ---- users ---------------------------------------------------------------------

def test_user_add_reaches_the_running_service(gw, tmp_path):
    """The issue's steps: from an empty directory, `keelctl --port-offset N user
    add admin --admin --password-stdin`.  The running SecurityGateway knows the
    user at once (login works) and nothing is written in the directory."""
    r = ctl("--port-offset", gw.offset, "user", "add", "admin", "--admin", "--password-stdin",
            input="s3cret\n", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "User admin added (administrator)"
    assert login(gw, "admin", "s3cret") is not None
    assert os.listdir(str(tmp_path)) == []


def test_first_administrator_and_tokens(gw):
    """Without a token only the first administrator, and only while none
    exists; then --user (password on stdin), KEEL_TOKEN or --token.  A login
    made by --user is ended when keelctl exits."""
    r = ctl("user", "add", "plain", "--password-stdin", *at(gw), input="pw\n")
    assert r.returncode == 4 and "Forbidden: add_user" in r.stderr
    assert ctl("user", "add", "root", "--admin", "--password-stdin", *at(gw), input="rootpw\n").returncode == 0
    r = ctl("user", "add", "second", "--admin", "--password-stdin", *at(gw), input="pw2\n")
    assert r.returncode == 4 and "only the first administrator" in r.stderr
    r = ctl("--user", "root", "user", "add", "second", "--admin", "--password-stdin", *at(gw),
            input="rootpw\npw2\n")
    assert r.returncode == 0, r.stderr
    session = login(gw, "second", "pw2")
    assert ctl("user", "add", "third", "--password-stdin", *at(gw), env={"KEEL_TOKEN": session},
               input="pw3\n").returncode == 0
    jwt = sec(gw)({"action": "issue_token", "auth_token": session, "subject": "ops", "scopes": ["admin"]})["token"]
    r = ctl("--json", "user", "list", "--token", jwt, *at(gw))
    assert r.returncode == 0, r.stderr
    users = json.loads(r.stdout)
    assert [(u["user_id"], u["admin"]) for u in users] == [("root", True), ("second", True), ("third", False)]
    assert ctl("user", "list", "--token", "garbage", *at(gw)).returncode == 4
    r = ctl("--user", "root", "user", "list", *at(gw), input="wrong\n")
    assert r.returncode == 4 and "login as root refused" in r.stderr
    # Only the session this test opened is left: keelctl logged its own out.
    assert sec(gw)({"action": "health"})["active_sessions"] == 1


def test_passwd_and_delete_end_sessions(gw):
    ctl("user", "add", "root", "--admin", "--password-stdin", *at(gw), input="rootpw\n")
    ctl("--user", "root", "user", "add", "bob", "--password-stdin", *at(gw), input="rootpw\nold\n")
    token = login(gw, "bob", "old")
    r = ctl("--user", "root", "user", "passwd", "bob", "--password-stdin", *at(gw), input="rootpw\nnew\n")
    assert r.returncode == 0 and "1 session(s) ended" in r.stdout, r.stderr
    assert not valid(gw, token) and login(gw, "bob", "old") is None
    token = login(gw, "bob", "new")
    assert ctl("--user", "root", "user", "delete", "bob", *at(gw), input="rootpw\n").returncode == 0
    assert not valid(gw, token) and login(gw, "bob", "new") is None
    r = ctl("--user", "root", "user", "delete", "root", *at(gw), input="rootpw\n")
    assert r.returncode == 1 and "last administrator" in r.stderr


def test_data_dir_offline_only_while_stopped(keel_factory, tmp_path):
    """--data-dir DIR edits DIR's users before the first start (the service then
    knows them) and is refused while SecurityGateway runs there."""
    data = str(tmp_path / "keel")
    r = ctl("--data-dir", data, "user", "add", "root", "--admin", "--password-stdin", input="rootpw\n")
    assert r.returncode == 0, r.stderr
    k = keel_factory("security", config=FAST, data_dir=data)
    assert login(k, "root", "rootpw") is not None
    r = ctl("--data-dir", data, "user", "add", "late", "--password-stdin", input="pw\n")
    assert r.returncode == 1
    assert "SecurityGateway (pid %d) is running on %s" % (k.proc.pid, data) in r.stderr
    assert login(k, "late", "pw") is None
    k.stop()
    r = ctl("--data-dir", data, "user", "passwd", "root", "--password-stdin", input="fresh\n")
    assert r.returncode == 0, r.stderr
    users = json.loads(ctl("--json", "--data-dir", data, "user", "list").stdout)
    assert [u["user_id"] for u in users] == ["root"]
    k.start()
    assert login(k, "root", "fresh") is not None


# ---- reload and status ---------------------------------------------------------------

def test_reload_asks_each_service_on_its_port(keel_factory):
    """Two keeld sharing one data directory (one service each): reload reaches
    both at --port-offset, and still the other once one has stopped."""
    core = keel_factory("core")
    resource = keel_factory("resource", offset=core.offset, data_dir=core.data_dir)
    token = admin_jwt(core.data_dir)
    r = ctl("reload", "--json", *at(core))
    assert r.returncode == 4
    assert [x["result"] for x in json.loads(r.stdout)][:2] == ["refused", "refused"]
    assert "reloaded on request" not in core.log_tail(500)
    r = ctl("reload", "--json", "--token", token, *at(core))
    assert r.returncode == 0, r.stderr
    results = {x["service"]: x["result"] for x in json.loads(r.stdout)}
    assert results == {"CoreOrchestrator": "reloaded", "ResourceManager": "reloaded",
                       "ObservabilityHub": "down", "ErrorBus": "down", "SecurityGateway": "down"}
    resource.stop()
    r = ctl("reload", "--token", token, *at(core))
    assert r.returncode == 0, r.stderr
    assert re.search(r"CoreOrchestrator\s+%d\s+reloaded" % core.port(7000), r.stdout)
    assert re.search(r"ResourceManager\s+%d\s+down" % core.port(7001), r.stdout)
    assert "CoreOrchestrator: configuration reloaded on request" in core.log_tail(500)
    r = ctl("reload", "resource", "--token", token, *at(core))
    assert r.returncode == 3 and "no service answered" in r.stderr


def test_status_everything_down_within_one_deadline():
    offset = free_offset()
    started = time.time()
    r = ctl("status", "--port-offset", offset)
    elapsed = time.time() - started
    assert r.returncode == 1
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert [(row[0], row[1]) for row in rows] == [(t, "down") for t in TITLES]
    assert elapsed < scaled(1.5), elapsed
    data = json.loads(ctl("status", "--json", "--port-offset", offset).stdout)
    assert [(d["status"], d["pid"]) for d in data] == [("down", None)] * 5


# ---- output ------------------------------------------------------------------------

def test_json_is_one_document_for_every_command(keel):
    token = admin_jwt(keel.data_dir)
    for args in (("errors",), ("errors", "groups"), ("health",), ("agents",), ("status",),
                 ("reload", "--token", token), ("user", "list", "--token", token)):
        r = ctl("--json", *args, *at(keel))
        assert r.returncode == 0, (args, r.stderr)
        assert isinstance(json.loads(r.stdout), list), (args, r.stdout)
    # nothing to show is an empty list (the hub's own alerts may fire on a busy host)
    assert json.loads(ctl("--json", "errors", "--agent", "NobodyReportedThis", *at(keel)).stdout) == []
    assert isinstance(json.loads(ctl("--json", "resources", *at(keel)).stdout), dict)
    # Following: one array, written as events come and closed when keelctl is
    # stopped.  An event's line ends when the next one comes, so events are
    # published until the followed one's line is complete.
    pub = Publisher(keel)
    pub.join()
    follow = subprocess.Popen(command([KEELCTL, "--json", "errors", "--follow", *at(keel)]),
                              stdout=subprocess.PIPE,
                              env={k: v for k, v in os.environ.items() if k not in CLEAN})
    text = b""

    def read_until(pred, publish=None):
        nonlocal text
        deadline = time.time() + scaled(10)
        while not pred(text) and time.time() < deadline:
            if publish:
                pub.f1(publish)
            if select.select([follow.stdout], [], [], 0.5)[0]:
                text += os.read(follow.stdout.fileno(), 65536)

    try:
        read_until(lambda t: t.startswith(b"[\n"))
        pub.f1({"agent": "Followed", "message": "after the start"})
        read_until(lambda t: re.search(rb'"Followed"[^\n]*\n', t),
                   {"agent": "Later", "message": "pushes the previous line out"})
    finally:
        follow.send_signal(signal.SIGINT)
        rest, _ = follow.communicate(timeout=scaled(10))
    assert follow.returncode == 0
    events = json.loads(text + rest)
    assert "Followed" in [e["agent"] for e in events]


def test_health_last_check_is_a_time(keel_factory):
    hub = keel_factory("observability", config=hub_config([agent_entry("Gone", None)]))
    wait_until(lambda: hub.request("observability", {"action": "get_agents_health"})
               ["agents"]["Gone"].get("last_checked"))
    r = hub.keelctl("health")
    header, row = r.stdout.splitlines()[:2]
    assert header.split() == ["AGENT", "MACHINE", "STATE", "PROBE", "LAST", "CHECK", "LATENCY",
                              "FAILURE", "P", "TIER", "REASON"]
    when = re.search(r"\s(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s", row)
    assert when, row
    checked = time.mktime(time.strptime(when.group(1), "%Y-%m-%d %H:%M:%S"))
    assert abs(checked - time.time()) < scaled(60)
    assert row.split()[3] != when.group(1).split()[0]       # PROBE holds the result, not the time


def test_agents_age_of_keel_entries_is_true(keel_factory):
    """Keel's own registry entries (CoreOrchestrator and the agents it absorbed)
    age from their last heartbeat, as LAST_HEARTBEAT says, not 0.0s forever."""
    core = keel_factory("core")

    def aged():
        agents = json.loads(core.keelctl("--json", "agents").stdout)
        own = [a for a in agents if a["agent_id"] == "CoreOrchestrator"][0]
        return own if own["heartbeat_age_s"] >= 1.5 else None

    assert wait_until(aged, timeout=10)
    r = core.keelctl("agents")
    header = r.stdout.splitlines()[0]
    assert header.split()[-3:] == ["LAST_HEARTBEAT", "SINCE_HEARTBEAT", "REASON"]
    own = [line for line in r.stdout.splitlines() if line.startswith("CoreOrchestrator ")][0]
    since = own[header.index("SINCE_HEARTBEAT"):header.index("REASON")].strip()
    state = own[header.index("STATE"):header.index("LAST_HEARTBEAT")].strip()
    assert since != "0.0s" and state == "up"


def test_restart_of_an_unsupervised_agent_says_so(keel_factory):
    core = keel_factory("core")
    assert core.request("core", {"action": "register_agent", "agent_id": "Walker", "agent_type": "t",
                                 "host": "127.0.0.1", "port": 4321})["status"] == "success"
    core.admin_token()      # writes the key file keelctl signs its own token with
    r = core.keelctl("agent", "restart", "Walker")
    assert r.returncode == 1
    assert "Agent Walker is not supervised by Keel" in r.stderr and "Unknown agent" not in r.stderr


def test_agent_supplied_text_is_escaped(keel):
    """Issue 16 (5): escape sequences, C1 controls and bidirectional overrides
    that agents put in their names and messages are shown, never obeyed."""
    evil = "Evil\x1b[2J\x1b]0;pwned\x07\u202eX"
    assert keel.request("core", {"action": "register_agent", "agent_id": evil, "agent_type": "t",
                                 "host": "127.0.0.1", "port": 4321})["status"] == "success"
    pub = Publisher(keel)
    pub.join()
    pub.f1({"agent": "Bad\x1b[31m", "message": "line1\nline2\x1b[0m\u009b"})
    stored(keel, "Bad\x1b[31m", 1)
    raw = ("\x1b", "\x07", "\u202e", "\u009b")
    r = keel.keelctl("agents")
    assert r.returncode == 0 and not any(c in r.stdout for c in raw)
    assert "Evil\\x1b[2J\\x1b]0;pwned\\x07\\u{202e}X" in r.stdout
    r = keel.keelctl("errors")
    assert r.returncode == 0 and not any(c in r.stdout for c in raw)
    assert "Bad\\x1b[31m" in r.stdout and "line1\\nline2\\x1b[0m\\u{009b}" in r.stdout
    r = keel.keelctl("agent", "restart", "Gh\x1b[31most")
    assert r.returncode == 1 and "\x1b" not in r.stderr and "Gh\\x1b[31most" in r.stderr
    r = keel.keelctl("--json", "agents")
    assert r.stdout.isascii()
    assert evil in [a["agent_id"] for a in json.loads(r.stdout)]


# ---- documentation ---------------------------------------------------------------

def test_man_page_and_completion_cover_every_command_and_option():
    """keelctl(1) documents every command, option and exit code; the bash
    completion offers every command and option.  Both drift when a command
    table changes, and this test says so."""
    with open(MAN_PAGE) as f:
        man = f.read().replace("\\-", "-")
    with open(COMPLETION) as f:
        completion = f.read()
    options = set(re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", ctl("--help").stdout, re.M))
    for path in command_paths():
        assert " ".join(path) in man, path
        assert path[-1] in completion, path
        options |= set(re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", ctl(*path, "--help").stdout, re.M))
    assert len(options) > 20
    for option in options:
        assert option in man, option
        assert option in completion, option
    for code in range(5):
        assert re.search(r"^\.TP\n\.B %d\n" % code, man, re.M), code
