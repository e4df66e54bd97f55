"""Keel for people who run Prometheus and Grafana already (issue 18): /metrics
follows the naming conventions (counters end in _total, base units, one family
per quantity, one meaning per label name) with keel_build_info and the standard
process_* series; the alerting rules pass `promtool check rules` and their
unit tests; every expression of the rules and of the Grafana dashboard names a
series that a running `keeld all` really exposes."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import FAKE_NVML, PORTS, ROOT, Keel, http_get, zmq_request

PROMTOOL = shutil.which("promtool")
RULES = os.path.join(ROOT, "deploy", "prometheus", "keel-rules.yml")
RULE_TESTS = os.path.join(ROOT, "tests", "prometheus", "keel-rules.test.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "keel.json")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus) is missing")


@pytest.fixture(scope="module")
def scraped():
    """/metrics of the five services of one `keeld all` that watches an agent,
    took a log_metric and sees two GPUs: {service: text}."""
    k = Keel("all", env={"KEEL_NVML_LIB": FAKE_NVML,
                         "FAKE_NVML_DEVICES": "RTX 4090:24564:12000:30,RTX 3060:12288:11500:90"})
    k.config_path = os.path.join(k.data_dir, "keel.yaml")
    with open(k.config_path, "w") as f:
        json.dump({"observability": {"interval_ms": 200, "discover": False, "agents": [
            {"name": "Itself", "host": "127.0.0.1", "port": k.port(7000)}]}}, f)
    try:
        k.start()
        zmq_request(k.zmq("observability"), {"action": "log_metric", "service": "tts",
                                              "metric_type": "response_time", "value": 0.25})
        texts = {}
        for name in PORTS:
            status, body, _ = http_get(k.http(name, "/metrics"))
            assert status == 200
            texts[name] = body.decode()
        yield texts
    finally:
        k.cleanup()


def families(text):
    """{family: type} from the # TYPE lines."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M)}


def samples(text):
    """[(name, {label: value}, value)] of every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        assert m, line
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def exposed(scraped):
    """Every series name a query may use: families, and histograms' _bucket/_sum/_count."""
    names = set()
    for text in scraped.values():
        for family, kind in families(text).items():
            names.add(family)
            if kind == "histogram":
                names |= {family + "_bucket", family + "_sum", family + "_count"}
    return names


# -- /metrics ----------------------------------------------------------------
@needs_promtool
def test_every_endpoint_passes_promtool(scraped):
    for name, text in scraped.items():
        out = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True)
        assert out.returncode == 0, (name, out.stdout + out.stderr)


def test_naming_conventions(scraped):
    for name, text in scraped.items():
        for family, kind in families(text).items():
            assert (kind == "counter") == family.endswith("_total"), (name, family, kind)
            assert not re.search(r"percent|_gb$|_mb$|_ms$|_kb$", family), (name, family)
            assert family.startswith(("keel_", "process_")), family
            assert re.search(r"^# HELP %s \S" % re.escape(family), text, re.M), family


def test_one_meaning_per_label_name(scraped):
    """`service` is always one of Keel's services (or a channel of one, like
    core_suggestion); `agent` always an agent, never a Keel service's label."""
    services = "|".join(PORTS)
    for text in scraped.values():
        for name, labels, _ in samples(text):
            if "service" in labels:
                assert re.fullmatch(r"(%s)(_[a-z]+)?" % services, labels["service"]), (name, labels)
            if "agent" in labels:
                assert name.startswith(("keel_agent_", "keel_perf_", "keel_core_agent_")), name
    hub = samples(scraped["observability"])
    assert ("keel_perf_response_time_seconds", {"agent": "tts"}, 0.25) in hub


def test_build_info_and_process_series_on_every_endpoint(scraped):
    with open(os.path.join(ROOT, "src", "common", "service.h")) as f:
        version = re.search(r'#define KEEL_VERSION "([^"]+)"', f.read()).group(1)
    for name, text in scraped.items():
        got = {n: (labels, v) for n, labels, v in samples(text)}
        assert got["keel_build_info"] == ({"version": version}, 1.0), name
        assert got["process_cpu_seconds_total"][1] > 0
        assert 1 << 20 < got["process_resident_memory_bytes"][1] < got["process_virtual_memory_bytes"][1]
        assert 3 < got["process_open_fds"][1] <= got["process_max_fds"][1]
        start = got["process_start_time_seconds"][1]
        assert time.time() - 600 < start <= time.time() + 1, start


def test_one_family_per_quantity_in_base_units(scraped):
    """The hub's host and GPU figures: ratios 0..1 and bytes, the GPU as a label
    (was keel_system_metric{metric="cpu_percent"|"memory_available_gb"|...})."""
    got = {}
    for name, labels, v in samples(scraped["observability"]):
        got.setdefault(name, {})[tuple(sorted(labels.items()))] = v
    assert "keel_system_metric" not in got
    for family in ("keel_host_cpu_usage_ratio", "keel_host_memory_usage_ratio",
                   "keel_host_disk_usage_ratio"):
        (v,) = got[family].values()
        assert 0 <= v <= 1, family
    (available,) = got["keel_host_memory_available_bytes"].values()
    assert available > 1 << 20
    vram = got["keel_gpu_memory_usage_ratio"]
    assert abs(vram[(("gpu", "0"),)] - 12000 / 24564) < 1e-3
    assert abs(vram[(("gpu", "1"),)] - 11500 / 12288) < 1e-3
    busy = got["keel_gpu_utilization_ratio"]
    assert set(busy) == {(("gpu", "0"),), (("gpu", "1"),)}
    assert abs(busy[(("gpu", "0"),)] - 0.30) < 1e-9 and abs(busy[(("gpu", "1"),)] - 0.90) < 1e-9
    assert got["keel_health_sweeps_total"][()] >= 1


# -- PromQL in the rules and the dashboard -----------------------------------
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless"}


def metric_names(expr):
    """The series names a PromQL expression reads."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("(") or m.group(0) in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def test_metric_name_extraction():
    assert metric_names('histogram_quantile(0.99, sum by (service, le) '
                        '(rate(keel_request_duration_seconds_bucket{instance=~"$instance"}'
                        '[$__rate_interval])))') == {"keel_request_duration_seconds_bucket"}
    assert metric_names('sum by (instance) (rate(a_total[5m])) / on(instance) b > 0.5') \
        == {"a_total", "b"}


def rule_expressions():
    import yaml
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


@needs_promtool
def test_rules_pass_promtool_check():
    out = subprocess.run([PROMTOOL, "check", "rules", RULES], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 8 rules found" in out.stdout


@needs_promtool
def test_rules_unit_tests():
    out = subprocess.run([PROMTOOL, "test", "rules", RULE_TESTS], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_cover_what_operators_page_for():
    alerts = dict(rule_expressions())
    assert {"KeelServiceDown", "KeelAgentDown", "KeelErrorReplies", "KeelVRAMPressure",
            "KeelLockouts"} <= set(alerts)


def test_rules_read_only_exposed_series(scraped):
    have = exposed(scraped) | {"up"}        # up: Prometheus's own, for a target it cannot scrape
    for alert, expr in rule_expressions():
        assert metric_names(expr) <= have, (alert, metric_names(expr) - have)


def test_dashboard_reads_only_exposed_series(scraped):
    with open(DASHBOARD) as f:
        dash = json.load(f)
    have = exposed(scraped)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"].replace("label_values(", "").split(",")[0]
              for v in dash["templating"]["list"] if v.get("definition")]
    assert len(exprs) > 30
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= have, (expr, names - have)
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
