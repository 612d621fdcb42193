"""Independent dense references for the factor-space merge methods, from their papers. Never calls deltahub.

Everything is float64 and dense: full SVDs of d×k matrices and of the stacked factors, no QR tricks,
no factor-space shortcuts. The numerical rank of a matrix is the count of singular values above
1e-10 of the largest (singular vectors of exact zeros are arbitrary; the methods drop them).

- :func:`core_space`: Core Space merging (Panariello et al., NeurIPS 2025, arXiv 2509.17786, and the
  authors' code): reference bases U_B = left singular vectors of [s₁B₁ … sₙBₙ], V_A = right singular
  vectors of [A₁; …; Aₙ]; cores Mᵢ = U_Bᵀ·ΔWᵢ·V_A; merged by TA (Σwᵢ·Mᵢ), TIES or TSV-M; optionally
  isotropised; ΔW = U_B·M·V_Aᵀ.
- :func:`iso_c`: Iso-C (Marczak et al., ICML 2025, arXiv 2502.04959, Eq. for Δ_Iso-C): Δ = Σwᵢ·ΔWᵢ,
  SVD Δ = U·Σ·Vᵀ over its rank r, Δ_Iso-C = σ̄·U·Vᵀ with σ̄ = (1/r)·Σσᵢ.
- :func:`iso_cts`: Iso-CTS (same paper, Algorithm 1 and the authors' code): common subspace = the top
  k_c left singular vectors of Δ; each task's top directions of (I − U_c·U_cᵀ)·wᵢΔWᵢ; the union
  orthonormalised by its polar factor (U and V separately); one flat spectrum σ̄ over all of them.
- :func:`ties` (Yadav et al., NeurIPS 2023) and :func:`tsv` (Gargiulo et al., CVPR 2025) as inner
  methods, with deltahub's weight conventions (weighted disjoint mean; weighted singular values).
"""

from __future__ import annotations

import math

import torch

F64 = torch.float64


def rank_of(s: torch.Tensor) -> int:
    return int((s > s[0] * 1e-10).sum()) if s.numel() and s[0] > 0 else 0


def svd_basis(M: torch.Tensor) -> torch.Tensor:
    """Orthonormal left singular vectors of M over its numerical rank."""
    u, s, _ = torch.linalg.svd(M, full_matrices=False)
    return u[:, : rank_of(s)]


def polar(X: torch.Tensor) -> torch.Tensor:
    u, _, vh = torch.linalg.svd(X, full_matrices=False)
    return u @ vh


def flat(M: torch.Tensor) -> torch.Tensor:
    """σ̄·U·Vᵀ over M's numerical rank."""
    u, s, vh = torch.linalg.svd(M, full_matrices=False)
    r = rank_of(s)
    return s[:r].mean() * u[:, :r] @ vh[:r] if r else torch.zeros_like(M)


def ties(tensors: list[torch.Tensor], weights: list[float], density: float) -> torch.Tensor:
    """Trim each τᵢ to its ``density`` largest magnitudes, elect the sign of Σ wᵢ·trim(τᵢ) per entry, and
    average the agreeing entries wᵢ·trim(τᵢ), weighted: Σ_agree wᵢ·τᵢ / Σ_agree wᵢ."""
    trimmed = []
    for t in tensors:
        keep = max(1, math.ceil(density * t.numel()))
        cut = t.abs().flatten().sort(descending=True).values[keep - 1]
        trimmed.append(torch.where(t.abs() >= cut, t, torch.zeros_like(t)))
    weighted = [w * t for w, t in zip(weights, trimmed, strict=True)]
    sign = torch.sign(sum(weighted))
    num, den = torch.zeros_like(tensors[0]), torch.zeros_like(tensors[0])
    for w, t in zip(weights, weighted, strict=True):
        agree = (torch.sign(t) == sign) & (t != 0)
        num += torch.where(agree, t, 0.0)
        den += agree.to(F64) * w
    return num / torch.where(den == 0, torch.ones_like(den), den)


def tsv(tensors: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """TSV-M: each task keeps its top min(d, k)/n singular triplets (σ weighted by wᵢ); the stacked U's and
    V's are replaced by their polar factors; ΔW = U⊥·diag(σ)·V⊥ᵀ."""
    share = max(1, min(tensors[0].shape) // len(tensors))
    Us, Ss, Vs = [], [], []
    for t, w in zip(tensors, weights, strict=True):
        u, s, vh = torch.linalg.svd(t, full_matrices=False)
        keep = min(rank_of(s), share)
        Us.append(u[:, :keep])
        Ss.append(w * s[:keep])
        Vs.append(vh[:keep].T)
    return polar(torch.cat(Us, 1)) @ torch.diag(torch.cat(Ss)) @ polar(torch.cat(Vs, 1)).T


def core_space(
    factors: list[tuple[torch.Tensor, torch.Tensor]],
    weights: list[float],
    inner: str = "tsv",
    density: float = 0.2,
    isotropize: bool = False,
    scale: float = 1.0,
) -> torch.Tensor:
    """ΔW of Core Space merging; ``factors`` are (sᵢ·Bᵢ, Aᵢ) in float64 (the LoRA scale in B)."""
    U_B = svd_basis(torch.cat([B for B, _ in factors], dim=1))
    V_A = svd_basis(torch.cat([A for _, A in factors], dim=0).T)
    cores = [U_B.T @ (B @ A) @ V_A for B, A in factors]
    if inner == "ta":
        M = sum(w * m for w, m in zip(weights, cores, strict=True))
    elif inner == "ties":
        M = ties(cores, weights, density)
    else:
        M = tsv(cores, weights)
    if isotropize:
        M = flat(M)
    return scale * U_B @ M @ V_A.T


def iso_c(updates: list[torch.Tensor], weights: list[float], scale: float = 1.0) -> torch.Tensor:
    return scale * flat(sum(w * u for w, u in zip(weights, updates, strict=True)))


def iso_cts(
    updates: list[torch.Tensor], weights: list[float], common_space_fraction: float = 0.8, scale: float = 1.0
) -> torch.Tensor:
    tasks = [w * u for w, u in zip(weights, updates, strict=True)]
    u, s, vh = torch.linalg.svd(sum(tasks), full_matrices=False)
    r = rank_of(s)
    common = int(r * common_space_fraction)
    per_task = min(round((r - common) / len(tasks)), r // len(tasks))
    common = r - per_task * len(tasks)
    U_c = u[:, :common]
    Us, Ss, Vs = [U_c], [s[:common]], [vh[:common].T]
    for t in tasks if per_task else []:
        ut, st, vht = torch.linalg.svd(t - U_c @ U_c.T @ t, full_matrices=False)
        keep = min(per_task, rank_of(st))
        Us.append(ut[:, :keep])
        Ss.append(st[:keep])
        Vs.append(vht[:keep].T)
    sigma = torch.cat(Ss).mean()
    return scale * sigma * polar(torch.cat(Us, 1)) @ polar(torch.cat(Vs, 1)).T


def reference(method: str, factors: list[tuple[torch.Tensor, torch.Tensor]], weights: list[float], **params):
    """The dense ΔW of ``method`` (``core``, ``iso_c``, ``iso_cts``) on (sᵢBᵢ, Aᵢ) factors."""
    if method == "core":
        return core_space(factors, weights, **params)
    updates = [B @ A for B, A in factors]
    return iso_c(updates, weights, **params) if method == "iso_c" else iso_cts(updates, weights, **params)
