# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lab stand-in for NVIDIA TensorRT-LLM's ``trtllm-serve`` (no GPU, deterministic text).

Stdlib only (plus python3-yaml when present) so it runs on Debian bookworm's python3.
See docs/lab-standins.md for what is faithful to the real server and what is not.
"""

from __future__ import annotations

import os

DEFAULT_VERSION = "1.1.0rc3"
STANDIN_MARKER = "sparkfleet lab stand-in, NOT NVIDIA TensorRT-LLM"


def version() -> str:
    """The TensorRT-LLM version the stand-in reports (``TRTLLM_STANDIN_VERSION``)."""
    return os.environ.get("TRTLLM_STANDIN_VERSION") or DEFAULT_VERSION


def env_float(name: str, default: float) -> float:
    """Read a float environment variable, falling back to ``default`` when unset or invalid."""
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        return default


def env_int(name: str, default: int) -> int:
    """Read an int environment variable, falling back to ``default`` when unset or invalid."""
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        return default


def env_flag(name: str) -> bool:
    """True when an environment variable is set to a truthy value (1, true, yes, on)."""
    return os.environ.get(name, "").strip().upper() in ("1", "TRUE", "YES", "ON")
