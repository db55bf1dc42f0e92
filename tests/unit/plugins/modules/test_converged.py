# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the converged module on real files, a real Hugging Face cache layout and a real HTTP server."""

from __future__ import annotations

import http.server
import json
import os
import stat
import threading

import pytest

from ansible_collections.sparkfleet.trtllm.plugins.modules import converged

SECRET = "hf_thisIsNotARealTokenButMustNeverLeak"


@pytest.fixture
def host(tmp_path):
    """A host-like tree: a config folder with a key, a daemon.json, an HF cache with one complete revision."""
    etc = tmp_path / "etc" / "sparkfleet"
    etc.mkdir(parents=True)
    (etc / "token").write_text(SECRET)
    (etc / "token").chmod(0o600)
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"default-runtime": "nvidia"}\n')
    hub = tmp_path / "hub"
    repo = hub / "models--nvidia--Qwen3-8B-FP4"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    (repo / "blobs").mkdir()
    (repo / "blobs" / "b1").write_bytes(b"x" * 100)
    snap = repo / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    os.symlink("../../blobs/b1", snap / "model.safetensors")
    args = {"path": str(tmp_path / "state" / "converged.json"), "inputs_digest": "d1",
            "files": [str(etc), str(daemon)], "hf_cache": str(hub), "models": ["nvidia/Qwen3-8B-FP4"],
            "container_label": ""}
    return tmp_path, args


def test_no_record_is_not_converged_and_query_writes_nothing(module_runner, host):
    tmp_path, args = host
    run = module_runner(converged.main, args)
    assert run.rc == 0 and run.result["changed"] is False and run.result["converged"] is False
    assert run.result["drift"] == ["no record of a complete run in %s" % args["path"]]
    assert run.result["recorded_at"] is None and not (tmp_path / "state").exists()


def test_present_records_once_then_query_is_converged(module_runner, host):
    tmp_path, args = host
    check = module_runner(converged.main, dict(args, state="present"), check_mode=True, diff=True)
    assert check.result["changed"] is True and not (tmp_path / "state").exists()
    assert '"files:%s"' % args["files"][1] in check.result["diff"]["after"]
    first = module_runner(converged.main, dict(args, state="present"))
    assert first.result["changed"] is True
    record = tmp_path / "state" / "converged.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    assert SECRET not in record.read_text()  # digests only
    again = module_runner(converged.main, dict(args, state="present"))
    assert again.result["changed"] is False and again.result["recorded_at"] == first.result["recorded_at"]
    query = module_runner(converged.main, args)
    assert query.result["converged"] is True and query.result["drift"] == []
    assert query.result["fingerprint"] == first.result["fingerprint"]


@pytest.mark.parametrize("drift, expected", [
    (lambda t: (t / "daemon.json").write_text('{"default-runtime": "runc"}\n'), "files:{daemon}: changed"),
    (lambda t: (t / "etc" / "sparkfleet" / "token").chmod(0o644), "files:{etc}: changed"),
    (lambda t: (t / "etc" / "sparkfleet" / "extra.conf").write_text("x"), "files:{etc}: changed"),
    (lambda t: (t / "daemon.json").unlink(), "files:{daemon}: changed"),
    (lambda t: (t / "hub" / "models--nvidia--Qwen3-8B-FP4" / "refs" / "main").write_text("b" * 40),
     "model:nvidia/Qwen3-8B-FP4: changed"),
    (lambda t: (t / "hub" / "models--nvidia--Qwen3-8B-FP4" / "blobs" / "b1").write_bytes(b"x" * 50),
     "model:nvidia/Qwen3-8B-FP4: changed"),
    (lambda t: (t / "hub" / "models--nvidia--Qwen3-8B-FP4" / "snapshots" / ("a" * 40) / "model.safetensors").unlink(),
     "model:nvidia/Qwen3-8B-FP4: changed"),
], ids=["content", "mode", "new-file", "deleted", "ref-moved", "blob-truncated", "snapshot-link-gone"])
def test_each_kind_of_drift_is_named(module_runner, host, drift, expected):
    tmp_path, args = host
    assert module_runner(converged.main, dict(args, state="present")).result["changed"] is True
    drift(tmp_path)
    run = module_runner(converged.main, args)
    assert run.result["converged"] is False
    assert run.result["drift"] == [expected.format(daemon=args["files"][1], etc=args["files"][0])]


