#!/usr/bin/python
# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# The work is done by the action plugin plugins/action/local_files.py, on the controller; this file documents it.

DOCUMENTATION = r"""
module: local_files
short_description: Write text files on the controller (reports) without starting a module process
version_added: 0.1.0
author:
  - sparkfleet contributors (!UNKNOWN)
description:
  - Writes a few text files into one folder on the controller, for example the fleet report that the C(preflight)
    role leaves in C(reports/) on every run. The folder is created when missing.
  - An action plugin that runs entirely inside the controller's worker process, whatever the task's host; it never
    connects to a host. Reason for not using C(ansible.builtin.copy)/C(ansible.builtin.template) with
    C(delegate_to=localhost) - each of those starts two to three Python module processes on the controller per file
    (stat, copy, file), which made the report the largest fixed cost of a no-change C(site.yml) run
    (docs/performance.md, "Fleet speed").
  - Each file is written to a temporary file in the same folder and renamed into place, so a reader never sees half a
    report. A file whose content and mode are already as asked is left alone.
extends_documentation_fragment:
  - sparkfleet.trtllm._attributes
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the
      controller.
    support: full
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
    details:
      - The files are written on the controller, whatever host the task runs for.
options:
  dest:
    description:
      - Folder on the controller that receives the files; created (with its parents) when missing. A relative path is
        taken from the current working directory of C(ansible-playbook).
    type: path
    required: true
  files:
    description:
      - The files to write in O(dest).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - File name inside O(dest) (no folder part).
        type: str
        required: true
      content:
        description:
          - Text to write (UTF-8). Data that is not a string (a list or a dictionary) is written as indented JSON.
        type: raw
        required: true
  mode:
    description:
      - Permissions of the written files.
    type: str
    default: "0644"
  directory_mode:
    description:
      - Permissions of O(dest) when it is created.
    type: str
    default: "0755"
seealso:
  - module: ansible.builtin.copy
"""

EXAMPLES = r"""
- name: Write the fleet report as JSON and Markdown on the controller
  sparkfleet.trtllm.local_files:
    dest: "{{ playbook_dir }}/../reports"
    files:
      - name: preflight.json
        content: "{{ lookup('ansible.builtin.template', 'report.json.j2') }}"
      - name: preflight.md
        content: "{{ lookup('ansible.builtin.template', 'report.md.j2') }}"
  run_once: true
"""

RETURN = r"""
dest:
  description: The absolute path of O(dest).
  returned: always
  type: str
  sample: /home/ops/sparkfleet/reports
files:
  description: The absolute path of every file of O(files), in order.
  returned: always
  type: list
  elements: str
  sample: [/home/ops/sparkfleet/reports/preflight.json]
written:
  description: The files whose content or mode changed (in check mode, would change).
  returned: always
  type: list
  elements: str
  sample: [/home/ops/sparkfleet/reports/preflight.json]
"""
