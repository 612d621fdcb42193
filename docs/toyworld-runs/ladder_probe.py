"""Ladder probe (fourth session): exact match of candidate model sizes/budgets on the PDA world's
skill mixture, to place the student above every supervisor and each weak above its weaker.

    python docs/toyworld-runs/ladder_probe.py --seed 100 --skills srt,lsr --out docs/toyworld-runs/ladder-s100.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from deltahub.toy.evaluate import evaluate
from deltahub.toy.world import ModelSpec, one_thread, train_model

CANDIDATES = [
    (64, 3, 300),
    (64, 3, 450),
    (96, 3, 300),
    (64, 4, 300),
    (64, 2, 150),
    (64, 2, 250),
    (64, 2, 400),
    (96, 1, 200),
    (96, 1, 400),
    (32, 3, 200),
    (32, 3, 400),
    (32, 3, 600),
    (64, 1, 150),
    (64, 1, 300),
    (32, 2, 150),
    (32, 2, 300),
    (32, 1, 100),
    (32, 1, 300),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--skills", default="srt,lsr")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    skills = a.skills.split(",")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp, one_thread():
        for i, (h, layers, steps) in enumerate(CANDIDATES):
            t0 = time.time()
            path = train_model(
                Path(tmp) / f"m{i}",
                ModelSpec(hidden_size=h, num_layers=layers, steps=steps, batch_size=32),
                skills,
                seed=a.seed * 1000 + 500 + i,
                pool=2000,
                progress=False,
            )
            rows[f"{h}x{layers}-{steps}"] = {**evaluate(path, skills, n=a.n), "train_s": round(time.time() - t0, 1)}
            print(f"{h}x{layers}-{steps}", rows[f"{h}x{layers}-{steps}"], flush=True)
    a.out.write_text(json.dumps({"seed": a.seed, "skills": skills, "n": a.n, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