def test_other_inputs_are_drift(module_runner, host):
    _tmp_path, args = host
    module_runner(converged.main, dict(args, state="present"))
    run = module_runner(converged.main, dict(args, inputs_digest="d2"))
    assert run.result["converged"] is False
    assert run.result["drift"] == ["inputs: the run's variables or the collection differ from the recorded run"]
    # A part checked now but not at record time (a model added to the host) is drift too.
    run = module_runner(converged.main, dict(args, models=args["models"] + ["nvidia/Qwen3-14B-FP4"]))
    assert run.result["drift"] == ["model:nvidia/Qwen3-14B-FP4: not recorded"]
    # The query hands its digest back: site.yml's record play writes exactly what the check play compared.
    run = module_runner(converged.main, dict(args, inputs_digest="d2"))
    assert run.result["inputs_digest"] == "d2"
    recorded = module_runner(converged.main, dict(args, state="present", inputs_digest=run.result["inputs_digest"]))
    assert recorded.result["changed"] is True
    assert module_runner(converged.main, dict(args, inputs_digest="d2")).result["converged"] is True


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server naming)
        self.send_response(200 if self.path == "/health" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_endpoints_are_checked_live(module_runner, host):
    _tmp_path, args = host
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % server.server_address[1]
    try:
        module_runner(converged.main, dict(args, state="present"))
        good = module_runner(converged.main, dict(args, endpoints=[base + "/health"]))
        assert good.result["converged"] is True
        bad = module_runner(converged.main, dict(args, endpoints=[base + "/health", base + "/v1/models"]))
        assert bad.result["drift"] == ["endpoint %s/v1/models: HTTP 503" % base]
    finally:
        server.shutdown()
        server.server_close()
    refused = module_runner(converged.main, dict(args, endpoints=[base + "/health"], timeout=2))
    assert refused.result["converged"] is False
    assert refused.result["drift"][0].startswith("endpoint %s/health: " % base)


def test_models_need_the_cache_folder(module_runner, host):
    _tmp_path, args = host
    run = module_runner(converged.main, dict(args, hf_cache=None))
    assert run.rc == 1 and "hf_cache is required" in run.result["msg"]


def test_an_unreadable_record_is_no_record(module_runner, host):
    tmp_path, args = host
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "converged.json").write_text("{not json")
    run = module_runner(converged.main, args)
    assert run.result["converged"] is False and run.result["drift"][0].startswith("no record")
    assert "ignoring the unreadable record" in json.dumps(run.result.get("warnings"))  # 2.19: structured events
    assert json.loads(json.dumps(run.result["parts"]))  # digests are plain JSON


def test_firewalld_zone_and_guard_policy_are_fingerprinted(module_runner, host, monkeypatch):
    """firewalld: the collection's zone and its policy <marker>-guard (the peer-only ports) are both read, so a
    policy deleted by hand is drift. A stand-in firewall-cmd on PATH answers from files the test edits."""
    tmp_path, args = host
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "zone.txt").write_text("sparkfleet (active)\n  ports: 8355/tcp\n")
    (tmp_path / "policy.txt").write_text("sparkfleet-guard (active)\n  rich rules: rule port port=2377 drop\n")
    script = bin_dir / "firewall-cmd"
    script.write_text('#!/bin/sh\ncase "$1" in\n  --list-all) cat "%s";;\n'
                      '  --info-policy) [ -s "%s" ] || { echo "Error: INVALID_POLICY: $2" >&2; exit 2; }; cat "%s";;\n'
                      '  *) exit 0;;\nesac\n' % (tmp_path / "zone.txt", tmp_path / "policy.txt", tmp_path / "policy.txt"))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ.get("PATH", "")))
    args = dict(args, firewall="firewalld")
    module_runner(converged.main, dict(args, state="present"))
    assert module_runner(converged.main, args).result["converged"] is True
    (tmp_path / "policy.txt").write_text("")  # the guard policy deleted by hand
    run = module_runner(converged.main, args)
    assert run.result["converged"] is False and run.result["drift"] == ["firewall: changed"]
