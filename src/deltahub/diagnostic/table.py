"""The diagnostic as a markdown table (the CLI's output and the demo report's section)."""

from __future__ import annotations

from collections.abc import Sequence

from .alignment import Diagnosis


def _num(x: float | None, fmt: str = "+.4f") -> str:
    return "-" if x is None else format(x, fmt)


def diagnosis_table(diagnoses: Sequence[Diagnosis], per_module: bool = False) -> str:
    """One row per delta (overall cosine, projection on the oracle direction, norms, modules only one
    side trains); with ``per_module`` one row per delta and module below it."""
    lines = [
        "| delta | cosine | projection | ‖delta‖ | ‖oracle‖ | delta-only modules | oracle-only modules |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for d in diagnoses:
        lines.append(
            f"| {d.delta} | {_num(d.cosine)} | {d.projection:+.4g} | {d.delta_norm:.4g} | {d.oracle_norm:.4g}"
            f" | {len(d.delta_only)} | {len(d.oracle_only)} |"
        )
    if per_module:
        lines += ["", "| delta | module | trained by | cosine | ‖delta‖ | ‖oracle‖ |", "|---|---|---|---:|---:|---:|"]
        for d in diagnoses:
            for m in d.modules:
                cells = (d.delta, m.module, m.side, _num(m.cosine), f"{m.delta_norm:.4g}", f"{m.oracle_norm:.4g}")
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
