# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Start-up sequence and OpenAI-compatible HTTP API of the stand-in ``trtllm-serve``.

Order of events, as in TensorRT-LLM's ``launch_server``: bind the port (not listening), build the LLM
(resolve the checkpoint, "load" it), then listen and serve. Nothing accepts connections while loading.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from trtllm_standin import STANDIN_MARKER, env_flag, env_float, env_int, logs, version
from trtllm_standin import ranks
from trtllm_standin.config import ConfigError, load_options_file
from trtllm_standin.engine import Engine, Hung, count_tokens
from trtllm_standin.hfcache import ModelResolutionError, hub_cache_dir, hub_offline, read_model_config, resolve_model

TIMEOUT_KEEP_ALIVE = 5
# Keys of the LLM API options file that override a CLI value (YAML wins, as up to TensorRT-LLM 1.3.0rc13).
YAML_OVERRIDES = {
    "max_batch_size": "max_batch_size", "max_num_tokens": "max_num_tokens", "max_seq_len": "max_seq_len",
    "max_beam_width": "max_beam_width", "tensor_parallel_size": "tp_size", "pipeline_parallel_size": "pp_size",
    "context_parallel_size": "cp_size", "moe_expert_parallel_size": "ep_size", "moe_cluster_parallel_size": "cluster_size",
    "gpus_per_node": "gpus_per_node", "trust_remote_code": "trust_remote_code", "backend": "backend",
    "reasoning_parser": "reasoning_parser", "num_postprocess_workers": "num_postprocess_workers",
}
CHAT_ROLES = ("system", "user", "assistant", "tool", "developer", "function")


def _traceback(exc_type: str, message: str, frames=()) -> None:
    lines = ["Traceback (most recent call last):",
             '  File "/usr/local/bin/trtllm-serve", line 8, in <module>',
             "    sys.exit(main())",
             '  File "/usr/local/lib/python3.12/dist-packages/tensorrt_llm/commands/serve.py", line 421, in serve',
             "    launch_server(host, port, llm_args, tool_parser, chat_template,"]
    for number, (path, func, code) in enumerate(frames):
        lines.append(f'  File "{path}", line {120 + 37 * number}, in {func}')
        lines.append(f"    {code}")
    lines.append(f"{exc_type}: {message}")
    logs.raw("\n".join(lines), error=True)


class StartupError(Exception):
    def __init__(self, exc_type: str, message: str, frames=()):
        super().__init__(message)
        self.exc_type, self.message, self.frames = exc_type, message, frames


