# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of sparkfleet.trtllm.trtllm_status_info: state files, docker documents, probe and the whole module
with a fake ``docker`` and ``nvidia-smi`` on PATH and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import datetime
import json
import os
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.sparkfleet.trtllm.plugins.modules import trtllm_status_info as mod

NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.timezone.utc)
IMAGE_ID = "sha256:" + "a" * 64
DIGEST = "sha256:" + "d" * 64
COMMIT = "c" * 40


def state_doc(port=8355, image_id=IMAGE_ID):
    return {"current": {"name": "llm", "kind": "llm", "container": "sparkfleet-trtllm-llm", "image": "reg/trt:1",
                        "image_id": image_id, "image_repo_digests": ["reg/trt@" + DIGEST], "model": "org/m",
                        "revision": "main", "commit": COMMIT, "port": port, "endpoint_url": "http://10.0.0.1:%d/v1" % port,
                        "deployed_at": "2026-11-27T11:00:00Z"},
            "previous": {"image": "reg/trt:0"}}


def container_doc(status="running", started="2026-11-27T11:50:00.123456789Z", image_id=IMAGE_ID, port="8355"):
    return {"Name": "/sparkfleet-trtllm-llm", "Image": image_id, "RestartCount": 0,
            "State": {"Status": status, "Running": status == "running", "StartedAt": started, "ExitCode": 0 if status == "running" else 1},
            "Config": {"Image": "reg/trt:1",
                       "Labels": {"sparkfleet.role": "trtllm_server", "sparkfleet.name": "llm", "sparkfleet.kind": "llm",
                                  "sparkfleet.model": "org/m", "sparkfleet.port": port}}}


@pytest.mark.parametrize("value,expected", [
    ("2026-11-27T11:50:00.123456789Z", datetime.datetime(2026, 11, 27, 11, 50, 0, 123456, tzinfo=datetime.timezone.utc)),
    ("2026-11-27T13:50:00+02:00", datetime.datetime(2026, 11, 27, 11, 50, 0, tzinfo=datetime.timezone.utc)),
    ("0001-01-01T00:00:00Z", None),
    ("", None),
    ("yesterday", None),
])
def test_parse_docker_time(value, expected):
    assert mod.parse_docker_time(value) == expected


def test_row_from_state_and_running_container():
    row = mod.build_instance("llm", state_doc(), container_doc(), {IMAGE_ID: {"RepoDigests": ["reg/trt@" + DIGEST]}}, NOW)
    assert row["model"] == "org/m" and row["commit"] == COMMIT and row["image"] == "reg/trt:1"
    assert row["image_digest"] == DIGEST and row["image_matches_deployment"] is True
    assert row["container_state"] == "running" and row["uptime_seconds"] == pytest.approx(599.9, abs=0.1)
    assert row["started_at"] == "2026-11-27T11:50:00Z" and row["previous"] == {"image": "reg/trt:0"}
    assert row["problems"] == []


def test_row_flags_a_stopped_container_with_another_image():
    other = "sha256:" + "b" * 64
    row = mod.build_instance("llm", state_doc(), container_doc(status="exited", image_id=other), {}, NOW)
    assert row["container_state"] == "exited" and row["uptime_seconds"] is None and row["exit_code"] == 1
    assert row["image_matches_deployment"] is False and row["image_id"] == other
    assert "container is exited" in row["problems"] and "the running image differs from the deployed one" in row["problems"]


def test_rows_without_container_or_without_state():
    row = mod.build_instance("llm", state_doc(), None, {}, NOW)
    assert row["container_state"] == "missing" and row["image_digest"] == DIGEST
    assert "container sparkfleet-trtllm-llm does not exist" in row["problems"]
    row = mod.build_instance("llm", None, container_doc(), {}, NOW)
    assert row["model"] == "org/m" and row["port"] == 8355 and row["commit"] is None
    assert any("no deployment state file" in p for p in row["problems"])


def test_read_states_keeps_unreadable_files(tmp_path):
    (tmp_path / "serving-llm.json").write_text(json.dumps(state_doc()))
    (tmp_path / "serving-vlm.json").write_text("{broken")
    (tmp_path / "images.json").write_text("{}")
    states = mod.read_states(str(tmp_path))
    assert set(states) == {"llm", "vlm"} and "error" in states["vlm"]
    assert mod.read_states(str(tmp_path / "absent")) == {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    models = ["org/m"]

    def log_message(self, *args):
        pass

    def _json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # pylint: disable=invalid-name
        if self.path == "/health":
            self._json(200, {})
        else:
            self._json(200, {"data": [{"id": m} for m in self.models]})

    def do_POST(self):  # pylint: disable=invalid-name
        self.rfile.read(int(self.headers["Content-Length"]))
        self._json(200, {"choices": [{"message": {"content": "x"}}]})


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_probe_stages(server):
    result = mod.probe_endpoint("127.0.0.1", server, "org/m", 5)
    assert result["stage"] == "serving" and result["latency_ms"] > 0 and result["models"] == ["org/m"]
    result = mod.probe_endpoint("127.0.0.1", server, "org/other", 5)
    assert result["stage"] == "live" and "org/m" in result["error"]
    closed = mod.probe_endpoint("127.0.0.1", 9, "org/m", 2)
    assert closed["stage"] == "unreachable" and closed["error"]


def _fake_bin(tmp_path, name, script):
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    path.chmod(0o755)


def test_module_gathers_everything_in_one_call(tmp_path, server, monkeypatch, capsys):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "serving-llm.json").write_text(json.dumps(state_doc(port=server)))
    (tmp_path / "containers.json").write_text(json.dumps([container_doc(port=str(server))]))
    (tmp_path / "images.json").write_text(json.dumps([{"Id": IMAGE_ID, "RepoDigests": ["reg/trt@" + DIGEST]}]))
    _fake_bin(tmp_path, "docker", """\
        case "$1" in
          ps) echo 0123456789abcdef ;;
          inspect) cat %s ;;
          image) cat %s ;;
          *) exit 1 ;;
        esac
        """ % (tmp_path / "containers.json", tmp_path / "images.json"))
    _fake_bin(tmp_path, "nvidia-smi", "exit 9\n")
    monkeypatch.setenv("PATH", "%s:%s" % (tmp_path / "bin", os.environ["PATH"]))
    with patch_module_args({"state_dir": str(state_dir), "_ansible_check_mode": True}):
        with pytest.raises(SystemExit):
            mod.main()
    result = json.loads(capsys.readouterr().out)
    assert result["changed"] is False and result["docker_error"] is None
    (row,) = result["instances"]
    assert row["container_state"] == "running" and row["image_digest"] == DIGEST
    assert row["probe"]["stage"] == "serving" and row["commit"] == COMMIT
    assert result["gpu"]["error"]  # nvidia-smi fails here: reported, not fatal
