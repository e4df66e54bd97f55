"""The systemd units (issue 18): Type=notify with a watchdog, run as the keel
user the package creates, and a sandbox that `systemd-analyze security
--offline` rates 2.0 or better (both were 8.8 EXPOSED).  No running systemd is
needed: --offline reads the unit files alone."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

ANALYZE = shutil.which("systemd-analyze")
UNITS = ["keel-all.service", "keel@.service"]


def unit_text(name):
    with open(os.path.join(ROOT, "deploy", name)) as f:
        return f.read()


def settings(name):
    """{key: [values]} of the [Service] section."""
    section, out = None, {}
    for line in unit_text(name).splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is missing")
@pytest.mark.parametrize("name", UNITS)
def test_security_rating_is_two_or_better(name, tmp_path):
    shutil.copy(os.path.join(ROOT, "deploy", name), tmp_path / name)
    out = subprocess.run([ANALYZE, "security", "--offline=true", "--threshold=20", name],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d)", out.stdout)
    assert score, out.stdout + out.stderr
    assert float(score.group(1)) <= 2.0, out.stdout
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", UNITS)
def test_notify_watchdog_user_and_paths(name):
    s = settings(name)
    assert s["Type"] == ["notify"]
    assert s.get("NotifyAccess", ["main"]) == ["main"]  # children never speak for keeld
    assert int(s["WatchdogSec"][0]) >= 10
    assert s["User"] == ["keel"] and s["Group"] == ["keel"]
    which = "all" if name == "keel-all.service" else "%i"
    assert s["ExecStart"] == ["/usr/bin/keeld %s --config /etc/keel/keel.yaml" % which]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["StateDirectory"] == ["keel"] and s["LogsDirectory"] == ["keel"]
    assert s["WorkingDirectory"] == ["/var/lib/keel"]
    assert s["Restart"] == ["on-failure"]
