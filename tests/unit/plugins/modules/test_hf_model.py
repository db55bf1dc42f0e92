# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for sparkfleet.trtllm.hf_model against the lab Hub stand-in (lab/hub/server.py).

The lab hub runs as a subprocess on 127.0.0.1 with a random port; every test uses its own cache folder
and reads the hub's own request/byte counters (``GET /_lab/stats``) to prove what went over the wire.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[4]
# A plain checkout resolves as the collection through collections/ (see ansible.cfg).
_COLLECTIONS = str(REPO_ROOT / "collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)
sys.path.insert(0, str(REPO_ROOT / "lab" / "hub"))

from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.sparkfleet.trtllm.plugins.module_utils import _hub  # noqa: E402
from ansible_collections.sparkfleet.trtllm.plugins.modules import hf_model  # noqa: E402

launch = pytest.importorskip("launch")

REPO = "nvidia/Qwen3-8B-FP4"
GATED = "sparkfleet-lab/gated-tiny"
APPROVED = "hf_lab_approved"
UNAPPROVED = "hf_lab_unapproved"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    data = tmp_path_factory.mktemp("lab-hub-data")
    with launch.HubProcess(data) as proc:
        proc.catalog = proc.repos()
        yield proc


@pytest.fixture(autouse=True)
def clean_hub(hub):
    hub.clear_faults()
    hub.reset_stats()
    yield
    hub.clear_faults()


@pytest.fixture
def run_module(capsys):
    """Run the module in-process; return (exit code, parsed JSON result + ``raw_stdout``)."""

    def _run(args, check_mode=False, diff=False):
        full = dict(args)
        full.setdefault("free_space_margin_bytes", 0)
        if check_mode:
            full["_ansible_check_mode"] = True
        if diff:
            full["_ansible_diff"] = True
        with patch_module_args(full):
            with pytest.raises(SystemExit) as exc:
                hf_model.main()
        out = capsys.readouterr().out
        result = json.loads(out)
        result["raw_stdout"] = out
        return exc.value.code, result

    return _run


def commits(hub, repo=REPO):
    files = hub.catalog[repo]["files"]
    return files["main"], files["v1"]


def storage(cache, repo=REPO):
    return cache / ("models--" + repo.replace("/", "--"))


def blob_of(cache, commit, path, repo=REPO):
    return (storage(cache, repo) / "snapshots" / commit / path).resolve()


def file_bytes(hub):
    return hub.stats()["by_repo"].get(REPO, {}).get("body_bytes", 0)


def requests_made(hub):
    # Every request except the test's own /_lab calls.
    stats = hub.stats()
    return stats["requests"] - stats["by_kind"].get("lab", 0)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fresh_download_then_noop(hub, tmp_path, run_module):
    main = commits(hub)[0]
    cache = tmp_path / "hub"
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 0, res
    assert res["changed"] is True
    assert res["commit"] == main["sha"]
    assert res["files"] == main["paths"]
    assert res["total_bytes"] == main["size_bytes"]
    assert res["downloaded_bytes"] == main["size_bytes"]
    assert sorted(res["downloaded_files"]) == main["paths"]
    assert res["snapshot_path"] == str(storage(cache) / "snapshots" / main["sha"])
    assert (storage(cache) / "refs" / "main").read_text() == main["sha"]
    assert file_bytes(hub) == main["size_bytes"]
    for path in main["paths"]:
        assert (Path(res["snapshot_path"]) / path).is_file()
    assert (storage(cache) / "trees" / ("%s.json" % main["sha"])).is_file()

    hub.reset_stats()
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 0, res
    assert res["changed"] is False
    assert res["downloaded_bytes"] == 0 and res["downloaded_files"] == []
    assert res["total_bytes"] == main["size_bytes"]
    assert file_bytes(hub) == 0


def test_check_mode_reports_plan_and_writes_nothing(hub, tmp_path, run_module):
    main = commits(hub)[0]
    cache = tmp_path / "hub"
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)}, check_mode=True,
                         diff=True)
    assert rc == 0, res
    assert res["changed"] is True
    assert res["downloaded_bytes"] == main["size_bytes"]
    assert sorted(res["downloaded_files"]) == main["paths"]
    assert res["diff"]["before"]["files"] == [] and res["diff"]["after"]["files"] == main["paths"]
    assert not cache.exists()
    assert file_bytes(hub) == 0


