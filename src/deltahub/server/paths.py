"""Validation of every name that arrives in a request: repo names, file paths, revisions, object ids.

Anything that could escape the store, break a response header or confuse a client is refused
with a 400 before it reaches storage. Repo names follow huggingface_hub's ``validate_repo_id``
(and use its messages, which users already know); branch and tag names follow git's
check-ref-format, as the Hub does.
"""

from __future__ import annotations

import re

from .errors import BadRequest, InvalidPath

MAX_PATH = 1000
MAX_PART = 255
MAX_REF = 255
_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _shown(text: str) -> str:
    """A client string as it may appear in a message: control characters escaped, length capped."""
    return repr(text[:100])[1:-1]


def check_name(part: object, what: str = "repo name") -> str:
    """A namespace or repo name as the public Hub accepts it (huggingface_hub ``validate_repo_id`` rules)."""
    if not isinstance(part, str) or not part:
        raise BadRequest(f"Invalid {what}: it must be a non-empty string.")
    if not _NAME.fullmatch(part):
        raise BadRequest(
            "Repo id must use alphanumeric chars, '-', '_' or '.'. The name cannot start or end with "
            f"'-' or '.' and the maximum length is 96: '{_shown(part)}'."
        )
    if "--" in part or ".." in part:
        raise BadRequest(f"Cannot have -- or .. in repo_id: '{_shown(part)}'.")
    if part.endswith(".git"):
        raise BadRequest(f"Repo_id cannot end by '.git': '{_shown(part)}'.")
    return part


# '/x', '\\x', UNC, 'C:x', '..\\x', '.\\x': outside the repo on some OS
_ROOTED = re.compile(r"[/\\]|[A-Za-z]:|\.{1,2}\\")


def check_path(path: object, error: type[BadRequest] = BadRequest) -> str:
    """A file path inside a repo: relative, '/' separators, no empty/``.``/``..`` parts, no control characters.

    A backslash is an ordinary character, as on the Hub ('folder/..\\..\\file' is one odd file name), except
    at the start, where Windows would read the path as leaving the repo. The store never uses a path as a
    file name, so these rules protect clients, which check downloads themselves too.
    """
    if not isinstance(path, str) or not path or len(path) > MAX_PATH:
        raise error(f"invalid path: '{_shown(str(path))}' (1 to {MAX_PATH} characters)")
    if _ROOTED.match(path) or _CONTROL.search(path):
        raise error(f"invalid path: '{_shown(path)}' (relative, no drive, no control characters)")
    for part in path.split("/"):
        if part in ("", ".", "..") or len(part) > MAX_PART:
            raise error(f"invalid path: '{_shown(path)}' (no empty, '.' or '..' parts)")
    return path


def check_body_path(path: object) -> str:
    """``check_path`` for a path in a request body, refused with 422 as the Hub does."""
    return check_path(path, InvalidPath)


def check_revision(rev: object, what: str = "revision") -> str:
    """A branch, tag or commit sha: git's check-ref-format rules, which the Hub applies to branch and tag names."""
    if not isinstance(rev, str) or not rev or len(rev) > MAX_REF:
        raise BadRequest(f"Invalid {what}: it must be 1 to {MAX_REF} characters.")
    bad = _REF_FORBIDDEN.search(rev)
    if bad:
        raise BadRequest(f"Invalid {what} '{_shown(rev)}': it cannot contain {bad.group()!r}.")
    if ".." in rev or "@{" in rev or "//" in rev or rev == "@":
        raise BadRequest(f"Invalid {what} '{_shown(rev)}': it cannot contain '..', '@{{' or '//', nor be '@'.")
    if rev.startswith("/") or rev.endswith(("/", ".")):
        raise BadRequest(f"Invalid {what} '{_shown(rev)}': it cannot start with '/' nor end with '/' or '.'.")
    if any(part.startswith(".") or part.endswith(".lock") for part in rev.split("/")):
        raise BadRequest(f"Invalid {what} '{_shown(rev)}': no part may start with '.' or end with '.lock'.")
    return rev


def check_oid(oid: object) -> str:
    """An LFS object id: a sha256 as 64 lowercase hex digits, nothing else (it names a file in the store)."""
    if not isinstance(oid, str) or not _SHA256.fullmatch(oid):
        raise BadRequest(f"invalid LFS oid '{_shown(str(oid))}': it must be a sha256 (64 lowercase hex digits)")
    return oid


def is_sha256(oid: object) -> bool:
    return isinstance(oid, str) and _SHA256.fullmatch(oid) is not None
