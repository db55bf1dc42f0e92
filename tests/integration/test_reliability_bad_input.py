# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reliability suite, bad input (docs/reliability.md): every wrong setting stops site.yml before any host changes.

The lab ``sparkfleet-lab-rel`` (2 hosts) is converged once with the demo variables (an LLM on 8355, a VLM on 8356,
ports open to the lab subnet). Each case then runs site.yml with the demo variables plus one wrong setting, and
asserts: the run fails, its message names the variable to fix, and a snapshot of every host (containers with their
start times, ufw and nftables rules, the hash of daemon.json, the tree of the HF cache / state / configuration
folders and the hashes of the state files) is identical before and after.
"""

from __future__ import annotations

import json

import pytest

from _reliability import LAB_SUFFIX, DEMO_VARS, converged, diff, snapshots

GATED = {"model": "sparkfleet-lab/gated-tiny", "kind": "llm", "download_gb": 1, "memory_gb": 2}


def _listen(port):
    # A foreign process on the port (a transient systemd unit, so it survives the SSH session and is easy to stop).
    return ("systemd-run --unit=rel-listener-%d python3 -m http.server %d --bind 0.0.0.0 && sleep 1" % (port, port),
            "systemctl stop rel-listener-%d" % port)


_DAEMON_BACKUP = "/var/tmp/rel-daemon.json.bak"

# id: (extra vars, words the failure message must contain (the variable and the fix), setup, teardown on spark-1)
CASES = {
    "unknown_model_without_sizes": (
        {"sparkfleet_models": [{"model": "acme/mystery-7b"}]},
        ["sparkfleet_models", "kind, download_gb, memory_gb"], None, None),
    "misspelled_quantization": (
        {"sparkfleet_models": [{"model": "nvidia/Qwen3-8B-FP4", "quantization": "NVFP5"}]},
        ["sparkfleet_models", "quantization", "NVFP4"], None, None),
    "two_node_model_on_one_host": (
        {"sparkfleet_models": ["nvidia/Qwen3-235B-A22B-FP4"]},
        ["model_nodes", "sparkfleet_multinode_group"], None, None),
    "port_out_of_range": (
        {"sparkfleet_llm_port": 70000},
        ["sparkfleet_llm_port", "65535"], None, None),
    "llm_port_equals_vlm_port": (
        {"sparkfleet_vlm_port": 8355},
        ["sparkfleet_vlm_port", "sparkfleet_llm_port"], None, None),
    "port_used_by_another_process": (
        {"sparkfleet_llm_port": 8399},
        ["8399", "python3", "sparkfleet_llm_port"], *_listen(8399)),
    "invalid_cidr": (
        {"firewall_allowed_cidrs": ["10.0.0.300/24"]},
        ["firewall_allowed_cidrs", "10.0.0.300/24"], None, None),
    "exposure_without_allowed_cidrs": (
        {"firewall_allowed_cidrs": []},
        ["firewall_allowed_cidrs", "firewall_expose"], None, None),
    "rules_that_would_block_ssh": (
        {"firewall_ssh_from_controller": False, "firewall_ssh_from_fleet": False, "firewall_admin_cidrs": []},
        ["firewall_admin_cidrs", "SSH"], None, None),
    "gated_model_without_token": (
        {"sparkfleet_models": [GATED]},
        ["hub", "sparkfleet_hf_token"], None, None),
    "gated_model_with_wrong_token": (
        {"sparkfleet_models": [GATED], "sparkfleet_hf_token": "hf_lab_unapproved"},
        ["hub", "sparkfleet_hf_token"], None, None),
    "malformed_endpoint_url": (
        {"sparkfleet_hf_endpoint": "hub.sparkfleet.lab:80"},
        ["sparkfleet_hf_endpoint"], None, None),
    "revision_that_does_not_exist": (
        {"preflight_hub_revision": "no-such-branch", "model_cache_revision": "no-such-branch",
         "trtllm_server_revision": "no-such-branch"},
        ["no-such-branch", "preflight_hub_revision"], None, None),
    "not_enough_disk": (
        {"sparkfleet_models": [{"model": "acme/huge", "kind": "llm", "download_gb": 100000, "memory_gb": 1}]},
        ["disk", "sparkfleet_hf_home"], None, None),
    "model_larger_than_memory": (
        {"sparkfleet_models": [{"model": "acme/fat", "kind": "llm", "download_gb": 1, "memory_gb": 4000}]},
        ["memory", "sparkfleet_models"], None, None),
    "daemon_json_not_valid_json": (
        {},
        ["/etc/docker/daemon.json", "JSON"],
        "cp -p /etc/docker/daemon.json %s && printf '{\"runtimes\": {oops' > /etc/docker/daemon.json" % _DAEMON_BACKUP,
        "mv -f %s /etc/docker/daemon.json" % _DAEMON_BACKUP),
}

# Pure input errors: preflight stops the run on the controller before any host is contacted (the firewall and port
# settings are checked there with the firewall role's own checks, roles/firewall/tasks/validate.yml). These cases
# run at -vvv, which logs every SSH connection Ansible opens ("ESTABLISH SSH CONNECTION").
CONTROLLER_ONLY = {"unknown_model_without_sizes", "misspelled_quantization", "port_out_of_range",
                   "llm_port_equals_vlm_port", "invalid_cidr", "exposure_without_allowed_cidrs",
                   "rules_that_would_block_ssh"}


@pytest.fixture(scope="module")
def rel_lab(lab_factory):
    lab = lab_factory(LAB_SUFFIX, 2)
    converged(lab)
    return lab


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_before_any_host_changes(rel_lab, case):
    extra, words, setup, teardown = CASES[case]
    host = rel_lab.host_names[0]
    if setup:
        proc = rel_lab.ssh(host, setup, sudo=True)
        assert proc.returncode == 0, proc.stderr
    try:
        before = snapshots(rel_lab)
        verbose = ["-vvv"] if case in CONTROLLER_ONLY else []
        proc = rel_lab.ansible_playbook("playbooks/site.yml", "-e", DEMO_VARS, "-e", json.dumps(extra), *verbose,
                                        timeout=600)
        after = snapshots(rel_lab)
    finally:
        if teardown:
            rel_lab.ssh(host, teardown, sudo=True)
    assert proc.returncode != 0, "site.yml accepted %s:\n%s" % (case, proc.output[-3000:])
    # At -vvv a failed result spans several lines: its "msg" line carries the message.
    failed = [line for line in proc.stdout.splitlines()
              if "fatal:" in line or "FAILED!" in line or (verbose and '"msg":' in line)]
    message = "\n".join(failed) or proc.output[-3000:]
    missing = [w for w in words if w not in message]
    assert not missing, "message does not name %s:\n%s" % (missing, message[-4000:])
    if case in CONTROLLER_ONLY:
        # Stopped in the preflight play, before its first task that reads a host, and no SSH connection was opened.
        assert "ESTABLISH SSH CONNECTION" not in proc.stdout, "%s: a host was contacted:\n%s" % (case, message)
        assert "Run every host-local readiness check" not in proc.stdout, proc.stdout[-3000:]
        assert "PLAY [Give every Spark Docker" not in proc.stdout, proc.stdout[-3000:]
    assert diff(before, after) == "", "site.yml with %s changed a host:\n%s" % (case, diff(before, after))
    assert sum(r.get("changed", 0) for r in proc.recap.values()) == 0, proc.recap
