# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for sparkfleet.trtllm.docker_daemon_config, run against real files in a temporary directory."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from ansible_collections.sparkfleet.trtllm.plugins.modules import docker_daemon_config

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "docker_daemon_config"
NVIDIA = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}


@pytest.fixture
def run_module(module_runner):
    """Run the module in-process; return (exit code, parsed JSON result it printed)."""

    def _run(args: dict, check_mode: bool = False, diff: bool = False) -> tuple[int, dict]:
        run = module_runner(docker_daemon_config.main, args, check_mode=check_mode, diff=diff)
        return run.rc, run.result

    return _run


def copy_fixture(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / "etc-docker" / "daemon.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / name, dest)
    return dest


def backups_of(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name + ".") and p.name.endswith("~"))


def test_existing_keys_kept_and_runtime_added(tmp_path, run_module):
    path = copy_fixture("lab-vfs.json", tmp_path)
    original = path.read_text()
    rc, result = run_module({"path": str(path), "settings": NVIDIA})
    assert rc == 0
    assert result["changed"] is True
    on_disk = json.loads(path.read_text())
    assert on_disk["storage-driver"] == "vfs"
    assert on_disk["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert on_disk["insecure-registries"] == ["registry.lab:5000"]
    assert on_disk["runtimes"] == {"nvidia": {"path": "nvidia-container-runtime"}}
    assert result["config"] == on_disk
    backup = Path(result["backup_file"])
    assert backup.read_text() == original
    assert backups_of(path) == [backup]


def test_runtimes_merge_deep_with_dgx_os_file(tmp_path, run_module):
    path = copy_fixture("dgx-os.json", tmp_path)
    settings = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"},
                             "crun": {"path": "/usr/bin/crun"}},
                "default-runtime": "nvidia"}
    rc, result = run_module({"path": str(path), "settings": settings})
    assert rc == 0 and result["changed"] is True
    on_disk = json.loads(path.read_text())
    # nvidia-ctk's "args" key survives, the new runtime joins it
    assert on_disk["runtimes"]["nvidia"] == {"args": [], "path": "nvidia-container-runtime"}
    assert on_disk["runtimes"]["crun"] == {"path": "/usr/bin/crun"}
    assert on_disk["default-runtime"] == "nvidia"


def test_already_present_is_unchanged_and_file_not_rewritten(tmp_path, run_module):
    path = copy_fixture("dgx-os.json", tmp_path)
    original = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    rc, result = run_module({"path": str(path), "settings": NVIDIA})
    assert rc == 0
    assert result["changed"] is False
    assert "backup_file" not in result
    assert path.read_bytes() == original  # 4-space indent kept: formatting alone is no change
    assert path.stat().st_mtime_ns == mtime
    assert backups_of(path) == []


def test_idempotent_second_run(tmp_path, run_module):
    path = copy_fixture("lab-vfs.json", tmp_path)
    args = {"path": str(path), "settings": {**NVIDIA, "default-runtime": "nvidia"}}
    assert run_module(args)[1]["changed"] is True
    after_first = path.read_text()
    rc, second = run_module(args)
    assert rc == 0 and second["changed"] is False
    assert path.read_text() == after_first
    assert len(backups_of(path)) == 1


def test_invalid_json_refused_and_file_untouched(tmp_path, run_module):
    path = copy_fixture("invalid-trailing-comma.json", tmp_path)
    original = path.read_bytes()
    rc, result = run_module({"path": str(path), "settings": NVIDIA})
    assert rc == 1
    assert result["failed"] is True
    assert "is not valid JSON at line 5" in result["msg"]
    assert "left untouched" in result["msg"]
    assert "Traceback" not in result["msg"]
    assert path.read_bytes() == original
    assert sorted(os.listdir(path.parent)) == ["daemon.json"]  # no temp file, no backup


def test_non_object_json_refused(tmp_path, run_module):
    path = copy_fixture("not-an-object.json", tmp_path)
    rc, result = run_module({"path": str(path), "settings": NVIDIA})
    assert rc == 1
    assert "not an object" in result["msg"]
    assert path.read_text() == '["vfs"]\n'


