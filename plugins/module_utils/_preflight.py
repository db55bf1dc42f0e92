# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private helpers: the host-local preflight checks of sparkfleet.trtllm.preflight_info.

Each check returns one dict ``{"check", "status", "value", "message", "hint"}`` with ``status`` in
pass / warn / fail / skip. Nothing here changes the host: commands are read-only queries, files are only read,
and network access is one metadata GET per model to the Hub endpoint and TCP connects to peers.
Commands run through a ``run(argv) -> (rc, out, err)`` callable so that tests can feed real or captured output.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import time
from email.utils import parsedate_to_datetime

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._model_matrix import quantization_check
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._nvidia import version_tuple

GB = 1000 ** 3
STATUSES = ("pass", "warn", "fail", "skip")
_RANK = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}


def result(check, status, value, message, hint=""):
    return {"check": check, "status": status, "value": value, "message": message, "hint": hint if status in ("warn", "fail") else ""}


def worst(statuses):
    statuses = list(statuses)
    return max(statuses, key=lambda s: _RANK[s]) if statuses else "skip"


def _gb(nbytes):
    return round(nbytes / GB, 1) if nbytes is not None else None


# ---------------------------------------------------------------- GPU, driver, CUDA, architecture, memory


def check_driver(gpu, gpu_error, min_driver):
    if gpu_error is not None:
        return result("gpu_driver", "fail", None, gpu_error.message, gpu_error.hint)
    version = gpu.get("driver_version")
    if version_tuple(version) < version_tuple(min_driver):
        return result("gpu_driver", "fail", version, "NVIDIA driver %s is older than the minimum %s" % (version, min_driver),
                      "Upgrade the NVIDIA driver to %s or newer (DGX OS: apt update && apt full-upgrade) and reboot." % min_driver)
    return result("gpu_driver", "pass", version, "NVIDIA driver %s (>= %s), %d GPU(s)" % (version, min_driver, gpu.get("gpu_count", 0)))


def check_cuda(gpu, gpu_error, min_cuda):
    if gpu_error is not None:
        return result("cuda_driver", "skip", None, "no GPU facts (see gpu_driver)")
    version = gpu.get("cuda_driver_version")
    if version is None:
        return result("cuda_driver", "warn", None, "the driver did not report its CUDA version",
                      "Run `nvidia-smi` and check the 'CUDA Version' in its header.")
    if version_tuple(version) < version_tuple(min_cuda):
        return result("cuda_driver", "fail", version, "CUDA driver version %s is older than the minimum %s" % (version, min_cuda),
                      "Install an NVIDIA driver that supports CUDA %s (driver 580 or newer) and reboot." % min_cuda)
    return result("cuda_driver", "pass", version, "CUDA driver version %s (>= %s)" % (version, min_cuda))


def check_architecture(gpu, gpu_error, models):
    if gpu_error is not None:
        return result("gpu_architecture", "skip", None, "no GPU facts (see gpu_driver)")
    first = gpu["gpus"][0]
    cc = first.get("compute_capability")
    value = "%s (%s)" % (first.get("architecture"), cc)
    statuses, messages = [], []
    for model in models:
        status, message = quantization_check(model.get("quantization"), cc)
        statuses.append(status)
        messages.append("%s: %s" % (model["model"], message))
    status = worst(statuses)
    hint = {"fail": "Choose a model whose quantization this GPU supports (docs/models.md): FP8 or MXFP4 instead of NVFP4 before Blackwell.",
            "warn": "Expect differences from the Spark guide; test the model before serving it in production."}.get(status, "")
    return result("gpu_architecture", status, value, "; ".join(messages), hint)


def memory_capacity(gpu):
    """Bytes of memory a model may use on this host, and where the figure comes from."""
    if gpu.get("unified_memory"):
        return gpu.get("host_memory_total_bytes"), "unified memory (/proc/meminfo MemTotal)"
    totals = [g.get("memory_total_bytes") or 0 for g in gpu.get("gpus", [])]
    return (max(totals) if totals else None), "GPU memory (largest GPU)"


