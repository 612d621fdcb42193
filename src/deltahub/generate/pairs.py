"""Pairs dataset folders: write (parquet shards + provenance + card) and read (``load_pairs``)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError

SHARD_ROWS = 10_000


def write_pairs_folder(folder: Path, rows: list[dict], provenance: dict) -> None:
    """Write ``data/train-*.parquet``, ``deltahub.json`` and the card into ``folder`` (a temporary folder)."""
    import datasets

    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    n = max(1, -(-len(rows) // SHARD_ROWS))
    for i in range(n):
        part = rows[i * SHARD_ROWS:(i + 1) * SHARD_ROWS]
        ds = datasets.Dataset.from_list(part) if part else _empty_dataset()
        ds.to_parquet(str(data / f"train-{i:05d}-of-{n:05d}.parquet"))
    write_provenance(folder, provenance)


def _empty_dataset():
    import datasets

    msgs = [{"role": "", "content": ""}]
    return datasets.Dataset.from_list([{"prompt": msgs, "chosen": msgs, "rejected": msgs}]).select([])


def write_provenance(folder: Path, provenance: dict) -> None:
    """``deltahub.json`` then the README card (when the registry area's renderer is available)."""
    from ..atomic import atomic_write_text

    atomic_write_text(folder / "deltahub.json", json.dumps(provenance, indent=2, default=str) + "\n")
    try:
        from ..registry.cards import write_card
    except ImportError:
        write_fallback_card(folder, provenance)
        return
    write_card(folder, "dataset")


def write_fallback_card(folder: Path, p: dict) -> None:
    """A minimal dataset card until ``deltahub.registry.cards`` lands."""
    from ..atomic import atomic_write_text

    agreement = (p.get("metrics") or {}).get("agreement")
    lines = ["---", "tags:", "- deltahub", "- preference-pairs", "- dpo", "task_categories:", "- text-generation",
             "configs:", "- config_name: default", "  data_files:", "  - split: train", "    path: data/train-*.parquet",
             "---", "", f"# Weak-weaker preference pairs: {p['chosen']['model']} over {p['rejected']['model']}", "",
             f"{p['pairs']} pairs from {p['prompts']['dataset']} ({p['prompts'].get('split')}), labelled by model size alone.",
             "", "| filter | removed |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in (p.get("filters") or {}).items()] or ["| (none) | 0 |"]
    if agreement:
        lines += ["", f"Agreement with judge `{agreement['judge']}`: {agreement['agreement']:.1%} "
                  f"of {agreement['decisive']} decisive pairs."]
    atomic_write_text(folder / "README.md", "\n".join(lines) + "\n")


def _folder_files(path: Path) -> list[Path]:
    files = sorted((path / "data").glob("*.parquet")) if (path / "data").is_dir() else []
    if not files:
        files = sorted(p for p in path.glob("*") if p.suffix in (".parquet", ".jsonl"))
    return files


def load_pairs(path_or_repo: str | Path, split: str = "train"):
    """A pairs ``datasets.Dataset`` from a generate folder, a JSONL/parquet file, or a registry repo id."""
    import datasets

    path = Path(path_or_repo)
    if not path.exists():
        try:
            from ..registry import resolve_local

            path = Path(resolve_local(str(path_or_repo)))
        except ImportError:
            try:
                from ..hub import setup_client

                setup_client()
            except ImportError:
                pass
            try:
                return datasets.load_dataset(str(path_or_repo), split=split)
            except Exception as exc:  # noqa: BLE001
                raise InputError(f"cannot load pairs {path_or_repo!r}: {exc}",
                                 "give a 'deltahub generate' folder, a .jsonl/.parquet file or a dataset repo id") from exc
    files = [path] if path.is_file() else _folder_files(path)
    if not files:
        raise InputError(f"no pairs (parquet/JSONL) in {path}", "point at a folder written by 'deltahub generate'")
    if files[0].suffix == ".parquet":  # via pyarrow: an all-filtered (empty) shard is still a valid dataset
        import pyarrow as pa
        import pyarrow.parquet as pq

        ds = datasets.Dataset(pa.concat_tables([pq.read_table(f) for f in files], promote_options="default"))
    else:
        ds = datasets.load_dataset("json", data_files=[str(f) for f in files], split="train")
    missing = {"prompt", "chosen", "rejected"} - set(ds.column_names)
    if missing:
        raise InputError(f"{path} lacks pair columns {sorted(missing)}", "pairs need prompt, chosen and rejected columns")
    return ds
