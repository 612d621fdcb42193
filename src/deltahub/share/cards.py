"""Render a stage folder's README.md card from its ``deltahub.json`` and its files.

The front matter follows the Hub/PEFT/TRL conventions (``base_model``, ``base_model_relation: adapter``,
``library_name: peft``, ``datasets``, ``tags``, ``model-index``; dataset cards keep ``configs``) so the
Hub's own tag filters find deltas; the ``deltahub:`` block carries the full provenance.
"""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path
from typing import Any

import jinja2
import yaml

from ..atomic import atomic_write_text
from ..errors import InputError
from ..listing import GAIN
from .provenance import provenance_rows
from .schema import SOURCES, DeltaBlock, family_of, parse_block

# Templates live in the repo's top-level cards/ (editable installs); a wheel may ship them as deltahub/cards.
_HERE = Path(__file__).resolve()
CARDS_DIR = next(
    (p for p in (_HERE.parents[3] / "cards", _HERE.parents[1] / "cards") if (p / "adapter.md.j2").is_file()),
    Path(__file__).resolve().parents[3] / "cards",
)
PLOTS = ("training_curves.png", "gains.png", "per_task_gains.png")


def read_block(folder: Path) -> DeltaBlock:
    """The folder's validated ``deltahub.json``."""
    path = Path(folder) / "deltahub.json"
    if not path.is_file():
        raise InputError(f"{folder} has no deltahub.json", "produce it with deltahub generate, train or merge")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON ({exc.msg})", "regenerate the folder") from None
    return parse_block(data, str(path))


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """(front matter, body) of a README.md; ({}, text) when it has no front matter."""
    if not text.startswith("---"):
        return {}, text
    end = text.find("\n---", 3)
    if end < 0:
        return {}, text
    try:
        meta = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError:
        return {}, text
    body = text[end + 4 :].lstrip("\n")
    return (meta if isinstance(meta, dict) else {}), body


def size_category(n: int | None) -> str:
    """The Hub's size_categories bucket for n rows."""
    if n is None:
        return "n<1K"
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def _base_model(folder: Path, block: DeltaBlock) -> str | None:
    """The base's id: the block's (a staged block names a repo id, see bases.py), else the adapter config's."""
    if block.student and block.student.model:
        return block.student.model
    cfg = folder / "adapter_config.json"
    if cfg.is_file():
        try:
            base = json.loads(cfg.read_text(encoding="utf-8")).get("base_model_name_or_path")
        except json.JSONDecodeError:
            base = None
        if base:
            return str(base)
    return block.student.model if block.student else None


def derive_tags(block: DeltaBlock, base: str | None = None) -> list[str]:
    """Card tags that make a delta findable with ``list_models(filter=...)``/``list_datasets``."""
    tags = ["deltahub", "preference-delta", f"deltahub-kind:{block.kind}"]
    external = block.provenance is not None and block.provenance.origin == "external"
    objective = (block.training or {}).get("objective")
    if block.kind == "adapter":  # a foreign adapter is tagged dpo only when its publisher says so
        tags += ["peft", "lora"] + (["dpo"] if not external or objective == "dpo" else [])
    if block.kind == "dataset":
        tags += ["dpo", "preference-pairs"]
    if block.kind == "merged":
        tags += ["merge", f"merge-method:{block.merge.method if block.merge else 'unknown'}"]
    fam = family_of(block)
    if fam:
        tags.append(f"deltahub-family:{fam}")
    if objective:
        tags.append(f"deltahub-objective:{objective}")
    if base:
        tags.append(f"deltahub-base:{base}")
    return tags


def reproduce_command(block: DeltaBlock) -> str | None:
    """The ``deltahub merge`` command that rebuilds a merged output."""
    from ..merge.params import option_args

    m = block.merge
    if m is None:
        return None
    extra = m.model_extra or {}
    if extra.get("command"):
        return str(extra["command"])
    specs = [f"{d.repo}@{d.revision}" if d.repo and d.revision else (d.repo or d.path or "?") for d in m.deltas]
    parts = ["deltahub", "merge", *specs, "--out", "OUT", "--method", m.method]
    for k, v in sorted(m.parameters.items()):
        if k == "reference_index":  # a record of what the reference resolved to, not an option
            continue
        parts += option_args(k, v)
    return " ".join(shlex.quote(str(p)) for p in parts)


