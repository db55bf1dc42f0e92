# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared runner of the lab benchmarks (bench/fleet_scaling.py, bench/preflight_scale.py); not a test.

- ``lab_session(name, hosts)``: brings a lab of ``hosts`` sim hosts up (lab/lab up) and down again afterwards;
- ``run_playbook(...)``: one timed ansible-playbook run: wall time, controller CPU (user+sys of ansible-playbook and
  all its children, ssh clients included, from getrusage(RUSAGE_CHILDREN) deltas), load average before, recap;
- ``sweep(...)``: the loop both benchmarks share: for every host count and configuration, an optional warm-up run,
  then ``repeat`` timed runs, their medians, and a callback after every point (to write the JSON as it goes);
- ``count_module_calls(output)``: module calls and SSH round trips per role and task, read from a ``-vvv`` run with
  the linear strategy and ``ANSIBLE_DISPLAY_SKIPPED_HOSTS=true`` (so that every task banner precedes its calls).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
VENV_BIN = REPO / ".venv" / "bin"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M)
_TASK = re.compile(r"^TASK \[(?:(?:[\w.]+\.)?(\w+) : )?(.*?)\] \**$")
_SSH_EXEC = re.compile(r"^<[^>]+> SSH: EXEC ")


def lab_cli(lab_name: str, *args: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    env = dict(os.environ, LAB_NAME=lab_name)
    return subprocess.run([str(REPO / "lab" / "lab"), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@dataclass
class Lab:
    name: str
    size: int

    @property
    def inventory(self) -> Path:
        return REPO / "lab" / ".state" / self.name / "inventory.yml"

    def hosts(self, k: int | None = None) -> list[str]:
        return ["spark-%d" % i for i in range(1, (k or self.size) + 1)]


@contextlib.contextmanager
def lab_session(name: str, hosts: int, keep: bool = False, skip_up: bool = False) -> Iterator[Lab]:
    """A lab of ``hosts`` sim hosts for the duration of the block; ``lab/lab down`` afterwards unless ``keep``."""
    try:
        if not skip_up:
            up = lab_cli(name, "up", str(hosts))
            if up.returncode != 0:
                raise SystemExit("lab up failed:\n%s\n%s" % (up.stdout[-3000:], up.stderr[-3000:]))
        yield Lab(name, hosts)
    finally:
        if not keep:
            lab_cli(name, "down")


def parse_recap(stdout: str) -> dict:
    return {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4]),
                   "skipped": int(m[5])} for m in RECAP.findall(stdout)}


def close_masters(control_dir: Path) -> None:
    """Close the SSH control masters a run left in ``control_dir`` (the next run starts without them)."""
    for sock in control_dir.glob("*"):
        subprocess.run(["ssh", "-o", "ControlPath=%s" % sock, "-O", "exit", "x"], capture_output=True, timeout=30,
                       check=False)


def _machine_busy_seconds() -> float:
    """CPU seconds all cores of this machine spent busy since boot (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(x) for x in handle.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_playbook(argv: list[str], hosts: int, env: dict | None = None, timeout: int = 3600,
                 control_dir: Path | None = None) -> dict:
    """Run ``ansible-playbook *argv`` from the repository root; wall time, controller CPU, recap and output.

    ``env`` is added to this process's environment (with the venv first on PATH); ``control_dir``, when given, is the
    SSH control path folder of the run, whose masters are closed afterwards."""
    run_env = dict(os.environ, ANSIBLE_NOCOLOR="1", PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    run_env.update(env or {})
    if control_dir is not None:
        run_env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(control_dir)
    load = os.getloadavg()
    busy_before = _machine_busy_seconds()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), *argv], cwd=REPO, env=run_env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine = _machine_busy_seconds() - busy_before
    if control_dir is not None:
        close_masters(control_dir)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"rc": proc.returncode, "wall_seconds": round(wall, 3), "controller_cpu_seconds": round(cpu, 3),
            "controller_cpu_seconds_per_host": round(cpu / hosts, 3),
            # Everything the machine's cores did meanwhile: the controller, and the lab hosts sharing its cores.
            "machine_cpu_seconds": round(machine, 2),
            "machine_busy_fraction": round(machine / (wall * (os.cpu_count() or 1)), 3),
            "load_average_before": [round(x, 2) for x in load], "recap": parse_recap(proc.stdout),
            "stdout": proc.stdout, "output": proc.stdout + proc.stderr}


def sweep(counts: list[int], configs: list[str], repeat: int, measure: Callable[[str, int, int], dict],
          keys: tuple[str, ...], warmup: Callable[[str, int], object] | None = None,
          on_point: Callable[[list[dict], dict], None] | None = None) -> list[dict]:
    """For every host count k and configuration: ``warmup(config, k)`` if given, then ``repeat`` samples of
    ``measure(config, k, i)``; each point gets the median of every key in ``keys``. ``on_point(runs, entry)`` is
    called after every point (write the results as they come, so that an interrupted sweep keeps them)."""
    runs: list[dict] = []
    for k in counts:
        for config in configs:
            if warmup is not None:
                warmup(config, k)
            samples = [measure(config, k, i) for i in range(repeat)]
            entry = {"config": config, "hosts": k, "samples": samples}
            for key in keys:
                entry[key + "_median"] = round(statistics.median(s[key] for s in samples), 3)
            runs.append(entry)
            if on_point is not None:
                on_point(runs, entry)
    return runs


def count_module_calls(output: str) -> dict:
    """Module calls ("Using module file" lines) and SSH round trips ("SSH: EXEC" lines) per role and task of one
    ``-vvv`` run on one host, linear strategy, skipped tasks displayed (each banner precedes its task's calls).

    A copy or template task with unchanged content costs 2 module calls (stat, file) and up to 5 round trips (home
    folder, temporary folder, the two modules, removal); a module with pipelining costs 1 of each."""
    roles: dict[str, dict] = {}
    role = task = None
    for line in output.splitlines():
        match = _TASK.match(line)
        if match:
            role, task = match.group(1) or "(play)", match.group(2)
            continue
        if task is None:
            continue
        key = "ssh_round_trips" if _SSH_EXEC.match(line) else ("module_calls" if line.startswith("Using module file") else None)
        if key is None:
            continue
        entry = roles.setdefault(role, {"module_calls": 0, "ssh_round_trips": 0, "tasks": {}})
        entry[key] += 1
        entry["tasks"].setdefault(task, {"module_calls": 0, "ssh_round_trips": 0})[key] += 1
    for entry in roles.values():  # tasks that ran only on the controller (delegated, local actions) are left out
        entry["tasks"] = {t: c for t, c in entry["tasks"].items() if c["ssh_round_trips"]}
        entry["module_calls"] = sum(c["module_calls"] for c in entry["tasks"].values())
    return {r: e for r, e in roles.items() if e["ssh_round_trips"]}


def import_pyplot():
    """matplotlib.pyplot with the Agg backend, or None (with a hint) when matplotlib is missing."""
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    except ImportError:
        import sys  # pylint: disable=import-outside-toplevel
        print("matplotlib is not installed: no PNG (pip install matplotlib, then --plot-only)", file=sys.stderr)
        return None
    return plt
