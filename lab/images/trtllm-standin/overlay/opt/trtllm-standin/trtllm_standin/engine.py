# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deterministic "generation", iteration stats and Prometheus counters of the stand-in executor."""

from __future__ import annotations

import collections
import hashlib
import threading
import time

from trtllm_standin import env_flag, env_float, env_int

WORDS = (
    "spark", "tensor", "grace", "blackwell", "unified", "memory", "kernel", "token", "batch", "cache", "paris", "river",
    "light", "garden", "museum", "bridge", "coffee", "evening", "quiet", "street", "market", "bakery", "history", "art",
    "music", "north", "south", "window", "morning", "stone", "harbor", "city", "people", "walk", "open", "bright",
    "river", "old", "new", "warm", "season", "story", "lantern", "field", "signal", "engine", "model", "answer",
    "simple", "careful", "steady", "fleet", "node", "link", "rack", "switch", "cable", "power", "cooling", "rapid",
    "clear", "calm", "green", "blue",
)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)


class Hung(Exception):
    """Raised to a waiting caller when the server shuts down during a hung generation."""


def count_tokens(text: str) -> int:
    """A stable, tokenizer-free token count (words plus punctuation runs)."""
    return len(text.split())


class Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1
        self.total += value
        self.count += 1


class Engine:
    """State shared by all request threads."""

    def __init__(self, args: dict, extra: dict):
        self.args = args
        self.extra = extra
        self.tokens_per_second = env_float("TRTLLM_STANDIN_TOKENS_PER_SECOND", 200.0)
        self.hang = env_flag("TRTLLM_STANDIN_HANG_GENERATION")
        self.crash_after = env_int("TRTLLM_STANDIN_CRASH_AFTER_REQUESTS", 0)
        self.health_generate_timeout = env_float("TRTLLM_STANDIN_HEALTH_GENERATE_TIMEOUT", 0.0)
        self.iter_stats_enabled = bool(extra.get("enable_iter_perf_stats", False))
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.generation_requests = 0
        self.active = 0
        self.completed_total = 0
        self.iteration = 0
        self.iter_stats = collections.deque(maxlen=int(extra.get("iter_stats_max_iterations") or 1000))
        self.success = collections.Counter()
        self.e2e = Histogram(E2E_BUCKETS)
        self.ttft = Histogram(TTFT_BUCKETS)
        self.tpot = Histogram(TPOT_BUCKETS)
        self.queue = Histogram(TTFT_BUCKETS)
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0

    # -- generation -------------------------------------------------------------------------------------
    def begin(self) -> int:
        """Count a generation request; return its ordinal (1-based)."""
        with self.lock:
            self.generation_requests += 1
            self.active += 1
            return self.generation_requests

    def crash_due(self, ordinal: int) -> bool:
        return 0 < self.crash_after <= ordinal

    def wait_forever(self, limit: float = 0.0) -> None:
        """Simulate a wedged executor: block until shutdown (or ``limit`` seconds when > 0)."""
        deadline = time.monotonic() + limit if limit > 0 else None
        while not self.stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            self.stop.wait(0.2)
        raise Hung()

    @staticmethod
    def plan(prompt_key: str, index: int, max_tokens: int, ignore_eos: bool):
        """Deterministic tokens for a prompt: a natural length of 12..63 tokens, cut at ``max_tokens``."""
        digest = hashlib.sha256(f"{index}\0{prompt_key}".encode()).digest()
        natural = 12 + digest[0] % 52
        count = max_tokens if ignore_eos else min(max_tokens, natural)
        finish = "length" if count == max_tokens else "stop"
        tokens = []
        for position in range(count):
            word = WORDS[hashlib.sha256(digest + position.to_bytes(4, "big")).digest()[0] % len(WORDS)]
            tokens.append(word if position == 0 else " " + word)
        return tokens, finish

    def token_delay(self) -> float:
        return 1.0 / self.tokens_per_second if self.tokens_per_second > 0 else 0.0

    def step(self) -> None:
        """One decoding iteration of one request: sleep for the token rate and record iteration stats."""
        delay = self.token_delay()
        if delay:
            time.sleep(delay)
        if not self.iter_stats_enabled:
            return
        with self.lock:
            self.iteration += 1
            self.iter_stats.append(self._iteration_stat(delay))

    def _iteration_stat(self, delay: float) -> dict:
        max_blocks = 4096
        used = min(max_blocks, self.active * 4)
        return {
            "iter": self.iteration,
            "iterLatencyMS": round(delay * 1000.0, 3),
            "newActiveRequestsQueueLatencyMS": 0.0,
            "numActiveRequests": self.active,
            "numNewActiveRequests": 0,
            "numQueuedRequests": 0,
            "numCompletedRequests": 0,
            "maxNumActiveRequests": self.args.get("max_batch_size") or 2048,
            "maxBatchSizeRuntime": self.args.get("max_batch_size") or 2048,
            "maxNumTokensRuntime": self.args.get("max_num_tokens") or 8192,
            "gpuMemUsage": 0,
            "cpuMemUsage": 0,
            "pinnedMemUsage": 0,
            "timestamp": time.strftime("%m-%d-%Y %H:%M:%S"),
            "inflightBatchingStats": {
                "numContextRequests": 0, "numGenRequests": self.active, "numPausedRequests": 0,
                "numScheduledRequests": self.active, "numCtxTokens": 0, "microBatchId": 0,
                "avgNumDecodedTokensPerIter": 1.0,
            },
            "kvCacheStats": {
                "maxNumBlocks": max_blocks, "freeNumBlocks": max_blocks - used, "usedNumBlocks": used,
                "tokensPerBlock": 32, "allocTotalBlocks": used, "allocNewBlocks": 0, "reusedBlocks": 0,
                "missedBlocks": 0, "cacheHitRate": 0.0,
            },
        }

    def finish(self, started: float, first_token: float | None, prompt_tokens: int, completion_tokens: int, reason: str) -> None:
        now = time.monotonic()
        with self.lock:
            self.active = max(0, self.active - 1)
            self.completed_total += 1
            self.success[reason] += 1
            self.prompt_tokens_total += prompt_tokens
            self.generation_tokens_total += completion_tokens
            self.e2e.observe(now - started)
            self.queue.observe(0.0)
            if first_token is not None:
                self.ttft.observe(first_token - started)
                if completion_tokens > 1:
                    self.tpot.observe((now - first_token) / (completion_tokens - 1))

    def abort(self) -> None:
        with self.lock:
            self.active = max(0, self.active - 1)

    def drain_iteration_stats(self) -> list:
        with self.lock:
            stats = list(self.iter_stats)
            self.iter_stats.clear()
        return stats

    # -- /prometheus/metrics --------------------------------------------------------------------------
    def prometheus_text(self) -> str:
        labels = 'engine_type="undefined",model_name="undefined"'
        out = []
        with self.lock:
            out += ["# HELP trtllm_request_success_total Count of successfully processed requests.",
                    "# TYPE trtllm_request_success_total counter"]
            for reason in sorted(set(self.success) | {"length", "stop"}):
                out.append(f'trtllm_request_success_total{{{labels},finished_reason="{reason}"}} {float(self.success[reason])}')
            for name, help_text, hist in (
                ("trtllm_e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", self.e2e),
                ("trtllm_time_to_first_token_seconds", "Histogram of time to first token in seconds.", self.ttft),
                ("trtllm_time_per_output_token_seconds", "Histogram of time per output token in seconds.", self.tpot),
                ("trtllm_request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", self.queue),
            ):
                out += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
                for bound, count in zip(hist.buckets, hist.counts):
                    out.append(f'{name}_bucket{{{labels},le="{bound}"}} {float(count)}')
                out.append(f'{name}_bucket{{{labels},le="+Inf"}} {float(hist.count)}')
                out.append(f"{name}_count{{{labels}}} {float(hist.count)}")
                out.append(f"{name}_sum{{{labels}}} {hist.total}")
            out += ["# HELP trtllm_prompt_tokens_total Number of prefill tokens processed.",
                    "# TYPE trtllm_prompt_tokens_total counter",
                    f"trtllm_prompt_tokens_total{{{labels}}} {float(self.prompt_tokens_total)}",
                    "# HELP trtllm_generation_tokens_total Number of generation tokens processed.",
                    "# TYPE trtllm_generation_tokens_total counter",
                    f"trtllm_generation_tokens_total{{{labels}}} {float(self.generation_tokens_total)}",
                    "# HELP trtllm_kv_cache_hit_rate KV cache hit rate.",
                    "# TYPE trtllm_kv_cache_hit_rate gauge",
                    f"trtllm_kv_cache_hit_rate{{{labels}}} 0.0",
                    "# HELP trtllm_kv_cache_utilization KV cache utilization.",
                    "# TYPE trtllm_kv_cache_utilization gauge",
                    f"trtllm_kv_cache_utilization{{{labels}}} {min(1.0, self.active * 4 / 4096.0)}"]
        return "\n".join(out) + "\n"
