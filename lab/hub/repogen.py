# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deterministic generator of small model repositories for the lab Hub stand-in.

Every repository of the DGX Spark support matrix (plus two lab-only ones) is generated from a
seed: config.json/tokenizer files shaped like the real model family, small but valid safetensors
weights, hf_quant_config.json for the NVIDIA ModelOpt checkpoints and the real gpt-oss layout.
Each repository has two commits: ``v1`` (older, tagged ``v1``) and ``main`` (newer).

Content is stored content-addressed under ``<data_dir>/blobs/<sha256>``; a manifest describes the
repositories, their commits and files.  Stdlib only (runs on Debian bookworm's python3).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import tempfile

GENERATOR_VERSION = 3

# (repo id, family, quant algo or None, weight layout)
# layout: "single" = model.safetensors, "sharded:N" = model-0000i-of-0000N.safetensors + index,
# "gptoss:N" = the gpt-oss layout with shards 00000..N-of-N.
MATRIX = [
    ("openai/gpt-oss-20b", "gpt-oss-20b", "MXFP4", "gptoss:2"),
    ("openai/gpt-oss-120b", "gpt-oss-120b", "MXFP4", "gptoss:14"),
    ("nvidia/Llama-3.1-8B-Instruct-FP8", "llama-3.1-8b", "FP8", "single"),
    ("nvidia/Llama-3.1-8B-Instruct-FP4", "llama-3.1-8b", "NVFP4", "single"),
    ("nvidia/Llama-3.3-70B-Instruct-FP4", "llama-3.3-70b", "NVFP4", "sharded:3"),
    ("nvidia/Qwen3-8B-FP8", "qwen3-8b", "FP8", "single"),
    ("nvidia/Qwen3-8B-FP4", "qwen3-8b", "NVFP4", "single"),
    ("nvidia/Qwen3-14B-FP8", "qwen3-14b", "FP8", "single"),
    ("nvidia/Qwen3-14B-FP4", "qwen3-14b", "NVFP4", "single"),
    ("nvidia/Qwen3-32B-FP4", "qwen3-32b", "NVFP4", "sharded:2"),
    ("nvidia/Phi-4-multimodal-instruct-FP8", "phi-4-multimodal", "FP8", "single"),
    ("nvidia/Phi-4-multimodal-instruct-FP4", "phi-4-multimodal", "NVFP4", "single"),
    ("nvidia/Phi-4-reasoning-plus-FP8", "phi-4-reasoning-plus", "FP8", "single"),
    ("nvidia/Phi-4-reasoning-plus-FP4", "phi-4-reasoning-plus", "NVFP4", "single"),
    ("nvidia/Llama-3_3-Nemotron-Super-49B-v1_5-FP8", "nemotron-super-49b", "FP8", "sharded:2"),
    ("nvidia/Qwen3-30B-A3B-FP4", "qwen3-30b-a3b", "NVFP4", "single"),
    ("nvidia/Qwen2.5-VL-7B-Instruct-FP8", "qwen2.5-vl-7b", "FP8", "single"),
    ("nvidia/Qwen2.5-VL-7B-Instruct-FP4", "qwen2.5-vl-7b", "NVFP4", "single"),
    ("nvidia/Llama-4-Scout-17B-16E-Instruct-FP4", "llama-4-scout", "NVFP4", "sharded:2"),
    ("nvidia/Qwen3-235B-A22B-FP4", "qwen3-235b-a22b", "NVFP4", "sharded:3"),
    # Lab-only repositories.
    ("sparkfleet-lab/tiny", "qwen3-8b", None, "single"),
    ("sparkfleet-lab/gated-tiny", "qwen3-8b", None, "single"),
]

DEFAULT_GATED = ("sparkfleet-lab/gated-tiny", "nvidia/Llama-3.3-70B-Instruct-FP4")

# Real model-family shapes (config.json values); the generated tensors are tiny regardless.
FAMILIES = {
    "llama-3.1-8b": dict(arch="LlamaForCausalLM", model_type="llama", hidden=4096, layers=32, heads=32, kv=8,
                         inter=14336, vocab=128256, ctx=131072, rope=500000.0, tok="llama3", kind="LLM"),
    "llama-3.3-70b": dict(arch="LlamaForCausalLM", model_type="llama", hidden=8192, layers=80, heads=64, kv=8,
                          inter=28672, vocab=128256, ctx=131072, rope=500000.0, tok="llama3", kind="LLM"),
    "qwen3-8b": dict(arch="Qwen3ForCausalLM", model_type="qwen3", hidden=4096, layers=36, heads=32, kv=8,
                     inter=12288, vocab=151936, ctx=40960, rope=1000000.0, tok="qwen", kind="LLM"),
    "qwen3-14b": dict(arch="Qwen3ForCausalLM", model_type="qwen3", hidden=5120, layers=40, heads=40, kv=8,
                      inter=17408, vocab=151936, ctx=40960, rope=1000000.0, tok="qwen", kind="LLM"),
    "qwen3-32b": dict(arch="Qwen3ForCausalLM", model_type="qwen3", hidden=5120, layers=64, heads=64, kv=8,
                      inter=25600, vocab=151936, ctx=40960, rope=1000000.0, tok="qwen", kind="LLM"),
    "qwen3-30b-a3b": dict(arch="Qwen3MoeForCausalLM", model_type="qwen3_moe", hidden=2048, layers=48, heads=32,
                          kv=4, inter=6144, vocab=151936, ctx=40960, rope=1000000.0, tok="qwen", kind="LLM",
                          extra=dict(num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768)),
    "qwen3-235b-a22b": dict(arch="Qwen3MoeForCausalLM", model_type="qwen3_moe", hidden=4096, layers=94, heads=64,
                            kv=4, inter=12288, vocab=151936, ctx=40960, rope=1000000.0, tok="qwen", kind="LLM",
                            extra=dict(num_experts=128, num_experts_per_tok=8, moe_intermediate_size=1536)),
    "phi-4-multimodal": dict(arch="Phi4MMForCausalLM", model_type="phi4mm", hidden=3072, layers=32, heads=24, kv=8,
                             inter=8192, vocab=200064, ctx=131072, rope=10000.0, tok="phi", kind="VLM"),
    "phi-4-reasoning-plus": dict(arch="Phi3ForCausalLM", model_type="phi3", hidden=5120, layers=40, heads=40, kv=10,
                                 inter=17920, vocab=100352, ctx=32768, rope=500000.0, tok="phi", kind="LLM"),
    "nemotron-super-49b": dict(arch="DeciLMForCausalLM", model_type="nemotron-nas", hidden=8192, layers=80, heads=64,
                               kv=8, inter=28672, vocab=128256, ctx=131072, rope=500000.0, tok="llama3", kind="LLM"),
    "qwen2.5-vl-7b": dict(arch="Qwen2_5_VLForConditionalGeneration", model_type="qwen2_5_vl", hidden=3584, layers=28,
                          heads=28, kv=4, inter=18944, vocab=152064, ctx=128000, rope=1000000.0, tok="qwen", kind="VLM"),
    "llama-4-scout": dict(arch="Llama4ForConditionalGeneration", model_type="llama4", hidden=5120, layers=48,
                          heads=40, kv=8, inter=8192, vocab=202048, ctx=10485760, rope=500000.0, tok="llama3",
                          kind="VLM", extra=dict(num_local_experts=16, num_experts_per_tok=1)),
    "gpt-oss-20b": dict(arch="GptOssForCausalLM", model_type="gpt_oss", hidden=2880, layers=24, heads=64, kv=8,
                        inter=2880, vocab=201088, ctx=131072, rope=150000.0, tok="harmony", kind="LLM",
                        extra=dict(num_local_experts=32, experts_per_token=4)),
    "gpt-oss-120b": dict(arch="GptOssForCausalLM", model_type="gpt_oss", hidden=2880, layers=36, heads=64, kv=8,
                         inter=2880, vocab=201088, ctx=131072, rope=150000.0, tok="harmony", kind="LLM",
                         extra=dict(num_local_experts=128, experts_per_token=4)),
}

SPECIAL_TOKENS = {
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen": ("<|endoftext|>", "<|im_end|>"),
    "phi": ("<|endoftext|>", "<|end|>"),
    "harmony": ("<|startoftext|>", "<|return|>"),
}

CHAT_TEMPLATES = {
    "llama3": ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
               "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
               "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"),
    "qwen": ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
    "phi": ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}"),
    "harmony": ("{% for m in messages %}<|start|>{{ m['role'] }}<|message|>{{ m['content'] }}<|end|>{% endfor %}"
                "{% if add_generation_prompt %}<|start|>assistant{% endif %}"),
}

