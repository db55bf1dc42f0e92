# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration test of the image_cache fanout and archive strategies on a lab of 4 simulated Sparks.

fanout: spark-1 pulls the TensorRT-LLM stand-in from the lab registry (registry.sparkfleet.lab:5000) and streams it
through the chain spark-2 -> spark-3 -> spark-4 (docker save | docker load on every hop). The registry's own access log
proves that each blob of the image was served once, to one client, for exactly the image's size.
archive: a `docker save` tarball made on this machine (the controller) is copied to spark-1, loaded and streamed.

The task files are run through include_role(tasks_from) with every variable given, so the test does not depend on
how main.yml wires the strategies.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = "nvidia/tensorrt-llm/release"
TAG = "spark-single-gpu-dev"
BLOB_GET = re.compile(r'^(?P<ip>\S+) - - \[[^\]]+\] "GET /v2/%s/blobs/(?P<digest>sha256:[0-9a-f]{64}) HTTP/[0-9.]+" '
                      r'(?P<status>\d+) (?P<bytes>\d+)' % re.escape(REPOSITORY), re.M)

PLAYBOOK = """\
- name: Run one image_cache task file
  hosts: sparks
  gather_facts: false
  become: true
  tasks:
    - name: Run the {{ image_cache_strategy }} strategy of image_cache
      ansible.builtin.include_role:
        name: sparkfleet.trtllm.image_cache
        tasks_from: "{{ image_cache_strategy }}.yml"
"""


