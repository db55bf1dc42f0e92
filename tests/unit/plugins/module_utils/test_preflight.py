# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the preflight checks, against real sockets, real files and the lab Hub stand-in."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
_COLLECTIONS = str(REPO / "collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.sparkfleet.trtllm.plugins.module_utils import _preflight as pf  # noqa: E402
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._model_matrix import resolve_model  # noqa: E402
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._nvidia import NvidiaError, NO_DRIVER  # noqa: E402

QWEN8 = resolve_model("nvidia/Qwen3-8B-FP4")
GPT120 = resolve_model("openai/gpt-oss-120b")
BIG2 = resolve_model("nvidia/Qwen3-235B-A22B-FP4")
GB = 1000 ** 3

GB10_FACTS = {"gpu_count": 1, "driver_version": "580.95.05", "cuda_driver_version": "13.0", "unified_memory": True,
              "host_memory_total_bytes": 128 * GB,
              "gpus": [{"compute_capability": "12.1", "architecture": "Blackwell", "memory_total_bytes": 128 * GB}]}
H100_FACTS = {"gpu_count": 1, "driver_version": "580.159.04", "cuda_driver_version": "13.0", "unified_memory": False,
              "host_memory_total_bytes": 2000 * GB,
              "gpus": [{"compute_capability": "9.0", "architecture": "Hopper", "memory_total_bytes": 85520809984}]}


def local_run(argv):
    import subprocess
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_driver_cuda_and_architecture():
    assert pf.check_driver(GB10_FACTS, None, "580")["status"] == "pass"
    old = pf.check_driver(dict(GB10_FACTS, driver_version="575.51.03"), None, "580")
    assert old["status"] == "fail" and "older than the minimum 580" in old["message"] and old["hint"]
    err = NvidiaError(NO_DRIVER, "The NVIDIA driver is not loaded.")
    res = pf.check_driver({}, err, "580")
    assert (res["status"], res["message"], res["hint"]) == ("fail", err.message, err.hint)
    assert pf.check_cuda({}, err, "13.0")["status"] == "skip"
    assert pf.check_cuda(dict(GB10_FACTS, cuda_driver_version="12.8"), None, "13.0")["status"] == "fail"
    assert pf.check_architecture(GB10_FACTS, None, [QWEN8])["status"] == "pass"
    hopper = pf.check_architecture(H100_FACTS, None, [QWEN8])
    assert hopper["status"] == "fail" and "NVFP4 needs a Blackwell GPU" in hopper["message"] and hopper["value"] == "Hopper (9.0)"
    assert pf.check_architecture(H100_FACTS, None, [resolve_model("nvidia/Qwen3-8B-FP8")])["status"] == "warn"


def test_memory_on_unified_and_discrete_gpus():
    ok = pf.check_memory(GB10_FACTS, None, [QWEN8], 0.9)
    assert ok["status"] == "pass" and "unified memory" in ok["message"]
    small = dict(GB10_FACTS, host_memory_total_bytes=25 * GB)
    too_big = pf.check_memory(small, None, [GPT120], 0.9)
    assert too_big["status"] == "fail" and "need 70.0 GB" in too_big["message"] and too_big["hint"]
    tight = pf.check_memory(dict(GB10_FACTS, host_memory_total_bytes=75 * GB), None, [GPT120], 0.9)
    assert tight["status"] == "warn"
    h100 = pf.check_memory(H100_FACTS, None, [GPT120], 0.9)
    assert h100["status"] == "pass" and "GPU memory" in h100["message"]  # 70 GB of 85.5 GB, host RAM ignored


def test_two_node_model_on_one_host():
    res = pf.check_nodes([BIG2], 1)
    assert res["status"] == "fail" and "needs 2 Sparks" in res["message"]
    assert pf.check_nodes([BIG2], 2)["status"] == "pass"


def test_disk_counts_what_is_already_cached(tmp_path):
    stat_ = os.statvfs(tmp_path)
    free_gb = stat_.f_bavail * stat_.f_frsize / GB
    hf_home = tmp_path / "hf"  # does not exist: the nearest existing parent is measured, nothing is created
    passing = pf.check_disk(str(hf_home), [QWEN8], 0)
    assert passing["status"] == "pass" and not hf_home.exists()
    failing = pf.check_disk(str(hf_home), [QWEN8], free_gb + 100)
    assert failing["status"] == "fail" and "sparkfleet_hf_home" in failing["hint"]
    blobs = hf_home / "hub" / "models--nvidia--Qwen3-8B-FP4" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "abc").write_bytes(b"x" * 4096)
    (blobs / "def.incomplete").write_bytes(b"x" * 999)
    assert pf.cached_bytes(str(hf_home), "nvidia/Qwen3-8B-FP4") == 4096


