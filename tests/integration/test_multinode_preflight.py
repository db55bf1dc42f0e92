# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Multi-node preflight on two simulated Sparks joined by the lab's fabric network: a group whose size differs from
tp_size, Qwen3-235B-A22B on a one-host group and mismatched cached model revisions each stop the run with a named
check; a consistent pair passes the multinode check."""

from __future__ import annotations

import json
import shlex

import pytest

PLAYBOOK = "playbooks/preflight.yml"
# A matrix model no other test caches: the test plants its refs/main and removes the folder afterwards.
PLANTED_MODEL = "nvidia/Qwen3-14B-FP4"
PLANTED_DIR = "/var/lib/sparkfleet/huggingface/hub/models--nvidia--Qwen3-14B-FP4"


@pytest.fixture(scope="module")
def mlab(lab_factory):
    return lab_factory("mn", 2)


def _report(mlab, proc, tmp_path):
    data = json.loads((tmp_path / "preflight.json").read_text())
    return {host: {c["check"]: c for c in res["checks"]} for host, res in data["hosts"].items()}, proc.output


def _run(mlab, tmp_path, *args):
    proc = mlab.ansible_playbook(PLAYBOOK, "-e", "sparkfleet_multinode_group=sparks",
                                 "-e", f"preflight_report_dir={tmp_path}", "-e", "preflight_hub_timeout_seconds=5", *args)
    return proc


def test_the_lab_inventory_names_the_fabric(mlab):
    for host, address in mlab.hosts.items():
        out = mlab.ssh(host, "ip -j -4 addr show dev enp1s0f0np0", check=True).stdout
        fabric = json.loads(out)[0]["addr_info"][0]["local"]
        assert fabric.startswith("172.29.") and fabric.split(".")[3] == address.split(".")[3]
    first, second = list(mlab.hosts)
    peer = mlab.ssh(second, "ip -j -4 addr show dev enp1s0f0np0", check=True).stdout
    peer_ip = json.loads(peer)[0]["addr_info"][0]["local"]
    assert mlab.ssh(first, f"ping -c1 -W3 {peer_ip}").returncode == 0


def test_group_size_must_match_tp_size(mlab, tmp_path):
    proc = _run(mlab, tmp_path, "-e", "sparkfleet_model=nvidia/Qwen3-8B-FP4", "-e", "sparkfleet_multinode_tp_size=4")
    assert proc.returncode != 0
    assert "multinode FAIL: the group has 2 host(s) but tp_size is 4" in proc.output


def test_a_consistent_pair_passes_the_multinode_check(mlab, tmp_path):
    proc = _run(mlab, tmp_path, "-e", "sparkfleet_model=nvidia/Qwen3-8B-FP4")
    checks, output = _report(mlab, proc, tmp_path)
    for host in mlab.hosts:
        assert checks[host]["multinode"]["status"] == "pass", output[-3000:]
        assert "2 hosts, tp_size 2, subnet 172.29." in checks[host]["multinode"]["value"]


def test_qwen3_235b_on_a_one_host_group_fails(mlab, tmp_path):
    solo = tmp_path / "solo.yml"
    solo.write_text("all:\n  children:\n    solo:\n      hosts:\n        spark-1:\n")
    proc = mlab.ansible_playbook(PLAYBOOK, "-i", str(solo), "--limit", "spark-1",
                                 "-e", "sparkfleet_multinode_group=solo", "-e", f"preflight_report_dir={tmp_path}",
                                 "-e", "sparkfleet_model=nvidia/Qwen3-235B-A22B-FP4", "-e", "sparkfleet_offline=true")
    assert proc.returncode != 0
    assert "model_nodes FAIL: nvidia/Qwen3-235B-A22B-FP4 needs 2 Sparks; this host serves in a group of 1" in proc.output
    assert "multinode FAIL: a multi-node group needs at least 2 hosts, this one has 1" in proc.output


def test_mismatched_cached_revisions_fail(mlab, tmp_path):
    commits = {host: (str(n) * 40) for n, host in enumerate(mlab.hosts, start=1)}
    try:
        for host, commit in commits.items():
            mlab.ssh(host, f"mkdir -p {PLANTED_DIR}/refs && printf %s {commit} > {PLANTED_DIR}/refs/main",
                     sudo=True, check=True)
        proc = _run(mlab, tmp_path, "-e", f"sparkfleet_model={PLANTED_MODEL}", "-e", "sparkfleet_offline=true")
    finally:
        for host in commits:
            mlab.ssh(host, f"rm -rf {shlex.quote(PLANTED_DIR)}", sudo=True)
    assert proc.returncode != 0
    assert f"cached model revisions of {PLANTED_MODEL} differ" in proc.output
    for commit in commits.values():
        assert commit in proc.output
