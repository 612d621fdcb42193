"""Resolve of a file stored through Xet: the Hub's Xet headers for hf_xet, reconstructed bytes for anyone else."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..errors import BadRequest, RangeNotSatisfiable
from .store import XetFile

if TYPE_CHECKING:
    from ..context import Hub
    from ..storage import Repo

_RANGE = re.compile(r"bytes=([0-9]{1,15})-([0-9]{0,15})")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``bytes=S-E`` range (E inclusive, clamped); None without one."""
    if not header:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None:
        raise BadRequest(f"unsupported Range '{header[:60]}': one 'bytes=START-END' range")
    start = int(m.group(1))
    end = int(m.group(2)) + 1 if m.group(2) else size
    if start >= size or end <= start:
        raise RangeNotSatisfiable(f"range {header[:60]} is outside the file's {size} bytes")
    return start, min(end, size)


def xet_headers(request: Request, hub: Hub, repo: Repo, sha: str, f: XetFile) -> dict[str, str]:
    """The Hub's headers that make hf_xet download natively: the file's Xet hash, and where to get a read
    token for this commit."""
    prefix = {"model": "models", "dataset": "datasets", "space": "spaces"}[repo.type]
    refresh = f"{hub.base(request)}/api/{prefix}/{repo.repo_id}/xet-read-token/{sha}"
    return {"X-Xet-Hash": f.hash, "X-Xet-Refresh-Route": refresh, "Link": f'<{refresh}>; rel="xet-auth"'}


def file_response(request: Request, hub: Hub, f: XetFile, headers: dict[str, str]) -> Response:
    """The reconstructed bytes for a plain HTTP client (one Range, as resolve serves blobs)."""
    rng = byte_range(request.headers.get("range"), f.size) if f.size else None
    start, end = rng if rng is not None else (0, f.size)
    headers = {**headers, "Content-Length": str(end - start)}
    status = 200
    if rng is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{f.size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(
        hub.store.xet.read(f, start, end), status_code=status, headers=headers, media_type="application/octet-stream"
    )
