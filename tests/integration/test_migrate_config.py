"""`keelctl migrate config`: the original startup configurations of both machines
(../shared/legacy) become Keel configurations in which no agent is an absorbed
one and no dependency points at an absorbed agent (issue 8, deliverable 7)."""
import json
import os
import subprocess

import pytest
import yaml

from conftest import KEELCTL, KEELD, ROOT, command, scaled

LEGACY = os.path.join(os.path.dirname(ROOT), "shared", "legacy")
FILES = ["mainpc_startup_config.pre_phase1.yaml", "mainpc_startup_config.yaml",
         "pc2_startup_config.pre_phase1.yaml", "pc2_startup_config.yaml"]
ABSORBED = {
    "ServiceRegistry": "CoreOrchestrator", "SystemDigitalTwin": "CoreOrchestrator",
    "RequestCoordinator": "CoreOrchestrator", "UnifiedSystemAgent": "CoreOrchestrator",
    "ResourceManager": "ResourceManager", "TaskScheduler": "ResourceManager",
    "AsyncProcessor": "ResourceManager", "VRAMOptimizerAgent": "ResourceManager",
    "PredictiveHealthMonitor": "ObservabilityHub", "PerformanceMonitor": "ObservabilityHub",
    "HealthMonitor": "ObservabilityHub", "PerformanceLoggerAgent": "ObservabilityHub",
    "SystemHealthManager": "ObservabilityHub", "AuthenticationAgent": "SecurityGateway",
    "AgentTrustScorer": "SecurityGateway",
}
SERVICES = {"CoreOrchestrator", "ResourceManager", "ObservabilityHub", "ErrorBus",
            "SecurityGateway"}


def legacy_agents(doc):
    """(name, spec) of every agent in either layout of the original files."""
    for group in (doc.get("agent_groups") or {}).values():
        for name, spec in (group or {}).items():
            yield name, spec
    for spec in doc.get("pc2_services") or []:
        yield spec["name"], spec


def translate(path, *extra):
    out = subprocess.run(command([KEELCTL] + list(extra) + ["migrate", "config", path]),
                         capture_output=True, text=True, timeout=scaled(30))
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(not os.path.isdir(LEGACY), reason="../shared/legacy is not beside the checkout")
@pytest.mark.parametrize("name", FILES)
def test_translation_keeps_every_agent_and_rewrites_dependencies(name):
    path = os.path.join(LEGACY, name)
    with open(path) as f:
        source = yaml.safe_load(f)
    keel = yaml.safe_load(translate(path))
    agents = {a["name"]: a for a in keel["core"]["agents"]}
    expected = {n: s for n, s in legacy_agents(source)
                if n not in ABSORBED and n not in SERVICES}
    assert set(agents) == set(expected)
    for agent_name, spec in expected.items():
        out = agents[agent_name]
        assert out["args"] == [spec["script_path"]]
        assert out["port"] == spec["port"]
        deps = out["depends_on"]
        assert not set(deps) & (set(ABSORBED) - SERVICES), (agent_name, deps)
        assert len(deps) == len(set(deps))
        for dep in spec.get("dependencies") or []:
            assert ABSORBED.get(dep, dep) in deps
    watched = {a["name"] for a in keel["observability"]["agents"]}
    assert watched == set(expected)


@pytest.mark.skipif(not os.path.isdir(LEGACY), reason="../shared/legacy is not beside the checkout")
def test_json_output_lists_the_absorbed_agents():
    doc = json.loads(translate(os.path.join(LEGACY, FILES[2]), "--json"))
    assert doc["absorbed"]["AuthenticationAgent"] == "SecurityGateway"
    assert doc["absorbed"]["PerformanceLoggerAgent"] == "ObservabilityHub"
    assert all(a["machine"] == "pc2" for a in doc["core"]["agents"])


def test_unreadable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent_groups: [unclosed\n")
    out = subprocess.run(command([KEELCTL, "migrate", "config", str(bad)]), capture_output=True,
                         text=True, timeout=scaled(30))
    assert out.returncode == 1
    assert "cannot read" in out.stderr


@pytest.mark.parametrize("name", ["mainpc.yaml", "pc2.yaml"])
def test_machine_configurations_are_valid(name):
    out = subprocess.run(command([KEELD, "all", "--check", "--config",
                                  os.path.join(ROOT, "config", name)]),
                         capture_output=True, text=True, timeout=scaled(30))
    assert out.returncode == 0, out.stderr
    assert "configuration OK" in out.stdout


@pytest.mark.skipif(not os.path.isdir(LEGACY), reason="../shared/legacy is not beside the checkout")
def test_translated_configuration_is_accepted_by_keeld(tmp_path):
    target = tmp_path / "agents.yaml"
    subprocess.run(command([KEELCTL, "migrate", "config", os.path.join(LEGACY, FILES[0]),
                            "--output", str(target)]), check=True, capture_output=True,
                   timeout=scaled(30))
    out = subprocess.run(command([KEELD, "all", "--check", "--config", str(target)]),
                         capture_output=True, text=True, timeout=scaled(30))
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(not os.path.isdir(LEGACY), reason="../shared/legacy is not beside the checkout")
def test_agents_on_keel_ports_are_reported():
    """PC2's VisionProcessingAgent listens on 7150, the ErrorBus ingress; MainPC's
    GoalManager on 7005/8005, SecurityGateway's ports."""
    pc2 = json.loads(translate(os.path.join(LEGACY, FILES[2]), "--json"))
    assert [c["agent"] for c in pc2["port_conflicts"]] == ["VisionProcessingAgent"]
    mainpc = json.loads(translate(os.path.join(LEGACY, FILES[0]), "--json"))
    assert [c["agent"] for c in mainpc["port_conflicts"]] == ["GoalManager"]
    assert "PORT CONFLICT: GoalManager" in translate(os.path.join(LEGACY, FILES[0]))
