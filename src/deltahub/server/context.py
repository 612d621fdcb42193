"""What every handler shares: the registry state (``Hub``) and the helpers that read a request safely.

Handlers (routes/*.py) get the state with ``hub_of(request)``, names from the URL with ``param``
(which undoes the routing escapes of asgi.py), bodies with ``body`` (size-limited, parsed into a
typed model), and the repo with ``Hub.repo`` (validated names, read/write permission checked, a
private repo indistinguishable from a missing one).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from starlette.requests import Request

from . import payloads as P
from .asgi import unescape
from .auth import Auth
from .collection_store import Collections
from .discussion_store import Discussions
from .errors import BadRequest, DiskFull, Forbidden, GatedRepo, PayloadTooLarge, RepoNotFound, Unauthorized
from .limits import MAX_JSON_BYTES
from .paths import check_name
from .quota import DEFAULT_LIMIT, Quotas
from .storage import Incoming, ReadPolicy, Repo, Store
from .upstream import Mirrors

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_TRUE = ("1", "true", "True")
_DIGITS = re.compile(r"[0-9]{1,18}")  # str.isdigit() also takes '²', which int() then refuses


class Hub:
    """The application state: one store (with its discussions and collections), one auth policy, the
    read-through policy for repos not held here, a secret for LFS upload tickets, the upload quotas."""

    def __init__(
        self,
        root: Path,
        auth: Auth,
        page_size: int = 1000,
        upstream: str | None = None,
        upload_quota: int | None = DEFAULT_LIMIT,
        upstream_token: Callable[[], str | None] | None = None,
    ):
        self.store = Store(root)
        self.discussions = Discussions(self.store)
        self.collections = Collections(self.store)
        self.auth = auth
        # read-through to the upstream Hub (upstream.py); ``upstream_token``: what it sends there for the owner
        self.mirrors = Mirrors(self.store, auth, upstream, owner_token=upstream_token)
        self.page_size = page_size
        self.secret = secrets.token_bytes(32)
        self.quotas = Quotas(self.store, auth, upload_quota)  # bytes into others' repos (quota.py)

    # -- who is asking ------------------------------------------------------------------------------
    def user(self, request: Request) -> str | None:
        """The user of the request's valid token; None without one (reads are decided on this, in every mode)."""
        return self.auth.user(request.headers.get("authorization"))

    def writer(self, request: Request) -> str | None:
        """Whom a write is made as: the token's user, else ``OPEN_USER`` in open mode (auth.py)."""
        return self.auth.writer(self.user(request))

    def signed_in(self, request: Request, doing: str) -> str:
        """The caller's name; 401 without a valid token (open mode counts as signed in, as ``OPEN_USER``)."""
        user = self.writer(request)
        if user is None:
            raise Unauthorized(f"You must be authenticated to {doing}")
        return user

    def read_policy(self, user: str | None) -> ReadPolicy:
        return lambda ns, private: self.auth.can_read(user, ns, private)

    def can_write(self, user: str | None, repo: Repo) -> bool:
        return self.auth.can_write(user, repo.ns)

    def visible(self, request: Request, repo: Repo | None) -> Repo | None:
        """``repo`` when the caller may see it; None when it may not (then it is answered as a missing repo)."""
        if repo is None or self.store.mirror_of(repo) is not None:
            return repo  # a mirror's readers are decided by its upstream (upstream.py)
        return repo if self.auth.can_read(self.user(request), repo.ns, repo.private) else None

    def repo(self, request: Request, rtype: str, write: bool = False) -> Repo:
        """The repo named in the URL, readable by the caller (and writable when ``write``)."""
        ns = check_name(param(request, "ns"), "namespace")
        name = check_name(param(request, "name"), "repo name")
        return self.repo_named(request, rtype, ns, name, write)

    def repo_named(
        self, request: Request, rtype: str, ns: str, name: str, write: bool = False, evict: bool = False
    ) -> Repo:
        """``evict``: the caller deletes the repo, which a writer may do to a mirror too (it is only a copy).

        A repo the caller may not read takes the very path of a repo this registry does not hold (read-through
        included), so that both answers are the same bytes: nobody learns which private repos exist."""
        held = self.store.get_repo(rtype, ns, name)
        repo = self.visible(request, held)
        shadowed = held is not None and repo is None
        if not evict:
            rev = param(request, "rev") if "rev" in request.path_params else "main"
            mirrored = self.mirrors.serve(request, rtype, ns, name, rev, repo, write, shadowed)  # upstream.py decides
            if mirrored is not None:
                return mirrored
        user = self.user(request)
        if repo is None or not self.auth.can_read(user, repo.ns, repo.private):
            raise RepoNotFound()
        if write and not self.can_write(self.auth.writer(user), repo):
            raise Forbidden(f"You don't have the rights to write to {repo.repo_id}")
        return repo

    def check_gate(self, request: Request, repo: Repo) -> None:
        """A gated repo's files are for its namespace's members only (access requests are not supported)."""
        if repo.gated and not self.can_write(self.user(request), repo):
            raise GatedRepo(
                f"Access to {repo.type} {repo.repo_id} is restricted and you are not in the authorized "
                "list: only members of its namespace may download its files here."
            )

    # -- URLs handed out ----------------------------------------------------------------------------
    def base(self, request: Request) -> str:
        """This server's URL as the client named it (the Host header, validated: it goes into URLs we hand out)."""
        host = request.headers.get("host", "")
        if not _HOST.fullmatch(host):
            raise BadRequest(f"invalid Host header: '{host[:80]}'")
        return f"{request.url.scheme}://{host}"

    def repo_url(self, request: Request, repo: Repo) -> str:
        prefix = "" if repo.type == "model" else f"{repo.type}s/"
        return f"{self.base(request)}/{prefix}{repo.repo_id}"

    # -- LFS upload tickets --------------------------------------------------------------------------
    def _ticket(self, repo: Repo, oid: str, size: int, day: int, charge: str | None) -> str:
        msg = f"{repo.id}:{repo.created!r}:{oid}:{size}:{day}".encode()
        if charge is not None:
            msg += b"\0charge\0" + charge.encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()

    def ticket(self, repo: Repo, oid: str, size: int, charge: str | None = None) -> str:
        """An upload permit for one object into one repo (the PUT carries no token), valid 1-2 days; ``charge``:
        the user whose quota reserved it (quota.py), who is charged when the bytes are stored."""
        return self._ticket(repo, oid, size, int(time.time()) // 86400, charge)

    def ticket_ok(self, repo: Repo, oid: str, size: int, ticket: str, charge: str | None = None) -> bool:
        day = int(time.time()) // 86400
        given = ticket.encode()  # bytes: compare_digest refuses non-ASCII str with a TypeError
        return any(
            hmac.compare_digest(self._ticket(repo, oid, size, d, charge).encode(), given) for d in (day, day - 1)
        )


def hub_of(request: Request) -> Hub:
    return request.app.state.hub


def param(request: Request, name: str, default: str | None = None) -> str:
    """A path parameter as the client meant it (asgi.py keeps '%2F' and '%25' escaped for routing)."""
    value = request.path_params.get(name, default)
    if value is None:
        raise KeyError(name)
    return unescape(value)


def rtype_of(request: Request) -> str:
    """The repo type of the URL: its ``{t}`` segment, or the /datasets/ prefix of file URLs."""
    if "t" in request.path_params:
        t = request.path_params["t"]
        if t not in TYPES:
            raise RepoNotFound(f"unknown repo type '{t[:40]}'")
        return TYPES[t]
    for t in ("datasets", "spaces"):
        if request.url.path.startswith(f"/{t}/"):
            return TYPES[t]
    return "model"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name) in _TRUE


