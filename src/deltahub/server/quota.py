"""Upload quotas: how many bytes a user may store in repos it cannot write.

Reading a public repo is enough to upload LFS objects and Xet xorbs into it (a pull request carries
them), so without a limit one user could fill the registry's disk. Each user has ``limit`` bytes for
content uploaded into repos outside its namespaces; uploads into a repo the user may write (its own
namespace, its organisations, any repo in open mode) are unlimited.

The check happens before any byte travels: at the LFS batch request (which announces every object's
size) and when a xorb upload's headers arrive (its Content-Length). Accounting lives in registry.db
(``quota_charges``, schema version 5): an upload first *reserves* its size inside one write
transaction, so concurrent uploads (threads or processes) can never together pass the limit, then
*settles* once the bytes are in: kept bytes are charged, bytes the registry already stored (dedup)
release the reservation, so each stored object is charged once, to whoever first stored it. A
reservation that is never settled (an abandoned upload) lapses with the upload ticket. Shards carry
no content (metadata rows bounded by ``shard.MAX_SHARD_BYTES``) and are not charged.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .auth import Auth
from .errors import PayloadTooLarge

if TYPE_CHECKING:  # storage imports migrate, which imports this module's SCHEMA
    from .storage import Repo, Store

DEFAULT_QUOTA = "10GB"  # pull requests of a few adapters (or one small model), not a stranger's disk-filling run
RESERVATION_SECONDS = 2 * 86400  # as long as an LFS upload ticket stays valid (context.Hub.ticket)

SCHEMA = (
    # until: when a reservation lapses; NULL once settled (the bytes are stored and charged)
    """CREATE TABLE IF NOT EXISTS quota_charges (
      user TEXT NOT NULL, object TEXT NOT NULL, bytes INTEGER NOT NULL, until REAL, created REAL NOT NULL,
      PRIMARY KEY (user, object)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS quota_charges_object ON quota_charges(object)",
)

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)")
UNLIMITED = ("unlimited", "none")


def parse_size(text: str) -> int | None:
    """``10GB``, ``500MiB``, ``0`` (no uploads into other users' repos) or ``unlimited`` (None); ValueError
    naming the accepted forms otherwise."""
    value = text.strip().lower()
    if value in UNLIMITED:
        return None
    m = _SIZE.fullmatch(value)
    if m is None or m.group(2) not in _UNITS:
        raise ValueError(f"{text!r} is not a size")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


DEFAULT_LIMIT = parse_size(DEFAULT_QUOTA)


def format_size(n: int) -> str:
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


class QuotaExceeded(PayloadTooLarge):
    """413, not 507: hf_xet retries 5xx answers, and sending the refused bytes again would not help."""


def lfs_key(sha256: str) -> str:
    return f"lfs:{sha256}"


def xorb_key(xorb_hex: str) -> str:
    return f"xorb:{xorb_hex}"


class Quotas:
    """The per-user limit (``None``: unlimited) over ``store``'s ``quota_charges``."""

    def __init__(self, store: Store, auth: Auth, limit: int | None):
        self.store, self.auth, self.limit = store, auth, limit

    def exempt(self, user: str | None, repo: Repo) -> bool:
        """Owners and members (whoever may write the repo's namespace) are not limited."""
        return self.limit is None or user is None or self.auth.can_write(user, repo.ns)

    def used(self, user: str, now: float | None = None) -> int:
        """Bytes charged to ``user`` plus its live reservations."""
        now = time.time() if now is None else now
        row = (
            self.store._db()
            .execute(
                "SELECT COALESCE(SUM(bytes), 0) FROM quota_charges WHERE user=? AND (until IS NULL OR until > ?)",
                (user, now),
            )
            .fetchone()
        )
        return int(row[0])

    def reserve(self, user: str | None, repo: Repo, objects: Iterable[tuple[str, int]]) -> bool:
        """Reserve ``(key, size)`` for each object ``user`` is about to upload into ``repo``, all or none;
        QuotaExceeded (nothing reserved) when they do not fit. False when the user is exempt."""
        if self.exempt(user, repo):
            return False
        assert user is not None and self.limit is not None
        now = time.time()
        with self.store._write() as db:
            db.execute("DELETE FROM quota_charges WHERE until IS NOT NULL AND until <= ?", (now,))
            held = {r[0] for r in db.execute("SELECT object FROM quota_charges WHERE user=?", (user,)).fetchall()}
            new = {key: size for key, size in objects if key not in held}
            need = sum(new.values())
            used = int(
                db.execute("SELECT COALESCE(SUM(bytes), 0) FROM quota_charges WHERE user=?", (user,)).fetchone()[0]
            )
            if need and used + need > self.limit:
                raise QuotaExceeded(
                    f"upload quota exceeded: {user} has used {format_size(used)} of its {format_size(self.limit)} "
                    f"for files uploaded into repos of other namespaces ({repo.repo_id} is one), and this upload "
                    f"needs {format_size(need)} more; nothing was uploaded. Upload into your own namespace "
                    f"({user}/...), which has no limit, or ask the registry's administrator to raise it "
                    "(deltahub hub serve --upload-quota SIZE)"
                )
            db.executemany(
                "INSERT INTO quota_charges VALUES (?,?,?,?,?)",
                ((user, key, size, now + RESERVATION_SECONDS, now) for key, size in new.items()),
            )
        return True

    def settle(self, user: str, key: str, stored: int | None) -> None:
        """The upload ended: ``stored`` bytes were kept (charged, unless another user's charge for the same
        object came first), or None (nothing kept: already stored, or the upload failed): released."""
        with self.store._write() as db:
            first = db.execute(
                "SELECT 1 FROM quota_charges WHERE object=? AND user<>? AND until IS NULL", (key, user)
            ).fetchone()
            if stored is None or first is not None:
                db.execute("DELETE FROM quota_charges WHERE user=? AND object=? AND until IS NOT NULL", (user, key))
            else:
                db.execute(
                    "UPDATE quota_charges SET bytes=?, until=NULL WHERE user=? AND object=? AND until IS NOT NULL",
                    (stored, user, key),
                )
