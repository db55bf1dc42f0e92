# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The sparkfleet.trtllm.model_spec lookup, run through a real ansible-playbook on the controller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: "{{ %s | to_json }}"
"""


def run_play(tmp_path: Path, expr: str) -> tuple[int, str]:
    play = tmp_path / "play.yml"
    play.write_text(PLAY % expr)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(play)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def msg(output: str):
    data = json.loads(output[output.index("{"):])
    return json.loads(data["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"])


def test_lookup_resolves_matrix_and_custom_models(tmp_path):
    rc, out = run_play(tmp_path, "query('sparkfleet.trtllm.model_spec', 'nvidia/Qwen3-235B-A22B-FP4', "
                                 "{'model': 'acme/tiny', 'kind': 'vlm', 'download_gb': 1, 'memory_gb': 2})")
    assert rc == 0, out
    big, tiny = msg(out)
    assert (big["nodes"], big["quantization"], big["in_matrix"]) == (2, "NVFP4", True)
    assert (tiny["kind"], tiny["in_matrix"], tiny["memory_gb"]) == ("vlm", False, 2)


def test_lookup_lists_the_whole_matrix(tmp_path):
    rc, out = run_play(tmp_path, "query('sparkfleet.trtllm.model_spec', all=true) | map(attribute='model') | list")
    assert rc == 0, out
    assert len(msg(out)) == 20


def test_lookup_error_names_the_variable(tmp_path):
    rc, out = run_play(tmp_path, "lookup('sparkfleet.trtllm.model_spec', 'acme/x', spec={'kind': 'llm'}, variable='sparkfleet_model_spec')")
    assert rc != 0
    assert "sparkfleet_model_spec: model 'acme/x' is not in the Spark support matrix" in out
    assert "missing: download_gb, memory_gb" in out
