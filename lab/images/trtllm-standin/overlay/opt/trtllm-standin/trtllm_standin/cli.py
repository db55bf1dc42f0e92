# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""``trtllm-serve`` command line: the option surface of ``trtllm-serve serve`` with click's messages and exit codes.

Parsing uses argparse; errors are re-worded the way click prints them (``Usage:`` line, ``Try ... --help``,
``Error: ...`` on stderr, exit code 2), so scripts and roles see what the real CLI would show.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys

from trtllm_standin import STANDIN_MARKER

PROG = "trtllm-serve"
SUBCOMMANDS = ("serve", "grpc", "disaggregated", "disaggregated_mpi_worker", "mm_embedding_serve")
LOG_LEVELS = ("internal_error", "error", "warning", "info", "verbose", "debug", "trace")
BACKENDS = ("pytorch", "tensorrt", "_autodeploy")

# (names, dest, kind, default, metavar, help); kinds: str int float flag choice path multipath
OPTIONS = (
    (("--tokenizer",), "tokenizer", "str", None, "TEXT", "Path | Name of the tokenizer."),
    (("--custom_tokenizer",), "custom_tokenizer", "str", None, "TEXT", "Custom tokenizer type or import path."),
    (("--host",), "host", "str", "localhost", "TEXT", "Hostname of the server."),
    (("--port",), "port", "int", 8000, "INTEGER", "Port of the server."),
    (("--backend",), "backend", "choice", "pytorch", "[pytorch|tensorrt|_autodeploy]",
     "The backend to use to serve the model. Default is pytorch backend."),
    (("--custom_module_dirs",), "custom_module_dirs", "multipath", (), "PATH", "Paths to custom module directories to import."),
    (("--log_level",), "log_level", "choice", "info", "[" + "|".join(LOG_LEVELS) + "]", "The logging level."),
    (("--max_beam_width",), "max_beam_width", "int", 1, "INTEGER", "Maximum number of beams for beam search decoding."),
    (("--max_batch_size",), "max_batch_size", "int", 2048, "INTEGER", "Maximum number of requests that the engine can schedule."),
    (("--max_num_tokens",), "max_num_tokens", "int", 8192, "INTEGER",
     "Maximum number of batched input tokens after padding is removed in each batch."),
    (("--max_seq_len",), "max_seq_len", "int", None, "INTEGER",
     "Maximum total length of one request, including prompt and outputs. If unspecified, the value is deduced from the model config."),
    (("--tensor_parallel_size", "--tp_size"), "tp_size", "int", 1, "INTEGER", "Tensor parallelism size."),
    (("--pipeline_parallel_size", "--pp_size"), "pp_size", "int", 1, "INTEGER", "Pipeline parallelism size."),
    (("--context_parallel_size", "--cp_size"), "cp_size", "int", 1, "INTEGER", "Context parallelism size."),
    (("--moe_expert_parallel_size", "--ep_size"), "ep_size", "int", None, "INTEGER", "expert parallelism size"),
    (("--moe_cluster_parallel_size", "--cluster_size"), "cluster_size", "int", None, "INTEGER", "expert cluster parallelism size"),
    (("--gpus_per_node",), "gpus_per_node", "int", None, "INTEGER",
     "Number of GPUs per node. Default to None, and it will be detected automatically."),
    (("--free_gpu_memory_fraction", "--kv_cache_free_gpu_memory_fraction"), "free_gpu_memory_fraction", "float", 0.9, "FLOAT",
     "Free GPU memory fraction reserved for KV Cache, after allocating model weights and buffers."),
    (("--num_postprocess_workers",), "num_postprocess_workers", "int", 0, "INTEGER",
     "Number of workers to postprocess raw responses to comply with OpenAI protocol."),
    (("--trust_remote_code",), "trust_remote_code", "flag", False, "", "Flag for HF transformers."),
    (("--revision",), "revision", "str", None, "TEXT", "The revision to use for the HuggingFace model (branch name, tag name, or commit id)."),
    (("--extra_llm_api_options", "--config"), "extra_llm_api_options", "path", None, "TEXT",
     "Path to a YAML file that overwrites the parameters specified by trtllm-serve. Can be specified as either --config or "
     "--extra_llm_api_options."),
    (("--reasoning_parser",), "reasoning_parser", "str", None, "TEXT", "Specify the parser for reasoning models."),
    (("--tool_parser",), "tool_parser", "str", None, "TEXT", "Specify the parser for tool models."),
    (("--metadata_server_config_file",), "metadata_server_config_file", "str", None, "TEXT", "Path to metadata server config file"),
    (("--server_role",), "server_role", "str", None, "TEXT", "Server role. Specify this value only if running in disaggregated mode."),
    (("--fail_fast_on_attention_window_too_large",), "fail_fast_on_attention_window_too_large", "flag", False, "",
     "Exit with runtime error when attention window is too large to fit even a single sequence in the KV cache."),
    (("--otlp_traces_endpoint",), "otlp_traces_endpoint", "str", None, "TEXT", "Target URL to which OpenTelemetry traces will be sent."),
    (("--disagg_cluster_uri",), "disagg_cluster_uri", "str", None, "TEXT", "URI of the disaggregated cluster."),
    (("--enable_chunked_prefill",), "enable_chunked_prefill", "flag", False, "", "Enable chunked prefill"),
    (("--media_io_kwargs",), "media_io_kwargs", "str", None, "TEXT", "Keyword arguments for media I/O."),
    (("--chat_template",), "chat_template", "str", None, "TEXT", "Specify a custom chat template. Can be a file path or one-liner template string"),
    (("--served_model_name",), "served_model_name", "str", None, "TEXT", "Model name reported by /v1/models (newer builds only)."),
)


