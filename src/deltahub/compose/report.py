"""What compose leaves beside the merge: the plot of the selection and the mergekit config that redoes it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..share.mergekit_config import MERGEKIT_CONFIG, MergekitConfig, Pick
from .candidates import Candidate


def mergekit_config(base_id: str, base_path: Path, chosen: list[Candidate], method: str, params: dict) -> str:
    """``gam.yml`` for ``mergekit-yaml`` (the one writer, :mod:`deltahub.share.mergekit_config`): registry
    deltas pinned to their commit, local ones by absolute path, as compose merged them."""
    base = str(base_path.resolve()) if "#" in base_id else base_id
    header = (
        "# Written by deltahub compose: the selected deltas, merged as compose merged them.\n"
        f"#   {MergekitConfig.mergekit_command(MERGEKIT_CONFIG, './out')}\n"
    )
    picks = tuple(Pick(c.repo, c.revision) if c.repo and c.revision else Pick(c.pinned, None) for c in chosen)
    return MergekitConfig(base, method, picks, dict(params), header).yaml()


def plot_selection(trace: dict[str, Any], out: Path) -> Path:
    """Left: each candidate's single-delta validation score against the student's; right: the merged score
    after each greedy step (and held-out scores when measured)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from ..atomic import atomic_write_bytes

    fig = Figure(figsize=(11, 4.2), dpi=100)
    left, right = fig.subplots(1, 2)
    cands = [c for c in trace["candidates"] if c["single"] is not None]
    colors = ["tab:green" if c["selected_at"] else ("tab:red" if c["vs_student"] < 0 else "tab:gray") for c in cands]
    left.bar(range(len(cands)), [c["single"] for c in cands], color=colors)
    left.axhline(trace["student"], color="black", linestyle="--", label=f"student {trace['student']:.3f}")
    left.set_xticks(range(len(cands)), [_short(c["name"]) for c in cands], rotation=30, ha="right", fontsize=8)
    left.set_title("student + one delta (validation)\ngreen: selected, red: hurts alone")
    left.legend(loc="best", fontsize=8)
    added = [s for s in trace["steps"] if s["added"] is not None]
    xs = list(range(len(added) + 1))
    tried = [(s["step"], v) for s in trace["steps"] for name, v in s["tried"].items() if name != s["added"]]
    if tried:
        right.scatter(*zip(*tried, strict=True), color="tab:gray", alpha=0.6, s=14, label="tried, not added")
    right.plot(xs, [trace["student"]] + [s["score"] for s in added], marker="o", label="merged (validation)")
    for x, s in zip(xs[1:], added, strict=True):
        right.annotate(
            "+" + _short(s["added"]),
            (x, s["score"]),
            fontsize=8,
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
        )
    held = trace.get("held_out")
    if held:
        right.scatter([xs[-1]], [held["composed"]], marker="s", color="tab:green", label="composed (held-out)")
        n_all = len(cands)
        right.scatter([n_all], [held["merge_all"]], marker="x", color="tab:red", label=f"all {n_all} merged (held-out)")
        right.scatter([1], [held["best_single"]], marker="^", color="tab:orange", label="best single (held-out)")
        right.axhline(held["student"], color="gray", linestyle=":", label="student (held-out)")
    right.set_xticks(range(max(xs[-1], len(cands) if held else 0) + 1))
    right.set_xlabel("greedy step (deltas merged)")
    right.set_title(f"greedy selection ({trace['method']})")
    right.legend(loc="best", fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.set_ylabel("mean score")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1][:24]
