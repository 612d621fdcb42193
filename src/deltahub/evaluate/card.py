"""Write evaluation results into a model card's ``model-index`` (the Hub's convention for eval results)."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..atomic import atomic_write_text


def _split(text: str) -> tuple[dict, str]:
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            meta = yaml.safe_load(text[4:end]) or {}
            return meta, text[end + 4 :].lstrip("\n")
    return {}, text


def write_model_index(folder: str | Path, results: dict[str, dict[str, float]], name: str | None = None) -> Path:
    """Merge RESULTS into ``folder/README.md``'s ``model-index`` (one entry per task; a re-run of a task
    replaces its old entry, other tasks are kept). Creates a minimal card when there is none."""
    folder = Path(folder)
    card = folder / "README.md"
    meta, body = _split(card.read_text()) if card.exists() else ({}, f"# {folder.name}\n")
    index = meta.get("model-index") or [{"name": name or folder.name, "results": []}]
    entry = index[0]
    entry.setdefault("results", [])
    keep = [r for r in entry["results"] if (r.get("dataset") or {}).get("type") not in results]
    for task, metrics in results.items():
        keep.append(
            {
                "task": {"type": "text-generation", "name": "Text Generation"},
                "dataset": {"name": task, "type": task},
                "metrics": [{"type": m, "value": round(v, 4), "name": f"{task} {m}"} for m, v in metrics.items()],
                "source": {"name": "deltahub eval", "url": "https://github.com/EleutherAI/lm-evaluation-harness"},
            }
        )
    entry["results"] = keep
    meta["model-index"] = index
    text = "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + body
    atomic_write_text(card, text)
    return card
