# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Hub stand-in as the lab runs it: the lab-services image started by lab/hub/start.sh."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"  # before importing huggingface_hub (read at import time)

from huggingface_hub import snapshot_download  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
START = REPO / "lab" / "hub" / "start.sh"
IMAGE = "sparkfleet-lab/lab-services:latest"


def _image_has_hub():
    if not shutil.which("docker") or subprocess.run(["docker", "info"], capture_output=True,
                                                    check=False).returncode != 0:
        return False
    return subprocess.run(["docker", "run", "--rm", "--entrypoint", "/bin/sh", IMAGE, "-c",
                           "test -f /opt/lab-hub/server.py"], capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not _image_has_hub(),
                                reason="lab-services image not built (lab/images/lab-services/build.sh)")


def test_hub_container_serves_snapshot_downloads(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = "sparkfleet-test-hub"
    env = dict(os.environ, LAB_HUB_NAME=name, LAB_HUB_PUBLISH_PORT=str(port))
    try:
        proc = subprocess.run([str(START), "start", "--", "--page-size", "3"], env=env, capture_output=True,
                              text=True, timeout=180, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        url = "http://127.0.0.1:%d" % port
        with urllib.request.urlopen(url + "/_lab/repos", timeout=10) as r:
            repos = json.loads(r.read())
        assert "nvidia/Qwen3-8B-FP4" in repos and repos["nvidia/Llama-3.3-70B-Instruct-FP4"]["gated"] is True
        path = Path(snapshot_download("openai/gpt-oss-20b", endpoint=url, cache_dir=tmp_path, token=False))
        assert (path / "original" / "model.safetensors").is_file()
        with urllib.request.urlopen(url + "/_lab/stats", timeout=10) as r:
            stats = json.loads(r.read())
        # the client is seen through docker's port publishing; page size 3 => 7 tree pages for 20 entries
        assert stats["by_kind"]["api_tree"] == 7
        assert stats["by_repo"]["openai/gpt-oss-20b"]["body_bytes"] == sum(
            f.stat().st_size for f in path.rglob("*") if f.is_file())
    finally:
        subprocess.run([str(START), "stop"], env=env, capture_output=True, check=False)
        subprocess.run(["docker", "volume", "rm", name + "-data"], capture_output=True, check=False)
