"""Starlette routes speaking the Hub's HTTP API (see shared/reference/hub-protocol.md §1.3).

Handlers are thin: validate names (paths.py) and bodies (payloads.py), check who may see or write
(auth.py), then call the store (storage.py). Refusals are typed exceptions turned into HTTP by
the one table in errors.py; anything else is a bug and stays a 500. Upload bodies are streamed to
temp files that are removed whatever ends the request, never held whole in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from . import payloads as P
from .auth import Auth
from .errors import (
    BadRequest,
    Conflict,
    DiskFull,
    EntryNotFound,
    Forbidden,
    NotSupported,
    ObjectNotFound,
    PayloadTooLarge,
    RegistryError,
    RepoNotFound,
    RevisionNotFound,
    Unauthorized,
    error_response,
)
from .history import Entry, Tree
from .limits import MAX_COMMIT_BYTES, MAX_FILE_BYTES, MAX_JSON_BYTES, MAX_LIST_ITEMS
from .paths import check_name, check_oid, check_path, check_revision
from .storage import Incoming, ReadPolicy, Repo, Store, git_blob_oid, lfs_pointer, wants_lfs
from .tags import derive_tags, load_card
from .upstream import Mirrors
from .web import install as install_pages

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_TRUE = ("1", "true", "True")
_DIGITS = re.compile(r"[0-9]{1,18}")  # str.isdigit() also takes '²', which int() then refuses


class AnyPathConvertor(PathConvertor):
    """Starlette's ``path`` with newlines too: a path holding CR/LF must reach validation (a 400), not miss the route."""

    regex = r"[\s\S]*"


register_url_convertor("anypath", AnyPathConvertor())


class BlobResponse(FileResponse):
    """A file response with 1 MB chunks (Starlette's 64 KB default costs a lot of event-loop turns)."""

    chunk_size = 1024 * 1024


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name) in _TRUE


def _int_param(request: Request, name: str, default: int, low: int = 0) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw) or len(raw) > 12 or int(raw) < low:
        raise BadRequest(f"invalid {name} parameter: '{raw[:40]}' (an integer >= {low})")
    return int(raw)


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw):
        raise BadRequest(f"invalid Content-Length: '{raw[:40]}'")
    return int(raw)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = _content_length(request)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body too large ({declared} bytes, the limit is {limit})")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body too large (the limit is {limit} bytes)")
    return bytes(body)


