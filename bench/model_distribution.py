# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark (not a test): distributing one model to K lab hosts with hub, serial push, waves and the chain.

    .venv/bin/python bench/model_distribution.py [--hosts 2,4] [--size-mb 100] [--link-mbit 100] [--wan-mbit 50]
    .venv/bin/python bench/model_distribution.py --plot-only     # redraw the PNG from the JSON

Brings up its own lab (LAB_NAME=sparkfleet-lab-mcbench, or $MDBENCH_LAB; max(hosts) sim hosts) and runs the Hub
stand-in on this machine (bound to the lab network's gateway) with nvidia/Qwen3-8B-FP4 padded to --size-mb. Links:
- LAN: every sim host's eth0 egress is limited with `tc ... tbf rate <link-mbit>` (a host sends at most that much,
  as a NIC would);
- WAN: the lab bridge's egress on this machine (what the Hub sends to all hosts together) is limited to
  --wan-mbit, shared by every host, as an Internet uplink is.

For each K it runs, on the first K hosts (--limit), from an empty cache each time:
- hub: playbooks/model_cache.yml with model_cache_strategy=hub (every host downloads);
- waves, chain: model_cache_strategy=fanout with model_cache_fanout_shape=waves / chain;
- serial: the competitor's way, after the chain run: the source pushes with `rsync -a` over SSH to one host after
  the other (the same rsync and key as the waves).
Times: `download_s` = the Hub download (on the source, or on every host in parallel for hub), `copy_s` = the
host-to-host copies (rsync/stream tasks, from the profile_tasks timings of the playbook; measured around each rsync
for serial), `total_s` = both, `link_copies` = copy_s / one single-link copy (the measured rsync of the folder from
one host to another). Hub bytes come from the stand-in's counter. Results: bench/results/model_distribution.json
and .png (matplotlib).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LAB_NAME = os.environ.get("MDBENCH_LAB", "sparkfleet-lab-mcbench")
VENV_BIN = REPO / ".venv" / "bin"
MODEL = "nvidia/Qwen3-8B-FP4"
FOLDER = "models--" + MODEL.replace("/", "--")
HF_HOME = "/var/lib/sparkfleet/huggingface"
SSH_DIR = "/etc/sparkfleet/model_cache"
PLAYBOOK = REPO / "playbooks" / "model_cache.yml"
STRATEGIES = ("hub", "serial", "waves", "chain")

