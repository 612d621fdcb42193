"""Training throughput of `train_delta` on a tiny student, with and without precomputed reference
log-probs (TRL's `precompute_ref_log_probs`), measured side by side in one process.

    .venv/bin/python bench/train_bench.py [--pairs 256] [--epochs 1 2] [--repeats 2]

Prints pairs/second of the whole call (precompute included, which is what a user waits for) and of
the optimizer loop alone, and the ratio precomputed / on-the-fly.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from transformers import TrainerCallback

from deltahub.tiny import build_tiny_model
from deltahub.train import TrainConfig, train_delta


class LoopTimer(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = time.perf_counter() - self.t0


def make_pairs(path: Path, n: int) -> Path:
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    rows = []
    for _ in range(n):
        q = " ".join(rng.choices(words, k=rng.randint(4, 12)))
        rows.append({"prompt": [{"role": "user", "content": q}],
                     "chosen": [{"role": "assistant", "content": " ".join(rng.choices(words, k=rng.randint(8, 20)))}],
                     "rejected": [{"role": "assistant", "content": " ".join(rng.choices(words, k=rng.randint(8, 20)))}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def main() -> None:
    warnings.simplefilter("ignore")  # random pairs carry no delta: the health warning is expected here
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--epochs", type=float, nargs="+", default=[1, 3])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="train-bench-"))
    student = build_tiny_model(tmp / "student", hidden_size=args.hidden, num_layers=args.layers)
    pairs = make_pairs(tmp / "pairs.jsonl", args.pairs)
    results: dict[tuple[float, bool], list[tuple[float, float]]] = {}
    for epochs in args.epochs:
        for rep in range(args.repeats):
            for pre in (rep % 2 == 0, rep % 2 == 1):  # alternate order so drift hits both
                cfg = TrainConfig(epochs=epochs, batch_size=args.batch, micro_batch_size=args.batch,
                                  learning_rate=1e-4, rank=8, alpha=16, eval_fraction=0.0, save_steps=10_000,
                                  precompute_ref=pre, max_length=256)
                timer = LoopTimer()
                t0 = time.perf_counter()
                train_delta(student, pairs, tmp / f"out-{epochs}-{rep}-{pre}", cfg, progress=False,
                            callbacks=[timer])
                wall = time.perf_counter() - t0
                results.setdefault((epochs, pre), []).append((wall, timer.seconds))
    print(f"\ntiny Qwen3 student {args.hidden}x{args.layers}L, {args.pairs} pairs, batch {args.batch}, LoRA r8 "
          f"all projections, fp32 CPU, median of {args.repeats}")
    print(f"{'epochs':>6} {'ref log-probs':>14} {'wall s':>8} {'pairs/s (call)':>15} {'pairs/s (loop)':>15} "
          f"{'ratio call':>11} {'ratio loop':>11}")
    for epochs in args.epochs:
        seen = args.pairs * epochs
        base = None
        for pre in (False, True):
            wall = statistics.median(w for w, _ in results[(epochs, pre)])
            loop = statistics.median(s for _, s in results[(epochs, pre)])
            row = (seen / wall, seen / loop)
            base = base or row
            print(f"{epochs:>6g} {'precomputed' if pre else 'on the fly':>14} {wall:>8.1f} {row[0]:>15.1f} "
                  f"{row[1]:>15.1f} {row[0] / base[0]:>10.2f}x {row[1] / base[1]:>10.2f}x")


if __name__ == "__main__":
    main()