def test_ports_free_taken_by_a_process(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            free_port = probe.getsockname()[1]  # bound, not listening
            res = pf.check_ports([port, free_port], local_run, None, "sparkfleet.managed=true")
    assert res["status"] == "fail"
    assert "%d is in use by process" % port in res["message"] and "(pid %d)" % os.getpid() in res["message"]
    assert "%d is free" % free_port in res["message"]
    assert res["hint"]


def fake_docker(tmp_path: Path, info: dict | None, containers: list[dict]) -> str:
    """An executable that answers `docker info` and `docker ps/inspect` from JSON (real process, canned answers)."""
    data = tmp_path / "docker.json"
    data.write_text(json.dumps({"info": info, "containers": containers}))
    path = tmp_path / "docker"
    path.write_text("""#!%s
import json, sys
d = json.load(open(%r))
a = sys.argv[1:]
if a[0] == "info":
    if d["info"] is None:
        print("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(d["info"]))
elif a[0] == "ps":
    print("\\n".join(c["id"] for c in d["containers"]))
elif a[0] == "inspect":
    for c in d["containers"]:
        print("%%s %%d %%s %%s" %% (json.dumps("/" + c["name"]), c["pid"], json.dumps(c["labels"]), json.dumps(c["ports"])))
""" % (sys.executable, str(data)))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_docker_states(tmp_path):
    assert pf.check_docker(pf.docker_state(local_run, None), "20.10", True)["status"] == "fail"
    assert pf.check_docker(pf.docker_state(local_run, None), "20.10", False)["status"] == "warn"
    down = pf.docker_state(local_run, fake_docker(tmp_path, None, []))
    res = pf.check_docker(down, "20.10", True)
    assert res["status"] == "fail" and "Cannot connect to the Docker daemon" in res["message"]
    assert pf.check_nvidia_runtime(down)["status"] == "skip"
    info = {"ServerVersion": "28.3.1", "Runtimes": {"runc": {}, "nvidia": {}}, "DefaultRuntime": "runc"}
    up = pf.docker_state(local_run, fake_docker(tmp_path, info, []))
    assert pf.check_docker(up, "20.10", True)["status"] == "pass"
    assert pf.check_nvidia_runtime(up)["status"] == "pass"
    old = pf.docker_state(local_run, fake_docker(tmp_path, {"ServerVersion": "19.03.2", "Runtimes": {"runc": {}}}, []))
    assert pf.check_docker(old, "20.10", True)["status"] == "fail"
    assert pf.check_nvidia_runtime(old)["status"] == "warn"


def test_port_held_by_our_container_or_by_another(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        # host-network container whose init is this test's parent process: the listener descends from it
        ours = {"id": "abc", "name": "trtllm_llm_server", "pid": os.getppid(), "labels": {"sparkfleet.managed": "true"}, "ports": {}}
        docker = fake_docker(tmp_path, {"ServerVersion": "28.3.1"}, [ours])
        res = pf.check_ports([port], local_run, docker, "sparkfleet.managed=true")
        assert res["status"] == "pass" and "held by our container trtllm_llm_server" in res["message"]
        theirs = dict(ours, labels={"other": "x"}, name="someone-else")
        docker = fake_docker(tmp_path, {"ServerVersion": "28.3.1"}, [theirs])
        res = pf.check_ports([port], local_run, docker, "sparkfleet.managed=true")
        assert res["status"] == "fail" and "container someone-else (not managed by sparkfleet)" in res["message"]
    published = {"id": "d", "name": "web", "pid": 1, "labels": {}, "ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18355"}]}}
    res = pf.check_ports([18355], local_run, fake_docker(tmp_path, {"ServerVersion": "28.3.1"}, [published]), "sparkfleet.managed=true")
    assert res["status"] == "fail" and "container web" in res["message"]


def test_clock_states(tmp_path):
    def answer(rc, out, err=""):
        return lambda argv: (rc, out, err)

    assert pf.check_clock(answer(0, "yes\n"), "/usr/bin/timedatectl")["status"] == "pass"
    no = pf.check_clock(answer(0, "no\n"), "/usr/bin/timedatectl")
    assert no["status"] == "warn" and "timedatectl set-ntp true" in no["hint"]
    assert pf.check_clock(answer(1, "", "Failed to connect to bus"), "/usr/bin/timedatectl")["status"] == "warn"
    assert pf.check_clock(answer(0, "yes\n"), None)["status"] == "warn"
    skewed = pf.check_clock(answer(0, "yes\n"), "/usr/bin/timedatectl", hub_skew_seconds=3600)
    assert skewed["status"] == "fail" and "3600" in skewed["message"]


def test_fabric_on_loopback():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.2", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        ip = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "/sbin/ip"
        res = pf.check_fabric(local_run, ip, ["lo"], ["127.0.0.2"], 0, port, 2)
        assert res["status"] == "pass", res
        assert "lo up" in res["value"] and "mtu 65536" in res["value"]
    assert pf.check_fabric(local_run, ip, ["lo"], [], 9000, port, 2)["status"] == "warn"
    missing = pf.check_fabric(local_run, ip, ["enp1s0f0np0-nope"], [], 0, 22, 1)
    assert missing["status"] == "fail" and "does not exist" in missing["message"]
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    # a refused connection is an answer: the peer is there, nothing listens on that port
    assert pf.check_fabric(local_run, ip, [], ["127.0.0.1"], 0, closed_port, 1)["status"] == "pass"
    assert pf.check_fabric(local_run, ip, [], [], 0, 22, 1)["status"] == "skip"


