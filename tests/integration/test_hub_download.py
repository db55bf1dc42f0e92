# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab Hub stand-in (lab/hub/server.py) driven by the real huggingface_hub 2.4.0 client."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"  # before importing huggingface_hub (read at import time)

from huggingface_hub import HfApi, hf_hub_download, snapshot_download  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    GatedRepoError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lab" / "hub"))
from launch import HubProcess  # noqa: E402  pylint: disable=wrong-import-position
import repogen  # noqa: E402  pylint: disable=wrong-import-position

HF_CLI = REPO / ".venv" / "bin" / "hf"
MATRIX_HANDLES = [m[0] for m in repogen.MATRIX if not m[0].startswith("sparkfleet-lab/")]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess(tmp_path_factory.mktemp("hubdata")) as proc:
        yield proc


@pytest.fixture()
def cache(tmp_path):
    return tmp_path / "hub-cache"


def api(hub, token=False):
    return HfApi(endpoint=hub.url, token=token)


def safetensors_header(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    return header, len(data) - 8 - n


def test_matrix_has_the_twenty_spark_handles(hub):
    assert len(MATRIX_HANDLES) == 20
    infos = {h: api(hub).model_info(h) for h in MATRIX_HANDLES}
    for handle, info in infos.items():
        assert info.id == handle
        assert len(info.sha) == 40
        names = {s.rfilename for s in info.siblings}
        assert {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
                "README.md"} <= names
        if handle.startswith("nvidia/"):
            assert "hf_quant_config.json" in names
    assert infos["openai/gpt-oss-20b"].config["architectures"] == ["GptOssForCausalLM"]
    assert infos["nvidia/Qwen3-30B-A3B-FP4"].config["model_type"] == "qwen3_moe"
    assert infos["nvidia/Llama-3.3-70B-Instruct-FP4"].gated == "manual"
    assert infos["nvidia/Qwen3-8B-FP4"].gated is False


@pytest.mark.parametrize("handle,arch,quant", [
    ("nvidia/Qwen3-8B-FP4", "Qwen3ForCausalLM", "NVFP4"),
    ("nvidia/Llama-3.1-8B-Instruct-FP8", "LlamaForCausalLM", "FP8"),
    ("nvidia/Qwen3-32B-FP4", "Qwen3ForCausalLM", "NVFP4"),
    ("nvidia/Phi-4-multimodal-instruct-FP4", "Phi4MMForCausalLM", "NVFP4"),
])
def test_snapshot_download_nvidia_repo(hub, cache, handle, arch, quant):
    path = Path(snapshot_download(handle, endpoint=hub.url, cache_dir=cache, token=False))
    assert json.loads((path / "config.json").read_text())["architectures"] == [arch]
    assert json.loads((path / "hf_quant_config.json").read_text())["quantization"]["quant_algo"] == quant
    shards = sorted(path.glob("model*.safetensors"))
    assert shards
    if len(shards) > 1:
        index = json.loads((path / "model.safetensors.index.json").read_text())
        assert set(index["weight_map"].values()) == {s.name for s in shards}
    for shard in shards:
        header, data_len = safetensors_header(shard)
        ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
        assert max(ends) == data_len
    # the snapshot entries are relative symlinks into blobs/ named by the etag (sha256 for LFS files)
    target = os.readlink(shards[0])
    assert target.startswith("../../blobs/")
    assert os.path.basename(target) == hashlib.sha256(shards[0].read_bytes()).hexdigest()


def test_snapshot_download_gpt_oss_layout(hub, cache):
    path = Path(snapshot_download("openai/gpt-oss-20b", endpoint=hub.url, cache_dir=cache, token=False))
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    assert files == [
        ".gitattributes", "LICENSE", "README.md", "USAGE_POLICY", "chat_template.jinja", "config.json",
        "generation_config.json", "metal/model.bin", "model-00000-of-00002.safetensors",
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
        "original/config.json", "original/dtypes.json", "original/model.safetensors", "special_tokens_map.json",
        "tokenizer.json", "tokenizer_config.json",
    ]
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["model_type"] == "gpt_oss" and cfg["quantization_config"]["quant_method"] == "mxfp4"
    tok = json.loads((path / "tokenizer.json").read_text())
    assert tok["model"]["type"] == "BPE" and len(tok["model"]["vocab"]) == 256


def test_allow_and_ignore_patterns(hub, cache):
    only_json = Path(snapshot_download("openai/gpt-oss-20b", endpoint=hub.url, cache_dir=cache, token=False,
                                       allow_patterns=["*.json"], ignore_patterns=["original/*"]))
    got = sorted(str(p.relative_to(only_json)) for p in only_json.rglob("*") if p.is_file())
    assert got == ["config.json", "generation_config.json", "model.safetensors.index.json",
                   "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    no_weights = Path(snapshot_download("nvidia/Qwen3-8B-FP8", endpoint=hub.url, cache_dir=cache, token=False,
                                        ignore_patterns=["*.safetensors"]))
    assert not list(no_weights.glob("*.safetensors")) and (no_weights / "config.json").is_file()


