# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The serving lab shared by test_status.py and test_benchmark.py: the demo models on a paced stand-in."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB_SUFFIX = "st"
TOKENS_PER_SECOND = 10


def serve_demo(lab) -> None:
    """site.yml with the demo vars and a paced stand-in, unless the lab already serves exactly that."""
    probe = ("docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' sparkfleet-trtllm-llm sparkfleet-trtllm-vlm"
             " && test -s /var/lib/sparkfleet/state/serving-llm.json && test -s /var/lib/sparkfleet/state/serving-vlm.json")
    want = "TRTLLM_STANDIN_TOKENS_PER_SECOND=%d" % TOKENS_PER_SECOND
    if all(want in (proc := lab.ssh(host, probe, sudo=True)).stdout and proc.returncode == 0 for host in lab.host_names):
        return
    extra = {"trtllm_server_env": {"TRTLLM_STANDIN_TOKENS_PER_SECOND": str(TOKENS_PER_SECOND),
                                   "TRTLLM_STANDIN_LOAD_SECONDS": "2"}}
    proc = lab.ansible_playbook(REPO / "site.yml", "-e", "@lab/demo-vars.yml", "-e", json.dumps(extra), timeout=1700)
    assert proc.returncode == 0, proc.output[-6000:]
