# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The default lab: simulated DGX Spark hosts reached over real SSH (docs/lab.md)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import LAB_CLI, REPO, lab_cli


def test_inventory_lists_two_sparks(lab):
    assert lab.host_names == ["spark-1", "spark-2"]
    assert lab.hosts["spark-1"] != lab.hosts["spark-2"]
    assert (REPO / "inventory" / "lab" / "hosts.yml").read_text() == lab.inventory.read_text()


@pytest.mark.parametrize("host", ["spark-1", "spark-2"])
def test_systemd_is_pid_1_and_running(lab, host):
    proc = lab.ssh(host, "systemctl is-system-running; cat /proc/1/comm; hostname")
    state, pid1, hostname = proc.stdout.split()
    assert state in ("running", "degraded"), proc.stdout + proc.stderr
    assert pid1 == "systemd"
    assert hostname == host


def test_spark_user_has_passwordless_sudo(lab):
    proc = lab.ssh("spark-1", "id -un; sudo -n id -u")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["spark", "0"]


def test_dgx_release_looks_like_dgx_os(lab):
    proc = lab.ssh("spark-1", "cat /etc/dgx-release")
    assert 'DGX_NAME="DGX Spark"' in proc.stdout
    assert re.search(r'^DGX_OTA_VERSION="7\.\d+\.\d+"$', proc.stdout, re.M)
    assert "LAB SIMULATION" in proc.stdout


@pytest.mark.parametrize("host", ["spark-1", "spark-2"])
def test_inner_docker_uses_vfs(lab, host):
    proc = lab.ssh(host, "docker info --format '{{.Driver}} {{.ServerVersion}}'", sudo=True)
    assert proc.returncode == 0, proc.stderr
    driver, version = proc.stdout.split()
    assert driver == "vfs"
    assert version.startswith("20.10")


def test_gpu_container_sees_gb10(lab):
    proc = lab.ssh("spark-1", "docker run --rm --gpus all sparkfleet-lab/busybox nvidia-smi -L", sudo=True)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"GPU 0: NVIDIA GB10 \(UUID: GPU-[0-9a-f-]{36}\)\n", proc.stdout)


def test_gpu_container_query_matches_host(lab):
    query = "nvidia-smi --query-gpu=name,uuid,driver_version --format=csv,noheader"
    inside = lab.ssh("spark-2", f"docker run --rm --gpus all sparkfleet-lab/busybox {query}", sudo=True)
    host = lab.ssh("spark-2", query)
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout == host.stdout
    assert host.stdout.startswith("NVIDIA GB10, GPU-")


def test_container_without_gpus_has_no_nvidia_smi(lab):
    proc = lab.ssh("spark-1", "docker run --rm sparkfleet-lab/busybox nvidia-smi -L", sudo=True)
    assert proc.returncode == 127
    assert "nvidia-smi" in proc.stderr and "not found" in proc.stderr
    assert "GB10" not in proc.stdout


def test_host_nvidia_smi_query_gpu(lab):
    proc = lab.ssh("spark-1", "nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total "
                              "--format=csv,noheader")
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"NVIDIA GB10, 12\.1, 580\.\d+\.\d+, \[N/A\]\n", proc.stdout)


def test_host_nvidia_smi_invalid_field_fails_like_the_real_one(lab):
    proc = lab.ssh("spark-1", "nvidia-smi --query-gpu=name,bogus.field --format=csv")
    assert proc.returncode == 2
    assert proc.stdout.splitlines()[0] == 'Field "bogus.field" is not a valid field to query.'


def test_hosts_have_their_own_gpu_uuid_and_host_key(lab):
    uuids = {lab.ssh(h, "nvidia-smi --query-gpu=uuid --format=csv,noheader").stdout.strip() for h in lab.host_names}
    keys = {lab.ssh(h, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1] for h in lab.host_names}
    assert len(uuids) == len(keys) == len(lab.host_names)
    assert all(u.startswith("GPU-") for u in uuids)


def test_nvidia_ctk_configures_docker_runtime(lab):
    target = "/tmp/lab-test-daemon.json"
    lab.ssh("spark-1", f"printf '{{\"storage-driver\": \"vfs\"}}' > {target}", sudo=True, check=True)
    proc = lab.ssh("spark-1", f"nvidia-ctk runtime configure --runtime=docker --set-as-default --config={target} "
                              f"&& cat {target} && rm -f {target}", sudo=True)
    assert proc.returncode == 0, proc.stderr
    assert f"Wrote updated config to {target}" in proc.stderr
    config = json.loads(proc.stdout)
    assert config == {"storage-driver": "vfs", "default-runtime": "nvidia",
                      "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}
    version = lab.ssh("spark-1", "nvidia-ctk --version")
    assert re.match(r"NVIDIA Container Toolkit CLI version 1\.18\.\d+\n", version.stdout)


def test_ansible_ping_and_become_through_inventory(lab):
    ping = lab.ansible("sparks", "ansible.builtin.ping")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count('"ping": "pong"') == 2
    become = lab.ansible("sparks", "ansible.builtin.command", "id -un")
    assert become.returncode == 0, become.stdout + become.stderr
    assert re.findall(r"^(spark-\d) \| CHANGED \| rc=0 >>\nroot$", become.stdout, re.M).__len__() == 2


def test_ansible_playbook_helper_parses_recap(lab, tmp_path):
    playbook = tmp_path / "probe.yml"
    playbook.write_text(
        "- name: Probe the lab\n  hosts: sparks\n  gather_facts: false\n  tasks:\n"
        "    - name: Read the DGX release file\n      ansible.builtin.slurp:\n        src: /etc/dgx-release\n")
    proc = lab.ansible_playbook(playbook)
    assert proc.returncode == 0, proc.output
    assert set(proc.recap) == {"spark-1", "spark-2"}
    assert all(counts["ok"] == 1 and counts["failed"] == 0 for counts in proc.recap.values())


def test_known_hosts_pinning_is_enforced(lab, tmp_path):
    good = lab.ssh("spark-1", "true")
    assert good.returncode == 0, good.stderr
    # spark-2's key recorded under spark-1's address: ssh must refuse, not trust and continue
    other_key = lab.known_hosts.read_text().splitlines()[1].split(" ", 1)[1]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{lab.hosts['spark-1']} {other_key}\n")
    proc = subprocess.run(lab.ssh_prefix("spark-1", known_hosts=wrong) + ["true"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    proc = subprocess.run(lab.ssh_prefix("spark-1", known_hosts=empty) + ["true"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr


def test_up_again_reuses_hosts(lab):
    proc = lab_cli("up", "2", name=lab.name, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "0 new, 2 reused" in proc.stdout
    assert proc.stdout.count("systemd=") == 2


@pytest.mark.parametrize("arg", ["0", "x", "17", "-1", "2.5"])
def test_up_rejects_bad_host_counts(arg):
    proc = subprocess.run([str(LAB_CLI), "up", arg], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "LAB_NAME": "sparkfleet-lab-badinput"}, check=False)
    assert proc.returncode == 2
    assert f"N={arg}" in proc.stderr or f"N='{arg}'" in proc.stderr
    assert "1..16" in proc.stderr
    assert not (REPO / "lab" / ".state" / "sparkfleet-lab-badinput" / "inventory.yml").exists()


def test_unknown_command_is_a_usage_error():
    proc = subprocess.run([str(LAB_CLI), "launch"], capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert proc.returncode == 2
    assert "unknown command 'launch'" in proc.stderr
