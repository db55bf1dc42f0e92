#!/usr/bin/python
# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: preflight_info
short_description: Run every host-local readiness check of a DGX Spark in one call
version_added: 0.1.0
description:
  - Tells whether a host is ready to serve the chosen models with TensorRT-LLM, before anything is changed.
  - One call runs every check (one module round trip per host), namely NVIDIA driver and CUDA driver versions, GPU
    architecture against each model's quantization, memory (GPU memory, or unified memory from C(/proc/meminfo) on
    GB10), models that need more Sparks than the host's group has, free disk at the Hugging Face cache, Docker engine
    and its C(nvidia) runtime, serving ports, clock synchronisation, Hub reachability and token access, and the
    ConnectX fabric (interfaces up with an address and MTU, peers answering).
  - For a multi-node group (O(group)), the hosts are compared with each other, namely group size against
    O(tp_size), the same image and image ID, the same model and cached model revision, one shared ConnectX subnet
    and the same MTU.
  - Each check returns V(pass), V(warn), V(fail) or V(skip) with a one-line fix hint. The module never fails because a
    check failed; the C(sparkfleet.trtllm.preflight) role decides with C(preflight_fail_on).
  - The module changes nothing on the host. The Hub token is never returned or printed.
author:
  - sparkfleet contributors (!UNKNOWN)
extends_documentation_fragment:
  - sparkfleet.trtllm._attributes
  - sparkfleet.trtllm._attributes.actiongroup_trtllm
  - sparkfleet.trtllm._attributes.info_module
  - sparkfleet.trtllm._attributes.idempotent_not_modify_state