class UsageError(Exception):
    """A click-style usage error (exit code 2)."""

    def __init__(self, message: str, group: bool = False):
        super().__init__(message)
        self.message = message
        self.group = group


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _hint(names) -> str:
    if names[0] == "--extra_llm_api_options":
        return "'--extra_llm_api_options'"
    return " / ".join(f"'{name}'" for name in names)


def _all_option_names() -> list:
    names = ["--help"]
    for option in OPTIONS:
        names.extend(option[0])
    return names


def _no_such_option(token: str) -> str:
    name = token.split("=", 1)[0]
    message = f"No such option: {name}"
    possibilities = difflib.get_close_matches(name, _all_option_names())
    if len(possibilities) == 1:
        message += f" Did you mean {possibilities[0]}?"
    elif possibilities:
        message += f" (Possible options: {', '.join(sorted(possibilities))})"
    return message


def _reword(message: str) -> str:
    """Turn argparse wording into click wording."""
    for suffix, template in ((": expected one argument", "Option '{}' requires an argument."),
                             (": ignored explicit argument", "Option '{}' does not take a value.")):
        if message.startswith("argument ") and suffix in message:
            names = message[len("argument "):message.index(suffix)]
            return template.format(names.split("/")[0])
    return message


def _convert(option, value):
    names, _dest, kind, _default, _metavar, _help = option
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            raise UsageError(f"Invalid value for {_hint(names)}: {value!r} is not a valid integer.") from None
    if kind == "float":
        try:
            return float(value)
        except ValueError:
            raise UsageError(f"Invalid value for {_hint(names)}: {value!r} is not a valid float.") from None
    if kind == "choice":
        choices = BACKENDS if names[0] == "--backend" else LOG_LEVELS
        if names[0] == "--backend" and value == "trt":
            return "tensorrt"
        if value not in choices:
            listed = ", ".join(f"{c!r}" for c in choices)
            raise UsageError(f"Invalid value for {_hint(names)}: {value!r} is not one of {listed}.")
        return value
    if kind == "path" and not os.path.exists(value):
        raise UsageError(f"Invalid value for {_hint(names)}: Path {value!r} does not exist.")
    if kind == "multipath":
        for item in value:
            if not os.path.exists(item):
                raise UsageError(f"Invalid value for {_hint(names)}: Path {item!r} does not exist.")
        return tuple(os.path.abspath(item) for item in value)
    return value


