"""The training-curves PNG shown in the adapter card: loss, margins/accuracy, log-probs, rewards."""

from __future__ import annotations

from pathlib import Path

PANELS = [
    ("loss", [("loss", "loss")]),
    ("reward margin / accuracy", [("rewards/margins", "margin"), ("rewards/accuracies", "accuracy")]),
    ("policy log-prob", [("logps/chosen", "chosen"), ("logps/rejected", "rejected")]),
    ("reward", [("rewards/chosen", "chosen"), ("rewards/rejected", "rejected")]),
]


def plot_training_curves(history: list[dict], out: Path, title: str = "") -> Path:
    """Write a 2x2 PNG of the logged curves to ``out`` (atomically) and return its path."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from ..atomic import atomic_write_bytes

    fig = Figure(figsize=(10, 7), dpi=100)
    axes = fig.subplots(2, 2).ravel()
    for ax, (name, series) in zip(axes, PANELS, strict=True):
        for key, label in series:
            pts = [(e["step"], e[key]) for e in history if key in e]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, label=label, marker="." if len(pts) < 30 else None)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)
