# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/benchmark.yml against the lab stand-in (isolated lab of 2 sim Sparks serving the demo models).

The stand-in paces every request at TRTLLM_STANDIN_TOKENS_PER_SECOND (one sleep of 1/rate per token and request,
trtllm_standin/engine.py), set to 10 here through trtllm_server_env (a slow rate keeps the scheduling
overhead of a loaded 2-core machine far below the 10 % tolerance). The collection's client must measure that
rate per request (output tokens / end-to-end latency, and 1 / TPOT) within 10 %, write the JSON and both plots,
send no load in check mode, and benchmark_engine=trtllm must stop with a clear message on an image without
tensorrt_llm.serve.scripts.benchmark_serving (the stand-in has none). A small sweep keeps the test short.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from _serving import LAB_SUFFIX, TOKENS_PER_SECOND, serve_demo  # pytest puts tests/integration on sys.path

REPO = Path(__file__).resolve().parents[2]
LLM = "nvidia/Qwen3-8B-FP4"
VLM = "nvidia/Qwen2.5-VL-7B-Instruct-FP4"
SWEEP = {"benchmark_concurrency": [1, 4], "benchmark_input_tokens": 32, "benchmark_output_tokens": 16,
         "benchmark_num_prompts": 8, "benchmark_instances": ["llm"]}


@pytest.fixture(scope="module")
def lab(lab_factory):
    lab = lab_factory(LAB_SUFFIX, 2)
    serve_demo(lab)
    return lab


def _completions(lab, host: str) -> int:
    """POST /v1/completions requests the LLM stand-in has answered so far (its uvicorn-style access log)."""
    proc = lab.ssh(host, "docker logs sparkfleet-trtllm-llm 2>&1 | grep -c 'POST /v1/completions' || true", sudo=True)
    return int(proc.stdout.strip() or 0)


@pytest.fixture(scope="module")
def bench(lab, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    out.chmod(0o755)  # the mode the role gives the report folder: its creation is then no change
    proc = lab.ansible_playbook(REPO / "playbooks" / "benchmark.yml", "-e", json.dumps(SWEEP),
                                "-e", f"benchmark_report_dir={out}", timeout=900)
    assert proc.returncode == 0, proc.output[-6000:]
    return {"dir": out, "proc": proc, "json": json.loads((out / "benchmark.json").read_text())}


def test_benchmark_measures_the_configured_token_rate(lab, bench):
    doc = bench["json"]
    assert doc["engine"] == "sparkfleet" and doc["client"] == "host"
    runs = {(r["host"], r["name"]): r for r in doc["runs"]}
    assert set(runs) == {(h, "llm") for h in lab.host_names}
    for run in runs.values():
        assert run["model"] == LLM and run["image"] == lab.vars["sparkfleet_trtllm_image"]
        assert [level["concurrency"] for level in run["levels"]] == [1, 4]
        for level in run["levels"]:
            assert level["completed"] == 8 and level["failed"] == 0
            assert level["total_output_tokens"] == 8 * 16
            # The per-request output rate the stand-in paces (median gap between tokens) within 10 % of the
            # configured rate. Means (tput_user = output tokens / e2e, 1 / mean TPOT) also count the scheduler
            # stalls of a starved sim host (p99 ITL of 200-300 ms at a load average of 40 on 2 cores): 20 % there.
            assert 1000.0 / level["itl_ms"]["median"] == pytest.approx(TOKENS_PER_SECOND, rel=0.10)
            assert level["tput_user"] == pytest.approx(TOKENS_PER_SECOND, rel=0.20)
            assert 1000.0 / level["tpot_ms"]["mean"] == pytest.approx(TOKENS_PER_SECOND, rel=0.20)
            assert level["ttft_ms"]["mean"] >= 1000.0 / TOKENS_PER_SECOND * 0.9  # one paced token before the first chunk
            assert level["e2el_ms"]["p50"] <= level["e2el_ms"]["p99"]
            for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
                assert set(level[metric]) >= {"mean", "median", "p50", "p99"}
        one, four = run["levels"]
        # the stand-in paces each request independently: 4 in flight give close to 4x the output throughput
        assert four["output_throughput"] > 2.5 * one["output_throughput"]
        assert one["output_throughput"] == pytest.approx(TOKENS_PER_SECOND, rel=0.15)


def test_benchmark_writes_the_plots_and_a_summary(lab, bench):
    for name in ("benchmark-throughput.png", "benchmark-latency.png"):
        data = (bench["dir"] / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 15000
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 1000 and height >= 400
    out = bench["proc"].output
    assert "OUT TOK/S" in out
    for host in lab.host_names:
        assert bench["proc"].recap[host]["changed"] == 0


def test_check_mode_sends_no_load(lab, bench, tmp_path):
    before = {h: _completions(lab, h) for h in lab.host_names}
    proc = lab.ansible_playbook(REPO / "playbooks" / "benchmark.yml", "--check", "-e", json.dumps(SWEEP),
                                "-e", f"benchmark_report_dir={tmp_path}", timeout=600)
    assert proc.returncode == 0, proc.output[-6000:]
    assert before == {h: _completions(lab, h) for h in lab.host_names}
    assert all(count >= 2 * 8 for count in before.values())  # the sweep of the module fixture did reach the log
    assert not (tmp_path / "benchmark.json").exists()


def test_trtllm_engine_is_refused_on_an_image_without_benchmark_serving(lab, tmp_path):
    proc = lab.ansible_playbook(REPO / "playbooks" / "benchmark.yml", "-e", json.dumps(SWEEP),
                                "-e", "benchmark_engine=trtllm", "-e", f"benchmark_report_dir={tmp_path}", timeout=600)
    assert proc.returncode != 0
    assert "cannot import it" in proc.output and "No module named 'tensorrt_llm.serve'" in proc.output
    assert "use benchmark_engine=sparkfleet" in proc.output
    assert not (tmp_path / "benchmark.json").exists()
