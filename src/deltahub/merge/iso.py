"""Iso-C and Iso-CTS (Marczak et al., ICML 2025, arXiv 2502.04959), in factor space.

Task arithmetic's sum Δ = Σ wᵢΔWᵢ has a few dominant singular directions. **Iso-C** keeps its
singular vectors and flattens the spectrum: Δ_Iso-C = σ̄·U·Vᵀ with σ̄ the mean of Δ's singular
values. **Iso-CTS** keeps only the top of Δ's left subspace as the common subspace (a fraction
``common_space_fraction`` of the rank), gives every task the top singular directions of what is
left of its own update once the common subspace is projected out, orthonormalises the union (the
nearest orthonormal bases of the stacked U's and of the stacked V's) and flattens the spectrum of
all of them together: Δ_Iso-CTS = σ̄·U⊥·V⊥ᵀ.

For LoRA updates every step is in factor space: Δ is the concatenation of the factors (rank
R ≤ Σrᵢ), its thin SVD comes from QR of the stacked factors and an R×R core, and each task's
residual (I − U_cU_cᵀ)·wᵢsᵢBᵢ·Aᵢ is again a low-rank update.

Choices this implementation makes where the paper (written for full fine-tunes, whose task
matrices have full rank) leaves them open for low-rank updates (see the README):

- The spectrum is Δ's R non-zero singular values, R its numerical rank, not all min(d, k) of them:
  the authors' code averages over ``min(shape)`` values and keeps as many singular vectors, which
  for a rank-R sum would average in exact zeros and add min(d, k) − R arbitrary null-space
  directions. Restricted to its rank, Iso-C is the paper's formula with r = rank(Δ).
- σ̄ is the mean (the authors' ``S.mean()``): the flattened update keeps Δ's sum of singular values
  (its nuclear norm); its Frobenius norm is σ̄·√R ≤ ‖Δ‖_F. ``scale`` (the paper's α, tuned on
  validation data) multiplies the result.
- Iso-CTS's budget is the same R (the authors': min(d, k)), split as theirs: the common size
  k_c = ⌊fraction·R⌋, then each of the n tasks gets round((R − k_c)/n) directions (at most R // n)
  and k_c takes the rest. A task whose residual has fewer non-zero directions than its share gives
  what it has (its other singular vectors would be arbitrary).
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from .lowrank import COMPUTE_DTYPE, LowRank, nearest_orthonormal, thin_svd
from .methods import task_arithmetic
from .params import Scale
from .protocol import merge_method

_RANK = {"output_rank": lambda ranks, shape: min(sum(ranks), *shape)}
_PAPER = "https://arxiv.org/abs/2502.04959"


def flatten(delta: LowRank) -> LowRank:
    """σ̄·U·Vᵀ from the thin SVD U·diag(σ)·Vᵀ of ``delta`` (its numerical rank), σ̄ = mean(σ)."""
    svd = thin_svd(delta)
    if svd.S.numel() == 0:
        d, k = delta.shape
        return LowRank(torch.zeros(d, 0, dtype=COMPUTE_DTYPE), torch.zeros(0, k, dtype=COMPUTE_DTYPE))
    return LowRank(svd.U * svd.S.mean(), svd.V.T)


@merge_method("iso_c", pretty_name="Iso-C (isotropic merging in the common subspace)", reference_url=_PAPER, **_RANK)
def iso_c(deltas: list[LowRank], weights: list[float], *, scale: Scale = 1.0) -> LowRank:
    """Iso-C: the task-arithmetic sum Σ wᵢΔWᵢ with its singular values replaced by their mean."""
    return flatten(task_arithmetic(deltas, weights)).scaled(scale)


def _split(rank: int, tasks: int, fraction: float) -> tuple[int, int]:
    """(common directions, directions per task) of a budget of ``rank`` (the authors' rule)."""
    common = int(rank * fraction)
    per_task = min(round((rank - common) / tasks), rank // tasks)
    return rank - per_task * tasks, per_task


@merge_method(
    "iso_cts",
    pretty_name="Iso-CTS (isotropic merging in common and task-specific subspaces)",
    reference_url=_PAPER,
    **_RANK,
)
def iso_cts(
    deltas: list[LowRank],
    weights: list[float],
    *,
    common_space_fraction: Annotated[
        float, Field(gt=0, le=1, description="share of the merged rank kept as the common subspace (Iso-CTS)")
    ] = 0.8,
    scale: Scale = 1.0,
) -> LowRank:
    """Iso-CTS: the common subspace of the task-arithmetic sum plus each task's own top directions
    outside it, orthonormalised, with one flat spectrum."""
    total = thin_svd(task_arithmetic(deltas, weights))
    common, per_task = _split(total.S.numel(), len(deltas), common_space_fraction)
    U_c = total.U[:, :common]
    Us, Ss, Vs = [U_c], [total.S[:common]], [total.V[:, :common]]
    for delta, w in zip(deltas, weights, strict=True):
        if per_task == 0:
            break
        B = delta.B.to(COMPUTE_DTYPE) * (w * delta.scale)
        own = thin_svd(LowRank(B - U_c @ (U_c.T @ B), delta.A.to(COMPUTE_DTYPE)))  # (I − U_cU_cᵀ)·wᵢΔWᵢ
        Us.append(own.U[:, :per_task])
        Ss.append(own.S[:per_task])
        Vs.append(own.V[:, :per_task])
    S = torch.cat(Ss)
    if S.numel() == 0:
        d, k = deltas[0].shape
        return LowRank(torch.zeros(d, 0, dtype=COMPUTE_DTYPE), torch.zeros(0, k, dtype=COMPUTE_DTYPE))
    U = nearest_orthonormal(torch.cat(Us, dim=1))
    V = nearest_orthonormal(torch.cat(Vs, dim=1))
    return LowRank(U * (scale * S.mean()), V.T)


BUILTIN = (iso_c, iso_cts)
