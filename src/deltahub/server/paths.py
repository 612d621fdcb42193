"""Validation of every name that arrives in a request (repo ids, file paths, revisions).

Anything that could escape the store or confuse a client is refused with a 400 before it
reaches storage: ``..``, absolute paths, backslashes, NUL, empty parts, over-long names.
"""

from __future__ import annotations

import re

MAX_PATH = 1000
MAX_PART = 255
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class BadRequest(ValueError):
    """A request field that fails validation (answered with HTTP 400)."""


def check_name(part: str, what: str = "name") -> str:
    """A namespace or repo name: letters, digits, ``._-``, no ``..``, at most 96 characters."""
    if not part or not _NAME.match(part) or ".." in part or part.endswith(".git"):
        raise BadRequest(f"invalid {what}: {part!r}")
    return part


def check_path(path: str) -> str:
    """A file path inside a repo: relative, forward slashes, no ``.``/``..`` parts, no NUL."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH:
        raise BadRequest(f"invalid path: {str(path)[:80]!r}")
    if "\\" in path or "\0" in path or path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise BadRequest(f"invalid path: {path[:80]!r}")
    for part in path.split("/"):
        if part in ("", ".", "..") or len(part) > MAX_PART or any(ord(c) < 32 for c in part):
            raise BadRequest(f"invalid path: {path[:80]!r}")
    return path


def check_revision(rev: str) -> str:
    """A branch, tag or commit sha as given by a client."""
    if not rev or len(rev) > MAX_PART or "\0" in rev or "\\" in rev or ".." in rev or rev.startswith("/"):
        raise BadRequest(f"invalid revision: {rev[:80]!r}")
    return rev
