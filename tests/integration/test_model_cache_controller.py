# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration test of the model_cache role with the controller as the fanout source, and of the gpt-oss tiktoken
staging, on an isolated lab of 2 sim Sparks.

The lab Hub stand-in runs on this machine, bound to the lab network's gateway address; the controller is this machine
too, so the Hub's per-client byte counter tells the controller's download (from the gateway address) from a host's.
The tiktoken encodings are generated stand-ins with their own sha256 (model_cache_tiktoken_sha256 override), served
by a local HTTP server that plays model_cache_tiktoken_url: no test needs the internet.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import ipaddress
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "lab" / "hub"))

import launch  # noqa: E402

MODEL = "openai/gpt-oss-20b"
FOLDER = "models--" + MODEL.replace("/", "--")
HF_HOME = "/var/lib/sparkfleet/huggingface"
TIKTOKEN_DIR = "/opt/sparkfleet/tiktoken"
TIKTOKEN_FILES = ("o200k_base.tiktoken", "cl100k_base.tiktoken")
PLAYBOOK = REPO_ROOT / "playbooks" / "model_cache.yml"


def gateway(network: str) -> str:
    """The address of this machine on the lab network (the bridge's gateway: first address of the subnet)."""
    out = subprocess.run(["docker", "network", "inspect", network, "-f", "{{json .IPAM.Config}}"],
                         capture_output=True, text=True, check=True).stdout
    config = json.loads(out)[0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def local_digests(folder: Path) -> dict[str, str]:
    return {"./" + str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def host_digests(lab, host: str, folder: str) -> dict[str, str]:
    proc = lab.ssh(host, "cd %s && find -L . -type f | sort | xargs sha256sum" % folder, sudo=True)
    assert proc.returncode == 0, (host, proc.stderr)
    return {line.split()[1]: line.split()[0] for line in proc.stdout.splitlines()}


class Served:
    """A threaded HTTP server on 127.0.0.1 serving one folder, counting the GETs per path."""

    def __init__(self, folder: Path):
        self.gets: list[str] = []
        served = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server naming)
                served.gets.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      functools.partial(Handler, directory=str(folder)))
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def controller_lab(lab_factory, tmp_path_factory):
    lab = lab_factory("mc2", 2)
    work = tmp_path_factory.mktemp("mc-controller")
    for host in lab.host_names:  # a kept lab (LAB_KEEP=1) or an earlier test may hold a cache
        assert lab.ssh(host, "rm -rf %s/hub %s" % (HF_HOME, TIKTOKEN_DIR), sudo=True).returncode == 0
    # Stand-in encodings: same names and line format as the real ones (base64 token, rank), 0.2-0.4 MB.
    served_dir = work / "served"
    served_dir.mkdir()
    sha256 = {}
    for i, name in enumerate(TIKTOKEN_FILES):
        body = b"".join(b"%s %d\n" % (os.urandom(9).hex().encode(), rank) for rank in range(8000 * (2 - i)))
        (served_dir / name).write_bytes(body)
        sha256[name] = hashlib.sha256(body).hexdigest()
    served = Served(served_dir)
    try:
        with launch.HubProcess(work / "hub", host=gateway(lab.name)) as hub:
            extra = {
                "model_cache_endpoint": hub.url,
                "model_cache_models": [MODEL],
                "model_cache_strategy": "fanout",
                "model_cache_source": "controller",
                "model_cache_controller_hf_home": str(work / "controller-hf"),
                # kept between sessions: creating it installs huggingface_hub from PyPI
                "model_cache_controller_venv": str(REPO_ROOT / "lab" / ".state" / "model-cache-controller-venv"),
                "model_cache_controller_key_path": str(work / "id_ed25519"),
                "model_cache_tiktoken_src": str(work / "controller-tiktoken"),
                "model_cache_tiktoken_url": served.url + "/",
                "model_cache_tiktoken_sha256": sha256,
            }
            yield lab, hub, served, extra, work
    finally:
        served.close()


