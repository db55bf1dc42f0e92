# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/module_utils/_loadgen.py: the metric definitions of TensorRT-LLM's benchmark_serving.py,
checked with fixed timestamps, and the streaming client against a local SSE server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.sparkfleet.trtllm.plugins.module_utils._http import parse_base_url
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._loadgen import (
    PROMPT_WORDS,
    RequestOutput,
    build_payload,
    calculate_metrics,
    consume_stream,
    make_prompts,
    percentile,
    run_level,
    stream_request,
)


def clock_of(*stamps):
    values = iter(stamps)
    return lambda: next(values)


def sse(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n"


COMPLETION_STREAM = [
    sse({"choices": [{"index": 0, "text": "a"}]}),
    b"\n",
    sse({"choices": [{"index": 0, "text": " b"}]}),
    sse({"choices": [{"index": 0, "text": " c"}]}),
    sse({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}),
    b"data: [DONE]\n",
]

CHAT_STREAM = [
    sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
    sse({"choices": [{"index": 0, "delta": {"content": "a"}}]}),
    sse({"choices": [{"index": 0, "delta": {"content": " b"}}]}),
    sse({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 2}}),
    b"data: [DONE]\n",
]


def test_completions_stream_timing_follows_upstream():
    # st = 10.0; chunks at 10.1, 10.15, 10.25; usage at 10.3 (not counted for completions)
    out = consume_stream(COMPLETION_STREAM, "completions", 10.0, clock_of(10.1, 10.15, 10.25, 10.3))
    assert out.success
    assert out.ttft == pytest.approx(0.1)
    assert out.itl == pytest.approx([0.05, 0.10])
    assert out.latency == pytest.approx(0.25)  # last choices chunk
    assert out.output_tokens == 3
    assert out.prompt_tokens == 9


def test_chat_stream_counts_the_role_chunk_and_the_usage_chunk_like_upstream():
    out = consume_stream(CHAT_STREAM, "chat", 0.0, clock_of(0.02, 0.12, 0.22, 0.25))
    assert out.success
    assert out.ttft == pytest.approx(0.02)  # the role chunk has choices: it is the "first token" upstream too
    assert out.itl == pytest.approx([0.10, 0.10])
    assert out.latency == pytest.approx(0.25)  # upstream's chat function moves its mark on the usage chunk
    assert out.output_tokens == 2


def test_stream_without_usage_counts_chunks_and_empty_stream_fails():
    out = consume_stream(COMPLETION_STREAM[:4] + [b"data: [DONE]\n"], "completions", 0.0, clock_of(1, 2, 3))
    assert out.success and out.output_tokens == 3
    empty = consume_stream([b"data: [DONE]\n"], "completions", 0.0, clock_of())
    assert not empty.success and "never received" in empty.error
    bad = consume_stream([b"data: {not json\n"], "completions", 0.0, clock_of(1))
    assert not bad.success and "not JSON" in bad.error


def _out(ttft, latency, tokens, itl=(), prompt=0):
    out = RequestOutput()
    out.success = True
    out.ttft, out.latency, out.output_tokens, out.itl, out.prompt_tokens = ttft, latency, tokens, list(itl), prompt
    return out


def test_calculate_metrics_with_fixed_numbers():
    outputs = [
        _out(0.1, 1.1, 11, itl=[0.1] * 10, prompt=100),   # tpot = 1.0 / 10 = 0.1
        _out(0.3, 2.3, 21, itl=[0.1] * 20, prompt=100),   # tpot = 2.0 / 20 = 0.1
        _out(0.2, 0.2, 1, prompt=100),                    # one token: no TPOT, still counted
    ]
    failed = RequestOutput()
    failed.error = "HTTP 500 Internal Server Error: boom"
    m = calculate_metrics(outputs + [failed], duration=4.0, nominal_input_tokens=128, percentiles=(50, 99))
    assert m["completed"] == 3 and m["failed"] == 1
    assert m["errors"] == {"HTTP 500 Internal Server Error": 1}
    assert m["total_output_tokens"] == 33
    assert m["total_input_tokens"] == 300
    assert m["request_throughput"] == pytest.approx(3 / 4.0)
    assert m["output_throughput"] == pytest.approx(33 / 4.0)
    assert m["total_token_throughput"] == pytest.approx(333 / 4.0)
    assert m["tpot_ms"]["mean"] == pytest.approx(100.0)
    assert m["ttft_ms"]["mean"] == pytest.approx(200.0)
    assert m["ttft_ms"]["median"] == pytest.approx(200.0)
    assert m["ttft_ms"]["p99"] == pytest.approx((0.2 + 0.98 * 0.1) * 1000)
    assert m["ttft_ms"]["std"] == pytest.approx(81.6496580927726)  # population std, as numpy.std
    assert m["itl_ms"]["mean"] == pytest.approx(100.0)
    assert m["e2el_ms"]["median"] == pytest.approx(1100.0)
    assert m["tput_user"] == pytest.approx((11 / 1.1 + 21 / 2.3 + 1 / 0.2) / 3)


