#!/usr/bin/python
# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: hf_model
short_description: Download, verify or remove a Hugging Face Hub repository in the host's HF cache
version_added: 0.1.0
description:
  - Manages one Hugging Face Hub repository (a model by default) at one revision in a hub cache folder laid out as
    C(huggingface_hub) writes it (C(<cache_dir>/models--org--name/{blobs,refs,snapshots,trees})), the layout the
    TensorRT-LLM containers mount as C($HF_HOME/hub).
  - O(state=present) downloads the revision (branch, tag or 40-hex commit) with C(huggingface_hub.snapshot_download).
    It first runs the library's dry run to learn which files are missing and how many bytes they hold; a complete
    cache downloads nothing and reports C(changed=false). With a commit whose tree listing is cached, no HTTP request
    is made at all.
  - Before any download, and in check mode, the module refuses when the free space at O(cache_dir) is smaller than the
    bytes to download plus O(free_space_margin_bytes).
  - O(state=verified) hashes every file of the cached snapshot against the tree listing the library cached in
    C(trees/<commit>.json) (git blob sha1 for regular files, sha256 for LFS files), which works offline; without a
    cached listing it asks the endpoint (C(HfApi.verify_repo_checksums)). Missing files, files of the wrong size and
    corrupted blobs fail the task and are named. It never downloads anything.
  - O(state=absent) removes one revision (with the blobs no other cached revision uses) or, without O(revision), the
    whole repository from the cache.
  - The download happens in a staging cache (C(<cache_dir>/.sparkfleet-staging/<repo folder>), seeded with hard
    links to the blobs already cached). Only when every selected file is there and the files fetched by this run match
    their checksums is the snapshot published into the cache (blobs moved, snapshot folder renamed into place,
    C(refs/<revision>) written last). An interrupted, failed or killed download therefore never leaves a partial
    snapshot or a ref to one where a server looks; the complete files it fetched stay in the staging cache and a
    re-run downloads the missing files only. A snapshot with missing files is never reported as verified.
  - Every request to the endpoint is bounded by O(timeout) (or the library's own, shorter limits). When the endpoint
    does not answer in time (down, or accepting connections without answering), a complete cached revision is used
    with a warning, as for an unreachable endpoint.
  - Each failure cause has its own message and RV(error.kind) (gated repository, repository not found, revision not
    found, file not found, not cached while offline, endpoint unreachable, disk full).
  - The library reads its environment variables once, at import. The module passes the endpoint, cache folder, token
    and offline switch as arguments and sets C(HF_HUB_DISABLE_TELEMETRY=1), C(HF_HUB_DISABLE_PROGRESS_BARS=1) and
    C(HF_HUB_DISABLE_SHARED_BLOBS=1) before the import, so every repository folder is self-contained.
author:
  - sparkfleet contributors (!UNKNOWN)
extends_documentation_fragment:
  - sparkfleet.trtllm._attributes
  - sparkfleet.trtllm._attributes.actiongroup_trtllm
attributes:
  check_mode:
    support: full
    details:
      - O(state=present) uses the library's dry run (metadata requests only) to report what would be downloaded.
  diff_mode:
    support: full
    details:
      - The diff shows the commit and the files of the snapshot before and after.
  idempotent:
    support: full
options:
  repo_id:
    description: Repository id, C(org/name).
    type: str
    required: true
    aliases: [name]
  repo_type:
    description: Repository type.
    type: str
    choices: [model, dataset]
    default: model
  revision:
    description:
      - Branch, tag or 40-hex commit.
      - For O(state=present) and O(state=verified) it defaults to V(main).
      - For O(state=absent), leaving it out removes the whole repository from the cache.
    type: str
  state:
    description:
      - V(present) downloads what is missing, V(verified) hashes the cached snapshot, V(absent) removes it.
    type: str
    choices: [present, verified, absent]
    default: present
  cache_dir:
    description:
      - The hub cache folder (C($HF_HOME/hub)). Created when missing.
    type: path
    default: ~/.cache/huggingface/hub
  endpoint:
    description: Base URL of the Hub or of a Hub-compatible mirror.
    type: str
    default: https://huggingface.co
  token:
    description:
      - Hugging Face access token, needed for gated and private repositories.
      - Never returned, logged or written anywhere except O(token_file).
      - When left out, the token is read from O(token_file) if that file exists; C(HF_TOKEN) and the library's token
        file are never used implicitly.
    type: str
  token_file:
    description:
      - When O(token) is given, store it in this file with mode C(0600) (C($HF_HOME/token) is the file the
        containers read). When O(token) is not given and the file exists, read the token from it.
    type: path
  offline:
    description:
      - Use the cache only and make no network request. A revision that is not cached (completely) fails.
    type: bool
    default: false
  allow_patterns:
    description: Only files matching one of these glob patterns are downloaded or verified.
    type: list
    elements: str
  ignore_patterns:
    description: Files matching one of these glob patterns are not downloaded or verified.
    type: list
    elements: str
  max_workers:
    description: Files downloaded (or hashed) in parallel.
    type: int
    default: 8
  etag_timeout:
    description: Seconds to wait for the endpoint's answer to a metadata request.
    type: float
    default: 10
  timeout:
    description:
      - Seconds to wait for the endpoint to accept a connection and for each answer (or each part of one) of every
        request that has no limit of its own in the library (repository information, file listings, checksum
        listings). Requests with their own limit (O(etag_timeout), file downloads) keep it.
      - An endpoint that does not answer within it counts as unreachable, so a complete cached revision is used (with
        a warning) instead of waiting forever.
    type: float
    default: 30
  free_space_margin_bytes:
    description: Free bytes that must remain at O(cache_dir) after the download.
    type: int
    default: 1073741824
  checksum_source:
    description:
      - Where O(state=verified) takes the expected checksums from. V(cache) uses C(trees/<commit>.json) only
        (offline), V(hub) asks the endpoint, V(auto) uses the cached listing when present and the endpoint otherwise.
    type: str
    choices: [auto, cache, hub]
    default: auto
  owner:
    description:
      - Owner (name or uid) given to the cache folder and to everything in the repository's folder.
    type: str
  group:
    description:
      - Group (name or gid) given to the cache folder and to everything in the repository's folder.
    type: str
  mode:
    description:
      - Mode given to the cache folder and to every file and folder of the repository's folder (links excepted).
      - A symbolic mode such as V(u=rwX,g=rX,o=rX) keeps files readable and folders traversable by the containers.
    type: raw
requirements:
  - C(huggingface_hub) >= 1.0 (2.4 tested) importable by the Python that runs the module, for O(state=present),
    O(checksum_source=hub) and O(state=absent) with a O(revision). The P(sparkfleet.trtllm.model_cache#role) role
    installs it into a dedicated virtualenv on the hosts that download, from a wheelhouse it copies from the
    controller.
  - Offline verification (O(state=verified) with the cached tree listing) and removing a whole repository use the
    Python standard library only.
seealso:
  - name: huggingface_hub download guide
    description: The download functions the module uses.
    link: https://huggingface.co/docs/huggingface_hub/guides/download
"""

EXAMPLES = r"""
- name: Cache Qwen3-8B FP4 at a pinned commit on every Spark
  sparkfleet.trtllm.hf_model:
    repo_id: nvidia/Qwen3-8B-FP4
    revision: 0123456789abcdef0123456789abcdef01234567
    cache_dir: /var/lib/sparkfleet/huggingface/hub
    mode: u=rwX,g=rX,o=rX

- name: Download a gated model through an internal mirror with a token
  sparkfleet.trtllm.hf_model:
    repo_id: nvidia/Llama-3.3-70B-Instruct-FP4
    endpoint: http://hub.lab.internal:8080
    token: "{{ vault_hf_token }}"
    token_file: /var/lib/sparkfleet/huggingface/token
    cache_dir: /var/lib/sparkfleet/huggingface/hub

- name: Only the weights and configs
  sparkfleet.trtllm.hf_model:
    repo_id: openai/gpt-oss-20b
    allow_patterns: ["*.json", "*.safetensors", "*.tiktoken"]

- name: Check every cached file against its checksum, offline
  sparkfleet.trtllm.hf_model:
    repo_id: nvidia/Qwen3-8B-FP4
    revision: main
    state: verified
    checksum_source: cache

- name: Remove one cached revision
  sparkfleet.trtllm.hf_model:
    repo_id: nvidia/Qwen3-8B-FP4
    revision: v1
    state: absent
"""

RETURN = r"""
repo_id:
  description: The repository.
  returned: always
  type: str
  sample: nvidia/Qwen3-8B-FP4
revision:
  description: The revision asked for.
  returned: always
  type: str
  sample: main
commit:
  description: The 40-hex commit the revision resolved to (null when O(state=absent) found nothing cached).
  returned: always
  type: str
  sample: 5d2f1c7e8a9b0c1d2e3f405162738495a6b7c8d9
cache_dir:
  description: The hub cache folder.
  returned: always
  type: str
  sample: /var/lib/sparkfleet/huggingface/hub
snapshot_path:
  description: Folder of the snapshot (the path a model loader is given).
  returned: when state is present or verified
  type: str
  sample: /var/lib/sparkfleet/huggingface/hub/models--nvidia--Qwen3-8B-FP4/snapshots/5d2f1c7e8a9b0c1d2e3f405162738495a6b7c8d9
files:
  description: Repo paths of the snapshot selected by the patterns.
  returned: when state is present or verified
  type: list
  elements: str
  sample: [config.json, model.safetensors, tokenizer.json]
total_bytes:
  description: Bytes of all the selected files.
  returned: when state is present or verified
  type: int
  sample: 5681234567
downloaded_files:
  description: Files fetched from the endpoint by this run (in check mode, the files that would be).
  returned: when state is present
  type: list
  elements: str
  sample: [model.safetensors]
downloaded_bytes:
  description: Bytes of the new complete blobs this run wrote (in check mode, the bytes that would be downloaded).
  returned: when state is present
  type: int
  sample: 5679000000
duration_seconds:
  description: Wall time of the module's work.
  returned: always
  type: float
  sample: 12.5
offline:
  description: Whether the result came from the cache alone (asked for, or the endpoint could not be reached).
  returned: when state is present
  type: bool
  sample: false
verified_files:
  description: Number of files whose size and checksum matched.
  returned: when state is verified
  type: int
  sample: 7
verified_bytes:
  description: Bytes hashed.
  returned: when state is verified
  type: int
  sample: 5681234567
checksum_source:
  description: Where the expected checksums came from, V(cache) or V(hub).
  returned: when state is verified
  type: str
  sample: cache
missing_files:
  description: Expected files absent from the snapshot.
  returned: when state is verified
  type: list
  elements: str
  sample: []
corrupted_files:
  description: Files whose size or checksum differs, with what was found.
  returned: when state is verified
  type: list
  elements: dict
  sample: [{path: model.safetensors, detail: "sha256 00ab..., expected 9f3c..."}]
removed_commits:
  description: Commits removed from the cache.
  returned: when state is absent
  type: list
  elements: str
  sample: [5d2f1c7e8a9b0c1d2e3f405162738495a6b7c8d9]
freed_bytes:
  description: Bytes of blobs removed (or that would be, in check mode).
  returned: when state is absent
  type: int
  sample: 5681234567
error:
  description: Why the task failed.
  returned: failure
  type: dict
  contains:
    kind:
      description:
        - One of V(gated), V(repo_not_found), V(revision_not_found), V(entry_not_found), V(not_cached),
          V(incomplete), V(interrupted), V(unreachable), V(disk_full), V(no_space), V(corrupted), V(http), V(invalid),
          V(error).
        - With O(state=present), V(corrupted) means a file fetched by this run did not match its checksum; it was
          dropped and nothing was published.
      type: str
      sample: gated
    message:
      description: What went wrong and what to do.
      type: str
      sample: "nvidia/Llama-3.3-70B-Instruct-FP4 is a gated repository: request access on its page and use a token that has it."
"""

import os
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._hub import (
    STAGING_DIR,
    blob_sizes,
    cached_files,
    entry_size,
    expected_files,
    filter_paths,
    free_bytes,
    incomplete_downloads,
    is_disk_full,
    publish_snapshot,
    read_ref,
    read_tree,
    remove_stale_incomplete,
    resolve_cached_commit,
    restore_ref,
    seed_staging,
    staged_etags,
    staging_cache,
    storage_folder,
    verify_snapshot,
    walk_tree,
)

HF = None
HF_ERRORS = None
HF_IMPORT_ERROR = None


class ModuleFailure(Exception):
    """A failure with a kind and a user-facing message."""

    def __init__(self, kind, message, **extra):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.extra = extra


def import_hub():
    """Import huggingface_hub after setting the variables it reads once, at import time."""
    global HF, HF_ERRORS, HF_IMPORT_ERROR  # pylint: disable=global-statement
    if HF is not None:
        return True
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_SHARED_BLOBS"] = "1"
    # The module's own `offline` option decides; a stray HF_HUB_OFFLINE in the login environment must not.
    os.environ.pop("HF_HUB_OFFLINE", None)
    os.environ.pop("TRANSFORMERS_OFFLINE", None)
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError as exc:
        HF_IMPORT_ERROR = exc
        return False
    HF = huggingface_hub
    HF_ERRORS = errors
    return True


def bound_requests(seconds):
    """Give every request of huggingface_hub that has no timeout of its own a limit of ``seconds``.

    huggingface_hub 2.x sends repository information and file listing requests with ``timeout=None`` (its client
    has no default either): an endpoint that accepts the connection but never answers would keep the module
    waiting forever. A request hook of the shared client fills the missing connect/read/write/pool limits.
    """
    def hook(request):
        current = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            key: seconds if current.get(key) is None else current[key] for key in ("connect", "read", "write", "pool")}

    def with_hook(client):
        hooks = client.event_hooks
        if hook not in hooks.get("request", []):
            client.event_hooks = {"request": list(hooks.get("request", [])) + [hook],
                                  "response": list(hooks.get("response", []))}
        return client

    try:
        from huggingface_hub.utils import _http as hf_http
        base = hf_http.default_client_factory
    except (ImportError, AttributeError):
        base = None
    if base is not None:
        HF.set_client_factory(lambda: with_hook(base()))
    else:  # another layout of the library: hook the shared client it hands out
        with_hook(HF.get_session())


def classify(exc, repo_id, revision, endpoint):
    """Map a huggingface_hub (or OS) exception to one ModuleFailure with an actionable message."""
    errors = HF_ERRORS
    if is_disk_full(exc):
        return ModuleFailure("disk_full", "Disk full while caching %s: free space at the cache folder and re-run; "
                             "complete files are kept and only the missing ones are downloaded again." % repo_id)
    if errors is not None:
        if isinstance(exc, errors.GatedRepoError):
            return ModuleFailure(
                "gated",
                "%s is a gated repository and the token %s: request access on its page (%s/%s) and use a token of "
                "an account that was granted access." % (
                    repo_id, "given has no access to it" if _status(exc) == 403 else "is missing or not accepted",
                    endpoint.rstrip("/"), repo_id))
        if isinstance(exc, errors.RepositoryNotFoundError):
            return ModuleFailure(
                "repo_not_found",
                "Repository %s not found at %s (or it is private and the token cannot read it): check repo_id, "
                "repo_type and the token." % (repo_id, endpoint))
        if isinstance(exc, errors.RevisionNotFoundError):
            return ModuleFailure(
                "revision_not_found",
                "Revision %s of %s not found at %s: use an existing branch, tag or commit." % (
                    revision, repo_id, endpoint))
        if isinstance(exc, errors.RemoteEntryNotFoundError):
            return ModuleFailure(
                "entry_not_found",
                "A file of %s at revision %s is listed but not found at %s: %s" % (
                    repo_id, revision, endpoint, _first_line(exc)))
        if isinstance(exc, errors.IncompleteSnapshotError):
            return ModuleFailure(
                "incomplete",
                "The cached snapshot of %s at %s is incomplete and the endpoint %s cannot be used: re-run online to "
                "complete it. %s" % (repo_id, revision, endpoint, _first_line(exc)))
        if isinstance(exc, errors.LocalEntryNotFoundError):
            return ModuleFailure(
                "not_cached",
                "%s at revision %s is not in the cache and the endpoint %s cannot be used (offline, or unreachable): "
                "run online once, or copy the cache from a host that has it." % (repo_id, revision, endpoint))
        if isinstance(exc, errors.HfHubHTTPError):
            return ModuleFailure("http", "The endpoint %s answered HTTP %s for %s: %s" % (
                endpoint, _status(exc), repo_id, _first_line(exc)))
        if isinstance(exc, errors.HFValidationError):
            return ModuleFailure("invalid", "Invalid repository id or revision: %s" % _first_line(exc))
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return ModuleFailure("incomplete", "A download of %s was cut short: re-run to fetch the missing files. %s" % (
            repo_id, _first_line(exc)))
    return ModuleFailure("error", "Caching %s failed: %s: %s" % (repo_id, type(exc).__name__, _first_line(exc)))


def _status(exc):
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _first_line(exc):
    text = to_native(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unreachable_cause(exc):
    """True when a DryRunError comes from a network failure rather than an HTTP answer."""
    cause = exc.__cause__ or exc.__context__
    if cause is None:
        return True
    if isinstance(cause, HF_ERRORS.HfHubHTTPError):
        return False
    return True


class HubModel:
    def __init__(self, module):
        self.module = module
        params = module.params
        self.repo_id = params["repo_id"]
        self.repo_type = params["repo_type"]
        self.state = params["state"]
        self.revision = params["revision"] or ("main" if self.state != "absent" else None)
        self.cache_dir = os.path.abspath(params["cache_dir"])
        self.endpoint = params["endpoint"].rstrip("/")
        self.offline = params["offline"]
        self.allow = params["allow_patterns"]
        self.ignore = params["ignore_patterns"]
        self.storage = storage_folder(self.cache_dir, self.repo_id, self.repo_type)
        self.stage_cache = staging_cache(self.cache_dir, self.repo_id, self.repo_type)
        self.storage_before = None
        self.ref_before = None
        self.token = params["token"]
        self.changed = False
        self.started = time.monotonic()
        self.result = {
            "repo_id": self.repo_id,
            "revision": self.revision,
            "commit": None,
            "cache_dir": self.cache_dir,
        }

    def require_hub(self):
        """Import huggingface_hub (only present, online verification and revision removal need it)."""
        if import_hub():
            bound_requests(self.module.params["timeout"])
            return
        self.module.fail_json(msg=missing_required_lib(
            "huggingface_hub",
            reason="to download and manage Hugging Face models; the sparkfleet.trtllm.model_cache role installs it "
                   "into a virtualenv on the hosts that download (or verify offline, which needs only the standard "
                   "library)"),
            exception=to_native(HF_IMPORT_ERROR))

    # Token ----------------------------------------------------------------------------------------
    def effective_token(self):
        if self.token:
            return self.token
        path = self.module.params["token_file"]
        if path and os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as handle:
                    value = handle.read().strip()
            except OSError as exc:
                raise ModuleFailure("invalid", "Cannot read token_file %s: %s" % (path, exc.strerror))
            if value:
                return value
        return False

    def store_token(self):
        path = self.module.params["token_file"]
        if not (self.token and path):
            return
        current = None
        try:
            with open(path, encoding="utf-8") as handle:
                current = handle.read().strip()
        except OSError:
            pass
        mode_ok = os.path.exists(path) and (os.stat(path).st_mode & 0o777) == 0o600
        if current == self.token and mode_ok:
            return
        self.changed = True
        if self.module.check_mode:
            return
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".token.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.token)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # Ownership ------------------------------------------------------------------------------------
    def apply_ownership(self):
        params = self.module.params
        if not (params["owner"] or params["group"] or params["mode"] is not None):
            return
        changed = False
        for path, dummy, is_link in [(self.cache_dir, True, False)] + list(walk_tree(self.storage)):
            if params["owner"]:
                changed = self.module.set_owner_if_different(path, params["owner"], changed)
            if params["group"]:
                changed = self.module.set_group_if_different(path, params["group"], changed)
            if params["mode"] is not None and not is_link:
                changed = self.module.set_mode_if_different(path, params["mode"], changed)
        if changed:
            self.changed = True

    # Helpers --------------------------------------------------------------------------------------
    def snapshot(self, commit):
        return os.path.join(self.storage, "snapshots", commit)

    def selected(self, commit):
        tree = read_tree(self.storage, commit)
        if tree is None:
            return None
        return expected_files(tree, self.allow, self.ignore)

    def describe_snapshot(self, commit):
        """Fill files/total_bytes/snapshot_path from the tree listing (or the snapshot folder)."""
        snapshot = self.snapshot(commit)
        files = self.selected(commit)
        if files is not None:
            names = sorted(files)
            total = sum(entry_size(entry) for entry in files.values())
        else:
            names = filter_paths(cached_files(snapshot), self.allow, self.ignore)
            total = sum(os.path.getsize(os.path.join(snapshot, *n.split("/"))) for n in names)
        self.result.update(commit=commit, snapshot_path=snapshot, files=names, total_bytes=total)
        return names

    def check_space(self, needed):
        margin = self.module.params["free_space_margin_bytes"]
        free = free_bytes(self.cache_dir)
        if needed and free < needed + margin:
            raise ModuleFailure(
                "no_space",
                "Not enough free space at %s for %s: %d bytes to download + %d bytes margin, %d bytes free. Free "
                "space or lower free_space_margin_bytes." % (self.cache_dir, self.repo_id, needed, margin, free),
                needed_bytes=needed, free_bytes=free)

    def hub_kwargs(self):
        return dict(
            repo_id=self.repo_id,
            repo_type=self.repo_type,
            revision=self.revision,
            cache_dir=self.cache_dir,
            endpoint=self.endpoint,
            token=self.effective_token(),
            allow_patterns=self.allow,
            ignore_patterns=self.ignore,
            max_workers=self.module.params["max_workers"],
            etag_timeout=self.module.params["etag_timeout"],
        )

    def fail_from(self, exc):
        failure = exc if isinstance(exc, ModuleFailure) else classify(exc, self.repo_id, self.revision, self.endpoint)
        raise failure

    # present --------------------------------------------------------------------------------------
    def present(self):
        self.require_hub()
        kwargs = self.hub_kwargs()
        before_commit = resolve_cached_commit(self.storage, self.revision)
        before_files = cached_files(self.snapshot(before_commit)) if before_commit else []
        self.storage_before = self.storage if os.path.isdir(self.storage) else None
        self.ref_before = read_ref(self.storage, self.revision)
        self.result["offline"] = False
        plan = None
        if not self.offline:
            plan = self.dry_run(kwargs)
        if plan is None:
            self.present_from_cache(kwargs, reached=not self.offline)
            return

        commit = plan[0].commit_hash if plan else resolve_cached_commit(self.storage, self.revision)
        todo = [item for item in plan if item.will_download]
        # Files a previous, interrupted run already fetched wait complete in the staging cache: not fetched again.
        staged = self.staged_files(commit, todo)
        fetch = [item for item in todo if item.filename not in staged]
        needed = sum(item.file_size or 0 for item in fetch)
        snapshot = self.snapshot(commit) if commit else None
        # Complete = every selected file linked in the snapshot and the tree listing cached (offline verify needs it).
        unlinked = [i.filename for i in plan if not os.path.isfile(os.path.join(snapshot, *i.filename.split("/")))]
        complete = bool(commit) and not unlinked and read_tree(self.storage, commit) is not None
        self.result.update(commit=commit, snapshot_path=snapshot, files=sorted(i.filename for i in plan),
                           total_bytes=sum(i.file_size or 0 for i in plan))
        self.check_space(needed)
        if not complete:
            self.changed = True
        if self.module.check_mode or complete:
            self.result.update(downloaded_files=sorted(i.filename for i in fetch), downloaded_bytes=needed)
            self.set_diff(before_commit, before_files, commit, sorted(i.filename for i in plan))
            return
        self.download(kwargs, before_commit, before_files)

    def staged_files(self, commit, todo):
        """Files of ``todo`` whose blob is already complete in the staging cache (from an interrupted run)."""
        stage = storage_folder(self.stage_cache, self.repo_id, self.repo_type)
        tree = read_tree(stage, commit) if commit else None
        if not todo or tree is None:
            return set()
        etags = staged_etags(stage)
        return {item.filename for item in todo if item.filename in tree
                and (tree[item.filename].get("lfs_sha256") or tree[item.filename].get("blob_id")) in etags}

    def download(self, kwargs, before_commit, before_files):
        """Download into the staging cache, check what was fetched, then publish the snapshot into the cache."""
        # The dry run recorded refs/<revision> already: take it back, the ref is written when the snapshot is
        # published, so that nothing resolves the revision to a snapshot that is not complete.
        if self.storage_before is None:
            shutil.rmtree(self.storage, ignore_errors=True)
        else:
            restore_ref(self.storage, self.revision, self.ref_before)
        stage_cache = self.stage_cache
        stage = storage_folder(stage_cache, self.repo_id, self.repo_type)
        os.makedirs(stage_cache, exist_ok=True)
        seed_staging(self.storage, stage)
        blobs_before = blob_sizes(stage)
        try:
            path = HF.snapshot_download(**dict(kwargs, cache_dir=stage_cache))
        except Exception as exc:  # pylint: disable=broad-except
            failure = classify(exc, self.repo_id, self.revision, self.endpoint)
            done = len(set(blob_sizes(stage)) - set(blobs_before))
            if failure.kind == "error":
                failure = ModuleFailure(
                    "interrupted",
                    "The download of %s at %s was interrupted (%s: %s); %d file(s) completed and are kept in %s. "
                    "Nothing was added to the cache; re-run to fetch the rest." % (
                        self.repo_id, self.revision, type(exc).__name__, _first_line(exc), done, stage_cache))
            raise failure
        commit = os.path.basename(path)
        remove_stale_incomplete(stage)
        blobs_after = blob_sizes(stage)
        new_blobs = set(blobs_after) - set(blobs_before)
        tree = read_tree(stage, commit)
        if tree is not None:
            names = sorted(expected_files(tree, self.allow, self.ignore))
        else:
            names = filter_paths(cached_files(path), self.allow, self.ignore)
        missing = [n for n in names if not os.path.isfile(os.path.join(path, *n.split("/")))]
        if missing or tree is None:
            raise ModuleFailure("incomplete", "The download of %s at %s ended with %d file(s) missing%s: %s. Nothing "
                                "was added to the cache; re-run to fetch them." % (
                                    self.repo_id, commit, len(missing),
                                    "" if tree is not None else " and no file listing", ", ".join(missing[:5])))
        fetched = [n for n in names if os.path.basename(os.path.realpath(os.path.join(path, *n.split("/"))))
                   in new_blobs]
        self.check_fetched(stage, path, commit, tree, fetched)
        publish_snapshot(stage, self.storage, commit, self.revision)
        self.remove_staging()
        remove_stale_incomplete(self.storage)
        names = self.describe_snapshot(commit)
        self.result.update(downloaded_files=sorted(fetched),
                           downloaded_bytes=sum(blobs_after[b] for b in new_blobs))
        self.set_diff(before_commit, before_files, commit, names)

    def remove_staging(self):
        shutil.rmtree(self.stage_cache, ignore_errors=True)
        try:
            os.rmdir(os.path.join(self.cache_dir, STAGING_DIR))
        except OSError:
            pass  # missing, or another repository's staging cache is still there

    def check_fetched(self, stage, path, commit, tree, fetched):
        """Hash the files this run fetched against the tree listing before they are published; drop the bad ones."""
        report = verify_snapshot(path, expected_files({n: tree[n] for n in fetched}),
                                 self.module.params["max_workers"])
        bad = report["corrupted"] + [{"path": p, "detail": "missing"} for p in report["missing"]]
        if not bad:
            return
        inside = os.path.realpath(stage) + os.sep
        for item in bad:
            full = os.path.join(path, *item["path"].split("/"))
            for victim in (os.path.realpath(full), full):
                if os.path.lexists(victim) and os.path.realpath(os.path.dirname(victim)).startswith(inside):
                    os.unlink(victim)
        raise ModuleFailure(
            "corrupted",
            "%d file(s) of %s at %s fetched by this run do not match their checksums (%s) and were dropped; nothing "
            "was added to the cache. Re-run to fetch them again." % (
                len(bad), self.repo_id, commit, "; ".join("%s: %s" % (c["path"], c["detail"]) for c in bad[:5])),
            corrupted_files=report["corrupted"])

    def dry_run(self, kwargs):
        """The library's dry run; None when the endpoint cannot be reached. Leaves no trace in check mode."""
        cache_existed = os.path.isdir(self.cache_dir)
        storage_existed = os.path.isdir(self.storage)
        ref = os.path.join(self.storage, "refs", *self.revision.split("/"))
        ref_existed = os.path.exists(ref)
        try:
            try:
                return HF.snapshot_download(dry_run=True, **kwargs)
            except HF_ERRORS.DryRunError as exc:
                if not _unreachable_cause(exc):
                    self.fail_from(exc.__cause__ or exc.__context__)
                return None
            except Exception as exc:  # pylint: disable=broad-except
                self.fail_from(exc)
        finally:
            # The dry run records refs/<revision>; check mode must not change the host.
            if self.module.check_mode:
                if not cache_existed:
                    shutil.rmtree(self.cache_dir, ignore_errors=True)
                elif not storage_existed:
                    shutil.rmtree(self.storage, ignore_errors=True)
                elif not ref_existed and os.path.exists(ref):
                    os.unlink(ref)
        return None

    def present_from_cache(self, kwargs, reached):
        """Offline (asked for or endpoint unreachable): the cached, complete revision or a clear error."""
        try:
            path = HF.snapshot_download(local_files_only=True, **kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            failure = classify(exc, self.repo_id, self.revision, self.endpoint)
            if reached and failure.kind == "not_cached":
                failure = ModuleFailure(
                    "unreachable",
                    "The endpoint %s cannot be reached and %s at revision %s is not cached: check the endpoint "
                    "(network, mirror running) or copy the cache from a host that has it." % (
                        self.endpoint, self.repo_id, self.revision))
            raise failure
        commit = os.path.basename(path)
        names = self.describe_snapshot(commit)
        missing = [n for n in names if not os.path.isfile(os.path.join(path, *n.split("/")))]
        if missing:
            listed = ", ".join(missing[:5])
            raise ModuleFailure("incomplete", "The cached snapshot of %s at %s misses %d file(s) (%s) and the endpoint "
                                "cannot be used: re-run online." % (self.repo_id, commit, len(missing), listed))
        self.result.update(offline=True, downloaded_files=[], downloaded_bytes=0)
        if reached:
            self.module.warn("The endpoint %s could not be reached: using the cached snapshot %s of %s." % (
                self.endpoint, commit, self.repo_id))
        self.set_diff(commit, cached_files(path), commit, cached_files(path))

    def set_diff(self, before_commit, before_files, after_commit, after_files):
        if self.module._diff:
            self.result["diff"] = {
                "before": {"commit": before_commit, "files": sorted(before_files)},
                "after": {"commit": after_commit, "files": sorted(after_files)},
            }

    # verified -------------------------------------------------------------------------------------
    def verified(self):
        source = self.module.params["checksum_source"]
        commit = resolve_cached_commit(self.storage, self.revision)
        if commit is None or not os.path.isdir(self.snapshot(commit)):
            raise ModuleFailure("not_cached", "%s at revision %s is not in the cache %s: nothing to verify. Cache it "
                                "first (state=present)." % (self.repo_id, self.revision, self.cache_dir))
        files = self.selected(commit)
        if files is None and source == "cache":
            raise ModuleFailure("not_cached", "No cached tree listing (trees/%s.json) for %s: verify with "
                                "checksum_source=hub, or re-cache it with this module." % (commit, self.repo_id))
        if files is not None and source != "hub":
            self.result["checksum_source"] = "cache"
            report = verify_snapshot(self.snapshot(commit), files, self.module.params["max_workers"])
        else:
            if self.offline:
                raise ModuleFailure("not_cached", "No cached tree listing for %s and offline=true: the checksums "
                                    "cannot be known." % self.repo_id)
            self.result["checksum_source"] = "hub"
            report = self.verify_online(commit)
        self.describe_snapshot(commit)
        partial = incomplete_downloads(self.storage) + incomplete_downloads(
            storage_folder(self.stage_cache, self.repo_id, self.repo_type))
        self.result.update(verified_files=report["checked"], verified_bytes=report["bytes"],
                           missing_files=report["missing"], corrupted_files=report["corrupted"])
        if report["missing"] or report["corrupted"]:
            parts = []
            if report["corrupted"]:
                parts.append("corrupted: %s" % ", ".join(c["path"] for c in report["corrupted"]))
            if report["missing"]:
                parts.append("missing: %s" % ", ".join(report["missing"]))
            hint = " (%d interrupted download(s) in blobs/)" % len(partial) if partial else ""
            raise ModuleFailure(
                "corrupted",
                "%s at %s failed verification%s: %s. Remove the revision (state=absent) and download it again, or "
                "copy it from a verified host." % (self.repo_id, commit, hint, "; ".join(parts)))

    def verify_online(self, commit):
        self.require_hub()
        api = HF.HfApi(endpoint=self.endpoint, token=self.effective_token())
        try:
            outcome = api.verify_repo_checksums(self.repo_id, repo_type=self.repo_type, revision=commit,
                                                cache_dir=self.cache_dir, token=self.effective_token())
        except Exception as exc:  # pylint: disable=broad-except
            self.fail_from(exc)
        wanted = set(filter_paths(sorted(set(outcome.missing_paths)), self.allow, self.ignore))
        corrupted = [{"path": m["path"], "detail": "%s %s, expected %s" % (m["algorithm"], m["actual"], m["expected"])}
                     for m in outcome.mismatches]
        snapshot = self.snapshot(commit)
        checked = outcome.checked_count - len(corrupted)
        total = sum(os.path.getsize(os.path.join(snapshot, *p.split("/")))
                    for p in filter_paths(cached_files(snapshot), self.allow, self.ignore))
        return {"checked": checked, "bytes": total, "missing": sorted(wanted), "corrupted": corrupted}

    # absent ---------------------------------------------------------------------------------------
    def absent(self):
        self.result.update(removed_commits=[], freed_bytes=0)
        if not os.path.isdir(self.storage):
            if self.revision is None and os.path.isdir(self.stage_cache):
                # Only an interrupted download of the repository (its staging cache) is left.
                self.changed = True
                if not self.module.check_mode:
                    self.remove_staging()
            return
        if self.revision is None:
            commits = sorted(os.listdir(os.path.join(self.storage, "snapshots"))) if os.path.isdir(
                os.path.join(self.storage, "snapshots")) else []
            freed = sum(blob_sizes(self.storage).values())
            self.changed = True
            self.result.update(removed_commits=commits, freed_bytes=freed)
            if self.module.check_mode:
                return
            shutil.rmtree(self.storage)
            locks = os.path.join(self.cache_dir, ".locks", os.path.basename(self.storage))
            shutil.rmtree(locks, ignore_errors=True)
            self.remove_staging()
            return
        commit = resolve_cached_commit(self.storage, self.revision)
        self.result["commit"] = commit
        if commit is None or not os.path.isdir(self.snapshot(commit)):
            return
        self.require_hub()
        try:
            info = HF.scan_cache_dir(self.cache_dir)
            strategy = info.delete_revisions(commit)
        except Exception as exc:  # pylint: disable=broad-except
            raise ModuleFailure("error", "Cannot scan the cache %s: %s" % (self.cache_dir, _first_line(exc)))
        self.changed = True
        self.result.update(removed_commits=[commit], freed_bytes=int(strategy.expected_freed_size))
        if self.module.check_mode:
            return
        strategy.execute()
        for leftover in (os.path.join(self.storage, "trees", "%s.json" % commit),):
            if os.path.exists(leftover):
                os.unlink(leftover)
        no_exist = os.path.join(self.storage, ".no_exist", commit)
        if os.path.isdir(no_exist):
            shutil.rmtree(no_exist, ignore_errors=True)
        if os.path.isdir(self.snapshot(commit)):
            raise ModuleFailure("error", "Revision %s of %s is still in the cache after removal (an entry could not "
                                "be deleted: check permissions)." % (commit, self.repo_id))

    def run(self):
        if self.state == "absent":
            self.absent()
        else:
            if self.state == "present":
                self.store_token()
                self.present()
            else:
                self.verified()
            if not self.module.check_mode or os.path.isdir(self.storage):
                self.apply_ownership()
        self.result["changed"] = self.changed
        self.result["duration_seconds"] = round(time.monotonic() - self.started, 3)
        return self.result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repo_id=dict(type="str", required=True, aliases=["name"]),
            repo_type=dict(type="str", choices=["model", "dataset"], default="model"),
            revision=dict(type="str"),
            state=dict(type="str", choices=["present", "verified", "absent"], default="present"),
            cache_dir=dict(type="path", default="~/.cache/huggingface/hub"),
            endpoint=dict(type="str", default="https://huggingface.co"),
            token=dict(type="str", no_log=True),
            token_file=dict(type="path", no_log=False),
            offline=dict(type="bool", default=False),
            allow_patterns=dict(type="list", elements="str"),
            ignore_patterns=dict(type="list", elements="str"),
            max_workers=dict(type="int", default=8),
            etag_timeout=dict(type="float", default=10),
            timeout=dict(type="float", default=30),
            free_space_margin_bytes=dict(type="int", default=1073741824),
            checksum_source=dict(type="str", choices=["auto", "cache", "hub"], default="auto"),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw"),
        ),
        supports_check_mode=True,
    )
    revision = module.params["revision"]
    if revision is not None and (not revision.strip() or ".." in revision):
        module.fail_json(msg="revision must be a branch, tag or commit", error={"kind": "invalid", "message": "bad revision"})
    if module.params["timeout"] <= 0:
        module.fail_json(msg="timeout must be more than 0 seconds",
                         error={"kind": "invalid", "message": "timeout <= 0"})
    if module.params["max_workers"] < 1:
        module.fail_json(msg="max_workers must be at least 1", error={"kind": "invalid", "message": "max_workers < 1"})

    worker = HubModel(module)
    try:
        result = worker.run()
    except ModuleFailure as failure:
        result = dict(worker.result)
        result.update(failure.extra)
        result["duration_seconds"] = round(time.monotonic() - worker.started, 3)
        message = failure.message
        token = worker.token
        if token:
            message = message.replace(token, "********")
        module.fail_json(msg=message, error={"kind": failure.kind, "message": message}, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
