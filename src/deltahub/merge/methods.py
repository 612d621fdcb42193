"""deltahub's merge methods over the LoRA factors of ONE adapted weight.

Each method is one typed function ``fn(deltas, weights, *, parameters...)`` over the low-rank updates
ΔWᵢ = Bᵢ·Aᵢ of one module, made a method by :func:`~deltahub.merge.merge_method` (see
:mod:`deltahub.merge.protocol`): it returns a :class:`LowRank` where the result is exactly low-rank
(GAM, averaging, task arithmetic, KnOTS, TSV-M) and a dense tensor where it is not (TIES). Its
parameters are its keyword arguments; ``weights`` always arrives as one float per delta (all 1.0 by
default). ``BUILTIN`` lists them for the registry; its first is the method deltahub merges with when
none is named.
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from ..errors import InputError
from .batched import GamKernel
from .lowrank import (
    COMPUTE_DTYPE,
    FactoredSVD,
    LowRank,
    factored_svd,
    nearest_orthonormal,
    orthonormal_basis,
    thin_svd,
)
from .params import AUTO, Density, Input, Scale
from .protocol import Inputs, MergeMethod, default_labels, merge_method
from .reference import rank_error, resolve_reference
from .registry import get_method

Result = LowRank | torch.Tensor


# --------------------------------------------------------------------------------------------
# GAM: Geometric Alignment Merging (PDA, arXiv 2606.00357, §4, Eq. 1–5)
# --------------------------------------------------------------------------------------------


def _padded(svd: FactoredSVD, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TU [r, rank], diag(S) [rank, rank], TV [r, rank], zero-padded beyond the delta's own rank.

    Padding keeps UΣVᵀ unchanged (the padded singular values are zero), so adapters of
    different ranks align in the larger space without losing anything.
    """
    r = svd.S.shape[0]
    TU = torch.nn.functional.pad(svd.TU, (0, rank - r))
    TV = torch.nn.functional.pad(svd.TV, (0, rank - r))
    S = torch.diag(torch.nn.functional.pad(svd.S, (0, rank - r)))
    return TU, S, TV


def _polar(X: torch.Tensor) -> torch.Tensor:
    """The orthogonal factor of X (SVD X = PΣQᵀ → PQᵀ): Procrustes from a cross product XᵀY."""
    P, _, Qt = torch.linalg.svd(X)
    return P @ Qt


Reference = Annotated[
    Input,
    Field(
        description="GAM reference, the input every other is aligned to: an index, an input's name "
        "(folder, repo id, recipe delta name), or auto (see deltahub.merge.reference)"
    ),
]


def _gam_reference(params: dict[str, Any], inputs: Inputs) -> dict[str, int]:
    """GAM's reference, one input for the whole merge (:func:`~deltahub.merge.reference.resolve_reference`);
    ``auto`` waits until the inputs can be read."""
    if params["reference"] == AUTO and inputs.deltas is None:
        return {}
    return {"reference": resolve_reference(params["reference"], inputs.labels, inputs.ranks, inputs.deltas)}


