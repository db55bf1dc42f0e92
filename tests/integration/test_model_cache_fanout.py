# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration test of the model_cache role, fanout strategy, on isolated labs of simulated Sparks.

The lab Hub stand-in runs on this machine, bound to the lab network's gateway address so that the sim hosts reach
it; its byte counter (GET /_lab/stats) proves that the fleet fetched exactly one copy of the model.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "lab" / "hub"))

import launch  # noqa: E402

MODEL = "nvidia/Qwen3-8B-FP4"
HF_HOME = "/var/lib/sparkfleet/huggingface"
PLAYBOOK = REPO_ROOT / "playbooks" / "model_cache.yml"


def gateway(network: str) -> str:
    """The address of this machine on the lab network (the bridge's gateway: first address of the subnet)."""
    out = subprocess.run(["docker", "network", "inspect", network, "-f", "{{json .IPAM.Config}}"],
                         capture_output=True, text=True, check=True).stdout
    config = json.loads(out)[0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def snapshot_digests(lab, host: str, commit: str) -> dict[str, str]:
    folder = "%s/hub/models--%s/snapshots/%s" % (HF_HOME, MODEL.replace("/", "--"), commit)
    proc = lab.ssh(host, "cd %s && find -L . -type f | sort | xargs sha256sum" % folder, sudo=True)
    assert proc.returncode == 0, proc.stderr
    return {line.split()[1]: line.split()[0] for line in proc.stdout.splitlines()}


@pytest.mark.parametrize("hosts", [2, 4])
def test_fanout_one_hub_copy_verified_everywhere(lab_factory, tmp_path_factory, hosts):
    lab = lab_factory("mc%d" % hosts, hosts)
    data = tmp_path_factory.mktemp("hub-data")
    keydir = tmp_path_factory.mktemp("mc-key")
    wheels = REPO_ROOT / "lab" / ".state" / "model-cache-wheelhouse"
    for host in lab.host_names:  # a kept lab (LAB_KEEP=1) may hold a cache from an earlier run
        assert lab.ssh(host, "rm -rf %s/hub" % HF_HOME, sudo=True).returncode == 0
    with launch.HubProcess(data, host=gateway(lab.name)) as hub:
        main = hub.repos()[MODEL]["files"]["main"]
        extra = {
            "model_cache_endpoint": hub.url,
            "model_cache_models": [MODEL],
            "model_cache_controller_wheelhouse_dir": str(wheels),
            "model_cache_controller_key_path": str(keydir / "id_ed25519"),
        }
        args = ["-e", json.dumps(extra)]
        first = lab.ansible_playbook(PLAYBOOK, *args)
        assert first.returncode == 0, first.output[-8000:]

        stats = hub.stats()
        served = stats["by_repo"][MODEL]
        # Exactly one copy of the model left the Hub, to one host (the source).
        assert served["body_bytes"] == main["size_bytes"]
        assert served["file_gets"] == len(main["paths"])
        assert len([c for c, v in stats["by_client"].items() if v["body_bytes"]]) == 1

        digests = {host: snapshot_digests(lab, host, main["sha"]) for host in lab.host_names}
        reference = digests[lab.host_names[0]]
        assert sorted(p[2:] for p in reference) == main["paths"]
        for host, found in digests.items():
            assert found == reference, host
        for host in lab.host_names:
            ref = lab.ssh(host, "cat %s/hub/models--%s/refs/main" % (HF_HOME, MODEL.replace("/", "--")), sudo=True)
            assert ref.stdout.strip() == main["sha"]

        second = lab.ansible_playbook(PLAYBOOK, *args)
        assert second.returncode == 0, second.output[-8000:]
        assert set(second.recap) == set(lab.host_names)
        for host, counts in second.recap.items():
            assert counts["changed"] == 0, (host, second.output[-6000:])
        assert hub.stats()["by_repo"][MODEL]["body_bytes"] == main["size_bytes"]
        # The no-change run reads the virtualenv's huggingface_hub version once and skips the wheelhouse and the
        # install, and sets up no key (no host needs a copy); the first run did both.
        copy = second.output.split("Copy the wheelhouse to the host")[1].split("TASK [")[0]
        assert "ok:" not in copy and "changed:" not in copy, copy
        assert "Authorize the fleet copy key" in first.output
        assert "Authorize the fleet copy key" not in second.output