def test_revision_pinning_by_sha_and_tag(hub, cache):
    handle = "nvidia/Qwen3-8B-FP4"
    refs = api(hub).list_repo_refs(handle)
    main_sha = [b.target_commit for b in refs.branches if b.name == "main"][0]
    v1_sha = [t.target_commit for t in refs.tags if t.name == "v1"][0]
    assert main_sha != v1_sha
    commits = api(hub).list_repo_commits(handle)
    assert [c.commit_id for c in commits] == [main_sha, v1_sha]

    by_tag = Path(snapshot_download(handle, revision="v1", endpoint=hub.url, cache_dir=cache, token=False))
    by_sha = Path(snapshot_download(handle, revision=v1_sha, endpoint=hub.url, cache_dir=cache, token=False))
    main = Path(snapshot_download(handle, endpoint=hub.url, cache_dir=cache, token=False))
    assert by_tag == by_sha and by_tag.name == v1_sha and main.name == main_sha
    assert not (by_tag / "generation_config.json").exists() and (main / "generation_config.json").is_file()
    assert (by_tag / "model.safetensors").read_bytes() != (main / "model.safetensors").read_bytes()
    assert (cache / "models--nvidia--Qwen3-8B-FP4" / "refs" / "v1").read_text() == v1_sha
    assert (cache / "models--nvidia--Qwen3-8B-FP4" / "refs" / "main").read_text() == main_sha
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(handle, "generation_config.json", revision="v1", endpoint=hub.url, cache_dir=cache,
                        token=False)
    assert (cache / "models--nvidia--Qwen3-8B-FP4" / ".no_exist" / v1_sha / "generation_config.json").exists()


def test_second_download_transfers_nothing(hub, cache):
    handle = "nvidia/Llama-3.1-8B-Instruct-FP4"
    snapshot_download(handle, endpoint=hub.url, cache_dir=cache, token=False)
    first = hub.stats()["by_repo"][handle]
    assert first["body_bytes"] > 1_000_000
    assert first["file_gets"] == len(api(hub).model_info(handle).siblings) == 8
    hub.reset_stats()
    snapshot_download(handle, endpoint=hub.url, cache_dir=cache, token=False)
    stats = hub.stats()
    assert stats["by_repo"][handle] == {"requests": 1, "body_bytes": 0, "file_gets": 0}
    assert stats["by_kind"] == {"api_info": 1}
    # a pinned commit that is fully cached needs no request at all
    hub.reset_stats()
    sha = (cache / "models--nvidia--Llama-3.1-8B-Instruct-FP4" / "refs" / "main").read_text()
    snapshot_download(handle, revision=sha, endpoint=hub.url, cache_dir=cache, token=False)
    assert hub.stats()["requests"] == 0


