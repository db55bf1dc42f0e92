# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reliability suite, security (docs/reliability.md): secrets stay secret, endpoints and listeners stay where asked,
files carry explicit owners and modes, nothing is downloaded and executed.

The lab cases run on ``sparkfleet-lab-rel`` (2 hosts) converged once with the demo variables; the static cases read
the roles and playbooks of the collection.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from _reliability import DEMO_VARS, LAB_SUFFIX, LLM, converged, wait_serving

REPO = Path(__file__).resolve().parents[2]
# A token the lab Hub accepts (approved for every repo), so the runs below really send it.
TOKEN = "hf_lab_approved"
OUTSIDER = "10.254.0.2"  # an address outside the allowed lab subnet, given to spark-2 as a second address


@pytest.fixture(scope="module")
def rel_lab(lab_factory):
    lab = lab_factory(LAB_SUFFIX, 2)
    converged(lab)
    return lab


def test_hf_token_never_appears_in_output_containers_files_or_reports(rel_lab):
    extra = json.dumps({"sparkfleet_hf_token": TOKEN, "model_cache_store_token": True})
    seen = []
    # One host is enough (the same tasks run on every host) and leaves spark-2 to the fault tests.
    for playbook in ("playbooks/preflight.yml", "playbooks/model_cache.yml", "playbooks/serve.yml"):
        proc = rel_lab.ansible_playbook(playbook, "-e", DEMO_VARS, "-e", extra, "-vvv", "-l", rel_lab.host_names[0],
                                        timeout=900)
        assert proc.returncode == 0, proc.output[-4000:]
        seen.append(proc.output)
    output = "\n".join(seen)
    assert TOKEN not in output, [line for line in output.splitlines() if TOKEN in line][:5]
    for host in rel_lab.host_names:
        inspect = rel_lab.ssh(host, "docker ps -q | xargs -r docker inspect", sudo=True)
        assert inspect.returncode == 0 and TOKEN not in inspect.stdout
        # Files any local user can read: the collection's folders, /etc, /opt, /tmp, /var/tmp, /var/log, homes.
        readable = rel_lab.ssh(
            host, "find /etc /opt /var/lib/sparkfleet /var/log /tmp /var/tmp /home /root -xdev -type f -perm -o=r "
                  "-size -20M -print0 2>/dev/null | xargs -0 -r grep -l -F %s 2>/dev/null; true" % TOKEN, sudo=True)
        assert readable.stdout.strip() == "", readable.stdout
        # Where the token is stored (model_cache_store_token), only root reads it.
        stored = rel_lab.ssh(host, "grep -rlF %s /var/lib/sparkfleet /etc/sparkfleet 2>/dev/null | xargs -r stat -c '%%a %%U %%n'"
                             % TOKEN, sudo=True).stdout.split("\n")
        for line in filter(None, stored):
            mode, owner = line.split(" ", 2)[:2]
            assert owner == "root" and int(mode, 8) & 0o077 == 0, line
    reports = REPO / "reports"
    for path in reports.rglob("*") if reports.is_dir() else []:
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), path


def _connect(lab, host, target, port, source=None):
    code = ("import socket,sys\ns=socket.socket()\ns.settimeout(4)\n"
            + ("s.bind((%r,0))\n" % source if source else "")
            + "try:\n s.connect((%r,%d)); print('open')\nexcept socket.timeout: print('timeout')\n"
              "except OSError as e: print('refused' if e.errno==111 else 'error %%s' %% e)\n" % (target, port))
    return lab.ssh(host, ["python3", "-c", code]).stdout.strip()


def test_endpoints_reachable_from_allowed_cidr_and_not_from_others(rel_lab):
    h1, h2 = rel_lab.host_names
    ip1, ip2 = rel_lab.hosts[h1], rel_lab.hosts[h2]
    # Inside the allowed subnet (the controller and spark-2): both endpoints answer.
    assert wait_serving(ip1, 8355, LLM, timeout=60)[0] == 200
    assert _connect(rel_lab, h2, ip1, 8355) == "open"
    assert _connect(rel_lab, h2, ip1, 8356) == "open"
    # From an address outside it (spark-2's second address, routed on the same link): dropped by the firewall,
    # while ICMP from that address still gets through (so the path itself works).
    setup = [(h2, "ip addr add %s/32 dev eth0" % OUTSIDER), (h1, "ip route add %s/32 dev eth0" % OUTSIDER)]
    try:
        for host, cmd in setup:
            proc = rel_lab.ssh(host, cmd, sudo=True)
            assert proc.returncode == 0, proc.stderr
        ping = rel_lab.ssh(h2, "ping -c1 -W2 -I %s %s" % (OUTSIDER, ip1))
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert _connect(rel_lab, h2, ip1, 8355, source=OUTSIDER) == "timeout"
        assert _connect(rel_lab, h2, ip1, 8356, source=OUTSIDER) == "timeout"
    finally:
        rel_lab.ssh(h1, "ip route del %s/32 dev eth0" % OUTSIDER, sudo=True)
        rel_lab.ssh(h2, "ip addr del %s/32 dev eth0" % OUTSIDER, sudo=True)


# Processes present on a bare lab host (sshd, systemd-resolved / docker's own helpers on loopback).
_BASELINE_PROCS = {"sshd", "systemd-resolve", "containerd", "dockerd"}


