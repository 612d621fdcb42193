"""The demo report: aggregation over seeds and the papers' claims, stated from the numbers."""

from __future__ import annotations

import pytest

from deltahub.pipeline.report import aggregate, claims

KINDS = {"student": "student", "+ delta a": "single delta", "+ delta b": "single delta",
         "merge gam": "merge", "merge average": "merge"}


def run(student_a, delta_a_a, gam_avg):
    """One seed: skills a and b; delta a moves skill a only, delta b lowers skill b."""
    return {
        "student": {"a": student_a, "b": 0.5, "avg": (student_a + 0.5) / 2},
        "+ delta a": {"a": delta_a_a, "b": 0.5, "avg": (delta_a_a + 0.5) / 2},
        "+ delta b": {"a": student_a, "b": 0.4, "avg": (student_a + 0.4) / 2},
        "merge gam": {"a": 0.5, "b": 0.5, "avg": gam_avg},
        "merge average": {"a": 0.5, "b": 0.5, "avg": 0.45},
    }


def test_aggregate_is_mean_and_population_spread():
    agg = aggregate([run(0.4, 0.6, 0.5), run(0.6, 0.6, 0.5)])
    assert agg["student"]["a"] == pytest.approx((0.5, 0.1))
    assert agg["+ delta a"]["a"] == pytest.approx((0.6, 0.0))


def test_claims_follow_the_numbers():
    lines = claims(aggregate([run(0.4, 0.6, 0.5), run(0.6, 0.6, 0.5)]), KINDS)
    text = "\n".join(lines)
    # best single delta: a (avg 0.55) vs student 0.5
    assert "- single delta > student: yes (best single + delta a 0.550 vs student 0.500)" in text
    assert "lifts the student on its own skill: 1 of 2 (a +0.100, b -0.100)" in text
    assert "- GAM merge > best single delta: NO (0.500 vs 0.550)" in text
    assert "- GAM >= average: yes (0.500 vs 0.450)" in text
