#!/usr/bin/python
# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: docker_daemon_config
short_description: Merge settings into Docker's daemon.json without clobbering it
version_added: 0.1.0
description:
  - Merges the given settings into the Docker daemon configuration file (C(/etc/docker/daemon.json) by default)
    and keeps every key it was not asked about, for example a C(storage-driver) or C(log-opts) set by someone else.
  - Dicts merge key by key, recursively, so a C(runtimes.nvidia) dict in O(settings) adds the C(nvidia) runtime and keeps the
    other runtimes and any other key of an existing C(nvidia) entry (such as C(args) written by C(nvidia-ctk)).
  - Scalars (strings, numbers, booleans, null) are set to the given value. Lists are replaced or extended,
    see O(list_merge). Keys listed in O(unset) are removed first, then O(settings) is merged.
  - The file changes only when the parsed JSON changes; formatting alone never counts as a change. The new file is
    written to a temporary file next to it, optionally validated, and moved into place atomically, keeping the
    existing file's mode and owner. A missing file (and missing parent directory) is created with mode C(0644).
  - When the existing file is not a JSON object, the module fails and leaves the file untouched. An empty file is
    read as an empty object, as dockerd reads it.
  - The module does not restart Docker; notify a handler on RV(ignore:changed).
author:
  - sparkfleet contributors (!UNKNOWN)
extends_documentation_fragment:
  - sparkfleet.trtllm._attributes
  - sparkfleet.trtllm._attributes.actiongroup_trtllm
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the parsed JSON before and after, both printed with a 2-space indent.
  idempotent:
    support: full
options:
  path:
    description: Path of the Docker daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description:
      - Keys to set, as a dict in daemon.json's own shape, for example a C(runtimes) dict holding a C(nvidia) dict
        with C(path) set to C(nvidia-container-runtime).
      - Dicts merge recursively into existing dicts; other values replace existing ones; lists follow O(list_merge).
    type: dict
    default: {}
  unset:
    description:
      - Keys to remove before O(settings) is merged, as top-level names (V(default-runtime)) or dotted paths into
        nested dicts (V(runtimes.nvidia)). A name that exists literally as a top-level key is removed as such.
      - Keys that are absent are ignored.
    type: list
    elements: str
    default: []
  list_merge:
    description:
      - How a list in O(settings) combines with an existing list under the same key.
      - V(replace) sets the list to exactly the given items.
      - V(append_unique) keeps the existing items in their order and appends the given items that are not in it yet.
      - A list that replaces a non-list value, or a key that did not exist, is always set as given.
    type: str
    choices: [replace, append_unique]
    default: replace
  known_runtimes:
    description:
      - Runtime names dockerd knows from elsewhere than the file, for example C(--add-runtime) flags of a systemd
        drop-in.
      - When O(settings) sets C(default-runtime), the module fails (file untouched) unless that runtime is a
        built-in one (C(runc), C(io.containerd.runc.v2)), is defined under C(runtimes) in the resulting file, or is
        listed here, because dockerd would not start.
    type: list
    elements: str
    default: []
  backup:
    description: Before changing an existing file, copy it to a timestamped backup next to it.
    type: bool
    default: true
  report_daemon:
    description:
      - Also ask the running Docker daemon (C(docker info)) which runtimes it lists and which one is its default, and
        return them in RV(daemon). A role that checks the runtime after configuring it saves a module call on every
        run where the file does not change (when it changes, the daemon must be restarted and asked again).
      - The answer is read before any change this module makes; dockerd reads daemon.json only when it starts.
      - A daemon that does not answer (or no C(docker) command) does not fail the module; RV(daemon) is then null and
        RV(daemon_error) says why.
    type: bool
    default: false
  validate:
    description:
      - Command that validates the new file before it replaces the old one; V(%s) is replaced by the temporary file's
        path, for example V(dockerd --validate --config-file %s) (Docker 23 and later).
      - When the command fails, the module fails and the file is left untouched.
    type: str
notes:
  - Keys set here must not also be given as dockerd command-line flags (for example in a systemd drop-in such as
    DGX OS's C(docker-override.conf)), because dockerd refuses to start when a directive is set in both places.
seealso:
  - name: Docker daemon configuration file
    description: Every key daemon.json accepts.
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
"""

EXAMPLES = r"""
- name: Register the NVIDIA runtime and keep every other daemon.json key
  sparkfleet.trtllm.docker_daemon_config:
    settings:
      runtimes:
        nvidia:
          path: nvidia-container-runtime
  notify: Restart Docker

- name: Make nvidia the default runtime and advertise the GPU to Swarm
  sparkfleet.trtllm.docker_daemon_config:
    settings:
      default-runtime: nvidia
      runtimes:
        nvidia:
          path: nvidia-container-runtime
      node-generic-resources:
        - NVIDIA_GPU=GPU-3f1b0a9e-0000-0000-0000-000000000000
    list_merge: append_unique

- name: Stop making nvidia the default runtime
  sparkfleet.trtllm.docker_daemon_config:
    unset:
      - default-runtime
"""

RETURN = r"""
path:
  description: Path of the configuration file.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
config:
  description: The configuration after the merge (what the file holds, or would hold in check mode).
  returned: success
  type: dict
  sample: {"storage-driver": "vfs", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}
previous_config:
  description: The configuration read before the merge (empty when the file did not exist).
  returned: success
  type: dict
  sample: {"storage-driver": "vfs"}
created:
  description: Whether the file did not exist before (and was, or in check mode would be, created).
  returned: success
  type: bool
  sample: false
backup_file:
  description: Path of the timestamped backup of the previous file.
  returned: when the file changed, O(backup) is true, the file existed and not in check mode
  type: str
  sample: /etc/docker/daemon.json.12345.2026-01-02@10:11:12~
daemon:
  description: What the running Docker daemon reports, read before any change (null when it did not answer).
  returned: when O(report_daemon) is true
  type: dict
  sample: {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}, "runc": {"path": "runc"}}, "default_runtime": "runc"}
  contains:
    runtimes:
      description: The runtimes C(docker info) lists, by name.
      type: dict
    default_runtime:
      description: The daemon's default runtime.
      type: str
