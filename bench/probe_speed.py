# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of sparkfleet.trtllm.openai_probe (issue 7): how soon it notices readiness, what one poll costs.

Not a test. Runs the real module (plugins/modules/openai_probe.py, as Ansible would run it on a host) against the
TensorRT-LLM stand-in started on 127.0.0.1, and prints and saves:

* readiness lag: an independent observer thread connects every 5 ms to find the instant the server starts
  accepting; the probe (default poll interval 1 s) must report `serving` within 1 s of that instant. The figure is
  the time from the observed listen to the end of the probe process (detection + the 1-token request + exit),
  so it is an upper bound of the detection lag.
* CPU per poll: the probe polls a closed port for a few seconds; (CPU of that run - CPU of a 1-poll run) divided
  by the extra polls, from the child processes' rusage (user + system).

Usage: .venv/bin/python bench/probe_speed.py [--runs 5]  ->  bench/results/probe_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "plugins" / "modules" / "openai_probe.py"
STANDIN = REPO / "lab" / "images" / "trtllm-standin" / "overlay" / "usr" / "local" / "bin" / "trtllm-serve"
STANDIN_LIB = REPO / "lab" / "images" / "trtllm-standin" / "overlay" / "opt" / "trtllm-standin"
RESULTS = REPO / "bench" / "results" / "probe_speed.json"
MODEL = "nvidia/Qwen3-8B-FP4"
COMMIT = "a" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_hf_home(root: Path) -> Path:
    storage = root / "hub" / ("models--" + MODEL.replace("/", "--"))
    snapshot = storage / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(COMMIT)
    (snapshot / "config.json").write_text(json.dumps({"architectures": ["Qwen3ForCausalLM"]}))
    return root


def run_probe(args: dict) -> tuple[dict, float, float]:
    """Run the module as Ansible runs it; return (result, wall end time, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, fh)
    env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
    proc = subprocess.run([sys.executable, str(MODULE), fh.name], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    end = time.time()
    os.unlink(fh.name)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(proc.stdout), end, cpu


def observe_listen(port: int, stop: threading.Event, seen: list) -> None:
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                seen.append(time.time())
                return
        except OSError:
            time.sleep(0.005)


def readiness_lag(load_seconds: float) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        hf_home = make_hf_home(Path(tmp))
        env = dict(os.environ, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", PYTHONPATH=str(STANDIN_LIB),
                   TRTLLM_STANDIN_LOAD_SECONDS=str(load_seconds))
        server = subprocess.Popen([sys.executable, str(STANDIN), MODEL, "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop, seen = threading.Event(), []
        observer = threading.Thread(target=observe_listen, args=(port, stop, seen), daemon=True)
        observer.start()
        try:
            result, end, _cpu = run_probe({"base_url": f"http://127.0.0.1:{port}", "model": MODEL,
                                           "timeout_seconds": load_seconds + 30})
        finally:
            stop.set()
            server.terminate()
            server.wait(timeout=10)
    if result.get("failed") or not seen:
        raise SystemExit(f"probe did not reach serving: {result.get('msg')}")
    return {"stage": result["stage"], "attempts": result["attempts"], "lag_seconds": round(end - seen[0], 3),
            "seconds_to_serving": result["seconds_to_serving"], "latency_ms": result["latency_ms"]}


def cpu_per_poll() -> dict:
    port = free_port()  # nothing listens: every poll is a refused connection, as while trtllm-serve loads
    base = {"base_url": f"http://127.0.0.1:{port}", "model": MODEL, "poll_interval_seconds": 0.01}
    one, _end, cpu_one = run_probe(dict(base, timeout_seconds=0.001))
    many, _end, cpu_many = run_probe(dict(base, timeout_seconds=3))
    polls = many["attempts"] - one["attempts"]
    return {"polls": polls, "cpu_seconds_1_poll_run": round(cpu_one, 4), "cpu_seconds_many_polls_run": round(cpu_many, 4),
            "cpu_ms_per_poll": round((cpu_many - cpu_one) / polls * 1000, 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--load-seconds", type=float, default=2.0)
    opts = parser.parse_args()
    lags = [readiness_lag(opts.load_seconds) for _run in range(opts.runs)]
    cpu = [cpu_per_poll() for _run in range(3)]
    lag_values = [r["lag_seconds"] for r in lags]
    summary = {
        "machine": f"{platform.node()} {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "poll_interval_seconds": 1.0,
        "readiness_runs": lags,
        "readiness_lag_seconds": {"max": max(lag_values), "median": statistics.median(lag_values)},
        "cpu_runs": cpu,
        "cpu_ms_per_poll_median": statistics.median(r["cpu_ms_per_poll"] for r in cpu),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"readiness lag (listen -> probe done, poll interval 1 s): median {summary['readiness_lag_seconds']['median']} s, "
          f"max {summary['readiness_lag_seconds']['max']} s over {opts.runs} runs")
    print(f"CPU per poll of a refused connection: median {summary['cpu_ms_per_poll_median']} ms")
    print(f"saved {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