async def _receive(request: Request, into: Incoming, check: Callable[[bytes], None] | None = None) -> None:
    """Stream the body into ``into`` (``check`` sees each chunk first); on a full disk read the rest
    first, so that the client gets to read the 507 instead of a broken pipe."""
    stream = request.stream()
    try:
        async for chunk in stream:
            if check is not None:
                check(chunk)
            into.write(chunk)
    except DiskFull:
        declared = _content_length(request)
        if declared is not None and declared <= into.limit:
            async for _ in stream:
                pass
        raise


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

    def read_policy(self, user: str | None) -> ReadPolicy:
        return lambda ns, private: self.auth.can_read(user, ns, private)

    def base(self, request: Request) -> str:
        """This server's URL as the client named it (the Host header, validated: it goes into URLs we hand out)."""
        host = request.headers.get("host", "")
        if not _HOST.fullmatch(host):
            raise BadRequest(f"invalid Host header: '{host[:80]}'")
        return f"{request.url.scheme}://{host}"

    def repo(self, request: Request, rtype: str, write: bool = False) -> Repo:
        ns = check_name(request.path_params["ns"], "namespace")
        name = check_name(request.path_params["name"], "repo name")
        repo = self.store.get_repo(rtype, ns, name)
        mirrored = self.mirrors.serve(request, rtype, ns, name, repo, write)  # mirrors: upstream.py decides
        if mirrored is not None:
            return mirrored
        user = self.user(request)
        if repo is None or not self.auth.can_read(user, ns, repo.private):
            raise RepoNotFound(f"Repository not found: {ns}/{name}")
        if write and not self.auth.can_write(user, ns):
            raise Forbidden(f"You don't have the rights to write to {ns}/{name}")
        return repo

    def _ticket(self, repo: Repo, oid: str, size: int, day: int) -> str:
        msg = f"{repo.id}:{repo.created!r}:{oid}:{size}:{day}".encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()

    def ticket(self, repo: Repo, oid: str, size: int) -> str:
        """An upload permit for one object into one repo (the PUT carries no token), valid 1-2 days."""
        return self._ticket(repo, oid, size, int(time.time()) // 86400)

    def ticket_ok(self, repo: Repo, oid: str, size: int, ticket: str) -> bool:
        day = int(time.time()) // 86400
        given = ticket.encode()  # bytes: compare_digest refuses non-ASCII str with a TypeError
        return any(hmac.compare_digest(self._ticket(repo, oid, size, d).encode(), given) for d in (day, day - 1))

    def info(self, repo: Repo, sha: str, blobs: bool) -> dict:
        tree = self.store.tree(sha)
        card, tags = repo.card, repo.tags
        if sha != self.store.resolve(repo, "main"):
            card = self.store.card(tree)
            tags = derive_tags(card, repo.type, list(tree))
        siblings = []
        for path, e in sorted(tree.items()):
            s: dict = {"rfilename": path}
            if blobs:
                s.update(size=e.size, blobId=e.oid)
                if e.lfs:
                    s["lfs"] = {"sha256": e.sha256, "size": e.size, "pointerSize": len(lfs_pointer(e.sha256, e.size))}
            siblings.append(s)
        return {
            "_id": f"{repo.id:024x}", "id": repo.repo_id, "author": repo.ns, "sha": sha, "private": repo.private,
            "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": tags, "cardData": card,
            "library_name": card.get("library_name"), "pipeline_tag": card.get("pipeline_tag"),
            "siblings": siblings, "lastModified": _iso(repo.modified), "createdAt": _iso(repo.created),
            "usedStorage": sum(e.size for e in tree.values()),
        }

    @staticmethod
    def tree_item(path: str, e: Entry) -> dict:
        item = {"type": "file", "path": path, "size": e.size, "oid": e.oid}
        if e.lfs:
            item["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": len(lfs_pointer(e.sha256, e.size))}
        return item

    @staticmethod
    def dir_item(path: str) -> dict:
        return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0}


def _folders(tree: Tree) -> set[str]:
    return {path[:i] for path in tree for i in range(len(path)) if path[i] == "/"}


