"""Find deltas with the Hub's own tag filters, then filter/sort on card data client-side.

The row and the ``--min-pairs``/``--sort`` rules are :mod:`deltahub.listing`'s, shared with the
registry's web pages.
"""

from __future__ import annotations

from ..endpoint import Endpoint, api
from ..errors import InputError
from ..listing import SORTS, delta_row, select_rows


def list_deltas(
    base: str | None = None,
    family: str | None = None,
    min_pairs: int | None = None,
    sort: str = "recent",
    kind: str = "adapter",
    limit: int | None = None,
    endpoint: Endpoint | None = None,
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
    hub = api(endpoint)
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
