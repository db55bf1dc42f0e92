# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Import stub of the sparkfleet lab stand-in (NOT NVIDIA TensorRT-LLM): only ``__version__`` exists.

Like the real package, importing it prints ``[TensorRT-LLM] TensorRT-LLM version: X`` on stdout, so
``python -c "import tensorrt_llm; print(tensorrt_llm.__version__)"`` prints two lines: read the last one.
"""

from __future__ import annotations

from tensorrt_llm.version import __version__

__standin__ = True
__all__ = ["__version__"]

print(f"[TensorRT-LLM] TensorRT-LLM version: {__version__}")
