"""Paired comparison of two models on the same held-out questions.

Compose's held-out scores differ by a few questions on a few hundred: whether the composed student beats
merging every candidate is a claim about those differences, so it is reported as a paired difference with
its 95% interval (:func:`deltahub.stats.hierarchical_bootstrap`, the demo's: over questions, and over seeds
first when several runs are pooled) and the exact McNemar test on the questions where the two disagree.
"""

from __future__ import annotations

import math
from typing import Any


def mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar p-value: the discordant questions as a fair-coin binomial."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_difference(a: list[int], b: list[int]) -> dict[str, Any]:
    """``mean(a) - mean(b)`` over the same questions (1 = right): see :func:`pooled_difference`."""
    return pooled_difference([a], [b])


def pooled_difference(a_runs: list[list[int]], b_runs: list[list[int]]) -> dict[str, Any]:
    """The paired difference over one or more runs (seeds), each answering the same questions with both models:
    the mean of the runs' mean differences, its 95% interval (seeds, then questions, resampled), the discordant
    counts (``wins``: a right where b is wrong) and the exact McNemar p-value on them."""
    from ..stats import hierarchical_bootstrap

    if len(a_runs) != len(b_runs) or any(len(a) != len(b) or not a for a, b in zip(a_runs, b_runs, strict=True)):
        raise ValueError(
            "paired outcomes need the same non-empty questions in every run "
            f"(got {[len(a) for a in a_runs]} and {[len(b) for b in b_runs]})"
        )
    diffs = [[x - y for x, y in zip(a, b, strict=True)] for a, b in zip(a_runs, b_runs, strict=True)]
    flat = [v for d in diffs for v in d]
    wins, losses = flat.count(1), flat.count(-1)
    if wins + losses == 0:  # the two models agree on every question
        low = high = estimate = 0.0
    else:
        iv = hierarchical_bootstrap(diffs)
        estimate, low, high = iv.estimate, iv.low, iv.high
    return {
        "diff": estimate,
        "ci95": [low, high],
        "wins": wins,
        "losses": losses,
        "n": len(flat),
        "runs": len(diffs),
        "p_mcnemar": mcnemar_exact(wins, losses),
    }


def describe(name: str, p: dict[str, Any]) -> str:
    """One line: ``composed - merge_all: +0.0100 (95% CI -0.0200..+0.0400; right/wrong on 12 vs 10 of 200
    questions, McNemar p=0.83)``."""
    low, high = p["ci95"]
    return (
        f"{name}: {p['diff']:+.4f} (95% CI {low:+.4f}..{high:+.4f}; right/wrong on {p['wins']} vs {p['losses']} "
        f"of {p['n']} questions, McNemar p={p['p_mcnemar']:.2g})"
    )
