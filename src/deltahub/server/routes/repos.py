"""Accounts and repos: whoami, create/delete/move, info, listings, settings, card validation, auth-check."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import payloads as P
from ..asgi import unescape
from ..cardcheck import validate_metadata
from ..context import TYPES, body, flag, hub_of, int_param, iso, param, rtype_of
from ..errors import BadRequest, Conflict, Forbidden, NotFound, RepoNotFound, Unauthorized
from ..paths import check_name, check_revision
from ..storage import Repo, lfs_pointer
from ..tags import derive_tags, load_card

R = "/api/{t:repotype}/{ns}/{name}"


async def whoami(request: Request):
    hub = hub_of(request)
    user = hub.writer(request)  # open mode: a caller without a token writes as OPEN_USER
    if user is None:
        raise Unauthorized("Invalid credentials in Authorization header")
    auth = hub.auth
    orgs = [
        {"type": "org", "name": o, "fullname": auth.fullname(o), "roleInOrg": "admin", "isEnterprise": False}
        for o in auth.orgs.get(user, [])
    ]
    return JSONResponse(
        {
            "type": "user",
            "id": user,
            "name": user,
            "fullname": auth.fullname(user),
            "email": None,
            "emailVerified": False,
            "isPro": False,
            "canPay": False,
            "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": {"displayName": "deltahub", "role": "write"}},
        }
    )


async def create_repo(request: Request):
    hub = hub_of(request)
    req = await body(request, P.CreateRepo)
    rtype = req.type or "model"
    user = hub.writer(request)
    if user is None:
        raise Unauthorized("You must be authenticated to create a repo")
    ns = req.organization if req.organization is not None else user
    ns, name = check_name(ns, "namespace"), check_name(req.name, "repo name")
    if not hub.auth.can_write(user, ns):
        raise Forbidden(f"You don't have the rights to create a repo under {ns}")
    prefix = "" if rtype == "model" else f"{rtype}s/"
    private = bool(req.private) if req.visibility is None else req.visibility == "private"
    if req.private is None and req.visibility is None:
        private = hub.auth.private_by_default(ns)
    try:
        repo = hub.store.create_repo(rtype, ns, name, private, user or "anonymous")
    except Conflict as exc:
        exc.extra["url"] = f"{hub.base(request)}/{prefix}{ns}/{name}"  # what the Hub sends; exist_ok reads it
        raise
    return JSONResponse({"url": hub.repo_url(request, repo), "name": repo.repo_id, "id": f"{repo.id:024x}"})


def _repo_of_body(request: Request, rtype: str, ns: str | None, name: str, evict: bool = False) -> Repo:
    hub = hub_of(request)
    ns = ns if ns is not None else hub.writer(request)
    if ns is None:
        raise Unauthorized("You must be authenticated to do this")
    return hub.repo_named(
        request, rtype, check_name(ns, "namespace"), check_name(name, "repo name"), write=True, evict=evict
    )


async def delete_repo(request: Request):
    hub = hub_of(request)
    req = await body(request, P.DeleteRepo)
    hub.store.delete_repo(_repo_of_body(request, req.type or "model", req.organization, req.name, evict=True))
    return JSONResponse({})


def _split_id(repo_id: str) -> tuple[str, str]:
    if repo_id.count("/") != 1:
        raise BadRequest(f"Invalid repo id '{repo_id[:100]}': it must be namespace/name")
    ns, name = repo_id.split("/")
    return check_name(ns, "namespace"), check_name(name, "repo name")


async def move_repo(request: Request):
    hub = hub_of(request)
    req = await body(request, P.MoveRepo)
    rtype = req.type or "model"
    repo = hub.repo_named(request, rtype, *_split_id(req.fromRepo), write=True)
    ns, name = _split_id(req.toRepo)
    if not hub.auth.can_write(hub.writer(request), ns):
        raise Forbidden(f"You don't have the rights to create a repo under {ns}")
    hub.store.move_repo(repo, ns, name)
    return JSONResponse({})


async def validate_yaml(request: Request):
    req = await body(request, P.ValidateYaml)
    try:
        data = load_card(req.content)
    except BadRequest as exc:  # the Hub's answer shape for this endpoint: a list of errors
        return JSONResponse({"errors": [{"message": exc.message}]}, status_code=400)
    errors, warnings = validate_metadata(data)
    if errors:
        return JSONResponse({"errors": [{"message": m} for m in errors]}, status_code=400)
    return JSONResponse({"errors": [], "warnings": [{"message": m} for m in warnings]})


_SORT_KEYS = {
    "lastModified": lambda r: r.modified,
    "last_modified": lambda r: r.modified,
    "createdAt": lambda r: r.created,
    "created_at": lambda r: r.created,
    "id": lambda r: r.repo_id.lower(),
}


async def list_repos(request: Request):
    hub = hub_of(request)
    rtype = TYPES[request.url.path.rstrip("/").rsplit("/", 1)[-1]]
    q = request.query_params
    user = hub.user(request)
    filters = q.getlist("filter") + [x for x in (q.get("pipeline_tag"), q.get("library")) if x]
    if len(filters) > 64:
        raise BadRequest("too many filter parameters (at most 64)")
    repos = hub.store.list_repos(rtype, filters, q.get("author"), q.get("search"))
    repos = [r for r in hub.mirrors.hidden(repos) if hub.auth.can_read(user, r.ns, r.private)]
    if q.get("gated") in ("true", "false"):
        repos = [r for r in repos if bool(r.gated) == (q["gated"] == "true")]
    sort = q.get("sort") or "lastModified"
    repos.sort(
        key=_SORT_KEYS.get(sort, _SORT_KEYS["lastModified"]), reverse=q.get("direction", "-1") == "-1" and sort != "id"
    )
    limit = int_param(request, "limit", hub.page_size, low=1)
    page = min(limit, hub.page_size)
    start = int_param(request, "cursor", 0)
    full = flag(request, "full") or flag(request, "cardData")
    items = []
    for r in repos[start : start + page]:
        item = {
            "_id": f"{r.id:024x}",
            "id": r.repo_id,
            "author": r.ns,
            "private": r.private,
            "gated": r.gated or False,
            "tags": r.tags,
            "downloads": 0,
            "likes": 0,
            "lastModified": iso(r.modified),
            "createdAt": iso(r.created),
            "library_name": r.card.get("library_name"),
            "pipeline_tag": r.card.get("pipeline_tag"),
        }
        if full:
            item["cardData"] = r.card
            item["sha"] = hub.store.resolve(r, "main")
        items.append(item)
    headers = {}
    if start + page < len(repos) and (q.get("limit") is None or limit > page):
        params = [(k, v) for k, v in q.multi_items() if k != "cursor"] + [("cursor", str(start + page))]
        headers["Link"] = f'<{hub.base(request)}{request.url.path}?{urlencode(params)}>; rel="next"'
    return JSONResponse(items, headers=headers)


def repo_json(request: Request, repo: Repo, sha: str, blobs: bool) -> dict:
    """A repo's info at commit ``sha`` as the Hub answers ``model_info``/``dataset_info``."""
    store = hub_of(request).store
    tree = store.tree(sha)
    card, tags = repo.card, repo.tags
    if sha != store.resolve(repo, "main"):
        card = store.card(tree)
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
        "_id": f"{repo.id:024x}",
        "id": repo.repo_id,
        "author": repo.ns,
        "sha": sha,
        "private": repo.private,
        "disabled": False,
        "gated": repo.gated or False,
        "downloads": 0,
        "likes": 0,
        "tags": tags,
        "cardData": card,
        "library_name": card.get("library_name"),
        "pipeline_tag": card.get("pipeline_tag"),
        "siblings": siblings,
        "lastModified": iso(repo.modified),
        "createdAt": iso(repo.created),
        "usedStorage": sum(e.size for e in tree.values()),
    }


