# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/preflight.yml against simulated Sparks: passes on healthy hosts, fails with a named check and a fix
hint on an unhealthy one, and changes nothing on any host (file-tree and docker snapshots before/after)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lab" / "hub"))
from launch import HubProcess  # noqa: E402  pylint: disable=wrong-import-position,import-error

PLAYBOOK = "playbooks/preflight.yml"
# Everything a preflight could touch on a host; ansible's own temp dirs and daemons' live state excluded.
SNAPSHOT = (
    "find /etc /usr /opt /srv /var/lib /root /home -xdev "
    "\\( -path /var/lib/docker -o -path /var/lib/containerd -o -path /var/lib/systemd -o -path '*/.ansible' "
    "-o -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/lib/private \\) -prune -o "
    "-printf '%p %s %m %T@\\n' | sort | sha256sum; docker ps -a --format '{{.ID}} {{.Status}}' | sort; "
    "docker images -q | sort; test -e /var/lib/sparkfleet && echo SPARKFLEET_DIR_EXISTS || echo no-sparkfleet-dir"
)


@pytest.fixture(scope="module")
def plab(lab_factory):
    return lab_factory("preflight", 2)


@pytest.fixture(scope="module")
def hub_url(plab, tmp_path_factory):
    """The lab Hub stand-in on the controller, reached by the sim hosts through their network's gateway."""
    route = plab.ssh("spark-1", "ip -4 route show default", check=True).stdout
    gateway = re.search(r"default via (\S+)", route).group(1)
    with HubProcess(tmp_path_factory.mktemp("pf-hub"), host="0.0.0.0") as hub:
        port = hub.url.rsplit(":", 1)[1]
        yield "http://%s:%s" % (gateway, port)


def snapshot(lab, host):
    proc = lab.ssh(host, SNAPSHOT, sudo=True, check=True)
    return proc.stdout


def play(lab, tmp_path, *extra, hub=None):
    report_dir = tmp_path / "reports"
    args = ["-e", "preflight_report_dir=%s" % report_dir]
    if hub:
        args += ["-e", "sparkfleet_hf_endpoint=%s" % hub]
    else:
        args += ["-e", "sparkfleet_offline=true"]
    proc = lab.ansible_playbook(PLAYBOOK, *args, *extra)
    report = json.loads((report_dir / "preflight.json").read_text()) if (report_dir / "preflight.json").exists() else None
    return proc, report, report_dir


def status_of(report, host, check):
    return next(c for c in report["hosts"][host]["checks"] if c["check"] == check)


def test_healthy_fleet_passes_and_nothing_changes(plab, hub_url, tmp_path):
    before = {h: snapshot(plab, h) for h in plab.host_names}
    proc, report, report_dir = play(plab, tmp_path, hub=hub_url)
    assert proc.returncode == 0, proc.output[-4000:]
    assert report["status"] == "pass" and report["blocking"] == []
    for host in plab.host_names:
        entry = report["hosts"][host]
        assert entry["gpu"]["name"] == "NVIDIA GB10" and entry["gpu"]["unified_memory"] is True
        for check in ("gpu_driver", "cuda_driver", "gpu_architecture", "memory", "model_nodes", "disk", "docker", "ports", "hub"):
            assert status_of(report, host, check)["status"] == "pass", (host, check, status_of(report, host, check))
        assert proc.recap[host]["changed"] == 0 or host == plab.host_names[0]  # first host only: report folder on the controller
    md = (report_dir / "preflight.md").read_text()
    assert "| spark-1 |" in md and "| spark-2 |" in md and "Result: **PASS**" in md
    assert "Preflight of 2 host(s)" in proc.output
    # nothing on any host was changed
    assert {h: snapshot(plab, h) for h in plab.host_names} == before
    assert all("no-sparkfleet-dir" in before[h] for h in before)
    # a second run and a check-mode run change nothing either
    again, dummy, dummy2 = play(plab, tmp_path, "--check", hub=hub_url)
    assert again.returncode == 0, again.output[-3000:]
    assert all(again.recap[h]["changed"] == 0 for h in plab.host_names)


def test_gated_model_without_access_fails_on_hub(plab, hub_url, tmp_path):
    extra = json.dumps({"sparkfleet_model": "sparkfleet-lab/gated-tiny", "sparkfleet_hf_token": "hf_lab_unapproved",
                        "sparkfleet_model_spec": {"kind": "llm", "download_gb": 1, "memory_gb": 1}})
    proc, report, dummy = play(plab, tmp_path, "-e", extra, hub=hub_url)
    assert proc.returncode != 0
    hub = status_of(report, "spark-1", "hub")
    assert hub["status"] == "fail" and "no access (HTTP 403)" in hub["message"]
    assert "hf_lab_unapproved" not in proc.output
    assert "hf_lab_unapproved" not in json.dumps(report)


