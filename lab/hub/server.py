# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lab stand-in for the Hugging Face Hub (the HTTP surface huggingface_hub 2.4.0 uses).

Serves generated model repositories (see repogen.py) under the real handles of the DGX Spark
support matrix: revision/model-info API, tree API with Link pagination, refs, commits, paths-info,
whoami, HEAD/GET resolve with X-Repo-Commit/X-Linked-Etag/X-Linked-Size, LFS files through a 302 to a
CDN-like path, Range requests, gated repos and the Hub's X-Error-Code errors.  Lab controls under
/_lab/: faults (drop connections, fail requests, throttle), per-client/per-repo byte statistics.

Stdlib only.  Run: python3 lab/hub/server.py --host 0.0.0.0 --port 80 --data-dir /var/lib/lab-hub
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import hmac
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import repogen  # noqa: E402  pylint: disable=wrong-import-position

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
API_KEYWORDS = ("revision", "tree", "refs", "commits", "paths-info")
DEFAULT_TOKENS = {"approved": ["hf_lab_approved"], "unapproved": ["hf_lab_unapproved"], "grants": {}}
FAULT_KEYS = {
    "drop_after_bytes": None,  # close the connection after N body bytes of a file
    "drop_scope": "response",  # "response": N bytes per response; "file": never send bytes past file offset N
    "drop_count": None,  # how many more drops before the fault clears itself (None = unlimited)
    "fail_status": None,  # answer file GETs with this HTTP status ...
    "fail_count": None,  # ... this many times (None = until cleared)
    "bandwidth_bytes_per_second": None,  # per-connection throttle of file bodies
    "match": None,  # fnmatch pattern on "<repo>/<path>" restricting the faults above
}


