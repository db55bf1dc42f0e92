# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private module utils: the Hugging Face hub cache on disk, without importing ``huggingface_hub``.

Private to the sparkfleet.trtllm collection (leading underscore): no API promise to other collections.

Everything here reads or checks the cache layout that ``huggingface_hub`` 2.x writes
(``<cache_dir>/models--org--name/{blobs,refs,snapshots,trees}``) with the standard library only, so
it works offline, on hosts where the library is missing, and in unit tests:

* resolving a revision (branch, tag or commit) to a commit through ``refs/``;
* reading the tree listing ``trees/<commit>.json`` the library caches (path -> size, git sha1,
  LFS sha256) and filtering it with the same allow/ignore patterns as ``snapshot_download``;
* hashing the snapshot files against that listing (git blob sha1 for regular files, sha256 for
  LFS files), the offline equivalent of ``hf cache verify``;
* free-space checks and recursive owner/group/mode for the cache tree;
* the staging area of a download: the library downloads into ``<cache_dir>/.sparkfleet-staging/<repo folder>``
  (a hub cache of its own, seeded with hard links to the blobs the real cache already holds) and the complete,
  checked snapshot is then published into the real cache (blobs moved, snapshot folder renamed into place, ref
  written last), so an interrupted or killed download never leaves a partial snapshot where a server looks.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "COMMIT_RE",
    "STAGING_DIR",
    "HubCacheError",
    "cached_files",
    "expected_files",
    "filter_paths",
    "free_bytes",
    "git_blob_sha1",
    "incomplete_downloads",
    "publish_snapshot",
    "read_ref",
    "read_tree",
    "remove_stale_incomplete",
    "repo_folder_name",
    "resolve_cached_commit",
    "restore_ref",
    "seed_staging",
    "staged_etags",
    "staging_cache",
    "storage_folder",
    "verify_snapshot",
    "walk_tree",
]

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_CHUNK = 8 * 1024 * 1024
# Folder of <cache_dir> where downloads happen before they are published (see publish_snapshot).
STAGING_DIR = ".sparkfleet-staging"


class HubCacheError(Exception):
    """A cache problem the module reports as is (message is user-facing)."""


def repo_folder_name(repo_id, repo_type="model"):
    """``models--org--name``: the folder ``huggingface_hub`` uses for a repo in the cache."""
    parts = ["%ss" % repo_type] + repo_id.split("/")
    return "--".join(parts)


def storage_folder(cache_dir, repo_id, repo_type="model"):
    return os.path.join(cache_dir, repo_folder_name(repo_id, repo_type))


def resolve_cached_commit(storage, revision):
    """Return the commit a revision points to in the cache, or ``None`` when the cache does not know it."""
    if COMMIT_RE.match(revision):
        return revision
    ref = os.path.join(storage, "refs", *revision.split("/"))
    try:
        with open(ref, encoding="utf-8") as handle:
            value = handle.read().strip()
    except OSError:
        return None
    return value if COMMIT_RE.match(value) else None


def read_tree(storage, commit):
    """Return ``{path: {size, blob_id, lfs_sha256?, lfs_size?}}`` from ``trees/<commit>.json`` or ``None``."""
    path = os.path.join(storage, "trees", "%s.json" % commit)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format_version") != 1 or not isinstance(data.get("files"), dict):
        return None
    return data["files"]


def _as_list(patterns):
    if patterns is None:
        return None
    if isinstance(patterns, str):
        return [patterns]
    return list(patterns)


def _add_wildcard(pattern):
    # Same normalisation as huggingface_hub.utils.filter_repo_objects: "dir/" means "dir/*".
    return pattern + "*" if pattern.endswith("/") else pattern


def filter_paths(paths, allow_patterns=None, ignore_patterns=None):
    """Filter repo paths like ``huggingface_hub.utils.filter_repo_objects`` (fnmatch, ``dir/`` = ``dir/*``)."""
    allow = _as_list(allow_patterns)
    ignore = _as_list(ignore_patterns)
    if allow is not None:
        allow = [_add_wildcard(p) for p in allow]
    if ignore is not None:
        ignore = [_add_wildcard(p) for p in ignore]
    selected = []
    for path in paths:
        if allow is not None and not any(fnmatch.fnmatch(path, p) for p in allow):
            continue
        if ignore is not None and any(fnmatch.fnmatch(path, p) for p in ignore):
            continue
        selected.append(path)
    return selected


def expected_files(tree, allow_patterns=None, ignore_patterns=None):
    """The entries of a tree listing selected by the patterns, as ``{path: entry}``."""
    return {path: tree[path] for path in filter_paths(sorted(tree), allow_patterns, ignore_patterns)}