@merge_method(
    "gam",
    pretty_name="GAM (Geometric Alignment Merging)",
    reference_url="https://arxiv.org/abs/2606.00357",
    prepare=_gam_reference,
    batched=GamKernel(),
    output_rank=lambda ranks, shape: max(ranks),  # the reference's rank, the largest
    unchanged_alone=lambda params, weight: weight > 0 and params["scale"] == 1.0,
    checks_finite=True,  # NaN/Inf shows in the Gram matrices it computes anyway
)
def gam(
    deltas: list[LowRank],
    weights: list[float],
    *,
    reference: Reference = 0,
    reorthonormalize: Annotated[
        bool, "replace the mean bases Ū, V̄ by their nearest orthonormal matrices (the idealisation of PDA Appendix C)"
    ] = False,
    scale: Scale = 1.0,
) -> LowRank:
    """GAM: align every delta's U and V to a reference by orthogonal Procrustes, then average
    Ũ, S̃ and Ṽ separately and multiply back: ΔW = Ū·S̄·V̄ᵀ (rank ≤ max rᵢ).

    The defaults reproduce the paper (reference = the first delta, plain 1/n means, no
    re-orthonormalisation, no scale). Beyond it: ``weights`` turn the means into weighted means
    (normalised to sum to 1), ``reorthonormalize`` replaces Ū and V̄ by their nearest orthonormal
    matrices (the idealisation of the paper's Appendix C), ``scale`` multiplies the result.
    ``reference`` is an index here; names and ``auto`` are resolved before, once per merge
    (:mod:`deltahub.merge.reference`), and the reference must have the largest (numerical) rank.
    """
    if len(deltas) == 1 and weights[0] > 0:
        return deltas[0] if scale == 1.0 else deltas[0].scaled(scale)
    total = float(sum(weights))
    if total <= 0:
        raise InputError("GAM weights must sum to a positive number", "pass positive --weights")
    svds = [factored_svd(d, index=i) for i, d in enumerate(deltas)]
    ranks = [s.S.shape[0] for s in svds]
    rank = max(ranks)
    ref = reference
    if ranks[ref] < rank:  # exact rank deficiency only shows here, after the SVDs
        raise rank_error(ref, ranks, default_labels(len(deltas)), None)
    if rank == 0:
        d, k = deltas[0].shape
        return LowRank(torch.zeros(d, 1), torch.zeros(1, k))
    TU_ref, _, TV_ref = _padded(svds[ref], rank)
    MU_ref, MV_ref = svds[ref].MU, svds[ref].MV
    S_bar = torch.zeros(rank, rank, dtype=COMPUTE_DTYPE)
    coeffs: list[tuple[torch.Tensor, torch.Tensor]] = []  # Ũᵢ = MUᵢ·KUᵢ, Ṽᵢ = MVᵢ·KVᵢ, weighted
    for svd, w in zip(svds, weights, strict=True):
        TU, S, TV = _padded(svd, rank)
        # Eq. 2 (unweighted bases): R_U = polar(UᵢᵀU_ref), with UᵢᵀU_ref = TUᵢᵀ(MUᵢᵀMU_ref)TU_ref
        R_u = _polar(TU.T @ (svd.MU.T @ MU_ref) @ TU_ref)
        R_v = _polar(TV.T @ (svd.MV.T @ MV_ref) @ TV_ref)
        c = w / total
        S_bar += c * (R_u.T @ S @ R_v)  # Eq. 3–4: S̃ = R_Uᵀ·S·R_V (dense r×r)
        coeffs.append((c * (TU @ R_u), c * (TV @ R_v)))  # Ũ = U·R_U, Ṽ = V·R_V
    if reorthonormalize:
        U_bar = nearest_orthonormal(_sum_products([s.MU for s in svds], [k for k, _ in coeffs]))
        V_bar = nearest_orthonormal(_sum_products([s.MV for s in svds], [k for _, k in coeffs]))
        return LowRank(scale * (U_bar @ S_bar), V_bar.T)
    # Eq. 5 as a rank-r LoRA: B' = Ū·S̄ = Σ MUᵢ·(KUᵢ·S̄), A' = V̄ᵀ. The tall products are the
    # only O(d·r²) work left; they combine already-aligned factors (no cancellation-prone step),
    # so they run in the factors' own precision (float32 for adapters read from disk: 2.7x
    # faster than float64 here), not in the float64 that the alignment needs. Each input's LoRA
    # scale is already in its S (factored_svd), so B and A are used as stored, never copied.
    out = functools.reduce(torch.promote_types, [t.dtype for d in deltas for t in (d.B, d.A)], torch.float32)
    # (where MU is B itself, the caller's B is used: no float64 -> float32 copy)
    MUs = [d.B if s.from_factors else s.MU for d, s in zip(deltas, svds, strict=True)]
    MVs = [d.A.T if s.from_factors else s.MV for d, s in zip(deltas, svds, strict=True)]
    B = _sum_products([m.to(out) for m in MUs], [(scale * k @ S_bar).to(out) for k, _ in coeffs])
    V_bar = _sum_products([m.to(out) for m in MVs], [k.to(out) for _, k in coeffs])
    return LowRank(B, V_bar.T)


