"""The registry's durable state: SQLite (WAL) for repos, commits, refs and tags; content-addressed blobs.

Why this shape: a commit is one SQLite transaction that points at blobs already renamed into
place, so a crash at any moment leaves either the old head or the new one, never a mix. Blobs
are named by their sha256 and written temp-file + fsync + rename, so a half-written upload is
never visible. Several processes may share one root (WAL + busy timeout).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .tags import derive_tags, parse_card

LFS_SUFFIXES = (".safetensors", ".bin", ".parquet", ".pt", ".pth", ".gguf", ".h5", ".onnx", ".msgpack",
                ".arrow", ".zip", ".gz", ".tar", ".npy", ".npz", ".ckpt", ".pkl", ".png", ".jpg")
LFS_THRESHOLD = 10 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS repos (
  id INTEGER PRIMARY KEY, type TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
  private INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, modified REAL NOT NULL,
  card TEXT NOT NULL DEFAULT '{}', tags TEXT NOT NULL DEFAULT '[]', UNIQUE(type, ns, name));
CREATE TABLE IF NOT EXISTS commits (
  sha TEXT PRIMARY KEY, repo INTEGER NOT NULL, parent TEXT, tree TEXT NOT NULL,
  title TEXT, message TEXT, author TEXT, date REAL NOT NULL);
CREATE INDEX IF NOT EXISTS commits_repo ON commits(repo);
CREATE TABLE IF NOT EXISTS refs (
  repo INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, target TEXT NOT NULL,
  PRIMARY KEY(repo, kind, name));
CREATE TABLE IF NOT EXISTS repo_tags (repo INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY KEY(repo, tag));
CREATE INDEX IF NOT EXISTS repo_tags_tag ON repo_tags(tag);
CREATE TABLE IF NOT EXISTS mirrors (repo INTEGER PRIMARY KEY, upstream TEXT NOT NULL);
"""

GITATTRIBUTES = (
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.parquet filter=lfs diff=lfs merge=lfs -text\n*.pt filter=lfs diff=lfs merge=lfs -text\n"
).encode()


