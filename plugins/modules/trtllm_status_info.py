#!/usr/bin/python
# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: trtllm_status_info
short_description: Report every TensorRT-LLM endpoint a host serves - deployment, container, probe and GPU memory
version_added: 0.1.0
author:
  - sparkfleet contributors (!UNKNOWN)
description:
  - Gathers in one call everything the fleet status report shows for one host, so that a status run costs one
    module call per host.
  - Reads the deployment state files C(serving-*.json) that the C(trtllm_server) role writes into O(state_dir)
    (RV(instances[].deployed) is their C(current) record, RV(instances[].previous) their C(previous) one).
  - Lists the serving containers (label C(sparkfleet.role=trtllm_server)) and inspects them and their images with
    one C(docker inspect) call each, for the state, start time, uptime, restart count, image reference, image ID
    and repository digests actually running. A container without a state file and a state file without a container
    both appear.
  - With O(probe=true), asks each endpoint once how far it gets - C(GET /health) (V(live)), C(GET /v1/models) listing
    the model (V(ready)), a 1-token chat completion (V(serving)) - and reports the stage and the latency of the
    1-token request. Each probe takes at most O(probe_timeout_seconds) per request.
  - With O(gpu=true), reads the GPU memory in use (NVML or C(nvidia-smi), as M(sparkfleet.trtllm.gpu_info) does);
    a host without a readable GPU reports the reason in the C(error) key of RV(gpu) instead of failing.
  - The module only reads. It fails only when O(state_dir) cannot be read.
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
  state_dir:
    description:
      - Folder of the deployment state files (C(trtllm_server_state_dir) of the role).
    type: path
    default: /var/lib/sparkfleet/state
  probe:
    description:
      - Probe every endpoint (one health, one model list and one 1-token request).
    type: bool
    default: true
  probe_host:
    description:
      - Address the probes connect to; the endpoint's port comes from its state file or container label.
    type: str
    default: 127.0.0.1
  probe_timeout_seconds:
    description:
      - Time one probe request may take.
    type: float
    default: 10
  gpu:
    description:
      - Read the GPU memory in use.
    type: bool
    default: true
  nvidia_smi_path:
    description:
      - Path of C(nvidia-smi); searched on E(PATH) and in C(/usr/bin), C(/usr/local/bin) by default.
    type: path
requirements:
  - The C(docker) command line, for the container fields (without it they read V(unknown)).
seealso:
  - module: sparkfleet.trtllm.openai_probe
  - module: sparkfleet.trtllm.gpu_info
"""

EXAMPLES = r"""
- name: Read the serving status of every Spark
  sparkfleet.trtllm.trtllm_status_info:
  register: status

- name: Show the image each endpoint runs
  ansible.builtin.debug:
    msg: "{{ status.instances | map(attribute='image') | list }}"

- name: Read the deployments only, without load on the endpoints
  sparkfleet.trtllm.trtllm_status_info:
    probe: false
    gpu: false
"""

RETURN = r"""
checked_at:
  description: UTC time of the reading.
  returned: always
  type: str
  sample: "2026-11-27T10:58:02Z"
