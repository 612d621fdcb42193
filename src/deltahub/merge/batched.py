"""GAM over many modules at once, on the CPU or a GPU: :func:`deltahub.merge.methods.gam`, batched.

A model's adapted modules come in a few shapes (Qwen3-8B: 7 projections × 36 layers). Modules of one
shape and the same input ranks are merged as one chunk, in two passes over the stored factors:

1. the Gram matrices BᵢᵀBᵢ, AᵢAᵢᵀ and the cross products with the reference, accumulated block of
   rows by block of rows: each block of every input's factors is converted from its stored dtype
   into one small float64 buffer that stays in cache (on the CPU ~2 MiB; measured 16 ms instead of
   24 ms for a gate_proj's B side converted whole), so no float32 or float64 copy of a factor is
   ever made in memory (#16: fresh per-module copies paid first-touch page faults and ran 10-50x
   slower than memory speed);
2. after the r×r algebra, the outputs B' = [B₁ … Bₙ]·K_B and A' = K_A·[A₁; …; Aₙ], block by block
   again (float32 blocks), written straight into the output layout (file dtype, zero-padded rank).

The r×r algebra (Cholesky, the SVDs of the cores, the Procrustes SVDs) is one batched call per
input per chunk; on a GPU a chunk is a few dozen kernels and one host synchronisation, not
thousands of tiny kernels and a sync per module.

**Precision** is the per-module algorithm's. Gram matrices and all r×r algebra are float64, because
the alignment needs it (measured, d = 4096 and 12288, r = 64, bf16 factors: a float32 Gram is off by
~6e-7 of its largest entry; Cholesky QR squares the condition number, so U = B·R⁻¹ is orthonormal
only to 1e-6 at cond(B) = 1.3 and 6e-4 at cond(B) = 100, which trained B factors reach; and the
Procrustes step amplifies errors in UᵢᵀU_ref by 1/σ_min, in the hundreds for random 8B-shaped
subspaces). The tall output products run in the factors' own precision (float32 for bf16 and
float32 files): they combine already-aligned factors, with no cancellation-prone step.

**What a chunk declines** (``ok`` false) the per-module :func:`~deltahub.merge.methods.gam` merges,
and decides: a Gram matrix with NaN/Inf (the error is raised there, naming the input), a factor too
ill-conditioned for Cholesky QR (Householder QR there), an exactly rank-deficient update (truncated
to its numerical rank there). The reference's own Procrustes rotation is the identity here (the
per-module path computes polar(U_refᵀU_ref) = I up to rounding), so the two paths agree to
rounding (~1e-7 relative with float32 outputs).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from .lowrank import _CHOLESKY_QR_MAX_COND, RANK_RTOL, LowRank

F64 = torch.float64
# Rows (of B; columns of A) per block in the two passes: a float64 block of every input's factors
# stays within ~2 MiB on the CPU (an L2 cache). A GPU takes the whole factor at once.
BLOCK_BYTES = {"cpu": 2 << 20}

Raw = list[torch.Tensor] | torch.Tensor  # one input's factor per module, or stacked [M, ...] on the device


class Workspace:
    """Buffers reused from chunk to chunk (one workspace per worker thread): :meth:`get` returns a
    view of a cached flat buffer, reallocated only when a larger one is needed."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self._flat: dict[tuple, torch.Tensor] = {}

    def get(self, name: str, shape: Sequence[int], dtype: torch.dtype, pinned: bool = False) -> torch.Tensor:
        n = math.prod(shape)
        key = (name, dtype, pinned)
        buf = self._flat.get(key)
        if buf is None or buf.numel() < n:
            self._flat.pop(key, None)  # free the smaller one before allocating
            buf = torch.empty(n, dtype=dtype, device="cpu" if pinned else self.device, pin_memory=pinned)
            self._flat[key] = buf
        return buf[:n].view(tuple(shape))


