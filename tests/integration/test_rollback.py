# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Serve in the lab end to end, then roll back, on an isolated lab of 2 sim Sparks (real SSH, Docker, ufw, HTTP).

Order (module-scoped, tests run in file order): snapshot the bare hosts (plus an operator's own container and ufw
rule), converge docker_gpu -> firewall -> model_cache -> image_cache -> serve with the TRT-LLM stand-in on 8355
(LLM nvidia/Qwen3-8B-FP4) and 8356 (VLM nvidia/Qwen2.5-VL-7B-Instruct-FP4), chat completions over HTTP from the
controller and from the other host, a second serve run with changed=0 and the same container start times, then
rollback.yml with models and images removed: the snapshot is the same as before, the operator's container and
rule survive, and a second rollback changes nothing. Docker objects of this file: sparkfleet-test-rb-*.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLAYS = REPO / "playbooks"
LLM = "nvidia/Qwen3-8B-FP4"
VLM = "nvidia/Qwen2.5-VL-7B-Instruct-FP4"
HF_HOME = "/var/lib/sparkfleet/huggingface"
USER_CONTAINER = "sparkfleet-test-rb-operator"
USER_RULE = "ufw allow from 192.0.2.7 to any port 9999 proto tcp comment 'operator rule'"
SNAPSHOT = (
    "echo '## containers'; docker ps -a --format '{{.Names}} {{.Image}} managed={{.Label \"sparkfleet.managed\"}}' | sort; "
    "echo '## ufw'; ufw status verbose; ufw show added; grep '^DEFAULT_INPUT_POLICY' /etc/default/ufw; "
    "echo '## daemon.json'; sha256sum /etc/docker/daemon.json; ls /etc/docker; "
    "echo '## state'; ls -la /var/lib/sparkfleet/state 2>&1 | sed 1d; find /etc/sparkfleet/trtllm -type f 2>/dev/null; "
    "echo '## cache'; ls " + HF_HOME + "/hub 2>/dev/null | grep '^models--'; "
    "echo '## images'; docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}' | sort; "
    # model_cache's fleet key (root's authorized_keys; a missing file reads as empty), its folders and the other
    # roles' folders under the collection's own /etc/sparkfleet and /opt/sparkfleet
    "echo '## root authorized_keys'; cat /root/.ssh/authorized_keys 2>/dev/null | sha256sum; "
    "echo '## collection folders'; find /etc/sparkfleet /opt/sparkfleet 2>/dev/null | sort"
)


@pytest.fixture(scope="module")
def lab(lab_factory):
    return lab_factory("serve", 2)


@pytest.fixture(scope="module")
def world(lab, tmp_path_factory):
    """Bare hosts (as far as the collection goes) plus an operator's container and ufw rule; the before-snapshot."""
    clean = ("docker ps -aq --filter label=sparkfleet.managed=true | xargs -r docker rm -f; "
             f"docker rmi -f {lab.vars['sparkfleet_trtllm_image']} >/dev/null 2>&1; "
             "rm -rf /var/lib/sparkfleet /etc/sparkfleet /opt/sparkfleet; "
             "sed -i '/ sparkfleet-model-cache$/d' /root/.ssh/authorized_keys 2>/dev/null; "
             f"docker rm -f {USER_CONTAINER} >/dev/null 2>&1; "
             f"docker run -d --restart unless-stopped --name {USER_CONTAINER} sparkfleet-lab/busybox:latest sleep 1000000 >/dev/null; "
             f"{USER_RULE} >/dev/null")
    # A kept lab may hold an earlier run: undo it first (this is also a rollback from a half-finished converge).
    undo = run(lab, "rollback.yml", {"rollback_remove_models": True, "rollback_remove_images": True})
    assert undo.returncode == 0, undo.output[-6000:]
    for host in lab.host_names:
        proc = lab.ssh(host, clean, sudo=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    before = {host: lab.ssh(host, SNAPSHOT, sudo=True).stdout for host in lab.host_names}
    key = tmp_path_factory.mktemp("rb-key") / "id_ed25519"
    extra = {
        "sparkfleet_models": [LLM, VLM],
        "docker_gpu_smoke_image": "sparkfleet-lab/busybox:latest",
        "firewall_expose": True,
        # the other lab hosts and this machine (the controller: the lab network's gateway, .1)
        "firewall_allowed_cidrs": [f"{ip}/32" for ip in lab.hosts.values()]
        + [lab.hosts["spark-1"].rsplit(".", 1)[0] + ".1/32"],
        # model_cache copies host to host over SSH: the hosts must keep SSH to each other.
        "firewall_admin_cidrs": [f"{ip}/32" for ip in lab.hosts.values()],
        "model_cache_controller_wheelhouse_dir": str(REPO / "lab" / ".state" / "model-cache-wheelhouse"),
        "model_cache_controller_key_path": str(key),
        "trtllm_server_env": {"TRTLLM_STANDIN_LOAD_SECONDS": "2"},
    }
    yield {"before": before, "extra": extra}
    for host in lab.host_names:
        lab.ssh(host, f"docker rm -f {USER_CONTAINER}; ufw delete allow from 192.0.2.7 to any port 9999 proto tcp",
                sudo=True)


def run(lab, play, extra, *args):
    return lab.ansible_playbook(PLAYS / play, "-e", json.dumps(extra), *args, timeout=1500)


def chat(url, model):
    req = urllib.request.Request(url + "/chat/completions", method="POST", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"model": model, "max_tokens": 8,
                                                  "messages": [{"role": "user", "content": "Hello"}]}).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - lab host on our own network
        return resp.status, json.loads(resp.read())


