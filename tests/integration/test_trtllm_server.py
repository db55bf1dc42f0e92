# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trtllm_server role on this machine's Docker engine, with the lab's trtllm-serve stand-in image.

A play on localhost (connection local) runs the role against a fake Hub cache in a temporary folder, on a free
port, with GPUs off. Checked: a check-mode pass touches nothing, converge serves a real chat completion,
a second run changes nothing (same container, not restarted), a changed setting replaces the container,
bad input (VLM on the LLM port, missing image, a command-line key in the options, a model outside the matrix without
its kind and sizes, a two-node model, a model missing from the cache) fails before the container is touched, and a
changed setting replaces the container (the old one is stopped first and the role waits until the port is free, since
trtllm-serve binds without SO_REUSEADDR) and records the previous deployment. Docker objects are named sparkfleet-test-trtllm-*.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("TRTLLM_STANDIN_IMAGE", "sparkfleet-lab/trtllm-standin:latest")
MODEL = "sparkfleet-test/tiny-llm"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RECAP = re.compile(r"^localhost\s+:\s+(.*)$", re.M)


def _docker(*args, check=False):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=check)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _inspect(name):
    proc = _docker("inspect", "--type", "container", name)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


@pytest.fixture(scope="module")
def deploy(tmp_path_factory):
    if shutil.which("docker") is None or _docker("info").returncode != 0:
        pytest.skip("no Docker engine here")
    if _docker("image", "inspect", IMAGE).returncode != 0:
        pytest.skip("image %s is not built (lab/images/build-image trtllm-standin)" % IMAGE)
    work = tmp_path_factory.mktemp("trtllm_server")
    repo = work / "hf" / "hub" / ("models--" + MODEL.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    (repo / "snapshots" / COMMIT / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    name = "sparkfleet-test-trtllm-%d" % os.getpid()
    port = _free_port()
    variables = {
        "trtllm_server_model": MODEL,
        # Not a row of the model matrix: its kind and sizes are given.
        "trtllm_server_model_spec": {"kind": "llm", "download_gb": 1, "memory_gb": 2},
        "trtllm_server_state_dir": str(work / "state"),
        "trtllm_server_port": port,
        "trtllm_server_container_name": name,
        "trtllm_server_image": IMAGE,
        "trtllm_server_use_gpus": False,
        "trtllm_server_hf_cache_dir": str(work / "hf"),
        "trtllm_server_config_dir": str(work / "conf"),
        "trtllm_server_env": {"TRTLLM_STANDIN_LOAD_SECONDS": "2"},
        # This CI sandbox may not raise RLIMIT_MEMLOCK (hard limit 8 MiB); real Sparks use the default -1.
        "trtllm_server_ulimits": ["stack:67108864:67108864"],
        "trtllm_server_probe_timeout_seconds": 120,
        "trtllm_server_probe_request_timeout_seconds": 20,
    }
    (work / "vars.json").write_text(json.dumps(variables))
    (work / "play.yml").write_text(
        "- name: Serve a model on this machine\n"
        "  hosts: localhost\n  connection: local\n  gather_facts: false\n"
        "  roles:\n    - role: sparkfleet.trtllm.trtllm_server\n")

    def play(*args):
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
        proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), str(work / "play.yml"),
                               "-e", "@" + str(work / "vars.json"), *args],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
        match = _RECAP.search(proc.stdout)
        proc.recap = dict(pair.split("=") for pair in match.group(1).split()) if match else {}
        proc.output = proc.stdout + proc.stderr
        return proc

    _docker("rm", "-f", name)
    yield {"play": play, "name": name, "port": port, "work": work}
    _docker("rm", "-f", name)


def _chat(port):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/v1/chat/completions" % port, method="POST",
        data=json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}],
                         "max_tokens": 8}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
        return resp.status, json.loads(resp.read())


def test_check_mode_on_a_bare_host_touches_nothing(deploy):
    proc = deploy["play"]("--check")
    assert proc.returncode == 0, proc.output
    assert int(proc.recap["failed"]) == 0
    assert _inspect(deploy["name"]) is None
    assert not (deploy["work"] / "conf").exists()


