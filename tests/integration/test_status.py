# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/status.yml on an isolated lab of 2 sim Sparks serving the demo models (lab/demo-vars.yml).

The lab is served once (site.yml with the demo vars, skipped when it already serves them); then status.yml must
report, per host and model, the image, digest, model and commit the hosts really hold (read over SSH), a running
container, a probe that reached "serving", and the GPU memory; write JSON and a self-contained HTML page that
headless Chromium renders (screenshot + DOM dump with the rows); list an unreachable host as such; and change
nothing, in check mode too.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _serving import LAB_SUFFIX, serve_demo  # pytest puts tests/integration on sys.path

REPO = Path(__file__).resolve().parents[2]
LLM = "nvidia/Qwen3-8B-FP4"
VLM = "nvidia/Qwen2.5-VL-7B-Instruct-FP4"
HF_HOME = "/var/lib/sparkfleet/huggingface"
STATE_HASH = ("sha256sum /var/lib/sparkfleet/state/serving-*.json; "
              "docker inspect -f '{{.Name}} {{.Id}} {{.State.StartedAt}} {{.RestartCount}}' $(docker ps -aq)")


@pytest.fixture(scope="module")
def lab(lab_factory):
    lab = lab_factory(LAB_SUFFIX, 2)
    serve_demo(lab)
    return lab


@pytest.fixture(scope="module")
def report(lab, tmp_path_factory):
    out = tmp_path_factory.mktemp("status")
    out.chmod(0o755)  # the mode the role gives the report folder: its creation is then no change
    before = {host: lab.ssh(host, STATE_HASH, sudo=True).stdout for host in lab.host_names}
    proc = lab.ansible_playbook(REPO / "playbooks" / "status.yml", "-e", f"status_report_dir={out}", timeout=600)
    assert proc.returncode == 0, proc.output[-6000:]
    after = {host: lab.ssh(host, STATE_HASH, sudo=True).stdout for host in lab.host_names}
    return {"dir": out, "proc": proc, "json": json.loads((out / "status.json").read_text()),
            "before": before, "after": after}


def _host_truth(lab, host: str) -> dict:
    """What the host really runs: image reference, its registry digest, the model commits of its cache."""
    image = lab.vars["sparkfleet_trtllm_image"]
    digest = lab.ssh(host, f"docker image inspect -f '{{{{index .RepoDigests 0}}}}' {image}", sudo=True).stdout.strip()
    commits = {}
    for model in (LLM, VLM):
        ref = f"{HF_HOME}/hub/models--{model.replace('/', '--')}/refs/main"
        commits[model] = lab.ssh(host, f"cat {ref}", sudo=True).stdout.strip()
    return {"image": image, "digest": digest.split("@", 1)[1], "commits": commits}


def test_status_reports_what_the_hosts_really_run(lab, report):
    hosts = {h["host"]: h for h in report["json"]["hosts"]}
    assert set(hosts) == set(lab.host_names)
    for name in lab.host_names:
        truth = _host_truth(lab, name)
        entry = hosts[name]
        assert entry["reachable"] and entry["address"] == lab.hosts[name]
        rows = {i["name"]: i for i in entry["instances"]}
        assert set(rows) == {"llm", "vlm"}
        for inst, model, port in (("llm", LLM, 8355), ("vlm", VLM, 8356)):
            row = rows[inst]
            assert row["model"] == model
            assert len(truth["commits"][model]) == 40 and row["commit"] == truth["commits"][model]
            assert row["image"] == truth["image"]
            assert row["image_digest"] == truth["digest"] and row["image_digest"].startswith("sha256:")
            assert row["image_matches_deployment"] is True
            assert row["endpoint_url"] == f"http://{lab.hosts[name]}:{port}/v1"
            assert row["container_state"] == "running" and row["uptime_seconds"] > 0
            assert row["probe"]["stage"] == "serving" and row["probe"]["latency_ms"] > 0
            assert row["problems"] == []
        assert entry["gpu"]["memory_total_bytes"] > 0 and entry["gpu"]["name"] == "NVIDIA GB10"


def test_status_prints_a_table_and_changes_nothing(lab, report):
    out = report["proc"].output
    assert "HOST" in out and "PROBE" in out
    for name in lab.host_names:
        assert any(name in line and "llm" in line and LLM in line and "serving" in line for line in out.splitlines())
        assert report["proc"].recap[name]["changed"] == 0
    assert report["before"] == report["after"]


class _Rows(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows = []
        self._row = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = {"attrs": dict(attrs), "text": ""}

    def handle_data(self, data):
        if self._row is not None:
            self._row["text"] += data

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (tools/install-deps.sh)")
def test_html_page_is_self_contained_and_renders_in_headless_chromium(lab, report, tmp_path):
    page = report["dir"] / "status.html"
    html = page.read_text()
    # self-contained: no external script, stylesheet, image or font
    for needle in ("<script", "<link", "src=", "url(", "@import"):
        assert needle not in html
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "status.png"
    proc = subprocess.run(base + [f"--screenshot={shot}", "--window-size=1600,900", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _png_size(shot) == (1600, 900) and shot.stat().st_size > 20000  # a rendered table, not a blank page
    dom = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-3000:]
    parser = _Rows()
    parser.feed(dom.stdout)
    rows = [r for r in parser.rows if r["attrs"].get("class") == "instance"]
    assert sorted((r["attrs"]["data-host"], r["attrs"]["data-name"]) for r in rows) == sorted(
        (h, n) for h in lab.host_names for n in ("llm", "vlm"))
    for row in rows:
        assert (LLM if row["attrs"]["data-name"] == "llm" else VLM) in row["text"]
        assert lab.vars["sparkfleet_trtllm_image"] in row["text"] and "serving" in row["text"]


def test_check_mode_and_an_unreachable_host(lab, tmp_path):
    tmp_path.chmod(0o755)
    ghost = tmp_path / "ghost.yml"
    # TEST-NET-1 address: nothing answers; a short SSH timeout keeps the test quick.
    ghost.write_text("all:\n  children:\n    sparks:\n      hosts:\n        spark-ghost:\n"
                     "          ansible_host: 192.0.2.1\n          ansible_ssh_common_args: -o ConnectTimeout=3\n")
    before = {host: lab.ssh(host, STATE_HASH, sudo=True).stdout for host in lab.host_names}
    proc = lab.ansible_playbook(REPO / "playbooks" / "status.yml", "-i", str(ghost), "--check",
                                "-e", f"status_report_dir={tmp_path}", "-e", "status_gpu=false", timeout=600)
    assert proc.returncode == 0, proc.output[-6000:]
    doc = json.loads((tmp_path / "status.json").read_text())
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert hosts["spark-ghost"]["reachable"] is False and hosts["spark-ghost"]["error"]
    assert all(hosts[h]["reachable"] and len(hosts[h]["instances"]) == 2 for h in lab.host_names)
    html = (tmp_path / "status.html").read_text()
    assert 'class="unreachable" data-host="spark-ghost"' in html
    assert any("spark-ghost" in line and "UNREACHABLE" in line for line in proc.output.splitlines())
    for host in lab.host_names:
        assert proc.recap[host]["changed"] == 0
    assert before == {host: lab.ssh(host, STATE_HASH, sudo=True).stdout for host in lab.host_names}
