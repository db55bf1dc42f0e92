# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the multi-node group comparison of the preflight (check_multinode), on real `ip -j` output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
_COLLECTIONS = str(REPO / "collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.sparkfleet.trtllm.plugins.module_utils import _preflight as pf  # noqa: E402

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def _ip_json(name: str, address: str, prefix: int = 24, mtu: int = 1500) -> str:
    return json.dumps([{"ifindex": 2, "ifname": name, "mtu": mtu, "operstate": "UP",
                        "addr_info": [{"family": "inet", "local": address, "prefixlen": prefix}]}])


def _member(host: str, address: str, **over) -> dict:
    member = {"host": host, "image": "nvcr.io/nvidia/tensorrt-llm/release:1.1.0rc3", "image_id": "sha256:" + "1" * 64,
              "model": "nvidia/Qwen3-235B-A22B-FP4", "revision": "main", "commit": COMMIT_A,
              "ip_addr_json": _ip_json("enp1s0f0np0", address)}
    member.update(over)
    return member


IFACES = ["enp1s0f0np0", "enp1s0f1np1"]


def test_matching_pair_passes():
    out = pf.check_multinode([_member("a", "192.168.100.10"), _member("b", "192.168.100.11")], 0, IFACES)
    assert out["status"] == "pass", out
    assert "192.168.100.0/24" in out["value"] and "MTU 1500" in out["value"]


def test_group_size_must_match_tp_size():
    out = pf.check_multinode([_member("a", "192.168.100.10"), _member("b", "192.168.100.11")], 4, IFACES)
    assert out["status"] == "fail"
    assert "the group has 2 host(s) but tp_size is 4" in out["message"]
    assert "sparkfleet_multinode_group" in out["hint"]


def test_single_host_group_fails():
    out = pf.check_multinode([_member("a", "192.168.100.10")], 0, IFACES)
    assert out["status"] == "fail" and "at least 2 hosts" in out["message"]


def test_mismatched_cached_revisions_fail_with_both_commits():
    out = pf.check_multinode([_member("a", "192.168.100.10"), _member("b", "192.168.100.11", commit=COMMIT_B)], 0, IFACES)
    assert out["status"] == "fail"
    assert "cached model revisions of nvidia/Qwen3-235B-A22B-FP4 differ" in out["message"]
    assert COMMIT_A in out["message"] and COMMIT_B in out["message"]


def test_a_host_without_the_model_yet_is_not_a_mismatch():
    out = pf.check_multinode([_member("a", "192.168.100.10"), _member("b", "192.168.100.11", commit="")], 0, IFACES)
    assert out["status"] == "pass", out


def test_requested_revisions_differ():
    out = pf.check_multinode([_member("a", "192.168.100.10"), _member("b", "192.168.100.11", revision="v2")], 0, IFACES)
    assert out["status"] == "fail" and "model revisions differ" in out["message"]


def test_different_image_builds_fail():
    out = pf.check_multinode([_member("a", "192.168.100.10"),
                              _member("b", "192.168.100.11", image_id="sha256:" + "2" * 64)], 0, IFACES)
    assert out["status"] == "fail" and "image IDs" in out["message"]


def test_different_subnets_fail():
    out = pf.check_multinode([_member("a", "192.168.100.10"), _member("b", "192.168.200.11")], 0, IFACES)
    assert out["status"] == "fail" and "share no subnet" in out["message"]


def test_mtu_mismatch_fails():
    out = pf.check_multinode([_member("a", "192.168.100.10"),
                              _member("b", "192.168.100.11", ip_addr_json=_ip_json("enp1s0f0np0", "192.168.100.11", mtu=9000))],
                             0, IFACES)
    assert out["status"] == "fail" and "MTU differs" in out["message"]


def test_no_group_skips():
    assert pf.check_multinode([], 0, IFACES)["status"] == "skip"


@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 missing")
def test_parses_this_machines_real_ip_output():
    out = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    links = pf.fabric_networks(out, ["lo"])
    assert links["lo"]["networks"] == ["127.0.0.0/8"]
