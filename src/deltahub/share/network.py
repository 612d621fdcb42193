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

from ..errors import DeltahubError
from .hub_errors import denied, hub_errors

__all__ = ["BACKOFF", "RETRIES", "check_repo_id", "denied", "network_errors", "remote_calls", "retrying"]

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
    from huggingface_hub.utils import validate_repo_id

    with hub_errors(repo_id):
        validate_repo_id(repo_id)


@contextlib.contextmanager
def remote_calls(hub, target: str, what: str, missing: str | None = None) -> Iterator[Callable[[Callable[[], T]], T]]:
    """A ``net(call)`` that retries network errors; a 401/403 becomes one line about write access and, with
    ``missing`` (the fix to suggest), a 404 one line saying ``target`` was not found. Other client
    errors pass through: a caller that words "no such repo" its own way wraps its call in
    :func:`~deltahub.share.hub_errors.hub_errors`."""
    with hub_errors(target, endpoint=hub.endpoint, write=True, missing=missing):
        yield lambda call: retrying(call, hub.endpoint, what)
