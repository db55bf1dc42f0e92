# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private module utils: a streaming OpenAI load generator and the serving metrics of TensorRT-LLM's benchmark.

Private to the sparkfleet.trtllm collection (leading underscore): no API promise to other collections.

The metric definitions are those of TensorRT-LLM's ``tensorrt_llm/serve/scripts/benchmark_serving.py``
(``calculate_metrics``) and ``backend_request_func.py`` (``async_request_openai_completions`` and
``async_request_openai_chat_completions``), both adopted from vLLM's ``benchmarks/benchmark_serving.py``
(https://github.com/NVIDIA/TensorRT-LLM/blob/main/tensorrt_llm/serve/scripts/benchmark_serving.py):

* per request, ``st`` is taken just before the POST; **TTFT** = time of the first SSE chunk that carries a
  non-empty ``choices`` list minus ``st`` (an empty ``content``/``text`` still counts, as upstream);
  **ITL** = the gaps between consecutive such chunks; **latency** (end-to-end, E2EL) = time of the last
  chunk taken into account minus ``st`` (completions: the last ``choices`` chunk; chat: the last chunk of
  any kind before ``[DONE]``, the usage chunk included, as upstream);
* the request's output length is ``usage.completion_tokens`` of the final usage chunk
  (``stream_options.include_usage``); upstream falls back to its tokenizer, this client (no tokenizer) to
  the number of ``choices`` chunks;
* **TPOT** = ``(latency - ttft) / (output_len - 1)``, only for requests with ``output_len > 1``;
* per-user throughput ``tput_user`` = mean of ``output_len / latency``;
* over the run of one concurrency level: ``duration`` = wall time from the start of the first request to the
  end of the last, **request throughput** = completed / duration, **output throughput** = total output
  tokens / duration, total token throughput = (input + output tokens) / duration;
* mean, median, standard deviation and percentiles use numpy's defaults (population std, linear
  interpolation between closest ranks); an empty list counts as ``[0]`` (upstream's ``ttfts or 0``).

Only the standard library is used (``http.client`` and threads): the client runs on the served host, which
must not need extra Python packages, or on the controller.
"""

from __future__ import annotations

import http.client
import json
import math
import random
import socket
import ssl
import threading
import time

from ansible_collections.sparkfleet.trtllm.plugins.module_utils._http import open_connection

__all__ = [
    "PROMPT_WORDS",
    "RequestOutput",
    "calculate_metrics",
    "make_prompts",
    "percentile",
    "run_level",
    "stream_request",
]

# Short, frequent English words: in the BPE vocabularies of Llama, Qwen, Mistral and gpt-oss, " word" is one
# token, so a prompt of N of them is close to N tokens (the server's count comes back in usage.prompt_tokens).
PROMPT_WORDS = (
    "the", "of", "and", "to", "in", "is", "for", "on", "with", "as", "at", "by", "from", "this", "that", "it",
    "be", "are", "was", "have", "not", "or", "an", "but", "can", "all", "one", "new", "more", "time", "will",
    "about", "your", "so", "up", "out", "if", "what", "when", "there", "which", "their", "other", "some", "them",
    "into", "only", "over", "also", "after", "first", "most", "work", "well", "way", "even", "because", "good",
    "day", "year", "world", "life", "place", "water", "city", "house", "light", "music", "river", "market",
    "north", "south", "green", "blue", "stone", "field", "story", "paper", "table", "power", "model", "token",
)

# Upstream gives one request up to 6 h (aiohttp total timeout); this client uses one socket timeout per read.
_READ_CHUNK_LIMIT = 1024 * 1024


class RequestOutput:
    """What one streamed request measured (upstream: ``RequestFuncOutput``)."""

    __slots__ = ("success", "latency", "ttft", "itl", "output_tokens", "prompt_tokens", "chunks", "error", "start")

    def __init__(self) -> None:
        self.success = False
        self.latency = 0.0
        self.ttft = 0.0
        self.itl = []
        self.output_tokens = 0
        self.prompt_tokens = 0
        self.chunks = 0
        self.error = ""
        self.start = 0.0


def make_prompts(count: int, input_tokens: int, seed: int) -> list:
    """``count`` prompts of ``input_tokens`` words each, the same for the same seed on every host."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(PROMPT_WORDS) for _word in range(input_tokens)) for _prompt in range(count)]


def build_payload(api: str, model: str, prompt: str, output_tokens: int, ignore_eos: bool) -> tuple:
    """Path and JSON body of one streamed request, as upstream's request functions build them."""
    if api == "chat":
        path = "/v1/chat/completions"
        payload = {"model": model, "messages": [{"role": "user", "content": prompt}],
                   "max_completion_tokens": output_tokens}
    else:
        path = "/v1/completions"
        payload = {"model": model, "prompt": prompt, "max_tokens": output_tokens}
    payload.update({"temperature": 0.0, "stream": True, "stream_options": {"include_usage": True}})
    if ignore_eos:
        payload["ignore_eos"] = True
    return path, payload


def consume_stream(lines, api: str, st: float, clock=time.perf_counter) -> RequestOutput:
    """Turn the SSE ``lines`` (bytes) of one answer into a RequestOutput, with upstream's timing rules.

    ``clock`` is called once per data chunk, after the line arrived; unit tests pass fixed timestamps.
    """
    out = RequestOutput()
    out.start = st
    most_recent = st
    first = False
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        text = line.decode("utf-8", "replace")
        if not text.startswith("data:"):
            continue  # SSE comments / event names carry no token
        chunk = text[5:].strip()
        if chunk == "[DONE]":
            break
        timestamp = clock()
        try:
            data = json.loads(chunk)
        except ValueError:
            out.error = "the server sent a chunk that is not JSON: %.120s" % chunk
            return out
        if not isinstance(data, dict):
            continue
        if data.get("choices"):
            if not first:
                first = True
                out.ttft = timestamp - st
            else:
                out.itl.append(timestamp - most_recent)
            out.chunks += 1
            most_recent = timestamp
        else:
            usage = data.get("usage")
            if isinstance(usage, dict):
                out.output_tokens = int(usage.get("completion_tokens") or 0)
                out.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            if api == "chat":
                # Upstream's chat function moves its "most recent" mark on every chunk, the usage one included.
                most_recent = timestamp
    if not first:
        out.error = out.error or "never received a chunk with choices (no token streamed)"
        return out
    if not out.output_tokens:
        out.output_tokens = out.chunks
    out.latency = most_recent - st
    out.success = True
    return out


def _iter_lines(resp):
    while True:
        line = resp.readline(_READ_CHUNK_LIMIT)
        if not line:
            return
        yield line


def stream_request(base, api: str, model: str, prompt: str, output_tokens: int, ignore_eos: bool,
                   timeout: float, headers: dict | None = None, ssl_context=None) -> RequestOutput:
    """Send one streamed request to ``base`` (a ``_http.BaseURL``) and time its chunks."""
    path, payload = build_payload(api, model, prompt, output_tokens, ignore_eos)
    body = json.dumps(payload).encode("utf-8")
    send = {"Content-Type": "application/json", "Accept": "text/event-stream", "Connection": "close"}
    if headers:
        send.update(headers)
    conn = open_connection(base, timeout, ssl_context)
    st = time.perf_counter()
    try:
        conn.request("POST", base.prefix + path, body=body, headers=send)
        resp = conn.getresponse()
        if resp.status != 200:
            out = RequestOutput()
            out.start = st
            snippet = " ".join(resp.read(400).decode("utf-8", "replace").split())
            out.error = "HTTP %d %s: %s" % (resp.status, resp.reason, snippet)
            return out
        return consume_stream(_iter_lines(resp), api, st)
    except (socket.timeout, TimeoutError):
        out = RequestOutput()
        out.start = st
        out.error = "no data within %.1f s" % timeout
        return out
    except (ConnectionError, http.client.HTTPException, OSError, ssl.SSLError) as exc:
        out = RequestOutput()
        out.start = st
        out.error = "%s: %s" % (type(exc).__name__, getattr(exc, "strerror", None) or exc)
        return out
    finally:
        conn.close()


def run_level(send, prompts: list, concurrency: int, clock=time.perf_counter) -> tuple:
    """Send every prompt through ``send(prompt) -> RequestOutput`` with at most ``concurrency`` in flight.

    Upstream launches all requests at an infinite rate behind a semaphore of ``max_concurrency``; worker
    threads pulling from one list are the same schedule. Returns ``(outputs in prompt order, duration)``.
    """
    outputs = [None] * len(prompts)
    lock = threading.Lock()
    cursor = [0]

    def worker():
        while True:
            with lock:
                index = cursor[0]
                if index >= len(prompts):
                    return
                cursor[0] += 1
            try:
                outputs[index] = send(prompts[index])
            except Exception as exc:  # pylint: disable=broad-except
                # One broken request must not take the level down; it is counted as failed with its reason.
                failed = RequestOutput()
                failed.error = "%s: %s" % (type(exc).__name__, exc)
                outputs[index] = failed

    start = clock()
    threads = [threading.Thread(target=worker, daemon=True) for _index in range(max(1, min(concurrency, len(prompts))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outputs, clock() - start


def percentile(values: list, pct: float) -> float:
    """numpy.percentile with its default linear interpolation."""
    data = sorted(values)
    if not data:
        return 0.0
    rank = (len(data) - 1) * pct / 100.0
    low = int(math.floor(rank))
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def _stats(values: list, percentiles: list) -> dict:
    data = list(values) or [0.0]  # upstream: np.mean(x or 0)
    mean = sum(data) / len(data)
    std = math.sqrt(sum((v - mean) ** 2 for v in data) / len(data))
    result = {"mean": mean * 1000.0, "median": percentile(data, 50) * 1000.0, "std": std * 1000.0}
    for pct in percentiles:
        result["p%s" % _pct_name(pct)] = percentile(data, pct) * 1000.0
    return result


def _pct_name(pct: float) -> str:
    return str(int(pct)) if float(pct).is_integer() else str(pct)


def calculate_metrics(outputs: list, duration: float, nominal_input_tokens: int,
                      percentiles: tuple = (50, 90, 99)) -> dict:
    """The metrics of upstream's ``calculate_metrics`` for one run (latencies in milliseconds).

    ``nominal_input_tokens`` stands in for a request's prompt length when the server did not report
    ``usage.prompt_tokens``.
    """
    completed = 0
    total_input = 0
    output_lens = []
    ttfts, tpots, itls, e2els, tput_user = [], [], [], [], []
    errors = {}
    for out in outputs:
        if out is None or not out.success:
            reason = (out.error if out is not None else "not sent") or "failed"
            key = reason.split(":", 1)[0][:80]
            errors[key] = errors.get(key, 0) + 1
            continue
        output_len = out.output_tokens
        output_lens.append(output_len)
        total_input += out.prompt_tokens or nominal_input_tokens
        if output_len > 1:
            tpots.append((out.latency - out.ttft) / (output_len - 1))
        itls.extend(out.itl)
        ttfts.append(out.ttft)
        e2els.append(out.latency)
        if out.latency > 0:
            tput_user.append(output_len / out.latency)
        completed += 1
    total_output = sum(output_lens)
    duration = max(duration, 1e-9)
    return {
        "completed": completed,
        "failed": len(outputs) - completed,
        "errors": errors,
        "duration_s": duration,
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "request_throughput": completed / duration,
        "output_throughput": total_output / duration,
        "total_token_throughput": (total_input + total_output) / duration,
        "tput_user": (sum(tput_user) / len(tput_user)) if tput_user else 0.0,
        "ttft_ms": _stats(ttfts, percentiles),
        "tpot_ms": _stats(tpots, percentiles),
        "itl_ms": _stats(itls, percentiles),
        "e2el_ms": _stats(e2els, percentiles),
    }