def test_short_disk_refused_before_download(hub, tmp_path, run_module):
    cache = tmp_path / "hub"
    for check in (True, False):
        rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache),
                             "free_space_margin_bytes": 1 << 62}, check_mode=check)
        assert rc == 1
        assert res["error"]["kind"] == "no_space"
        assert "free_space_margin_bytes" in res["msg"]
    assert file_bytes(hub) == 0
    assert not (storage(cache) / "snapshots").exists()


def test_pinned_commit_needs_no_request_once_cached(hub, tmp_path, run_module):
    v1 = commits(hub)[1]
    cache = tmp_path / "hub"
    rc, res = run_module({"repo_id": REPO, "revision": v1["sha"], "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 0, res
    assert res["changed"] is True
    assert res["commit"] == v1["sha"] and res["files"] == v1["paths"]
    assert res["downloaded_bytes"] == v1["size_bytes"]
    assert not (storage(cache) / "refs" / "main").exists()

    hub.reset_stats()
    rc, res = run_module({"repo_id": REPO, "revision": v1["sha"], "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 0 and res["changed"] is False
    assert requests_made(hub) == 0


def test_tag_resolves_to_older_commit(hub, tmp_path, run_module):
    v1 = commits(hub)[1]
    cache = tmp_path / "hub"
    rc, res = run_module({"repo_id": REPO, "revision": "v1", "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 0 and res["commit"] == v1["sha"]
    assert (storage(cache) / "refs" / "v1").read_text() == v1["sha"]


def test_allow_patterns(hub, tmp_path, run_module):
    main = commits(hub)[0]
    cache = tmp_path / "hub"
    wanted = sorted(p for p in main["paths"] if p.endswith(".json"))
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache),
                         "allow_patterns": ["*.json"]})
    assert rc == 0, res
    assert res["files"] == wanted
    assert cached(res["snapshot_path"]) == wanted
    assert file_bytes(hub) == res["downloaded_bytes"] == res["total_bytes"] < main["size_bytes"]
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache), "state": "verified",
                         "allow_patterns": ["*.json"]})
    assert rc == 0, res
    assert res["verified_files"] == len(wanted)
    # Without the patterns the snapshot is incomplete: never reported as verified.
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache), "state": "verified"})
    assert rc == 1 and res["error"]["kind"] == "corrupted"
    assert "model.safetensors" in res["missing_files"]


def cached(snapshot):
    return _hub.cached_files(snapshot)


@pytest.mark.parametrize("token,status", [(None, 401), (UNAPPROVED, 403)])
def test_gated_repo(hub, tmp_path, run_module, token, status):
    args = {"repo_id": GATED, "endpoint": hub.url, "cache_dir": str(tmp_path / "hub")}
    if token:
        args["token"] = token
    rc, res = run_module(args)
    assert rc == 1
    assert res["error"]["kind"] == "gated"
    assert GATED in res["msg"] and "request access" in res["msg"]
    assert ("has no access" in res["msg"]) == (status == 403)
    if token:
        assert token not in res["raw_stdout"]
    recent = [r for r in hub.stats()["recent"] if r["kind"] != "lab"]
    assert recent and recent[-1]["status"] == status


def test_gated_repo_with_approved_token_stores_token_file(hub, tmp_path, run_module):
    token_file = tmp_path / "hf" / "token"
    args = {"repo_id": GATED, "endpoint": hub.url, "cache_dir": str(tmp_path / "hf" / "hub"), "token": APPROVED,
            "token_file": str(token_file)}
    rc, res = run_module(args)
    assert rc == 0, res
    assert res["changed"] is True and res["downloaded_bytes"] > 0
    assert APPROVED not in res["raw_stdout"]
    assert token_file.read_text() == APPROVED
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    # A later run without the token reads it from token_file; nothing changes.
    rc, res = run_module({k: v for k, v in args.items() if k != "token"})
    assert rc == 0 and res["changed"] is False, res
    assert APPROVED not in res["raw_stdout"]


def test_missing_repo(hub, tmp_path, run_module):
    rc, res = run_module({"repo_id": "nvidia/does-not-exist", "endpoint": hub.url,
                         "cache_dir": str(tmp_path / "hub")})
    assert rc == 1
    assert res["error"]["kind"] == "repo_not_found"
    assert "nvidia/does-not-exist" in res["msg"]


