"""Read-through to an upstream Hub: a repo this registry does not hold is fetched from the upstream,
verified, and kept as a read-only mirror of the revisions asked for; pushes never go upstream.

How a read of ``NS/NAME`` at ``REV`` on a mirror (or an unknown repo) is answered:
- ``REV`` a full commit sha already stored: served from the store (a pinned revision never changes);
- otherwise the upstream is asked what ``REV`` is now (so a new resolve of ``main`` sees a moved head),
  that commit's tree is stored under the upstream's own sha, its regular files are downloaded and
  checked against their git sha1, and its LFS files are fetched on first read, streamed to the
  client while they are written and hashed, and kept only if their sha256 and size match;
- the upstream unreachable (one short connect timeout, then remembered for ``DOWN_FOR`` s): the
  stored revision if there is one, else a 404 that names the repo and the upstream.

Private upstream repos: the caller's bearer token is forwarded (never this registry's own tokens),
the mirror is stored private, and every later read must present a token the upstream accepts for
that repo (checked upstream, remembered for ``ACCESS_TTL`` s); listings never show private mirrors.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import quote

from .errors import (
    BadRequest,
    EntryNotFound,
    Forbidden,
    RegistryError,
    RepoNotFound,
    RevisionNotFound,
    UpstreamFailed,
)
from .history import Entry
from .paths import check_path, check_revision
from .storage import Repo, git_blob_oid

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from .auth import Auth
    from .storage import Store

CONNECT_TIMEOUT = 3.0  # s: an offline machine fails fast instead of retrying for half a minute
READ_TIMEOUT = 60.0  # s between two chunks of a download
DOWN_FOR = 30.0  # s during which an unreachable upstream is not asked again
ACCESS_TTL = 60.0  # s a token the upstream accepted for a private repo is trusted without asking again
MAX_TREE_FILES = 100_000
CHUNK = 1 << 20
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
PREFIX = {"model": "", "dataset": "datasets/"}


class Unreachable(Exception):
    """The upstream did not answer (no route, refused, timed out, or blocked by a test's network guard)."""


class Mirrors:
    """The registry's read-through policy: which repos are mirrors, who may read them, fetching them."""

    def __init__(
        self,
        store: Store,
        auth: Auth,
        upstream: str | None,
        open_token: str = "deltahub-open",
        owner_token: Callable[[], str | None] | None = None,
    ):
        self.store = store
        self.auth = auth
        self.upstream = upstream.rstrip("/") if upstream else None
        self.open_token = open_token
        self.owner_token = owner_token  # the owner's own Hub token, sent upstream for requests with the owner token
        self._down_until = 0.0
        self._down_reason = ""
        self._access: dict[tuple[int, str], float] = {}
        self._client = None

    # -- the hook Hub.repo calls ------------------------------------------------------------
    def serve(
        self,
        request: Request,
        rtype: str,
        ns: str,
        name: str,
        rev: str,
        repo: Repo | None,
        write: bool,
        shadowed: bool = False,
    ) -> Repo | None:
        """The repo to answer with when it is (or becomes) a mirror, synced at ``rev`` (the URL's revision, as
        the client meant it); None when the caller's normal rules apply. ``shadowed``: a local repo of that name
        exists but the caller may not see it; it is answered exactly as a missing one, and never replaced."""
        mirror = repo is not None and self.store.mirror_of(repo) is not None
        token = self._forwardable(request)
        if write:
            if mirror:
                if repo.private:  # who may not read it must not learn it is there
                    try:
                        self._sync(rtype, ns, name, "main", token, repo)
                    except RegistryError:
                        raise RepoNotFound() from None
                self.refuse_changes(repo)
            return None
        if repo is not None and not mirror:
            return None
        if rtype not in PREFIX or (
            repo is None and (self.upstream is None or self._published_here(request, rtype, ns, name))
        ):
            return None
        rev = check_revision(rev or "main")
        return self._sync(rtype, ns, name, rev, token, repo, shadowed)

    def refuse_changes(self, repo: Repo) -> None:
        """Pushes, pull requests and discussions never go upstream: a mirror takes none of them."""
        upstream = self.store.mirror_of(repo)
        if upstream is not None:
            raise Forbidden(
                f"{repo.repo_id} is a read-only mirror of {upstream}: pushes, pull requests and "
                "discussions never go upstream; publish under your own namespace instead"
            )

    def hidden(self, repos: list[Repo]) -> list[Repo]:
        """Listings: private mirrors are left out (reading one needs a token the upstream accepts)."""
        ids = self.store.mirror_ids()
        return [r for r in repos if not (r.private and r.id in ids)]

    # -- syncing one revision ---------------------------------------------------------------
    def _sync(
        self, rtype: str, ns: str, name: str, rev: str, token: str | None, repo: Repo | None, shadowed: bool = False
    ) -> Repo:
        repo_id = f"{ns}/{name}"
        if repo is not None and _SHA1.match(rev) and self._has_commit(repo, rev):
            if not repo.private or self._access.get((repo.id, _token_key(token)), 0.0) > time.monotonic():
                return repo  # a pinned revision: nothing upstream can change it
            # a private pinned revision: the upstream decides who reads it, answering as for any other repo
        if self.upstream is None:
            return self._offline(repo, rev, repo_id, "this registry has no upstream")
        stand_in_for_main = False
        if repo is None and rev != "main":  # a new mirror records upstream's main too: cards and listings read it
            try:
                repo = self._sync(rtype, ns, name, "main", token, None, shadowed)
            except RevisionNotFound:
                stand_in_for_main = True
        try:
            info = self._json(f"/api/{rtype}s/{repo_id}/revision/{quote(rev, safe='')}", token)
        except Unreachable as exc:
            return self._offline(repo, rev, repo_id, f"its upstream {self.upstream} is unreachable ({exc})")
        except _UpstreamStatus as exc:
            if exc.code == "RevisionNotFound":
                raise RevisionNotFound(f"Invalid rev id: {rev} ({repo_id} on the upstream {self.upstream})") from None
            raise RepoNotFound(
                f"Repository not found: {repo_id} (neither in this registry nor readable on its "
                f"upstream {self.upstream}: {exc.status} {exc.message})"
            ) from None
        sha, private = str(info.get("sha", "")), info.get("private") is not False
        if not _SHA1.match(sha):
            raise UpstreamFailed(f"upstream {self.upstream} answered an invalid commit sha for {repo_id}")
        if shadowed:  # upstream holds a repo of that name, which the local one hides: it is not read through
            raise RepoNotFound()
        refs = [] if sha.startswith(rev) else [rev]
        if stand_in_for_main:
            refs.append("main")
        stored = repo is not None and self._has_commit(repo, sha)
        tree = dict(self.store.tree(sha)) if stored else self._tree(rtype, repo_id, sha, token)
        mirrored = self.store.import_mirror(rtype, ns, name, self.upstream, private, sha, tree, time.time(), refs)
        if private:
            self._access[(mirrored.id, _token_key(token))] = time.monotonic() + ACCESS_TTL
        return mirrored

    def _offline(self, repo: Repo | None, rev: str, repo_id: str, why: str) -> Repo:
        """Without the upstream, a stored revision of a public mirror is still served."""
        if repo is not None and not repo.private:
            try:
                self.store.resolve(repo, rev)
                return repo
            except RegistryError:
                pass
        raise RepoNotFound(f"Repository not found: {repo_id} (this registry does not hold it at {rev!r} and {why})")

    def _tree(self, rtype: str, repo_id: str, sha: str, token: str | None) -> dict[str, Entry]:
        """The commit's files as store entries: regular files downloaded and checked now, LFS files described."""
        tree: dict[str, Entry] = {}
        url = f"/api/{rtype}s/{repo_id}/tree/{sha}?recursive=true&expand=false"
        while url:
            items, url = self._json_page(url, token)
            for item in items:
                if not isinstance(item, dict) or item.get("type") != "file":
                    continue
                path, entry = self._entry(rtype, repo_id, sha, item, token)
                tree[path] = entry
                if len(tree) > MAX_TREE_FILES:
                    raise UpstreamFailed(f"{repo_id} on {self.upstream} has more than {MAX_TREE_FILES} files")
        return tree

    def _entry(self, rtype: str, repo_id: str, sha: str, item: dict, token: str | None) -> tuple[str, Entry]:
        try:
            path = check_path(str(item.get("path", "")))
        except BadRequest as exc:
            raise UpstreamFailed(f"upstream {self.upstream} lists an unsafe path in {repo_id}: {exc.message}") from None
        oid, size, lfs = str(item.get("oid", "")), item.get("size"), item.get("lfs")
        if not _SHA1.match(oid) or not isinstance(size, int) or size < 0:
            raise UpstreamFailed(f"upstream {self.upstream} describes {repo_id}/{path} with an invalid oid or size")
        if isinstance(lfs, dict):
            sha256 = str(lfs.get("oid", ""))
            if not _SHA256.match(sha256) or lfs.get("size", size) != size:
                raise UpstreamFailed(f"upstream {self.upstream} gives {repo_id}/{path} an invalid LFS sha256 or size")
            return path, Entry(sha256, size, oid, True)
        data = b"".join(self._download(rtype, repo_id, sha, path, size, token))
        if git_blob_oid(data) != oid:
            raise UpstreamFailed(f"{repo_id}/{path} from {self.upstream} does not match its git sha1 {oid}")
        return path, Entry(self.store.put_bytes(data), size, oid, False)

    # -- large files ------------------------------------------------------------------------
    def blob_response(
        self, request: Request, repo: Repo, sha: str, path: str, entry: Entry, headers: dict[str, str]
    ) -> Response | None:
        """Answer a read of a mirror file whose blob is not stored yet; None once it is (the caller serves it)."""
        from starlette.responses import Response, StreamingResponse

        if self.store.mirror_of(repo) is None or self.upstream is None:
            raise EntryNotFound(f"Entry not found: {path} (its content is missing from this registry)", commit=sha)
        if request.method == "HEAD":
            return Response(
                status_code=200,
                headers={**headers, "Content-Length": str(entry.size)},
                media_type="application/octet-stream",
            )
        token = self._forwardable(request)
        chunks = self._fetch(repo.type, repo.repo_id, sha, path, entry, token)
        if request.headers.get("range"):
            for _ in chunks:  # a ranged read of a file not stored yet: store it whole first
                pass
            return None
        first = next(chunks, b"")  # errors before the first byte still become a clean HTTP error
        return StreamingResponse(
            _prepend(first, chunks),
            headers={**headers, "Content-Length": str(entry.size)},
            media_type="application/octet-stream",
        )

    def _fetch(self, rtype: str, repo_id: str, sha: str, path: str, entry: Entry, token: str | None) -> Iterator[bytes]:
        """Yield the file's bytes as they arrive while writing them to a temp file; it joins the store only
        if its sha256 and size match. The last chunk is held back until then, so a client never receives
        a complete file that failed the check."""
        with self.store.incoming(entry.size) as incoming:  # removes the temp file whatever ends this
            held = None
            for chunk in self._download(rtype, repo_id, sha, path, entry.size, token):
                incoming.write(chunk)
                if held is not None:
                    yield held
                held = chunk
            if incoming.finish() != entry.sha256:
                raise UpstreamFailed(f"{repo_id}/{path} from {self.upstream} does not match its sha256 {entry.sha256}")
            incoming.adopt(entry.sha256)
        if held is not None:
            yield held

    # -- HTTP -------------------------------------------------------------------------------
    def _http(self):
        if self._client is None:
            import httpx2

            self._client = httpx2.Client(
                timeout=httpx2.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
                follow_redirects=True,
                headers={"user-agent": "deltahub-registry"},
            )
        return self._client

    def _send(self, url: str, token: str | None, stream: bool = False):
        """One request to the upstream; a 401 with a token is retried without it (the Hub refuses unknown
        tokens even on public repos)."""
        if time.monotonic() < self._down_until:
            raise Unreachable(self._down_reason)
        client = self._http()
        for auth in [token, None] if token else [None]:
            headers = {"authorization": f"Bearer {auth}"} if auth else {}
            try:
                request = client.build_request("GET", self.upstream + url, headers=headers)
                response = client.send(request, stream=stream)
            except Exception as exc:  # connect errors, timeouts, a test's network guard: all "down"
                self._down_until = time.monotonic() + DOWN_FOR
                self._down_reason = f"{type(exc).__name__}: {exc}"[:200]
                raise Unreachable(self._down_reason) from None
            if response.status_code == 401 and auth:
                response.close()
                continue
            if response.status_code != 200:
                error = _UpstreamStatus(response)
                response.close()
                raise error
            return response
        raise AssertionError("unreachable")

    def _json(self, url: str, token: str | None) -> dict:
        data, _ = self._json_page(url, token)
        if not isinstance(data, dict):
            raise UpstreamFailed(f"upstream {self.upstream} answered {url} with something other than an object")
        return data

    def _json_page(self, url: str, token: str | None):
        response = self._send(url, token)
        try:
            data = response.json()
        except ValueError:
            raise UpstreamFailed(f"upstream {self.upstream} answered {url} with invalid JSON") from None
        nxt = response.links.get("next", {}).get("url")
        if nxt and not nxt.startswith(self.upstream + "/"):
            raise UpstreamFailed(f"upstream {self.upstream} paginates to another host: {nxt[:100]}")
        return data, (nxt[len(self.upstream) :] if nxt else None)

    def _download(self, rtype: str, repo_id: str, sha: str, path: str, size: int, token: str | None) -> Iterator[bytes]:
        """The file's bytes from upstream's resolve URL at the pinned sha; never more than ``size`` bytes."""
        url = f"/{PREFIX[rtype]}{repo_id}/resolve/{sha}/{quote(path)}"
        try:
            response = self._send(url, token, stream=True)
        except _UpstreamStatus as exc:
            raise UpstreamFailed(
                f"upstream {self.upstream} refused {repo_id}/{path}: {exc.status} {exc.message}"
            ) from None
        except Unreachable as exc:
            raise UpstreamFailed(f"upstream {self.upstream} is unreachable ({exc})") from None
        try:
            first = response.history[0] if response.history else response
            commit = first.headers.get("x-repo-commit")
            if commit and commit != sha:
                raise UpstreamFailed(
                    f"upstream {self.upstream} served {repo_id}/{path} from commit {commit}, not {sha}"
                )
            n = 0
            for chunk in response.iter_bytes(CHUNK):
                n += len(chunk)
                if n > size:
                    raise UpstreamFailed(f"{repo_id}/{path} from {self.upstream} is larger than its {size} bytes")
                yield chunk
        finally:
            response.close()
        if n != size:
            raise UpstreamFailed(f"{repo_id}/{path} from {self.upstream} has {n} bytes, not {size}")

    # -- small helpers ----------------------------------------------------------------------
    def _forwardable(self, request: Request) -> str | None:
        """What to send the upstream for this caller: its bearer token, unless it is one of this registry's own
        (never sent upstream); for the owner's token, the owner's own Hub token (``owner_token``)."""
        authorization = request.headers.get("authorization")
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        token = authorization[7:].strip()
        if token and self.auth.owner is not None and self.auth.tokens.get(token) == self.auth.owner:
            return self.owner_token() if self.owner_token is not None else None
        if not token or token == self.open_token or token in self.auth.tokens:
            return None
        return token

    def _published_here(self, request: Request, rtype: str, ns: str, name: str) -> bool:
        """The name is a local repo of the other type (a client probing model, then dataset): never ask upstream.
        One the caller may not see counts as absent, as everywhere."""
        other = self.store.get_repo("dataset" if rtype == "model" else "model", ns, name)
        if other is None or self.store.mirror_of(other) is not None:
            return False
        return self.auth.can_read(self.auth.user(request.headers.get("authorization")), other.ns, other.private)

    def _has_commit(self, repo: Repo, sha: str) -> bool:
        try:
            return self.store.resolve(repo, sha) == sha
        except RevisionNotFound:
            return False


class _UpstreamStatus(Exception):
    """A non-200 answer from the upstream, with the Hub's error code and message."""

    def __init__(self, response):
        self.status = response.status_code
        self.code = response.headers.get("x-error-code")
        self.message = (response.headers.get("x-error-message") or "")[:200]
        super().__init__(f"{self.status} {self.code} {self.message}")


def _token_key(token: str | None) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