def check_memory(gpu, gpu_error, models, headroom_fraction):
    if gpu_error is not None:
        return result("memory", "skip", None, "no GPU facts (see gpu_driver)")
    capacity, where = memory_capacity(gpu)
    need = sum(float(m["memory_gb"]) for m in models) * GB
    names = ", ".join("%s (%s GB)" % (m["model"], m["memory_gb"]) for m in models)
    value = "need %s GB of %s GB" % (_gb(need), _gb(capacity))
    if not capacity:
        return result("memory", "warn", value, "memory capacity unknown", "Check `nvidia-smi` and /proc/meminfo on the host.")
    if need > capacity:
        return result("memory", "fail", value, "%s need %s GB but the host has %s GB of %s" % (names, _gb(need), _gb(capacity), where),
                      "Choose a smaller model or quantization in sparkfleet_models (docs/models.md), serve fewer models per host, "
                      "or use a multi-node group (sparkfleet_multinode_group).")
    if need > capacity * headroom_fraction:
        return result("memory", "warn", value, "%s need %s GB, more than %d%% of the %s GB of %s" % (
            names, _gb(need), int(headroom_fraction * 100), _gb(capacity), where),
            "Little memory is left for the OS (over-commit can hang a Spark): lower free_gpu_memory_fraction or pick a smaller model.")
    return result("memory", "pass", value, "%s fit in %s GB of %s" % (names, _gb(capacity), where))


def check_nodes(models, group_size):
    too_big = [m for m in models if int(m.get("nodes", 1)) > group_size]
    value = "group of %d" % group_size
    if too_big:
        names = ", ".join("%s needs %d Sparks" % (m["model"], m["nodes"]) for m in too_big)
        return result("model_nodes", "fail", value, "%s; this host serves in a group of %d" % (names, group_size),
                      "Put the host in a multi-node group of that size (sparkfleet_multinode_group) or choose a single-node model.")
    return result("model_nodes", "pass", value, "every model fits a group of %d Spark(s)" % group_size)


# ---------------------------------------------------------------- disk


def _existing_ancestor(path):
    path = os.path.abspath(path)
    for dummy in range(64):
        if os.path.exists(path):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return "/"


def cached_bytes(hf_home, model, max_entries=200000):
    """Bytes of ``model`` already in the HF cache under ``hf_home`` (blobs of hub/models--org--name)."""
    blobs = os.path.join(hf_home, "hub", "models--" + model.replace("/", "--"), "blobs")
    total = 0
    try:
        entries = os.scandir(blobs)
    except OSError:
        return 0
    with entries:
        for count, entry in enumerate(entries):
            if count >= max_entries:
                break
            try:
                if entry.is_file(follow_symlinks=True) and not entry.name.endswith(".incomplete"):
                    total += entry.stat(follow_symlinks=True).st_size
            except OSError:
                continue
    return total


def check_disk(hf_home, models, margin_gb):
    where = _existing_ancestor(hf_home)
    stat = os.statvfs(where)
    free = stat.f_bavail * stat.f_frsize
    cached = sum(cached_bytes(hf_home, m["model"]) for m in models)
    need = max(sum(float(m["download_gb"]) for m in models) * GB - cached, 0) + float(margin_gb) * GB
    value = "free %s GB, need %s GB at %s" % (_gb(free), _gb(need), hf_home)
    detail = "models %s GB (approx.) - cached %s GB + margin %s GB" % (_gb(sum(float(m["download_gb"]) for m in models) * GB), _gb(cached), margin_gb)
    if free < need:
        return result("disk", "fail", value, "only %s GB free on the file system of %s (%s); need %s GB: %s" % (_gb(free), hf_home, where, _gb(need), detail),
                      "Free %s GB on that file system or point sparkfleet_hf_home at a larger disk." % _gb(need - free))
    return result("disk", "pass", value, "%s GB free at %s (%s)" % (_gb(free), where, detail))