def _load_extra(path):
    if path is None:
        return {}
    try:
        data = load_options_file(path)
    except ConfigError as exc:
        raise StartupError(exc.exc_type, exc.message) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise StartupError(type(exc).__name__, str(exc)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StartupError("AttributeError", f"'{type(data).__name__}' object has no attribute 'items'",
                           (("/usr/local/lib/python3.12/dist-packages/tensorrt_llm/llmapi/llm_utils.py",
                             "update_llm_args_with_extra_dict", "for key, value in llm_args_dict.items():"),))
    return data


def _effective_args(options: dict, extra: dict) -> dict:
    args = dict(options)
    for key, dest in YAML_OVERRIDES.items():
        if key in extra:
            args[dest] = extra[key]
    kv_cache = extra.get("kv_cache_config")
    if isinstance(kv_cache, dict) and "free_gpu_memory_fraction" in kv_cache:
        args["free_gpu_memory_fraction"] = kv_cache["free_gpu_memory_fraction"]
    return args


def _check_parallelism(args: dict) -> None:
    world = max(1, env_int("OMPI_COMM_WORLD_SIZE", 1))
    gpus = args.get("gpus_per_node") or env_int("TRTLLM_STANDIN_GPUS_PER_NODE", 1)
    wanted = int(args.get("tp_size") or 1) * int(args.get("pp_size") or 1) * int(args.get("cp_size") or 1)
    if wanted > world * gpus:
        raise StartupError(
            "RuntimeError",
            f"world_size (tp_size*pp_size*cp_size = {wanted}) exceeds the GPUs available to this launch "
            f"({world} MPI rank(s) x {gpus} GPU(s) per node); multi-node runs need "
            "'mpirun ... trtllm-llmapi-launch trtllm-serve ...' with one rank per node",
            (("/usr/local/lib/python3.12/dist-packages/tensorrt_llm/llmapi/llm.py", "_build_model",
              "self.mpi_session = MpiPoolSession(n_workers=self.args.parallel_config.world_size)"),))


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError("RuntimeError", f"Failed to bind socket to {host}:{port}: {exc}") from exc
    return sock


def _sleep_loading(seconds: float, crash: bool) -> None:
    shards = 4
    started = time.monotonic()
    step = seconds / shards if seconds > 0 else 0
    for shard in range(1, shards + 1):
        if step:
            time.sleep(step)
        if crash and shard == 2:
            logs.trt("E", "Executor worker returned error (lab stand-in: TRTLLM_STANDIN_CRASH_WHILE_LOADING=1)")
            raise StartupError(
                "torch.OutOfMemoryError",
                "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 119.70 GiB of which "
                "1.06 GiB is free. (simulated by the lab stand-in: TRTLLM_STANDIN_CRASH_WHILE_LOADING=1)",
                (("/usr/local/lib/python3.12/dist-packages/tensorrt_llm/_torch/pyexecutor/model_loader.py", "load",
                  "self._load_weights(model, weights)"),))
        logs.trt("I", f"Loading weights: shard {shard}/{shards} ({100 * shard // shards}%), "
                      f"{time.monotonic() - started:.1f}s elapsed")


def serve(options: dict) -> int:
    """Run the stand-in server; returns the process exit code."""
    logs.set_level(options.get("log_level") or "info")
    logs.raw(f"[TensorRT-LLM] TensorRT-LLM version: {version()}")
    logs.trt("W", f"{STANDIN_MARKER}: no GPU is used, weights are not read, generated text is deterministic filler")
    try:
        extra = _load_extra(options.get("extra_llm_api_options"))
        args = _effective_args(options, extra)
        if extra:
            logs.trt("I", f"Applying LLM API options from {options['extra_llm_api_options']}: {', '.join(sorted(map(str, extra)))}")
        if (options.get("metadata_server_config_file") or options.get("disagg_cluster_uri")) and not options.get("server_role"):
            raise StartupError("AssertionError", "server_role is required when metadata_server_cfg or disagg_cluster_config is provided")
        if options.get("media_io_kwargs"):
            try:
                json.loads(options["media_io_kwargs"])
            except ValueError as exc:
                raise StartupError("ValueError", f"Invalid JSON for media_io_kwargs: {exc}") from exc
        sock = _bind(options["host"], options["port"])
        try:
            return _start(options, args, extra, sock)
        finally:
            sock.close()
    except StartupError as exc:
        _traceback(exc.exc_type, exc.message, exc.frames)
        return 1
    except KeyboardInterrupt:
        return 130


def _start(options: dict, args: dict, extra: dict, sock: socket.socket) -> int:
    backend = args.get("backend") or "pytorch"
    logs.trt("I", {"pytorch": "Using LLM with PyTorch backend", "tensorrt": "Using LLM with TensorRT backend",
                   "_autodeploy": "Using LLM with AutoDeploy backend"}.get(backend, f"Using LLM with {backend} backend"))
    if backend == "tensorrt":
        logs.trt("W", "the TensorRT backend fails on DGX Spark (TensorRT-LLM#15941); the stand-in serves it anyway")
    _check_parallelism(args)
    model = options["model"]
    if not os.path.isdir(model):
        if hub_offline():
            logs.trt("I", f"HF_HUB_OFFLINE is set: resolving {model} from the local cache {hub_cache_dir()}")
        else:
            logs.trt("W", f"HF_HUB_OFFLINE is not set, but the lab stand-in never downloads: resolving {model} "
                          f"from the local cache {hub_cache_dir()} only")
    try:
        resolved = resolve_model(model, options.get("revision"))
    except ModelResolutionError as exc:
        raise StartupError(exc.exc_type, exc.message, exc.frames) from exc
    logs.trt("I", f"Found the checkpoint of {model} in the {resolved['source']}: {resolved['path']}")
    model_config = read_model_config(resolved["path"])
    arch = (model_config.get("architectures") or ["unknown"])[0]
    logs.trt("I", f"Model architecture {arch}, max_batch_size={args.get('max_batch_size')}, "
                  f"max_num_tokens={args.get('max_num_tokens')}, tp_size={args.get('tp_size')}, "
                  f"free_gpu_memory_fraction={args.get('free_gpu_memory_fraction')}")
    rank, size = ranks.world()
    rendezvous = ranks.Rendezvous(size) if size > 1 and rank == 0 else None
    _sleep_loading(env_float("TRTLLM_STANDIN_LOAD_SECONDS", 3.0), env_flag("TRTLLM_STANDIN_CRASH_WHILE_LOADING"))
    if rendezvous is not None:
        rendezvous.wait_all()  # every rank holds its shard before the API listens
        logs.trt("I", f"rank 0: all {size} ranks joined")
    logs.trt("I", "Model loaded; KV cache allocated (simulated)")

    if options.get("served_model_name"):
        model_id = options["served_model_name"]
    elif os.path.isdir(model):
        model_id = os.path.basename(os.path.normpath(model))
    else:
        model_id = model
    max_seq_len = args.get("max_seq_len") or model_config.get("max_position_embeddings") or 131072
    engine = Engine(args, extra)
    httpd = StandinHTTPServer(sock, engine, model_id, int(max_seq_len), bool(extra.get("return_perf_metrics")))
    httpd.harmony = model_config.get("model_type") == "gpt_oss"
    logs.uvicorn("INFO", f"Started server process [{os.getpid()}]")
    logs.uvicorn("INFO", "Waiting for application startup.")
    logs.uvicorn("INFO", "Application startup complete.")
    logs.uvicorn("INFO", f"Uvicorn running on http://{options['host']}:{options['port']} (Press CTRL+C to quit)")

    def _shutdown(_signum, _frame):
        engine.stop.set()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        logs.uvicorn("INFO", "Shutting down")
        logs.uvicorn("INFO", "Waiting for application shutdown.")
        logs.uvicorn("INFO", "Application shutdown complete.")
        logs.uvicorn("INFO", f"Finished server process [{os.getpid()}]")
        httpd.server_close()
    return 0


class StandinHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048

    harmony = False  # a gpt-oss model: chat completions need the harmony vocabulary

    def __init__(self, sock, engine, model_id, max_seq_len, prometheus):
        super().__init__(sock.getsockname(), Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()
        self.engine = engine
        self.model_id = model_id
        self.max_seq_len = max_seq_len
        self.prometheus = prometheus
        self.created = int(time.time())
        self.server_activate()


HARMONY_VOCAB_ERROR = "error downloading or loading vocab file: failed to download or load vocab file"


def harmony_vocab_loads() -> bool:
    """gpt-oss chat goes through openai_harmony, which reads o200k_base.tiktoken from ``TIKTOKEN_ENCODINGS_BASE``
    or downloads it from openaipublic.blob.core.windows.net. The stand-in never downloads (a container of the fleet
    has no internet), so the file must be there and look like a tiktoken vocabulary ("<token> <rank>" lines)."""
    base = os.environ.get("TIKTOKEN_ENCODINGS_BASE", "")
    if not base:
        return False
    try:
        with open(os.path.join(base, "o200k_base.tiktoken"), "rb") as handle:
            fields = handle.readline().split()
    except OSError:
        return False
    return len(fields) == 2 and fields[1].isdigit()


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, err_type: str = "BadRequestError"):
        super().__init__(message)
        self.message, self.status, self.err_type = message, status, err_type


def _missing(field: str, model: str) -> BadRequest:
    return BadRequest(f"1 validation error for {model}\n{field}\n  Field required [type=missing]")


def _int_field(body: dict, names, default, minimum: int = 1):
    for name in names:
        if body.get(name) is not None:
            value = body[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadRequest(f"1 validation error\n{name}\n  Input should be a valid integer [type=int_type, input_value={value!r}]")
            if value < minimum:
                raise BadRequest(f"{name} must be at least {minimum}, got {value}.")
            return value
    return default


def _message_text(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or "type" not in part:
                raise BadRequest("Each content part must be an object with a 'type'.")
            if part["type"] == "text":
                parts.append(str(part.get("text", "")))
        return " ".join(parts)
    raise BadRequest(f"1 validation error\ncontent\n  Input should be a valid string or list [input_value={content!r}]")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    timeout = TIMEOUT_KEEP_ALIVE

    # -- plumbing ------------------------------------------------------------------------------------
    def version_string(self):
        return "uvicorn"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        return

    def log_request(self, code="-", size="-"):
        phrase = getattr(code, "phrase", None) or {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                                                   500: "Internal Server Error"}.get(int(code) if str(code).isdigit() else 0, "")
        logs.uvicorn("INFO", f'{self.client_address[0]}:{self.client_address[1]} - "{self.requestline.split(" HTTP", maxsplit=1)[0]} '
                             f'{self.request_version}" {int(code)} {phrase}')

    def _send(self, status: int, body: bytes, content_type: str | None = "application/json") -> None:
        self.send_response(status)
        if content_type:
            self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode())

    def _error(self, exc: BadRequest) -> None:
        self._json(exc.status, {"object": "error", "message": exc.message, "type": exc.err_type, "param": None, "code": exc.status})

    def _chunk(self, data: str) -> None:
        raw = data.encode()
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()

    def _read_json(self):
        length = self.headers.get("content-length")
        if length is None:
            raise BadRequest("A JSON request body with a content-length is required.")
        raw = self.rfile.read(int(length)) if int(length) > 0 else b""
        try:
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise BadRequest(f"1 validation error\nbody\n  JSON decode error: {exc} [type=json_invalid]") from exc

    def _crash_if_due(self, ordinal: int) -> None:
        engine = self.server.engine
        if engine.crash_due(ordinal):
            logs.trt("E", f"Executor worker died (lab stand-in: TRTLLM_STANDIN_CRASH_AFTER_REQUESTS={engine.crash_after} reached)")
            logs.raw("tensorrt_llm.executor.utils.RequestError: Executor is shut down", error=True)
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            os._exit(1)

    # -- routing -------------------------------------------------------------------------------------
    GET_ROUTES = ("/health", "/health_generate", "/version", "/v1/models", "/metrics", "/perf_metrics", "/prometheus/metrics")
    POST_ROUTES = ("/v1/completions", "/v1/chat/completions")

    def do_GET(self):  # pylint: disable=invalid-name
        path = self.path.split("?", 1)[0]
        server = self.server
        if path == "/health":
            self._send(200, b"", None)
        elif path == "/health_generate":
            self._health_generate()
        elif path == "/version":
            self._json(200, {"version": version()})
        elif path == "/v1/models":
            self._json(200, {"object": "list", "data": [
                {"id": server.model_id, "object": "model", "created": server.created, "owned_by": "tensorrt_llm"}]})
        elif path == "/metrics":
            self._json(200, server.engine.drain_iteration_stats())
        elif path == "/perf_metrics":
            self._json(200, [])
        elif path.startswith("/prometheus/metrics") and server.prometheus:
            self._send(200, server.engine.prometheus_text().encode(), "text/plain; version=0.0.4; charset=utf-8")
        elif path in self.POST_ROUTES:
            self._json(405, {"detail": "Method Not Allowed"})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_HEAD(self):  # pylint: disable=invalid-name
        self.do_GET()

    def do_POST(self):  # pylint: disable=invalid-name
        path = self.path.split("?", 1)[0]
        if path not in self.POST_ROUTES:
            self._json(405 if path in self.GET_ROUTES else 404, {"detail": "Method Not Allowed" if path in self.GET_ROUTES else "Not Found"})
            return
        try:
            body = self._read_json()
            request = self._validate(path, body)
            if path == "/v1/chat/completions" and self.server.harmony and not harmony_vocab_loads():
                # What TensorRT-LLM logs and answers when openai_harmony cannot load its vocabulary offline.
                logs.trt("E", f"Error in harmony chat completion: %s {HARMONY_VOCAB_ERROR}")
                raise BadRequest(HARMONY_VOCAB_ERROR)
        except BadRequest as exc:
            self._error(exc)
            return
        self._generate(request)

    def _other(self):
        path = self.path.split("?", 1)[0]
        known = path in self.GET_ROUTES or path in self.POST_ROUTES
        self._json(405 if known else 404, {"detail": "Method Not Allowed" if known else "Not Found"})

    do_PUT = do_DELETE = do_PATCH = _other

    # -- requests ------------------------------------------------------------------------------------
    def _validate(self, path: str, body) -> dict:
        chat = path == "/v1/chat/completions"
        schema = "ChatCompletionRequest" if chat else "CompletionRequest"
        if not isinstance(body, dict):
            raise BadRequest(f"1 validation error for {schema}\n  Input should be a valid dictionary or object [type=model_type]")
        if "model" not in body:
            raise _missing("model", schema)
        if not isinstance(body["model"], str):
            raise BadRequest(f"1 validation error for {schema}\nmodel\n  Input should be a valid string [type=string_type]")
        if env_flag("TRTLLM_STANDIN_STRICT_MODEL") and body["model"] != self.server.model_id:
            raise BadRequest(f"The model `{body['model']}` does not exist.", 404, "NotFoundError")
        if chat:
            messages = body.get("messages")
            if messages is None:
                raise _missing("messages", schema)
            if not isinstance(messages, list) or not messages:
                raise BadRequest("messages must be a non-empty list of chat messages.")
            prompts, prompt_tokens = [], 2
            for message in messages:
                if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                    raise BadRequest(f"1 validation error for {schema}\nmessages\n  Each message needs a string 'role' [type=missing]")
                if message["role"] not in CHAT_ROLES:
                    raise BadRequest(f"Invalid role {message['role']!r}: expected one of {', '.join(CHAT_ROLES)}.")
                text = _message_text(message.get("content"))
                prompts.append(f"{message['role']}: {text}")
                prompt_tokens += count_tokens(text) + 4
            prompt_list = [("\n".join(prompts), prompt_tokens)]
        else:
            prompt = body.get("prompt")
            if prompt is None:
                raise _missing("prompt", schema)
            if isinstance(prompt, str):
                prompt_list = [(prompt, count_tokens(prompt) + 1)]
            elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
                prompt_list = [(p, count_tokens(p) + 1) for p in prompt]
            elif isinstance(prompt, list) and prompt and all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
                prompt_list = [(json.dumps(prompt), len(prompt))]
            else:
                raise BadRequest(f"1 validation error for {schema}\nprompt\n  Input should be a string, a list of strings or a list of token ids")
        default_max = env_int("TRTLLM_STANDIN_DEFAULT_MAX_TOKENS", 16)
        names = ("max_completion_tokens", "max_tokens") if chat else ("max_tokens",)
        max_tokens = _int_field(body, names, default_max)
        n = _int_field(body, ("n",), 1)
        temperature = body.get("temperature")
        if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0):
            raise BadRequest(f"temperature must be a non-negative number, got {temperature!r}.")
        stream = body.get("stream", False)
        if stream is None:
            stream = False
        if not isinstance(stream, bool):
            raise BadRequest(f"1 validation error for {schema}\nstream\n  Input should be a valid boolean [type=bool_type]")
        stream_options = body.get("stream_options")
        if stream_options is not None and not stream:
            raise BadRequest("Stream options can only be defined when stream is True.")
        for _text, tokens in prompt_list:
            if tokens + max_tokens > self.server.max_seq_len:
                raise BadRequest(f"The sum of prompt length ({tokens}) and query length (0) max_tokens ({max_tokens}) should not "
                                 f"exceed max_seq_len ({self.server.max_seq_len})")
        return {
            "chat": chat, "model": body["model"], "prompts": prompt_list, "max_tokens": max_tokens, "n": n,
            "stream": stream, "include_usage": bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
            "ignore_eos": bool(body.get("ignore_eos", False)),
        }

    def _choices_plan(self, request: dict):
        plans = []
        for prompt_index, (text, _tokens) in enumerate(request["prompts"]):
            for sample in range(request["n"]):
                tokens, finish = Engine.plan(text, sample, request["max_tokens"], request["ignore_eos"])
                plans.append({"index": len(plans), "prompt_index": prompt_index, "tokens": tokens, "finish": finish})
        return plans

    def _generate(self, request: dict) -> None:
        engine = self.server.engine
        ordinal = engine.begin()
        started = time.monotonic()
        if engine.hang:
            logs.trt("W", "generation hangs (lab stand-in: TRTLLM_STANDIN_HANG_GENERATION=1)")
            try:
                engine.wait_forever()
            except Hung:
                engine.abort()
                self.close_connection = True
                return
        plans = self._choices_plan(request)
        prompt_tokens = sum(tokens for _text, tokens in request["prompts"]) * request["n"]
        if request["stream"]:
            completed = self._stream(request, plans, prompt_tokens, started)
        else:
            completed = self._complete(request, plans, prompt_tokens, started)
        if completed:
            self._crash_if_due(ordinal)

    def _usage(self, prompt_tokens: int, completion_tokens: int) -> dict:
        return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens, "completion_tokens": completion_tokens}

    def _complete(self, request, plans, prompt_tokens, started) -> bool:
        engine = self.server.engine
        longest = max(len(plan["tokens"]) for plan in plans)
        first_token = None
        for _position in range(longest):
            engine.step()
            if first_token is None:
                first_token = time.monotonic()
        completion_tokens = sum(len(plan["tokens"]) for plan in plans)
        created = int(time.time())
        if request["chat"]:
            choices = [{"index": plan["index"], "message": {"role": "assistant", "content": "".join(plan["tokens"]),
                                                            "reasoning_content": None, "tool_calls": []},
                        "logprobs": None, "finish_reason": plan["finish"], "stop_reason": None} for plan in plans]
            body = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": created,
                    "model": request["model"], "choices": choices, "usage": self._usage(prompt_tokens, completion_tokens)}
        else:
            choices = [{"index": plan["index"], "text": "".join(plan["tokens"]), "logprobs": None,
                        "finish_reason": plan["finish"], "stop_reason": None} for plan in plans]
            body = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": created,
                    "model": request["model"], "choices": choices, "usage": self._usage(prompt_tokens, completion_tokens)}
        engine.finish(started, first_token, prompt_tokens, completion_tokens, plans[0]["finish"])
        try:
            self._json(200, body)
        except OSError:
            return False
        return True

    def _stream(self, request, plans, prompt_tokens, started) -> bool:
        engine = self.server.engine
        chat = request["chat"]
        rid = f"chatcmpl-{uuid.uuid4().hex}" if chat else f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"

        def event(choices, usage=None) -> str:
            chunk = {"id": rid, "object": obj, "created": created, "model": request["model"], "choices": choices}
            if usage is not None:
                chunk["usage"] = usage
            return "data: " + json.dumps(chunk, separators=(",", ":")) + "\n\n"

        def choice(plan, text, finish=None, role=False):
            if chat:
                delta = {"role": "assistant", "content": text} if role else {"content": text}
                return {"index": plan["index"], "delta": delta, "logprobs": None, "finish_reason": finish, "stop_reason": None}
            return {"index": plan["index"], "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None}

        first_token = None
        try:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            if chat:
                self._chunk(event([choice(plan, "", role=True) for plan in plans]))
            longest = max(len(plan["tokens"]) for plan in plans)
            for position in range(longest):
                engine.step()
                if first_token is None:
                    first_token = time.monotonic()
                for plan in plans:
                    if position < len(plan["tokens"]):
                        last = position == len(plan["tokens"]) - 1
                        self._chunk(event([choice(plan, plan["tokens"][position], plan["finish"] if last else None)]))
            completion_tokens = sum(len(plan["tokens"]) for plan in plans)
            if request["include_usage"]:
                self._chunk(event([], self._usage(prompt_tokens, completion_tokens)))
            self._chunk("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            engine.abort()
            self.close_connection = True
            return False
        engine.finish(started, first_token, prompt_tokens, completion_tokens, plans[0]["finish"])
        return True

    def _health_generate(self) -> None:
        engine = self.server.engine
        ordinal = engine.begin()
        started = time.monotonic()
        if engine.hang:
            try:
                engine.wait_forever(engine.health_generate_timeout)
            except Hung:
                engine.abort()
                self.close_connection = True
                return
            engine.abort()
            logs.trt("E", f"Health generate check encountered exception: no token within {engine.health_generate_timeout}s "
                          "(lab stand-in: TRTLLM_STANDIN_HEALTH_GENERATE_TIMEOUT)")
            self._send(500, b"Generation health check failed", "text/plain; charset=utf-8")
            return
        engine.step()
        engine.finish(started, time.monotonic(), 6, 1, "length")
        self._send(200, b"Generation health check OK", "text/plain; charset=utf-8")
        self._crash_if_due(ordinal)


def run() -> None:
    """Entry point used by /usr/local/bin/trtllm-serve."""
    from trtllm_standin.cli import main  # pylint: disable=import-outside-toplevel
    sys.exit(main())