def test_bad_revision(hub, tmp_path, run_module):
    rc, res = run_module({"repo_id": REPO, "revision": "no-such-branch", "endpoint": hub.url,
                         "cache_dir": str(tmp_path / "hub")})
    assert rc == 1
    assert res["error"]["kind"] == "revision_not_found"
    assert "no-such-branch" in res["msg"]


def test_offline_with_and_without_cache(hub, tmp_path, run_module):
    main = commits(hub)[0]
    cache = tmp_path / "hub"
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache), "offline": True})
    assert rc == 1
    assert res["error"]["kind"] == "not_cached"
    assert requests_made(hub) == 0

    assert run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})[0] == 0
    hub.reset_stats()
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache), "offline": True})
    assert rc == 0, res
    assert res["changed"] is False and res["offline"] is True
    assert res["commit"] == main["sha"] and res["files"] == main["paths"]
    assert requests_made(hub) == 0


def test_unreachable_endpoint_with_and_without_cache(hub, tmp_path, run_module):
    main = commits(hub)[0]
    cache = tmp_path / "hub"
    dead = "http://127.0.0.1:%d" % free_port()
    rc, res = run_module({"repo_id": REPO, "endpoint": dead, "cache_dir": str(cache)})
    assert rc == 1
    assert res["error"]["kind"] == "unreachable"
    assert dead in res["msg"]

    assert run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})[0] == 0
    rc, res = run_module({"repo_id": REPO, "endpoint": dead, "cache_dir": str(cache)})
    assert rc == 0, res
    assert res["changed"] is False and res["offline"] is True and res["commit"] == main["sha"]
    # ansible-core 2.19 returns warnings as structured events.
    assert "could not be reached" in json.dumps(res.get("warnings"))


def test_verified_detects_corrupted_blob(hub, tmp_path, run_module):
    main = commits(hub)[0]
    cache = tmp_path / "hub"
    assert run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})[0] == 0
    hub.reset_stats()
    rc, res = run_module({"repo_id": REPO, "cache_dir": str(cache), "state": "verified",
                         "endpoint": "http://127.0.0.1:%d" % free_port()})
    assert rc == 0, res
    assert res["changed"] is False and res["checksum_source"] == "cache"
    assert res["verified_files"] == len(main["paths"]) and res["verified_bytes"] == main["size_bytes"]
    assert requests_made(hub) == 0

    # Same size, one flipped byte in the LFS weights (sha256) and a truncated regular file (git sha1).
    weights = blob_of(cache, main["sha"], "model.safetensors")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    config = blob_of(cache, main["sha"], "config.json")
    config.write_bytes(config.read_bytes()[:-3])
    rc, res = run_module({"repo_id": REPO, "cache_dir": str(cache), "state": "verified"})
    assert rc == 1
    assert res["error"]["kind"] == "corrupted"
    assert sorted(c["path"] for c in res["corrupted_files"]) == ["config.json", "model.safetensors"]
    assert "model.safetensors" in res["msg"] and "config.json" in res["msg"]
    assert res["verified_files"] == len(main["paths"]) - 2


def test_verified_online_checksums(hub, tmp_path, run_module):
    main = commits(hub)[0]
    cache = tmp_path / "hub"
    assert run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})[0] == 0
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache), "state": "verified",
                         "checksum_source": "hub"})
    assert rc == 0, res
    assert res["checksum_source"] == "hub" and res["verified_files"] == len(main["paths"])
    weights = blob_of(cache, main["sha"], "model.safetensors")
    data = bytearray(weights.read_bytes())
    data[0] ^= 0x01
    weights.write_bytes(bytes(data))
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache), "state": "verified",
                         "checksum_source": "hub"})
    assert rc == 1 and [c["path"] for c in res["corrupted_files"]] == ["model.safetensors"]


def test_verified_not_cached(tmp_path, run_module):
    rc, res = run_module({"repo_id": REPO, "cache_dir": str(tmp_path / "hub"), "state": "verified"})
    assert rc == 1 and res["error"]["kind"] == "not_cached"


