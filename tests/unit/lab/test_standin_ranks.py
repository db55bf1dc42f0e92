# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stand-in's multi-rank heartbeat, with real processes: the launcher's worker rank joins rank 0 (real
trtllm-serve), rank 0 listens for HTTP only once every rank joined and exits when the worker dies."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

OVERLAY = Path(__file__).resolve().parents[3] / "lab" / "images" / "trtllm-standin" / "overlay"
LAUNCH = OVERLAY / "usr" / "local" / "bin" / "trtllm-llmapi-launch"
SERVE = OVERLAY / "usr" / "local" / "bin" / "trtllm-serve"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _health(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return resp.status
    except OSError:
        return None


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def world(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"architectures": ["Qwen3ForCausalLM"], "max_position_embeddings": 4096}')
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("# rank 0 first\n127.0.0.1 slots=1\n127.0.0.2 slots=1\n")
    env = dict(os.environ, OMPI_MCA_orte_default_hostfile=str(hostfile), OMPI_COMM_WORLD_SIZE="2",
               TRTLLM_STANDIN_LOAD_SECONDS="0.2", TRTLLM_STANDIN_HEARTBEAT_PORT=str(_free_port()),
               TRTLLM_STANDIN_HOME=str(OVERLAY / "opt" / "trtllm-standin"), PYTHONDONTWRITEBYTECODE="1")
    procs = []

    def start(rank: int, *cmd: str) -> subprocess.Popen:
        proc = subprocess.Popen([str(LAUNCH), *cmd], env=dict(env, OMPI_COMM_WORLD_RANK=str(rank)),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        return proc

    yield model, start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_rank0_serves_only_while_every_rank_beats(world):
    model, start = world
    port = _free_port()
    rank0 = start(0, str(SERVE), str(model), "--tp_size", "2", "--port", str(port))
    time.sleep(1.5)
    assert _health(port) is None, "rank 0 listened before the worker rank joined"
    worker = start(1, "true")
    assert _wait(lambda: _health(port) == 200, 20), "rank 0 did not serve after the worker joined"
    worker.kill()
    assert rank0.wait(timeout=15) == 1
    out = rank0.stdout.read()
    assert "rank 1 of 2 joined" in out and "lost rank(s) 1" in out
    assert _health(port) is None


def test_worker_exits_when_rank0_goes_away(world):
    model, start = world
    port = _free_port()
    rank0 = start(0, str(SERVE), str(model), "--tp_size", "2", "--port", str(port))
    worker = start(1, "true")
    assert _wait(lambda: _health(port) == 200, 20)
    rank0.kill()
    assert worker.wait(timeout=15) == 1
    assert "lost rank 0" in worker.stdout.read()


def test_single_rank_is_unchanged(world, tmp_path):
    model, start = world
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMPI_")}
    proc = subprocess.Popen([str(SERVE), str(model), "--port", str(port)], env=dict(env, TRTLLM_STANDIN_LOAD_SECONDS="0.2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait(lambda: _health(port) == 200, 20)
    finally:
        proc.kill()
        proc.wait()