def test_listeners_only_on_the_asked_addresses(rel_lab):
    for host in rel_lab.host_names:
        out = rel_lab.ssh(host, "ss -Hltnp", sudo=True).stdout
        found = set()
        for line in out.splitlines():
            fields = line.split()
            local, procs = fields[3], " ".join(fields[5:])
            names = set(re.findall(r'\("([^"]+)"', procs))
            if local.startswith("127.0.0.11:"):
                continue  # the outer Docker's embedded DNS of the lab network (lab plumbing, not a lab host service)
            if names and names <= _BASELINE_PROCS:
                assert not (names & {"containerd", "dockerd"}) or local.startswith(("127.", "[::1]")), line
                continue
            found.add(local)
        # trtllm_server_bind_address (0.0.0.0 by default) on the two serving ports, nothing else.
        assert found == {"0.0.0.0:8355", "0.0.0.0:8356"}, out


def test_files_written_carry_restrictive_owners_and_modes(rel_lab):
    for host in rel_lab.host_names:
        out = rel_lab.ssh(host, "find /var/lib/sparkfleet /etc/sparkfleet /opt/sparkfleet /etc/docker/daemon.json "
                                "/root/.ssh -xdev \\( -type f -o -type d \\) -printf '%m %u %g %p\\n' 2>/dev/null",
                          sudo=True).stdout
        rows = [line.split(" ", 3) for line in out.splitlines()]
        assert rows, out
        for mode, owner, group, path in rows:
            bits = int(mode, 8)
            assert bits & 0o002 == 0, "world-writable: %s %s" % (mode, path)
            # root, or the connecting user for what it uses itself (the fleet copy key of model_cache).
            assert owner in ("root", rel_lab.vars.get("ansible_user", "spark")) and group == "root", \
                "%s %s:%s" % (path, owner, group)
            name = path.rsplit("/", 1)[-1]
            if re.search(r"(^id_|_key$|\.key$|^token$)", name) and not name.endswith(".pub"):
                assert bits & 0o077 == 0, "secret readable by others: %s %s" % (mode, path)
            if "/state/" in path and not path.endswith("/state"):
                assert bits & 0o077 == 0, "state file readable by others: %s %s" % (mode, path)


# Static checks over the collection's own files -------------------------------------------------------------
_FILE_MODULES = {"ansible.builtin.copy", "ansible.builtin.template", "ansible.builtin.file", "ansible.builtin.get_url",
                 "ansible.builtin.unarchive", "ansible.builtin.assemble"}


def _tasks(node):
    """Every task dict in a parsed task file (blocks included)."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        if any(k in node for k in ("block", "rescue", "always")):
            for key in ("block", "rescue", "always"):
                yield from _tasks(node.get(key) or [])
        else:
            yield node


def _task_files():
    for path in sorted((REPO / "roles").glob("*/tasks/*.yml")) + sorted((REPO / "roles").glob("*/handlers/*.yml")):
        yield path, yaml.safe_load(path.read_text()) or []


def test_every_file_task_sets_owner_and_mode():
    missing = []
    for path, data in _task_files():
        for task in _tasks(data):
            module = next((m for m in _FILE_MODULES if m in task), None)
            if module is None:
                continue
            args = task[module] if isinstance(task[module], dict) else {}
            # absent/link/hard create no file content; state=file only touches an existing file (times);
            # mode=preserve (backups, restores) keeps the original's mode and owner on purpose.
            if args.get("state") in ("absent", "link", "hard", "file") or args.get("mode") == "preserve":
                continue
            if task.get("delegate_to") == "localhost":
                need = ["mode"]  # controller files belong to the operator who runs Ansible
            else:
                need = ["mode", "owner"]
            lacking = [k for k in need if k not in args]
            if lacking:
                missing.append("%s: %r lacks %s" % (path.relative_to(REPO), task.get("name"), ", ".join(lacking)))
    assert not missing, "\n".join(missing)


_PIPE_TO_SHELL = re.compile(r"\b(curl|wget)\b[^\n]*\|\s*(sudo\s+)?(ba|z|da)?sh\b")
_EXEC_PATHS = ("ansible.builtin.shell", "ansible.builtin.command", "ansible.builtin.script", "ansible.builtin.raw")


def test_no_task_downloads_and_executes_code():
    found = []
    files = [p for p in REPO.glob("roles/**/*") if p.is_file()] + list(REPO.glob("playbooks/*.yml"))
    for path in files:
        # Comments may quote the guide's `curl ... | sh` to say why it is not done.
        text = "\n".join(line for line in path.read_text(errors="replace").splitlines()
                         if not line.lstrip().startswith("#"))
        for match in _PIPE_TO_SHELL.finditer(text):
            found.append("%s: %s" % (path.relative_to(REPO), match.group(0)))
    # A get_url destination must not be run by a later command/shell/script task of the same role.
    for role in sorted((REPO / "roles").iterdir()):
        tasks = [t for p in role.glob("tasks/*.yml") for t in _tasks(yaml.safe_load(p.read_text()) or [])]
        dests = [str(t["ansible.builtin.get_url"].get("dest")) for t in tasks if "ansible.builtin.get_url" in t]
        for task in tasks:
            for module in _EXEC_PATHS:
                if module in task:
                    body = json.dumps(task[module]) + json.dumps(task.get("args", {}))
                    found += ["%s: %r runs %s" % (role.name, task.get("name"), d) for d in dests if d and d in body]
    assert not found, "\n".join(found)


def test_the_suite_greps_what_it_claims():
    """The static scanners above find what they look for (so a clean result means something)."""
    assert _PIPE_TO_SHELL.search("curl -fsSL https://get.example/install.sh | sudo bash")
    assert _PIPE_TO_SHELL.search("wget -qO- https://x | sh")
    assert not _PIPE_TO_SHELL.search("curl -fsSL -o /tmp/key.gpg https://x")
    assert list(_tasks([{"block": [{"name": "a", "ansible.builtin.copy": {}}]}])) == [{"name": "a", "ansible.builtin.copy": {}}]