def test_interrupted_download_resumes_on_rerun(hub, tmp_path, run_module):
    main = commits(hub)[0]
    cache = tmp_path / "hub"
    # The hub never sends bytes of the weights past offset 200000: the download of that file cannot finish.
    hub.set_faults(drop_after_bytes=200000, drop_scope="file", match="%s/model.safetensors" % REPO)
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 1
    assert res["error"]["kind"] in ("interrupted", "incomplete"), res
    assert "re-run" in res["msg"].lower()
    # Nothing reaches the cache: no snapshot (not even the files that completed), no ref, nothing to verify.
    assert not storage(cache).exists()
    rc, res = run_module({"repo_id": REPO, "cache_dir": str(cache), "state": "verified"})
    assert rc == 1 and res["error"]["kind"] == "not_cached"
    # The files that completed wait in the staging cache; no partial file is left anywhere.
    staged = cache / ".sparkfleet-staging" / storage(cache).name
    assert len(list((storage(staged) / "blobs").iterdir())) == len(main["paths"]) - 1
    assert not list(cache.rglob("*.incomplete"))

    hub.clear_faults()
    hub.reset_stats()
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 0, res
    assert res["changed"] is True
    assert res["downloaded_files"] == ["model.safetensors"]
    weights_size = os.path.getsize(blob_of(cache, main["sha"], "model.safetensors"))
    assert res["downloaded_bytes"] == weights_size == file_bytes(hub)
    rc, res = run_module({"repo_id": REPO, "cache_dir": str(cache), "state": "verified"})
    assert rc == 0, res
    assert not (cache / ".sparkfleet-staging").exists()


def test_dropped_connections_retried_within_one_run(hub, tmp_path, run_module):
    main = commits(hub)[0]
    cache = tmp_path / "hub"
    hub.set_faults(drop_after_bytes=400000, drop_scope="response", drop_count=2,
                   match="%s/model.safetensors" % REPO)
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 0, res
    stats = hub.stats()
    assert stats["drops"] == 2
    # huggingface_hub 2.4 reads 10 MiB chunks: a body cut before the first chunk is fetched again whole.
    assert file_bytes(hub) == main["size_bytes"] + 2 * 400000
    assert res["downloaded_bytes"] == main["size_bytes"]
    assert run_module({"repo_id": REPO, "cache_dir": str(cache), "state": "verified"})[0] == 0


def test_absent_one_revision_then_all(hub, tmp_path, run_module):
    main, v1 = commits(hub)
    cache = tmp_path / "hub"
    for rev in ("main", "v1"):
        assert run_module({"repo_id": REPO, "revision": rev, "endpoint": hub.url, "cache_dir": str(cache)})[0] == 0
    rc, res = run_module({"repo_id": REPO, "revision": "v1", "cache_dir": str(cache), "state": "absent"},
                         check_mode=True)
    assert rc == 0 and res["changed"] is True and res["removed_commits"] == [v1["sha"]]
    assert (storage(cache) / "snapshots" / v1["sha"]).is_dir()

    rc, res = run_module({"repo_id": REPO, "revision": "v1", "cache_dir": str(cache), "state": "absent"})
    assert rc == 0 and res["changed"] is True and res["freed_bytes"] > 0
    assert not (storage(cache) / "snapshots" / v1["sha"]).exists()
    assert not (storage(cache) / "trees" / ("%s.json" % v1["sha"])).exists()
    # main is untouched and still verifies.
    assert run_module({"repo_id": REPO, "cache_dir": str(cache), "state": "verified"})[0] == 0
    rc, res = run_module({"repo_id": REPO, "revision": v1["sha"], "cache_dir": str(cache), "state": "absent"})
    assert rc == 0 and res["changed"] is False

    rc, res = run_module({"repo_id": REPO, "cache_dir": str(cache), "state": "absent"})
    assert rc == 0 and res["changed"] is True and res["removed_commits"] == [main["sha"]]
    assert not storage(cache).exists()
    rc, res = run_module({"repo_id": REPO, "cache_dir": str(cache), "state": "absent"})
    assert rc == 0 and res["changed"] is False


