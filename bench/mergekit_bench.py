"""mergekit-yaml with deltahub's `gam` (factor path) vs mergekit's own task_arithmetic and ties.

Qwen3-0.6B-shaped random base (hidden 1024, intermediate 3072, 16/8 heads, head_dim 128; 28
layers by default, fewer with --layers for a quick run), 4 rank-64 LoRA adapters on every linear
layer, `BASE+ADAPTER` inputs. The LoRA cache is warmed once first (mergekit materialises one
full model per adapter; every method pays that the same), then each method runs --repeats times
in a subprocess, interleaved. Reported: best wall time and peak RSS of each run, as ratios to
task_arithmetic.

    .venv/bin/python bench/mergekit_bench.py --layers 4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def build(root: Path, layers: int, vocab: int, n_adapters: int, rank: int) -> tuple[Path, list[Path]]:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from deltahub.tiny import build_random_adapter

    base = root / "base"
    cfg = Qwen3Config(
        vocab_size=vocab,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        tie_word_embeddings=True,
        max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    Qwen3ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(base)
    adapters = [
        build_random_adapter(base, root / f"adapter{i}", r=rank, alpha=rank, seed=i + 1, std=0.01)
        for i in range(n_adapters)
    ]
    return base, adapters


def run(method: str, base: Path, adapters: list[Path], root: Path, params: dict) -> tuple[float, float]:
    config = {
        "merge_method": method,
        "base_model": str(base),
        "dtype": "float32",
        "out_dtype": "bfloat16",
        "models": [{"model": f"{base}+{a}", "parameters": {"weight": 1.0, **params.get("per", {})}} for a in adapters],
        "parameters": params.get("shared", {}),
    }
    cfg = root / f"{method}.yml"
    cfg.write_text(yaml.safe_dump(config))
    out = root / f"out_{method}"
    cmd = [
        str(BIN / "mergekit-yaml"),
        str(cfg),
        str(out),
        "--lora-merge-cache",
        str(root / "cache"),
        "--lora-merge-dtype",
        "float32",
        "--quiet",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{method} failed:\n{proc.stderr.read().decode()[-3000:]}")
    return wall, usage.ru_maxrss / 1024  # MiB (Linux reports KiB)


def startup_cost(runs: int = 30) -> tuple[float, float]:
    """Min and median over fresh interpreters of the hook's cumulative import time (-X importtime), ms."""
    times = []
    for _ in range(runs):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True).stderr
        line = [ln for ln in err.splitlines() if ln.rstrip().endswith("deltahub_mergekit_hook")]
        times.append(int(line[0].split("|")[1]) / 1000 if line else float("nan"))
    times.sort()
    return times[0], times[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=28)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--adapters", type=int, default=4)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--startup-only", action="store_true", help="only measure the .pth hook's start-up cost")
    args = ap.parse_args()
    low, mid = startup_cost()
    print(
        f".pth hook start-up cost (import of deltahub_mergekit_hook, 30 fresh interpreters): "
        f"min {low:.2f} ms, median {mid:.2f} ms (target < 5 ms)"
    )
    if args.startup_only:
        return
    methods = {
        "task_arithmetic": {},
        "ties": {"per": {"density": 0.2}},
        "gam": {},
    }
    with tempfile.TemporaryDirectory(prefix="mk-bench-") as tmp:
        root = Path(tmp)
        base, adapters = build(root, args.layers, args.vocab, args.adapters, args.rank)
        run("task_arithmetic", base, adapters, root, {})  # warm the LoRA cache (same for every method)
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeats):
            for m, p in methods.items():
                wall, rss = run(m, base, adapters, root, p)
                w0, r0 = best.get(m, (float("inf"), 0.0))
                best[m] = (min(w0, wall), max(r0, rss))
    ta_wall, ta_rss = best["task_arithmetic"]
    print(
        f"Qwen3-0.6B-shaped base, {args.layers} layers, vocab {args.vocab}, "
        f"{args.adapters} adapters of rank {args.rank}; "
        f"best of {args.repeats}, warm LoRA cache"
    )
    print(f"{'method':<16} {'wall s':>8} {'× TA':>6} {'peak RSS MiB':>13} {'× TA':>6}")
    for m, (wall, rss) in best.items():
        print(f"{m:<16} {wall:8.2f} {wall / ta_wall:6.2f} {rss:13.0f} {rss / ta_rss:6.2f}")


if __name__ == "__main__":
    main()