def card_metadata(folder: Path, block: DeltaBlock, old_meta: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The card's YAML front matter (``name``: the published name, default the folder's)."""
    base = _base_model(folder, block)
    tags = derive_tags(block, base)
    external = block.provenance is not None and block.provenance.origin == "external"
    meta: dict[str, Any] = {
        "license": block.license or old_meta.get("license") or ("unknown" if external else "apache-2.0")
    }
    if block.kind == "dataset":
        meta["task_categories"] = ["text-generation"]
        meta["size_categories"] = [size_category(block.pairs)]
        meta["configs"] = old_meta.get("configs") or [
            {"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}
        ]
        models = [r.model for r in (block.chosen, block.rejected) if r and r.model]
        if models:
            meta["source_models"] = models
    else:
        if base:
            meta["base_model"] = base
        if block.kind == "adapter" or (block.merge and (block.merge.model_extra or {}).get("output") != "full-model"):
            meta["base_model_relation"] = "adapter"
            meta["library_name"] = "peft"
        else:
            meta["base_model_relation"] = "merge"
            meta["library_name"] = "transformers"
        if block.dataset and block.dataset.repo:
            meta["datasets"] = [block.dataset.repo]
        index = model_index(name or folder.name, block, old_meta.get("model-index"))
        if index:
            meta["model-index"] = index
    meta["tags"] = list(dict.fromkeys([*(old_meta.get("tags") or []), *tags]))
    meta["deltahub"] = block.model_dump(mode="json", exclude_none=True)
    return meta


SOURCE_URL = "https://github.com/deltahub/deltahub"


def gain_results(block: DeltaBlock) -> list[dict[str, Any]]:
    """model-index results for the block's measured gain: per task, the score and the gain over the base."""
    g = block.gain
    if g is None or g.value is None or not g.metric:
        return []
    tasks = (g.model_extra or {}).get("tasks") or {"eval": {"value": g.value, "baseline": g.baseline}}
    results = []
    for task, t in tasks.items():
        metrics = []
        if t.get("baseline") is not None:
            metrics.append(
                {"type": g.metric, "value": round(t["baseline"] + t["value"], 4), "name": f"{task} {g.metric}"}
            )
        metrics.append(
            {
                "type": GAIN,
                "value": round(t["value"], 4),
                "config": g.metric,
                "name": f"{task} {g.metric} gain over the base",
            }
        )
        results.append(
            {
                "task": {"type": "text-generation"},
                "dataset": {"name": task, "type": task},
                "metrics": metrics,
                "source": {"name": "deltahub", "url": SOURCE_URL},
            }
        )
    return results


def model_index(name: str, block: DeltaBlock, old: Any) -> list[dict[str, Any]] | None:
    """The card's model-index: results already there (``deltahub eval --write-card``) are kept; the measured
    gain's tasks replace their old entries."""
    entry = (old[0] if isinstance(old, list) and old and isinstance(old[0], dict) else None) or {"name": name}
    gains = gain_results(block)
    fresh = {r["dataset"]["type"] for r in gains}
    kept = [
        r
        for r in entry.get("results") or []
        if isinstance(r, dict) and (r.get("dataset") or {}).get("type") not in fresh
    ]
    results = kept + gains
    return [{**entry, "results": results}] if results else None


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    """One environment per process: it caches the compiled templates (compiling one per card was
    a quarter of a tiny merge's time)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(CARDS_DIR)),
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_card(folder: Path, kind: str | None = None, name: str | None = None) -> str:
    """The README.md text for a stage folder (no write); ``name`` titles it (default: the folder's name, wrong
    for a temporary folder that is renamed into place)."""
    folder = Path(folder)
    block = read_block(folder)
    kind = kind or block.kind
    if kind != block.kind:
        raise InputError(
            f"{folder}: deltahub.json says kind '{block.kind}', not '{kind}'",
            f"call write_card(folder, '{block.kind}')",
        )
    readme = folder / "README.md"
    old_meta = split_card(readme.read_text(encoding="utf-8"))[0] if readme.is_file() else {}
    name = name or folder.name
    meta = card_metadata(folder, block, old_meta, name)
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    body = (
        _env()
        .get_template(f"{kind}.md.j2")
        .render(
            b=block,
            meta=meta,
            name=name,
            plots=[p for p in PLOTS if (folder / p).is_file()],
            command=reproduce_command(block),
            extra=block.model_extra or {},
            merge_extra=(block.merge.model_extra or {}) if block.merge else {},
            gen=block.generation or {},
            train=block.training or {},
            metrics=block.metrics or {},
            provenance=provenance_rows(
                {**block.model_dump(mode="json", exclude_none=True), "license": meta.get("license")}
            ),
            sources=SOURCES,
            origin=block.provenance.origin if block.provenance else "deltahub",
            validation=block.provenance.validation if block.provenance else None,
        )
    )
    return f"---\n{front}---\n\n{body}"


def write_card(folder: Path, kind: str | None = None, name: str | None = None) -> Path:
    """Render ``folder/README.md`` from ``folder/deltahub.json`` (atomic); returns its path.
    ``name`` titles the card (default: the folder's name; a folder built under a temporary name
    passes its final one)."""
    folder = Path(folder)
    text = render_card(folder, kind, name)
    path = folder / "README.md"
    atomic_write_text(path, text)
    return path
