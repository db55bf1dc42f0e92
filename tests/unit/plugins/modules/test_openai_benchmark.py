# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of sparkfleet.trtllm.openai_benchmark: main() against a paced streaming server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.sparkfleet.trtllm.plugins.modules import openai_benchmark

DELAY = 0.01  # 100 tokens/s per request


class _Paced(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    posts = 0

    def log_message(self, *args):
        pass

    def do_GET(self):  # pylint: disable=invalid-name
        body = json.dumps({"data": [{"id": "tiny"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # pylint: disable=invalid-name
        type(self).posts += 1
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(obj):
            data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        for _token in range(req["max_tokens"]):
            time.sleep(DELAY)
            chunk({"choices": [{"index": 0, "text": " x"}]})
        chunk({"choices": [], "usage": {"prompt_tokens": len(req["prompt"].split()), "completion_tokens": req["max_tokens"]}})
        chunk(b"[DONE]")
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture()
def url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Paced)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Paced.posts = 0
    yield "http://127.0.0.1:%d/v1" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            openai_benchmark.main()
    return json.loads(capsys.readouterr().out)


def test_sweep_measures_the_paced_rate(url, capsys):
    result = run(capsys, {"base_url": url, "input_tokens": 16, "output_tokens": 10, "concurrency": [1, 3],
                          "num_prompts": 6, "return_requests": True})
    assert not result.get("failed"), result
    assert result["model"] == "tiny" and result["warmup"]["output_tokens"] == 10
    assert [lvl["concurrency"] for lvl in result["levels"]] == [1, 3]
    for lvl in result["levels"]:
        assert lvl["completed"] == 6 and lvl["total_output_tokens"] == 60 and lvl["total_input_tokens"] == 96
        assert 1000.0 / lvl["tpot_ms"]["mean"] == pytest.approx(100, rel=0.5)
        assert len(lvl["requests"]) == 6 and len(lvl["requests"][0]["itl_ms"]) == 9
    assert result["levels"][1]["output_throughput"] > 1.5 * result["levels"][0]["output_throughput"]
    assert _Paced.posts == 1 + 12


def test_check_mode_sends_no_load(url, capsys):
    result = run(capsys, {"base_url": url, "_ansible_check_mode": True})
    assert result["levels"] == [] and result["changed"] is False and _Paced.posts == 0


@pytest.mark.parametrize("args,message", [
    ({"model": "other"}, "not the model 'other'"),
    ({"concurrency": [0]}, "concurrency must be"),
    ({"input_tokens": 0}, "input_tokens and output_tokens"),
    ({"base_url": "127.0.0.1:1"}, "not a usable server URL"),
])
def test_bad_input_fails_with_a_reason(url, capsys, args, message):
    result = run(capsys, dict({"base_url": url}, **args))
    assert result["failed"] and message in result["msg"]


def test_unreachable_server_fails_clearly(capsys):
    result = run(capsys, {"base_url": "http://127.0.0.1:9", "request_timeout_seconds": 2})
    assert result["failed"] and "GET http://127.0.0.1:9/v1/models failed" in result["msg"]


# --- against the lab's trtllm-serve stand-in, run as a local process ----------------------------------------

STANDIN = (Path(__file__).resolve().parents[4] / "lab" / "images" / "trtllm-standin" / "overlay" / "usr" / "local"
           / "bin" / "trtllm-serve")
STANDIN_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def standin(tmp_path):
    """The stand-in trtllm-serve on 127.0.0.1 paced at 10 tokens/s, with a fake Hub cache holding the model."""
    if not STANDIN.is_file():
        pytest.skip("the trtllm-serve stand-in is not in this checkout")
    repo = tmp_path / "hub" / "models--t--m"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(STANDIN_COMMIT)
    (repo / "snapshots" / STANDIN_COMMIT).mkdir(parents=True)
    (repo / "snapshots" / STANDIN_COMMIT / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 4096}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1", TRTLLM_STANDIN_LOAD_SECONDS="0.2",
               TRTLLM_STANDIN_TOKENS_PER_SECOND="10")
    proc = subprocess.Popen([sys.executable, str(STANDIN), "t/m", "--host", "127.0.0.1", "--port", str(port)],  # pylint: disable=consider-using-with
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    yield "http://127.0.0.1:%d" % port
    proc.terminate()
    proc.wait(10)


def test_standin_rate_is_measured_within_ten_percent(standin, capsys):
    result = run(capsys, {"base_url": standin, "input_tokens": 8, "output_tokens": 8, "concurrency": [1, 2],
                          "num_prompts": 2})
    assert not result.get("failed"), result
    for lvl in result["levels"]:
        assert lvl["completed"] == 2 and lvl["total_output_tokens"] == 16
        assert lvl["tput_user"] == pytest.approx(10, rel=0.10)
        assert 1000.0 / lvl["tpot_ms"]["mean"] == pytest.approx(10, rel=0.10)
