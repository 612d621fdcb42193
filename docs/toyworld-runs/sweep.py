"""One setting of the toy world on the development seeds (fourth session's search).

Runs a demo recipe with changed settings for several world seeds (the same code path as
``deltahub demo``, without publishing), then writes the claims with their intervals, every row's
mean, the pairs' make-up and the wall time to a JSON file in docs/toyworld-runs/.

    python docs/toyworld-runs/sweep.py --base pda --tag s01 --seeds 100-104 \\
        --set train.learning_rate=3e-4 --set world.overrides.student.steps=400

``--set`` paths: ``train.X`` / ``prompts.X`` / ``generation.X`` (every delta), ``world.X``,
``merge.X``, ``eval.X``; values are YAML.

``--record DIR --wall S`` writes the same JSON for a finished ``deltahub demo --out DIR`` run
(the held-out runs), without running anything:

    python docs/toyworld-runs/sweep.py --base pda --tag h-pda --seeds 0-4 --record /tmp/final-pda --wall 450
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from deltahub.pipeline.demo import demo_recipe, run_demo
from deltahub.pipeline.report import best_single, evaluate_claims, row_intervals
from deltahub.recipe import parse_recipe

HERE = Path(__file__).parent


def _set(tree: dict, path: list[str], value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _value(raw: str):
    """YAML, except that 3e-5 is a number (YAML 1.1 reads it as a string)."""
    try:
        return float(raw) if any(c in raw for c in ".eE") and not raw.isalpha() else int(raw)
    except ValueError:
        return yaml.safe_load(raw)


def changed_recipe(base: str, sets: list[str]):
    data = demo_recipe(base).model_dump(exclude_none=True)
    data["hub"]["publish"] = False
    data["merge"].pop("publish", None)
    for item in sets:
        key, _, raw = item.partition("=")
        path, value = key.split("."), _value(raw)
        if path[0] in ("train", "prompts", "generation", "filters"):
            for d in data["deltas"]:
                _set(d, path, value)
        else:
            _set(data, path, value)
    merge = data["merge"]
    merge["parameters"] = {m: p for m, p in merge.get("parameters", {}).items() if m in merge["methods"]}
    return parse_recipe(data, "sweep")


def pairs_makeup(work: Path, names: list[str]) -> dict:
    """Per family: pairs kept, and how often the chosen / rejected answer is the right one."""
    import pyarrow.parquet as pq

    out = {}
    for name in names:
        files = sorted((work / f"pairs-{name}").rglob("*.parquet"))
        rows = [r for f in files for r in pq.read_table(f).to_pylist()]
        right = {
            side: sum(r[side][0]["content"] == r["answer"] for r in rows) / max(1, len(rows))
            for side in ("chosen", "rejected")
        }
        out[name] = {
            "pairs": len(rows),
            "chosen_correct": round(right["chosen"], 3),
            "rejected_correct": round(right["rejected"], 3),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="pda")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--seeds", default="100-104")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/deltahub-sweeps"),
        help="WORK/shared-BASE holds the runs (stages whose inputs did not change are reused "
        "across settings); WORK/TAG keeps this setting's results.json files and report",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--record", type=Path, help="summarize this finished demo folder instead of running")
    ap.add_argument("--wall", type=float, help="with --record: the run's wall time in seconds")
    a = ap.parse_args()
    lo, _, hi = a.seeds.partition("-")
    first, count = int(lo), int(hi or lo) - int(lo) + 1
    recipe = changed_recipe(a.base, a.sets)
    if a.record:
        out, wall = a.record, a.wall
    else:
        out = a.work / f"shared-{a.base}"
        t0 = time.time()
        run_demo(
            a.base,
            seeds=count,
            first_seed=first,
            out=out,
            workers=a.workers,
            recipe=recipe,
            log=lambda m: print(m, flush=True),
        )
        wall = time.time() - t0
    keep = a.work / a.tag
    results = {}
    for s in range(first, first + count):
        text = (out / f"seed-{s}" / "results.json").read_text()
        (keep / f"seed-{s}").mkdir(parents=True, exist_ok=True)
        (keep / f"seed-{s}" / "results.json").write_text(text)
        results[s] = json.loads(text)
    for name in ("report.md", "results.png"):
        (keep / name).write_bytes((out / name).read_bytes())
    claims = evaluate_claims(results)
    rows = row_intervals(results)
    summary = {
        "tag": a.tag,
        "base": a.base,
        "sets": a.sets,
        "seeds": sorted(results),
        "wall_s": round(wall) if wall is not None else None,
        "claims": {
            c.name: {
                "estimate": round(c.interval.estimate, 4),
                "low": round(c.interval.low, 4),
                "high": round(c.interval.high, 4),
                "verdict": c.interval.verdict(),
                "per_seed": {s: round(v, 4) for s, v in c.per_seed.items()},
            }
            for c in claims
        },
        "rows": {
            r: {
                "avg": round(iv.estimate, 4),
                "low": round(iv.low, 4),
                "high": round(iv.high, 4),
                "per_seed": {s: {k: round(v, 4) for k, v in results[s]["rows"][r].items()} for s in results},
            }
            for r, iv in rows.items()
        },
        "best_single": {s: best_single(r)[0] for s, r in results.items()},
        "pairs": {s: pairs_makeup(out / f"seed-{s}", results[s]["order"]) for s in results},
        "recipe": recipe.model_dump(exclude_none=True),
    }
    (HERE / f"{a.tag}.json").write_text(json.dumps(summary, indent=1))
    for name, c in summary["claims"].items():
        print(f"{name:50s} {c['estimate']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}] {c['verdict']}")
    for r, v in summary["rows"].items():
        print(f"{r:30s} {v['avg']:.4f} [{v['low']:.4f}, {v['high']:.4f}]")
    print(f"wall {wall} s")


if __name__ == "__main__":
    main()
