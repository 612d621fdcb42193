"""The demo's report: a table per row (mean ± spread over seeds), the papers' claims checked
plainly, a markdown file and a PNG bar chart."""

from __future__ import annotations

import statistics
from pathlib import Path

from ..atomic import atomic_write_text


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


def _own_skill_gains(agg: dict, kinds: dict[str, str]) -> dict[str, float]:
    """For each single delta named after a skill (``+ delta srt``), its gain on that skill."""
    student = agg.get("student", {})
    gains = {}
    for name, scores in agg.items():
        skill = name.rsplit(" ", 1)[-1]
        if kinds.get(name) == "single delta" and skill in scores and skill in student:
            gains[skill] = scores[skill][0] - student[skill][0]
    return gains


def claims(agg: dict, kinds: dict[str, str]) -> list[str]:
    """The papers' claims, each stated as reproduced or not, on the average exact match."""
    avg = {n: s["avg"][0] for n, s in agg.items()}
    student = avg.get("student")
    singles = {n: v for n, v in avg.items() if kinds.get(n) == "single delta"}
    merges = {n: v for n, v in avg.items() if kinds.get(n) == "merge"}
    out = []
    if student is not None and singles:
        best_name, best = max(singles.items(), key=lambda kv: kv[1])
        out.append(f"- single delta > student: {'yes' if best > student else 'NO'} "
                   f"(best single {best_name} {best:.3f} vs student {student:.3f})")
        own = _own_skill_gains(agg, kinds)
        if own:
            lifted = sum(g > 0 for g in own.values())
            out.append(f"- a single delta lifts the student on its own skill: {lifted} of {len(own)} ("
                       + ", ".join(f"{k} {g:+.3f}" for k, g in own.items()) + ")")
        gam = merges.get("merge gam")
        if gam is not None:
            out.append(f"- GAM merge > best single delta: {'yes' if gam > best else 'NO'} ({gam:.3f} vs {best:.3f})")
            for other in ("merge average", "merge ties", "merge knots"):
                if other in merges:
                    out.append(f"- GAM >= {other.split()[1]}: {'yes' if gam >= merges[other] else 'NO'} "
                               f"({gam:.3f} vs {merges[other]:.3f})")
    sft = {n: v for n, v in avg.items() if kinds.get(n) == "SFT control"}
    if sft and singles:
        out.append(f"- delta (DPO) > SFT on the same chosen answers: "
                   f"{'yes' if statistics.fmean(singles.values()) > statistics.fmean(sft.values()) else 'NO'} "
                   f"(mean {statistics.fmean(singles.values()):.3f} vs {statistics.fmean(sft.values()):.3f})")
    return out


def bar_chart(agg: dict, kinds: dict[str, str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(agg)
    means = [agg[n]["avg"][0] for n in names]
    spreads = [agg[n]["avg"][1] for n in names]
    palette = {"teacher": "#bbbbbb", "student": "#555555", "single delta": "#4c78a8", "SFT control": "#f58518",
               "merge": "#54a24b"}
    colors = [palette.get(kinds.get(n, ""), "#999999") for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(names)), 4))
    ax.bar(range(len(names)), means, yerr=spreads, color=colors, capsize=3)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("average exact match")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 1)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(out: Path, title: str, agg: dict, kinds: dict[str, str], skills: list[str], seeds: list[int],
                 extra: list[str] | None = None) -> Path:
    chart = bar_chart(agg, kinds, out / "results.png", title)
    text = [f"# {title}", "", f"Seeds: {', '.join(map(str, seeds))} (mean ± population std over seeds). "
            "Greedy decoding, exact match, held-out evaluation questions.", "", table(agg, kinds, skills), "",
            "## The papers' claims on this run", "", *claims(agg, kinds), "", f"![results]({chart.name})", ""]
    if extra:
        text += extra
    path = out / "report.md"
    atomic_write_text(path, "\n".join(text))
    return path
