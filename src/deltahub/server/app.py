"""Starlette routes speaking the Hub's HTTP API (see shared/reference/hub-protocol.md §1.3).

Handlers are thin: validate names (paths.py), check who may see or write (auth.py), then call
the store (storage.py). Upload bodies are streamed to temp files, never held whole in memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .auth import Auth
from .paths import BadRequest, check_name, check_path, check_revision
from .storage import Repo, Store, StoreError, git_blob_oid, lfs_pointer, wants_lfs
from .tags import parse_card
from .upstream import Mirrors

MAX_COMMIT_BYTES = 2 * 1024**3  # NDJSON body (regular files are base64 inside it)
MAX_FILE_BYTES = 100 * 1024**3  # one LFS object
MAX_JSON_BYTES = 16 * 1024**2
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


class BlobResponse(FileResponse):
    """A file response with 1 MB chunks (Starlette's 64 KB default costs a lot of event-loop turns)."""

    chunk_size = 1024 * 1024


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _err(status: int, message: str, code: str | None = None, commit: str | None = None) -> JSONResponse:
    headers = {"X-Error-Message": message[:500].encode("ascii", "replace").decode()}
    if code:
        headers["X-Error-Code"] = code
    if commit:
        headers["X-Repo-Commit"] = commit
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Hub:
    """The application state: one store, one auth policy, a secret for LFS upload tickets."""

    def __init__(self, root: Path, auth: Auth, page_size: int = 1000, upstream: str | None = None):
        self.store = Store(root)
        self.auth = auth
        self.mirrors = Mirrors(self.store, auth, upstream)  # read-through to the upstream Hub (upstream.py)
        self.page_size = page_size
        self.secret = secrets.token_bytes(32)

    # -- helpers --------------------------------------------------------------------------
    def user(self, request: Request) -> str | None:
        return self.auth.user(request.headers.get("authorization"))

    def base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def repo(self, request: Request, rtype: str, write: bool = False) -> Repo:
        ns = check_name(request.path_params["ns"], "namespace")
        name = check_name(request.path_params["name"], "repo name")
        repo = self.store.get_repo(rtype, ns, name)
        mirrored = self.mirrors.serve(request, rtype, ns, name, repo, write)  # mirrors: upstream.py decides
        if mirrored is not None:
            return mirrored
        user = self.user(request)
        if repo is None or not self.auth.can_read(user, ns, repo.private):
            raise StoreError(404, f"Repository not found: {ns}/{name}", "RepoNotFound")
        if write and not self.auth.can_write(user, ns):
            raise StoreError(403, f"You don't have the rights to write to {ns}/{name}")
        return repo

    def ticket(self, oid: str, size: int) -> str:
        msg = f"{oid}:{size}:{int(time.time()) // 86400}".encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()

    def ticket_ok(self, oid: str, size: int, ticket: str) -> bool:
        day = int(time.time()) // 86400
        for d in (day, day - 1):
            msg = f"{oid}:{size}:{d}".encode()
            if hmac.compare_digest(hmac.new(self.secret, msg, hashlib.sha256).hexdigest(), ticket or ""):
                return True
        return False

    def info(self, request: Request, repo: Repo, sha: str, blobs: bool) -> dict:
        tree = self.store.tree(sha)
        card = repo.card
        tags = repo.tags
        if sha != self.store.resolve(repo, "main") and "README.md" in tree:
            from .tags import derive_tags
            card = parse_card(self.store.read_blob(tree["README.md"]["sha256"]).decode("utf-8", "replace"))
            tags = derive_tags(card, repo.type, list(tree))
        siblings = []
        for path, e in sorted(tree.items()):
            s: dict = {"rfilename": path}
            if blobs:
                s.update(size=e["size"], blobId=e["oid"])
                if e["lfs"]:
                    s["lfs"] = {"sha256": e["sha256"], "size": e["size"], "pointerSize": len(lfs_pointer(e["sha256"], e["size"]))}
            siblings.append(s)
        return {
            "_id": f"{repo.id:024x}", "id": repo.repo_id, "author": repo.ns, "sha": sha, "private": repo.private,
            "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": tags, "cardData": card,
            "library_name": card.get("library_name"), "pipeline_tag": card.get("pipeline_tag"),
            "siblings": siblings, "lastModified": _iso(repo.modified), "createdAt": _iso(repo.created),
            "usedStorage": sum(e["size"] for e in tree.values()),
        }

    def tree_item(self, path: str, e: dict) -> dict:
        item = {"type": "file", "path": path, "size": e["size"], "oid": e["oid"]}
        if e["lfs"]:
            item["lfs"] = {"oid": e["sha256"], "size": e["size"], "pointerSize": len(lfs_pointer(e["sha256"], e["size"]))}
        return item


def build_app(root: Path, auth: Auth | None = None, page_size: int = 1000, upstream: str | None = None) -> Starlette:
    """The ASGI app serving one registry root; repos it does not hold are read through from ``upstream``."""
    hub = Hub(root, auth or Auth(open_mode=True), page_size, upstream)

    def handler(fn):
        async def wrapped(request: Request):
            try:
                return await fn(request)
            except StoreError as exc:
                return _err(exc.status, exc.message, exc.code)
            except BadRequest as exc:
                return _err(400, str(exc))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                return _err(400, f"bad request: {exc}")
        return wrapped

    def rtype_of(request: Request) -> str:
        t = request.path_params.get("t", "models")
        if t not in TYPES:
            raise StoreError(404, f"unknown repo type {t}")
        return TYPES[t]

    async def read_json(request: Request) -> dict:
        if int(request.headers.get("content-length") or 0) > MAX_JSON_BYTES:
            raise StoreError(413, "request body too large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_JSON_BYTES:
                raise StoreError(413, "request body too large")
        return json.loads(body or b"{}")

    # -- account / repos ------------------------------------------------------------------
    async def whoami(request: Request):
        user = hub.user(request)
        if user is None:
            return _err(401, "Invalid credentials in Authorization header")
        orgs = [{"name": o, "type": "org"} for o in hub.auth.orgs.get(user, [])]
        return JSONResponse({"type": "user", "name": user, "fullname": user, "orgs": orgs, "isPro": False,
                             "auth": {"type": "access_token", "accessToken": {"displayName": "deltahub", "role": "write"}}})

    async def create_repo(request: Request):
        body = await read_json(request)
        rtype = body.get("type") or "model"
        if rtype not in TYPES.values():
            raise BadRequest(f"invalid repo type {rtype}")
        user = hub.user(request)
        ns = body.get("organization") or user
        if ns is None:
            return _err(401, "You must be authenticated to create a repo")
        ns, name = check_name(ns, "namespace"), check_name(body.get("name", ""), "repo name")
        if not hub.auth.can_write(user, ns):
            return _err(403, f"You don't have the rights to create a repo under {ns}")
        private = bool(body.get("private")) or body.get("visibility") == "private"
        prefix = "" if rtype == "model" else f"{rtype}s/"
        url = f"{hub.base(request)}/{prefix}{ns}/{name}"
        try:
            hub.store.create_repo(rtype, ns, name, private, user or "anonymous")
        except StoreError as exc:
            if exc.status == 409:
                return JSONResponse({"error": exc.message, "url": url}, status_code=409)
            raise
        return JSONResponse({"url": url, "name": f"{ns}/{name}"})

    async def delete_repo(request: Request):
        body = await read_json(request)
        rtype = body.get("type") or "model"
        user = hub.user(request)
        ns, name = check_name(body.get("organization") or user or "", "namespace"), check_name(body.get("name", ""), "repo name")
        repo = hub.store.get_repo(rtype, ns, name)
        if repo is None or not hub.auth.can_read(user, ns, repo.private):
            return _err(404, f"Repository not found: {ns}/{name}", "RepoNotFound")
        if not hub.auth.can_write(user, ns):
            return _err(403, f"You don't have the rights to delete {ns}/{name}")
        hub.store.delete_repo(repo)
        return JSONResponse({})

    async def validate_yaml(request: Request):
        body = await read_json(request)
        content = body.get("content", "")
        import yaml
        if content.startswith("---"):
            end = content.find("\n---", 3)
            try:
                data = yaml.safe_load(content[3:end] if end > 0 else "")
                if data is not None and not isinstance(data, dict):
                    raise yaml.YAMLError("metadata must be a mapping")
            except yaml.YAMLError as exc:
                return JSONResponse({"errors": [{"message": f"Invalid YAML: {exc}"}]}, status_code=400)
        return JSONResponse({"errors": [], "warnings": []})

    async def list_repos(request: Request):
        rtype = TYPES[request.url.path.rstrip("/").rsplit("/", 1)[-1]]
        q = request.query_params
        user = hub.user(request)
        repos = hub.store.list_repos(rtype, q.getlist("filter"), q.get("author"), q.get("search"))
        repos = [r for r in hub.mirrors.hidden(repos) if hub.auth.can_read(user, r.ns, r.private)]
        sort = q.get("sort") or "lastModified"
        key = {"lastModified": lambda r: r.modified, "createdAt": lambda r: r.created, "id": lambda r: r.repo_id,
               "created_at": lambda r: r.created, "last_modified": lambda r: r.modified}.get(sort, lambda r: r.modified)
        descending = q.get("direction", "-1") == "-1" and sort not in ("id",)
        repos.sort(key=key, reverse=descending)
        limit = int(q.get("limit") or hub.page_size)
        page = max(1, min(limit, hub.page_size))
        start = int(q.get("cursor") or 0)
        chunk = repos[start:start + page]
        full = q.get("full") in ("1", "true", "True") or q.get("cardData") in ("1", "true", "True")
        items = []
        for r in chunk:
            item = {"_id": f"{r.id:024x}", "id": r.repo_id, "author": r.ns, "private": r.private, "tags": r.tags,
                    "downloads": 0, "likes": 0, "lastModified": _iso(r.modified), "createdAt": _iso(r.created),
                    "library_name": r.card.get("library_name"), "pipeline_tag": r.card.get("pipeline_tag")}
            if full:
                item["cardData"] = r.card
                item["sha"] = hub.store.resolve(r, "main")
            items.append(item)
        headers = {}
        if start + page < len(repos) and (q.get("limit") is None or int(q.get("limit")) > page):
            params = [(k, v) for k, v in q.multi_items() if k != "cursor"] + [("cursor", str(start + page))]
            headers["Link"] = f'<{hub.base(request)}{request.url.path}?{urlencode(params)}>; rel="next"'
        return JSONResponse(items, headers=headers)

    async def repo_info(request: Request):
        repo = hub.repo(request, rtype_of(request))
        rev = check_revision(request.path_params.get("rev", "main"))
        sha = hub.store.resolve(repo, rev)
        blobs = request.query_params.get("blobs") in ("1", "true", "True")
        return JSONResponse(hub.info(request, repo, sha, blobs))

    async def settings(request: Request):
        repo = hub.repo(request, rtype_of(request), write=True)
        body = await read_json(request)
        if body.get("visibility") in ("private", "public"):
            hub.store.set_private(repo, body["visibility"] == "private")
        elif "private" in body:
            hub.store.set_private(repo, bool(body["private"]))
        return JSONResponse({})

    async def xet_token(request: Request):
        return _err(501, "this registry speaks git-LFS only: set HF_HUB_DISABLE_XET=1 on the client")

    # -- uploads --------------------------------------------------------------------------
    async def preupload(request: Request):
        repo = hub.repo(request, rtype_of(request), write=True)
        rev = check_revision(request.path_params["rev"])
        body = await read_json(request)
        try:
            tree = hub.store.tree(hub.store.resolve(repo, rev))
        except StoreError:
            tree = {}
        out = []
        for f in body.get("files", []):
            path = check_path(f["path"])
            lfs = wants_lfs(path, int(f.get("size", 0)))
            e = tree.get(path)
            oid = None
            if e is not None and e["lfs"] == lfs:
                oid = e["sha256"] if lfs else e["oid"]
            out.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return JSONResponse({"files": out})

    async def lfs_batch(request: Request):
        rtype = "dataset" if request.url.path.startswith("/datasets/") else "model"
        hub.repo(request, rtype, write=True)  # the caller must be able to write the repo
        body = await read_json(request)
        if body.get("operation") != "upload":
            objects = [{"oid": o["oid"], "size": o["size"], "error": {"code": 404, "message": "download via resolve"}}
                       for o in body.get("objects", [])]
            return JSONResponse({"transfer": "basic", "objects": objects})
        objects = []
        for o in body.get("objects", []):
            oid, size = str(o["oid"]).lower(), int(o["size"])
            if len(oid) != 64 or any(c not in "0123456789abcdef" for c in oid) or size < 0:
                raise BadRequest(f"invalid LFS object {oid!r}")
            if size > MAX_FILE_BYTES:
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "object too large"}})
                continue
            item: dict = {"oid": oid, "size": size, "authenticated": True}
            if not hub.store.has_blob(oid, size):
                t = hub.ticket(oid, size)
                item["actions"] = {
                    "upload": {"href": f"{hub.base(request)}/lfs/upload/{oid}/{size}?ticket={t}"},
                    "verify": {"href": f"{hub.base(request)}/lfs/verify"},
                }
            objects.append(item)
        return JSONResponse({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                            media_type="application/vnd.git-lfs+json")

    async def lfs_upload(request: Request):
        oid, size = request.path_params["oid"], int(request.path_params["size"])
        if not hub.ticket_ok(oid, size, request.query_params.get("ticket", "")):
            return _err(403, "missing or invalid upload ticket: ask the batch endpoint first")
        declared = request.headers.get("content-length")
        if declared is not None and int(declared) != size:
            return _err(400, f"Content-Length {declared} does not match the object size {size}")
        if hub.store.has_blob(oid, size):
            async for _ in request.stream():
                pass
            return Response(status_code=200)
        fd, tmp = hub.store.new_temp()
        h = hashlib.sha256()
        n = 0
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.stream():
                    n += len(chunk)
                    if n > size:
                        raise StoreError(400, f"body is larger than the declared size {size}")
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            if n != size or h.hexdigest() != oid:
                raise StoreError(400, f"upload does not match its oid/size (got sha256 {h.hexdigest()}, {n} bytes)")
            hub.store.adopt_blob(tmp, oid)
        finally:
            if tmp.exists():
                tmp.unlink()
        return Response(status_code=200)

    async def lfs_verify(request: Request):
        body = await read_json(request)
        oid, size = body["oid"], int(body["size"])
        if not hub.store.has_blob(oid, size):
            return _err(404, f"object {oid} not found")
        return JSONResponse({"message": "ok"})

    async def commit(request: Request):
        rtype = rtype_of(request)
        repo = hub.repo(request, rtype, write=True)
        branch = check_revision(request.path_params["rev"])
        if request.query_params.get("create_pr") in ("1", "true", "True"):
            return _err(501, "pull requests are not supported by this registry: commit to a branch instead")
        fd, tmp = hub.store.new_temp()
        n = 0
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.stream():
                    n += len(chunk)
                    if n > MAX_COMMIT_BYTES:
                        raise StoreError(413, "commit body too large: upload big files through LFS")
                    f.write(chunk)
            header: dict = {}
            ops: list[dict] = []
            content_type = request.headers.get("content-type", "")
            with open(tmp, "rb") as f:
                if "ndjson" in content_type:
                    lines = (json.loads(line) for line in f if line.strip())
                else:  # legacy JSON body
                    data = json.loads(f.read())
                    lines = iter([{"key": "header", "value": {"summary": data.get("summary"), "description": data.get("description")}}]
                                 + [{"key": "file", "value": x} for x in data.get("files", [])]
                                 + [{"key": "lfsFile", "value": x} for x in data.get("lfsFiles", [])]
                                 + [{"key": "deletedFile", "value": x} for x in data.get("deletedFiles", [])])
                for line in lines:
                    key, value = line["key"], line["value"]
                    if key == "header":
                        header = value
                    elif key == "file":
                        if value.get("encoding", "base64") != "base64":
                            raw = value["content"].encode()
                        else:
                            raw = base64.b64decode(value["content"])
                        sha = hub.store.put_bytes(raw)
                        ops.append({"op": "add", "path": check_path(value["path"]), "sha256": sha, "size": len(raw),
                                    "lfs": False, "oid": git_blob_oid(raw)})
                    elif key == "lfsFile":
                        oid, size = value["oid"], int(value["size"])
                        if value.get("algo", "sha256") != "sha256":
                            raise BadRequest("only sha256 LFS objects are supported")
                        ops.append({"op": "add", "path": check_path(value["path"]), "sha256": oid, "size": size,
                                    "lfs": True, "oid": git_blob_oid(lfs_pointer(oid, size))})
                    elif key == "deletedFile":
                        ops.append({"op": "delete", "path": check_path(value["path"])})
                    elif key == "deletedFolder":
                        ops.append({"op": "delete_folder", "path": check_path(value["path"].rstrip("/"))})
                    else:
                        raise BadRequest(f"unknown commit operation {key!r}")
        finally:
            tmp.unlink(missing_ok=True)
        user = hub.user(request) or "anonymous"
        sha = hub.store.commit(repo, branch, ops, header.get("summary") or "update", header.get("description") or "",
                               user, header.get("parentCommit"))
        prefix = "" if rtype == "model" else f"{rtype}s/"
        return JSONResponse({"success": True, "commitOid": sha, "commitMessage": header.get("summary"),
                             "commitUrl": f"{hub.base(request)}/{prefix}{repo.repo_id}/commit/{sha}", "pullRequestUrl": None})

    # -- reading --------------------------------------------------------------------------
    async def resolve(request: Request):
        rtype = "dataset" if request.url.path.startswith("/datasets/") else "model"
        repo = hub.repo(request, rtype)
        rev = check_revision(request.path_params["rev"])
        path = check_path(request.path_params["path"])
        try:
            sha = hub.store.resolve(repo, rev)
        except StoreError as exc:
            return _err(404, exc.message, "RevisionNotFound")
        e = hub.store.tree(sha).get(path)
        if e is None:
            return _err(404, f"Entry not found: {path}", "EntryNotFound", commit=sha)
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if e["lfs"]:
            headers["X-Linked-Etag"] = f'"{e["sha256"]}"'
            headers["X-Linked-Size"] = str(e["size"])
            headers["ETag"] = f'"{e["sha256"]}"'
        else:
            headers["ETag"] = f'"{e["oid"]}"'
        if not hub.store.has_blob(e["sha256"], e["size"]):  # a mirror's large file, fetched on first read
            streamed = hub.mirrors.blob_response(request, repo, sha, path, e, headers)
            if streamed is not None:
                return streamed
        return BlobResponse(hub.store.blob_path(e["sha256"]), headers=headers, media_type="application/octet-stream")

    async def tree(request: Request):
        repo = hub.repo(request, rtype_of(request))
        rev = check_revision(request.path_params["rev"])
        sub = request.path_params.get("path", "").strip("/")
        if sub:
            check_path(sub)
        sha = hub.store.resolve(repo, rev)
        files = hub.store.tree(sha)
        recursive = request.query_params.get("recursive") in ("1", "true", "True")
        prefix = sub + "/" if sub else ""
        items: dict[str, dict] = {}
        for path, e in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            parts = rest.split("/")
            for i in range(1, len(parts)):
                d = prefix + "/".join(parts[:i])
                if recursive or i == 1:
                    items.setdefault(d, {"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0})
            if recursive or len(parts) == 1:
                items[path] = hub.tree_item(path, e)
        if sub and not items:
            return _err(404, f"Entry not found: {sub}", "EntryNotFound", commit=sha)
        return JSONResponse(list(items.values()))

    async def paths_info(request: Request):
        repo = hub.repo(request, rtype_of(request))
        sha = hub.store.resolve(repo, check_revision(request.path_params["rev"]))
        if request.headers.get("content-type", "").startswith("application/json"):
            paths = (await read_json(request)).get("paths", [])
        else:
            paths = (await request.form()).getlist("paths")
        files = hub.store.tree(sha)
        out = []
        for p in paths:
            p = check_path(str(p).strip("/"))
            if p in files:
                out.append(hub.tree_item(p, files[p]))
            elif any(f.startswith(p + "/") for f in files):
                out.append({"type": "directory", "path": p, "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0})
        return JSONResponse(out)

    async def refs(request: Request):
        repo = hub.repo(request, rtype_of(request))
        r = hub.store.refs(repo)
        return JSONResponse({
            "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": t} for n, t in sorted(r["branch"].items())],
            "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": t} for n, t in sorted(r["tag"].items())],
            "converts": [], "pullRequests": []})

    async def commits(request: Request):
        repo = hub.repo(request, rtype_of(request))
        sha = hub.store.resolve(repo, check_revision(request.path_params["rev"]))
        out = [{"id": c["sha"], "title": c["title"], "message": c["message"], "date": _iso(c["date"]),
                "authors": [{"user": c["author"], "avatar": None}]} for c in hub.store.history(sha)]
        return JSONResponse(out)

    async def branch(request: Request):
        repo = hub.repo(request, rtype_of(request), write=True)
        name = check_revision(request.path_params["branch"])
        if request.method == "DELETE":
            if name == "main":
                raise StoreError(403, "cannot delete the main branch")
            hub.store.set_ref(repo, "branch", name, None)
            return JSONResponse({})
        body = await read_json(request)
        start = hub.store.resolve(repo, check_revision(body.get("startingPoint") or "main"))
        exist_ok = request.query_params.get("exist_ok") in ("1", "true", "True")
        if exist_ok and name in hub.store.refs(repo)["branch"]:
            return JSONResponse({})
        hub.store.set_ref(repo, "branch", name, start, must_not_exist=True)
        return JSONResponse({})

    async def tag(request: Request):
        repo = hub.repo(request, rtype_of(request), write=True)
        if request.method == "DELETE":
            hub.store.set_ref(repo, "tag", check_revision(request.path_params["rev"]), None)
            return JSONResponse({})
        body = await read_json(request)
        target = hub.store.resolve(repo, check_revision(request.path_params["rev"]))
        hub.store.set_ref(repo, "tag", check_revision(body["tag"]), target, must_not_exist=True)
        return JSONResponse({})

    R = "/api/{t}/{ns}/{name}"
    routes = [
        Route("/api/whoami-v2", handler(whoami), methods=["GET"]),
        Route("/api/repos/create", handler(create_repo), methods=["POST"]),
        Route("/api/repos/delete", handler(delete_repo), methods=["DELETE"]),
        Route("/api/validate-yaml", handler(validate_yaml), methods=["POST"]),
        Route("/api/models", handler(list_repos), methods=["GET"]),
        Route("/api/datasets", handler(list_repos), methods=["GET"]),
        Route(R, handler(repo_info), methods=["GET"]),
        Route(R + "/revision/{rev}", handler(repo_info), methods=["GET"]),
        Route(R + "/settings", handler(settings), methods=["PUT"]),
        Route(R + "/xet-write-token/{rev}", handler(xet_token), methods=["GET"]),
        Route(R + "/xet-read-token/{rev}", handler(xet_token), methods=["GET"]),
        Route(R + "/preupload/{rev}", handler(preupload), methods=["POST"]),
        Route(R + "/commit/{rev}", handler(commit), methods=["POST"]),
        Route(R + "/tree/{rev}", handler(tree), methods=["GET"]),
        Route(R + "/tree/{rev}/{path:path}", handler(tree), methods=["GET"]),
        Route(R + "/paths-info/{rev}", handler(paths_info), methods=["POST"]),
        Route(R + "/refs", handler(refs), methods=["GET"]),
        Route(R + "/commits/{rev}", handler(commits), methods=["GET"]),
        Route(R + "/branch/{branch}", handler(branch), methods=["POST", "DELETE"]),
        Route(R + "/tag/{rev}", handler(tag), methods=["POST", "DELETE"]),
        Route("/lfs/upload/{oid}/{size:int}", handler(lfs_upload), methods=["PUT"]),
        Route("/lfs/verify", handler(lfs_verify), methods=["POST"]),
        Route("/datasets/{ns}/{name}.git/info/lfs/objects/batch", handler(lfs_batch), methods=["POST"]),
        Route("/{ns}/{name}.git/info/lfs/objects/batch", handler(lfs_batch), methods=["POST"]),
        Route("/datasets/{ns}/{name}/resolve/{rev}/{path:path}", handler(resolve), methods=["GET", "HEAD"]),
        Route("/{ns}/{name}/resolve/{rev}/{path:path}", handler(resolve), methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes)
    app.state.hub = hub
    return app
