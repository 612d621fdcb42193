"""Pages for a repo's pull requests and discussions, and for collections (the community API, for people).

Read-only: opening, commenting, merging stay with the API, the ``hf``/``deltahub`` CLIs. The rules are
the API's: a private repo's discussions answer 404 like the repo (``Pages.repo``); a private collection
is seen only by its namespace's members (404 otherwise, as for a missing one); an item is listed only
when the visitor may read what it points at. Comments are user content exactly like cards, so they go
through the card renderer and its link policy (``cardhtml``): nothing in one can run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ..collection_store import Collection
from ..errors import NotFound
from ..paths import check_name
from ..routes.discussions import HIDDEN
from ..storage import Repo, full_ref
from . import cardhtml, catalog, compose
from .params import one_of, page_of, query_text, repo_type, whole_number
from .session import Visitor

if TYPE_CHECKING:
    from .routes import Pages

STATUSES = ("open", "closed", "merged", "all")  # the list page's filter: open counts drafts, closed counts merged
KINDS = ("all", "pull_request", "discussion")
COLLECTION_CARDS_SHOWN = 4  # items previewed per collection on /collections, as the Hub's listing
COLLECTIONS_PAGE = 24  # collections a /collections page shows: a page stays fast (docs/measurements.md)


def diff_lines(lines: list[str]) -> list[tuple[str, str]]:
    """Unified-diff lines as (css class, line): added, removed, hunk header or file header."""
    out = []
    for line in lines:
        if line.startswith(("+++", "---", "diff --git", "Binary files", "... (diff cut)")):
            out.append(("file", line))
        else:
            out.append(({"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "ctx"), line))
    return out


class Community:
    """The discussion and collection pages, over the ``Pages`` they belong to (its store, auth, templates)."""

    def __init__(self, pages: Pages):
        self.pages = pages
        self.hub = pages.hub
        self.auth = pages.auth

    # -- what a repo page shows -----------------------------------------------------------------
    def counts(self, repo: Repo) -> dict[str, int]:
        """Open pull requests and open discussions of ``repo`` (for its tab)."""
        opened = self.hub.discussions.list(repo, status="open")
        prs = sum(1 for d in opened if d.is_pr)
        return {"prs": prs, "discussions": len(opened) - prs}

    def holding(self, repo: Repo, user: str | None) -> list[Collection]:
        """The collections the visitor may see that hold ``repo``."""
        return [
            c
            for c in self.hub.collections.list(item=(repo.type, str(repo.id)))
            if self.auth.can_read(user, c.ns, c.private)
        ]

    # -- discussions ----------------------------------------------------------------------------
    def discussions(self, request: Request, who: Visitor) -> Response:
        ctx = self.pages._context(request, who, repo_type(request), "discussions")
        status = one_of(request, "status", STATUSES, "open")
        kind = one_of(request, "type", KINDS, "all")
        found = self.hub.discussions.list(
            ctx["repo"],
            None if kind == "all" else kind,
            "closed" if status == "merged" else (None if status == "all" else status),
        )
        if status == "merged":
            found = [d for d in found if d.status == "merged"]
        return self.pages.render(
            request,
            who,
            "discussions.html",
            found=found,
            state=status,
            kind=kind,
            statuses=STATUSES,
            kinds=KINDS,
            **ctx,
        )

    def discussion(self, request: Request, who: Visitor) -> Response:
        ctx = self.pages._context(request, who, repo_type(request), "discussions")
        repo = ctx["repo"]
        d = self.hub.discussions.get(repo, request.path_params["num"])
        head = self.pages.store.resolve(repo, full_ref("pr", str(d.num))) if d.is_pr else ctx["sha"]
        links = cardhtml.RepoLinks(page_of(repo.type, repo.repo_id), head)
        events = []
        for e in self.hub.discussions.events(repo, d.num):
            item: dict[str, Any] = {"type": e.type, "author": e.author, "created": e.created, "data": e.data}
            if e.type == "comment":
                hidden = bool(e.data.get("hidden"))
                item.update(
                    hidden=hidden,
                    edited=bool(e.data.get("edited")),
                    html=None if hidden else cardhtml.render_comment(e.data["latest"]["raw"], links),
                )
            events.append(item)
        diff = diff_lines(self.hub.discussions.diff(repo, d).splitlines()) if d.is_pr else []
        return self.pages.render(
            request,
            who,
            "discussion.html",
            d=d,
            events=events,
            diff=diff,
            head=head,
            pr_ref=full_ref("pr", str(d.num)) if d.is_pr else None,
            hidden_text=HIDDEN,
            **ctx,
        )

    # -- collections ----------------------------------------------------------------------------
    def _rows(self, user: str | None) -> dict[str, dict[str, Any]]:
        """The listing rows of the models and datasets the visitor may see (the home page's rule), by internal id
        as an item names them. From the listing's cache: reading and parsing each item's card per request would
        cost more than the page may take."""
        return {str(r["repo"].id): r for r in catalog.visible_rows(self.pages.listing, self.auth, user)}

    def _items(self, c: Collection, user: str | None, rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """The items of ``c`` the visitor may see (``rows``: ``_rows(user)``), in order: repos with their listing
        row, or collections. Spaces have no page here and are left out."""
        out = []
        for item in self.hub.collections.items(c):
            if item.kind == "collection":
                sub = self.hub.collections.get(item.target)
                if sub is not None and self.auth.can_read(user, sub.ns, sub.private):
                    out.append({"kind": "collection", "collection": sub, "note": item.note})
                continue
            row = rows.get(item.target)
            if row is not None:
                out.append({"kind": row["repo"].type, "repo": row["repo"], "row": row, "note": item.note})
        return out

    def collections(self, request: Request, who: Visitor) -> Response:
        owner = query_text(request, "owner").strip()
        if owner:
            check_name(owner, "namespace")
        shown = [
            c for c in self.hub.collections.list(owner=owner or None) if self.auth.can_read(who.user, c.ns, c.private)
        ]
        page = whole_number(request, "page", 1) or 1
        pages = max(1, -(-len(shown) // COLLECTIONS_PAGE))
        rows = self._rows(who.user)
        listed = [
            (c, self._items(c, who.user, rows)) for c in shown[(page - 1) * COLLECTIONS_PAGE : page * COLLECTIONS_PAGE]
        ]
        return self.pages.render(
            request,
            who,
            "collections.html",
            listed=listed,
            owner=owner,
            total=len(shown),
            page=page,
            pages=pages,
            shown_items=COLLECTION_CARDS_SHOWN,
        )

    def collection(self, request: Request, who: Visitor) -> Response:
        ns = check_name(request.path_params["ns"], "namespace")
        c = self.hub.collections.get(request.path_params["slug"])
        if c is None or c.ns.lower() != ns.lower() or not self.auth.can_read(who.user, c.ns, c.private):
            raise NotFound("Collection not found")
        items = self._items(c, who.user, self._rows(who.user))
        return self.pages.render(request, who, "collection.html", c=c, items=items, compose=_compose_links(items))


def _compose_links(items: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(base model, its adapter deltas in the collection) for each base: the compose page takes one base."""
    by_base: dict[str, list[str]] = {}
    for it in items:
        row = it.get("row")
        if row and row["kind"] == "adapter" and it["repo"].type == "model" and row["base"]:
            by_base.setdefault(row["base"], []).append(row["repo_id"])
    return [(base, ids[: compose.MAX_DELTAS]) for base, ids in sorted(by_base.items())]