def _upload(ws: Workspace, name: str, parts: list[torch.Tensor]) -> Raw:
    """One input's factors of the chunk where the compute runs: on the CPU (or already on the
    device) the tensors as given; host tensors for a GPU are stacked into pinned memory and sent in
    one asynchronous copy, in their stored dtype (bf16: half the bytes of float32)."""
    if ws.device.type == "cpu" or parts[0].device == ws.device:
        return parts
    if len(parts) == 1:  # one module (the mergekit plugin): a plain copy, no pinned staging
        return parts[0].to(ws.device)[None]
    shape = (len(parts), *parts[0].shape)
    pinned = ws.get(f"{name}/host", shape, parts[0].dtype, pinned=True)
    for j, t in enumerate(parts):
        pinned[j].copy_(t)
    raw = ws.get(f"{name}/raw", shape, parts[0].dtype)
    return raw.copy_(pinned, non_blocking=True)


def _fill(out: torch.Tensor, raw: Raw, part: tuple[slice, slice]) -> torch.Tensor:
    """Convert ``part`` of one input's factor of every module into ``out`` [M, ...]."""
    if isinstance(raw, torch.Tensor):
        return out.copy_(raw[(slice(None), *part)])
    for j, t in enumerate(raw):
        out[j].copy_(t[part])
    return out