class HubError(Exception):
    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class LabState:
    """Repositories, access rules, faults and statistics shared by the handler threads."""

    def __init__(self, manifest, data_dir, page_size=1000, gated=repogen.DEFAULT_GATED, tokens=None,
                 strict_tokens=False, faults=None, cdn_base_url=None, secret=None):
        self.manifest = manifest
        self.repos = manifest["repos"]
        self.blob_dir = os.path.join(data_dir, "blobs")
        self.page_size = page_size
        self.gated = set(gated)
        self.tokens = tokens or DEFAULT_TOKENS
        self.strict_tokens = strict_tokens
        self.cdn_base_url = cdn_base_url.rstrip("/") if cdn_base_url else None
        self.secret = secret or os.urandom(16)
        self.lock = threading.Lock()
        self.default_faults = dict(FAULT_KEYS)
        self.default_faults.update(faults or {})
        self.faults = dict(self.default_faults)
        self.reset_stats()

    # statistics ---------------------------------------------------------------------------------
    def reset_stats(self):
        with getattr(self, "lock", threading.Lock()):
            self.stats = {"started": time.time(), "requests": 0, "body_bytes": 0, "by_kind": {}, "by_client": {},
                          "by_repo": {}, "drops": 0, "recent": []}

    def record(self, kind, client, repo, method, path, status, body_bytes=0, range_header=None):
        if kind == "lab":
            return  # the lab's own control/statistics calls are not traffic
        with self.lock:
            s = self.stats
            s["requests"] += 1
            s["body_bytes"] += body_bytes
            s["by_kind"][kind] = s["by_kind"].get(kind, 0) + 1
            c = s["by_client"].setdefault(client, {"requests": 0, "body_bytes": 0})
            c["requests"] += 1
            c["body_bytes"] += body_bytes
            if repo:
                r = s["by_repo"].setdefault(repo, {"requests": 0, "body_bytes": 0, "file_gets": 0})
                r["requests"] += 1
                r["body_bytes"] += body_bytes
                if kind in ("resolve_get", "cdn_get"):
                    r["file_gets"] += 1
            s["recent"].append({"t": round(time.time(), 3), "kind": kind, "client": client, "method": method,
                                "path": path, "status": status, "body_bytes": body_bytes, "range": range_header})
            del s["recent"][:-500]

    def snapshot_stats(self):
        with self.lock:
            return json.loads(json.dumps(self.stats))

    # faults -------------------------------------------------------------------------------------
    def set_faults(self, update):
        unknown = sorted(set(update) - set(FAULT_KEYS) - {"reset"})
        if unknown:
            raise HubError(400, "BadRequest", "unknown fault keys: %s (known: %s)"
                           % (", ".join(unknown), ", ".join(sorted(FAULT_KEYS))))
        if update.get("drop_scope") not in (None, "response", "file"):
            raise HubError(400, "BadRequest", "drop_scope must be 'response' or 'file'")
        with self.lock:
            if update.get("reset"):
                self.faults = dict(FAULT_KEYS)
            for k, v in update.items():
                if k != "reset":
                    self.faults[k] = v if v is not None or k not in ("drop_scope",) else "response"
            return dict(self.faults)

    def file_faults(self, repo, path):
        """Faults applying to one file body; consumes fail_count."""
        with self.lock:
            f = dict(self.faults)
            if f["match"] and not fnmatch.fnmatch("%s/%s" % (repo, path), f["match"]):
                return None, None
            fail = None
            if f["fail_status"]:
                if f["fail_count"] is None or f["fail_count"] > 0:
                    fail = int(f["fail_status"])
                    if f["fail_count"] is not None:
                        self.faults["fail_count"] = f["fail_count"] - 1
            return f, fail

    def consume_drop(self):
        with self.lock:
            self.stats["drops"] += 1
            if self.faults["drop_count"] is not None:
                self.faults["drop_count"] -= 1
                if self.faults["drop_count"] <= 0:
                    self.faults["drop_after_bytes"] = None
                    self.faults["drop_count"] = None

    # access -------------------------------------------------------------------------------------
    def token_status(self, token):
        """'none', 'approved', 'unapproved' or 'invalid'."""
        if not token:
            return "none"
        if token in self.tokens.get("approved", []):
            return "approved"
        if token in self.tokens.get("unapproved", []) or token in self.tokens.get("grants", {}):
            return "unapproved"
        return "invalid" if self.strict_tokens else "unapproved"

    def repo(self, repo_id, token, need_files):
        st = self.token_status(token)
        if st == "invalid":
            raise HubError(401, None, "Invalid credentials in Authorization header")
        repo = self.repos.get(repo_id)
        if repo is None:
            raise HubError(401 if st == "none" else 404, "RepoNotFound", "Repository not found")
        if need_files and repo_id in self.gated:
            granted = st == "approved" or repo_id in self.tokens.get("grants", {}).get(token, [])
            if not granted:
                msg = ("Access to model %s is restricted. You must have access to it and be authenticated to "
                       "access it. Please log in." % repo_id) if st == "none" else (
                    "Access to model %s is restricted and you are not in the authorized list. Visit "
                    "https://huggingface.co/%s to ask for access." % (repo_id, repo_id))
                raise HubError(401 if st == "none" else 403, "GatedRepo", msg)
        return repo

    @staticmethod
    def resolve_rev(repo, rev):
        rev = rev or "main"
        for prefix, table in (("refs/heads/", "branches"), ("refs/tags/", "tags")):
            if rev.startswith(prefix) and rev[len(prefix):] in repo[table]:
                return repo[table][rev[len(prefix):]]
        if rev in repo["branches"]:
            return repo["branches"][rev]
        if rev in repo["tags"]:
            return repo["tags"][rev]
        if COMMIT_RE.match(rev):
            for c in repo["commits"].values():
                if c["sha"] == rev:
                    return rev
        raise HubError(404, "RevisionNotFound", "Invalid rev id: %s" % rev)

    @staticmethod
    def commit(repo, sha):
        for c in repo["commits"].values():
            if c["sha"] == sha:
                return c
        raise HubError(404, "RevisionNotFound", "Invalid rev id: %s" % sha)

    def sign(self, sha256, repo_id, commit, expires):
        msg = ("%s|%s|%s|%d" % (sha256, repo_id, commit, expires)).encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()[:32]


