# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pytest fixtures that bring up the lab of simulated DGX Spark hosts (see docs/lab.md).

Fixtures
--------
``lab``
    Session fixture: the default lab (``LAB_NAME=sparkfleet-lab``) with 2 hosts, brought up once by
    ``lab/lab up 2``. It is kept running after the session (fast re-runs) unless ``LAB_KEEP=0``.
``lab_factory``
    Session fixture returning ``make(name, hosts=2) -> Lab``: an isolated lab with its own docker
    network, subnet, containers, keys and inventory. ``name`` is prefixed with ``sparkfleet-lab-``
    unless it already starts with it. Factory labs are removed at the end of the session unless
    ``LAB_KEEP=1``. Calling ``make`` twice with the same name in one session returns the same lab
    (brought up again with the new host count if it differs).

A ``Lab`` object offers ``name``, ``inventory`` (Path of its YAML inventory), ``hosts`` (dict
hostname -> IP, e.g. ``{"spark-1": "172.28.250.11"}``), ``host_names``, ``ssh_prefix(host)``,
``ssh(host, cmd)``, ``ansible(pattern, module, args)`` and ``ansible_playbook(playbook, *args)``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB_CLI = REPO / "lab" / "lab"
STATE_ROOT = REPO / "lab" / ".state"
VENV_BIN = REPO / ".venv" / "bin"
DEFAULT_LAB = "sparkfleet-lab"
LAB_UP_TIMEOUT = int(os.environ.get("LAB_UP_TIMEOUT", "1800"))

_RECAP_RE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """Return ``{host: {"ok": n, "changed": n, ...}}`` from the PLAY RECAP of ansible-playbook output."""
    recap: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            recap = {}
            continue
        if not in_recap:
            continue
        match = _RECAP_RE.match(line.strip())
        if match:
            recap[match.group("host")] = {
                key: int(value) for key, value in (pair.split("=") for pair in match.group("counts").split())
            }
        elif line.strip() and recap:
            in_recap = False
    return recap


