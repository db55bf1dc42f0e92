# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reliability suite, faults (docs/reliability.md): inject a fault, run again, show convergence and integrity.

Runs on the lab ``sparkfleet-lab-rel`` (2 hosts) converged once with the demo variables (LLM on 8355, VLM on 8356).
The Hub faults use the lab Hub's /_lab/faults knobs; the serving faults use the stand-in's TRTLLM_STANDIN_* switches
(through trtllm_server_env) on spark-2's LLM only, and the last serving test puts spark-2 back to the demo state.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request

import pytest

from _reliability import (DEMO_VARS, LAB_SUFFIX, LLM, LLM_CONTAINER, VLM, VLM_CONTAINER, chat, converged, diff,
                          snapshot, wait_serving)
from conftest import REPO, VENV_BIN, _ansible_env

OTHER_MODEL = "nvidia/Qwen3-8B-FP8"  # in the lab Hub, not served by the demo: a download of its own
OTHER_DIR = "/var/lib/sparkfleet/huggingface/hub/models--nvidia--Qwen3-8B-FP8"


@pytest.fixture(scope="module")
def rel_lab(lab_factory):
    lab = lab_factory(LAB_SUFFIX, 2)
    converged(lab)
    return lab


def _hub(lab, method, path, body=None):
    req = urllib.request.Request(lab.vars["sparkfleet_lab_hub_url"] + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - lab network only
        return json.loads(resp.read())


@pytest.fixture()
def hub_faults(rel_lab):
    def set_faults(**faults):
        return _hub(rel_lab, "POST", "/_lab/faults", faults)
    yield set_faults
    _hub(rel_lab, "DELETE", "/_lab/faults")


def _serve(lab, host, *extra, timeout=600):
    """serve.yml for the LLM only on ``host`` with the demo variables plus ``extra`` (-e strings)."""
    args = ["-e", DEMO_VARS, "-e", json.dumps({"sparkfleet_models": [LLM]}), "-l", host]
    for e in extra:
        args += ["-e", e]
    return lab.ansible_playbook("playbooks/serve.yml", *args, timeout=timeout)


def _container(lab, host, name):
    proc = lab.ssh(host, "docker inspect %s" % name, sudo=True)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def _state(lab, host, name="llm"):
    proc = lab.ssh(host, "cat /var/lib/sparkfleet/state/serving-%s.json" % name, sudo=True)
    return json.loads(proc.stdout)


def _assert_demo_serving(lab, hosts=None):
    for host in hosts or lab.host_names:
        ip = lab.hosts[host]
        assert wait_serving(ip, 8355, LLM)[0] == 200
        assert wait_serving(ip, 8356, VLM)[0] == 200


# Hub and cache -----------------------------------------------------------------------------------------------
def test_hub_unreachable_with_model_cached_proceeds_offline(rel_lab):
    """The Hub container is paused (connections hang): site.yml still converges from the cache, changing nothing."""
    hub = rel_lab.name + "-hub"
    before = {h: snapshot(rel_lab, h) for h in rel_lab.host_names}
    subprocess.run(["docker", "pause", hub], check=True, capture_output=True)
    try:
        # The full path (not site.yml's fast path, which would skip every role on this converged lab): the roles
        # themselves must go on from the cache while the Hub hangs.
        proc = rel_lab.ansible_playbook("playbooks/site.yml", "-e", DEMO_VARS, "-e", "sparkfleet_full_run=true",
                                        timeout=900)
    finally:
        subprocess.run(["docker", "unpause", hub], check=False, capture_output=True)
    assert proc.returncode == 0, proc.output[-6000:]
    assert "TASK [sparkfleet.trtllm.model_cache" in proc.output
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in proc.recap.values()), proc.recap
    assert diff(before, {h: snapshot(rel_lab, h) for h in rel_lab.host_names}) == ""
    _assert_demo_serving(rel_lab)


