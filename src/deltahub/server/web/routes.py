"""The page handlers: each validates its names like the API (``paths.py``), checks what the visitor may
read (``auth.py``, the API's rules), reads the store and renders a template.

Refusals are the API's typed exceptions, shown as an HTML page with the API's status code
(``errors.status_of``); a user error from the library (``InputError``) is a 400 page. Pages only
read: the two POST forms (sign in, sign out) carry the CSRF token.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from ...errors import InputError
from ...listing import SORTS
from .. import history as H
from ..errors import BadRequest, EntryNotFound, RegistryError, RepoNotFound, status_of
from ..limits import MAX_CARD_YAML_BYTES
from ..paths import check_name, check_path, check_revision
from ..storage import Repo
from . import cardhtml, catalog, compose, preview
from .community import Community, diff_lines
from .params import one_of, page_of, query_text, repo_type, whole_number
from .session import Visitor, local_target, read_form, remember_csrf, sign_in, sign_out, visitor

HERE = Path(__file__).resolve().parent
STATIC_PREFIX = "/-/static"  # '-' cannot start a namespace, so no repo URL can be shadowed
SECURITY_HEADERS = {
    # Defence in depth behind the card policy: no inline script or style, nothing from another origin.
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",  # a page may show private repos
}
RAW_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
TEXT_SUFFIXES = (".md", ".txt", ".json", ".jsonl", ".yaml", ".yml", ".csv", ".py", ".gitattributes")
HISTORY_SHOWN = 200
RENDERED_CARDS = 256
MAX_DIFF_BYTES = 64 * 1024  # each side of a card diff (difflib is quadratic at worst)
Handler = Callable[[Request, Visitor], Awaitable[Response] | Response]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _number(x: Any) -> str:
    return "-" if x is None else (f"{x:+.4g}" if isinstance(x, float) and math.isfinite(x) else str(x))


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, size=_size, num=_number, short=lambda s: str(s)[:8])
    env.globals.update(page_of=page_of, static=STATIC_PREFIX)
    return env


class PageRoute(Route):
    """A page route that does not see other methods: a POST to ``/lfs/verify`` (the shape ``/NS/NAME``) still
    falls through to the router's 404 as before the pages existed, rather than a 405 from a page route."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        return (Match.NONE, {}) if match is Match.PARTIAL else (match, child)