# ---- Hub: the lab stand-in (lab/hub/server.py) -----------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    sys.path.insert(0, str(REPO / "lab" / "hub"))
    try:
        from launch import HubProcess  # pylint: disable=import-error
    except ImportError:
        pytest.skip("lab/hub is not in this checkout")
    with HubProcess(tmp_path_factory.mktemp("hubdata")) as proc:
        yield proc.url


def gated():
    return resolve_model("sparkfleet-lab/gated-tiny", {"kind": "llm", "download_gb": 1, "memory_gb": 1})


@pytest.mark.parametrize("token,status,words", [
    (None, "fail", "is gated and no token is set (HTTP 401)"),
    ("hf_lab_unapproved", "fail", "the token's account has no access (HTTP 403)"),
    ("hf_lab_approved", "pass", "gated, the token has access"),
])
def test_hub_gated_repo(hub, tmp_path, token, status, words):
    res, skew = pf.check_hub(hub, [gated()], token, "main", 10, False, str(tmp_path))
    assert res["status"] == status and words in res["message"], res
    assert skew is not None and abs(skew) < 60
    if token:
        assert token not in json.dumps(res)


def test_hub_public_missing_and_unreachable(hub, tmp_path):
    res, dummy = pf.check_hub(hub, [QWEN8], None, "main", 10, False, str(tmp_path))
    assert res["status"] == "pass"
    missing = resolve_model("nobody/nothing", {"kind": "llm", "download_gb": 1, "memory_gb": 1})
    res, dummy = pf.check_hub(hub, [missing], None, "main", 10, False, str(tmp_path))
    assert res["status"] == "fail" and "not found" in res["message"]
    res, dummy = pf.check_hub(hub, [QWEN8], None, "no-such-branch", 10, False, str(tmp_path))
    assert res["status"] == "fail" and "revision no-such-branch not found" in res["message"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = "http://127.0.0.1:%d" % sock.getsockname()[1]
    res, dummy = pf.check_hub(dead, [QWEN8], "hf_secret_never_printed", "main", 5, False, str(tmp_path))
    assert res["status"] == "fail" and "unreachable" in res["message"] and "hf_secret_never_printed" not in json.dumps(res)


def test_hub_unreachable_with_the_revision_cached_warns_and_goes_on(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = "http://127.0.0.1:%d" % sock.getsockname()[1]
    repo = tmp_path / "hub" / "models--nvidia--Qwen3-8B-FP4"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    res, dummy = pf.check_hub(dead, [QWEN8], None, "main", 5, False, str(tmp_path))
    assert res["status"] == "fail"  # a ref without its snapshot is not a cached revision
    (repo / "snapshots" / ("a" * 40)).mkdir(parents=True)
    res, dummy = pf.check_hub(dead, [QWEN8], None, "main", 5, False, str(tmp_path))
    assert res["status"] == "warn" and "unreachable" in res["message"] and "in the cache" in res["message"]
    res, dummy = pf.check_hub(dead, [QWEN8], None, "v1", 5, False, str(tmp_path))
    assert res["status"] == "fail"  # another revision is not cached
    # A malformed endpoint is a settings error, not an outage: it fails even with the model cached.
    for bad in ("hub.example:80", "ftp://hub.example", "http://user@hub.example", "http://hub.example/?q=1"):
        res, dummy = pf.check_hub(bad, [QWEN8], None, "main", 5, False, str(tmp_path))
        assert res["status"] == "fail" and "sparkfleet_hf_endpoint" in res["hint"], bad


def test_hub_offline_looks_at_the_cache_only(tmp_path):
    res, dummy = pf.check_hub("http://192.0.2.1", [QWEN8], None, "main", 1, True, str(tmp_path))
    assert res["status"] == "warn" and "not in the cache" in res["message"]
    (tmp_path / "hub" / "models--nvidia--Qwen3-8B-FP4" / "snapshots").mkdir(parents=True)
    res, dummy = pf.check_hub("http://192.0.2.1", [QWEN8], None, "main", 1, True, str(tmp_path))
    assert res["status"] == "skip"


def test_fabric_peer_that_stays_silent(monkeypatch):
    def silent(*args, **kwargs):
        raise socket.timeout("timed out")

    monkeypatch.setattr(pf.socket, "create_connection", silent)
    res = pf.check_fabric(local_run, None, [], ["10.10.10.2"], 0, 22, 0.1)
    assert res["status"] == "fail" and "peer 10.10.10.2 does not answer" in res["message"] and res["hint"]
