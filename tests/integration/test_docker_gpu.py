# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The docker_gpu role on an isolated lab host, the way molecule would run it: check mode first (nothing
changes), converge, idempotence (changed=0 and Docker not restarted), then verify real effects: daemon.json
keeps the lab's vfs storage driver, a backup exists, `docker info` lists the nvidia runtime, and
`docker run --gpus all` runs nvidia-smi."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

PLAYBOOK = "playbooks/docker_gpu.yml"
HOST = "spark-1"
SMOKE_IMAGE = "sparkfleet-lab/busybox:latest"
# The sim hosts' pristine daemon.json, as the spark-os image ships it (vfs storage, the lab registries).
ORIGINAL_DAEMON_JSON = json.loads(
    (Path(__file__).resolve().parents[2] / "lab/images/spark-os/overlay/etc/docker/daemon.json").read_text())
STATE_FILE = "/var/lib/sparkfleet/state/host_config.json"
BASE_VARS = {"docker_gpu_smoke_image": SMOKE_IMAGE}


def sh(lab, cmd: str, check: bool = True) -> str:
    proc = lab.ssh(HOST, cmd, sudo=True, timeout=180)
    if check:
        assert proc.returncode == 0, f"{cmd!r} failed rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def docker_started_at(lab) -> tuple[str, str]:
    """(dockerd main PID, ActiveEnterTimestamp): both change when Docker restarts."""
    out = sh(lab, "systemctl show -p MainPID -p ActiveEnterTimestamp docker")
    values = dict(line.split("=", 1) for line in out.strip().splitlines())
    return values["MainPID"], values["ActiveEnterTimestamp"]


def play(lab, *args: str, extra: dict | None = None):
    evars = dict(BASE_VARS, **(extra or {}))
    return lab.ansible_playbook(PLAYBOOK, "--limit", HOST, "-e", json.dumps(evars), *args, timeout=900)


@pytest.fixture(scope="module")
def gpu_lab(lab_factory):
    """A one-host lab of our own, reset to the lab's pristine Docker configuration."""
    the_lab = lab_factory("sparkfleet-lab-dockergpu", 1)
    pristine = json.dumps(ORIGINAL_DAEMON_JSON, indent=4) + "\n"
    differs = ("import json, sys; "
               f"sys.exit(json.load(open('/etc/docker/daemon.json')) == {json.dumps(ORIGINAL_DAEMON_JSON)})")
    sh(the_lab, f"rm -f /etc/docker/daemon.json.*~ {STATE_FILE}; "
                f"if python3 -c {shlex.quote(differs)}; then printf %s {shlex.quote(pristine)} > /etc/docker/daemon.json; "
                "systemctl restart docker; fi; "
                "for i in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; docker info >/dev/null")
    return the_lab


@pytest.fixture(scope="module")
def converged(gpu_lab):
    """Check mode, then converge; returns (check run, converge run, daemon.json before)."""
    before_text = sh(gpu_lab, "cat /etc/docker/daemon.json")
    started_before = docker_started_at(gpu_lab)
    check = play(gpu_lab, "--check", "--diff")
    after_check_text = sh(gpu_lab, "cat /etc/docker/daemon.json")
    backups_after_check = sh(gpu_lab, "ls /etc/docker/", check=False)
    started_after_check = docker_started_at(gpu_lab)
    converge = play(gpu_lab, "--diff")
    return {
        "check": check, "converge": converge, "before_text": before_text, "after_check_text": after_check_text,
        "backups_after_check": backups_after_check, "started_before": started_before,
        "started_after_check": started_after_check,
    }


def test_check_mode_changes_nothing(converged):
    check = converged["check"]
    assert check.returncode == 0, check.output[-4000:]
    assert check.recap[HOST]["failed"] == 0
    assert check.recap[HOST]["changed"] >= 1  # it predicts the daemon.json change
    assert '+  "runtimes": {' in check.output  # diff of the predicted daemon.json
    assert converged["after_check_text"] == converged["before_text"]
    assert "~" not in converged["backups_after_check"]
    assert converged["started_after_check"] == converged["started_before"]


