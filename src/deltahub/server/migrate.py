"""Schema versions of registry.db, and the migration of stores written by older versions.

Version 0 (before ``PRAGMA user_version`` was set) kept each commit's whole tree as JSON in
``commits.tree``; version 1 keeps incremental trees (history.py) and which repos hold which
objects (``repo_objects``); version 2 adds ``mirrors`` (repos read through from an upstream Hub,
see upstream.py), created empty; version 3 adds discussions and pull requests, collections, the ``gated``
setting, old names of moved repos and a case-insensitive index of repo ids; version 4 adds the Xet tables
(xorbs, their chunks and file reconstructions, see xet/schema.py); version 5 adds ``quota_charges``
(bytes each user stored in repos it cannot write, see quota.py), created empty. Every step only adds tables,
indexes and a nullable column, so one idempotent pass brings any older version to the latest. Migration
runs once, inside the first writer's transaction, so a crash leaves the old store untouched and a second
process waits and then finds it done.
"""

from __future__ import annotations

import json
import sqlite3

from . import history, quota
from .history import Entry
from .limits import MAX_CARD_JSON_BYTES
from .xet import schema as xet_schema

SCHEMA_VERSION = 5

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS repos (
      id INTEGER PRIMARY KEY, type TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
      private INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, modified REAL NOT NULL,
      card TEXT NOT NULL DEFAULT '{}', tags TEXT NOT NULL DEFAULT '[]', gated TEXT, UNIQUE(type, ns, name))""",
    "CREATE INDEX IF NOT EXISTS repos_nocase ON repos(type, ns COLLATE NOCASE, name COLLATE NOCASE)",
    """CREATE TABLE IF NOT EXISTS refs (
      repo INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, target TEXT NOT NULL,
      PRIMARY KEY(repo, kind, name))""",
    "CREATE TABLE IF NOT EXISTS repo_tags (repo INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY KEY(repo, tag))",
    "CREATE INDEX IF NOT EXISTS repo_tags_tag ON repo_tags(tag)",
    # which repos hold which objects: uploaded through the repo's LFS ticket (committed=0) or in a commit (1)
    """CREATE TABLE IF NOT EXISTS repo_objects (
      repo INTEGER NOT NULL, sha256 TEXT NOT NULL, committed INTEGER NOT NULL, PRIMARY KEY (repo, sha256))
      WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS repo_objects_sha ON repo_objects(sha256)",
    # read-only mirrors of upstream repos (upstream.py): the repo, and the upstream it came from
    "CREATE TABLE IF NOT EXISTS mirrors (repo INTEGER PRIMARY KEY, upstream TEXT NOT NULL)",
    *history.SCHEMA,
    # discussions and pull requests (a pull request's branch is the ref ('pr', num))
    """CREATE TABLE IF NOT EXISTS discussions (
      repo INTEGER NOT NULL, num INTEGER NOT NULL, title TEXT NOT NULL, author TEXT NOT NULL, is_pr INTEGER NOT NULL,
      status TEXT NOT NULL, created REAL NOT NULL, target TEXT, base TEXT, merge_commit TEXT,
      PRIMARY KEY (repo, num))""",
    """CREATE TABLE IF NOT EXISTS discussion_events (
      id TEXT PRIMARY KEY, repo INTEGER NOT NULL, num INTEGER NOT NULL, type TEXT NOT NULL, author TEXT NOT NULL,
      created REAL NOT NULL, data TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS discussion_events_of ON discussion_events(repo, num)",
    # collections: items point at a repo by its id (so a moved repo stays in), or at another collection
    """CREATE TABLE IF NOT EXISTS collections (
      id TEXT PRIMARY KEY, ns TEXT NOT NULL, title TEXT NOT NULL, description TEXT, private INTEGER NOT NULL,
      theme TEXT NOT NULL, position INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS collections_ns ON collections(ns COLLATE NOCASE)",
    """CREATE TABLE IF NOT EXISTS collection_items (
      id TEXT PRIMARY KEY, collection TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL, note TEXT,
      position INTEGER NOT NULL, added REAL NOT NULL, UNIQUE (collection, kind, target))""",
    "CREATE INDEX IF NOT EXISTS collection_items_target ON collection_items(kind, target)",
    # old names of moved repos, which keep working (as on the Hub) until a repo takes the name again
    """CREATE TABLE IF NOT EXISTS repo_redirects (
      type TEXT NOT NULL, ns TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL COLLATE NOCASE, repo INTEGER NOT NULL,
      PRIMARY KEY (type, ns, name))""",
    *xet_schema.SCHEMA,
    *quota.SCHEMA,
)
# what a repo owns, by (table, column holding the repo id): deleted with it
REPO_TABLES = (
    ("refs", "repo"),
    ("repo_tags", "repo"),
    ("repo_objects", "repo"),
    ("mirrors", "repo"),
    ("discussions", "repo"),
    ("discussion_events", "repo"),
    ("repo_redirects", "repo"),
    *xet_schema.REPO_TABLES,
    ("repos", "id"),
)


def version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def upgrade(db: sqlite3.Connection) -> None:
    """Bring the store to SCHEMA_VERSION; call inside a write transaction (BEGIN IMMEDIATE)."""
    if version(db) == SCHEMA_VERSION:
        return
    columns = {r[1] for r in db.execute("PRAGMA table_info(commits)")}
    repo_columns = {r[1] for r in db.execute("PRAGMA table_info(repos)")}
    if repo_columns and "gated" not in repo_columns:  # a repos table of version 0 or 1
        db.execute("ALTER TABLE repos ADD COLUMN gated TEXT")
    if "tree" in columns:
        db.execute("ALTER TABLE commits RENAME TO commits_v0")
        db.execute("DROP INDEX IF EXISTS commits_repo")
    for statement in SCHEMA:
        db.execute(statement)
    if "tree" in columns:
        _from_json_trees(db)
        db.execute("DROP TABLE commits_v0")
        # version 0 stored cards of any size (a 226-byte YAML bomb became 4.7 MB): drop the oversized ones
        db.execute("UPDATE repos SET card='{}' WHERE length(card) > ?", (MAX_CARD_JSON_BYTES,))
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _tree_v0(db: sqlite3.Connection, sha: str) -> dict[str, Entry]:
    raw = json.loads(db.execute("SELECT tree FROM commits_v0 WHERE sha=?", (sha,)).fetchone()[0])
    return {p: Entry(e["sha256"], e["size"], e["oid"], bool(e["lfs"])) for p, e in raw.items()}


def _from_json_trees(db: sqlite3.Connection) -> None:
    """Rewrite every v0 commit as a delta on its parent (parents first) and record the objects repos hold."""
    rows = db.execute("SELECT sha, repo, parent, title, message, author, date FROM commits_v0").fetchall()
    known = {r[0] for r in rows}
    children: dict[str | None, list] = {}
    for r in rows:
        children.setdefault(r[2] if r[2] in known else None, []).append(r)
    stack: list[tuple[tuple, dict[str, Entry]]] = [(r, {}) for r in children.get(None, [])]
    while stack:
        (sha, repo, parent, title, message, author, date), before = stack.pop()
        tree = _tree_v0(db, sha)
        history.write_commit(
            db,
            sha=sha,
            repo=repo,
            parent=parent if parent in known else None,
            tree=tree,
            changes=history.diff(before, tree),
            title=title,
            message=message,
            author=author,
            date=date,
        )
        db.executemany("INSERT OR IGNORE INTO repo_objects VALUES (?,?,1)", ((repo, e.sha256) for e in tree.values()))
        stack.extend((child, tree) for child in children.get(sha, []))
