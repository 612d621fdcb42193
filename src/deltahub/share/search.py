"""Find deltas with the Hub's own tag filters, then filter/sort on card data client-side.

``delta_row`` and ``select_rows`` are the one definition of a listing row and of the ``--min-pairs``
and ``--sort`` rules: ``deltahub list`` applies them to what the Hub API returns, the registry's web
pages to the repos in its store.
"""

from __future__ import annotations

from typing import Any

from ..endpoint import get_api
from ..errors import InputError
from .cards import GAIN

SORTS = ("recent", "gain")


def measured_gain(card: dict[str, Any]) -> tuple[float | None, str | None]:
    """(value, metric) of the delta's measured gain over its base: the mean of the card's model-index metrics of
    type ``gain`` (their ``config`` names the metric); (None, None) when nothing was measured. Absolute scores in
    the model-index (``deltahub eval --write-card``) are not gains and are not read."""
    found = [
        m
        for entry in _list(card.get("model-index"))
        for result in _list(_get(entry, "results"))
        for m in _list(_get(result, "metrics"))
        if _get(m, "type") == GAIN and _number(_get(m, "value"))
    ]
    if not found:
        return None, None
    metrics = {str(m.get("config") or "score") for m in found}
    return sum(float(m["value"]) for m in found) / len(found), metrics.pop() if len(metrics) == 1 else "score"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _get(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else None


def delta_row(repo_id: str, card: dict[str, Any], tags: list[str], modified: Any) -> dict[str, Any]:
    """One listing row from a repo's card metadata and tags (see ``list_deltas`` for the keys)."""
    block = card.get("deltahub") if isinstance(card.get("deltahub"), dict) else {}
    gain, metric = measured_gain(card)
    pairs = block.get("pairs")
    return {
        "repo_id": repo_id,
        "kind": block.get("kind"),
        "base": card.get("base_model"),
        "family": next((t.split(":", 1)[1] for t in tags or [] if t.startswith("deltahub-family:")), None),
        "pairs": pairs if isinstance(pairs, int) and not isinstance(pairs, bool) else None,
        "gain": gain,
        "gain_metric": metric,
        "objective": _get(block.get("training"), "objective"),
        "dataset": _get(block.get("dataset"), "repo"),
        "license": card.get("license"),
        "modified": modified,
        "origin": _get(block.get("provenance"), "origin") or "deltahub",
    }


def select_rows(
    rows: list[dict], min_pairs: int | None = None, sort: str = "recent", limit: int | None = None
) -> list[dict]:
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


def list_deltas(
    base: str | None = None,
    family: str | None = None,
    min_pairs: int | None = None,
    sort: str = "recent",
    kind: str = "adapter",
    limit: int | None = None,
) -> list[dict]:
    """Rows ``{"repo_id", "kind", "base", "family", "pairs", "gain", "gain_metric", "objective", "dataset",
    "license", "modified", "origin"}``; ``gain`` is the measured gain from the card's model-index (None:
    unmeasured)."""
    if sort not in SORTS:
        raise InputError(f"unknown sort '{sort}'", "use --sort recent or --sort gain")
    filters = ["deltahub", "preference-delta"]
    if base:
        from .bases import base_filter

        base = base_filter(base)
        filters.append(f"base_model:adapter:{base}" if kind == "adapter" else f"deltahub-base:{base}")
    if family:
        filters.append(f"deltahub-family:{family}")
    hub = get_api()
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
