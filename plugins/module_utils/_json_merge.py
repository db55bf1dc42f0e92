# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private helpers: parse a JSON object file and merge settings into it without clobbering other keys.

Merge rules (shared by every module that edits a JSON configuration file):

* a dict value merges key by key into an existing dict (recursively), so ``runtimes: {nvidia: ...}``
  adds the ``nvidia`` runtime and keeps any other runtime and any other key of an existing ``nvidia``;
* any other value (string, number, bool, null) replaces the existing one;
* a list either replaces the existing list (``replace``) or appends the items not present yet, in
  order (``append_unique``);
* ``unset`` removes keys, given as top-level names or dotted paths into nested dicts
  (``runtimes.nvidia``); a name that exists literally as a top-level key wins over the dotted reading.
"""

from __future__ import annotations

import copy
import json

LIST_MERGE_MODES = ("replace", "append_unique")


class JsonObjectError(ValueError):
    """The text is not a JSON object; the message says where and why."""


def load_json_object(text: str, source: str = "the file") -> dict:
    """Parse ``text`` as a JSON object. Empty or blank text is an empty object (as dockerd reads it)."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        col = getattr(exc, "colno", None)
        where = f" at line {line} column {col}" if line is not None else ""
        msg = getattr(exc, "msg", str(exc))
        raise JsonObjectError(f"{source} is not valid JSON{where}: {msg}") from None
    if not isinstance(data, dict):
        raise JsonObjectError(f"{source} holds a JSON {type(data).__name__}, not an object ({{...}})")
    return data


def merge_lists(existing: list, new: list, mode: str) -> list:
    """Combine two lists according to ``mode`` (``replace`` or ``append_unique``)."""
    if mode not in LIST_MERGE_MODES:
        raise ValueError(f"list merge mode must be one of {', '.join(LIST_MERGE_MODES)}, not {mode!r}")
    if mode == "replace":
        return copy.deepcopy(new)
    result = copy.deepcopy(existing)
    for item in new:
        if item not in result:
            result.append(copy.deepcopy(item))
    return result


def deep_merge(base: dict, overrides: dict, list_merge: str = "replace") -> dict:
    """Return a new dict: ``base`` with ``overrides`` merged in (see the module docstring for rules)."""
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        current = result.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            result[key] = deep_merge(current, value, list_merge)
        elif isinstance(value, list) and isinstance(current, list):
            result[key] = merge_lists(current, value, list_merge)
        else:
            result[key] = copy.deepcopy(value)
    return result


def unset_keys(data: dict, keys: list) -> dict:
    """Return a new dict without ``keys`` (top-level names or dotted paths); missing keys are ignored."""
    result = copy.deepcopy(data)
    for key in keys:
        if key in result:
            del result[key]
            continue
        parts = key.split(".")
        node = result
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict) and parts[-1] in node:
            del node[parts[-1]]
    return result


def dump_json(data: dict) -> str:
    """The text written to disk and shown in diffs: 2-space indent, key order kept, final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
