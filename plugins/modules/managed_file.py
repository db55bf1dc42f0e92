#!/usr/bin/python
# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: managed_file
short_description: Write a small text file with its owner, group and mode, creating its folder, in one module call
version_added: 0.1.0
author:
  - sparkfleet contributors (!UNKNOWN)
description:
  - Makes O(path) hold exactly O(content) with O(owner), O(group) and O(mode), and its folder exist with
    O(directory_mode); changed only when the content, an attribute or the folder had to change.
  - One module call on the host. M(ansible.builtin.copy) and M(ansible.builtin.template) with the same effect cost
    two module calls (C(stat), then C(file) or C(copy)) and, through their action plugins, up to five SSH round trips
    per task even when nothing changes; a C(file) task for the folder adds one more. The collection's roles write
    their deployment state files and small configuration files with this module (docs/performance.md).
  - The new content is written to a temporary file in the same folder and moved into place atomically.
  - Missing folders on the way to O(path) are created with O(directory_mode), O(owner) and O(group), as
    M(ansible.builtin.file) with C(state=directory) would; the attributes of the direct parent folder are also
    corrected when it exists. Other existing folders are left as they are.
  - For file contents that render a template, pass C(lookup('ansible.builtin.template', ...)) as O(content).
extends_documentation_fragment:
  - sparkfleet.trtllm._attributes
  - sparkfleet.trtllm._attributes.actiongroup_trtllm
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the file's text before and after.
  idempotent:
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  path:
    description: The file to write.
    type: path
    required: true
  content:
    description: The exact text the file must hold (written as UTF-8).
    type: str
    required: true
  owner:
    description: Owner of the file (and of the folders it creates); unset keeps the current one (or the caller's).
    type: str
  group:
    description: Group of the file (and of the folders it creates); unset keeps the current one (or the caller's).
    type: str
  mode:
    description: Permission bits of the file, as an octal string.
    type: str
    default: "0644"
  directory_mode:
    description: Permission bits of the direct parent folder and of any folder the module creates, as an octal string.
    type: str
    default: "0755"
seealso:
  - module: ansible.builtin.copy
  - module: sparkfleet.trtllm.host_state_info
"""

EXAMPLES = r"""
- name: Record the deployment state (folder 0700, file 0600, root only)
  sparkfleet.trtllm.managed_file:
    path: /var/lib/sparkfleet/state/images.json
    content: "{{ {'images': {}} | to_nice_json(indent=2) }}\n"
    owner: root
    group: root
    mode: "0600"
    directory_mode: "0700"

- name: Write a configuration file from a template
  sparkfleet.trtllm.managed_file:
    path: /etc/sparkfleet/trtllm/sparkfleet-trtllm-llm.yml
    content: "{{ lookup('ansible.builtin.template', 'extra_llm_api_options.yml.j2') }}"
    owner: root
    group: root
    mode: "0644"
"""

RETURN = r"""
path:
  description: The file's path.
  returned: always
  type: str
  sample: /var/lib/sparkfleet/state/images.json
content_changed:
  description: Whether the file's content was (or, in check mode, would be) written.
  returned: success
  type: bool
  sample: false
created:
  description: Whether the file did not exist before.
  returned: success
  type: bool
  sample: false
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native


def _attributes(module: AnsibleModule, path: str, mode: str) -> dict:
    return {"path": path, "owner": module.params["owner"], "group": module.params["group"], "mode": mode,
            "attributes": None, "secontext": None}


def ensure_folders(module: AnsibleModule, directory: str) -> bool:
    """Create the missing folders down to ``directory``; fix the attributes of ``directory``. Return changed."""
    changed = False
    missing = []
    current = directory
    while current and not os.path.isdir(current):
        if os.path.lexists(current):
            module.fail_json(msg=f"{current} exists and is not a folder", path=module.params["path"])
        missing.append(current)
        current = os.path.dirname(current)
    for folder in reversed(missing):
        changed = True
        if module.check_mode:
            continue
        try:
            os.mkdir(folder)
        except OSError as exc:
            module.fail_json(msg=f"Cannot create the folder {folder}: {to_native(exc)}", path=module.params["path"])
        module.set_fs_attributes_if_different(_attributes(module, folder, module.params["directory_mode"]), False)
    if not missing:
        changed = module.set_fs_attributes_if_different(
            _attributes(module, directory, module.params["directory_mode"]), False)
    return changed


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            content=dict(type="str", required=True),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="str", default="0644"),
            directory_mode=dict(type="str", default="0755"),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    wanted = to_bytes(module.params["content"], errors="surrogate_or_strict")
    for key in ("mode", "directory_mode"):
        value = module.params[key]
        if not value.isdigit() or any(c not in "01234567" for c in value) or len(value) > 4:
            module.fail_json(msg=f"{key} must be an octal string such as 0644, got {value!r}", path=path)
    if os.path.isdir(path):
        module.fail_json(msg=f"{path} is a folder; give the path of a file", path=path)

    directory = os.path.dirname(path) or "."
    changed = ensure_folders(module, directory)

    existed = os.path.exists(path)
    before = b""
    if existed:
        try:
            with open(path, "rb") as handle:
                before = handle.read()
        except OSError as exc:
            module.fail_json(msg=f"Cannot read {path}: {to_native(exc)}", path=path)
    content_changed = before != wanted or not existed
    result = {"path": path, "content_changed": content_changed, "created": not existed}
    if module._diff:
        result["diff"] = {"before_header": path if existed else f"{path} (absent)", "after_header": path,
                          "before": to_native(before, errors="surrogate_then_replace"),
                          "after": module.params["content"]}

    if content_changed:
        changed = True
        if not module.check_mode:
            fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(wanted)
                module.set_fs_attributes_if_different(_attributes(module, tmp_path, module.params["mode"]), False)
                module.atomic_move(tmp_path, path)
            finally:
                if os.path.exists(tmp_path):
                    os.unlink(tmp_path)
    if os.path.exists(path):  # in check mode a file that does not exist yet has no attributes to compare
        changed = module.set_fs_attributes_if_different(_attributes(module, path, module.params["mode"]), changed)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
