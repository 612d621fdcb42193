"""Xet hashes (hub-docs ``docs/xet/hashing.md``): chunk, xorb, file and term-verification hashes.

Why raw bytes inside and a special hex outside: every hash is 32 bytes; on the wire (URLs, JSON, the
merkle nodes' text) it is written as four little-endian u64 words, each as 16 hex digits, which is not
the plain hex of the bytes. ``to_hex``/``from_hex`` are the only conversions, and ``from_hex`` refuses
anything but 64 lowercase hex digits, so a client string is checked before it names a file or a row.
"""

from __future__ import annotations

import re

from blake3 import blake3

DATA_KEY = bytes(
    [102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28]
    + [157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41]
)
INTERNAL_NODE_KEY = bytes(
    [1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230]
    + [93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63]
)
VERIFICATION_KEY = bytes(
    [127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243]
    + [164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195]
)
ZERO = bytes(32)
BRANCHING = 4  # mean branching factor of the aggregated merkle tree
MAX_GROUP = 2 * BRANCHING + 1
_HEX = re.compile(r"[0-9a-f]{64}")


def to_hex(raw: bytes) -> str:
    """The Xet string of a 32-byte hash: each 8-byte word byte-reversed, then hex."""
    return b"".join(raw[i : i + 8][::-1] for i in range(0, 32, 8)).hex()


def from_hex(text: object) -> bytes | None:
    """The raw hash of a Xet string, or None when ``text`` is not exactly 64 lowercase hex digits."""
    if not isinstance(text, str) or not _HEX.fullmatch(text):
        return None
    b = bytes.fromhex(text)
    return b"".join(b[i : i + 8][::-1] for i in range(0, 32, 8))


def is_hex(text: object) -> bool:
    return isinstance(text, str) and _HEX.fullmatch(text) is not None


def keyed(key: bytes, data: bytes) -> bytes:
    return blake3(data, key=key).digest()


def chunk_hash(data: bytes) -> bytes:
    return keyed(DATA_KEY, data)


def _merge(nodes: list[tuple[bytes, int]]) -> tuple[bytes, int]:
    text = "".join(f"{to_hex(h)} : {n}\n" for h, n in nodes)
    return keyed(INTERNAL_NODE_KEY, text.encode()), sum(n for _, n in nodes)


def _next_cut(nodes: list[tuple[bytes, int]], start: int) -> int:
    """End of the group starting at ``start``: 2 to 9 nodes, cut after a node whose hash is 0 mod 4."""
    left = len(nodes) - start
    if left <= 2:
        return len(nodes)
    end = min(MAX_GROUP, left)
    for i in range(2, end):
        if int.from_bytes(nodes[start + i][0][24:32], "little") % BRANCHING == 0:
            return start + i + 1
    return start + end


def merkle_root(nodes: list[tuple[bytes, int]]) -> bytes:
    """The aggregated hash of (hash, length) leaves (xet-core ``aggregated_node_hash``); zeros when empty."""
    if not nodes:
        return ZERO
    level = list(nodes)
    while len(level) > 1:
        merged, i = [], 0
        while i < len(level):
            cut = _next_cut(level, i)
            merged.append(_merge(level[i:cut]))
            i = cut
        level = merged
    return level[0][0]


def xorb_hash(chunks: list[tuple[bytes, int]]) -> bytes:
    return merkle_root(chunks)


def file_hash(chunks: list[tuple[bytes, int]], salt: bytes = ZERO) -> bytes:
    """The file's Xet hash: the merkle root, keyed-hashed once more with ``salt`` (zeros: no salt); an empty
    file's hash is all zeros."""
    if not chunks:
        return ZERO
    return keyed(salt, merkle_root(chunks))


def verification_hash(chunk_hashes: list[bytes]) -> bytes:
    """What a shard's FileVerificationEntry must hold for a term: proof its uploader knows the chunks."""
    return keyed(VERIFICATION_KEY, b"".join(chunk_hashes))
