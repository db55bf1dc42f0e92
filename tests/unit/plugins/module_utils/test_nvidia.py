# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the nvidia-smi / NVML parsers, fed with captured outputs (tests/unit/fixtures/nvidia-smi/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.sparkfleet.trtllm.plugins.module_utils import _nvidia as nv

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia-smi"
GB10 = FIX / "gb10"
H100 = FIX / "h100"
GB10_UUID = "GPU-5f2a9c1e-7d43-4b8e-9a61-3c0d2e8f4b17"
MIB = 1024 * 1024

needs_h100 = pytest.mark.skipif(not (H100 / "query-gpu.csv").exists(),
                                reason="real H100 captures not recorded yet (tests/gpu/run.sh writes them)")


def fixture_runner(folder: Path, calls: list | None = None, fields=None):
    """A ``run(argv)`` that answers like nvidia-smi from the captured files of ``folder``."""

    def run(argv):
        if calls is not None:
            calls.append(argv[1:])
        args = argv[1:]
        if (folder / "stdout.txt").exists():
            return int((folder / "rc").read_text()), (folder / "stdout.txt").read_text(), ""
        if args and args[0].startswith("--query-gpu="):
            text = (folder / "query-gpu.csv").read_text()
            if fields:  # the capture holds more columns than the collection asks for: keep ours, in our order
                rows = [dict(zip(fields, (c.strip() for c in line.split(",")))) for line in text.splitlines() if line.strip()]
                text = "".join(", ".join(row[f] for f in nv.QUERY_FIELDS) + "\n" for row in rows)
            return 0, text, ""
        if args == ["-q", "-x"]:
            return 0, (folder / "q-x.xml").read_text(), ""
        if args == ["-L"]:
            return 0, (folder / "L.txt").read_text(), ""
        if args and args[0].startswith("--query-compute-apps="):
            return 0, (folder / "query-compute-apps.csv").read_text(), ""
        if not args:
            return 0, (folder / "plain.txt").read_text(), ""
        return 2, "Invalid combination of input arguments.", ""

    return run


class FakeNVMLError(Exception):
    def __init__(self, value):
        super().__init__("NVML error %d" % value)
        self.value = value


class FakePynvml:
    """Replays an nvml.json capture (format of tests/gpu/capture_nvml.py: one entry per GPU under "gpus";
    a value ``{"error": code}`` means the NVML call raised NVMLError(code))."""

    NVMLError = FakeNVMLError
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_DRIVER_NOT_LOADED = 9
    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18

    def __init__(self, data, init_error=None):
        self.data = data
        self.init_error = init_error
        self.shutdown_called = False

    @staticmethod
    def _answer(value):
        if isinstance(value, dict) and "error" in value:
            raise FakeNVMLError(value["error"])
        return value

    def nvmlInit(self):
        if self.init_error:
            raise FakeNVMLError(self.init_error)

    def nvmlShutdown(self):
        self.shutdown_called = True

    def nvmlSystemGetDriverVersion(self):
        return self._answer(self.data["driver_version"])

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return self._answer(self.data["cuda_driver_version"])

    def nvmlSystemGetCudaDriverVersion(self):
        return self._answer(self.data["cuda_driver_version"])

    def nvmlDeviceGetCount(self):
        return len(self.data["gpus"])

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.data["gpus"][index]

    def nvmlDeviceGetName(self, h):
        return self._answer(h["name"])

    def nvmlDeviceGetUUID(self, h):
        return self._answer(h["uuid"])

    def nvmlDeviceGetPciInfo(self, h):
        return type("Pci", (), {"busId": self._answer(h["pci_bus_id"])})()

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return tuple(self._answer(h["compute_capability"]))

    def nvmlDeviceGetMemoryInfo(self, h):
        return type("Mem", (), {k: self._answer(h["memory_" + k]) for k in ("total", "used", "free")})()

    def nvmlDeviceGetPersistenceMode(self, h):
        return self._answer(h["persistence_mode"])

    def nvmlDeviceGetEccMode(self, h):
        return self._answer(h["ecc_mode"])

    def nvmlDeviceGetMigMode(self, h):
        return self._answer(h["mig_mode"])

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [type("P", (), {"pid": p["pid"], "usedGpuMemory": p.get("used_memory_bytes")})() for p in self._answer(h["processes"])]

    def nvmlSystemGetProcessName(self, pid):
        for dev in self.data["gpus"]:
            for p in dev.get("processes") or []:
                if p["pid"] == pid and p.get("name"):
                    return p["name"]
        raise FakeNVMLError(3)


