# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Version of the sparkfleet lab stand-in of TensorRT-LLM (TRTLLM_STANDIN_VERSION, default 1.1.0rc3)."""

from __future__ import annotations

import os

__version__ = os.environ.get("TRTLLM_STANDIN_VERSION") or "1.1.0rc3"