# ---------------------------------------------------------------- docker


def docker_state(run, docker):
    """``{"present", "running", "version", "runtimes", "error"}`` from one ``docker info`` call."""
    state = {"present": bool(docker), "running": False, "version": None, "runtimes": [], "error": None}
    if not docker:
        return state
    rc, out, err = run([docker, "info", "--format", "{{json .}}"])
    info = None
    try:
        info = json.loads(out) if out.strip() else None
    except ValueError:
        info = None
    server_errors = (info or {}).get("ServerErrors") or []
    if rc != 0 or not info or server_errors or not info.get("ServerVersion"):
        lines = (err or out or "").strip().splitlines()
        state["error"] = " ".join(server_errors) or (lines[0] if lines else "docker info failed (rc %s)" % rc)
        return state
    state.update(running=True, version=info.get("ServerVersion"), runtimes=sorted((info.get("Runtimes") or {}).keys()),
                 default_runtime=info.get("DefaultRuntime"))
    return state


def check_docker(state, min_version, required):
    bad = "fail" if required else "warn"
    if not state["present"]:
        return result("docker", bad, None, "the docker command is not installed",
                      "Run the sparkfleet.trtllm docker role (or install Docker Engine >= %s)." % min_version)
    if not state["running"]:
        return result("docker", bad, None, "the Docker engine is not running: %s" % state["error"],
                      "Start it: systemctl enable --now docker (the docker role does this).")
    if version_tuple(state["version"]) < version_tuple(min_version):
        return result("docker", bad, state["version"], "Docker Engine %s is older than the minimum %s" % (state["version"], min_version),
                      "Upgrade Docker Engine to %s or newer." % min_version)
    return result("docker", "pass", state["version"], "Docker Engine %s is running (>= %s)" % (state["version"], min_version))


def check_nvidia_runtime(state):
    if not state["running"]:
        return result("docker_nvidia_runtime", "skip", None, "Docker engine not running (see docker)")
    runtimes = state["runtimes"]
    if "nvidia" not in runtimes:
        return result("docker_nvidia_runtime", "warn", ",".join(runtimes),
                      "the nvidia runtime is not registered with Docker (runtimes: %s)" % ", ".join(runtimes),
                      "The sparkfleet.trtllm docker role installs the NVIDIA Container Toolkit and registers it (nvidia-ctk runtime configure).")
    return result("docker_nvidia_runtime", "pass", ",".join(runtimes), "the nvidia runtime is registered (default: %s)" % state.get("default_runtime"))


# ---------------------------------------------------------------- ports


def listening_sockets(proc="/proc"):
    """``{port: set(inode)}`` of TCP sockets in LISTEN state (IPv4 and IPv6) in this network namespace."""
    out = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc, "net", name), "r", encoding="ascii") as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != "0A":
                continue
            port = int(cols[1].rsplit(":", 1)[1], 16)
            out.setdefault(port, set()).add(cols[9])
    return out


def socket_owners(inodes, proc="/proc", max_pids=100000):
    """pids whose open files include one of the socket ``inodes``."""
    wanted = set("socket:[%s]" % i for i in inodes)
    pids = []
    try:
        names = [n for n in os.listdir(proc) if n.isdigit()][:max_pids]
    except OSError:
        return pids
    for pid in names:
        fd_dir = os.path.join(proc, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(fd_dir, fd)) in wanted:
                    pids.append(int(pid))
                    break
            except OSError:
                continue
    return sorted(set(pids))


def _proc_field(pid, proc="/proc"):
    try:
        with open(os.path.join(proc, str(pid), "stat"), "r", encoding="utf-8", errors="replace") as handle:
            data = handle.read()
    except OSError:
        return None, None
    name = data[data.find("(") + 1:data.rfind(")")]
    rest = data[data.rfind(")") + 2:].split()
    return name, int(rest[1]) if len(rest) > 1 else None


