"""The demo report: aggregation over seeds, and every claim's verdict from synthetic per-question data
whose answer is known (a row built to be better, equal or worse on the same questions)."""

from __future__ import annotations

import numpy as np
import pytest

from deltahub.pipeline.report import aggregate, best_single, claim_list, evaluate_claims, write_report

N = 400  # questions per skill
SKILLS = ("lsr", "srt")


def _bits(v: np.ndarray) -> dict[str, str]:
    return {s: "".join("1" if x else "0" for x in v[i * N : (i + 1) * N]) for i, s in enumerate(SKILLS)}


def _fix(rng, v: np.ndarray, fraction: float) -> np.ndarray:
    """A copy of ``v`` with ``fraction`` of its wrong answers made right."""
    out = v.copy()
    wrong = np.flatnonzero(~out)
    out[rng.choice(wrong, int(fraction * wrong.size), replace=False)] = True
    return out


def _seed(seed: int) -> dict:
    """One seed: delta a clearly lifts the student, b and c a little; GAM lifts more than a; averaging
    equals GAM; TIES is better than GAM; the SFT controls equal the student. On the selection
    questions delta c looks best, so the best single delta is c, not a."""
    rng = np.random.default_rng(seed)
    student = rng.random(2 * N) < 0.5
    a = _fix(rng, student, 0.20)
    b, c = _fix(rng, student, 0.02), _fix(rng, student, 0.03)
    gam = _fix(rng, a, 0.20)
    rows = {
        "student": student,
        "+ delta a": a,
        "+ delta b": b,
        "+ delta c": c,
        "+ SFT-on-chosen a": student,
        "+ SFT-on-chosen b": student,
        "+ SFT-on-chosen c": student,
        "merge gam": gam,
        "merge average": gam,
        "merge ties": _fix(rng, gam, 0.3),
        "merge knots": gam,
        "merge gam-first2": _fix(rng, a, 0.1),
    }
    kinds = {"student": "student", "merge gam-first2": "composition curve"}
    kinds.update({r: "single delta" for r in rows if r.startswith("+ delta")})
    kinds.update({r: "SFT control" for r in rows if r.startswith("+ SFT")})
    kinds.update({r: "merge" for r in ("merge gam", "merge average", "merge ties", "merge knots")})
    select = {f"+ delta {d}": _bits(np.arange(2 * N) < (100 if d == "c" else 50)) for d in "abc"}
    return {
        "rows": {
            r: {**{s: float(v[i * N : (i + 1) * N].mean()) for i, s in enumerate(SKILLS)}, "avg": float(v.mean())}
            for r, v in rows.items()
        },
        "kinds": kinds,
        "correct": {r: _bits(v) for r, v in rows.items()},
        "select": select,
        "order": ["a", "b", "c"],
        "curve": "gam",
    }


@pytest.fixture(scope="module")
def results():
    return {s: _seed(s) for s in (0, 1, 2)}


def test_aggregate_is_mean_and_population_spread():
    runs = [{"student": {"a": 0.4, "avg": 0.4}}, {"student": {"a": 0.6, "avg": 0.6}}]
    assert aggregate(runs)["student"]["a"] == pytest.approx((0.5, 0.1))


def test_best_single_is_chosen_on_the_selection_questions(results):
    assert best_single(results[0]) == ("+ delta c", True)
    no_select = {**results[0], "select": {}}
    assert best_single(no_select) == ("+ delta a", False)  # on the evaluation questions, a is best


def test_claim_verdicts_follow_the_data(results):
    claims = {c.name: c for c in evaluate_claims(results, n_boot=1000)}
    verdict = {name: c.interval.verdict() for name, c in claims.items()}
    assert verdict["average single delta > student"] == "reproduced"
    assert verdict["GAM merge > student"] == "reproduced"
    assert verdict["GAM merge > best single delta"] == "reproduced"  # against c, chosen on selection questions
    assert verdict["GAM merge > averaging"] == "not resolved"  # identical rows: difference exactly 0
    assert claims["GAM merge > averaging"].interval.low == claims["GAM merge > averaging"].interval.high == 0
    assert verdict["GAM merge > TIES"] == "contradicted"
    assert verdict["premise: SFT on the chosen answers < student"] == "not resolved"  # SFT rows are the student's
    assert verdict["delta (DPO) > SFT on the same chosen answers"] == "reproduced"  # so every lifting delta beats them
    assert verdict["composition curve: 2 deltas > 1"] == "reproduced"
    assert verdict["composition curve: 3 deltas > 2"] == "reproduced"
    # the per-seed numbers are the plain paired mean differences
    r = results[1]
    student, gam = (
        np.array([int(ch) for s in SKILLS for ch in r["correct"][row][s]]) for row in ("student", "merge gam")
    )
    assert claims["GAM merge > student"].per_seed[1] == pytest.approx((gam - student).mean())


def test_claims_need_their_rows(results):
    partial = {
        **results[0],
        "correct": {
            k: v for k, v in results[0]["correct"].items() if k in ("student", "+ delta a", "+ delta b", "+ delta c")
        },
    }
    names = [c.name for c in claim_list(partial)]
    assert names == ["best single delta > student", "average single delta > student"]


