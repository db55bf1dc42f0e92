# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures of the unit tests.

pytest.ini puts ``collections/`` on ``sys.path``, so the checkout imports as ``ansible_collections.sparkfleet.trtllm``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from ansible.module_utils.testing import patch_module_args


@dataclass
class ModuleRun:
    """What one in-process module run produced."""

    rc: int
    result: dict
    out: str
    wall_seconds: float


@pytest.fixture
def module_runner(capsys) -> Callable[..., ModuleRun]:
    """Return ``run(main, args, check_mode=False, diff=False)``: run a module's ``main()`` in-process with these
    arguments (as Ansible would pass them) and return its exit code, parsed JSON result and raw output."""

    def run(main: Callable[[], Any], args: dict, check_mode: bool = False, diff: bool = False) -> ModuleRun:
        full = dict(args)
        if check_mode:
            full["_ansible_check_mode"] = True
        if diff:
            full["_ansible_diff"] = True
        start = time.monotonic()
        with patch_module_args(full):
            with pytest.raises(SystemExit) as exc:
                main()
        wall = time.monotonic() - start
        out = capsys.readouterr().out
        return ModuleRun(exc.value.code, json.loads(out), out, wall)

    return run
