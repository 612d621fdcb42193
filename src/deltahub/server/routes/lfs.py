"""Git LFS: the batch API, ticketed uploads and verify; the Hub's listing and permanent deletion of a repo's
LFS files."""

from __future__ import annotations

import shutil
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import payloads as P
from .. import quota
from ..context import body, content_length, hub_of, iso, param, receive, rtype_of
from ..errors import BadRequest, DiskFull, Forbidden, ObjectNotFound, PayloadTooLarge
from ..limits import MAX_FILE_BYTES
from ..paths import check_oid
from ..storage import git_blob_oid, lfs_pointer

R = "/api/{t:repotype}/{ns}/{name}"


async def lfs_batch(request: Request):
    """Upload actions for objects the repo does not hold yet. Reading the repo is enough to upload into it:
    a pull request from someone without write access carries LFS files too; nothing reaches a branch
    without a commit, which is checked on its own."""
    hub = hub_of(request)
    req = await body(request, P.LfsBatch)
    repo = hub.repo(request, rtype_of(request))
    if req.operation == "download":
        objects = [
            {"oid": o.oid, "size": o.size, "error": {"code": 404, "message": "download via resolve"}}
            for o in req.objects
        ]
        return JSONResponse({"transfer": "basic", "objects": objects})
    user = hub.signed_in(request, "upload files")
    hub.mirrors.refuse_changes(repo)
    can_read = hub.read_policy(hub.user(request))
    base = hub.base(request)
    too_large = {"code": 422, "message": f"object too large (limit {MAX_FILE_BYTES} bytes)"}
    wanted = [
        o for o in req.objects if o.size <= MAX_FILE_BYTES and hub.store.usable_size(repo, o.oid, can_read) != o.size
    ]
    # over the user's quota (quota.py): the whole batch is refused here, before any byte is sent
    charged = hub.quotas.reserve(user, repo, [(quota.lfs_key(o.oid), o.size) for o in wanted])
    free = shutil.disk_usage(hub.store.root).free
    needed = 0
    objects = []
    for o in req.objects:
        item: dict = {"oid": o.oid, "size": o.size}
        if o.size > MAX_FILE_BYTES:
            objects.append({**item, "error": too_large})
            continue
        item["authenticated"] = True
        if o in wanted:
            needed += o.size
            if needed > free:  # refuse now, with the reason, rather than after the bytes were sent
                if charged:
                    hub.quotas.settle(user, quota.lfs_key(o.oid), None)
                objects.append({**item, "error": {"code": 507, "message": DiskFull.at(hub.store.root).message}})
                continue
            charge = user if charged else None  # bound into the ticket: an upload cannot shed its charge
            ticket = hub.ticket(repo, o.oid, o.size, charge)
            by = f"&charge={quote(charge, safe='')}" if charge else ""
            item["actions"] = {
                "upload": {"href": f"{base}/lfs/upload/{repo.id}/{o.oid}/{o.size}?ticket={ticket}{by}"},
                "verify": {"href": f"{hub.repo_url(request, repo)}.git/info/lfs/verify"},
            }
        objects.append(item)
    return JSONResponse(
        {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, media_type="application/vnd.git-lfs+json"
    )


async def lfs_upload(request: Request):
    hub = hub_of(request)
    oid, size = check_oid(param(request, "oid")), request.path_params["size"]
    if size > MAX_FILE_BYTES:
        raise PayloadTooLarge(f"object too large (limit {MAX_FILE_BYTES} bytes)")
    repo = hub.store.repo_by_id(request.path_params["repo"])
    charged = request.query_params.get("charge")  # who reserved the bytes, bound into the ticket
    if repo is None or not hub.ticket_ok(repo, oid, size, request.query_params.get("ticket", ""), charged):
        raise Forbidden("missing or invalid upload ticket: ask the batch endpoint first")
    declared = content_length(request)
    if declared is not None and declared != size:
        raise BadRequest(f"Content-Length {declared} does not match the object size {size}")
    stored = hub.store.has_blob(oid, size)  # then the bytes are checked, not kept: they prove possession
    with hub.store.incoming(size, keep=not stored) as up:
        await receive(request, up)
        got = up.finish()
        if up.size != size or got != oid:
            raise BadRequest(f"upload does not match its oid/size (got sha256 {got}, {up.size} bytes)")
        if not stored:
            up.adopt(oid)
    hub.store.record_upload(repo, oid)
    if charged is not None:  # bytes already stored (dedup) are not charged again
        hub.quotas.settle(charged, quota.lfs_key(oid), None if stored else size)
    return Response(status_code=200)


async def lfs_verify(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request))
    req = await body(request, P.LfsVerify)
    if not (hub.store.holds(repo, req.oid) and hub.store.has_blob(req.oid, req.size)):
        raise ObjectNotFound(f"object {req.oid} ({req.size} bytes) not found in {repo.repo_id}")
    return JSONResponse({"message": "ok"})


async def lfs_files(request: Request):
    """Every LFS object of the repo's history, for its writers (what ``list_lfs_files`` shows)."""
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request), write=True)
    out = []
    for f in hub.store.lfs_files(repo):
        if hub.store.content_size(f["sha256"]) is None:
            continue  # permanently deleted
        out.append(
            {
                "fileOid": f["sha256"],
                "oid": git_blob_oid(lfs_pointer(f["sha256"], f["size"])),
                "filename": f["path"],
                "size": f["size"],
                "pushedAt": iso(f["date"]),
                "ref": f["ref"],
            }
        )
    return JSONResponse(out)


async def lfs_files_delete(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request), write=True)
    req = await body(request, P.LfsDelete)
    hub.store.delete_lfs_files(
        repo, req.deletions.sha, hub.writer(request) or "anonymous", req.deletions.rewriteHistory
    )
    return JSONResponse({})


ROUTES = [
    Route(R + "/lfs-files", lfs_files, methods=["GET"]),
    Route(R + "/lfs-files/batch", lfs_files_delete, methods=["POST"]),
    Route("/lfs/upload/{repo:int}/{oid}/{size:int}", lfs_upload, methods=["PUT"]),
    *[
        Route(f"{prefix}/{{ns}}/{{name}}.git/info/lfs/{tail}", fn, methods=["POST"])
        for prefix in ("/datasets", "/spaces", "")
        for tail, fn in (("objects/batch", lfs_batch), ("verify", lfs_verify))
    ],
]