def started_at(lab, host):
    return lab.ssh(host, "docker inspect --format '{{.Name}} {{.Id}} {{.State.StartedAt}}' "
                         "sparkfleet-trtllm-llm sparkfleet-trtllm-vlm", sudo=True).stdout


def test_converge_serves_llm_and_vlm(lab, world):
    for play in ("docker_gpu.yml", "firewall.yml", "model_cache.yml", "image_cache.yml"):
        proc = run(lab, play, world["extra"])
        assert proc.returncode == 0, f"{play}\n" + proc.output[-6000:]
    proc = run(lab, "serve.yml", world["extra"])
    assert proc.returncode == 0, proc.output[-8000:]
    for host, ip in lab.hosts.items():
        assert f"{host} | {LLM} (llm) | http://{ip}:8355/v1 | serving | ready after" in proc.output
        assert f"{host} | {VLM} (vlm) | http://{ip}:8356/v1 | serving | ready after" in proc.output
        state = json.loads(lab.ssh(host, "cat /var/lib/sparkfleet/state/serving-vlm.json", sudo=True).stdout)
        assert state["current"]["model"] == VLM and state["current"]["port"] == 8356
        assert len(state["current"]["commit"]) == 40 and state["current"]["image_id"].startswith("sha256:")
        options = lab.ssh(host, "cat /etc/sparkfleet/trtllm/sparkfleet-trtllm-vlm.yml", sudo=True).stdout
        assert "enable_block_reuse: false" in options
        # model_cache recorded what rollback must take away (its folders and the fleet key's marker)
        record = json.loads(lab.ssh(host, "cat /var/lib/sparkfleet/state/model_cache.json", sudo=True).stdout)
        assert "/opt/sparkfleet/venv" in record["paths"] and "/etc/sparkfleet/model_cache" in record["paths"]
        assert record["authorized_keys"] == {"user": "root", "comment": "sparkfleet-model-cache"}


def test_endpoints_answer_from_the_controller_and_the_other_host(lab, world):
    for host, ip in lab.hosts.items():
        for port, model in ((8355, LLM), (8356, VLM)):
            status, body = chat(f"http://{ip}:{port}/v1", model)
            assert status == 200 and body["choices"][0]["message"]["role"] == "assistant"
    ip1 = lab.hosts["spark-1"]
    payload = json.dumps({"model": VLM, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
    proc = lab.ssh("spark-2", f"curl -sf -m 20 -H 'Content-Type: application/json' -d '{payload}' "
                              f"http://{ip1}:8356/v1/chat/completions")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["object"] == "chat.completion"


def test_second_serve_run_changes_nothing(lab, world):
    before = {host: started_at(lab, host) for host in lab.host_names}
    proc = run(lab, "serve.yml", world["extra"])
    assert proc.returncode == 0, proc.output[-6000:]
    for host in lab.host_names:
        assert proc.recap[host]["changed"] == 0, proc.output[-6000:]
    assert {host: started_at(lab, host) for host in lab.host_names} == before


def test_rollback_check_mode_touches_nothing(lab, world):
    snap = {host: lab.ssh(host, SNAPSHOT, sudo=True).stdout for host in lab.host_names}
    proc = run(lab, "rollback.yml", {"rollback_remove_models": True, "rollback_remove_images": True}, "--check")
    assert proc.returncode == 0, proc.output[-6000:]
    assert {host: lab.ssh(host, SNAPSHOT, sudo=True).stdout for host in lab.host_names} == snap


def test_rollback_returns_the_hosts_to_their_start(lab, world):
    proc = run(lab, "rollback.yml", {"rollback_remove_models": True, "rollback_remove_images": True})
    assert proc.returncode == 0, proc.output[-8000:]
    assert '"sparkfleet-trtllm-llm"' in proc.output and "restored from /etc/docker/daemon.json." in proc.output
    for host in lab.host_names:
        after = lab.ssh(host, SNAPSHOT, sudo=True).stdout
        assert after == world["before"][host], f"{host}\n--- before\n{world['before'][host]}\n--- after\n{after}"
        assert USER_CONTAINER in after and "operator rule" in after


def test_second_rollback_changes_nothing(lab, world):
    proc = run(lab, "rollback.yml", {"rollback_remove_models": True, "rollback_remove_images": True})
    assert proc.returncode == 0, proc.output[-6000:]
    for host in lab.host_names:
        assert proc.recap[host]["changed"] == 0, proc.output[-6000:]
