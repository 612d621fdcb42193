"""Training throughput and memory: `deltahub train` next to raw TRL `DPOTrainer.train()`, one process.

    python bench/train_bench.py                                   # CPU: tiny student, 64 pairs (~1 min)
    python bench/train_bench.py --shape 350m --pairs 1024 --batch 32 --micro 8 --prompt-tokens 200 \\
        --answer-tokens 200                                       # GPU: the issue's 352M-class run (~4 min)
    python bench/train_bench.py --shape qwen3-8b --pairs 64 --batch 8 --micro 1 --prompt-tokens 1024 \\
        --answer-tokens 1024 --rank 64 --rows deltahub            # GPU: Qwen3-8B shape, 2,048 tokens, r 64

Rows (same student, pairs, LoRA, batch, learning rate and precision; gradient checkpointing as each
row says; the device's defaults otherwise):
  TRL train()        raw TRL with its own defaults (reference log-probs on the fly), timed inside train()
  deltahub           `train_delta` defaults (precomputed reference; checkpointing on for GPU runs)
  deltahub gc flip   the other gradient-checkpointing setting (memory vs speed)
  deltahub grouped   --group-by-length (less padding on pairs of mixed length)
Columns: the whole call (load, tokenise, precompute, train, save), the optimizer loop alone, pairs/s and
real (unpadded) tokens/s of the loop, peak GPU memory, and ratios to the TRL row.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import warnings
from pathlib import Path

from _shapes import SHAPES, build, params, text
from transformers import TrainerCallback

from deltahub.train import TrainConfig, train_delta


class LoopTimer(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = time.perf_counter() - self.t0


def make_pairs(path: Path, n: int, prompt_tokens: int, answer_tokens: int) -> tuple[Path, int]:
    """Pairs of mixed length (a quarter to all of the given token counts); returns the file and its real tokens."""
    rng = random.Random(0)
    rows, tokens = [], 0
    for _ in range(n):
        p = text(rng, rng.randint(prompt_tokens // 4, prompt_tokens))
        c, r = (text(rng, rng.randint(answer_tokens // 4, answer_tokens)) for _ in range(2))
        rows.append(
            {
                "prompt": [{"role": "user", "content": p}],
                "chosen": [{"role": "assistant", "content": c}],
                "rejected": [{"role": "assistant", "content": r}],
            }
        )
        tokens += 2 * len(p) + len(c) + len(r) + 24  # + chat-template tokens of both sequences
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path, tokens


def _peak_reset():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def run_trl(student: Path, pairs: Path, cfg: TrainConfig, work: Path) -> tuple[float, float, int]:
    """Raw TRL: the user's own DPOTrainer with the same LoRA, batch, lr and precision; train() timed."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(student)
    model = AutoModelForCausalLM.from_pretrained(student, dtype=torch.bfloat16 if cfg.bf16 else torch.float32)
    args = DPOConfig(
        output_dir=str(work),
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=max(1, cfg.batch_size // cfg.micro_batch_size),
        learning_rate=cfg.learning_rate,
        max_steps=cfg.max_steps or -1,
        num_train_epochs=cfg.epochs,
        max_length=cfg.max_length,
        beta=cfg.beta,
        bf16=cfg.bf16,
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=cfg.gradient_checkpointing,
        report_to="none",
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=True,
        seed=cfg.seed,
    )
    lora = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=load_dataset("json", data_files=str(pairs), split="train"),
        processing_class=tok,
        peft_config=lora,
    )
    t1 = time.perf_counter()
    trainer.train()
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, trainer.state.global_step


def main() -> None:
    warnings.simplefilter("ignore")  # random pairs carry no delta: the health warning is expected here
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=96, help="longest prompt (shortest: a quarter)")
    ap.add_argument("--answer-tokens", type=int, default=96, help="longest answer (shortest: a quarter)")
    ap.add_argument("--batch", type=int, default=16, help="effective pairs per step")
    ap.add_argument("--micro", type=int, default=8, help="pairs per forward pass")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps (default: one epoch)")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--rows", default="trl,deltahub,gc-flip,grouped", help="comma list of rows to run")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="train-bench-"))
    t = time.perf_counter()
    student = build(tmp / "student", args.shape, max_positions=2 * (args.prompt_tokens + args.answer_tokens) + 64)
    print(
        f"built a random {args.shape} student ({params(args.shape):.2f}B body parameters) in "
        f"{time.perf_counter() - t:.0f} s"
    )
    pairs, tokens = make_pairs(tmp / "pairs.jsonl", args.pairs, args.prompt_tokens, args.answer_tokens)
    import torch

    cuda = torch.cuda.is_available()
    base = TrainConfig(
        batch_size=args.batch,
        micro_batch_size=args.micro,
        learning_rate=1e-4,
        rank=args.rank,
        alpha=2 * args.rank,
        eval_fraction=0.0,
        save_steps=10_000,
        max_steps=args.steps,
        max_length=args.prompt_tokens + args.answer_tokens + 32,
    )
    base = base.for_device(cuda, bool(cuda and torch.cuda.is_bf16_supported()))
    steps = args.steps or -(-args.pairs // args.batch)
    seen_pairs, seen_tokens = steps * args.batch, tokens * steps * args.batch / args.pairs
    rows = []
    for row in args.rows.split(","):
        _peak_reset()
        if row == "trl":
            wall, loop, done = run_trl(student, pairs, base, tmp / "trl")
            name = f"TRL train() gc={'on' if base.gradient_checkpointing else 'off'}"
        else:
            update = {
                "deltahub": {},
                "gc-flip": {"gradient_checkpointing": not base.gradient_checkpointing},
                "grouped": {"group_by_length": True},
            }[row]
            cfg = base.model_copy(update=update)
            timer = LoopTimer()
            t0 = time.perf_counter()
            out = train_delta(student, pairs, tmp / f"out-{row}", cfg, progress=False, callbacks=[timer])
            wall, loop = time.perf_counter() - t0, timer.seconds
            done = json.loads((out / "deltahub.json").read_text())["training"]["steps"]
            name = f"deltahub gc={'on' if cfg.gradient_checkpointing else 'off'}" + (
                " grouped" if row == "grouped" else ""
            )
        assert done == steps, (row, done, steps)
        rows.append((name, wall, loop, _peak_gb()))
    precision = "bf16" if base.bf16 else "fp32"
    print(
        f"\n{args.shape} student, {args.pairs} pairs of <= {args.prompt_tokens}+{args.answer_tokens} tokens, "
        f"{steps} steps of {args.batch} (micro {args.micro}), LoRA r{args.rank} all projections, {precision}, "
        f"{'GPU ' + torch.cuda.get_device_name() if cuda else 'CPU'}"
    )
    print(
        f"{'row':<28} {'call s':>7} {'loop s':>7} {'pairs/s':>8} {'tokens/s':>9} {'peak GB':>8} "
        f"{'vs TRL (call)':>14} {'vs TRL (loop)':>14}"
    )
    ref = next((r for r in rows if r[0].startswith("TRL")), rows[0])
    for name, wall, loop, peak in rows:
        print(
            f"{name:<28} {wall:>7.1f} {loop:>7.1f} {seen_pairs / loop:>8.1f} {seen_tokens / loop:>9.0f} "
            f"{'-' if peak is None else f'{peak:.1f}':>8} {ref[1] / wall:>13.2f}x {ref[2] / loop:>13.2f}x"
        )


if __name__ == "__main__":
    main()
