"""Pull a delta at a revision into a folder: atomic (temp then rename) and retried on network errors.

The revision is resolved to a commit once and that commit is downloaded, so the sha a caller records
is the one it got even when a branch moves meanwhile. A pull killed mid-download leaves a hidden
``.OUT.XXXXXXXX.tmp`` beside ``OUT``; the next pull of ``OUT`` removes it (only folders of that exact
name scheme that no live pull holds).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from ..atomic import atomic_dir, held, remove_stale_partials
from ..endpoint import Endpoint, api
from ..home import home
from .bases import record_source
from .hub_errors import hub_errors
from .hubops import parse_spec, repo_type_of
from .network import BACKOFF, RETRIES, check_repo_id, retrying


def cache_dir() -> Path:
    return home() / "deltas"


def pull(
    spec: str,
    out: str | Path | None = None,
    overwrite: bool = False,
    retries: int = RETRIES,
    backoff: float = BACKOFF,
    repo_type: str | None = None,
    endpoint: Endpoint | None = None,
) -> Path:
    """Download ``NS/NAME[@REV]`` (branch, tag or sha) into ``out`` (default: the deltahub cache, per commit)."""
    return pull_with_info(
        spec, out, overwrite=overwrite, retries=retries, backoff=backoff, repo_type=repo_type, endpoint=endpoint
    )[0]


def pull_with_info(
    spec: str,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    retries: int = RETRIES,
    backoff: float = BACKOFF,
    repo_type: str | None = None,
    endpoint: Endpoint | None = None,
) -> tuple[Path, str, str]:
    """``(local folder, repo_id, commit sha)`` for ``NS/NAME[@REV]``: the sha is the commit that was downloaded."""
    s = parse_spec(spec)
    check_repo_id(s.repo_id)
    hub = api(endpoint)

    def net(call, what):
        return retrying(call, hub.endpoint, what, retries, backoff)

    rtype = repo_type or net(lambda: repo_type_of(s, hub), f"pulling {spec}")
    sha = net(lambda: _commit_of(hub, s.repo_id, rtype, s.revision), f"pulling {spec}")
    if out is None:
        out = cache_dir() / s.repo_id.replace("/", "--") / sha
        if (out / "deltahub.json").is_file() or (out / "README.md").is_file():
            return out, s.repo_id, sha
        overwrite = True
    out = Path(out)
    remove_stale_partials(out)
    net(lambda: _download(hub, s.repo_id, rtype, sha, out, overwrite), f"pulling {spec}")
    return out, s.repo_id, sha


def _known_repo(hub, repo_id: str, rtype: str, revision: str | None):
    """'no such repo / revision' from the client as one-line InputErrors."""
    return hub_errors(repo_id, revision=revision, endpoint=hub.endpoint, what=f"no {rtype} repo")


def _commit_of(hub, repo_id: str, rtype: str, revision: str | None) -> str:
    with _known_repo(hub, repo_id, rtype, revision):
        return hub.repo_info(repo_id, repo_type=rtype, revision=revision).sha


def _download(hub, repo_id: str, rtype: str, sha: str, out: Path, overwrite: bool) -> None:
    """Snapshot ``sha`` into a locked temporary sibling that becomes ``out`` only when complete."""
    with contextlib.ExitStack() as stack:
        with atomic_dir(out, overwrite=overwrite) as tmp:
            stack.enter_context(held(tmp))  # released after the rename: no cleanup can take a live download
            with _known_repo(hub, repo_id, rtype, sha):
                hub.snapshot_download(repo_id, repo_type=rtype, revision=sha, local_dir=str(tmp))
            shutil.rmtree(Path(tmp) / ".cache", ignore_errors=True)
            record_source(Path(tmp), repo_id, rtype, sha)  # a base pulled here is published by its repo id


def resolve_local(spec: str | Path) -> Path:
    """A local folder passes through; ``NS/NAME[@REV]`` is pulled into the cache (:mod:`.source`'s rules)."""
    from .source import resolve_source

    return resolve_source(spec, what="delta", fix="pass a local folder or a repo id NS/NAME[@REV]").path