class Pages:
    """Page handlers over one ``Hub`` (its store and auth policy)."""

    def __init__(self, hub: Any):
        self.hub = hub
        self.store = hub.store
        self.auth = hub.auth
        self.cards = catalog.CardText(self.store)
        self.listing = catalog.Listing(self.store)
        self.env = _templates()
        self._rendered: OrderedDict[tuple, tuple[str, bool]] = OrderedDict()  # (repo, commit, README blob) -> HTML
        self._lock = threading.Lock()
        self.community = Community(self)

    # -- plumbing -------------------------------------------------------------------------------
    def render(self, request: Request, who: Visitor, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            who=who, here=request.url.path, open_mode=self.auth.open_mode, **ctx
        )
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def page(self, fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        """The handler with the visitor, refusals as pages, the CSRF cookie; a plain (non-async) handler runs in
        the thread pool: rendering a hostile 128 KB card takes seconds and must not stop the event loop (the API)."""

        async def wrapped(request: Request) -> Response:
            who = visitor(self.auth, request)
            try:
                if inspect.iscoroutinefunction(fn):
                    response = await fn(request, who)
                else:
                    response = await run_in_threadpool(fn, request, who)
            except RegistryError as exc:
                code = status_of(exc)[0]
                response = self.render(request, who, "error.html", code, code=code, message=exc.message)
            except InputError as exc:
                response = self.render(request, who, "error.html", 400, code=400, message=str(exc))
            remember_csrf(response, request, who)
            return response

        return wrapped

    def repo(self, request: Request, who: Visitor, rtype: str) -> Repo:
        """The repo named in the path if the visitor may read it; RepoNotFound otherwise (as the API)."""
        ns = check_name(request.path_params["ns"], "namespace")
        name = check_name(request.path_params["name"], "repo name")
        repo = self.store.get_repo(rtype, ns, name)
        readable = repo is not None and self.auth.can_read(who.user, ns, repo.private)
        if not readable or catalog.private_mirror(self.store, repo):
            raise RepoNotFound(f"Repository not found: {ns}/{name}")
        return repo

    def card_at(self, repo: Repo, sha: str, tree: H.Tree) -> dict:
        return repo.card if sha == self.store.resolve(repo, "main") else self.store.card(tree)

    def card_html(self, repo: Repo, sha: str, tree: H.Tree) -> tuple[str, bool] | None:
        readme = tree.get("README.md")
        if readme is None:
            return None
        key = (repo.id, sha, readme.sha256)
        with self._lock:
            if key in self._rendered:
                self._rendered.move_to_end(key)
                return self._rendered[key]
        text = self.store.read_blob(readme.sha256, MAX_CARD_YAML_BYTES + cardhtml.MAX_RENDER_BYTES + 1024)
        links = cardhtml.RepoLinks(page_of(repo.type, repo.repo_id), sha)
        out = cardhtml.render_card(text.decode("utf-8", "replace"), links)
        with self._lock:
            self._rendered[key] = out
            while len(self._rendered) > RENDERED_CARDS:
                self._rendered.popitem(last=False)
        return out

    def _rev(self, request: Request) -> str:
        return check_revision(request.path_params.get("rev") or request.query_params.get("rev") or "main")

    # -- listing --------------------------------------------------------------------------------
    def filters(self, request: Request, kind: str) -> catalog.Filters:
        return catalog.Filters(
            q=query_text(request, "q").strip(),
            base=query_text(request, "base").strip(),
            family=query_text(request, "family").strip(),
            min_pairs=whole_number(request, "min_pairs", 0),
            sort=one_of(request, "sort", SORTS, "recent"),
            kind=one_of(request, "kind", catalog.KINDS, kind),
            author=query_text(request, "author").strip(),
            page=whole_number(request, "page", 1) or 1,
        )

    def home(self, request: Request, who: Visitor, kind: str = "all") -> Response:
        f = self.filters(request, kind)
        rows = catalog.visible_rows(self.listing, self.auth, who.user, f.author)
        every = rows
        rows = catalog.select(rows, f, self.cards)
        pages = max(1, -(-len(rows) // catalog.PAGE_ROWS))
        shown = rows[(f.page - 1) * catalog.PAGE_ROWS : f.page * catalog.PAGE_ROWS]
        families = sorted({r["family"] for r in every if r["family"]})
        return self.render(
            request,
            who,
            "home.html",
            f=f,
            groups=catalog.grouped(shown),
            total=len(rows),
            pages=pages,
            bases=catalog.bases(every),
            families=families,
            kinds=catalog.KINDS,
            sorts=SORTS,
        )

    def models(self, request: Request, who: Visitor) -> Response:
        return self.home(request, who, "adapter")

    def datasets(self, request: Request, who: Visitor) -> Response:
        return self.home(request, who, "dataset")

    # -- one repo -------------------------------------------------------------------------------
    def _context(self, request: Request, who: Visitor, rtype: str, tab: str) -> dict[str, Any]:
        repo = self.repo(request, who, rtype)
        rev = self._rev(request)
        sha = self.store.resolve(repo, rev)
        tree = self.store.tree(sha)
        card = self.card_at(repo, sha, tree)
        row = catalog.row_of(dataclasses.replace(repo, card=card))
        refs = self.store.refs(repo)
        return {
            "repo": repo,
            "rev": rev,
            "sha": sha,
            "tree": tree,
            "card": card,
            "row": row,
            "refs": refs,
            "page": page_of(rtype, repo.repo_id),
            "tab": tab,
            "base_url": self.hub.base(request),
            "last": self.store.history(sha, limit=1)[0],
            "talk": self.community.counts(repo),
        }

    def repo_page(self, request: Request, who: Visitor) -> Response:
        rtype = repo_type(request)
        ctx = self._context(request, who, rtype, "card")
        block = ctx["card"].get("deltahub")
        ctx.update(
            card_html=self.card_html(ctx["repo"], ctx["sha"], ctx["tree"]),
            sections=cardhtml.block_sections(block),
            block=block if isinstance(block, dict) else {},
            in_collections=self.community.holding(ctx["repo"], who.user),
        )
        if rtype == "dataset":
            ctx.update(self._dataset(ctx["tree"]))
        return self.render(request, who, "repo.html", **ctx)

    def _dataset(self, tree: H.Tree) -> dict[str, Any]:
        shards = sorted(p for p in tree if p.endswith(".parquet"))
        shards = [p for p in shards if p.startswith("data/")] or shards
        if not shards:
            return {"preview": None, "shard_rows": None, "shards": 0}
        first = tree[shards[0]]
        got = preview.preview(self.store.local_blob(first.sha256), first.sha256, shards[0])
        rows = preview.count_rows(tuple(self.store.local_blob(tree[p].sha256) for p in shards))
        return {"preview": got, "shard_rows": rows, "shards": len(shards)}

    def files(self, request: Request, who: Visitor) -> Response:
        rtype = repo_type(request)
        ctx = self._context(request, who, rtype, "files")
        files = sorted(ctx["tree"].items())
        return self.render(request, who, "files.html", files=files, total=sum(e.size for _, e in files), **ctx)

    def commits(self, request: Request, who: Visitor) -> Response:
        rtype = repo_type(request)
        ctx = self._context(request, who, rtype, "commits")
        log = self.store.history(ctx["sha"], limit=HISTORY_SHOWN + 1)
        return self.render(request, who, "commits.html", log=log[:HISTORY_SHOWN], more=len(log) > HISTORY_SHOWN, **ctx)

    def commit(self, request: Request, who: Visitor) -> Response:
        rtype = repo_type(request)
        ctx = self._context(request, who, rtype, "commits")
        parent = ctx["last"]["parent"]
        return self._changes(request, who, ctx, parent, ctx["sha"])

    def compare(self, request: Request, who: Visitor) -> Response:
        rtype = repo_type(request)
        ctx = self._context(request, who, rtype, "commits")
        repo = ctx["repo"]
        old = self.store.resolve(repo, check_revision(query_text(request, "from") or "main", "from revision"))
        new = self.store.resolve(repo, check_revision(query_text(request, "to") or "main", "to revision"))
        return self._changes(request, who, ctx, old, new)

    def _changes(self, request: Request, who: Visitor, ctx: dict, old: str | None, new: str) -> Response:
        before = self.store.tree(old) if old else {}
        after = self.store.tree(new)
        changed = []
        for path, e in sorted(H.diff(before, after).items()):
            status = "removed" if e is None else ("added" if path not in before else "modified")
            changed.append((path, status, before.get(path), e))
        return self.render(
            request,
            who,
            "changes.html",
            old=old,
            new=new,
            changed=changed,
            diff=self._card_diff(before.get("README.md"), after.get("README.md")),
            commit_new=self.store.history(new, limit=1)[0],
            **ctx,
        )

    def _card_diff(self, a: H.Entry | None, b: H.Entry | None) -> list[tuple[str, str]] | None:
        """Unified diff lines of README.md as (css class, line); None when too large to diff."""
        texts = []
        for e in (a, b):
            if e is not None and e.size > MAX_DIFF_BYTES:
                return None
            texts.append("" if e is None else self.store.read_blob(e.sha256).decode("utf-8", "replace"))
        lines = difflib.unified_diff(
            texts[0].splitlines(), texts[1].splitlines(), "README.md", "README.md", lineterm="", n=3
        )
        return diff_lines(list(lines))

    def raw(self, request: Request, who: Visitor) -> Response:
        """One file of a repo for the browser: card images inline, text as text/plain, anything else a download;
        never as HTML, never sniffed, and sandboxed whatever it holds."""
        rtype = repo_type(request)
        repo = self.repo(request, who, rtype)
        sha = self.store.resolve(repo, self._rev(request))
        path = check_path(request.path_params["path"])
        e = self.store.entry(sha, path)
        if e is None:
            raise EntryNotFound(f"Entry not found: {path}", commit=sha)
        if self.store.content_size(e.sha256) != e.size:  # a mirror's large file, fetched on its first API read
            raise EntryNotFound(
                f"{path} is not fetched from the upstream yet: download it through the Hub API", commit=sha
            )
        blob = self.store.local_blob(e.sha256)
        suffix = Path(path).suffix.lower()
        headers = dict(RAW_HEADERS, **{"Cache-Control": "private, max-age=3600"})
        if suffix in IMAGE_TYPES:
            return FileResponse(blob, media_type=IMAGE_TYPES[suffix], headers=headers)
        if suffix in TEXT_SUFFIXES or path == "LICENSE":
            return FileResponse(blob, media_type="text/plain; charset=utf-8", headers=headers)
        return FileResponse(
            blob,
            media_type="application/octet-stream",
            headers=headers,
            filename=path.rsplit("/", 1)[-1],
            content_disposition_type="attachment",
        )

    # -- compose --------------------------------------------------------------------------------
    def compose(self, request: Request, who: Visitor) -> Response:
        base = query_text(request, "base").strip()
        rows = catalog.visible_rows(self.listing, self.auth, who.user)
        ctx: dict[str, Any] = {
            "base": base,
            "bases": catalog.bases(rows),
            "methods": compose.COMPOSE_METHODS,
            "result": None,
            "error": None,
            "base_url": self.hub.base(request),
        }
        if not base:
            method = compose.default_method()
            return self.render(request, who, "compose.html", candidates=[], chosen={}, method=method, params={}, **ctx)
        tag = f"base_model:adapter:{base}"
        candidates = sorted(
            (r for r in rows if r["repo"].type == "model" and tag in r["repo"].tags), key=lambda r: r["repo_id"]
        )
        q = request.query_params
        method = one_of(request, "method", compose.COMPOSE_METHODS, compose.default_method())
        submitted = "method" in q
        ticked = q.getlist("d")
        if len(ticked) > compose.MAX_DELTAS:
            raise BadRequest(f"too many deltas ticked (at most {compose.MAX_DELTAS})")
        by_id = {r["repo_id"]: r for r in candidates}
        unknown = [d for d in ticked if d not in by_id]
        if unknown:
            raise BadRequest(f"'{unknown[0][:100]}' is not a delta for {base[:100]} that you can read")
        chosen = {d: (q.get(f"w:{d}") or "1.0")[:40] for d in ticked}  # as typed: shown again on an error
        given = {k[2:]: v for k, v in q.items() if k.startswith("p:")}
        status = 200
        try:
            params = compose.parse_params(method, given, submitted)
            if ticked:
                picks = tuple(
                    compose.Pick(d, self.store.resolve(by_id[d]["repo"], "main"), compose.parse_weight(w))
                    for d, w in chosen.items()
                )
                ctx["result"] = compose.Composition(base, method, picks, params)
        except InputError as exc:
            ctx["error"], status = str(exc), 400
            params = {
                name: given.get(name, default) if not isinstance(default, bool) else default
                for name, default in compose.method_defaults(method).items()
            }
        return self.render(
            request,
            who,
            "compose.html",
            status,
            candidates=candidates,
            chosen=chosen,
            method=method,
            params=params,
            **ctx,
        )

    # -- signing in -----------------------------------------------------------------------------
    async def login(self, request: Request, who: Visitor) -> Response:
        if request.method == "GET":
            return self.render(request, who, "login.html", next=local_target(query_text(request, "next")), error=None)
        form = await read_form(request, who)
        target = local_target(form.get("next"))
        token = form.get("token", "").strip()
        if not token or token not in self.auth.tokens:
            return self.render(request, who, "login.html", 401, next=target, error="Unknown token.")
        response = RedirectResponse(target, status_code=303)
        sign_in(response, request, token)
        return response

    async def logout(self, request: Request, who: Visitor) -> Response:
        await read_form(request, who)
        response = RedirectResponse("/", status_code=303)
        sign_out(response, request)
        return response

    # -- routes ---------------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        """Page routes, to be placed AFTER the API's (first match wins, so the API keeps all its URLs).

        Dataset routes come before model routes: ``/datasets/NS/NAME`` is a dataset, as on the Hub.
        """
        p = self.page
        repo_routes = []
        for prefix in ("/datasets/{ns}/{name}", "/{ns}/{name}"):
            repo_routes += [
                PageRoute(prefix, p(self.repo_page), methods=["GET"]),
                PageRoute(prefix + "/tree/{rev:path}", p(self.files), methods=["GET"]),
                PageRoute(prefix + "/commits/{rev:path}", p(self.commits), methods=["GET"]),
                PageRoute(prefix + "/commit/{rev}", p(self.commit), methods=["GET"]),
                PageRoute(prefix + "/compare", p(self.compare), methods=["GET"]),
                PageRoute(prefix + "/raw/{rev}/{path:anypath}", p(self.raw), methods=["GET"]),
                PageRoute(prefix + "/discussions", p(self.community.discussions), methods=["GET"]),
                PageRoute(prefix + "/discussions/{num:int}", p(self.community.discussion), methods=["GET"]),
            ]
        return [
            Mount(STATIC_PREFIX, app=StaticFiles(directory=HERE / "static"), name="static"),
            PageRoute("/", p(self.home), methods=["GET"]),
            PageRoute("/models", p(self.models), methods=["GET"]),
            PageRoute("/datasets", p(self.datasets), methods=["GET"]),
            PageRoute("/compose", p(self.compose), methods=["GET"]),
            PageRoute("/login", p(self.login), methods=["GET", "POST"]),
            PageRoute("/logout", p(self.logout), methods=["POST"]),
            PageRoute("/collections", p(self.community.collections), methods=["GET"]),
            PageRoute("/collections/{ns}/{slug}", p(self.community.collection), methods=["GET"]),
            *repo_routes,
        ]
