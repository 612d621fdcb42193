"""The xorb format (hub-docs ``docs/xet/xorb.md``, xet-core ``xorb_object_format.rs``): parse and verify.

A xorb is a run of chunks, each an 8-byte header (version 0, compressed length u24, scheme, raw length u24)
and its compressed bytes, optionally followed by xet-core's footer ("XETBLOB" v1: the xorb hash, every chunk
hash, byte and raw boundaries, then the footer's length as a u32). Parsing streams from the uploaded temp
file: every length is bounded before anything is read or allocated, every chunk is decompressed into at
most its declared size and hashed, and the footer, when sent, must agree with what the chunks say. What
is kept is the chunk region alone: it is what downloads read by byte range.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

import lz4.frame

from . import hashing

HEADER = 8
MAX_CHUNK = 128 * 1024  # a chunk's raw size is at most 2 x the 64 KiB target (strictly enforced upstream too)
MAX_COMPRESSED = 2 * MAX_CHUNK
# the serialized chunk region: hf_xet fills a xorb with up to 64 MiB of raw chunks, plus their headers
MAX_XORB_BYTES = 66 * 1024**2
MAX_FOOTER_BYTES = 4 * 1024**2
MAX_CHUNKS = MAX_XORB_BYTES // HEADER
IDENT, IDENT_HASHES, IDENT_BOUNDS = b"XETBLOB", b"XBLBHSH", b"XBLBBND"
NONE, LZ4, BG4_LZ4 = 0, 1, 2


class XorbError(ValueError):
    """The bytes are not a well-formed xorb, or do not match their hash."""


@dataclass(frozen=True)
class Chunk:
    hash: bytes  # raw 32 bytes
    start: int  # byte offset of its header in the chunk region
    end: int  # byte offset just past its compressed bytes
    size: int  # raw (uncompressed) length


@dataclass(frozen=True)
class Xorb:
    hash: bytes
    chunks: tuple[Chunk, ...]
    region: int  # bytes of the chunk region (what is stored)

    @property
    def raw_bytes(self) -> int:
        return sum(c.size for c in self.chunks)


def bg4_ungroup(grouped: bytes) -> bytes:
    """Undo byte grouping: the four groups (sizes n//4 plus one for the first n%4) interleaved again."""
    n = len(grouped)
    split, rem = divmod(n, 4)
    sizes = [split + (1 if rem > k else 0) for k in range(4)]
    out = bytearray(n)
    pos = 0
    for k, size in enumerate(sizes):
        out[k::4] = grouped[pos : pos + size]
        pos += size
    return bytes(out)


def _lz4(payload: bytes, size: int) -> bytes:
    d = lz4.frame.LZ4FrameDecompressor()
    try:
        out = d.decompress(payload, max_length=size + 1)
    except RuntimeError as exc:
        raise XorbError(f"invalid LZ4 frame ({exc})") from None
    if len(out) != size or not d.eof:
        raise XorbError(f"LZ4 chunk decompresses to a size other than its declared {size} bytes")
    return out


def decode(scheme: int, payload: bytes, size: int) -> bytes:
    """A chunk's raw bytes from its compressed form; exactly ``size`` bytes or XorbError."""
    if scheme == NONE:
        if len(payload) != size:
            raise XorbError("uncompressed chunk whose two lengths differ")
        return payload
    if scheme == LZ4:
        return _lz4(payload, size)
    if scheme == BG4_LZ4:
        return bg4_ungroup(_lz4(payload, size))
    raise XorbError(f"unknown chunk compression scheme {scheme}")


def read_header(raw: bytes) -> tuple[int, int, int] | None:
    """(compressed length, scheme, raw length) of a chunk header; None when ``raw`` starts the footer."""
    if raw[:7] == IDENT:
        return None
    version, scheme = raw[0], raw[4]
    compressed = int.from_bytes(raw[1:4], "little")
    size = int.from_bytes(raw[5:8], "little")
    if version != 0:
        raise XorbError(f"chunk header version {version} (only 0 exists)")
    if scheme not in (NONE, LZ4, BG4_LZ4):
        raise XorbError(f"unknown chunk compression scheme {scheme}")
    if not 0 < size <= MAX_CHUNK or compressed > MAX_COMPRESSED:
        raise XorbError(f"chunk lengths out of bounds (raw {size}, compressed {compressed})")
    return compressed, scheme, size


def iter_chunks(f: BinaryIO, region: int):
    """(header offset, scheme, compressed payload, raw size) of each chunk in the first ``region`` bytes."""
    pos = 0
    while pos < region:
        head = f.read(HEADER)
        parsed = read_header(head) if len(head) == HEADER else None
        if parsed is None:
            raise XorbError(f"truncated chunk header at byte {pos}")
        compressed, scheme, size = parsed
        payload = f.read(compressed)
        if len(payload) != compressed or pos + HEADER + compressed > region:
            raise XorbError(f"chunk at byte {pos} runs past the end of the xorb")
        yield pos, scheme, payload, size
        pos += HEADER + compressed


def parse(f: BinaryIO, total: int, expected: bytes) -> Xorb:
    """Parse and verify the ``total``-byte xorb in ``f`` whose hash must be ``expected`` (raw)."""
    chunks: list[Chunk] = []
    pos = 0
    while pos < total:
        head = f.read(HEADER)
        if len(head) < HEADER:
            raise XorbError(f"truncated chunk header at byte {pos}")
        parsed = read_header(head)
        if parsed is None:
            break
        compressed, scheme, size = parsed
        if pos + HEADER + compressed > min(total, MAX_XORB_BYTES) or len(chunks) >= MAX_CHUNKS:
            raise XorbError(f"chunk at byte {pos} runs past the end of the xorb (or its 64 MiB limit)")
        data = decode(scheme, f.read(compressed), size)
        end = pos + HEADER + compressed
        chunks.append(Chunk(hashing.chunk_hash(data), pos, end, size))
        pos = end
    if not chunks:
        raise XorbError("a xorb holds at least one chunk")
    xorb = Xorb(hashing.xorb_hash([(c.hash, c.size) for c in chunks]), tuple(chunks), pos)
    if pos < total:
        f.seek(pos)
        _check_footer(f.read(total - pos), xorb)
    if xorb.hash != expected:
        raise XorbError(f"the chunks hash to {hashing.to_hex(xorb.hash)}, not the xorb hash in the URL")
    return xorb


def _check_footer(raw: bytes, xorb: Xorb) -> None:
    """xet-core's v1 footer must describe exactly the chunks that were parsed."""
    if len(raw) > MAX_FOOTER_BYTES or len(raw) < 4:
        raise XorbError("xorb footer of an impossible size")
    info_len = int.from_bytes(raw[-4:], "little")
    info = raw[:-4]
    n = len(xorb.chunks)
    want = 8 + 32 + (8 + 4 + 32 * n) + (8 + 4 + 8 * n) + 12 + 16
    if info_len != len(info) or len(info) != want:
        raise XorbError("xorb footer length does not match its chunks")
    if info[:7] != IDENT or info[7] != 1 or info[8:40] != xorb.hash:
        raise XorbError("xorb footer ident, version or hash is wrong")
    p = 40
    if info[p : p + 7] != IDENT_HASHES or info[p + 7] != 0 or struct.unpack_from("<I", info, p + 8)[0] != n:
        raise XorbError("xorb footer hash section is malformed")
    hashes_at = p
    p += 12
    if [info[p + 32 * i : p + 32 * i + 32] for i in range(n)] != [c.hash for c in xorb.chunks]:
        raise XorbError("xorb footer chunk hashes do not match the chunks")
    p += 32 * n
    bounds_at = p
    if info[p : p + 7] != IDENT_BOUNDS or info[p + 7] != 1 or struct.unpack_from("<I", info, p + 8)[0] != n:
        raise XorbError("xorb footer boundary section is malformed")
    p += 12
    ends = list(struct.unpack_from(f"<{n}I", info, p))
    raw_ends = list(struct.unpack_from(f"<{n}I", info, p + 4 * n))
    total = 0
    if ends != [c.end for c in xorb.chunks] or raw_ends != [total := total + c.size for c in xorb.chunks]:
        raise XorbError("xorb footer boundaries do not match the chunks")
    p += 8 * n
    num, hashes_off, bounds_off = struct.unpack_from("<3I", info, p)
    end = len(info)
    if num != n or hashes_off != end - hashes_at or bounds_off != end - bounds_at:
        raise XorbError("xorb footer offsets do not match its sections")
