# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared helpers of the reliability suite (tests/integration/test_reliability_*.py, docs/reliability.md).

One lab (``sparkfleet-lab-rel``, 2 hosts) serves the whole suite: ``converged(lab)`` runs site.yml with the demo
variables once per pytest session and later callers get the result of that run.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_VARS = "@" + str(REPO / "lab" / "demo-vars.yml")
# RELIABILITY_LAB_SUFFIX lets two people (or helpers) run parts of the suite side by side on their own labs.
LAB_SUFFIX = os.environ.get("RELIABILITY_LAB_SUFFIX", "rel")
LLM, VLM = "nvidia/Qwen3-8B-FP4", "nvidia/Qwen2.5-VL-7B-Instruct-FP4"
LLM_CONTAINER, VLM_CONTAINER = "sparkfleet-trtllm-llm", "sparkfleet-trtllm-vlm"

_CONVERGED: dict[str, object] = {}

# What a host looks like, in one SSH round trip: containers (id, name, image, state, start time, restarts), firewall
# rules (ufw, and the nftables ruleset without its packet counters), daemon.json, the tree of the collection's
# folders (HF cache, state files, configuration) with sizes and modes, and the hashes of the state files.
SNAPSHOT_CMD = r"""
echo '## containers'
docker ps -aq | xargs -r docker inspect -f '{{.Id}} {{.Name}} {{.Config.Image}} {{.State.Status}} {{.State.StartedAt}} {{.RestartCount}}' | sort
echo '## ufw'
ufw status verbose
echo '## nft'
nft list ruleset | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'
echo '## daemon.json'
sha256sum /etc/docker/daemon.json 2>&1
echo '## tree'
find /var/lib/sparkfleet /etc/sparkfleet /opt/sparkfleet -printf '%p %y %s %m %u:%g\n' 2>/dev/null | sort
echo '## state'
find /var/lib/sparkfleet/state -type f -exec sha256sum {} + 2>/dev/null | sort
"""


def converged(lab, *extra: str):
    """Run site.yml with the demo variables on ``lab`` once per session; return that run's CompletedProcess."""
    if lab.name not in _CONVERGED and os.environ.get("RELIABILITY_ASSUME_CONVERGED") == "1":
        # Iterating on the suite: the lab was converged by a previous session (LAB_KEEP=1).
        _CONVERGED[lab.name] = None
    if lab.name not in _CONVERGED:
        started = time.monotonic()
        proc = lab.ansible_playbook("playbooks/site.yml", "-e", DEMO_VARS, *extra, timeout=1500)
        proc.seconds = time.monotonic() - started  # type: ignore[attr-defined]
        assert proc.returncode == 0, proc.output[-8000:]
        _CONVERGED[lab.name] = proc
    return _CONVERGED[lab.name]


def snapshot(lab, host: str) -> str:
    """The state of ``host`` that no refused run may change (see SNAPSHOT_CMD)."""
    proc = lab.ssh(host, SNAPSHOT_CMD, sudo=True, timeout=120)
    assert "## state" in proc.stdout, proc.stdout + proc.stderr
    return proc.stdout


def snapshots(lab) -> dict[str, str]:
    return {host: snapshot(lab, host) for host in lab.host_names}


def diff(before: dict[str, str], after: dict[str, str]) -> str:
    """A short readable difference of two snapshots ('' when equal)."""
    out = []
    for host in before:
        old, new = set(before[host].splitlines()), set(after[host].splitlines())
        out += ["%s -%s" % (host, line) for line in sorted(old - new)]
        out += ["%s +%s" % (host, line) for line in sorted(new - old)]
    return "\n".join(out)


def chat(ip: str, port: int, model: str, *, timeout: float = 30, max_tokens: int = 4):
    """POST /v1/chat/completions to http://ip:port; returns (status, json)."""
    req = urllib.request.Request(
        "http://%s:%d/v1/chat/completions" % (ip, port), method="POST",
        data=json.dumps({"model": model, "messages": [{"role": "user", "content": "Say hi"}],
                         "max_tokens": max_tokens}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - lab network only
        return resp.status, json.loads(resp.read())


def wait_serving(ip: str, port: int, model: str, timeout: float = 240) -> tuple[int, dict]:
    """Poll a chat completion until it answers 200 (or raise the last error after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return chat(ip, port, model, timeout=15)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = exc
            time.sleep(2)
    raise AssertionError("%s:%d did not serve %s within %ds: %r" % (ip, port, model, timeout, last))