def test_gated_repo_needs_an_approved_token(hub, cache):
    for handle in ("sparkfleet-lab/gated-tiny", "nvidia/Llama-3.3-70B-Instruct-FP4"):
        with pytest.raises(GatedRepoError) as no_token:
            snapshot_download(handle, endpoint=hub.url, cache_dir=cache, token=False)
        assert no_token.value.response.status_code == 401
        with pytest.raises(GatedRepoError) as unapproved:
            snapshot_download(handle, endpoint=hub.url, cache_dir=cache, token="hf_lab_unapproved")
        assert unapproved.value.response.status_code == 403
    path = Path(snapshot_download("sparkfleet-lab/gated-tiny", endpoint=hub.url, cache_dir=cache,
                                  token="hf_lab_approved"))
    assert (path / "model.safetensors").stat().st_size > 500_000
    with pytest.raises(GatedRepoError):
        hf_hub_download("sparkfleet-lab/gated-tiny", "config.json", endpoint=hub.url, cache_dir=cache / "other",
                        token="hf_lab_unapproved")


def test_missing_repo_revision_and_file(hub, cache):
    with pytest.raises(RepositoryNotFoundError) as anon:
        snapshot_download("nvidia/No-Such-Model", endpoint=hub.url, cache_dir=cache, token=False)
    assert anon.value.response.status_code == 401 and not isinstance(anon.value, GatedRepoError)
    with pytest.raises(RepositoryNotFoundError) as authed:
        hf_hub_download("nvidia/No-Such-Model", "config.json", endpoint=hub.url, cache_dir=cache,
                        token="hf_lab_approved")
    assert authed.value.response.status_code == 404
    with pytest.raises(RevisionNotFoundError):
        snapshot_download("nvidia/Qwen3-8B-FP8", revision="v9", endpoint=hub.url, cache_dir=cache, token=False)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download("nvidia/Qwen3-8B-FP8", revision="0" * 40, endpoint=hub.url, cache_dir=cache,
                          token=False)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("nvidia/Qwen3-8B-FP8", "nope.bin", endpoint=hub.url, cache_dir=cache, token=False)


