# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for the private hub-cache helpers (plugins/module_utils/_hub.py) on real files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_COLLECTIONS = str(Path(__file__).resolve().parents[4] / "collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.sparkfleet.trtllm.plugins.module_utils import _hub  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def git_hash_object(path):
    return subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()


def make_cache(tmp_path, files, lfs=("model.safetensors",)):
    """Write a hub cache the way huggingface_hub lays it out: blobs, relative snapshot links, refs, trees."""
    storage = tmp_path / "hub" / "models--org--name"
    (storage / "blobs").mkdir(parents=True)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(COMMIT)
    tree = {}
    for path, data in files.items():
        if path in lfs:
            etag = hashlib.sha256(data).hexdigest()
            entry = {"size": 134, "blob_id": hashlib.sha1(data).hexdigest(), "lfs_sha256": etag,
                     "lfs_size": len(data)}
        else:
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            entry = {"size": len(data), "blob_id": etag}
        (storage / "blobs" / etag).write_bytes(data)
        link = storage / "snapshots" / COMMIT / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(storage / "blobs" / etag, link.parent))
        tree[path] = entry
    (storage / "trees").mkdir()
    (storage / "trees" / (COMMIT + ".json")).write_text(json.dumps({"format_version": 1, "files": tree}))
    return storage


FILES = {
    "config.json": b'{"model_type": "qwen3"}\n',
    "model.safetensors": os.urandom(70000),
    "sub/dir/tokenizer.json": b"{}",
}


def test_repo_folder_names():
    assert _hub.repo_folder_name("nvidia/Qwen3-8B-FP4") == "models--nvidia--Qwen3-8B-FP4"
    assert _hub.repo_folder_name("org/data", "dataset") == "datasets--org--data"


def test_git_blob_sha1_matches_git(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello\nworld\n" * 1000)
    assert _hub.git_blob_sha1(str(path)) == git_hash_object(path)


def test_filter_paths_like_huggingface_hub():
    from huggingface_hub.utils import filter_repo_objects

    paths = ["a.json", "b.safetensors", "sub/c.json", "sub/d.bin", "README.md"]
    for allow, ignore in [(None, None), (["*.json"], None), (None, ["sub/"]), (["sub/"], ["*.bin"]),
                          ("*.md", None)]:
        ours = _hub.filter_paths(paths, allow, ignore)
        theirs = list(filter_repo_objects(paths, allow_patterns=allow, ignore_patterns=ignore))
        assert ours == theirs, (allow, ignore)


def test_resolve_cached_commit(tmp_path):
    storage = make_cache(tmp_path, FILES)
    assert _hub.resolve_cached_commit(str(storage), "main") == COMMIT
    assert _hub.resolve_cached_commit(str(storage), "v1") is None
    assert _hub.resolve_cached_commit(str(storage), "f" * 40) == "f" * 40


def test_verify_snapshot_ok_then_corrupted_and_missing(tmp_path):
    storage = make_cache(tmp_path, FILES)
    tree = _hub.read_tree(str(storage), COMMIT)
    snapshot = str(storage / "snapshots" / COMMIT)
    files = _hub.expected_files(tree)
    report = _hub.verify_snapshot(snapshot, files, workers=2)
    assert report == {"checked": 3, "bytes": sum(len(v) for v in FILES.values()), "missing": [], "corrupted": []}

    weights = Path(snapshot, "model.safetensors").resolve()
    data = bytearray(weights.read_bytes())
    data[10] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.unlink(Path(snapshot, "sub", "dir", "tokenizer.json"))
    report = _hub.verify_snapshot(snapshot, files)
    assert report["missing"] == ["sub/dir/tokenizer.json"]
    assert [c["path"] for c in report["corrupted"]] == ["model.safetensors"]
    assert "sha256" in report["corrupted"][0]["detail"]
    assert report["checked"] == 1

    # Only the selected files are checked.
    assert _hub.verify_snapshot(snapshot, _hub.expected_files(tree, ["*.json"], ["sub/"]))["checked"] == 1


def test_size_mismatch_reported_without_hashing(tmp_path):
    storage = make_cache(tmp_path, FILES)
    snapshot = storage / "snapshots" / COMMIT
    Path(snapshot, "config.json").resolve().write_bytes(b"{}")
    report = _hub.verify_snapshot(str(snapshot), _hub.expected_files(_hub.read_tree(str(storage), COMMIT)))
    assert report["corrupted"] == [{"path": "config.json", "detail": "size 2, expected %d" % len(FILES["config.json"])}]


def test_read_tree_rejects_unknown_format(tmp_path):
    storage = make_cache(tmp_path, FILES)
    (storage / "trees" / (COMMIT + ".json")).write_text(json.dumps({"format_version": 99, "files": {}}))
    assert _hub.read_tree(str(storage), COMMIT) is None
    assert _hub.read_tree(str(storage), "f" * 40) is None


def test_stale_incomplete_removed_only_when_blob_complete(tmp_path):
    storage = make_cache(tmp_path, FILES)
    etag = next(p.name for p in (storage / "blobs").iterdir())
    stale = storage / "blobs" / (etag + ".1a2b3c4d.incomplete")
    live = storage / "blobs" / ("f" * 64 + ".5e6f7a8b.incomplete")
    stale.write_bytes(b"x")
    live.write_bytes(b"y")
    assert _hub.incomplete_downloads(str(storage)) == sorted([str(stale), str(live)])
    assert _hub.remove_stale_incomplete(str(storage)) == [str(stale)]
    assert not stale.exists() and live.exists()
    assert str(live.name) not in _hub.blob_sizes(str(storage))


def test_free_bytes_of_missing_path_uses_parent(tmp_path):
    # Other processes write to the same file system between the two reads: equal within 64 MiB.
    free = _hub.free_bytes(str(tmp_path / "not" / "yet"))
    assert free > 0
    assert abs(free - shutil.disk_usage(tmp_path).free) < 64 * 1024 * 1024


@pytest.mark.parametrize("errno_value,full", [(28, True), (122, True), (13, False)])
def test_is_disk_full(errno_value, full):
    assert _hub.is_disk_full(OSError(errno_value, "x")) is full