def h100_fields():
    """Field names of the H100 query-gpu capture, from the header line nvidia-smi printed with it."""
    header = (H100 / "query-gpu-header.csv").read_text().splitlines()[0]
    return tuple(col.strip().split(" [")[0] for col in header.split(","))


GB10_MEMINFO = nv.parse_meminfo((GB10 / "meminfo").read_text())


@pytest.mark.parametrize("cc,arch", [
    ("12.1", "Blackwell"), ("10.0", "Blackwell"), ("9.0", "Hopper"), ("8.9", "Ada Lovelace"), ("8.0", "Ampere"),
    ("8.6", "Ampere"), ("8.7", "Ampere"), ("7.5", "Turing"), ("7.0", "Volta"), ("7.2", "Volta"), ("garbage", None), (None, None),
])
def test_architecture_names_follow_compute_capability(cc, arch):
    assert nv.architecture_name(cc) == arch


def test_version_tuple_compares_driver_versions():
    assert nv.version_tuple("580.95.05") == (580, 95, 5)
    assert nv.version_tuple("575.57.08") < nv.version_tuple("580")
    assert nv.version_tuple("20.10.24+dfsg1") >= nv.version_tuple("20.10")
    assert nv.version_tuple(None) == ()


def test_gb10_query_gpu_reads_na_memory_as_missing():
    gpus = nv.parse_query_gpu((GB10 / "query-gpu.csv").read_text())
    assert len(gpus) == 1
    gpu = gpus[0]
    assert gpu["name"] == "NVIDIA GB10"
    assert gpu["uuid"] == GB10_UUID
    assert gpu["pci_bus_id"] == "0000000F:01:00.0"
    assert gpu["compute_capability"] == "12.1"
    assert gpu["architecture"] == "Blackwell"
    assert gpu["driver_version"] == "580.95.05"
    assert gpu["memory_total_bytes"] is None and gpu["memory_used_bytes"] is None
    assert gpu["persistence_mode"] is True
    assert gpu["ecc_mode"] is None and gpu["mig_mode"] is None


def test_gb10_xml_list_plain_and_meminfo():
    xml = nv.parse_smi_xml((GB10 / "q-x.xml").read_text())
    assert xml["driver_version"] == "580.95.05"
    assert xml["cuda_driver_version"] == "13.0"
    assert xml["attached_gpus"] == 1
    assert xml["gpus"][0]["uuid"] == GB10_UUID
    assert xml["gpus"][0]["memory_total_bytes"] is None
    assert xml["gpus"][0]["product_architecture"] == "Blackwell"
    assert nv.parse_list((GB10 / "L.txt").read_text()) == [{"index": 0, "name": "NVIDIA GB10", "uuid": GB10_UUID}]
    assert nv.parse_plain_header((GB10 / "plain.txt").read_text()) == {"driver_version": "580.95.05", "cuda_driver_version": "13.0"}
    assert GB10_MEMINFO == {"total_bytes": 125490820 * 1024, "available_bytes": 116391824 * 1024}


def test_gb10_collect_from_smi_uses_meminfo_for_unified_memory():
    calls = []
    facts = nv.collect_from_smi(fixture_runner(GB10, calls), GB10_MEMINFO)
    assert calls == [["--query-gpu=" + ",".join(nv.QUERY_FIELDS), "--format=csv,noheader,nounits"], ["-q", "-x"]]
    assert facts["source"] == "nvidia-smi"
    assert facts["gpu_count"] == 1
    assert facts["unified_memory"] is True
    assert facts["cuda_driver_version"] == "13.0"
    gpu = facts["gpus"][0]
    assert gpu["memory_source"] == "meminfo"
    assert gpu["memory_total_bytes"] == 125490820 * 1024
    assert gpu["memory_free_bytes"] == 116391824 * 1024
    assert gpu["memory_used_bytes"] == (125490820 - 116391824) * 1024
    assert gpu["processes"] == []


