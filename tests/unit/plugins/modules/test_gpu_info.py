# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of sparkfleet.trtllm.gpu_info: the module runs in-process and executes a real (fake) nvidia-smi
program that prints the captured outputs of tests/unit/fixtures/nvidia-smi/<profile>/."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from ansible_collections.sparkfleet.trtllm.plugins.modules import gpu_info

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia-smi"

FAKE = """#!/bin/sh
# fake nvidia-smi for unit tests: prints captured outputs of {d}
d={d}
echo "$*" >> "$(dirname "$0")/calls.log"
if [ -f "$d/stdout.txt" ]; then cat "$d/stdout.txt"; exit $(cat "$d/rc"); fi
case "$1" in
  --query-gpu=*) cat "$d/query-gpu.csv" ;;
  --query-compute-apps=*) cat "$d/query-compute-apps.csv" ;;
  -L) cat "$d/L.txt" ;;
  -q) cat "$d/q-x.xml" ;;
  "") cat "$d/plain.txt" ;;
  *) echo "Invalid combination of input arguments."; exit 2 ;;
esac
"""


def fake_smi(tmp_path: Path, profile: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    path = folder / "nvidia-smi"
    path.write_text(FAKE.format(d=FIX / profile))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def run_module(module_runner):
    def _run(args: dict, check_mode: bool = False) -> tuple[int, dict]:
        run = module_runner(gpu_info.main, args, check_mode=check_mode)
        return run.rc, run.result

    return _run


def real_meminfo_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def test_gb10_through_nvidia_smi_in_check_mode(tmp_path, run_module):
    smi = fake_smi(tmp_path, "gb10")
    rc, out = run_module({"source": "nvidia_smi", "nvidia_smi_path": str(smi)}, check_mode=True)
    assert rc == 0, out
    assert out["changed"] is False
    facts = out["gpu_info"]
    assert facts["source"] == "nvidia-smi"
    assert facts["gpu_count"] == 1
    assert facts["unified_memory"] is True
    assert facts["driver_version"] == "580.95.05"
    assert facts["cuda_driver_version"] == "13.0"
    gpu = facts["gpus"][0]
    assert (gpu["name"], gpu["compute_capability"], gpu["architecture"]) == ("NVIDIA GB10", "12.1", "Blackwell")
    # GB10 memory comes from this machine's /proc/meminfo
    assert gpu["memory_total_bytes"] == real_meminfo_total() == facts["host_memory_total_bytes"]
    assert gpu["memory_source"] == "meminfo"
    calls = (smi.parent / "calls.log").read_text().splitlines()
    assert len(calls) == 2 and calls[1] == "-q -x"


def test_nvidia_smi_found_on_path(tmp_path, run_module, monkeypatch):
    smi = fake_smi(tmp_path, "gb10")
    monkeypatch.setenv("PATH", "%s:%s" % (smi.parent, os.environ["PATH"]))
    rc, out = run_module({})
    assert rc == 0, out
    assert out["gpu_info"]["gpus"][0]["uuid"] == "GPU-5f2a9c1e-7d43-4b8e-9a61-3c0d2e8f4b17"


@pytest.mark.parametrize("profile,kind,words", [
    ("no-driver", "no_driver", "couldn't communicate with the NVIDIA driver"),
    ("mismatch", "driver_mismatch", "Driver/library version mismatch"),
    ("no-devices", "no_gpu", "No devices were found"),
])
def test_failures_are_clear_and_distinct(tmp_path, run_module, profile, kind, words):
    smi = fake_smi(tmp_path, profile)
    rc, out = run_module({"nvidia_smi_path": str(smi)})
    assert rc == 1
    assert out["failed"] is True
    assert out["error"]["kind"] == kind
    assert words.lower() in (out["msg"] + out["error"]["detail"]).lower()
    assert out["error"]["hint"] and out["error"]["hint"] in out["msg"]
    assert "Traceback" not in json.dumps(out)


def test_missing_nvidia_smi_says_the_driver_is_not_installed(tmp_path, run_module, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    rc, out = run_module({"nvidia_smi_path": str(tmp_path / "nope" / "nvidia-smi"), "source": "nvidia_smi"})
    assert rc == 1
    assert out["error"]["kind"] == "no_driver"
    assert "not installed" in out["msg"]


def test_nvml_source_without_nvidia_ml_py_names_the_package(tmp_path, run_module, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    rc, out = run_module({"source": "nvml"})
    assert rc == 1
    assert "nvidia-ml-py" in out["msg"]


@pytest.mark.skipif(not (FIX / "h100" / "query-gpu.csv").exists(), reason="real H100 captures not recorded")
def test_h100_capture_through_the_module(tmp_path, run_module):
    # The capture holds extra columns (see query-gpu-header.csv); give the module only the ones it asks for.
    folder = tmp_path / "h100"
    folder.mkdir()
    for name in ("q-x.xml", "L.txt", "plain.txt", "query-compute-apps.csv"):
        (folder / name).write_text((FIX / "h100" / name).read_text())
    header = (FIX / "h100" / "query-gpu-header.csv").read_text().splitlines()[0]
    fields = [c.strip().split(" [")[0] for c in header.split(",")]
    row = dict(zip(fields, (c.strip() for c in (FIX / "h100" / "query-gpu.csv").read_text().splitlines()[0].split(","))))
    wanted = gpu_info.__dict__.get("QUERY_FIELDS") or __import__(
        "ansible_collections.sparkfleet.trtllm.plugins.module_utils._nvidia", fromlist=["QUERY_FIELDS"]).QUERY_FIELDS
    (folder / "query-gpu.csv").write_text(", ".join(row[f] for f in wanted) + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE.format(d=folder))
    smi.chmod(0o755)
    rc, out = run_module({"source": "nvidia_smi", "nvidia_smi_path": str(smi)})
    assert rc == 0, out
    gpu = out["gpu_info"]["gpus"][0]
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["architecture"] == "Hopper"
    assert gpu["memory_total_bytes"] == 81559 * 1024 * 1024
    assert out["gpu_info"]["unified_memory"] is False
    assert gpu["ecc_mode"] == "Enabled"
