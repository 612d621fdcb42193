"""File reconstruction answers (hub-docs ``docs/xet/download-protocol.md``): terms for a byte range, and
signed URLs for the xorb byte ranges they need.

Why signed URLs: hf_xet fetches xorb ranges without its token, as it does from the Hub's CDN; each URL
names one xorb, one byte range and an expiry, signed with the registry's secret, and is handed out only
in an answer to a caller allowed to read the file. Each range gets its own URL (the v2 format allows
several entries per xorb), so a fetch is always a single ``Range`` and never needs a multipart answer.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from .store import XetFile, XetStore

URL_TTL_S = 3600


@dataclass(frozen=True)
class Piece:
    xorb: str
    first: int
    last: int
    size: int  # raw bytes of chunks [first, last)
    start: int  # byte range [start, end] (inclusive) of those chunks in the stored xorb
    end: int


def range_sig(secret: bytes, xorb: str, start: int, end: int, exp: int) -> str:
    return hmac.new(secret, f"{xorb}:{start}:{end}:{exp}".encode(), hashlib.sha256).hexdigest()


def pieces(store: XetStore, f: XetFile, start: int, end: int) -> tuple[int, list[Piece]]:
    """(offset into the first piece, the terms covering bytes ``[start, end)`` trimmed to whole chunks)."""
    out: list[Piece] = []
    skip = 0
    pos = 0
    for t in f.terms:
        if pos >= end:
            break
        if pos + t.size <= start:
            pos += t.size
            continue
        chunks = store.chunks(t.xorb)
        first, last, at = t.first, t.last, pos
        while first < last and at + chunks[first].size <= start:  # whole chunks before the range
            at += chunks[first].size
            first += 1
        if not out:
            skip = start - at
        tail, stop = at, first
        while stop < last and tail < end:
            tail += chunks[stop].size
            stop += 1
        span = chunks[first:stop]
        out.append(Piece(t.xorb, first, stop, sum(c.size for c in span), span[0].start, span[-1].end - 1))
        pos += t.size
    return skip, out


def answer(store: XetStore, secret: bytes, base: str, f: XetFile, start: int, end: int, v2: bool) -> dict:
    """The QueryReconstructionResponse (v1: ``fetch_info``; v2: ``xorbs``) for bytes ``[start, end)``."""
    skip, found = pieces(store, f, start, end)
    exp = int(time.time()) + URL_TTL_S
    terms, fetch = [], {}
    for p in found:
        terms.append({"hash": p.xorb, "unpacked_length": p.size, "range": {"start": p.first, "end": p.last}})
        sig = range_sig(secret, p.xorb, p.start, p.end, exp)
        url = f"{base}/xorb-range/{p.xorb}?b={p.start}-{p.end}&x={exp}&s={sig}"
        chunks, byte_range = {"start": p.first, "end": p.last}, {"start": p.start, "end": p.end}
        entry = (
            {"url": url, "ranges": [{"chunks": chunks, "bytes": byte_range}]}
            if v2
            else {"range": chunks, "url": url, "url_range": byte_range}
        )
        if entry not in fetch.setdefault(p.xorb, []):
            fetch[p.xorb].append(entry)
    return {"offset_into_first_range": skip, "terms": terms, ("xorbs" if v2 else "fetch_info"): fetch}
