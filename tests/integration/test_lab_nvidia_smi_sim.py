# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The simulated nvidia-smi of the lab hosts, run directly here with POSIX shells (no lab needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import REPO

OVERLAY = REPO / "lab" / "images" / "spark-os" / "overlay"
SCRIPT = OVERLAY / "usr" / "bin" / "nvidia-smi"
FIXTURES = OVERLAY / "usr" / "share" / "sparkfleet-sim" / "gpu"
SHELLS = [s for s in ("dash", "bash", "busybox") if shutil.which(s)]


def smi(*args: str, profile: str | None = "gb10", shell: str = "sh", etc_dir: str = "/nonexistent",
        extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "SPARKFLEET_SIM_GPU_DIR": str(FIXTURES), "SPARKFLEET_SIM_ETC_DIR": etc_dir}
    if profile is not None:
        env["SPARKFLEET_SIM_GPU_PROFILE"] = profile
    env.update(extra_env or {})
    cmd = [shell, "sh", str(SCRIPT), *args] if shell == "busybox" else [shell, str(SCRIPT), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30, check=False)


@pytest.mark.parametrize("shell", ["sh"] + SHELLS)
def test_query_gpu_gb10_in_requested_order(shell):
    proc = smi("--query-gpu=memory.total,name,compute_cap,driver_version,index,count",
               "--format=csv", shell=shell)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("memory.total [MiB], name, compute_cap, driver_version, index, count\n"
                           "[N/A], NVIDIA GB10, 12.1, 580.95.05, 0, 1\n")


def test_query_gpu_all_documented_fields():
    fields = ("index,name,uuid,pci.bus_id,compute_cap,driver_version,memory.total,memory.used,memory.free,"
              "persistence_mode,ecc.mode.current,mig.mode.current,temperature.gpu,utilization.gpu,power.draw,count")
    proc = smi(f"--query-gpu={fields}", "--format=csv,noheader")
    assert proc.returncode == 0, proc.stderr
    values = proc.stdout.rstrip("\n").split(", ")
    assert len(values) == len(fields.split(","))
    assert values[1] == "NVIDIA GB10"
    assert values[2].startswith("GPU-")
    assert values[3] == "0000000F:01:00.0"
    assert values[6:9] == ["[N/A]"] * 3
    assert values[-2].endswith(" W")


def test_query_gpu_h100_nounits():
    proc = smi("--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,nounits",
               profile="h100")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("name, driver_version, memory.total [MiB], compute_cap\n"
                           "NVIDIA H100 80GB HBM3, 580.159.04, 81559, 9.0\n")
    with_units = smi("--query-gpu=memory.total", "--format=csv,noheader", profile="h100")
    assert with_units.stdout == "81559 MiB\n"


def test_invalid_field_fails_like_the_real_one():
    proc = smi("--query-gpu=name,nonsense", "--format=csv")
    assert proc.returncode == 2
    assert proc.stdout.splitlines()[0] == 'Field "nonsense" is not a valid field to query.'


