# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for sparkfleet.trtllm.host_state_info, against real files in a temporary directory."""

from __future__ import annotations

import os

import pytest
from ansible_collections.sparkfleet.trtllm.plugins.modules import host_state_info


@pytest.fixture
def run(module_runner):
    def _run(args: dict, check_mode: bool = False):
        result = module_runner(host_state_info.main, args, check_mode=check_mode)
        return result.rc, result.result

    return _run


def test_reads_files_paths_globs_commands_and_modules(tmp_path, run):
    state = tmp_path / "state.json"
    state.write_text('{"a": 1}\n')
    os.chmod(state, 0o600)
    snaps = tmp_path / "hub [x]" / "snapshots"
    (snaps / "abc").mkdir(parents=True)
    (snaps / "abc" / "config.json").write_text("{}")
    (snaps / "def").mkdir()
    missing = tmp_path / "missing.json"
    pattern = str(tmp_path / "hub [[]x]" / "snapshots" / "*" / "config.json")  # glob.escape form of "[x]"
    rc, result = run({"files": [str(state), str(missing)], "paths": [str(snaps), str(missing)], "globs": [pattern],
                      "commands": ["sh", "no-such-command-sparkfleet"], "python_modules": ["json", "no_such_mod_sf"]},
                     check_mode=True)
    assert rc == 0 and result["changed"] is False
    assert result["files"][str(state)]["content"] == '{"a": 1}\n'
    assert result["files"][str(state)]["mode"] == "0600" and result["files"][str(state)]["size"] == 9
    assert result["files"][str(missing)] == {"exists": False}
    assert result["paths"] == {str(snaps): True, str(missing): False}
    assert result["globs"][pattern] == [str(snaps / "abc" / "config.json")]
    assert result["commands"]["sh"].endswith("/sh") and result["commands"]["no-such-command-sparkfleet"] is None
    assert result["python_modules"] == {"json": True, "no_such_mod_sf": False}


def test_unreadable_file_fails_instead_of_reading_as_missing(tmp_path, run):
    rc, result = run({"files": [str(tmp_path)]})
    assert rc == 1 and "not a regular file" in result["msg"]
    big = tmp_path / "big"
    big.write_text("x" * 100)
    rc, result = run({"files": [str(big)], "max_file_bytes": 10})
    assert rc == 1 and "more than max_file_bytes" in result["msg"]


def test_services_without_systemctl_read_unknown(monkeypatch, run):
    monkeypatch.setattr(host_state_info.shutil, "which", lambda name: None)
    rc, result = run({"services": ["docker"]})
    assert rc == 0 and result["services"] == {"docker": {"enabled": "unknown", "active": "unknown"}}


def test_services_report_systemctl_answers(monkeypatch, run):
    answers = {"is-enabled": (0, "enabled\n", ""), "is-active": (3, "inactive\n", "")}
    monkeypatch.setattr(host_state_info.shutil, "which", lambda name: "/bin/systemctl" if name == "systemctl" else None)
    monkeypatch.setattr(host_state_info.AnsibleModule, "run_command",
                        lambda self, argv, **kw: answers[argv[1]])
    rc, result = run({"services": ["docker"]})
    assert rc == 0 and result["services"] == {"docker": {"enabled": "enabled", "active": "inactive"}}
