"""Commit trees stored incrementally: each commit keeps only the files it changed, on top of a snapshot.

Why: storing every commit's whole file list made a 1-file commit on a 50,000-file repo cost 9.1 MiB
of database. Here a commit writes one row per changed path (``changed_files``); a full file list
(``snapshot_files``) is written only when the chain since the last snapshot has cost as many rows
as the tree has files. Amortised, a commit costs O(files changed + 1) rows, and reading a tree
costs at most about twice its size. Reads go through a small LRU cache of materialised trees
(commits never change, so the cache is never stale).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import NamedTuple

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS commits (
      sha TEXT PRIMARY KEY, repo INTEGER NOT NULL, parent TEXT, base TEXT NOT NULL, cost INTEGER NOT NULL,
      files INTEGER NOT NULL, title TEXT, message TEXT, author TEXT, date REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS commits_repo ON commits(repo)",
    """CREATE TABLE IF NOT EXISTS snapshot_files (
      snapshot TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, oid TEXT NOT NULL,
      lfs INTEGER NOT NULL, PRIMARY KEY (snapshot, path)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS changed_files (
      commit_sha TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT, size INTEGER, oid TEXT, lfs INTEGER,
      PRIMARY KEY (commit_sha, path)) WITHOUT ROWID""",
)
# A commit's own weight in the snapshot rule: bounds the parent chain a read walks to files/COMMIT_COST.
COMMIT_COST = 4
SNAPSHOT_MIN_COST = 1000
CACHE_FILES = 200_000  # file entries kept in materialised trees (about 60 MB at most)

_CHAIN = """WITH RECURSIVE chain(sha, depth) AS (
  SELECT sha, 0 FROM commits WHERE sha = :sha AND sha != :base
  UNION ALL
  SELECT c.parent, chain.depth + 1 FROM chain JOIN commits c ON c.sha = chain.sha WHERE c.parent != :base)"""


class Entry(NamedTuple):
    """One file of a tree: content sha256, size, the git oid the Hub reports, and whether it is LFS."""

    sha256: str
    size: int
    oid: str
    lfs: bool


Tree = Mapping[str, Entry]


def _entry(row: sqlite3.Row) -> Entry:
    return Entry(row["sha256"], row["size"], row["oid"], bool(row["lfs"]))


class TreeCache:
    """Materialised trees by commit sha, least recently used first out, bounded by total file entries."""

    def __init__(self, max_files: int = CACHE_FILES):
        self.max_files = max_files
        self._trees: OrderedDict[str, dict[str, Entry]] = OrderedDict()
        self._files = 0
        self._lock = threading.Lock()

    def get(self, sha: str) -> dict[str, Entry] | None:
        with self._lock:
            tree = self._trees.get(sha)
            if tree is not None:
                self._trees.move_to_end(sha)
            return tree

    def put(self, sha: str, tree: dict[str, Entry]) -> None:
        if len(tree) > self.max_files:
            return
        with self._lock:
            if sha in self._trees:
                return
            self._trees[sha] = tree
            self._files += len(tree)
            while self._files > self.max_files:
                _, old = self._trees.popitem(last=False)
                self._files -= len(old)


def read_tree(db: sqlite3.Connection, sha: str, cache: TreeCache | None = None) -> dict[str, Entry]:
    """The full file list of commit ``sha`` (treat it as read-only: it may be shared through the cache)."""
    if cache is not None and (tree := cache.get(sha)) is not None:
        return tree
    base = db.execute("SELECT base FROM commits WHERE sha=?", (sha,)).fetchone()["base"]
    tree = {
        r["path"]: _entry(r)
        for r in db.execute("SELECT path, sha256, size, oid, lfs FROM snapshot_files WHERE snapshot=?", (base,))
    }
    for r in db.execute(
        _CHAIN
        + """SELECT f.path, f.sha256, f.size, f.oid, f.lfs FROM chain
                        JOIN changed_files f ON f.commit_sha = chain.sha ORDER BY chain.depth DESC""",
        {"sha": sha, "base": base},
    ):
        if r["sha256"] is None:
            tree.pop(r["path"], None)
        else:
            tree[r["path"]] = _entry(r)
    if cache is not None:
        cache.put(sha, tree)
    return tree


def read_entry(db: sqlite3.Connection, sha: str, path: str, cache: TreeCache | None = None) -> Entry | None:
    """One file of commit ``sha`` without materialising the tree (what resolve needs)."""
    if cache is not None and (tree := cache.get(sha)) is not None:
        return tree.get(path)
    base = db.execute("SELECT base FROM commits WHERE sha=?", (sha,)).fetchone()["base"]
    r = db.execute(
        _CHAIN
        + """SELECT f.sha256, f.size, f.oid, f.lfs FROM chain
                   JOIN changed_files f ON f.commit_sha = chain.sha AND f.path = :path ORDER BY chain.depth LIMIT 1""",
        {"sha": sha, "base": base, "path": path},
    ).fetchone()
    if r is None:
        r = db.execute(
            "SELECT sha256, size, oid, lfs FROM snapshot_files WHERE snapshot=? AND path=?", (base, path)
        ).fetchone()
    return None if r is None or r["sha256"] is None else _entry(r)


def write_commit(
    db: sqlite3.Connection,
    *,
    sha: str,
    repo: int,
    parent: str | None,
    tree: Tree,
    changes: Mapping[str, Entry | None],
    title: str,
    message: str,
    author: str,
    date: float,
) -> None:
    """Insert commit ``sha`` whose full tree is ``tree`` and which differs from ``parent`` by ``changes``."""
    base, cost = sha, 0
    if parent is not None:
        prev = db.execute("SELECT base, cost FROM commits WHERE sha=?", (parent,)).fetchone()
        cost = prev["cost"] + len(changes) + COMMIT_COST
        if cost <= max(SNAPSHOT_MIN_COST, len(tree)):
            base = prev["base"]
    if base == sha:
        cost = 0
        db.executemany(
            "INSERT INTO snapshot_files VALUES (?,?,?,?,?,?)",
            ((sha, p, e.sha256, e.size, e.oid, int(e.lfs)) for p, e in tree.items()),
        )
    else:
        db.executemany(
            "INSERT INTO changed_files VALUES (?,?,?,?,?,?)",
            ((sha, p, *((e.sha256, e.size, e.oid, int(e.lfs)) if e else (None,) * 4)) for p, e in changes.items()),
        )
    db.execute(
        "INSERT INTO commits VALUES (?,?,?,?,?,?,?,?,?,?)",
        (sha, repo, parent, base, cost, len(tree), title, message, author, date),
    )


def diff(before: Tree, after: Tree) -> dict[str, Entry | None]:
    """Paths whose entry differs (None: deleted)."""
    out: dict[str, Entry | None] = {p: e for p, e in after.items() if before.get(p) != e}
    out.update({p: None for p in before if p not in after})
    return out


def delete_repo_history(db: sqlite3.Connection, repo: int) -> None:
    db.execute("DELETE FROM changed_files WHERE commit_sha IN (SELECT sha FROM commits WHERE repo=?)", (repo,))
    db.execute("DELETE FROM snapshot_files WHERE snapshot IN (SELECT sha FROM commits WHERE repo=?)", (repo,))
    db.execute("DELETE FROM commits WHERE repo=?", (repo,))
