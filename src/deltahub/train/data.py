"""Read preference pairs for training: a ``deltahub generate`` folder, a JSONL/parquet file, or a
Hub dataset repo, in TRL's preference columns (``prompt``/``chosen``/``rejected``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

TRL_COLUMNS = ("prompt", "chosen", "rejected")
OPTIONAL_COLUMNS = ("chat_template_kwargs",)


@dataclass
class Pairs:
    """The training pairs plus where they came from (for the adapter's provenance)."""

    dataset: object  # datasets.Dataset with only the columns TRL needs
    source: str
    folder: Path | None = None
    meta: dict = field(default_factory=dict)  # the pairs' deltahub.json, if any
    repo: str | None = None
    revision: str | None = None

    @property
    def conversational(self) -> bool:
        return isinstance(self.dataset[0]["chosen"], list)


def _read_files(files: list[Path]):
    from datasets import Dataset, concatenate_datasets

    parts = []
    for f in files:
        try:
            if f.suffix == ".parquet":
                parts.append(Dataset.from_parquet(str(f)))
            else:
                rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
                parts.append(Dataset.from_list(rows))
        except (ValueError, OSError) as exc:
            raise InputError(f"cannot read pairs file {f}: {exc}", "give a valid JSONL or parquet file") from None
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _load_local(path: Path):
    if path.is_file():
        if path.suffix not in (".jsonl", ".json", ".parquet"):
            raise InputError(f"pairs file {path} is not .jsonl or .parquet", "convert it to JSONL or parquet")
        return _read_files([path])
    files = sorted(path.glob("data/*.parquet")) or sorted(path.glob("*.parquet"))
    files = files or sorted(path.glob("data/*.jsonl")) or sorted(path.glob("*.jsonl"))
    if not files:
        raise InputError(f"no parquet or JSONL pairs found in {path}", "point --pairs at a folder from 'deltahub generate'")
    return _read_files(files)


def _resolve(spec: str) -> tuple[Path, str | None, str | None]:
    """A local path passes through; ``NS/NAME[@REV]`` is pulled from the registry."""
    path = Path(spec).expanduser()
    if path.exists():
        return path, None, None
    if spec.count("/") != 1 and "@" not in spec:
        raise InputError(f"pairs {spec!r} not found", "give a folder, a .jsonl/.parquet file, or a repo id NS/NAME[@REV]")
    try:
        from ..registry.pull import pull_with_info
    except ImportError:
        raise InputError(f"pairs {spec!r} is not a local path and the registry is unavailable",
                         "download the dataset first, or give a local folder") from None
    local, repo, sha = pull_with_info(spec)  # the commit sha pins exactly what was trained on
    return Path(local), repo, sha


def validate_columns(ds, source: str) -> None:
    """TRL needs chosen/rejected (prompt optional: implicit prompt), all strings or all chat turns."""
    missing = [c for c in ("chosen", "rejected") if c not in ds.column_names]
    if missing:
        raise InputError(
            f"pairs {source} lack column(s) {', '.join(missing)} (have: {', '.join(ds.column_names)})",
            "give prompt/chosen/rejected columns (strings or lists of {role, content})",
        )
    if len(ds) == 0:
        raise InputError(f"pairs {source} are empty", "generate pairs first")
    row = ds[0]
    kinds = {c: isinstance(row[c], list) for c in TRL_COLUMNS if c in ds.column_names}
    for c in TRL_COLUMNS:
        if c in ds.column_names and not isinstance(row[c], (str, list)):
            raise InputError(f"column {c!r} of {source} holds {type(row[c]).__name__}",
                             "use a string or a list of {role, content} messages")
    if kinds.get("chosen") != kinds.get("rejected"):
        raise InputError(f"chosen and rejected of {source} mix strings and chat turns", "use one format for both")
    if "prompt" in kinds and kinds["prompt"] != kinds["chosen"]:
        raise InputError(f"prompt and chosen of {source} mix strings and chat turns", "use one format for all three")


def load_training_pairs(spec) -> Pairs:
    """Load ``spec`` into a :class:`Pairs`: columns checked, extra provenance columns dropped.

    ``spec`` is a path or repo id, or an in-memory ``datasets.Dataset`` / list of row dicts
    (handy for the toy world and notebooks).
    """
    if not isinstance(spec, (str, Path)):
        from datasets import Dataset

        ds = Dataset.from_list(list(spec)) if isinstance(spec, (list, tuple)) else spec
        source = f"<in-memory dataset {ds._fingerprint}>"
        validate_columns(ds, source)
        keep = [c for c in TRL_COLUMNS + OPTIONAL_COLUMNS if c in ds.column_names]
        return Pairs(ds.select_columns(keep), source)
    spec = str(spec)
    ds = None
    path, repo, rev = _resolve(spec)
    try:  # prefer the generate area's reader (it knows its own folder format)
        from ..generate import load_pairs

        ds = load_pairs(str(path))
    except ImportError:
        pass
    except Exception as exc:  # noqa: BLE001 - fall back to reading the files ourselves
        if not path.exists():
            raise InputError(f"cannot read pairs {spec}: {exc}", "check the path") from None
    if ds is None:
        ds = _load_local(path)
    validate_columns(ds, spec)
    keep = [c for c in TRL_COLUMNS + OPTIONAL_COLUMNS if c in ds.column_names]
    ds = ds.select_columns(keep)
    folder = path if path.is_dir() else None
    meta = {}
    if folder is not None and (folder / "deltahub.json").exists():
        meta = json.loads((folder / "deltahub.json").read_text(encoding="utf-8"))
    return Pairs(ds, spec, folder, meta, repo, rev)


def split_heldout(ds, fraction: float, max_pairs: int, seed: int):
    """Split off a held-out slice for reward accuracy; None when there are too few pairs."""
    n_eval = min(max_pairs, int(len(ds) * fraction))
    if fraction <= 0 or n_eval < 1 or len(ds) - n_eval < 1:
        return ds, None
    split = ds.train_test_split(test_size=n_eval, seed=seed, shuffle=True)
    return split["train"], split["test"]
