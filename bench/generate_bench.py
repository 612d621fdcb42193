"""Generated tokens per second of each generation backend on the same tiny models, as ratios.

    .venv/bin/python bench/generate_bench.py            # transformers; vLLM too where importable
    .venv/bin/python bench/generate_bench.py --large    # + a ~0.5B-scale random Qwen3 (GPU machines)

Each backend answers the same prompts with the same greedy settings through ``generate_pairs``'s
backend objects (load once, then timed batches after one warm-up batch). Ratios are taken within
this one run, so machine noise mostly cancels.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def _throughput(backend_name: str, model: str, convs: list, settings) -> float:
    from deltahub.generate.backends import make_backend

    b = make_backend(backend_name, settings)
    b.load(model)
    bs = settings.batch_size
    try:
        b.generate(convs[:bs], 0)  # warm-up
        t0, tokens = time.perf_counter(), 0
        for start in range(0, len(convs), bs):
            tokens += sum(r.completion_tokens for r in b.generate(convs[start:start + bs], start))
        return tokens / (time.perf_counter() - t0)
    finally:
        b.close()


def _large(path: Path) -> Path:
    """A random Qwen3 of ~0.5B parameters (Qwen2.5-0.5B-like shape) with the char tokenizer."""
    from deltahub.tiny import build_tiny_model

    return build_tiny_model(path, hidden_size=896, num_layers=24, head_dim=64, intermediate_size=4864,
                            max_position_embeddings=2048)


def main() -> None:
    from deltahub.generate import GenerationSettings
    from deltahub.generate.backends import vllm_available
    from deltahub.tiny import build_tiny_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--large", action="store_true")
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="genbench-"))
    models = {"weak 128x2": build_tiny_model(d / "weak", hidden_size=128, num_layers=2, seed=1),
              "weaker 64x1": build_tiny_model(d / "weaker", hidden_size=64, num_layers=1, seed=2)}
    if args.large:
        models["random 0.5B"] = _large(d / "large")
    convs = [[{"role": "user", "content": f"what is {i} + {i * 3}?"}] for i in range(args.prompts)]
    s = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    backends = ["transformers"] + (["vllm"] if vllm_available() else [])
    print(f"{args.prompts} prompts x {args.max_new_tokens} new tokens, greedy, batch {args.batch_size}")
    print(f"{'model':<14} {'backend':<13} {'tok/s':>10} {'vs transformers':>16}")
    for name, path in models.items():
        base = None
        for backend in backends:
            tps = _throughput(backend, str(path), convs, s)
            base = base or tps
            print(f"{name:<14} {backend:<13} {tps:>10.0f} {tps / base:>15.2f}x")
    if "vllm" not in backends:
        print("(vLLM not importable here: run in the vLLM venv of scripts/test-vllm.sh or on a GPU machine)")


if __name__ == "__main__":
    main()
