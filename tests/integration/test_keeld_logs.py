"""keeld's logs as an operator meets them (issue 18): under journald every
stderr line carries its syslog priority and no second timestamp; the JSON log
goes where log_file says and is opened again on SIGHUP after logrotate moved
it; keeld --version names the version the package carries."""
import json
import os
import re
import signal
import subprocess
import time

from conftest import KEELD, ROOT, Keel, command, scaled


def wait_for_text(path, text, timeout=10):
    deadline = time.time() + scaled(timeout)
    while time.time() < deadline:
        if os.path.exists(path) and text in open(path, errors="replace").read():
            return True
        time.sleep(0.05)
    return False


def test_journal_stream_lines_carry_priorities_and_no_timestamp(keel_factory):
    k = Keel("errorbus")
    open(k.stderr_path, "ab").close()       # the file keeld's stderr will be
    st = os.stat(k.stderr_path)
    k.env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
    try:
        k.start()
        k.stop()
        lines = open(k.stderr_path).read().splitlines()
    finally:
        k.cleanup()
    assert "<6>[errorbus] ErrorBus ready (ZMQ %d, HTTP %d)" % (k.port(7003), k.port(8003)) in lines
    assert "<6>[keeld] Keel %s: 1 service(s) ready" % version() in lines
    assert all(re.match(r"<[3467]>\[[a-z_]+\] ", line) for line in lines), lines


def test_log_file_is_opened_again_on_sighup(keel_factory, tmp_path):
    log = tmp_path / "logs" / "keel.log"
    log.parent.mkdir()
    k = keel_factory("security", config="log_file: %s\n" % log)
    assert wait_for_text(str(log), "SecurityGateway ready")
    first = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"ts", "level", "component", "msg"} <= set(first[0])
    rotated = tmp_path / "logs" / "keel.log.1"
    os.rename(log, rotated)                 # what logrotate does before its postrotate
    k.proc.send_signal(signal.SIGHUP)
    assert wait_for_text(str(log), "configuration reloaded")
    assert "configuration reloaded" not in rotated.read_text()
    assert k.proc.poll() is None


def test_log_file_none_writes_no_file(keel_factory):
    k = keel_factory("security", config="log_file: none\n")
    k.stop()
    assert not os.path.exists(os.path.join(k.data_dir, "keel.log"))
    assert "SecurityGateway ready" in k.log_tail()


def version():
    with open(os.path.join(ROOT, "src", "common", "service.h")) as f:
        return re.search(r'#define KEEL_VERSION "([^"]+)"', f.read()).group(1)


def test_keeld_version():
    out = subprocess.run(command([KEELD, "--version"]), capture_output=True, text=True,
                         timeout=scaled(10))
    assert out.returncode == 0
    assert out.stdout == "keeld (Keel) %s\n" % version()
