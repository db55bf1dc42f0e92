# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Resolve MODEL like TensorRT-LLM does: a local checkpoint dir, or an HF handle from the local Hub cache.

The stand-in never downloads. Messages are those of huggingface_hub 2.4 (``snapshot_download``)
and transformers, so that what a user reads in ``docker logs`` matches the real server.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re

# TensorRT-LLM's download_hf_model() passes these ignore patterns to snapshot_download().
IGNORE_PATTERNS = ("original/**/*",)
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_REPO_ID_RE = re.compile(r"^(\b[\w\-.]+\b/)?\b[\w\-.]{1,96}\b$")
_TRUTHY = ("1", "ON", "YES", "TRUE")


class ModelResolutionError(Exception):
    """Resolution failed; ``exc_type`` is the fully qualified name of the real exception class."""

    def __init__(self, exc_type: str, message: str, frames: tuple = ()):
        super().__init__(message)
        self.exc_type = exc_type
        self.message = message
        self.frames = frames


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as huggingface_hub reads it."""
    return any(os.environ.get(name, "").strip().upper() in _TRUTHY for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_cache_dir() -> str:
    """``HF_HUB_CACHE`` > ``HUGGINGFACE_HUB_CACHE`` > ``$HF_HOME/hub`` > ``~/.cache/huggingface/hub``."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return os.path.expanduser(os.environ[name])
    hf_home = os.environ.get("HF_HOME")
    if not hf_home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        hf_home = os.path.join(xdg, "huggingface")
    return os.path.join(os.path.expanduser(hf_home), "hub")


def _frames_download(repo_id: str) -> tuple:
    return (
        ("/usr/local/lib/python3.12/dist-packages/tensorrt_llm/llmapi/llm_utils.py", "_download_hf_model",
         "self._hf_model_dir = download_hf_model(self.llm_args.model, revision)"),
        ("/usr/local/lib/python3.12/dist-packages/tensorrt_llm/llmapi/utils.py", "download_hf_model",
         f"hf_folder = snapshot_download({repo_id!r}, local_files_only=..., revision=revision, ignore_patterns=ignore_patterns)"),
        ("/usr/local/lib/python3.12/dist-packages/huggingface_hub/_snapshot_download.py", "snapshot_download",
         "raise LocalEntryNotFoundError("),
    )


def _not_found_error(repo_id: str) -> ModelResolutionError:
    return ModelResolutionError(
        "huggingface_hub.errors.LocalEntryNotFoundError",
        "Cannot find an appropriate cached snapshot folder for the specified revision on the local disk and "
        "outgoing traffic has been disabled. To enable repo look-ups and downloads online, set "
        "'HF_HUB_OFFLINE=0' as environment variable.",
        _frames_download(repo_id),
    )


def _no_config_error(path: str) -> ModelResolutionError:
    return ModelResolutionError(
        "OSError",
        f"{path} does not appear to have a file named config.json. Checkout 'https://huggingface.co/{path}/tree/None' "
        "for available files.",
        (("/usr/local/lib/python3.12/dist-packages/transformers/configuration_utils.py", "_get_config_dict",
          "resolved_config_file = cached_file("),),
    )


def _read_tree(storage: str, commit: str):
    """Files listed in ``trees/<commit>.json`` (huggingface_hub >= 2.x), or None when absent/unreadable."""
    path = os.path.join(storage, "trees", f"{commit}.json")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get("files"), dict):
        if data.get("format_version") != 1:
            return None
        return list(data["files"])
    return None


def _ignored(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in IGNORE_PATTERNS)


def resolve_model(model: str, revision: str | None = None) -> dict:
    """Return ``{"path", "repo_id", "commit", "source"}`` or raise ModelResolutionError."""
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise _no_config_error(model)
        return {"path": os.path.abspath(model), "repo_id": None, "commit": None, "source": "local directory"}

    repo_id = model
    if not _REPO_ID_RE.match(repo_id) or "--" in repo_id or ".." in repo_id or repo_id.endswith(".git"):
        raise ModelResolutionError(
            "huggingface_hub.errors.HFValidationError",
            f"Repo id must be in the form 'repo_name' or 'namespace/repo_name': '{repo_id}'. Use `repo_type` argument if needed.",
            _frames_download(repo_id)[:2],
        )
    revision = revision or "main"
    storage = os.path.join(hub_cache_dir(), "models--" + repo_id.replace("/", "--"))
    commit = revision if _COMMIT_RE.match(revision) else None
    if commit is None:
        ref_path = os.path.join(storage, "refs", revision)
        if os.path.isfile(ref_path):
            # huggingface_hub reads the ref as is (no strip): a trailing newline breaks the lookup there too.
            with open(ref_path, encoding="utf-8") as handle:
                commit = handle.read()
    if commit is None:
        raise _not_found_error(repo_id)
    snapshot = os.path.join(storage, "snapshots", commit)
    if not os.path.isdir(snapshot):
        raise _not_found_error(repo_id)
    expected = _read_tree(storage, commit)
    if expected is not None:
        missing = [p for p in expected if not _ignored(p) and not os.path.isfile(os.path.join(snapshot, *p.split("/")))]
        if missing:
            sample = ", ".join(missing[:3])
            if len(missing) > 3:
                sample += f", ... ({len(missing) - 3} more)"
            endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
            raise ModelResolutionError(
                "huggingface_hub.errors.IncompleteSnapshotError",
                f"The cached snapshot for '{repo_id}' (revision '{revision}', commit {commit}) is incomplete: "
                f"{len(missing)} file(s) are missing ({sample}). The Hub could not be reached (OfflineModeIsEnabled: "
                f"Cannot reach {endpoint}/api/models/{repo_id}/revision/{revision}: offline mode is enabled. To disable it, "
                "please unset the `HF_HUB_OFFLINE` environment variable.). Re-run the download with network access to "
                "complete the snapshot.",
                _frames_download(repo_id),
            )
    if not os.path.isfile(os.path.join(snapshot, "config.json")):
        raise _no_config_error(snapshot)
    return {"path": snapshot, "repo_id": repo_id, "commit": commit, "source": "Hugging Face cache"}


def read_model_config(path: str) -> dict:
    """The checkpoint's config.json (empty dict if unreadable)."""
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
