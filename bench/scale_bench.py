"""Wall time of each stage on one process and on N, side by side: `python -m deltahub.X` against
`torchrun --standalone --nproc_per_node N -m deltahub.X`, the same arguments, alternating, each twice.

    python bench/scale_bench.py                      # CPU: tiny models, N = 2 (gloo), ~3 min
    python bench/scale_bench.py --processes 8 --shape 350m --pairs 512 --prompts 512   # a node of 8 GPUs

Times are of the whole command (process start, imports, model loads included), which is what a user waits
for; on small CPU jobs those fixed costs dominate, so read the ratio as an upper bound of the overhead of a
launch rather than as a speed-up. Also printed: whether the outputs are the same (pairs, scores) or how far
apart (adapters).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--shape", default="tiny", help="student shape (bench/_shapes.py)")
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    from _shapes import build
    from safetensors.torch import load_file
    from train_bench import make_pairs

    from deltahub.toy import write_prompts

    n = args.processes
    py, torchrun = sys.executable, str(Path(sys.executable).with_name("torchrun"))
    with tempfile.TemporaryDirectory(prefix="deltahub-scale-bench-") as tmp:
        tmp = Path(tmp)
        student = build(tmp / "student", args.shape, max_positions=1024)
        other = build(tmp / "other", args.shape, max_positions=1024, seed=1)
        pairs, _ = make_pairs(tmp / "pairs.jsonl", args.pairs, 64, 64)
        prompts = write_prompts(tmp / "prompts.jsonl", ["srt", "rev"], args.prompts // 2)
        batch = 8 * n
        jobs = {
            "train": (
                "deltahub.train",
                ["--student", str(student), "--pairs", str(pairs), "--batch-size", str(batch), "--micro-batch-size"]
                + ["4", "--max-steps", "4", "--rank", "8", "--alpha", "16", "--dropout", "0", "--eval-fraction", "0"]
                + ["-q", "--overwrite"],
            ),
            "generate": (
                "deltahub.generate",
                ["--chosen", str(student), "--rejected", str(other), "--prompts", str(prompts)]
                + ["--batch-size", "8", "--max-new-tokens", "32", "--no-progress", "--overwrite"],
            ),
            "eval": ("deltahub.evaluate", [str(student), "--tasks", "toy:srt,toy:rev", "--limit", "400"]),
        }
        load = os.getloadavg()[0]
        print(f"{args.shape} models, N = {n}; load average at start {load:.1f} on {os.cpu_count()} CPUs")
        print(f"{'stage':<9} {'1 process s':>12} {f'{n} processes s':>15} {'ratio 1/N':>10}  outputs")
        for stage, (module, stage_args) in jobs.items():
            times: dict[int, list[float]] = {1: [], n: []}
            for _ in range(args.repeats):
                for k in (1, n):
                    out = ["--out", str(tmp / f"{stage}-{k}")] if stage != "eval" else ["--output", str(tmp / f"e{k}")]
                    launcher = [py] if k == 1 else [torchrun, "--standalone", "--nproc_per_node", str(k)]
                    times[k].append(run([*launcher, "-m", module, *stage_args, *out]))
            one, many = min(times[1]), min(times[n])
            if stage == "train":
                a, b = (load_file(tmp / f"train-{k}" / "adapter_model.safetensors") for k in (1, n))
                same = f"adapters' max |difference| {max((a[k] - b[k]).abs().max().item() for k in a):.1e}"
            elif stage == "generate":
                from deltahub.generate import load_pairs

                same = (
                    "same pairs"
                    if load_pairs(tmp / "generate-1").to_list() == load_pairs(tmp / f"generate-{n}").to_list()
                    else "PAIRS DIFFER"
                )
            else:
                e1, en = (json.loads((tmp / f"e{k}").read_text()) for k in (1, n))
                same = "same scores" if e1 == en else "SCORES DIFFER"
            print(f"{stage:<9} {one:>12.1f} {many:>15.1f} {one / many:>9.2f}x  {same}")
        print(f"load average at end {os.getloadavg()[0]:.1f} (best of {args.repeats} runs each)")


if __name__ == "__main__":
    main()
