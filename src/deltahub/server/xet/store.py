"""Xet content in the registry's store: xorbs (chunk-level dedup across repos) and file reconstructions.

Why this shape: a xorb's chunk region is written like a blob (temp file in this process's scratch folder,
fsync, rename; only then its rows), so a kill at any moment leaves no partial xorb, and a row always names
a whole file. A file reconstruction is accepted only once every term is checked against the stored chunks
(its verification hash, its length), its Xet hash is recomputed and its sha256 is hashed from the bytes it
reconstructs; so a sha256 named by a commit always means those bytes. Who may use what follows the store's
existing rule for objects where it can (the dedup query answers only about xorbs uploaded through the
caller's repo or part of a file committed in a repo the caller can read: ``usable``), and the Xet proof of
possession where the client decides alone: a shard may name any stored xorb if, for every term, it gives the
verification hash of the exact chunk hashes (keyed hashes of the content itself, never served by this
registry: the xorb footer is dropped, dedup answers list them HMAC-keyed). hf_xet dedups against its own
local cache of what it uploaded before, possibly to a repo deleted since; only possession of the chunks
lets it name them. A shard that names a missing xorb or gets a proof wrong gets the same answer.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BadRequest, disk_guard
from ..limits import MAX_FILE_BYTES
from . import hashing, xorb
from .shard import DedupXorb, Shard

if TYPE_CHECKING:
    from ..storage import ReadPolicy, Repo, Store

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class StoredChunk:
    hash: str
    start: int
    end: int
    size: int


@dataclass(frozen=True)
class FileTerm:
    xorb: str
    first: int
    last: int
    size: int


@dataclass(frozen=True)
class XetFile:
    hash: str
    sha256: str
    size: int
    terms: tuple[FileTerm, ...]


class XetRejected(BadRequest):
    """A xorb or shard that fails validation (the CAS API answers 400 for those)."""


class XetStore:
    """Xorbs under ``root/xorbs``, their chunks and the registered files in the store's database."""

    def __init__(self, store: Store):
        self.store = store
        self.root = store.root / "xorbs"
        self.root.mkdir(exist_ok=True)

    def xorb_path(self, xorb_hex: str) -> Path:
        """The only way a xorb's file name is made: from a validated Xet hash."""
        if not hashing.is_hex(xorb_hex):
            raise ValueError(f"not a xet hash: {xorb_hex[:80]!r}")
        return self.root / xorb_hex[:2] / xorb_hex

    # -- xorbs ------------------------------------------------------------------------------------
    def has_xorb(self, xorb_hex: str) -> bool:
        db = self.store._db()
        return db.execute("SELECT 1 FROM xet_xorbs WHERE hash=?", (xorb_hex,)).fetchone() is not None

    def put_xorb(self, repo: Repo, xorb_hex: str, upload: Path, total: int) -> bool:
        """Verify the uploaded xorb in temp file ``upload`` against its hash and keep its chunk region;
        False when it was already stored (the upload still proves that ``repo`` holds it)."""
        with open(upload, "rb") as f:
            try:
                parsed = xorb.parse(f, total, hashing.from_hex(xorb_hex))
            except xorb.XorbError as exc:
                raise XetRejected(f"invalid xorb {xorb_hex}: {exc}") from None
        inserted = not self.has_xorb(xorb_hex)
        if inserted:
            dest = self.xorb_path(xorb_hex)
            with disk_guard(self.store.root):
                os.truncate(upload, parsed.region)  # the footer is not served: its facts are in the rows
                fd = os.open(upload, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                dest.parent.mkdir(exist_ok=True)
                os.replace(upload, dest)
        with self.store._write() as db:
            if inserted and db.execute("SELECT 1 FROM xet_xorbs WHERE hash=?", (xorb_hex,)).fetchone() is None:
                db.execute(
                    "INSERT INTO xet_xorbs VALUES (?,?,?,?,?)",
                    (xorb_hex, len(parsed.chunks), parsed.raw_bytes, parsed.region, time.time()),
                )
                db.executemany(
                    "INSERT INTO xet_chunks VALUES (?,?,?,?,?,?)",
                    [
                        (xorb_hex, i, hashing.to_hex(c.hash), c.start, c.end, c.size)
                        for i, c in enumerate(parsed.chunks)
                    ],
                )
            db.execute("INSERT OR IGNORE INTO xet_xorb_repos VALUES (?,?)", (xorb_hex, repo.id))
        return inserted

    def chunks(self, xorb_hex: str) -> list[StoredChunk]:
        rows = self.store._db().execute(
            "SELECT hash, start, end, size FROM xet_chunks WHERE xorb=? ORDER BY idx", (xorb_hex,)
        )
        return [StoredChunk(r["hash"], r["start"], r["end"], r["size"]) for r in rows]

    def stored_bytes(self, xorb_hex: str) -> int | None:
        row = self.store._db().execute("SELECT stored_bytes FROM xet_xorbs WHERE hash=?", (xorb_hex,)).fetchone()
        return None if row is None else row["stored_bytes"]

    def usable(self, db: sqlite3.Connection, xorb_hex: str, repo: Repo, can_read: ReadPolicy) -> bool:
        """Whether an upload to (or a dedup query for) ``repo`` may use the xorb: uploaded through ``repo``,
        or part of a file committed in a repo the caller can read."""
        if db.execute("SELECT 1 FROM xet_xorb_repos WHERE xorb=? AND repo=?", (xorb_hex, repo.id)).fetchone():
            return True
        rows = db.execute(
            """SELECT DISTINCT r.ns, r.private FROM xet_terms t JOIN xet_files f ON f.hash = t.file
               JOIN repo_objects o ON o.sha256 = f.sha256 AND o.committed = 1 JOIN repos r ON r.id = o.repo
               WHERE t.xorb = ?""",
            (xorb_hex,),
        ).fetchall()
        return any(can_read(r["ns"], bool(r["private"])) for r in rows)

    def dedup(self, chunk_hex: str, repo: Repo, can_read: ReadPolicy, limit: int = 4) -> list[DedupXorb]:
        """The xorbs holding chunk ``chunk_hex`` that the caller may use (at most ``limit``)."""
        db = self.store._db()
        found = []
        for row in db.execute("SELECT DISTINCT xorb FROM xet_chunks WHERE hash=? LIMIT 64", (chunk_hex,)).fetchall():
            if self.usable(db, row["xorb"], repo, can_read):
                chunks = self.chunks(row["xorb"])
                found.append(
                    DedupXorb(
                        hashing.from_hex(row["xorb"]),
                        tuple((hashing.from_hex(c.hash), c.size) for c in chunks),
                        self.stored_bytes(row["xorb"]) or 0,
                    )
                )
                if len(found) >= limit:
                    break
        return found

    # -- files ------------------------------------------------------------------------------------
    def register(self, repo: Repo, shard: Shard) -> int:
        """Record the shard's files for ``repo`` after checking each one completely; how many were new."""
        for x in shard.xorbs:
            name = hashing.to_hex(x.hash)
            if not self.has_xorb(name):
                raise XetRejected(f"the shard lists xorb {name}, which is not available to this upload")
        checked = [self._checked(f) for f in shard.files]
        new = 0
        with self.store._write() as db:
            for f in checked:
                if db.execute("SELECT 1 FROM xet_files WHERE hash=?", (f.hash,)).fetchone() is None:
                    db.execute("INSERT INTO xet_files VALUES (?,?,?)", (f.hash, f.sha256, f.size))
                    db.executemany(
                        "INSERT INTO xet_terms VALUES (?,?,?,?,?,?)",
                        [(f.hash, n, t.xorb, t.first, t.last, t.size) for n, t in enumerate(f.terms)],
                    )
                    new += 1
                db.execute("INSERT OR IGNORE INTO repo_objects VALUES (?,?,0)", (repo.id, f.sha256))
        return new

    def _checked(self, entry) -> XetFile:
        """The file, once each term is proven (see the module's docstring) and its hashes recomputed."""
        name = hashing.to_hex(entry.hash)
        leaves: list[tuple[bytes, int]] = []
        terms = []
        for t in entry.terms:
            xorb_hex = hashing.to_hex(t.xorb)
            chunks = self.chunks(xorb_hex)  # [] when the xorb is not stored
            span = chunks[t.first : t.last]
            raw = [hashing.from_hex(c.hash) for c in span]
            proven = (
                t.last <= len(chunks)
                and sum(c.size for c in span) == t.size
                and hashing.verification_hash(raw) == t.verification
            )
            if not proven:  # one answer whether the xorb is missing or the proof is wrong: no existence oracle
                raise XetRejected(f"file {name} names xorb {xorb_hex}, which is not available to this upload")
            leaves += [(h, c.size) for h, c in zip(raw, span, strict=True)]
            terms.append(FileTerm(xorb_hex, t.first, t.last, t.size))
        if sum(t.size for t in terms) > MAX_FILE_BYTES:  # (its sha256 is hashed from the bytes: bound the work)
            raise XetRejected(f"file {name} is larger than {MAX_FILE_BYTES} bytes")
        if hashing.file_hash(leaves) != entry.hash:
            raise XetRejected(f"file {name}: its chunks hash to another file hash")
        f = XetFile(name, entry.sha256, sum(t.size for t in terms), tuple(terms))
        digest = hashlib.sha256()
        for piece in self.read(f):
            digest.update(piece)
        if digest.hexdigest() != entry.sha256:
            raise XetRejected(f"file {name}: its bytes do not have the sha256 the shard claims")
        return f

    def file(self, file_hex: str) -> XetFile | None:
        db = self.store._db()
        row = db.execute("SELECT hash, sha256, size FROM xet_files WHERE hash=?", (file_hex,)).fetchone()
        if row is None:
            return None
        terms = db.execute("SELECT xorb, first, last, size FROM xet_terms WHERE file=? ORDER BY n", (file_hex,))
        return XetFile(row["hash"], row["sha256"], row["size"], tuple(FileTerm(*t) for t in terms))

    def file_for(self, sha256: str) -> XetFile | None:
        """A reconstruction of the content with this sha256, if one was uploaded through Xet."""
        row = self.store._db().execute("SELECT hash FROM xet_files WHERE sha256=? LIMIT 1", (sha256,)).fetchone()
        return None if row is None else self.file(row["hash"])

    def hashes_of(self, sha256s: list[str]) -> dict[str, str]:
        """{sha256: Xet file hash} for the contents among ``sha256s`` held through Xet (listings)."""
        db, out = self.store._db(), {}
        unique = sorted(set(sha256s))
        for i in range(0, len(unique), 500):
            batch = unique[i : i + 500]
            marks = ",".join("?" * len(batch))
            for row in db.execute(f"SELECT sha256, hash FROM xet_files WHERE sha256 IN ({marks})", batch):
                out.setdefault(row["sha256"], row["hash"])
        return out

    def size_of(self, sha256: str) -> int | None:
        row = self.store._db().execute("SELECT size FROM xet_files WHERE sha256=? LIMIT 1", (sha256,)).fetchone()
        return None if row is None else row["size"]

    def forget(self, db: sqlite3.Connection, sha256: str) -> None:
        """Drop the reconstructions of ``sha256`` (its LFS object was deleted for good); shared chunks stay."""
        for row in db.execute("SELECT hash FROM xet_files WHERE sha256=?", (sha256,)).fetchall():
            db.execute("DELETE FROM xet_terms WHERE file=?", (row["hash"],))
        db.execute("DELETE FROM xet_files WHERE sha256=?", (sha256,))

    def read(self, f: XetFile, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The file's bytes ``[start, end)``, decoded chunk by chunk from its xorbs."""
        end = f.size if end is None else min(end, f.size)
        pos = 0
        for t in f.terms:
            if pos >= end:
                return
            if pos + t.size <= start:
                pos += t.size
                continue
            chunks = self.chunks(t.xorb)[t.first : t.last]
            with open(self.xorb_path(t.xorb), "rb") as fh:
                fh.seek(chunks[0].start)
                region = chunks[-1].end - chunks[0].start
                for _, scheme, payload, size in xorb.iter_chunks(fh, region):
                    if pos + size > start and pos < end:
                        data = xorb.decode(scheme, payload, size)
                        yield data[max(0, start - pos) : end - pos]
                    pos += size
                    if pos >= end:
                        return