GITATTRIBUTES = "".join(
    "%s filter=lfs diff=lfs merge=lfs -text\n" % pat
    for pat in ("*.bin", "*.safetensors", "*.pt", "*.pth", "*.model", "*.tiktoken", "tokenizer.json")
)
LFS_SUFFIXES = (".bin", ".safetensors", ".pt", ".pth", ".model", ".tiktoken")

# Small default sizes: total weight bytes per commit.
DEFAULT_WEIGHT_BYTES = {"main": 1536 * 1024, "v1": 768 * 1024}
COMMIT_DATES = {"v1": "2025-06-02T10:00:00.000Z", "main": "2025-09-15T10:00:00.000Z"}
COMMIT_TITLES = {"v1": "Initial upload", "main": "Update weights, README and add generation_config.json"}


def is_lfs(path):
    return path.endswith(LFS_SUFFIXES) or os.path.basename(path) == "tokenizer.json"


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256, size):
    return ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (sha256, size)).encode()


def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
    bs += list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def tokenizer_json(tok):
    """A valid byte-level BPE tokenizer (256 byte tokens, no merges) plus the family's special tokens."""
    vocab = {ch: i for i, ch in enumerate(_bytes_to_unicode().values())}
    bos, eos = SPECIAL_TOKENS[tok]
    added = []
    for i, content in enumerate(sorted({bos, eos, "<|pad|>"})):
        added.append({"id": 256 + i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True})
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                  "merges": []},
    }