def test_check_mode_with_the_controller_as_source_changes_nothing(controller_lab):
    """--check on hosts without the model: the run says what it would do and leaves the hosts, the controller's model
    cache and the Hub untouched (the controller's download is a dry run too)."""
    lab, hub, served, extra, work = controller_lab
    proc = lab.ansible_playbook(PLAYBOOK, "--check", "-e", json.dumps(extra))
    assert proc.returncode == 0, proc.output[-8000:]
    assert hub.stats()["by_repo"].get(MODEL, {}).get("body_bytes", 0) == 0
    # The tiktoken encodings are the one exception, by design: check mode fills the controller's own cache (once per
    # file, sha256-checked) so that it can tell whether they are right; nothing reaches a host.
    assert sorted(served.gets) == sorted("/" + name for name in TIKTOKEN_FILES)
    assert not (Path(extra["model_cache_controller_hf_home"]) / "hub" / FOLDER / "snapshots").exists()
    for host in lab.host_names:
        gone = lab.ssh(host, "test -e %s/hub/%s || test -e %s" % (HF_HOME, FOLDER, TIKTOKEN_DIR), sudo=True)
        assert gone.returncode != 0, host


def test_controller_source_one_hub_copy_and_tiktoken_staged(controller_lab):
    lab, hub, served, extra, work = controller_lab
    main = hub.repos()[MODEL]["files"]["main"]
    first = lab.ansible_playbook(PLAYBOOK, "-e", json.dumps(extra))
    assert first.returncode == 0, first.output[-8000:]

    # One copy left the Hub, to one client: the controller (this machine), none to a sim host.
    stats = hub.stats()
    assert stats["by_repo"][MODEL]["body_bytes"] == main["size_bytes"]
    assert stats["by_repo"][MODEL]["file_gets"] == len(main["paths"])
    clients = [c for c, v in stats["by_client"].items() if v["body_bytes"]]
    assert len(clients) == 1 and clients[0] not in lab.hosts.values(), (clients, lab.hosts)
    # The controller pushed to the source host only; the source fed the chain to the other host.
    push = first.output.split("Push the model folder from the controller to the source host")[1].split("TASK [")[0]
    assert "changed: [spark-1]" in push and "changed: [spark-2]" not in push and "ok: [spark-2]" not in push, push
    stream = first.output.split("Stream the model folder through the chain")[1].split("TASK [")[0]
    assert "changed: [spark-1]" in stream, stream

    # Every host holds the controller's verified snapshot, byte for byte, owned by root.
    snapshot = "hub/%s/snapshots/%s" % (FOLDER, main["sha"])
    reference = local_digests(Path(extra["model_cache_controller_hf_home"]) / snapshot)
    assert sorted(p[2:] for p in reference) == main["paths"]
    for host in lab.host_names:
        assert host_digests(lab, host, "%s/%s" % (HF_HOME, snapshot)) == reference, host
        owners = lab.ssh(host, "stat -c %%U %s/hub/%s/blobs/* | sort -u" % (HF_HOME, FOLDER), sudo=True)
        assert owners.stdout.split() == ["root"], (host, owners.stdout)

    # The tiktoken stand-ins were fetched once on the controller and staged on every host, sha256 intact.
    assert sorted(served.gets) == sorted("/" + name for name in TIKTOKEN_FILES)
    for host in lab.host_names:
        staged = lab.ssh(host, "cd %s && sha256sum %s && stat -c '%%a %%U' %s" % (
            TIKTOKEN_DIR, " ".join(TIKTOKEN_FILES), " ".join(TIKTOKEN_FILES)), sudo=True)
        assert staged.returncode == 0, staged.stderr
        lines = staged.stdout.splitlines()
        assert {line.split()[1]: line.split()[0] for line in lines[:2]} == extra["model_cache_tiktoken_sha256"]
        assert lines[2:] == ["644 root", "644 root"]

    second = lab.ansible_playbook(PLAYBOOK, "-e", json.dumps(extra))
    assert second.returncode == 0, second.output[-8000:]
    assert set(second.recap) == set(lab.host_names)
    for host, counts in second.recap.items():
        assert counts["changed"] == 0, (host, second.output[-6000:])
    assert hub.stats()["by_repo"][MODEL]["body_bytes"] == main["size_bytes"]
    assert len(served.gets) == len(TIKTOKEN_FILES)  # already on the controller with the right sha256: no fetch


