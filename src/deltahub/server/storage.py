"""The registry's durable state: SQLite (WAL) for repos, commits, refs and tags; content-addressed blobs.

Why this shape: a commit is one SQLite transaction that points at blobs already renamed into
place, so a crash at any moment leaves either the old head or the new one, never a mix. Blobs
are named by their sha256 and written temp-file + fsync + rename, so a half-written upload is
never visible; a blob's path is built only from a validated sha256. Which repo holds which object
is recorded (``repo_objects``): a commit may name an LFS object only if it was uploaded to that
repo or is already committed in a repo the committer can read. Several processes may share one
root (WAL + busy timeout; temp folders locked per process, see scratch.py). Each thread keeps one
connection open, so a read never needs to write (no checkpoint on close) and reads keep working
while the disk is full; any ENOSPC while writing becomes ``DiskFull``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import held
from . import history, migrate
from .errors import (
    Conflict,
    DiskFull,
    EntryNotFound,
    ObjectNotUploaded,
    PayloadTooLarge,
    RevisionNotFound,
    StaleParent,
    disk_guard,
)
from .history import Entry
from .limits import MAX_CARD_YAML_BYTES
from .paths import is_sha256
from .scratch import Scratch
from .tags import derive_tags, parse_card
from .xet.store import XetStore

LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".parquet",
    ".pt",
    ".pth",
    ".gguf",
    ".h5",
    ".onnx",
    ".msgpack",
    ".arrow",
    ".zip",
    ".gz",
    ".tar",
    ".npy",
    ".npz",
    ".ckpt",
    ".pkl",
    ".png",
    ".jpg",
)
LFS_THRESHOLD = 10 * 1024 * 1024

GITATTRIBUTES = (
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
    b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.pt filter=lfs diff=lfs merge=lfs -text\n"
)

# can_read(namespace, private) -> bool: the committer's read permission, for objects held by other repos
ReadPolicy = Callable[[str, bool], bool]
# called inside a commit's transaction with (db, new commit sha): what must change with the commit, atomically
OnCommit = Callable[[sqlite3.Connection, str], None]
REF_KINDS = {"heads": "branch", "tags": "tag", "pr": "pr"}


def split_ref(rev: str) -> tuple[str | None, str]:
    """('branch'|'tag'|'pr', name) for a full ref ('refs/heads/x', 'refs/pr/3'); (None, rev) for a short name."""
    if rev.startswith("refs/"):
        _, kind, name = (rev.split("/", 2) + ["", ""])[:3]
        if kind in REF_KINDS and name and (kind != "pr" or name.isascii() and name.isdigit()):
            return REF_KINDS[kind], name
    return None, rev


def full_ref(kind: str, name: str) -> str:
    return {"branch": "refs/heads/", "tag": "refs/tags/", "pr": "refs/pr/"}[kind] + name


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
    gated: str | None = None  # "auto" | "manual" | None

    @property
    def repo_id(self) -> str:
        return f"{self.ns}/{self.name}"


def _repo(row: sqlite3.Row) -> Repo:
    return Repo(
        row["id"],
        row["type"],
        row["ns"],
        row["name"],
        bool(row["private"]),
        row["created"],
        row["modified"],
        json.loads(row["card"]),
        json.loads(row["tags"]),
        row["gated"],
    )


class Incoming:
    """One body being received into a temp file: sized, optionally hashed, removed unless adopted.

    Use as a context manager: whatever ends the request (error, client gone, success) removes the file.
    With ``keep=False`` nothing is written (an object already stored: its bytes are only hashed).
    """

    def __init__(self, store: Store, limit: int, hashed: bool = True, keep: bool = True):
        self.store, self.limit = store, limit
        self.size = 0
        self._hash = hashlib.sha256() if hashed else None
        self._file = None
        self.path: Path | None = None
        if keep:
            with disk_guard(store.root):
                fd, self.path = store.scratch.new_file()
                self._file = os.fdopen(fd, "wb", buffering=1 << 20)

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise PayloadTooLarge(f"body is larger than {self.limit} bytes")
        if self._hash is not None:
            self._hash.update(chunk)
        if self._file is not None:
            with disk_guard(self.store.root):
                self._file.write(chunk)

    def finish(self, sync: bool = True) -> str:
        """Flush (and fsync: the file may become a blob); the sha256 of what was received ('' when not hashed)."""
        if self._file is not None:
            with disk_guard(self.store.root):
                self._file.flush()
                if sync:
                    os.fsync(self._file.fileno())
                self._file.close()
        return self._hash.hexdigest() if self._hash is not None else ""

    def adopt(self, sha256: str) -> None:
        """Rename the finished, verified file into the content-addressed store."""
        dest = self.store.blob_path(sha256)
        with disk_guard(self.store.root):
            dest.parent.mkdir(exist_ok=True)
            os.replace(self.path, dest)

    def __enter__(self) -> Incoming:
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # ENOSPC again while flushing what is being thrown away
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class Store:
    """All persistent state under one root folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.scratch = Scratch(self.root / "tmp")
        self.db_path = self.root / "registry.db"
        self.trees = history.TreeCache()
        self.xet = XetStore(self)  # content uploaded through Xet: chunks in xorbs, not blobs (xet/store.py)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, Store._release, self.scratch, self._conns)
        # First opens one at a time: switching a new database to WAL takes an exclusive lock without waiting on
        # SQLite's busy handler, so two processes starting on a new root at once failed with "database is locked"
        with held(self.root):
            db = self._db()
            if migrate.version(db) != migrate.SCHEMA_VERSION:
                with disk_guard(self.root):
                    db.execute("PRAGMA journal_mode=WAL")
                with self._write() as db:
                    migrate.upgrade(db)

    @staticmethod
    def _release(scratch: Scratch, conns: list[sqlite3.Connection]) -> None:
        for db in conns:
            db.close()
        conns.clear()
        scratch.close()

    def close(self) -> None:
        """Close connections and remove this store's temp folder (a later sweep would, too)."""
        self._finalizer()

    # -- plumbing -------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        """This thread's connection (kept open: closing the last one would checkpoint, i.e. write)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout=60000")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA temp_store=MEMORY")  # sorting never needs a temp file (reads on a full disk)
            self._local.db = db
            with self._conns_lock:
                self._conns.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; ENOSPC (SQLITE_FULL) becomes DiskFull, anything else rolls back and re-raises."""
        db = self._db()
        with disk_guard(self.root):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def blob_path(self, sha256: str) -> Path:
        """The only way a blob's file name is made: from a validated sha256, so no client string is a path."""
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256: {sha256[:80]!r}")
        return self.blobs / sha256[:2] / sha256

    def blob_size(self, sha256: str) -> int | None:
        try:
            return self.blob_path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def content_size(self, sha256: str) -> int | None:
        """The size of the content with this sha256, held as a blob or as a Xet file reconstruction."""
        size = self.blob_size(sha256)
        return self.xet.size_of(sha256) if size is None else size

    def local_blob(self, sha256: str) -> Path:
        """A file holding the content (for readers that need a path: the web pages' previews and raw views);
        content held only as a Xet reconstruction is written out as a blob first, once."""
        path = self.blob_path(sha256)
        if not path.exists() and (f := self.xet.file_for(sha256)) is not None:
            with self.incoming(f.size) as up:
                for piece in self.xet.read(f):
                    up.write(piece)
                if up.finish() == sha256:
                    up.adopt(sha256)
        return path

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        found = self.blob_size(sha256)
        return found is not None and (size is None or found == size)

    def incoming(self, limit: int, hashed: bool = True, keep: bool = True) -> Incoming:
        return Incoming(self, limit, hashed, keep)

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha, len(data)):
            with self.incoming(len(data), hashed=False) as up:
                up.write(data)
                up.finish()
                up.adopt(sha)
        return sha

    def read_blob(self, sha256: str, limit: int | None = None) -> bytes:
        with open(self.blob_path(sha256), "rb") as f:
            return f.read(-1 if limit is None else limit)

    # -- repos ----------------------------------------------------------------------------
    def get_repo(self, rtype: str, ns: str, name: str) -> Repo | None:
        """The repo ``ns/name``, whatever the case of the letters, or the repo that was moved away from that name
        (both as on the Hub); its current name in ``repo_id``."""
        db = self._db()
        repo = self._find_repo(db, rtype, ns, name)
        if repo is None:
            row = db.execute(
                "SELECT repo FROM repo_redirects WHERE type=? AND ns=? AND name=?", (rtype, ns, name)
            ).fetchone()
            repo = None if row is None else self.repo_by_id(row["repo"])
        return repo

    @staticmethod
    def _find_repo(db: sqlite3.Connection, rtype: str, ns: str, name: str) -> Repo | None:
        row = db.execute(
            "SELECT * FROM repos WHERE type=? AND ns=? COLLATE NOCASE AND name=? COLLATE NOCASE", (rtype, ns, name)
        ).fetchone()
        return None if row is None else _repo(row)

    def repo_by_id(self, repo_id: int) -> Repo | None:
        if not 0 < repo_id < 2**63:  # from a URL: anything bigger would overflow SQLite's integers
            return None
        row = self._db().execute("SELECT * FROM repos WHERE id=?", (repo_id,)).fetchone()
        return None if row is None else _repo(row)

    def create_repo(self, rtype: str, ns: str, name: str, private: bool, author: str) -> Repo:
        now = time.time()
        blob = self.put_bytes(GITATTRIBUTES)
        tree = {".gitattributes": Entry(blob, len(GITATTRIBUTES), git_blob_oid(GITATTRIBUTES), False)}
        with self._write() as db:
            if self._find_repo(db, rtype, ns, name) is not None:
                raise Conflict(f"You already created this {rtype} repo")
            db.execute("DELETE FROM repo_redirects WHERE type=? AND ns=? AND name=?", (rtype, ns, name))
            rid = db.execute(
                "INSERT INTO repos(type, ns, name, private, created, modified) VALUES (?,?,?,?,?,?)",
                (rtype, ns, name, int(private), now, now),
            ).lastrowid
            sha = _commit_sha()
            history.write_commit(
                db,
                sha=sha,
                repo=rid,
                parent=None,
                tree=tree,
                changes=tree,
                title="initial commit",
                message="",
                author=author,
                date=now,
            )
            db.execute("INSERT INTO refs VALUES (?,?,?,?)", (rid, "branch", "main", sha))
            db.execute("INSERT INTO repo_objects VALUES (?,?,1)", (rid, blob))
        return self.get_repo(rtype, ns, name)

    def delete_repo(self, repo: Repo) -> None:
        """The repo and all it owns: history, refs, discussions, its entries in collections."""
        with self._write() as db:
            history.delete_repo_history(db, repo.id)
            for table, col in migrate.REPO_TABLES:
                db.execute(f"DELETE FROM {table} WHERE {col}=?", (repo.id,))
            db.execute(
                "DELETE FROM collection_items WHERE kind IN ('model', 'dataset', 'space') AND target=?", (str(repo.id),)
            )

    def set_private(self, repo: Repo, private: bool) -> None:
        with self._write() as db:
            db.execute("UPDATE repos SET private=? WHERE id=?", (int(private), repo.id))

    def set_gated(self, repo: Repo, gated: str | None) -> None:
        with self._write() as db:
            db.execute("UPDATE repos SET gated=? WHERE id=?", (gated, repo.id))

    def move_repo(self, repo: Repo, ns: str, name: str) -> Repo:
        """Rename ``repo`` to ``ns/name`` (its history, refs, discussions and collection entries follow its id)."""
        with self._write() as db:
            other = self._find_repo(db, repo.type, ns, name)
            if other is not None and other.id != repo.id:
                raise Conflict(f"A {repo.type} repository called {other.repo_id} already exists")
            db.execute("UPDATE repos SET ns=?, name=?, modified=? WHERE id=?", (ns, name, time.time(), repo.id))
            db.execute("DELETE FROM repo_redirects WHERE type=? AND ns=? AND name=?", (repo.type, ns, name))
            db.execute(
                "INSERT OR REPLACE INTO repo_redirects VALUES (?,?,?,?)", (repo.type, repo.ns, repo.name, repo.id)
            )
        return self.repo_by_id(repo.id)

    def repo_stamps(self) -> dict[int, tuple[float, float, bool]]:
        """(created, modified, private) of every repo: a repo's card, tags or visibility never change without
        its stamp changing, so a cache of listing rows can re-read only the repos whose stamp moved."""
        rows = self._db().execute("SELECT id, created, modified, private FROM repos").fetchall()
        return {r["id"]: (r["created"], r["modified"], bool(r["private"])) for r in rows}

    def list_repos(self, rtype: str, tags: list[str], author: str | None, search: str | None) -> list[Repo]:
        sql = "SELECT * FROM repos WHERE type=?"
        args: list[Any] = [rtype]
        if author:
            sql += " AND ns=? COLLATE NOCASE"
            args.append(author)
        for t in tags:
            sql += " AND id IN (SELECT repo FROM repo_tags WHERE tag=?)"
            args.append(t)
        out = [_repo(r) for r in self._db().execute(sql, args).fetchall()]
        if search:
            s = search.lower()
            out = [r for r in out if s in r.repo_id.lower()]
        return out

    # -- objects --------------------------------------------------------------------------
    def record_upload(self, repo: Repo, sha256: str) -> None:
        """``repo`` now holds ``sha256`` (uploaded through its LFS ticket)."""
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO repo_objects VALUES (?,?,0)", (repo.id, sha256))

    def holds(self, repo: Repo, sha256: str) -> bool:
        return (
            self._db().execute("SELECT 1 FROM repo_objects WHERE repo=? AND sha256=?", (repo.id, sha256)).fetchone()
            is not None
        )

    def _may_use(self, db: sqlite3.Connection, repo: Repo, sha256: str, can_read: ReadPolicy | None) -> bool:
        """Whether a commit to ``repo`` may name object ``sha256`` (it must exist on disk too)."""
        if db.execute("SELECT 1 FROM repo_objects WHERE repo=? AND sha256=?", (repo.id, sha256)).fetchone():
            return True
        if can_read is None:
            return False
        rows = db.execute(
            "SELECT r.ns, r.private FROM repo_objects o JOIN repos r ON r.id = o.repo "
            "WHERE o.sha256=? AND o.committed=1",
            (sha256,),
        ).fetchall()
        return any(can_read(r["ns"], bool(r["private"])) for r in rows)

    def usable_size(self, repo: Repo, sha256: str, can_read: ReadPolicy | None) -> int | None:
        """The object's size when ``repo`` may use it without an upload (LFS batch: 'already stored'), else None."""
        if not self._may_use(self._db(), repo, sha256, can_read):
            return None
        return self.content_size(sha256)

    # -- revisions ------------------------------------------------------------------------
    def refs(self, repo: Repo) -> dict[str, dict[str, str]]:
        """{'branch': {name: sha}, 'tag': {...}, 'pr': {number: sha}}."""
        rows = self._db().execute("SELECT kind, name, target FROM refs WHERE repo=?", (repo.id,)).fetchall()
        out: dict[str, dict[str, str]] = {"branch": {}, "tag": {}, "pr": {}}
        for r in rows:
            out[r["kind"]][r["name"]] = r["target"]
        return out

    def resolve(self, repo: Repo, rev: str) -> str:
        """Commit sha of a branch, tag, pull request ('refs/pr/3'), full ref, or full or short sha."""
        db = self._db()
        kind, name = split_ref(rev)
        for k in (kind,) if kind else ("branch", "tag"):
            if (target := _ref_target(db, repo, k, name)) is not None:
                return target
        if kind is None and 7 <= len(rev) <= 40 and all(c in "0123456789abcdef" for c in rev):
            rows = db.execute("SELECT sha FROM commits WHERE repo=? AND sha LIKE ?", (repo.id, rev + "%")).fetchall()
            if len(rows) == 1:
                return rows[0]["sha"]
        raise RevisionNotFound(f"Invalid rev id: {rev}")

    def tree(self, sha: str) -> dict[str, Entry]:
        """The files of commit ``sha`` (read-only: shared through the cache)."""
        return history.read_tree(self._db(), sha, self.trees)

    def entry(self, sha: str, path: str) -> Entry | None:
        return history.read_entry(self._db(), sha, path, self.trees)

    def history(self, sha: str | None, limit: int | None = None) -> list[dict]:
        """Commits from ``sha`` back to the first, newest first (the newest ``limit`` of them when given): sha,
        parent, base, title, message, author, date."""
        db = self._db()
        out = []
        while sha and (limit is None or len(out) < limit):
            row = db.execute(
                "SELECT sha, parent, base, title, message, author, date FROM commits WHERE sha=?", (sha,)
            ).fetchone()
            out.append(dict(row))
            sha = row["parent"]
        return out

    def changed_paths(self, commit: dict) -> set[str]:
        """Paths commit ``commit`` (a ``history`` item) changed relative to its parent."""
        if commit["base"] != commit["sha"]:
            rows = self._db().execute("SELECT path FROM changed_files WHERE commit_sha=?", (commit["sha"],))
            return {r["path"] for r in rows}
        before = self.tree(commit["parent"]) if commit["parent"] else {}
        return set(history.diff(before, self.tree(commit["sha"])))

    def last_commits(self, sha: str, paths: list[str], folders: set[str]) -> dict[str, dict]:
        """For each of ``paths`` (files, and the ``folders`` among them), the newest commit from ``sha`` back that
        changed it (anything under it, for a folder): what the Hub reports as ``lastCommit``."""
        found: dict[str, dict] = {}
        wanted = set(paths)
        for commit in self.history(sha):
            if not wanted:
                break
            changed = self.changed_paths(commit)
            touched = changed | {c[:i] for c in changed for i in range(len(c)) if c[i] == "/"}
            for p in wanted & touched:
                found[p] = commit
            wanted -= touched
        return found

    def squash(self, repo: Repo, rev: str, title: str, author: str) -> str:
        """Replace the history of branch (or pull request) ``rev`` by one commit holding its current tree."""
        kind, name = self.writable_ref(rev)
        head = self.resolve(repo, full_ref(kind, name))
        tree = self.tree(head)
        sha = _commit_sha()
        with self._write() as db:
            if _ref_target(db, repo, kind, name) != head:
                raise StaleParent()
            history.write_commit(
                db,
                sha=sha,
                repo=repo.id,
                parent=None,
                tree=tree,
                changes=tree,
                title=title,
                message="",
                author=author,
                date=time.time(),
            )
            db.execute("UPDATE refs SET target=? WHERE repo=? AND kind=? AND name=?", (sha, repo.id, kind, name))
        self.trees.put(sha, dict(tree))
        return sha

    def lfs_files(self, repo: Repo) -> list[dict]:
        """Every LFS object in the repo's history: sha256, size, a file name, when it was first committed, and a
        branch whose head holds it (None when only older commits do)."""
        db = self._db()
        rows = db.execute(
            """SELECT f.sha256, f.size, f.path, c.date FROM changed_files f JOIN commits c ON c.sha = f.commit_sha
               WHERE c.repo = ? AND f.lfs = 1
               UNION ALL
               SELECT f.sha256, f.size, f.path, c.date FROM snapshot_files f JOIN commits c ON c.sha = f.snapshot
               WHERE c.repo = ? AND f.lfs = 1 ORDER BY 4""",
            (repo.id, repo.id),
        ).fetchall()
        out: dict[str, dict] = {}
        for r in rows:
            out.setdefault(
                r["sha256"],
                {"sha256": r["sha256"], "size": r["size"], "path": r["path"], "date": r["date"], "ref": None},
            )
        for name, target in sorted(self.refs(repo)["branch"].items(), key=lambda kv: kv[0] != "main"):
            for e in self.tree(target).values():
                if e.lfs and e.sha256 in out and out[e.sha256]["ref"] is None:
                    out[e.sha256]["ref"] = full_ref("branch", name)
        return list(out.values())

    def delete_lfs_files(self, repo: Repo, shas: list[str], author: str, rewrite: bool) -> None:
        """Forget LFS objects ``shas`` in ``repo``: with ``rewrite``, each branch head holding one gets a commit that
        removes those files; the object's bytes go unless another repo holds them (old commits answer 404)."""
        gone = set(shas)
        if rewrite:
            for name, target in self.refs(repo)["branch"].items():
                paths = [p for p, e in self.tree(target).items() if e.lfs and e.sha256 in gone]
                if paths:
                    self.commit(
                        repo,
                        full_ref("branch", name),
                        [{"op": "delete", "path": p} for p in paths],
                        "Permanently delete LFS files",
                        "",
                        author,
                        target,
                    )
        with self._write() as db:
            db.executemany("DELETE FROM repo_objects WHERE repo=? AND sha256=?", [(repo.id, s) for s in gone])
            orphans = [
                s for s in gone if db.execute("SELECT 1 FROM repo_objects WHERE sha256=?", (s,)).fetchone() is None
            ]
            for sha in orphans:
                self.xet.forget(db, sha)
        for sha in orphans:
            self.blob_path(sha).unlink(missing_ok=True)

    def set_ref(self, repo: Repo, kind: str, name: str, target: str | None, must_not_exist: bool = False) -> None:
        """Point ref ``kind``/``name`` at ``target`` (None: delete it), with the Hub's messages."""
        with self._write() as db:
            exists = _ref_target(db, repo, kind, name) is not None
            if target is None:
                if not exists:
                    raise RevisionNotFound(f"Invalid rev id: {name}")
                db.execute("DELETE FROM refs WHERE repo=? AND kind=? AND name=?", (repo.id, kind, name))
            else:
                if exists and must_not_exist:
                    raise Conflict(f"Reference {full_ref(kind, name)} already exists")
                db.execute("INSERT OR REPLACE INTO refs VALUES (?,?,?,?)", (repo.id, kind, name, target))

    # -- commits --------------------------------------------------------------------------
    def writable_ref(self, rev: str) -> tuple[str, str]:
        """(kind, name) of the ref a commit to ``rev`` moves: a branch ('main', 'refs/heads/x') or a pull request."""
        kind, name = split_ref(rev)
        if kind == "tag":
            raise RevisionNotFound(f"Invalid rev id: {rev} (a tag cannot be committed to)")
        return kind or "branch", name

    def commit(
        self,
        repo: Repo,
        branch: str,
        ops: list[dict],
        title: str,
        message: str,
        author: str,
        parent: str | None,
        can_read: ReadPolicy | None = None,
        on_commit: OnCommit | None = None,
        start: str | None = None,
    ) -> str:
        """Apply add/delete operations on top of ``branch`` in one transaction; StaleParent when ``parent`` is old.

        ``branch`` is a branch or a pull request ('refs/pr/1'). ``ops`` items: {"op": "add", "path", "sha256",
        "size", "lfs", "oid"} | {"op": "delete"|"delete_folder", "path"}. Every added blob must already be in the
        store; an LFS one must be usable by ``repo`` (see ``_may_use``, with ``can_read`` the committer's read
        permission). An LFS add may leave "size" None (a copy). ``start``: the commit a ref that does not exist
        yet starts from (a new pull request); ``on_commit`` runs inside the transaction.
        """
        kind, name = self.writable_ref(branch)
        with self._write() as db:
            head = _ref_target(db, repo, kind, name) or start
            if head is None:
                raise RevisionNotFound(f"Invalid rev id: {branch}")
            if parent and parent != head and not (len(parent) < 40 and head.startswith(parent)):
                raise StaleParent()
            before = self.tree(head)
            tree = self._applied(db, repo, before, ops, can_read)
            changes = history.diff(before, tree)
            sha = _commit_sha()
            now = time.time()
            history.write_commit(
                db,
                sha=sha,
                repo=repo.id,
                parent=head,
                tree=tree,
                changes=changes,
                title=title,
                message=message,
                author=author,
                date=now,
            )
            db.executemany(
                "INSERT INTO repo_objects VALUES (?,?,1) ON CONFLICT DO UPDATE SET committed=1",
                {(repo.id, e.sha256) for e in changes.values() if e is not None},
            )
            db.execute("INSERT OR REPLACE INTO refs VALUES (?,?,?,?)", (repo.id, kind, name, sha))
            card = self._card(tree, strict="README.md" in changes)  # a new card over the limits: refused
            if on_commit is not None:
                on_commit(db, sha)
            if (kind, name) == ("branch", "main"):
                _index_card(db, repo.id, repo.type, card, tree, now)
            else:
                db.execute("UPDATE repos SET modified=? WHERE id=?", (now, repo.id))
        self.trees.put(sha, tree)
        return sha

    def _applied(
        self, db: sqlite3.Connection, repo: Repo, before: history.Tree, ops: list[dict], can_read: ReadPolicy | None
    ) -> dict[str, Entry]:
        """The tree after ``ops`` (a new dict: ``before`` may be the cache's)."""
        tree = dict(before)
        for op in ops:
            path = op["path"]
            if op["op"] == "add":
                tree[path] = self._checked_entry(db, repo, op, can_read)
            elif op["op"] == "delete" and path in tree:
                del tree[path]
            else:  # a folder ('deletedFolder', or 'deletedFile' naming a folder without its trailing slash)
                prefix = path.rstrip("/") + "/"
                gone = [p for p in tree if p.startswith(prefix)]
                if not gone:
                    raise EntryNotFound(f"{'Folder' if op['op'] == 'delete_folder' else 'File'} not found: {path}")
                for p in gone:
                    del tree[p]
        return tree

    def _checked_entry(self, db: sqlite3.Connection, repo: Repo, op: dict, can_read: ReadPolicy | None) -> Entry:
        sha, path = op["sha256"], op["path"]
        if op["lfs"]:
            size = self.content_size(sha) if self._may_use(db, repo, sha, can_read) else None
            if size is None or (op["size"] is not None and op["size"] != size):
                raise ObjectNotUploaded(f"LFS object {sha} for {path} was not uploaded to {repo.repo_id}")
            return Entry(sha, size, git_blob_oid(lfs_pointer(sha, size)), True)
        if not self.has_blob(sha, op["size"]):
            raise ObjectNotUploaded(f"content of {path} is missing from the store")
        return Entry(sha, op["size"], op["oid"], False)

    def card(self, tree: history.Tree) -> dict:
        """The card metadata of a tree's README.md, leniently (over-limit cards read as {})."""
        return self._card(tree, strict=False)

    def _card(self, tree: history.Tree, strict: bool) -> dict:
        readme = tree.get("README.md")
        if readme is None:
            return {}
        text = self.read_blob(readme.sha256, MAX_CARD_YAML_BYTES + 64).decode("utf-8", "replace")
        return parse_card(text, strict=strict)

    # -- read-through mirrors (see upstream.py) --------------------------------------------
    def mirror_of(self, repo: Repo) -> str | None:
        """The upstream URL a repo mirrors, or None for a repo published here."""
        row = self._db().execute("SELECT upstream FROM mirrors WHERE repo=?", (repo.id,)).fetchone()
        return None if row is None else row["upstream"]

    def mirror_ids(self) -> set[int]:
        return {row["repo"] for row in self._db().execute("SELECT repo FROM mirrors")}

    def import_mirror(
        self,
        rtype: str,
        ns: str,
        name: str,
        upstream: str,
        private: bool,
        sha: str,
        tree: dict[str, Entry],
        date: float,
        refs: list[str],
    ) -> Repo:
        """Store upstream commit ``sha`` (its verified ``tree``; LFS blobs may follow on first read) and point
        ``refs`` at it, creating the read-only mirror repo if needed: one transaction, idempotent across processes.

        A private mirror's objects are recorded as held but not committed, so no other repo's commit can
        name them (``_may_use``); a public mirror's may be reused like any public object.
        """
        now = time.time()
        with self._write() as db:
            found = self._find_repo(db, rtype, ns, name)  # ids are case-insensitive, as upstream
            if found is None:
                rid = db.execute(
                    "INSERT INTO repos(type, ns, name, private, created, modified) VALUES (?,?,?,?,?,?)",
                    (rtype, ns, name, int(private), now, now),
                ).lastrowid
                db.execute("INSERT INTO mirrors VALUES (?,?)", (rid, upstream))
            else:
                rid = found.id
                if db.execute("SELECT 1 FROM mirrors WHERE repo=?", (rid,)).fetchone() is None:
                    raise Conflict(f"{ns}/{name} was published here; it is not a mirror of {upstream}")
                db.execute("UPDATE repos SET private=? WHERE id=?", (int(private), rid))
            owner = db.execute("SELECT repo FROM commits WHERE sha=?", (sha,)).fetchone()
            if owner is None:
                history.write_commit(
                    db,
                    sha=sha,
                    repo=rid,
                    parent=None,
                    tree=tree,
                    changes=tree,
                    title=f"mirrored from {upstream}",
                    message="",
                    author="upstream",
                    date=date,
                )
            elif owner["repo"] != rid:
                raise Conflict(f"commit {sha} of {ns}/{name} is already stored for another repo")
            committed = int(not private)
            db.executemany(
                "INSERT INTO repo_objects VALUES (?,?,?) ON CONFLICT DO UPDATE SET committed=excluded.committed",
                {(rid, e.sha256, committed) for e in tree.values()},
            )
            if private:
                db.execute("UPDATE repo_objects SET committed=0 WHERE repo=?", (rid,))
            db.executemany(
                "INSERT OR REPLACE INTO refs VALUES (?,?,?,?)",
                [(rid, kind or "branch", ref, sha) for kind, ref in map(split_ref, refs)],
            )
            if "main" in refs:
                _index_card(db, rid, rtype, self._card(tree, strict=False), tree, now)
        self.trees.put(sha, dict(tree))
        return self.get_repo(rtype, ns, name)

    def check(self) -> list[str]:
        """Consistency problems: a tree entry without its blob (unless deleted on purpose), a ref without its commit."""
        problems = []
        db = self._db()
        # a mirror fetches its large files on first read, so its missing blobs are not a problem
        for row in db.execute("SELECT sha, repo FROM commits WHERE repo NOT IN (SELECT repo FROM mirrors)").fetchall():
            for path, e in history.read_tree(db, row["sha"]).items():
                held = (
                    not e.lfs
                    or db.execute(
                        "SELECT 1 FROM repo_objects WHERE repo=? AND sha256=?", (row["repo"], e.sha256)
                    ).fetchone()
                )
                if held and self.content_size(e.sha256) != e.size:
                    problems.append(f"{row['sha']}:{path} missing blob")
        dangling = "SELECT r.name, r.target FROM refs r LEFT JOIN commits c ON c.sha=r.target WHERE c.sha IS NULL"
        for row in db.execute(dangling):
            problems.append(f"ref {row['name']} -> missing {row['target']}")
        return problems


def _ref_target(db: sqlite3.Connection, repo: Repo, kind: str, name: str) -> str | None:
    row = db.execute("SELECT target FROM refs WHERE repo=? AND kind=? AND name=?", (repo.id, kind, name)).fetchone()
    return None if row is None else row["target"]


def _index_card(db: sqlite3.Connection, repo_id: int, rtype: str, card: dict, tree: history.Tree, now: float) -> None:
    """The main head's card and tags, which listings and filters read."""
    tags = derive_tags(card, rtype, list(tree))
    db.execute(
        "UPDATE repos SET card=?, tags=?, modified=? WHERE id=?", (json.dumps(card), json.dumps(tags), now, repo_id)
    )
    db.execute("DELETE FROM repo_tags WHERE repo=?", (repo_id,))
    db.executemany("INSERT INTO repo_tags VALUES (?,?)", [(repo_id, t) for t in tags])


def _commit_sha() -> str:
    return hashlib.sha1(secrets.token_bytes(20) + str(time.time_ns()).encode()).hexdigest()


__all__ = ["DiskFull", "Entry", "Incoming", "Repo", "Store", "git_blob_oid", "lfs_pointer", "wants_lfs"]
