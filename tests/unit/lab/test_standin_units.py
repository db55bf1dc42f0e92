# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""In-process tests of the TensorRT-LLM stand-in's parsers (lab/images/trtllm-standin/overlay/opt/trtllm-standin)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import yaml

PKG_ROOT = Path(__file__).resolve().parents[3] / "lab" / "images" / "trtllm-standin" / "overlay" / "opt" / "trtllm-standin"
sys.path.insert(0, str(PKG_ROOT))
sys.dont_write_bytecode = True  # no __pycache__ in the image's source tree (build-image hashes it)

from trtllm_standin import cli, config, hfcache  # noqa: E402  pylint: disable=wrong-import-position

GUIDE_YAML = """\
# the guide's /tmp/extra-llm-api-config.yml plus the HEAD Nemotron keys
print_iter_log: false
kv_cache_config:
  dtype: auto
  free_gpu_memory_fraction: 0.9
  enable_block_reuse: false   # comment after a value
cuda_graph_config:
  enable_padding: true
  batch_sizes: [1, 2, 4]
disable_overlap_scheduler: true
moe_config:
  backend: CUTLASS
max_batch_size: 1
mamba_ssm_cache_dtype: "float32"
speculative_config: {decoding_type: MTP, num_nextn_predict_layers: 3}
stop_words:
  - "</s>"
  - done
"""


def test_yaml_subset_matches_pyyaml_on_guide_files():
    assert config.parse_yaml_subset(GUIDE_YAML) == yaml.safe_load(GUIDE_YAML)
    assert config.parse_yaml_subset("") is None
    assert config.parse_yaml_subset("a: 1e-3\nb: ~\nc: '#not a comment'\n") == {"a": 1e-3, "b": None, "c": "#not a comment"}


def test_yaml_subset_rejects_broken_indentation():
    with pytest.raises(config.ConfigError):
        config.parse_yaml_subset("a:\n    b: 1\n  c: 2\n")


def test_options_file_without_pyyaml_falls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "yaml", None)
    as_json = tmp_path / "extra.json"
    as_json.write_text(json.dumps({"kv_cache_config": {"free_gpu_memory_fraction": 0.8}}))
    assert config.load_options_file(str(as_json)) == {"kv_cache_config": {"free_gpu_memory_fraction": 0.8}}
    as_yaml = tmp_path / "extra.yml"
    as_yaml.write_text(GUIDE_YAML)
    assert config.load_options_file(str(as_yaml)) == yaml.safe_load(GUIDE_YAML)
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(config.ConfigError) as excinfo:
        config.load_options_file(str(broken))
    assert excinfo.value.exc_type == "json.decoder.JSONDecodeError"


def test_serve_defaults_are_those_of_trtllm_serve():
    values = cli.parse_serve_args(["org/model"])
    assert values["host"] == "localhost" and values["port"] == 8000 and values["backend"] == "pytorch"
    assert values["max_batch_size"] == 2048 and values["max_num_tokens"] == 8192 and values["max_seq_len"] is None
    assert values["free_gpu_memory_fraction"] == 0.9 and values["trust_remote_code"] is False and values["tp_size"] == 1
    values = cli.parse_serve_args(["--tp_size=2", "org/model", "--backend", "trt", "--kv_cache_free_gpu_memory_fraction", "0.8"])
    assert (values["tp_size"], values["backend"], values["free_gpu_memory_fraction"]) == (2, "tensorrt", 0.8)


def test_hub_cache_dir_precedence(monkeypatch, tmp_path):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hfcache.hub_cache_dir() == str(tmp_path / ".cache" / "huggingface" / "hub")
    monkeypatch.setenv("HF_HOME", "/srv/hf")
    assert hfcache.hub_cache_dir() == "/srv/hf/hub"
    monkeypatch.setenv("HF_HUB_CACHE", "/mnt/hub")
    assert hfcache.hub_cache_dir() == "/mnt/hub"


def test_tree_listing_ignores_original_weights_like_trtllm(monkeypatch, tmp_path):
    commit = "a" * 40
    storage = tmp_path / "hub" / "models--org--m"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    (storage / "snapshots" / commit).mkdir(parents=True)
    (storage / "snapshots" / commit / "config.json").write_text("{}")
    (storage / "trees").mkdir()
    (storage / "trees" / f"{commit}.json").write_text(json.dumps(
        {"format_version": 1, "files": {"config.json": {"size": 2, "blob_id": "b"}, "original/x/consolidated.pth": {"size": 1, "blob_id": "c"}}}))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hfcache.resolve_model("org/m")["commit"] == commit
    (storage / "trees" / f"{commit}.json").write_text(json.dumps(
        {"format_version": 1, "files": {"config.json": {"size": 2, "blob_id": "b"}, "tokenizer.json": {"size": 1, "blob_id": "c"}}}))
    importlib.reload(hfcache)
    with pytest.raises(hfcache.ModelResolutionError) as excinfo:
        hfcache.resolve_model("org/m")
    assert excinfo.value.exc_type == "huggingface_hub.errors.IncompleteSnapshotError"
    assert "1 file(s) are missing (tokenizer.json)" in excinfo.value.message
