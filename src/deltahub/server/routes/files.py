"""Commits and files: preupload, commit (to a branch, a pull request, or opening one), download,
tree and paths-info listings, commit history, super-squash."""

from __future__ import annotations

import hashlib
import html
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from .. import gitignore
from .. import payloads as P
from ..context import body, content_length, flag, hub_of, iso, param, read_body, receive, rtype_of
from ..errors import (
    BadRequest,
    EntryNotFound,
    Forbidden,
    PayloadTooLarge,
    RevisionNotFound,
    Unprocessable,
)
from ..history import Entry, Tree
from ..limits import MAX_COMMIT_BYTES, MAX_JSON_BYTES, MAX_LIST_ITEMS, MAX_TEXT
from ..paths import check_path, check_revision
from ..storage import Repo, Store, git_blob_oid, lfs_pointer, split_ref, wants_lfs
from ..xet import serve

R = "/api/{t:repotype}/{ns}/{name}"


class BlobResponse(FileResponse):
    """A file response with 1 MB chunks (Starlette's 64 KB default costs a lot of event-loop turns)."""

    chunk_size = 1024 * 1024


def tree_item(path: str, e: Entry, xet_hash: str | None = None) -> dict:
    """A listing's file item; ``xetHash`` for content held through Xet (hf_xet then downloads it natively)."""
    item = {"type": "file", "path": path, "size": e.size, "oid": e.oid}
    if e.lfs:
        item["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": len(lfs_pointer(e.sha256, e.size))}
        if xet_hash is not None:
            item["xetHash"] = xet_hash
    return item


def dir_item(path: str) -> dict:
    return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0}


def folders_of(tree: Tree) -> set[str]:
    return {path[:i] for path in tree for i in range(len(path)) if path[i] == "/"}


def _with_last_commits(store: Store, sha: str, items: list[dict]) -> list[dict]:
    """``items`` with the Hub's ``lastCommit`` ({id, title, date}) of each (the ``expand=true`` listings)."""
    folders = {i["path"] for i in items if i["type"] == "directory"}
    last = store.last_commits(sha, [i["path"] for i in items], folders)
    for item in items:
        c = last.get(item["path"])
        if c is not None:
            item["lastCommit"] = {"id": c["sha"], "title": c["title"], "date": iso(c["date"])}
    return items


# -- uploads ----------------------------------------------------------------------------------------
async def preupload(request: Request):
    """How each file travels (regular or LFS), whether the repo's .gitignore drops it, and the oid already
    there (so that the client skips unchanged files). It needs the rights of the commit it prepares, as on
    the Hub: write access, or a pull request (``create_pr=1``, or pushing to one's own pull request)."""
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request))
    rev = check_revision(param(request, "rev"))
    create_pr = flag(request, "create_pr")
    _check_commit_rights(request, repo, rev, hub.user(request), create_pr)
    req = await body(request, P.Preupload)
    try:
        tree = hub.store.tree(hub.store.resolve(repo, rev))
    except RevisionNotFound:
        tree = {}  # a branch that does not exist yet: nothing to compare against
    rules = gitignore.parse(req.gitIgnore if req.gitIgnore is not None else _repo_gitignore(hub.store, tree))
    out = []
    for f in req.files:
        lfs = wants_lfs(f.path, f.size)
        e = tree.get(f.path)
        oid = None
        if e is not None and e.lfs == lfs:
            oid = e.sha256 if lfs else e.oid
        out.append(
            {
                "path": f.path,
                "uploadMode": "lfs" if lfs else "regular",
                "shouldIgnore": bool(rules) and gitignore.ignored(rules, f.path),
                "oid": oid,
            }
        )
    return JSONResponse({"files": out})


def _repo_gitignore(store: Store, tree: Tree) -> str:
    e = tree.get(".gitignore")
    if e is None or e.lfs:
        return ""
    return store.read_blob(e.sha256, MAX_TEXT).decode("utf-8", "replace")