async def repo_info(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request))
    sha = hub.store.resolve(repo, check_revision(param(request, "rev", "main")))
    return JSONResponse(repo_json(request, repo, sha, flag(request, "blobs")))


async def settings(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request), write=True)
    req = await body(request, P.Settings)
    if req.visibility in ("private", "public"):
        hub.store.set_private(repo, req.visibility == "private")
    elif req.private is not None:
        hub.store.set_private(repo, req.private)
    if "gated" in req.model_fields_set:
        hub.store.set_gated(repo, req.gated or None)
    return JSONResponse({})


async def auth_check(request: Request):
    """200 when the caller may read the repo's files (and write them, for .../auth-check/write)."""
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request), write=request.url.path.endswith("/write"))
    hub.check_gate(request, repo)
    return JSONResponse({})


async def storage_list(request: Request):
    """The caller's repos (or an organisation's) with the bytes their main branch holds."""
    hub = hub_of(request)
    user = hub.user(request)  # it lists private repos too: members only, in every mode
    if user is None:
        raise Unauthorized("You must be authenticated to list repositories")
    ns = param(request, "org", user)
    if not hub.auth.member(user, check_name(ns, "namespace")):
        raise Forbidden(f"You are not a member of {ns}")
    out = []
    for rtype in TYPES.values():
        for r in hub.store.list_repos(rtype, [], ns, None):
            used = sum(e.size for e in hub.store.tree(hub.store.resolve(r, "main")).values())
            out.append(
                {
                    "id": r.repo_id,
                    "type": r.type,
                    "updatedAt": iso(r.modified),
                    "visibility": "private" if r.private else "public",
                    "storage": used,
                    "storagePercent": 0,
                }
            )
    return JSONResponse(out)