def build_app(root: Path, auth: Auth | None = None, page_size: int = 1000, upstream: str | None = None) -> Starlette:
    """The ASGI app serving one registry root; repos it does not hold are read through from ``upstream``."""
    hub = Hub(root, auth or Auth(open_mode=True), page_size, upstream)

    def handler(fn):
        async def wrapped(request: Request):
            try:
                return await fn(request)
            except RegistryError as exc:
                return error_response(exc)
            except ClientDisconnect:
                return Response(status_code=400)  # nobody is left to read it; the temp file is already gone
        return wrapped

    def rtype_of(request: Request) -> str:
        if "t" in request.path_params:
            t = request.path_params["t"]
            if t not in TYPES:
                raise RepoNotFound(f"unknown repo type '{t[:40]}'")
            return TYPES[t]
        return "dataset" if request.url.path.startswith("/datasets/") else "model"

    async def body(request: Request, model: type[P.M]) -> P.M:
        return P.parse_body(await _read_body(request, MAX_JSON_BYTES), model)

    # -- account / repos ------------------------------------------------------------------
    async def whoami(request: Request):
        user = hub.user(request)
        if user is None:
            raise Unauthorized("Invalid credentials in Authorization header")
        orgs = [{"name": o, "type": "org"} for o in hub.auth.orgs.get(user, [])]
        return JSONResponse({"type": "user", "name": user, "fullname": user, "orgs": orgs, "isPro": False,
                             "auth": {"type": "access_token", "accessToken": {"displayName": "deltahub", "role": "write"}}})

    async def create_repo(request: Request):
        req = await body(request, P.CreateRepo)
        rtype = req.type or "model"
        user = hub.user(request)
        ns = req.organization if req.organization is not None else user
        if ns is None:
            raise Unauthorized("You must be authenticated to create a repo")
        ns, name = check_name(ns, "namespace"), check_name(req.name, "repo name")
        if not hub.auth.can_write(user, ns):
            raise Forbidden(f"You don't have the rights to create a repo under {ns}")
        prefix = "" if rtype == "model" else f"{rtype}s/"
        url = f"{hub.base(request)}/{prefix}{ns}/{name}"
        try:
            hub.store.create_repo(rtype, ns, name, bool(req.private) or req.visibility == "private", user or "anonymous")
        except Conflict as exc:
            exc.extra["url"] = url  # what the Hub sends, and create_repo(exist_ok=True) reads
            raise
        return JSONResponse({"url": url, "name": f"{ns}/{name}"})

    async def delete_repo(request: Request):
        req = await body(request, P.DeleteRepo)
        user = hub.user(request)
        ns = req.organization if req.organization is not None else user
        if ns is None:
            raise Unauthorized("You must be authenticated to delete a repo")
        ns, name = check_name(ns, "namespace"), check_name(req.name, "repo name")
        repo = hub.store.get_repo(req.type or "model", ns, name)
        if repo is None or not hub.auth.can_read(user, ns, repo.private):
            raise RepoNotFound(f"Repository not found: {ns}/{name}")
        if not hub.auth.can_write(user, ns):
            raise Forbidden(f"You don't have the rights to delete {ns}/{name}")
        hub.store.delete_repo(repo)
        return JSONResponse({})

    async def validate_yaml(request: Request):
        req = await body(request, P.ValidateYaml)
        try:
            load_card(req.content)
        except BadRequest as exc:  # the Hub's answer shape for this endpoint: a list of errors
            return JSONResponse({"errors": [{"message": exc.message}]}, status_code=400)
        return JSONResponse({"errors": [], "warnings": []})

    async def list_repos(request: Request):
        rtype = TYPES[request.url.path.rstrip("/").rsplit("/", 1)[-1]]
        q = request.query_params
        user = hub.user(request)
        filters = q.getlist("filter")
        if len(filters) > 64:
            raise BadRequest("too many filter parameters (at most 64)")
        repos = hub.store.list_repos(rtype, filters, q.get("author"), q.get("search"))
        repos = [r for r in hub.mirrors.hidden(repos) if hub.auth.can_read(user, r.ns, r.private)]
        sort = q.get("sort") or "lastModified"
        key = {"lastModified": lambda r: r.modified, "createdAt": lambda r: r.created, "id": lambda r: r.repo_id,
               "created_at": lambda r: r.created, "last_modified": lambda r: r.modified}.get(sort, lambda r: r.modified)
        descending = q.get("direction", "-1") == "-1" and sort not in ("id",)
        repos.sort(key=key, reverse=descending)
        limit = _int_param(request, "limit", hub.page_size, low=1)
        page = min(limit, hub.page_size)
        start = _int_param(request, "cursor", 0)
        chunk = repos[start:start + page]
        full = _flag(request, "full") or _flag(request, "cardData")
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
        if start + page < len(repos) and (q.get("limit") is None or limit > page):
            params = [(k, v) for k, v in q.multi_items() if k != "cursor"] + [("cursor", str(start + page))]
            headers["Link"] = f'<{hub.base(request)}{request.url.path}?{urlencode(params)}>; rel="next"'
        return JSONResponse(items, headers=headers)

    async def repo_info(request: Request):
        repo = hub.repo(request, rtype_of(request))
        sha = hub.store.resolve(repo, check_revision(request.path_params.get("rev", "main")))
        return JSONResponse(hub.info(repo, sha, _flag(request, "blobs")))

    async def settings(request: Request):
        repo = hub.repo(request, rtype_of(request), write=True)
        req = await body(request, P.Settings)
        if req.visibility in ("private", "public"):
            hub.store.set_private(repo, req.visibility == "private")
        elif req.private is not None:
            hub.store.set_private(repo, req.private)
        return JSONResponse({})

    async def xet_token(request: Request):
        hub.repo(request, rtype_of(request))
        check_revision(request.path_params["rev"])
        raise NotSupported("this registry speaks git-LFS only: set HF_HUB_DISABLE_XET=1 on the client")

    # -- uploads --------------------------------------------------------------------------
    async def preupload(request: Request):
        repo = hub.repo(request, rtype_of(request), write=True)
        rev = check_revision(request.path_params["rev"])
        req = await body(request, P.Preupload)
        try:
            tree = hub.store.tree(hub.store.resolve(repo, rev))
        except RevisionNotFound:
            tree = {}  # a branch that does not exist yet: nothing to compare against
        out = []
        for f in req.files:
            lfs = wants_lfs(f.path, f.size)
            e = tree.get(f.path)
            oid = None
            if e is not None and e.lfs == lfs:
                oid = e.sha256 if lfs else e.oid
            out.append({"path": f.path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return JSONResponse({"files": out})

    async def lfs_batch(request: Request):
        rtype = rtype_of(request)
        req = await body(request, P.LfsBatch)
        repo = hub.repo(request, rtype, write=req.operation == "upload")
        if req.operation == "download":
            objects = [{"oid": o.oid, "size": o.size, "error": {"code": 404, "message": "download via resolve"}}
                       for o in req.objects]
            return JSONResponse({"transfer": "basic", "objects": objects})
        can_read = hub.read_policy(hub.user(request))
        base = hub.base(request)
        prefix = "" if rtype == "model" else f"{rtype}s/"
        free = shutil.disk_usage(hub.store.root).free
        needed = 0
        objects = []
        for o in req.objects:
            if o.size > MAX_FILE_BYTES:
                objects.append({"oid": o.oid, "size": o.size,
                                "error": {"code": 422, "message": f"object too large (limit {MAX_FILE_BYTES} bytes)"}})
                continue
            item: dict = {"oid": o.oid, "size": o.size, "authenticated": True}
            if hub.store.usable_size(repo, o.oid, can_read) != o.size:
                needed += o.size
                if needed > free:  # refuse now, with the reason, rather than after the bytes were sent
                    objects.append({"oid": o.oid, "size": o.size,
                                    "error": {"code": 507, "message": DiskFull.at(hub.store.root).message}})
                    continue
                item["actions"] = {
                    "upload": {"href": f"{base}/lfs/upload/{repo.id}/{o.oid}/{o.size}?ticket={hub.ticket(repo, o.oid, o.size)}"},
                    "verify": {"href": f"{base}/{prefix}{repo.repo_id}.git/info/lfs/verify"},
                }
            objects.append(item)
        return JSONResponse({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                            media_type="application/vnd.git-lfs+json")

    async def lfs_upload(request: Request):
        oid, size = check_oid(request.path_params["oid"]), request.path_params["size"]
        if size > MAX_FILE_BYTES:
            raise PayloadTooLarge(f"object too large (limit {MAX_FILE_BYTES} bytes)")
        repo = hub.store.repo_by_id(request.path_params["repo"])
        if repo is None or not hub.ticket_ok(repo, oid, size, request.query_params.get("ticket", "")):
            raise Forbidden("missing or invalid upload ticket: ask the batch endpoint first")
        declared = _content_length(request)
        if declared is not None and declared != size:
            raise BadRequest(f"Content-Length {declared} does not match the object size {size}")
        stored = hub.store.has_blob(oid, size)  # then the bytes are checked, not kept: they prove possession
        with hub.store.incoming(size, keep=not stored) as up:
            await _receive(request, up)
            got = up.finish()
            if up.size != size or got != oid:
                raise BadRequest(f"upload does not match its oid/size (got sha256 {got}, {up.size} bytes)")
            if not stored:
                up.adopt(oid)
        hub.store.record_upload(repo, oid)
        return Response(status_code=200)

    async def lfs_verify(request: Request):
        repo = hub.repo(request, rtype_of(request))
        req = await body(request, P.LfsVerify)
        if not (hub.store.holds(repo, req.oid) and hub.store.has_blob(req.oid, req.size)):
            raise ObjectNotFound(f"object {req.oid} ({req.size} bytes) not found in {repo.repo_id}")
        return JSONResponse({"message": "ok"})

    async def commit(request: Request):
        rtype = rtype_of(request)
        repo = hub.repo(request, rtype, write=True)
        branch = check_revision(request.path_params["rev"], "branch")
        if _flag(request, "create_pr"):
            raise NotSupported("pull requests are not supported by this registry: commit to a branch instead")
        if "ndjson" not in request.headers.get("content-type", ""):
            raise BadRequest("a commit body is NDJSON: send Content-Type: application/x-ndjson")
        declared = _content_length(request)
        if declared is not None and declared > MAX_COMMIT_BYTES:
            raise PayloadTooLarge("commit body too large: upload big files through LFS")
        lines = P.LineLimits()
        with hub.store.incoming(MAX_COMMIT_BYTES, hashed=False) as up:
            await _receive(request, up, check=lines.feed)
            up.finish(sync=False)  # read back at once, never adopted
            header, ops = _parse_commit(hub.store, up.path)
        user = hub.user(request)
        sha = hub.store.commit(repo, branch, ops, header.summary or "update", header.description or "",
                               user or "anonymous", header.parentCommit, can_read=hub.read_policy(user))
        prefix = "" if rtype == "model" else f"{rtype}s/"
        return JSONResponse({"success": True, "commitOid": sha, "commitMessage": header.summary,
                             "commitUrl": f"{hub.base(request)}/{prefix}{repo.repo_id}/commit/{sha}", "pullRequestUrl": None})

    # -- reading --------------------------------------------------------------------------
    async def resolve(request: Request):
        repo = hub.repo(request, rtype_of(request))
        rev = check_revision(request.path_params["rev"])
        path = check_path(request.path_params["path"])
        sha = hub.store.resolve(repo, rev)
        e = hub.store.entry(sha, path)
        if e is None:
            raise EntryNotFound(f"Entry not found: {path}", commit=sha)
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if e.lfs:
            headers["X-Linked-Etag"] = f'"{e.sha256}"'
            headers["X-Linked-Size"] = str(e.size)
            headers["ETag"] = f'"{e.sha256}"'
        else:
            headers["ETag"] = f'"{e.oid}"'
        if not hub.store.has_blob(e.sha256, e.size):  # a mirror's large file, fetched on first read
            streamed = hub.mirrors.blob_response(request, repo, sha, path, e, headers)
            if streamed is not None:
                return streamed
        return BlobResponse(hub.store.blob_path(e.sha256), headers=headers, media_type="application/octet-stream")

    async def tree(request: Request):
        repo = hub.repo(request, rtype_of(request))
        rev = check_revision(request.path_params["rev"])
        sub = request.path_params.get("path", "").rstrip("/")
        if sub:
            check_path(sub)
        sha = hub.store.resolve(repo, rev)
        files = hub.store.tree(sha)
        recursive = _flag(request, "recursive")
        prefix = sub + "/" if sub else ""
        items: dict[str, dict] = {}
        for path, e in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            for i in range(1, len(parts)):
                d = prefix + "/".join(parts[:i])
                if recursive or i == 1:
                    items.setdefault(d, hub.dir_item(d))
            if recursive or len(parts) == 1:
                items[path] = hub.tree_item(path, e)
        if sub and not items:
            raise EntryNotFound(f"Entry not found: {sub}", commit=sha)
        return JSONResponse(list(items.values()))

    async def paths_info(request: Request):
        repo = hub.repo(request, rtype_of(request))
        sha = hub.store.resolve(repo, check_revision(request.path_params["rev"]))
        ctype = request.headers.get("content-type", "")
        raw = await _read_body(request, MAX_JSON_BYTES)
        if ctype.startswith("application/json"):
            req = P.parse_body(raw, P.PathsInfo)
        elif ctype.startswith("application/x-www-form-urlencoded") or not ctype:
            try:
                pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True,
                                  max_num_fields=MAX_LIST_ITEMS + 1)
            except ValueError:
                raise BadRequest(f"invalid paths-info form: more than {MAX_LIST_ITEMS} fields") from None
            req = P.validate({"paths": [v for k, v in pairs if k == "paths"]}, P.PathsInfo, "paths-info form")
        else:
            raise BadRequest(f"paths-info takes a form or JSON body, not {ctype[:60]!r}")
        files = hub.store.tree(sha)
        folders = _folders(files) if req.paths else set()
        out = []
        for p in req.paths:
            if p in files:
                out.append(hub.tree_item(p, files[p]))
            elif p in folders:
                out.append(hub.dir_item(p))
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
        name = check_revision(request.path_params["branch"], "branch name")
        if request.method == "DELETE":
            if name == "main":
                raise Forbidden("cannot delete the main branch")
            hub.store.set_ref(repo, "branch", name, None)
            return JSONResponse({})
        req = await body(request, P.Branch)
        start = hub.store.resolve(repo, req.startingPoint or "main")
        if _flag(request, "exist_ok") and name in hub.store.refs(repo)["branch"]:
            return JSONResponse({})
        hub.store.set_ref(repo, "branch", name, start, must_not_exist=True)
        return JSONResponse({})

    async def tag(request: Request):
        repo = hub.repo(request, rtype_of(request), write=True)
        rev = check_revision(request.path_params["rev"], "tag" if request.method == "DELETE" else "revision")
        if request.method == "DELETE":
            hub.store.set_ref(repo, "tag", rev, None)
            return JSONResponse({})
        req = await body(request, P.Tag)
        hub.store.set_ref(repo, "tag", req.tag, hub.store.resolve(repo, rev), must_not_exist=True)
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
        Route(R + "/tree/{rev}/{path:anypath}", handler(tree), methods=["GET"]),
        Route(R + "/paths-info/{rev}", handler(paths_info), methods=["POST"]),
        Route(R + "/refs", handler(refs), methods=["GET"]),
        Route(R + "/commits/{rev}", handler(commits), methods=["GET"]),
        Route(R + "/branch/{branch}", handler(branch), methods=["POST", "DELETE"]),
        Route(R + "/tag/{rev}", handler(tag), methods=["POST", "DELETE"]),
        Route("/lfs/upload/{repo:int}/{oid}/{size:int}", handler(lfs_upload), methods=["PUT"]),
        Route("/datasets/{ns}/{name}.git/info/lfs/objects/batch", handler(lfs_batch), methods=["POST"]),
        Route("/datasets/{ns}/{name}.git/info/lfs/verify", handler(lfs_verify), methods=["POST"]),
        Route("/{ns}/{name}.git/info/lfs/objects/batch", handler(lfs_batch), methods=["POST"]),
        Route("/{ns}/{name}.git/info/lfs/verify", handler(lfs_verify), methods=["POST"]),
        Route("/datasets/{ns}/{name}/resolve/{rev}/{path:anypath}", handler(resolve), methods=["GET", "HEAD"]),
        Route("/{ns}/{name}/resolve/{rev}/{path:anypath}", handler(resolve), methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes)
    app.state.hub = hub
    install_pages(app)  # after the API routes: the API keeps every URL it matches
    return app


def _parse_commit(store: Store, body: Path) -> tuple[P.CommitHeader, list[dict]]:
    """Validate every NDJSON line first, then store the regular files' bytes (a bad line 3 stores nothing).

    Two passes over the temp file keep memory at one line: the first validates (base64 included)
    and remembers where the file lines are, the second decodes them again into the store.
    """
    header: P.CommitHeader | None = None
    ops: list[dict] = []
    file_lines: list[tuple[int, int, int]] = []  # (offset, line number, index in ops)
    with open(body, "rb") as f:
        number = 0
        while True:
            offset = f.tell()
            raw = f.readline()
            if not raw:
                break
            number += 1
            if not raw.strip():
                continue
            line = P.parse_commit_line(raw, number)
            if (line.key == "header") != (header is None):
                raise BadRequest(f"invalid commit line {number}: the header must be the first line, and only it")
            if isinstance(line, P.HeaderLine):
                header = line.value
            elif isinstance(line, P.FileLine):
                line.value.data()  # invalid base64 is refused here, before anything is stored
                file_lines.append((offset, number, len(ops)))
                ops.append({"op": "add", "path": line.value.path, "lfs": False})
            elif isinstance(line, P.LfsFileLine):
                ops.append({"op": "add", "path": line.value.path, "sha256": line.value.oid, "size": line.value.size,
                            "lfs": True})
            elif isinstance(line, P.DeletedFileLine):
                ops.append({"op": "delete", "path": line.value.path})
            else:
                ops.append({"op": "delete_folder", "path": line.value.folder()})
        if header is None:
            raise BadRequest("invalid commit: the body has no header line")
        for offset, number, index in file_lines:
            f.seek(offset)
            data = P.parse_commit_line(f.readline(), number).value.data()
            ops[index].update(sha256=store.put_bytes(data), size=len(data), oid=git_blob_oid(data))
    return header, ops
