# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection and throttling of the lab Hub stand-in, seen through huggingface_hub 2.4.0."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import pytest

os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"  # before importing huggingface_hub (read at import time)

from huggingface_hub import HfApi, hf_hub_download  # noqa: E402
from huggingface_hub.errors import HfHubHTTPError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lab" / "hub"))
from launch import HubProcess  # noqa: E402  pylint: disable=wrong-import-position

TINY = "sparkfleet-lab/tiny"
# huggingface_hub writes a download in DOWNLOAD_CHUNK_SIZE (10 MiB) pieces: bytes of an unfinished piece are
# lost when the connection drops, so resuming needs files larger than one piece. tiny's main weights are
# padded to 25 MB for these tests (its v1 weights stay small).
CHUNK = 10 * 1024 * 1024
BIG = 25_000_000


@pytest.fixture(scope="module")
def datadir(tmp_path_factory):
    return tmp_path_factory.mktemp("hubdata-faults")


@pytest.fixture()
def hub(datadir):
    with HubProcess(datadir, "--repo-size", "%s=%d" % (TINY, BIG)) as proc:
        yield proc


def weights_record(hub, revision="main"):
    tree = HfApi(endpoint=hub.url, token=False).list_repo_tree(TINY, revision=revision)
    return [e for e in tree if e.path == "model.safetensors"][0]


def file_gets(hub):
    return [r for r in hub.stats()["recent"] if r["kind"] in ("cdn_get", "resolve_get")]


def test_cli_drop_after_bytes_is_resumed_with_range_requests(datadir, tmp_path):
    drop = 12_000_000
    with HubProcess(datadir, "--repo-size", "%s=%d" % (TINY, BIG), "--drop-after-bytes", str(drop)) as hub:
        rec = weights_record(hub)
        assert abs(rec.size - BIG) < 4096
        path = hf_hub_download(TINY, "model.safetensors", endpoint=hub.url, cache_dir=tmp_path, token=False)
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == rec.lfs.sha256
        gets = file_gets(hub)
        # each connection is cut after 12 MB; the client kept one 10 MiB piece of it and resumes from there
        assert [(g["range"], g["body_bytes"]) for g in gets] == [
            (None, drop), ("bytes=%d-" % CHUNK, drop), ("bytes=%d-" % (2 * CHUNK), rec.size - 2 * CHUNK)]
        assert [g["status"] for g in gets] == [200, 206, 206]
        assert hub.stats()["drops"] == 2


def test_interrupted_download_fails_cleanly_and_the_next_call_completes(hub, tmp_path):
    """A call that gives up leaves no partial blob (2.4.0 deletes its unique .incomplete file), so the next
    call downloads the whole file again and gets a verified blob."""
    rec = weights_record(hub)
    cut = 12_000_000
    faults = hub.set_faults(drop_after_bytes=cut, drop_scope="file", match="*/model.safetensors")
    assert faults["drop_after_bytes"] == cut and faults["drop_scope"] == "file"
    started = time.monotonic()
    with pytest.raises(Exception) as failed:  # the client gives up after 5 retries without progress
        hf_hub_download(TINY, "model.safetensors", endpoint=hub.url, cache_dir=tmp_path, token=False)
    assert "peer closed connection" in str(failed.value), repr(failed.value)
    assert time.monotonic() - started < 60
    gets = file_gets(hub)
    # first connection: 12 MB (one 10 MiB piece kept); then 5 retries from 10 MiB get 1.5 MB each, never a piece
    assert gets[0]["range"] is None and gets[0]["body_bytes"] == cut
    assert [(g["range"], g["body_bytes"]) for g in gets[1:]] == [("bytes=%d-" % CHUNK, cut - CHUNK)] * 5
    storage = tmp_path / "models--sparkfleet-lab--tiny"
    assert list((storage / "blobs").iterdir()) == []
    assert list((storage / "snapshots").rglob("model.safetensors")) == []

    hub.clear_faults()
    hub.reset_stats()
    path = hf_hub_download(TINY, "model.safetensors", endpoint=hub.url, cache_dir=tmp_path, token=False)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == rec.lfs.sha256
    assert [(g["range"], g["status"], g["body_bytes"]) for g in file_gets(hub)] == [(None, 200, rec.size)]
    result = HfApi(endpoint=hub.url, token=False).verify_repo_checksums(TINY, cache_dir=tmp_path)
    assert result.mismatches == [] and "model.safetensors" not in result.missing_paths


def test_injected_status_fails_only_the_requested_count(hub, tmp_path):
    hub.set_faults(fail_status=503, fail_count=1, match="*/config.json")
    with pytest.raises(HfHubHTTPError) as err:
        hf_hub_download(TINY, "config.json", endpoint=hub.url, cache_dir=tmp_path, token=False)
    assert err.value.response.status_code == 503
    assert [(r["method"], r["status"]) for r in hub.stats()["recent"] if "config.json" in r["path"]] == [
        ("HEAD", 200), ("GET", 503)]
    path = hf_hub_download(TINY, "config.json", endpoint=hub.url, cache_dir=tmp_path, token=False)
    assert Path(path).read_text().startswith("{")
    assert hub.set_faults()["fail_count"] == 0


def test_bandwidth_limit_is_roughly_honoured(datadir, tmp_path):
    rate = 400_000
    with HubProcess(datadir, "--bandwidth-bytes-per-second", str(rate)) as hub:
        rec = weights_record(hub, revision="v1")
        started = time.monotonic()
        hf_hub_download(TINY, "model.safetensors", revision="v1", endpoint=hub.url, cache_dir=tmp_path,
                        token=False)
        elapsed = time.monotonic() - started
        expected = rec.size / rate
        assert expected * 0.9 <= elapsed <= expected * 2 + 2, (elapsed, expected)
        # runtime change: lift the throttle, the same size now takes a fraction of the time
        hub.set_faults(bandwidth_bytes_per_second=None)
        started = time.monotonic()
        hf_hub_download(TINY, "model.safetensors", revision="v1", endpoint=hub.url, cache_dir=tmp_path / "b",
                        token=False)
        assert time.monotonic() - started < expected / 2


def test_stats_count_bytes_per_client_and_repo(hub, tmp_path):
    hub.reset_stats()
    path = hf_hub_download(TINY, "tokenizer.json", endpoint=hub.url, cache_dir=tmp_path, token=False)
    size = os.path.getsize(path)
    stats = hub.stats()
    assert stats["by_client"]["127.0.0.1"]["body_bytes"] == size
    assert stats["by_repo"][TINY]["body_bytes"] == size and stats["by_repo"][TINY]["file_gets"] == 1
    assert hub.reset_stats() == {"reset": True} and hub.stats()["requests"] == 0
