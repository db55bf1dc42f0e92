# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The firewall role (ufw backend, auto-detected) on an isolated 2-host lab: bad input fails before any rule
changes, check mode changes nothing, converge, idempotence, and real effects: from the second host a TCP
connection to 8355 on the first succeeds when its address is allowed and fails when it is not, and SSH
still works after ufw is enabled with default-deny."""

from __future__ import annotations

import json
import os
import socket

import pytest

PLAYBOOK = "playbooks/firewall.yml"
TARGET, PEER = "spark-1", "spark-2"
STATE_FILE = "/var/lib/sparkfleet/state/host_config.json"
LISTEN_PORT = 8355


def sh(lab, host: str, cmd: str, check: bool = True) -> str:
    proc = lab.ssh(host, cmd, sudo=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"{host}: {cmd!r} failed rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def play(lab, evars: dict, *args: str):
    return lab.ansible_playbook(PLAYBOOK, "--limit", TARGET, "-e", json.dumps(evars), *args, timeout=600)


def ufw_snapshot(lab) -> str:
    return sh(lab, TARGET, "ufw status numbered; ufw show added; grep ^DEFAULT_INPUT_POLICY /etc/default/ufw")


def peer_can_connect(lab) -> bool:
    """TCP connect from the second host to LISTEN_PORT on the first (3 s timeout: a drop reads as failure)."""
    proc = lab.ssh(PEER, f"nc -z -w 3 {lab.hosts[TARGET]} {LISTEN_PORT}", timeout=60)
    return proc.returncode == 0


def ssh_works(lab) -> bool:
    """A fresh SSH connection (not a multiplexed one) to the first host still gets a shell."""
    proc = lab.ssh(TARGET, "echo ssh-ok", timeout=60)
    return proc.returncode == 0 and proc.stdout.strip() == "ssh-ok"


@pytest.fixture(scope="module")
def fw_lab(lab_factory):
    """A 2-host lab of our own: ufw reset and inactive, no state file, an HTTP listener on 8355 (bounded)."""
    the_lab = lab_factory(os.environ.get("SPARKFLEET_FW_LAB", "sparkfleet-lab-fw"), 2)
    sh(the_lab, TARGET, f"ufw --force reset >/dev/null; ufw --force disable >/dev/null; rm -f {STATE_FILE}; "
                        "rm -f /etc/ufw/*.rules.[0-9]*_[0-9]*")
    pidfile = "/run/sparkfleet-test-listener.pid"
    stop = f"test -f {pidfile} && kill $(cat {pidfile}) 2>/dev/null; rm -f {pidfile}"
    sh(the_lab, TARGET, f"{stop}; cd /tmp && setsid nohup timeout 900 python3 -m http.server {LISTEN_PORT} "
                        f"--bind 0.0.0.0 >/dev/null 2>&1 < /dev/null & echo $! > {pidfile}; "
                        f"for i in $(seq 50); do nc -z 127.0.0.1 {LISTEN_PORT} && break; sleep 0.2; done; "
                        f"nc -z 127.0.0.1 {LISTEN_PORT}")
    yield the_lab
    sh(the_lab, TARGET, stop, check=False)


def peer_cidr(lab) -> str:
    return f"{lab.hosts[PEER]}/32"


@pytest.mark.parametrize(
    ("evars", "expected"),
    [
        ({"firewall_expose": True, "firewall_allowed_cidrs": ["10.0.0.300/24"]}, "firewall_allowed_cidrs must be"),
        ({"firewall_expose": True, "firewall_allowed_cidrs": ["10.0.0.0/33"]}, "firewall_allowed_cidrs must be"),
        ({"firewall_peer_cidrs": ["not-a-network"]}, "firewall_peer_cidrs must be"),
        ({"sparkfleet_llm_port": 70000}, "firewall_llm_port (sparkfleet_llm_port) must be a port number"),
        ({"firewall_vlm_port": 0}, "firewall_vlm_port (sparkfleet_vlm_port) must be a port number"),
        ({"sparkfleet_llm_port": 8355, "sparkfleet_vlm_port": 8355}, "the LLM and VLM servers need different ports"),
        ({"firewall_expose": True}, "firewall_expose is true but firewall_allowed_cidrs is empty"),
        ({"firewall_server_network_mode": "bridge"}, "firewall_server_network_mode is bridge"),
    ],
    ids=["bad-cidr-octet", "bad-cidr-prefix", "bad-peer-cidr", "port-too-high", "port-zero", "llm-equals-vlm",
         "expose-without-cidrs", "bridge-networking"],
)
def test_bad_input_fails_before_any_rule_changes(fw_lab, evars, expected):
    before = ufw_snapshot(fw_lab)
    proc = play(fw_lab, evars)
    assert proc.returncode != 0
    assert expected in proc.output, proc.output[-3000:]
    assert ufw_snapshot(fw_lab) == before
    assert "Status: inactive" in before


@pytest.fixture(scope="module")
def allowed_run(fw_lab):
    evars = {"firewall_expose": True, "firewall_allowed_cidrs": [peer_cidr(fw_lab)]}
    before = ufw_snapshot(fw_lab)
    check = play(fw_lab, evars, "--check")
    after_check = ufw_snapshot(fw_lab)
    converge = play(fw_lab, evars)
    return {"evars": evars, "before": before, "check": check, "after_check": after_check, "converge": converge}


def test_check_mode_changes_nothing(allowed_run):
    check = allowed_run["check"]
    assert check.returncode == 0, check.output[-3000:]
    assert check.recap[TARGET]["changed"] >= 1
    assert allowed_run["after_check"] == allowed_run["before"]


def test_converge_enables_ufw_with_marked_rules(fw_lab, allowed_run):
    converge = allowed_run["converge"]
    assert converge.returncode == 0, converge.output[-3000:]
    status = sh(fw_lab, TARGET, "ufw status verbose")
    assert "Status: active" in status and "deny (incoming)" in status
    added = [line for line in sh(fw_lab, TARGET, "ufw show added").splitlines() if line.startswith("ufw ")]
    assert added and all("comment 'sparkfleet " in line for line in added)
    assert any(f"from {fw_lab.hosts[PEER]} to any port 8355 proto tcp" in line for line in added)


def test_allowed_host_connects_and_ssh_still_works(fw_lab, allowed_run):
    assert allowed_run["converge"].returncode == 0
    assert peer_can_connect(fw_lab)
    assert ssh_works(fw_lab)


def test_idempotence(fw_lab, allowed_run):
    before = ufw_snapshot(fw_lab)
    second = play(fw_lab, allowed_run["evars"])
    assert second.returncode == 0, second.output[-3000:]
    assert second.recap[TARGET]["changed"] == 0, second.output[-3000:]
    assert ufw_snapshot(fw_lab) == before


def test_state_file_records_marked_rules(fw_lab, allowed_run):
    state = json.loads(sh(fw_lab, TARGET, f"cat {STATE_FILE}"))["firewall"]
    assert state["backend"] == "ufw" and state["marker"] == "sparkfleet"
    assert state["previous"] == {"ufw_active": False, "ufw_default_incoming": "deny"}
    comments = {rule["comment"] for rule in state["rules"]}
    assert f"sparkfleet serve {peer_cidr(fw_lab)} 8355/tcp" in comments
    assert any(comment.startswith("sparkfleet ssh ") for comment in comments)
    assert sh(fw_lab, TARGET, f"stat -c '%a %U' {STATE_FILE}").strip() == "600 root"


def test_not_allowed_host_is_refused_and_stale_rules_removed(fw_lab, allowed_run):
    evars = {"firewall_expose": True, "firewall_allowed_cidrs": ["192.0.2.0/24"]}
    proc = play(fw_lab, evars)
    assert proc.returncode == 0, proc.output[-3000:]
    added = sh(fw_lab, TARGET, "ufw show added")
    assert fw_lab.hosts[PEER] not in added  # the rule for the previously allowed host is gone
    assert "from 192.0.2.0/24 to any port 8355 proto tcp comment 'sparkfleet serve" in added
    assert not peer_can_connect(fw_lab)
    assert ssh_works(fw_lab)
    # the listener itself is still up: only the firewall stops the peer
    sh(fw_lab, TARGET, f"nc -z -w 3 127.0.0.1 {LISTEN_PORT}")


def test_unmarked_rules_are_left_alone(fw_lab, allowed_run):
    sh(fw_lab, TARGET, "ufw allow from 198.51.100.7 to any port 9999 proto tcp comment 'operator rule'")
    proc = play(fw_lab, {"firewall_expose": False})
    assert proc.returncode == 0, proc.output[-3000:]
    added = sh(fw_lab, TARGET, "ufw show added")
    assert "comment 'operator rule'" in added
    assert "sparkfleet serve" not in added  # exposure off: the serving rules are removed
    assert "sparkfleet ssh" in added
    assert not peer_can_connect(fw_lab)
    assert ssh_works(fw_lab)


def test_nftables_backend_on_second_host(fw_lab):
    """nftables backend (forced) on spark-2: spark-1 allowed, the controller not; idempotent; SSH untouched."""
    evars = {"firewall_backend": "nftables", "firewall_expose": True,
             "firewall_allowed_cidrs": [f"{fw_lab.hosts[TARGET]}/32"]}
    run = fw_lab.ansible_playbook(PLAYBOOK, "--limit", PEER, "-e", json.dumps(evars), timeout=600)
    assert run.returncode == 0, run.output[-3000:]
    table = sh(fw_lab, PEER, "nft list table inet sparkfleet")
    assert fw_lab.hosts[TARGET] in table and 'drop comment "sparkfleet"' in table
    assert sh(fw_lab, PEER, "systemctl is-enabled sparkfleet-nftables").strip() == "enabled"
    sh(fw_lab, PEER, f"cd /tmp && setsid timeout 60 python3 -m http.server {LISTEN_PORT} --bind 0.0.0.0 "
                     f">/dev/null 2>&1 < /dev/null & for i in $(seq 50); do nc -z 127.0.0.1 {LISTEN_PORT} && break; "
                     f"sleep 0.2; done; nc -z 127.0.0.1 {LISTEN_PORT}")
    allowed = fw_lab.ssh(TARGET, f"nc -z -w 3 {fw_lab.hosts[PEER]} {LISTEN_PORT}", timeout=60)
    assert allowed.returncode == 0
    with socket.socket() as sock:  # the controller's address is not allowed: dropped
        sock.settimeout(3)
        with pytest.raises(OSError):
            sock.connect((fw_lab.hosts[PEER], LISTEN_PORT))
    again = fw_lab.ansible_playbook(PLAYBOOK, "--limit", PEER, "-e", json.dumps(evars), timeout=600)
    assert again.returncode == 0 and again.recap[PEER]["changed"] == 0, again.output[-3000:]
    assert fw_lab.ssh(PEER, "echo ssh-ok", timeout=60).stdout.strip() == "ssh-ok"