def _sum_products(tall: list[torch.Tensor], small: list[torch.Tensor]) -> torch.Tensor:
    """Σ tallᵢ·smallᵢ, accumulated in place (one d×r buffer, no concatenated copy)."""
    out = tall[0] @ small[0]
    for M, K in zip(tall[1:], small[1:], strict=True):
        out.addmm_(M, K)
    return out


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------


@merge_method(
    "average",
    pretty_name="Averaging",
    reference_url="https://arxiv.org/abs/2203.05482",
    output_rank=lambda ranks, shape: sum(ranks),  # the concatenated factors
    unchanged_alone=lambda params, weight: weight > 0,
    mergekit=False,  # mergekit's linear
)
def average(deltas: list[LowRank], weights: list[float]) -> LowRank:
    """(Weighted) mean Σ wᵢΔWᵢ / Σ wᵢ, exact, by concatenating the factors (rank Σ rᵢ)."""
    total = float(sum(weights))
    if total == 0:
        raise InputError("averaging weights sum to zero", "pass weights with a non-zero sum")
    return LowRank.concat(deltas, [w / total for w in weights])


@merge_method(
    "task_arithmetic",
    pretty_name="Task Arithmetic",
    reference_url="https://arxiv.org/abs/2212.04089",
    output_rank=lambda ranks, shape: sum(ranks),  # the concatenated factors
    mergekit=False,  # mergekit has its own of this name
)
def task_arithmetic(deltas: list[LowRank], weights: list[float], *, scale: Scale = 1.0) -> LowRank:
    """Task arithmetic: λ·Σ wᵢΔWᵢ, exact, by concatenating the factors (rank Σ rᵢ)."""
    return LowRank.concat(deltas, [scale * w for w in weights])


