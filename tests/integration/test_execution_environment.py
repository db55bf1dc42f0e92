# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""execution-environment.yml builds a valid ansible-builder context (``ansible-builder create``: no container build,
no network) holding the pinned Ansible, the collection's dependencies and the controller-side system tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BUILDER = Path(sys.executable).with_name("ansible-builder")


def galaxy_dependencies() -> dict[str, str]:
    return yaml.safe_load((REPO / "galaxy.yml").read_text())["dependencies"]


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    if not BUILDER.exists():
        pytest.fail("ansible-builder is not installed in the virtualenv (pip install -r requirements.txt)")
    out = tmp_path_factory.mktemp("ee") / "context"
    proc = subprocess.run([str(BUILDER), "create", "-f", str(REPO / "execution-environment.yml"), "-c", str(out),
                           "--output-filename", "Containerfile"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_context_pins_ansible_and_installs_the_collection_dependencies(context):
    containerfile = (context / "Containerfile").read_text()
    assert 'EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert "ansible-core==2.19.14" in containerfile
    assert "ANSIBLE_SSH_CONTROL_PATH_DIR=/runner/.ansible/cp" in containerfile
    # the benchmark role plots with matplotlib on the controller, at the version requirements.txt pins
    python_reqs = (context / "_build" / "requirements.txt").read_text()
    pin = next(line.split()[0] for line in (REPO / "requirements.txt").read_text().splitlines()
               if line.startswith("matplotlib=="))
    assert pin in python_reqs
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    pinned = {c["name"]: c["version"] for c in galaxy["collections"]}
    # every dependency of galaxy.yml is in the image, at a version its range accepts (here: the tested one)
    assert set(pinned) == set(galaxy_dependencies())
    for name, version in pinned.items():
        floor = galaxy_dependencies()[name].removeprefix(">=")
        assert tuple(map(int, version.split("."))) >= tuple(map(int, floor.split("."))), (name, version)


def test_context_installs_the_controller_side_tools(context):
    bindep = (context / "_build" / "bindep.txt").read_text().split("\n")
    packages = {line.split()[0] for line in bindep if line.strip()}
    assert {"openssh-clients", "rsync", "tar"} <= packages
