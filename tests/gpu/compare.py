# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check that gpu_info's facts equal what nvidia-smi prints, and that the preflight play's GPU checks passed.

usage: python compare.py OUT_DIR   (the folder run.sh filled). Writes OUT_DIR/compare.json; exit 1 on any mismatch.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

MIB = 1024 * 1024


def module_result(path: Path) -> dict:
    """The JSON of `ansible -o` output: `localhost | SUCCESS => {...}`."""
    for line in path.read_text().splitlines():
        if " => {" in line:
            result = json.loads(line[line.index("{"):])
            if "FAILED" in line.split(" => ", 1)[0]:
                result["failed"] = True
            return result
    return {"failed": True, "msg": "no module result in %s" % path.name}


def smi_rows(out: Path) -> list[dict]:
    lines = (out / "nvidia-smi" / "query-gpu-header.csv").read_text().splitlines()
    fields = [f.strip().split(" [")[0] for f in lines[0].split(",")]
    return [dict(zip(fields, (c.strip() for c in line.split(",")))) for line in lines[1:] if line.strip()]


def main(out: Path) -> int:
    problems, compared = [], []
    rows = smi_rows(out)
    # KIT_SKIP_NVML=1 only for dry runs of the kit against a fake nvidia-smi on a machine without the NVML library.
    sources = ("nvidia_smi",) if os.environ.get("KIT_SKIP_NVML") == "1" else ("nvml", "nvidia_smi")
    for source in sources:
        path = out / ("gpu_info-%s.json" % source)
        if not path.exists():
            problems.append("%s: no gpu_info result" % source)
            continue
        result = module_result(path)
        if result.get("failed"):
            problems.append("%s: gpu_info failed: %s" % (source, result.get("msg")))
            continue
        facts = result["gpu_info"]
        if facts["gpu_count"] != len(rows):
            problems.append("%s: gpu_count %s, nvidia-smi lists %d" % (source, facts["gpu_count"], len(rows)))
        for gpu, row in zip(facts["gpus"], rows):
            pairs = {
                "name": (gpu["name"], row["name"]),
                "uuid": (gpu["uuid"], row["uuid"]),
                "driver_version": (gpu["driver_version"], row["driver_version"]),
                "compute_capability": (gpu["compute_capability"], row["compute_cap"]),
                "pci_bus_id": ((gpu["pci_bus_id"] or "").lower(), row["pci.bus_id"].lower()),
            }
            total = row["memory.total"].split()[0]
            if total.replace(".", "").isdigit():  # discrete GPU: MiB; GB10 prints [N/A] and uses /proc/meminfo
                pairs["memory_total_bytes"] = (gpu["memory_total_bytes"], int(total) * MIB)
            for key, (ours, theirs) in pairs.items():
                compared.append({"source": source, "gpu": gpu["index"], "field": key, "gpu_info": ours, "nvidia_smi": theirs})
                if ours != theirs:
                    problems.append("%s gpu %s %s: gpu_info %r != nvidia-smi %r" % (source, gpu["index"], key, ours, theirs))
    report_path = out / "reports" / "preflight.json"
    checks = {}
    if report_path.exists():
        report = json.loads(report_path.read_text())
        for host, entry in report["hosts"].items():
            checks = {c["check"]: c for c in entry["checks"]}
            for name in ("gpu_driver", "cuda_driver", "memory", "disk"):
                if checks.get(name, {}).get("status") != "pass":
                    problems.append("%s: preflight %s is %s: %s" % (host, name, checks.get(name, {}).get("status"), checks.get(name, {}).get("message")))
            if checks.get("gpu_architecture", {}).get("status") not in ("pass", "warn"):
                problems.append("%s: preflight gpu_architecture is %s" % (host, checks.get("gpu_architecture")))
            if shutil.which("docker") is None and checks.get("docker", {}).get("status") != "fail":
                problems.append("%s: expected docker to fail on this Docker-less machine, got %s" % (host, checks.get("docker")))
    else:
        problems.append("no preflight report at %s" % report_path)
    summary = {"ok": not problems, "problems": problems, "compared": compared,
               "preflight": {k: {"status": v["status"], "value": v["value"]} for k, v in checks.items()}}
    (out / "compare.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({"ok": summary["ok"], "problems": problems, "fields_compared": len(compared)}, indent=2))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