def _trim(x: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the ``density`` fraction of entries of largest magnitude (TIES step 1)."""
    if density >= 1.0:
        return x
    keep = max(1, math.ceil(density * x.numel()))
    threshold = torch.topk(x.abs().flatten(), keep, sorted=False).values.min()
    return torch.where(x.abs() >= threshold, x, torch.zeros_like(x))


def ties_combine(tensors: list[torch.Tensor], weights: list[float], density: float) -> torch.Tensor:
    """TIES-Merging (Yadav et al., 2023): trim, elect sign by total mass, disjoint (weighted) mean."""
    stacked = torch.stack([w * _trim(t, density) for t, w in zip(tensors, weights, strict=True)])
    sign = torch.sign(stacked.sum(dim=0))
    agree = (torch.sign(stacked) == sign) & (stacked != 0)
    w = torch.tensor(weights, dtype=stacked.dtype).view(-1, *([1] * (stacked.ndim - 1)))
    divisor = (agree * w).sum(dim=0)
    return (stacked * agree).sum(dim=0) / torch.where(divisor == 0, torch.ones_like(divisor), divisor)


@merge_method("ties", pretty_name="TIES", reference_url="https://arxiv.org/abs/2306.01708", mergekit=False)
def ties(deltas: list[LowRank], weights: list[float], *, density: Density = 0.2, scale: Scale = 1.0) -> torch.Tensor:
    """TIES on the dense updates of one module; the result is not low-rank."""
    return scale * ties_combine([d.dense(COMPUTE_DTYPE) for d in deltas], weights, density)


@merge_method("knots", pretty_name="KnOTS", reference_url="https://arxiv.org/abs/2410.19735")
def knots(
    deltas: list[LowRank],
    weights: list[float],
    *,
    merge_rule: Annotated[Literal["ties", "ta"], "how KnOTS merges the per-task right bases"] = "ties",
    density: Density = 0.2,
    scale: Scale = 1.0,
) -> LowRank:
    """KnOTS (Stoica et al., ICLR 2025): one SVD of the concatenated updates [ΔW₁ … ΔWₙ] =
    U·Σ·[V⁽¹⁾ᵀ … V⁽ⁿ⁾ᵀ] gives a shared left basis; the per-task V⁽ⁱ⁾ are merged with
    ``merge_rule`` ("ties" or "ta") and ΔW = U·Σ·V_mergedᵀ (rank ≤ Σ rᵢ).

    The SVD is taken in factor space: [B₁…Bₙ]·blockdiag(A₁…Aₙ) = Q_B·(R_B·blockdiag(R_Aᵢᵀ))·blockdiag(Q_Aᵢ)ᵀ.
    """
    deltas = [d.folded() for d in deltas]  # the concatenation below needs plain B factors
    Q_b, R_b = orthonormal_basis(torch.cat([d.B for d in deltas], dim=1))
    qa = [orthonormal_basis(d.A.T) for d in deltas]  # (Q_Aᵢ [k, rᵢ], R_Aᵢ [rᵢ, rᵢ])
    core = R_b @ torch.block_diag(*[r.T for _, r in qa])
    u, s, vh = torch.linalg.svd(core)
    keep = s > s.max() * 1e-10 if s.numel() and s.max() > 0 else s > 0
    u, s, vh = u[:, keep], s[keep], vh[keep]
    U = Q_b @ u
    offsets = [0]
    for d in deltas:
        offsets.append(offsets[-1] + d.rank)
    Vs = [Q_a @ vh[:, offsets[i] : offsets[i + 1]].T for i, (Q_a, _) in enumerate(qa)]  # V⁽ⁱ⁾ [k, R]
    if merge_rule == "ta":
        V_merged = sum(w * V for V, w in zip(Vs, weights, strict=True))
    else:
        V_merged = ties_combine(Vs, weights, density)
    return LowRank(scale * U * s, V_merged.T)


@merge_method("tsv", pretty_name="TSV-M (Task Singular Vectors)", reference_url="https://arxiv.org/abs/2412.00081")
def tsv(deltas: list[LowRank], weights: list[float], *, scale: Scale = 1.0) -> LowRank:
    """TSV-M (Gargiulo et al., CVPR 2025): keep each task's top singular triplets (a 1/T share
    of the layer's rank, which for LoRA deltas is usually all r of them), decorrelate the
    concatenated bases by their nearest orthonormal matrices, ΔW = U⊥·diag(σ)·V⊥ᵀ."""
    n = len(deltas)
    d, k = deltas[0].shape
    share = max(1, min(d, k) // n)
    U_parts, s_parts, V_parts = [], [], []
    for delta, w in zip(deltas, weights, strict=True):
        svd = thin_svd(delta)
        keep = min(svd.S.shape[0], share)
        U_parts.append(svd.U[:, :keep])
        s_parts.append(w * svd.S[:keep])
        V_parts.append(svd.V[:, :keep])
    U_perp = nearest_orthonormal(torch.cat(U_parts, dim=1))
    V_perp = nearest_orthonormal(torch.cat(V_parts, dim=1))
    return LowRank(scale * U_perp * torch.cat(s_parts), V_perp.T)


BUILTIN: tuple[MergeMethod, ...] = (gam, average, task_arithmetic, ties, knots, tsv)


def merge_module(
    method: str | MergeMethod, deltas: list[LowRank], weights: list[float] | None = None, **params: Any
) -> Result:
    """Merge the updates of one module with ``method`` (a name or a :class:`MergeMethod`) and its
    parameters; one module is the whole merge here, so a ``prepare`` choice is made on it."""
    if not deltas:
        raise InputError("nothing to merge: no deltas given", "pass at least one adapter")
    shapes = {d.shape for d in deltas}
    if len(shapes) > 1:
        raise InputError(
            f"deltas of one module have different shapes: {sorted(shapes)}",
            "merge adapters trained on the same base model",
        )
    weights = [1.0] * len(deltas) if weights is None else [float(w) for w in weights]
    if len(weights) != len(deltas):
        raise InputError(f"{len(weights)} weights for {len(deltas)} deltas", "give one weight per delta")
    spec = get_method(method)
    params = spec.resolve(params)
    params.update(spec.choices(params, Inputs.of_module(deltas)))
    return spec.merge(deltas, weights, params)
