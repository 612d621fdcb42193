"""Low-rank updates ΔW = B·A and the linear algebra GAM needs, all in factor space.

A rank-r update of a d×k weight never has to be formed densely to be decomposed: its thin SVD
comes from QR(B), QR(Aᵀ) and the SVD of an r×r core, O((d+k)r²) instead of O(dk·min(d,k)).
Computations run in float64 (the matrices involved are thin, so this is cheap) and results are
returned in the dtype the caller asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError

COMPUTE_DTYPE = torch.float64


class NonFiniteFactors(InputError):
    """A factor holds NaN or Inf (seen in its Gram matrix); ``index`` is the input it belongs to,
    filled in by the method. Callers that know the adapter and module name it
    (:func:`deltahub.merge.adapters.nonfinite_error`)."""

    def __init__(self, index: int | None = None):
        where = "a LoRA factor" if index is None else f"input {index}'s LoRA factors"
        super().__init__(f"{where} hold NaN or Inf", "the adapter is corrupt or training diverged; retrain or drop it")
        self.index = index


@dataclass(frozen=True)
class LowRank:
    """A low-rank weight update ΔW = scale · B @ A.

    B has shape [d, r] (d = output features), A has shape [r, k] (k = input features), the
    same layout as PEFT's ``lora_B.weight`` and ``lora_A.weight``. ``scale`` is PEFT's α/r
    (α/√r with rsLoRA) for an adapter read from disk, kept apart from B so that reading never
    writes: B and A may share memory with an open safetensors file (float32 files do) and are
    never modified. The SVD folds the scale into its r singular values (:func:`factored_svd`),
    which costs r multiplications instead of d·r.
    """

    B: torch.Tensor
    A: torch.Tensor
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.B.ndim != 2 or self.A.ndim != 2 or self.B.shape[1] != self.A.shape[0]:
            raise ValueError(
                f"LowRank needs B [d, r] and A [r, k]; got {tuple(self.B.shape)} and {tuple(self.A.shape)}"
            )

    @property
    def rank(self) -> int:
        return self.B.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.B.shape[0], self.A.shape[1])

    def dense(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        dtype = dtype or self.B.dtype
        return (self.scale * (self.B.to(COMPUTE_DTYPE) @ self.A.to(COMPUTE_DTYPE))).to(dtype)

    def scaled(self, factor: float) -> LowRank:
        return LowRank(self.B, self.A, self.scale * factor)

    def folded(self) -> LowRank:
        """The same update with the scale multiplied into a fresh B (scale 1): plain PEFT factors,
        in at least float32 (a bf16 B times the scale would be rounded to bf16)."""
        if self.scale == 1.0:
            return self
        return LowRank(self.B.to(torch.promote_types(self.B.dtype, torch.float32)) * self.scale, self.A)

    def to(self, dtype: torch.dtype) -> LowRank:
        return LowRank(self.B.to(dtype), self.A.to(dtype), self.scale)

    def on(self, device: str | torch.device) -> LowRank:
        """The same update with its factors on ``device`` (itself if they are there)."""
        return LowRank(self.B.to(device), self.A.to(device), self.scale)

    @staticmethod
    def concat(parts: list[LowRank], coefficients: list[float] | None = None) -> LowRank:
        """Σ cᵢ·ΔWᵢ exactly, as one update of rank Σ rᵢ: [c₁s₁B₁ … cₙsₙBₙ] · [A₁; …; Aₙ]."""
        coefficients = coefficients or [1.0] * len(parts)
        B = torch.cat([p.B.to(COMPUTE_DTYPE) * (c * p.scale) for p, c in zip(parts, coefficients, strict=True)], dim=1)
        A = torch.cat([p.A.to(COMPUTE_DTYPE) for p in parts], dim=0)
        return LowRank(B, A)


@dataclass(frozen=True)
class ThinSVD:
    """ΔW = U · diag(S) · Vᵀ with U [d, r], S [r], V [k, r]; U and V have orthonormal columns."""

    U: torch.Tensor
    S: torch.Tensor
    V: torch.Tensor


# Singular values at or below this fraction of the largest are the exact zeros of a rank-deficient
# product (float64 arithmetic on exactly represented factors leaves them near 1e-16, a genuine
# direction of a float32 or bf16 adapter sits far above). Their singular vectors are arbitrary, and
# GAM averages unit bases, so an arbitrary vector would change the result: they are dropped. A zero
# update (a module an adapter lacks, an untrained B = 0) has rank 0.
RANK_RTOL = 1e-10


def numerical_rank(s: torch.Tensor) -> int:
    """How many of the descending singular values ``s`` are not exact zeros (see ``RANK_RTOL``)."""
    if s.numel() == 0 or s[0] <= 0:
        return 0
    return int((s > s[0] * RANK_RTOL).sum())


def _core_svd(core: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """u, s, vᵀ of scale·core, truncated to its numerical rank: the LoRA scale goes into the r
    singular values (its sign into u), never into a d×r factor."""
    u, s, vh = torch.linalg.svd(core)
    s = s * abs(scale)
    if scale < 0:
        u = -u
    k = numerical_rank(s)
    return u[:, :k], s[:k], vh[:k]


def thin_svd(delta: LowRank) -> ThinSVD:
    """The exact thin SVD of scale·B·A, from the factors: QR(B), QR(Aᵀ), SVD of the r×r core;
    truncated to the numerical rank."""
    B = delta.B.to(COMPUTE_DTYPE)
    A = delta.A.to(COMPUTE_DTYPE)
    q_b, r_b = torch.linalg.qr(B)
    q_a, r_a = torch.linalg.qr(A.T)
    u, s, vh = _core_svd(r_b @ r_a.T, delta.scale)
    return ThinSVD(q_b @ u, s, q_a @ vh.T)


@dataclass(frozen=True)
class FactoredSVD:
    """The thin SVD of B·A with U and V left unformed: U = MU·TU, V = MV·TV.

    MU [d, r] and MV [k, r] are tall (B and Aᵀ themselves, or their QR bases) and TU, TV are
    r×r. GAM needs U only through UᵢᵀU_ref and Σ cᵢ·Uᵢ·Rᵢ, and both are cheaper through the
    factors: one Gram MᵢᵀM_ref and one tall product per delta instead of forming every Uᵢ.
    """

    MU: torch.Tensor
    TU: torch.Tensor
    S: torch.Tensor
    MV: torch.Tensor
    TV: torch.Tensor
    from_factors: bool = False  # MU, MV are B and Aᵀ themselves (else orthonormal QR bases)

    @property
    def U(self) -> torch.Tensor:
        return self.MU @ self.TU

    @property
    def V(self) -> torch.Tensor:
        return self.MV @ self.TV


# Cholesky QR loses accuracy as cond(M)²·eps; above this condition number the Householder QR runs.
_CHOLESKY_QR_MAX_COND = 1e4


def _cholesky_r(M: torch.Tensor) -> torch.Tensor | None:
    """R with MᵀM = RᵀR (upper triangular), or None when M is too ill-conditioned for it.

    The Gram is also the NaN/Inf check: a non-finite entry of M makes its column's diagonal entry
    non-finite (a sum of squares: NaN, or Inf, never cancelled). In float64 a finite float32 or
    bf16 factor cannot overflow it, so the exact (slow) test runs only to tell a float64 overflow
    from a real NaN/Inf."""
    if M.shape[1] == 0:
        return None
    gram = M.T @ M
    if not bool(torch.isfinite(gram.diagonal()).all()):
        if not bool(torch.isfinite(M).all()):
            raise NonFiniteFactors()
        return None  # float64 entries beyond 1e154: Householder QR does not square them
    R, info = torch.linalg.cholesky_ex(gram, upper=True)
    if int(info) != 0:
        return None
    sv = torch.linalg.svdvals(R)
    if sv[-1] <= 0 or sv[0] / sv[-1] > _CHOLESKY_QR_MAX_COND:
        return None
    return R


def factored_svd(delta: LowRank, index: int | None = None) -> FactoredSVD:
    """:func:`thin_svd` without forming U and V: B = Q_B·R_B from the Gram BᵀB (Cholesky QR,
    all matrix products: ~3x faster than Householder QR on these thin matrices), so
    U = Q_B·u = B·(R_B⁻¹·u). Falls back to Householder QR for rank-deficient or
    ill-conditioned factors, where Cholesky QR would lose accuracy. NaN/Inf in a factor raises
    :class:`NonFiniteFactors` naming ``index``."""
    B = delta.B.to(COMPUTE_DTYPE)
    At = delta.A.to(COMPUTE_DTYPE).T
    try:
        r_b, r_a = _cholesky_r(B), _cholesky_r(At)
    except NonFiniteFactors:
        raise NonFiniteFactors(index) from None
    if r_b is None or r_a is None:
        svd = thin_svd(LowRank(B, At.T, delta.scale))
        eye = torch.eye(svd.S.shape[0], dtype=COMPUTE_DTYPE)
        return FactoredSVD(svd.U, eye, svd.S, svd.V, eye)
    u, s, vh = _core_svd(r_b @ r_a.T, delta.scale)
    TU = torch.linalg.solve_triangular(r_b, u, upper=True)
    TV = torch.linalg.solve_triangular(r_a, vh.T, upper=True)
    return FactoredSVD(B, TU, s, At, TV, from_factors=True)


def procrustes(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """The orthogonal R minimising ‖X·R − Y‖_F (closed form: SVD(XᵀY) = PΣQᵀ, R = PQᵀ)."""
    P, _, Qt = torch.linalg.svd(X.T @ Y)
    return P @ Qt


def nearest_orthonormal(X: torch.Tensor) -> torch.Tensor:
    """The matrix with orthonormal columns closest to X in Frobenius norm (its polar factor)."""
    P, _, Qt = torch.linalg.svd(X, full_matrices=False)
    return P @ Qt


def orthonormal_basis(M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q, R = QR(M), reduced: the basis of M's column space used by the factor-space methods."""
    return torch.linalg.qr(M.to(COMPUTE_DTYPE))


