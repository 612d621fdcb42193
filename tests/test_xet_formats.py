"""The Xet formats against references written here from the spec (hub-docs ``docs/xet``), not from the server's
code: hashes (xet-core's published test vectors and the real hf_xet as oracles), xorbs in every chunk
compression scheme, shards, and the refusal of malformed ones before anything large is read or allocated.

The builders below (``xorb_bytes``, ``shard_bytes``) are the test suite's own serializers, also used by
test_xet_client.py to send forged payloads to a running registry.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct

import lz4.frame
import pytest
from blake3 import blake3

from deltahub.server.xet import hashing, shard, xorb

DATA_KEY = bytes.fromhex("6697f5775b9550de3135cbaca597181c9de421109beb2b58b4d0b04b93adf229")
VERIFY_KEY = bytes.fromhex("7f1857d6ce56ed66127ff913e7a5c3f3a4cd26d5b5db49e64124987f28fb94c3")
SHARD_TAG = b"HFRepoMetaData\x00" + bytes(
    [85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169]
)


# -- references from the spec ------------------------------------------------------------------------
def ref_hex(raw: bytes) -> str:
    """api.md: each 8-byte part as a little-endian u64, printed as 16 hex digits."""
    return "".join(f"{w:016x}" for w in struct.unpack("<4Q", raw))


def ref_raw(text: str) -> bytes:
    return struct.pack("<4Q", *(int(text[i : i + 16], 16) for i in range(0, 64, 16)))


def ref_chunk_hash(data: bytes) -> bytes:
    return blake3(data, key=DATA_KEY).digest()


def ref_bg4(data: bytes) -> bytes:
    """xorb.md: byte k of every 4-byte group into group k, groups concatenated."""
    return b"".join(data[k::4] for k in range(4))


def chunk_bytes(data: bytes, scheme: int) -> bytes:
    payload = {0: data, 1: lz4.frame.compress(data), 2: lz4.frame.compress(ref_bg4(data))}[scheme]
    n, c = len(data), len(payload)
    return bytes([0]) + c.to_bytes(3, "little") + bytes([scheme]) + n.to_bytes(3, "little") + payload


def xorb_bytes(chunks: list[bytes], schemes: list[int] | None = None) -> tuple[bytes, str]:
    """A serialized xorb (no footer) and its Xet hash string."""
    schemes = schemes or [1] * len(chunks)
    body = b"".join(chunk_bytes(c, s) for c, s in zip(chunks, schemes, strict=True))
    return body, ref_hex(hashing.xorb_hash([(ref_chunk_hash(c), len(c)) for c in chunks]))


def shard_bytes(files: list[tuple[bytes, list[tuple[bytes, int, int, int, bytes]], bytes]], xorbs=()) -> bytes:
    """An upload shard (shard.md, footer omitted): files as (file hash, terms, sha256 raw); a term is
    (xorb hash raw, first chunk, end chunk, raw bytes, verification hash)."""
    out = SHARD_TAG + struct.pack("<QQ", 2, 0)
    for file_hash, terms, sha in files:
        out += file_hash + struct.pack("<II", (1 << 31) | (1 << 30), len(terms)) + bytes(8)
        for h, first, last, size, _ in terms:
            out += h + struct.pack("<IIII", 0, size, first, last)
        for *_, verify in terms:
            out += verify + bytes(16)
        out += sha + bytes(16)
    out += b"\xff" * 32 + bytes(16)
    for h, chunks in xorbs:
        out += h + struct.pack("<IIII", 0, len(chunks), sum(n for _, n in chunks), 0)
        at = 0
        for ch, n in chunks:
            out += ch + struct.pack("<II", at, n) + bytes(8)
            at += n
    return out + b"\xff" * 32 + bytes(16)


def file_shard(chunks: list[bytes], xorb_hex: str) -> tuple[bytes, str]:
    """A shard naming one file made of all ``chunks`` of xorb ``xorb_hex``, and the file's Xet hash."""
    raw = [ref_chunk_hash(c) for c in chunks]
    fh = hashing.file_hash([(h, len(c)) for h, c in zip(raw, chunks, strict=True)])
    verify = blake3(b"".join(raw), key=VERIFY_KEY).digest()
    sha = ref_raw(hashlib.sha256(b"".join(chunks)).hexdigest())
    term = (ref_raw(xorb_hex), 0, len(chunks), sum(map(len, chunks)), verify)
    return shard_bytes([(fh, [term], sha)]), ref_hex(fh)


# -- hashing -------------------------------------------------------------------------------------------
def test_hash_strings_follow_the_spec_example():
    raw = bytes(range(32))
    assert hashing.to_hex(raw) == "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
    assert hashing.from_hex(hashing.to_hex(raw)) == raw
    for bad in ["", "0" * 63, "0" * 65, "G" * 64, "A" * 64, 5, None, "0" * 63 + "\n"]:
        assert hashing.from_hex(bad) is None and not hashing.is_hex(bad)