def test_download_interrupted_fails_cleanly_then_resumes_and_verifies(rel_lab, hub_faults):
    host = rel_lab.host_names[0]
    cache = ["-e", json.dumps({"sparkfleet_models": [OTHER_MODEL]}), "-l", host]
    # Every connection for the model's files is cut after 200 kB: the download cannot finish.
    hub_faults(drop_after_bytes=200_000, match=OTHER_MODEL + "/*")
    proc = rel_lab.ansible_playbook("playbooks/model_cache.yml", *cache, timeout=600)
    assert proc.returncode != 0, proc.output[-3000:]
    assert re.search(r"interrupted|incomplete|cut short|peer closed|connection", proc.stdout, re.I), proc.stdout[-3000:]
    # Nothing a server would pick up: no ref to a snapshot, no snapshot with a config.json.
    tree = rel_lab.ssh(host, "find %s -path '*/snapshots/*' -o -path '*/refs/*' 2>/dev/null" % OTHER_DIR, sudo=True)
    assert "config.json" not in tree.stdout and "/refs/" not in tree.stdout, tree.stdout
    # The connection now drops twice more and then the Hub behaves: the re-run resumes, completes and verifies.
    hub_faults(drop_after_bytes=200_000, drop_count=2, match=OTHER_MODEL + "/*")
    proc = rel_lab.ansible_playbook("playbooks/model_cache.yml", *cache, timeout=600)
    assert proc.returncode == 0, proc.output[-4000:]
    assert "Verify the cached model against its checksums" in proc.stdout
    # Offline verification needs the standard library only: the host's own Python runs it.
    verify = rel_lab.ansible(host, "sparkfleet.trtllm.hf_model",
                             "repo_id=%s cache_dir=/var/lib/sparkfleet/huggingface/hub state=verified offline=true "
                             "checksum_source=cache" % OTHER_MODEL, "-b")
    assert verify.returncode == 0, verify.stdout[-3000:]
    leftovers = rel_lab.ssh(host, "find %s /var/lib/sparkfleet/huggingface/hub/.sparkfleet-staging -name '*.incomplete'"
                            % OTHER_DIR, sudo=True)
    assert leftovers.stdout.strip() == ""


def test_disk_filling_during_download_fails_clearly_and_harms_nothing_else(rel_lab, hub_faults):
    host = rel_lab.host_names[1]
    small = "/var/tmp/rel-small-cache"
    before = snapshot(rel_lab, host)
    setup = rel_lab.ssh(host, "mkdir -p %s && mount -t tmpfs -o size=3m tmpfs %s" % (small, small), sudo=True)
    assert setup.returncode == 0, setup.stderr
    try:
        # 1.5 MB at 150 kB/s: about 10 s of download, during which the file system fills up.
        hub_faults(bandwidth_bytes_per_second=150_000, match=OTHER_MODEL + "/*")
        cache = ["-e", json.dumps({"sparkfleet_models": [OTHER_MODEL], "sparkfleet_hf_home": small,
                                   "model_cache_free_space_margin_bytes": 0}), "-l", host]
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(rel_lab.inventory), "playbooks/model_cache.yml", *cache]
        run = subprocess.Popen(cmd, cwd=REPO, env=_ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            seen = rel_lab.ssh(host, "find %s -name '*.incomplete' | head -1" % small, sudo=True).stdout.strip()
            if seen:
                break
            time.sleep(1)
        assert seen, "the download never started"
        rel_lab.ssh(host, "dd if=/dev/zero of=%s/filler bs=64k 2>/dev/null; true" % small, sudo=True)
        out = run.communicate(timeout=600)[0]
        assert run.returncode != 0, out[-3000:]
        assert re.search(r"No space left|disk_full|no_space|free space", out), out[-3000:]
        # Nothing half-done is left for a server: no snapshot config, and partial files are removed or resumable.
        tree = rel_lab.ssh(host, "find %s -type f" % small, sudo=True).stdout
        assert "config.json" not in tree, tree
        # With space again, the same run completes and verifies.
        rel_lab.ssh(host, "rm -f %s/filler" % small, sudo=True)
        hub_faults(bandwidth_bytes_per_second=None)
        proc = rel_lab.ansible_playbook("playbooks/model_cache.yml", *cache, timeout=600)
        assert proc.returncode == 0, proc.output[-4000:]
        assert rel_lab.ssh(host, "find %s -name '*.incomplete'" % small, sudo=True).stdout.strip() == ""
    finally:
        rel_lab.ssh(host, "umount %s; rmdir %s" % (small, small), sudo=True)
    # The rest of the host did not notice: same containers, rules, cache and state; both endpoints serve.
    # One addition is expected: with -l the play holds this host only, so it downloads from the Hub itself
    # (model_cache_strategy hub) and needs huggingface_hub, which the role installs into its virtualenv (the
    # wheelhouse it came from is removed). The host got its models by copy before and had none. Only that virtualenv
    # (and /opt/sparkfleet that holds it) may be new, and it must be the role's: huggingface_hub at the role's version.
    after = snapshot(rel_lab, host)
    venv = "/opt/sparkfleet/venv"
    new_lines = set(after.splitlines()) - set(before.splitlines())
    installed = {line for line in new_lines
                 if line.startswith((venv + " ", venv + "/", "/opt/sparkfleet d "))}
    assert diff({host: before}, {host: "\n".join(line for line in after.splitlines() if line not in installed)}) == ""
    if installed:
        version = rel_lab.ssh(host, "%s/bin/python -c 'import huggingface_hub; print(huggingface_hub.__version__)'"
                              % venv, sudo=True)
        assert version.stdout.strip() == "2.4.0", version.stdout + version.stderr
    _assert_demo_serving(rel_lab, [host])


# Serving -----------------------------------------------------------------------------------------------------
def test_server_crash_while_loading_fails_fast_with_exit_code_and_log_tail(rel_lab):
    host = rel_lab.host_names[1]
    started = time.monotonic()
    proc = _serve(rel_lab, host, json.dumps({"trtllm_server_env": {"TRTLLM_STANDIN_CRASH_WHILE_LOADING": "1"}}))
    took = time.monotonic() - started
    assert proc.returncode != 0, proc.output[-3000:]
    fatal = "\n".join(line for line in proc.stdout.splitlines() if "FAILED!" in line)
    assert re.search(r"exit(ed)? (code|with) ?\d+|exit_code", fatal), fatal[-3000:]
    assert "TRTLLM_STANDIN_CRASH_WHILE_LOADING" in fatal, fatal[-3000:]  # the log tail travels with the failure
    match = re.search(r'"elapsed_seconds": ([0-9.]+)', fatal)
    assert match and float(match.group(1)) < 30, fatal[-2000:]
    assert took < 300
    # The other model of the host is not touched.
    assert wait_serving(rel_lab.hosts[host], 8356, VLM)[0] == 200


def test_health_200_but_generation_hung_is_not_serving(rel_lab):
    host = rel_lab.host_names[1]
    proc = _serve(rel_lab, host, json.dumps({"trtllm_server_env": {"TRTLLM_STANDIN_HANG_GENERATION": "1"},
                                             "trtllm_server_probe_request_timeout_seconds": 4,
                                             "trtllm_server_probe_timeout_seconds": 120}))
    assert proc.returncode != 0, proc.output[-3000:]
    fatal = "\n".join(line for line in proc.stdout.splitlines() if "FAILED!" in line)
    assert "generation timed out" in fatal, fatal[-3000:]
    assert '"stage": "ready"' in fatal, fatal[-3000:]  # live and listed, never "serving"
    # The server really is in that state: /health 200, the chat request hangs.
    ip = rel_lab.hosts[host]
    with urllib.request.urlopen("http://%s:8355/health" % ip, timeout=10) as resp:  # noqa: S310
        assert resp.status == 200
    with pytest.raises(OSError):
        chat(ip, 8355, LLM, timeout=5)


def test_killed_playbook_mid_serving_role_then_rerun_converges(rel_lab):
    """ansible-playbook is killed (SIGKILL of its process group) while the probe waits for a replaced container."""
    host = rel_lab.host_names[1]
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(rel_lab.inventory), "playbooks/serve.yml", "-e", DEMO_VARS,
           "-e", json.dumps({"sparkfleet_models": [LLM], "trtllm_server_env": {"TRTLLM_STANDIN_LOAD_SECONDS": "60"}}),
           "-l", host]
    run = subprocess.Popen(cmd, cwd=REPO, env=_ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)
    seen = []
    try:
        for line in run.stdout:
            seen.append(line)
            if "Wait until the endpoint answers a 1-token request" in line:
                time.sleep(3)
                break
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    assert any("Wait until the endpoint answers" in line for line in seen), "".join(seen)[-3000:]
    # Re-run with the demo settings: converges, both models serve, the state file describes the running container.
    proc = rel_lab.ansible_playbook("playbooks/serve.yml", "-e", DEMO_VARS, "-l", host, timeout=600)
    assert proc.returncode == 0, proc.output[-4000:]
    _assert_demo_serving(rel_lab, [host])
    state = _state(rel_lab, host)
    assert state["current"]["container_id"] == _container(rel_lab, host, LLM_CONTAINER)["Id"]
    again = rel_lab.ansible_playbook("playbooks/serve.yml", "-e", DEMO_VARS, "-l", host, timeout=600)
    assert again.returncode == 0 and again.recap[host]["changed"] == 0, again.output[-3000:]