def low_rank_from_dense(
    delta: torch.Tensor, rank: int, *, oversample: int = 10, n_iter: int = 4, seed: int = 0
) -> tuple[LowRank, float]:
    """Recover a rank-``rank`` factorisation of a dense update with a randomized range finder.

    Halko, Martinsson & Tropp (2011), with ``n_iter`` power iterations: the cost is a few
    products with the d×k matrix, never a full SVD. Returns the factors and the relative
    residual ‖ΔW − B·A‖_F / ‖ΔW‖_F, which tells whether the update really had that rank (a LoRA
    merged into bf16 weights does not: the rounding noise is full rank).
    """
    M = delta.to(COMPUTE_DTYPE)
    d, k = M.shape
    width = min(rank + oversample, d, k)
    gen = torch.Generator().manual_seed(seed)
    omega = torch.randn(k, width, generator=gen, dtype=COMPUTE_DTYPE).to(M.device)  # the same on every device
    Q, _ = torch.linalg.qr(M @ omega)
    for _ in range(n_iter):
        Z, _ = torch.linalg.qr(M.T @ Q)
        Q, _ = torch.linalg.qr(M @ Z)
    small = Q.T @ M  # width × k
    u, s, vh = torch.linalg.svd(small, full_matrices=False)
    r = min(rank, s.shape[0])
    B = (Q @ u[:, :r]) * s[:r]
    A = vh[:r]
    norm = torch.linalg.matrix_norm(M)
    residual = float(torch.linalg.matrix_norm(M - B @ A) / norm) if norm > 0 else 0.0
    return LowRank(B, A), residual
