"""Find deltas with the Hub's own tag filters, then filter/sort on card data client-side.

``delta_row`` and ``select_rows`` are the one definition of a listing row and of the ``--min-pairs``
and ``--sort`` rules: ``deltahub list`` applies them to what the Hub API returns, the registry's web
pages to the repos in its store.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from .hubops import api

SORTS = ("recent", "gain")


def measured_gain(card: dict[str, Any]) -> tuple[float | None, str | None]:
    """(value, metric) of the delta's measured gain: the card's model-index result, else the deltahub block's."""
    for entry in card.get("model-index") or []:
        for result in (entry.get("results") or []) if isinstance(entry, dict) else []:
            for m in (result.get("metrics") or []) if isinstance(result, dict) else []:
                value = m.get("value") if isinstance(m, dict) else None
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return float(value), (str(m["type"]) if m.get("type") is not None else None)
    gain = (card.get("deltahub") or {}).get("gain") or {}
    value = gain.get("value") if isinstance(gain, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), (str(gain["metric"]) if gain.get("metric") is not None else None)
    return None, None


def _get(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else None


def delta_row(repo_id: str, card: dict[str, Any], tags: list[str], modified: Any) -> dict[str, Any]:
    """One listing row from a repo's card metadata and tags (see ``list_deltas`` for the keys)."""
    block = card.get("deltahub") if isinstance(card.get("deltahub"), dict) else {}
    gain, metric = measured_gain(card)
    pairs = block.get("pairs")
    return {
        "repo_id": repo_id, "kind": block.get("kind"), "base": card.get("base_model"),
        "family": next((t.split(":", 1)[1] for t in tags or [] if t.startswith("deltahub-family:")), None),
        "pairs": pairs if isinstance(pairs, int) and not isinstance(pairs, bool) else None,
        "gain": gain, "gain_metric": metric, "objective": _get(block.get("training"), "objective"),
        "dataset": _get(block.get("dataset"), "repo"), "license": card.get("license"), "modified": modified,
    }


def select_rows(rows: list[dict], min_pairs: int | None = None, sort: str = "recent",
                limit: int | None = None) -> list[dict]:
    """``--min-pairs`` then ``--sort`` (recent: newest first; gain: largest measured gain first, unmeasured last)."""
    if sort not in SORTS:
        raise InputError(f"unknown sort '{sort}'", "use --sort recent or --sort gain")
    if min_pairs is not None:
        rows = [r for r in rows if r["pairs"] is not None and r["pairs"] >= min_pairs]
    if sort == "gain":
        rows = sorted(rows, key=lambda r: (r["gain"] is None, -(r["gain"] or 0.0)))
    else:
        # newest first, undated last; "modified" is a datetime (Hub API) or a timestamp (the store), never mixed
        rows = sorted(rows, key=lambda r: (r["modified"] is not None, r["modified"] or 0), reverse=True)
    return rows[:limit] if limit else rows


def list_deltas(base: str | None = None, family: str | None = None, min_pairs: int | None = None,
                sort: str = "recent", kind: str = "adapter", limit: int | None = None) -> list[dict]:
    """Rows ``{"repo_id", "kind", "base", "family", "pairs", "gain", "gain_metric", "objective", "dataset",
    "license", "modified"}``."""
    if sort not in SORTS:
        raise InputError(f"unknown sort '{sort}'", "use --sort recent or --sort gain")
    filters = ["deltahub", "preference-delta"]
    if base:
        filters.append(f"base_model:adapter:{base}" if kind == "adapter" else f"deltahub-base:{base}")
    if family:
        filters.append(f"deltahub-family:{family}")
    hub = api()
    lister = hub.list_datasets if kind == "dataset" else hub.list_models
    rows = []
    found = lister(filter=filters, full=True) if kind == "dataset" else lister(filter=filters, full=True, cardData=True)
    for info in found:
        card = info.card_data.to_dict() if getattr(info, "card_data", None) is not None else {}
        block = card.get("deltahub") or {}
        if kind != "dataset" and block.get("kind") not in (kind, None):
            continue
        rows.append(delta_row(info.id, card, info.tags or [], info.last_modified))
    return select_rows(rows, min_pairs, sort, limit)