def test_check_mode_reports_change_without_writing(tmp_path, run_module):
    path = copy_fixture("lab-vfs.json", tmp_path)
    original = path.read_bytes()
    rc, result = run_module({"path": str(path), "settings": NVIDIA}, check_mode=True, diff=True)
    assert rc == 0 and result["changed"] is True
    assert path.read_bytes() == original
    assert backups_of(path) == []
    assert "backup_file" not in result
    assert json.loads(result["diff"]["before"]) == json.loads(original)
    after = json.loads(result["diff"]["after"])
    assert after["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert after["storage-driver"] == "vfs"
    assert result["diff"]["after_header"] == str(path)


def test_diff_shows_only_real_change(tmp_path, run_module):
    path = copy_fixture("dgx-os.json", tmp_path)
    rc, result = run_module({"path": str(path), "settings": {"default-runtime": "nvidia"}}, diff=True)
    assert rc == 0 and result["changed"] is True
    before_lines = result["diff"]["before"].splitlines()
    after_lines = result["diff"]["after"].splitlines()
    # only the added key (and the comma it needs after the previous entry) differs
    assert [line for line in after_lines if line not in before_lines] == ['  },', '  "default-runtime": "nvidia"']
    assert [line for line in before_lines if line not in after_lines] == ['  }']
    assert "default-runtime" not in result["diff"]["before"]


def test_unset_scalar_and_dotted_path(tmp_path, run_module):
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"default-runtime": "nvidia", "storage-driver": "vfs",
                                "runtimes": {"nvidia": {"path": "nvidia-container-runtime"},
                                             "crun": {"path": "/usr/bin/crun"}}}))
    rc, result = run_module({"path": str(path), "unset": ["default-runtime", "runtimes.crun", "not-there"]})
    assert rc == 0 and result["changed"] is True
    assert json.loads(path.read_text()) == {"storage-driver": "vfs",
                                            "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}


def test_list_merge_modes(tmp_path, run_module):
    path = copy_fixture("lab-vfs.json", tmp_path)
    settings = {"insecure-registries": ["mirror.lab:5000", "registry.lab:5000"]}
    run_module({"path": str(path), "settings": settings, "list_merge": "append_unique"})
    assert json.loads(path.read_text())["insecure-registries"] == ["registry.lab:5000", "mirror.lab:5000"]
    rc, again = run_module({"path": str(path), "settings": settings, "list_merge": "append_unique"})
    assert rc == 0 and again["changed"] is False
    run_module({"path": str(path), "settings": {"insecure-registries": ["only.lab:5000"]}})
    assert json.loads(path.read_text())["insecure-registries"] == ["only.lab:5000"]


def test_creates_missing_file_and_directory(tmp_path, run_module):
    path = tmp_path / "etc" / "docker" / "daemon.json"
    rc, result = run_module({"path": str(path), "settings": NVIDIA}, diff=True)
    assert rc == 0 and result["changed"] is True and result["created"] is True
    assert json.loads(path.read_text()) == NVIDIA
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert "backup_file" not in result
    assert result["diff"]["before"] == ""


def test_missing_file_and_nothing_to_set_creates_nothing(tmp_path, run_module):
    path = tmp_path / "daemon.json"
    rc, result = run_module({"path": str(path), "unset": ["default-runtime"]})
    assert rc == 0 and result["changed"] is False
    assert not path.exists()


def test_empty_file_is_an_empty_object(tmp_path, run_module):
    path = tmp_path / "daemon.json"
    path.write_text("")
    rc, result = run_module({"path": str(path), "settings": NVIDIA})
    assert rc == 0 and result["changed"] is True
    assert json.loads(path.read_text()) == NVIDIA


def test_mode_of_existing_file_kept(tmp_path, run_module):
    path = copy_fixture("lab-vfs.json", tmp_path)
    path.chmod(0o600)
    rc, result = run_module({"path": str(path), "settings": NVIDIA})
    assert rc == 0 and result["changed"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_default_runtime_without_definition_refused(tmp_path, run_module):
    path = copy_fixture("lab-vfs.json", tmp_path)
    original = path.read_bytes()
    rc, result = run_module({"path": str(path), "settings": {"default-runtime": "nvidia"}})
    assert rc == 1
    assert "settings.default-runtime" in result["msg"]
    assert path.read_bytes() == original
    rc, result = run_module({"path": str(path), "settings": {"default-runtime": "nvidia"},
                             "known_runtimes": ["nvidia"]})
    assert rc == 0 and result["changed"] is True


def test_validate_failure_leaves_file_untouched(tmp_path, run_module):
    path = copy_fixture("lab-vfs.json", tmp_path)
    original = path.read_bytes()
    rc, result = run_module({"path": str(path), "settings": NVIDIA, "validate": "/bin/false %s"})
    assert rc == 1
    assert "failed validation" in result["msg"]
    assert path.read_bytes() == original
    assert sorted(os.listdir(path.parent)) == ["daemon.json"]


def test_validate_success_sees_new_content(tmp_path, run_module):
    path = copy_fixture("lab-vfs.json", tmp_path)
    checker = tmp_path / "check.sh"
    checker.write_text('#!/bin/sh\ngrep -q nvidia-container-runtime "$1"\n')
    checker.chmod(0o755)
    rc, result = run_module({"path": str(path), "settings": NVIDIA, "validate": f"{checker} %s"})
    assert rc == 0 and result["changed"] is True


def test_report_daemon_returns_what_docker_info_lists(tmp_path, run_module, monkeypatch):
    path = copy_fixture("lab-vfs.json", tmp_path)
    calls = []

    def fake_run(self, argv, **kwargs):
        calls.append(argv)
        return 0, '{"runtimes": {"runc": {"path": "runc"}}, "default_runtime": "runc"}\n', ""

    monkeypatch.setattr(docker_daemon_config.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/bin/docker")
    monkeypatch.setattr(docker_daemon_config.AnsibleModule, "run_command", fake_run)
    rc, result = run_module({"path": str(path), "settings": NVIDIA, "report_daemon": True}, check_mode=True)
    assert rc == 0
    assert result["daemon"] == {"runtimes": {"runc": {"path": "runc"}}, "default_runtime": "runc"}
    assert "daemon_error" not in result
    assert calls and calls[0][:3] == ["/usr/bin/docker", "info", "--format"]


def test_report_daemon_without_an_answer_does_not_fail(tmp_path, run_module, monkeypatch):
    path = copy_fixture("lab-vfs.json", tmp_path)
    monkeypatch.setattr(docker_daemon_config.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/bin/docker")
    monkeypatch.setattr(docker_daemon_config.AnsibleModule, "run_command",
                        lambda self, argv, **kw: (1, "", "Cannot connect to the Docker daemon"))
    rc, result = run_module({"path": str(path), "settings": NVIDIA, "report_daemon": True}, check_mode=True)
    assert rc == 0 and result["daemon"] is None and "Cannot connect" in result["daemon_error"]
    monkeypatch.setattr(docker_daemon_config.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None)
    rc, result = run_module({"path": str(path), "settings": NVIDIA, "report_daemon": True}, check_mode=True)
    assert rc == 0 and result["daemon"] is None and result["daemon_error"] == "no docker command on PATH"
    rc, result = run_module({"path": str(path), "settings": NVIDIA}, check_mode=True)
    assert "daemon" not in result
