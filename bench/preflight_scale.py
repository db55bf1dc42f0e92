# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark (not a test): preflight of 1 vs N lab hosts, wall time and controller CPU seconds per host.

    .venv/bin/python bench/preflight_scale.py [--hosts 1,8] [--repeat 3] [--keep]
    .venv/bin/python bench/preflight_scale.py --plot-only     # redraw the PNG from the JSON (needs matplotlib)

Brings up its own lab (LAB_NAME=sparkfleet-lab-pfbench, max(hosts) sim hosts), runs playbooks/preflight.yml
against the first k hosts (offline: no Hub), one warm-up run then --repeat timed runs per k, and writes
bench/results/preflight_scale.json and bench/results/preflight_scale.png (when matplotlib is importable).
Controller CPU = user+sys of ansible-playbook and all its children (ssh clients included), from
getrusage(RUSAGE_CHILDREN); the sim hosts' own CPU is not in it (they share the machine's cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LAB_NAME = "sparkfleet-lab-pfbench"
VENV_BIN = REPO / ".venv" / "bin"


def lab(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LAB_NAME=LAB_NAME)
    return subprocess.run([str(REPO / "lab" / "lab"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600, check=False)


def run_preflight(inventory: Path, hosts: list[str], report_dir: Path) -> dict:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/preflight.yml", "--limit", ",".join(hosts),
           "-e", "sparkfleet_offline=true", "-e", "preflight_report_dir=%s" % report_dir]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit("preflight failed on %s:\n%s" % (hosts, (proc.stdout + proc.stderr)[-4000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = json.loads((report_dir / "preflight.json").read_text())
    module_seconds = [report["hosts"][h]["duration_seconds"] for h in hosts]
    tasks = proc.stdout.count("\nTASK [")
    return {"wall_seconds": round(wall, 3), "controller_cpu_seconds": round(cpu, 3),
            "controller_cpu_seconds_per_host": round(cpu / len(hosts), 3),
            "module_seconds_max": max(module_seconds), "module_seconds_mean": round(statistics.mean(module_seconds), 3),
            "tasks": tasks}


def plot(data: dict) -> Path | None:
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    except ImportError:
        print("matplotlib is not installed: no PNG (pip install matplotlib, then --plot-only)", file=sys.stderr)
        return None
    ks = [r["hosts"] for r in data["runs"]]
    walls = [r["wall_seconds_median"] for r in data["runs"]]
    cpus = [r["controller_cpu_seconds_per_host_median"] for r in data["runs"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.bar([str(k) for k in ks], walls, color="#76b900")
    ax1.axhline(walls[0] * 3, color="red", linestyle="--", label="3x the 1-host wall time (goal)")
    ax1.set_xlabel("lab hosts")
    ax1.set_ylabel("wall time of playbooks/preflight.yml (s, median)")
    ax1.legend(loc="upper left", fontsize=8)
    for i, w in enumerate(walls):
        ax1.text(i, w, "%.1fs (%.2fx)" % (w, w / walls[0]), ha="center", va="bottom", fontsize=8)
    ax2.bar([str(k) for k in ks], cpus, color="#555555")
    ax2.set_xlabel("lab hosts")
    ax2.set_ylabel("controller CPU seconds per host (median)")
    fig.suptitle("sparkfleet preflight scaling (%s, %d cores)" % (data["machine"], data["cpu_count"]))
    fig.tight_layout()
    out = RESULTS / "preflight_scale.png"
    fig.savefig(out, dpi=110)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="1,8", help="comma-separated host counts (default 1,8)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the benchmark lab up")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_json = RESULTS / "preflight_scale.json"
    if args.plot_only:
        print(plot(json.loads(out_json.read_text())))
        return 0
    counts = sorted(int(k) for k in args.hosts.split(","))
    up = lab("up", str(max(counts)))
    if up.returncode != 0:
        raise SystemExit("lab up failed:\n%s\n%s" % (up.stdout[-3000:], up.stderr[-3000:]))
    inventory = REPO / "lab" / ".state" / LAB_NAME / "inventory.yml"
    names = ["spark-%d" % i for i in range(1, max(counts) + 1)]
    runs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for k in counts:
                hosts = names[:k]
                run_preflight(inventory, hosts, Path(tmp) / ("warm-%d" % k))  # warm-up: SSH control masters, caches
                samples = [run_preflight(inventory, hosts, Path(tmp) / ("r%d-%d" % (k, i))) for i in range(args.repeat)]
                entry = {"hosts": k, "samples": samples}
                for key in ("wall_seconds", "controller_cpu_seconds", "controller_cpu_seconds_per_host", "module_seconds_max"):
                    entry[key + "_median"] = round(statistics.median(s[key] for s in samples), 3)
                runs.append(entry)
                print("%d host(s): wall %.2fs, controller CPU %.2fs/host, module %.2fs" % (
                    k, entry["wall_seconds_median"], entry["controller_cpu_seconds_per_host_median"], entry["module_seconds_max_median"]))
    finally:
        if not args.keep:
            lab("down")
    base = runs[0]["wall_seconds_median"]
    data = {
        "benchmark": "preflight_scale", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.node(), "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(),
        "module_calls_per_host": 1, "repeat": args.repeat, "runs": runs,
        "wall_ratio_vs_1_host": {str(r["hosts"]): round(r["wall_seconds_median"] / base, 2) for r in runs},
        "goal": "wall(8 hosts) <= 3 x wall(1 host)",
        "goal_met": all(r["wall_seconds_median"] <= 3 * base for r in runs),
    }
    out_json.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps({k: data[k] for k in ("wall_ratio_vs_1_host", "goal_met")}))
    print(plot(data) or "no plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
