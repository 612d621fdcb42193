"""huggingface_hub's client errors in deltahub's words: one line naming the problem and the fix.

Every call deltahub makes through the client is wrapped in :func:`hub_errors` (or asks
:func:`if_exists` where absence is an answer, not an error), so "no such repo", "no such revision",
"a name the Hub refuses" and "no write access" read the same from ``pull``, ``publish``, ``merge``,
``submit`` and the mergekit plugin. Errors it does not know pass through unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..errors import InputError

T = TypeVar("T")
NAME_FIX = "use NS/NAME of letters, digits, '-', '_' and '.', without '--' or '..', at most 96 characters"


def _where(endpoint: str | None) -> str:
    from ..endpoint import describe, describe_url

    return describe_url(endpoint) if endpoint else describe()


def no_revision(repo_id: str, revision: str | None, endpoint: str | None = None) -> InputError:
    """'NS/NAME has no revision REV', with where to see the ones it has."""
    return InputError(
        f"{repo_id} has no revision '{revision}' on {_where(endpoint)}",
        f"see its branches and tags with: deltahub show {repo_id}",
    )


def invalid_name(repo_id: str, exc: BaseException) -> InputError:
    """A name the Hub refuses (``a--b``, ``a..b``, too long), with the Hub's reason."""
    reason = str(exc).split(":")[0].strip().rstrip(".")
    return InputError(f"{repo_id!r} is not a valid repo id ({reason})", NAME_FIX)


def denied(exc: BaseException, repo_id: str, endpoint: str | None = None) -> InputError | None:
    """A one-line error for an HTTP 401/403 from the registry, or None for anything else."""
    from huggingface_hub.errors import HfHubHTTPError

    response = getattr(exc, "response", None) if isinstance(exc, HfHubHTTPError) else None
    status = getattr(response, "status_code", None)
    if status not in (401, 403):
        return None
    why = (getattr(exc, "server_message", None) or "").strip()
    if "read-only mirror" in why:  # a repo the embedded registry read through from its upstream
        return InputError(f"{why} (on {_where(endpoint)})", "publish under your own namespace")
    return InputError(
        f"no write access to {repo_id} on {_where(endpoint)} (HTTP {status})",
        "set HF_TOKEN to a token of a user who owns that namespace, or publish under your own namespace",
    )


def client_error(
    exc: BaseException,
    repo_id: str,
    *,
    revision: str | None = None,
    endpoint: str | None = None,
    what: str = "no repo",
    missing_repo: InputError | None = None,
    invalid_is_missing: bool = False,
    write: bool = False,
    missing: str | None = None,
) -> InputError | None:
    """The one-line error for the client's ``exc`` about ``repo_id`` (None: not one deltahub words).

    A read: a missing revision, a missing repo ("``what`` NS/NAME on <registry>", or ``missing_repo``
    where a command has a better line) and a name the Hub refuses (worded as a missing repo with
    ``invalid_is_missing``, where the text may have been meant as a path). A ``write``: a 401/403 is
    "no write access" and, with ``missing`` (the fix to suggest), a 404 is "NS/NAME not found"; what
    a write's caller words itself (a missing repo it is about to create) passes through."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if write:
        if not isinstance(exc, HfHubHTTPError):
            return None
        error = denied(exc, repo_id, endpoint)
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if error is None and missing and status == 404:
            error = InputError(f"{repo_id} not found on {_where(endpoint)}", missing)
        return error
    if isinstance(exc, RevisionNotFoundError):
        return no_revision(repo_id, revision, endpoint)
    if isinstance(exc, RepositoryNotFoundError) or (invalid_is_missing and isinstance(exc, HFValidationError)):
        from ..endpoint import repo_not_found

        return missing_repo or repo_not_found(repo_id, exc, what)  # a gated repo too: the client cannot read it
    if isinstance(exc, HFValidationError):
        return invalid_name(repo_id, exc)
    return None


@contextlib.contextmanager
def hub_errors(repo_id: str, **how) -> Iterator[None]:
    """Raise the client's errors about ``repo_id`` as :func:`client_error`'s one line (``how``: its options)."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    try:
        yield
    except (HfHubHTTPError, HFValidationError) as exc:
        error = client_error(exc, repo_id, **how)
        if error is None:
            raise
        raise error from None


def if_exists(call: Callable[[], T], unreadable: tuple[type[BaseException], ...] = ()) -> T | None:
    """``call()``, or None where the repo, the revision or the file it reads does not exist (a name the
    Hub refuses names nothing), or where it raises one of ``unreadable``."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return call()
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError, HFValidationError, *unreadable):
        return None
