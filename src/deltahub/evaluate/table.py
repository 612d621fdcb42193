"""A markdown comparison table: one row per model, one column per task metric."""

from __future__ import annotations


def comparison_table(rows: dict[str, dict[str, dict[str, float]]]) -> str:
    """ROWS maps a model label to its ``evaluate`` result; missing cells print as ``-``."""
    cols: list[tuple[str, str]] = []
    for res in rows.values():
        for task, metrics in res.items():
            for metric in metrics:
                if (task, metric) not in cols:
                    cols.append((task, metric))
    head = "| model | " + " | ".join(f"{t} {m}" for t, m in cols) + " |"
    sep = "|---|" + "---:|" * len(cols)
    lines = [head, sep]
    for label, res in rows.items():
        cells = [f"{res[t][m]:.3f}" if m in res.get(t, {}) else "-" for t, m in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
