# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of sparkfleet.trtllm.preflight_info, run in-process on this machine with a fake nvidia-smi program."""

from __future__ import annotations

import os
import socket

import pytest
from ansible_collections.sparkfleet.trtllm.plugins.modules import preflight_info

from test_gpu_info import fake_smi  # pytest puts this test folder on sys.path

ALL_CHECKS = ["gpu_driver", "cuda_driver", "gpu_architecture", "memory", "model_nodes", "disk", "docker",
              "docker_nvidia_runtime", "ports", "clock", "hub", "connectx"]


@pytest.fixture
def run_module(module_runner):
    def _run(args: dict, check_mode: bool = True) -> tuple[int, dict, str]:
        run = module_runner(preflight_info.main, args, check_mode=check_mode)
        return run.rc, run.result, run.out

    return _run


@pytest.fixture
def gb10(tmp_path, monkeypatch):
    smi = fake_smi(tmp_path, "gb10")
    monkeypatch.setenv("PATH", "%s:%s" % (smi.parent, os.environ["PATH"]))
    return smi


def by_check(out):
    return {c["check"]: c for c in out["checks"]}


def test_healthy_gb10_host_passes_every_gpu_check(gb10, tmp_path, run_module):
    hf_home = tmp_path / "hf"
    args = {"models": [{"model": "nvidia/Qwen3-8B-FP4"}], "hub_check": False, "hf_home": str(hf_home), "disk_margin_gb": 0, "ports": []}
    rc, out, dummy = run_module(args)
    assert rc == 0, out
    assert out["changed"] is False
    assert [c["check"] for c in out["checks"]] == ALL_CHECKS
    checks = by_check(out)
    for name in ("gpu_driver", "cuda_driver", "gpu_architecture", "model_nodes", "disk"):
        assert checks[name]["status"] == "pass", checks[name]
    assert checks["gpu_driver"]["value"] == "580.95.05"
    assert out["gpu_info"]["gpus"][0]["name"] == "NVIDIA GB10"
    assert out["models"][0]["quantization"] == "NVFP4"
    assert sum(out["summary"].values()) == len(ALL_CHECKS)
    assert not hf_home.exists()  # nothing created


def test_unhealthy_host_reports_named_checks_with_hints(gb10, tmp_path, run_module):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        rc, out, dummy = run_module({
            "models": [{"model": "nvidia/Qwen3-235B-A22B-FP4"}, {"model": "acme/huge", "kind": "vlm", "download_gb": 1, "memory_gb": 100000}],
            "hub_check": False, "hf_home": str(tmp_path), "disk_margin_gb": 10 ** 6, "ports": [port]})
    assert rc == 0
    assert out["status"] == "fail"
    checks = by_check(out)
    for name in ("memory", "model_nodes", "disk", "ports"):
        assert checks[name]["status"] == "fail", checks[name]
        assert checks[name]["hint"], name
    assert "needs 2 Sparks" in checks["model_nodes"]["message"]
    assert "%d is in use by process" % port in checks["ports"]["message"]


def test_no_driver_is_a_failed_check_not_a_module_failure(tmp_path, monkeypatch, run_module):
    smi = fake_smi(tmp_path, "no-driver")
    monkeypatch.setenv("PATH", "%s:%s" % (smi.parent, os.environ["PATH"]))
    rc, out, dummy = run_module({"models": [{"model": "nvidia/Qwen3-8B-FP4"}], "hub_check": False, "hf_home": str(tmp_path)})
    assert rc == 0
    checks = by_check(out)
    assert checks["gpu_driver"]["status"] == "fail"
    assert "couldn't communicate with the NVIDIA driver" in checks["gpu_driver"]["message"]
    assert checks["memory"]["status"] == "skip" and checks["gpu_architecture"]["status"] == "skip"


def test_unknown_model_without_sizes_is_refused(gb10, run_module):
    rc, out, dummy = run_module({"models": [{"model": "acme/mystery"}]})
    assert rc == 1
    assert "models[0]" in out["msg"] and "missing: kind, download_gb, memory_gb" in out["msg"]


def test_token_never_appears_in_the_result(gb10, tmp_path, run_module):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = "http://127.0.0.1:%d" % sock.getsockname()[1]
    rc, out, text = run_module({"models": [{"model": "nvidia/Qwen3-8B-FP4"}], "hub_endpoint": dead,
                                "hub_token": "hf_verysecrettoken123", "hf_home": str(tmp_path), "hub_timeout": 3})
    assert rc == 0
    assert by_check(out)["hub"]["status"] == "fail"
    assert "hf_verysecrettoken123" not in text