def entry_size(entry):
    size = entry.get("lfs_size")
    if size is None:
        size = entry.get("size", 0)
    return int(size or 0)


def cached_files(snapshot):
    """Repo-relative paths of the files present in a snapshot folder (links that resolve to a file)."""
    found = []
    if not os.path.isdir(snapshot):
        return found
    for root, dirs, files in os.walk(snapshot):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            if os.path.isfile(full):
                found.append(os.path.relpath(full, snapshot).replace(os.sep, "/"))
    return found


def git_blob_sha1(path):
    """Git blob id of a file: ``sha1(b"blob <size>\\0" + content)``."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_one(snapshot, path, entry):
    """Return ``(path, status, detail)``: status ok, missing, size or hash."""
    full = os.path.join(snapshot, *path.split("/"))
    if not os.path.isfile(full):
        return path, "missing", "not in the snapshot (or its blob is gone)"
    expected_size = entry_size(entry)
    actual_size = os.path.getsize(full)
    if actual_size != expected_size:
        return path, "size", "size %d, expected %d" % (actual_size, expected_size)
    if entry.get("lfs_sha256"):
        actual = sha256_file(full)
        if actual != entry["lfs_sha256"]:
            return path, "hash", "sha256 %s, expected %s" % (actual, entry["lfs_sha256"])
    else:
        actual = git_blob_sha1(full)
        if actual != entry.get("blob_id"):
            return path, "hash", "git-sha1 %s, expected %s" % (actual, entry.get("blob_id"))
    return path, "ok", ""


def verify_snapshot(snapshot, files, workers=4):
    """Hash every expected file of a snapshot.

    ``files`` is ``{path: tree entry}`` (see ``expected_files``). Returns a dict with ``checked``
    (number of files hashed and matching), ``bytes`` (bytes read), ``missing`` (paths), ``corrupted``
    (list of ``{path, detail}``).
    """
    missing = []
    corrupted = []
    checked = 0
    total = 0
    workers = max(1, int(workers))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda item: _check_one(snapshot, item[0], item[1]), sorted(files.items())))
    for path, status, detail in results:
        if status == "ok":
            checked += 1
            total += entry_size(files[path])
        elif status == "missing":
            missing.append(path)
        else:
            corrupted.append({"path": path, "detail": detail})
    return {"checked": checked, "bytes": total, "missing": missing, "corrupted": corrupted}


def incomplete_downloads(storage):
    """``*.incomplete`` files left in the repo's blobs folder by interrupted downloads."""
    blobs = os.path.join(storage, "blobs")
    try:
        names = os.listdir(blobs)
    except OSError:
        return []
    return sorted(os.path.join(blobs, n) for n in names if n.endswith(".incomplete"))


def remove_stale_incomplete(storage):
    """Remove ``<etag>.<id>.incomplete`` files whose blob ``<etag>`` is complete; return their paths."""
    removed = []
    for path in incomplete_downloads(storage):
        etag = os.path.basename(path).split(".", 1)[0]
        if os.path.isfile(os.path.join(os.path.dirname(path), etag)):
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    return removed


def blob_sizes(storage):
    """``{blob name: size}`` of the complete blobs of a repo folder."""
    blobs = os.path.join(storage, "blobs")
    sizes = {}
    try:
        names = os.listdir(blobs)
    except OSError:
        return sizes
    for name in names:
        if name.endswith(".incomplete"):
            continue
        try:
            sizes[name] = os.stat(os.path.join(blobs, name)).st_size
        except OSError:
            pass
    return sizes


