# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark (not a test): no-change re-run of site.yml on K lab hosts, Ansible's defaults vs our ansible.cfg.

    .venv/bin/python bench/fleet_scaling.py [--hosts 1,2,4,8] [--repeat 1] [--vars light|demo] [--keep]
                                            [--configs defaults,ours[,full][,mitogen]] [--count-calls]
    .venv/bin/python bench/fleet_scaling.py --plot-only     # redraw the PNG from the JSON (needs matplotlib)

Brings up one lab of max(K) sim hosts (LAB_NAME, default sparkfleet-lab-fleetbench), converges all of them once
with site.yml and our ansible.cfg, then for every K times the no-change re-run of site.yml limited to the first K
hosts, once per configuration:

- ``defaults``: an ansible.cfg holding only what is needed to find the collection and the inventory
  (collections_path, inventory, host_key_checking): forks 5, no pipelining, linear strategy forced for every play
  (``ANSIBLE_STRATEGY`` overrides nothing set in a play, so the plays' ``strategy`` lines are neutralised with
  ``-e sparkfleet_play_strategy=linear``), no fact cache, the default callback. ansible-core's own default ssh_args
  (``-C -o ControlMaster=auto -o ControlPersist=60s``) stay: they are Ansible's defaults.
- ``ours``: the shipped ansible.cfg as it is (site.yml's fast path included: docs/fast-path.md).
- ``full`` (optional): ``ours`` with ``-e sparkfleet_full_run=true``, every role on every host (the cost of a run
  on hosts that drifted, or of a fleet without the fast path).
- ``mitogen`` (optional, ``--configs defaults,ours,mitogen``; needs ``pip install -r requirements-mitogen.txt``): the
  shipped ansible.cfg with mitogen's strategy plugins (``ANSIBLE_STRATEGY=mitogen_linear``, the ``free`` plays as
  ``mitogen_free``), the optional profile of docs/performance.md.

``--count-calls`` adds one ``-vvv`` no-change run on the first host (linear strategy, skipped tasks shown, not
timed) and records the module calls and SSH round trips per role and task (``calls_per_host`` in the JSON).

Every timed run starts without SSH control masters (a fresh control_path_dir; masters are closed afterwards), so
the numbers are those of a run a few minutes after the previous one. The fact cache of ``ours`` is kept between
runs (that is its point) and was filled by the converge run.

