#!/usr/bin/python
# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: openai_benchmark
short_description: Load-test an OpenAI-compatible endpoint with streamed requests over a concurrency sweep
version_added: 0.1.0
author:
  - sparkfleet contributors (!UNKNOWN)
description:
  - Sends fixed, seeded random prompts of O(input_tokens) words to an OpenAI-compatible server such as
    C(trtllm-serve), streamed (C(stream=true), C(stream_options.include_usage=true)), asking for O(output_tokens)
    tokens each (C(ignore_eos) by default), once per concurrency level of O(concurrency).
  - Returns, per level, request throughput, output and total token throughput, per-user throughput, and mean, median,
    standard deviation and the O(percentiles) of time to first token (TTFT), time per output token (TPOT),
    inter-token latency (ITL) and end-to-end latency (E2EL).
  - The metrics follow the definitions of TensorRT-LLM's C(tensorrt_llm/serve/scripts/benchmark_serving.py)
    (C(calculate_metrics)) and its request functions in C(backend_request_func.py), themselves adopted from vLLM's
    C(benchmark_serving.py). TTFT is the time to the first chunk that carries C(choices); ITL the gaps between
    consecutive such chunks; TPOT C((e2e - ttft) / (output_tokens - 1)) per request with more than one output token;
    output throughput the total output tokens divided by the duration of the level. See docs/benchmark.md.
  - The output length of a request is the server's C(usage.completion_tokens); the prompt length the server's
    C(usage.prompt_tokens) (else O(input_tokens)). Prompt words are short frequent English words, about one token
    each in common tokenizers, so O(input_tokens) is close to the real prompt length, not exact.
  - Before the sweep one request must succeed (the upstream "initial test run"), else the module fails with its error.
  - Only the Python standard library is used (C(http.client) and one thread per concurrent request), so the module
    runs on a served host without extra packages, or on the controller.
extends_documentation_fragment:
  - sparkfleet.trtllm._attributes
  - sparkfleet.trtllm._attributes.actiongroup_trtllm
  - sparkfleet.trtllm._attributes.idempotent_not_modify_state
