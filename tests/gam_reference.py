"""An independent GAM for the tests: PDA §4, Eq. 1–5, densely, in float64. Never calls deltahub.

- :func:`peft_delta` reads ΔW = s·B·A of one module from a PEFT adapter folder with PEFT's own
  config semantics (s = α/r, or α/√r with ``use_rslora``), straight from the safetensors file;
- :func:`dense_gam` is the paper's pseudo-code: a dense SVD of each ΔWᵢ truncated to rᵢ,
  orthogonal Procrustes of Uᵢ and Vᵢ onto the reference's, S̃ᵢ = R_Uᵀ Sᵢ R_V, separate (weighted)
  means of Ũ, S̃, Ṽ, ΔW = Ū S̄ V̄ᵀ; inputs of lower rank are zero-padded to the largest;
- :func:`auto_reference` is the documented ``auto`` rule: among the inputs of the largest rank in
  every module, the one whose subspaces agree most with the others, summed over modules.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

F64 = torch.float64


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(a.to(F64) - b.to(F64)) / torch.linalg.matrix_norm(b.to(F64)))


def peft_deltas(adapter_dir: Path) -> dict[str, torch.Tensor]:
    """Every module's ΔW = s·B·A (float64), keyed by module name, from PEFT's config semantics."""
    cfg = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    w = load_file(Path(adapter_dir) / "adapter_model.safetensors")
    out = {}
    for key, A in w.items():
        if ".lora_A." not in key:
            continue
        module = key.removeprefix("base_model.model.").split(".lora_A.")[0]
        B = w[key.replace(".lora_A.", ".lora_B.")]
        r = A.shape[0]
        alpha = cfg["lora_alpha"]  # (the test adapters use no rank_pattern / alpha_pattern)
        s = alpha / (r**0.5) if cfg.get("use_rslora") else alpha / r
        out[module] = s * (B.to(F64) @ A.to(F64))
    return out


def _svd_bases(dW: torch.Tensor, r: int, rank: int):
    """U [d, rank], S [rank, rank], V [k, rank] of the rank-r truncated SVD, zero-padded to ``rank``."""
    u, s, vt = torch.linalg.svd(dW, full_matrices=False)
    U = torch.zeros(dW.shape[0], rank, dtype=F64)
    V = torch.zeros(dW.shape[1], rank, dtype=F64)
    S = torch.zeros(rank, rank, dtype=F64)
    U[:, :r], V[:, :r], S[:r, :r] = u[:, :r], vt[:r].T, torch.diag(s[:r])
    return U, S, V


def _procrustes(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """argmin_{R ∈ O(r)} ‖X R − Y‖_F = P Qᵀ for SVD(XᵀY) = P Σ Qᵀ (Eq. 2)."""
    P, _, Qt = torch.linalg.svd(X.T @ Y)
    return P @ Qt


def dense_gam(
    updates: list[torch.Tensor],
    ranks: list[int],
    ref: int = 0,
    weights: list[float] | None = None,
    reorthonormalize: bool = False,
) -> torch.Tensor:
    """ΔW_GAM of one module (Eq. 1–5); ``ranks[i]`` is input i's rank (0 for a zero update)."""
    rank = max(ranks)
    bases = [_svd_bases(dW.to(F64), r, rank) for dW, r in zip(updates, ranks, strict=True)]  # Eq. 1
    U1, _, V1 = bases[ref]
    w = torch.tensor(weights if weights is not None else [1.0] * len(updates), dtype=F64)
    w = w / w.sum()
    Ub = torch.zeros_like(U1)
    Vb = torch.zeros_like(V1)
    Sb = torch.zeros(rank, rank, dtype=F64)
    for wi, (U, S, V) in zip(w, bases, strict=True):
        RU, RV = _procrustes(U, U1), _procrustes(V, V1)  # Eq. 2
        Ub += wi * U @ RU  # Eq. 3–4
        Sb += wi * RU.T @ S @ RV
        Vb += wi * V @ RV
    if reorthonormalize:

        def polar(X):
            P, _, Qt = torch.linalg.svd(X, full_matrices=False)
            return P @ Qt

        Ub, Vb = polar(Ub), polar(Vb)
    return Ub @ Sb @ Vb.T  # Eq. 5


def auto_reference(modules: list[list[torch.Tensor]], ranks: list[list[int]]) -> int:
    """The documented ``auto`` rule over ``modules[m][i]`` (input i's update of module m)."""
    n = len(modules[0])
    scores = torch.zeros(n, dtype=F64)
    eligible = [True] * n
    for updates, rs in zip(modules, ranks, strict=True):
        top = max(rs)
        eligible = [e and r == top for e, r in zip(eligible, rs, strict=True)]
        bases = [_svd_bases(dW.to(F64), r, max(r, 1))[::2] for dW, r in zip(updates, rs, strict=True)]
        for i in range(n):
            for j in range(i + 1, n):
                (Ui, Vi), (Uj, Vj) = bases[i], bases[j]
                o = torch.linalg.matrix_norm(Ui.T @ Uj) ** 2 + torch.linalg.matrix_norm(Vi.T @ Vj) ** 2
                o = o / max(rs[i] + rs[j], 1)
                scores[i] += o
                scores[j] += o
    return max((i for i in range(n) if eligible[i]), key=lambda i: float(scores[i]))
