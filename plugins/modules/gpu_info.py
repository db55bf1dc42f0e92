#!/usr/bin/python
# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_info
short_description: Report the NVIDIA GPUs of a host from NVML or nvidia-smi
version_added: 0.1.0
description:
  - Reads the host's NVIDIA GPUs through NVML (the C(pynvml) module of the C(nvidia-ml-py) package) when it is importable
    by the module's Python, else through C(nvidia-smi) (one C(--query-gpu) CSV call and one C(-q -x) XML call).
  - Returns per GPU the index, name, UUID, PCI bus id, compute capability, architecture name, driver and CUDA driver
    versions, memory total/used/free, persistence, ECC and MIG modes and the running GPU processes.
  - On GPUs that share the host memory (DGX Spark GB10) NVML reports the memory fields as not supported; the module then
    takes the capacity from C(/proc/meminfo) and sets RV(gpu_info.unified_memory=true).
  - GPUs are never counted with C(lspci), which over-counts NVIDIA PCI bridges on GB10.
  - Fails with a distinct message and RV(error.kind) when the driver is missing or not loaded (C(no_driver)), when no GPU
    is found (C(no_gpu)) and when the kernel module and NVML library versions differ (C(driver_mismatch)).
author:
  - sparkfleet contributors (!UNKNOWN)
extends_documentation_fragment:
  - sparkfleet.trtllm._attributes
  - sparkfleet.trtllm._attributes.actiongroup_trtllm
  - sparkfleet.trtllm._attributes.info_module
  - sparkfleet.trtllm._attributes.idempotent_not_modify_state
options:
  source:
    description:
      - Where to read the facts from.
      - V(auto) uses NVML when C(pynvml) is importable and falls back to C(nvidia-smi).
    type: str
    choices: [auto, nvml, nvidia_smi]
    default: auto
  nvidia_smi_path:
    description:
      - Path of the C(nvidia-smi) binary. By default it is searched on E(PATH) and in C(/usr/bin), C(/usr/local/bin).
    type: path
requirements:
  - An NVIDIA driver with C(nvidia-smi), or the C(nvidia-ml-py) Python package (module C(pynvml)) for O(source=nvml).
"""

EXAMPLES = r"""
- name: Read the GPUs of every Spark
  sparkfleet.trtllm.gpu_info:
  register: gpu

- name: Show the architecture and memory of GPU 0
  ansible.builtin.debug:
    msg: "{{ gpu.gpu_info.gpus[0].architecture }} {{ gpu.gpu_info.gpus[0].memory_total_bytes }}"

- name: Read through nvidia-smi even when nvidia-ml-py is installed
  sparkfleet.trtllm.gpu_info:
    source: nvidia_smi
"""

RETURN = r"""
gpu_info:
  description: Host-level GPU facts.
  returned: success
  type: dict
  contains:
    source:
      description: Where the facts came from, V(nvml) or V(nvidia-smi).
      type: str
      sample: nvidia-smi
    gpu_count:
      description: Number of GPUs the driver reports.
      type: int
      sample: 1
    driver_version:
      description: NVIDIA driver version.
      type: str
      sample: 580.95.05
    cuda_driver_version:
      description: Highest CUDA version the driver supports.
      type: str
      sample: "13.0"
    unified_memory:
      description: Whether any GPU shares the host memory (its memory figures come from C(/proc/meminfo)).
      type: bool
      sample: true
    host_memory_total_bytes:
      description: C(MemTotal) of C(/proc/meminfo) in bytes.
      type: int
      sample: 128502599680
    host_memory_available_bytes:
      description: C(MemAvailable) of C(/proc/meminfo) in bytes.
      type: int
      sample: 119185227776
    gpus:
      description: One entry per GPU.
      type: list
      elements: dict
      sample:
        - index: 0
          name: NVIDIA GB10
          uuid: GPU-5f2a9c1e-7d43-4b8e-9a61-3c0d2e8f4b17
          pci_bus_id: 0000000F:01:00.0
          compute_capability: "12.1"
          architecture: Blackwell
          driver_version: 580.95.05
          cuda_driver_version: "13.0"
          memory_total_bytes: 128502599680
          memory_used_bytes: 9317371904
          memory_free_bytes: 119185227776
          memory_source: meminfo
          unified_memory: true
          persistence_mode: true
          ecc_mode: null
          mig_mode: null
          processes: []
error:
  description: Why reading the GPUs failed.
  returned: failure
  type: dict
  contains:
    kind:
      description: V(no_driver), V(no_gpu), V(driver_mismatch), V(nvml_error) or V(parse_error).
      type: str
      sample: driver_mismatch
    message:
      description: What went wrong.
      type: str
      sample: "NVIDIA driver/library version mismatch: the loaded kernel module does not match the NVML library."
    hint:
      description: What to do about it.
      type: str
      sample: "The NVIDIA kernel module and user-space library differ (usually after a driver upgrade without reboot): reboot the host."
    detail:
      description: The first line the tool printed, when there was one.
      type: str
      sample: "Failed to initialize NVML: Driver/library version mismatch"
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._nvidia import NvidiaError, gather


def find_nvidia_smi(module):
    path = module.params["nvidia_smi_path"]
    if path:
        return path if os.access(path, os.X_OK) else None
    return module.get_bin_path("nvidia-smi", opt_dirs=["/usr/bin", "/usr/local/bin", "/usr/local/nvidia/bin"])


def make_runner(module):
    def run(argv):
        rc, out, err = module.run_command(argv, environ_update={"LC_ALL": "C"})
        return rc, out, err

    return run


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            source=dict(type="str", choices=["auto", "nvml", "nvidia_smi"], default="auto"),
            nvidia_smi_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    try:
        facts = gather(make_runner(module), nvidia_smi=find_nvidia_smi(module), source=module.params["source"])
    except ImportError as exc:
        module.fail_json(msg=missing_required_lib("nvidia-ml-py"), exception=str(exc))
    except NvidiaError as exc:
        module.fail_json(msg="%s %s" % (exc.message, exc.hint), error=exc.as_dict())
    module.exit_json(changed=False, gpu_info=facts)


if __name__ == "__main__":
    main()
