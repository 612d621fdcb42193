"""Curated lists of deltas as Hub collections (the public Hub's and the embedded registry's API).

A collection is what a curator vouches for: ``add`` validates a delta before it goes in (a broken delta
is refused with the failing checks), and ``deltahub compose --collection SLUG`` composes from its items.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..endpoint import Endpoint, api
from ..errors import InputError
from .hubops import parse_spec, repo_type_of
from .network import check_repo_id, remote_calls

_SLUG = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+-[0-9a-f]{6,}$")


@dataclass
class Item:
    repo_id: str
    kind: str  # "model" | "dataset"
    note: str | None
    object_id: str


def check_slug(slug: str) -> str:
    """A collection slug is ``OWNER/TITLE-ID`` (as the Hub prints it); refuse anything else before a request."""
    if not _SLUG.match(slug or ""):
        raise InputError(
            f"'{slug}' is not a collection slug",
            "use OWNER/TITLE-ID as printed by 'deltahub collection create' or 'collection list'",
        )
    return slug


def _hub_call(hub, what: str, target: str):
    return remote_calls(hub, target, what, missing="check the slug with: deltahub collection list --owner NS")


def create(
    title: str,
    namespace: str | None = None,
    description: str | None = None,
    private: bool = False,
    endpoint: Endpoint | None = None,
) -> str:
    """Create a collection (idempotent on its title) and return its slug."""
    if not title.strip():
        raise InputError("a collection needs a title", "pass a short title, e.g. 'Qwen3-8B reasoning deltas'")
    hub = api(endpoint)
    with _hub_call(hub, f"creating collection {title!r}", namespace or "your namespace") as net:
        return net(
            lambda: hub.create_collection(
                title, namespace=namespace, description=description, private=private, exists_ok=True
            )
        ).slug


def add(slug: str, repo: str, note: str | None = None, validate: bool = True, endpoint: Endpoint | None = None) -> Item:
    """Add a published delta (validated first, pinned revisions are not allowed: a collection lists repos)."""
    from .validate import ValidationFailed
    from .validate import validate as validate_delta

    check_slug(slug)
    spec = parse_spec(repo)
    check_repo_id(spec.repo_id)
    if spec.revision:
        raise InputError(f"{repo}: a collection lists repos, not revisions", f"add {spec.repo_id}")
    hub = api(endpoint)
    kind = repo_type_of(spec, hub)
    if validate:
        report = validate_delta(spec.repo_id, endpoint=endpoint)
        if not report.ok:
            raise ValidationFailed(
                report,
                f"not added to {slug}",
                "ask its author to fix it (deltahub validate REPO), or add it with --no-validate",
            )
    with _hub_call(hub, f"adding {repo} to {slug}", slug) as net:
        col = net(lambda: hub.add_collection_item(slug, spec.repo_id, kind, note=note, exists_ok=True))
    return next(i for i in _items(col) if i.repo_id == spec.repo_id)


def remove(slug: str, repo: str, endpoint: Endpoint | None = None) -> bool:
    """Remove ``repo`` from the collection; False when it was not in it."""
    check_slug(slug)
    hub = api(endpoint)
    item = next((i for i in items(slug, endpoint) if i.repo_id == repo), None)
    if item is None:
        return False
    with _hub_call(hub, f"removing {repo} from {slug}", slug) as net:
        net(lambda: hub.delete_collection_item(slug, item.object_id, missing_ok=True))
    return True


def show(slug: str, endpoint: Endpoint | None = None) -> dict[str, Any]:
    """``{"slug", "title", "owner", "description", "private", "items": [Item]}``."""
    check_slug(slug)
    hub = api(endpoint)
    with _hub_call(hub, f"reading collection {slug}", slug) as net:
        col = net(lambda: hub.get_collection(slug))
    return {
        "slug": col.slug,
        "title": col.title,
        "owner": getattr(col, "owner", None),
        "description": col.description,
        "private": col.private,
        "items": _items(col),
    }


def items(slug: str, endpoint: Endpoint | None = None) -> list[Item]:
    return show(slug, endpoint)["items"]


def list_collections(
    owner: str | None = None, item: str | None = None, endpoint: Endpoint | None = None
) -> list[dict[str, Any]]:
    """Collections by owner and/or holding a repo: ``{"slug", "title", "items"}`` (item count)."""
    hub = api(endpoint)
    target = owner or item or "collections"
    with _hub_call(hub, "listing collections", target) as net:
        cols = net(lambda: list(hub.list_collections(owner=owner, item=f"models/{item}" if item else None)))
    return [{"slug": c.slug, "title": c.title, "items": len(c.items)} for c in cols]


def delta_repos(slug: str, endpoint: Endpoint | None = None) -> list[str]:
    """The model repos (adapters) of a collection, in its order: compose's candidates."""
    return [i.repo_id for i in items(slug, endpoint) if i.kind == "model"]


def _items(col) -> list[Item]:
    return [
        Item(repo_id=i.item_id, kind=i.item_type, note=i.note, object_id=i.item_object_id)
        for i in sorted(col.items, key=lambda i: i.position)
        if i.item_type in ("model", "dataset")
    ]