def test_mode_applied_and_idempotent(hub, tmp_path, run_module):
    cache = tmp_path / "hub"
    args = {"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache), "mode": "u=rwX,g=rX,o=rX"}
    assert run_module(args)[0] == 0
    for path, is_dir, is_link in _hub.walk_tree(str(storage(cache))):
        if not is_link:
            assert stat.S_IMODE(os.lstat(path).st_mode) == (0o755 if is_dir else 0o644), path
    os.chmod(storage(cache) / "refs" / "main", 0o600)
    rc, res = run_module(args)
    assert rc == 0 and res["changed"] is True
    assert stat.S_IMODE(os.stat(storage(cache) / "refs" / "main").st_mode) == 0o644
    rc, res = run_module(args)
    assert rc == 0 and res["changed"] is False


def test_missing_library_fails_cleanly_but_offline_verify_works(hub, monkeypatch, tmp_path, run_module):
    cache = tmp_path / "hub"
    assert run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})[0] == 0
    monkeypatch.setattr(hf_model, "HF", None)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    rc, res = run_module({"repo_id": REPO, "cache_dir": str(cache)})
    assert rc == 1
    assert "huggingface_hub" in res["msg"] and "model_cache" in res["msg"]
    rc, res = run_module({"repo_id": REPO, "cache_dir": str(cache), "state": "verified"})
    assert rc == 0 and res["verified_files"] == len(commits(hub)[0]["paths"]), res
    rc, res = run_module({"repo_id": REPO, "cache_dir": str(cache), "state": "absent"})
    assert rc == 0 and res["changed"] is True and not storage(cache).exists()


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or os.system("mount -t tmpfs -o size=1m tmpfs %s 2>/dev/null" % mnt) != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    os.system("umount %s" % mnt)


def test_disk_full_during_download(hub, tiny_fs, run_module):
    cache = tiny_fs / "hub"
    # The module's own free-space check would refuse first; a negative margin disables it to reach ENOSPC.
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache),
                         "free_space_margin_bytes": -(1 << 30)})
    assert rc == 1
    assert res["error"]["kind"] == "disk_full", res
    assert "Disk full" in res["msg"]
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 1 and res["error"]["kind"] == "no_space"


@pytest.fixture
def silent_endpoint():
    """An endpoint that accepts TCP connections (kernel backlog) and never answers, like a paused Hub container."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield "http://127.0.0.1:%d" % sock.getsockname()[1]
    sock.close()


def test_silent_endpoint_times_out_and_the_cached_revision_is_used(hub, tmp_path, run_module, silent_endpoint):
    main = commits(hub)[0]
    cache = tmp_path / "hub"
    rc, res = run_module({"repo_id": REPO, "endpoint": silent_endpoint, "cache_dir": str(cache), "timeout": 2})
    assert rc == 1 and res["error"]["kind"] == "unreachable", res
    assert res["duration_seconds"] < 20
    assert not (storage(cache) / "snapshots").exists()

    assert run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})[0] == 0
    rc, res = run_module({"repo_id": REPO, "endpoint": silent_endpoint, "cache_dir": str(cache), "timeout": 2},
                         diff=True)
    assert rc == 0, res
    assert res["changed"] is False and res["offline"] is True and res["commit"] == main["sha"]
    assert res["duration_seconds"] < 20
    assert "could not be reached" in json.dumps(res.get("warnings"))
    assert res["diff"]["before"] == res["diff"]["after"]


def test_timeout_must_be_positive(tmp_path, run_module):
    rc, res = run_module({"repo_id": REPO, "cache_dir": str(tmp_path / "hub"), "timeout": 0})
    assert rc == 1 and res["error"]["kind"] == "invalid"


_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[2])
from ansible.module_utils.testing import patch_module_args
from ansible_collections.sparkfleet.trtllm.plugins.modules import hf_model
with patch_module_args(json.loads(sys.argv[1])):
    hf_model.main()
"""


