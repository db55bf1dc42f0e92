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
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lab import REPO, RESULTS, import_pyplot, lab_session, run_playbook, sweep  # noqa: E402  pylint: disable=wrong-import-position

LAB_NAME = "sparkfleet-lab-pfbench"


def run_preflight(inventory: Path, hosts: list[str], report_dir: Path) -> dict:
    run = run_playbook(["-i", str(inventory), "playbooks/preflight.yml", "--limit", ",".join(hosts),
                        "-e", "sparkfleet_offline=true", "-e", "preflight_report_dir=%s" % report_dir],
                       len(hosts), env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}, timeout=1800)
    if run["rc"] != 0:
        raise SystemExit("preflight failed on %s:\n%s" % (hosts, run["output"][-4000:]))
    report = json.loads((report_dir / "preflight.json").read_text())
    module_seconds = [report["hosts"][h]["duration_seconds"] for h in hosts]
    return {"wall_seconds": run["wall_seconds"], "controller_cpu_seconds": run["controller_cpu_seconds"],
            "controller_cpu_seconds_per_host": run["controller_cpu_seconds_per_host"],
            "module_seconds_max": max(module_seconds), "module_seconds_mean": round(statistics.mean(module_seconds), 3),
            "tasks": run["stdout"].count("\nTASK [")}


def plot(data: dict) -> Path | None:
    plt = import_pyplot()
    if plt is None:
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
    with tempfile.TemporaryDirectory() as tmp, lab_session(LAB_NAME, max(counts), keep=args.keep) as the_lab:

        def warmup(dummy_config: str, k: int) -> None:  # SSH control masters, caches
            run_preflight(the_lab.inventory, the_lab.hosts(k), Path(tmp) / ("warm-%d" % k))

        def measure(dummy_config: str, k: int, i: int) -> dict:
            return run_preflight(the_lab.inventory, the_lab.hosts(k), Path(tmp) / ("r%d-%d" % (k, i)))

        def on_point(dummy_runs: list, entry: dict) -> None:
            print("%d host(s): wall %.2fs, controller CPU %.2fs/host, module %.2fs" % (
                entry["hosts"], entry["wall_seconds_median"], entry["controller_cpu_seconds_per_host_median"],
                entry["module_seconds_max_median"]))

        runs = sweep(counts, ["ours"], args.repeat, measure,
                     ("wall_seconds", "controller_cpu_seconds", "controller_cpu_seconds_per_host", "module_seconds_max"),
                     warmup=warmup, on_point=on_point)
    for entry in runs:
        entry.pop("config")
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
