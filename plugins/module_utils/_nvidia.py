# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private helpers: read NVIDIA GPU facts from NVML (nvidia-ml-py) or from nvidia-smi output.

Not a public API of the collection; modules import it as
``ansible_collections.sparkfleet.trtllm.plugins.module_utils._nvidia``.

Everything here is pure parsing or takes a ``run`` callable (``run(argv) -> (rc, stdout, stderr)``)
so that unit tests feed captured outputs of real tools. GPUs are never counted with ``lspci``:
on GB10 ``lspci -d 10de:`` also lists five NVIDIA PCI bridges.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

MIB = 1024 * 1024

# Fields asked from ``nvidia-smi --query-gpu`` (one call, CSV, no header, no units: MiB for memory).
QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "compute_cap",
    "driver_version",
    "memory.total",
    "memory.used",
    "memory.free",
    "persistence_mode",
    "ecc.mode.current",
    "mig.mode.current",
)

# Values nvidia-smi prints when NVML answers NOT_SUPPORTED or the field does not apply (GB10 memory).
_NOT_AVAILABLE = {"", "n/a", "[n/a]", "not supported", "[not supported]", "[unknown error]", "unknown error"}

NO_DRIVER = "no_driver"
NO_GPU = "no_gpu"
DRIVER_MISMATCH = "driver_mismatch"
NVML_ERROR = "nvml_error"
PARSE_ERROR = "parse_error"

HINTS = {
    NO_DRIVER: "Install the NVIDIA driver (580 or newer on DGX Spark / DGX OS) and reboot, then check that `nvidia-smi` answers.",
    NO_GPU: "The driver is loaded but sees no GPU: check that the GPU is present and enabled (`nvidia-smi -L`, `dmesg | grep -i nvrm`).",
    DRIVER_MISMATCH: "The NVIDIA kernel module and user-space library differ (usually after a driver upgrade without reboot): reboot the host.",
    NVML_ERROR: "NVML could not be initialised: run `nvidia-smi` on the host as root and fix what it reports.",
    PARSE_ERROR: "nvidia-smi printed output this collection cannot read: report the output of `nvidia-smi -q -x`.",
}


