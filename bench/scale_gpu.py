"""GPU rows of issue #23, prepared for one GPU (no downloads; about 12 minutes on one 80 GB GPU, all rows).

    python bench/scale_gpu.py                       # every row
    python bench/scale_gpu.py --rows memory         # one row group (memory, generate, train)
    python bench/scale_gpu.py --plumbing            # the script itself on the CPU with tiny shapes (no figures)

Rows:
  memory    The papers' Qwen3-8B recipe shape on ONE GPU with gradient checkpointing (the GPU default): a
            random Qwen3-8B (36 layers, hidden 4,096, the real 151,936-token vocabulary and untied head),
            LoRA r 64 on all seven projections, bf16, `train_delta` for two optimizer steps with every
            sequence at max_length -- the batch the README's memory table is computed for. Peak GPU memory
            (allocated and reserved) next to the README's ESTIMATE (bench/train_memory_estimate.py) for
            recipes/pda-reasoning.yaml (2 x 8,192) and recipes/accelerate/train-pda-reasoning.yaml (4 x 4,096).
            An out-of-memory is reported as a row, not a crash.
  generate  bench/generate_bench.py at its GPU sizes: `deltahub generate` vs raw transformers `generate`.
  train     bench/train_bench.py at its GPU sizes: `deltahub train` vs raw TRL `train()` (352M-class student),
            and the Qwen3-8B shape at 2,048 tokens, r 64.
  processes with more than one GPU: `torchrun --standalone --nproc_per_node N -m deltahub.train` against one
            process on the same pairs and global batch (wall times, and the adapters' largest difference; bf16,
            so the float32 tolerance of tests/test_distributed.py does not apply).
Exits 2 with one line where no GPU is visible (``--plumbing`` runs anyway, on the CPU).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _shapes import build, text  # noqa: E402
from train_memory_estimate import QWEN3_8B, estimate  # noqa: E402

ROWS = ("memory", "generate", "train", "processes")
MEMORY_CASES = [  # (recipe, micro-batch pairs, max_length), the README's memory table's Qwen3-8B rows
    ("pda-reasoning.yaml", 2, 8192),
    ("accelerate/train-pda-reasoning.yaml", 4, 4096),
]
TEMPLATE_TOKENS = 24  # ChatML around one user and one assistant turn, with the character tokenizer
# the sibling benches at their documented GPU sizes (their --help)
GENERATE_ARGS = ["--chosen", "350m", "--rejected", "50m", "--prompts", "256", "--max-new-tokens", "128"]
GENERATE_ARGS += ["--batch-size", "64"]
TRAIN_RUNS = [
    ["--shape", "350m", "--pairs", "1024", "--batch", "32", "--micro", "8", "--prompt-tokens", "200"],
    ["--shape", "qwen3-8b", "--pairs", "64", "--batch", "8", "--micro", "1", "--prompt-tokens", "1024"],
]
TRAIN_TAILS = [["--answer-tokens", "200"], ["--answer-tokens", "1024", "--rank", "64", "--rows", "trl,deltahub"]]


def full_length_pairs(path: Path, n: int, max_length: int) -> Path:
    """``n`` pairs whose prompt + answer fill ``max_length`` tokens (the estimate's worst batch)."""
    rng = random.Random(0)
    half = (max_length - TEMPLATE_TOKENS) // 2
    rows = [
        {
            "prompt": [{"role": "user", "content": text(rng, half)}],
            "chosen": [{"role": "assistant", "content": text(rng, half)}],
            "rejected": [{"role": "assistant", "content": text(rng, half)}],
        }
        for _ in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def memory_rows(tmp: Path, plumbing: bool) -> None:
    """Peak memory of `train_delta` on the Qwen3-8B shape, one GPU, checkpointing on, vs the estimate."""
    import torch

    from deltahub.train import TrainConfig, train_delta

    shape, vocab, cases = ("qwen3-8b", QWEN3_8B.vocab, MEMORY_CASES) if not plumbing else ("tiny", None, [])
    cases = cases or [("(plumbing) tiny", 2, 128)]
    t0 = time.perf_counter()
    student = build(tmp / "student-8b", shape, max_positions=8192 + 64, vocab_size=vocab, tied=plumbing)
    seconds = time.perf_counter() - t0
    print(f"built a random {shape} student (vocabulary {vocab or 'of the tokenizer'}) in {seconds:.0f} s")
    print(
        f"{'recipe':<38} {'micro x len':>12} {'estimate GB':>12} {'peak alloc GB':>14} {'peak reserved GB':>17} "
        f"{'alloc / est.':>13} {'step s':>7}"
    )
    for recipe, micro, length in cases:
        est = estimate(QWEN3_8B, 64, micro, length, checkpointing=True)["total"]
        pairs = full_length_pairs(tmp / f"pairs-{micro}x{length}.jsonl", 2 * micro, length)
        cfg = TrainConfig(
            batch_size=micro,
            micro_batch_size=micro,
            max_steps=2,
            rank=64 if not plumbing else 4,
            alpha=128 if not plumbing else 8,
            max_length=length,
            eval_fraction=0.0,
            save_steps=10_000,
            gradient_checkpointing=True,
            bf16=torch.cuda.is_available(),
        )
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t1 = time.perf_counter()
        try:
            train_delta(student, pairs, tmp / f"out-{micro}x{length}", cfg, progress=False, overwrite=True)
            alloc = reserved = None
            if torch.cuda.is_available():
                alloc = torch.cuda.max_memory_allocated() / 1e9
                reserved = torch.cuda.max_memory_reserved() / 1e9
            seconds = (time.perf_counter() - t1) / 2
            a = "-" if alloc is None else f"{alloc:.1f}"
            r = "-" if reserved is None else f"{reserved:.1f}"
            ratio = "-" if alloc is None else f"{alloc / est:.2f}"
            print(f"{recipe:<38} {f'{micro} x {length}':>12} {est:>12.1f} {a:>14} {r:>17} {ratio:>13} {seconds:>7.1f}")
        except Exception as exc:  # an OOM (or the one-line InputError it becomes) is a result of this row
            print(f"{recipe:<38} {f'{micro} x {length}':>12} {est:>12.1f} {'failed: ' + str(exc)[:60]:>14}")


def sibling(script: str, args: list[str]) -> None:
    """Run a sibling bench script in its own process (its model and CUDA memory go with it) and show it."""
    cmd = [sys.executable, str(HERE / script), *args]
    print(f"\n$ python bench/{script} {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False)
    print(f"(exit {proc.returncode}, {time.perf_counter() - t0:.0f} s)", flush=True)


def processes_row(tmp: Path) -> None:
    import torch
    from safetensors.torch import load_file

    n = torch.cuda.device_count()
    if n < 2:
        print(f"processes: one GPU visible ({torch.cuda.get_device_name()}): no multi-process row")
        return
    sys.path.insert(0, str(HERE))
    from _shapes import build
    from train_bench import make_pairs

    student = build(tmp / "s350m", "350m", max_positions=1024)
    pairs, _ = make_pairs(tmp / "pairs.jsonl", 256, 200, 200)
    common = ["--student", str(student), "--pairs", str(pairs), "--batch-size", str(8 * n), "--micro-batch-size"]
    common += ["4", "--max-steps", "8", "--rank", "16", "--alpha", "32", "--dropout", "0", "--eval-fraction", "0"]
    common += ["-q", "--overwrite"]
    bin_dir = Path(sys.executable).parent
    times = {}
    for label, launcher in (("1", [sys.executable]), (str(n), [str(bin_dir / "torchrun"), "--standalone"])):
        cmd = launcher + ([] if label == "1" else ["--nproc_per_node", str(n)]) + ["-m", "deltahub.train"]
        t0 = time.perf_counter()
        subprocess.run([*cmd, *common, "--out", str(tmp / f"delta-{label}")], check=True)
        times[label] = time.perf_counter() - t0
    a, b = (load_file(tmp / f"delta-{k}" / "adapter_model.safetensors") for k in times)
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    scale = max(a[k].float().abs().max().item() for k in a if "lora_B" in k)
    print(
        f"processes: 1 -> {n} GPUs, 350M student, 8 steps of {8 * n}: {times['1']:.0f} s vs {times[str(n)]:.0f} s "
        f"({times['1'] / times[str(n)]:.2f}x); adapters' max |difference| {diff:.2e} (max |B| {scale:.2e})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma list of: {', '.join(ROWS)}")
    ap.add_argument("--plumbing", action="store_true", help="run the script on the CPU with tiny shapes (no figures)")
    args = ap.parse_args()
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        print(f"error: unknown row(s) {', '.join(unknown)} (fix: choose from {', '.join(ROWS)})", file=sys.stderr)
        sys.exit(2)
    import torch

    if not torch.cuda.is_available() and not args.plumbing:
        print(
            "error: no CUDA GPU is visible, and these rows measure one (fix: run it on a GPU machine, "
            "or pass --plumbing to check the script on the CPU)",
            file=sys.stderr,
        )
        sys.exit(2)
    where = "CPU (plumbing: no figures)" if args.plumbing else torch.cuda.get_device_name()
    print(f"issue #23 GPU rows on {where}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory(prefix="gpu-scale-") as d:  # the 16 GB student goes with it
        if "memory" in rows:
            memory_rows(Path(d), args.plumbing)
    if "generate" in rows:
        sibling("generate_bench.py", [] if args.plumbing else GENERATE_ARGS)
    if "train" in rows:
        runs = (
            [["--rows", "trl,deltahub", "--pairs", "16"]]
            if args.plumbing
            else [[*a, *t] for a, t in zip(TRAIN_RUNS, TRAIN_TAILS, strict=True)]
        )
        for run in runs:
            sibling("train_bench.py", run)
    if "processes" in rows and not args.plumbing:  # needs several GPUs
        with tempfile.TemporaryDirectory(prefix="gpu-scale-") as d:
            processes_row(Path(d))


if __name__ == "__main__":
    main()
