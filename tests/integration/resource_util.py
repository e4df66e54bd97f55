"""Helpers shared by the ResourceManager+Scheduler tests: a fake /proc tree
(so CPU and memory figures are exact and no test depends on how busy the CI
machine is), the fake NVML environment, and YAML for the service."""
import atexit
import json
import os
import shutil
import tempfile

from conftest import FAKE_NVML

TWO_GPUS = "NVIDIA GeForce RTX 4090:24564:2000:10,NVIDIA GeForce RTX 3060:12288:11000:90"


def fake_proc(mem_total_kb=16384000, mem_available_kb=12288000):
    """A /proc tree with a static, idle /proc/stat (CPU percent is 0.0 at
    every sample) and the memory figures given.  Returns its path."""
    root = tempfile.mkdtemp(prefix="keel-proc-")
    atexit.register(shutil.rmtree, root, True)
    os.makedirs(os.path.join(root, "net"))
    files = {
        "stat": "cpu  0 0 0 1000 0 0 0 0 0 0\ncpu0 0 0 0 1000 0 0 0 0 0 0\nbtime 1700000000\n",
        "meminfo": ("MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\n"
                    "SwapTotal:      0 kB\nSwapFree:       0 kB\n"
                    % (mem_total_kb, mem_available_kb, mem_available_kb)),
        "loadavg": "0.10 0.20 0.30 1/100 1234\n",
        "uptime": "1000.00 900.00\n",
        "net/dev": ("Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n"
                    "    lo: 1 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n"),
    }
    for name, text in files.items():
        with open(os.path.join(root, name), "w") as f:
            f.write(text)
    return root


def gpu_env(devices=TWO_GPUS, state_file=None):
    env = {"KEEL_NVML_LIB": FAKE_NVML, "FAKE_NVML_DEVICES": devices}
    if state_file:
        env["FAKE_NVML_STATE_FILE"] = state_file
    return env


def config(resource=None, top=None):
    """YAML (JSON is YAML) with a resource section and optional top-level keys."""
    doc = dict(top or {})
    doc["resource"] = resource or {}
    return json.dumps(doc)


def vram_section(mma, **kw):
    """A resource section whose loops run fast and talk to the fake MMA."""
    vram = {"monitor_interval": 3600, "idle_check_interval": 3600, "optimization_interval": 3600,
            "prediction_interval": 3600, "unload_pause": 0.05, "timeout_ms": 1000}
    vram.update(kw)
    return {"model_manager_endpoint": mma.endpoint, "vram": vram}