def test_report_file_and_chart(results, tmp_path):
    path = write_report(tmp_path, "synthetic", results, ["A synthetic setting."], n_boot=500)
    text = path.read_text()
    assert "| GAM merge > TIES |" in text and "**contradicted**" in text and "**not resolved**" in text
    assert "held-out selection questions" in text and "order a → b → c" in text
    assert "## Appendix: per seed" in text and "seed 0: c" in text
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Plumbing check" not in text
    assert "Plumbing check" in write_report(tmp_path, "quick", results, [], n_boot=200, plumbing_only=True).read_text()


def _graded_seed(seed: int) -> dict:
    """A graded world's seed: partial credits per question; delta a lifts the student by 0.1 on every
    question, dose deltas a1 (small difference) and a4 (large) by 0.02 and 0.15, SFT lowers it, and
    the diagnostic's cosines rank the deltas as their gains do."""
    rng = np.random.default_rng(seed)
    student = rng.uniform(0.4, 0.8, N)
    lift = {"+ delta a": 0.1, "+ delta b": 0.05, "+ delta a1": 0.02, "+ delta a4": 0.15}
    rows = {"student": student, "a-weak": student - 0.3, "a-weaker": student - 0.5, "a-weaker1": student - 0.32}
    rows["a-weaker4"] = student - 0.6
    rows["b-weak"], rows["b-weaker"] = student - 0.3, student - 0.4
    rows.update({r: student + d for r, d in lift.items()})
    rows["+ SFT-on-chosen a"], rows["+ SFT-on-chosen b"] = student - 0.2, student - 0.1
    rows["merge gam"] = student + 0.12
    kinds = {r: "teacher" for r in rows if "weak" in r}
    kinds.update({"student": "student", "merge gam": "merge", "+ delta a": "single delta", "+ delta b": "single delta"})
    kinds.update({"+ delta a1": "dose", "+ delta a4": "dose", "+ SFT-on-chosen a": "SFT control"})
    kinds["+ SFT-on-chosen b"] = "SFT control"
    supervisors = {"a": ("a-weak", "a-weaker"), "b": ("b-weak", "b-weaker"), "a1": ("a-weak", "a-weaker1")}
    supervisors["a4"] = ("a-weak", "a-weaker4")
    return {
        "rows": {r: {"sec": float(v.mean()), "avg": float(v.mean())} for r, v in rows.items()},
        "kinds": kinds,
        "correct": {r: {"sec": [round(float(x), 4) for x in v]} for r, v in rows.items()},
        "select": {r: {"sec": [0.5] * 50} for r in ("+ delta a", "+ delta b")},
        "order": ["a", "b"],
        "curve": "gam",
        "supervisors": {d: {"chosen": c, "rejected": w} for d, (c, w) in supervisors.items()},
        "diagnostic": {
            d: {"cosine": c, "projection": c / 2} for d, c in (("a", 0.3), ("b", 0.2), ("a1", 0.1), ("a4", 0.4))
        },
    }


def test_graded_claims_dose_response_and_diagnostic(tmp_path):
    from deltahub.pipeline.report import dose_points, dose_rows

    results = {s: _graded_seed(s) for s in (0, 1, 2)}
    assert dose_rows(results[0]) == ["+ delta a1", "+ delta a", "+ delta a4"]  # by weak − weaker score
    claims = {c.name: c for c in evaluate_claims(results, n_boot=500)}
    beyond = claims["average single delta > its weak supervisor (so beyond both)"]
    assert beyond.per_seed[0] == pytest.approx(0.3 + 0.075, abs=1e-3)  # (0.1 + 0.3 + 0.05 + 0.3) / 2
    assert beyond.interval.verdict() == "reproduced"
    assert claims["premise: SFT on the chosen answers < student"].interval.estimate == pytest.approx(0.15, abs=1e-3)
    largest = [c for name, c in claims.items() if name.startswith("dose: largest")][0]
    assert largest.interval.estimate == pytest.approx(0.13, abs=1e-3)
    gains = [p.gain.estimate for p in dose_points(results, n_boot=500)]
    assert gains == pytest.approx([0.02, 0.1, 0.15], abs=1e-3)
    text = write_report(tmp_path, "graded", results, [], n_boot=500).read_text()
    assert "## Dose-response" in text and "## Delta diagnostic" in text
    assert "Spearman rho (cosine vs gain, 12 (delta, seed) points): +0.99" in text  # ties of equal gains aside


def test_row_intervals_stay_inside_the_metric_range():
    """Three seeds that disagree completely (0, 0, 2/3 on every question): the t-widened interval of a
    share of questions would reach past [0, 1]; it is cut to the range, and a narrow one is left alone."""
    from deltahub.pipeline.report import row_intervals

    def seed(value: float, other: float) -> dict:
        return {"correct": {"broken": {"sec": [value] * 50}, "steady": {"sec": [other] * 25 + [other + 0.1] * 25}}}

    results = {0: seed(0.0, 0.5), 1: seed(0.0, 0.5), 2: seed(2 / 3, 0.5)}
    ivs = row_intervals(results, n_boot=2000)
    broken, steady = ivs["broken"], ivs["steady"]
    assert broken.estimate == pytest.approx(2 / 9)
    assert broken.low == 0.0 and 0.6 < broken.high <= 1.0  # would be about [-0.27, 1.2] uncut
    assert 0.5 < steady.low < 0.55 < steady.high < 0.6  # inside the range: the plain widened interval