class StoreError(Exception):
    """A storage-level refusal; ``status`` and ``code`` become the HTTP status and X-Error-Code."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def git_blob_oid(data: bytes) -> str:
    """The git sha1 of a blob (what the Hub reports as ``oid`` for regular files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def wants_lfs(path: str, size: int) -> bool:
    """Hub rule: binaries and files of 10 MB or more go through LFS (datasets' push_to_hub needs it)."""
    return size >= LFS_THRESHOLD or path.lower().endswith(LFS_SUFFIXES)


@dataclass
class Repo:
    id: int
    type: str
    ns: str
    name: str
    private: bool
    created: float
    modified: float
    card: dict
    tags: list

    @property
    def repo_id(self) -> str:
        return f"{self.ns}/{self.name}"


class Store:
    """All persistent state under one root folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "registry.db"
        self._sweep_temp()
        with self._conn() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    # -- plumbing -------------------------------------------------------------------------
    def _sweep_temp(self, max_age_s: float = 86400) -> None:
        """Remove upload temp files left by a crash (old enough that no live process still writes them)."""
        cutoff = time.time() - max_age_s
        for p in self.tmp.iterdir():
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
            except FileNotFoundError:
                pass

    def _conn(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=60000")
        db.execute("PRAGMA synchronous=NORMAL")
        db.row_factory = sqlite3.Row
        return _Closing(db)

    def blob_path(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        p = self.blob_path(sha256)
        return p.is_file() and (size is None or p.stat().st_size == size)

    def new_temp(self) -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="up-")
        return fd, Path(name)

    def adopt_blob(self, tmp_path: Path, sha256: str) -> None:
        """Rename a fully written, verified temp file into the content-addressed store."""
        dest = self.blob_path(sha256)
        dest.parent.mkdir(exist_ok=True)
        os.replace(tmp_path, dest)

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha, len(data)):
            fd, tmp = self.new_temp()
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self.adopt_blob(tmp, sha)
        return sha

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()

    # -- repos ----------------------------------------------------------------------------
    def _repo_row(self, db, rtype: str, ns: str, name: str) -> Repo | None:
        row = db.execute("SELECT * FROM repos WHERE type=? AND ns=? AND name=?", (rtype, ns, name)).fetchone()
        if row is None:
            return None
        return Repo(row["id"], row["type"], row["ns"], row["name"], bool(row["private"]), row["created"],
                    row["modified"], json.loads(row["card"]), json.loads(row["tags"]))

    def get_repo(self, rtype: str, ns: str, name: str) -> Repo | None:
        with self._conn() as db:
            return self._repo_row(db, rtype, ns, name)

    def create_repo(self, rtype: str, ns: str, name: str, private: bool, author: str) -> Repo:
        now = time.time()
        blob = self.put_bytes(GITATTRIBUTES)
        tree = {".gitattributes": _entry(blob, GITATTRIBUTES, False)}
        with self._conn() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if self._repo_row(db, rtype, ns, name) is not None:
                    raise StoreError(409, f"You already created this {rtype} repo", None)
                cur = db.execute("INSERT INTO repos(type, ns, name, private, created, modified) VALUES (?,?,?,?,?,?)",
                                 (rtype, ns, name, int(private), now, now))
                rid = cur.lastrowid
                sha = _commit_sha()
                db.execute("INSERT INTO commits VALUES (?,?,?,?,?,?,?,?)",
                           (sha, rid, None, json.dumps(tree), "initial commit", "", author, now))
                db.execute("INSERT INTO refs VALUES (?,?,?,?)", (rid, "branch", "main", sha))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return self._repo_row(db, rtype, ns, name)

    def delete_repo(self, repo: Repo) -> None:
        with self._conn() as db:
            db.execute("BEGIN IMMEDIATE")
            for table, col in (("refs", "repo"), ("commits", "repo"), ("repo_tags", "repo"), ("mirrors", "repo"),
                               ("repos", "id")):
                db.execute(f"DELETE FROM {table} WHERE {col}=?", (repo.id,))
            db.execute("COMMIT")

    def set_private(self, repo: Repo, private: bool) -> None:
        with self._conn() as db:
            db.execute("UPDATE repos SET private=? WHERE id=?", (int(private), repo.id))

    def list_repos(self, rtype: str, tags: list[str], author: str | None, search: str | None) -> list[Repo]:
        sql = "SELECT * FROM repos WHERE type=?"
        args: list[Any] = [rtype]
        if author:
            sql += " AND ns=?"
            args.append(author)
        for t in tags:
            sql += " AND id IN (SELECT repo FROM repo_tags WHERE tag=?)"
            args.append(t)
        with self._conn() as db:
            rows = db.execute(sql, args).fetchall()
        out = [Repo(r["id"], r["type"], r["ns"], r["name"], bool(r["private"]), r["created"], r["modified"],
                    json.loads(r["card"]), json.loads(r["tags"])) for r in rows]
        if search:
            s = search.lower()
            out = [r for r in out if s in r.repo_id.lower()]
        return out

    # -- revisions ------------------------------------------------------------------------
    def refs(self, repo: Repo) -> dict[str, dict[str, str]]:
        with self._conn() as db:
            rows = db.execute("SELECT kind, name, target FROM refs WHERE repo=?", (repo.id,)).fetchall()
        out: dict[str, dict[str, str]] = {"branch": {}, "tag": {}}
        for r in rows:
            out[r["kind"]][r["name"]] = r["target"]
        return out

    def resolve(self, repo: Repo, rev: str) -> str:
        """Commit sha of a branch, tag, full or short sha; RevisionNotFound otherwise."""
        with self._conn() as db:
            return self._resolve(db, repo, rev)

    def _resolve(self, db, repo: Repo, rev: str) -> str:
        for kind in ("branch", "tag"):
            row = db.execute("SELECT target FROM refs WHERE repo=? AND kind=? AND name=?", (repo.id, kind, rev)).fetchone()
            if row:
                return row["target"]
        if 7 <= len(rev) <= 40 and all(c in "0123456789abcdef" for c in rev):
            rows = db.execute("SELECT sha FROM commits WHERE repo=? AND sha LIKE ?", (repo.id, rev + "%")).fetchall()
            if len(rows) == 1:
                return rows[0]["sha"]
        raise StoreError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def tree(self, sha: str) -> dict[str, dict]:
        with self._conn() as db:
            row = db.execute("SELECT tree FROM commits WHERE sha=?", (sha,)).fetchone()
        return json.loads(row["tree"])

    def commit_info(self, sha: str) -> dict:
        with self._conn() as db:
            row = db.execute("SELECT * FROM commits WHERE sha=?", (sha,)).fetchone()
        return dict(row)

    def history(self, sha: str) -> list[dict]:
        out = []
        with self._conn() as db:
            while sha:
                row = db.execute("SELECT sha, parent, title, message, author, date FROM commits WHERE sha=?", (sha,)).fetchone()
                out.append(dict(row))
                sha = row["parent"]
        return out

    def set_ref(self, repo: Repo, kind: str, name: str, target: str | None, must_not_exist: bool = False) -> None:
        with self._conn() as db:
            db.execute("BEGIN IMMEDIATE")
            exists = db.execute("SELECT 1 FROM refs WHERE repo=? AND kind=? AND name=?", (repo.id, kind, name)).fetchone()
            if target is None:
                if not exists:
                    db.execute("ROLLBACK")
                    raise StoreError(404, f"{kind} {name} not found", "RevisionNotFound")
                db.execute("DELETE FROM refs WHERE repo=? AND kind=? AND name=?", (repo.id, kind, name))
            else:
                if exists and must_not_exist:
                    db.execute("ROLLBACK")
                    raise StoreError(409, f"{kind} {name} already exists")
                db.execute("INSERT OR REPLACE INTO refs VALUES (?,?,?,?)", (repo.id, kind, name, target))
            db.execute("COMMIT")

    # -- commits --------------------------------------------------------------------------
    def commit(self, repo: Repo, branch: str, ops: list[dict], title: str, message: str, author: str,
               parent: str | None) -> str:
        """Apply add/delete operations on top of ``branch`` in one transaction; 412 when ``parent`` is stale.

        ``ops`` items: {"op": "add", "path", "sha256", "size", "lfs", "oid"} | {"op": "delete"|"delete_folder", "path"}.
        Every added blob must already be in the store.
        """
        with self._conn() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT target FROM refs WHERE repo=? AND kind='branch' AND name=?",
                                 (repo.id, branch)).fetchone()
                if row is None:
                    raise StoreError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
                head = row["target"]
                if parent and parent != head and not (len(parent) < 40 and head.startswith(parent)):
                    raise StoreError(412, f"A commit has happened since. Please refresh and try again. (parent {parent}, head {head})")
                tree = json.loads(db.execute("SELECT tree FROM commits WHERE sha=?", (head,)).fetchone()["tree"])
                for op in ops:
                    path = op["path"]
                    if op["op"] == "add":
                        if not self.has_blob(op["sha256"], op["size"]):
                            raise StoreError(422, f"LFS object {op['sha256']} for {path} was not uploaded")
                        tree[path] = {"sha256": op["sha256"], "size": op["size"], "oid": op["oid"], "lfs": op["lfs"]}
                    elif op["op"] == "delete":
                        if path not in tree:
                            raise StoreError(404, f"File not found: {path}", "EntryNotFound")
                        del tree[path]
                    else:
                        prefix = path.rstrip("/") + "/"
                        gone = [p for p in tree if p.startswith(prefix)]
                        if not gone:
                            raise StoreError(404, f"Folder not found: {path}", "EntryNotFound")
                        for p in gone:
                            del tree[p]
                sha = _commit_sha()
                now = time.time()
                db.execute("INSERT INTO commits VALUES (?,?,?,?,?,?,?,?)",
                           (sha, repo.id, head, json.dumps(tree, sort_keys=True), title, message, author, now))
                db.execute("UPDATE refs SET target=? WHERE repo=? AND kind='branch' AND name=?", (sha, repo.id, branch))
                if branch == "main":
                    self._index_card(db, repo.id, repo.type, tree, now)
                else:
                    db.execute("UPDATE repos SET modified=? WHERE id=?", (now, repo.id))
                db.execute("COMMIT")
                return sha
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _index_card(self, db, repo_id: int, rtype: str, tree: dict, now: float) -> None:
        """Card and tags of the repo's main head (what listings filter on)."""
        card = {}
        if "README.md" in tree:
            card = parse_card(self.read_blob(tree["README.md"]["sha256"]).decode("utf-8", "replace"))
        tags = derive_tags(card, rtype, list(tree))
        db.execute("UPDATE repos SET card=?, tags=?, modified=? WHERE id=?",
                   (json.dumps(card, default=str), json.dumps(tags), now, repo_id))
        db.execute("DELETE FROM repo_tags WHERE repo=?", (repo_id,))
        db.executemany("INSERT INTO repo_tags VALUES (?,?)", [(repo_id, t) for t in tags])

    # -- read-through mirrors (see upstream.py) --------------------------------------------
    def mirror_of(self, repo: Repo) -> str | None:
        """The upstream URL a repo mirrors, or None for a repo published here."""
        with self._conn() as db:
            row = db.execute("SELECT upstream FROM mirrors WHERE repo=?", (repo.id,)).fetchone()
        return row["upstream"] if row else None

    def mirror_ids(self) -> set[int]:
        with self._conn() as db:
            return {row["repo"] for row in db.execute("SELECT repo FROM mirrors")}

    def import_mirror(self, rtype: str, ns: str, name: str, upstream: str, private: bool, sha: str, tree: dict,
                      title: str, date: float, refs: list[str]) -> Repo:
        """Store upstream commit ``sha`` (its verified ``tree``; blobs may follow lazily) and point ``refs`` at it,
        creating the read-only mirror repo if needed: one transaction, idempotent, safe across processes."""
        now = time.time()
        with self._conn() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                repo = self._repo_row(db, rtype, ns, name)
                if repo is None:
                    rid = db.execute("INSERT INTO repos(type, ns, name, private, created, modified) VALUES (?,?,?,?,?,?)",
                                     (rtype, ns, name, int(private), now, now)).lastrowid
                    db.execute("INSERT INTO mirrors VALUES (?,?)", (rid, upstream))
                else:
                    rid = repo.id
                    if db.execute("SELECT 1 FROM mirrors WHERE repo=?", (rid,)).fetchone() is None:
                        raise StoreError(409, f"{ns}/{name} was published here; it is not a mirror of {upstream}")
                    db.execute("UPDATE repos SET private=? WHERE id=?", (int(private), rid))
                owner = db.execute("SELECT repo FROM commits WHERE sha=?", (sha,)).fetchone()
                if owner is None:
                    db.execute("INSERT INTO commits VALUES (?,?,?,?,?,?,?,?)",
                               (sha, rid, None, json.dumps(tree, sort_keys=True), title, "", "upstream", date))
                elif owner["repo"] != rid:
                    raise StoreError(409, f"commit {sha} of {ns}/{name} is already stored for another repo")
                for ref in refs:
                    db.execute("INSERT OR REPLACE INTO refs VALUES (?,?,?,?)", (rid, "branch", ref, sha))
                if "main" in refs:
                    self._index_card(db, rid, rtype, tree, now)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return self._repo_row(db, rtype, ns, name)

    def check(self) -> list[str]:
        """Consistency problems: a tree entry without its blob, a ref to a missing commit."""
        problems = []
        with self._conn() as db:
            # a mirror fetches its large files on first read, so its missing blobs are not a problem
            for row in db.execute("SELECT sha, tree FROM commits WHERE repo NOT IN (SELECT repo FROM mirrors)"):
                for path, e in json.loads(row["tree"]).items():
                    if not self.has_blob(e["sha256"], e["size"]):
                        problems.append(f"{row['sha']}:{path} missing blob")
            for row in db.execute("SELECT r.name, r.target FROM refs r LEFT JOIN commits c ON c.sha=r.target WHERE c.sha IS NULL"):
                problems.append(f"ref {row['name']} -> missing {row['target']}")
        return problems


def _entry(sha256: str, data: bytes, lfs: bool) -> dict:
    return {"sha256": sha256, "size": len(data), "oid": git_blob_oid(data), "lfs": lfs}


def _commit_sha() -> str:
    return hashlib.sha1(secrets.token_bytes(20) + str(time.time_ns()).encode()).hexdigest()


class _Closing:
    """A sqlite3 connection that closes when its ``with`` block ends (sqlite3's own only commits)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()

    def execute(self, *a):  # used once in __init__ outside a with
        return self.db.execute(*a)


def iter_file(path: Path, start: int = 0, end: int | None = None, chunk: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        remaining = None if end is None else end - start + 1
        while remaining is None or remaining > 0:
            data = f.read(chunk if remaining is None else min(chunk, remaining))
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data
