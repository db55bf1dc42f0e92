# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""sparkfleet.trtllm.local_files through a real ansible-playbook run on the controller (the action plugin needs
Ansible's task machinery, which a playbook gives for real and in about two seconds)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Write the files
      sparkfleet.trtllm.local_files:
        dest: "{{ dest }}"
        files: "{{ files }}"
        mode: "{{ mode | default('0644') }}"
      register: written
    - name: Show the result
      ansible.builtin.debug:
        var: written
"""


def play(tmp_path: Path, extra: dict, *flags: str) -> tuple[subprocess.CompletedProcess, dict]:
    book = tmp_path / "play.yml"
    book.write_text(PLAYBOOK)
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\ncollections_path = %s\nstdout_callback = ansible.builtin.json\n" % (REPO / "collections"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(cfg), ANSIBLE_NOCOLOR="1")
    # An unreachable inventory host: the action must never connect to it.
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "192.0.2.1,", str(book),
                           "-e", json.dumps(extra), *flags], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("ansible-playbook printed no JSON (rc %s):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    return proc, out


def task_result(out: dict, index: int = 0) -> dict:
    return out["plays"][0]["tasks"][index]["hosts"]["192.0.2.1"]


def test_writes_files_without_contacting_the_host_then_changes_nothing(tmp_path):
    dest = tmp_path / "reports" / "deep"
    files = [{"name": "a.md", "content": "# report\n"}, {"name": "b.json", "content": {"k": [1, 2]}}]
    proc, out = play(tmp_path, {"dest": str(dest), "files": files})
    assert proc.returncode == 0, proc.stdout[-3000:]
    first = task_result(out)
    assert first["changed"] is True
    assert first["written"] == [str(dest / "a.md"), str(dest / "b.json")]
    assert (dest / "a.md").read_text() == "# report\n"
    assert json.loads((dest / "b.json").read_text()) == {"k": [1, 2]}
    assert stat.S_IMODE((dest / "a.md").stat().st_mode) == 0o644
    assert not [p for p in dest.iterdir() if p.name.startswith(".")], "a temporary file was left behind"

    proc, out = play(tmp_path, {"dest": str(dest), "files": files})
    again = task_result(out)
    assert proc.returncode == 0 and again["changed"] is False and again["written"] == []


def test_mode_change_alone_is_a_change(tmp_path):
    files = [{"name": "r.txt", "content": "x"}]
    play(tmp_path, {"dest": str(tmp_path), "files": files})
    proc, out = play(tmp_path, {"dest": str(tmp_path), "files": files, "mode": "0600"})
    assert proc.returncode == 0 and task_result(out)["changed"] is True
    assert stat.S_IMODE((tmp_path / "r.txt").stat().st_mode) == 0o600


def test_check_mode_writes_nothing_and_diff_shows_the_content(tmp_path):
    dest = tmp_path / "out"
    proc, out = play(tmp_path, {"dest": str(dest), "files": [{"name": "r.txt", "content": "new\n"}]}, "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:]
    result = task_result(out)
    assert result["changed"] is True and result["written"] == [str(dest / "r.txt")]
    assert result["diff"][0]["after"] == "new\n" and result["diff"][0]["before"] == ""
    assert not dest.exists()


@pytest.mark.parametrize("name", ["../escape", "sub/file", ""])
def test_a_name_with_a_folder_is_refused(tmp_path, name):
    proc, out = play(tmp_path, {"dest": str(tmp_path / "d"), "files": [{"name": name, "content": "x"}]})
    assert proc.returncode != 0
    assert "files[].name must be a plain file name" in task_result(out)["msg"]
    assert not (tmp_path / "d").exists() and not (tmp_path / "escape").exists()


def test_dest_that_is_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc, out = play(tmp_path, {"dest": str(blocker), "files": [{"name": "r.txt", "content": "x"}]})
    assert proc.returncode != 0
    assert "dest %s exists and is not a folder" % blocker in task_result(out)["msg"]
    assert blocker.read_text() == "not a folder"


def test_unwritable_folder_names_the_path(tmp_path):
    # The tests run as root, who may write anywhere a folder can exist: a folder below a file cannot.
    proc, out = play(tmp_path, {"dest": str(tmp_path / "file2" / "sub"), "files": [{"name": "r.txt", "content": "x"}]})
    assert proc.returncode == 0  # parents are created
    (tmp_path / "file3").write_text("")
    proc, out = play(tmp_path, {"dest": str(tmp_path / "file3" / "sub"), "files": [{"name": "r.txt", "content": "x"}]})
    assert proc.returncode != 0
    assert "cannot write %s" % (tmp_path / "file3" / "sub" / "r.txt") in task_result(out)["msg"]
