# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for the private module_utils _json_merge (the merge rules of docker_daemon_config)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.sparkfleet.trtllm.plugins.module_utils._json_merge import (
    JsonObjectError,
    deep_merge,
    dump_json,
    load_json_object,
    merge_lists,
    unset_keys,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "docker_daemon_config"


def test_load_dgx_os_fixture():
    data = load_json_object((FIXTURES / "dgx-os.json").read_text())
    assert data == {"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}


@pytest.mark.parametrize("text", ["", "  \n", "\n\n"])
def test_blank_text_is_empty_object(text):
    assert load_json_object(text) == {}


def test_invalid_json_names_source_and_position():
    with pytest.raises(JsonObjectError) as exc:
        load_json_object((FIXTURES / "invalid-trailing-comma.json").read_text(), source="/etc/docker/daemon.json")
    assert str(exc.value).startswith("/etc/docker/daemon.json is not valid JSON at line 5 column 3")


def test_non_object_refused():
    with pytest.raises(JsonObjectError, match="JSON list, not an object"):
        load_json_object('["a"]')


def test_deep_merge_keeps_unrelated_and_nested_keys():
    base = {"storage-driver": "vfs", "runtimes": {"nvidia": {"args": [], "path": "old"}, "crun": {"path": "c"}}}
    merged = deep_merge(base, {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}})
    assert merged == {"storage-driver": "vfs",
                      "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}, "crun": {"path": "c"}}}
    assert base["runtimes"]["nvidia"]["path"] == "old"  # input not mutated


def test_deep_merge_scalar_replaces_dict_and_dict_replaces_scalar():
    assert deep_merge({"a": {"b": 1}}, {"a": 2}) == {"a": 2}
    assert deep_merge({"a": 2}, {"a": {"b": 1}}) == {"a": {"b": 1}}
    assert deep_merge({"a": 1}, {"a": None}) == {"a": None}


def test_merge_lists_modes():
    assert merge_lists([1, 2], [2, 3], "replace") == [2, 3]
    assert merge_lists([1, 2], [2, 3, 3], "append_unique") == [1, 2, 3]
    assert merge_lists([{"a": 1}], [{"a": 1}, {"b": 2}], "append_unique") == [{"a": 1}, {"b": 2}]
    with pytest.raises(ValueError, match="replace, append_unique"):
        merge_lists([], [], "prepend")


def test_deep_merge_lists_inside_dicts_follow_mode():
    base = {"x": {"l": ["a"]}}
    assert deep_merge(base, {"x": {"l": ["b"]}}, "append_unique") == {"x": {"l": ["a", "b"]}}
    assert deep_merge(base, {"x": {"l": ["b"]}}) == {"x": {"l": ["b"]}}


def test_unset_top_level_dotted_and_literal_dotted_key():
    data = {"a.b": 1, "a": {"b": 2, "c": 3}, "d": 4}
    assert unset_keys(data, ["a.b"]) == {"a": {"b": 2, "c": 3}, "d": 4}  # literal key wins
    assert unset_keys({"a": {"b": 2, "c": 3}}, ["a.b", "x.y.z", "d"]) == {"a": {"c": 3}}
    assert unset_keys({"a": 5}, ["a.b"]) == {"a": 5}


def test_dump_json_keeps_order_and_round_trips():
    data = {"z": 1, "a": {"y": [1, 2]}, "u": "é"}
    text = dump_json(data)
    assert text.endswith("}\n")
    assert list(json.loads(text)) == ["z", "a", "u"]
    assert '"u": "é"' in text
