"""The registry's ASGI app: routes speaking the Hub's HTTP API (shared/reference/hub-protocol.md §1.3).

Handlers (routes/*.py, one module per resource) are module-level functions: validate names
(paths.py) and bodies (payloads.py), check who may see or write (context.Hub, auth.py), then call
the stores (storage.py, discussion_store.py, collection_store.py). Refusals are typed exceptions
that the one table in errors.py turns into status, X-Error-Code and message; anything else is a bug
and stays a 500. Upload bodies are streamed to temp files that are removed whatever ends the
request, never held whole in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .asgi import Framing
from .auth import Auth
from .context import Hub
from .errors import RegistryError, error_response
from .quota import DEFAULT_LIMIT
from .routes import ROUTES  # (registers the URL convertors the routes and pages use)
from .web import install as install_pages


async def _refused(request: Request, exc: RegistryError) -> Response:
    return error_response(exc)


async def _client_gone(request: Request, exc: ClientDisconnect) -> Response:
    return Response(status_code=400)  # nobody is left to read it; the temp file is already gone


def build_app(
    root: Path,
    auth: Auth | None = None,
    page_size: int = 1000,
    upstream: str | None = None,
    upload_quota: int | None = DEFAULT_LIMIT,
    upstream_token: Callable[[], str | None] | None = None,
) -> Framing:
    """The ASGI app serving one registry root (``.state.hub`` holds its state); repos it does not hold are
    read through from ``upstream`` (upstream.py); ``upload_quota``: bytes per user into repos it cannot write
    (quota.py; None: unlimited); ``upstream_token``: the owner's own Hub token for the upstream (endpoint/owner.py)."""
    app = Starlette(routes=ROUTES, exception_handlers={RegistryError: _refused, ClientDisconnect: _client_gone})
    app.state.hub = Hub(root, auth or Auth(), page_size, upstream, upload_quota, upstream_token)
    install_pages(app)  # after the API routes: the API keeps every URL it matches
    return Framing(app)
