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


def _naive_two_level(groups: list[np.ndarray], n_boot: int, rng) -> np.ndarray:
    """The two-level bootstrap written out plainly: draw S seeds with replacement, resample each drawn
    seed's questions by index, average the S means."""
    reps = np.empty(n_boot)
    for b in range(n_boot):
        drawn = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
        reps[b] = np.mean([g[rng.integers(0, g.size, g.size)].mean() for g in drawn])
    return reps


@pytest.mark.parametrize("continuous", [False, True])
def test_matches_a_plain_two_level_resampling(continuous):
    """Same distribution as an independent loop over seeds and question indices (different random
    streams, so the bounds agree to Monte-Carlo error), and the small-sample interval is that
    percentile interval widened about the estimate by t_{S-1} / z."""
    from scipy.stats import t

    rng = np.random.default_rng(11)
    if continuous:  # many distinct values: the index-resampling path
        groups = [rng.normal(mu, 0.5, 200) for mu in (0.0, 0.02, 0.05, -0.01, 0.03)]
    else:  # paired exact-match differences, seed effects that disagree: the multinomial path
        groups = [_paired(rng, 600, effect) for effect in (0.0, 0.04, 0.08, -0.02, 0.03)]
    reps = _naive_two_level(groups, 4000, np.random.default_rng(5))
    low, high = np.quantile(reps, [0.025, 0.975])
    plain = hierarchical_bootstrap(groups, n_boot=4000, seed=3, small_sample=False)
    width = high - low
    assert plain.estimate == pytest.approx(np.mean([g.mean() for g in groups]))
    assert plain.low == pytest.approx(low, abs=0.06 * width)
    assert plain.high == pytest.approx(high, abs=0.06 * width)
    widened = hierarchical_bootstrap(groups, n_boot=4000, seed=3)
    k = t.ppf(0.975, 4) / 1.959964
    assert widened.low == pytest.approx(plain.estimate - k * (plain.estimate - plain.low))
    assert widened.high == pytest.approx(plain.estimate + k * (plain.high - plain.estimate))


def test_verdict_follows_a_known_effect():
    """Five seeds of 3,000 paired questions: an effect of +0.03 is resolved, none is not, -0.03 is
    contradicted (each at the data's own seed-to-seed spread of 0.005)."""
    rng = np.random.default_rng(21)
    verdicts = {
        effect: hierarchical_bootstrap(
            [_paired(rng, 3000, effect + 0.005 * rng.standard_normal()) for _ in range(5)], n_boot=1000, seed=1
        ).verdict()
        for effect in (0.03, 0.0, -0.03)
    }
    assert verdicts == {0.03: "reproduced", 0.0: "not resolved", -0.03: "contradicted"}