def ancestors(pid, proc="/proc", limit=64):
    chain = []
    for dummy in range(limit):
        dummy, ppid = _proc_field(pid, proc)
        if not ppid:
            break
        chain.append(ppid)
        pid = ppid
    return chain


def docker_containers(run, docker, label):
    """Running containers: ``[{"name", "pid", "managed", "ports": set(host ports)}]`` (two docker calls)."""
    if not docker:
        return []
    key, dummy, wanted = label.partition("=")
    rc, out, dummy = run([docker, "ps", "-q", "--no-trunc"])
    ids = out.split() if rc == 0 else []
    if not ids:
        return []
    fmt = '{{json .Name}} {{.State.Pid}} {{json .Config.Labels}} {{json .NetworkSettings.Ports}}'
    rc, out, dummy = run([docker, "inspect", "--format", fmt] + ids)
    containers = []
    if rc != 0:
        return containers
    decoder = json.JSONDecoder()
    for line in out.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            name, idx = decoder.raw_decode(line)
            rest = line[idx:].strip()
            pid_text, dummy, rest = rest.partition(" ")
            labels, idx = decoder.raw_decode(rest.strip())
            ports = json.loads(rest.strip()[idx:].strip() or "null")
        except ValueError:
            continue
        host_ports = set()
        for bindings in (ports or {}).values():
            for binding in bindings or []:
                if binding.get("HostPort", "").isdigit():
                    host_ports.add(int(binding["HostPort"]))
        labels = labels or {}
        containers.append({"name": name.lstrip("/"), "pid": int(pid_text) if pid_text.isdigit() else 0,
                           "managed": key in labels and (not wanted or labels[key] == wanted), "ports": host_ports})
    return containers


def check_ports(ports, run, docker, label, proc="/proc"):
    listening = listening_sockets(proc)
    containers = docker_containers(run, docker, label) if (docker and ports) else []
    values, messages, status = [], [], "pass"
    for port in ports:
        holder = None
        inodes = listening.get(port)
        for c in containers:
            if port in c["ports"]:
                holder = ("container", c)
        pids = socket_owners(inodes, proc) if inodes and holder is None else []
        if holder is None and pids:
            by_pid = {c["pid"]: c for c in containers if c["pid"]}
            for pid in pids:
                for ancestor in [pid] + ancestors(pid, proc):
                    if ancestor in by_pid:
                        holder = ("container", by_pid[ancestor])
                        break
                if holder:
                    break
            if holder is None:
                holder = ("process", pids[0])
        if holder is None and inodes:
            holder = ("process", None)
        if holder is None:
            values.append("%d free" % port)
            messages.append("%d is free" % port)
        elif holder[0] == "container" and holder[1]["managed"]:
            values.append("%d ours" % port)
            messages.append("%d is held by our container %s" % (port, holder[1]["name"]))
        else:
            status = "fail"
            if holder[0] == "container":
                who = "container %s (not managed by sparkfleet)" % holder[1]["name"]
            elif holder[1] is not None:
                who = "process %s (pid %d)" % (_proc_field(holder[1], proc)[0], holder[1])
            else:
                who = "an unknown process"
            values.append("%d taken" % port)
            messages.append("%d is in use by %s" % (port, who))
    hint = "Stop what holds the port or choose another port (sparkfleet_llm_port / sparkfleet_vlm_port)." if status == "fail" else ""
    return result("ports", status, ", ".join(values), "; ".join(messages) or "no ports to check", hint)


# ---------------------------------------------------------------- clock


