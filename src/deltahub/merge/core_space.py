"""Core Space merging (Panariello et al., NeurIPS 2025, arXiv 2509.17786), in factor space.

Every adapter's update lies in a small space: the column space of the stacked [B₁ … Bₙ] on the
left and the row space of the stacked [A₁; …; Aₙ] on the right. With orthonormal bases U_B of the
first and V_A of the second (the reference bases), each ΔWᵢ = sᵢBᵢAᵢ is exactly U_B·Mᵢ·V_Aᵀ with
the core Mᵢ = U_BᵀΔWᵢV_A = (U_BᵀsᵢBᵢ)(AᵢV_A), of size r'×r' (r' ≤ Σrᵢ): nothing is lost. The
cores are merged there by an inner method (task arithmetic, TIES or TSV-M, as the paper does), and
the result is mapped back: ΔW = U_B·M·V_Aᵀ. Task arithmetic in core space equals task arithmetic
in full space; TIES and TSV-M differ, since trimming, sign election and the share of each task's
singular vectors act on the cores.

Choices this implementation makes where the paper leaves them open (see the README):

- The reference bases are the singular vectors of the stacked factors (the authors' code:
  ``svd(B_stack)[0]``, ``svd(A_stack)[2]``), taken in factor space (QR of the stack, then the SVD of
  its small triangle), truncated to the numerical rank: a direction with a zero singular value
  carries nothing of any input, and its vector would be arbitrary. TIES acts entry-wise, so the
  basis matters to it; singular vectors make it independent of the order and sign conventions of
  the inputs (TIES is invariant to signed permutations of the basis), which a plain QR basis is not.
- The LoRA scale of each input is folded into its B before stacking (the basis of sᵢBᵢ, as PEFT
  applies it; ``weights`` are not, they weight the inner merge).
- ``isotropize`` flattens the merged core's spectrum to its mean singular value (the authors'
  ``--isotropize``: Iso-C applied to M, :func:`deltahub.merge.iso.flatten`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch

from .iso import flatten
from .lowrank import COMPUTE_DTYPE, LowRank, numerical_rank, orthonormal_basis
from .methods import task_arithmetic, ties_combine, tsv
from .params import Density, Scale
from .protocol import merge_method


def reference_bases(deltas: list[LowRank]) -> tuple[torch.Tensor, torch.Tensor]:
    """U_B [d, r_B] and V_A [k, r_A]: orthonormal singular vectors of [s₁B₁ … sₙBₙ] and of [A₁; …; Aₙ]ᵀ,
    truncated to their numerical ranks."""

    def basis(stacked: torch.Tensor) -> torch.Tensor:
        Q, R = orthonormal_basis(stacked)
        u, s, _ = torch.linalg.svd(R)
        return Q @ u[:, : numerical_rank(s)]

    U_B = basis(torch.cat([d.B.to(COMPUTE_DTYPE) * d.scale for d in deltas], dim=1))
    V_A = basis(torch.cat([d.A.to(COMPUTE_DTYPE) for d in deltas], dim=0).T)
    return U_B, V_A


def cores(deltas: list[LowRank], U_B: torch.Tensor, V_A: torch.Tensor) -> list[torch.Tensor]:
    """Mᵢ = (U_BᵀsᵢBᵢ)·(AᵢV_A) [r_B, r_A]: each update in core space, exactly."""
    return [(U_B.T @ d.B.to(COMPUTE_DTYPE)) * d.scale @ (d.A.to(COMPUTE_DTYPE) @ V_A) for d in deltas]


def _dense_core(M: torch.Tensor) -> LowRank:
    """A core as a LowRank for the inner methods (M·I)."""
    return LowRank(M, torch.eye(M.shape[1], dtype=M.dtype))


@merge_method(
    "core",
    pretty_name="Core Space merging",
    reference_url="https://arxiv.org/abs/2509.17786",
    output_rank=lambda ranks, shape: min(sum(ranks), *shape),
)
def core(
    deltas: list[LowRank],
    weights: list[float],
    *,
    inner: Annotated[
        Literal["ta", "ties", "tsv"], "the method that merges the cores: task arithmetic, TIES or TSV-M"
    ] = "tsv",
    density: Density = 0.2,
    isotropize: Annotated[bool, "flatten the merged core's singular values to their mean (Iso-C on the core)"] = False,
    scale: Scale = 1.0,
) -> LowRank:
    """Core Space merging: each update projected losslessly onto the core space spanned by all the
    adapters' bases, the r'×r' cores merged by ``inner``, the result mapped back (rank ≤ min(Σrᵢ, d, k))."""
    U_B, V_A = reference_bases(deltas)
    d, k = deltas[0].shape
    if U_B.shape[1] == 0 or V_A.shape[1] == 0:
        return LowRank(torch.zeros(d, 1), torch.zeros(1, k))
    Ms = cores(deltas, U_B, V_A)
    if inner == "ties":
        M = ties_combine(Ms, weights, density)
    else:
        inner_method = task_arithmetic if inner == "ta" else tsv
        M = inner_method([_dense_core(m) for m in Ms], weights).dense(COMPUTE_DTYPE)
    if isotropize:
        M = flatten(_dense_core(M)).dense(COMPUTE_DTYPE)
    # ΔW = U_B·M·V_Aᵀ as a LoRA of rank min(r_B, r_A): M goes into the shorter side
    if U_B.shape[1] <= V_A.shape[1]:
        return LowRank(scale * U_B, M @ V_A.T)
    return LowRank(scale * (U_B @ M), V_A.T)


BUILTIN = (core,)