def registry_manifest(lab) -> dict:
    req = urllib.request.Request(
        "http://%s/v2/%s/manifests/%s" % (lab.vars["sparkfleet_lab_registry_local"], REPOSITORY, TAG),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def blob_gets(lab, since: str) -> list[dict]:
    logs = subprocess.run(["docker", "logs", "--since", since, lab.name + "-registry"], capture_output=True,
                          text=True, check=True)
    return [m.groupdict() for m in BLOB_GET.finditer(logs.stdout + logs.stderr) if m.group("status") == "200"]


def image_ids(lab, ref: str) -> dict[str, str]:
    out = {}
    for host in lab.host_names:
        proc = lab.ssh(host, "docker image inspect --format '{{.Id}}' %s 2>/dev/null" % ref, sudo=True)
        out[host] = proc.stdout.strip()
    return out


@pytest.fixture(scope="module")
def image_lab(lab_factory, tmp_path_factory):
    lab = lab_factory("dist4", 4)
    work = tmp_path_factory.mktemp("image-fanout")
    playbook = work / "image_cache_strategy.yml"
    playbook.write_text(PLAYBOOK)
    base = {
        "image_cache_source_host": lab.host_names[0],
        "image_cache_controller_key_path": str(work / "id_ed25519"),
        "image_cache_ssh_dir": "/etc/sparkfleet/image_cache",
        "image_cache_chain_script": "/usr/local/sbin/sparkfleet-image-chain",
        "image_cache_archive": "",
        "image_cache_archive_dir": "/var/lib/sparkfleet/images",
    }
    return lab, playbook, base, work


def run(lab, playbook, extra):
    return lab.ansible_playbook(playbook, "-e", json.dumps(extra))


def test_fanout_pulls_once_and_every_host_gets_the_same_image(image_lab):
    lab, playbook, base, _work = image_lab
    ref = lab.vars["sparkfleet_trtllm_image"]
    # Every image that shares layers with it goes too (the archive test's tag, the newer stand-in), so that the pull
    # has to fetch every blob.
    others = ["%s/trtllm-archive:1.2.0rc6" % lab.name, lab.vars["sparkfleet_trtllm_image_newer"]]
    for host in lab.host_names:
        lab.ssh(host, "docker rmi -f %s >/dev/null 2>&1; true" % " ".join([ref] + others), sudo=True)
    assert set(image_ids(lab, ref).values()) == {""}
    manifest = registry_manifest(lab)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
    extra = dict(base, image_cache_strategy="fanout", image_cache_images=[ref])

    first = run(lab, playbook, extra)
    assert first.returncode == 0, first.output[-8000:]
    # One pull: every blob of the image (config + layers) served once, all to spark-1, bytes = the image size.
    gets = blob_gets(lab, since)
    wanted = {manifest["config"]["digest"]: manifest["config"]["size"]}
    wanted.update({layer["digest"]: layer["size"] for layer in manifest["layers"]})
    assert sorted(g["digest"] for g in gets) == sorted(wanted), gets
    assert {g["ip"] for g in gets} == {lab.hosts["spark-1"]}
    assert sum(int(g["bytes"]) for g in gets) == sum(wanted.values())
    # The stream went spark-1 -> spark-2 -> spark-3 -> spark-4, and every host holds the registry's image.
    assert "%s -> spark-2 -> spark-3 -> spark-4" % ref in first.output
    ids = image_ids(lab, ref)
    assert set(ids.values()) == {manifest["config"]["digest"]}, ids

    second = run(lab, playbook, extra)
    assert second.returncode == 0, second.output[-8000:]
    assert set(second.recap) == set(lab.host_names)
    for host, counts in second.recap.items():
        assert counts["changed"] == 0, (host, second.output[-6000:])
    assert len(blob_gets(lab, since)) == len(gets)

    # A host that lost the image is the only one served again; the others are skipped.
    lab.ssh("spark-3", "docker rmi -f %s" % ref, sudo=True, check=True)
    third = run(lab, playbook, extra)
    assert third.returncode == 0, third.output[-8000:]
    assert "%s -> spark-3)" % ref in third.output or "%s -> spark-3\n" % ref in third.output, third.output[-6000:]
    assert {h: c["changed"] > 0 for h, c in third.recap.items()}["spark-2"] is False
    assert set(image_ids(lab, ref).values()) == {manifest["config"]["digest"]}
    assert len(blob_gets(lab, since)) == len(gets)


def test_archive_from_the_controller(image_lab):
    lab, playbook, base, work = image_lab
    local = "%s/%s:%s" % (lab.vars["sparkfleet_lab_registry_local"], REPOSITORY, "1.2.0rc6")
    ref = "%s/trtllm-archive:1.2.0rc6" % lab.name  # a tag of this test, on this machine and the sim hosts
    archive = work / "trtllm.tar"
    subprocess.run(["docker", "pull", "-q", local], check=True, capture_output=True)
    subprocess.run(["docker", "tag", local, ref], check=True)
    try:
        subprocess.run(["docker", "save", "-o", str(archive), ref], check=True)
        want = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", ref], check=True, capture_output=True,
                              text=True).stdout.strip()
    finally:
        subprocess.run(["docker", "rmi", ref], check=False, capture_output=True)
    for host in lab.host_names:
        lab.ssh(host, "docker rmi -f %s >/dev/null 2>&1; rm -rf /var/lib/sparkfleet/images; true" % ref, sudo=True)
    extra = dict(base, image_cache_strategy="archive", image_cache_images=[ref], image_cache_archive=str(archive))

    first = run(lab, playbook, extra)
    assert first.returncode == 0, first.output[-8000:]
    assert set(image_ids(lab, ref).values()) == {want}
    stored = lab.ssh("spark-1", "stat -c '%%s %%a' /var/lib/sparkfleet/images/%s" % archive.name, sudo=True)
    assert stored.stdout.split() == [str(archive.stat().st_size), "600"]
    assert lab.ssh("spark-2", "test -e /var/lib/sparkfleet/images", sudo=True).returncode != 0

    second = run(lab, playbook, extra)
    assert second.returncode == 0, second.output[-8000:]
    for host, counts in second.recap.items():
        assert counts["changed"] == 0, (host, second.output[-6000:])

    # An archive without the wanted image is refused with a message that names both.
    missing = dict(extra, image_cache_images=[ref, "%s/not-in-archive:1" % lab.name])
    refused = run(lab, playbook, missing)
    assert refused.returncode != 0
    assert "does not hold %s/not-in-archive:1" % lab.name in refused.output