def int_param(request: Request, name: str, default: int, low: int = 0) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw) or len(raw) > 12 or int(raw) < low:
        raise BadRequest(f"invalid {name} parameter: '{raw[:40]}' (an integer >= {low})")
    return int(raw)


def content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw):
        raise BadRequest(f"invalid Content-Length: '{raw[:40]}'")
    return int(raw)


async def read_body(request: Request, limit: int = MAX_JSON_BYTES) -> bytes:
    declared = content_length(request)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body too large ({declared} bytes, the limit is {limit})")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body too large (the limit is {limit} bytes)")
    return bytes(body)


async def body(request: Request, model: type[P.M]) -> P.M:
    """The JSON body as ``model`` (400 naming the field when it does not fit)."""
    return P.parse_body(await read_body(request), model)


async def receive(request: Request, into: Incoming, check: Callable[[bytes], None] | None = None) -> None:
    """Stream the body into ``into`` (``check`` sees each chunk first); on a full disk read the rest
    first, so that the client gets to read the 507 instead of a broken pipe."""
    stream = request.stream()
    try:
        async for chunk in stream:
            if check is not None:
                check(chunk)
            into.write(chunk)
    except DiskFull:
        declared = content_length(request)
        if declared is not None and declared <= into.limit:
            async for _ in stream:
                pass
        raise