def test_calculate_metrics_of_nothing_is_zero_like_upstream():
    m = calculate_metrics([], duration=1.0, nominal_input_tokens=10)
    assert m["completed"] == 0 and m["output_throughput"] == 0
    assert m["ttft_ms"] == {"mean": 0.0, "median": 0.0, "std": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0}


def test_percentile_matches_numpy_linear():
    numpy = pytest.importorskip("numpy")
    data = [0.3, 0.1, 0.7, 0.2, 0.9, 0.4, 0.05]
    for pct in (0, 1, 25, 50, 90, 99, 100):
        assert percentile(data, pct) == pytest.approx(float(numpy.percentile(data, pct)))


def test_prompts_are_seeded_and_of_the_asked_length():
    first = make_prompts(5, 64, seed=7)
    assert first == make_prompts(5, 64, seed=7)
    assert first != make_prompts(5, 64, seed=8)
    assert all(len(p.split()) == 64 and set(p.split()) <= set(PROMPT_WORDS) for p in first)


def test_payloads_are_those_of_upstream():
    path, body = build_payload("completions", "m", "hi", 32, True)
    assert path == "/v1/completions"
    assert body == {"model": "m", "prompt": "hi", "max_tokens": 32, "temperature": 0.0, "stream": True,
                    "stream_options": {"include_usage": True}, "ignore_eos": True}
    path, body = build_payload("chat", "m", "hi", 32, False)
    assert path == "/v1/chat/completions"
    assert body["max_completion_tokens"] == 32 and "ignore_eos" not in body


def test_run_level_never_exceeds_the_concurrency():
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def send(prompt):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return _out(0.01, 0.02, 2)

    outputs, duration = run_level(send, ["p"] * 12, 3)
    assert len(outputs) == 12 and all(o.success for o in outputs)
    assert state["peak"] == 3
    assert duration >= 4 * 0.02


class _SSEHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay = 0.02

    def log_message(self, *args):
        pass

    def do_POST(self):  # pylint: disable=invalid-name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["model"] != "tiny":
            payload = b'{"error": {"message": "no such model"}}'
            self.send_response(404)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data: bytes):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        for _token in range(body["max_tokens"]):
            time.sleep(self.delay)
            chunk(b"data: " + json.dumps({"choices": [{"index": 0, "text": " x"}]}).encode() + b"\n\n")
        chunk(b"data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": body["max_tokens"]}}).encode() + b"\n\n")
        chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture()
def sse_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SSEHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield parse_base_url("http://127.0.0.1:%d" % server.server_address[1])
    server.shutdown()
    server.server_close()


def test_stream_request_measures_a_paced_server(sse_server):
    out = stream_request(sse_server, "completions", "tiny", "a b c", 10, True, timeout=10)
    assert out.success, out.error
    assert out.output_tokens == 10 and out.prompt_tokens == 4 and len(out.itl) == 9
    assert out.ttft >= 0.02
    tpot = (out.latency - out.ttft) / (out.output_tokens - 1)
    # The server sleeps 20 ms between tokens: never less, and a loaded machine only adds to it.
    assert 0.018 <= tpot < 0.1, tpot
    wrong = stream_request(sse_server, "completions", "other", "a", 3, True, timeout=10)
    assert not wrong.success and wrong.error.startswith("HTTP 404") and "no such model" in wrong.error


def test_stream_request_reports_a_refused_connection():
    out = stream_request(parse_base_url("http://127.0.0.1:9"), "completions", "m", "a", 3, True, timeout=2)
    assert not out.success and out.error
