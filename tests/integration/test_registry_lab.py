# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab container registry (lab/registry): push/pull through 127.0.0.1, htpasswd auth, seeding.

The registry runs from the lab-services image when it is built (lab/images/lab-services/build.sh),
otherwise from Debian's docker-registry binary on this machine with the same configuration script.
Docker objects created here are prefixed sparkfleet-test-.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN_REGISTRY = REPO / "lab" / "registry" / "run-registry.sh"
SEED = REPO / "lab" / "registry" / "seed.sh"
START = REPO / "lab" / "registry" / "start.sh"
IMAGE = "sparkfleet-lab/lab-services:latest"


def docker(*args, check=True, env=None, input=None, timeout=300):
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, input=input,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("docker %s failed rc=%d\n%s%s"
                             % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


def docker_ready():
    return shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True,
                                                     check=False).returncode == 0


pytestmark = pytest.mark.skipif(not docker_ready(), reason="needs a running Docker engine")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def image_has_registry():
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        return False
    return docker("run", "--rm", "--entrypoint", "/bin/sh", IMAGE, "-c", "test -x /opt/lab-registry/run-registry.sh",
                  check=False).returncode == 0


def v2_status(port, auth=None):
    req = urllib.request.Request("http://127.0.0.1:%d/v2/" % port)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class Registry:
    """A lab registry on 127.0.0.1:<port>, as a sparkfleet-test- container or a host process."""

    def __init__(self, tmp_path, auth=None):
        self.port = free_port()
        self.auth = auth
        self.tmp = tmp_path
        self.name = "sparkfleet-test-registry-%s" % uuid.uuid4().hex[:8]
        self.proc = None
        self.container = None

    def __enter__(self):
        env = {}
        if self.auth:
            env = {"LAB_REGISTRY_HTPASSWD_USER": self.auth[0], "LAB_REGISTRY_HTPASSWD_PASSWORD": self.auth[1]}
        if image_has_registry():
            args = ["run", "-d", "--name", self.name, "-p", "127.0.0.1:%d:5000" % self.port]
            for k, v in env.items():
                args += ["-e", "%s=%s" % (k, v)]
            docker(*args, IMAGE, "/usr/local/bin/lab-services", "registry")
            self.container = self.name
            self.mode = "image"
        else:
            full = dict(os.environ, LAB_REGISTRY_ADDR="127.0.0.1:%d" % self.port,
                        LAB_REGISTRY_STORAGE=str(self.tmp / "storage"),
                        LAB_REGISTRY_HTPASSWD_FILE=str(self.tmp / "htpasswd"), **env)
            self.log = open(self.tmp / "registry.log", "w")
            self.proc = subprocess.Popen([str(RUN_REGISTRY)], env=full, stdout=self.log, stderr=subprocess.STDOUT)
            self.mode = "host"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if v2_status(self.port) in (200, 401):
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise AssertionError("registry did not start on port %d" % self.port)

    def __exit__(self, *exc):
        if self.container:
            docker("rm", "-f", "-v", self.container, check=False)
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.log.close()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port