def assert_blocked(proc, report, host, check, words):
    assert proc.returncode != 0, proc.output[-3000:]
    entry = status_of(report, host, check)
    assert entry["status"] == "fail", entry
    assert words in entry["message"], entry
    assert entry["hint"]
    assert "%s FAIL" % check in proc.output and "FIX: %s" % entry["hint"][:40] in proc.output
    assert any(b["host"] == host and b["check"] == check for b in report["blocking"])
    assert report["status"] == "fail"


def test_missing_nvidia_smi(plab, tmp_path):
    plab.ssh("spark-2", "mv /usr/bin/nvidia-smi /usr/bin/nvidia-smi.preflight-test", sudo=True, check=True)
    try:
        before = snapshot(plab, "spark-2")
        proc, report, dummy = play(plab, tmp_path)
        after = snapshot(plab, "spark-2")
    finally:
        plab.ssh("spark-2", "mv /usr/bin/nvidia-smi.preflight-test /usr/bin/nvidia-smi", sudo=True, check=True)
    assert_blocked(proc, report, "spark-2", "gpu_driver", "nvidia-smi was not found")
    assert status_of(report, "spark-1", "gpu_driver")["status"] == "pass"
    assert before == after


def test_driver_not_loaded(plab, tmp_path):
    plab.ssh("spark-2", "cp /etc/sparkfleet-sim/gpu-profile /tmp/gpu-profile.bak && echo none > /etc/sparkfleet-sim/gpu-profile",
             sudo=True, check=True)
    try:
        proc, report, dummy = play(plab, tmp_path)
    finally:
        plab.ssh("spark-2", "cp /tmp/gpu-profile.bak /etc/sparkfleet-sim/gpu-profile", sudo=True, check=True)
    assert_blocked(proc, report, "spark-2", "gpu_driver", "couldn't communicate with the NVIDIA driver")


def test_disk_too_small_for_the_model(plab, tmp_path):
    plab.ssh("spark-2", "mkdir -p /mnt/pf-small && mount -t tmpfs -o size=2m tmpfs /mnt/pf-small", sudo=True, check=True)
    try:
        proc, report, dummy = play(plab, tmp_path, "-e", '{"sparkfleet_hf_home": "/mnt/pf-small/hf"}', "--limit", "spark-2")
    finally:
        plab.ssh("spark-2", "umount /mnt/pf-small && rmdir /mnt/pf-small", sudo=True, check=True)
    assert_blocked(proc, report, "spark-2", "disk", "GB free on the file system of /mnt/pf-small/hf")


def test_port_taken(plab, tmp_path):
    plab.ssh("spark-2", "setsid python3 -m http.server 8355 --bind 0.0.0.0 >/dev/null 2>&1 < /dev/null & echo $! > /tmp/pf-port.pid",
             sudo=True, check=True)
    try:
        plab.ssh("spark-2", "for i in $(seq 50); do ss -ltn | grep -q ':8355 ' && break; sleep 0.1; done", check=True)
        proc, report, dummy = play(plab, tmp_path)
    finally:
        plab.ssh("spark-2", "kill $(cat /tmp/pf-port.pid); rm -f /tmp/pf-port.pid", sudo=True)
    assert_blocked(proc, report, "spark-2", "ports", "8355 is in use by process python3")
    assert status_of(report, "spark-1", "ports")["status"] == "pass"


def test_model_too_large(plab, tmp_path):
    proc, report, dummy = play(plab, tmp_path, "-e", "sparkfleet_model=openai/gpt-oss-120b", "--limit", "spark-1")
    assert_blocked(proc, report, "spark-1", "memory", "openai/gpt-oss-120b (70 GB) need 70.0 GB")


def test_two_node_model_on_one_host(plab, tmp_path):
    proc, report, dummy = play(plab, tmp_path, "-e", "sparkfleet_model=nvidia/Qwen3-235B-A22B-FP4", "--limit", "spark-1")
    assert_blocked(proc, report, "spark-1", "model_nodes", "nvidia/Qwen3-235B-A22B-FP4 needs 2 Sparks")


def test_unknown_model_stops_on_the_controller(plab, tmp_path):
    proc, report, dummy = play(plab, tmp_path, "-e", "sparkfleet_model=acme/mystery")
    assert proc.returncode != 0
    assert "model 'acme/mystery' is not in the Spark support matrix" in proc.output
    assert report is None  # stopped before any host was contacted


def test_fail_on_never_reports_without_stopping(plab, tmp_path):
    proc, report, dummy = play(plab, tmp_path, "-e", "sparkfleet_model=openai/gpt-oss-120b", "-e", "preflight_fail_on=never")
    assert proc.returncode == 0, proc.output[-3000:]
    assert status_of(report, "spark-1", "memory")["status"] == "fail"
    assert report["blocking"] == []
