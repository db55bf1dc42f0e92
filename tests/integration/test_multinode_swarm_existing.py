# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Swarm mode on hosts that are already in a swarm (docs/multinode-swarm.md, "Limits"), on a 2-host lab of our own.

Before the collection's first run the primary (spark-1) creates a swarm by hand, on its fabric address like the role
does, and the worker (spark-2) creates a swarm of its own (a swarm the primary is not in).

1. The worker is in another swarm: playbooks/multinode.yml is refused on every host of the group with a message that
   names the worker, its swarm's managers and the fix, and the trtllm_multinode role changes nothing on either host
   (daemon.json, config.toml, swarm state and node, /etc/sparkfleet, the state records). Runs first: it must change
   nothing.
2. The worker leaves its swarm (the fix the message gives): the primary's swarm is reused (same node, still a manager),
   the group serves a real chat completion, and rollback.yml removes the stack and makes the worker leave but keeps
   the primary in its swarm.
"""

from __future__ import annotations

import json
import shlex
import urllib.request

import pytest
import yaml

LAB_NAME = "sparkfleet-lab-hswarm"
PLAYBOOK = "playbooks/multinode.yml"
ROLLBACK = "rollback.yml"
PRIMARY, WORKER = "spark-1", "spark-2"
GROUP = "sparks"
STACK = f"sparkfleet-mn-{GROUP}"
MODEL = "nvidia/Qwen3-8B-FP4"
STATE_DIR = "/var/lib/sparkfleet/state"
RECORD = f"{STATE_DIR}/multinode-{GROUP}.json"
MN_DIR = "/etc/sparkfleet/multinode"
EVARS = {
    "sparkfleet_multinode_group": GROUP,
    "sparkfleet_model": MODEL,
    "trtllm_multinode_mode": "swarm",
    "trtllm_multinode_probe_timeout_seconds": 300,
    # The test asks the primary from the controller: open the API port to the lab network only.
    "firewall_expose": True,
    "firewall_allowed_cidrs": ["{{ sparkfleet_lab_subnet }}"],
}
SWARM_FORMAT = "{{json .Swarm}}"
# What the trtllm_multinode role may change on a host (and the other roles' files under /etc/sparkfleet and the state
# folder, by name).
SNAPSHOT = f"""
printf 'daemon.json %s\\n' "$(sha256sum /etc/docker/daemon.json 2>/dev/null | cut -d' ' -f1)"
printf 'config.toml %s\\n' "$(sha256sum /etc/nvidia-container-runtime/config.toml | cut -d' ' -f1)"
printf 'swarm %s\\n' "$(docker info --format '{{{{.Swarm.LocalNodeState}}}} {{{{.Swarm.NodeID}}}} {{{{.Swarm.ControlAvailable}}}}')"
printf 'etc %s\\n' "$(find /etc/sparkfleet 2>/dev/null | sort | tr '\\n' ' ')"
printf 'state %s\\n' "$(ls -A {STATE_DIR} 2>/dev/null | tr '\\n' ' ')"
printf 'record %s\\n' "$(cat {RECORD} 2>/dev/null | sha256sum | cut -d' ' -f1)"
"""


def sh(lab, host: str, cmd: str, check: bool = True) -> str:
    proc = lab.ssh(host, cmd, sudo=True, timeout=180)
    if check:
        assert proc.returncode == 0, f"{host}: {cmd!r} failed rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def swarm(lab, host: str) -> dict:
    return json.loads(sh(lab, host, f"docker info --format {shlex.quote(SWARM_FORMAT)}"))


def snapshot(lab) -> dict[str, dict[str, str]]:
    return {host: dict(line.split(" ", 1) for line in sh(lab, host, SNAPSHOT).splitlines())
            for host in (PRIMARY, WORKER)}


def play(lab, playbook: str):
    return lab.ansible_playbook(playbook, "-e", json.dumps(EVARS), timeout=1800)


def changed_tasks(output: str, role: str = "trtllm_multinode") -> list[str]:
    """Names of the tasks of ``role`` that reported ``changed`` on some host."""
    found, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):line.rfind("]")]
        elif line.startswith("changed:") and f"{role} :" in task:
            found.append(task)
    return found


def swarm_init(lab, host: str) -> None:
    """`docker swarm init` by hand, on the host's fabric address only (the role's init flags)."""
    addr = lab.fabric[host]
    sh(lab, host, f"docker swarm init --advertise-addr {addr} --listen-addr {addr}:2377 --data-path-addr {addr}")


@pytest.fixture(scope="module")
def swarm_lab(lab_factory):
    """2 hosts of our own; the primary and the worker each create a swarm of their own before any collection run."""
    lab = lab_factory(LAB_NAME, 2)
    hosts = yaml.safe_load(lab.inventory.read_text())["all"]["children"]["sparks"]["hosts"]
    lab.fabric = {host: hosts[host]["sparkfleet_cx7_address"] for host in (PRIMARY, WORKER)}
    for host in (PRIMARY, WORKER):
        assert not sh(lab, host, f"ls -A {STATE_DIR} 2>/dev/null; true").strip(), "the lab hosts must be bare"
        assert swarm(lab, host)["LocalNodeState"] == "inactive"
        swarm_init(lab, host)
    lab.primary_node = swarm(lab, PRIMARY)["NodeID"]
    lab.worker_node = swarm(lab, WORKER)["NodeID"]
    assert lab.primary_node and lab.worker_node and lab.primary_node != lab.worker_node
    return lab


def assert_refused(lab, run) -> None:
    assert run.returncode != 0, run.output[-4000:]
    out = " ".join(run.output.split())  # the message is folded over several lines
    print(out[out.find(f"{WORKER} is in another swarm"):][:600])  # shown with -rA
    assert (f"{WORKER} is in another swarm (managers {lab.fabric[WORKER]}:2377), not in the swarm of the primary "
            f"{PRIMARY} (node {lab.primary_node}).") in out, run.output[-4000:]
    assert f"Run `docker swarm leave` on {WORKER}" in out
    assert f"part of {PRIMARY}'s swarm" in out and f"trtllm_multinode changed nothing on the hosts of {GROUP}." in out
    # Refused on every host of the group, not only the worker, and before the slow wait on the nodes.
    assert run.recap[PRIMARY]["failed"] == 1 and run.recap[WORKER]["failed"] == 1, run.recap
    assert "Wait until every node of the group is ready" not in run.output
    assert changed_tasks(run.output) == []


def test_host_in_another_swarm_is_refused_and_nothing_changes(swarm_lab):
    lab = swarm_lab
    before = snapshot(lab)
    # From bare hosts: the group's preparation (docker_gpu, firewall, caches) runs, then trtllm_multinode refuses.
    first = play(lab, PLAYBOOK)
    assert_refused(lab, first)
    after_first = snapshot(lab)
    for host in (PRIMARY, WORKER):
        assert after_first[host]["swarm"] == before[host]["swarm"]
        assert MN_DIR not in after_first[host]["etc"]
        assert "multinode-" not in after_first[host]["state"]
    assert before[PRIMARY]["swarm"] == f"active {lab.primary_node} true"
    assert before[WORKER]["swarm"] == f"active {lab.worker_node} true"
    # Prepared hosts: a second run changes nothing at all on either host (daemon.json included).
    second = play(lab, PLAYBOOK)
    assert_refused(lab, second)
    assert snapshot(lab) == after_first
    assert swarm(lab, WORKER)["RemoteManagers"] == [{"NodeID": lab.worker_node, "Addr": f"{lab.fabric[WORKER]}:2377"}]


def test_primary_swarm_is_reused_and_kept_on_rollback(swarm_lab):
    lab = swarm_lab
    # The fix the refusal gives: the worker leaves its own swarm (it is its manager, hence --force).
    if swarm(lab, WORKER)["LocalNodeState"] != "inactive":
        sh(lab, WORKER, "docker swarm leave --force")
    converge = play(lab, PLAYBOOK)
    assert converge.returncode == 0, converge.output[-4000:]
    primary, worker = swarm(lab, PRIMARY), swarm(lab, WORKER)
    assert primary["LocalNodeState"] == "active" and primary["NodeID"] == lab.primary_node and primary["ControlAvailable"]
    assert worker["LocalNodeState"] == "active" and not worker["ControlAvailable"]
    assert lab.primary_node in [manager["NodeID"] for manager in worker["RemoteManagers"]]
    records = {host: json.loads(sh(lab, host, f"cat {RECORD}"))["swarm"] for host in (PRIMARY, WORKER)}
    assert records[PRIMARY]["joined_by_sparkfleet"] is False and records[PRIMARY]["manager"] is True
    assert records[WORKER]["joined_by_sparkfleet"] is True and records[WORKER]["manager"] is False

    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Paris is great because"}],
                       "max_tokens": 8}).encode()
    request = urllib.request.Request(f"http://{lab.hosts[PRIMARY]}:8355/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        chat = json.loads(response.read())
    assert chat["object"] == "chat.completion", chat
    assert chat["choices"][0]["message"]["content"] and chat["usage"]["completion_tokens"] == 8, chat
    services = sh(lab, PRIMARY, "docker service ls --format '{{.Name}}'").split()
    assert sorted(services) == [f"{STACK}_rank0", f"{STACK}_rank1"], services

    rollback = play(lab, ROLLBACK)
    assert rollback.returncode == 0, rollback.output[-4000:]
    primary, worker = swarm(lab, PRIMARY), swarm(lab, WORKER)
    # The primary stays in the swarm it had before the collection, with the same node, still a manager.
    assert primary["LocalNodeState"] == "active" and primary["NodeID"] == lab.primary_node, primary
    assert primary["ControlAvailable"]
    assert sh(lab, PRIMARY, "docker node inspect self --format '{{.Spec.Role}}'").strip() == "manager"
    assert worker["LocalNodeState"] == "inactive", worker
    assert STACK not in sh(lab, PRIMARY, "docker stack ls --format '{{.Name}}'").split()
    assert [name for name in sh(lab, PRIMARY, "docker service ls --format '{{.Name}}'").split()
            if name.startswith(STACK)] == []
    for host in (PRIMARY, WORKER):
        assert sh(lab, host, f"docker ps -aq --filter label=com.docker.stack.namespace={STACK}").strip() == ""
        assert sh(lab, host, f"test -e {MN_DIR} && echo present || echo absent").strip() == "absent"
        assert sh(lab, host, f"test -e {RECORD} && echo present || echo absent").strip() == "absent"