sys.path.insert(0, str(REPO / "lab" / "hub"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

import launch  # noqa: E402
from conftest import _ansible_env, lab_cli, load_lab  # noqa: E402

HEADER = re.compile(r"^TASK \[(?P<name>.*)\] \*+$")
STAMP = re.compile(r"^\w+ \d+ \w+ \d+\s+[\d:]+ \+\d+ \(\S+\)\s+(?P<h>\d+):(?P<m>\d\d):(?P<s>[\d.]+) \*+$")


def say(msg: str) -> None:
    print("[bench] %s" % msg, flush=True)


def task_durations(output: str) -> list[tuple[str, float]]:
    """(task name, seconds) from the profile_tasks stamps: each task lasts until the next stamp."""
    marks: list[tuple[str, float]] = []
    pending = None
    for line in output.splitlines():
        head = HEADER.match(line)
        if head:
            pending = head.group("name")
            continue
        stamp = STAMP.match(line.strip())
        if stamp:
            elapsed = int(stamp.group("h")) * 3600 + int(stamp.group("m")) * 60 + float(stamp.group("s"))
            marks.append((pending or "", elapsed))
            pending = None
    return [(marks[i][0], marks[i + 1][1] - marks[i][1]) for i in range(len(marks) - 1) if marks[i][0]]


def seconds_of(durations: list[tuple[str, float]], pattern: str) -> float:
    return round(sum(sec for name, sec in durations if re.search(pattern, name)), 3)


def gateway(network: str) -> str:
    out = subprocess.run(["docker", "network", "inspect", network, "-f", "{{json .IPAM.Config}}"],
                         capture_output=True, text=True, check=True).stdout
    config = json.loads(out)[0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def bridge(network: str) -> str:
    net_id = subprocess.run(["docker", "network", "inspect", network, "-f", "{{.Id}}"], capture_output=True, text=True,
                            check=True).stdout.strip()
    return "br-" + net_id[:12]


def sh(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


class Bench:
    def __init__(self, args):
        self.args = args
        self.lab = None
        self.hub = None

    # --- lab plumbing -----------------------------------------------------------------------------
    def ssh(self, host: str, cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = self.lab.ssh(host, cmd, sudo=True, timeout=1800)
        if check and proc.returncode != 0:
            raise SystemExit("%s: %s failed: %s" % (host, cmd, proc.stderr[-2000:]))
        return proc

    def shape_links(self, on: bool) -> None:
        rate = "%dmbit" % self.args.link_mbit
        for host in self.lab.host_names:
            if on:
                self.ssh(host, "tc qdisc replace dev eth0 root tbf rate %s burst 128kb latency 100ms" % rate)
            else:
                self.ssh(host, "tc qdisc del dev eth0 root 2>/dev/null; true")
        dev = bridge(self.lab.name)
        if on:
            sh(["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", "%dmbit" % self.args.wan_mbit,
                "burst", "128kb", "latency", "100ms"])
        else:
            sh(["tc", "qdisc", "del", "dev", dev, "root"], check=False)

    def clean(self, hosts: list[str]) -> None:
        for host in hosts:
            self.ssh(host, "rm -rf %s/hub/%s" % (HF_HOME, FOLDER))

    def playbook(self, hosts: list[str], extra: dict) -> tuple[float, list[tuple[str, float]]]:
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.lab.inventory), str(PLAYBOOK),
               "--limit", ",".join(hosts), "-e", json.dumps(extra)]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, env=_ansible_env(), capture_output=True, text=True, timeout=1800,
                              check=False)
        wall = time.monotonic() - start
        if proc.returncode != 0:
            raise SystemExit("model_cache failed on %s with %s:\n%s"
                             % (hosts, extra, (proc.stdout + proc.stderr)[-6000:]))
        return round(wall, 3), task_durations(proc.stdout)

    def rsync(self, source: str, dest: str) -> float:
        rsh = ("ssh -l root -i %s/id_ed25519 -o BatchMode=yes -o StrictHostKeyChecking=yes "
               "-o UserKnownHostsFile=%s/known_hosts" % (SSH_DIR, SSH_DIR))
        cmd = "rsync -a --partial-dir=.sparkfleet-rsync-partial -e %s %s/hub/%s %s:%s/hub/" % (
            shlex.quote(rsh), HF_HOME, FOLDER, self.lab.hosts[dest], HF_HOME)
        start = time.monotonic()
        self.ssh(source, cmd)
        return time.monotonic() - start

    # --- one K ------------------------------------------------------------------------------------
    def run_k(self, k: int, base: dict) -> dict:
        hosts = self.lab.host_names[:k]
        size = self.hub.repos()[MODEL]["files"]["main"]["size_bytes"]
        # The machine is shared (other sessions, every sim host): the load tells how far the times are CPU-bound.
        out: dict = {"hosts": k, "model_bytes": size, "load_avg_start": [round(x, 2) for x in os.getloadavg()]}

        for shape in ("hub", "waves", "chain"):
            self.clean(hosts)
            self.hub.reset_stats()
            extra = dict(base, model_cache_strategy="hub" if shape == "hub" else "fanout")
            if shape != "hub":
                extra["model_cache_fanout_shape"] = shape
            say("K=%d %s ..." % (k, shape))
            wall, durations = self.playbook(hosts, extra)
            stats = self.hub.stats()
            download = seconds_of(durations, r": Download the model on (this|the source) host")
            copy = 0.0 if shape == "hub" else seconds_of(
                durations, r": (Copy the model folder from this host's wave source|Stream the model folder through)")
            out[shape] = {"hub_bytes": stats.get("by_repo", {}).get(MODEL, {}).get("body_bytes", 0),
                          "hub_clients": len([c for c, v in stats.get("by_client", {}).items() if v.get("body_bytes")]),
                          "download_s": download, "copy_s": copy, "total_s": round(download + copy, 3),
                          "playbook_wall_s": wall}
            say("  %s" % out[shape])

        # serial push from the source (after the chain run the source holds the verified model)
        self.clean(hosts[1:])
        say("K=%d serial ..." % k)
        times = [self.rsync(hosts[0], dest) for dest in hosts[1:]]
        out["serial"] = {"hub_bytes": out["chain"]["hub_bytes"], "hub_clients": 1,
                         "download_s": out["chain"]["download_s"], "copy_s": round(sum(times), 3),
                         "total_s": round(out["chain"]["download_s"] + sum(times), 3),
                         "per_host_s": [round(t, 3) for t in times]}
        say("  %s" % out["serial"])
        # one single-link copy: the folder from one host to one other, nothing else on the links
        self.clean(hosts[1:2])
        link = self.rsync(hosts[0], hosts[1])
        out["single_link_copy_s"] = round(link, 3)
        for shape in STRATEGIES:
            out[shape]["link_copies"] = round(out[shape]["copy_s"] / link, 3)
            out[shape]["total_link_copies"] = round(out[shape]["total_s"] / link, 3)
        out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        say("  load average %s -> %s" % (out["load_avg_start"], out["load_avg_end"]))
        return out

    def run(self) -> dict:
        ks = sorted({int(k) for k in self.args.hosts.split(",")})
        say("lab %s with %d hosts" % (LAB_NAME, max(ks)))
        proc = lab_cli("up", str(max(ks)), name=LAB_NAME)
        if proc.returncode != 0:
            raise SystemExit("lab up failed:\n%s\n%s" % (proc.stdout[-3000:], proc.stderr[-3000:]))
        self.lab = load_lab(LAB_NAME)
        work = Path(tempfile.mkdtemp(prefix="mdbench-"))
        size = self.args.size_mb * 1_000_000
        results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                               "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
                   "settings": {"model": MODEL, "size_mb": self.args.size_mb, "link_mbit": self.args.link_mbit,
                                "wan_mbit": self.args.wan_mbit,
                                "ideal_single_link_copy_s": round(size * 8 / (self.args.link_mbit * 1e6), 3)},
                   "runs": []}
        started = time.monotonic()
        with launch.HubProcess(work / "hub", "--repo-size", "%s=%d" % (MODEL, size),
                               host=gateway(self.lab.name)) as hub:
            self.hub = hub
            base = {"model_cache_endpoint": hub.url, "model_cache_models": [MODEL],
                    "model_cache_controller_wheelhouse_dir": str(REPO / "lab" / ".state" / "model-cache-wheelhouse"),
                    "model_cache_controller_key_path": str(work / "id_ed25519")}
            try:
                self.shape_links(True)
                for k in ks:
                    results["runs"].append(self.run_k(k, base))
            finally:
                self.shape_links(False)
        results["bench_wall_s"] = round(time.monotonic() - started, 1)
        return results


def plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib is not installed: no PNG (pip install matplotlib)")
        return False
    runs = results["runs"]
    ks = [r["hosts"] for r in runs]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.2
    for i, shape in enumerate(STRATEGIES):
        xs = [x + (i - 1.5) * width for x in range(len(ks))]
        axes[0].bar(xs, [r[shape]["hub_bytes"] / 1e6 for r in runs], width, label=shape)
        axes[1].bar(xs, [r[shape]["total_s"] for r in runs], width, label=shape)
        axes[2].bar(xs, [r[shape]["link_copies"] for r in runs], width, label=shape)
    titles = ("MB served by the Hub", "fleet cache time, s (download + copies)",
              "host-to-host copy time / one single-link copy")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(ks)))
        ax.set_xticklabels(["K=%d" % k for k in ks])
        ax.legend(fontsize=8)
    s = results["settings"]
    fig.suptitle("model_cache distribution: %d MB model, LAN %d Mbit/s per host, WAN %d Mbit/s shared"
                 % (s["size_mb"], s["link_mbit"], s["wan_mbit"]), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--hosts", default="2,4", help="comma list of fleet sizes K (lab hosts: max of them)")
    parser.add_argument("--size-mb", type=int, default=100, help="model size (MB, 10^6 bytes)")
    parser.add_argument("--link-mbit", type=int, default=100, help="egress limit of each sim host (LAN)")
    parser.add_argument("--wan-mbit", type=int, default=50, help="shared limit of the Hub's traffic (WAN)")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    parser.add_argument("--keep", action="store_true", help="keep the lab afterwards")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / "model_distribution.json"
    png_path = RESULTS / "model_distribution.png"
    if args.plot_only:
        plot(json.loads(json_path.read_text()), png_path)
        return 0
    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        if not args.keep:
            lab_cli("down", name=LAB_NAME)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    say("wrote %s" % json_path)
    if plot(results, png_path):
        say("wrote %s" % png_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
