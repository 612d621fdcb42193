"""GAM and the baselines against independent dense implementations of their definitions."""

from __future__ import annotations

import math

import pytest
import torch
from gam_reference import dense_gam

from deltahub.errors import InputError
from deltahub.merge.lowrank import LowRank, factored_svd, low_rank_from_dense, thin_svd
from deltahub.merge.methods import merge_module
from deltahub.merge.reference import ReferenceRankError, subspace_agreement


@pytest.fixture(autouse=True)
def _float64():
    """These tests compare against dense references at 1e-5; other test modules must keep float32."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(a - b) / torch.linalg.matrix_norm(b))


def random_delta(d: int, k: int, r: int, seed: int, scale: float = 1.0) -> LowRank:
    g = torch.Generator().manual_seed(seed)
    return LowRank(torch.randn(d, r, generator=g) * scale, torch.randn(r, k, generator=g))


def random_orthogonal(r: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(r, r, generator=g))
    return q


def test_thin_svd_from_factors_is_the_svd():
    delta = random_delta(40, 30, 5, seed=1)
    svd = thin_svd(delta)
    dense = delta.dense()
    assert rel_err(svd.U @ torch.diag(svd.S) @ svd.V.T, dense) < 1e-12
    assert torch.allclose(svd.S, torch.linalg.svdvals(dense)[:5], rtol=1e-10)
    assert torch.allclose(svd.U.T @ svd.U, torch.eye(5), atol=1e-12)
    assert torch.allclose(svd.V.T @ svd.V, torch.eye(5), atol=1e-12)


@pytest.mark.parametrize("ref", [0, 1, 2])
@pytest.mark.parametrize("reorth", [False, True])
def test_gam_equals_dense_paper_equations(ref, reorth):
    deltas = [random_delta(48, 32, 6, seed=s) for s in range(3)]
    got = merge_module("gam", deltas, reference=ref, reorthonormalize=reorth)
    want = dense_gam([d.dense() for d in deltas], [6, 6, 6], ref=ref, reorthonormalize=reorth)
    assert isinstance(got, LowRank) and got.rank == 6
    assert rel_err(got.dense(), want) < 1e-5


def test_gam_weights_and_scale_match_dense_reference():
    deltas = [random_delta(24, 40, 4, seed=s) for s in range(4)]
    got = merge_module("gam", deltas, weights=[1.0, 2.0, 0.5, 1.5], scale=0.7)
    want = 0.7 * dense_gam([d.dense() for d in deltas], [4] * 4, weights=[1.0, 2.0, 0.5, 1.5])
    assert rel_err(got.dense(), want) < 1e-5


def test_gam_different_ranks_pad_to_largest():
    deltas = [random_delta(30, 20, r, seed=r) for r in (2, 5, 3)]
    got = merge_module("gam", deltas, reference=1)
    want = dense_gam([d.dense() for d in deltas], [2, 5, 3], ref=1)
    assert got.rank == 5
    assert rel_err(got.dense(), want) < 1e-5


def ill_conditioned_delta(d: int, k: int, r: int, seed: int, cond: float) -> LowRank:
    """A full-rank delta whose B has condition number ``cond`` (singular values 1 … 1/cond)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, r, generator=g))
    return LowRank(q * torch.logspace(0, -math.log10(cond), r), torch.randn(r, k, generator=g))


@pytest.mark.parametrize("cond", [1.0, 1e3, 1e7])  # Cholesky QR below 1e4, Householder QR above
def test_factored_svd_is_the_thin_svd(cond):
    delta = ill_conditioned_delta(50, 36, 6, seed=3, cond=cond)
    f, ref = factored_svd(delta), thin_svd(delta)
    assert rel_err(f.U @ torch.diag(f.S) @ f.V.T, delta.dense()) < 1e-9
    assert torch.allclose(f.S, ref.S, rtol=1e-9)
    assert torch.allclose(f.U.T @ f.U, torch.eye(6), atol=1e-7)
    assert torch.allclose(f.V.T @ f.V, torch.eye(6), atol=1e-7)


def test_gam_with_an_ill_conditioned_delta_equals_dense_reference():
    deltas = [
        random_delta(40, 28, 5, seed=0),
        ill_conditioned_delta(40, 28, 5, seed=1, cond=1e6),
        random_delta(40, 28, 5, seed=2),
    ]
    got = merge_module("gam", deltas, reference=1)
    want = dense_gam([d.dense() for d in deltas], [5, 5, 5], ref=1)
    assert rel_err(got.dense(), want) < 1e-5


