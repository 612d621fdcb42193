"""The MDB shard format (hub-docs ``docs/xet/shard.md``): parse uploaded shards, write dedup answers.

An uploaded shard lists file reconstructions (terms: xorb, chunk range, raw length, a verification hash
per term, the file's sha256) and the xorbs the client made. Parsing is over bytes already bounded by the
request limit, and every count read from the shard is checked against the bytes left before a single
entry is read. A dedup answer is a full shard as xet-core writes one (with its lookup tables, which the
client searches, and an HMAC key so the chunk hashes it lists are only recognisable by holders).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from . import hashing

TAG = b"HFRepoMetaData\x00" + bytes([85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169])
ENTRY = 48
HEADER_VERSION, FOOTER_VERSION, FOOTER_SIZE = 2, 1, 200
FLAG_VERIFICATION, FLAG_METADATA = 1 << 31, 1 << 30
BOOKEND = b"\xff" * 32 + bytes(16)
MAX_SHARD_BYTES = 64 * 1024**2


class ShardError(ValueError):
    """Not a well-formed shard, or one this registry cannot accept."""


@dataclass(frozen=True)
class Term:
    xorb: bytes
    first: int  # chunk index, inclusive
    last: int  # chunk index, exclusive
    size: int  # raw bytes of the chunk range
    verification: bytes


@dataclass(frozen=True)
class FileEntry:
    hash: bytes
    terms: tuple[Term, ...]
    sha256: str


@dataclass(frozen=True)
class XorbEntry:
    hash: bytes
    chunks: tuple[tuple[bytes, int], ...]  # (chunk hash, raw size)


@dataclass(frozen=True)
class Shard:
    files: tuple[FileEntry, ...]
    xorbs: tuple[XorbEntry, ...]


class _Reader:
    def __init__(self, raw: bytes):
        self.raw, self.pos = raw, 0

    def entry(self) -> bytes:
        if self.pos + ENTRY > len(self.raw):
            raise ShardError("shard ends in the middle of an entry (no bookend)")
        out = self.raw[self.pos : self.pos + ENTRY]
        self.pos += ENTRY
        return out

    def room(self, n: int, what: str) -> None:
        """``n`` more entries must fit in what is left, before any is read."""
        if n * ENTRY > len(self.raw) - self.pos:
            raise ShardError(f"shard claims {n} {what}, more than its bytes hold")


def parse(raw: bytes) -> Shard:
    if len(raw) > MAX_SHARD_BYTES:
        raise ShardError(f"shard larger than {MAX_SHARD_BYTES} bytes")
    if len(raw) < ENTRY or raw[:32] != TAG:
        raise ShardError("not a shard (wrong header tag)")
    version, footer_size = struct.unpack_from("<QQ", raw, 32)
    if version != HEADER_VERSION or footer_size not in (0, FOOTER_SIZE):
        raise ShardError(f"unsupported shard header (version {version}, footer size {footer_size})")
    r = _Reader(raw)
    r.pos = ENTRY
    files = []
    while (head := r.entry())[:32] != BOOKEND[:32]:
        flags, n = struct.unpack_from("<II", head, 32)
        if not flags & FLAG_VERIFICATION or not flags & FLAG_METADATA:
            raise ShardError("every file of an uploaded shard needs verification entries and its sha256")
        r.room(2 * n + 1, "file terms")
        entries = [r.entry() for _ in range(n)]
        checks = [r.entry() for _ in range(n)]
        meta = r.entry()
        terms = []
        for e, v in zip(entries, checks, strict=True):
            _, size, first, last = struct.unpack_from("<IIII", e, 32)
            if last <= first:
                raise ShardError("a term's chunk range is empty")
            terms.append(Term(e[:32], first, last, size, v[:32]))
        files.append(FileEntry(head[:32], tuple(terms), hashing.to_hex(meta[:32])))
    xorbs = []
    while (head := r.entry())[:32] != BOOKEND[:32]:
        _, n, _, _ = struct.unpack_from("<IIII", head, 32)
        r.room(n, "xorb chunks")
        chunks = [r.entry() for _ in range(n)]
        xorbs.append(XorbEntry(head[:32], tuple((c[:32], struct.unpack_from("<I", c, 36)[0]) for c in chunks)))
    if footer_size == 0 and r.pos != len(raw):
        raise ShardError("bytes after the shard's last section")
    return Shard(tuple(files), tuple(xorbs))


@dataclass(frozen=True)
class DedupXorb:
    hash: bytes
    chunks: tuple[tuple[bytes, int], ...]  # (chunk hash, raw size)
    stored: int  # serialized bytes


def dedup_answer(xorbs: list[DedupXorb], key: bytes, valid_for: int = 7 * 86400) -> bytes:
    """A shard listing ``xorbs`` only (no files), chunk hashes keyed with ``key``, with xet-core's lookup
    tables so that the client can search it."""
    out = bytearray(TAG + struct.pack("<QQ", HEADER_VERSION, FOOTER_SIZE))
    file_info = len(out)
    out += BOOKEND
    xorb_info = len(out)
    xorb_lookup, chunk_lookup, index = [], [], 0
    for x in sorted(xorbs, key=lambda x: hashing.to_hex(x.hash)):
        xorb_lookup.append((_trunc(x.hash), index))
        raw_total = sum(size for _, size in x.chunks)
        out += x.hash + struct.pack("<IIII", 0, len(x.chunks), raw_total, x.stored)
        offset = 0
        for i, (h, size) in enumerate(x.chunks):
            keyed = hashing.keyed(key, h)
            out += keyed + struct.pack("<IIII", offset, size, 0, 0)
            chunk_lookup.append((_trunc(keyed), index, i))
            offset += size
        index += 1 + len(x.chunks)
    out += BOOKEND
    file_lookup_at = len(out)
    xorb_lookup_at = len(out)
    for k, i in xorb_lookup:
        out += struct.pack("<QI", k, i)
    chunk_lookup_at = len(out)
    for k, i, j in sorted(chunk_lookup):
        out += struct.pack("<QII", k, i, j)
    footer_at = len(out)
    now = int(time.time())
    out += struct.pack(
        "<9Q",
        FOOTER_VERSION,
        file_info,
        xorb_info,
        file_lookup_at,
        0,
        xorb_lookup_at,
        len(xorb_lookup),
        chunk_lookup_at,
        len(chunk_lookup),
    )
    out += key + struct.pack("<QQ", now, now + valid_for) + bytes(48) + struct.pack("<QQQQ", 0, 0, 0, footer_at)
    return bytes(out)


def _trunc(h: bytes) -> int:
    return int.from_bytes(h[:8], "little")
