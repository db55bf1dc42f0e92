# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Docker Swarm's ports and the peer sshd port with the nftables backend, on a 1-host lab: reachable from the peers
only (issue 8). The controller reaches the sim host from two addresses of its own: its address on the fabric network
(the peer, as firewall_peer_cidrs) and its address on the lab network (not a peer). Listeners on the host answer on
2377/tcp, 7946/tcp, 2233/tcp and 9999/tcp (not restricted), and record the sources of datagrams to 7946/udp and
4789/udp, so both TCP and UDP are checked by real packets, not only by reading the table."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

PLAYBOOK = "playbooks/firewall.yml"
HOST = "spark-1"
STATE_FILE = "/var/lib/sparkfleet/state/host_config.json"
TCP_PORTS = (2377, 7946, 2233, 9999)
UDP_PORTS = (7946, 4789)
UDP_LOG = "/run/sparkfleet-test-udp.log"
PIDFILE = "/run/sparkfleet-test-swarm-listeners.pid"
LAB_NAME = os.environ.get("SPARKFLEET_FW_SWARM_LAB", "sparkfleet-lab-fw-swarm")

UDP_LISTENER = f"""
import select, socket
socks = []
for port in {UDP_PORTS!r}:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    socks.append(sock)
while True:
    for sock in select.select(socks, [], [])[0]:
        _, addr = sock.recvfrom(512)
        with open("{UDP_LOG}", "a") as log:
            log.write("%s %d\\n" % (addr[0], sock.getsockname()[1]))
"""


