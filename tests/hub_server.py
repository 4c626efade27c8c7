"""A test double of the Hugging Face Hub, for tests only: NOT a product, NOT a Hub implementation.

A small HTTP server (standard library only) answering the part of the Hub API that the real
`huggingface_hub` client uses to create a model repo, commit a folder, tag it, list refs and
commits and download files, so that tests run the genuine client over real HTTP with no network.
Point the client at it with `HF_ENDPOINT=<server.url>` (read when `huggingface_hub` is imported)
or with `HfApi(endpoint=server.url)`:

    with HubTestServer() as hub:
        subprocess.run([...], env={**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": "x"})

It keeps model repos in memory, each a chain of commits (a new 40-hex id per commit, which keeps
its parent, so every old revision stays downloadable), with branches and tags. A revision may be a
branch, a tag or a full commit id. A missing repo, revision or file gets a 404 with the
`X-Error-Code` that the client turns into RepositoryNotFoundError, RevisionNotFoundError or
EntryNotFoundError.

Left out: real authentication (any bearer token is accepted; one is required for writes, `whoami`
and private repos), LFS and Xet (the preupload answer makes the client send every file inline, in
base64), pull requests, datasets and Spaces, pagination, Range requests.

For tests of corrupted downloads, `serve_truncated(repo_id, path, size)` serves only the first
`size` bytes of a file, with a matching Content-Length, as a broken mirror or proxy would.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

USER = "tester"
GITATTRIBUTES = b"*.keras filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs -text\n"
_API = re.compile(
    r"^/api/models/(?P<ns>[^/]+)/(?P<name>[^/]+)"
    r"(?:/(?P<action>revision|tree|paths-info|refs|commits|preupload|commit|tag)"
    r"(?:/(?P<rev>[^/]+)(?:/(?P<path>.*))?)?)?$"
)
_RESOLVE = re.compile(r"^/(?P<ns>[^/]+)/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_WRITES = ("preupload", "commit", "tag")


class HubError(Exception):
    """An error answer: HTTP status, message, the client's `X-Error-Code`, extra JSON fields."""

    def __init__(self, status: int, message: str, code: str = "", commit: str = "", **body: Any):
        super().__init__(message)
        self.status, self.message, self.code, self.commit = status, message, code, commit
        self.body = {"error": message, **body}


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, bytes]  # the whole tree at this commit: path -> content


@dataclass
class Repo:
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit id
    tags: dict[str, str] = field(default_factory=dict)


