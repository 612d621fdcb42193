"""Calls to a registry over the network: retried with backoff, then one line that names the endpoint.

A refused connection or a dropped response is retried (0.5 s, 1 s, ...); a registry that stays
unreachable ends in a :class:`DeltahubError` naming the endpoint, never a ``ConnectError`` traceback.
Rights and names are checked here too, so publish and pull speak in one voice.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..errors import DeltahubError, InputError

T = TypeVar("T")
RETRIES = 3
BACKOFF = 0.5  # seconds before the second try; doubled after every further failure


def network_errors() -> tuple[type[BaseException], ...]:
    """Transport failures of the HTTP client huggingface_hub uses (and the stdlib's)."""
    import httpx2

    return ConnectionError, TimeoutError, httpx2.TransportError


def retrying(call: Callable[[], T], endpoint: str, what: str, retries: int = RETRIES, backoff: float = BACKOFF) -> T:
    """``call()``, retried on network errors; after ``retries`` tries one DeltahubError naming ``endpoint``."""
    last: BaseException | None = None
    for attempt in range(retries):
        try:
            return call()
        except network_errors() as exc:
            last = exc
            if attempt + 1 < retries:
                time.sleep(backoff * 2**attempt)
    from ..endpoint import describe_url

    raise DeltahubError(
        f"network error {what}: the registry at {describe_url(endpoint)} did not answer ({type(last).__name__} "
        f"after {retries} tries); nothing was written",
        "start it ('deltahub hub serve') or set DELTAHUB_ENDPOINT to a reachable registry, then run the same "
        "command again",
    )


def check_repo_id(repo_id: str) -> None:
    """Refuse names the Hub refuses (``a--b``, ``a..b``, too long) before any request."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        reason = str(exc).split(":")[0].strip().rstrip(".")
        raise InputError(
            f"{repo_id!r} is not a valid repo id ({reason})",
            "use NS/NAME of letters, digits, '-', '_' and '.', without '--' or '..', at most 96 characters",
        ) from None


def denied(exc: BaseException, repo_id: str, endpoint: str) -> InputError | None:
    """A one-line error for an HTTP 401/403 from the registry, or None for anything else."""
    from huggingface_hub.errors import HfHubHTTPError

    response = getattr(exc, "response", None) if isinstance(exc, HfHubHTTPError) else None
    status = getattr(response, "status_code", None)
    if status not in (401, 403):
        return None
    from ..endpoint import describe_url

    why = (getattr(exc, "server_message", None) or "").strip()
    if "read-only mirror" in why:  # a repo the embedded registry read through from its upstream
        return InputError(f"{why} (on {describe_url(endpoint)})", "publish under your own namespace")
    return InputError(
        f"no write access to {repo_id} on {describe_url(endpoint)} (HTTP {status})",
        "set HF_TOKEN to a token of a user who owns that namespace, or publish under your own namespace",
    )


@contextlib.contextmanager
def remote_calls(hub, target: str, what: str, missing: str | None = None) -> Iterator[Callable[[Callable[[], T]], T]]:
    """A ``net(call)`` that retries network errors; a 401/403 becomes one line about write access and, with
    ``missing`` (the fix to suggest), a 404 one line saying ``target`` was not found."""
    from huggingface_hub.errors import HfHubHTTPError

    from ..endpoint import describe_url

    try:
        yield lambda call: retrying(call, hub.endpoint, what)
    except HfHubHTTPError as exc:
        error = denied(exc, target, hub.endpoint)
        if error is not None:
            raise error from None
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if missing and status == 404:
            raise InputError(f"{target} not found on {describe_url(hub.endpoint)}", missing) from None
        raise
