"""Markdown rows of docs/toyworld.md's fourth-session table from the sweep JSONs.

python docs/toyworld-runs/tabulate.py p01 q01 q02 ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
COLUMNS = [
    ("average single delta > student", "avg Δ − student"),
    ("best single delta > student", "best Δ − student"),
    ("GAM merge > student", "GAM − student"),
    ("GAM merge > averaging", "GAM − avg"),
    ("premise: SFT on the chosen answers < student", "student − SFT"),
    ("delta (DPO) > SFT on the same chosen answers", "DPO − SFT"),
]


def _model(m: dict) -> str:
    return f"{m.get('hidden_size', 64)}x{m.get('num_layers', 2)}/{m.get('steps', 200)}"


def _short(sets: list[str]) -> str:
    """The settings a run changed, families as ``name weak>weaker`` (hidden x layers / steps)."""
    import yaml

    out = []
    for s in sets:
        if s.startswith(("eval.", "merge.")):
            continue
        key, _, value = s.partition("=")
        if key == "world.overrides.families":
            out.append(
                "families "
                + ", ".join(f"{f['name']} {_model(f['weak'])}>{_model(f['weaker'])}" for f in yaml.safe_load(value))
            )
        else:
            out.append(s.replace("world.overrides.", "").replace("train.", ""))
    return "; ".join(out) or "(recipe as shipped then)"


def main() -> None:
    print("| run | seeds | change | student | weak (mean) | " + " | ".join(c[1] for c in COLUMNS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(COLUMNS))
    for tag in sys.argv[1:]:
        d = json.loads((HERE / f"{tag}.json").read_text())
        rows, claims = d["rows"], d["claims"]
        weak = [v["avg"] for r, v in rows.items() if r.endswith("-weak")]
        cells = []
        for key, _ in COLUMNS:
            c = claims.get(key)
            cells.append(
                "–"
                if c is None
                else f"{c['estimate']:+.3f}" + (f" [{c['low']:+.3f}, {c['high']:+.3f}]" if len(d["seeds"]) > 2 else "")
            )
        seeds = f"{d['seeds'][0]}-{d['seeds'][-1]}"
        print(
            f"| {tag} | {seeds} | {_short(d['sets'])} | {rows['student']['avg']:.3f} | "
            + (f"{sum(weak) / len(weak):.3f}" if weak else "–")
            + " | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
