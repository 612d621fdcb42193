"""ASGI framing around the routes: routing on the raw URL path, and an X-Request-Id on every answer.

Why route on the raw path: huggingface_hub URL-quotes revisions with ``safe=''``, so a pull request
arrives as ``.../resolve/refs%2Fpr%2F1/file`` and a branch ``feat/x`` as ``.../tree/feat%2Fx/dir``.
The decoded path (what Starlette routes on) makes them ambiguous with the file path after them.
Here the path is decoded except for ``%2F`` and ``%25``, which stay escaped, so an encoded slash
stays inside its segment; ``unescape`` gives a parameter back its meaning. Since every literal
'%' is then written ``%25``, the two escapes cannot be confused with anything else.

Why a request id: huggingface_hub puts ``(Request ID: ...)`` into its error messages, as the Hub
sends one with every answer; users quote it, and a log can be searched for it.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import unquote_to_bytes

_KEPT = re.compile(rb"%(?:2[fF]|25)")
# the Hub API's URLs (the web pages, web/, keep Starlette's fully decoded paths)
_API = re.compile(rb"/(?:api/|lfs/upload/|(?:datasets/|spaces/)?[^/]+/[^/]+(?:/resolve/|\.git/info/lfs/))")
_ESCAPE = re.compile(r"%2F|%25")


def routing_path(raw: bytes) -> str:
    """``raw`` percent-decoded (as UTF-8), except '%2F' and '%25', which stay (upper-case) escapes."""
    pieces = _KEPT.split(raw)
    kept = [m.group().upper() for m in _KEPT.finditer(raw)]
    out = [unquote_to_bytes(pieces[0])]
    for escape, piece in zip(kept, pieces[1:], strict=True):
        out += [escape, unquote_to_bytes(piece)]
    return b"".join(out).decode("utf-8", "replace")


def unescape(segment: str) -> str:
    return _ESCAPE.sub(lambda m: "/" if m.group() == "%2F" else "%", segment)


_PRINTABLE = re.compile(rb"[\x21-\x7e]{1,200}")


def _request_id(scope) -> bytes:
    """The client's own id (``X-Request-Id``, else huggingface_hub's ``X-Amzn-Trace-Id``) when it is a plain token,
    as the Hub echoes it; a new one otherwise."""
    headers = dict(scope.get("headers") or [])
    for name in (b"x-request-id", b"x-amzn-trace-id"):
        value = headers.get(name)
        if value is not None and _PRINTABLE.fullmatch(value):
            return value
    return f"Root=1-{secrets.token_hex(4)}-{secrets.token_hex(12)}".encode()


class Framing:
    """Wraps the Starlette app: raw-path routing of API URLs (see above) and ``X-Request-Id`` on every response."""

    def __init__(self, app):
        self.app = app

    @property
    def state(self):  # ``app.state.hub`` keeps working on the wrapped app (RunningServer.stop uses it)
        return self.app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path")
        if raw is not None and _API.match(raw):
            scope = dict(scope, path=routing_path(raw.split(b"?", 1)[0]))
        request_id = _request_id(scope)

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), (b"x-request-id", request_id)])
            await send(message)

        await self.app(scope, receive, send_with_id)