def blob_oid(data: bytes) -> str:
    """The git blob id of `data`: the Hub's `oid` and `ETag` of a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubTestServer:
    """The Hub test double: `start()`/`stop()` or a `with` block; `url` to reach it."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []  # "METHOD /path" of every request, for assertions
        self.errors: list[str] = []  # unexpected exceptions: bugs in this double
        self._truncated: dict[tuple[str, str], int] = {}
        self._lock = threading.RLock()
        self._ids = itertools.count()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    __enter__ = start

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def serve_truncated(self, repo_id: str, path: str, size: int) -> None:
        """Serve only the first `size` bytes of `path`, in every revision of `repo_id`."""
        with self._lock:
            self._truncated[(repo_id, path)] = size

    # ------------------------------------------------------------------ repository state

    def create_repo(self, repo_id: str, private: bool) -> None:
        with self._lock:
            if repo_id in self.repos:  # the client reads "url" even from this 409
                raise HubError(
                    409, "You already created this model repo", url=f"{self.url}/{repo_id}"
                )
            repo = self.repos[repo_id] = Repo(repo_id, private, _now())
            first = self._new_commit(
                repo, None, "initial commit", {".gitattributes": GITATTRIBUTES}
            )
            repo.branches["main"] = first.oid

    def get_repo(self, repo_id: str, authorized: bool) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and not authorized):
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return repo

    def resolve(self, repo: Repo, revision: str, *, branch_only: bool = False) -> Commit:
        """A branch, a tag or a full commit id to its commit (a branch only, for writes)."""
        oid = repo.branches.get(revision) or repo.tags.get(revision)
        if oid is None and re.fullmatch(r"[0-9a-f]{40}", revision) and revision in repo.commits:
            oid = revision
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        if branch_only and revision not in repo.branches:
            raise HubError(400, f"Can only commit to a branch, {revision!r} is not one")
        return repo.commits[oid]

    def _new_commit(
        self, repo: Repo, parent: str | None, title: str, files: dict[str, bytes], message: str = ""
    ) -> Commit:
        digest = hashlib.sha1(f"{repo.repo_id}\n{parent}\n{title}\n{next(self._ids)}".encode())
        for path in sorted(files):
            digest.update(f"{path} {blob_oid(files[path])}\n".encode())
        commit = Commit(digest.hexdigest(), parent, title, message, _now(), files)
        repo.commits[commit.oid] = commit
        return commit

    def apply_commit(self, repo: Repo, branch: str, lines: list[dict[str, Any]]) -> Commit:
        """The client's NDJSON commit: a header line, then file / deletedFile / deletedFolder."""
        with self._lock:
            head = self.resolve(repo, branch, branch_only=True)
            if not lines or lines[0].get("key") != "header":
                raise HubError(400, "The commit payload must start with a header line")
            header = lines[0]["value"]
            if header.get("parentCommit") not in (None, head.oid):
                raise HubError(412, "A commit has happened since; parentCommit is not the head")
            files = dict(head.files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                path = value.get("path", "").strip("/")
                if key == "file" and value.get("encoding") == "base64":
                    files[path] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                elif key == "deletedFolder":
                    inside = [p for p in files if p.startswith(path + "/")]
                    if not inside:
                        raise HubError(404, f"No folder {path} in this revision", "EntryNotFound")
                    for p in inside:
                        del files[p]
                else:  # "lfsFile" never comes: preupload asks for regular uploads only
                    raise HubError(400, f"This test double does not support {key!r} lines")
            title, message = header.get("summary", ""), header.get("description", "")
            commit = self._new_commit(repo, head.oid, title, files, message)
            repo.branches[branch] = commit.oid
            return commit

    def create_tag(self, repo: Repo, revision: str, tag: str) -> Commit:
        with self._lock:
            commit = self.resolve(repo, revision)
            if tag in repo.tags or tag in repo.branches:
                raise HubError(409, f"Tag {tag} already exists")
            repo.tags[tag] = commit.oid
            return commit

    def served_bytes(self, repo: Repo, path: str, data: bytes) -> bytes:
        size = self._truncated.get((repo.repo_id, path))
        return data if size is None else data[:size]


def _file_entry(path: str, data: bytes) -> dict[str, Any]:
    return {"type": "file", "oid": blob_oid(data), "size": len(data), "path": path}


def _folder_entry(files: dict[str, bytes], path: str) -> dict[str, Any]:
    inside = sorted(f"{p} {blob_oid(d)}" for p, d in files.items() if p.startswith(path + "/"))
    oid = hashlib.sha1("\n".join(inside).encode()).hexdigest()
    return {"type": "directory", "oid": oid, "size": 0, "path": path}


def tree_entries(files: dict[str, bytes], path: str, recursive: bool) -> list[dict[str, Any]]:
    """The `/tree` listing of folder `path` ("" for the root), as the Hub gives it."""
    prefix = f"{path}/" if path else ""
    entries: dict[str, dict[str, Any]] = {}
    for file_path, data in files.items():
        if not file_path.startswith(prefix):
            continue
        parts = file_path[len(prefix) :].split("/")
        for depth in range(1, len(parts) if recursive else min(2, len(parts))):
            folder = prefix + "/".join(parts[:depth])
            entries[folder] = _folder_entry(files, folder)
        if recursive or len(parts) == 1:
            entries[file_path] = _file_entry(file_path, data)
    if path and not entries:
        raise HubError(404, f"{path} does not exist on this revision", "EntryNotFound")
    return [entries[key] for key in sorted(entries)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the Hub, for the client's connection pool
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:  # quiet: see HubTestServer.requests
        pass

    def _dispatch(self) -> None:
        self.hub: HubTestServer = self.server.hub  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        self.query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.hub.requests.append(f"{self.command} {url.path}")
        try:
            self._route(url.path)
        except HubError as error:
            headers = {"X-Error-Code": error.code, "X-Repo-Commit": error.commit}
            headers = {"X-Error-Message": error.message} | {k: v for k, v in headers.items() if v}
            self._send_json(error.body, error.status, headers)
        except Exception as error:  # a bug in this double: record it for the tests, answer 500
            self.hub.errors.append(f"{self.command} {self.path}: {error!r}")
            self._send_json({"error": f"test hub bug: {error!r}"}, 500)

    do_GET = do_HEAD = do_POST = _dispatch

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None):
        headers = {"Content-Type": "application/json", **(headers or {})}
        self._send(status, json.dumps(data).encode(), headers)

    def _json_body(self) -> dict[str, Any]:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as error:
            raise HubError(400, f"invalid JSON body: {error}") from None

    @property
    def authorized(self) -> bool:
        return self.headers.get("Authorization", "").startswith("Bearer ")

    def _require_token(self) -> None:
        if not self.authorized:
            raise HubError(401, "Invalid credentials in Authorization header")

    # ------------------------------------------------------------------ routes

    def _route(self, path: str) -> None:
        route = (self.command, path)
        if route == ("GET", "/api/whoami-v2"):
            self._require_token()
            return self._send_json({"type": "user", "name": USER, "orgs": [], "auth": {}})
        if route == ("GET", "/api/agent-harnesses"):  # the client's user-agent registry
            return self._send_json({"standardEnvVars": [], "harnesses": {}})
        if route == ("POST", "/api/validate-yaml"):
            return self._validate_yaml(self._json_body().get("content", ""))
        if route == ("POST", "/api/repos/create"):
            return self._create_repo(self._json_body())
        if (match := _RESOLVE.match(path)) and self.command in ("GET", "HEAD"):
            return self._resolve_file(match)
        if match := _API.match(path):
            return self._repo_api(match)
        raise HubError(404, f"{self.command} {path} is not part of this test double")

    def _validate_yaml(self, content: str) -> None:
        if not content.startswith("---"):
            warning = {"message": "Empty or missing yaml metadata in repo card"}
            return self._send_json({"errors": [], "warnings": [warning]})
        if not re.search(r"^---\s*$", content[3:], re.MULTILINE):
            error = {"message": "The YAML metadata block is not closed by a '---' line"}
            return self._send_json({"errors": [error], "warnings": []}, 400)
        self._send_json({"errors": [], "warnings": []})

    def _create_repo(self, payload: dict[str, Any]) -> None:
        self._require_token()
        if payload.get("type", "model") != "model":
            raise HubError(400, "This test double only hosts model repos")
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        self.hub.create_repo(repo_id, private)
        self._send_json({"url": f"{self.hub.url}/{repo_id}", "name": repo_id})

    def _repo(self, match: re.Match) -> Repo:
        return self.hub.get_repo(
            f"{unquote(match['ns'])}/{unquote(match['name'])}", self.authorized
        )

    def _resolve_file(self, match: re.Match) -> None:
        repo = self._repo(match)
        commit = self.hub.resolve(repo, unquote(match["rev"]))
        path = unquote(match["path"])
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", commit=commit.oid)
        data = commit.files[path]
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{blob_oid(data)}"'}
        self._send(200, self.hub.served_bytes(repo, path, data), headers)

    def _repo_api(self, match: re.Match) -> None:
        action, revision = match["action"], unquote(match["rev"] or "main")
        if (self.command == "POST") != (action in (*_WRITES, "paths-info")):
            raise HubError(405, f"{self.command} is not allowed here")
        if action in _WRITES:
            self._require_token()
        repo = self._repo(match)
        with self.hub._lock:
            if action == "refs":
                return self._send_json(self._refs(repo))
            if action == "commit":
                if self.query.get("create_pr"):
                    raise HubError(400, "This test double does not support pull requests")
                lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
                commit = self.hub.apply_commit(repo, revision, lines)
                url = f"{self.hub.url}/{repo.repo_id}/commit/{commit.oid}"
                return self._send_json({"success": True, "commitOid": commit.oid, "commitUrl": url})
            if action == "tag":
                if not (tag := self._json_body().get("tag")):
                    raise HubError(400, "No tag name given")
                commit = self.hub.create_tag(repo, revision, tag)
                return self._send_json({"tag": tag, "targetCommit": commit.oid})
            if action == "preupload":
                head = self.hub.resolve(repo, revision, branch_only=True)
                paths = [file["path"] for file in self._json_body().get("files", [])]
                old = {path: blob_oid(head.files[path]) for path in paths if path in head.files}
                # "regular" for every file, never "lfs": the client sends them all inline
                files = [{"path": p, "uploadMode": "regular", "shouldIgnore": False} for p in paths]
                files = [file | {"oid": old.get(file["path"])} for file in files]
                return self._send_json({"files": files, "commitOid": head.oid})
            commit = self.hub.resolve(repo, revision)
            if action in (None, "revision"):
                return self._send_json(self._model_info(repo, commit))
            if action == "tree":
                recursive = self.query.get("recursive", "").lower() in ("1", "true")
                path = unquote(match["path"] or "").strip("/")
                return self._send_json(tree_entries(commit.files, path, recursive))
            if action == "paths-info":
                return self._send_json(self._paths_info(commit.files))
            history = [commit]  # action == "commits": newest first, down to the initial commit
            while history[-1].parent is not None:
                history.append(repo.commits[history[-1].parent])
            authors = [{"user": USER}]
            self._send_json(
                [
                    {"id": c.oid, "title": c.title, "message": c.message, "date": c.date}
                    | {"authors": authors}
                    for c in history
                ]
            )

    def _model_info(self, repo: Repo, commit: Commit) -> dict[str, Any]:
        blobs = self.query.get("blobs", "").lower() in ("1", "true")
        siblings = [
            {"rfilename": path, **({"size": len(data), "blobId": blob_oid(data)} if blobs else {})}
            for path, data in sorted(commit.files.items())
        ]
        info = {"id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": commit.oid}
        info |= {"lastModified": commit.date, "createdAt": repo.created_at, "private": repo.private}
        return info | {"gated": False, "disabled": False, "tags": [], "siblings": siblings}

    def _refs(self, repo: Repo) -> dict[str, Any]:
        def refs(names: dict[str, str], kind: str) -> list[dict[str, str]]:
            return [
                {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}
                for name, oid in sorted(names.items())
            ]

        answer = {"branches": refs(repo.branches, "heads"), "tags": refs(repo.tags, "tags")}
        prs = {"pullRequests": []} if self.query.get("include_prs") else {}
        return {**answer, "converts": [], **prs}

    def _paths_info(self, files: dict[str, bytes]) -> list[dict[str, Any]]:
        entries = []
        for path in (p.strip("/") for p in parse_qs(self.body.decode()).get("paths", [])):
            if path in files:
                entries.append(_file_entry(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                entries.append(_folder_entry(files, path))
        return entries