def tree_entries(commit):
    """All entries (files and directories) of a commit, sorted, Hub tree-API shaped."""
    files = commit["files"]
    dirs = {}
    for path in files:
        parts = path.split("/")[:-1]
        for i in range(len(parts)):
            d = "/".join(parts[: i + 1])
            dirs.setdefault(d, []).append(path)
    entries = []
    for d, members in dirs.items():
        oid = hashlib.sha1(("tree " + d + "".join(files[m]["git_sha1"] for m in sorted(members))).encode())
        entries.append({"type": "directory", "oid": oid.hexdigest(), "size": 0, "path": d})
    for path, rec in files.items():
        e = {"type": "file", "oid": rec["git_sha1"], "size": rec["size"], "path": path}
        if rec["lfs"]:
            e["lfs"] = {"oid": rec["sha256"], "size": rec["size"], "pointerSize": rec["pointer_size"]}
        entries.append(e)
    entries.sort(key=lambda e: (e["path"].count("/"), e["type"] != "directory", e["path"]))
    return entries


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sparkfleet-lab-hub/1.0"
    state: LabState = None  # set on the subclass made by make_server

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        if os.environ.get("LAB_HUB_QUIET") != "1":
            sys.stderr.write("%s %s\n" % (self.client_address[0], format % args))

    # helpers ------------------------------------------------------------------------------------
    def token(self):
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        if auth.lower().startswith("basic "):
            try:
                return base64.b64decode(auth[6:]).decode().split(":", 1)[-1]
            except (ValueError, UnicodeDecodeError):
                return None
        return None

    def base_url(self):
        return "http://%s" % (self.headers.get("Host") or "%s:%d" % self.server.server_address[:2])

    def send_json(self, obj, status=200, headers=None, kind="api", repo=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.state.record(kind, self.client_address[0], repo, self.command, self.path, status)

    def send_error_json(self, err, kind="error", repo=None):
        headers = dict(err.headers)
        if err.code:
            headers["X-Error-Code"] = err.code
        headers["X-Error-Message"] = err.message
        self.send_json({"error": err.message}, err.status, headers, kind=kind, repo=repo)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # dispatch -----------------------------------------------------------------------------------
    def do_HEAD(self):
        self.dispatch()

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def dispatch(self):
        url = urlsplit(self.path)
        raw = url.path.split("/")[1:]
        segs = [unquote(s) for s in raw]
        query = parse_qs(url.query)
        repo_for_error = None
        try:
            if segs and segs[0] == "_lab":
                return self.lab_control(segs[1:])
            if segs[:1] == ["api"]:
                if len(segs) >= 3 and segs[1] in ("models", "datasets", "spaces"):
                    repo_for_error = "/".join(segs[2:4])
                    return self.api_repo(segs[1], segs[2:], query)
                if segs[1:2] == ["agent-harnesses"]:
                    return self.send_json({"standardEnvVars": [], "harnesses": {}}, kind="telemetry")
                if segs[1:2] == ["telemetry"]:
                    return self.send_json({}, kind="telemetry")
                if segs[1:2] in (["whoami-v2"], ["whoami"]):
                    return self.whoami()
                raise HubError(404, None, "Not Found")
            if segs[:1] == ["lfs-cdn"] and len(segs) == 2:
                return self.cdn(segs[1], query)
            if len(segs) >= 5 and segs[2] in ("resolve", "raw"):
                repo_for_error = "/".join(segs[:2])
                return self.resolve("/".join(segs[:2]), segs[3], "/".join(segs[4:]))
            if segs[:1] in (["datasets"], ["spaces"]) and len(segs) >= 6:
                raise HubError(401 if not self.token() else 404, "RepoNotFound", "Repository not found")
            if len(segs) >= 4 and segs[1] in ("resolve", "raw"):
                raise HubError(401 if not self.token() else 404, "RepoNotFound", "Repository not found")
            raise HubError(404, None, "Not Found")
        except HubError as err:
            self.send_error_json(err, repo=repo_for_error if repo_for_error in self.state.repos else None)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return None

    # /_lab --------------------------------------------------------------------------------------
    def lab_control(self, segs):
        st = self.state
        if segs == ["health"]:
            return self.send_json({"status": "ok", "repos": len(st.repos)}, kind="lab")
        if segs == ["repos"]:
            out = {}
            for rid, r in st.repos.items():
                out[rid] = {"gated": rid in st.gated, "quant": r["quant"], "kind": r["kind"],
                            "architectures": r["architectures"], "branches": r["branches"], "tags": r["tags"],
                            "files": {name: {"sha": c["sha"], "size_bytes": sum(f["size"] for f in c["files"].values()),
                                             "paths": sorted(c["files"])} for name, c in r["commits"].items()}}
            return self.send_json(out, kind="lab")
        if segs == ["stats"] and self.command == "GET":
            return self.send_json(st.snapshot_stats(), kind="lab")
        if segs == ["stats", "reset"] and self.command == "POST":
            self.read_body()
            st.reset_stats()
            return self.send_json({"reset": True}, kind="lab")
        if segs == ["faults"]:
            if self.command == "GET":
                return self.send_json(st.faults, kind="lab")
            if self.command == "DELETE":
                return self.send_json(st.set_faults({"reset": True}), kind="lab")
            if self.command == "POST":
                try:
                    update = json.loads(self.read_body() or b"{}")
                except ValueError as exc:
                    raise HubError(400, "BadRequest", "body is not JSON: %s" % exc) from exc
                if not isinstance(update, dict):
                    raise HubError(400, "BadRequest", "body must be a JSON object")
                return self.send_json(st.set_faults(update), kind="lab")
        raise HubError(404, None, "Not Found")

    def whoami(self):
        st = self.state.token_status(self.token())
        if st in ("none", "invalid"):
            raise HubError(401, None, "Invalid credentials in Authorization header")
        name = "lab-approved" if st == "approved" else "lab-user"
        return self.send_json({"type": "user", "id": hashlib.sha1(name.encode()).hexdigest()[:24], "name": name,
                               "fullname": name, "isPro": False, "orgs": [],
                               "auth": {"type": "access_token", "accessToken": {"displayName": name, "role": "read"}}},
                              kind="api")

    # /api/models/... ----------------------------------------------------------------------------
    def api_repo(self, repo_type, rest, query):
        if repo_type != "models":
            raise HubError(401 if not self.token() else 404, "RepoNotFound", "Repository not found")
        if len(rest) == 1 or (len(rest) >= 2 and rest[1] in API_KEYWORDS and "/".join(rest[:2]) not in self.state.repos):
            raise HubError(401 if not self.token() else 404, "RepoNotFound", "Repository not found")
        repo_id = "/".join(rest[:2])
        action = rest[2] if len(rest) > 2 else None
        st = self.state
        repo = st.repo(repo_id, self.token(), need_files=False)
        if action is None or action == "revision":
            rev = rest[3] if action == "revision" and len(rest) > 3 else "main"
            sha = st.resolve_rev(repo, "/".join(rest[3:]) if action == "revision" else rev)
            return self.send_json(self.model_info(repo_id, repo, sha, query), kind="api_info", repo=repo_id)
        if action == "tree":
            if len(rest) < 4:
                raise HubError(404, "RevisionNotFound", "Invalid rev id: ")
            sha = st.resolve_rev(repo, rest[3])
            return self.tree(repo_id, repo, sha, "/".join(rest[4:]).strip("/"), query)
        if action == "refs":
            return self.send_json({
                "branches": [{"name": b, "ref": "refs/heads/" + b, "targetCommit": s} for b, s in repo["branches"].items()],
                "converts": [],
                "tags": [{"name": t, "ref": "refs/tags/" + t, "targetCommit": s} for t, s in repo["tags"].items()],
            }, kind="api_refs", repo=repo_id)
        if action == "commits":
            sha = st.resolve_rev(repo, rest[3] if len(rest) > 3 else "main")
            out = []
            while sha:
                c = st.commit(repo, sha)
                out.append({"id": c["sha"], "title": c["title"], "message": "", "date": c["date"],
                            "authors": [{"user": "sparkfleet-lab"}]})
                sha = c["parent"]
            return self.send_json(out, kind="api_commits", repo=repo_id)
        if action == "paths-info":
            sha = st.resolve_rev(repo, rest[3] if len(rest) > 3 else "main")
            body = self.read_body().decode()
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                paths = json.loads(body or "{}").get("paths", [])
            else:
                paths = parse_qs(body).get("paths", [])
            wanted = set(p.strip("/") for p in paths)
            entries = [e for e in tree_entries(st.commit(repo, sha)) if e["path"] in wanted]
            return self.send_json(entries, kind="api_paths_info", repo=repo_id)
        raise HubError(404, None, "Not Found")

    def model_info(self, repo_id, repo, sha, query):
        st = self.state
        commit = st.commit(repo, sha)
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path, rec in commit["files"].items():
            s = {"rfilename": path}
            if blobs:
                s.update({"size": rec["size"], "blobId": rec["git_sha1"]})
                if rec["lfs"]:
                    s["lfs"] = {"sha256": rec["sha256"], "size": rec["size"], "pointerSize": rec["pointer_size"]}
            siblings.append(s)
        with open(os.path.join(st.blob_dir, commit["files"]["config.json"]["sha256"]), "rb") as f:
            config = json.load(f)
        author = repo_id.split("/")[0]
        tags = ["transformers", "safetensors", repo["model_type"], "sparkfleet-lab"]
        if repo["quant"]:
            tags.append(repo["quant"].lower())
        info = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
            "author": author, "sha": sha, "lastModified": commit["date"], "createdAt": repo["commits"]["v1"]["date"],
            "private": False, "disabled": False, "gated": "manual" if repo_id in st.gated else False,
            "downloads": 0, "likes": 0, "library_name": "transformers", "tags": tags,
            "pipeline_tag": "image-text-to-text" if repo["kind"] == "VLM" else "text-generation",
            "config": {"architectures": config.get("architectures"), "model_type": config.get("model_type")},
            "cardData": {"library_name": "transformers", "tags": ["sparkfleet-lab"]},
            "siblings": siblings, "spaces": [],
            "usedStorage": sum(rec["size"] for c in repo["commits"].values() for rec in c["files"].values()),
        }
        return info

    def tree(self, repo_id, repo, sha, path, query):
        st = self.state
        commit = st.commit(repo, sha)
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        expand = query.get("expand", ["false"])[0].lower() == "true"
        entries = tree_entries(commit)
        if path:
            if path in commit["files"]:
                raise HubError(400, None, "Path %s is a file, not a directory" % path)
            if not any(e["path"].startswith(path + "/") for e in entries):
                raise HubError(404, "EntryNotFound", "%s does not exist on \"%s\"" % (path, sha),
                               {"X-Repo-Commit": sha})
            entries = [e for e in entries if e["path"].startswith(path + "/")]
        base_depth = path.count("/") + 1 if path else 0
        if not recursive:
            entries = [e for e in entries if e["path"].count("/") == base_depth]
        if expand:
            entries = [dict(e, lastCommit={"id": sha, "title": commit["title"], "date": commit["date"]})
                       for e in entries]
        page_size = min(st.page_size, 50) if expand else st.page_size
        try:
            cursor = int(query.get("cursor", ["0"])[0])
        except ValueError as exc:
            raise HubError(400, None, "Invalid cursor") from exc
        page = entries[cursor: cursor + page_size]
        headers = {}
        if cursor + page_size < len(entries):
            q = {"recursive": str(recursive).lower(), "expand": str(expand).lower(), "cursor": cursor + page_size}
            next_url = "%s%s?%s" % (self.base_url(), urlsplit(self.path).path, urlencode(q))
            headers["Link"] = '<%s>; rel="next"' % next_url
        return self.send_json(page, headers=headers, kind="api_tree", repo=repo_id)

    # /{repo}/resolve/{rev}/{path} ---------------------------------------------------------------
    def file_headers(self, sha, rec):
        h = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if rec["lfs"]:
            h["X-Linked-Etag"] = '"%s"' % rec["sha256"]
            h["X-Linked-Size"] = str(rec["size"])
            h["ETag"] = '"%s"' % rec["sha256"]
        else:
            h["ETag"] = '"%s"' % rec["git_sha1"]
        return h

    def resolve(self, repo_id, rev, path):
        st = self.state
        repo = st.repo(repo_id, self.token(), need_files=True)
        sha = st.resolve_rev(repo, rev)
        commit = st.commit(repo, sha)
        rec = commit["files"].get(path)
        if rec is None:
            raise HubError(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": sha})
        if rec["lfs"]:
            expires = int(time.time()) + 3600
            q = urlencode({"repo": repo_id, "commit": sha, "path": path, "expires": expires,
                           "sig": st.sign(rec["sha256"], repo_id, sha, expires)})
            base = st.cdn_base_url or ""
            location = "%s/lfs-cdn/%s?%s" % (base, rec["sha256"], q)
            headers = self.file_headers(sha, rec)
            headers["Location"] = location
            body = b"Found. Redirecting to %s" % location.encode()
            self.send_response(302)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            st.record("resolve_redirect", self.client_address[0], repo_id, self.command, self.path, 302)
            return None
        return self.serve_file(repo_id, sha, path, rec, "resolve")

    def cdn(self, sha256, query):
        st = self.state
        get = {k: v[0] for k, v in query.items()}
        try:
            expires = int(get.get("expires", "0"))
        except ValueError:
            expires = 0
        repo_id, sha, path = get.get("repo", ""), get.get("commit", ""), get.get("path", "")
        good = hmac.compare_digest(get.get("sig", ""), st.sign(sha256, repo_id, sha, expires))
        if not good or expires < time.time():
            raise HubError(403, None, "Request has expired or has an invalid signature")
        repo = st.repos[repo_id]
        rec = st.commit(repo, sha)["files"].get(path)
        if rec is None or rec["sha256"] != sha256:
            raise HubError(404, None, "Not Found")
        return self.serve_file(repo_id, sha, path, rec, "cdn")

    def serve_file(self, repo_id, sha, path, rec, prefix):
        st = self.state
        kind = "%s_%s" % (prefix, "head" if self.command == "HEAD" else "get")
        size = rec["size"]
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        headers = self.file_headers(sha, rec)
        if rng:
            m = re.match(r"^bytes=(\d*)-(\d*)$", rng.strip())
            if not m or (m.group(1) == "" and m.group(2) == ""):
                raise HubError(416, None, "Invalid range", {"Content-Range": "bytes */%d" % size})
            if m.group(1) == "":
                start = max(0, size - int(m.group(2)))
            else:
                start = int(m.group(1))
                if m.group(2):
                    end = min(int(m.group(2)), size - 1)
            if start >= size or start > end:
                raise HubError(416, None, "Range not satisfiable", {"Content-Range": "bytes */%d" % size})
            status = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, end, size)
        length = end - start + 1 if size else 0
        faults, fail = (None, None)
        if self.command == "GET":
            faults, fail = st.file_faults(repo_id, path)
        if fail:
            raise HubError(fail, None, "Injected fault (lab): status %d" % fail)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            st.record(kind, self.client_address[0], repo_id, "HEAD", self.path, status, 0, rng)
            return None
        limit = length
        drop = False
        if faults and faults["drop_after_bytes"] is not None:
            n = int(faults["drop_after_bytes"])
            allowed = n if faults["drop_scope"] == "response" else max(0, n - start)
            if allowed < length:
                limit, drop = allowed, True
        rate = faults["bandwidth_bytes_per_second"] if faults else None
        sent = 0
        try:
            with open(os.path.join(st.blob_dir, rec["sha256"]), "rb") as f:
                if not rate and limit > 0:
                    self.wfile.flush()
                    sent = self.connection.sendfile(f, start, limit) or 0
                else:
                    f.seek(start)
                    t0 = time.monotonic()
                    chunk = max(1024, min(65536, int(rate) // 20)) if rate else 65536
                    while sent < limit:
                        data = f.read(min(chunk, limit - sent))
                        if not data:
                            break
                        self.wfile.write(data)
                        sent += len(data)
                        if rate:
                            ahead = sent / float(rate) - (time.monotonic() - t0)
                            if ahead > 0:
                                time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            st.record(kind, self.client_address[0], repo_id, "GET", self.path, status, sent, rng)
        if drop:
            st.consume_drop()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return None


def parse_size_list(values):
    out = {}
    for item in values:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            repo, sep, size = part.rpartition("=")
            if not sep or not size.isdigit():
                raise SystemExit("lab-hub: --repo-size expects REPO=BYTES, got %r" % part)
            out[repo] = int(size)
    return out


def make_server(host, port, data_dir, page_size=1000, seed=0, repo_sizes=None, gated=None, tokens=None,
                strict_tokens=False, faults=None, cdn_base_url=None):
    unknown = sorted(set(repo_sizes or {}) - set(m[0] for m in repogen.MATRIX))
    if unknown:
        raise SystemExit("lab-hub: unknown repositories in --repo-size: %s" % ", ".join(unknown))
    manifest = repogen.generate(data_dir, seed=seed, repo_sizes=repo_sizes)
    state = LabState(manifest, data_dir, page_size=page_size,
                     gated=repogen.DEFAULT_GATED if gated is None else gated, tokens=tokens,
                     strict_tokens=strict_tokens, faults=faults, cdn_base_url=cdn_base_url)
    handler = type("LabHubHandler", (Handler,), {"state": state})
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.lab_state = state
    return server


def main(argv=None):
    env = os.environ.get
    p = argparse.ArgumentParser(description="sparkfleet lab stand-in for the Hugging Face Hub")
    p.add_argument("--host", default=env("LAB_HUB_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("LAB_HUB_PORT", "8080")))
    p.add_argument("--data-dir", default=env("LAB_HUB_DATA_DIR", os.path.join(tempfile.gettempdir(), "lab-hub-data")))
    p.add_argument("--seed", type=int, default=int(env("LAB_HUB_SEED", "0")))
    p.add_argument("--page-size", type=int, default=int(env("LAB_HUB_PAGE_SIZE", "1000")),
                   help="tree API entries per page (Hub: 1000; expand=true caps at 50)")
    p.add_argument("--bandwidth-bytes-per-second", type=int,
                   default=int(env("LAB_HUB_BANDWIDTH_BYTES_PER_SECOND", "0")) or None,
                   help="per-connection throttle of file bodies")
    p.add_argument("--drop-after-bytes", type=int, default=int(env("LAB_HUB_DROP_AFTER_BYTES", "-1")),
                   help="fault: close the connection after N body bytes of each file response (-1: off)")
    p.add_argument("--repo-size", "--extra-repo-size-bytes", action="append", dest="repo_size",
                   default=[env("LAB_HUB_REPO_SIZES", "")], metavar="REPO=BYTES",
                   help="weights of REPO's main revision total about BYTES (repeatable or comma separated)")
    p.add_argument("--gated", action="append", default=None, metavar="REPO",
                   help="gated repository (repeatable; default: %s)" % ", ".join(repogen.DEFAULT_GATED))
    p.add_argument("--tokens-file", default=env("LAB_HUB_TOKENS_FILE"),
                   help='JSON {"approved": [...], "unapproved": [...], "grants": {token: [repo, ...]}}')
    p.add_argument("--strict-tokens", action="store_true", default=env("LAB_HUB_STRICT_TOKENS") == "1",
                   help="answer unknown tokens with 401 invalid credentials (default: treat as unapproved)")
    p.add_argument("--cdn-base-url", default=env("LAB_HUB_CDN_BASE_URL"),
                   help="absolute base URL of the LFS redirect target (default: same origin, relative)")
    args = p.parse_args(argv)
    tokens = None
    if args.tokens_file:
        with open(args.tokens_file) as f:
            tokens = json.load(f)
    gated = args.gated
    if gated is None and env("LAB_HUB_GATED"):
        gated = [g for g in env("LAB_HUB_GATED").split(",") if g]
    faults = {"bandwidth_bytes_per_second": args.bandwidth_bytes_per_second}
    if args.drop_after_bytes >= 0:
        faults["drop_after_bytes"] = args.drop_after_bytes
    try:
        server = make_server(args.host, args.port, args.data_dir, page_size=args.page_size, seed=args.seed,
                             repo_sizes=parse_size_list(args.repo_size), gated=gated, tokens=tokens,
                             strict_tokens=args.strict_tokens, faults=faults, cdn_base_url=args.cdn_base_url)
    except OSError as exc:
        sys.stderr.write("lab-hub: cannot listen on %s:%d: %s\n" % (args.host, args.port, exc))
        return 2
    host, port = server.server_address[:2]
    sys.stderr.write("lab-hub: serving %d repositories on http://%s:%d (data %s)\n"
                     % (len(server.lab_state.repos), host, port, args.data_dir))
    sys.stderr.flush()
    print("LAB_HUB_READY http://%s:%d" % (host, port), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
