# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped ansible.cfg: every key is one Ansible knows, and the fleet tuning is what ansible-core reads.

Ansible ignores a misspelt key in ansible.cfg without a word (``internal_pol_interval = 0.01`` would leave the
controller spinning at the default 1 ms); ``ansible-config validate -t all`` is the check that catches it, and the
dump is what ansible-core actually resolved from the file (docs/performance.md explains each value).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_CONFIG_BIN = Path(sys.executable).parent / "ansible-config"


def _config(*args: str, cfg: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(cfg)
    return subprocess.run([str(ANSIBLE_CONFIG_BIN), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_every_key_is_known_to_ansible():
    proc = _config("validate", "-t", "all", cfg=REPO / "ansible.cfg")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "seem valid" in proc.stdout


def test_a_misspelt_key_is_caught(tmp_path):
    """The check above can fail: the same command on a file with a typo names the key."""
    bad = tmp_path / "ansible.cfg"
    bad.write_text((REPO / "ansible.cfg").read_text().replace("internal_poll_interval", "internal_pol_interval"))
    proc = _config("validate", "-t", "all", cfg=bad)
    assert proc.returncode != 0
    assert "internal_pol_interval" in proc.stdout + proc.stderr


def test_fleet_tuning_is_what_ansible_reads():
    proc = _config("dump", "--only-changed", "-t", "all", "--format", "json", cfg=REPO / "ansible.cfg")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    base = {e["name"]: e["value"] for e in entries if "name" in e}
    assert base["DEFAULT_FORKS"] == 50
    assert base["DEFAULT_INTERNAL_POLL_INTERVAL"] == 0.01
    assert base["DEFAULT_GATHERING"] == "smart"
    assert base["CACHE_PLUGIN"] == "jsonfile"
    assert base["INJECT_FACTS_AS_VARS"] is False
    assert base["DISPLAY_SKIPPED_HOSTS"] is False
    ssh = {}
    for entry in entries:
        for plugin in entry.get("CONNECTION_PLUGINS", []):
            ssh.update({o["name"]: o["value"] for o in plugin.get("ssh", [])})
    assert ssh["pipelining"] is True
    assert "ControlPersist=600s" in ssh["ssh_args"] and "-C" not in ssh["ssh_args"].split()