class NvidiaError(Exception):
    """A GPU reading failed; ``kind`` is one of the constants above, ``hint`` says what to fix."""

    def __init__(self, kind, message, detail=None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail
        self.hint = HINTS.get(kind, "")

    def as_dict(self):
        return {"kind": self.kind, "message": self.message, "hint": self.hint, "detail": self.detail}


def architecture_name(compute_capability):
    """Map a compute capability string (``"12.1"``) to NVIDIA's architecture name, or ``None``."""
    if not compute_capability:
        return None
    try:
        major, minor = (int(p) for p in str(compute_capability).strip().split(".", 1))
    except ValueError:
        return None
    if major in (10, 11, 12):
        return "Blackwell"
    if major == 9:
        return "Hopper"
    if major == 8:
        return "Ada Lovelace" if minor == 9 else "Ampere"
    if major == 7:
        return "Turing" if minor == 5 else "Volta"
    if major == 6:
        return "Pascal"
    if major == 5:
        return "Maxwell"
    return None


def compute_capability_tuple(compute_capability):
    """``"8.9"`` -> ``(8, 9)``; ``None`` for an unreadable value."""
    try:
        major, minor = (int(p) for p in str(compute_capability).strip().split(".", 1))
    except (ValueError, AttributeError):
        return None
    return (major, minor)


def version_tuple(version):
    """``"580.95.05"`` -> ``(580, 95, 5)``; non-numeric parts stop the tuple; ``()`` for None."""
    out = []
    for part in str(version or "").strip().split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def _value(raw):
    raw = (raw or "").strip()
    return None if raw.lower() in _NOT_AVAILABLE else raw


def _mib_to_bytes(raw):
    value = _value(raw)
    if value is None:
        return None
    value = value.split()[0]  # tolerate "81559 MiB" when units were not stripped
    try:
        return int(float(value) * MIB)
    except ValueError:
        return None


def _enabled(raw):
    value = _value(raw)
    if value is None:
        return None
    return value.lower() in ("enabled", "on", "1", "yes")


def classify_failure(rc, stdout, stderr):
    """Turn a failed nvidia-smi call into an NvidiaError with a distinct kind, or ``None`` if it did not fail."""
    text = "%s\n%s" % (stdout or "", stderr or "")
    low = text.lower()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if "driver/library version mismatch" in low:
        lib = None
        for line in text.splitlines():
            if line.strip().lower().startswith("nvml library version"):
                lib = line.split(":", 1)[-1].strip()
        msg = "NVIDIA driver/library version mismatch: the loaded kernel module does not match the NVML library"
        if lib:
            msg += " (NVML library version %s)" % lib
        return NvidiaError(DRIVER_MISMATCH, msg + ".", first)
    if "couldn't communicate with the nvidia driver" in low or "nvidia driver is not loaded" in low or "driver not loaded" in low:
        return NvidiaError(NO_DRIVER, "The NVIDIA driver is not loaded: nvidia-smi couldn't communicate with the NVIDIA driver.", first)
    if "no devices were found" in low:
        return NvidiaError(NO_GPU, "The NVIDIA driver is loaded but no GPU was found (nvidia-smi: No devices were found).", first)
    if "failed to initialize nvml" in low or "nvml" in low and rc != 0:
        return NvidiaError(NVML_ERROR, "NVML could not be initialised: %s" % first, first)
    if rc != 0:
        return NvidiaError(NVML_ERROR, "nvidia-smi failed with exit code %s: %s" % (rc, first or "(no output)"), first)
    return None


def parse_query_gpu(text, fields=QUERY_FIELDS):
    """Parse ``--query-gpu=<fields> --format=csv,noheader,nounits`` output into a list of dicts."""
    gpus = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        cols = [c.strip() for c in line.split(",")]
        if len(cols) != len(fields):
            raise NvidiaError(PARSE_ERROR, "nvidia-smi --query-gpu printed %d columns, expected %d: %r" % (len(cols), len(fields), line))
        row = dict(zip(fields, cols))
        try:
            index = int(row["index"])
        except ValueError:
            raise NvidiaError(PARSE_ERROR, "nvidia-smi --query-gpu printed an unreadable GPU index: %r" % line)
        cc = _value(row.get("compute_cap"))
        gpus.append(
            {
                "index": index,
                "name": _value(row.get("name")),
                "uuid": _value(row.get("uuid")),
                "pci_bus_id": _value(row.get("pci.bus_id")),
                "compute_capability": cc,
                "architecture": architecture_name(cc),
                "driver_version": _value(row.get("driver_version")),
                "memory_total_bytes": _mib_to_bytes(row.get("memory.total")),
                "memory_used_bytes": _mib_to_bytes(row.get("memory.used")),
                "memory_free_bytes": _mib_to_bytes(row.get("memory.free")),
                "persistence_mode": _enabled(row.get("persistence_mode")),
                "ecc_mode": _value(row.get("ecc.mode.current")),
                "mig_mode": _value(row.get("mig.mode.current")),
            }
        )
    return gpus


def parse_list(text):
    """Parse ``nvidia-smi -L``: ``[{"index", "name", "uuid"}]`` (MIG lines are skipped)."""
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line.startswith("GPU "):
            continue
        head, dummy, rest = line.partition(":")
        name, dummy, tail = rest.partition("(UUID:")
        try:
            index = int(head.split()[1])
        except (IndexError, ValueError):
            continue
        out.append({"index": index, "name": name.strip(), "uuid": tail.strip().rstrip(")").strip() or None})
    return out


def parse_compute_apps(text):
    """Parse ``--query-compute-apps=pid,process_name,used_memory --format=csv,noheader,nounits``."""
    procs = []
    for line in (text or "").splitlines():
        if not line.strip() or line.lower().startswith("no running"):
            continue
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < 3:
            continue
        try:
            pid = int(cols[0])
        except ValueError:
            continue
        procs.append({"pid": pid, "name": ",".join(cols[1:-1]).strip(), "used_memory_bytes": _mib_to_bytes(cols[-1])})
    return procs


def _xml_text(node, path):
    if node is None:
        return None
    found = node.find(path)
    if found is None or found.text is None:
        return None
    return _value(found.text)


def parse_smi_xml(text):
    """Parse ``nvidia-smi -q -x``: host-level driver/CUDA versions and per-GPU details keyed by PCI bus id."""
    try:
        root = ET.fromstring((text or "").strip())
    except ET.ParseError as exc:
        raise NvidiaError(PARSE_ERROR, "nvidia-smi -q -x printed invalid XML: %s" % exc)
    if root.tag != "nvidia_smi_log":
        raise NvidiaError(PARSE_ERROR, "nvidia-smi -q -x printed XML without <nvidia_smi_log>")
    gpus = []
    for index, gpu in enumerate(root.findall("gpu")):
        procs = []
        for proc in gpu.findall("processes/process_info"):
            pid = _xml_text(proc, "pid")
            try:
                pid = int(pid)
            except (TypeError, ValueError):
                continue
            procs.append(
                {
                    "pid": pid,
                    "name": _xml_text(proc, "process_name"),
                    "used_memory_bytes": _mib_to_bytes(_xml_text(proc, "used_memory")),
                }
            )
        bus_id = gpu.get("id") or _xml_text(gpu, "pci/pci_bus_id")
        minor = _xml_text(gpu, "minor_number")
        gpus.append(
            {
                "index": index,
                "minor_number": int(minor) if minor and minor.isdigit() else None,
                "name": _xml_text(gpu, "product_name"),
                "uuid": _xml_text(gpu, "uuid"),
                "pci_bus_id": bus_id,
                "product_architecture": _xml_text(gpu, "product_architecture"),
                "memory_total_bytes": _mib_to_bytes(_xml_text(gpu, "fb_memory_usage/total")),
                "memory_used_bytes": _mib_to_bytes(_xml_text(gpu, "fb_memory_usage/used")),
                "memory_free_bytes": _mib_to_bytes(_xml_text(gpu, "fb_memory_usage/free")),
                "persistence_mode": _enabled(_xml_text(gpu, "persistence_mode")),
                "ecc_mode": _xml_text(gpu, "ecc_mode/current_ecc"),
                "mig_mode": _xml_text(gpu, "mig_mode/current_mig"),
                "processes": procs,
            }
        )
    return {
        "driver_version": _xml_text(root, "driver_version"),
        "cuda_driver_version": _xml_text(root, "cuda_version"),
        "attached_gpus": int(_xml_text(root, "attached_gpus") or len(gpus)),
        "gpus": gpus,
    }


def parse_plain_header(text):
    """Driver and CUDA version from the header of plain ``nvidia-smi`` output."""
    driver = cuda = None
    for line in (text or "").splitlines():
        if "Driver Version:" in line:
            driver = line.split("Driver Version:", 1)[1].split()[0]
        if "CUDA Version:" in line:
            cuda = line.split("CUDA Version:", 1)[1].split()[0]
        if driver and cuda:
            break
    return {"driver_version": driver, "cuda_driver_version": cuda}


def parse_meminfo(text):
    """``/proc/meminfo`` -> bytes for MemTotal and MemAvailable (``None`` when absent)."""
    values = {}
    for line in (text or "").splitlines():
        key, dummy, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            factor = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            values[key.strip()] = int(parts[0]) * factor
    return {"total_bytes": values.get("MemTotal"), "available_bytes": values.get("MemAvailable")}


def _finish(driver_version, cuda_version, gpus, meminfo, source):
    """Fill host-level facts; GPUs that report no memory of their own (GB10) get unified memory from /proc/meminfo."""
    unified = False
    for gpu in gpus:
        gpu.setdefault("driver_version", driver_version)
        gpu["driver_version"] = gpu.get("driver_version") or driver_version
        gpu["cuda_driver_version"] = cuda_version
        gpu.setdefault("processes", [])
        if gpu.get("memory_total_bytes") is None:
            unified = True
            gpu["unified_memory"] = True
            gpu["memory_source"] = "meminfo"
            total = meminfo.get("total_bytes")
            avail = meminfo.get("available_bytes")
            gpu["memory_total_bytes"] = total
            gpu["memory_free_bytes"] = avail
            gpu["memory_used_bytes"] = total - avail if total is not None and avail is not None else None
        else:
            gpu["unified_memory"] = False
            gpu["memory_source"] = source
    return {
        "source": source,
        "gpu_count": len(gpus),
        "driver_version": driver_version,
        "cuda_driver_version": cuda_version,
        "unified_memory": unified,
        "host_memory_total_bytes": meminfo.get("total_bytes"),
        "host_memory_available_bytes": meminfo.get("available_bytes"),
        "gpus": gpus,
    }


def collect_from_smi(run, meminfo, nvidia_smi="nvidia-smi"):
    """Read facts with two nvidia-smi calls (CSV query + XML). ``run(argv)`` returns ``(rc, out, err)``.

    ``run`` must raise ``FileNotFoundError`` (or return rc 127) when the binary is missing.
    """
    argv = [nvidia_smi, "--query-gpu=" + ",".join(QUERY_FIELDS), "--format=csv,noheader,nounits"]
    try:
        rc, out, err = run(argv)
    except (FileNotFoundError, OSError):
        rc, out, err = 127, "", "nvidia-smi: command not found"
    if rc == 127 or (rc != 0 and "not found" in (err or "").lower() and "nvidia" not in (out or "").lower()):
        raise NvidiaError(NO_DRIVER, "nvidia-smi was not found: the NVIDIA driver is not installed on this host.", (err or "").strip())
    failure = classify_failure(rc, out, err)
    if failure:
        raise failure
    gpus = parse_query_gpu(out)
    if not gpus:
        raise NvidiaError(NO_GPU, "The NVIDIA driver is loaded but no GPU was found (nvidia-smi listed none).")
    xml_facts = None
    rc, xout, xerr = run([nvidia_smi, "-q", "-x"])
    if rc == 0:
        try:
            xml_facts = parse_smi_xml(xout)
        except NvidiaError:
            xml_facts = None
    driver = gpus[0].get("driver_version")
    cuda = None
    if xml_facts:
        driver = driver or xml_facts["driver_version"]
        cuda = xml_facts["cuda_driver_version"]
        by_bus = {(g["pci_bus_id"] or "").lower(): g for g in xml_facts["gpus"]}
        by_uuid = {g["uuid"]: g for g in xml_facts["gpus"] if g["uuid"]}
        for gpu in gpus:
            extra = by_uuid.get(gpu["uuid"]) or by_bus.get((gpu["pci_bus_id"] or "").lower())
            if extra is None:
                continue
            gpu["processes"] = extra["processes"]
            for key in ("memory_total_bytes", "memory_used_bytes", "memory_free_bytes", "ecc_mode", "mig_mode", "persistence_mode"):
                if gpu.get(key) is None and extra.get(key) is not None:
                    gpu[key] = extra[key]
            if gpu["architecture"] is None and extra.get("product_architecture"):
                gpu["architecture"] = extra["product_architecture"]
    else:
        # No XML: the plain header still carries the CUDA version, compute-apps the processes.
        rc, pout, dummy = run([nvidia_smi])
        if rc == 0:
            cuda = parse_plain_header(pout)["cuda_driver_version"]
        rc, aout, dummy = run([nvidia_smi, "--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader,nounits"])
        if rc == 0 and len(gpus) == 1:
            gpus[0]["processes"] = parse_compute_apps(aout)
    return _finish(driver, cuda, gpus, meminfo, "nvidia-smi")


def _nvml_str(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _nvml_error_code(pynvml, exc):
    return getattr(exc, "value", None)


def collect_from_nvml(pynvml, meminfo, process_name=None):
    """Read facts through nvidia-ml-py (``import pynvml``). ``process_name(pid)`` names processes NVML cannot."""
    not_supported = getattr(pynvml, "NVML_ERROR_NOT_SUPPORTED", 3)
    codes = {
        getattr(pynvml, "NVML_ERROR_LIBRARY_NOT_FOUND", 12): NO_DRIVER,
        getattr(pynvml, "NVML_ERROR_DRIVER_NOT_LOADED", 9): NO_DRIVER,
        getattr(pynvml, "NVML_ERROR_LIB_RM_VERSION_MISMATCH", 18): DRIVER_MISMATCH,
    }
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        kind = codes.get(_nvml_error_code(pynvml, exc), NVML_ERROR)
        messages = {
            NO_DRIVER: "The NVIDIA driver is not loaded or not installed (NVML: %s)." % exc,
            DRIVER_MISMATCH: "NVIDIA driver/library version mismatch (NVML: %s)." % exc,
            NVML_ERROR: "NVML could not be initialised: %s" % exc,
        }
        raise NvidiaError(kind, messages[kind], str(exc))

    def optional(func, *args):
        try:
            return func(*args)
        except pynvml.NVMLError as exc:
            if _nvml_error_code(pynvml, exc) == not_supported:
                return None
            return None

    try:
        driver = _nvml_str(pynvml.nvmlSystemGetDriverVersion())
        cuda_raw = optional(getattr(pynvml, "nvmlSystemGetCudaDriverVersion_v2", pynvml.nvmlSystemGetCudaDriverVersion))
        cuda = "%d.%d" % (cuda_raw // 1000, (cuda_raw % 1000) // 10) if cuda_raw else None
        count = pynvml.nvmlDeviceGetCount()
        if count == 0:
            raise NvidiaError(NO_GPU, "The NVIDIA driver is loaded but no GPU was found (NVML device count 0).")
        gpus = []
        for index in range(count):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            cc = optional(pynvml.nvmlDeviceGetCudaComputeCapability, handle)
            cc = "%d.%d" % tuple(cc) if cc else None
            mem = optional(pynvml.nvmlDeviceGetMemoryInfo, handle)
            pci = optional(pynvml.nvmlDeviceGetPciInfo, handle)
            ecc = optional(pynvml.nvmlDeviceGetEccMode, handle)
            mig = optional(pynvml.nvmlDeviceGetMigMode, handle)
            pers = optional(pynvml.nvmlDeviceGetPersistenceMode, handle)
            procs = []
            for proc in optional(pynvml.nvmlDeviceGetComputeRunningProcesses, handle) or []:
                name = optional(pynvml.nvmlSystemGetProcessName, proc.pid)
                name = _nvml_str(name) if name else (process_name(proc.pid) if process_name else None)
                used = getattr(proc, "usedGpuMemory", None)
                procs.append({"pid": proc.pid, "name": name, "used_memory_bytes": used if isinstance(used, int) else None})
            bus_id = _nvml_str(getattr(pci, "busId", None)) if pci is not None else None
            gpus.append(
                {
                    "index": index,
                    "name": _nvml_str(pynvml.nvmlDeviceGetName(handle)),
                    "uuid": _nvml_str(pynvml.nvmlDeviceGetUUID(handle)),
                    "pci_bus_id": bus_id,
                    "compute_capability": cc,
                    "architecture": architecture_name(cc),
                    "driver_version": driver,
                    "memory_total_bytes": getattr(mem, "total", None) if mem is not None else None,
                    "memory_used_bytes": getattr(mem, "used", None) if mem is not None else None,
                    "memory_free_bytes": getattr(mem, "free", None) if mem is not None else None,
                    "persistence_mode": bool(pers) if pers is not None else None,
                    "ecc_mode": ("Enabled" if ecc[0] else "Disabled") if ecc else None,
                    "mig_mode": ("Enabled" if mig[0] else "Disabled") if mig else None,
                    "processes": procs,
                }
            )
    except pynvml.NVMLError as exc:
        raise NvidiaError(NVML_ERROR, "NVML failed while reading GPU facts: %s" % exc, str(exc))
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # pylint: disable=broad-except
            pass
    return _finish(driver, cuda, gpus, meminfo, "nvml")


def _import_pynvml():
    import pynvml  # pylint: disable=import-error,import-outside-toplevel

    return pynvml


def _read_meminfo(path="/proc/meminfo"):
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return parse_meminfo(handle.read())
    except OSError:
        return {"total_bytes": None, "available_bytes": None}


def _proc_comm(pid):
    try:
        with open("/proc/%d/comm" % int(pid), "r", encoding="utf-8") as handle:
            return handle.read().strip() or None
    except (OSError, ValueError):
        return None


def gather(run, nvidia_smi=None, source="auto", import_pynvml=_import_pynvml, meminfo=None):
    """Collect GPU facts the way gpu_info and preflight_info do.

    ``source``: ``auto`` (NVML when ``pynvml`` imports, else nvidia-smi), ``nvml`` or ``nvidia_smi``.
    ``nvidia_smi``: path of the binary, ``None`` when it is not on the host.
    Raises ``NvidiaError``; ``ImportError`` only for ``source="nvml"`` without nvidia-ml-py.
    """
    if meminfo is None:
        meminfo = _read_meminfo()
    if source in ("auto", "nvml"):
        try:
            pynvml = import_pynvml()
        except ImportError:
            if source == "nvml":
                raise
            pynvml = None
        if pynvml is not None:
            try:
                return collect_from_nvml(pynvml, meminfo, _proc_comm)
            except NvidiaError as exc:
                # libnvidia-ml missing: let nvidia-smi give the same answer in its own words.
                if source == "nvml" or exc.kind != NO_DRIVER or not nvidia_smi:
                    raise
    if not nvidia_smi:
        raise NvidiaError(NO_DRIVER, "nvidia-smi was not found: the NVIDIA driver is not installed on this host.")
    return collect_from_smi(run, meminfo, nvidia_smi)