def check_clock(run, timedatectl, hub_skew_seconds=None, max_skew_seconds=300):
    if hub_skew_seconds is not None and abs(hub_skew_seconds) > max_skew_seconds:
        return result("clock", "fail", "skew %+ds" % hub_skew_seconds, "the host clock differs from the Hub's by %d s" % hub_skew_seconds,
                      "Synchronise the clock (sudo timedatectl set-ntp true): TLS to the Hub fails with a wrong clock.")
    if not timedatectl:
        return result("clock", "warn", None, "timedatectl is not available: cannot tell whether the clock is synchronised",
                      "Make sure an NTP client (systemd-timesyncd, chrony) keeps the clock right.")
    rc, out, err = run([timedatectl, "show", "-p", "NTPSynchronized", "--value"])
    value = out.strip()
    if rc != 0 or value not in ("yes", "no"):
        return result("clock", "warn", None, "timedatectl could not tell the NTP state: %s" % ((err or out).strip().splitlines() or ["no output"])[0],
                      "Make sure an NTP client (systemd-timesyncd, chrony) keeps the clock right.")
    if value == "no":
        return result("clock", "warn", "NTPSynchronized=no", "the clock is not NTP-synchronised",
                      "Run: sudo timedatectl set-ntp true (TLS to the Hub fails with a wrong clock).")
    skew = "" if hub_skew_seconds is None else ", skew to Hub %+ds" % hub_skew_seconds
    return result("clock", "pass", "NTPSynchronized=yes", "the clock is NTP-synchronised%s" % skew)


# ---------------------------------------------------------------- Hub