def sh(lab, cmd: str, check: bool = True) -> str:
    proc = lab.ssh(HOST, cmd, sudo=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"{cmd!r} failed rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def play(lab, evars: dict, *args: str):
    return lab.ansible_playbook(PLAYBOOK, "--limit", HOST, "-e", json.dumps(evars), *args, timeout=600)


def source_address(dest: str) -> str:
    """The controller's own address on the way to ``dest`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((dest, 9))
        return sock.getsockname()[0]


def tcp_reaches(dest: str, port: int) -> bool:
    """TCP connect from the controller (3 s timeout: a drop reads as failure)."""
    with socket.socket() as sock:
        sock.settimeout(3)
        try:
            sock.connect((dest, port))
        except OSError:
            return False
        return True


def udp_sources(lab, dests: list[str]) -> set[tuple[str, int]]:
    """Send datagrams to every UDP port of every address in ``dests``; return the (source, port) the host recorded."""
    sh(lab, f": > {UDP_LOG}")
    for _attempt in range(3):
        for dest in dests:
            for port in UDP_PORTS:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.sendto(b"sparkfleet-test", (dest, port))
        time.sleep(0.5)
    time.sleep(1)
    return {(line.split()[0], int(line.split()[1])) for line in sh(lab, f"cat {UDP_LOG}").splitlines() if line.strip()}


def swarm_drop_ports(table: str) -> dict[str, set[int]]:
    """{proto: ports} of the table's `<proto> dport {...} counter ... drop comment "sparkfleet swarm"` rules."""
    found: dict[str, set[int]] = {}
    for proto, ports in re.findall(r'(tcp|udp) dport \{?\s*([0-9, ]+?)\s*\}? counter packets \d+ bytes \d+ drop '
                                   r'comment "sparkfleet swarm"', table):
        found.setdefault(proto, set()).update(int(port) for port in ports.split(","))
    return found


@pytest.fixture(scope="module")
def swarm_lab(lab_factory):
    """A 1-host lab of our own: ufw inactive, no table or state file, TCP and UDP listeners (bounded by timeout)."""
    lab = lab_factory(LAB_NAME, 1)
    inventory = yaml.safe_load(lab.inventory.read_text())
    lab.fabric_ip = inventory["all"]["children"]["sparks"]["hosts"][HOST]["sparkfleet_cx7_address"]
    lab.lab_ip = lab.hosts[HOST]
    lab.peer = source_address(lab.fabric_ip)
    lab.other = source_address(lab.lab_ip)
    assert lab.peer != lab.other
    stop = f"test -f {PIDFILE} && kill $(cat {PIDFILE}) 2>/dev/null; rm -f {PIDFILE}"
    sh(lab, f"{stop}; ufw --force reset >/dev/null; ufw --force disable >/dev/null; rm -f {STATE_FILE}; "
            "nft delete table inet sparkfleet 2>/dev/null; true")
    start = [f"cd /tmp && setsid nohup timeout 900 python3 -m http.server {port} --bind 0.0.0.0 >/dev/null 2>&1 "
             f"< /dev/null & echo $! >> {PIDFILE}" for port in TCP_PORTS]
    start.append(f"setsid nohup timeout 900 python3 -c '{UDP_LISTENER}' >/dev/null 2>&1 < /dev/null & "
                 f"echo $! >> {PIDFILE}")
    sh(lab, "; ".join(start) + "; sleep 2; ss -lntu")
    for port in TCP_PORTS:  # before any rule: every port answers from both addresses
        assert tcp_reaches(lab.lab_ip, port) and tcp_reaches(lab.fabric_ip, port), port
    assert udp_sources(lab, [lab.lab_ip]) == {(lab.other, port) for port in UDP_PORTS}
    yield lab
    sh(lab, stop, check=False)


def swarm_vars(lab) -> dict:
    return {"firewall_backend": "nftables", "sparkfleet_multinode_group": "sparks", "trtllm_multinode_mode": "swarm",
            "firewall_peer_cidrs": [f"{lab.peer}/32"]}


def test_single_host_leaves_swarm_ports_alone(swarm_lab):
    """No multi-node settings: the table restricts the serving ports and 2233 only, as before."""
    run = play(swarm_lab, {"firewall_backend": "nftables"})
    assert run.returncode == 0, run.output[-3000:]
    table = sh(swarm_lab, "nft list table inet sparkfleet")
    assert "swarm" not in table and swarm_drop_ports(table) == {}
    for port in (2377, 7946, 9999):
        assert tcp_reaches(swarm_lab.lab_ip, port), port
    assert not tcp_reaches(swarm_lab.lab_ip, 2233)
    assert udp_sources(swarm_lab, [swarm_lab.lab_ip]) == {(swarm_lab.other, port) for port in UDP_PORTS}


def test_bad_swarm_port_fails_with_the_variable(swarm_lab):
    before = sh(swarm_lab, "nft list table inet sparkfleet")
    run = play(swarm_lab, {**swarm_vars(swarm_lab), "firewall_swarm_ports": ["2377/tcp", "7946/sctp", "70000/udp"]})
    assert run.returncode != 0
    assert 'firewall_swarm_ports must list ports as "<1-65535>/tcp"' in run.output, run.output[-3000:]
    assert '["7946/sctp", "70000/udp"]' in run.output
    assert sh(swarm_lab, "nft list table inet sparkfleet") == before


@pytest.fixture(scope="module")
def swarm_run(swarm_lab):
    evars = swarm_vars(swarm_lab)
    before = sh(swarm_lab, "nft list table inet sparkfleet")
    check = play(swarm_lab, evars, "--check")
    after_check = sh(swarm_lab, "nft list table inet sparkfleet")
    converge = play(swarm_lab, evars)
    return {"evars": evars, "before": before, "check": check, "after_check": after_check, "converge": converge}


def test_check_mode_reports_and_changes_nothing(swarm_run):
    assert swarm_run["check"].returncode == 0, swarm_run["check"].output[-3000:]
    assert swarm_run["check"].recap[HOST]["changed"] >= 1
    assert swarm_run["after_check"] == swarm_run["before"]


def test_table_drops_swarm_ports_for_non_peers(swarm_lab, swarm_run):
    assert swarm_run["converge"].returncode == 0, swarm_run["converge"].output[-3000:]
    table = sh(swarm_lab, "nft list table inet sparkfleet")
    assert swarm_drop_ports(table) == {"tcp": {2377, 7946}, "udp": {7946, 4789}}, table
    assert swarm_lab.peer in table  # the peers' set, accepted before the drops
    assert table.index("ip saddr @peers_ipv4 accept") < table.index('comment "sparkfleet swarm"')


def test_tcp_only_from_the_peer(swarm_lab, swarm_run):
    assert swarm_run["converge"].returncode == 0
    for port in (2377, 7946, 2233):
        assert tcp_reaches(swarm_lab.fabric_ip, port), f"peer {swarm_lab.peer} -> {port}"
        assert not tcp_reaches(swarm_lab.lab_ip, port), f"non-peer {swarm_lab.other} -> {port}"
    assert tcp_reaches(swarm_lab.lab_ip, 9999)  # ports the table does not name stay as they were


def test_udp_only_from_the_peer(swarm_lab, swarm_run):
    assert swarm_run["converge"].returncode == 0
    seen = udp_sources(swarm_lab, [swarm_lab.lab_ip, swarm_lab.fabric_ip])
    assert seen == {(swarm_lab.peer, port) for port in UDP_PORTS}, seen


def test_second_run_changes_nothing_and_ssh_works(swarm_lab, swarm_run):
    assert swarm_run["converge"].returncode == 0
    table = sh(swarm_lab, "nft -s list table inet sparkfleet")
    again = play(swarm_lab, swarm_run["evars"])
    assert again.returncode == 0 and again.recap[HOST]["changed"] == 0, again.output[-3000:]
    assert sh(swarm_lab, "nft -s list table inet sparkfleet") == table
    assert swarm_lab.ssh(HOST, "echo ssh-ok", timeout=60).stdout.strip() == "ssh-ok"
    state = json.loads(sh(swarm_lab, f"cat {STATE_FILE}"))["firewall"]
    assert state["backend"] == "nftables"
    assert f"sparkfleet peers {swarm_lab.peer}/32 all" in {rule["comment"] for rule in state["rules"]}


# firewalld -----------------------------------------------------------------------------------------------------
# firewalld cannot run in the lab's sim hosts, so its part is checked without one: the rich rules are rendered by
# Ansible from the role's template, and the role's own guard script (read from tasks/firewalld.yml) runs against a
# stand-in `firewall-cmd` that keeps the permanent policies in a JSON file. What this does not prove: that a real
# firewalld accepts the commands and drops the packets.

REPO = Path(__file__).resolve().parents[2]
FAKE_FIREWALL_CMD = r'''#!/usr/bin/env python3
import json, os, sys
path = os.environ["FAKE_FIREWALLD_STATE"]
state = json.load(open(path)) if os.path.exists(path) else {"policies": {"allow-host-ipv6": {}}}
with open(path + ".calls", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\n")
args = [a for a in sys.argv[1:] if a != "--permanent"]
opts = dict((a.split("=", 1) + [None])[:2] for a in args)
def out(*lines):
    print("\n".join(lines))
def done(code=0):
    json.dump(state, open(path, "w"))
    sys.exit(code)
if "--get-policies" in opts:
    out(" ".join(sorted(state["policies"]))); done()
if "--new-policy" in opts:
    if opts["--new-policy"] in state["policies"]: done(26)
    state["policies"][opts["--new-policy"]] = {"ingress": [], "egress": [], "priority": "-1", "target": "CONTINUE",
                                               "rules": []}; done()
if "--delete-policy" in opts:
    state["policies"].pop(opts["--delete-policy"]); done()
pol = state["policies"][opts["--policy"]]
for kind in ("ingress", "egress"):
    if "--list-%s-zones" % kind in opts: out(" ".join(pol[kind])); done()
    if "--query-%s-zone" % kind in opts: done(0 if opts["--query-%s-zone" % kind] in pol[kind] else 1)
    if "--add-%s-zone" % kind in opts: pol[kind].append(opts["--add-%s-zone" % kind]); done()
    if "--remove-%s-zone" % kind in opts: pol[kind].remove(opts["--remove-%s-zone" % kind]); done()
for key in ("priority", "target"):
    if "--get-" + key in opts: out(pol[key]); done()
    if "--set-" + key in opts: pol[key] = opts["--set-" + key]; done()
if "--list-rich-rules" in opts: out(*pol["rules"]); done()
if "--query-rich-rule" in opts: done(0 if opts["--query-rich-rule"] in pol["rules"] else 1)
if "--add-rich-rule" in opts: pol["rules"].append(opts["--add-rich-rule"]); done()
if "--remove-rich-rule" in opts: pol["rules"].remove(opts["--remove-rich-rule"]); done()
sys.exit("fake firewall-cmd: unknown call %r" % sys.argv[1:])
'''


def guard_script() -> str:
    tasks = yaml.safe_load((REPO / "roles/firewall/tasks/firewalld.yml").read_text())
    (task,) = [t for t in tasks if "_firewall_guard_script" in t.get("vars", {})]
    assert task["ansible.builtin.command"]["argv"].startswith("{{ ['sh', '-c', _firewall_guard_script")
    return task["vars"]["_firewall_guard_script"]


def guard_rules(evars: dict) -> list[str]:
    """The rich rules the role's template renders for ``evars`` (Ansible on the controller, no host)."""
    templates = REPO / "roles/firewall/templates"
    evars = {"firewall_peer_ssh_port": 2233, "firewall_swarm_peers_only": False, "firewall_swarm_ports": [],
             "_firewall_swarm_ports": f"{{{{ lookup('ansible.builtin.template', '{templates}/swarm_ports.json.j2') "
                                      "| from_json }}", **evars}
    proc = subprocess.run([str(REPO / ".venv/bin/ansible"), "localhost", "-o", "-m", "ansible.builtin.debug", "-a",
                           f"msg={{{{ lookup('ansible.builtin.template', '{templates}/firewalld_guard.json.j2') }}}}",
                           "-e", json.dumps(evars)], capture_output=True, text=True, timeout=120, check=False,
                          cwd=REPO, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(json.loads(proc.stdout[proc.stdout.index("{"):])["msg"])


@pytest.fixture()
def fake_firewalld(tmp_path):
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "firewall-cmd"
    fake.write_text(FAKE_FIREWALL_CMD)
    fake.chmod(0o755)
    state = tmp_path / "firewalld.json"
    script = guard_script()

    def run(mode: str, rules: list[str]):
        proc = subprocess.run(["sh", "-c", script, "sh", mode, "sparkfleet-guard", *rules], capture_output=True,
                              text=True, timeout=60, check=False,
                              env={**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
                                   "FAKE_FIREWALLD_STATE": str(state)})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        policies = json.loads(state.read_text())["policies"] if state.exists() else {}
        return proc.stdout, policies

    return run


SWARM_PEER = {"firewall_peer_cidrs": ["172.29.214.12/32", "fd00::2/128"], "firewall_swarm_peers_only": True,
              "firewall_swarm_ports": ["2377/tcp", "7946/tcp", "7946/udp", "4789/udp"]}


def test_firewalld_rich_rules_rendered():
    assert guard_rules(SWARM_PEER) == [
        'rule priority="-2" family="ipv4" source address="172.29.214.12/32" accept',
        'rule priority="-2" family="ipv6" source address="fd00::2/128" accept',
        'rule priority="-1" port port="2233" protocol="tcp" drop',
        'rule priority="-1" port port="2377" protocol="tcp" drop',
        'rule priority="-1" port port="7946" protocol="tcp" drop',
        'rule priority="-1" port port="7946" protocol="udp" drop',
        'rule priority="-1" port port="4789" protocol="udp" drop',
    ]
    # mpirun mode (peers, no swarm): only the peer sshd port is fenced; a single host: nothing (no policy)
    assert guard_rules({**SWARM_PEER, "firewall_swarm_peers_only": False})[2:] == [
        'rule priority="-1" port port="2233" protocol="tcp" drop']
    assert guard_rules({"firewall_peer_cidrs": []}) == []


def test_firewalld_guard_policy_converges(fake_firewalld):
    rules = guard_rules(SWARM_PEER)
    out, policies = fake_firewalld("check", rules)  # check mode: says what it would do, writes nothing
    assert "create policy sparkfleet-guard" in out and "sparkfleet-guard" not in policies
    out, policies = fake_firewalld("apply", rules)
    assert out.strip()
    assert policies["sparkfleet-guard"] == {"ingress": ["ANY"], "egress": ["HOST"], "priority": "-1",
                                            "target": "CONTINUE", "rules": rules}
    out, again = fake_firewalld("apply", rules)  # idempotent: prints nothing, so changed=0
    assert out == "" and again == policies
    fewer = guard_rules({**SWARM_PEER, "firewall_peer_cidrs": ["172.29.214.12/32"]})
    out, policies_check = fake_firewalld("check", fewer)
    assert "remove " in out and policies_check == policies  # check mode leaves the stale rule
    out, policies = fake_firewalld("apply", fewer)
    assert policies["sparkfleet-guard"]["rules"] == fewer
    out, policies = fake_firewalld("apply", [])  # no peer-only port left (single host): the policy goes
    assert out.strip() == "delete policy sparkfleet-guard" and "sparkfleet-guard" not in policies
    out, _policies = fake_firewalld("apply", [])
    assert out == ""