def test_converge_merges_daemon_json_and_restarts_docker(gpu_lab, converged):
    converge = converged["converge"]
    assert converge.returncode == 0, converge.output[-4000:]
    assert converge.recap[HOST]["changed"] >= 1
    config = json.loads(sh(gpu_lab, "cat /etc/docker/daemon.json"))
    assert config["storage-driver"] == "vfs"  # the key the role was not asked about is kept
    assert config["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert docker_started_at(gpu_lab) != converged["started_before"]  # restarted because config changed


def test_backup_holds_the_original(gpu_lab, converged):
    state = json.loads(sh(gpu_lab, f"cat {STATE_FILE}"))
    backup = state["docker_gpu"]["daemon_config"]["original_backup"]
    assert backup.startswith("/etc/docker/daemon.json.") and backup.endswith("~")
    assert json.loads(sh(gpu_lab, f"cat {shlex.quote(backup)}")) == ORIGINAL_DAEMON_JSON
    assert sh(gpu_lab, f"stat -c '%a %U' {STATE_FILE}").strip() == "600 root"
    assert state["docker_gpu"]["engine_installed_by_sparkfleet"] is False  # the lab host had docker.io
    assert state["docker_gpu"]["dgx_os"] is True  # /etc/dgx-release of the simulated DGX OS


def test_docker_info_lists_nvidia_runtime(gpu_lab, converged):
    runtimes = json.loads(sh(gpu_lab, "docker info --format '{{json .Runtimes}}'"))
    assert "nvidia" in runtimes
    assert runtimes["nvidia"]["path"] == "nvidia-container-runtime"


def test_docker_run_gpus_all_runs_nvidia_smi(gpu_lab, converged):
    out = sh(gpu_lab, f"docker run --rm --gpus all {SMOKE_IMAGE} nvidia-smi -L")
    assert "GPU 0:" in out


def test_idempotence_without_docker_restart(gpu_lab, converged):
    started = docker_started_at(gpu_lab)
    config_before = sh(gpu_lab, "cat /etc/docker/daemon.json")
    backups_before = sh(gpu_lab, "ls /etc/docker/")
    second = play(gpu_lab)
    assert second.returncode == 0, second.output[-4000:]
    assert second.recap[HOST]["changed"] == 0, second.output[-4000:]
    assert docker_started_at(gpu_lab) == started
    assert sh(gpu_lab, "cat /etc/docker/daemon.json") == config_before
    assert sh(gpu_lab, "ls /etc/docker/") == backups_before  # no new backup


def test_smoke_test_failure_shows_container_output(gpu_lab, converged):
    bad = play(gpu_lab, extra={"docker_gpu_smoke_image": "sparkfleet-lab/not-loaded:latest"})
    assert bad.returncode != 0
    assert "docker run --rm --gpus all sparkfleet-lab/not-loaded:latest nvidia-smi" in bad.output
    assert "Unable to find image" in bad.output  # the container's own stderr


def test_default_runtime_switch_restarts_once_and_keeps_keys(gpu_lab, converged):
    first = play(gpu_lab, extra={"docker_gpu_nvidia_default_runtime": True, "docker_gpu_smoke_test": False})
    assert first.returncode == 0, first.output[-4000:]
    assert first.recap[HOST]["changed"] >= 1
    assert sh(gpu_lab, "docker info --format '{{.DefaultRuntime}}'").strip() == "nvidia"
    config = json.loads(sh(gpu_lab, "cat /etc/docker/daemon.json"))
    assert config["storage-driver"] == "vfs" and config["default-runtime"] == "nvidia"
    state = json.loads(sh(gpu_lab, f"cat {STATE_FILE}"))
    assert len(state["docker_gpu"]["daemon_config"]["backups"]) == 2
    started = docker_started_at(gpu_lab)
    again = play(gpu_lab, extra={"docker_gpu_nvidia_default_runtime": True, "docker_gpu_smoke_test": False})
    assert again.returncode == 0 and again.recap[HOST]["changed"] == 0, again.output[-4000:]
    assert docker_started_at(gpu_lab) == started
