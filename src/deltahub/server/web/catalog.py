"""What the home page lists: every repo the visitor may read, as ``deltahub list`` rows, filtered,
sorted and grouped by base model; full-text search over names and cards.

Rows come from the store's per-repo card metadata and tags (one SQL query, no card parsing per
request); the row itself and the ``--min-pairs``/``--sort`` rules are :mod:`deltahub.listing`'s.
Card text for the full-text search is read once per repo head and kept (``CardText``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ...listing import delta_row, select_rows
from ..auth import Auth
from ..storage import Repo, Store

KINDS = ("all", "adapter", "merged", "dataset", "other")
PAGE_ROWS = 100
MAX_INDEXED_CHARS = 64 * 1024  # of each card: what the text search sees
MAX_CACHED_CHARS = 64 * 1024**2  # card text kept between searches, all repos together


@dataclass(frozen=True)
class Filters:
    """The home page's query, as ``deltahub list`` spells it (plus a text query, a kind and a page)."""

    q: str = ""
    base: str = ""
    family: str = ""
    min_pairs: int | None = None
    sort: str = "recent"
    kind: str = "all"
    author: str = ""
    page: int = 1


def row_of(repo: Repo) -> dict[str, Any]:
    row = delta_row(repo.repo_id, repo.card, repo.tags, repo.modified)
    bases = row["base"] if isinstance(row["base"], list) else [row["base"]]
    row.update(
        repo=repo,
        base=str(bases[0]) if bases and bases[0] is not None else None,
        kind=row["kind"] if row["kind"] in ("adapter", "merged", "dataset") else None,
    )
    block = repo.card.get("deltahub") if isinstance(repo.card.get("deltahub"), dict) else {}
    for side in ("chosen", "rejected"):
        ref = block.get(side)
        row[side] = str(ref["model"]) if isinstance(ref, dict) and ref.get("model") else None
    return row


class CardText:
    """Lower-cased name + card text per repo, refreshed when the repo's last change moves.

    Kept in a least-recently-used map bounded by total characters, so memory stays bounded on a
    registry of any size (a search over more cards than fit re-reads the rest from the store).
    """

    def __init__(self, store: Store, max_chars: int = MAX_CACHED_CHARS):
        self.store = store
        self.max_chars = max_chars
        self._text: OrderedDict[int, tuple[float, str]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def text(self, repo: Repo) -> str:
        with self._lock:
            hit = self._text.get(repo.id)
            if hit is not None and hit[0] == repo.modified:
                self._text.move_to_end(repo.id)
                return hit[1]
        entry = self.store.entry(self.store.resolve(repo, "main"), "README.md")
        card = b"" if entry is None else self.store.read_blob(entry.sha256, MAX_INDEXED_CHARS * 4)
        text = f"{repo.repo_id}\n{card.decode('utf-8', 'replace')[:MAX_INDEXED_CHARS]}".lower()
        with self._lock:
            old = self._text.pop(repo.id, None)
            self._chars += len(text) - (len(old[1]) if old else 0)
            self._text[repo.id] = (repo.modified, text)
            while self._chars > self.max_chars:
                self._chars -= len(self._text.popitem(last=False)[1][1])
        return text


class Listing:
    """Every repo's listing row, kept between requests and re-read only for repos whose stamp moved.

    Why: building every repo's row (its card JSON parsed, a row made) costs more than a page may take;
    reading the stamps is cheap (the figures: docs/measurements.md). Rows are shared: treat them as read-only.
    """

    REFRESH_ONE_BY_ONE = 64  # more stale repos than this: one query for all instead

    def __init__(self, store: Store):
        self.store = store
        self._rows: dict[int, tuple[tuple, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def rows(self) -> list[dict[str, Any]]:
        stamps = self.store.repo_stamps()
        with self._lock:
            cached = dict(self._rows)
        stale = [i for i, stamp in stamps.items() if i not in cached or cached[i][0] != stamp]
        if len(stale) > self.REFRESH_ONE_BY_ONE:
            fresh = [r for t in ("model", "dataset", "space") for r in self.store.list_repos(t, [], None, None)]
        else:
            fresh = [r for r in map(self.store.repo_by_id, stale) if r is not None]
        for repo in fresh:  # stamped from the row read, so a change racing this read is seen next time
            cached[repo.id] = ((repo.created, repo.modified, repo.private), row_of(repo))
        cached = {i: v for i, v in cached.items() if i in stamps}
        with self._lock:
            self._rows = cached
        return [row for _, row in cached.values() if row["repo"].type in ("model", "dataset")]  # no space pages


def visible_rows(listing: Listing, auth: Auth, user: str | None, author: str = "") -> list[dict[str, Any]]:
    mirrors = listing.store.mirror_ids()
    return [
        r
        for r in listing.rows()
        if auth.can_read(user, r["repo"].ns, r["repo"].private)
        and not (r["repo"].private and r["repo"].id in mirrors)
        and (not author or r["repo"].ns == author)
    ]


def private_mirror(store: Store, repo: Repo) -> bool:
    """A private repo read through from the upstream: only a token the upstream accepts may read it (the
    API checks that, see upstream.py); a browser session never can, so pages never show it."""
    return repo.private and store.mirror_of(repo) is not None


def _kind_ok(row: dict[str, Any], kind: str) -> bool:
    if kind == "all":
        return True
    if kind == "dataset":
        return row["repo"].type == "dataset"
    if kind == "other":
        return row["kind"] is None
    return row["kind"] == kind and row["repo"].type == "model"


def select(rows: list[dict[str, Any]], f: Filters, cards: CardText) -> list[dict[str, Any]]:
    """``rows`` matching ``f`` in ``f.sort`` order (the text query matches every word, anywhere)."""
    rows = [r for r in rows if _kind_ok(r, f.kind)]
    if f.base:
        rows = [r for r in rows if r["base"] == f.base]
    if f.family:
        rows = [r for r in rows if r["family"] == f.family]
    words = f.q.lower().split()
    if words:
        rows = [
            r
            for r in rows
            if all(w in r["repo_id"].lower() for w in words) or all(w in cards.text(r["repo"]) for w in words)
        ]
    return select_rows(rows, f.min_pairs, f.sort)


@dataclass
class Group:
    title: str
    kind: str  # "base" (deltas for a base model), "dataset" (pairs datasets) or "other"
    rows: list[dict[str, Any]]


def grouped(rows: list[dict[str, Any]]) -> list[Group]:
    """One page's rows grouped: deltas by base model, then pairs datasets, then other repos, each group
    in the order of its first row (so the sort order carries over)."""
    groups: dict[tuple[str, str], Group] = {}
    for r in rows:
        if r["repo"].type == "dataset":
            key = ("dataset", "Pairs datasets" if r["kind"] == "dataset" else "Other datasets")
        elif r["kind"] is None:
            key = ("other", "Other models")
        else:
            key = ("base", r["base"] or "(no base model)")
        groups.setdefault(key, Group(key[1], key[0], [])).rows.append(r)
    order = {"base": 0, "dataset": 1, "other": 2}
    return sorted(groups.values(), key=lambda g: order[g.kind])


def bases(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(base model, number of visible adapter deltas for it), most deltas first."""
    counts: dict[str, int] = {}
    for r in rows:
        if r["kind"] == "adapter" and r["repo"].type == "model" and r["base"]:
            counts[r["base"]] = counts.get(r["base"], 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