@pytest.fixture()
def tiny_image():
    """A one-file image made with docker import, removed afterwards with every tag made from it."""
    tag = "sparkfleet-test-tiny:%s" % uuid.uuid4().hex[:8]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = ("sparkfleet registry test %s\n" % tag).encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    proc = subprocess.run(["docker", "import", "-c", "ENV TRTLLM_STANDIN_VERSION=1.1.0rc3", "-", tag],
                          input=buf.getvalue(), capture_output=True, check=True)
    image_id = proc.stdout.decode().strip()
    yield tag, image_id
    refs = docker("image", "ls", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.splitlines()
    mine = [r.split()[0] for r in refs if r.split()[1] == image_id]
    docker("rmi", "-f", *(mine or [tag]), check=False)


@pytest.fixture()
def docker_config(tmp_path):
    """A private DOCKER_CONFIG so docker login never touches the user's credentials."""
    cfg = tmp_path / "docker-config"
    cfg.mkdir()
    return dict(os.environ, DOCKER_CONFIG=str(cfg))


def test_push_and_pull_without_auth(tmp_path, tiny_image):
    tag, image_id = tiny_image
    with Registry(tmp_path) as reg:
        assert v2_status(reg.port) == 200
        ref = "%s/sparkfleet-test/tiny:1" % reg.addr
        docker("tag", tag, ref)
        docker("push", ref)
        with urllib.request.urlopen("http://%s/v2/sparkfleet-test/tiny/tags/list" % reg.addr, timeout=5) as r:
            assert json.loads(r.read()) == {"name": "sparkfleet-test/tiny", "tags": ["1"]}
        docker("rmi", ref)
        docker("pull", ref)
        assert docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == image_id
        docker("rmi", ref)


def test_htpasswd_auth_refuses_anonymous_pull(tmp_path, tiny_image, docker_config):
    tag, image_id = tiny_image
    user, password = "sparkfleet", "lab-%s" % uuid.uuid4().hex[:8]
    with Registry(tmp_path, auth=(user, password)) as reg:
        assert v2_status(reg.port) == 401
        assert v2_status(reg.port, (user, "wrong")) == 401
        assert v2_status(reg.port, (user, password)) == 200
        ref = "%s/sparkfleet-test/private:1" % reg.addr
        docker("tag", tag, ref)
        anonymous_push = docker("push", ref, env=docker_config, check=False)
        assert anonymous_push.returncode != 0 and "basic auth" in anonymous_push.stderr + anonymous_push.stdout
        bad = docker("login", "-u", user, "--password-stdin", reg.addr, input="wrong\n", env=docker_config,
                     check=False)
        assert bad.returncode != 0
        docker("login", "-u", user, "--password-stdin", reg.addr, input=password + "\n", env=docker_config)
        docker("push", ref, env=docker_config)
        docker("logout", reg.addr, env=docker_config)
        docker("rmi", ref)
        anonymous_pull = docker("pull", ref, env=docker_config, check=False)
        assert anonymous_pull.returncode != 0
        assert "no basic auth credentials" in anonymous_pull.stderr or "unauthorized" in anonymous_pull.stderr
        docker("login", "-u", user, "--password-stdin", reg.addr, input=password + "\n", env=docker_config)
        docker("pull", ref, env=docker_config)
        assert docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == image_id
        docker("rmi", ref)


def _manifest(addr, repo, tag):
    req = urllib.request.Request("http://%s/v2/%s/manifests/%s" % (addr, repo, tag), method="GET",
                                 headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.headers["Docker-Content-Digest"], json.loads(r.read())


def test_seed_pushes_three_distinct_tensorrt_llm_tags(tmp_path, tiny_image):
    tag, image_id = tiny_image
    with Registry(tmp_path) as reg:
        env = dict(os.environ, LAB_REGISTRY_SOURCE_IMAGE=tag)
        proc = subprocess.run([str(SEED), reg.addr], env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        repo = "nvidia/tensorrt-llm/release"
        tags = ["1.2.0rc6", "lab-crash-on-load", "spark-single-gpu-dev"]
        with urllib.request.urlopen("http://%s/v2/%s/tags/list" % (reg.addr, repo), timeout=5) as r:
            assert sorted(json.loads(r.read())["tags"]) == tags
        manifests = {t: _manifest(reg.addr, repo, t) for t in tags}
        assert len({digest for digest, dummy in manifests.values()}) == 3
        assert len({m["config"]["digest"] for dummy, m in manifests.values()}) == 3
        refs = {t: "%s/%s:%s" % (reg.addr, repo, t) for t in tags}
        # The local tags named after this registry are gone after the push (one per lab registry otherwise).
        for ref in refs.values():
            assert docker("image", "inspect", ref, check=False).returncode != 0, ref
        docker("pull", refs["spark-single-gpu-dev"])
        assert docker("image", "inspect", "-f", "{{.Id}}", refs["spark-single-gpu-dev"]).stdout.strip() == image_id
        for name, wanted in (("1.2.0rc6", "TRTLLM_STANDIN_VERSION=1.2.0rc6"),
                             ("lab-crash-on-load", "TRTLLM_STANDIN_CRASH_WHILE_LOADING=1")):
            docker("pull", refs[name])
            env_list = json.loads(docker("image", "inspect", "-f", "{{json .Config.Env}}", refs[name]).stdout)
            assert wanted in env_list, (name, env_list)
        docker("rmi", *refs.values())


def test_seed_explains_a_missing_source_image(tmp_path):
    env = dict(os.environ, LAB_REGISTRY_SOURCE_IMAGE="sparkfleet-test-absent:%s" % uuid.uuid4().hex[:8])
    proc = subprocess.run([str(SEED), "127.0.0.1:%d" % free_port()], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_start_script_reports_a_port_clash():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        env = dict(os.environ, LAB_REGISTRY_PORT=str(port), LAB_REGISTRY_NAME="sparkfleet-test-registry-clash")
        proc = subprocess.run([str(START)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 3
    assert "127.0.0.1:%d is already in use" % port in proc.stderr and "LAB_REGISTRY_PORT" in proc.stderr
    assert docker("inspect", "sparkfleet-test-registry-clash", check=False).returncode != 0


@pytest.mark.skipif(not image_has_registry(), reason="lab-services image not built (lab/images/lab-services/build.sh)")
def test_start_script_runs_the_lab_registry_container():
    port = free_port()
    name = "sparkfleet-test-registry-start"
    env = dict(os.environ, LAB_REGISTRY_PORT=str(port), LAB_REGISTRY_NAME=name)
    try:
        proc = subprocess.run([str(START)], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert v2_status(port) == 200
        again = subprocess.run([str(START)], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert again.returncode == 0 and "already running" in again.stdout
        status = subprocess.run([str(START), "status"], env=env, capture_output=True, text=True, check=False)
        assert status.stdout.strip() == "running"
    finally:
        subprocess.run([str(START), "stop"], env=env, capture_output=True, check=False)
        docker("volume", "rm", name + "-data", check=False)
    assert docker("inspect", name, check=False).returncode != 0