def existing_ancestor(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def free_bytes(path):
    """Free bytes on the filesystem that holds ``path`` (or its nearest existing parent)."""
    return shutil.disk_usage(existing_ancestor(path)).free


def is_disk_full(error):
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def walk_tree(top):
    """Yield ``(path, is_dir, is_link)`` for ``top`` and everything below it (links are not followed)."""
    if not os.path.lexists(top):
        return
    yield top, os.path.isdir(top) and not os.path.islink(top), os.path.islink(top)
    for root, dirs, files in os.walk(top):
        for name in sorted(dirs):
            full = os.path.join(root, name)
            yield full, not os.path.islink(full), os.path.islink(full)
        for name in sorted(files):
            full = os.path.join(root, name)
            yield full, False, os.path.islink(full)


# Staging -----------------------------------------------------------------------------------------------------


def staging_cache(cache_dir, repo_id, repo_type="model"):
    """The hub cache folder a download of one repo is staged in: ``<cache_dir>/.sparkfleet-staging/<repo folder>``.

    It is a cache of its own (the library writes ``<it>/<repo folder>/{blobs,refs,snapshots,trees}`` and
    ``<it>/.locks``), on the same file system as the real cache so that publishing is a rename.
    """
    return os.path.join(cache_dir, STAGING_DIR, repo_folder_name(repo_id, repo_type))


def read_ref(storage, revision):
    """The raw content of ``refs/<revision>`` or ``None``."""
    try:
        with open(os.path.join(storage, "refs", *revision.split("/")), encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def _write_atomic(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "%s.sparkfleet-tmp" % path
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(data)
    os.replace(tmp, path)


def restore_ref(storage, revision, previous):
    """Put ``refs/<revision>`` back to ``previous`` (its raw content, or ``None``: no ref). True when it changed."""
    if read_ref(storage, revision) == previous:
        return False
    path = os.path.join(storage, "refs", *revision.split("/"))
    if previous is None:
        os.unlink(path)
    else:
        _write_atomic(path, previous)
    return True


def seed_staging(storage, stage_storage):
    """Hard-link the complete blobs of the real cache into the staging cache (the library then links them instead of
    downloading them again). Blobs that cannot be linked (another file system) are left out. Returns the names linked.
    """
    linked = []
    source = os.path.join(storage, "blobs")
    target = os.path.join(stage_storage, "blobs")
    for name in sorted(blob_sizes(storage)):
        dest = os.path.join(target, name)
        if os.path.lexists(dest):
            continue
        os.makedirs(target, exist_ok=True)
        try:
            os.link(os.path.join(source, name), dest)
        except OSError:
            continue
        linked.append(name)
    return linked


def staged_etags(stage_storage):
    """Names of the complete blobs in a staging cache (files downloaded before an interruption)."""
    return set(blob_sizes(stage_storage))


def _snapshot_entries(snapshot):
    """``[(relative path, link target or None)]`` of the files and links of a snapshot folder."""
    entries = []
    if not os.path.isdir(snapshot):
        return entries
    for root, dirs, files in os.walk(snapshot):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, snapshot)
            entries.append((rel, os.readlink(full) if os.path.islink(full) else None))
    return entries


def _place(stage_snapshot, snapshot, rel, target):
    dest = os.path.join(snapshot, rel)
    if os.path.lexists(dest):
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if target is not None:
        os.symlink(target, dest)
    else:
        # No symlinks where the library wrote (it then moves the blob to the snapshot path): move the file.
        os.replace(os.path.join(stage_snapshot, rel), dest)


def publish_snapshot(stage_storage, storage, commit, revision=None):
    """Move a complete staged snapshot of ``commit`` into the real cache folder ``storage``.

    Order: new blobs (renamed, same file system), the tree listing, the snapshot folder (built beside its final
    name and renamed into place when the commit had none, so it appears whole; links added to an existing one), and
    ``refs/<revision>`` last, so nothing resolves the revision to a snapshot before it is complete. Returns the names
    of the blobs moved in.
    """
    moved = []
    stage_blobs = os.path.join(stage_storage, "blobs")
    blobs = os.path.join(storage, "blobs")
    os.makedirs(blobs, exist_ok=True)
    for name in sorted(blob_sizes(stage_storage)):
        if os.path.lexists(os.path.join(blobs, name)):
            continue
        os.replace(os.path.join(stage_blobs, name), os.path.join(blobs, name))
        moved.append(name)
    tree = os.path.join(stage_storage, "trees", "%s.json" % commit)
    if os.path.isfile(tree):
        with open(tree, encoding="utf-8") as handle:
            _write_atomic(os.path.join(storage, "trees", "%s.json" % commit), handle.read())
    stage_snapshot = os.path.join(stage_storage, "snapshots", commit)
    snapshot = os.path.join(storage, "snapshots", commit)
    entries = _snapshot_entries(stage_snapshot)
    if os.path.isdir(snapshot):
        for rel, target in entries:
            _place(stage_snapshot, snapshot, rel, target)
    else:
        building = os.path.join(storage, "snapshots", ".%s.sparkfleet-tmp" % commit)
        shutil.rmtree(building, ignore_errors=True)
        os.makedirs(building)
        for rel, target in entries:
            _place(stage_snapshot, building, rel, target)
        os.rename(building, snapshot)
    if revision is not None and revision != commit:
        _write_atomic(os.path.join(storage, "refs", *revision.split("/")), commit)
    return moved
