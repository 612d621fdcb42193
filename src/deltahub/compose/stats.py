"""Paired comparison of two models on the same held-out questions.

Compose's held-out scores differ by a few questions on a few hundred: whether the composed student beats
merging every candidate is a claim about those differences, so it is reported as a paired difference with
its 95% interval and the exact McNemar test on the questions where the two disagree.
"""

from __future__ import annotations

import math
from typing import Any

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar p-value: the discordant questions as a fair-coin binomial."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_difference(a: list[int], b: list[int]) -> dict[str, Any]:
    """``mean(a) - mean(b)`` over the same questions (1 = right) with a 95% Wald interval on the per-question
    differences, the discordant counts (``wins``: a right where b is wrong) and the exact McNemar p-value."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired outcomes need the same non-empty questions (got {len(a)} and {len(b)})")
    n = len(a)
    d = [x - y for x, y in zip(a, b, strict=True)]
    diff = sum(d) / n
    half = Z95 * math.sqrt(sum((v - diff) ** 2 for v in d) / n / n)
    wins, losses = d.count(1), d.count(-1)
    return {"diff": diff, "ci95": [diff - half, diff + half], "wins": wins, "losses": losses, "n": n,
            "p_mcnemar": mcnemar_exact(wins, losses)}


def describe(name: str, p: dict[str, Any]) -> str:
    """One line: ``composed - merge_all: +0.0100 (95% CI -0.0200..+0.0400; 12 vs 10 questions, McNemar p=0.83)``."""
    low, high = p["ci95"]
    return (f"{name}: {p['diff']:+.4f} (95% CI {low:+.4f}..{high:+.4f}; right/wrong on {p['wins']} vs {p['losses']} "
            f"of {p['n']} questions, McNemar p={p['p_mcnemar']:.2g})")