async def commit(request: Request):
    """Apply an NDJSON commit to a branch, to a pull request (``refs/pr/N``), or to a new pull request
    (``create_pr=1``, which anyone who can read the repo may open)."""
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request))
    rev = check_revision(param(request, "rev"), "branch")
    user = hub.user(request)
    create_pr = flag(request, "create_pr")
    pr_num = _check_commit_rights(request, repo, rev, user, create_pr)
    if "ndjson" not in request.headers.get("content-type", ""):
        raise BadRequest("a commit body is NDJSON: send Content-Type: application/x-ndjson")
    declared = content_length(request)
    if declared is not None and declared > MAX_COMMIT_BYTES:
        raise PayloadTooLarge("commit body too large: upload big files through LFS")
    lines = P.LineLimits()
    with hub.store.incoming(MAX_COMMIT_BYTES, hashed=False) as up:
        await receive(request, up, check=lines.feed)
        up.finish(sync=False)  # read back at once, never adopted
        header, ops = _parse_commit(hub.store, up.path)
    author = hub.auth.writer(user) or "anonymous"
    title, description = header.summary or "update", header.description or ""
    can_read = hub.read_policy(user)
    pr_url = None
    if create_pr:
        kind, branch = split_ref(rev)
        if kind not in (None, "branch"):
            raise RevisionNotFound(f"Invalid rev id: {rev} (a pull request targets a branch)")
        pr_num, sha = hub.discussions.open_with_commit(repo, branch, ops, title, description, author, can_read)
    else:
        hook = hub.discussions.commit_hook(repo, pr_num, title, author) if pr_num is not None else None
        sha = hub.store.commit(
            repo, rev, ops, title, description, author, header.parentCommit, can_read=can_read, on_commit=hook
        )
    if pr_num is not None:
        pr_url = f"{hub.repo_url(request, repo)}/discussions/{pr_num}"
    return JSONResponse(
        {
            "success": True,
            "commitOid": sha,
            "commitMessage": title,
            "commitUrl": f"{hub.repo_url(request, repo)}/commit/{sha}",
            "pullRequestUrl": pr_url,
        }
    )


def _check_commit_rights(request: Request, repo: Repo, rev: str, user: str | None, create_pr: bool) -> int | None:
    """Who may commit where: writers anywhere; the author of a pull request to its branch; any signed-in
    reader to a new pull request. The pull request's number when ``rev`` is one."""
    hub = hub_of(request)
    hub.mirrors.refuse_changes(repo)
    if create_pr:
        hub.signed_in(request, "open a pull request")
        return None
    kind, name = hub.store.writable_ref(rev)
    if kind != "pr":
        if not hub.can_write(user, repo):
            raise Forbidden(f"You don't have the rights to write to {repo.repo_id}: open a pull request instead")
        return None
    d = hub.discussions.get(repo, int(name)) if name.isdigit() else None
    if d is None or not d.is_pr:
        raise RevisionNotFound(f"Invalid rev id: {rev}")
    if not (hub.can_write(user, repo) or (user is not None and user == d.author)):
        raise Forbidden(f"Only the author of pull request #{d.num} or a writer of {repo.repo_id} may push to it")
    if d.status == "merged":
        raise Unprocessable(f"Pull request #{d.num} is merged: open a new one")
    return d.num


def _parse_commit(store: Store, body_file: Path) -> tuple[P.CommitHeader, list[dict]]:
    """Validate every NDJSON line first, then store the regular files' bytes (a bad line 3 stores nothing).

    Two passes over the temp file keep memory at one line: the first validates (base64 included)
    and remembers where the file lines are, the second decodes them again into the store.
    """
    header: P.CommitHeader | None = None
    ops: list[dict] = []
    file_lines: list[tuple[int, int, int]] = []  # (offset, line number, index in ops)
    with open(body_file, "rb") as f:
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
                ops.append(
                    {
                        "op": "add",
                        "path": line.value.path,
                        "sha256": line.value.oid,
                        "size": line.value.size,
                        "lfs": True,
                    }
                )
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


# -- reading ----------------------------------------------------------------------------------------
async def resolve(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request))
    rev = check_revision(param(request, "rev"))
    path = check_path(param(request, "path"))
    hub.check_gate(request, repo)
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
    xet = hub.store.xet.file_for(e.sha256) if e.lfs else None
    if xet is not None:  # content uploaded through Xet: hf_xet downloads it natively, anyone else gets the bytes
        headers.update(serve.xet_headers(request, hub, repo, sha, xet))
    if not hub.store.has_blob(e.sha256, e.size):
        if xet is not None:
            return serve.file_response(request, hub, xet, headers)
        # a mirror's large file is fetched on first read; any other missing blob (an LFS file deleted for good): 404
        streamed = hub.mirrors.blob_response(request, repo, sha, path, e, headers)
        if streamed is not None:
            return streamed
    return BlobResponse(hub.store.blob_path(e.sha256), headers=headers, media_type="application/octet-stream")


