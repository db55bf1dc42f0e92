# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration test of the model_cache role, fanout strategy, pipelined chain shape, on a lab of 4 sim Sparks.

The lab Hub stand-in runs on this machine, bound to the lab network's gateway address (so the sim hosts reach it),
with the model padded to 40 MB; its byte counter (GET /_lab/stats) proves that the fleet fetched one copy. The broken
hop is made for real: the link of spark-2 is slowed with tc, and the SSH client that forwards the stream from spark-2
to spark-3 is killed (by the PID the hop script records) while the stream is in flight.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "lab" / "hub"))

import launch  # noqa: E402

from conftest import _ansible_env, parse_recap  # noqa: E402

MODEL = "nvidia/Qwen3-8B-FP4"
FOLDER = "models--" + MODEL.replace("/", "--")
MODEL_BYTES = 40_000_000
HF_HOME = "/var/lib/sparkfleet/huggingface"
PLAYBOOK = REPO_ROOT / "playbooks" / "model_cache.yml"
FORWARD_PID = "/run/sparkfleet-model-chain/forward.pid"


def gateway(network: str) -> str:
    """The address of this machine on the lab network (the bridge's gateway: first address of the subnet)."""
    out = subprocess.run(["docker", "network", "inspect", network, "-f", "{{json .IPAM.Config}}"],
                         capture_output=True, text=True, check=True).stdout
    config = json.loads(out)[0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def snapshot_digests(lab, host: str, commit: str) -> dict[str, str]:
    folder = "%s/hub/%s/snapshots/%s" % (HF_HOME, FOLDER, commit)
    proc = lab.ssh(host, "cd %s && find -L . -type f | sort | xargs sha256sum" % folder, sudo=True)
    assert proc.returncode == 0, (host, proc.stderr)
    return {line.split()[1]: line.split()[0] for line in proc.stdout.splitlines()}


def cached_bytes(lab, host: str) -> int:
    proc = lab.ssh(host, "du -sb %s/hub/%s/blobs 2>/dev/null | cut -f1" % (HF_HOME, FOLDER), sudo=True)
    return int(proc.stdout.strip() or 0)


@pytest.fixture(scope="module")
def chain_lab(lab_factory, tmp_path_factory):
    lab = lab_factory("dist4", 4)
    data = tmp_path_factory.mktemp("hub-data-chain")
    keydir = tmp_path_factory.mktemp("chain-key")
    for host in lab.host_names:  # a kept lab (LAB_KEEP=1) may hold a cache from an earlier run
        assert lab.ssh(host, "rm -rf %s/hub; tc qdisc del dev eth0 root 2>/dev/null; true" % HF_HOME,
                       sudo=True).returncode == 0
    with launch.HubProcess(data, "--repo-size", "%s=%d" % (MODEL, MODEL_BYTES), host=gateway(lab.name)) as hub:
        extra = {
            "model_cache_endpoint": hub.url,
            "model_cache_models": [MODEL],
            "model_cache_strategy": "fanout",
            "model_cache_fanout_shape": "chain",
            "model_cache_controller_wheelhouse_dir": str(REPO_ROOT / "lab" / ".state" / "model-cache-wheelhouse"),
            "model_cache_controller_key_path": str(keydir / "id_ed25519"),
        }
        yield lab, hub, ["-e", json.dumps(extra)]


def assert_identical_verified_copies(lab, main):
    digests = {host: snapshot_digests(lab, host, main["sha"]) for host in lab.host_names}
    reference = digests[lab.host_names[0]]
    assert sorted(p[2:] for p in reference) == main["paths"]
    for host, found in digests.items():
        assert found == reference, host
        ref = lab.ssh(host, "cat %s/hub/%s/refs/main" % (HF_HOME, FOLDER), sudo=True)
        assert ref.stdout.strip() == main["sha"], host


def test_chain_one_hub_copy_verified_everywhere(chain_lab):
    lab, hub, args = chain_lab
    main = hub.repos()[MODEL]["files"]["main"]
    assert main["size_bytes"] >= MODEL_BYTES
    first = lab.ansible_playbook(PLAYBOOK, *args)
    assert first.returncode == 0, first.output[-8000:]
    # The stream ran once, from the source, through the three others; nothing needed a repair.
    assert re.search(r"TASK \[sparkfleet\.trtllm\.model_cache : Stream the model folder through the chain", first.output)
    assert "changed: [spark-1]" in first.output.split("Stream the model folder through the chain")[1].split("TASK [")[0]
    assert "The chain stream of" not in first.output
    repair = first.output.split("Copy the model folder from this host's wave source")[1].split("TASK [")[0]
    assert "changed:" not in repair, repair

    stats = hub.stats()
    served = stats["by_repo"][MODEL]
    assert served["body_bytes"] == main["size_bytes"]
    assert served["file_gets"] == len(main["paths"])
    assert len([c for c, v in stats["by_client"].items() if v["body_bytes"]]) == 1
    assert_identical_verified_copies(lab, main)
    # The hop script is installed where the role says, executable by root only for writing.
    mode = lab.ssh("spark-3", "stat -c '%a %U' /usr/local/sbin/sparkfleet-model-chain", sudo=True)
    assert mode.stdout.split() == ["755", "root"]

    second = lab.ansible_playbook(PLAYBOOK, *args)
    assert second.returncode == 0, second.output[-8000:]
    assert set(second.recap) == set(lab.host_names)
    for host, counts in second.recap.items():
        assert counts["changed"] == 0, (host, second.output[-6000:])
    assert hub.stats()["by_repo"][MODEL]["body_bytes"] == main["size_bytes"]


def test_chain_broken_hop_repaired_from_nearest_verified_peer(chain_lab):
    lab, hub, args = chain_lab
    main = hub.repos()[MODEL]["files"]["main"]
    # spark-1 (the source) keeps its copy when an earlier test left one; the three others start empty.
    source_had = lab.ssh("spark-1", "test -s %s/hub/%s/refs/main" % (HF_HOME, FOLDER), sudo=True).returncode == 0
    for host in lab.host_names[1:]:
        assert lab.ssh(host, "rm -rf %s/hub/%s" % (HF_HOME, FOLDER), sudo=True).returncode == 0
    hub.reset_stats()
    # Slow the link out of spark-2 (its egress carries the stream to spark-3) so that the stream lasts ~8 s.
    shaped = lab.ssh("spark-2", "tc qdisc replace dev eth0 root tbf rate 40mbit burst 64kb latency 200ms", sudo=True)
    assert shaped.returncode == 0, shaped.stderr
    # The watcher runs on spark-2 itself (polling over SSH from here is too slow on a loaded machine): once spark-2
    # has stored an eighth of the model, it kills the SSH client that forwards the stream to spark-3.
    watch = ("end=$(($(date +%%s) + 1800)); while [ $(date +%%s) -lt $end ]; do pid=$(cat %s 2>/dev/null); "
             "got=$(du -sb %s/hub/%s/blobs 2>/dev/null | cut -f1); if [ -n \"$pid\" ] && [ \"${got:-0}\" -gt %d ]; "
             "then kill -9 \"$pid\" && echo \"killed $pid\"; exit 0; fi; sleep 0.1; done; exit 1"
             % (FORWARD_PID, HF_HOME, FOLDER, MODEL_BYTES // 8))
    watcher = subprocess.Popen(lab.ssh_prefix("spark-2") + ["sudo -n sh -c " + shlex.quote(watch)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cmd = [str(REPO_ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(lab.inventory), str(PLAYBOOK), *args]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=_ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        output = proc.communicate(timeout=1800)[0]
        if watcher.poll() is None:  # the playbook ended and the watcher never fired
            watcher.kill()
        watched = watcher.communicate()[0]
    finally:
        for child in (proc, watcher):
            if child.poll() is None:
                child.kill()
                child.communicate()
        lab.ssh("spark-2", "tc qdisc del dev eth0 root", sudo=True)
    killed = re.search(r"killed (\d+)", watched)
    assert killed, "the forwarding SSH client of spark-2 was never seen while the stream was in flight:\n" + \
        output[-6000:]
    assert proc.returncode == 0, output[-8000:]
    # The break was detected and reported with what the hops said ...
    assert "The chain stream of %s failed" % FOLDER in output, output[-6000:]
    assert "forwarding to" in output
    # ... and only the copies behind the break were repaired, each from spark-2 (the nearest verified host).
    repair = output.split("Copy the model folder from this host's wave source")[1].split("TASK [")[0]
    delegated = dict(re.findall(r"^changed: \[(spark-\d) -> (spark-\d)\b", repair, re.M))
    assert delegated == {"spark-3": "spark-2", "spark-4": "spark-2"}, repair
    assert not re.search(r"^(ok|changed): \[spark-2\b", repair, re.M), repair
    # The Hub served at most the source's one copy (none when it had it), and every copy is the verified one.
    assert hub.stats()["by_repo"].get(MODEL, {}).get("body_bytes", 0) == (0 if source_had else main["size_bytes"])
    assert_identical_verified_copies(lab, main)

    second = lab.ansible_playbook(PLAYBOOK, *args)
    assert second.returncode == 0, second.output[-8000:]
    for host, counts in parse_recap(second.stdout).items():
        assert counts["changed"] == 0, (host, second.output[-6000:])


def rx_bytes(lab, host: str) -> int:
    """Bytes the host's network interface has received (every byte on its link, Ansible's own included)."""
    proc = lab.ssh(host, "cat /sys/class/net/eth0/statistics/rx_bytes", sudo=True)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip())


def test_chain_rerun_completes_a_partial_copy_without_resending_it(chain_lab):
    """A host left partial by an earlier failed run (its biggest blob cut short, no refs: what a stream broken
    mid-blob leaves) receives only what it lacks, by rsync from a verified peer; an empty host still gets the chain."""
    lab, hub, args = chain_lab
    main = hub.repos()[MODEL]["files"]["main"]
    if any(lab.ssh(h, "test -s %s/hub/%s/refs/main" % (HF_HOME, FOLDER), sudo=True).returncode for h in lab.host_names):
        setup = lab.ansible_playbook(PLAYBOOK, *args)  # run alone: start from complete copies
        assert setup.returncode == 0, setup.output[-8000:]
    blobs = "%s/hub/%s/blobs" % (HF_HOME, FOLDER)
    biggest = lab.ssh("spark-3", "ls -S %s | head -1" % blobs, sudo=True).stdout.strip()
    size = int(lab.ssh("spark-3", "stat -c %%s %s/%s" % (blobs, biggest), sudo=True).stdout)
    keep = size // 4
    cut = lab.ssh("spark-3", "truncate -s %d %s/%s && rm -rf %s/hub/%s/refs" % (keep, blobs, biggest, HF_HOME, FOLDER),
                  sudo=True)
    assert cut.returncode == 0, cut.stderr
    assert lab.ssh("spark-4", "rm -rf %s/hub/%s" % (HF_HOME, FOLDER), sudo=True).returncode == 0
    hub.reset_stats()

    before = rx_bytes(lab, "spark-3")
    run = lab.ansible_playbook(PLAYBOOK, *args)
    received = rx_bytes(lab, "spark-3") - before
    assert run.returncode == 0, run.output[-8000:]
    # spark-3 received the missing three quarters of the blob plus Ansible's own traffic (a few hundred KB), not
    # the model again (MODEL_BYTES; measured 32.8 MB for 30.0 MB missing); the stream went to the empty spark-4 only.
    missing = size - keep
    assert missing <= received < missing + 5_000_000, (received, missing, size)
    assert received < MODEL_BYTES  # a whole copy again would be at least the model
    repair = run.output.split("Copy the model folder from this host's wave source")[1].split("TASK [")[0]
    delegated = dict(re.findall(r"^changed: \[(spark-\d) -> (spark-\d)\b", repair, re.M))
    assert delegated == {"spark-3": "spark-2"}, repair
    assert "The chain stream of" not in run.output
    assert hub.stats()["by_repo"].get(MODEL, {}).get("body_bytes", 0) == 0
    assert_identical_verified_copies(lab, main)


def test_chain_rejects_unknown_shape(chain_lab):
    lab, _hub, args = chain_lab
    extra = json.loads(args[1])
    extra["model_cache_fanout_shape"] = "ring"
    proc = lab.ansible_playbook(PLAYBOOK, "-e", json.dumps(extra))
    assert proc.returncode != 0
    assert "model_cache_fanout_shape" in proc.output
    assert "ring" in proc.output
