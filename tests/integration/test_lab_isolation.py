# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Several labs side by side (LAB_NAME): own network, subnet, keys and inventory; grow, shrink, down."""

from __future__ import annotations

import ipaddress
import json
import subprocess

from conftest import STATE_ROOT, lab_cli, load_lab

NAME = "sparkfleet-lab-selftest"


def docker_names(*filters: str, kind: str = "ps") -> list[str]:
    cmd = ["docker", kind, "ls"] if kind != "ps" else ["docker", "ps", "-a"]
    for flt in filters:
        cmd += ["--filter", flt]
    cmd += ["--format", "{{.Name}}" if kind == "volume" else "{{.Names}}" if kind == "ps" else "{{.Name}}"]
    return sorted(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split())


def network_subnet(name: str) -> ipaddress.IPv4Network:
    info = json.loads(subprocess.run(["docker", "network", "inspect", name], capture_output=True, text=True,
                                     check=True).stdout)[0]
    return ipaddress.ip_network(info["IPAM"]["Config"][0]["Subnet"])


def test_factory_lab_is_isolated_from_the_default_lab(lab, lab_factory):
    other = lab_factory("selftest", 1)
    assert other.name == NAME
    assert other.inventory == STATE_ROOT / NAME / "inventory.yml"
    assert other.host_names == ["spark-1"]
    assert not network_subnet(NAME).overlaps(network_subnet(lab.name))
    assert other.hosts["spark-1"] != lab.hosts["spark-1"]
    assert other.key.read_text() != lab.key.read_text()
    # the factory lab answers through its own inventory, with the shared lab group_vars
    proc = other.ansible("sparks", "ansible.builtin.debug", "var=sparkfleet_lab")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"sparkfleet_lab": true' in proc.stdout
    assert docker_names(f"label=sparkfleet.lab.name={NAME}", "label=sparkfleet.lab.role=spark") == [f"{NAME}-spark-1"]
    # the default lab's key is not authorised on the factory lab
    cross = subprocess.run(lab.ssh_prefix("spark-1")[:-1] + [f"spark@{other.hosts['spark-1']}", "true"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert cross.returncode == 255


def test_factory_lab_grows_shrinks_and_goes_down(lab_factory):
    lab_factory("selftest", 1)
    grown = lab_factory("selftest", 2)
    assert grown.host_names == ["spark-1", "spark-2"]
    assert grown.ssh("spark-2", "hostname").stdout.strip() == "spark-2"
    assert docker_names(f"label=sparkfleet.lab.name={NAME}", "label=sparkfleet.lab.role=spark") == [f"{NAME}-spark-1", f"{NAME}-spark-2"]

    proc = lab_cli("up", "1", name=NAME)
    assert proc.returncode == 0, proc.stderr
    assert f"removing {NAME}-spark-2" in proc.stdout
    assert "0 new, 1 reused" in proc.stdout
    assert load_lab(NAME).host_names == ["spark-1"]
    assert docker_names(f"label=sparkfleet.lab.name={NAME}", "label=sparkfleet.lab.role=spark") == [f"{NAME}-spark-1"]

    status = lab_cli("status", name=NAME)
    assert status.returncode == 0
    assert f"{NAME}-spark-1" in status.stdout and "running" in status.stdout

    down = lab_cli("down", name=NAME)
    assert down.returncode == 0, down.stderr
    assert docker_names(f"label=sparkfleet.lab.name={NAME}") == []
    assert docker_names(f"label=sparkfleet.lab.name={NAME}", kind="volume") == []
    assert subprocess.run(["docker", "network", "inspect", NAME], capture_output=True, check=False).returncode != 0
    assert not (STATE_ROOT / NAME / "inventory.yml").exists()
    assert lab_cli("status", name=NAME).returncode == 1