def _hf_verify(hub, tmp_path, cache, handle):
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HOME=str(tmp_path / "hf-home"),
               NO_COLOR="1")
    return subprocess.run([str(HF_CLI), "cache", "verify", handle, "--cache-dir", str(cache)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_hf_cache_verify_passes_then_detects_corruption(hub, cache, tmp_path):
    handle = "nvidia/Qwen3-14B-FP8"
    path = Path(snapshot_download(handle, endpoint=hub.url, cache_dir=cache, token=False))
    ok = _hf_verify(hub, tmp_path, cache, handle)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "All checksums match" in ok.stdout
    assert api(hub).verify_repo_checksums(handle, cache_dir=cache).mismatches == []
    blob = (path / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF  # same size, one flipped byte: only a checksum can notice
    blob.write_bytes(bytes(data))
    bad = _hf_verify(hub, tmp_path, cache, handle)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "model.safetensors" in bad.stdout + bad.stderr
    mismatches = api(hub).verify_repo_checksums(handle, cache_dir=cache).mismatches
    assert [m["path"] for m in mismatches] == ["model.safetensors"]


def test_tree_pagination_with_page_size_two(tmp_path_factory, cache):
    with HubProcess(tmp_path_factory.mktemp("hubdata-p2"), "--page-size", "2") as small:
        entries = list(HfApi(endpoint=small.url, token=False).list_repo_tree("openai/gpt-oss-20b", recursive=True))
        assert len(entries) == 20  # 18 files + original/ + metal/
        assert small.stats()["by_kind"]["api_tree"] == 10
        with urllib.request.urlopen(small.url + "/api/models/openai/gpt-oss-20b/tree/main?recursive=true") as r:
            link = r.headers["Link"]
            assert len(json.loads(r.read())) == 2
        assert link.startswith("<" + small.url + "/api/models/openai/gpt-oss-20b/tree/main?")
        assert link.endswith('>; rel="next"') and "cursor=2" in link
        top = list(HfApi(endpoint=small.url, token=False).list_repo_tree("openai/gpt-oss-20b", path_in_repo="original"))
        assert sorted(e.path for e in top) == ["original/config.json", "original/dtypes.json",
                                               "original/model.safetensors"]
        small.reset_stats()
        path = Path(snapshot_download("openai/gpt-oss-20b", endpoint=small.url, cache_dir=cache, token=False))
        assert (path / "original" / "model.safetensors").is_file()
        assert small.stats()["by_kind"]["api_tree"] == 10


def _request(url, method="GET", headers=None):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, method=method, headers=headers or {}), timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_raw_http_surface(hub):
    handle = "nvidia/Qwen3-8B-FP4"
    tree = json.loads(_request(hub.url + "/api/models/%s/tree/main?recursive=true" % handle)[2])
    assert all("xetHash" not in e for e in tree)
    weights = [e for e in tree if e["path"] == "model.safetensors"][0]
    config = [e for e in tree if e["path"] == "config.json"][0]
    status, headers, dummy = _request(hub.url + "/%s/resolve/main/model.safetensors" % handle, "HEAD")
    assert status == 302 and "X-Xet-Hash" not in headers
    assert headers["X-Linked-Etag"] == '"%s"' % weights["lfs"]["oid"]
    assert int(headers["X-Linked-Size"]) == weights["size"]
    assert headers["Location"].startswith("/lfs-cdn/" + weights["lfs"]["oid"] + "?")
    sha = headers["X-Repo-Commit"]
    status, cdn_headers, body = _request(hub.url + headers["Location"])
    assert status == 200 and hashlib.sha256(body).hexdigest() == weights["lfs"]["oid"]
    assert cdn_headers["X-Repo-Commit"] == sha
    status, part_headers, part = _request(hub.url + headers["Location"], headers={"Range": "bytes=1000-"})
    assert status == 206 and part == body[1000:]
    assert part_headers["Content-Range"] == "bytes 1000-%d/%d" % (len(body) - 1, len(body))
    status, headers, body = _request(hub.url + "/%s/resolve/%s/config.json" % (handle, sha))
    assert status == 200 and headers["ETag"] == '"%s"' % config["oid"]
    assert hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest() == config["oid"]
    status, headers, dummy = _request(hub.url + "/%s/resolve/main/nope.txt" % handle, "HEAD")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound" and headers["X-Repo-Commit"] == sha
    status, headers, dummy = _request(hub.url + "/sparkfleet-lab/gated-tiny/resolve/main/config.json", "HEAD")
    assert status == 401 and headers["X-Error-Code"] == "GatedRepo"
    # a forged CDN signature is refused
    forged = "/lfs-cdn/%s?repo=%s&commit=%s&path=model.safetensors&expires=9999999999&sig=x" % (
        weights["lfs"]["oid"], handle, sha)
    status = _request(hub.url + forged)[0]
    assert status == 403
    info = api(hub).model_info(handle, files_metadata=True)
    sib = [s for s in info.siblings if s.rfilename == "model.safetensors"][0]
    assert sib.lfs.sha256 == weights["lfs"]["oid"] and sib.size == weights["size"]
    assert api(hub).file_exists(handle, "config.json") and not api(hub).file_exists(handle, "nope.json")
    assert _request(hub.url + "/api/agent-harnesses")[0] == 200


def test_repo_size_padding(tmp_path_factory, cache):
    with HubProcess(tmp_path_factory.mktemp("hubdata-big"), "--repo-size", "sparkfleet-lab/tiny=5000000") as big:
        path = hf_hub_download("sparkfleet-lab/tiny", "model.safetensors", endpoint=big.url, cache_dir=cache,
                               token=False)
        size = os.path.getsize(path)
        assert abs(size - 5_000_000) < 4096
        header, data_len = safetensors_header(path)
        assert max(t["data_offsets"][1] for k, t in header.items() if k != "__metadata__") == data_len
