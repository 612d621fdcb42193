"""Find deltas with the Hub's own tag filters, then filter/sort on card data client-side."""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from .cards import GAIN
from .hubops import api


def measured_gain(model_index: Any) -> float | None:
    """The mean of the card's measured gains over the base (model-index metrics of type ``gain``); None when
    nothing was measured."""
    values = [m.get("value") for entry in model_index or [] if isinstance(entry, dict)
              for result in entry.get("results") or [] if isinstance(result, dict)
              for m in result.get("metrics") or [] if isinstance(m, dict) and m.get("type") == GAIN]
    values = [float(v) for v in values if isinstance(v, (int, float))]
    return sum(values) / len(values) if values else None


def list_deltas(base: str | None = None, family: str | None = None, min_pairs: int | None = None,
                sort: str = "recent", kind: str = "adapter", limit: int | None = None) -> list[dict]:
    """Rows ``{"repo_id", "kind", "base", "family", "pairs", "gain", "objective", "dataset", "modified",
    "origin"}``;
    ``gain`` is the measured gain from the card's model-index (None: unmeasured)."""
    if sort not in ("recent", "gain"):
        raise InputError(f"unknown sort '{sort}'", "use --sort recent or --sort gain")
    filters = ["deltahub", "preference-delta"]
    if base:
        filters.append(f"base_model:adapter:{base}" if kind == "adapter" else f"deltahub-base:{base}")
    if family:
        filters.append(f"deltahub-family:{family}")
    hub = api()
    lister = hub.list_datasets if kind == "dataset" else hub.list_models
    rows = []
    infos = lister(filter=filters, full=True) if kind == "dataset" else lister(filter=filters, full=True, cardData=True)
    for info in infos:
        card = info.card_data.to_dict() if getattr(info, "card_data", None) is not None else {}
        block = card.get("deltahub") or {}
        if kind != "dataset" and block.get("kind") not in (kind, None):
            continue
        gain = measured_gain(card.get("model-index") or card.get("model_index"))
        rows.append({
            "repo_id": info.id, "kind": block.get("kind"), "base": card.get("base_model"),
            "family": next((t.split(":", 1)[1] for t in (info.tags or []) if t.startswith("deltahub-family:")), None),
            "pairs": block.get("pairs"), "gain": gain, "objective": (block.get("training") or {}).get("objective"),
            "dataset": (block.get("dataset") or {}).get("repo"), "modified": info.last_modified,
            "origin": (block.get("provenance") or {}).get("origin", "deltahub"),
        })
    if min_pairs is not None:
        rows = [r for r in rows if r["pairs"] is not None and r["pairs"] >= min_pairs]
    if sort == "gain":
        rows.sort(key=lambda r: (r["gain"] is None, -(r["gain"] or 0.0)))
    else:
        rows.sort(key=lambda r: str(r["modified"] or ""), reverse=True)
    return rows[:limit] if limit else rows