def _dumps(obj):
    return (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()


class BlobStore:
    """Content-addressed blob directory: ``blobs/<sha256>``."""

    def __init__(self, data_dir):
        self.dir = os.path.join(data_dir, "blobs")
        os.makedirs(self.dir, exist_ok=True)

    def path(self, sha256):
        return os.path.join(self.dir, sha256)

    def put_bytes(self, data):
        sha = hashlib.sha256(data).hexdigest()
        dest = self.path(sha)
        if not os.path.exists(dest):
            fd, tmp = tempfile.mkstemp(dir=self.dir)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        return {"sha256": sha, "size": len(data), "git_sha1": git_blob_sha1(data)}

    def put_stream(self, chunks):
        """Store an iterable of byte chunks (large files are never held in memory)."""
        fd, tmp = tempfile.mkstemp(dir=self.dir)
        h256 = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                h256.update(chunk)
                size += len(chunk)
                f.write(chunk)
        sha = h256.hexdigest()
        os.replace(tmp, self.path(sha))
        return {"sha256": sha, "size": size, "git_sha1": None}


def _tensor_specs(fam, quant, shard, nshards):
    """Small tensors named like the family's checkpoint; the last one absorbs the size budget."""
    h = 64
    specs = []
    layer = shard
    prefix = "model.layers.%d." % layer
    if quant == "NVFP4":
        for proj in ("self_attn.q_proj", "mlp.down_proj"):
            specs += [(prefix + proj + ".weight", "U8", [h, h // 2]),
                      (prefix + proj + ".weight_scale", "F8_E4M3", [h, h // 16]),
                      (prefix + proj + ".weight_scale_2", "F32", []),
                      (prefix + proj + ".input_scale", "F32", [])]
    elif quant == "FP8":
        for proj in ("self_attn.q_proj", "mlp.down_proj"):
            specs += [(prefix + proj + ".weight", "F8_E4M3", [h, h]),
                      (prefix + proj + ".weight_scale", "F32", []),
                      (prefix + proj + ".input_scale", "F32", [])]
    elif quant == "MXFP4":
        specs += [(prefix + "mlp.experts.gate_up_proj_blocks", "U8", [4, 2 * h, 2, 16]),
                  (prefix + "mlp.experts.gate_up_proj_scales", "U8", [4, 2 * h, 2]),
                  (prefix + "self_attn.q_proj.weight", "BF16", [h, h])]
    else:
        specs += [(prefix + "self_attn.q_proj.weight", "BF16", [h, h]),
                  (prefix + "mlp.down_proj.weight", "BF16", [h, h])]
    specs.append((prefix + "input_layernorm.weight", "BF16", [h]))
    if shard == 0:
        specs.append(("model.norm.weight", "BF16", [h]))
    # The filler: embed_tokens in the first shard, lm_head in the others; rows fill the budget.
    specs.append(("model.embed_tokens.weight" if shard == 0 else "lm_head.weight.shard%d" % shard, "BF16",
                  None))
    return specs


DTYPE_BYTES = {"U8": 1, "F8_E4M3": 1, "BF16": 2, "F16": 2, "F32": 4}


def safetensors_chunks(rng, specs, target_bytes, metadata):
    """Yield a valid safetensors file of about target_bytes (header + data)."""
    header = {"__metadata__": metadata}
    offset = 0
    fixed = []
    row_bytes = 64 * 2
    for name, dtype, shape in specs:
        if shape is None:
            continue
        n = DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        fixed.append((name, dtype, shape, n))
    fixed_total = sum(x[3] for x in fixed)
    rows = max(1, (target_bytes - fixed_total - 2048) // row_bytes)
    filler = [s for s in specs if s[2] is None][0]
    tensors = fixed + [(filler[0], filler[1], [rows, 64], rows * row_bytes)]
    for name, dtype, shape, n in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    yield struct.pack("<Q", len(raw)) + raw
    remaining = offset
    while remaining > 0:
        n = min(remaining, 4 * 1024 * 1024)
        yield rng.randbytes(n)
        remaining -= n


def family_config(repo_id, fam_name, quant):
    fam = FAMILIES[fam_name]
    cfg = {
        "architectures": [fam["arch"]],
        "model_type": fam["model_type"],
        "hidden_size": fam["hidden"],
        "intermediate_size": fam["inter"],
        "num_hidden_layers": fam["layers"],
        "num_attention_heads": fam["heads"],
        "num_key_value_heads": fam["kv"],
        "vocab_size": fam["vocab"],
        "max_position_embeddings": fam["ctx"],
        "rope_theta": fam["rope"],
        "torch_dtype": "bfloat16",
        "tie_word_embeddings": False,
        "transformers_version": "4.55.0",
    }
    cfg.update(fam.get("extra", {}))
    if fam["model_type"] == "llama4":
        text_keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "vocab_size", "max_position_embeddings", "rope_theta",
                     "num_local_experts", "num_experts_per_tok")
        text = {k: cfg.pop(k) for k in text_keys}
        text["model_type"] = "llama4_text"
        cfg["text_config"] = text
        cfg["vision_config"] = {"model_type": "llama4_vision_model", "hidden_size": 1408, "image_size": 336}
    elif fam["kind"] == "VLM":
        cfg["vision_config"] = {"hidden_size": 1280, "image_size": 448}
    if quant == "MXFP4":
        cfg["quantization_config"] = {"quant_method": "mxfp4",
                                      "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                                 "model.embed_tokens", "lm_head"]}
    elif quant in ("FP8", "NVFP4"):
        cfg["quantization_config"] = {"quant_method": "modelopt", "quant_algo": quant,
                                      "kv_cache_quant_algo": "FP8" if quant == "FP8" else None,
                                      "exclude_modules": ["lm_head"]}
    bos, eos = SPECIAL_TOKENS[fam["tok"]]
    cfg["bos_token_id"] = 256 + sorted({bos, eos, "<|pad|>"}).index(bos)
    cfg["eos_token_id"] = 256 + sorted({bos, eos, "<|pad|>"}).index(eos)
    cfg["_lab_repo"] = repo_id
    return cfg


def readme(repo_id, fam_name, quant, commit_name):
    fam = FAMILIES[fam_name]
    base = repo_id.split("/", 1)[1]
    for suffix in ("-FP8", "-FP4"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    pipeline = "image-text-to-text" if fam["kind"] == "VLM" else "text-generation"
    lines = ["---", "license: other" if repo_id.startswith("nvidia/") else "license: apache-2.0",
             "library_name: transformers", "pipeline_tag: %s" % pipeline,
             "base_model: %s" % base, "tags:", "  - sparkfleet-lab", "  - %s" % (quant or "bf16").lower(), "---", "",
             "# %s (sparkfleet lab stand-in)" % repo_id, "",
             "Generated repository standing in for `%s` on the lab Hub: tiny random weights," % repo_id,
             "real file layout and config.json shape (%s, %s)." % (fam["arch"], fam["model_type"]), "",
             "Revision: %s." % commit_name, ""]
    if commit_name == "main":
        lines += ["## Changelog", "", "- main: new weights, generation_config.json added.", "- v1: initial upload.", ""]
    return "\n".join(lines).encode()


def repo_files(repo_id, fam_name, quant, layout, commit_name, seed, weight_bytes, store):
    """Return {path: blob record} for one commit of one repository."""
    fam = FAMILIES[fam_name]
    rng = random.Random("%s|%s|%s|%d" % (repo_id, commit_name, GENERATOR_VERSION, seed))
    files = {}

    def put(path, data):
        files[path] = store.put_bytes(data)

    bos, eos = SPECIAL_TOKENS[fam["tok"]]
    put(".gitattributes", GITATTRIBUTES.encode())
    put("README.md", readme(repo_id, fam_name, quant, commit_name))
    put("config.json", _dumps(family_config(repo_id, fam_name, quant)))
    put("tokenizer.json", _dumps(tokenizer_json(fam["tok"])))
    tok_cfg = {"bos_token": bos, "eos_token": eos, "pad_token": "<|pad|>", "model_max_length": fam["ctx"],
               "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
    if layout.startswith("gptoss"):
        put("chat_template.jinja", (CHAT_TEMPLATES[fam["tok"]] + "\n").encode())
        put("special_tokens_map.json", _dumps({"bos_token": bos, "eos_token": eos, "pad_token": "<|pad|>"}))
        put("LICENSE", b"Apache License, Version 2.0 (lab stand-in copy notice).\n")
        put("USAGE_POLICY", b"Lab stand-in: no real weights.\n")
    else:
        tok_cfg["chat_template"] = CHAT_TEMPLATES[fam["tok"]]
    put("tokenizer_config.json", _dumps(tok_cfg))
    if commit_name == "main":
        gen = {"bos_token_id": 256, "eos_token_id": [257], "do_sample": True, "temperature": 0.6, "top_p": 0.95,
               "transformers_version": "4.55.0"}
        put("generation_config.json", _dumps(gen))
    if quant in ("FP8", "NVFP4"):
        hq = {"producer": {"name": "modelopt", "version": "0.33.0"},
              "quantization": {"quant_algo": quant, "kv_cache_quant_algo": "FP8" if quant == "FP8" else None,
                               "exclude_modules": ["lm_head"]}}
        if quant == "NVFP4":
            hq["quantization"]["group_size"] = 16
        put("hf_quant_config.json", _dumps(hq))

    meta = {"format": "pt", "lab_repo": repo_id, "lab_commit": commit_name}
    kind, dummy, n = layout.partition(":")
    if kind == "single":
        files["model.safetensors"] = store.put_stream(
            safetensors_chunks(rng, _tensor_specs(fam, quant, 0, 1), weight_bytes, meta))
    else:
        n = int(n)
        if kind == "gptoss":
            names = ["model-%05d-of-%05d.safetensors" % (i, n) for i in range(n + 1)]
            budget = weight_bytes * 2 // 3
        else:
            names = ["model-%05d-of-%05d.safetensors" % (i + 1, n) for i in range(n)]
            budget = weight_bytes
        weight_map = {}
        total = 0
        for i, name in enumerate(names):
            specs = _tensor_specs(fam, quant, i, len(names))
            rec = store.put_stream(safetensors_chunks(rng, specs, max(budget // len(names), 16384), meta))
            files[name] = rec
            total += rec["size"]
            for spec in specs:
                weight_map[spec[0]] = name
        # total_size counts tensor bytes; header bytes are small, the approximation is what the Hub tools do too.
        put("model.safetensors.index.json", _dumps({"metadata": {"total_size": total},
                                                    "weight_map": dict(sorted(weight_map.items()))}))
        if kind == "gptoss":
            put("original/config.json", _dumps({"num_hidden_layers": fam["layers"],
                                                "num_experts": fam["extra"]["num_local_experts"],
                                                "experts_per_token": fam["extra"]["experts_per_token"],
                                                "vocab_size": fam["vocab"], "hidden_size": fam["hidden"]}))
            put("original/dtypes.json", _dumps({"embedding.weight": "BF16", "block.0.mlp.mlp1_weight.blocks": "FP4"}))
            files["original/model.safetensors"] = store.put_stream(
                safetensors_chunks(rng, _tensor_specs(fam, quant, 0, 1), weight_bytes // 6, meta))
            metal = rng.randbytes(max(weight_bytes // 6, 4096))
            put("metal/model.bin", metal)
    # LFS records: the tree oid is the git sha1 of the pointer file.
    for path, rec in files.items():
        if is_lfs(path):
            pointer = lfs_pointer(rec["sha256"], rec["size"])
            rec["lfs"] = True
            rec["git_sha1"] = git_blob_sha1(pointer)
            rec["pointer_size"] = len(pointer)
        else:
            rec["lfs"] = False
            if rec["git_sha1"] is None:
                with open(store.path(rec["sha256"]), "rb") as f:
                    rec["git_sha1"] = git_blob_sha1(f.read())
    return dict(sorted(files.items()))


def commit_sha(repo_id, commit_name, files, parent):
    h = hashlib.sha1()
    h.update(("commit %s %s %s\n" % (repo_id, commit_name, parent or "")).encode())
    for path, rec in sorted(files.items()):
        h.update(("%s %s\n" % (path, rec["git_sha1"])).encode())
    return h.hexdigest()


def generate(data_dir, seed=0, repo_sizes=None, repos=None):
    """Generate (or reuse) the repositories under data_dir; return the manifest dict."""
    repo_sizes = dict(repo_sizes or {})
    selected = [m for m in MATRIX if repos is None or m[0] in repos]
    key = {"version": GENERATOR_VERSION, "seed": seed, "repo_sizes": dict(sorted(repo_sizes.items())),
           "repos": [m[0] for m in selected]}
    os.makedirs(data_dir, exist_ok=True)
    manifest_path = os.path.join(data_dir, "manifest.json")
    store = BlobStore(data_dir)
    if os.path.exists(manifest_path):
        try:
            with open(manifest_path) as f:
                manifest = json.load(f)
            if manifest.get("key") == key and all(
                    os.path.exists(store.path(rec["sha256"]))
                    for repo in manifest["repos"].values() for c in repo["commits"].values()
                    for rec in c["files"].values()):
                return manifest
        except (ValueError, KeyError, OSError):
            pass
    out = {"key": key, "repos": {}}
    for repo_id, fam_name, quant, layout in selected:
        commits = {}
        parent = None
        for commit_name in ("v1", "main"):
            wbytes = DEFAULT_WEIGHT_BYTES[commit_name]
            if commit_name == "main" and repo_id in repo_sizes:
                wbytes = int(repo_sizes[repo_id])
            files = repo_files(repo_id, fam_name, quant, layout, commit_name, seed, wbytes, store)
            sha = commit_sha(repo_id, commit_name, files, parent)
            commits[commit_name] = {"sha": sha, "parent": parent, "date": COMMIT_DATES[commit_name],
                                    "title": COMMIT_TITLES[commit_name], "files": files}
            parent = sha
        fam = FAMILIES[fam_name]
        out["repos"][repo_id] = {
            "family": fam_name, "quant": quant, "layout": layout, "kind": fam["kind"],
            "architectures": [fam["arch"]], "model_type": fam["model_type"],
            "branches": {"main": commits["main"]["sha"]}, "tags": {"v1": commits["v1"]["sha"]},
            "commits": commits,
        }
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".manifest-")
    with os.fdopen(fd, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, manifest_path)
    return out
