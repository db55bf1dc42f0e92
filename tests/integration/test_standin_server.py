# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""The TensorRT-LLM stand-in's trtllm-serve, run as a real process on 127.0.0.1 (no Docker needed).

Every test starts ``lab/images/trtllm-standin/overlay/usr/local/bin/trtllm-serve`` with a temporary fake
Hugging Face cache and talks to it over HTTP (urllib, and the ``openai`` client for streaming).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.client import HTTPConnection
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "lab" / "images" / "trtllm-standin" / "overlay"
SERVE = OVERLAY / "usr" / "local" / "bin" / "trtllm-serve"
LAUNCH = OVERLAY / "usr" / "local" / "bin" / "trtllm-llmapi-launch"
STUB_PATH = OVERLAY / "usr" / "local" / "lib" / "python3.11" / "dist-packages"
REPO_ID = "nvidia/Qwen3-8B-FP4"
COMMIT = "3f1d0b8c2a4e6f8091a2b3c4d5e6f708192a3b4c"
OFFLINE_MSG = ("huggingface_hub.errors.LocalEntryNotFoundError: Cannot find an appropriate cached snapshot folder for the "
               "specified revision on the local disk and outgoing traffic has been disabled. To enable repo look-ups and "
               "downloads online, set 'HF_HUB_OFFLINE=0' as environment variable.")


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------
def make_hf_home(root: Path, repo_id: str = REPO_ID, files: dict | None = None, tree: list | None = None,
                 ref_text: str = COMMIT) -> Path:
    """Write a Hugging Face cache the way huggingface_hub 2.4 lays it out (refs, snapshots, trees)."""
    files = files if files is not None else {
        "config.json": json.dumps({"architectures": ["Qwen3ForCausalLM"], "max_position_embeddings": 40960}),
        "model.safetensors": "weights",
    }
    storage = root / "hub" / ("models--" + repo_id.replace("/", "--"))
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(ref_text)
    snapshot = storage / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name, content in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_text(content)
    listing = tree if tree is not None else list(files)
    (storage / "trees").mkdir()
    (storage / "trees" / f"{COMMIT}.json").write_text(json.dumps(
        {"format_version": 1, "files": {name: {"size": 7, "blob_id": "0" * 40} for name in listing}}))
    return root


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body=None, timeout: float = 10.0):
    """Return (status, headers, bytes) for one request; HTTP errors are returned, not raised."""
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def parse_prometheus(text: str) -> dict:
    """Minimal Prometheus text exposition parser: {(name, frozenset(labels)): value}; asserts line grammar."""
    samples = {}
    sample_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ([-+]?(?:[0-9.]+(?:e[-+]?\d+)?|Inf|NaN|\+Inf))$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    types = {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _hash, _type, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = kind
            continue
        if line.startswith("# HELP ") or line.startswith("#"):
            continue
        match = sample_re.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        labels = frozenset(label_re.findall(match.group(3) or ""))
        samples[(match.group(1), labels)] = float(match.group(4))
    return {"types": types, "samples": samples}


class Standin:
    """One trtllm-serve process with its log files."""

    def __init__(self, tmp_path: Path, args: list, env: dict | None = None, hf_home: Path | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stdout_path = tmp_path / f"serve-{self.port}.out"
        self.stderr_path = tmp_path / f"serve-{self.port}.err"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRTLLM_STANDIN_", "HF_", "OMPI_"))}
        full_env.update({"HF_HUB_OFFLINE": "1", "TRTLLM_STANDIN_LOAD_SECONDS": "0.4"})
        if hf_home is not None:
            full_env["HF_HOME"] = str(hf_home)
        full_env.update(env or {})
        if "--port" not in args:
            args = list(args) + ["--host", "127.0.0.1", "--port", str(self.port)]
        self.started = time.monotonic()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(SERVE), *args], stdout=out, stderr=err, env=full_env)

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def connect_refused(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return False
        except ConnectionRefusedError:
            return True

    def wait_ready(self, timeout: float = 20.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"trtllm-serve exited rc={self.proc.returncode}\n{self.stdout}\n{self.stderr}")
            try:
                status, _headers, _body = http("GET", self.base + "/v1/models", timeout=2)
                if status == 200:
                    return time.monotonic() - self.started
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                pass
            time.sleep(0.05)
        pytest.fail(f"trtllm-serve not ready after {timeout}s\n{self.stdout}\n{self.stderr}")
        return 0.0

    def wait_exit(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"trtllm-serve still running after {timeout}s\n{self.stdout}\n{self.stderr}")
        return -1

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def hf_home(tmp_path):
    return make_hf_home(tmp_path / "hf")


@pytest.fixture
def start(tmp_path, hf_home):
    procs = []

    def _start(args=None, env=None, home=None):
        proc = Standin(tmp_path, [REPO_ID] if args is None else args, env, hf_home if home is None else home)
        procs.append(proc)
        return proc

    yield _start
    for proc in procs:
        proc.stop()


def run_cli(args, env=None, timeout=30):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRTLLM_STANDIN_", "HF_"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(SERVE), *args], capture_output=True, text=True, env=full_env, timeout=timeout,
                          check=False)


