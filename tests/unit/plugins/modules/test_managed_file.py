# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for sparkfleet.trtllm.managed_file, run against real files in a temporary directory."""

from __future__ import annotations

import os
import stat

import pytest
from ansible_collections.sparkfleet.trtllm.plugins.modules import managed_file


@pytest.fixture
def run(module_runner):
    def _run(args: dict, check_mode: bool = False, diff: bool = False):
        result = module_runner(managed_file.main, args, check_mode=check_mode, diff=diff)
        return result.rc, result.result

    return _run


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_creates_folders_and_file_then_changes_nothing(tmp_path, run):
    path = tmp_path / "state" / "sub" / "images.json"
    args = {"path": str(path), "content": '{"a": 1}\n', "mode": "0600", "directory_mode": "0700"}
    rc, result = run(args)
    assert rc == 0 and result["changed"] is True and result["created"] is True
    assert path.read_text() == '{"a": 1}\n'
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700 and mode_of(path.parent.parent) == 0o700
    rc, again = run(args)
    assert rc == 0 and again["changed"] is False and again["content_changed"] is False


def test_check_mode_predicts_and_writes_nothing(tmp_path, run):
    path = tmp_path / "new" / "f.yml"
    rc, result = run({"path": str(path), "content": "x: 1\n"}, check_mode=True, diff=True)
    assert rc == 0 and result["changed"] is True
    assert not path.parent.exists()
    assert result["diff"]["after"] == "x: 1\n" and result["diff"]["before"] == ""


def test_content_change_is_written_atomically_and_diffed(tmp_path, run):
    path = tmp_path / "f.json"
    path.write_text("old\n")
    os.chmod(path, 0o600)
    rc, result = run({"path": str(path), "content": "new\n", "mode": "0600"}, diff=True)
    assert rc == 0 and result["changed"] is True and result["content_changed"] is True and result["created"] is False
    assert path.read_text() == "new\n" and mode_of(path) == 0o600
    assert result["diff"]["before"] == "old\n" and result["diff"]["after"] == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]  # no temporary file left


def test_mode_drift_is_fixed_and_reported(tmp_path, run):
    path = tmp_path / "f.json"
    path.write_text("same\n")
    os.chmod(path, 0o644)
    rc, result = run({"path": str(path), "content": "same\n", "mode": "0600"}, check_mode=True)
    assert rc == 0 and result["changed"] is True and mode_of(path) == 0o644  # check mode: predicted only
    rc, result = run({"path": str(path), "content": "same\n", "mode": "0600"})
    assert rc == 0 and result["changed"] is True and result["content_changed"] is False
    assert mode_of(path) == 0o600


def test_parent_folder_mode_drift_is_fixed(tmp_path, run):
    folder = tmp_path / "state"
    folder.mkdir()
    os.chmod(folder, 0o755)
    (folder / "f").write_text("c")
    os.chmod(folder / "f", 0o600)
    rc, result = run({"path": str(folder / "f"), "content": "c", "mode": "0600", "directory_mode": "0700"})
    assert rc == 0 and result["changed"] is True and mode_of(folder) == 0o700


def test_bad_mode_and_folder_path_fail(tmp_path, run):
    rc, result = run({"path": str(tmp_path / "f"), "content": "", "mode": "rw"})
    assert rc == 1 and "octal" in result["msg"]
    rc, result = run({"path": str(tmp_path), "content": ""})
    assert rc == 1 and "is a folder" in result["msg"]
    (tmp_path / "plain").write_text("")
    rc, result = run({"path": str(tmp_path / "plain" / "f"), "content": ""})
    assert rc == 1 and "is not a folder" in result["msg"]