Controller CPU = user+sys of ansible-playbook and all its children (ssh clients included), from
getrusage(RUSAGE_CHILDREN) deltas; the sim hosts' own CPU is not in it, but they share the machine's cores, so
wall times grow with K on a small machine. Machine CPU = what all cores did during the run (/proc/stat: controller
plus the sim hosts' sshd, sudo, module processes and Docker), and machine busy = machine CPU / (wall x cores): near
1, the run is bound by this machine's cores, which no Ansible setting can add. Each re-run must report changed=0 and failed=0 for every host in the
recap; a run that does not is flagged (``no_change: false``, ``all_runs_no_change``) and the others still run.
Writes bench/results/fleet_scaling.json (after every point) and bench/results/fleet_scaling.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lab import (RESULTS, REPO, VENV_BIN, count_module_calls, import_pyplot, lab_session,  # noqa: E402  pylint: disable=wrong-import-position
                  run_playbook, sweep)

ALL_CONFIGS = ("defaults", "ours", "full", "mitogen")
# Both var sets run every role of site.yml; "light" serves one model (one trtllm_server instance per host instead
# of two), which halves the serving role's share and the sim hosts' memory. SSH is allowed from the lab subnet
# (firewall_admin_cidrs) instead of per play host (firewall_ssh_from_fleet), so that a run limited to K of the
# converged hosts wants the same rules as the converge run (else it would delete the other hosts' SSH rules).
FIREWALL = ["-e", '{"firewall_expose": true, "firewall_ssh_from_fleet": false}',
            "-e", '{"firewall_allowed_cidrs": ["{{ sparkfleet_lab_subnet }}"], "firewall_admin_cidrs": ["{{ sparkfleet_lab_subnet }}"]}']
VAR_SETS = {
    "demo": ["-e", "@lab/demo-vars.yml", *FIREWALL],
    "light": ["-e", '{"sparkfleet_models": ["nvidia/Qwen3-8B-FP4"]}', *FIREWALL],
}
DEFAULTS_CFG = """# Ansible's defaults: only what is needed to find the collection and the inventory (written by fleet_scaling.py)
[defaults]
collections_path = {repo}/collections
inventory = {inventory}
host_key_checking = true
"""
PROFILE = re.compile(r"^(.+?) -+ (\d+\.\d+)s$", re.M)


def mitogen_strategy_dir() -> str | None:
    """The folder of mitogen's strategy plugins in the benchmark's venv, or None when mitogen is not installed."""
    import subprocess  # pylint: disable=import-outside-toplevel
    proc = subprocess.run([str(VENV_BIN / "python"), "-c", "import ansible_mitogen, os; "
                           "print(os.path.join(os.path.dirname(ansible_mitogen.__file__), 'plugins', 'strategy'))"],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def config_env(config: str, cfgs: dict) -> tuple[dict, list[str]]:
    """(environment, extra ansible-playbook arguments) of one configuration."""
    if config == "defaults":
        # ANSIBLE_STRATEGY overrides nothing set in a play: the plays' strategy lines are neutralised instead.
        return {"ANSIBLE_CONFIG": str(cfgs["defaults"])}, ["-e", "sparkfleet_play_strategy=linear"]
    if config == "mitogen":
        return ({"ANSIBLE_CONFIG": str(cfgs["ours"]), "ANSIBLE_STRATEGY_PLUGINS": cfgs["mitogen_dir"],
                 "ANSIBLE_STRATEGY": "mitogen_linear"}, ["-e", "sparkfleet_play_strategy=mitogen_free"])
    if config == "full":
        return {"ANSIBLE_CONFIG": str(cfgs["ours"])}, ["-e", "sparkfleet_full_run=true"]
    return {"ANSIBLE_CONFIG": str(cfgs["ours"])}, []


def playbook(config: str, cfgs: dict, inventory: Path, hosts: list[str], var_args: list[str], control_dir: Path,
             verbose: bool = False) -> dict:
    env, extra = config_env(config, cfgs)
    argv = ["-i", str(inventory), "site.yml", "--limit", ",".join(hosts), *var_args, *extra]
    if verbose:  # for counting the calls: every task banner before its calls
        env = dict(env, ANSIBLE_DISPLAY_SKIPPED_HOSTS="true")
        argv = ["-vvv", *argv, "-e", "sparkfleet_play_strategy=linear"]
    run = run_playbook(argv, len(hosts), env=env, control_dir=control_dir)
    if run["rc"] != 0:
        raise SystemExit("site.yml failed (%s, %s):\n%s" % (config, hosts, run["output"][-6000:]))
    stdout = run.pop("stdout")
    recap = run["recap"]
    # profile_tasks (ours) prints the slowest tasks at the end: keep them as the hot spots of the run
    tail = stdout[stdout.rfind("=" * 20):] if "=" * 20 in stdout else ""
    run.update({"changed_total": sum(r["changed"] for r in recap.values()),
                "task_results_per_host": round(sum(r["ok"] + r["skipped"] for r in recap.values()) / max(len(recap), 1), 1),
                "hot_tasks": [{"task": t.strip(), "seconds": float(s)} for t, s in PROFILE.findall(tail)][:25]})
    run.pop("rc")
    return run


def plot(data: dict) -> Path | None:
    plt = import_pyplot()
    if plt is None:
        return None
    colors = {"defaults": "#999999", "ours": "#76b900", "full": "#e07b00", "mitogen": "#1f77b4"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for config in ALL_CONFIGS:
        rows = [r for r in data["runs"] if r["config"] == config]
        if not rows:
            continue
        ks = [r["hosts"] for r in rows]
        ax1.plot(ks, [r["wall_seconds_median"] for r in rows], marker="o", color=colors[config], label=config)
        ax2.plot(ks, [r["controller_cpu_seconds_per_host_median"] for r in rows], marker="o", color=colors[config],
                 label=config)
        for k, r in zip(ks, rows):
            ax1.annotate("%.0fs" % r["wall_seconds_median"], (k, r["wall_seconds_median"]), fontsize=7,
                         textcoords="offset points", xytext=(0, 5), ha="center")
    for ax in (ax1, ax2):
        ax.set_xlabel("lab hosts (K)")
        ax.set_xticks(sorted({r["hosts"] for r in data["runs"]}))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax1.set_ylabel("wall time of the no-change site.yml re-run (s)")
    ax2.set_ylabel("controller CPU seconds per host")
    ax2.axhline(1.0, color="red", linestyle="--", linewidth=1)
    ax2.text(ax2.get_xlim()[0], 1.0, " goal: 1 s/host", color="red", fontsize=7, va="bottom")
    extra = " and the mitogen profile" if any(r["config"] == "mitogen" for r in data["runs"]) else ""
    fig.suptitle("sparkfleet site.yml no-change re-run: Ansible defaults vs shipped ansible.cfg%s (%s, %d cores, %s vars)"
                 % (extra, data["machine"], data["cpu_count"], data["vars"]), fontsize=9)
    fig.tight_layout()
    out = RESULTS / "fleet_scaling.png"
    fig.savefig(out, dpi=110)
    return out


def write_results(out_json: Path, args: argparse.Namespace, runs: list[dict], calls: dict | None = None) -> dict:
    """Write the JSON after every measured point, so an interrupted run keeps what it measured."""
    by = {(r["config"], r["hosts"]): r for r in runs}
    done = sorted(k for k in {r["hosts"] for r in runs} if ("defaults", k) in by and ("ours", k) in by)
    speedup = {str(k): round(by[("defaults", k)]["wall_seconds_median"] / by[("ours", k)]["wall_seconds_median"], 2)
               for k in done}
    speedup_mitogen = {str(k): round(by[("defaults", k)]["wall_seconds_median"] / by[("mitogen", k)]["wall_seconds_median"], 2)
                       for k in done if ("mitogen", k) in by}
    speedup_full = {str(k): round(by[("full", k)]["wall_seconds_median"] / by[("ours", k)]["wall_seconds_median"], 2)
                    for k in done if ("full", k) in by}
    top = max(done) if done else None
    data = {
        "benchmark": "fleet_scaling", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.node(), "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(),
        "vars": args.vars, "repeat": args.repeat, "lab": args.lab_name, "runs": runs,
        "configs": args.configs, "calls_per_host": calls,
        "speedup_wall_defaults_over_ours": speedup,
        "speedup_wall_defaults_over_mitogen": speedup_mitogen,
        "speedup_wall_full_path_over_ours": speedup_full,
        "goal": "at K=8: wall(defaults) >= 2 x wall(ours) and controller CPU of ours <= 1 s per host",
        "all_runs_no_change": all(smp["no_change"] for r in runs for smp in r["samples"]),
        "largest_k_measured": top,
        "goal_wall_met_at_largest_k": speedup[str(top)] >= 2.0 if top else None,
        "goal_cpu_met_at_largest_k": by[("ours", top)]["controller_cpu_seconds_per_host_median"] <= 1.0 if top else None,
    }
    out_json.write_text(json.dumps(data, indent=2) + "\n")
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="1,2,4,8", help="comma-separated host counts (default 1,2,4,8)")
    parser.add_argument("--repeat", type=int, default=1, help="timed re-runs per K and configuration (default 1)")
    parser.add_argument("--vars", choices=sorted(VAR_SETS), default="light",
                        help="light: one served model (default); demo: lab/demo-vars.yml (LLM + VLM)")
    parser.add_argument("--configs", default="defaults,ours",
                        help="comma-separated, from defaults, ours, mitogen (default defaults,ours)")
    parser.add_argument("--count-calls", action="store_true",
                        help="also count module calls and SSH round trips per role on the first host (-vvv run)")
    parser.add_argument("--lab-name", default="sparkfleet-lab-fleetbench")
    parser.add_argument("--keep", action="store_true", help="leave the benchmark lab up")
    parser.add_argument("--skip-up", action="store_true", help="the lab is up and converged already")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_json = RESULTS / "fleet_scaling.json"
    if args.plot_only:
        print(plot(json.loads(out_json.read_text())))
        return 0
    configs = [c for c in args.configs.split(",") if c]
    if set(configs) - set(ALL_CONFIGS) or "defaults" not in configs or "ours" not in configs:
        raise SystemExit("--configs takes defaults and ours, optionally full and mitogen (got %s)" % args.configs)
    counts = sorted(int(k) for k in args.hosts.split(","))
    var_args = VAR_SETS[args.vars]
    logs = RESULTS / "fleet_scaling.tmp"
    logs.mkdir(exist_ok=True)
    calls = None
    with tempfile.TemporaryDirectory(prefix="fs") as tmp, \
            lab_session(args.lab_name, max(counts), keep=args.keep, skip_up=args.skip_up) as the_lab:
        cfgs = {"ours": REPO / "ansible.cfg", "defaults": Path(tmp) / "defaults.cfg", "mitogen_dir": None}
        cfgs["defaults"].write_text(DEFAULTS_CFG.format(repo=REPO, inventory=the_lab.inventory))
        if "mitogen" in configs:
            cfgs["mitogen_dir"] = mitogen_strategy_dir()
            if cfgs["mitogen_dir"] is None:
                raise SystemExit("mitogen is not installed in .venv: .venv/bin/pip install -r requirements-mitogen.txt")
        names = the_lab.hosts()
        if not args.skip_up:
            start = time.monotonic()
            first = playbook("ours", cfgs, the_lab.inventory, names, var_args, Path(tempfile.mkdtemp(dir=tmp)))
            print("converged %d host(s) in %.0fs" % (len(names), time.monotonic() - start), flush=True)
            (logs / "converge.log").write_text(first["output"])
        if args.count_calls:
            counted = playbook("ours", cfgs, the_lab.inventory, names[:1], var_args, Path(tempfile.mkdtemp(dir=tmp)),
                               verbose=True)
            (logs / "count-calls.log").write_text(counted["output"])
            calls = count_module_calls(counted["output"])
            print("calls per host: %s" % {r: (c["module_calls"], c["ssh_round_trips"]) for r, c in calls.items()},
                  flush=True)

        def measure(config: str, k: int, i: int) -> dict:
            control = Path(tempfile.mkdtemp(prefix="cp", dir=tmp))  # short: ssh's socket path limit
            sample = playbook(config, cfgs, the_lab.inventory, names[:k], var_args, control)
            (logs / ("%s-k%d-%d.log" % (config, k, i))).write_text(sample.pop("output"))
            sample["no_change"] = not sample["changed_total"] and len(sample["recap"]) == k and not any(
                r["failed"] or r["unreachable"] for r in sample["recap"].values())
            if not sample["no_change"]:  # kept (and flagged in the JSON) so the other points still run
                print("WARNING: not a no-change run (%s, K=%d): %s" % (config, k, sample["recap"]), flush=True)
            return sample

        def on_point(runs: list[dict], entry: dict) -> None:
            write_results(out_json, args, runs, calls)
            print("K=%d %-8s wall %6.1fs  controller CPU %5.1fs (%.2f s/host)  machine CPU %5.1fs (busy %2.0f%%)  load %s"
                  % (entry["hosts"], entry["config"], entry["wall_seconds_median"], entry["controller_cpu_seconds_median"],
                     entry["controller_cpu_seconds_per_host_median"], entry["machine_cpu_seconds_median"],
                     100 * entry["machine_busy_fraction_median"], entry["samples"][-1]["load_average_before"]), flush=True)

        runs = sweep(counts, configs, args.repeat, measure,
                     ("wall_seconds", "controller_cpu_seconds", "controller_cpu_seconds_per_host",
                      "machine_cpu_seconds", "machine_busy_fraction"), on_point=on_point)
    data = write_results(out_json, args, runs, calls)
    print(json.dumps({k: data[k] for k in ("speedup_wall_defaults_over_ours", "speedup_wall_defaults_over_mitogen",
                                           "goal_wall_met_at_largest_k", "goal_cpu_met_at_largest_k")}))
    print(plot(data) or "no plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