def _ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env.setdefault("ANSIBLE_LOCAL_TEMP", "/tmp/.ansible-local")
    # Own fact cache: every lab names its hosts spark-N, and molecule runs beside these tests (tools/lab-suites.sh).
    env.setdefault("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(REPO / ".cache" / "facts-pytest"))
    # The tests read the whole run log, skipped tasks included (the shipped ansible.cfg hides them to keep fleet
    # runs short): a task every host skipped must still show its banner.
    env.setdefault("ANSIBLE_DISPLAY_SKIPPED_HOSTS", "true")
    if extra:
        env.update(extra)
    return env


@dataclass
class Lab:
    """A running lab: hosts, inventory and helpers to talk to them."""

    name: str
    inventory: Path
    hosts: dict[str, str]
    state_dir: Path
    vars: dict = field(default_factory=dict)

    @property
    def host_names(self) -> list[str]:
        return list(self.hosts)

    @property
    def key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    def ssh_prefix(self, host: str, user: str = "spark", known_hosts: Path | None = None) -> list[str]:
        """The ssh command (as a list) that reaches ``host`` as ``user`` with pinned host keys."""
        return [
            "ssh", "-i", str(self.key),
            "-o", f"UserKnownHostsFile={known_hosts or self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10",
            "-o", "LogLevel=ERROR",
            f"{user}@{self.hosts[host]}",
        ]

    def ssh(self, host: str, cmd: str | list[str], *, sudo: bool = False, timeout: int = 180,
            check: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``cmd`` (a shell string, or an argv list that gets quoted) on ``host`` over real SSH."""
        if isinstance(cmd, list):
            cmd = shlex.join(cmd)
        if sudo:
            cmd = "sudo -n sh -c " + shlex.quote(cmd)
        return subprocess.run(self.ssh_prefix(host) + [cmd], capture_output=True, text=True,
                              timeout=timeout, check=check, input=input)

    def ansible(self, pattern: str, module: str, args: str | None = None, *extra: str,
                timeout: int = 600) -> subprocess.CompletedProcess:
        """Run an ad-hoc ``ansible`` command against this lab's inventory (from the repo root)."""
        cmd = [str(VENV_BIN / "ansible"), "-i", str(self.inventory), pattern, "-m", module]
        if args is not None:
            cmd += ["-a", args]
        cmd += list(extra)
        return subprocess.run(cmd, cwd=REPO, env=_ansible_env(), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def ansible_playbook(self, playbook: str | Path, *args: str, timeout: int = 1800,
                         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``.venv/bin/ansible-playbook -i <inventory> playbook *args`` from the repo root.

        The returned CompletedProcess carries ``.recap`` (see ``parse_recap``) and ``.output``
        (stdout + stderr).
        """
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(playbook), *args]
        proc = subprocess.run(cmd, cwd=REPO, env=_ansible_env(env), capture_output=True, text=True,
                              timeout=timeout, check=False)
        proc.output = proc.stdout + proc.stderr  # type: ignore[attr-defined]
        proc.recap = parse_recap(proc.stdout)  # type: ignore[attr-defined]
        return proc


def lab_cli(*args: str, name: str = DEFAULT_LAB, timeout: int = LAB_UP_TIMEOUT,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``lab/lab *args`` for the lab ``name``; output is captured as text."""
    run_env = dict(os.environ)
    run_env["LAB_NAME"] = name
    if env:
        run_env.update(env)
    return subprocess.run([str(LAB_CLI), *args], cwd=REPO, env=run_env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def load_lab(name: str = DEFAULT_LAB) -> Lab:
    """Build a ``Lab`` object from the inventory that ``lab/lab up`` wrote for ``name``."""
    state_dir = STATE_ROOT / name
    inventory = state_dir / "inventory.yml"
    data = yaml.safe_load(inventory.read_text())
    sparks = data["all"]["children"]["sparks"]["hosts"]
    hosts = {host: hvars["ansible_host"] for host, hvars in sparks.items()}
    return Lab(name=name, inventory=inventory, hosts=hosts, state_dir=state_dir,
               vars=data["all"].get("vars", {}))


def bring_up(name: str, hosts: int) -> Lab:
    proc = lab_cli("up", str(hosts), name=name)
    if proc.returncode != 0:
        pytest.fail(f"lab/lab up {hosts} (LAB_NAME={name}) failed rc={proc.returncode}\n"
                    f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}")
    return load_lab(name)


@pytest.fixture(scope="session")
def lab():
    """The default lab with 2 simulated DGX Spark hosts (kept after the session unless LAB_KEEP=0)."""
    the_lab = bring_up(DEFAULT_LAB, 2)
    yield the_lab
    if os.environ.get("LAB_KEEP", "1") == "0":
        lab_cli("down", name=DEFAULT_LAB)


@pytest.fixture(scope="session")
def lab_factory():
    """Factory ``make(name, hosts=2) -> Lab`` for isolated labs, removed at session end unless LAB_KEEP=1."""
    made: dict[str, Lab] = {}

    def make(name: str, hosts: int = 2) -> Lab:
        full = name if name.startswith(DEFAULT_LAB) else f"{DEFAULT_LAB}-{name}"
        if full in made and len(made[full].hosts) == hosts:
            return made[full]
        made[full] = bring_up(full, hosts)
        return made[full]

    yield make
    if os.environ.get("LAB_KEEP", "0") != "1":
        for full in made:
            lab_cli("down", name=full)


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
    """Skip tests marked ``pending(reason)`` (written, not yet shown passing) unless ``RUN_PENDING=1``.

    They stay visible: the skip carries the reason, and ``-rs`` lists every one of them.
    """
    if os.environ.get("RUN_PENDING") == "1":
        return
    for item in items:
        marker = item.get_closest_marker("pending")
        if marker is not None:
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "not yet shown passing")
            item.add_marker(pytest.mark.skip(reason=f"pending: {reason}"))
