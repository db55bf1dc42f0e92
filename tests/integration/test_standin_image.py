# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The TensorRT-LLM stand-in image on the outer Docker engine (mark: docker).

The image is built (or reused by content hash) with ``lab/images/build-image trtllm-standin``, unless
``TRTLLM_STANDIN_IMAGE`` names one. Test containers are named ``sparkfleet-test-standin-*`` and removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from test_standin_server import COMMIT, REPO_ID, make_hf_home

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
BUILD_IMAGE = REPO / "lab" / "images" / "build-image"


def docker(*args, timeout=120, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def image():
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False).returncode != 0:
        pytest.skip("no Docker engine answers (start dockerd)")
    if os.environ.get("TRTLLM_STANDIN_IMAGE"):
        return os.environ["TRTLLM_STANDIN_IMAGE"]
    proc = subprocess.run([str(BUILD_IMAGE), "--quiet", "trtllm-standin"], capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, f"build-image failed\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture
def container_name():
    names = []

    def make(role):
        name = f"sparkfleet-test-standin-{role}-{uuid.uuid4().hex[:8]}"
        names.append(name)
        return name

    yield make
    for name in names:
        docker("rm", "-f", name, check=False)


def wait_models(url: str, container: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    logs = docker("logs", container, check=False)
    pytest.fail(f"{url} did not answer within {timeout}s\n{logs.stdout}\n{logs.stderr}")
    return {}


def container_ip(name: str) -> str:
    return docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name).stdout.strip()


def test_image_metadata_and_guide_checks(image):
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    assert config["Cmd"] == ["/bin/bash"], "like NVIDIA's image, it starts no server by itself"
    assert "TRTLLM_STANDIN_VERSION=1.1.0rc3" in config["Env"]
    assert config["Labels"]["sparkfleet.lab.standin"] == "not-nvidia-tensorrt-llm"
    proc = docker("run", "--rm", image, "python", "-c", "import tensorrt_llm; print(tensorrt_llm.__version__)")
    assert proc.stdout.splitlines() == ["[TensorRT-LLM] TensorRT-LLM version: 1.1.0rc3", "1.1.0rc3"]
    proc = docker("run", "--rm", "-e", "TRTLLM_STANDIN_VERSION=1.2.0rc6", image, "python3", "-c",
                  "import tensorrt_llm; print(tensorrt_llm.__version__)")
    assert proc.stdout.splitlines()[-1] == "1.2.0rc6"
    proc = docker("run", "--rm", image, "sh", "-c",
                  "for c in trtllm-serve trtllm-llmapi-launch mpirun /usr/sbin/sshd ssh; do command -v $c; done; trtllm-serve serve --help")
    assert proc.stdout.splitlines()[:5] == ["/usr/local/bin/trtllm-serve", "/usr/local/bin/trtllm-llmapi-launch",
                                            "/usr/bin/mpirun", "/usr/sbin/sshd", "/usr/bin/ssh"]
    assert "lab stand-in" in proc.stdout


def test_serves_the_guide_command_from_a_mounted_cache(image, tmp_path, container_name):
    hf_home = make_hf_home(tmp_path / "hf")
    extra = tmp_path / "extra-llm-api-config.yml"
    extra.write_text("print_iter_log: false\nkv_cache_config:\n  dtype: auto\n  free_gpu_memory_fraction: 0.9\n"
                     "cuda_graph_config:\n  enable_padding: true\ndisable_overlap_scheduler: true\n")
    name = container_name("serve")
    docker("run", "-d", "--name", name, "-e", "HF_HUB_OFFLINE=1", "-e", "TRTLLM_STANDIN_LOAD_SECONDS=1",
           "-v", f"{hf_home}:/root/.cache/huggingface:ro", "-v", f"{extra}:/tmp/extra-llm-api-config.yml:ro",
           image, "trtllm-serve", REPO_ID, "--max_batch_size", "64", "--trust_remote_code", "--host", "0.0.0.0",
           "--port", "8355", "--extra_llm_api_options", "/tmp/extra-llm-api-config.yml")
    base = f"http://{container_ip(name)}:8355"
    models = wait_models(base + "/v1/models", name)
    assert models["data"][0]["id"] == REPO_ID and models["data"][0]["owned_by"] == "tensorrt_llm"
    body = json.dumps({"model": REPO_ID, "messages": [{"role": "user", "content": "Paris is great because"}],
                       "max_tokens": 4}).encode()
    request = urllib.request.Request(base + "/v1/chat/completions", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["usage"]["completion_tokens"] == 4
    logs = docker("logs", name).stdout
    assert f"snapshots/{COMMIT}" in logs and "Uvicorn running on http://0.0.0.0:8355" in logs
    docker("stop", "-t", "10", name)
    assert docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "0"


def test_mpirun_two_ranks_serve_tp2_from_rank_0(image, tmp_path, container_name):
    hf_home = make_hf_home(tmp_path / "hf")
    name = container_name("mpi")
    docker("run", "-d", "--name", name, "-e", "HF_HUB_OFFLINE=1", "-e", "TRTLLM_STANDIN_LOAD_SECONDS=1",
           "-e", "OMPI_ALLOW_RUN_AS_ROOT=1", "-e", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
           "-v", f"{hf_home}:/root/.cache/huggingface:ro", image,
           "mpirun", "--oversubscribe", "-np", "2", "-x", "HF_HUB_OFFLINE", "trtllm-llmapi-launch", "trtllm-serve", REPO_ID,
           "--tp_size", "2", "--backend", "pytorch", "--host", "0.0.0.0", "--port", "8355")
    models = wait_models(f"http://{container_ip(name)}:8355/v1/models", name)
    assert models["data"][0]["id"] == REPO_ID
    logs = docker("logs", name).stdout
    assert "rank 0 of 2" in logs and "rank 1 of 2" in logs
    procs = docker("exec", name, "ps", "-eo", "args").stdout
    servers = [line for line in procs.splitlines() if line.startswith("python /usr/local/bin/trtllm-serve ")]
    assert len(servers) == 1, procs