def test_gam_float32_factors_give_a_float32_result_close_to_float64():
    deltas = [random_delta(64, 48, 8, seed=s) for s in range(4)]
    exact = merge_module("gam", deltas).dense()
    got = merge_module("gam", [d.to(torch.float32) for d in deltas])
    assert got.B.dtype == torch.float32 and got.A.dtype == torch.float32
    assert rel_err(got.dense(torch.float64), exact) < 1e-5


def test_gam_is_invariant_to_factor_rotation():
    deltas = [random_delta(36, 28, 5, seed=s) for s in range(3)]
    before = merge_module("gam", deltas).dense()
    rotated = []
    for i, d in enumerate(deltas):
        R = random_orthogonal(5, seed=100 + i)
        rotated.append(LowRank(d.B @ R, R.T @ d.A))
    after = merge_module("gam", rotated).dense()
    assert rel_err(after, before) < 1e-9


def test_gam_is_invariant_to_order_of_non_reference_deltas():
    deltas = [random_delta(20, 24, 3, seed=s) for s in range(4)]
    a = merge_module("gam", deltas, reference=0).dense()
    b = merge_module("gam", [deltas[0], deltas[3], deltas[1], deltas[2]], reference=0).dense()
    assert rel_err(b, a) < 1e-10


def test_gam_of_identical_deltas_is_that_delta():
    d = random_delta(20, 16, 4, seed=3)
    R = random_orthogonal(4, seed=9)
    same = LowRank(d.B @ R, R.T @ d.A)
    assert rel_err(merge_module("gam", [d, same, d]).dense(), d.dense()) < 1e-10


def test_single_delta_is_returned_unchanged():
    d = random_delta(10, 12, 3, seed=0)
    out = merge_module("gam", [d])
    assert out is d


def test_auto_reference_picks_the_central_delta():
    g = torch.Generator().manual_seed(0)
    basis_u, _ = torch.linalg.qr(torch.randn(50, 8, generator=g))
    basis_v, _ = torch.linalg.qr(torch.randn(40, 8, generator=g))
    # delta 1 spans directions shared with both 0 and 2; 0 and 2 share nothing with each other
    spans = [(0, 1, 2, 3), (2, 3, 4, 5), (4, 5, 6, 7)]
    deltas = [LowRank(basis_u[:, list(s)] * 3.0, basis_v[:, list(s)].T) for s in spans]
    scores = subspace_agreement([factored_svd(d) for d in deltas])
    assert int(torch.argmax(scores)) == 1
    auto = merge_module("gam", deltas, reference="auto").dense()
    assert rel_err(auto, merge_module("gam", deltas, reference=1).dense()) < 1e-12


# ---- baselines ----------------------------------------------------------------------------


def test_average_and_task_arithmetic_are_exact():
    deltas = [random_delta(16, 20, 3, seed=s) for s in range(3)]
    dense = [d.dense() for d in deltas]
    avg = merge_module("average", deltas, weights=[1, 2, 3])
    assert avg.rank == 9
    assert rel_err(avg.dense(), (dense[0] + 2 * dense[1] + 3 * dense[2]) / 6) < 1e-12
    ta = merge_module("task_arithmetic", deltas, scale=0.5)
    assert rel_err(ta.dense(), 0.5 * sum(dense)) < 1e-12


def dense_ties(tensors, weights, density):
    trimmed = []
    for t in tensors:
        k = math.ceil(density * t.numel())
        thresh = t.abs().flatten().sort(descending=True).values[k - 1]
        trimmed.append(torch.where(t.abs() >= thresh, t, 0.0))
    total = sum(w * t for w, t in zip(weights, trimmed, strict=True))
    out = torch.zeros_like(total)
    count = torch.zeros_like(total)
    for w, t in zip(weights, trimmed, strict=True):
        agree = (torch.sign(t) == torch.sign(total)) & (t != 0)
        out += torch.where(agree, w * t, 0.0)
        count += torch.where(agree, w, 0.0)
    return torch.where(count > 0, out / count.clamp(min=1e-300), 0.0)


def test_ties_matches_definition():
    deltas = [random_delta(12, 10, 2, seed=s) for s in range(3)]
    got = merge_module("ties", deltas, weights=[1.0, 0.5, 2.0], density=0.3)
    want = dense_ties([d.dense() for d in deltas], [1.0, 0.5, 2.0], 0.3)
    assert isinstance(got, torch.Tensor)
    assert torch.allclose(got, want, atol=1e-12)