instances:
  description: One entry per served instance (state file or serving container), sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Instance name (C(llm), C(vlm) or the role's C(trtllm_server_name)).
      type: str
      sample: llm
    kind:
      description: V(llm) or V(vlm).
      type: str
      sample: llm
    model:
      description: Hugging Face handle served (state file, else container label).
      type: str
      sample: nvidia/Qwen3-8B-FP4
    revision:
      description: Revision asked for.
      type: str
      sample: main
    commit:
      description: Commit of the model the deployment resolved from the cache; V(null) when unknown.
      type: str
      sample: 0123456789abcdef0123456789abcdef01234567
    port:
      description: Serving port.
      type: int
      sample: 8355
    endpoint_url:
      description: OpenAI base URL of the endpoint as recorded by the deployment.
      type: str
      sample: http://172.28.34.11:8355/v1
    container:
      description: Container name.
      type: str
      sample: sparkfleet-trtllm-llm
    image:
      description: Image reference the container runs (else the recorded one).
      type: str
      sample: nvcr.io/nvidia/tensorrt-llm/release:spark-single-gpu-dev
    image_id:
      description: Image ID the container runs.
      type: str
      sample: sha256:5b0c...
    image_digest:
      description: First registry digest of that image (C(sha256:...)); V(null) for an image never pulled from a registry.
      type: str
      sample: sha256:9f1e...
    image_matches_deployment:
      description: Whether the running image ID is the one the deployment recorded; V(null) when either is unknown.
      type: bool
      sample: true
    container_state:
      description: Docker state (V(running), V(exited), V(restarting), ...), V(missing) or V(unknown).
      type: str
      sample: running
    started_at:
      description: When the container last started (UTC).
      type: str
      sample: "2026-11-27T10:40:12Z"
    uptime_seconds:
      description: Seconds since RV(instances[].started_at) while running; V(null) otherwise.
      type: float
      sample: 1070.2
    restart_count:
      description: Restarts Docker made by restart policy.
      type: int
      sample: 0
    exit_code:
      description: Exit code of the last run, when not running.
      type: int
      sample: 1
    deployed_at:
      description: When the deployment was recorded.
      type: str
      sample: "2026-11-27T10:40:15Z"
    deployed:
      description: The C(current) record of the state file (V(null) without one).
      type: dict
    previous:
      description: The C(previous) record of the state file (V(null) without one).
      type: dict
    probe:
      description: Probe result - stage (V(unreachable), V(live), V(ready), V(serving) or V(skipped)), latency_ms of the
        1-token request, the models listed and the error that stopped it.
      type: dict
      sample: {stage: serving, latency_ms: 41.2, models: [nvidia/Qwen3-8B-FP4], error: null}
    problems:
      description: What looks wrong (no container, container not running, image differs, probe short of serving).
      type: list
      elements: str
gpu:
  description: GPU memory in use, or V(error) when the GPUs could not be read; V(null) with O(gpu=false).
  returned: always
  type: dict
  sample:
    source: nvidia-smi
    name: NVIDIA GB10
    gpu_count: 1
    unified_memory: true
    memory_used_bytes: 9317371904
    memory_total_bytes: 128502599680
    processes_memory_bytes: 7516192768
    processes: [{pid: 4242, name: python3, used_memory_bytes: 7516192768}]
docker_error:
  description: Why the containers could not be read; V(null) when they could.
  returned: always
  type: str
  sample: null
"""

import datetime
import glob
import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._http import (
    HTTPTimeout,
    HTTPUnreachable,
    parse_base_url,
    request,
)
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._nvidia import NvidiaError, gather

ROLE_LABEL = "sparkfleet.role=trtllm_server"
_DOCKER_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_docker_time(value):
    """Docker's RFC 3339 time with nanoseconds, as an aware datetime; None for the zero time or garbage."""
    if not value or value.startswith("0001-01-01"):
        return None
    match = _DOCKER_TIME.match(value.strip())
    if not match:
        return None
    stamp, fraction, zone = match.groups()
    micro = int((fraction or ".0")[1:7].ljust(6, "0"))
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S").replace(microsecond=micro)
    if zone == "Z":
        offset = datetime.timedelta(0)
    else:
        sign = 1 if zone[0] == "+" else -1
        offset = sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return moment.replace(tzinfo=datetime.timezone(offset))


def _iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def read_states(state_dir):
    """{instance name: state document} of every serving-*.json; unreadable files become {"error": ...}."""
    states = {}
    for path in sorted(glob.glob(os.path.join(state_dir, "serving-*.json"))):
        name = os.path.basename(path)[len("serving-"):-len(".json")]
        try:
            with open(path, "r", encoding="utf-8") as handle:
                doc = json.load(handle)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            states[name] = doc
        except (OSError, ValueError) as exc:
            states[name] = {"error": "%s: %s" % (path, exc)}
    return states


class Docker:
    """The few docker CLI calls the report needs: one listing and one inspect per kind of object."""

    def __init__(self, module):
        self.module = module
        self.bin = module.get_bin_path("docker")
        self.error = None if self.bin else "the docker command line is not on the host"

    def _json(self, argv):
        rc, out, err = self.module.run_command([self.bin] + argv)
        if rc != 0:
            return None, (err or out).strip()
        try:
            return json.loads(out), None
        except ValueError:
            return None, "docker %s printed no JSON: %.200s" % (argv[0], out)

    def containers(self, names):
        """{name: inspect document} of the serving containers and of ``names`` (missing names are left out)."""
        if self.bin is None:
            return {}
        rc, out, err = self.module.run_command([self.bin, "ps", "-a", "-q", "--no-trunc", "--filter", "label=" + ROLE_LABEL])
        if rc != 0:
            self.error = "docker ps failed: %s" % (err or out).strip()
            return {}
        wanted = out.split() + sorted(set(names))
        if not wanted:
            return {}
        docs, error = self._json(["inspect", "--type", "container"] + wanted)
        if docs is None:
            # docker inspect fails as a whole when one name is missing: ask again for each one.
            docs = []
            for ident in wanted:
                one, _ignored = self._json(["inspect", "--type", "container", ident])
                docs.extend(one or [])
        return dict(((doc.get("Name") or "").lstrip("/"), doc) for doc in docs)

    def images(self, ids):
        if self.bin is None or not ids:
            return {}
        docs, _error = self._json(["image", "inspect"] + sorted(set(ids)))
        if docs is None:
            docs = []
            for ident in sorted(set(ids)):
                one, _ignored = self._json(["image", "inspect", ident])
                docs.extend(one or [])
        return dict((doc.get("Id"), doc) for doc in docs)


def probe_endpoint(host, port, model, timeout):
    """One pass over the stages of openai_probe: how far the endpoint gets now, and the 1-token latency."""
    result = {"stage": "unreachable", "latency_ms": None, "models": [], "error": None}
    try:
        base = parse_base_url("http://%s:%d" % ("[%s]" % host if ":" in host else host, int(port)))
    except (ValueError, TypeError) as exc:
        result["error"] = "no usable endpoint address: %s" % exc
        return result
    headers = {"User-Agent": "sparkfleet.trtllm-trtllm_status_info"}
    try:
        resp = request(base, "GET", "/health", timeout, headers=headers)
        if resp.status != 200:
            result["error"] = "GET /health answered HTTP %d" % resp.status
            return result
        result["stage"] = "live"
        resp = request(base, "GET", "/v1/models", timeout, headers=headers)
        if resp.status != 200:
            result["error"] = "GET /v1/models answered HTTP %d" % resp.status
            return result
        try:
            result["models"] = [str(entry["id"]) for entry in resp.json()["data"]]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            result["error"] = "GET /v1/models did not answer a model list"
            return result
        if not result["models"] or (model and model not in result["models"]):
            result["error"] = "the model list is %s" % (", ".join(result["models"]) or "empty")
            return result
        result["stage"] = "ready"
        payload = {"model": model or result["models"][0], "messages": [{"role": "user", "content": "Hi"}],
                   "max_tokens": 1, "temperature": 0, "stream": False}
        resp = request(base, "POST", "/v1/chat/completions", timeout, headers=headers, payload=payload)
        if resp.status != 200:
            result["error"] = "a 1-token chat completion answered HTTP %d: %s" % (resp.status, resp.snippet())
            return result
        result["stage"] = "serving"
        result["latency_ms"] = round(resp.elapsed * 1000.0, 3)
    except (HTTPUnreachable, HTTPTimeout) as exc:
        result["error"] = str(exc)
    return result


def gpu_memory(module, nvidia_smi_path):
    smi = nvidia_smi_path or module.get_bin_path("nvidia-smi", opt_dirs=["/usr/bin", "/usr/local/bin"])

    def run(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C"})

    try:
        facts = gather(run, nvidia_smi=smi)
    except (NvidiaError, ImportError) as exc:
        return {"error": getattr(exc, "message", str(exc))}
    gpus = facts.get("gpus") or []
    processes = []
    for gpu in gpus:
        for proc in gpu.get("processes") or []:
            processes.append({"pid": proc.get("pid"), "name": proc.get("name") or proc.get("process_name"),
                              "used_memory_bytes": proc.get("used_memory_bytes")})

    def total(key):
        values = [gpu.get(key) for gpu in gpus if gpu.get(key) is not None]
        return sum(values) if values else None

    used_by_processes = [p["used_memory_bytes"] for p in processes if p["used_memory_bytes"] is not None]
    return {
        "source": facts.get("source"),
        "name": gpus[0].get("name") if gpus else None,
        "gpu_count": facts.get("gpu_count", len(gpus)),
        "unified_memory": bool(facts.get("unified_memory")),
        # On unified memory (GB10) every GPU reports the host's memory: count it once.
        "memory_used_bytes": gpus[0].get("memory_used_bytes") if facts.get("unified_memory") and gpus else total("memory_used_bytes"),
        "memory_total_bytes": gpus[0].get("memory_total_bytes") if facts.get("unified_memory") and gpus else total("memory_total_bytes"),
        "processes_memory_bytes": sum(used_by_processes) if used_by_processes else None,
        "processes": processes,
        "error": None,
    }


def build_instance(name, state, container, images, now):
    """One report row from a state document and the container's inspect document (either may be None)."""
    current = (state or {}).get("current") or {}
    labels = ((container or {}).get("Config") or {}).get("Labels") or {}
    row = {
        "name": name,
        "kind": current.get("kind") or labels.get("sparkfleet.kind"),
        "model": current.get("model") or labels.get("sparkfleet.model"),
        "revision": current.get("revision"),
        "commit": current.get("commit"),
        "port": current.get("port") or (int(labels["sparkfleet.port"]) if str(labels.get("sparkfleet.port", "")).isdigit() else None),
        "endpoint_url": current.get("endpoint_url"),
        "container": current.get("container") or ((container or {}).get("Name") or "").lstrip("/") or None,
        "image": current.get("image"),
        "image_id": current.get("image_id"),
        "image_digest": None,
        "image_matches_deployment": None,
        "container_state": "missing" if container is None else "unknown",
        "started_at": None,
        "uptime_seconds": None,
        "restart_count": None,
        "exit_code": None,
        "deployed_at": current.get("deployed_at"),
        "deployed": current or None,
        "previous": (state or {}).get("previous"),
        "probe": {"stage": "skipped", "latency_ms": None, "models": [], "error": None},
        "problems": [],
    }
    if state and state.get("error"):
        row["problems"].append("unreadable deployment state: %s" % state["error"])
    elif state is None:
        row["problems"].append("no deployment state file (container not deployed by trtllm_server)")
    digests = current.get("image_repo_digests") or []
    if container is not None:
        st = container.get("State") or {}
        row["container_state"] = st.get("Status") or "unknown"
        started = parse_docker_time(st.get("StartedAt"))
        row["started_at"] = _iso(started)
        if st.get("Running") and started is not None:
            row["uptime_seconds"] = round(max(0.0, (now - started).total_seconds()), 1)
        row["restart_count"] = int(container.get("RestartCount") or 0)
        if not st.get("Running"):
            row["exit_code"] = st.get("ExitCode")
        row["image"] = (container.get("Config") or {}).get("Image") or row["image"]
        running_id = container.get("Image")
        if running_id:
            if current.get("image_id"):
                row["image_matches_deployment"] = running_id == current.get("image_id")
            row["image_id"] = running_id
            image = images.get(running_id) or {}
            digests = image.get("RepoDigests") or digests
        if row["container_state"] != "running":
            row["problems"].append("container is %s" % row["container_state"])
        if row["image_matches_deployment"] is False:
            row["problems"].append("the running image differs from the deployed one")
    elif current:
        row["problems"].append("container %s does not exist" % current.get("container"))
    if digests:
        row["image_digest"] = digests[0].split("@", 1)[-1]
    return row


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            state_dir=dict(type="path", default="/var/lib/sparkfleet/state"),
            probe=dict(type="bool", default=True),
            probe_host=dict(type="str", default="127.0.0.1"),
            probe_timeout_seconds=dict(type="float", default=10),
            gpu=dict(type="bool", default=True),
            nvidia_smi_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["probe_timeout_seconds"] <= 0:
        module.fail_json(msg="probe_timeout_seconds must be greater than 0, got %s" % p["probe_timeout_seconds"])
    if os.path.exists(p["state_dir"]) and not os.access(p["state_dir"], os.R_OK | os.X_OK):
        module.fail_json(msg="cannot read the deployment state folder %s (run with become: true)" % p["state_dir"])

    now = datetime.datetime.now(datetime.timezone.utc)
    states = read_states(p["state_dir"])
    docker = Docker(module)
    names = [((doc.get("current") or {}).get("container")) for doc in states.values()]
    containers = docker.containers([n for n in names if n])
    images = docker.images([doc.get("Image") for doc in containers.values() if doc.get("Image")])

    rows = {}
    seen = set()
    for name, state in states.items():
        cname = (state.get("current") or {}).get("container")
        rows[name] = build_instance(name, state, containers.get(cname) if cname else None, images, now)
        if docker.error and cname:
            rows[name]["container_state"] = "unknown"
        seen.add(cname)
    for cname, doc in containers.items():
        if cname in seen:
            continue
        labels = (doc.get("Config") or {}).get("Labels") or {}
        if labels.get("sparkfleet.role") != "trtllm_server":
            continue
        name = labels.get("sparkfleet.name") or cname
        rows[name if name not in rows else cname] = build_instance(name, None, doc, images, now)

    if p["probe"]:
        for row in rows.values():
            if row["port"]:
                started = time.monotonic()
                row["probe"] = probe_endpoint(p["probe_host"], row["port"], row["model"], p["probe_timeout_seconds"])
                row["probe"]["seconds"] = round(time.monotonic() - started, 3)
                if row["probe"]["stage"] != "serving":
                    row["problems"].append("endpoint is %s: %s" % (row["probe"]["stage"], row["probe"]["error"]))

    module.exit_json(
        changed=False,
        checked_at=_iso(now),
        instances=[rows[key] for key in sorted(rows)],
        gpu=gpu_memory(module, p["nvidia_smi_path"]) if p["gpu"] else None,
        docker_error=docker.error,
    )


if __name__ == "__main__":
    main()
