"""Pull a delta at a revision into a folder: atomic (temp then rename) and retried on network errors."""

from __future__ import annotations

import time
from pathlib import Path

from ..atomic import atomic_dir
from ..errors import DeltahubError, InputError
from ..home import home
from .hubops import api, parse_spec, repo_type_of


def cache_dir() -> Path:
    return home() / "deltas"


def _network_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for mod, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError")):
        try:
            errors.append(getattr(__import__(mod), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def pull(spec: str, out: str | Path | None = None, overwrite: bool = False, retries: int = 3, backoff: float = 0.5) -> Path:
    """Download ``NS/NAME[@REV]`` (branch, tag or sha) into ``out`` (default: the deltahub cache, per commit)."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    s = parse_spec(spec)
    rtype = repo_type_of(s)
    hub = api()
    sha = hub.repo_info(s.repo_id, repo_type=rtype, revision=s.revision).sha
    if out is None:
        out = cache_dir() / s.repo_id.replace("/", "--") / sha
        if (out / "deltahub.json").is_file() or (out / "README.md").is_file():
            return out
        overwrite = True
    out = Path(out)
    last: BaseException | None = None
    for attempt in range(retries):
        try:
            with atomic_dir(out, overwrite=overwrite) as tmp:
                hub.snapshot_download(s.repo_id, repo_type=rtype, revision=sha, local_dir=str(tmp))
                cache = Path(tmp) / ".cache"
                if cache.is_dir():
                    import shutil

                    shutil.rmtree(cache)
            return out
        except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
            raise InputError(f"cannot pull {spec}: {type(exc).__name__}", f"check it with: deltahub show {s.repo_id}") from None
        except _network_errors() as exc:
            last = exc
            time.sleep(backoff * (2**attempt))
    raise DeltahubError(f"network error pulling {spec} after {retries} tries ({type(last).__name__}); nothing was written",
                        "check the registry is reachable (DELTAHUB_ENDPOINT) and run the same command again")


def pull_with_info(spec: str, out: str | Path | None = None) -> tuple[Path, str, str]:
    """``(local folder, repo_id, commit sha)`` for ``NS/NAME[@REV]``: the sha pins what was pulled."""
    local = pull(spec, out=out)
    s = parse_spec(spec)
    sha = api().repo_info(s.repo_id, repo_type=repo_type_of(s), revision=s.revision).sha
    return local, s.repo_id, sha


def resolve_local(spec: str | Path) -> Path:
    """A local folder passes through; ``NS/NAME[@REV]`` is pulled into the cache."""
    p = Path(spec)
    if p.exists():
        return p
    return pull(str(spec))
