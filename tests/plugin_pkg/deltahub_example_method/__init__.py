"""A third-party merge method, as a package outside deltahub would ship it (the README shows it whole).

Its distribution declares it in ``entry_points.txt``::

    [deltahub.merge_methods]
    norm_matched = deltahub_example_method:norm_matched

and it then appears in ``deltahub merge``, recipes, ``deltahub compose``, the web compose page and
``mergekit-yaml``. The tests install it by putting a ``dist-info`` for it on ``PYTHONPATH``.
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from deltahub.merge import LowRank, merge_method


def _norm(B: torch.Tensor, A: torch.Tensor) -> float:
    """‖B·A‖_F from the factors: ‖BA‖²_F = Σ (BᵀB) ∘ (AAᵀ)."""
    return float(((B.T @ B) * (A @ A.T)).sum().clamp_min(0).sqrt())


@merge_method(
    "norm_matched",
    pretty_name="Norm-matched sum (example plugin)",
    reference_url="https://example.org/norm-matched",
    output_rank=lambda ranks, shape: sum(ranks),  # the concatenated factors: known before merging
)
def norm_matched(
    deltas: list[LowRank],
    weights: list[float],
    *,
    gain: Annotated[float, Field(gt=0)] = 1.0,
    match: Annotated[bool, "rescale the sum to the inputs' mean Frobenius norm"] = True,
) -> LowRank:
    """The weighted sum of the updates, rescaled to the mean Frobenius norm of the inputs.

    Args:
        gain: multiply the result (after the rescaling)
    """
    B = torch.cat([d.B.double() * (w * d.scale) for d, w in zip(deltas, weights, strict=True)], dim=1)
    A = torch.cat([d.A.double() for d in deltas], dim=0)
    norm = _norm(B, A)
    if not match or norm == 0:
        return LowRank(B * gain, A)
    mean = sum(_norm(d.B.double() * d.scale, d.A.double()) for d in deltas) / len(deltas)
    return LowRank(B * (gain * mean / norm), A)
