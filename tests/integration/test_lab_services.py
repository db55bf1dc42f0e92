# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""`lab/lab up` starts the Hub stand-in and the registry on the lab network, and the sim hosts use them.

What a role on a sim host sees: the Hub at http://hub.sparkfleet.lab (revision API), NVIDIA's image
path in the registry at registry.sparkfleet.lab:5000, pulled by the host's own Docker engine, with and
without htpasswd authentication (`docker login`, as NGC's nvcr.io wants).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import uuid

import pytest

from conftest import REPO, lab_cli

IMAGE_REPO = "registry.sparkfleet.lab:5000/nvidia/tensorrt-llm/release"


def docker(*args, check=True, env=None, timeout=300):
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed rc={proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def test_inventory_points_the_collection_at_the_lab_services(lab):
    assert lab.vars["sparkfleet_hf_endpoint"] == "http://hub.sparkfleet.lab"
    assert lab.vars["sparkfleet_trtllm_image"] == f"{IMAGE_REPO}:spark-single-gpu-dev"
    assert lab.vars["sparkfleet_trtllm_image_newer"] == f"{IMAGE_REPO}:1.2.0rc6"


def test_sim_host_reaches_the_hub_by_its_lab_name(lab):
    proc = lab.ssh("spark-1", "curl -sf --max-time 10 http://hub.sparkfleet.lab/api/models/nvidia/Qwen3-8B-FP4/revision/main")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["id"] == "nvidia/Qwen3-8B-FP4"
    assert re.fullmatch(r"[0-9a-f]{40}", info["sha"])


@pytest.mark.parametrize("host,tag,version", [("spark-1", "spark-single-gpu-dev", "1.1.0rc3"),
                                              ("spark-2", "1.2.0rc6", "1.2.0rc6")])
def test_sim_host_pulls_the_standin_from_the_lab_registry(lab, host, tag, version):
    ref = f"{IMAGE_REPO}:{tag}"
    proc = lab.ssh(host, f"docker pull -q {ref} && docker run --rm {ref} "
                         "python3 -c 'import tensorrt_llm; print(tensorrt_llm.__version__)'",
                   sudo=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == version


@pytest.fixture()
def auth_registry(lab):
    """A second registry with htpasswd auth on the lab network (alias registry-auth.sparkfleet.lab)."""
    name = f"sparkfleet-test-authreg-{uuid.uuid4().hex[:6]}"
    user, password = "labuser", uuid.uuid4().hex
    docker("run", "-d", "--name", name, "--network", lab.name, "--network-alias", "registry-auth.sparkfleet.lab",
           "-p", "127.0.0.1::5000", "-e", f"LAB_REGISTRY_HTPASSWD_USER={user}",
           "-e", f"LAB_REGISTRY_HTPASSWD_PASSWORD={password}",
           "sparkfleet-lab/lab-services:latest", "/usr/local/bin/lab-services", "registry")
    config = REPO / "lab" / ".state" / f"{name}-docker-config"
    try:
        port = docker("port", name, "5000/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
        env = {**os.environ, "DOCKER_CONFIG": str(config)}
        for _attempt in range(60):  # the registry takes a moment to listen
            if _login(port, user, password, env):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"docker login to the auth registry {name} never succeeded")
        local = f"127.0.0.1:{port}/nvidia/tensorrt-llm/release:spark-single-gpu-dev"
        docker("tag", "sparkfleet-lab/trtllm-standin:latest", local)
        docker("push", local, env=env, timeout=600)
        docker("rmi", local)
        yield user, password
    finally:
        docker("rm", "-f", "-v", name, check=False)
        subprocess.run(["rm", "-rf", str(config)], check=False)


def _login(port, user, password, env):
    proc = subprocess.run(["docker", "login", "-u", user, "--password-stdin", f"127.0.0.1:{port}"],
                          input=password, capture_output=True, text=True, env=env, timeout=10, check=False)
    return proc.returncode == 0


def test_sim_host_pull_needs_login_when_the_registry_has_auth(lab, auth_registry):
    user, password = auth_registry
    ref = "registry-auth.sparkfleet.lab:5000/nvidia/tensorrt-llm/release:spark-single-gpu-dev"
    denied = lab.ssh("spark-2", f"docker logout registry-auth.sparkfleet.lab:5000 >/dev/null; docker pull {ref}",
                     sudo=True, timeout=300)
    assert denied.returncode != 0
    assert re.search(r"no basic auth credentials|unauthorized|authentication required", denied.stderr + denied.stdout)
    allowed = lab.ssh("spark-2", f"docker login -u {user} --password-stdin registry-auth.sparkfleet.lab:5000 "
                                 f"&& docker pull -q {ref}; rc=$?; docker logout registry-auth.sparkfleet.lab:5000; "
                                 f"docker rmi -f {ref} >/dev/null 2>&1; exit $rc",
                      sudo=True, timeout=600, input=password)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_registry_port_clash_is_a_clear_error(lab):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = lab_cli("up", "2", env={"LAB_REGISTRY_PORT": str(port)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"LAB_REGISTRY_PORT={port}" in proc.stderr
    assert "already in use" in proc.stderr
