"""The Hub's Xet endpoints: token requests on the repo API, and the CAS API (hub-docs ``docs/xet/api.md``)
under ``/api/xet-cas``, which the token answers name as ``casUrl``.

Who may do what is decided by the checks the other routes use: a read token needs what reading the repo
needs (``Hub.repo``, ``Hub.check_gate``), a write token what committing needs (``files._check_commit_rights``:
writers, pull-request authors, readers opening a pull request, never a mirror). CAS calls then carry only
the token (tokens.py) and are re-checked against the caller's read policy (``Hub.read_policy``). Anything
the caller may not read answers exactly as if it did not exist. Heavy work (hashing, decompressing) runs
in the thread pool, so one 64 MiB xorb does not stall other requests.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import convertors  # noqa: F401  (before any Route is built)
from ..context import Hub, content_length, flag, hub_of, param, read_body, receive, rtype_of
from ..errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized
from ..paths import check_revision
from ..quota import xorb_key
from ..storage import Repo
from . import hashing, reconstruction, shard, tokens, xorb
from .serve import byte_range
from .store import XetFile, XetRejected

CAS = "/api/xet-cas"
R = "/api/{t:repotype}/{ns}/{name}"
MAX_XORB_UPLOAD = xorb.MAX_XORB_BYTES + xorb.MAX_FOOTER_BYTES
CHUNK = 1 << 20


# -- tokens -----------------------------------------------------------------------------------------
def _token_answer(request: Request, hub: Hub, repo: Repo, scope: str, rev: str) -> JSONResponse:
    token, exp = tokens.issue(hub.secret, repo, hub.user(request), scope, rev)
    cas = hub.base(request) + CAS
    headers = {"X-Xet-Cas-Url": cas, "X-Xet-Access-Token": token, "X-Xet-Token-Expiration": str(exp)}
    return JSONResponse({"accessToken": token, "exp": exp, "casUrl": cas}, headers=headers)


async def read_token(request: Request):
    """A read token pinned to the commit ``rev`` resolves to now."""
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request))
    hub.check_gate(request, repo)
    sha = hub.store.resolve(repo, check_revision(param(request, "rev")))
    return _token_answer(request, hub, repo, "read", sha)


async def write_token(request: Request):
    """A write token for whoever may commit to ``rev`` (``?create_pr=1`` with rev ``None``: a new pull request)."""
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request))
    create_pr = flag(request, "create_pr")
    rev = param(request, "rev")
    if not (create_pr and rev == "None"):
        rev = check_revision(rev, "branch")
    from ..routes.files import _check_commit_rights  # (here: the routes package imports this module)

    _check_commit_rights(request, repo, rev, hub.user(request), create_pr)
    return _token_answer(request, hub, repo, "write", rev)


# -- the caller of a CAS route ----------------------------------------------------------------------
def _caller(request: Request, need: str) -> tuple[Hub, tokens.Grant, Repo]:
    hub = hub_of(request)
    grant = tokens.verify(hub.secret, request.headers.get("authorization"), need)
    repo = hub.store.repo_by_id(grant.repo)
    if repo is None or repo.created != grant.created or not hub.read_policy(grant.user)(repo.ns, repo.private):
        raise Unauthorized("the Xet access token's repo is gone or its user may no longer read it")
    return hub, grant, repo


def _hash(request: Request, name: str = "hash") -> str:
    value = request.path_params[name]
    if not hashing.is_hex(value):
        raise BadRequest(f"invalid Xet hash '{value[:80]}': 64 lowercase hex digits")
    return value


def _prefix(request: Request, *allowed: str) -> None:
    if request.path_params["prefix"] not in allowed:
        raise BadRequest(f"unknown prefix '{request.path_params['prefix'][:40]}' (only {', '.join(allowed)})")


def _readable(hub: Hub, grant: tokens.Grant, repo: Repo, file_id: str) -> XetFile:
    """The file, when the token may read it: in the token's commit (read), or held by its repo (write)."""
    f = hub.store.xet.file(file_id)
    if f is not None:
        if grant.scope == "read":
            try:
                tree = hub.store.tree(grant.rev)
            except (TypeError, KeyError):
                tree = {}
            if any(e.lfs and e.sha256 == f.sha256 for e in tree.values()):
                return f
        elif hub.store.holds(repo, f.sha256):
            return f
    raise NotFound(f"file {file_id} not found")


# -- CAS: uploads -----------------------------------------------------------------------------------
async def upload_xorb(request: Request):
    hub, grant, repo = _caller(request, "write")
    _prefix(request, "default")
    name = _hash(request)
    declared = content_length(request)
    if declared is not None and declared > MAX_XORB_UPLOAD:
        raise PayloadTooLarge(f"a xorb is at most {xorb.MAX_XORB_BYTES} bytes")
    key = xorb_key(name)
    # over the quota: refused on the headers, before the body is read
    charged = hub.quotas.reserve(grant.user, repo, [(key, MAX_XORB_UPLOAD if declared is None else declared)])
    try:
        with hub.store.incoming(MAX_XORB_UPLOAD, hashed=False) as up:
            await receive(request, up)
            up.finish(sync=False)  # put_xorb syncs what it keeps
            inserted = await run_in_threadpool(hub.store.xet.put_xorb, repo, name, up.path, up.size)
    except BaseException:
        if charged:
            hub.quotas.settle(grant.user, key, None)
        raise
    if charged:  # a xorb already stored (dedup) is not charged again
        hub.quotas.settle(grant.user, key, hub.store.xet.stored_bytes(name) if inserted else None)
    return JSONResponse({"was_inserted": inserted})