async def tree(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request))
    rev = check_revision(param(request, "rev"))
    sub = param(request, "path", "").rstrip("/")
    if sub:
        check_path(sub)
    sha = hub.store.resolve(repo, rev)
    files = hub.store.tree(sha)
    recursive = flag(request, "recursive")
    prefix = sub + "/" if sub else ""
    items: dict[str, dict] = {}
    wanted = [e.sha256 for p, e in files.items() if e.lfs and p.startswith(prefix)]
    xet = hub.store.xet.hashes_of(wanted)
    for path, e in sorted(files.items()):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        for i in range(1, len(parts)):
            d = prefix + "/".join(parts[:i])
            if recursive or i == 1:
                items.setdefault(d, dir_item(d))
        if recursive or len(parts) == 1:
            items[path] = tree_item(path, e, xet.get(e.sha256))
    if sub and not items:
        raise EntryNotFound(f"Entry not found: {sub}", commit=sha)
    out = list(items.values())
    return JSONResponse(_with_last_commits(hub.store, sha, out) if flag(request, "expand") else out)


async def paths_info(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request))
    sha = hub.store.resolve(repo, check_revision(param(request, "rev")))
    req = await _paths_info_body(request)
    files = hub.store.tree(sha)
    folders = folders_of(files) if req.paths else set()
    xet = hub.store.xet.hashes_of([files[p].sha256 for p in req.paths if p in files and files[p].lfs])
    out = []
    for p in req.paths:
        if p in files:
            out.append(tree_item(p, files[p], xet.get(files[p].sha256)))
        elif p in folders:
            out.append(dir_item(p))
    return JSONResponse(_with_last_commits(hub.store, sha, out) if req.expand else out)


async def _paths_info_body(request: Request) -> P.PathsInfo:
    """The body as JSON, or as the form huggingface_hub sends (``paths=a&paths=b&expand=True``), parsed with the
    standard library (no python-multipart: a url-encoded form is one ``parse_qsl``)."""
    ctype = request.headers.get("content-type", "")
    raw = await read_body(request, MAX_JSON_BYTES)
    if ctype.startswith("application/json"):
        return P.parse_body(raw, P.PathsInfo)
    if not (ctype.startswith("application/x-www-form-urlencoded") or not ctype):
        raise BadRequest(f"paths-info takes a form or JSON body, not {ctype[:60]!r}")
    try:
        pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_LIST_ITEMS + 2)
    except ValueError:
        raise BadRequest(f"invalid paths-info form: more than {MAX_LIST_ITEMS} fields") from None
    expand = [v for k, v in pairs if k == "expand"]
    return P.validate(
        {"paths": [v for k, v in pairs if k == "paths"], "expand": expand[-1].lower() == "true" if expand else None},
        P.PathsInfo,
        "paths-info form",
    )


async def commits(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request))
    sha = hub.store.resolve(repo, check_revision(param(request, "rev")))
    formatted = "formatted" in request.query_params.getlist("expand[]") or flag(request, "formatted")
    out = []
    for c in hub.store.history(sha):
        item = {
            "id": c["sha"],
            "title": c["title"],
            "message": c["message"],
            "date": iso(c["date"]),
            "authors": [{"user": c["author"], "avatar": None}],
        }
        if formatted:
            item["formatted"] = {"title": html.escape(c["title"] or ""), "message": html.escape(c["message"] or "")}
        out.append(item)
    return JSONResponse(out)


async def super_squash(request: Request):
    """Replace a branch's history by one commit with its current files (older commits stay reachable from
    other refs)."""
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request), write=True)
    rev = check_revision(param(request, "rev"), "branch")
    req = await body(request, P.SuperSquash)
    sha = hub.store.squash(repo, rev, req.message or f"Super-squash branch '{rev}'", hub.writer(request) or "anonymous")
    return JSONResponse({"commitId": sha})


ROUTES = [
    Route(R + "/preupload/{rev}", preupload, methods=["POST"]),
    Route(R + "/commit/{rev}", commit, methods=["POST"]),
    Route(R + "/tree/{rev}", tree, methods=["GET"]),
    Route(R + "/tree/{rev}/{path:anypath}", tree, methods=["GET"]),
    Route(R + "/paths-info/{rev}", paths_info, methods=["POST"]),
    Route(R + "/commits/{rev}", commits, methods=["GET"]),
    Route(R + "/super-squash/{rev}", super_squash, methods=["POST"]),
    Route("/datasets/{ns}/{name}/resolve/{rev}/{path:anypath}", resolve, methods=["GET", "HEAD"]),
    Route("/spaces/{ns}/{name}/resolve/{rev}/{path:anypath}", resolve, methods=["GET", "HEAD"]),
    Route("/{ns}/{name}/resolve/{rev}/{path:anypath}", resolve, methods=["GET", "HEAD"]),
]