daemon_error:
  description: Why RV(daemon) is null.
  returned: when O(report_daemon) is true and the daemon did not answer
  type: str
  sample: "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._json_merge import (
    LIST_MERGE_MODES,
    JsonObjectError,
    deep_merge,
    dump_json,
    load_json_object,
    unset_keys,
)

BUILTIN_RUNTIMES = ("runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux")


def read_existing(module: AnsibleModule, path: str) -> tuple[dict, bool]:
    """Return (parsed config, existed). Fails the module, file untouched, when it cannot be used."""
    if not os.path.exists(path):
        return {}, False
    if os.path.isdir(path):
        module.fail_json(msg=f"{path} is a directory; give the path of the daemon.json file", path=path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        module.fail_json(msg=f"Cannot read {path}: {to_native(exc)}", path=path)
    try:
        return load_json_object(text, source=path), True
    except JsonObjectError as exc:
        module.fail_json(
            msg=f"{exc}. The file was left untouched: fix it (dockerd cannot start with it either) "
                f"or move it away, then run again.",
            path=path,
        )
    return {}, True  # not reached: fail_json exits


def check_default_runtime(module: AnsibleModule, path: str, after: dict) -> None:
    """Refuse a default-runtime that dockerd would not know."""
    wanted = module.params["settings"].get("default-runtime")
    if wanted is None:
        return
    runtimes = after.get("runtimes")
    defined = set(runtimes) if isinstance(runtimes, dict) else set()
    known = defined | set(BUILTIN_RUNTIMES) | set(module.params["known_runtimes"])
    if wanted not in known:
        module.fail_json(
            msg=f"settings.default-runtime is {wanted!r} but no runtime of that name is defined under "
                f"'runtimes' in {path} nor listed in known_runtimes; dockerd would not start. "
                f"Add settings.runtimes.{wanted} (for example path: nvidia-container-runtime).",
            path=path,
        )


DAEMON_FORMAT = '{"runtimes": {{json .Runtimes}}, "default_runtime": {{json .DefaultRuntime}}}'


def query_daemon(module: AnsibleModule) -> tuple[dict | None, str | None]:
    """(what `docker info` reports, None) or (None, why not)."""
    docker = module.get_bin_path("docker")
    if docker is None:
        return None, "no docker command on PATH"
    rc, out, err = module.run_command([docker, "info", "--format", DAEMON_FORMAT])
    if rc != 0:
        return None, (err.strip() or out.strip() or "docker info failed with rc=%d" % rc)[:2000]
    try:
        answer = json.loads(out)
    except ValueError:
        return None, "docker info printed no JSON: %s" % out.strip()[:2000]
    if not isinstance(answer, dict) or not isinstance(answer.get("runtimes"), dict):
        return None, "docker info lists no runtimes: %s" % out.strip()[:2000]
    return answer, None


def write_config(module: AnsibleModule, path: str, text: str, existed: bool) -> str | None:
    """Write ``text`` atomically to ``path``; return the backup path (or None)."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, mode=0o755)
        except OSError as exc:
            module.fail_json(msg=f"Cannot create the directory {directory}: {to_native(exc)}", path=path)
    fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        validate = module.params["validate"]
        if validate:
            if "%s" not in validate:
                module.fail_json(msg=f"validate must contain %s (the temporary file's path), got: {validate}",
                                 path=path)
            rc, out, err = module.run_command(validate % tmp_path)
            if rc != 0:
                module.fail_json(msg=f"The new configuration failed validation ({validate % tmp_path}, rc={rc}); "
                                     f"{path} was left untouched.", rc=rc, stdout=out, stderr=err, path=path)
        backup_file = None
        if existed and module.params["backup"]:
            backup_file = module.backup_local(path)
        if not existed:
            os.chmod(tmp_path, 0o644)
        module.atomic_move(tmp_path, path)
        return backup_file
    finally:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/docker/daemon.json"),
            settings=dict(type="dict", default={}),
            unset=dict(type="list", elements="str", default=[]),
            list_merge=dict(type="str", choices=list(LIST_MERGE_MODES), default="replace"),
            known_runtimes=dict(type="list", elements="str", default=[]),
            backup=dict(type="bool", default=True),
            validate=dict(type="str"),
            report_daemon=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    before, existed = read_existing(module, path)
    after = deep_merge(unset_keys(before, module.params["unset"]), module.params["settings"],
                       module.params["list_merge"])
    check_default_runtime(module, path, after)

    changed = before != after
    result = {
        "changed": changed,
        "path": path,
        "config": after,
        "previous_config": before,
        "created": changed and not existed,
    }
    if module.params["report_daemon"]:
        result["daemon"], error = query_daemon(module)
        if error:
            result["daemon_error"] = error
    if module._diff:
        result["diff"] = {
            "before_header": path if existed else f"{path} (absent)",
            "after_header": path,
            "before": dump_json(before) if existed else "",
            "after": dump_json(after),
        }
    if changed and not module.check_mode:
        backup_file = write_config(module, path, dump_json(after), existed)
        if backup_file:
            result["backup_file"] = backup_file
    module.exit_json(**result)


if __name__ == "__main__":
    main()
