# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private data: the DGX Spark TensorRT-LLM model support matrix, and the function that resolves a model choice.

The one place the collection keeps the matrix (roles read it through the ``sparkfleet.trtllm.model_spec``
lookup, modules import it). Rows are the 20 models of NVIDIA's Spark TRT-LLM guide (dgx-spark-playbooks
``nvidia/trt-llm``, revision 752eada). Download sizes and memory needs are APPROXIMATE (decimal GB, rounded up
from the checkpoint sizes plus KV-cache / runtime headroom); ``memory_gb`` is the need per node.
Documented row by row in docs/models.md.
"""

from __future__ import annotations

import copy

QUANTIZATIONS = ("MXFP4", "FP8", "NVFP4", "BF16", "FP16")
KINDS = ("llm", "vlm")

# Options every VLM needs in the extra LLM API options file (upstream multimodal rule).
_VLM_OPTIONS = {"kv_cache_config": {"enable_block_reuse": False}}

# gpt-oss reads its tokenizer encodings from TIKTOKEN_ENCODINGS_BASE; stage them so no host needs the internet.
_GPT_OSS_SERVE = {
    "env": {"TIKTOKEN_ENCODINGS_BASE": "/opt/sparkfleet/tiktoken"},
    "tiktoken_files": ["o200k_base.tiktoken", "cl100k_base.tiktoken"],
}

# Phi-4-multimodal: the guide's multimodal flags (quickstart_multimodal.py) and remote code for serving.
_PHI4MM_SERVE = {
    "extra_llm_api_options": _VLM_OPTIONS,
    "args": ["--trust_remote_code"],
    "quickstart_args": ["--model_type", "phi4mm", "--load_lora", "--auto_model_name", "Phi4MMForCausalLM"],
}

_VLM_SERVE = {"extra_llm_api_options": _VLM_OPTIONS}

MODELS = {
    "openai/gpt-oss-20b": {
        "name": "GPT-OSS-20B", "quantization": "MXFP4", "kind": "llm", "nodes": 1,
        "download_gb": 14, "memory_gb": 20, "serve": _GPT_OSS_SERVE,
    },
    "openai/gpt-oss-120b": {
        "name": "GPT-OSS-120B", "quantization": "MXFP4", "kind": "llm", "nodes": 1,
        "download_gb": 65, "memory_gb": 70, "serve": _GPT_OSS_SERVE,
    },
    "nvidia/Llama-3.1-8B-Instruct-FP8": {
        "name": "Llama-3.1-8B-Instruct", "quantization": "FP8", "kind": "llm", "nodes": 1,
        "download_gb": 9, "memory_gb": 14, "serve": {},
    },
    "nvidia/Llama-3.1-8B-Instruct-FP4": {
        "name": "Llama-3.1-8B-Instruct", "quantization": "NVFP4", "kind": "llm", "nodes": 1,
        "download_gb": 6, "memory_gb": 10, "serve": {},
    },
    "nvidia/Llama-3.3-70B-Instruct-FP4": {
        "name": "Llama-3.3-70B-Instruct", "quantization": "NVFP4", "kind": "llm", "nodes": 1,
        "download_gb": 40, "memory_gb": 50, "serve": {},
    },
    "nvidia/Qwen3-8B-FP8": {
        "name": "Qwen3-8B", "quantization": "FP8", "kind": "llm", "nodes": 1,
        "download_gb": 9, "memory_gb": 14, "serve": {},
    },
    "nvidia/Qwen3-8B-FP4": {
        "name": "Qwen3-8B", "quantization": "NVFP4", "kind": "llm", "nodes": 1,
        "download_gb": 6, "memory_gb": 10, "serve": {},
    },
    "nvidia/Qwen3-14B-FP8": {
        "name": "Qwen3-14B", "quantization": "FP8", "kind": "llm", "nodes": 1,
        "download_gb": 16, "memory_gb": 22, "serve": {},
    },
    "nvidia/Qwen3-14B-FP4": {
        "name": "Qwen3-14B", "quantization": "NVFP4", "kind": "llm", "nodes": 1,
        "download_gb": 10, "memory_gb": 15, "serve": {},
    },
    "nvidia/Qwen3-32B-FP4": {
        "name": "Qwen3-32B", "quantization": "NVFP4", "kind": "llm", "nodes": 1,
        "download_gb": 20, "memory_gb": 28, "serve": {},
    },
    "nvidia/Phi-4-multimodal-instruct-FP8": {
        "name": "Phi-4-multimodal-instruct", "quantization": "FP8", "kind": "vlm", "nodes": 1,
        "download_gb": 7, "memory_gb": 12, "serve": _PHI4MM_SERVE,
    },
    "nvidia/Phi-4-multimodal-instruct-FP4": {
        "name": "Phi-4-multimodal-instruct", "quantization": "NVFP4", "kind": "vlm", "nodes": 1,
        "download_gb": 5, "memory_gb": 10, "serve": _PHI4MM_SERVE,
    },
    "nvidia/Phi-4-reasoning-plus-FP8": {
        "name": "Phi-4-reasoning-plus", "quantization": "FP8", "kind": "llm", "nodes": 1,
        "download_gb": 16, "memory_gb": 22, "serve": {},
    },
    "nvidia/Phi-4-reasoning-plus-FP4": {
        "name": "Phi-4-reasoning-plus", "quantization": "NVFP4", "kind": "llm", "nodes": 1,
        "download_gb": 10, "memory_gb": 15, "serve": {},
    },
    "nvidia/Llama-3_3-Nemotron-Super-49B-v1_5-FP8": {
        "name": "Llama-3_3-Nemotron-Super-49B-v1_5", "quantization": "FP8", "kind": "llm", "nodes": 1,
        "download_gb": 52, "memory_gb": 62, "serve": {},
    },
    "nvidia/Qwen3-30B-A3B-FP4": {
        "name": "Qwen3-30B-A3B", "quantization": "NVFP4", "kind": "llm", "nodes": 1,
        "download_gb": 18, "memory_gb": 25, "serve": {},
    },
    "nvidia/Qwen2.5-VL-7B-Instruct-FP8": {
        "name": "Qwen2.5-VL-7B-Instruct", "quantization": "FP8", "kind": "vlm", "nodes": 1,
        "download_gb": 10, "memory_gb": 16, "serve": _VLM_SERVE,
    },
    "nvidia/Qwen2.5-VL-7B-Instruct-FP4": {
        "name": "Qwen2.5-VL-7B-Instruct", "quantization": "NVFP4", "kind": "vlm", "nodes": 1,
        "download_gb": 7, "memory_gb": 12, "serve": _VLM_SERVE,
    },
    "nvidia/Llama-4-Scout-17B-16E-Instruct-FP4": {
        "name": "Llama-4-Scout-17B-16E-Instruct", "quantization": "NVFP4", "kind": "llm", "nodes": 1,
        "download_gb": 62, "memory_gb": 72, "serve": {},
    },
    "nvidia/Qwen3-235B-A22B-FP4": {
        "name": "Qwen3-235B-A22B", "quantization": "NVFP4", "kind": "llm", "nodes": 2,
        "download_gb": 130, "memory_gb": 80, "serve": {},
    },
}

# Minimum compute capability per quantization (hard requirement) and what the check says when it is not met.
QUANTIZATION_MIN_CC = {
    "NVFP4": ((10, 0), "NVFP4 needs a Blackwell GPU (compute capability 10.0 or newer)"),
    "FP8": ((8, 9), "FP8 needs compute capability 8.9 or newer (Ada Lovelace, Hopper, Blackwell)"),
    "MXFP4": ((9, 0), "MXFP4 kernels in TensorRT-LLM need Hopper or Blackwell (compute capability 9.0 or newer)"),
}

# Keys a user may give for a model (in a sparkfleet_models entry or in sparkfleet_model_spec).
SPEC_KEYS = ("name", "quantization", "kind", "nodes", "download_gb", "memory_gb", "serve")
REQUIRED_FOR_CUSTOM = ("kind", "download_gb", "memory_gb")


class ModelMatrixError(ValueError):
    """A model choice cannot be resolved; the message names the variable to fix."""


def _number(value, key, model, variable):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ModelMatrixError("%s: %s of model %r must be a number of GB, got %r" % (variable, key, model, value))
    if number <= 0:
        raise ModelMatrixError("%s: %s of model %r must be greater than 0, got %r" % (variable, key, model, value))
    return int(number) if number == int(number) else number


def resolve_model(model, spec=None, variable="sparkfleet_model"):
    """Return the full description of ``model`` (an HF handle), merged with the user's ``spec`` overrides.

    A model outside the matrix is accepted when ``spec`` gives at least kind, download_gb and memory_gb.
    Raises ``ModelMatrixError`` with a message naming ``variable``.
    """
    spec = dict(spec or {})
    if not isinstance(model, str) or "/" not in model.strip() or model.strip() != model:
        raise ModelMatrixError("%s: %r is not a Hugging Face model handle of the form <org>/<name>" % (variable, model))
    spec.pop("in_matrix", None)
    spec.pop("model", None)
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ModelMatrixError("%s: unknown key(s) %s for model %r; allowed: %s" % (variable, ", ".join(unknown), model, ", ".join(SPEC_KEYS)))
    row = MODELS.get(model)
    if row is None:
        missing = [k for k in REQUIRED_FOR_CUSTOM if spec.get(k) in (None, "")]
        if missing:
            raise ModelMatrixError(
                "%s: model %r is not in the Spark support matrix (see docs/models.md); to use it anyway give its %s "
                "(missing: %s)" % (variable, model, ", ".join(REQUIRED_FOR_CUSTOM), ", ".join(missing))
            )
        out = {"name": model.split("/", 1)[1], "quantization": None, "nodes": 1, "serve": {}}
        in_matrix = False
    else:
        out = copy.deepcopy(row)
        in_matrix = True
    for key in SPEC_KEYS:
        if spec.get(key) not in (None, ""):
            out[key] = copy.deepcopy(spec[key])
    out["model"] = model
    out["in_matrix"] = in_matrix
    if out["kind"] not in KINDS:
        raise ModelMatrixError("%s: kind of model %r must be one of %s, got %r" % (variable, model, ", ".join(KINDS), out["kind"]))
    if out.get("quantization") is not None:
        out["quantization"] = str(out["quantization"]).upper()
        if out["quantization"] not in QUANTIZATIONS:
            raise ModelMatrixError(
                "%s: quantization of model %r must be one of %s, got %r" % (variable, model, ", ".join(QUANTIZATIONS), out["quantization"])
            )
    for key in ("download_gb", "memory_gb"):
        out[key] = _number(out[key], key, model, variable)
    try:
        out["nodes"] = int(out["nodes"])
    except (TypeError, ValueError):
        raise ModelMatrixError("%s: nodes of model %r must be an integer, got %r" % (variable, model, out["nodes"]))
    if out["nodes"] < 1:
        raise ModelMatrixError("%s: nodes of model %r must be 1 or more, got %r" % (variable, model, out["nodes"]))
    if not isinstance(out.get("serve"), dict):
        raise ModelMatrixError("%s: serve of model %r must be a dict" % (variable, model))
    return out


def resolve_choices(model=None, models=None, model_spec=None):
    """Resolve the fleet's model choice: ``models`` (list of handles or dicts with ``model``) wins over ``model``.

    Returns a list of resolved specs (at most one llm and one vlm per host is the serving roles' concern).
    """
    resolved = []
    if models:
        if not isinstance(models, (list, tuple)):
            raise ModelMatrixError("sparkfleet_models must be a list of model handles or dicts with a 'model' key")
        for pos, item in enumerate(models):
            variable = "sparkfleet_models[%d]" % pos
            if isinstance(item, str):
                resolved.append(resolve_model(item, None, variable))
            elif isinstance(item, dict) and item.get("model"):
                resolved.append(resolve_model(item["model"], {k: v for k, v in item.items() if k != "model"}, variable))
            else:
                raise ModelMatrixError("%s: each entry must be a model handle or a dict with a 'model' key, got %r" % (variable, item))
        return resolved
    if not model:
        raise ModelMatrixError("sparkfleet_model: no model chosen; set sparkfleet_model (an HF handle) or sparkfleet_models")
    return [resolve_model(model, model_spec, "sparkfleet_model" if not model_spec else "sparkfleet_model / sparkfleet_model_spec")]


def quantization_check(quantization, compute_capability):
    """``(status, message)`` for serving a quantization on a GPU: pass, warn (not validated) or fail (unsupported)."""
    try:
        cc = tuple(int(p) for p in str(compute_capability).split(".", 1))
    except (TypeError, ValueError):
        return "warn", "compute capability unknown (%r): cannot tell whether %s is supported" % (compute_capability, quantization)
    if quantization in QUANTIZATION_MIN_CC:
        need, why = QUANTIZATION_MIN_CC[quantization]
        if cc < need:
            return "fail", "%s; this GPU is %d.%d" % (why, cc[0], cc[1])
    if not 10 <= cc[0] <= 12:
        return "warn", "%s on compute capability %d.%d is supported by TensorRT-LLM but the Spark matrix was validated on GB10 (Blackwell)" % (
            quantization or "this model", cc[0], cc[1])
    return "pass", "%s on compute capability %d.%d" % (quantization or "unquantized", cc[0], cc[1])
