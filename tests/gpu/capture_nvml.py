# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Record what nvidia-ml-py answers on this machine, as JSON (the nvml.json fixture format).

Every value is what the pynvml call returned; a call that raised NVMLError is recorded as {"error": <code>}.
tests/unit/plugins/module_utils/test_nvidia.py replays such a file through a fake pynvml.
"""

from __future__ import annotations

import json
import sys


def _listed(value):
    return value if isinstance(value, dict) else list(value)


def main() -> int:
    try:
        import pynvml
    except ImportError:
        print(json.dumps({"error": "pynvml (nvidia-ml-py) is not installed"}))
        return 1

    def call(func, *args):
        try:
            value = func(*args)
        except pynvml.NVMLError as exc:
            return {"error": getattr(exc, "value", None), "text": str(exc)}
        if isinstance(value, bytes):
            value = value.decode()
        return value

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        print(json.dumps({"init_error": getattr(exc, "value", None), "text": str(exc)}))
        return 1
    try:
        out = {
            "driver_version": call(pynvml.nvmlSystemGetDriverVersion),
            "cuda_driver_version": call(getattr(pynvml, "nvmlSystemGetCudaDriverVersion_v2", pynvml.nvmlSystemGetCudaDriverVersion)),
            "nvml_version": call(pynvml.nvmlSystemGetNVMLVersion),
            "count": call(pynvml.nvmlDeviceGetCount),
            "gpus": [],
        }
        for index in range(out["count"] if isinstance(out["count"], int) else 0):
            h = pynvml.nvmlDeviceGetHandleByIndex(index)
            mem = call(pynvml.nvmlDeviceGetMemoryInfo, h)
            pci = call(pynvml.nvmlDeviceGetPciInfo, h)
            procs = call(pynvml.nvmlDeviceGetComputeRunningProcesses, h)
            gpu = {
                "index": index,
                "name": call(pynvml.nvmlDeviceGetName, h),
                "uuid": call(pynvml.nvmlDeviceGetUUID, h),
                "pci_bus_id": pci if isinstance(pci, dict) else (pci.busId.decode() if isinstance(pci.busId, bytes) else pci.busId),
                "compute_capability": _listed(call(pynvml.nvmlDeviceGetCudaComputeCapability, h)),
                "persistence_mode": call(pynvml.nvmlDeviceGetPersistenceMode, h),
                "ecc_mode": call(pynvml.nvmlDeviceGetEccMode, h),
                "mig_mode": call(pynvml.nvmlDeviceGetMigMode, h),
                "architecture": call(pynvml.nvmlDeviceGetArchitecture, h),
                "processes": procs if isinstance(procs, dict) else [
                    {"pid": p.pid, "used_memory_bytes": p.usedGpuMemory if isinstance(p.usedGpuMemory, int) else None} for p in procs],
            }
            for key in ("total", "used", "free"):
                gpu["memory_" + key] = mem if isinstance(mem, dict) else getattr(mem, key)
            out["gpus"].append(gpu)
    finally:
        pynvml.nvmlShutdown()
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
