"""deltahub.stats: the hierarchical bootstrap against known answers (normal limit, coverage)."""

from __future__ import annotations

import numpy as np
import pytest

from deltahub.errors import InputError
from deltahub.stats import Interval, hierarchical_bootstrap


def _paired(rng, n: int, effect: float, discordant: float = 0.1) -> np.ndarray:
    """Per-question differences of two exact-match rows: +1 / -1 on discordant questions."""
    up, down = discordant / 2 + effect / 2, discordant / 2 - effect / 2
    u = rng.random(n)
    return np.where(u < up, 1, np.where(u < up + down, -1, 0))


def test_one_seed_large_sample_matches_the_normal_interval():
    d = _paired(np.random.default_rng(0), 20_000, 0.01)
    half = 1.959964 * d.std(ddof=1) / np.sqrt(d.size)
    iv = hierarchical_bootstrap([d], n_boot=20_000, seed=1)
    assert iv.estimate == pytest.approx(d.mean())
    assert iv.low == pytest.approx(d.mean() - half, abs=0.06 * half)
    assert iv.high == pytest.approx(d.mean() + half, abs=0.06 * half)


def test_continuous_values_take_the_index_resampling_path():
    x = np.random.default_rng(0).normal(0.3, 1.0, 400)
    iv = hierarchical_bootstrap([x], n_boot=1500, seed=2)
    half = 1.959964 * x.std(ddof=1) / np.sqrt(x.size)
    assert iv.high - iv.low == pytest.approx(2 * half, rel=0.12)


def _coverage(tau: float, small_sample: bool, reps: int = 150, seeds: int = 5) -> float:
    """How often the interval holds the true mean effect 0.01 on synthetic two-level data."""
    rng = np.random.default_rng(7)
    hits = 0
    for r in range(reps):
        groups = [_paired(rng, 3000, 0.01 + tau * rng.standard_normal()) for _ in range(seeds)]
        iv = hierarchical_bootstrap(groups, n_boot=600, seed=r, small_sample=small_sample)
        hits += iv.low <= 0.01 <= iv.high
    return hits / reps


def test_coverage_with_five_seeds_that_disagree():
    """Seed-to-seed spread 0.03: the t-widened interval covers ~95%; the plain percentile one less."""
    widened, plain = _coverage(0.03, True), _coverage(0.03, False)
    assert widened >= 0.92
    assert plain < widened


def test_verdicts_and_bad_input():
    assert Interval(0.02, 0.01, 0.03).verdict() == "reproduced"
    assert Interval(0.0, -0.01, 0.01).verdict() == "not resolved"
    assert Interval(-0.02, -0.03, -0.01).verdict() == "contradicted"
    with pytest.raises(InputError, match="1-D array per seed"):
        hierarchical_bootstrap([])
    with pytest.raises(InputError, match="1-D array per seed"):
        hierarchical_bootstrap([np.zeros(3), np.zeros(0)])
    with pytest.raises(InputError, match="level"):
        hierarchical_bootstrap([np.zeros(3)], level=1.5)


def test_same_seed_same_interval_and_constant_data():
    d = [_paired(np.random.default_rng(s), 500, 0.02) for s in range(3)]
    assert hierarchical_bootstrap(d, seed=4) == hierarchical_bootstrap(d, seed=4)
    flat = hierarchical_bootstrap([np.full(100, 0.25), np.full(50, 0.25)])
    assert (flat.estimate, flat.low, flat.high) == pytest.approx((0.25, 0.25, 0.25))