async def user_likes(request: Request):
    """Nobody has liked anything: this registry has no likes."""
    check_name(param(request, "user"), "user name")
    return JSONResponse([])


async def no_such_repo(request: Request):
    """A repo id without a namespace, which this registry cannot hold; or an endpoint it does not have, on a
    repo the caller can read (a plain 404 then: saying the repo does not exist would be wrong)."""
    hub = hub_of(request)
    rest = request.path_params.get("rest", "")
    if "t" in request.path_params and rest:
        name, _, _ = rest.partition("/")
        try:
            hub.repo_named(request, rtype_of(request), param(request, "name"), unescape(name))
        except (RepoNotFound, BadRequest):
            raise RepoNotFound() from None
        raise NotFound(f"{request.method} {request.url.path[:200]} is not an endpoint of this registry")
    raise RepoNotFound()


ROUTES = [
    Route("/api/whoami-v2", whoami, methods=["GET"]),
    Route("/api/repos/create", create_repo, methods=["POST"]),
    Route("/api/repos/delete", delete_repo, methods=["DELETE"]),
    Route("/api/repos/move", move_repo, methods=["POST"]),
    Route("/api/validate-yaml", validate_yaml, methods=["POST"]),
    Route("/api/models", list_repos, methods=["GET"]),
    Route("/api/datasets", list_repos, methods=["GET"]),
    Route("/api/spaces", list_repos, methods=["GET"]),
    Route("/api/settings/repositories", storage_list, methods=["GET"]),
    Route("/api/organizations/{org}/settings/repositories", storage_list, methods=["GET"]),
    Route("/api/users/{user}/likes", user_likes, methods=["GET"]),
    Route(R, repo_info, methods=["GET"]),
    Route(R + "/revision/{rev}", repo_info, methods=["GET"]),
    Route(R + "/settings", settings, methods=["PUT"]),
    Route(R + "/auth-check", auth_check, methods=["GET"]),
    Route(R + "/auth-check/write", auth_check, methods=["GET"]),
]

# Last, after every other module's routes: ids without a namespace ('gpt2'), which the Hub still serves
# and this registry cannot hold. huggingface_hub's repo_exists/file_exists need RepoNotFound here.
FALLBACK_ROUTES = [
    Route("/api/{t}/{name}", no_such_repo, methods=["GET", "HEAD", "POST", "PUT", "DELETE"]),
    Route("/api/{t}/{name}/{rest:anypath}", no_such_repo, methods=["GET", "HEAD", "POST", "PUT", "DELETE"]),
    Route("/datasets/{name}/resolve/{rest:anypath}", no_such_repo, methods=["GET", "HEAD"]),
    Route("/{name}/resolve/{rest:anypath}", no_such_repo, methods=["GET", "HEAD"]),
]
