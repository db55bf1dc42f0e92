#!/usr/bin/python
# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: host_state_info
short_description: Read in one call what a role branches on - files, paths, commands, systemd units, Python modules
version_added: 0.1.0
author:
  - sparkfleet contributors (!UNKNOWN)
description:
  - Reads several small facts about a host in one module call, so that a role's no-change run does not pay one SSH
    round trip per file read, C(stat) or C(command -v) (docs/performance.md, "Fleet speed").
  - Files (O(files)) are read as text, for example the deployment state files under C(/var/lib/sparkfleet/state),
    a systemd drop-in or a Hugging Face C(refs/) file. A missing file is reported with RV(files[].exists=false); any
    other read error (a directory, no permission, a file larger than O(max_file_bytes)) fails the module, so that a
    role never mistakes an unreadable state file for a first run.
  - Paths (O(paths)) are only tested for existence; glob patterns (O(globs)) list what they match.
  - Commands (O(commands)) are looked up on E(PATH) as the module sees it (with become, sudo's C(secure_path)), like
    C(command -v).
  - Systemd units (O(services)) report C(systemctl is-enabled) and C(systemctl is-active); without C(systemctl)
    both read V(unknown).
  - Python modules (O(python_modules)) report whether the Python that runs the modules can import them, for example
    C(requests), which the C(community.docker) modules need.
  - The module only reads and never changes anything.
extends_documentation_fragment:
  - sparkfleet.trtllm._attributes
  - sparkfleet.trtllm._attributes.actiongroup_trtllm
  - sparkfleet.trtllm._attributes.info_module
  - sparkfleet.trtllm._attributes.idempotent_not_modify_state
attributes:
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  files:
    description:
      - Text files to read (UTF-8; bytes that are not UTF-8 are replaced).
    type: list
    elements: path
    default: []
  max_file_bytes:
    description:
      - Largest file O(files) may read; a larger one fails the module (these are small state and config files).
    type: int
    default: 1048576
  paths:
    description:
      - Paths whose existence to report (files, folders or anything else; a broken symbolic link does not exist).
    type: list
    elements: path
    default: []
  globs:
    description:
      - Shell-style patterns (C(*), C(?), C([...])) whose matches to list, sorted.
    type: list
    elements: str
    default: []
  commands:
    description:
      - Command names to look up on E(PATH).
    type: list
    elements: str
    default: []
  services:
    description:
      - Systemd unit names whose enablement and activity to report.
    type: list
    elements: str
    default: []
  python_modules:
    description:
      - Top-level Python module names whose importability to report.
    type: list
    elements: str
    default: []
seealso:
  - module: ansible.builtin.slurp
  - module: ansible.builtin.stat
  - module: sparkfleet.trtllm.managed_file
"""

EXAMPLES = r"""
- name: Read the state file, find dockerd and check the Docker service in one call
  sparkfleet.trtllm.host_state_info:
    files: [/var/lib/sparkfleet/state/host_config.json]
    paths: [/etc/dgx-release]
    commands: [dockerd, nvidia-ctk]
    services: [docker]
    python_modules: [requests]
  register: found

- name: Use the previous deployment state (empty on a first run)
  ansible.builtin.set_fact:
    previous: >-
      {{ (found.files['/var/lib/sparkfleet/state/host_config.json'].content | from_json)
         if found.files['/var/lib/sparkfleet/state/host_config.json'].exists else {} }}
"""

RETURN = r"""
files:
  description: One entry per path of O(files).
  returned: always
  type: dict
  sample:
    /var/lib/sparkfleet/state/images.json: {exists: true, content: "{\"images\": {}}\n", mode: "0600", owner: root,
                                             group: root, size: 15}
    /etc/dgx-release-absent: {exists: false}
  contains:
    exists:
      description: Whether the file exists.
      type: bool
    content:
      description: The file's text (only when it exists).
      type: str
    mode:
      description: Permission bits as an octal string (only when it exists).
      type: str
    owner:
      description: Owner name, or the numeric ID when it has no name (only when it exists).
      type: str
    group:
      description: Group name, or the numeric ID when it has no name (only when it exists).
      type: str
    size:
      description: Size in bytes (only when it exists).
      type: int
paths:
  description: Path of O(paths) to whether it exists.
  returned: always
  type: dict
  sample: {/etc/dgx-release: true}
globs:
  description: Pattern of O(globs) to the sorted list of paths it matches.
  returned: always
  type: dict
  sample: {"/var/lib/sparkfleet/huggingface/hub/models--nvidia--Qwen3-8B-FP4/snapshots/*/config.json": []}
commands:
  description: Command name of O(commands) to its full path, or null when it is not on E(PATH).
  returned: always
  type: dict
  sample: {dockerd: /usr/bin/dockerd, nvidia-ctk: null}
services:
  description: Unit name of O(services) to its C(enabled) and C(active) state as C(systemctl) prints them.
  returned: always
  type: dict
  sample: {docker: {enabled: enabled, active: active}}
python_modules:
  description: Module name of O(python_modules) to whether the modules' Python can import it.
  returned: always
  type: dict
  sample: {requests: true}
"""

import glob
import grp
import importlib.util
import os
import pwd
import shutil
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native


def _name(lookup, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def read_file(module: AnsibleModule, path: str) -> dict:
    """The file's text and attributes; {'exists': False} when it is missing. Any other problem fails the module."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return {"exists": False}
    except OSError as exc:
        module.fail_json(msg=f"Cannot read {path}: {to_native(exc)}", path=path)
    if not stat.S_ISREG(info.st_mode):
        module.fail_json(msg=f"Cannot read {path}: not a regular file", path=path)
    if info.st_size > module.params["max_file_bytes"]:
        module.fail_json(msg=f"Cannot read {path}: {info.st_size} bytes, more than max_file_bytes "
                             f"({module.params['max_file_bytes']})", path=path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(module.params["max_file_bytes"] + 1)
    except OSError as exc:
        module.fail_json(msg=f"Cannot read {path}: {to_native(exc)}", path=path)
    return {
        "exists": True,
        "content": raw.decode("utf-8", errors="replace"),
        "mode": "%04o" % stat.S_IMODE(info.st_mode),
        "owner": _name(pwd.getpwuid, info.st_uid),
        "group": _name(grp.getgrgid, info.st_gid),
        "size": len(raw),
    }


def unit_state(module: AnsibleModule, systemctl: str | None, unit: str) -> dict:
    if systemctl is None:
        return {"enabled": "unknown", "active": "unknown"}
    states = {}
    for verb, key in (("is-enabled", "enabled"), ("is-active", "active")):
        dummy_rc, out, dummy_err = module.run_command([systemctl, verb, unit])
        states[key] = out.strip().splitlines()[0] if out.strip() else "unknown"
    return states


def can_import(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="path", default=[]),
            max_file_bytes=dict(type="int", default=1048576),
            paths=dict(type="list", elements="path", default=[]),
            globs=dict(type="list", elements="str", default=[]),
            commands=dict(type="list", elements="str", default=[]),
            services=dict(type="list", elements="str", default=[]),
            python_modules=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    systemctl = shutil.which("systemctl") if params["services"] else None
    module.exit_json(
        changed=False,
        files={path: read_file(module, path) for path in params["files"]},
        paths={path: os.path.exists(path) for path in params["paths"]},
        globs={pattern: sorted(glob.glob(pattern)) for pattern in params["globs"]},
        commands={name: shutil.which(name) for name in params["commands"]},
        services={unit: unit_state(module, systemctl, unit) for unit in params["services"]},
        python_modules={name: can_import(name) for name in params["python_modules"]},
    )


if __name__ == "__main__":
    main()
