"""Pairs dataset folders: write (parquet shards + provenance + card) and read (``load_pairs``)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError

PAIRS_SUFFIXES = (".jsonl", ".json", ".parquet")  # the pairs files deltahub reads

SHARD_ROWS = 10_000


def write_pairs_folder(folder: Path, rows: list[dict], provenance: dict) -> None:
    """Write ``data/train-*.parquet``, ``deltahub.json`` and the card into ``folder`` (a temporary folder)."""
    import datasets

    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    n = max(1, -(-len(rows) // SHARD_ROWS))
    for i in range(n):
        part = rows[i * SHARD_ROWS : (i + 1) * SHARD_ROWS]
        ds = datasets.Dataset.from_list(part) if part else _empty_dataset()
        ds.to_parquet(str(data / f"train-{i:05d}-of-{n:05d}.parquet"))
    write_provenance(folder, provenance)


def _empty_dataset():
    import datasets

    msgs = [{"role": "", "content": ""}]
    return datasets.Dataset.from_list([{"prompt": msgs, "chosen": msgs, "rejected": msgs}]).select([])


def write_provenance(folder: Path, provenance: dict) -> None:
    """``deltahub.json`` then the README card rendered from it."""
    from ..atomic import atomic_write_text
    from ..share.cards import write_card

    atomic_write_text(folder / "deltahub.json", json.dumps(provenance, indent=2, default=str) + "\n")
    write_card(folder, "dataset")


def _folder_files(path: Path) -> list[Path]:
    files = sorted((path / "data").glob("*.parquet")) if (path / "data").is_dir() else []
    if not files:
        files = sorted(p for p in path.glob("*") if p.suffix in (".parquet", ".jsonl"))
    if not files and (path / "data").is_dir():
        files = sorted((path / "data").glob("*.jsonl"))
    return files


def resolve_pairs(spec: str | Path) -> tuple[Path, str | None, str | None]:
    """``(local path, repo, commit)``: a local path passes through; ``NS/NAME[@REV]`` is pulled from the
    registry as a dataset, pinned to the commit it resolved to (what the provenance records)."""
    from ..share.source import resolve_source

    s = resolve_source(
        spec,
        what="pairs",
        fix="give a 'deltahub generate' folder, a .jsonl/.parquet file, or a dataset repo id NS/NAME[@REV]",
        repo_type="dataset",
        file_suffixes=PAIRS_SUFFIXES,
    )
    return s.path, s.repo, s.revision


def read_pairs(path: Path):
    """The rows of a pairs folder (``data/*.parquet``) or a JSONL/parquet file as a ``datasets.Dataset``."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.is_file() and path.suffix not in PAIRS_SUFFIXES:
        raise InputError(f"pairs file {path} is not .jsonl or .parquet", "convert it to JSONL or parquet")
    files = [path] if path.is_file() else _folder_files(path)
    if not files:
        raise InputError(f"no pairs (parquet/JSONL) in {path}", "point at a folder written by 'deltahub generate'")
    try:
        if files[0].suffix == ".parquet":  # via pyarrow: an all-filtered (empty) shard is still a valid dataset
            return datasets.Dataset(pa.concat_tables([pq.read_table(f) for f in files], promote_options="default"))
        rows = [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        return datasets.Dataset.from_list(rows)
    except (OSError, ValueError, TypeError, UnicodeDecodeError, pa.ArrowException) as exc:
        raise InputError(
            f"cannot read pairs {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            "give valid JSONL (one object per line) or parquet written by 'deltahub generate'",
        ) from None


def load_pairs(path_or_repo: str | Path):
    """A pairs ``datasets.Dataset`` from a generate folder, a JSONL/parquet file, or a registry repo id."""
    path, _, _ = resolve_pairs(path_or_repo)
    ds = read_pairs(path)
    missing = {"prompt", "chosen", "rejected"} - set(ds.column_names)
    if missing:
        raise InputError(
            f"{path} lacks pair columns {sorted(missing)}", "pairs need prompt, chosen and rejected columns"
        )
    return ds