def test_profile_none_is_a_host_without_driver():
    proc = smi("-L", profile="none")
    assert proc.returncode == 9
    assert proc.stdout.startswith("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                                  "Make sure that the latest NVIDIA driver is installed and running.")


def test_profile_file_and_uuid_override(tmp_path):
    (tmp_path / "gpu-profile").write_text("h100\n")
    (tmp_path / "gpu-uuid").write_text("GPU-11111111-2222-3333-4444-555555555555\n")
    proc = smi("-L", profile=None, etc_dir=str(tmp_path))
    assert proc.stdout == "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-11111111-2222-3333-4444-555555555555)\n"
    default = smi("-L", profile=None)
    assert default.stdout.startswith("GPU 0: NVIDIA GB10 (UUID: GPU-")


def test_plain_table_gb10_memory_not_supported():
    proc = smi()
    assert proc.returncode == 0
    assert "| NVIDIA-SMI 580.95.05" in proc.stdout and "CUDA Version: 13.0" in proc.stdout
    assert "NVIDIA GB10" in proc.stdout and "Not Supported" in proc.stdout
    assert "No running processes found" in proc.stdout


@pytest.mark.parametrize(("profile", "name", "total"), [("gb10", "NVIDIA GB10", "N/A"),
                                                        ("h100", "NVIDIA H100 80GB HBM3", "81559 MiB")])
def test_xml_query(profile, name, total):
    proc = smi("-q", "-x", profile=profile)
    assert proc.returncode == 0, proc.stderr
    root = ET.fromstring(proc.stdout.split("\n", 2)[2])  # skip the XML and DOCTYPE declarations
    assert root.tag == "nvidia_smi_log"
    assert root.findtext("cuda_version") == "13.0"
    assert root.findtext("attached_gpus") == "1"
    gpu = root.find("gpu")
    assert gpu.findtext("product_name") == name
    assert gpu.findtext("uuid").startswith("GPU-")
    assert gpu.findtext("pci/pci_bus_id") == gpu.get("id")
    assert gpu.findtext("fb_memory_usage/total") == total


def test_compute_apps_empty_and_header():
    proc = smi("--query-compute-apps=pid,process_name,used_memory", "--format=csv")
    assert proc.returncode == 0
    assert proc.stdout == "pid, process_name, used_gpu_memory [MiB]\n"
    noheader = smi("--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader,nounits")
    assert noheader.stdout == ""


def test_compute_apps_rows(tmp_path):
    shutil.copytree(FIXTURES / "gb10", tmp_path / "busy")
    (tmp_path / "busy" / "compute-apps.csv-rows").write_text("4242|/usr/bin/python3|8123 MiB\n")
    proc = smi("--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader,nounits",
               profile="busy", extra_env={"SPARKFLEET_SIM_GPU_DIR": str(tmp_path)})
    assert proc.stdout == "4242, /usr/bin/python3, 8123\n"


def test_list_and_version():
    assert smi("-L").stdout.startswith("GPU 0: NVIDIA GB10 (UUID: GPU-")
    version = smi("--version").stdout
    assert "DRIVER version      : 580.95.05" in version and "CUDA Version        : 13.0" in version


def test_bad_arguments_and_missing_format():
    assert smi("--bogus").returncode == 2
    proc = smi("--query-gpu=name")
    assert proc.returncode == 2
    assert "--format=csv" in proc.stdout


def test_fixture_profiles_have_every_file():
    needed = {"query-gpu.csv-fields", "compute-apps.csv-rows", "nvidia-smi.txt", "nvidia-smi-L.txt",
              "nvidia-smi-q-x.xml", "nvidia-smi-q.txt", "version.txt", "uuid"}
    for profile in ("gb10", "h100"):
        assert needed <= {p.name for p in (FIXTURES / profile).iterdir()}


CAPTURES = REPO / "tests" / "unit" / "fixtures" / "nvidia-smi" / "h100"
REAL_UUID = "GPU-bcfd5a77-04d7-b0a0-abfd-35e3a5e13d56"
ALL_FIELDS = ("index,name,uuid,pci.bus_id,compute_cap,driver_version,memory.total,memory.used,memory.free,"
              "persistence_mode,ecc.mode.current,mig.mode.current,temperature.gpu,utilization.gpu,power.draw,count")


@pytest.mark.skipif(not CAPTURES.is_dir(), reason="no real H100 captures in tests/unit/fixtures/nvidia-smi/h100")
def test_h100_profile_matches_real_captures():
    with_header = smi(f"--query-gpu={ALL_FIELDS}", "--format=csv", profile="h100")
    assert with_header.stdout == (CAPTURES / "query-gpu-header.csv").read_text()
    nounits = smi(f"--query-gpu={ALL_FIELDS}", "--format=csv,noheader,nounits", profile="h100")
    real = (CAPTURES / "query-gpu.csv").read_text().rstrip("\n").split(", ")
    ours = nounits.stdout.rstrip("\n").split(", ")
    assert ours[:14] + ours[15:] == real[:14] + real[15:]  # power.draw (index 14) moves between captures
    assert float(ours[14]) > 0
    assert smi("-L", profile="h100").stdout == (CAPTURES / "L.txt").read_text()
    assert smi("--version", profile="h100").stdout == (CAPTURES / "version.txt").read_text()
    plain = smi(profile="h100").stdout.splitlines()
    assert plain[1:] == (CAPTURES / "plain.txt").read_text().splitlines()[1:]
    invalid = smi("--query-gpu=bogus_field", "--format=csv", profile="h100")
    assert invalid.stdout == (CAPTURES / "invalid-field.txt").read_text()
    assert invalid.returncode == 2
    xml = smi("-q", "-x", profile="h100").stdout.splitlines()
    real_xml = (CAPTURES / "q-x.xml").read_text().splitlines()
    assert [line for line in xml if "<timestamp>" not in line] == \
        [line for line in real_xml if "<timestamp>" not in line]
    assert REAL_UUID in "\n".join(xml)