attributes:
  check_mode:
    support: partial
    details:
      - In check mode the module only checks that the server lists the model, and sends no load (RV(levels) is empty).
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
options:
  base_url:
    description:
      - Root URL of the server, for example V(http://127.0.0.1:8355); a trailing V(/v1) is accepted and dropped.
    type: str
    required: true
  model:
    description:
      - Model id sent in the requests. When omitted, the first model C(GET /v1/models) lists.
    type: str
  api:
    description:
      - V(completions) posts to C(/v1/completions) (upstream's default backend C(openai)), V(chat) to
        C(/v1/chat/completions) (upstream's C(openai-chat)).
    type: str
    choices: [completions, chat]
    default: completions
  input_tokens:
    description:
      - Words per prompt (about one token each).
    type: int
    default: 128
  output_tokens:
    description:
      - C(max_tokens) of every request.
    type: int
    default: 128
  ignore_eos:
    description:
      - Send C(ignore_eos=true) so that every request generates exactly O(output_tokens) tokens.
    type: bool
    default: true
  concurrency:
    description:
      - Concurrency levels of the sweep, in order; each level runs with at most that many requests in flight.
    type: list
    elements: int
    default: [1, 2, 4, 8]
  num_prompts:
    description:
      - Requests per level. V(0) sends 4 times the level, and at least 8.
    type: int
    default: 0
  seed:
    description:
      - Seed of the prompt generator; the same seed gives the same prompts on every host and run.
    type: int
    default: 0
  percentiles:
    description:
      - Percentiles reported for TTFT, TPOT, ITL and E2EL.
    type: list
    elements: float
    default: [50, 90, 99]
  request_timeout_seconds:
    description:
      - Time one read of the stream may wait for data (connection, headers, or the next chunk).
    type: float
    default: 600
  api_key:
    description:
      - API key sent as a bearer token, for servers behind an authenticating proxy.
    type: str
  validate_certs:
    description:
      - Verify the server certificate when O(base_url) is https.
    type: bool
    default: true
  return_requests:
    description:
      - Also return the measurements of every request (RV(levels[].requests)).
    type: bool
    default: false
notes:
  - Connections go straight to O(base_url); proxy environment variables are ignored.
  - Every request opens its own connection, as upstream's client does (one aiohttp session per request).
seealso:
  - name: benchmark_serving.py of TensorRT-LLM
    description: The reference serving benchmark whose metric definitions this module follows.
    link: https://github.com/NVIDIA/TensorRT-LLM/blob/main/tensorrt_llm/serve/scripts/benchmark_serving.py
  - module: sparkfleet.trtllm.openai_probe
"""

EXAMPLES = r"""
- name: Sweep the LLM endpoint of every Spark from the host itself
  sparkfleet.trtllm.openai_benchmark:
    base_url: http://127.0.0.1:8355
    model: nvidia/Qwen3-8B-FP4
    input_tokens: 1024
    output_tokens: 256
    concurrency: [1, 4, 16, 64]
  register: bench

- name: Show the output throughput at each level
  ansible.builtin.debug:
    msg: "{{ bench.levels | map(attribute='output_throughput') | list }}"
"""

RETURN = r"""
url:
  description: Server root URL, normalised.
  returned: always
  type: str
  sample: http://127.0.0.1:8355
model:
  description: Model id the requests used.
  returned: always
  type: str
  sample: nvidia/Qwen3-8B-FP4
settings:
  description: The load that was sent (api, input_tokens, output_tokens, ignore_eos, seed, percentiles).
  returned: always
  type: dict
  sample: {api: completions, input_tokens: 128, output_tokens: 128, ignore_eos: true, seed: 0, percentiles: [50, 90, 99]}
warmup:
  description: The single request sent before the sweep (ttft_ms, latency_ms, output_tokens).
  returned: unless check mode
  type: dict
  sample: {ttft_ms: 21.3, latency_ms: 650.2, output_tokens: 32}
levels:
  description: One entry per concurrency level; latency figures in milliseconds.
  returned: always
  type: list
  elements: dict
  contains:
    concurrency:
      description: Maximum requests in flight.
      type: int
      sample: 4
    num_prompts:
      description: Requests sent.
      type: int
      sample: 16
    completed:
      description: Requests that streamed at least one token.
      type: int
      sample: 16
    failed:
      description: Requests that failed.
      type: int
      sample: 0
    errors:
      description: Failed requests counted by the start of their error message.
      type: dict
      sample: {}
    duration_s:
      description: Wall time of the level, from the first request to the end of the last.
      type: float
      sample: 2.61
    total_input_tokens:
      description: Sum of the prompt lengths of the completed requests.
      type: int
      sample: 2080
    total_output_tokens:
      description: Sum of the output lengths of the completed requests.
      type: int
      sample: 512
    request_throughput:
      description: Completed requests per second.
      type: float
      sample: 6.1
    output_throughput:
      description: Output tokens per second over the level (total output tokens / duration).
      type: float
      sample: 196.2
    total_token_throughput:
      description: Input plus output tokens per second over the level.
      type: float
      sample: 993.1
    tput_user:
      description: Mean over requests of output tokens / end-to-end latency (tokens per second one user sees).
      type: float
      sample: 49.3
    ttft_ms:
      description: Time to first token - mean, median, std and one key per percentile (V(p50), V(p99), ...).
      type: dict
      sample: {mean: 21.0, median: 20.8, std: 0.5, p50: 20.8, p90: 21.5, p99: 22.1}
    tpot_ms:
      description: Time per output token, same keys.
      type: dict
      sample: {mean: 20.2, median: 20.2, std: 0.1, p50: 20.2, p90: 20.3, p99: 20.4}
    itl_ms:
      description: Inter-token latency, same keys.
      type: dict
      sample: {mean: 20.2, median: 20.2, std: 0.4, p50: 20.2, p90: 20.5, p99: 21.0}
    e2el_ms:
      description: End-to-end latency, same keys.
      type: dict
      sample: {mean: 648.0, median: 647.9, std: 1.2, p50: 647.9, p90: 649.5, p99: 650.0}
    requests:
      description: Per request - success, ttft_ms, latency_ms, output_tokens, prompt_tokens, itl_ms, error.
      type: list
      elements: dict
      returned: when O(return_requests=true)
"""

import ssl

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._http import (
    HTTPTimeout,
    HTTPUnreachable,
    parse_base_url,
    request,
)
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._loadgen import (
    calculate_metrics,
    make_prompts,
    run_level,
    stream_request,
)


def _list_models(module, base, headers, ssl_context, timeout):
    try:
        resp = request(base, "GET", "/v1/models", timeout, headers=headers, ssl_context=ssl_context)
    except (HTTPUnreachable, HTTPTimeout) as exc:
        module.fail_json(msg="GET %s/v1/models failed: %s; is the server running (playbooks/status.yml)?" % (base, exc))
    if resp.status != 200:
        module.fail_json(msg="GET %s/v1/models answered HTTP %d: %s" % (base, resp.status, resp.snippet()))
    try:
        return [str(entry["id"]) for entry in resp.json()["data"]]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        module.fail_json(msg="GET %s/v1/models did not answer an OpenAI model list: %s" % (base, resp.snippet()))


def _request_dict(out):
    return {
        "success": out.success,
        "ttft_ms": round(out.ttft * 1000.0, 3),
        "latency_ms": round(out.latency * 1000.0, 3),
        "output_tokens": out.output_tokens,
        "prompt_tokens": out.prompt_tokens,
        "itl_ms": [round(gap * 1000.0, 3) for gap in out.itl],
        "error": out.error or None,
    }


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return dict((k, _rounded(v)) for k, v in value.items())
    return value


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            base_url=dict(type="str", required=True),
            model=dict(type="str"),
            api=dict(type="str", choices=["completions", "chat"], default="completions"),
            input_tokens=dict(type="int", default=128, no_log=False),
            output_tokens=dict(type="int", default=128, no_log=False),
            ignore_eos=dict(type="bool", default=True),
            concurrency=dict(type="list", elements="int", default=[1, 2, 4, 8]),
            num_prompts=dict(type="int", default=0),
            seed=dict(type="int", default=0),
            percentiles=dict(type="list", elements="float", default=[50, 90, 99]),
            request_timeout_seconds=dict(type="float", default=600),
            api_key=dict(type="str", no_log=True),
            validate_certs=dict(type="bool", default=True),
            return_requests=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        base = parse_base_url(p["base_url"])
    except ValueError as exc:
        module.fail_json(msg="base_url %r is not a usable server URL: %s (expected for example http://127.0.0.1:8355)"
                         % (p["base_url"], exc))
    if p["input_tokens"] < 1 or p["output_tokens"] < 1:
        module.fail_json(msg="input_tokens and output_tokens must be 1 or more (got %s and %s)"
                         % (p["input_tokens"], p["output_tokens"]))
    if not p["concurrency"] or any(level < 1 for level in p["concurrency"]):
        module.fail_json(msg="concurrency must be a non-empty list of levels of 1 or more, got %s" % p["concurrency"])
    if p["num_prompts"] < 0:
        module.fail_json(msg="num_prompts must be 0 (automatic) or more, got %s" % p["num_prompts"])
    if any(not 0 <= pct <= 100 for pct in p["percentiles"]):
        module.fail_json(msg="percentiles must lie between 0 and 100, got %s" % p["percentiles"])
    if p["request_timeout_seconds"] <= 0:
        module.fail_json(msg="request_timeout_seconds must be greater than 0")

    headers = {"User-Agent": "sparkfleet.trtllm-openai_benchmark"}
    if p["api_key"]:
        headers["Authorization"] = "Bearer " + p["api_key"]
    ssl_context = None
    if base.scheme == "https":
        ssl_context = ssl.create_default_context()
        if not p["validate_certs"]:
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE

    models = _list_models(module, base, headers, ssl_context, min(p["request_timeout_seconds"], 30))
    model = p["model"]
    if model is None:
        if not models:
            module.fail_json(msg="%s/v1/models lists no model yet: the server is still loading" % base)
        model = models[0]
    elif model not in models:
        module.fail_json(msg="the server at %s serves %s, not the model %r" % (base, ", ".join(models) or "nothing", model))

    settings = dict(api=p["api"], input_tokens=p["input_tokens"], output_tokens=p["output_tokens"],
                    ignore_eos=p["ignore_eos"], seed=p["seed"], percentiles=p["percentiles"])
    result = dict(changed=False, url=str(base), model=model, settings=settings, levels=[])
    if module.check_mode:
        module.exit_json(**result)

    def send(prompt):
        return stream_request(base, p["api"], model, prompt, p["output_tokens"], p["ignore_eos"],
                              p["request_timeout_seconds"], headers=headers, ssl_context=ssl_context)

    warm = send(make_prompts(1, p["input_tokens"], p["seed"] + 1000003)[0])
    if not warm.success:
        module.fail_json(msg="the initial test request to %s (model %r, api %s) failed: %s"
                         % (base, model, p["api"], warm.error), **result)
    result["warmup"] = {"ttft_ms": round(warm.ttft * 1000.0, 3), "latency_ms": round(warm.latency * 1000.0, 3),
                        "output_tokens": warm.output_tokens}

    for index, level in enumerate(p["concurrency"]):
        count = p["num_prompts"] or max(8, 4 * level)
        # A distinct, seeded prompt set per level: no level profits from a prefix cache the previous one filled.
        prompts = make_prompts(count, p["input_tokens"], p["seed"] * 1000 + index)
        outputs, duration = run_level(send, prompts, level)
        metrics = _rounded(calculate_metrics(outputs, duration, p["input_tokens"], tuple(p["percentiles"])))
        entry = dict(concurrency=level, num_prompts=count)
        entry.update(metrics)
        if p["return_requests"]:
            entry["requests"] = [_request_dict(out) for out in outputs]
        result["levels"].append(entry)

    failed = sum(level["failed"] for level in result["levels"])
    if failed == sum(level["num_prompts"] for level in result["levels"]):
        module.fail_json(msg="every request of the sweep against %s failed: %s"
                         % (base, result["levels"][0]["errors"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
