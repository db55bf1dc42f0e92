# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Log lines shaped like TensorRT-LLM's Python logger and uvicorn's."""

from __future__ import annotations

import sys
import threading
import time

_LOCK = threading.Lock()
_LEVELS = {"internal_error": 0, "error": 1, "warning": 2, "info": 3, "verbose": 4, "debug": 5, "trace": 6}
_SEVERITY = {"E": 1, "W": 2, "I": 3, "V": 4, "D": 5}
_state = {"level": 3}


def set_level(name: str) -> None:
    """Apply ``--log_level``."""
    _state["level"] = _LEVELS.get(name, 3)


def _emit(line: str, stream=None) -> None:
    stream = stream or sys.stdout
    with _LOCK:
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass


def trt(severity: str, message: str) -> None:
    """``[MM/DD/YYYY-HH:MM:SS] [TRT-LLM] [I] message`` like tensorrt_llm.logger."""
    if _SEVERITY.get(severity, 3) > _state["level"]:
        return
    stamp = time.strftime("%m/%d/%Y-%H:%M:%S")
    _emit(f"[{stamp}] [TRT-LLM] [{severity}] {message}", sys.stderr if severity == "E" else None)


def uvicorn(level: str, message: str) -> None:
    """``INFO:     message`` like uvicorn's default formatter."""
    _emit(f"{level + ':':<9} {message}")


def raw(line: str, error: bool = False) -> None:
    """Print a line as is (stdout, or stderr when ``error``)."""
    _emit(line, sys.stderr if error else None)
