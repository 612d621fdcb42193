"""The HTTP server settings of the registry, one place for ``start_server`` and ``deltahub hub serve``.

Why a protocol subclass: uvicorn's httptools protocol keeps every header of a request in memory
with no bound and answers any parser error with a bare 400. Here an over-long URL gets 414 and
over-large headers get 431 (with the error in the Hub's JSON/X-Error-Message form), before the
request reaches the app and before an endless header can fill memory.
"""

from __future__ import annotations

import asyncio
import json

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import header_safe
from .limits import MAX_HEADER_BYTES, MAX_URL_BYTES

LINGER_S = 5.0
LINGER_BYTES = 64 * 1024**2
_REASONS = {414: "URI Too Long", 431: "Request Header Fields Too Large"}


class _HeadTooLarge(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools with limits on the request line and headers (see limits.py)."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._in_head, self._head_seen, self._url_bytes, self._header_bytes = True, 0, 0, 0
        self._refusal: tuple[int, str] | None = None
        self._discarded: int | None = None  # bytes read and dropped after a refusal

    def data_received(self, data: bytes) -> None:
        if self._discarded is not None:
            self._discarded += len(data)
            if self._discarded > LINGER_BYTES:
                self.transport.close()
            return
        if self._in_head and self._head_seen > MAX_URL_BYTES + MAX_HEADER_BYTES:
            # one endless header line: httptools would buffer it whole before calling on_header
            self._refuse_now(431, f"request headers are larger than {MAX_HEADER_BYTES} bytes")
            return
        super().data_received(data)
        if self._in_head:
            self._head_seen += len(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_seen, self._url_bytes, self._header_bytes = True, 0, 0, 0

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > MAX_URL_BYTES:
            self._refusal = (414, f"request URL is longer than {MAX_URL_BYTES} bytes")
            raise _HeadTooLarge
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refusal = (431, f"request headers are larger than {MAX_HEADER_BYTES} bytes")
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this on any parser error; one raised by a limit above gets its own status."""
        if self._refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse_now(*self._refusal)

    def _refuse_now(self, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nx-error-message: {header_safe(message)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        # Lingering close: closing with unread bytes makes the kernel send a reset, and a client still
        # sending its headers would never read the answer. Read and drop for a while, then close.
        self._discarded = 0
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)


def server_config(app, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", access_log=False, http=BoundedHttpToolsProtocol
    )