def test_converge_serves_a_chat_completion(deploy):
    proc = deploy["play"]()
    assert proc.returncode == 0, proc.output
    assert int(proc.recap["changed"]) >= 2
    info = _inspect(deploy["name"])
    assert info["State"]["Status"] == "running"
    labels = info["Config"]["Labels"]
    assert labels["sparkfleet.managed"] == "true"
    assert labels["sparkfleet.model"] == MODEL
    assert labels["sparkfleet.port"] == str(deploy["port"])
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert info["HostConfig"]["IpcMode"] == "host"
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert {u["Name"]: u["Hard"] for u in info["HostConfig"]["Ulimits"]} == {"stack": 67108864}
    assert "HF_HUB_OFFLINE=1" in info["Config"]["Env"]
    cmd = info["Config"]["Cmd"]
    assert cmd[:4] == ["trtllm-serve", MODEL, "--host", "0.0.0.0"]
    assert "--trust_remote_code" in cmd
    options = (deploy["work"] / "conf" / (deploy["name"] + ".yml")).read_text()
    assert "free_gpu_memory_fraction: 0.9" in options and "disable_overlap_scheduler: true" in options
    assert "enable_block_reuse" not in options  # LLM, not VLM
    assert "Wait until the endpoint answers a 1-token request" in proc.output
    status, body = _chat(deploy["port"])
    assert status == 200
    assert body["choices"][0]["message"]["role"] == "assistant"


def test_second_run_changes_nothing(deploy):
    before = _inspect(deploy["name"])
    proc = deploy["play"]()
    assert proc.returncode == 0, proc.output
    assert proc.recap["changed"] == "0", proc.output
    after = _inspect(deploy["name"])
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]


def test_bad_input_fails_before_the_container_is_touched(deploy):
    before = _inspect(deploy["name"])
    proc = deploy["play"]("-e", "trtllm_server_kind=vlm", "-e", "trtllm_server_port=8355")
    assert proc.returncode != 0
    assert "a VLM must not take the LLM port" in proc.output
    proc = deploy["play"]("-e", "trtllm_server_image=sparkfleet-test/no-such-image:1")
    assert proc.returncode != 0
    assert "image sparkfleet-test/no-such-image:1 is not on localhost" in proc.output
    proc = deploy["play"]("-e", '{"trtllm_server_extra_llm_api_options": {"max_batch_size": 4}}')
    assert proc.returncode != 0
    assert "must not set what the command line sets (max_batch_size)" in proc.output
    proc = deploy["play"]("-e", '{"trtllm_server_model": "acme/unknown-model", "trtllm_server_model_spec": {}}')
    assert proc.returncode != 0
    assert "model 'acme/unknown-model' is not in the Spark support matrix" in proc.output
    proc = deploy["play"]("-e", '{"trtllm_server_model": "nvidia/Qwen3-235B-A22B-FP4", "trtllm_server_model_spec": {}}')
    assert proc.returncode != 0
    assert "the model needs 2 Sparks and this role serves one host" in proc.output
    proc = deploy["play"]("-e", '{"trtllm_server_model": "nvidia/Qwen3-8B-FP4", "trtllm_server_model_spec": {}}')
    assert proc.returncode != 0
    assert "nvidia/Qwen3-8B-FP4 (revision main) is not in the Hugging Face cache of localhost" in proc.output
    after = _inspect(deploy["name"])
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]


def test_changed_setting_replaces_the_container_and_waits(deploy):
    before = _inspect(deploy["name"])
    proc = deploy["play"]("-e", '{"trtllm_server_extra_llm_api_options": {"kv_cache_config": {"free_gpu_memory_fraction": 0.8}}}')
    assert proc.returncode == 0, proc.output
    assert int(proc.recap["changed"]) >= 2
    after = _inspect(deploy["name"])
    assert after["Id"] != before["Id"]
    options = (deploy["work"] / "conf" / (deploy["name"] + ".yml")).read_text()
    assert "free_gpu_memory_fraction: 0.8" in options and "dtype: auto" in options
    status, dummy = _chat(deploy["port"])
    assert status == 200
    state = json.loads((deploy["work"] / "state" / "serving-llm.json").read_text())
    assert state["current"]["container_id"] == after["Id"]
    assert state["previous"]["container_id"] == before["Id"]
    assert state["current"]["config_sha256"] != state["previous"]["config_sha256"]
    assert state["current"]["commit"] == COMMIT and state["current"]["port"] == deploy["port"]
