"""Does the diagnostic predict which deltas help? Spearman's rank correlation with a bootstrap CI.

A handful of deltas gives a handful of (cosine, gain) pairs, so the correlation is a rank one
(only the order of the cosines is claimed to matter) and its uncertainty is shown two ways: a
percentile bootstrap interval over the pairs, and an exact permutation p-value (all n! pairings
up to 8 deltas, else a Monte Carlo sample). With few pairs the bootstrap interval is coarse (a
resample of 5 pairs holds ~3 distinct ones), which the permutation p-value does not suffer from.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..stats import Interval

EXACT_PERMUTATIONS_UP_TO = 8  # 8! = 40,320 pairings


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties sharing their average rank:
    rank(xᵢ) = #{xⱼ < xᵢ} + (#{xⱼ = xᵢ} + 1) / 2."""
    v = np.asarray(values, dtype=float)
    less = (v[..., None, :] < v[..., :, None]).sum(axis=-1)
    equal = (v[..., None, :] == v[..., :, None]).sum(axis=-1)
    return less + (equal + 1) / 2


def _pearson_rows(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair; NaN where a row is constant (no order to correlate)."""
    dx = rx - rx.mean(axis=-1, keepdims=True)
    dy = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((dx * dx).sum(axis=-1) * (dy * dy).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (dx * dy).sum(axis=-1) / np.where(den > 0, den, 1), np.nan)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's r of the average ranks (the tie-correct form)."""
    x, y = _pairs(x, y)
    return float(_pearson_rows(average_ranks(x), average_ranks(y)))


def _pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    ax, ay = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if ax.ndim != 1 or ax.shape != ay.shape:
        raise InputError(
            f"rank correlation needs two equally long lists, got {ax.shape} and {ay.shape}",
            "pass one diagnostic value and one measured gain per delta",
        )
    if ax.size < 3:
        raise InputError(f"rank correlation needs at least 3 pairs, got {ax.size}", "diagnose at least 3 deltas")
    if not (np.isfinite(ax).all() and np.isfinite(ay).all()):
        raise InputError("rank correlation got a NaN, Inf or missing value", "drop the deltas without a cosine")
    for name, a in (("diagnostic values", ax), ("gains", ay)):
        if np.all(a == a[0]):
            raise InputError(f"all {name} are equal: their order is undefined", "correlate deltas that differ")
    return ax, ay


@dataclass(frozen=True)
class RankCorrelation(Interval):
    """Spearman's rho (``estimate``) with its percentile bootstrap interval (``low``, ``high``).

    ``n``: pairs; ``replicates``: bootstrap resamples that had an order in both variables (a
    resample drawing one value repeatedly has no rank correlation and is left out); ``p_value``:
    two-sided permutation p-value of rho = 0 (``exact`` says whether every pairing was counted)."""

    n: int = 0
    replicates: int = 0
    p_value: float = 1.0
    exact: bool = True


def _permutation_p(rx: np.ndarray, ry: np.ndarray, rho: float, n_perm: int, rng: np.random.Generator):
    n = rx.size
    if n <= EXACT_PERMUTATIONS_UP_TO:
        perms = np.array(list(itertools.permutations(range(n))))
        exact = True
    else:
        perms = np.argsort(rng.random((n_perm, n)), axis=1)
        exact = False
    rhos = _pearson_rows(np.broadcast_to(rx, perms.shape), ry[perms])
    extreme = int((np.abs(rhos) >= abs(rho) - 1e-12).sum())
    if exact:
        return extreme / len(perms), True
    return (extreme + 1) / (len(perms) + 1), False  # the observed pairing counts as one draw


def rank_correlation(
    diagnostic: Sequence[float],
    gains: Sequence[float],
    *,
    n_boot: int = 4000,
    level: float = 0.95,
    seed: int = 0,
    n_perm: int = 20000,
) -> RankCorrelation:
    """Spearman's rho between a diagnostic (e.g. each delta's cosine) and measured gains (the same
    deltas' paired gains over the student), a percentile bootstrap interval that resamples the
    (delta) pairs, and a permutation p-value."""
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}", "pass e.g. 0.95")
    x, y = _pairs(diagnostic, gains)
    rx, ry = average_ranks(x), average_ranks(y)
    rho = float(_pearson_rows(rx, ry))
    rng = np.random.default_rng(seed)
    reps = []
    for start in range(0, n_boot, 512):  # chunks: the rank comparisons are (rows, n, n)
        idx = rng.integers(0, x.size, size=(min(512, n_boot - start), x.size))
        reps.append(_pearson_rows(average_ranks(x[idx]), average_ranks(y[idx])))
    boot = np.concatenate(reps)
    boot = boot[np.isfinite(boot)]
    if boot.size < n_boot / 2:
        raise InputError(
            f"only {boot.size} of {n_boot} bootstrap resamples of {x.size} pairs have an order",
            "correlate more deltas",
        )
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    p, exact = _permutation_p(rx, ry, rho, n_perm, rng)
    return RankCorrelation(rho, float(low), float(high), level, int(x.size), int(boot.size), float(p), exact)