def hub_request(url, token, timeout, method="GET"):
    """One request; returns ``(status code or None, headers, body bytes, error text)``; the token never appears in it."""
    headers = {"User-Agent": "sparkfleet-preflight", "Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = "Bearer %s" % token
    try:
        response = open_url(url, method=method, headers=headers, timeout=timeout, validate_certs=True, follow_redirects="none")
        body = response.read(1024 * 1024) if method == "GET" else b""
        return response.getcode(), dict(response.headers), body, None
    except HTTPError as exc:
        return exc.code, dict(exc.headers or {}), b"", None
    except (URLError, socket.timeout, OSError, ValueError) as exc:
        text = str(getattr(exc, "reason", exc))
        if token:
            text = text.replace(token, "***")
        return None, {}, b"", text


def _hub_one(endpoint, model, revision, token, timeout):
    """``(status, message, hint, headers)`` for one model: metadata GET, then a file HEAD for gated repos."""
    base = endpoint.rstrip("/")
    code, headers, body, error = hub_request("%s/api/models/%s/revision/%s" % (base, model, revision), token, timeout)
    lower = {k.lower(): v for k, v in headers.items()}
    error_code = lower.get("x-error-code", "")
    if code is None:
        return ("fail", "%s: %s unreachable (%s)" % (model, endpoint, error),
                "Check DNS, proxy and firewall towards %s (sparkfleet_hf_endpoint), or run offline from a pre-seeded cache." % endpoint, lower)
    if code == 401 and token and error_code != "RepoNotFound":
        return ("fail", "%s: the endpoint rejected the token (HTTP 401)" % model,
                "Replace sparkfleet_hf_token with a valid token (https://huggingface.co/settings/tokens).", lower)
    if code in (401, 404) and error_code == "RevisionNotFound":
        return ("fail", "%s: revision %s not found on %s" % (model, revision, endpoint),
                "Use an existing branch, tag or commit (preflight_hub_revision, and the same in model_cache_revision / "
                "trtllm_server_revision).", lower)
    if code in (401, 404):
        return ("fail", "%s: not found on %s (HTTP %d %s)" % (model, endpoint, code, error_code),
                "Check the model handle (sparkfleet_model); private repos need sparkfleet_hf_token.", lower)
    if code != 200:
        return ("fail", "%s: unexpected HTTP %d from %s" % (model, code, endpoint),
                "Check that sparkfleet_hf_endpoint points at a Hugging Face Hub compatible server.", lower)
    try:
        gated = json.loads(body.decode("utf-8") or "{}").get("gated")
    except (ValueError, AttributeError, UnicodeDecodeError):
        gated = None
    if not gated:
        return "pass", "%s: reachable%s" % (model, ", token accepted" if token else ""), "", lower
    # Gated: metadata is public, files are not. A HEAD on a small file proves the token's access.
    code, fheaders, dummy, error = hub_request("%s/%s/resolve/%s/config.json" % (base, model, revision), token, timeout, method="HEAD")
    ferror = {k.lower(): v for k, v in fheaders.items()}.get("x-error-code", "")
    if code is not None and (200 <= code < 400):
        return "pass", "%s: gated, the token has access" % model, "", lower
    if code in (401, 403) and (ferror == "GatedRepo" or code == 403):
        if token:
            return ("fail", "%s is gated and the token's account has no access (HTTP %d)" % (model, code),
                    "Request access on %s/%s with the token's account, or set sparkfleet_hf_token to a token of an approved account."
                    % (base, model), lower)
        return ("fail", "%s is gated and no token is set (HTTP %d)" % (model, code),
                "Set sparkfleet_hf_token (from ansible-vault) to a token whose account has access to %s." % model, lower)
    return ("fail", "%s: gated, file access check answered %s" % (model, code if code is not None else error),
            "Check sparkfleet_hf_token and access to %s/%s." % (base, model), lower)


def cached_revision(hf_home, model, revision):
    """True when ``revision`` of ``model`` has a snapshot folder in the HF cache at ``hf_home``."""
    repo = os.path.join(hf_home, "hub", "models--" + model.replace("/", "--"))
    commit = revision
    if not re.match(r"^[0-9a-f]{40}$", revision):
        try:
            with open(os.path.join(repo, "refs", revision)) as handle:
                commit = handle.read().strip()
        except (OSError, ValueError):
            return False
    return bool(commit) and os.path.isdir(os.path.join(repo, "snapshots", commit))


def check_hub(endpoint, models, token, revision, timeout, offline, hf_home):
    """``(result, clock skew in seconds or None)``."""
    if offline:
        missing = [m["model"] for m in models if not os.path.isdir(os.path.join(hf_home, "hub", "models--" + m["model"].replace("/", "--"), "snapshots"))]
        if missing:
            return (result("hub", "warn", "offline", "offline mode and %s not in the cache at %s" % (", ".join(missing), hf_home),
                           "Pre-seed the cache (the model_cache role fans it out from the controller) or set sparkfleet_offline: false."), None)
        return result("hub", "skip", "offline", "offline mode: the Hub is not contacted; every model is in the cache"), None
    if not re.match(r"^https?://[^/\s?#@]+(/[^\s?#]*)?$", endpoint or ""):
        return (result("hub", "fail", endpoint, "the Hub endpoint %r is not an http(s) URL" % endpoint,
                       "Set sparkfleet_hf_endpoint to the Hub's base URL, for example https://huggingface.co."), None)
    statuses, messages, hints, skew = [], [], [], None
    for model in models:
        status, message, hint, headers = _hub_one(endpoint, model["model"], revision, token, timeout)
        if status == "fail" and not headers and " unreachable (" in message and cached_revision(hf_home, model["model"], revision):
            # A Hub outage must not stop a fleet whose model is already cached: model_cache then uses the cached
            # revision without a request and the containers run offline anyway.
            status = "warn"
            message += "; revision %s is in the cache at %s, so the run goes on from the cache" % (revision, hf_home)
            hint = "Nothing to do for this run; check the way to %s (sparkfleet_hf_endpoint) before a new model or revision is needed." % endpoint
        statuses.append(status)
        messages.append(message)
        if hint:
            hints.append(hint)
        if headers.get("date") and skew is None:
            try:
                skew = int(time.time() - parsedate_to_datetime(headers["date"]).timestamp())
            except (TypeError, ValueError):
                skew = None
    return result("hub", worst(statuses), endpoint, "; ".join(messages), hints[0] if hints else ""), skew


# ---------------------------------------------------------------- ConnectX fabric


def interface_state(run, ip, name):
    rc, out, err = run([ip, "-j", "addr", "show", "dev", name])
    if rc != 0:
        return None
    try:
        data = json.loads(out)[0]
    except (ValueError, IndexError):
        return None
    flags = data.get("flags", [])
    up = data.get("operstate") == "UP" or (data.get("operstate") == "UNKNOWN" and "UP" in flags and "LOWER_UP" in flags)
    addrs = [a["local"] for a in data.get("addr_info", []) if a.get("family") == "inet" and a.get("local")]
    return {"name": name, "up": up, "mtu": data.get("mtu"), "addresses": addrs}


def peer_answers(address, port, timeout):
    """True when ``address`` answers TCP on ``port`` (an accept or a reset both prove the peer is there)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            local = sock.getsockname()[0]
        return True, local
    except ConnectionRefusedError:
        return True, None
    except OSError:
        return False, None


def check_fabric(run, ip, interfaces, peers, expected_mtu, peer_port, timeout):
    if not interfaces and not peers:
        return result("connectx", "skip", None, "no ConnectX interfaces named (sparkfleet_cx7_interfaces) and no peers")
    if interfaces and not ip:
        return result("connectx", "fail", None, "the ip command (iproute2) is missing", "Install iproute2.")
    statuses, messages, hints, values = [], [], [], []
    local_addrs = set()
    for name in interfaces:
        state = interface_state(run, ip, name)
        if state is None:
            statuses.append("fail")
            messages.append("%s does not exist" % name)
            hints.append("Fix sparkfleet_cx7_interfaces or the cabling/netplan of the ConnectX ports (ibdev2netdev shows which are Up).")
            continue
        local_addrs.update(state["addresses"])
        values.append("%s %s mtu %s %s" % (name, "up" if state["up"] else "down", state["mtu"], ",".join(state["addresses"]) or "no-ip"))
        if not state["up"]:
            statuses.append("fail")
            messages.append("%s is down" % name)
            hints.append("Bring %s up (check the QSFP cable and netplan)." % name)
        elif not state["addresses"]:
            statuses.append("fail")
            messages.append("%s has no IPv4 address" % name)
            hints.append("Give %s an address in the fabric subnet (netplan), as in the guide's 'Connect two Sparks'." % name)
        elif expected_mtu and state["mtu"] != expected_mtu:
            statuses.append("warn")
            messages.append("%s has MTU %s, expected %s" % (name, state["mtu"], expected_mtu))
            hints.append("Set MTU %s on %s and on its peers (netplan mtu:)." % (expected_mtu, name))
        else:
            statuses.append("pass")
            messages.append("%s up, %s, MTU %s" % (name, ",".join(state["addresses"]), state["mtu"]))
    for peer in peers:
        if peer in local_addrs:
            continue
        answered, local = peer_answers(peer, peer_port, timeout)
        if not answered:
            statuses.append("fail")
            messages.append("peer %s does not answer" % peer)
            hints.append("Check that the peer %s is up and reachable on the ConnectX link (same subnet, firewall)." % peer)
        elif local and interfaces and local not in local_addrs:
            statuses.append("warn")
            messages.append("peer %s answers but not through %s (source %s)" % (peer, ",".join(interfaces), local))
            hints.append("Route the peers' ConnectX addresses through the ConnectX interfaces (same subnet on both ends).")
        else:
            statuses.append("pass")
            messages.append("peer %s answers" % peer)
        values.append("peer %s %s" % (peer, "ok" if answered else "unreachable"))
    status = worst(statuses)
    return result("connectx", status, "; ".join(values), "; ".join(messages), hints[0] if hints and status != "pass" else "")


# ---------------------------------------------------------------- multi-node group


def fabric_networks(ip_addr_json, interfaces):
    """``{name: {"mtu", "up", "networks"}}`` of ``interfaces`` from ``ip -j -4 addr show`` output (missing: absent)."""
    try:
        data = json.loads(ip_addr_json or "[]")
    except ValueError:
        data = []
    found = {}
    for link in data if isinstance(data, list) else []:
        name = link.get("ifname")
        if name not in interfaces:
            continue
        nets = []
        for addr in link.get("addr_info", []):
            if addr.get("family") == "inet" and addr.get("local"):
                nets.append(str(ipaddress.ip_interface("%s/%s" % (addr["local"], addr.get("prefixlen", 32))).network))
        found[name] = {"mtu": link.get("mtu"), "up": link.get("operstate") in ("UP", "UNKNOWN"), "networks": nets}
    return found


def check_multinode(members, tp_size, interfaces):
    """Compare the hosts of a multi-node group: tp_size, image, model revision, fabric subnet and MTU.

    ``members`` lists one dict per host in rank order: ``host``, ``image``, ``image_id`` (empty when the image is not
    pulled yet), ``model``, ``revision``, ``commit`` (empty when not cached yet) and ``ip_addr_json``.
    """
    if not members:
        return result("multinode", "skip", None, "the host is not in a multi-node group (sparkfleet_multinode_group)")
    size = len(members)
    fails, hints, notes = [], [], []
    tp = int(tp_size or size)
    if tp != size:
        fails.append("the group has %d host(s) but tp_size is %d" % (size, tp))
        hints.append("Make the group (sparkfleet_multinode_group) exactly tp_size hosts, one rank per Spark, or set "
                     "sparkfleet_multinode_tp_size to %d." % size)
    if size < 2:
        fails.append("a multi-node group needs at least 2 hosts, this one has %d" % size)
        hints.append("Add the second Spark to the group or serve a single-node model.")

    def differ(key, label, present_only=False):
        values = {}
        for member in members:
            value = member.get(key) or ""
            if present_only and not value:
                continue
            values.setdefault(value, []).append(member["host"])
        if len(values) > 1:
            fails.append("%s differ: %s" % (label, "; ".join("%s on %s" % (v or "none", ",".join(h)) for v, h in sorted(values.items()))))
            return True
        return False

    if differ("image", "images"):
        hints.append("Serve one image on every host of the group (sparkfleet_trtllm_image must not differ per host).")
    elif differ("image_id", "image IDs of %s" % members[0].get("image"), present_only=True):
        hints.append("Pull the image again on every host (the image_cache role) so that every rank runs the same build.")
    if differ("model", "models") or differ("revision", "model revisions"):
        hints.append("Give every host of the group the same model and revision (sparkfleet_multinode_model).")
    elif differ("commit", "cached model revisions of %s" % members[0].get("model"), present_only=True):
        hints.append("Cache the same commit on every host (the model_cache role with a pinned revision) before serving.")

    if interfaces:
        nets, mtus = {}, {}
        for member in members:
            links = fabric_networks(member.get("ip_addr_json"), interfaces)
            nets[member["host"]] = set(n for link in links.values() for n in link["networks"])
            for name, link in links.items():
                mtus.setdefault(link["mtu"], []).append("%s:%s" % (member["host"], name))
        shared = set.intersection(*nets.values()) if nets else set()
        if not shared:
            fails.append("the ConnectX interfaces share no subnet: %s" % "; ".join(
                "%s %s" % (h, ",".join(sorted(n)) or "no address") for h, n in nets.items()))
            hints.append("Put the ConnectX ports of every host of the group in one subnet (netplan), as in the guide's "
                         "'Connect two Sparks'.")
        else:
            notes.append("subnet %s" % ",".join(sorted(shared)))
        if len(mtus) > 1:
            fails.append("MTU differs across the group: %s" % "; ".join(
                "%s on %s" % (m, ",".join(h)) for m, h in sorted(mtus.items(), key=lambda item: str(item[0]))))
            hints.append("Set the same MTU on every ConnectX port of the group (netplan mtu:).")
        elif mtus:
            notes.append("MTU %s" % list(mtus)[0])
    value = "%d hosts, tp_size %d%s" % (size, tp, (", " + ", ".join(notes)) if notes else "")
    if fails:
        return result("multinode", "fail", value, "; ".join(fails), hints[0] if hints else "")
    return result("multinode", "pass", value, "group of %d: same image, same model revision, one fabric subnet" % size)
