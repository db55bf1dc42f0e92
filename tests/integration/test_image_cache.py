# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The image_cache role on an isolated lab of 2 sim Sparks, pulling from the lab registry (real Docker pulls).

Checked: both hosts pull the TRT-LLM stand-in and end with the same image ID, a second run changes nothing, a wrong
registry and wrong credentials fail with a message naming the registry (and never the password), a digest pin that
does not match is refused, and the not-yet-implemented strategies say so. Docker objects of this file are named
sparkfleet-test-imgcache-*.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "image_cache.yml"


@pytest.fixture(scope="module")
def lab(lab_factory):
    return lab_factory("serve", 2)


def play(lab, extra=None, *args):
    evars = ["-e", json.dumps(extra)] if extra else []
    return lab.ansible_playbook(PLAYBOOK, *evars, *args, timeout=900)


def image_id(lab, host, ref):
    proc = lab.ssh(host, f"docker image inspect --format '{{{{.Id}}}}' {ref}", sudo=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def test_registry_pull_on_every_host_then_no_change(lab):
    ref = lab.vars["sparkfleet_trtllm_image"]
    for host in lab.host_names:  # start without the image (a kept lab may hold it)
        lab.ssh(host, "docker ps -aq --filter label=sparkfleet.managed=true | xargs -r docker rm -f; "
                      f"docker rmi -f {ref} >/dev/null 2>&1; rm -f /var/lib/sparkfleet/state/images.json", sudo=True)
        assert image_id(lab, host, ref) is None
    first = play(lab)
    assert first.returncode == 0, first.output[-6000:]
    for host in lab.host_names:
        assert first.recap[host]["changed"] >= 2  # pull + state file
    ids = {host: image_id(lab, host, ref) for host in lab.host_names}
    assert len(set(ids.values())) == 1 and None not in ids.values(), ids
    state = json.loads(lab.ssh("spark-1", "cat /var/lib/sparkfleet/state/images.json", sudo=True).stdout)
    assert state["images"][ref]["id"] == ids["spark-1"]
    assert state["images"][ref]["pulled_by_sparkfleet"] is True
    mode = lab.ssh("spark-1", "stat -c %a /var/lib/sparkfleet/state/images.json", sudo=True).stdout.strip()
    assert mode == "600"

    second = play(lab)
    assert second.returncode == 0, second.output[-6000:]
    for host in lab.host_names:
        assert second.recap[host]["changed"] == 0, second.output[-6000:]
    assert {host: image_id(lab, host, ref) for host in lab.host_names} == ids


def test_wrong_registry_fails_naming_it(lab):
    proc = play(lab, {"image_cache_images": ["registry-missing.sparkfleet.lab:5000/nvidia/tensorrt-llm/release:x"]},
                "--limit", "spark-1")
    assert proc.returncode != 0
    assert "from the registry registry-missing.sparkfleet.lab:5000 on spark-1" in proc.output
    assert "the pull failed" in proc.output


@pytest.fixture()
def auth_registry(lab):
    """A registry with htpasswd auth on this lab's network (alias registry-auth.sparkfleet.lab)."""
    name = f"sparkfleet-test-imgcache-authreg-{uuid.uuid4().hex[:6]}"
    user, password = "labuser", uuid.uuid4().hex
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", lab.name,
                    "--network-alias", "registry-auth.sparkfleet.lab",
                    "-e", f"LAB_REGISTRY_HTPASSWD_USER={user}", "-e", f"LAB_REGISTRY_HTPASSWD_PASSWORD={password}",
                    "sparkfleet-lab/lab-services:latest", "/usr/local/bin/lab-services", "registry"],
                   capture_output=True, text=True, check=True, timeout=120)
    try:
        # The registry answers 401 on /v2/ once it listens (bounded wait, from a sim host).
        probe = lab.ssh("spark-1", "for i in $(seq 60); do code=$(curl -s -o /dev/null -w '%{http_code}' "
                                   "http://registry-auth.sparkfleet.lab:5000/v2/); [ \"$code\" = 401 ] && exit 0; "
                                   "sleep 0.5; done; exit 1")
        assert probe.returncode == 0, probe.stdout + probe.stderr
        yield user, password
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False, timeout=120)


def test_wrong_credentials_fail_naming_the_registry(lab, auth_registry):
    user, dummy = auth_registry
    wrong = "wrong-" + uuid.uuid4().hex
    proc = play(lab, {"image_cache_images": ["registry-auth.sparkfleet.lab:5000/nvidia/tensorrt-llm/release:spark-single-gpu-dev"],
                      "image_cache_registry_username": user, "image_cache_registry_password": wrong},
                "--limit", "spark-1")
    assert proc.returncode != 0
    assert "from the registry registry-auth.sparkfleet.lab:5000 on spark-1" in proc.output
    assert "docker login as labuser was refused" in proc.output
    assert wrong not in proc.output
    # No credential is left behind on the host.
    config = lab.ssh("spark-1", "cat /root/.docker/config.json 2>/dev/null || true", sudo=True).stdout
    assert wrong not in config and "registry-auth.sparkfleet.lab" not in config


def test_digest_pin_mismatch_is_refused(lab):
    ref = lab.vars["sparkfleet_trtllm_image"]
    pin = "sha256:" + "0" * 64
    proc = play(lab, {"image_cache_image_digests": {ref: pin}}, "--limit", "spark-1")
    assert proc.returncode != 0
    assert f"not the pinned {pin}" in proc.output


def test_archive_without_a_tarball_fails_naming_the_variable(lab):
    proc = play(lab, {"image_cache_strategy": "archive"}, "--limit", "spark-1")
    assert proc.returncode != 0
    assert "image_cache_strategy archive needs image_cache_archive" in proc.output
