#!/usr/bin/python
# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: converged
short_description: Tell whether a Spark is still exactly as the last complete site.yml run left it
version_added: 0.1.0
description:
  - Takes a fingerprint of what the collection manages on a host, in one call, and compares it with the record that
    the last complete C(site.yml) run wrote (O(state=query)), or writes that record (O(state=present)).
  - "The fingerprint covers: the SHA-256, mode and owner of every file under O(files) (configuration, keys, state
    files, tiktoken encodings); for every model of O(models), the cache's C(refs/), the snapshot's file list with
    link targets and the size of every blob (not their content: that is the C(hf_model) module's C(verified) job);
    every container labelled O(container_label) (name, ID, image ID, running or not, restart policy); the image ID of
    every reference of O(images) and Docker's runtimes and swarm state; the Debian package versions of
    O(packages); the firewall rules of O(firewall) as the firewall itself lists them."
  - Live checks that must pass as well, never recorded, so that a host that broke since is never called converged
    - every unit of O(services) is active and every URL of O(endpoints) answers HTTP 200.
  - The host is converged when the record exists, holds the same O(inputs_digest) (the digest of the run's
    variables and of the collection) and the same fingerprint, and the live checks pass. Otherwise RV(drift) says
    what differs, part by part, so that the run can say why a host needs the full path.
  - C(site.yml) uses it to skip the roles on a fleet where nothing drifted (one call per host instead of about fifty),
    and to write the record after a run in which every play finished on the host.
  - The record holds digests only, never file contents, variable values or secrets.
author:
  - sparkfleet contributors (!UNKNOWN)
extends_documentation_fragment:
  - sparkfleet.trtllm._attributes
  - sparkfleet.trtllm._attributes.actiongroup_trtllm
attributes:
  check_mode:
    support: full
    details:
      - O(state=query) only reads. With O(state=present), check mode reports whether the record would change.
  diff_mode:
    support: full
    details:
      - With O(state=present), the diff shows the recorded part digests before and after.
  idempotent:
    support: full
options:
  state:
    description:
      - V(query) compares the host with the record and changes nothing.
      - V(present) writes the record of the host as it is now (changed only when the fingerprint or O(inputs_digest)
        differs from the existing record).
    type: str
    choices: [query, present]
    default: query
  path:
    description: Record file. Its folder is created (mode C(0700)) when missing; the file is written with mode C(0600).
    type: path
    default: /var/lib/sparkfleet/state/converged.json
  inputs_digest:
    description:
      - Digest of everything the run was asked to do (its variables and the collection's code), computed on the
        controller. A different value means the run asks for something else, so the host is not converged.
    type: str
    required: true
  files:
    description:
      - Files and folders (walked recursively) whose content, mode and owner are fingerprinted. Missing paths are
        fingerprinted as missing. The record file itself is always left out.
    type: list
    elements: path
    default: []
  hf_cache:
    description: The Hugging Face hub cache folder holding the O(models) (C(<HF_HOME>/hub)).
    type: path
  models:
    description: Repo IDs (C(org/name)) whose cache entry in O(hf_cache) is fingerprinted.
    type: list
    elements: str
    default: []
  container_label:
    description: Docker containers carrying this label (C(key=value) or C(key)) are fingerprinted. Empty to skip Docker.
    type: str
    default: sparkfleet.managed=true
  images:
    description:
      - Image references whose image ID is fingerprinted, with Docker's runtimes, default runtime and swarm state
        (C(docker info)). Needs O(container_label) not empty (Docker is skipped otherwise).
    type: list
    elements: str
    default: []
  packages:
    description: Debian packages whose installed version is fingerprinted (C(dpkg-query)); not installed counts too.
    type: list
    elements: str
    default: []
  firewall:
    description:
      - Which firewall's rules to fingerprint, as listed by the firewall itself, so that a rule deleted by hand is seen.
      - V(auto) picks as the C(firewall) role does - ufw when installed, else firewalld when running, else nftables
        when installed, else none.
      - V(ufw) reads C(ufw status verbose); V(nftables) reads C(nft list table inet <firewall_marker>) without packet
        counters; V(firewalld) reads C(firewall-cmd --list-all --zone <firewall_marker>) and the policy
        C(<firewall_marker>-guard) (C(firewall-cmd --info-policy)); V(none) skips it.
    type: str
    choices: [auto, none, ufw, nftables, firewalld]
    default: none
  firewall_marker:
    description: The nftables table or firewalld zone the collection keeps its rules in.
    type: str
    default: sparkfleet
  services:
    description: systemd units that must be active (checked live, not recorded).
    type: list
    elements: str
    default: []
  endpoints:
    description: URLs that must answer HTTP 200 within O(timeout) (checked live, not recorded).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds each endpoint may take to answer.
    type: float
    default: 5.0
notes:
  - Docker is read with the C(docker) CLI (C(docker ps), C(docker inspect)) rather than the Docker SDK, because the SDK
    is not installed on a bare Spark and one C(inspect) of all the containers is a single call either way.
  - A converged host still gets the full path when anything the fingerprint does not cover must be redone; run
    C(site.yml) with C(-e sparkfleet_full_run=true) to force it.
seealso:
  - name: Fleet speed
    description: How site.yml uses this module, and what it saves (docs/performance.md).
    link: https://github.com/sparkfleet/sparkfleet.trtllm/blob/main/docs/performance.md
"""

EXAMPLES = r"""
- name: Is this Spark still as the last complete run left it?
  sparkfleet.trtllm.converged:
    inputs_digest: "{{ my_settings | to_json(sort_keys=true) | hash('sha256') }}"
    files: [/etc/docker/daemon.json, /etc/sparkfleet]
    hf_cache: /var/lib/sparkfleet/huggingface/hub
    models: [nvidia/Qwen3-8B-FP4]
    firewall: ufw
    services: [docker.service]
    endpoints: ["http://127.0.0.1:8355/health"]
  register: _converged

- name: Record the host after a complete run
  sparkfleet.trtllm.converged:
    state: present
    inputs_digest: "{{ _converged.inputs_digest }}"
    files: [/etc/docker/daemon.json, /etc/sparkfleet]
    firewall: ufw
"""

RETURN = r"""
converged:
  description: Whether the record exists, matches O(inputs_digest) and the fingerprint, and every live check passed.
  returned: always
  type: bool
  sample: true
drift:
  description: What differs, one line per part (empty when converged, and after O(state=present)).
  returned: always
  type: list
  elements: str
  sample: ["containers: sparkfleet-trtllm-llm", "endpoint http://127.0.0.1:8355/health: connection refused"]
inputs_digest:
  description: The O(inputs_digest) of this call, for a later O(state=present) call of the same run to record.
  returned: always
  type: str
  sample: 0b6e2f7a9c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f
fingerprint:
  description: SHA-256 over the digests of all the parts.
  returned: always
  type: str
  sample: 4f2c0b1e9d8a7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b
parts:
  description:
    - Digest of each fingerprinted part (C(files:<path>), C(model:<repo>), C(containers), C(docker), C(packages),
      C(firewall)).
  returned: always
  type: dict
  sample: {"files:/etc/docker/daemon.json": "9f0e...", "containers": "1a2b..."}
recorded_at:
  description: When the record in O(path) was written (ISO 8601, UTC); null when there is none.
  returned: always
  type: str
  sample: "2026-11-27T14:02:11Z"
"""

import hashlib
import json
import os
import re
import stat
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sparkfleet.trtllm.plugins.module_utils import _http

_COUNTERS = re.compile(r"\s*counter packets \d+ bytes \d+")


def _sha(data) -> str:
    if not isinstance(data, bytes):
        data = json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _file_entry(path: str) -> list:
    """[kind, mode, uid, gid, content sha256 or link target] of one path (not following a final symlink)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return ["missing"]
    except OSError as exc:
        return ["unreadable", exc.strerror]
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return ["link", os.readlink(path)]
    if stat.S_ISDIR(st.st_mode):
        return ["dir", mode, st.st_uid, st.st_gid]
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        return ["unreadable", exc.strerror]
    return ["file", mode, st.st_uid, st.st_gid, digest.hexdigest()]


def files_part(root: str, skip: str) -> dict:
    """Every path under ``root`` (or ``root`` itself) with its entry; ``skip`` (the record) is left out."""
    entries = {}
    if os.path.isdir(root) and not os.path.islink(root):
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(dirs) + sorted(names):
                path = os.path.join(folder, name)
                if path != skip:
                    entries[os.path.relpath(path, root)] = _file_entry(path)
        entries["."] = _file_entry(root)
    elif root != skip:
        entries["."] = _file_entry(root)
    return entries


def model_part(hf_cache: str, repo_id: str) -> dict:
    """refs, snapshot links and blob sizes of one cached repo: what says which revision is complete, without
    reading gigabytes (content integrity is hf_model's ``verified`` state)."""
    storage = os.path.join(hf_cache, "models--" + repo_id.replace("/", "--"))
    part = {"refs": {}, "snapshots": {}, "blobs": {}}
    for key, sub in (("refs", "refs"), ("snapshots", "snapshots"), ("blobs", "blobs")):
        top = os.path.join(storage, sub)
        for folder, dirs, names in os.walk(top):
            dirs.sort()
            for name in sorted(names):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, top)
                if key == "refs":
                    part[key][rel] = _file_entry(path)
                elif key == "snapshots":
                    part[key][rel] = os.readlink(path) if os.path.islink(path) else _file_entry(path)
                else:
                    try:
                        part[key][rel] = os.lstat(path).st_size
                    except OSError:
                        part[key][rel] = None
    return part


class Fingerprint:
    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params

    def _run(self, argv: list, missing_ok: bool = True):
        """(rc, stdout) of a read-only command; rc None when the program is not installed."""
        path = self.module.get_bin_path(argv[0])
        if path is None:
            if missing_ok:
                return None, ""
            self.module.fail_json(msg="%s is not installed on the host" % argv[0])
        rc, out, _err = self.module.run_command([path] + argv[1:], environ_update={"LC_ALL": "C"})
        return rc, out

    def containers(self) -> dict:
        label = self.params["container_label"]
        rc, out = self._run(["docker", "ps", "-a", "-q", "--no-trunc", "--filter", "label=%s" % label])
        if rc is None:
            return {"docker": "not installed"}
        if rc != 0:
            return {"docker": "not answering (rc %s)" % rc}
        ids = out.split()
        if not ids:
            return {}
        rc, out = self._run(["docker", "inspect"] + ids)
        if rc != 0:
            return {"docker": "inspect failed (rc %s)" % rc}
        part = {}
        for item in json.loads(out or "[]"):
            part[item.get("Name", "").lstrip("/")] = {
                "id": item.get("Id"),
                "image": item.get("Image"),
                "running": (item.get("State") or {}).get("Running"),
                "restart": ((item.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name"),
                "labels": _sha((item.get("Config") or {}).get("Labels") or {}),
            }
        return part

    def docker(self) -> dict:
        """Runtimes, default runtime and swarm membership (what docker_gpu and multinode set), and image IDs."""
        rc, out = self._run(["docker", "info", "--format", "{{json .}}"])
        if rc is None:
            return {"docker": "not installed"}
        if rc != 0:
            return {"docker": "not answering (rc %s)" % rc}
        info = json.loads(out or "{}")
        swarm = info.get("Swarm") or {}
        part = {"runtimes": sorted(info.get("Runtimes") or {}), "default_runtime": info.get("DefaultRuntime"),
                "swarm": [swarm.get("LocalNodeState"), swarm.get("NodeID")], "images": {}}
        for ref in self.params["images"]:
            rc, out = self._run(["docker", "image", "inspect", "--format", "{{.Id}}", ref])
            part["images"][ref] = out.strip() if rc == 0 else "absent"
        return part

    def packages(self) -> dict:
        names = self.params["packages"]
        if not names:
            return {}
        _rc, out = self._run(["dpkg-query", "-W", "-f", "${Package} ${Status} ${Version}\\n"] + names)
        versions = {name: "not installed" for name in names}
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[3] == "installed":
                versions[fields[0].split(":")[0]] = fields[4]
        return versions

    def firewall_kind(self) -> str:
        kind = self.params["firewall"]
        if kind != "auto":
            return kind
        if self.module.get_bin_path("ufw"):
            return "ufw"
        if self.module.get_bin_path("firewall-cmd") and self._run(["firewall-cmd", "--state"])[0] == 0:
            return "firewalld"
        return "nftables" if self.module.get_bin_path("nft") else "none"

    def firewall(self, kind: str) -> str:
        marker = self.params["firewall_marker"]
        argv = {"ufw": ["ufw", "status", "verbose"], "nftables": ["nft", "list", "table", "inet", marker],
                "firewalld": ["firewall-cmd", "--list-all", "--zone", marker]}[kind]
        rc, out = self._run(argv)
        if rc is None:
            return "%s not installed" % argv[0]
        if kind == "nftables":
            out = _COUNTERS.sub("", out)
        if kind == "firewalld":
            # The policy that fences the peer-only ports (multi-node sshd, swarm) from the other zones.
            policy_rc, policy = self._run(["firewall-cmd", "--info-policy", marker + "-guard"])
            out += "\npolicy rc=%s\n%s" % (policy_rc, policy)
        return "rc=%s\n%s" % (rc, out)

    def parts(self) -> dict:
        skip = os.path.abspath(self.params["path"])
        parts = {}
        for root in self.params["files"]:
            parts["files:" + root] = _sha(files_part(os.path.abspath(root), skip))
        for repo in self.params["models"]:
            parts["model:" + repo] = _sha(model_part(self.params["hf_cache"] or "", repo))
        if self.params["container_label"]:
            parts["containers"] = _sha(self.containers())
            parts["docker"] = _sha(self.docker())
        if self.params["packages"]:
            parts["packages"] = _sha(self.packages())
        kind = self.firewall_kind()
        if kind != "none":
            parts["firewall"] = _sha(self.firewall(kind))
        return parts

    def live_problems(self) -> list:
        problems = []
        for unit in self.params["services"]:
            rc, out = self._run(["systemctl", "is-active", unit])
            if rc != 0:
                problems.append("service %s: %s" % (unit, (out or "not active").strip()))
        for url in self.params["endpoints"]:
            # The collection's stdlib HTTP client (as openai_probe): no proxy from the environment between the host
            # and its own endpoint, refused and timed out told apart.
            try:
                answer = _http.request(_http.parse_base_url(url), "GET", "", self.params["timeout"])
            except ValueError as exc:
                self.module.fail_json(msg="endpoints: %s is not a usable URL: %s" % (url, exc))
            except (_http.HTTPUnreachable, _http.HTTPTimeout) as exc:
                problems.append("endpoint %s: %s" % (url, exc))
                continue
            if answer.status != 200:
                problems.append("endpoint %s: HTTP %s" % (url, answer.status))
        return problems


def _read_record(module: AnsibleModule, path: str):
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        module.warn("ignoring the unreadable record %s: %s" % (path, exc))
        return None
    return record if isinstance(record, dict) else None


def _write_record(module: AnsibleModule, path: str, record: dict) -> None:
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.write("\n")
    module.atomic_move(tmp, path)
    os.chmod(path, 0o600)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["query", "present"], default="query"),
            path=dict(type="path", default="/var/lib/sparkfleet/state/converged.json"),
            inputs_digest=dict(type="str", required=True),
            files=dict(type="list", elements="path", default=[]),
            hf_cache=dict(type="path"),
            models=dict(type="list", elements="str", default=[]),
            container_label=dict(type="str", default="sparkfleet.managed=true"),
            images=dict(type="list", elements="str", default=[]),
            packages=dict(type="list", elements="str", default=[]),
            firewall=dict(type="str", choices=["auto", "none", "ufw", "nftables", "firewalld"], default="none"),
            firewall_marker=dict(type="str", default="sparkfleet"),
            services=dict(type="list", elements="str", default=[]),
            endpoints=dict(type="list", elements="str", default=[]),
            timeout=dict(type="float", default=5.0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["models"] and not params["hf_cache"]:
        module.fail_json(msg="hf_cache is required when models are given (the <HF_HOME>/hub folder holding them)")
    path = os.path.abspath(params["path"])
    probe = Fingerprint(module)
    parts = probe.parts()
    fingerprint = _sha(parts)
    record = _read_record(module, path)
    recorded_at = record.get("recorded_at") if record else None

    if params["state"] == "present":
        same = bool(record) and record.get("inputs_digest") == params["inputs_digest"] \
            and record.get("fingerprint") == fingerprint
        result = dict(changed=not same, converged=True, drift=[], fingerprint=fingerprint, parts=parts,
                      recorded_at=recorded_at, inputs_digest=params["inputs_digest"])
        if module._diff:
            result["diff"] = dict(before=json.dumps((record or {}).get("parts", {}), indent=2, sort_keys=True) + "\n",
                                  after=json.dumps(parts, indent=2, sort_keys=True) + "\n",
                                  before_header=path, after_header=path)
        if not same and not module.check_mode:
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            _write_record(module, path, dict(format=1, inputs_digest=params["inputs_digest"], fingerprint=fingerprint,
                                             parts=parts, recorded_at=now))
            result["recorded_at"] = now
        module.exit_json(**result)

    drift = []
    if record is None:
        drift.append("no record of a complete run in %s" % path)
    else:
        if record.get("inputs_digest") != params["inputs_digest"]:
            drift.append("inputs: the run's variables or the collection differ from the recorded run")
        old = record.get("parts") or {}
        for name in sorted(set(old) | set(parts)):
            if old.get(name) != parts.get(name):
                drift.append("%s: %s" % (name, "changed" if name in old and name in parts else
                                         ("not recorded" if name in parts else "no longer checked")))
    drift.extend(probe.live_problems())
    module.exit_json(changed=False, converged=not drift, drift=drift, fingerprint=fingerprint, parts=parts,
                     recorded_at=recorded_at, inputs_digest=params["inputs_digest"])


if __name__ == "__main__":
    main()