def chat(base, content="Paris is great because", max_tokens=8, **extra):
    body = {"model": REPO_ID, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
    body.update(extra)
    status, _headers, raw = http("POST", base + "/v1/chat/completions", body)
    return status, json.loads(raw)


# ---------------------------------------------------------------------------------------------------------------
# start-up and model resolution
# ---------------------------------------------------------------------------------------------------------------
def test_refuses_connections_while_loading_then_lists_the_model(start):
    server = start(env={"TRTLLM_STANDIN_LOAD_SECONDS": "2"})
    time.sleep(0.5)
    assert server.proc.poll() is None
    assert server.connect_refused(), "nothing may listen while the model loads"
    elapsed = server.wait_ready()
    assert elapsed >= 1.9
    status, headers, raw = http("GET", server.base + "/v1/models")
    assert status == 200 and headers["content-type"] == "application/json"
    body = json.loads(raw)
    assert set(body) == {"object", "data"} and body["object"] == "list" and len(body["data"]) == 1
    card = body["data"][0]
    assert set(card) == {"id", "object", "created", "owned_by"}
    assert card["id"] == REPO_ID and card["object"] == "model" and card["owned_by"] == "tensorrt_llm"
    assert isinstance(card["created"], int) and abs(card["created"] - time.time()) < 60
    assert http("GET", server.base + "/health")[:1] == (200,) and http("GET", server.base + "/health")[2] == b""
    assert json.loads(http("GET", server.base + "/version")[2]) == {"version": "1.1.0rc3"}
    assert "Uvicorn running on http://127.0.0.1:" in server.stdout
    assert "lab stand-in" in server.stdout


def test_version_env_and_served_model_name(start):
    server = start(args=[REPO_ID, "--served_model_name", "qwen3-8b"], env={"TRTLLM_STANDIN_VERSION": "1.2.0rc6"})
    server.wait_ready()
    assert json.loads(http("GET", server.base + "/version")[2]) == {"version": "1.2.0rc6"}
    assert json.loads(http("GET", server.base + "/v1/models")[2])["data"][0]["id"] == "qwen3-8b"


def test_local_checkpoint_dir_is_listed_by_basename(start, tmp_path):
    ckpt = tmp_path / "ckpts" / "Llama-3.1-8B-Instruct-FP8"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    server = start(args=[str(ckpt) + "/"], home=tmp_path / "empty-hf")
    server.wait_ready()
    assert json.loads(http("GET", server.base + "/v1/models")[2])["data"][0]["id"] == "Llama-3.1-8B-Instruct-FP8"


def test_local_dir_without_config_json_fails(tmp_path):
    empty = tmp_path / "empty-ckpt"
    empty.mkdir()
    proc = run_cli([str(empty), "--port", str(free_port())], {"TRTLLM_STANDIN_LOAD_SECONDS": "0"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"OSError: {empty} does not appear to have a file named config.json")


def test_missing_snapshot_fails_with_the_huggingface_hub_message(hf_home):
    port = free_port()
    proc = run_cli(["nvidia/Llama-3.1-8B-Instruct-FP8", "--port", str(port)],
                   {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == OFFLINE_MSG


def test_hf_hub_cache_variable_is_honoured(start, tmp_path):
    home = make_hf_home(tmp_path / "elsewhere")
    server = start(env={"HF_HUB_CACHE": str(home / "hub")}, home=tmp_path / "nothing-here")
    server.wait_ready()


def test_partial_snapshot_fails_like_huggingface_hub(tmp_path):
    home = make_hf_home(tmp_path / "hf", files={"config.json": "{}"},
                        tree=["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                              "original/consolidated/params.bin"])
    proc = run_cli([REPO_ID, "--port", str(free_port())], {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"huggingface_hub.errors.IncompleteSnapshotError: The cached snapshot for '{REPO_ID}' "
                           f"(revision 'main', commit {COMMIT}) is incomplete: 2 file(s) are missing "
                           "(model-00001-of-00002.safetensors, model-00002-of-00002.safetensors).")


def test_ref_with_trailing_newline_is_not_found_like_huggingface_hub(tmp_path):
    home = make_hf_home(tmp_path / "hf", ref_text=COMMIT + "\n")
    proc = run_cli([REPO_ID, "--port", str(free_port())], {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == OFFLINE_MSG


def test_revision_option_selects_a_commit(start, hf_home):
    server = start(args=[REPO_ID, "--revision", COMMIT])
    server.wait_ready()
    proc = run_cli([REPO_ID, "--revision", "f" * 40, "--port", str(free_port())], {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == OFFLINE_MSG


def test_without_hf_hub_offline_it_never_downloads(hf_home, start):
    proc = run_cli(["nvidia/Qwen3-14B-FP8", "--port", str(free_port())],
                   {"HF_HOME": str(hf_home), "TRTLLM_STANDIN_LOAD_SECONDS": "0"})
    assert proc.returncode == 1
    assert "never downloads" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == OFFLINE_MSG
    online = start(env={"HF_HUB_OFFLINE": ""})
    online.wait_ready()
    assert "never downloads" in online.stdout


def test_invalid_repo_id_is_rejected(tmp_path):
    proc = run_cli(["/models/does-not-exist", "--port", str(free_port())], {"HF_HOME": str(tmp_path)})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "huggingface_hub.errors.HFValidationError: Repo id must be in the form 'repo_name' or 'namespace/repo_name': "
        "'/models/does-not-exist'.")


def test_port_already_bound_fails_before_loading(hf_home):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = run_cli([REPO_ID, "--host", "127.0.0.1", "--port", str(port)],
                       {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRTLLM_STANDIN_LOAD_SECONDS": "30"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"RuntimeError: Failed to bind socket to 127.0.0.1:{port}:")
    assert "Loading weights" not in proc.stdout


def test_tensor_parallel_needs_mpi_ranks(hf_home, start):
    proc = run_cli([REPO_ID, "--tp_size", "2", "--port", str(free_port())],
                   {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRTLLM_STANDIN_LOAD_SECONDS": "0"})
    assert proc.returncode == 1 and "RuntimeError: world_size (tp_size*pp_size*cp_size = 2)" in proc.stderr
    # Rank 0 of a two-rank run serves only once the worker rank joined its heartbeat, and stops when the worker goes.
    beat_port = free_port()
    server = start(args=[REPO_ID, "--tp_size", "2"],
                   env={"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0", "TRTLLM_STANDIN_RANK0_ADDRESS": "127.0.0.1",
                        "TRTLLM_STANDIN_HEARTBEAT_PORT": str(beat_port), "TRTLLM_STANDIN_HEARTBEAT_TIMEOUT": "1"})
    deadline = time.monotonic() + 30
    while "waiting for 1 worker rank(s)" not in server.stdout + server.stderr:
        assert server.proc.poll() is None and time.monotonic() < deadline, server.stdout + server.stderr
        time.sleep(0.1)
    time.sleep(1.5)  # longer than the 0.4 s load: without the worker, rank 0 must still not serve
    assert server.connect_refused(), "rank 0 listens before every rank joined"
    stop = threading.Event()

    def beat(conn):
        while not stop.wait(0.3):
            conn.sendall(b"beat\n")

    with socket.create_connection(("127.0.0.1", beat_port), timeout=5) as worker:
        worker.sendall(b"rank 1 pytest\n")
        beater = threading.Thread(target=beat, args=(worker,), daemon=True)
        beater.start()
        server.wait_ready()
        stop.set()
        beater.join(timeout=5)
    assert server.wait_exit(timeout=15) == 1
    assert "lost rank(s) 1" in server.stdout + server.stderr


# ---------------------------------------------------------------------------------------------------------------
# CLI surface
# ---------------------------------------------------------------------------------------------------------------
def test_unknown_option_is_rejected_like_click():
    proc = run_cli([REPO_ID, "--foo", "1"])
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("Usage: trtllm-serve serve [OPTIONS] MODEL\n"
                           "Try 'trtllm-serve serve --help' for help.\n\n"
                           "Error: No such option: --foo\n")
    proc = run_cli(["serve", REPO_ID, "--max_batchsize", "4"])
    assert proc.returncode == 2 and proc.stderr.endswith("Error: No such option: --max_batchsize Did you mean --max_batch_size?\n")
    proc = run_cli(["--port", "8355", REPO_ID])
    assert proc.returncode == 2 and proc.stderr.startswith("Usage: trtllm-serve [OPTIONS] COMMAND [ARGS]...\n")


@pytest.mark.parametrize("args,message", [
    ([], "Error: Missing argument 'MODEL'."),
    ([REPO_ID, "--port", "http"], "Error: Invalid value for '--port': 'http' is not a valid integer."),
    ([REPO_ID, "--backend", "vllm"], "Error: Invalid value for '--backend': 'vllm' is not one of 'pytorch', 'tensorrt', '_autodeploy'."),
    ([REPO_ID, "--kv_cache_free_gpu_memory_fraction", "lots"],
     "Error: Invalid value for '--free_gpu_memory_fraction' / '--kv_cache_free_gpu_memory_fraction': 'lots' is not a valid float."),
    ([REPO_ID, "--extra_llm_api_options", "/nonexistent/extra.yml"],
     "Error: Invalid value for '--extra_llm_api_options': Path '/nonexistent/extra.yml' does not exist."),
    ([REPO_ID, "--config", "/nonexistent/extra.yml"],
     "Error: Invalid value for '--extra_llm_api_options': Path '/nonexistent/extra.yml' does not exist."),
    ([REPO_ID, "--max_batch_size"], "Error: Option '--max_batch_size' requires an argument."),
    ([REPO_ID, "--trust_remote_code=yes"], "Error: Option '--trust_remote_code' does not take a value."),
])
def test_usage_errors_exit_2_with_click_wording(args, message):
    proc = run_cli(["serve", *args])
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "Usage: trtllm-serve serve [OPTIONS] MODEL"
    assert proc.stderr.splitlines()[-1] == message


def test_help_marks_the_standin_and_lists_the_options():
    proc = run_cli(["serve", "--help"])
    assert proc.returncode == 0 and "lab stand-in" in proc.stdout
    for option in ("--host", "--port", "--backend", "--log_level", "--max_beam_width", "--max_batch_size", "--max_num_tokens",
                   "--max_seq_len", "--tp_size", "--pp_size", "--ep_size", "--cluster_size", "--gpus_per_node",
                   "--kv_cache_free_gpu_memory_fraction", "--num_postprocess_workers", "--trust_remote_code",
                   "--extra_llm_api_options", "--config", "--reasoning_parser", "--tool_parser", "--chat_template",
                   "--served_model_name", "--tokenizer", "--metadata_server_config_file", "--server_role", "--disagg_cluster_uri"):
        assert option in proc.stdout
    assert "[default: localhost]" in proc.stdout and "[default: 8000]" in proc.stdout
    assert "lab stand-in" in run_cli(["--help"]).stdout


def test_guide_command_line_is_accepted(start, tmp_path):
    extra = tmp_path / "extra-llm-api-config.yml"
    extra.write_text("print_iter_log: false\nkv_cache_config:\n  dtype: auto\n  free_gpu_memory_fraction: 0.9\n"
                     "cuda_graph_config:\n  enable_padding: true\ndisable_overlap_scheduler: true\n")
    server = start(args=[REPO_ID, "--max_batch_size", "64", "--trust_remote_code", "--backend", "pytorch",
                         "--max_num_tokens", "32768", "--extra_llm_api_options", str(extra), "--log_level", "info"])
    server.wait_ready()
    assert "Applying LLM API options" in server.stdout and "kv_cache_config" in server.stdout


def test_invalid_yaml_fails_at_startup(tmp_path, hf_home):
    extra = tmp_path / "bad.yml"
    extra.write_text("kv_cache_config: [unclosed\n")
    proc = run_cli([REPO_ID, "--config", str(extra), "--port", str(free_port())], {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1
    assert any(line.startswith("yaml.parser.ParserError: ") for line in proc.stderr.splitlines()), proc.stderr


# ---------------------------------------------------------------------------------------------------------------
# OpenAI API
# ---------------------------------------------------------------------------------------------------------------
def test_completions_shape_max_tokens_and_determinism(start):
    server = start()
    server.wait_ready()
    body = {"model": REPO_ID, "prompt": "Paris is great because", "max_tokens": 5, "temperature": 0}
    status, _headers, raw = http("POST", server.base + "/v1/completions", body)
    assert status == 200
    first = json.loads(raw)
    assert set(first) == {"id", "object", "created", "model", "choices", "usage"}
    assert first["id"].startswith("cmpl-") and first["object"] == "text_completion" and first["model"] == REPO_ID
    choice = first["choices"][0]
    assert choice["index"] == 0 and choice["finish_reason"] == "length" and len(choice["text"].split()) == 5
    assert first["usage"] == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
    again = json.loads(http("POST", server.base + "/v1/completions", body)[2])
    assert again["choices"][0]["text"] == choice["text"] and again["id"] != first["id"]
    other = json.loads(http("POST", server.base + "/v1/completions", dict(body, prompt="Tokyo is big"))[2])
    assert other["choices"][0]["text"] != choice["text"]
    default = json.loads(http("POST", server.base + "/v1/completions", {"model": REPO_ID, "prompt": "x", "ignore_eos": True})[2])
    assert default["usage"]["completion_tokens"] == 16
    natural = json.loads(http("POST", server.base + "/v1/completions", dict(body, max_tokens=500))[2])
    assert natural["choices"][0]["finish_reason"] == "stop" and 12 <= natural["usage"]["completion_tokens"] <= 63
    batch = json.loads(http("POST", server.base + "/v1/completions", dict(body, prompt=["a b", "c d"], n=2))[2])
    assert [c["index"] for c in batch["choices"]] == [0, 1, 2, 3]


def test_chat_completions_with_the_openai_client(start):
    openai = pytest.importorskip("openai")
    server = start()
    server.wait_ready()
    client = openai.OpenAI(base_url=server.base + "/v1", api_key="x", timeout=20, max_retries=0)
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Paris is great because"}]
    result = client.chat.completions.create(model=REPO_ID, messages=messages, max_tokens=7)
    assert result.id.startswith("chatcmpl-") and result.object == "chat.completion" and result.model == REPO_ID
    assert result.choices[0].message.role == "assistant" and result.choices[0].finish_reason == "length"
    assert len(result.choices[0].message.content.split()) == 7
    assert result.usage.completion_tokens == 7 and result.usage.total_tokens == result.usage.prompt_tokens + 7

    stream = client.chat.completions.create(model=REPO_ID, messages=messages, max_tokens=7, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == 7 and "".join(content) == result.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].usage.completion_tokens == 7 and chunks[-1].choices == []

    completion = client.completions.create(model=REPO_ID, prompt="Paris is great because", max_tokens=4, stream=True)
    texts = [c.choices[0].text for c in completion]
    assert len(texts) == 4 and texts[-1]


def test_stream_ends_with_done_and_flushes_per_token(start):
    server = start(env={"TRTLLM_STANDIN_TOKENS_PER_SECOND": "10"})
    server.wait_ready()
    conn = HTTPConnection("127.0.0.1", server.port, timeout=10)
    body = {"model": REPO_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True}
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"content-type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
    arrivals, events = [], []
    buffer = b""
    while True:
        piece = response.read1(65536)
        if not piece:
            break
        buffer += piece
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            events.append(event.decode())
            arrivals.append(time.monotonic())
    conn.close()
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)
    token_times = arrivals[1:6]
    assert len(token_times) == 5 and token_times[-1] - token_times[0] >= 0.3, "tokens must arrive one by one"


def test_token_rate_is_honoured(start):
    server = start(env={"TRTLLM_STANDIN_TOKENS_PER_SECOND": "40"})
    server.wait_ready()
    began = time.monotonic()
    status, body = chat(server.base, max_tokens=20, ignore_eos=True)
    elapsed = time.monotonic() - began
    assert status == 200 and body["usage"]["completion_tokens"] == 20
    assert 0.45 <= elapsed <= 2.5, f"20 tokens at 40 tok/s took {elapsed:.2f}s"


@pytest.mark.parametrize("body,fragment", [
    ({"model": REPO_ID}, "messages"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": REPO_ID, "messages": []}, "messages"),
    ({"model": REPO_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
    ({"model": REPO_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}, "max_tokens"),
    ({"model": REPO_ID, "messages": [{"role": "wizard", "content": "hi"}]}, "role"),
    ({"model": REPO_ID, "messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": True}}, "Stream options"),
    ({"model": REPO_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50000}, "max_seq_len"),
])
def test_invalid_chat_requests_get_openai_400s(start, body, fragment):
    server = start()
    server.wait_ready()
    status, _headers, raw = http("POST", server.base + "/v1/chat/completions", body)
    error = json.loads(raw)
    assert status == 400
    assert set(error) == {"object", "message", "type", "param", "code"}
    assert error["object"] == "error" and error["type"] == "BadRequestError" and error["code"] == 400 and error["param"] is None
    assert fragment in error["message"]


def test_routing_errors_and_model_name_handling(start):
    server = start()
    server.wait_ready()
    assert http("POST", server.base + "/v1/chat/completions", b"{not json")[0] == 400
    status, _headers, raw = http("GET", server.base + "/v1/embeddings")
    assert (status, raw) == (404, b'{"detail":"Not Found"}')
    status, _headers, raw = http("GET", server.base + "/v1/chat/completions")
    assert (status, raw) == (405, b'{"detail":"Method Not Allowed"}')
    body = {"model": "some-other-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    status, _headers, raw = http("POST", server.base + "/v1/chat/completions", body)
    assert status == 200 and json.loads(raw)["model"] == "some-other-model", "trtllm-serve does not check the model name"


def test_strict_model_mode_returns_404(start):
    server = start(env={"TRTLLM_STANDIN_STRICT_MODEL": "1"})
    server.wait_ready()
    body = {"model": "some-other-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    status, _headers, raw = http("POST", server.base + "/v1/chat/completions", body)
    assert status == 404 and json.loads(raw)["type"] == "NotFoundError" and "some-other-model" in json.loads(raw)["message"]
    assert chat(server.base, max_tokens=2)[0] == 200


def test_health_generate_ok(start):
    server = start()
    server.wait_ready()
    status, _headers, raw = http("GET", server.base + "/health_generate")
    assert (status, raw) == (200, b"Generation health check OK")


# ---------------------------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------------------------
def test_metrics_need_the_llm_api_options_like_the_real_server(start):
    server = start()
    server.wait_ready()
    chat(server.base, max_tokens=3)
    assert json.loads(http("GET", server.base + "/metrics")[2]) == []
    assert http("GET", server.base + "/prometheus/metrics")[0] == 404


def test_iteration_stats_and_prometheus_metrics(start, tmp_path):
    extra = tmp_path / "extra.yml"
    extra.write_text("enable_iter_perf_stats: true\nreturn_perf_metrics: true\n")
    server = start(args=[REPO_ID, "--config", str(extra)])
    server.wait_ready()
    assert chat(server.base, max_tokens=3)[0] == 200
    assert chat(server.base, content="another prompt", max_tokens=500)[0] == 200
    stats = json.loads(http("GET", server.base + "/metrics")[2])
    assert len(stats) >= 3 and all({"iter", "iterLatencyMS", "numActiveRequests", "kvCacheStats"} <= set(s) for s in stats)
    assert [s["iter"] for s in stats] == sorted(s["iter"] for s in stats)
    assert json.loads(http("GET", server.base + "/metrics")[2]) == [], "/metrics drains the queue"
    status, headers, raw = http("GET", server.base + "/prometheus/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    parsed = parse_prometheus(raw.decode())
    assert parsed["types"]["trtllm_request_success_total"] == "counter"
    assert parsed["types"]["trtllm_e2e_request_latency_seconds"] == "histogram"
    success = {dict(labels)["finished_reason"]: value for (name, labels), value in parsed["samples"].items()
               if name == "trtllm_request_success_total"}
    assert success["length"] == 1.0 and success["stop"] == 1.0
    counts = [v for (name, _labels), v in parsed["samples"].items() if name == "trtllm_e2e_request_latency_seconds_count"]
    assert counts == [2.0]


# ---------------------------------------------------------------------------------------------------------------
# failure injection
# ---------------------------------------------------------------------------------------------------------------
def test_crash_while_loading_never_listens(tmp_path, hf_home):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRTLLM_STANDIN_")}
    env.update({"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRTLLM_STANDIN_CRASH_WHILE_LOADING": "1",
                "TRTLLM_STANDIN_LOAD_SECONDS": "1"})
    proc = subprocess.Popen([sys.executable, str(SERVE), REPO_ID, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    refused = []
    deadline = time.monotonic() + 15
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            refused.append(False)
        except ConnectionRefusedError:
            refused.append(True)
        time.sleep(0.1)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 1
    assert refused and all(refused)
    assert "Uvicorn running" not in out
    assert err.strip().splitlines()[-1].startswith("torch.OutOfMemoryError: CUDA out of memory.")


def test_crash_after_requests(start):
    server = start(env={"TRTLLM_STANDIN_CRASH_AFTER_REQUESTS": "2"})
    server.wait_ready()
    assert http("GET", server.base + "/v1/models")[0] == 200, "non-generation requests do not count"
    assert chat(server.base, max_tokens=2)[0] == 200
    status, _headers, raw = http("GET", server.base + "/health_generate")
    assert status == 200 and raw == b"Generation health check OK"
    assert server.wait_exit(10) == 1
    assert server.connect_refused()
    assert "TRTLLM_STANDIN_CRASH_AFTER_REQUESTS=2" in server.stderr


def test_hung_generation_keeps_health_green(start):
    server = start(env={"TRTLLM_STANDIN_HANG_GENERATION": "1", "TRTLLM_STANDIN_HEALTH_GENERATE_TIMEOUT": "1"})
    server.wait_ready()
    assert http("GET", server.base + "/health")[0] == 200
    assert http("GET", server.base + "/v1/models")[0] == 200
    began = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError, urllib.error.URLError)):
        http("POST", server.base + "/v1/chat/completions",
             {"model": REPO_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}, timeout=1.5)
    assert time.monotonic() - began >= 1.4
    status, _headers, raw = http("GET", server.base + "/health_generate", timeout=10)
    assert (status, raw) == (500, b"Generation health check failed")
    assert http("GET", server.base + "/health")[0] == 200


def test_hung_health_generate_hangs_without_internal_timeout(start):
    server = start(env={"TRTLLM_STANDIN_HANG_GENERATION": "1"})
    server.wait_ready()
    with pytest.raises((socket.timeout, TimeoutError, urllib.error.URLError)):
        http("GET", server.base + "/health_generate", timeout=1.5)
    assert http("GET", server.base + "/health", timeout=3)[0] == 200


def test_sigterm_shuts_down_cleanly(start):
    server = start()
    server.wait_ready()
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait_exit(10) == 0
    assert "Finished server process" in server.stdout


# ---------------------------------------------------------------------------------------------------------------
# the rest of the guide's surface
# ---------------------------------------------------------------------------------------------------------------
def test_tensorrt_llm_import_prints_the_version():
    env = dict(os.environ, PYTHONPATH=str(STUB_PATH), TRTLLM_STANDIN_VERSION="1.2.0rc6")
    proc = subprocess.run([sys.executable, "-c", "import tensorrt_llm; print(tensorrt_llm.__version__)"],
                          capture_output=True, text=True, env=env, timeout=30, check=True)
    assert proc.stdout.splitlines() == ["[TensorRT-LLM] TensorRT-LLM version: 1.2.0rc6", "1.2.0rc6"]
    env.pop("TRTLLM_STANDIN_VERSION")
    proc = subprocess.run([sys.executable, "-c", "import tensorrt_llm; print(tensorrt_llm.__version__)"],
                          capture_output=True, text=True, env=env, timeout=30, check=True)
    assert proc.stdout.splitlines()[-1] == "1.1.0rc3"


def test_llmapi_launch_runs_rank_0_and_parks_other_ranks(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "SLURM_", "PMI_"))}
    proc = subprocess.run(["bash", str(LAUNCH), "sh", "-c", "echo rank0 ran $TLLM_SPAWN_PROXY_PROCESS"],
                          capture_output=True, text=True, env=env, timeout=30, check=False)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "rank0 ran 1"
    marker = tmp_path / "worker-ran"
    worker = subprocess.Popen(["bash", str(LAUNCH), "touch", str(marker)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(env, OMPI_COMM_WORLD_RANK="1", OMPI_COMM_WORLD_SIZE="2"))
    time.sleep(1.0)
    assert worker.poll() is None and not marker.exists(), "a worker rank waits instead of running the command"
    worker.send_signal(signal.SIGTERM)
    out, _err = worker.communicate(timeout=10)
    # mpirun ends worker ranks with SIGTERM; the stand-in's worker (python) dies of it, as a real rank does.
    assert worker.returncode == -signal.SIGTERM and "rank 1 of 2" in out
    assert subprocess.run(["bash", str(LAUNCH)], capture_output=True, timeout=10, check=False).returncode == 2


def test_gpt_oss_chat_needs_the_harmony_vocabulary_offline(tmp_path, start):
    """gpt-oss loads and lists its model without the tiktoken files, but every chat completion then fails with
    openai_harmony's error (HTTP 400), as TensorRT-LLM does on a host without internet; with
    TIKTOKEN_ENCODINGS_BASE pointing at o200k_base.tiktoken the same request answers."""
    repo = "openai/gpt-oss-20b"
    home = make_hf_home(tmp_path / "hf-oss", repo, files={
        "config.json": json.dumps({"architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
                                   "max_position_embeddings": 131072}),
        "model.safetensors": "weights"})
    body = {"model": repo, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    bare = start(args=[repo], home=home)
    bare.wait_ready()
    status, _headers, raw = http("POST", bare.base + "/v1/chat/completions", body)
    assert status == 400
    assert json.loads(raw)["message"] == "error downloading or loading vocab file: failed to download or load vocab file"
    assert "Error in harmony chat completion" in bare.stdout + bare.stderr
    status, _headers, _raw = http("POST", bare.base + "/v1/completions", {"model": repo, "prompt": "hi", "max_tokens": 4})
    assert status == 200  # only the harmony chat path reads the vocabulary

    vocab = tmp_path / "tiktoken"
    vocab.mkdir()
    (vocab / "o200k_base.tiktoken").write_text("IQ== 0\nIg== 1\n")
    staged = start(args=[repo], home=home, env={"TIKTOKEN_ENCODINGS_BASE": str(vocab)})
    staged.wait_ready()
    status, _headers, raw = http("POST", staged.base + "/v1/chat/completions", body)
    assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"]
