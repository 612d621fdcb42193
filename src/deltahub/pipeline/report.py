"""The demo's report: every row over the world seeds, each of the papers' claims as a paired
difference with a 95% confidence interval and a verdict, the composition curve, a per-seed
appendix, a markdown file and a PNG.

A claim is always a *paired* comparison: the two rows answered the same questions of the same
world seed, so the data are per-question differences, resampled by
:func:`deltahub.stats.hierarchical_bootstrap` (seeds, then questions within each seed).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..errors import InputError
from ..stats import Interval, hierarchical_bootstrap

# a seed's results.json, as run_recipe writes it: rows, kinds, correct, select, order, curve
SeedResult = dict


def aggregate(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    """{row: {metric: (mean, spread)}} over seeds; spread = population std (0 for one seed)."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for name in runs[0]:
        metrics = runs[0][name].keys()
        out[name] = {}
        for m in metrics:
            values = [r[name][m] for r in runs if name in r]
            out[name][m] = (statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0)
    return out


def table(agg: dict, kinds: dict[str, str], skills: list[str]) -> str:
    cols = [*skills, "avg"]
    lines = ["| row | kind | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name, scores in agg.items():
        cells = []
        for c in cols:
            mean, spread = scores[c]
            cells.append(f"{mean:.3f}" + (f" ± {spread:.3f}" if spread else ""))
        lines.append(f"| {name} | {kinds.get(name, '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# per-question vectors


def _skill_vector(bits: str | list[float]) -> np.ndarray:
    """Per question: 0/1 from an exact-match bit string, or a graded skill's partial credits."""
    if isinstance(bits, str):
        return (np.frombuffer(bits.encode(), dtype=np.uint8) - ord("0")).astype(float)
    return np.asarray(bits, dtype=float)


def _vector(bits_by_skill: dict[str, str | list[float]]) -> np.ndarray:
    """One vector over every question of every skill (skills in sorted order)."""
    return np.concatenate([_skill_vector(bits_by_skill[s]) for s in sorted(bits_by_skill)])


def _rows_of_kind(result: SeedResult, kind: str) -> list[str]:
    return [name for name, k in result["kinds"].items() if k == kind]


def _deltas(result: SeedResult) -> list[str]:
    """The single-delta rows in recipe order."""
    order = result.get("order") or []
    named = [f"+ delta {d}" for d in order if f"+ delta {d}" in result["correct"]]
    return named or [r for r in _rows_of_kind(result, "single delta") if r in result["correct"]]


def best_single(result: SeedResult) -> tuple[str, bool]:
    """(row, chosen on held-out selection questions?) of the seed's best single delta.

    It is chosen on ``select`` questions, disjoint from the evaluation questions, so the claims
    that compare against it are not biased by choosing on the data they are scored on; without
    them the choice falls back to the evaluation questions (and says so).
    """
    singles = _deltas(result)
    select = result.get("select") or {}
    if singles and all(s in select for s in singles):
        return max(singles, key=lambda s: (_vector(select[s]).mean(), -singles.index(s))), True
    return max(singles, key=lambda s: (_vector(result["correct"][s]).mean(), -singles.index(s))), False


def _supervisor(result: SeedResult, delta_row: str, which: str = "chosen") -> str:
    """The row of a delta's chosen (weak) or rejected (weaker) supervisor."""
    return (result.get("supervisors") or {}).get(delta_row.removeprefix("+ delta "), {}).get(which, "")


def dose_magnitude(result: SeedResult, delta_row: str) -> float:
    """How far a delta's pairs point: its weak supervisor's score minus its weaker one's (this seed)."""
    rows = result["rows"]
    chosen, rejected = _supervisor(result, delta_row, "chosen"), _supervisor(result, delta_row, "rejected")
    if chosen not in rows or rejected not in rows:
        return float("nan")
    return rows[chosen]["avg"] - rows[rejected]["avg"]


def dose_rows(result: SeedResult) -> list[str]:
    """The dose-response: the dose deltas and the merged deltas that share their weak supervisor, by
    magnitude (smallest first); empty when the run has no dose deltas."""
    doses = [r for r in _rows_of_kind(result, "dose") if r in result["correct"]]
    if not doses:
        return []
    weak = {_supervisor(result, d) for d in doses}
    same = [r for r in _deltas(result) if _supervisor(result, r) in weak]
    return sorted(doses + same, key=lambda r: dose_magnitude(result, r))


def curve_rows(result: SeedResult) -> list[str]:
    """The composition curve's rows: the first delta, then the curve method over the first k."""
    deltas, method = result.get("order") or [], result.get("curve")
    if not method or not deltas:
        return []
    rows = [f"+ delta {deltas[0]}"] + [f"merge {method}-first{k}" for k in range(2, len(deltas))]
    rows.append(f"merge {method}")
    return rows if all(r in result["correct"] for r in rows) else []


# ------------------------------------------------------------------------------------------------
# claims


@dataclass
class Claim:
    """One comparison: ``measure(seed result) -> per-question differences`` (positive = as claimed)."""

    name: str
    source: str  # what the paper reports
    measure: Callable[[SeedResult], np.ndarray]
    interval: Interval | None = None
    per_seed: dict[int, float] = field(default_factory=dict)


def _diff(a: str | Callable, b: str | Callable) -> Callable[[SeedResult], np.ndarray]:
    def pick(x, r):
        return x(r) if callable(x) else _vector(r["correct"][x])

    return lambda r: pick(a, r) - pick(b, r)


def _mean_of(rows: Callable[[SeedResult], list[str]]) -> Callable[[SeedResult], np.ndarray]:
    return lambda r: np.mean([_vector(r["correct"][x]) for x in rows(r)], axis=0)


def claim_list(result: SeedResult) -> list[Claim]:
    """The claims this run's rows can test (read from one seed's rows; every seed has the same)."""
    rows = set(result.get("correct") or {})
    singles = _deltas(result)
    return [
        *_delta_claims(result, rows, singles),
        *_merge_claims(rows, singles),
        *_control_claims(result, rows, singles),
        *_dose_claims(result, rows),
        *_curve_claims(result),
    ]


def _delta_claims(result: SeedResult, rows: set[str], singles: list[str]) -> list[Claim]:
    """Delta learning's claim: a single delta lifts the student, beyond both of its supervisors."""
    out: list[Claim] = []
    if "student" in rows and singles:
        out.append(
            Claim(
                "best single delta > student",
                "PDA Table 1: every single delta +0.8 to +4.7 EM",
                _diff(lambda r: _vector(r["correct"][best_single(r)[0]]), "student"),
            )
        )
        out.append(
            Claim(
                "average single delta > student",
                "PDA Table 1: mean of the three single deltas +2.6 EM",
                _diff(_mean_of(_deltas), "student"),
            )
        )
    beyond = [d for d in singles if _supervisor(result, d, "chosen") in rows]
    if beyond and len(beyond) == len(singles):
        out.append(
            Claim(
                "average single delta > its weak supervisor (so beyond both)",
                "delta learning: the student gains from pairs whose both members are weaker than it",
                lambda r: np.mean(
                    [_vector(r["correct"][d]) - _vector(r["correct"][_supervisor(r, d)]) for d in beyond], 0
                ),
            )
        )
    return out


def _merge_claims(rows: set[str], singles: list[str]) -> list[Claim]:
    """PDA's claims: the GAM merge beats the student, the best single delta and the other merges."""
    out: list[Claim] = []
    main = "merge gam"
    if main not in rows:
        return out
    if "student" in rows:
        out.append(Claim("GAM merge > student", "PDA Table 1: +6.8 EM (3 deltas)", _diff(main, "student")))
    if singles:
        out.append(
            Claim(
                "GAM merge > best single delta",
                "PDA Table 1: +2.1 EM",
                _diff(main, lambda r: _vector(r["correct"][best_single(r)[0]])),
            )
        )
    for other, label, paper in (
        ("merge average", "averaging", "PDA Table 1: +2.8 EM"),
        ("merge ties", "TIES", "PDA Table 1: +1.6 EM"),
        ("merge knots", "KnOTS", "PDA Table 1: +1.8 EM"),
        ("merge core", "Core Space", "not a PDA baseline (a registered factor-space merge)"),
        ("merge iso_c", "Iso-C", "not a PDA baseline (a registered factor-space merge)"),
        ("merge iso_cts", "Iso-CTS", "not a PDA baseline (a registered factor-space merge)"),
    ):
        if other in rows:
            out.append(Claim(f"GAM merge > {label}", paper, _diff(main, other)))
    return out


def _control_claims(result: SeedResult, rows: set[str], singles: list[str]) -> list[Claim]:
    """The controls: SFT on the same chosen answers, and the premise that every supervisor is below the student."""
    out: list[Claim] = []
    sfts = [r for r in _rows_of_kind(result, "SFT control") if r in rows]
    if singles and len(sfts) == len(singles):
        pairs = list(zip(singles, sfts, strict=True))
        out.append(
            Claim(
                "delta (DPO) > SFT on the same chosen answers",
                "delta learning: DPO on weak pairs lifts, SFT on the chosen answers hurts; PDA Table 16",
                lambda r: np.mean([_vector(r["correct"][d]) - _vector(r["correct"][s]) for d, s in pairs], axis=0),
            )
        )
        out.append(
            Claim(
                "premise: SFT on the chosen answers < student",
                "delta learning: SFT on weak data hurts; PDA Table 16: -2.2 F1",
                _diff("student", _mean_of(lambda r: sfts)),
            )
        )
    weaks = [r for r in _rows_of_kind(result, "teacher") if r.endswith("-weak") and r in rows]
    if weaks and "student" in rows:
        out.append(
            Claim(
                "premise: weak supervisors < student",
                "PDA Table 4: every supervisor below the student",
                _diff("student", _mean_of(lambda r: weaks)),
            )
        )
    return out


def _dose_claims(result: SeedResult, rows: set[str]) -> list[Claim]:
    """The theorem's dose-response: each dose delta against the student, the largest against the smallest."""
    doses = dose_rows(result)
    if not doses or "student" not in rows:
        return []
    out = [
        Claim(
            f"dose: {d.removeprefix('+ delta ')} (weak − weaker {dose_magnitude(result, d):+.3f}) > student",
            "delta learning (theorem): the gain grows with the delta's magnitude, then flattens",
            _diff(d, "student"),
        )
        for d in doses
    ]
    out.append(
        Claim(
            f"dose: largest difference ({doses[-1].removeprefix('+ delta ')}) > smallest "
            f"({doses[0].removeprefix('+ delta ')})",
            "delta learning (theorem): a larger difference, a larger gain",
            _diff(doses[-1], doses[0]),
        )
    )
    return out


def _curve_claims(result: SeedResult) -> list[Claim]:
    """PDA's composition curve: each added delta, and all of them against the first."""
    curve = curve_rows(result)
    out = [
        Claim(
            f"composition curve: {k + 1} deltas > {k}", "PDA Table 1: 2Δ 78.3 → 3Δ 79.3", _diff(curve[k], curve[k - 1])
        )
        for k in range(1, len(curve))
    ]
    if len(curve) > 2:
        out.append(
            Claim(
                f"composition curve: {len(curve)} deltas > 1",
                "PDA: GAM 3Δ above the first delta",
                _diff(curve[-1], curve[0]),
            )
        )
    return out


def evaluate_claims(results: dict[int, SeedResult], n_boot: int = 4000) -> list[Claim]:
    """Every claim's per-seed mean difference and its hierarchical-bootstrap interval."""
    seeds = sorted(results)
    claims = claim_list(results[seeds[0]])
    for c in claims:
        diffs = {s: c.measure(results[s]) for s in seeds}
        c.per_seed = {s: float(d.mean()) for s, d in diffs.items()}
        c.interval = hierarchical_bootstrap([diffs[s] for s in seeds], n_boot=n_boot, bounds=(-1.0, 1.0))
    return claims


def row_intervals(results: dict[int, SeedResult], n_boot: int = 2000) -> dict[str, Interval]:
    """Each row's average score (exact match; partial credit on a graded skill), with its interval."""
    seeds = sorted(results)
    rows = [r for r in results[seeds[0]]["correct"] if all(r in results[s]["correct"] for s in seeds)]
    return {
        r: hierarchical_bootstrap([_vector(results[s]["correct"][r]) for s in seeds], n_boot=n_boot, bounds=(0.0, 1.0))
        for r in rows
    }


# ------------------------------------------------------------------------------------------------
# output


def _fmt(iv: Interval) -> str:
    return f"{iv.estimate:+.4f} [{iv.low:+.4f}, {iv.high:+.4f}]"


def claims_table(claims: list[Claim]) -> str:
    lines = ["| claim | paired difference, 95% CI | verdict | seeds above 0 | the papers |", "|---|---|---|---|---|"]
    for c in claims:
        up = sum(v > 0 for v in c.per_seed.values())
        lines.append(
            f"| {c.name} | {_fmt(c.interval)} | **{c.interval.verdict()}** | {up} of {len(c.per_seed)} | {c.source} |"
        )
    return "\n".join(lines)


def rows_table(results: dict[int, SeedResult], intervals: dict[str, Interval]) -> str:
    seeds = sorted(results)
    first = results[seeds[0]]
    skills = sorted(k for k in first["rows"]["student"] if k != "avg") if "student" in first["rows"] else []
    lines = ["| row | kind | " + " | ".join(skills) + " | avg, 95% CI |", "|---|---|" + "---|" * (len(skills) + 1)]
    for name, iv in intervals.items():
        cells = [f"{statistics.fmean(results[s]['rows'][name][k] for s in seeds):.3f}" for k in skills]
        lines.append(
            f"| {name} | {first['kinds'].get(name, '')} | "
            + " | ".join(cells)
            + f" | {iv.estimate:.3f} [{iv.low:.3f}, {iv.high:.3f}] |"
        )
    return "\n".join(lines)


def per_seed_appendix(results: dict[int, SeedResult], claims: list[Claim]) -> list[str]:
    seeds = sorted(results)
    first = results[seeds[0]]
    rows = list(first["rows"])
    skills = sorted(k for k in first["rows"][rows[0]] if k != "avg")
    text = [
        "## Appendix: per seed",
        "",
        "Average score of every row (per skill in the seed's results.json):",
        "",
        "| row | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|" + "---|" * len(seeds),
    ]
    for r in rows:
        text.append(
            f"| {r} | "
            + " | ".join(f"{results[s]['rows'][r]['avg']:.3f}" if r in results[s]["rows"] else "–" for s in seeds)
            + " |"
        )
    text += [
        "",
        "Best single delta of each seed (chosen on the selection questions): "
        + ", ".join(f"seed {s}: {best_single(results[s])[0].removeprefix('+ delta ')}" for s in seeds),
        "",
        "Paired difference of each claim per seed:",
        "",
        "| claim | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|" + "---|" * len(seeds),
    ]
    for c in claims:
        text.append(f"| {c.name} | " + " | ".join(f"{c.per_seed[s]:+.4f}" for s in seeds) + " |")
    text += ["", f"Skills: {', '.join(skills)}."]
    return text


@dataclass
class DosePoint:
    """One point of the dose-response: a delta, its magnitude (weak − weaker score, mean over seeds) and
    its paired gain over the student with an interval."""

    row: str
    magnitude: float
    gain: Interval


def dose_points(results: dict[int, SeedResult], n_boot: int = 4000) -> list[DosePoint]:
    seeds = sorted(results)
    rows = dose_rows(results[seeds[0]])
    out = []
    for r in rows:
        diffs = [_vector(results[s]["correct"][r]) - _vector(results[s]["correct"]["student"]) for s in seeds]
        mag = float(np.mean([dose_magnitude(results[s], r) for s in seeds]))
        out.append(DosePoint(r, mag, hierarchical_bootstrap(diffs, n_boot=n_boot, bounds=(-1.0, 1.0))))
    return out


def dose_table(points: list[DosePoint]) -> str:
    lines = ["| delta | weak − weaker (score) | gain over the student, 95% CI | verdict |", "|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.row.removeprefix('+ delta ')} | {p.magnitude:+.3f} | {_fmt(p.gain)} | {p.gain.verdict()} |")
    return "\n".join(lines)


def diagnostic_lines(results: dict[int, SeedResult]) -> list[str]:
    """Each delta's cosine with the oracle update (and its projection on it) beside its measured gain
    over the student, and Spearman's rho between them over every (delta, seed)."""
    from ..diagnostic import rank_correlation

    seeds = sorted(results)
    names = [
        n
        for n in results[seeds[0]].get("diagnostic") or {}
        if all(n in (results[s].get("diagnostic") or {}) and f"+ delta {n}" in results[s]["correct"] for s in seeds)
    ]
    if not names:
        return []
    points = []  # (cosine, projection, gain) per (seed, delta)
    for s in seeds:
        student = _vector(results[s]["correct"]["student"])
        for n in names:
            d = results[s]["diagnostic"][n]
            gain = float((_vector(results[s]["correct"][f"+ delta {n}"]) - student).mean())
            points.append((n, d["cosine"], d["projection"], gain))
    lines = [
        "## Delta diagnostic",
        "",
        "Cosine of each delta's update with the oracle update (SFT on the right answers to the same prompts, "
        "`deltahub diagnose`), its projection on the oracle direction, and its measured gain over the student "
        "(means over seeds):",
        "",
        "| delta | cosine | projection | gain over the student |",
        "|---|---|---|---|",
    ]
    for n in names:
        mine = [p for p in points if p[0] == n]
        lines.append(
            f"| {n} | {np.mean([p[1] for p in mine]):+.3f} | {np.mean([p[2] for p in mine]):+.4f} "
            f"| {np.mean([p[3] for p in mine]):+.4f} |"
        )
    lines.append("")
    if len(points) >= 4 and len({p[3] for p in points}) > 1:
        for label, i in (("cosine", 1), ("projection", 2)):
            try:
                rc = rank_correlation([p[i] for p in points], [p[3] for p in points])
            except InputError as exc:  # too few distinct orders to rank
                lines.append(f"Spearman rho ({label} vs gain): not computable ({exc}).")
                continue
            lines.append(
                f"Spearman rho ({label} vs gain, {rc.n} (delta, seed) points): {rc.estimate:+.3f} "
                f"[{rc.low:+.3f}, {rc.high:+.3f}], permutation p = {rc.p_value:.3g}."
            )
    return lines


PALETTE = {
    "teacher": "#bbbbbb",
    "student": "#555555",
    "single delta": "#4c78a8",
    "SFT control": "#f58518",
    "merge": "#54a24b",
    "composition curve": "#9ecf8f",
    "dose": "#72b7b2",
    "oracle": "#e45756",
}


def _whiskers(ivs: list[Interval]) -> list[list[float]]:
    """Error-bar lengths below and above each estimate (0 where an interval of one seed sits beside it)."""
    return [[max(0.0, iv.estimate - iv.low) for iv in ivs], [max(0.0, iv.high - iv.estimate) for iv in ivs]]


def chart(
    results: dict[int, SeedResult],
    intervals: dict[str, Interval],
    claims: list[Claim],
    path: Path,
    title: str,
    doses: list[DosePoint] | None = None,
) -> Path:
    """Every row with its 95% CI, the composition curve, the claims' paired differences, and (when the run
    has one) the dose-response: each delta's gain over the student against its magnitude."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = results[min(results)]
    names = list(intervals)
    ratios = [2.2, 1, 1.6] + ([1] if doses else [])
    fig, axes = plt.subplots(1, len(ratios), figsize=(17 + 4 * bool(doses), 5.2), gridspec_kw={"width_ratios": ratios})
    ax = axes[0]
    est = [intervals[n].estimate for n in names]
    err = _whiskers([intervals[n] for n in names])
    ax.bar(
        range(len(names)),
        est,
        yerr=err,
        capsize=3,
        color=[PALETTE.get(first["kinds"].get(n, ""), "#999999") for n in names],
    )
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("average score (95% CI)")
    lo = min(iv.low for iv in intervals.values())
    ax.set_ylim(max(0.0, lo - 0.1), min(1.0, max(iv.high for iv in intervals.values()) + 0.05))
    ax.set_title("rows", fontsize=9)
    ax = axes[1]
    curve = curve_rows(first)
    if curve:
        ivs = [intervals[r] for r in curve]
        ks = list(range(1, len(curve) + 1))
        ax.errorbar(
            ks,
            [iv.estimate for iv in ivs],
            yerr=_whiskers(ivs),
            marker="o",
            capsize=4,
            color=PALETTE["merge"],
        )
        if "student" in intervals:
            ax.axhline(intervals["student"].estimate, color=PALETTE["student"], ls="--", lw=1, label="student")
            ax.legend(fontsize=7)
        ax.set_xticks(ks, [f"{k}Δ" for k in ks])
        # the points' own intervals carry the seeds' spread; the paired steps are much tighter
        ax.set_xlabel("whiskers: each point's 95% CI; paired steps: claims panel", fontsize=7)
        ax.set_title(
            f"composition curve ({first.get('curve')} of the first k deltas, order "
            f"{' → '.join(first.get('order') or [])})",
            fontsize=8,
        )
    else:
        ax.set_axis_off()
    ax = axes[2]
    ys = list(range(len(claims)))[::-1]
    for y, c in zip(ys, claims, strict=True):
        iv = c.interval
        color = {"reproduced": "#2a9d4b", "contradicted": "#c0392b"}.get(iv.verdict(), "#777777")
        ax.errorbar([iv.estimate], [y], xerr=_whiskers([iv]), fmt="o", color=color, capsize=3)
    ax.axvline(0, color="#333333", lw=0.8)
    ax.set_yticks(ys, [c.name for c in claims], fontsize=7)
    ax.set_xlabel("paired difference of the average score (95% CI)", fontsize=8)
    ax.set_title("claims (green: reproduced, red: contradicted, grey: not resolved)", fontsize=8)
    if doses:
        ax = axes[3]
        ax.errorbar(
            [p.magnitude for p in doses],
            [p.gain.estimate for p in doses],
            yerr=_whiskers([p.gain for p in doses]),
            marker="o",
            capsize=4,
            color=PALETTE["dose"],
        )
        for p in doses:
            ax.annotate(
                p.row.removeprefix("+ delta "),
                (p.magnitude, p.gain.estimate),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.axhline(0, color="#333333", lw=0.8)
        ax.set_xlabel("weak − weaker supervisor score (the delta's magnitude)", fontsize=8)
        ax.set_ylabel("gain over the student (95% CI)", fontsize=8)
        ax.set_title("dose-response", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(
    out: Path,
    title: str,
    results: dict[int, SeedResult],
    setting: list[str],
    n_boot: int = 4000,
    plumbing_only: bool = False,
) -> Path:
    """report.md + results.png in ``out`` from the per-seed results; returns the report's path."""
    claims = evaluate_claims(results, n_boot)
    intervals = row_intervals(results)
    doses = dose_points(results, n_boot)
    png = chart(results, intervals, claims, out / "results.png", title, doses)
    seeds = sorted(results)
    first = results[seeds[0]]
    n_q = {s: len(b) for s, b in first["correct"]["student"].items()} if "student" in first["correct"] else {}
    _, on_select = best_single(first) if _deltas(first) else ("", False)
    from ..toy.evaluate import GRADED_SAMPLES
    from ..toy.graded import is_graded

    graded = any(is_graded(s) for s in n_q)
    text = [f"# {title}", ""]
    if plumbing_only:
        text += [
            "> **Plumbing check, not evidence.** This quick world runs every stage (world, pairs, deltas, "
            "registry, merges, evaluation, statistics) in minutes; one seed of it cannot resolve the papers' "
            "claims, whatever the verdicts below say. Run `deltahub demo` for the evidence.",
            "",
        ]
    text += [
        *setting,
        "",
        f"World seeds {', '.join(map(str, seeds))}; "
        + ", ".join(f"{n} held-out questions of {s}" for s, n in n_q.items())
        + " per seed; "
        + (
            f"on the graded skills the expected partial credit of {GRADED_SAMPLES} answers sampled at temperature 1 "
            "(the same random numbers for every row), greedy exact match on the others"
            if graded
            else "greedy exact match"
        )
        + "; every row answers the same questions.",
        "",
        "## The papers' claims",
        "",
        "Each claim is a paired difference of the average score (same questions, same world seed; "
        "positive = as the papers claim), its mean over seeds, and a 95% interval from a hierarchical "
        "bootstrap (seeds, then questions within each seed; widened by t/z for the number of seeds and cut "
        "to the score's range, see `deltahub.stats`). Verdict: **reproduced** = interval above 0, "
        "**not resolved** = it contains 0, **contradicted** = below 0.",
        "",
        claims_table(claims),
        "",
        "The best single delta of each seed is chosen on "
        + (
            "held-out selection questions (disjoint from the evaluation questions)"
            if on_select
            else "the evaluation questions themselves (no selection questions: biased in its favour)"
        )
        + "; the average single delta is the mean of all of them. "
        + (
            f"Composition curve: {first.get('curve')} over the first k deltas in the fixed order "
            f"{' → '.join(first.get('order') or [])}; 1Δ is the first single delta."
            if curve_rows(first)
            else ""
        ),
        "",
        *(
            [
                "## Dose-response",
                "",
                "The deltas that share a weak supervisor, by how far their pairs point (the weak member's score "
                "minus the weaker member's): paired gain over the student.",
                "",
                dose_table(doses),
                "",
            ]
            if doses
            else []
        ),
        *diagnostic_lines(results),
        "",
        "## Rows",
        "",
        rows_table(results, intervals),
        "",
        f"![results]({png.name})",
        "",
        *per_seed_appendix(results, claims),
        "",
    ]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(text))
    return path
