# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of sparkfleet.trtllm.local_files: write text files on the controller, in the worker process.

Why not copy/template delegated to localhost: those start two to three Python module processes per file on the
controller (stat, copy, file); the preflight report alone cost about a second of controller CPU on every run."""

from __future__ import annotations

import json
import os
import stat
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.action import ActionBase

ARGUMENT_SPEC = dict(
    dest=dict(type="path", required=True),
    files=dict(type="list", elements="dict", required=True, options=dict(
        name=dict(type="str", required=True),
        content=dict(type="raw", required=True),
    )),
    mode=dict(type="str", default="0644"),
    directory_mode=dict(type="str", default="0755"),
)


def _octal(value: str, option: str) -> int:
    try:
        return int(str(value), 8)
    except ValueError as exc:
        raise AnsibleActionFail("%s must be an octal permission such as 0644, got %r" % (option, value)) from exc


def _text(content) -> str:
    if isinstance(content, (dict, list)):
        return json.dumps(content, indent=2, sort_keys=True) + "\n"
    return to_text(content)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # nothing runs on a host
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        dest = os.path.abspath(os.path.expanduser(args["dest"]))
        mode = _octal(args["mode"], "mode")
        dir_mode = _octal(args["directory_mode"], "directory_mode")
        check = bool(self._task.check_mode)
        if os.path.exists(dest) and not os.path.isdir(dest):
            raise AnsibleActionFail("dest %s exists and is not a folder: give a folder for the files" % dest)
        paths, written, diffs = [], [], []
        for entry in args["files"]:
            name = entry["name"]
            if not name or "/" in name or name in (".", ".."):
                raise AnsibleActionFail("files[].name must be a plain file name inside dest, got %r" % name)
            path = os.path.join(dest, name)
            data = to_bytes(_text(entry["content"]), errors="surrogate_or_strict")
            paths.append(path)
            try:
                with open(path, "rb") as handle:
                    before = handle.read()
                before_mode = stat.S_IMODE(os.stat(path).st_mode)
            except (FileNotFoundError, NotADirectoryError):  # not there yet (or dest is missing)
                before, before_mode = None, None
            except OSError as exc:
                raise AnsibleActionFail("cannot read %s: %s" % (path, exc.strerror)) from exc
            if before == data and before_mode == mode:
                continue
            written.append(path)
            if self._task.diff:
                diffs.append(dict(before_header=path, after_header=path, before=to_text(before or b""),
                                  after=to_text(data)))
            if check:
                continue
            try:
                os.makedirs(dest, mode=dir_mode, exist_ok=True)
                fd, tmp_path = tempfile.mkstemp(prefix="." + name + ".", dir=dest)
                try:
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(data)
                    os.chmod(tmp_path, mode)
                    os.replace(tmp_path, path)
                except BaseException:
                    os.unlink(tmp_path)
                    raise
            except OSError as exc:
                raise AnsibleActionFail("cannot write %s: %s (does the user running ansible-playbook own %s?)"
                                        % (path, exc.strerror, dest)) from exc
        result.update(changed=bool(written), dest=dest, files=paths, written=written)
        if diffs:
            result["diff"] = diffs
        return result
