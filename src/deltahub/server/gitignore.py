""".gitignore matching for preupload's ``shouldIgnore``, as the Hub applies a repo's .gitignore to uploads.

Git's rules, minus what cannot occur in a flat list of repo paths: blank lines and '#' comments are
skipped; '!' re-includes; a trailing '/' matches folders only; a pattern with a '/' before its end is
anchored at the root, one without matches at any depth; '*', '?', '[...]' do not cross '/', '**'
does. The last matching rule wins, and a file inside an ignored folder stays ignored.
"""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_RULES = 2000  # a .gitignore longer than this is read up to here (rules are tried for every path)


class Rule(NamedTuple):
    regex: re.Pattern
    negate: bool
    folder_only: bool


def _glob(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := pattern.find("]", i + 2)) > 0:
            body = pattern[i + 1 : end]
            negate = body[:1] in ("!", "^")
            chars = body[1:] if negate else body
            out.append(f"[{'^' if negate else ''}{''.join(ch if ch == '-' else re.escape(ch) for ch in chars)}]")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse(text: str) -> list[Rule]:
    rules = []
    for line in text.splitlines()[:MAX_RULES]:
        line = line.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line[1:] if negate else line
        folder_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        body = _glob(line.lstrip("/"))
        rules.append(Rule(re.compile(body if anchored else f"(?:.*/)?{body}"), negate, folder_only))
    return rules


def _matches(rules: list[Rule], path: str, is_folder: bool) -> bool:
    ignored = False
    for rule in rules:
        if (is_folder or not rule.folder_only) and rule.regex.fullmatch(path):
            ignored = not rule.negate
    return ignored


def ignored(rules: list[Rule], path: str) -> bool:
    """Whether file ``path`` is ignored by ``rules`` (directly or because a folder above it is)."""
    parts = path.split("/")
    if any(_matches(rules, "/".join(parts[:i]), True) for i in range(1, len(parts))):
        return True
    return _matches(rules, path, False)
