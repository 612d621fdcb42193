"""deltahub compose on the quick toy world with a deliberately harmful delta among the candidates.

For each seed: train HELPFUL deltas on right-answer-over-near-miss pairs and one on the same kind of pairs
with chosen and rejected swapped (TRL's DPOTrainer, dpo+sft: ``deltahub.toy.nearmiss``), then run
``deltahub.compose.compose`` with held-out scoring. Prints, per seed and pooled over seeds, the validation and
held-out scores of the composed set, the merge of every candidate (GAM) and the best single delta (chosen
on validation), with paired differences on the held-out questions (95% CI, exact McNemar).

    nice -n 15 python scripts/compose_toy.py --seeds 0 1 2 --n 500 --out /tmp/compose-toy

Pooled intervals resample seeds, then questions within each (deltahub.stats.hierarchical_bootstrap, widened
for few seeds as the demo's are).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from deltahub.compose import compose
from deltahub.compose.stats import describe, pooled_difference
from deltahub.toy import build_world, preset
from deltahub.toy.nearmiss import near_miss_pairs, train_trl_delta

SETS = ("student", "best_single", "merge_all", "composed")


def run_seed(
    student: Path, seed: int, helpful: int, skill: str, n: int, pairs: int, steps: int, harmful_steps: int, out: Path
) -> dict:
    deltas = []
    for k in range(helpful + 1):
        swap = k == helpful
        name = f"{skill}-swapped-{harmful_steps}" if swap else f"{skill}-{chr(ord('a') + k)}"
        folder = out / f"seed{seed}" / name
        if not (folder / "adapter_model.safetensors").is_file():
            rows = near_miss_pairs(skill, pairs, seed=1000 * seed + k, swap=swap)
            train_trl_delta(student, rows, folder, steps=harmful_steps if swap else steps, seed=seed)
        deltas.append(folder)
    res = compose(
        deltas,
        out / f"seed{seed}" / f"composed-{harmful_steps}",
        tasks=[f"toy:{skill}"],
        n=n,
        held_out=True,
        work=out / "work",
        overwrite=True,
        progress=False,
    )
    return {"seed": seed, "trace": res.trace, "outcomes": res.outcomes}


def report(runs: list[dict]) -> str:
    lines = [
        "| seed | chosen | left out | " + " | ".join(f"{k} val / test" for k in SETS) + " |",
        "|---|---|---|" + "---:|" * len(SETS),
    ]
    for r in runs:
        t, h = r["trace"], r["trace"]["held_out"]
        out = ", ".join(f"{c['name']} ({c['reason'].split(':')[0]})" for c in t["candidates"] if c["reason"])
        cells = " | ".join(f"{h['validation'][k]:.3f} / {h[k]:.3f}" for k in SETS)
        lines.append(f"| {r['seed']} | {', '.join(t['selected'])} | {out} | {cells} |")
    lines.append("")
    for r in runs:
        for name, p in r["trace"]["held_out"]["paired"].items():
            lines.append(f"seed {r['seed']}, {describe(name, p)}")
    lines.append("")
    for other in ("merge_all", "best_single", "student"):
        pooled = pooled_difference([r["outcomes"]["composed"] for r in runs], [r["outcomes"][other] for r in runs])
        lines.append(f"pooled over {len(runs)} seeds, " + describe(f"composed - {other}", pooled))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--helpful", type=int, default=3, help="helpful deltas per seed (plus one harmful)")
    ap.add_argument("--skill", default="srt")
    ap.add_argument("--n", type=int, default=500, help="validation and held-out questions each")
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--harmful-steps", type=int, help="training steps of the harmful delta (default: --steps)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (tiny models: one is fastest)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    t0 = time.time()
    student = build_world(config=preset("quick", seed=0), progress=False).student
    runs = []
    for seed in a.seeds:
        start = time.time()
        runs.append(
            run_seed(student, seed, a.helpful, a.skill, a.n, a.pairs, a.steps, a.harmful_steps or a.steps, a.out)
        )
        runs[-1]["seconds"] = round(time.time() - start, 1)
        print(f"seed {seed}: {runs[-1]['seconds']} s", flush=True)
    (a.out / f"results-{a.harmful_steps or a.steps}.json").write_text(json.dumps(runs, indent=1))
    print(report(runs))
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
