"""Refs: the list of branches, tags and pull requests; creating and deleting branches and tags."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import payloads as P
from ..context import body, flag, hub_of, param, rtype_of
from ..errors import BadRequest, Forbidden
from ..paths import check_revision
from ..storage import full_ref

R = "/api/{t:repotype}/{ns}/{name}"


async def refs(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request))
    r = hub.store.refs(repo)

    def listed(kind: str) -> list[dict]:
        return [{"name": n, "ref": full_ref(kind, n), "targetCommit": t} for n, t in sorted(r[kind].items())]

    out = {"branches": listed("branch"), "tags": listed("tag"), "converts": []}
    if flag(request, "include_prs"):
        out["pullRequests"] = sorted(listed("pr"), key=lambda x: int(x["name"]))
    return JSONResponse(out)


def _branch_name(request: Request) -> str:
    name = check_revision(param(request, "branch"), "branch name")
    if name.startswith("refs/"):
        raise BadRequest(f"Invalid reference for a branch: {name} (refs/... names are the Hub's own)")
    return name


async def branch(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request), write=True)
    name = _branch_name(request)
    if request.method == "DELETE":
        if name == "main":
            raise Forbidden("Cannot delete refs/heads/main: it is the default branch")
        hub.store.set_ref(repo, "branch", name, None)
        return JSONResponse({})
    req = await body(request, P.Branch)
    start = hub.store.resolve(repo, req.startingPoint or "main")
    if flag(request, "exist_ok") and name in hub.store.refs(repo)["branch"]:
        return JSONResponse({})
    hub.store.set_ref(repo, "branch", name, start, must_not_exist=True)
    return JSONResponse({})


async def tag(request: Request):
    hub = hub_of(request)
    repo = hub.repo(request, rtype_of(request), write=True)
    if request.method == "DELETE":
        hub.store.set_ref(repo, "tag", check_revision(param(request, "rev"), "tag"), None)
        return JSONResponse({})
    rev = check_revision(param(request, "rev"))
    req = await body(request, P.Tag)
    target = hub.store.resolve(repo, rev)  # a missing revision is reported before a bad tag name, as on the Hub
    name = check_revision(req.tag, "tag name")
    if name.startswith("refs/"):
        raise BadRequest(f"Invalid reference for a tag: {name}")
    hub.store.set_ref(repo, "tag", name, target, must_not_exist=True)
    return JSONResponse({})


ROUTES = [
    Route(R + "/refs", refs, methods=["GET"]),
    Route(R + "/branch/{branch}", branch, methods=["POST", "DELETE"]),
    Route(R + "/tag/{rev}", tag, methods=["POST", "DELETE"]),
]