def test_gpt_oss_serves_offline_from_the_staged_encodings(controller_lab):
    """site.yml end to end for gpt-oss on one host: the container gets the staged encodings read-only at
    TIKTOKEN_ENCODINGS_BASE and answers a chat completion (the stand-in, like TensorRT-LLM through openai_harmony,
    answers chat with HTTP 400 when it cannot load o200k_base.tiktoken, so the probe's completion proves the files)."""
    lab, hub, _served, extra, _work = controller_lab
    run_vars = dict(extra, sparkfleet_models=[MODEL], sparkfleet_hf_endpoint=hub.url, firewall_expose=True,
                    firewall_allowed_cidrs=["{{ sparkfleet_lab_subnet }}"])
    proc = lab.ansible_playbook(REPO_ROOT / "site.yml", "--limit", "spark-1", "-e", json.dumps(run_vars))
    assert proc.returncode == 0, proc.output[-8000:]
    inspect = lab.ssh("spark-1", "docker inspect sparkfleet-trtllm-llm", sudo=True)
    assert inspect.returncode == 0, inspect.stderr
    container = json.loads(inspect.stdout)[0]
    env = dict(item.split("=", 1) for item in container["Config"]["Env"])
    base = env["TIKTOKEN_ENCODINGS_BASE"]
    mounts = {m["Destination"]: m for m in container["Mounts"]}
    assert mounts[base]["Source"] == TIKTOKEN_DIR and mounts[base]["RW"] is False, mounts
    # A chat completion from the controller through the firewall.
    url = "http://%s:8355/v1/chat/completions" % lab.hosts["spark-1"]
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert answer["model"] == MODEL and answer["choices"][0]["message"]["content"]
    # Without the encodings the same request fails as it would on a Spark without internet.
    vocab = TIKTOKEN_DIR + "/o200k_base.tiktoken"  # the folder is bind-mounted: a file moved inside it is gone there
    moved = lab.ssh("spark-1", "mv %s %s.away" % (vocab, vocab), sudo=True)
    assert moved.returncode == 0, moved.stderr
    try:
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(request, timeout=30)
        assert failed.value.code == 400 and b"vocab file" in failed.value.read()
    finally:
        assert lab.ssh("spark-1", "mv %s.away %s" % (vocab, vocab), sudo=True).returncode == 0


def test_tiktoken_missing_or_damaged_on_controller_fails_naming_the_variables(controller_lab):
    lab, _hub, _served, extra, work = controller_lab
    src = work / "damaged-tiktoken"
    src.mkdir()
    (src / "o200k_base.tiktoken").write_bytes(b"not the encoding\n")  # wrong sha256; cl100k_base missing
    bad = dict(extra, model_cache_tiktoken_src=str(src), model_cache_tiktoken_url="")
    for host in lab.host_names:
        assert lab.ssh(host, "rm -rf %s" % TIKTOKEN_DIR, sudo=True).returncode == 0
    proc = lab.ansible_playbook(PLAYBOOK, "-e", json.dumps(bad))
    assert proc.returncode != 0
    assert "Missing on the controller in model_cache_tiktoken_src (%s): cl100k_base.tiktoken" % src in proc.output
    assert "model_cache_tiktoken_url is empty" in proc.output
    assert "o200k_base.tiktoken:%s" % hashlib.sha256(b"not the encoding\n").hexdigest() in proc.output
    assert "model_cache_tiktoken_sha256" in proc.output
    # It failed before changing anything on the hosts.
    for host in lab.host_names:
        assert lab.ssh(host, "test -e %s" % TIKTOKEN_DIR, sudo=True).returncode != 0
