"""Collections: a namespace's curated, ordered lists of repos (and of other collections), as on the Hub.

A collection is addressed by a slug, ``<namespace>/<title-as-slug>-<id>``; only the id at its end
identifies it, so an old slug keeps working after a rename. Items point at repos by their internal
id, so a moved repo stays in, and a deleted one leaves (storage.delete_repo).
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import time
from dataclasses import dataclass

from .errors import Conflict, NotFound
from .storage import Store

_ID = re.compile(r"[0-9a-f]{24}")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(title: str) -> str:
    return _NOT_SLUG.sub("-", title.lower()).strip("-")[:80].strip("-") or "collection"


@dataclass
class Collection:
    id: str
    ns: str
    title: str
    description: str | None
    private: bool
    theme: str
    position: int
    created: float
    updated: float

    @property
    def slug(self) -> str:
        return f"{self.ns}/{slugify(self.title)}-{self.id}"


@dataclass
class Item:
    id: str
    kind: str  # model | dataset | space | collection
    target: str  # a repo's internal id, or a collection's id
    note: str | None
    position: int


def _collection(row: sqlite3.Row) -> Collection:
    return Collection(
        row["id"],
        row["ns"],
        row["title"],
        row["description"],
        bool(row["private"]),
        row["theme"],
        row["position"],
        row["created"],
        row["updated"],
    )


def id_of(slug: str) -> str | None:
    """The collection id a slug ends with (None when it ends with anything else)."""
    tail = slug.rsplit("-", 1)[-1]
    return tail if _ID.fullmatch(tail) else None


class Collections:
    """Every collection of one store."""

    def __init__(self, store: Store):
        self.store = store

    def get(self, slug: str) -> Collection | None:
        cid = id_of(slug)
        if cid is None:
            return None
        row = self.store._db().execute("SELECT * FROM collections WHERE id=?", (cid,)).fetchone()
        return None if row is None else _collection(row)

    def by_title(self, ns: str, title: str) -> Collection | None:
        row = (
            self.store._db()
            .execute("SELECT * FROM collections WHERE ns=? COLLATE NOCASE AND title=?", (ns, title))
            .fetchone()
        )
        return None if row is None else _collection(row)

    def list(self, owner: str | None = None, item: tuple[str, str] | None = None) -> list[Collection]:
        """Collections of ``owner`` and/or holding ``item`` (kind, target), most recently updated first."""
        sql, args = "SELECT * FROM collections c WHERE 1=1", []
        if owner:
            sql += " AND c.ns=? COLLATE NOCASE"
            args.append(owner)
        if item is not None:
            sql += " AND c.id IN (SELECT collection FROM collection_items WHERE kind=? AND target=?)"
            args += list(item)
        return [_collection(r) for r in self.store._db().execute(sql + " ORDER BY c.updated DESC", args)]

    def create(self, ns: str, title: str, description: str | None, private: bool) -> Collection:
        if (same := self.by_title(ns, title)) is not None:
            raise Conflict(f"You already have a collection named '{title}'", extra={"slug": same.slug})
        now = time.time()
        cid = secrets.token_hex(12)
        with self.store._write() as db:
            position = db.execute("SELECT COUNT(*) FROM collections WHERE ns=? COLLATE NOCASE", (ns,)).fetchone()[0]
            db.execute(
                "INSERT INTO collections VALUES (?,?,?,?,?,?,?,?,?)",
                (cid, ns, title, description, int(private), "blue", position, now, now),
            )
        return self.get(cid)

    def update(self, c: Collection, **changes) -> Collection:
        """Set the given fields (title, description, private, theme, position) of ``c``."""
        fields = {k: (int(v) if isinstance(v, bool) else v) for k, v in changes.items() if v is not None}
        with self.store._write() as db:
            for key, value in fields.items():  # keys are the payload model's field names, never client strings
                db.execute(f"UPDATE collections SET {key}=? WHERE id=?", (value, c.id))
            db.execute("UPDATE collections SET updated=? WHERE id=?", (time.time(), c.id))
        return self.get(c.id)

    def delete(self, c: Collection) -> None:
        with self.store._write() as db:
            db.execute("DELETE FROM collection_items WHERE collection=?", (c.id,))
            db.execute("DELETE FROM collection_items WHERE kind='collection' AND target=?", (c.id,))
            db.execute("DELETE FROM collections WHERE id=?", (c.id,))

    # -- items ---------------------------------------------------------------------------------------
    def items(self, c: Collection) -> list[Item]:
        rows = self.store._db().execute(
            "SELECT id, kind, target, note, position FROM collection_items WHERE collection=? ORDER BY position",
            (c.id,),
        )
        return [Item(r["id"], r["kind"], r["target"], r["note"], r["position"]) for r in rows]

    def add_item(self, c: Collection, kind: str, target: str, note: str | None) -> Item:
        with self.store._write() as db:
            if db.execute(
                "SELECT 1 FROM collection_items WHERE collection=? AND kind=? AND target=?", (c.id, kind, target)
            ).fetchone():
                raise Conflict("Item already in the collection")
            position = db.execute("SELECT COUNT(*) FROM collection_items WHERE collection=?", (c.id,)).fetchone()[0]
            item = Item(secrets.token_hex(12), kind, target, note, position)
            db.execute(
                "INSERT INTO collection_items VALUES (?,?,?,?,?,?,?)",
                (item.id, c.id, kind, target, note, position, time.time()),
            )
            db.execute("UPDATE collections SET updated=? WHERE id=?", (time.time(), c.id))
        return item

    def update_item(self, c: Collection, item_id: str, note: str | None, position: int | None) -> None:
        items = self.items(c)
        found = [i for i in items if i.id == item_id]
        if not found:
            raise NotFound(f"Item {item_id[:40]} not found in the collection")
        if position is not None:  # move it, the others keep their order
            items.remove(found[0])
            items.insert(min(position, len(items)), found[0])
        with self.store._write() as db:
            if note is not None:
                db.execute("UPDATE collection_items SET note=? WHERE id=?", (note, item_id))
            _renumber(db, items)
            db.execute("UPDATE collections SET updated=? WHERE id=?", (time.time(), c.id))

    def delete_item(self, c: Collection, item_id: str) -> None:
        items = [i for i in self.items(c) if i.id != item_id]
        with self.store._write() as db:
            if db.execute("DELETE FROM collection_items WHERE id=? AND collection=?", (item_id, c.id)).rowcount == 0:
                raise NotFound(f"Item {item_id[:40]} not found in the collection")
            _renumber(db, items)
            db.execute("UPDATE collections SET updated=? WHERE id=?", (time.time(), c.id))


def _renumber(db: sqlite3.Connection, items: list[Item]) -> None:
    """Positions 0, 1, ... in the order of ``items``."""
    db.executemany("UPDATE collection_items SET position=? WHERE id=?", [(n, i.id) for n, i in enumerate(items)])
