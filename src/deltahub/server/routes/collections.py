"""Collections in the Hub's JSON shapes: create/get/update/delete, items added, moved, annotated, removed;
listed by owner or by an item they hold.

Visibility: a private collection is seen only by members of its namespace (others get 404, as for a
missing one), and an item is listed only when the caller may see what it points at, so a collection
never reveals a private repo. Changing a collection needs write access to its namespace; adding a
repo needs read access to the repo.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import payloads as P
from ..collection_store import Collection, Item
from ..context import TYPES, body, hub_of, int_param, iso, param
from ..errors import Forbidden, NotFound, RepoNotFound
from ..paths import check_name
from ..storage import Repo

C = "/api/collections/{ns}/{slug}"
_KINDS = {v: k for k, v in TYPES.items()}  # model -> models


def _visible(request: Request, c: Collection | None) -> Collection:
    hub = hub_of(request)
    if c is None or not hub.auth.can_read(hub.user(request), c.ns, c.private):
        raise NotFound("Collection not found")
    return c


def _collection(request: Request, write: bool = False) -> Collection:
    hub = hub_of(request)
    c = _visible(request, hub.collections.get(param(request, "slug")))
    if write and not hub.auth.can_write(hub.user(request), c.ns):
        raise Forbidden(f"You don't have the rights to change collections of {c.ns}")
    return c


def _repo_of(request: Request, item: Item) -> Repo | None:
    hub = hub_of(request)
    repo = hub.store.repo_by_id(int(item.target))
    if repo is None or not hub.auth.can_read(hub.user(request), repo.ns, repo.private):
        return None
    return repo


def _item_json(request: Request, item: Item) -> dict | None:
    """An item as the Hub lists it, or None when the caller may not see what it points at."""
    hub = hub_of(request)
    out = {"_id": item.id, "position": item.position, "type": item.kind}
    if item.note is not None:
        out["note"] = {"text": item.note, "html": item.note}
    if item.kind == "collection":
        c = hub.collections.get(item.target)
        if c is None or not hub.auth.can_read(hub.user(request), c.ns, c.private):
            return None
        return {**out, "id": c.id, "slug": c.slug, "title": c.title, "private": c.private}
    repo = _repo_of(request, item)
    if repo is None:
        return None
    return {
        **out,
        "id": repo.repo_id,
        "author": repo.ns,
        "private": repo.private,
        "gated": repo.gated or False,
        "lastModified": iso(repo.modified),
        "repoType": repo.type,
    }


def collection_json(request: Request, c: Collection, limit: int | None = None) -> dict:
    items = [j for item in hub_of(request).collections.items(c) if (j := _item_json(request, item)) is not None]
    for position, item in enumerate(items):  # positions among what this caller sees
        item["position"] = position
    auth = hub_of(request).auth
    owner_type = "org" if any(c.ns in orgs for orgs in auth.orgs.values()) else "user"
    return {
        "slug": c.slug,
        "title": c.title,
        "description": c.description,
        "owner": {"name": c.ns, "type": owner_type, "fullname": auth.fullname(c.ns)},
        "items": items[:limit] if limit is not None else items,
        "lastUpdated": iso(c.updated),
        "position": c.position,
        "private": c.private,
        "theme": c.theme,
        "upvotes": 0,
        "isUpvotedByUser": False,
        "gating": False,
    }


async def create(request: Request):
    hub = hub_of(request)
    user = hub.signed_in(request, "create a collection")
    req = await body(request, P.CreateCollection)
    ns = check_name(req.namespace, "namespace") if req.namespace is not None else user
    if not hub.auth.can_write(user, ns):
        raise Forbidden(f"You don't have the rights to create a collection under {ns}")
    c = hub.collections.create(ns, req.title.strip(), req.description, req.private)
    return JSONResponse(collection_json(request, c))


async def get(request: Request):
    return JSONResponse(collection_json(request, _collection(request)))


async def update(request: Request):
    hub = hub_of(request)
    c = _collection(request, write=True)
    req = await body(request, P.UpdateCollection)
    c = hub.collections.update(
        c,
        title=req.title.strip() if req.title else None,
        description=req.description,
        private=req.private,
        theme=req.theme,
        position=req.position,
    )
    return JSONResponse({"success": True, "data": collection_json(request, c)})


async def delete(request: Request):
    hub = hub_of(request)
    hub.collections.delete(_collection(request, write=True))
    return JSONResponse({})


async def add_item(request: Request):
    hub = hub_of(request)
    c = _collection(request, write=True)
    req = await body(request, P.AddCollectionItem)
    kind, target = req.item.type, None
    if kind == "collection":
        target = _visible(request, hub.collections.get(req.item.id)).id
    elif kind in _KINDS:
        ns, _, name = req.item.id.partition("/")
        try:
            repo = hub.repo_named(request, kind, check_name(ns, "namespace"), check_name(name, "repo name"))
        except RepoNotFound:
            raise NotFound(f"{kind} {req.item.id[:200]} not found") from None
        target = str(repo.id)
    else:
        raise NotFound(f"{kind} {req.item.id[:200]} not found: this registry holds no {kind}s")
    hub.collections.add_item(c, kind, target, req.note)
    return JSONResponse(collection_json(request, hub.collections.get(c.id)))


async def update_item(request: Request):
    hub = hub_of(request)
    c = _collection(request, write=True)
    req = await body(request, P.UpdateCollectionItem)
    hub.collections.update_item(c, param(request, "item"), req.note, req.position)
    return JSONResponse({"success": True})


async def delete_item(request: Request):
    hub = hub_of(request)
    c = _collection(request, write=True)
    hub.collections.delete_item(c, param(request, "item"))
    return JSONResponse({"success": True})


async def list_collections(request: Request):
    """Visible collections, by ``owner`` and/or holding ``item`` ('models/ns/name', 'collections/<slug>')."""
    hub = hub_of(request)
    q = request.query_params
    item = None
    if q.get("item"):
        kind, _, ident = q["item"].partition("/")
        found = None
        if kind in TYPES and ident.count("/") == 1:
            repo = hub.store.get_repo(TYPES[kind], *ident.split("/"))
            if repo is not None and hub.auth.can_read(hub.user(request), repo.ns, repo.private):
                found = (TYPES[kind], str(repo.id))
        elif kind == "collections" and (c := hub.collections.get(ident)) is not None:
            found = ("collection", c.id)
        if found is None:
            return JSONResponse([])  # an item nobody (or not this caller) can see is in no visible collection
        item = found
    user = hub.user(request)
    found_collections = [
        c for c in hub.collections.list(q.get("owner"), item) if hub.auth.can_read(user, c.ns, c.private)
    ]
    if q.get("sort") == "trending" or q.get("sort") == "upvotes":
        found_collections.sort(key=lambda c: c.updated, reverse=True)
    limit = int_param(request, "limit", 100, low=1)
    listed = [collection_json(request, c, limit=4) for c in found_collections[:limit]]
    for c in listed:  # a listing gives positions by order (huggingface_hub sets them itself)
        del c["position"]
    return JSONResponse(listed)


ROUTES = [
    Route("/api/collections", list_collections, methods=["GET"]),
    Route("/api/collections", create, methods=["POST"]),
    Route(C, get, methods=["GET"]),
    Route(C, update, methods=["PATCH"]),
    Route(C, delete, methods=["DELETE"]),
    Route(C + "/items", add_item, methods=["POST"]),
    Route(C + "/items/{item}", update_item, methods=["PATCH"]),
    Route(C + "/items/{item}", delete_item, methods=["DELETE"]),
]
