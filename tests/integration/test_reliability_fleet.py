# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reliability suite, fleet case (docs/reliability.md): one of four hosts unreachable during site.yml.

A lab of its own (``sparkfleet-lab-rel4``, 4 hosts) converged with the demo variables. spark-3 loses its VLM
container and is then frozen (``docker pause``: SSH connects time out) for a whole site.yml run.
"""

from __future__ import annotations

import subprocess

import pytest

from _reliability import DEMO_VARS, LLM, VLM, VLM_CONTAINER, wait_serving


def _serving(lab, hosts):
    for host in hosts:
        assert wait_serving(lab.hosts[host], 8355, LLM)[0] == 200, host
        assert wait_serving(lab.hosts[host], 8356, VLM)[0] == 200, host


@pytest.fixture(scope="module")
def fleet_lab(lab_factory):
    lab = lab_factory("rel4", 4)
    proc = lab.ansible_playbook("playbooks/site.yml", "-e", DEMO_VARS, timeout=1800)
    assert proc.returncode == 0, proc.output[-8000:]
    return lab


def test_one_of_four_unreachable_others_converge_and_a_later_run_finishes_it(fleet_lab):
    lab = fleet_lab
    down = "spark-3"
    others = [h for h in lab.host_names if h != down]
    assert len(others) == 3
    assert lab.ssh(down, "docker rm -f %s" % VLM_CONTAINER, sudo=True).returncode == 0
    # One of the three others drifted too, so the run has real work to do on a reachable host.
    assert lab.ssh("spark-4", "docker rm -f %s" % VLM_CONTAINER, sudo=True).returncode == 0
    subprocess.run(["docker", "pause", lab.name + "-" + down], check=True, capture_output=True)
    try:
        proc = lab.ansible_playbook("playbooks/site.yml", "-e", DEMO_VARS, env={"ANSIBLE_TIMEOUT": "5"}, timeout=1200)
    finally:
        subprocess.run(["docker", "unpause", lab.name + "-" + down], check=False, capture_output=True)
    # The run fails (a host was unreachable), names it in the recap and in the fast-path summary, and the three
    # others converge: spark-4's VLM is back, every endpoint of the three answers.
    assert proc.returncode != 0
    assert proc.recap[down]["unreachable"] >= 1, proc.recap
    for host in others:
        assert proc.recap[host]["failed"] == 0 and proc.recap[host]["unreachable"] == 0, (host, proc.output[-4000:])
    assert "%s: left out of this run" % down in proc.output, proc.output[-4000:]
    assert "spark-4: containers: changed" in proc.output
    assert proc.recap["spark-4"]["changed"] >= 1
    _serving(lab, others)

    later = lab.ansible_playbook("playbooks/site.yml", "-e", DEMO_VARS, timeout=1200)
    assert later.returncode == 0, later.output[-4000:]
    assert "%s: containers: changed" % down in later.output, later.output[-4000:]
    assert later.recap[down]["changed"] >= 1, later.recap
    assert all(later.recap[h]["changed"] == 0 for h in others), later.recap
    _serving(lab, lab.host_names)
    # And the fleet is whole again: the next run skips every host.
    again = lab.ansible_playbook("playbooks/site.yml", "-e", DEMO_VARS, timeout=600)
    assert again.returncode == 0 and "4 of 4 Sparks unchanged" in again.output, again.output[-4000:]