def test_knots_matches_dense_definition():
    deltas = [random_delta(30, 14, 3, seed=s) for s in range(3)]
    dense = [d.dense() for d in deltas]
    concat = torch.cat(dense, dim=1)
    u, s, vt = torch.linalg.svd(concat, full_matrices=False)
    r = 9
    u, s, vt = u[:, :r], s[:r], vt[:r]
    Vs = [vt[:, i * 14 : (i + 1) * 14].T for i in range(3)]
    # merge rule "ta": exactly the sum of the updates
    ta = merge_module("knots", deltas, merge_rule="ta")
    assert rel_err(ta.dense(), sum(dense)) < 1e-9
    # merge rule "ties" on the per-task right bases
    got = merge_module("knots", deltas, merge_rule="ties", density=0.5)
    want = u @ torch.diag(s) @ dense_ties(Vs, [1, 1, 1], 0.5).T
    # the SVD's signs are arbitrary, but TIES on V and the product U·Σ·Vᵀ are sign-consistent
    assert rel_err(got.dense(), want) < 1e-8


def test_tsv_matches_dense_definition():
    deltas = [random_delta(40, 36, 4, seed=s) for s in range(3)]
    Us, Ss, Vs = [], [], []
    for d in deltas:
        u, s, vt = torch.linalg.svd(d.dense(), full_matrices=False)
        Us.append(u[:, :4])
        Ss.append(s[:4])
        Vs.append(vt[:4].T)

    def polar(X):
        P, _, Qt = torch.linalg.svd(X, full_matrices=False)
        return P @ Qt

    want = polar(torch.cat(Us, 1)) @ torch.diag(torch.cat(Ss)) @ polar(torch.cat(Vs, 1)).T
    got = merge_module("tsv", deltas)
    assert rel_err(got.dense(), want) < 1e-8


# ---- dense recovery ------------------------------------------------------------------------


def test_randomized_range_finder_recovers_low_rank_and_flags_noise():
    d = random_delta(200, 150, 8, seed=2)
    rec, residual = low_rank_from_dense(d.dense(), 8)
    assert residual < 1e-10 and rel_err(rec.dense(), d.dense()) < 1e-10
    noisy = d.dense().to(torch.bfloat16).to(torch.float64) - torch.zeros(1)
    _, residual = low_rank_from_dense(noisy + 1e-2 * torch.randn(200, 150), 8)
    assert residual > 1e-3


# ---- parameter and input checks -----------------------------------------------------------


def test_unknown_parameter_is_an_error():
    deltas = [random_delta(8, 8, 2, seed=s) for s in range(2)]
    with pytest.raises(InputError, match="unknown parameter.*densty"):
        merge_module("ties", deltas, densty=0.3)


@pytest.mark.parametrize("bad", [{"reference": 5}, {"reference": "first"}])
def test_bad_reference_is_an_error(bad):
    deltas = [random_delta(8, 8, 2, seed=s) for s in range(2)]
    with pytest.raises(InputError, match="reference"):
        merge_module("gam", deltas, **bad)


def test_shape_mismatch_and_empty_are_errors():
    with pytest.raises(InputError, match="different shapes"):
        merge_module("gam", [random_delta(8, 8, 2, 0), random_delta(8, 9, 2, 1)])
    with pytest.raises(InputError, match="nothing to merge"):
        merge_module("gam", [])
    with pytest.raises(InputError, match="unknown merge method"):
        merge_module("slerp", [random_delta(8, 8, 2, 0)])


# ---- mixed ranks: the reference has the largest rank, and then ΔW is unique ------------------


def _other_svd_basis(d: LowRank, seed: int) -> LowRank:
    """The same update from a different valid SVD basis: B·Q and Qᵀ·A for a random orthogonal Q,
    then the SVD's singular-vector pairs with random signs (U·D, D·Vᵀ)."""
    g = torch.Generator().manual_seed(seed)
    Q = random_orthogonal(d.rank, seed)
    B, A = d.B @ Q, Q.T @ d.A
    u, s, vt = torch.linalg.svd(B @ A, full_matrices=False)
    u, s, vt = u[:, : d.rank], s[: d.rank], vt[: d.rank]
    D = torch.where(torch.rand(d.rank, generator=g) < 0.5, -1.0, 1.0).to(torch.float64)
    return LowRank((u * D) * s, D[:, None] * vt, d.scale)


@pytest.mark.parametrize("reference", [0, 2, "auto"])
def test_mixed_ranks_give_one_result_whatever_the_svd_basis(reference):
    """Ranks 6, 3, 6, 2, 4 with a rank-6 reference: every lower-rank input's zero-padded Procrustes
    problem has one solution, so two valid bases of the same inputs give the same ΔW (1e-10)."""
    ranks = (6, 3, 6, 2, 4)
    deltas = [random_delta(40, 30, r, seed=10 + i, scale=0.5) for i, r in enumerate(ranks)]
    deltas = [LowRank(d.B, d.A, scale) for d, scale in zip(deltas, (2.0, 1.0, 0.5, 2.0, 1.0), strict=True)]
    other = [_other_svd_basis(d, seed=100 + i) for i, d in enumerate(deltas)]
    a = merge_module("gam", deltas, reference=reference).dense()
    b = merge_module("gam", other, reference=reference).dense()
    assert rel_err(b, a) < 1e-10
    if reference != "auto":
        assert rel_err(a, dense_gam([d.dense() for d in deltas], list(ranks), ref=reference)) < 1e-8


