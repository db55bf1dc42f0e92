# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the model support matrix data and the resolution of a model choice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.sparkfleet.trtllm.plugins.module_utils import _model_matrix as mm

DOCS = Path(__file__).resolve().parents[4] / "docs" / "models.md"


def test_matrix_has_the_twenty_guide_rows():
    assert len(mm.MODELS) == 20
    assert sum(1 for m in mm.MODELS.values() if m["kind"] == "vlm") == 4
    assert [h for h, m in mm.MODELS.items() if m["nodes"] == 2] == ["nvidia/Qwen3-235B-A22B-FP4"]
    for handle, row in mm.MODELS.items():
        resolved = mm.resolve_model(handle)
        assert resolved["in_matrix"] is True
        assert resolved["quantization"] in ("MXFP4", "FP8", "NVFP4")
        assert resolved["download_gb"] > 0 and resolved["memory_gb"] >= resolved["download_gb"] / resolved["nodes"]
        if handle.endswith("-FP4"):
            assert row["quantization"] == "NVFP4", handle
        if handle.endswith("-FP8"):
            assert row["quantization"] == "FP8", handle


def test_serve_settings_of_special_models():
    for handle, row in mm.MODELS.items():
        if row["kind"] == "vlm":
            assert row["serve"]["extra_llm_api_options"]["kv_cache_config"]["enable_block_reuse"] is False, handle
    for handle in ("openai/gpt-oss-20b", "openai/gpt-oss-120b"):
        serve = mm.MODELS[handle]["serve"]
        assert "TIKTOKEN_ENCODINGS_BASE" in serve["env"]
        assert sorted(serve["tiktoken_files"]) == ["cl100k_base.tiktoken", "o200k_base.tiktoken"]
    assert "phi4mm" in mm.MODELS["nvidia/Phi-4-multimodal-instruct-FP4"]["serve"]["quickstart_args"]


def test_resolved_rows_are_copies():
    one = mm.resolve_model("nvidia/Qwen2.5-VL-7B-Instruct-FP8")
    one["serve"]["extra_llm_api_options"]["kv_cache_config"]["enable_block_reuse"] = True
    assert mm.MODELS["nvidia/Qwen2.5-VL-7B-Instruct-FP8"]["serve"]["extra_llm_api_options"]["kv_cache_config"]["enable_block_reuse"] is False


def test_unknown_model_needs_kind_size_and_memory_and_names_the_variable():
    with pytest.raises(mm.ModelMatrixError) as err:
        mm.resolve_model("acme/tiny", {"kind": "llm"}, "sparkfleet_model_spec")
    assert "sparkfleet_model_spec" in str(err.value)
    assert "missing: download_gb, memory_gb" in str(err.value)
    custom = mm.resolve_model("acme/tiny", {"kind": "llm", "download_gb": "2.5", "memory_gb": 4})
    assert custom == {"name": "tiny", "quantization": None, "nodes": 1, "serve": {}, "kind": "llm", "download_gb": 2.5,
                      "memory_gb": 4, "model": "acme/tiny", "in_matrix": False}


@pytest.mark.parametrize("model,spec,words", [
    ("not-a-handle", None, "not a Hugging Face model handle"),
    ("acme/x", {"kind": "audio", "download_gb": 1, "memory_gb": 1}, "kind of model"),
    ("acme/x", {"kind": "llm", "download_gb": -1, "memory_gb": 1}, "greater than 0"),
    ("acme/x", {"kind": "llm", "download_gb": "lots", "memory_gb": 1}, "must be a number"),
    ("acme/x", {"kind": "llm", "download_gb": 1, "memory_gb": 1, "colour": "red"}, "unknown key(s) colour"),
    ("nvidia/Qwen3-8B-FP4", {"quantization": "INT3"}, "quantization of model"),
    ("nvidia/Qwen3-8B-FP4", {"nodes": 0}, "nodes of model"),
])
def test_bad_input_is_refused(model, spec, words):
    with pytest.raises(mm.ModelMatrixError) as err:
        mm.resolve_model(model, spec)
    assert words in str(err.value)


def test_overrides_apply_to_matrix_rows():
    out = mm.resolve_model("nvidia/Qwen3-8B-FP4", {"memory_gb": 12})
    assert out["memory_gb"] == 12 and out["download_gb"] == 6 and out["in_matrix"] is True


def test_resolve_choices_prefers_the_list():
    assert [m["model"] for m in mm.resolve_choices("nvidia/Qwen3-8B-FP4")] == ["nvidia/Qwen3-8B-FP4"]
    both = mm.resolve_choices("ignored/x", ["openai/gpt-oss-20b", {"model": "nvidia/Qwen2.5-VL-7B-Instruct-FP4"}])
    assert [m["kind"] for m in both] == ["llm", "vlm"]
    with pytest.raises(mm.ModelMatrixError) as err:
        mm.resolve_choices(None, ["nvidia/Qwen3-8B-FP4", {"model": "acme/x"}])
    assert "sparkfleet_models[1]" in str(err.value)
    with pytest.raises(mm.ModelMatrixError):
        mm.resolve_choices(None, None)


@pytest.mark.parametrize("quant,cc,status", [
    ("NVFP4", "12.1", "pass"), ("NVFP4", "10.0", "pass"), ("NVFP4", "9.0", "fail"), ("FP8", "8.9", "warn"),
    ("FP8", "8.6", "fail"), ("FP8", "9.0", "warn"), ("MXFP4", "9.0", "warn"), ("MXFP4", "8.0", "fail"),
    ("FP8", "12.1", "pass"), (None, "8.0", "warn"), ("NVFP4", None, "warn"),
])
def test_quantization_against_compute_capability(quant, cc, status):
    assert mm.quantization_check(quant, cc)[0] == status


def test_every_row_is_documented():
    text = DOCS.read_text()
    for handle, row in mm.MODELS.items():
        line = next((ln for ln in text.splitlines() if "`%s`" % handle in ln), None)
        assert line is not None, handle
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert row["quantization"] in cells and row["kind"].upper() in cells, line
        assert re.search(r"\b%s\b" % row["download_gb"], line) and re.search(r"\b%s\b" % row["memory_gb"], line), line
