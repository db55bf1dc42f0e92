# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""site.yml's fast path on a lab of its own (``sparkfleet-lab-conv``, 2 hosts, the demo variables).

After a complete run, a run in which nothing drifted calls one module per host after preflight and skips every role;
a host where something drifted (a serving container removed, a firewall rule deleted by hand, other variables) takes
the full path alone and is repaired; ``sparkfleet_full_run`` and ``--tags`` turn the fast path off.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from _reliability import DEMO_VARS, VLM, VLM_CONTAINER

RECORD = "/var/lib/sparkfleet/state/converged.json"
SITE = "site.yml"


def _chat(lab, host: str, port: int, model: str) -> str:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).encode()
    request = urllib.request.Request("http://%s:%d/v1/chat/completions" % (lab.hosts[host], port), data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - lab network only
        return json.loads(response.read())["choices"][0]["message"]["content"]


def _summary(proc) -> str:
    marker = "Say which Sparks take the full path and why"
    assert marker in proc.output, proc.output[-4000:]
    return proc.output.split(marker, 1)[1].split("PLAY [", 1)[0]


def _ran_roles(proc, host: str) -> set[str]:
    """Roles that ran a task on ``host`` after the converged check (task banners followed by a result line for the
    host); preflight, before it, always runs (it also runs the firewall role's input checks on the controller)."""
    roles = set()
    after_check = proc.output.split("Say which Sparks take the full path and why", 1)[1]
    for block in after_check.split("TASK [")[1:]:
        name = block.split("]", 1)[0]
        if " : " in name and ("[%s]" % host) in block.split("TASK [", 1)[0]:
            roles.add(name.split(" : ", 1)[0].rsplit(".", 1)[-1])
    return roles


@pytest.fixture(scope="module")
def conv_lab(lab_factory):
    lab = lab_factory("conv", 2)
    first = lab.ansible_playbook(SITE, "-e", DEMO_VARS, timeout=1500)
    assert first.returncode == 0, first.output[-8000:]
    return lab


def test_no_change_run_skips_every_role_and_still_serves(conv_lab):
    lab = conv_lab
    proc = lab.ansible_playbook(SITE, "-e", DEMO_VARS)
    assert proc.returncode == 0, proc.output[-8000:]
    assert "2 of 2 Sparks unchanged since the last complete run" in _summary(proc)
    for host, counts in proc.recap.items():
        assert counts["changed"] == 0 and counts["failed"] == 0, (host, counts)
        assert _ran_roles(proc, host) == set(), (host, _ran_roles(proc, host))
        # The record is root's only and holds digests, not the variables.
        stat = lab.ssh(host, "stat -c '%%a %%U' %s && grep -c sparkfleet_lab_subnet %s || true" % (RECORD, RECORD),
                       sudo=True)
        assert stat.stdout.split() == ["600", "root", "0"], stat.stdout
        assert _chat(lab, host, 8356, VLM)


def test_drift_on_one_host_takes_the_full_path_there_only_and_is_repaired(conv_lab):
    lab = conv_lab
    # A serving container removed on spark-2.
    removed = lab.ssh("spark-2", "docker rm -f %s" % VLM_CONTAINER, sudo=True)
    assert removed.returncode == 0, removed.stderr
    proc = lab.ansible_playbook(SITE, "-e", DEMO_VARS)
    assert proc.returncode == 0, proc.output[-8000:]
    summary = _summary(proc)
    assert "1 of 2 Sparks unchanged" in summary, summary
    assert "spark-2: containers: changed" in summary and ":8356/health" in summary, summary
    # The per-host plays run where it drifted only; the fleet-wide ones (model and image distribution) for both.
    assert _ran_roles(proc, "spark-1") <= {"model_cache", "image_cache"}, _ran_roles(proc, "spark-1")
    assert {"docker_gpu", "firewall", "trtllm_server"} <= _ran_roles(proc, "spark-2"), _ran_roles(proc, "spark-2")
    assert proc.recap["spark-1"]["changed"] == 0 and proc.recap["spark-2"]["changed"] >= 1, proc.recap
    assert _chat(lab, "spark-2", 8356, VLM)

    # A serving rule deleted by hand on spark-1.
    rules = lab.ssh("spark-1", "ufw status numbered | grep 'sparkfleet serve' | grep 8355", sudo=True)
    number = rules.stdout.split("[", 1)[1].split("]", 1)[0].strip()
    deleted = lab.ssh("spark-1", "yes | ufw delete %s" % number, sudo=True)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    proc = lab.ansible_playbook(SITE, "-e", DEMO_VARS)
    assert proc.returncode == 0, proc.output[-8000:]
    summary = _summary(proc)
    assert "1 of 2 Sparks unchanged" in summary and "spark-1: firewall: changed" in summary, summary
    assert "8355/tcp" in lab.ssh("spark-1", "ufw status", sudo=True).stdout

    again = lab.ansible_playbook(SITE, "-e", DEMO_VARS)
    assert again.returncode == 0 and "2 of 2 Sparks unchanged" in _summary(again), again.output[-4000:]


def test_other_variables_full_run_and_tags_turn_the_fast_path_off(conv_lab):
    lab = conv_lab
    # Other variables: every host takes the full path (nothing to change on the hosts but the record).
    other = lab.ansible_playbook(SITE, "-e", DEMO_VARS, "-e", "preflight_fail_on=fail")
    assert other.returncode == 0, other.output[-8000:]
    assert _summary(other).count("inputs: the run's variables or the collection differ") == 2
    assert {"docker_gpu", "firewall", "trtllm_server"} <= _ran_roles(other, "spark-1")
    # Asked for: the full path, and no record rewritten (same inputs as the record).
    full = lab.ansible_playbook(SITE, "-e", DEMO_VARS, "-e", "preflight_fail_on=fail", "-e", "sparkfleet_full_run=true")
    assert full.returncode == 0, full.output[-8000:]
    assert "fast path off" in _summary(full)
    assert {"docker_gpu", "firewall", "trtllm_server"} <= _ran_roles(full, "spark-2")
    assert all(counts["changed"] == 0 for counts in full.recap.values()), full.recap
    # A run limited by tags neither skips nor records.
    before = lab.ssh("spark-1", "sha256sum %s" % RECORD, sudo=True).stdout
    tagged = lab.ansible_playbook(SITE, "-e", DEMO_VARS, "--tags", "firewall")
    assert tagged.returncode == 0, tagged.output[-8000:]
    assert lab.ssh("spark-1", "sha256sum %s" % RECORD, sudo=True).stdout == before
    # Check mode on a fleet that did not drift: the same fast path, nothing changed.
    check = lab.ansible_playbook(SITE, "-e", DEMO_VARS, "-e", "preflight_fail_on=fail", "--check")
    assert check.returncode == 0 and "2 of 2 Sparks unchanged" in _summary(check), check.output[-4000:]