class _Factors:
    """One side (B or A) of a chunk: every input's factor, side by side as the concatenated
    [B₁ … Bₙ] (``rows`` = d) or, transposed, [A₁; …; Aₙ] (``rows`` = k), read in blocks."""

    def __init__(
        self, raw: dict[int, Raw], blocks: dict[int, slice], rows: int, transposed: bool, ws: Workspace, name: str
    ):
        self.raw, self.blocks, self.rows, self.transposed, self.ws, self.name = raw, blocks, rows, transposed, ws, name
        self.M = len(next(iter(raw.values())))
        self.width = max(b.stop for b in blocks.values())
        per_row = 8 * self.M * self.width
        budget = BLOCK_BYTES.get(ws.device.type)
        self.step = rows if budget is None else max(64, budget // per_row)

    def __iter__(self):
        """(rows, block): the block [M, n, Σr] (B side) holds rows ``rows`` of every Bᵢ; on the A
        side it is [M, n, Σr] too, the transposed columns, as a view of [M, Σr, n]."""
        for start in range(0, self.rows, self.step):
            yield slice(start, min(start + self.step, self.rows))

    def block(self, rows: slice, dtype: torch.dtype) -> torch.Tensor:
        """Rows ``rows`` of the concatenated factor [M, n, Σr] (for A: Aᵀ's rows), converted to ``dtype``."""
        n = rows.stop - rows.start
        if self.transposed:
            buf = self.ws.get(f"{self.name}/{dtype}", (self.M, self.width, n), dtype)
            for i, b in self.blocks.items():
                _fill(buf[:, b], self.raw[i], (slice(None), rows))
            return buf.mT
        buf = self.ws.get(f"{self.name}/{dtype}", (self.M, n, self.width), dtype)
        for i, b in self.blocks.items():
            _fill(buf[..., b], self.raw[i], (rows, slice(None)))
        return buf

    def grams(self, reference: int) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """(XᵀX_ref [M, Σr, r_ref], {i: XᵢᵀXᵢ} for i ≠ reference), X the concatenated factor, float64."""
        ref = self.blocks[reference]
        cross = torch.zeros(self.M, self.width, ref.stop - ref.start, dtype=F64, device=self.ws.device)
        own = {
            i: torch.zeros(self.M, b.stop - b.start, b.stop - b.start, dtype=F64, device=self.ws.device)
            for i, b in self.blocks.items()
            if i != reference
        }
        for rows in self:
            X = self.block(rows, F64)
            cross.baddbmm_(X.mT, X[..., ref])
            for i, g in own.items():
                g.baddbmm_(X[..., self.blocks[i]].mT, X[..., self.blocks[i]])
        return cross, own


def _cholesky_factor(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """R (upper, RᵀR = gram), R⁻¹ and whether Cholesky QR is accurate for each matrix of the batch.

    A non-finite diagonal (NaN/Inf in the factor), a failed Cholesky, or a condition number that
    may exceed the per-module limit declines the module; the Frobenius-norm bound
    ‖R‖_F·‖R⁻¹‖_F ≥ cond₂(R) decides without an SVD, and only the matrices it cannot clear get their
    exact condition number (the per-module test)."""
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device).expand_as(gram)
    finite = torch.isfinite(gram.diagonal(dim1=-2, dim2=-1)).all(-1)
    R, info = torch.linalg.cholesky_ex(torch.where(finite[:, None, None], gram, eye), upper=True)
    good = finite & (info == 0)
    R = torch.where(good[:, None, None], R, eye)
    R_inv = torch.linalg.solve_triangular(R, eye, upper=True)
    bound = torch.linalg.matrix_norm(R) * torch.linalg.matrix_norm(R_inv)
    unsure = good & ~(bound <= _CHOLESKY_QR_MAX_COND)
    if bool(unsure.any()):
        sv = torch.linalg.svdvals(R[unsure])
        good[unsure] = (sv[:, -1] > 0) & (sv[:, 0] <= _CHOLESKY_QR_MAX_COND * sv[:, -1])
    return R, R_inv, good


def _polar(X: torch.Tensor) -> torch.Tensor:
    """The orthogonal factor of each X (SVD X = PΣQᵀ → PQᵀ): Procrustes from a cross product XᵀY."""
    P, _, Qt = torch.linalg.svd(X)
    return P @ Qt


def gam_chunk(
    deltas: Sequence[Sequence[LowRank]],
    weights: Sequence[float],
    reference: int,
    scale: float = 1.0,
    workspace: Workspace | None = None,
    out_dtype: torch.dtype | None = None,
    out_rank: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GAM of M modules at once: ``deltas[m][i]`` is input i's update of module m.

    Every module must have the same shape and the same rank per input (rank 0: the input lacks
    it), the reference the largest (r). Returns B' [M, d, out_rank], A' [M, out_rank, k] (ΔW = B'·A',
    scale 1; zero-padded beyond r; ``out_dtype``, default the factors' precision, at least float32)
    and ``ok`` [M]: where false, merge the module with the per-module
    :func:`~deltahub.merge.methods.gam` (see the module doc). Computes on the workspace's device;
    the results are views of workspace buffers, valid until its next use. Parameters as ``gam``'s
    (weights normalised to sum 1; ``reorthonormalize`` is per-module only).
    """
    ws = workspace or Workspace(deltas[0][reference].B.device)
    dev = ws.device
    M = len(deltas)
    total = float(sum(weights))
    c = [w / total for w in weights]
    first = deltas[0]
    rank = first[reference].rank
    d, k = first[reference].shape
    blocks, offset = {}, 0  # input i's columns of [B₁ … Bₙ] (rows of [A₁; …; Aₙ])
    for i, delta in enumerate(first):
        if delta.rank > 0:
            blocks[i] = slice(offset, offset + delta.rank)
            offset += delta.rank
    work = functools.reduce(
        torch.promote_types, [t.dtype for delta in first for t in (delta.B, delta.A)], torch.float32
    )
    side_B = _Factors({i: _upload(ws, f"B{i}", [m[i].B for m in deltas]) for i in blocks}, blocks, d, False, ws, "B")
    side_A = _Factors({i: _upload(ws, f"A{i}", [m[i].A for m in deltas]) for i in blocks}, blocks, k, True, ws, "A")
    scales = torch.tensor([[m[i].scale for i in blocks] for m in deltas], dtype=F64).to(dev, non_blocking=True)

    # pass 1: Gram matrices and cross products with the reference, float64
    cross_B, own_B = side_B.grams(reference)  # BᵢᵀB_ref, BᵢᵀBᵢ
    cross_A, own_A = side_A.grams(reference)  # AᵢA_refᵀ, AᵢAᵢᵀ
    ok = torch.ones(M, dtype=torch.bool, device=dev)
    TU, TV, S = {}, {}, {}
    for p, (i, b) in enumerate(blocks.items()):
        R_b, R_b_inv, ok_b = _cholesky_factor(cross_B[:, b] if i == reference else own_B[i])
        R_a, R_a_inv, ok_a = _cholesky_factor(cross_A[:, b] if i == reference else own_A[i])
        # the thin SVD of scale·B·A from the r×r core; the scale goes into S (its sign into u)
        u, s, vh = torch.linalg.svd(R_b @ R_a.mT)
        sc = scales[:, p]
        s = s * sc.abs()[:, None]
        u = u * torch.where(sc < 0, -1.0, 1.0).to(F64)[:, None, None]
        ok &= ok_b & ok_a & (s[:, -1] > s[:, 0] * RANK_RTOL)  # full numerical rank, else truncated per module
        TU[i], TV[i], S[i] = R_b_inv @ u, R_a_inv @ vh.mT, s
    # a declined module's cross products may hold NaN/Inf: keep the batched SVDs below finite
    cross_B, cross_A = (torch.where(ok[:, None, None], t, 0.0) for t in (cross_B, cross_A))

    # Procrustes onto the reference (Eq. 2), separate means of Ũ, S̃, Ṽ (Eq. 3-4), zero-padded to its rank;
    # Ũᵢ = Bᵢ·KUᵢ and Ṽᵢ = Aᵢᵀ·KVᵢ (weighted), stacked as K_B = [KU₁; …; KUₙ] and K_A = [KV₁ᵀ … KVₙᵀ]
    S_bar = torch.zeros(M, rank, rank, dtype=F64, device=dev)
    K_B = torch.empty(M, offset, rank, dtype=F64, device=dev)
    K_A = torch.empty(M, rank, offset, dtype=F64, device=dev)
    for i, b in blocks.items():
        pad = (0, rank - (b.stop - b.start))
        TU_i, TV_i, S_i = (torch.nn.functional.pad(t, pad) for t in (TU[i], TV[i], S[i]))
        if i == reference:
            S_bar.diagonal(dim1=-2, dim2=-1).add_(c[i] * S_i)
            K_B[:, b], K_A[..., b] = c[i] * TU_i, c[i] * TV_i.mT
            continue
        R_u = _polar(TU_i.mT @ cross_B[:, b] @ TU[reference])
        R_v = _polar(TV_i.mT @ cross_A[:, b] @ TV[reference])
        S_bar += c[i] * (R_u.mT * S_i[:, None, :]) @ R_v
        K_B[:, b], K_A[..., b] = c[i] * (TU_i @ R_u), c[i] * (TV_i @ R_v).mT

    # pass 2, Eq. 5 as a rank-r LoRA: B' = Σ Bᵢ·KUᵢ·S̄·scale, A' = V̄ᵀ = Σ KVᵢᵀ·Aᵢ, in the factors' precision
    out_dtype, out_rank = out_dtype or work, out_rank or rank
    out_B = ws.get("out_B", (M, d, out_rank), out_dtype)
    out_A = ws.get("out_A", (M, out_rank, k), out_dtype)
    out_B[..., rank:].zero_()
    out_A[:, rank:].zero_()
    for side, K, out in (
        (side_B, (scale * K_B @ S_bar).to(work), out_B[..., :rank]),
        (side_A, K_A.mT.to(work), out_A[:, :rank].mT),
    ):
        for rows in side:
            X = side.block(rows, work)
            product = torch.bmm(X, K, out=ws.get("product", (M, X.shape[1], rank), work))
            out[:, rows].copy_(product)
    return out_B, out_A, ok


def gam_on_device(
    deltas: Sequence[LowRank], weights: Sequence[float], reference: int, scale: float, device: str | torch.device
) -> LowRank | None:
    """One module's GAM computed on ``device`` by :func:`gam_chunk` (the mergekit plugin's tensors on a
    GPU), or None where the per-module :func:`~deltahub.merge.methods.gam` must merge it: one input,
    weights that do not sum to a positive number, a reference below the largest rank, or a declined
    module (see the module doc)."""
    if len(deltas) < 2 or sum(weights) <= 0 or deltas[reference].rank < max(d.rank for d in deltas):
        return None
    B, A, ok = gam_chunk([deltas], weights, reference, scale, Workspace(device))
    return LowRank(B[0], A[0]) if bool(ok[0]) else None


class GamKernel:
    """:func:`gam_chunk` as GAM's :class:`~deltahub.merge.protocol.BatchKernel`: the batched path takes
    two or more inputs whose weights sum to a positive number, without re-orthonormalisation (the rest
    merge module by module)."""

    def accepts(self, weights: Sequence[float], params) -> bool:
        return len(weights) > 1 and sum(weights) > 0 and not params["reorthonormalize"]

    def chunk(self, deltas, weights, params, workspace, out_dtype, out_rank):
        return gam_chunk(deltas, weights, params["reference"], params["scale"], workspace, out_dtype, out_rank)

    def on_device(self, deltas, weights, params, device) -> LowRank | None:
        if params["reorthonormalize"]:
            return None
        return gam_on_device(deltas, weights, params["reference"], params["scale"], device)