def test_gb10_collect_without_xml_falls_back_to_plain_and_compute_apps(tmp_path):
    for name in ("query-gpu.csv", "plain.txt", "L.txt"):
        (tmp_path / name).write_text((GB10 / name).read_text())
    (tmp_path / "q-x.xml").write_text("<not xml")
    (tmp_path / "query-compute-apps.csv").write_text("4242, /usr/bin/python3, 9000\n")
    facts = nv.collect_from_smi(fixture_runner(tmp_path), GB10_MEMINFO)
    assert facts["cuda_driver_version"] == "13.0"
    assert facts["gpus"][0]["processes"] == [{"pid": 4242, "name": "/usr/bin/python3", "used_memory_bytes": 9000 * MIB}]


def test_gb10_nvml_gives_the_same_facts_as_nvidia_smi():
    fake = FakePynvml(json.loads((GB10 / "nvml.json").read_text()))
    nvml = nv.collect_from_nvml(fake, GB10_MEMINFO)
    smi = nv.collect_from_smi(fixture_runner(GB10), GB10_MEMINFO)
    assert fake.shutdown_called
    assert nvml["source"] == "nvml"
    for key in ("gpu_count", "driver_version", "cuda_driver_version", "unified_memory"):
        assert nvml[key] == smi[key], key
    for key in ("name", "uuid", "pci_bus_id", "compute_capability", "architecture", "memory_total_bytes", "persistence_mode",
                "ecc_mode", "mig_mode"):
        assert nvml["gpus"][0][key] == smi["gpus"][0][key], key


@pytest.mark.parametrize("folder,kind,words", [
    ("no-driver", nv.NO_DRIVER, "couldn't communicate"),
    ("mismatch", nv.DRIVER_MISMATCH, "NVML library version 580.95"),
    ("no-devices", nv.NO_GPU, "no GPU was found"),
])
def test_failures_have_distinct_kinds_and_hints(folder, kind, words):
    with pytest.raises(nv.NvidiaError) as err:
        nv.collect_from_smi(fixture_runner(FIX / folder), GB10_MEMINFO)
    assert err.value.kind == kind
    assert words in err.value.message
    assert err.value.hint == nv.HINTS[kind]
    assert err.value.as_dict()["kind"] == kind


def test_missing_nvidia_smi_is_no_driver():
    def run(argv):
        raise FileNotFoundError(argv[0])

    with pytest.raises(nv.NvidiaError) as err:
        nv.collect_from_smi(run, GB10_MEMINFO)
    assert err.value.kind == nv.NO_DRIVER
    with pytest.raises(nv.NvidiaError) as err:
        nv.gather(run, nvidia_smi=None, source="nvidia_smi", meminfo=GB10_MEMINFO)
    assert err.value.kind == nv.NO_DRIVER and "not found" in err.value.message


@pytest.mark.parametrize("code,kind", [(18, nv.DRIVER_MISMATCH), (9, nv.NO_DRIVER), (12, nv.NO_DRIVER), (999, nv.NVML_ERROR)])
def test_nvml_init_errors_are_classified(code, kind):
    fake = FakePynvml(json.loads((GB10 / "nvml.json").read_text()), init_error=code)
    with pytest.raises(nv.NvidiaError) as err:
        nv.collect_from_nvml(fake, GB10_MEMINFO)
    assert err.value.kind == kind


def test_gather_prefers_nvml_and_falls_back_to_smi_when_the_library_is_missing():
    data = json.loads((GB10 / "nvml.json").read_text())
    facts = nv.gather(fixture_runner(GB10), "nvidia-smi", "auto", import_pynvml=lambda: FakePynvml(data), meminfo=GB10_MEMINFO)
    assert facts["source"] == "nvml"
    facts = nv.gather(fixture_runner(GB10), "nvidia-smi", "auto", import_pynvml=lambda: FakePynvml(data, init_error=12),
                      meminfo=GB10_MEMINFO)
    assert facts["source"] == "nvidia-smi"

    def no_module():
        raise ImportError("No module named 'pynvml'")

    assert nv.gather(fixture_runner(GB10), "nvidia-smi", "auto", import_pynvml=no_module, meminfo=GB10_MEMINFO)["source"] == "nvidia-smi"
    with pytest.raises(ImportError):
        nv.gather(fixture_runner(GB10), "nvidia-smi", "nvml", import_pynvml=no_module, meminfo=GB10_MEMINFO)