def test_dockerd_restart_and_host_reboot_keep_serving_without_a_rerun(rel_lab):
    h1, h2 = rel_lab.host_names
    ids = {h: {c: _container(rel_lab, h, c)["Id"] for c in (LLM_CONTAINER, VLM_CONTAINER)} for h in (h1, h2)}
    # spark-1: the Docker daemon restarts; spark-2: the whole sim host reboots (its container restarts).
    assert rel_lab.ssh(h1, "systemctl restart docker", sudo=True).returncode == 0
    subprocess.run(["docker", "restart", rel_lab.name + "-" + h2], check=True, capture_output=True, timeout=300)
    deadline = time.monotonic() + 180
    while rel_lab.ssh(h2, "systemctl is-active docker", sudo=True, timeout=20).stdout.strip() != "active":
        assert time.monotonic() < deadline, "spark-2 did not come back"
        time.sleep(3)
    _assert_demo_serving(rel_lab)
    for host in (h1, h2):
        for name in (LLM_CONTAINER, VLM_CONTAINER):
            info = _container(rel_lab, host, name)
            assert info["Id"] == ids[host][name] and info["State"]["Running"], (host, name)
    # The firewall came back with the host: the rules are still active after the reboot.
    ufw = rel_lab.ssh(h2, "ufw status", sudo=True).stdout
    assert "Status: active" in ufw and "8355" in ufw, ufw