def test_killed_download_leaves_no_snapshot_and_no_ref_then_resumes(hub, tmp_path, run_module):
    import signal
    import subprocess
    import time

    main = commits(hub)[0]
    cache = tmp_path / "hub"
    staged = cache / ".sparkfleet-staging" / storage(cache).name
    # About 8 s for the weights: the module is killed (SIGKILL, no clean-up) while they are on the way.
    hub.set_faults(bandwidth_bytes_per_second=200000, match="%s/model.safetensors" % REPO)
    args = {"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache), "free_space_margin_bytes": 0}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(args), _COLLECTIONS],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def every_other_file_done():
        blobs = storage(staged) / "blobs"
        done = [b for b in blobs.iterdir() if not b.name.endswith(".incomplete")] if blobs.is_dir() else []
        return len(done) == len(main["paths"]) - 1 and list(blobs.glob("*.incomplete"))

    deadline = time.monotonic() + 60
    while not every_other_file_done() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert every_other_file_done(), "the download never reached the weights with the other files done"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    # What a server (or preflight, or the offline fallback) would look at holds nothing of the interrupted run.
    assert _hub.resolve_cached_commit(str(storage(cache)), "main") is None
    assert not (storage(cache) / "snapshots").exists()
    rc, res = run_module({"repo_id": REPO, "cache_dir": str(cache), "offline": True})
    assert rc == 1 and res["error"]["kind"] == "not_cached"

    hub.clear_faults()
    hub.reset_stats()
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 0, res
    # The files that completed before the kill are not fetched again.
    assert res["downloaded_files"] == ["model.safetensors"]
    assert res["downloaded_bytes"] == os.path.getsize(blob_of(cache, main["sha"], "model.safetensors"))
    assert not (cache / ".sparkfleet-staging").exists() and not list(cache.rglob("*.incomplete"))
    assert run_module({"repo_id": REPO, "cache_dir": str(cache), "state": "verified"})[0] == 0


def test_a_fetched_file_that_does_not_match_its_checksum_is_never_published(hub, tmp_path, run_module,
                                                                            monkeypatch):
    main = commits(hub)[0]
    cache = tmp_path / "hub"
    staged = cache / ".sparkfleet-staging" / storage(cache).name
    assert hf_model.import_hub()
    real = hf_model.HF.snapshot_download

    def damaging(**kwargs):
        path = real(**kwargs)
        if not kwargs.get("dry_run"):
            weights = Path(path, "model.safetensors").resolve()
            data = bytearray(weights.read_bytes())
            data[100] ^= 0xFF
            weights.write_bytes(bytes(data))
        return path

    monkeypatch.setattr(hf_model.HF, "snapshot_download", damaging)
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 1 and res["error"]["kind"] == "corrupted", res
    assert [c["path"] for c in res["corrupted_files"]] == ["model.safetensors"]
    assert not storage(cache).exists()
    # The damaged blob is dropped, the good files stay staged for the next run.
    assert len(list((storage(staged) / "blobs").iterdir())) == len(main["paths"]) - 1

    monkeypatch.setattr(hf_model.HF, "snapshot_download", real)
    hub.reset_stats()
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 0 and res["downloaded_files"] == ["model.safetensors"], res
    assert run_module({"repo_id": REPO, "cache_dir": str(cache), "state": "verified"})[0] == 0


def test_a_new_revision_reuses_the_cached_blobs_and_keeps_the_old_ref_until_complete(hub, tmp_path, run_module):
    main, v1 = commits(hub)
    cache = tmp_path / "hub"
    assert run_module({"repo_id": REPO, "revision": "v1", "endpoint": hub.url, "cache_dir": str(cache)})[0] == 0
    # main's download is cut: the cache keeps v1 whole and no ref or snapshot of main appears.
    hub.set_faults(drop_after_bytes=1000, drop_scope="file", match="%s/model.safetensors" % REPO)
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})
    shared = set(main["paths"]) & set(v1["paths"])
    if main["sha"] == v1["sha"] or not shared:
        pytest.skip("the lab hub's main and v1 share no file")
    assert rc == 1, res
    assert not (storage(cache) / "refs" / "main").exists()
    assert not (storage(cache) / "snapshots" / main["sha"]).exists()
    assert (storage(cache) / "refs" / "v1").read_text() == v1["sha"]
    hub.clear_faults()
    rc, res = run_module({"repo_id": REPO, "endpoint": hub.url, "cache_dir": str(cache)})
    assert rc == 0, res
    assert (storage(cache) / "refs" / "main").read_text() == main["sha"]
    # Files whose content v1 already held were linked, not fetched.
    same = {p for p in shared if blob_of(cache, main["sha"], p) == blob_of(cache, v1["sha"], p)}
    assert not same & set(res["downloaded_files"])
    for rev in ("main", "v1"):
        assert run_module({"repo_id": REPO, "revision": rev, "cache_dir": str(cache), "state": "verified"})[0] == 0