# xet-core xet_core_structures/src/merklehash/aggregated_hashes.rs, test_correctness: (leaves, xorb hash,
# (salt, file hash) pairs)
MERKLE_VECTORS = [
    (
        [
            ("cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100),
            ("c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200),
            ("0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300),
        ],
        "71ec1275fca074724e2dd666921b3277c7cee603e4d025bcab2d4050015be2bc",
        [
            ("0" * 64, "54e55dccc6653c612bdb5576c5d3cb34bb31bc4e100248abccf4c908b3ef7715"),
            (
                "b286606709ef32a1cfede1e603a39f83fef56772d8234c0e35d8920071d80b69",
                "337f1f046e4cfc1057f0f3edbd87cf977fdfaf3c2b0c0031ca2d1d2a34aa2270",
            ),
        ],
    ),
    (
        [
            ("cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100),
            ("c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200),
            ("cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100),
            ("c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200),
            ("0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300),
            ("adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400),
        ],
        "52c826f99507aa05d0b45e9837fa1709e0485425cfbcb1e80db3905cf98b3ee9",
        [
            ("0" * 64, "91d21684db364c8883ab8209fa5eb2e781cf07f37e1fa43e731c30839afe422f"),
            (
                "fceabc1f6c6aaaa176bc53b2d6899a3ab99eaebd13b5f0cf36080e6f894bbbf5",
                "b70b051189a20b58d0c832111e0470396094518b6af8bd8c813c9ccb764ab602",
            ),
        ],
    ),
    (
        [
            ("0" * 64, 0),
            ("cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6", 100),
            ("c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72", 200),
            ("0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37", 300),
            ("adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784", 400),
            ("4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e", 500),
            ("b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389", 600),
            ("0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c", 700),
        ],
        "f62abe77e3fb9c954fe52b0028027ddc90c064c45951a4fd2211d87e5c0011db",
        [
            ("0" * 64, "d1b068be5bbdb38992269e8efe61f601881e39f7a7585fd76883cc6ea5c23b44"),
            (
                "6fb1cc393b130809e39c8073f96d9726364080a345a5af4978ab491e7d25faac",
                "eebe56be63552edcc6da65ff79f79262f83866236dd869f08a900674fc936ad3",
            ),
        ],
    ),
]


@pytest.mark.parametrize("leaves,xorb_hash,salted", MERKLE_VECTORS)
def test_merkle_hashes_match_xet_core_vectors(leaves, xorb_hash, salted):
    nodes = [(ref_raw(h), n) for h, n in leaves]
    assert ref_hex(hashing.xorb_hash(nodes)) == xorb_hash
    for salt, want in salted:
        assert ref_hex(hashing.file_hash(nodes, ref_raw(salt))) == want
    assert hashing.file_hash([]) == hashing.xorb_hash([]) == bytes(32)


def test_file_hash_equals_hf_xets_for_single_chunk_files(tmp_path):
    """Under the 8 KiB minimum chunk size a file is one chunk, so the real client's hash is an oracle."""
    import hf_xet

    sizes = [1, 2, 3, 64, 1000, 4096, 8191]
    paths = []
    for n in sizes:
        p = tmp_path / f"f{n}"
        p.write_bytes(os.urandom(n))
        paths.append(str(p))
    for p, info in zip(paths, hf_xet.hash_files(paths), strict=True):
        data = open(p, "rb").read()
        assert info.hash == ref_hex(hashing.file_hash([(ref_chunk_hash(data), len(data))]))


# -- xorbs ---------------------------------------------------------------------------------------------
def _parse(body: bytes, xorb_hex: str) -> xorb.Xorb:
    return xorb.parse(io.BytesIO(body), len(body), ref_raw(xorb_hex))


def test_xorbs_of_every_scheme_parse_to_their_chunk_hashes():
    chunks = [os.urandom(1000), bytes(70_000), (b"\x01\x02\x03\x04" * 5000)[:19_999], b"x"]
    for schemes in ([0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2], [0, 1, 2, 1]):
        body, name = xorb_bytes(chunks, schemes)
        got = _parse(body, name)
        assert [c.hash for c in got.chunks] == [ref_chunk_hash(c) for c in chunks]
        assert [c.size for c in got.chunks] == list(map(len, chunks)) and got.region == len(body)
        with io.BytesIO(body) as f:
            decoded = [xorb.decode(s, p, n) for _, s, p, n in xorb.iter_chunks(f, len(body))]
        assert decoded == chunks


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1001])
def test_byte_grouping_is_undone_for_any_length(n):
    data = os.urandom(n)
    assert xorb.bg4_ungroup(ref_bg4(data)) == data


def test_xorb_footer_as_hf_xet_writes_it_is_checked():
    chunks = [os.urandom(500), os.urandom(700)]
    body, name = xorb_bytes(chunks)
    parsed = _parse(body, name)
    hashes = [ref_chunk_hash(c) for c in chunks]
    ends = [c.end for c in parsed.chunks]
    raw_ends = [500, 1200]
    info = b"XETBLOB\x01" + ref_raw(name)
    hashes_at = len(info)
    info += b"XBLBHSH\x00" + struct.pack("<I", 2) + b"".join(hashes)
    bounds_at = len(info)
    info += b"XBLBBND\x01" + struct.pack("<I", 2) + struct.pack("<2I", *ends) + struct.pack("<2I", *raw_ends)
    end = len(info) + 12 + 16
    info += struct.pack("<3I", 2, end - hashes_at, end - bounds_at) + bytes(16)
    good = body + info + struct.pack("<I", len(info))
    assert _parse(good, name).region == len(body)
    lying = body + info.replace(hashes[1], bytes(32)) + struct.pack("<I", len(info))
    with pytest.raises(xorb.XorbError, match="footer"):
        _parse(lying, name)


def test_malformed_xorbs_are_refused_before_large_reads():
    body, name = xorb_bytes([os.urandom(300), os.urandom(300)])
    with pytest.raises(xorb.XorbError, match="hash"):
        _parse(body, "0" * 64)  # a forged name
    with pytest.raises(xorb.XorbError):
        _parse(body[:-5], name)  # truncated
    with pytest.raises(xorb.XorbError, match="version"):
        _parse(b"\x01" + body[1:], name)
    huge = bytes([0]) + (2**24 - 1).to_bytes(3, "little") + bytes([1]) + (100).to_bytes(3, "little")
    with pytest.raises(xorb.XorbError, match="out of bounds"):
        _parse(huge + bytes(100), name)  # claims 16 MiB of payload: refused from the header alone
    bomb = lz4.frame.compress(bytes(100_000))
    header = bytes([0]) + len(bomb).to_bytes(3, "little") + bytes([1]) + (100).to_bytes(3, "little")
    with pytest.raises(xorb.XorbError, match="declared"):
        _parse(header + bomb, name)  # decompresses to far more than it declares: stops at the declared size
    with pytest.raises(xorb.XorbError, match="scheme"):
        _parse(body[:4] + b"\x07" + body[5:], name)
    with pytest.raises(xorb.XorbError, match="at least one"):
        _parse(b"", name)


# -- shards --------------------------------------------------------------------------------------------
def test_shard_parses_files_terms_and_sha256():
    chunks = [os.urandom(100), os.urandom(200)]
    _, name = xorb_bytes(chunks)
    raw, file_hex = file_shard(chunks, name)
    got = shard.parse(raw)
    (f,) = got.files
    assert ref_hex(f.hash) == file_hex and f.sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
    (t,) = f.terms
    assert (ref_hex(t.xorb), t.first, t.last, t.size) == (name, 0, 2, 300)


def test_malformed_shards_are_refused_before_reading_their_counts():
    chunks = [os.urandom(100)]
    _, name = xorb_bytes(chunks)
    raw, _ = file_shard(chunks, name)
    with pytest.raises(shard.ShardError, match="tag"):
        shard.parse(b"X" + raw[1:])
    with pytest.raises(shard.ShardError, match="version"):
        shard.parse(raw[:32] + struct.pack("<Q", 3) + raw[40:])
    claims = raw[: 48 + 36] + struct.pack("<I", 2**31) + raw[48 + 40 :]  # 2^31 terms in a few hundred bytes
    with pytest.raises(shard.ShardError, match="more than its bytes hold"):
        shard.parse(claims)
    with pytest.raises(shard.ShardError, match="bookend"):
        shard.parse(raw[:-48])
    no_sha = raw[: 48 + 32] + struct.pack("<I", 1 << 31) + raw[48 + 36 :]
    with pytest.raises(shard.ShardError, match="sha256"):
        shard.parse(no_sha)
    with pytest.raises(shard.ShardError, match="after"):
        shard.parse(raw + b"junk")


def test_dedup_answer_lists_keyed_chunk_hashes_with_lookup_tables():
    chunks = [os.urandom(100), os.urandom(50)]
    key = os.urandom(32)
    raw = [ref_chunk_hash(c) for c in chunks]
    answer = shard.dedup_answer([shard.DedupXorb(ref_raw("ab" * 32), ((raw[0], 100), (raw[1], 50)), 170)], key)
    assert answer[:32] == SHARD_TAG and struct.unpack_from("<QQ", answer, 32) == (2, 200)
    footer = answer[-200:]
    version, file_at, xorb_at, _, _, xorb_lookup_at, n_xorbs, chunk_lookup_at, n_chunks = struct.unpack_from(
        "<9Q", footer
    )
    assert (version, file_at, n_xorbs, n_chunks) == (1, 48, 1, 2) and footer[72:104] == key
    assert struct.unpack_from("<Q", footer, 192)[0] == len(answer) - 200
    keyed = [blake3(h, key=key).digest() for h in raw]
    listed = [answer[xorb_at + 48 * i : xorb_at + 48 * i + 32] for i in (1, 2)]
    assert listed == keyed  # the client can match only chunks it holds
    lookups = [struct.unpack_from("<QII", answer, chunk_lookup_at + 16 * i) for i in range(2)]
    assert sorted(k for k, _, _ in lookups) == [k for k, _, _ in lookups]
    assert {k for k, _, _ in lookups} == {int.from_bytes(h[:8], "little") for h in keyed}