def test_reference_below_the_largest_rank_is_refused():
    deltas = [random_delta(30, 20, r, seed=r) for r in (2, 5, 3, 5)]
    with pytest.raises(ReferenceRankError, match=r"input 0 has rank 2.*largest input rank 5 \(input 1, input 3\)") as e:
        merge_module("gam", deltas, reference=0)
    assert "rank-5 input (input 1, input 3) or to auto" in e.value.fix
    # auto chooses among the rank-5 inputs
    auto = merge_module("gam", deltas, reference="auto").dense()
    assert min(rel_err(auto, merge_module("gam", deltas, reference=i).dense()) for i in (1, 3)) < 1e-12


def test_exactly_rank_deficient_and_zero_updates_have_their_numerical_rank():
    """A B column of zeros lowers the rank (its singular vector would be arbitrary) and a zero
    update has rank 0: GAM treats them as lower-rank inputs, zero-padded."""
    full = random_delta(30, 20, 4, seed=1)
    B = random_delta(30, 20, 4, seed=2).B.clone()
    B[:, 3] = 0
    deficient = LowRank(B, random_delta(30, 20, 4, seed=3).A)
    zero = LowRank(torch.zeros(30, 4), torch.zeros(4, 20))
    assert [factored_svd(d).S.shape[0] for d in (full, deficient, zero)] == [4, 3, 0]
    got = merge_module("gam", [full, deficient, zero]).dense()
    assert rel_err(got, dense_gam([full.dense(), deficient.dense(), zero.dense()], [4, 3, 0], ref=0)) < 1e-8
    with pytest.raises(ReferenceRankError):  # the deficient input cannot be the reference
        merge_module("gam", [full, deficient], reference=1)


def test_lora_scale_lives_in_the_singular_values():
    d = random_delta(30, 20, 4, seed=5)
    for scale in (2.0, -0.5):
        scaled = LowRank(d.B, d.A, scale)
        f = factored_svd(scaled)
        assert torch.allclose(f.S, abs(scale) * factored_svd(d).S, rtol=1e-12)
        assert rel_err(f.U @ torch.diag(f.S) @ f.V.T, scale * d.dense()) < 1e-12
        assert rel_err(scaled.folded().dense(), scale * d.dense()) < 1e-15


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_batched_gam_of_one_module_equals_dense_reference_and_declines_what_it_cannot_merge(dtype):
    """``gam_on_device`` (what the mergekit plugin runs under ``--cuda``; here on the CPU, the same
    code) on factors stored in ``dtype``, mixed ranks with a scale: ΔW equals the paper's GAM of
    the updates as stored. It returns None where the per-module ``gam`` must decide: a NaN factor
    (which ``gam`` reports), a reference below the largest rank, one input."""
    from deltahub.merge.batched import gam_on_device

    ranks, scales = (6, 3, 6, 2), (2.0, 1.0, 0.5, 2.0)
    deltas = [
        LowRank(d.B.to(dtype), d.A.to(dtype), s)
        for d, s in zip(
            (random_delta(48, 40, r, seed=20 + i, scale=0.3) for i, r in enumerate(ranks)), scales, strict=False
        )
    ]
    merged = gam_on_device(deltas, [1.0, 2.0, 1.0, 1.0], 2, 1.5, "cpu")
    updates = [d.scale * d.B.double() @ d.A.double() for d in deltas]  # as stored
    want = 1.5 * dense_gam(updates, list(ranks), ref=2, weights=[1.0, 2.0, 1.0, 1.0])
    tol = 1e-6 if dtype == torch.float32 else 1e-5  # float32 output products; the inputs are exact either way
    assert merged.B.dtype == torch.float32 and rel_err(merged.dense().to(torch.float64), want) < tol
    nan = LowRank(deltas[1].B.clone(), deltas[1].A, deltas[1].scale)
    nan.B[0, 0] = float("nan")
    assert gam_on_device([deltas[0], nan], [1.0, 1.0], 0, 1.0, "cpu") is None
    assert gam_on_device(deltas, [1.0] * 4, 1, 1.0, "cpu") is None  # rank 3 < 6
    assert gam_on_device(deltas[:1], [1.0], 0, 1.0, "cpu") is None
