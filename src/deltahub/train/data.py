"""Read preference pairs for training: a ``deltahub generate`` folder, a JSONL/parquet file, or a
Hub dataset repo, in TRL's preference columns (``prompt``/``chosen``/``rejected``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..generate.pairs import read_pairs, resolve_pairs

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
            raise InputError(
                f"column {c!r} of {source} holds {type(row[c]).__name__}",
                "use a string or a list of {role, content} messages",
            )
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
    path, repo, rev = resolve_pairs(spec)  # a repo id is pulled and pinned to the commit trained on
    ds = read_pairs(path)
    validate_columns(ds, spec)
    keep = [c for c in TRL_COLUMNS + OPTIONAL_COLUMNS if c in ds.column_names]
    ds = ds.select_columns(keep)
    folder = path if path.is_dir() else None
    meta = {}
    if folder is not None and (folder / "deltahub.json").exists():
        try:
            meta = json.loads((folder / "deltahub.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(
                f"{folder / 'deltahub.json'} is not valid JSON ({exc})".splitlines()[0],
                "regenerate the pairs with 'deltahub generate' or remove the file",
            ) from None
    return Pairs(ds, spec, folder, meta if isinstance(meta, dict) else {}, repo, rev)


def split_heldout(ds, fraction: float, max_pairs: int, seed: int):
    """Split off a held-out slice for reward accuracy; None when there are too few pairs."""
    n_eval = min(max_pairs, int(len(ds) * fraction))
    if fraction <= 0 or n_eval < 1 or len(ds) - n_eval < 1:
        return ds, None
    split = ds.train_test_split(test_size=n_eval, seed=seed, shuffle=True)
    return split["train"], split["test"]
