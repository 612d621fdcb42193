"""A listing row of a delta and the ``--min-pairs`` / ``--sort`` rules, with no client and no server.

``delta_row`` and ``select_rows`` are the one definition of a listing row and of those rules:
``deltahub list`` (:mod:`deltahub.share.search`) applies them to what the Hub API returns, the
registry's web pages (:mod:`deltahub.server.web.catalog`) to the repos in its store. Pure functions
of card metadata, so the server imports them without the Hub client or the endpoint.
"""

from __future__ import annotations

from typing import Any

from .errors import InputError

GAIN = "gain"  # the model-index metric type of a measured gain over the base (value = delta score - base score)
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
