"""What every command's input may be: a local folder (or file), or a registry repo ``NS/NAME[@REV]``.

One set of rules for ``deltahub merge``, ``compose``, ``train``/``generate`` (pairs), ``eval`` and
``pull``, so the same text means the same thing everywhere:

- a path that exists wins, even when it also reads as a repo id (``alice/delta`` as a folder);
- otherwise text of the form ``NS/NAME`` with an optional ``@REV`` (a branch, a tag or a commit sha;
  a branch may itself hold slashes) that does not read as a path (no leading ``.``, ``/`` or ``~``,
  no file suffix the caller reads) is pulled from the registry, pinned to the commit it resolved to;
  a name the Hub would refuse is a one-line error before any request;
- anything else is a one-line "not found" naming what the caller expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

SPEC = re.compile(r"^([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(.+))?$")
"""``NS/NAME[@REV]``: the grammar of a repo reference (the names are checked further by the Hub's rules)."""


@dataclass(frozen=True)
class Source:
    """A resolved input: the text given, its local path and, when pulled, the repo and the commit sha."""

    spec: str
    path: Path
    repo: str | None = None
    revision: str | None = None


def is_repo_spec(text: str, file_suffixes: tuple[str, ...] = ()) -> bool:
    """Whether ``text`` reads as ``NS/NAME[@REV]`` rather than as a path."""
    text = text.strip()
    if text.startswith((".", "/", "~")) or not SPEC.match(text):
        return False
    name = text.split("@", 1)[0]
    return not name.lower().endswith(tuple(s.lower() for s in file_suffixes))


def resolve_source(
    spec: str | Path,
    *,
    what: str,
    fix: str,
    repo_type: str | None = None,
    file_suffixes: tuple[str, ...] = (),
) -> Source:
    """``spec`` as a local path or a pulled repo (see the module doc). ``what`` names the input in the
    "not found" line (``adapter``, ``pairs``...), ``fix`` says what to pass instead; ``repo_type``
    (``model``/``dataset``; default: whichever exists, models first) is the kind of repo pulled;
    ``file_suffixes`` are the file types the caller reads, so ``a/b.jsonl`` is a missing file, not a repo."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.exists():
        return Source(spec=text, path=path)
    if not is_repo_spec(text, file_suffixes):
        raise InputError(f"{what} {text!r} not found", fix)
    from .pull import pull_with_info

    local, repo, sha = pull_with_info(text.strip(), repo_type=repo_type)
    return Source(spec=text, path=Path(local), repo=repo, revision=sha)