def parse_serve_args(argv) -> dict:
    """Parse ``serve`` arguments into a dict of option values (raises UsageError like click)."""
    parser = _Parser(prog=f"{PROG} serve", add_help=False, allow_abbrev=False)
    parser.add_argument("model", nargs="?")
    for names, dest, kind, _default, _metavar, _help in OPTIONS:
        if kind == "flag":
            parser.add_argument(*names, dest=dest, action="store_true", default=False)
        elif kind == "multipath":
            parser.add_argument(*names, dest=dest, action="append", default=[])
        else:
            parser.add_argument(*names, dest=dest, default=None)
    try:
        namespace, extras = parser.parse_known_args(list(argv))
    except argparse.ArgumentError as exc:
        raise UsageError(_reword(str(exc))) from None
    except UsageError as exc:
        raise UsageError(_reword(exc.message)) from None
    for token in extras:
        if token.startswith("-") and len(token) > 1:
            raise UsageError(_no_such_option(token))
    if namespace.model is None:
        raise UsageError("Missing argument 'MODEL'.")
    if extras:
        noun = "argument" if len(extras) == 1 else "arguments"
        raise UsageError(f"Got unexpected extra {noun} ({' '.join(extras)})")
    values = {"model": namespace.model}
    for option in OPTIONS:
        dest, kind, default = option[1], option[2], option[3]
        raw = getattr(namespace, dest)
        if kind == "flag":
            values[dest] = bool(raw)
        elif kind == "multipath":
            values[dest] = _convert(option, raw) if raw else default
        elif raw is None:
            values[dest] = default
        else:
            values[dest] = _convert(option, raw)
    return values


def serve_help() -> str:
    lines = [
        f"Usage: {PROG} serve [OPTIONS] MODEL",
        "",
        "  Running an OpenAI API compatible server",
        "",
        f"  [{STANDIN_MARKER}: no GPU, no download, deterministic text; see",
        "  docs/lab-standins.md of sparkfleet.trtllm]",
        "",
        "  MODEL: model name | HF checkpoint path | TensorRT engine path",
        "",
        "Options:",
    ]
    for names, _dest, kind, default, metavar, text in OPTIONS:
        left = " / ".join(names) if kind != "flag" else ", ".join(names)
        if metavar:
            left += f" {metavar}"
        if kind not in ("flag", "multipath") and default is not None:
            text += f"  [default: {default}]"
        if len(left) > 30:
            lines.append(f"  {left}")
            lines.append(f"{'':34}{text}")
        else:
            lines.append(f"  {left:<32}{text}")
    lines.append(f"  {'--help':<32}Show this message and exit.")
    return "\n".join(lines)


def group_help() -> str:
    return "\n".join([
        f"Usage: {PROG} [OPTIONS] COMMAND [ARGS]...",
        "",
        f"  [{STANDIN_MARKER}; only 'serve' is implemented]",
        "",
        "Options:",
        "  --help  Show this message and exit.",
        "",
        "Commands:",
        "  disaggregated             Running server in disaggregated mode",
        "  disaggregated_mpi_worker  Launching disaggregated MPI worker",
        "  grpc                      Running a gRPC server",
        "  mm_embedding_serve        Running an OpenAI API compatible server",
        "  serve                     Running an OpenAI API compatible server",
    ])


def usage_error(error: UsageError) -> int:
    if error.group:
        usage, tail = f"Usage: {PROG} [OPTIONS] COMMAND [ARGS]...", f"Try '{PROG} --help' for help."
    else:
        usage, tail = f"Usage: {PROG} serve [OPTIONS] MODEL", f"Try '{PROG} serve --help' for help."
    sys.stderr.write(f"{usage}\n{tail}\n\nError: {error.message}\n")
    sys.stderr.flush()
    return 2


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] == "--help":
        print(group_help())
        return 0
    if argv[0].startswith("-"):
        return usage_error(UsageError(f"No such option: {argv[0].partition('=')[0]}", group=True))
    if argv[0] in SUBCOMMANDS:
        command, rest = argv[0], argv[1:]
    else:
        command, rest = "serve", argv
    if command != "serve":
        sys.stderr.write(f"Error: '{PROG} {command}' is not implemented by the {STANDIN_MARKER} (only 'serve' is).\n")
        return 2
    if "--help" in rest[: rest.index("--") if "--" in rest else len(rest)]:
        print(serve_help())
        return 0
    try:
        options = parse_serve_args(rest)
    except UsageError as exc:
        return usage_error(exc)
    from trtllm_standin.server import serve  # pylint: disable=import-outside-toplevel
    return serve(options)
