"""A repo card as safe HTML, and its ``deltahub:`` block as rows for a table.

A card is user content. Markdown is rendered by markdown-it with raw HTML off, so ``<script>``,
``<img onerror=...>`` and every other tag in a card come out as text. Links and images then pass
one policy (``_policy``): links may be http(s), mailto, in-page or same-server; images only from
the repo itself (a relative path, or this repo's own resolve URL), served through the page
routes' ``raw`` URL pinned to the commit shown. Anything else (``javascript:``, ``data:``, another
host's image) is dropped and its text kept, so nothing in a card can run or call out.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

from ..errors import BadRequest
from ..limits import MAX_CARD_YAML_BYTES
from ..paths import check_path, check_revision

# Card text rendered: hostile markdown (huge tables, many links) costs markdown-it time in proportion to its
# size (the figures: docs/measurements.md); pages render in the thread pool and cache by README blob.
MAX_RENDER_BYTES = 128 * 1024
_LINK_SCHEMES = ("http", "https", "mailto")


@dataclass(frozen=True)
class RepoLinks:
    """Where a card's relative URLs point: ``page`` is the repo's page path, ``rev`` the commit shown."""

    page: str
    rev: str

    def raw(self, path: str) -> str:
        return f"{self.page}/raw/{self.rev}/{quote(path, safe='/')}"


def card_body(text: str) -> str:
    """The Markdown after the YAML front matter (the same boundary ``tags.load_card`` reads)."""
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if 0 <= end <= MAX_CARD_YAML_BYTES:
            rest = text[end + 4 :]
            return rest[rest.find("\n") + 1 :] if "\n" in rest else ""
    return text


def _repo_path(path: str) -> str | None:
    """A path inside the repo from a card URL's (percent-encoded) path, or None when it leaves the repo."""
    path = posixpath.normpath(unquote(path)).lstrip("/") if path else ""
    try:
        return check_path(path)
    except BadRequest:
        return None


def _policy(url: str, links: RepoLinks, image: bool) -> str | None:
    """The URL to emit for a card's link or image, or None to drop it (see the module docstring)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme or parts.netloc:  # another site (or a scheme such as javascript:/data:)
        return None if image or (scheme and scheme not in _LINK_SCHEMES) else url
    if parts.path.startswith("/"):
        for kind in ("resolve", "raw"):
            head = f"{links.page}/{kind}/"
            if parts.path.startswith(head):
                rev, _, rest = parts.path[len(head) :].partition("/")
                try:
                    rev = check_revision(unquote(rev))
                except BadRequest:
                    return None
                path = _repo_path(rest)
                return None if path is None else RepoLinks(links.page, quote(rev, safe="")).raw(path)
        return None if image else url
    if not parts.path:
        return None if image else url  # an in-page anchor
    path = _repo_path(parts.path)
    if path is None:
        return None
    return links.raw(path) + ("" if image or not parts.fragment else f"#{quote(parts.fragment, safe='')}")


def _apply_policy(state: StateCore) -> None:
    links: RepoLinks = state.env["links"]
    for block in state.tokens:
        children = block.children or []
        for i, tok in enumerate(children):
            if tok.type == "image":
                src = _policy(str(tok.attrs.get("src", "")), links, image=True)
                if src is None:
                    alt = "".join(c.content for c in tok.children or [])
                    children[i] = Token("text", "", 0, content=f"[image not shown: {alt or 'external'}]")
                else:
                    tok.attrs["src"] = src
                    tok.attrs["loading"] = "lazy"
            elif tok.type == "link_open":
                href = _policy(str(tok.attrs.get("href", "")), links, image=False)
                if href is None:
                    tok.tag, tok.attrs = "span", {"class": "dropped-link", "title": "link removed by the card policy"}
                    close = next(c for c in children[i + 1 :] if c.type == "link_close")
                    close.tag = "span"
                else:
                    tok.attrs["href"] = href
                    if urlsplit(href).netloc:
                        tok.attrs["rel"] = "nofollow noopener noreferrer"


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.core.ruler.push("deltahub_link_policy", _apply_policy)
    return md


_MD = _markdown()


def render_card(text: str, links: RepoLinks) -> tuple[str, bool]:
    """(HTML of the card's Markdown body, whether it was cut at ``MAX_RENDER_BYTES``)."""
    body = card_body(text)
    cut = len(body.encode()) > MAX_RENDER_BYTES
    if cut:
        body = body.encode()[:MAX_RENDER_BYTES].decode("utf-8", "ignore")
    return _MD.render(body, {"links": links}), cut


def render_comment(text: str, links: RepoLinks) -> str:
    """A discussion comment as HTML: user content like a card, so the same renderer and link policy (raw HTML
    shown as text, images only from the repo, no script links); a comment is short (``limits.MAX_TEXT``)."""
    return _MD.render(text.encode()[:MAX_RENDER_BYTES].decode("utf-8", "ignore"), {"links": links})


# -- the deltahub block as a table ---------------------------------------------------------------
_ORDER = (
    "kind",
    "schema_version",
    "chosen",
    "rejected",
    "student",
    "prompts",
    "pairs",
    "filters",
    "dataset",
    "training",
    "lora",
    "generation",
    "gain",
    "metrics",
    "merge",
)
MAX_VALUE_CHARS = 300


def _text(value: Any) -> str:
    if isinstance(value, str):
        out = value
    elif isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        out = ", ".join(str(v) for v in value)
    elif isinstance(value, (dict, list)):
        out = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    else:
        out = "-" if value is None else str(value)
    return out if len(out) <= MAX_VALUE_CHARS else out[:MAX_VALUE_CHARS] + "…"


def block_sections(block: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """The ``deltahub:`` block as (section, [(key, value text)]): scalars in one 'delta' section first,
    then one section per mapping (chosen, rejected, training...), in the schema's order."""
    if not isinstance(block, dict):
        return []
    keys = [k for k in _ORDER if k in block] + sorted(k for k in block if k not in _ORDER)
    top = [(k, _text(block[k])) for k in keys if not isinstance(block[k], dict)]
    sections = [("delta", top)] if top else []
    for k in keys:
        if isinstance(block[k], dict):
            sections.append((k, [(str(sk), _text(sv)) for sk, sv in block[k].items()] or [("", "-")]))
    return sections