async def upload_shard(request: Request):
    hub, _, repo = _caller(request, "write")
    raw = await read_body(request, shard.MAX_SHARD_BYTES)
    try:
        parsed = shard.parse(raw)
    except shard.ShardError as exc:
        raise XetRejected(f"invalid shard: {exc}") from None
    new = await run_in_threadpool(hub.store.xet.register, repo, parsed)
    return JSONResponse({"result": 1 if new else 0})


async def no_streaming_shards(request: Request):
    """hf_xet tries the streaming upload first and falls back to ``/v1/shards`` on a 404."""
    raise NotFound("streaming shard upload is not served here: use POST /v1/shards")


# -- CAS: reads -------------------------------------------------------------------------------------
async def head_xorb(request: Request):
    hub, grant, repo = _caller(request, "read")
    _prefix(request, "default")
    name = _hash(request)
    size = hub.store.xet.stored_bytes(name)
    if size is None or not hub.store.xet.usable(hub.store._db(), name, repo, hub.read_policy(grant.user)):
        raise NotFound(f"xorb {name} not found")
    return Response(headers={"Content-Length": str(size)})


async def dedup(request: Request):
    """The global-dedup query: a shard of the xorbs holding the chunk, among those the caller may use."""
    hub, grant, repo = _caller(request, "read")
    _prefix(request, "default-merkledb", "default")  # the spec names the first; hf_xet 1.8 sends the second
    found = await run_in_threadpool(hub.store.xet.dedup, _hash(request), repo, hub.read_policy(grant.user))
    if not found:
        raise NotFound("chunk not found")
    return Response(shard.dedup_answer(found, secrets.token_bytes(32)), media_type="application/octet-stream")


async def head_file(request: Request):
    hub, grant, repo = _caller(request, "read")
    f = _readable(hub, grant, repo, _hash(request, "file_id"))
    return Response(headers={"Content-Length": str(f.size)})


async def _reconstruct(request: Request, v2: bool):
    hub, grant, repo = _caller(request, "read")
    f = _readable(hub, grant, repo, _hash(request, "file_id"))
    rng = byte_range(request.headers.get("range"), f.size)
    start, end = rng if rng is not None else (0, f.size)
    body = await run_in_threadpool(
        reconstruction.answer, hub.store.xet, hub.secret, hub.base(request) + CAS, f, start, end, v2
    )
    return JSONResponse(body)


async def reconstruction_v1(request: Request):
    return await _reconstruct(request, v2=False)


async def reconstruction_v2(request: Request):
    return await _reconstruct(request, v2=True)


async def xorb_range(request: Request):
    """Bytes of a stored xorb, for a URL a reconstruction answer signed (no token: the URL is the grant)."""
    hub = hub_of(request)
    name = _hash(request)
    q = request.query_params
    m = re.fullmatch(r"([0-9]{1,15})-([0-9]{1,15})", q.get("b", ""))
    exp = q.get("x", "")
    if m is None or not exp.isascii() or not exp.isdigit() or len(exp) > 12:
        raise Forbidden("invalid xorb range URL")
    lo, hi = int(m.group(1)), int(m.group(2))
    good = reconstruction.range_sig(hub.secret, name, lo, hi, int(exp))
    if not hmac.compare_digest(good.encode(), q.get("s", "").encode()) or int(exp) < time.time():
        raise Forbidden("invalid or expired xorb range URL: ask for the reconstruction again")
    size = hub.store.xet.stored_bytes(name)
    if size is None or hi >= size:
        raise NotFound(f"xorb {name} not found")
    rng = byte_range(request.headers.get("range"), size)
    start, end = rng if rng is not None else (lo, hi + 1)
    if start < lo or end > hi + 1:
        raise Forbidden("the Range asked for is outside the range this URL was signed for")
    path = hub.store.xet.xorb_path(name)

    def body():
        with open(path, "rb") as fh:
            fh.seek(start)
            left = end - start
            while left > 0:
                piece = fh.read(min(CHUNK, left))
                if not piece:
                    return
                left -= len(piece)
                yield piece

    headers = {"Content-Length": str(end - start), "Content-Range": f"bytes {start}-{end - 1}/{size}"}
    return StreamingResponse(body(), status_code=206, headers=headers, media_type="application/octet-stream")


ROUTES = [
    Route(R + "/xet-read-token/{rev}", read_token, methods=["GET"]),
    Route(R + "/xet-write-token/{rev}", write_token, methods=["GET"]),
    Route(CAS + "/v1/xorbs/{prefix}/{hash}", upload_xorb, methods=["POST"]),
    Route(CAS + "/v1/xorbs/{prefix}/{hash}", head_xorb, methods=["HEAD"]),
    Route(CAS + "/v1/shards", upload_shard, methods=["POST"]),
    Route(CAS + "/v2/shards", no_streaming_shards, methods=["POST"]),
    Route(CAS + "/v1/chunks/{prefix}/{hash}", dedup, methods=["GET"]),
    Route(CAS + "/v1/files/{file_id}", head_file, methods=["HEAD"]),
    Route(CAS + "/v1/reconstructions/{file_id}", reconstruction_v1, methods=["GET"]),
    Route(CAS + "/v2/reconstructions/{file_id}", reconstruction_v2, methods=["GET"]),
    Route(CAS + "/xorb-range/{hash}", xorb_range, methods=["GET"]),
]
