"""The registry's refusals as typed exceptions, and the one table that turns them into HTTP answers.

Storage and validation raise these; handlers never choose a status code for a failure themselves.
Anything that is not a ``RegistryError`` is a bug and surfaces as a 500 (in tests: a failure).
The message reaches huggingface_hub three ways, as the Hub sends it: ``X-Error-Message``, the JSON
``error`` field, and ``X-Error-Code`` (which picks the client's exception class).
"""

from __future__ import annotations

import errno
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.responses import JSONResponse


class RegistryError(Exception):
    """A refusal with a message meant for the client; ``commit`` adds X-Repo-Commit, ``extra`` body fields."""

    def __init__(self, message: str, *, commit: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.commit = commit
        self.extra = extra or {}


class BadRequest(RegistryError):
    """A name, path, revision, oid or payload that fails validation."""


class InvalidPath(BadRequest):
    """A file path in a request body that the Hub refuses (it answers 422 for those, 400 for one in the URL)."""


class Unauthorized(RegistryError):
    """No (valid) token where one is needed."""


class Forbidden(RegistryError):
    """The caller may read the repo but not do this to it."""


class RepoNotFound(RegistryError):
    """No such repo, or one the caller may not read (the two are indistinguishable on purpose).

    The Hub's message is exactly "Repository not found": huggingface_hub leaves it out of its own
    "Repository Not Found for url ..." text only when it is a substring of it.
    """

    def __init__(self, message: str = "Repository not found", **kwargs):
        super().__init__(message, **kwargs)


class GatedRepo(RegistryError):
    """A gated repo's files, asked for by someone outside its namespace."""


class NotFound(RegistryError):
    """No such discussion, comment, collection, collection item or endpoint (no X-Error-Code: the client
    has no exception class for these)."""


class RevisionNotFound(RegistryError):
    """No such branch, tag or commit in the repo."""


class EntryNotFound(RegistryError):
    """No such file or folder at the revision."""


class ObjectNotFound(RegistryError):
    """An LFS object this repo does not hold (LFS verify)."""


class Conflict(RegistryError):
    """The repo, branch or tag already exists."""


class StaleParent(RegistryError):
    """``parentCommit`` is not the branch head any more (the Hub's wording, which users already know)."""

    MESSAGE = "The branch was updated since you opened this page. Please refresh and try again."

    def __init__(self, message: str = MESSAGE, **kwargs):
        super().__init__(message, **kwargs)


class Unprocessable(RegistryError):
    """A well-formed request the current state refuses: merging a closed pull request, pushing to a merged one."""


class PayloadTooLarge(RegistryError):
    """A body over its limit."""


class ObjectNotUploaded(RegistryError):
    """A commit names an LFS object that was not uploaded to this repo (nor is readable elsewhere)."""


class RangeNotSatisfiable(RegistryError):
    """A byte range that starts at or past the end of the file (Xet reconstructions, resolve of Xet files)."""


class NotSupported(RegistryError):
    """A Hub feature this registry does not have (Xet)."""


class UpstreamFailed(RegistryError):
    """The upstream Hub a mirror reads through to refused, broke off, or sent content that fails its hash."""


class DiskFull(RegistryError):
    """ENOSPC while writing: the message says how much space is left and where."""

    @classmethod
    def at(cls, root: Path) -> DiskFull:
        try:
            free_mb = shutil.disk_usage(root).free // 2**20
        except OSError:
            free_mb = 0
        return cls(f"registry disk full: {free_mb} MB free under {root}")


# The one mapping from refusal to (HTTP status, X-Error-Code); codes are the ones huggingface_hub knows.
HTTP_STATUS: dict[type[RegistryError], tuple[int, str | None]] = {
    BadRequest: (400, None),
    InvalidPath: (422, None),
    Unauthorized: (401, None),
    Forbidden: (403, None),
    GatedRepo: (403, "GatedRepo"),
    RepoNotFound: (404, "RepoNotFound"),
    RevisionNotFound: (404, "RevisionNotFound"),
    EntryNotFound: (404, "EntryNotFound"),
    ObjectNotFound: (404, None),
    NotFound: (404, None),
    Conflict: (409, None),
    StaleParent: (412, None),
    PayloadTooLarge: (413, None),
    ObjectNotUploaded: (422, None),
    Unprocessable: (422, None),
    RangeNotSatisfiable: (416, None),
    NotSupported: (501, None),
    UpstreamFailed: (502, None),
    DiskFull: (507, None),
}

_UNSAFE_IN_HEADER = re.compile(r"[^\x20-\x7e]")


def header_safe(value: str, limit: int = 500) -> str:
    """Printable ASCII only: a CR/LF from a client string must never split or break a response header."""
    return _UNSAFE_IN_HEADER.sub("?", value[:limit])


def status_of(exc: RegistryError) -> tuple[int, str | None]:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    raise TypeError(f"{type(exc).__name__} has no entry in HTTP_STATUS")


def error_response(exc: RegistryError) -> JSONResponse:
    status, code = status_of(exc)
    headers = {"X-Error-Message": header_safe(exc.message)}
    if code:
        headers["X-Error-Code"] = code
    if exc.commit:
        headers["X-Repo-Commit"] = header_safe(exc.commit)
    return JSONResponse({"error": exc.message, **exc.extra}, status_code=status, headers=headers)


SQLITE_FULL = 13


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL


@contextmanager
def disk_guard(root: Path) -> Iterator[None]:
    """Turn ENOSPC (from the OS or SQLite) inside the block into ``DiskFull`` naming ``root``."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        if is_disk_full(exc):
            raise DiskFull.at(root) from exc
        raise