options:
  models:
    description:
      - The models the host will serve. Each entry has a C(model) key (Hugging Face handle) and optional overrides
        C(kind), C(quantization), C(nodes), C(download_gb), C(memory_gb), C(name), C(serve).
      - A model outside the support matrix needs at least C(kind), C(download_gb) and C(memory_gb).
    type: list
    elements: dict
    required: true
  group_size:
    description: Number of Sparks in the host's serving group (1 for a single host).
    type: int
    default: 1
  min_driver_version:
    description: Minimum NVIDIA driver version.
    type: str
    default: "580"
  min_cuda_version:
    description: Minimum CUDA version the driver must support.
    type: str
    default: "13.0"
  gpu_source:
    description: Where to read GPU facts, as for M(sparkfleet.trtllm.gpu_info).
    type: str
    choices: [auto, nvml, nvidia_smi]
    default: auto
  memory_headroom_fraction:
    description: Warn when the models need more than this fraction of the memory capacity.
    type: float
    default: 0.9
  hf_home:
    description: Hugging Face cache root on the host (its C(hub/) holds the models). Need not exist yet.
    type: path
    default: /var/lib/sparkfleet/huggingface
  disk_margin_gb:
    description: Free space in GB required on top of the models' download size.
    type: float
    default: 10
  docker_required:
    description: Whether a missing, stopped or too old Docker engine is a V(fail) (else a V(warn)).
    type: bool
    default: true
  min_docker_version:
    description: Minimum Docker Engine version.
    type: str
    default: "20.10"
  ports:
    description: TCP ports the serving containers will listen on; each must be free or held by a container carrying O(managed_label).
    type: list
    elements: int
    default: []
  managed_label:
    description: Label (C(key=value)) of the containers the collection manages.
    type: str
    default: sparkfleet.managed=true
  check_clock:
    description: Whether to check clock synchronisation.
    type: bool
    default: true
  hub_check:
    description: Whether to contact the Hub. When V(false) (offline), only warn about models missing from the cache.
    type: bool
    default: true
  hub_endpoint:
    description: Hugging Face Hub endpoint.
    type: str
    default: https://huggingface.co
  hub_token:
    description: Hugging Face token used for the metadata request. Never printed.
    type: str
  hub_revision:
    description: Revision whose metadata is requested.
    type: str
    default: main
  hub_timeout:
    description: Timeout in seconds of each Hub request.
    type: int
    default: 10
  cx7_interfaces:
    description: ConnectX interfaces that must be up with an IPv4 address (multi-node groups).
    type: list
    elements: str
    default: []
  cx7_mtu:
    description: Expected MTU of the ConnectX interfaces (V(0) = report only).
    type: int
    default: 0
  peers:
    description: Addresses of the group's other Sparks on the ConnectX fabric; each must answer TCP on O(peer_port).
    type: list
    elements: str
    default: []
  peer_port:
    description: TCP port probed on the peers (an accepted or refused connection both count as an answer).
    type: int
    default: 22
  peer_timeout:
    description: Seconds to wait for each peer.
    type: float
    default: 3
  group:
    description:
      - The hosts of the host's multi-node group in rank order, as gathered by the C(sparkfleet.trtllm.preflight) role.
        Each entry has C(host), C(image), C(image_id) (empty when not pulled yet), C(model), C(revision), C(commit)
        (empty when not cached yet) and C(ip_addr_json) (the host's C(ip -j -4 addr show) output).
      - Empty (the default) skips the V(multinode) check; it is not returned then.
    type: list
    elements: dict
    default: []
  tp_size:
    description: Tensor-parallel size the group will serve with (V(0) = the group size).
    type: int
    default: 0
requirements:
  - C(ip) (iproute2) when O(cx7_interfaces) is set.
notes:
  - Ports are matched to their listener through C(/proc/net/tcp) and C(/proc/<pid>/fd) (what C(ss -ltnp) reads), and
    to containers through C(docker ps) / C(docker inspect) (published ports, or the listener's process tree for
    host-network containers).
"""

EXAMPLES = r"""
- name: Check that the host can serve Qwen3-8B NVFP4 on 8355
  sparkfleet.trtllm.preflight_info:
    models:
      - model: nvidia/Qwen3-8B-FP4
    ports: [8355]
    hub_token: "{{ sparkfleet_hf_token | default(omit) }}"
  register: preflight

- name: Check a model outside the matrix, offline
  sparkfleet.trtllm.preflight_info:
    models:
      - model: acme/tiny-llm
        kind: llm
        download_gb: 2
        memory_gb: 4
    hub_check: false
"""

RETURN = r"""
status:
  description: Worst status over all checks (V(pass), V(warn) or V(fail)).
  returned: always
  type: str
  sample: pass
summary:
  description: Number of checks per status.
  returned: always
  type: dict
  sample: {pass: 10, warn: 1, fail: 0, skip: 1}
checks:
  description: One entry per check.
  returned: always
  type: list
  elements: dict
  contains:
    check:
      description: >-
        Check name: V(gpu_driver), V(cuda_driver), V(gpu_architecture), V(memory), V(model_nodes), V(disk), V(docker),
        V(docker_nvidia_runtime), V(ports), V(clock), V(hub), V(connectx), and V(multinode) when O(group) is set.
      type: str
    status:
      description: V(pass), V(warn), V(fail) or V(skip).
      type: str
    value:
      description: The measured value, short.
      type: str
    message:
      description: What was found.
      type: str
    hint:
      description: One line saying how to fix a V(warn) or V(fail) (empty otherwise).
      type: str
  sample:
    - check: memory
      status: pass
      value: need 10.0 GB of 128.5 GB
      message: nvidia/Qwen3-8B-FP4 (10 GB) fit in 128.5 GB of unified memory (/proc/meminfo MemTotal)
      hint: ""
models:
  description: The models as resolved against the support matrix.
  returned: always
  type: list
  elements: dict
  sample: [{model: nvidia/Qwen3-8B-FP4, kind: llm, quantization: NVFP4, nodes: 1, download_gb: 6, memory_gb: 10, in_matrix: true}]
gpu_info:
  description: GPU facts as M(sparkfleet.trtllm.gpu_info) returns them (empty when they could not be read).
  returned: always
  type: dict
  sample: {gpu_count: 1, unified_memory: true, driver_version: 580.95.05}
duration_seconds:
  description: Time the checks took on the host.
  returned: always
  type: float
  sample: 0.42
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._model_matrix import ModelMatrixError, resolve_model
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._nvidia import NvidiaError, gather
from ansible_collections.sparkfleet.trtllm.plugins.module_utils import _preflight as pf

OPT_DIRS = ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/sbin", "/bin"]


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            models=dict(type="list", elements="dict", required=True),
            group_size=dict(type="int", default=1),
            min_driver_version=dict(type="str", default="580"),
            min_cuda_version=dict(type="str", default="13.0"),
            gpu_source=dict(type="str", choices=["auto", "nvml", "nvidia_smi"], default="auto"),
            memory_headroom_fraction=dict(type="float", default=0.9),
            hf_home=dict(type="path", default="/var/lib/sparkfleet/huggingface"),
            disk_margin_gb=dict(type="float", default=10),
            docker_required=dict(type="bool", default=True),
            min_docker_version=dict(type="str", default="20.10"),
            ports=dict(type="list", elements="int", default=[]),
            managed_label=dict(type="str", default="sparkfleet.managed=true"),
            check_clock=dict(type="bool", default=True),
            hub_check=dict(type="bool", default=True),
            hub_endpoint=dict(type="str", default="https://huggingface.co"),
            hub_token=dict(type="str", no_log=True),
            hub_revision=dict(type="str", default="main"),
            hub_timeout=dict(type="int", default=10),
            cx7_interfaces=dict(type="list", elements="str", default=[]),
            cx7_mtu=dict(type="int", default=0),
            peers=dict(type="list", elements="str", default=[]),
            peer_port=dict(type="int", default=22),
            peer_timeout=dict(type="float", default=3),
            group=dict(type="list", elements="dict", default=[]),
            tp_size=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    started = time.monotonic()
    try:
        models = [resolve_model(m.get("model"), m, "models[%d]" % i) for i, m in enumerate(p["models"])]
    except ModelMatrixError as exc:
        module.fail_json(msg=str(exc))
    if not models:
        module.fail_json(msg="models: give at least one model (sparkfleet_model or sparkfleet_models)")

    def run(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C"})

    def which(name):
        return module.get_bin_path(name, opt_dirs=OPT_DIRS)

    gpu, gpu_error = {}, None
    nvidia_smi = which("nvidia-smi")
    try:
        gpu = gather(run, nvidia_smi=nvidia_smi, source=p["gpu_source"])
    except ImportError:
        gpu_error = NvidiaError("no_driver", "gpu_source=nvml but nvidia-ml-py (pynvml) is not installed for %s." % module._name)
    except NvidiaError as exc:
        gpu_error = exc

    checks = [
        pf.check_driver(gpu, gpu_error, p["min_driver_version"]),
        pf.check_cuda(gpu, gpu_error, p["min_cuda_version"]),
        pf.check_architecture(gpu, gpu_error, models),
        pf.check_memory(gpu, gpu_error, models, p["memory_headroom_fraction"]),
        pf.check_nodes(models, p["group_size"]),
        pf.check_disk(p["hf_home"], models, p["disk_margin_gb"]),
    ]
    docker = which("docker")
    state = pf.docker_state(run, docker)
    checks.append(pf.check_docker(state, p["min_docker_version"], p["docker_required"]))
    checks.append(pf.check_nvidia_runtime(state))
    checks.append(pf.check_ports(p["ports"], run, docker if state["running"] else None, p["managed_label"]))
    hub, skew = pf.check_hub(p["hub_endpoint"], models, p["hub_token"], p["hub_revision"], p["hub_timeout"], not p["hub_check"], p["hf_home"])
    if p["check_clock"]:
        checks.append(pf.check_clock(run, which("timedatectl"), skew))
    checks.append(hub)
    checks.append(pf.check_fabric(run, which("ip"), p["cx7_interfaces"], p["peers"], p["cx7_mtu"], p["peer_port"], p["peer_timeout"]))
    if p["group"]:
        checks.append(pf.check_multinode(p["group"], p["tp_size"], p["cx7_interfaces"]))

    summary = {s: sum(1 for c in checks if c["status"] == s) for s in pf.STATUSES}
    module.exit_json(
        changed=False,
        status=pf.worst(c["status"] for c in checks if c["status"] != "skip") if any(c["status"] != "skip" for c in checks) else "pass",
        summary=summary,
        checks=checks,
        models=models,
        gpu_info=gpu,
        duration_seconds=round(time.monotonic() - started, 3),
    )


if __name__ == "__main__":
    main()
