"""The first rows of a dataset repo's parquet shards, for the dataset page.

Read straight from the store's blob (the file name is built from the validated sha256, never from
a client string), only the first record batch of the first shard, with cells cut to a length a
page can show. A parquet file is user content: whatever pyarrow refuses becomes a one-line
"preview unavailable", and a first row group too large to decode cheaply is not read at all.
Previews are cached by blob sha256 (content never changes under a sha256).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREVIEW_ROWS = 20
MAX_CELL_CHARS = 2000
MAX_ROW_GROUP_BYTES = 64 * 1024**2
MAX_SHARDS_COUNTED = 200
CACHE_ENTRIES = 128


@dataclass
class Preview:
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # column -> cell (see ``_cell``)
    pairs: bool = False  # the TRL preference layout: prompt/chosen/rejected
    total_rows: int | None = None
    shard: str = ""
    error: str | None = None


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS] + " …"


def _cell(value: Any) -> dict[str, Any]:
    """A conversation (list of {role, content}) as messages, anything else as text."""
    if isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
        return {"messages": [(str(m.get("role") or ""), _cut(str(m.get("content") or ""))) for m in value[:50]]}
    return {"text": _cut("" if value is None else str(value))}


def _read(path: Path, shard: str) -> Preview:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
        meta = f.metadata
        if meta.num_row_groups and meta.row_group(0).total_byte_size > MAX_ROW_GROUP_BYTES:
            too_big = f"the first row group of {shard} is over {MAX_ROW_GROUP_BYTES >> 20} MB: not previewed"
            return Preview(shard=shard, total_rows=meta.num_rows, error=too_big)
        batch = next(f.iter_batches(batch_size=PREVIEW_ROWS), None)
        columns = [str(c) for c in f.schema_arrow.names]
        rows = [] if batch is None else batch.slice(0, PREVIEW_ROWS).to_pylist()
    except (pa.ArrowException, OSError, ValueError, TypeError, IndexError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return Preview(shard=shard, error=f"preview unavailable: {shard} could not be read ({reason})")
    pairs = {"chosen", "rejected"} <= set(columns)
    return Preview(
        columns=columns,
        rows=[{c: _cell(r.get(c)) for c in columns} for r in rows],
        pairs=pairs,
        total_rows=meta.num_rows,
        shard=shard,
    )


_cache: OrderedDict[str, Preview] = OrderedDict()
_lock = threading.Lock()


def preview(path: Path, sha256: str, shard: str) -> Preview:
    with _lock:
        hit = _cache.get(sha256)
        if hit is not None:
            _cache.move_to_end(sha256)
            return hit
    got = _read(path, shard)
    with _lock:
        _cache[sha256] = got
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return got


@functools.lru_cache(maxsize=CACHE_ENTRIES)
def count_rows(paths: tuple[Path, ...]) -> int | None:
    """Rows in all shards from their footers (no data read); None when one cannot be read.
    Cached: a blob's path is its sha256, so the same paths always hold the same rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    total = 0
    for p in paths[:MAX_SHARDS_COUNTED]:
        try:
            total += pq.ParquetFile(p).metadata.num_rows
        except (pa.ArrowException, OSError, ValueError):
            return None
    return total if len(paths) <= MAX_SHARDS_COUNTED else None