def test_query_gpu_with_wrong_column_count_is_a_parse_error():
    with pytest.raises(nv.NvidiaError) as err:
        nv.parse_query_gpu("0, NVIDIA GB10\n")
    assert err.value.kind == nv.PARSE_ERROR


# ---- real H100 captures (recorded by tests/gpu/run.sh on the lent GPU machine) --------------------------


@needs_h100
def test_h100_query_gpu_and_xml_agree():
    smi = nv.collect_from_smi(fixture_runner(H100, fields=h100_fields()), {"total_bytes": None, "available_bytes": None})
    assert smi["unified_memory"] is False
    gpu = smi["gpus"][0]
    assert gpu["name"].startswith("NVIDIA H100")
    assert gpu["compute_capability"] == "9.0"
    assert gpu["architecture"] == "Hopper"
    assert gpu["memory_total_bytes"] > 70 * 1024 ** 3
    assert gpu["memory_source"] == "nvidia-smi"
    xml = nv.parse_smi_xml((H100 / "q-x.xml").read_text())
    assert xml["driver_version"] == gpu["driver_version"]
    assert smi["cuda_driver_version"] == xml["cuda_driver_version"]
    listed = nv.parse_list((H100 / "L.txt").read_text())
    assert [(g["index"], g["name"], g["uuid"]) for g in listed] == [(g["index"], g["name"], g["uuid"]) for g in smi["gpus"]]
    assert nv.parse_plain_header((H100 / "plain.txt").read_text())["driver_version"] == gpu["driver_version"]


@needs_h100
def test_h100_nvml_capture_matches_nvidia_smi():
    if not (H100 / "nvml.json").exists():
        pytest.skip("no NVML capture")
    nvml = nv.collect_from_nvml(FakePynvml(json.loads((H100 / "nvml.json").read_text())), {"total_bytes": None, "available_bytes": None})
    smi = nv.collect_from_smi(fixture_runner(H100, fields=h100_fields()), {"total_bytes": None, "available_bytes": None})
    for key in ("gpu_count", "driver_version", "cuda_driver_version", "unified_memory"):
        assert nvml[key] == smi[key], key
    for a, b in zip(nvml["gpus"], smi["gpus"]):
        for key in ("name", "uuid", "compute_capability", "architecture", "memory_total_bytes"):
            assert a[key] == b[key], key
        assert a["pci_bus_id"].lower() == b["pci_bus_id"].lower()


@needs_h100
def test_h100_compute_apps_parse():
    procs = nv.parse_compute_apps((H100 / "query-compute-apps.csv").read_text())
    assert all(isinstance(p["pid"], int) for p in procs)


@needs_h100
def test_h100_raw_capture_with_units_and_extra_columns():
    fields = h100_fields()
    raw = nv.parse_query_gpu((H100 / "query-gpu.csv").read_text(), fields)
    with_units = nv.parse_query_gpu((H100 / "query-gpu-header.csv").read_text().splitlines()[1], fields)
    assert raw[0]["memory_total_bytes"] == 81559 * MIB == with_units[0]["memory_total_bytes"]
    assert raw[0]["memory_free_bytes"] == with_units[0]["memory_free_bytes"]
    assert raw[0]["ecc_mode"] == "Enabled" and raw[0]["mig_mode"] == "Disabled"
    assert raw[0]["pci_bus_id"] == "00000000:00:06.0"


@needs_h100
def test_h100_invalid_field_is_reported_with_its_text():
    failure = nv.classify_failure(2, (H100 / "invalid-field.txt").read_text(), "")
    assert failure.kind == nv.NVML_ERROR
    assert 'Field "bogus_field" is not a valid field to query.' in failure.message
