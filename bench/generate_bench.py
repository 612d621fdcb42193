"""Generation throughput: `deltahub generate` (transformers backend) next to raw transformers `generate`.

    python bench/generate_bench.py                                # CPU: two tiny models (~1 min)
    python bench/generate_bench.py --chosen 350m --rejected 50m --prompts 256 --max-new-tokens 128 \\
        --batch-size 64                                           # GPU: the issue's two-model run (~3 min)
    python bench/generate_bench.py --vllm                         # + the vLLM backend where importable

Both sides answer the same prompts, greedy, in the same batches (left padding), on the same device and
dtype (``--device``/``--dtype`` as in ``deltahub generate``; auto = the GPU in bf16 when there is one).
Rows per model: the generate loop alone (model loaded, one warm-up batch untimed), and the whole job
(``generate_pairs`` for both models: load, answer, write pairs) against the same raw steps.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _shapes import SHAPES, build

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def _deltahub_loop(backend_name: str, model: str, convs: list, settings) -> tuple[float, int]:
    """(seconds, new tokens) of deltahub's backend over all batches after one warm-up batch."""
    from deltahub.generate.backends import make_backend

    b = make_backend(backend_name, settings)
    b.load(model)
    bs = settings.batch_size
    try:
        b.generate(convs[:bs], 0)
        _sync()
        t0, tokens = time.perf_counter(), 0
        for start in range(0, len(convs), bs):
            tokens += sum(r.completion_tokens for r in b.generate(convs[start : start + bs], start))
        _sync()
        return time.perf_counter() - t0, tokens
    finally:
        b.close()


def _raw(model: str, convs: list, settings, warm: bool = True) -> tuple[float, float]:
    """(generate-loop seconds, seconds including the load) of plain transformers on the same placement."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from deltahub.generate.backends.transformers import DTYPES, machine_placement

    where = machine_placement(settings.device, settings.dtype)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model, padding_side="left")
    kwargs = {"device_map": where.device_map} if where.device_map else {}
    m = AutoModelForCausalLM.from_pretrained(
        model, dtype=getattr(torch, where.dtype) if where.dtype in DTYPES else "auto", **kwargs
    ).eval()
    bs = settings.batch_size

    def batch(start: int) -> None:
        enc = tok.apply_chat_template(
            convs[start : start + bs], add_generation_prompt=True, return_tensors="pt", padding=True, return_dict=True
        ).to(m.device)
        with torch.inference_mode():
            m.generate(**enc, do_sample=False, max_new_tokens=settings.max_new_tokens, pad_token_id=tok.pad_token_id)

    if warm:
        batch(0)
    _sync()
    t1 = time.perf_counter()
    for start in range(0, len(convs), bs):
        batch(start)
    _sync()
    t2 = time.perf_counter()
    return t2 - t1, t2 - t0


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    from deltahub.generate import GenerationSettings, generate_pairs
    from deltahub.generate.backends import vllm_available

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chosen", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--rejected", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto")
    ap.add_argument("--vllm", action="store_true", help="also time the vLLM backend (where importable)")
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="genbench-"))
    models = {
        "chosen": str(build(d / "chosen", args.chosen, seed=1)),
        "rejected": str(build(d / "rejected", args.rejected, seed=2)),
    }
    convs = [[{"role": "user", "content": f"what is {i} + {i * 3}? answer with care."}] for i in range(args.prompts)]
    s = GenerationSettings(
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, device=args.device, dtype=args.dtype
    )
    from deltahub.generate.backends.transformers import machine_placement

    where = machine_placement(s.device, s.dtype)
    print(
        f"{args.prompts} prompts x <= {args.max_new_tokens} new tokens, greedy, batch {args.batch_size}, "
        f"device {where.device}, dtype {where.dtype}"
    )
    print(f"{'row':<34} {'seconds':>8} {'tok/s':>9} {'deltahub / raw':>15}")
    for role, model in models.items():
        raw_loop, _ = _raw(model, convs, s)
        seconds, tokens = _deltahub_loop("transformers", model, convs, s)
        print(f"{f'{role} ({getattr(args, role)}) raw generate':<34} {raw_loop:>8.2f} {tokens / raw_loop:>9.0f}")
        print(
            f"{f'{role} ({getattr(args, role)}) deltahub':<34} {seconds:>8.2f} {tokens / seconds:>9.0f} "
            f"{raw_loop / seconds:>14.2f}x"
        )
        if args.vllm and vllm_available():
            v_seconds, v_tokens = _deltahub_loop("vllm", model, convs, s)
            print(
                f"{f'{role} ({getattr(args, role)}) deltahub vLLM':<34} {v_seconds:>8.2f} "
                f"{v_tokens / v_seconds:>9.0f} {raw_loop / v_seconds * v_tokens / tokens:>14.2f}x"
            )
    raw_job = sum(_raw(m, convs, s, warm=False)[1] for m in models.values())
    prompts = d / "prompts.jsonl"
    import json

    prompts.write_text("".join(json.dumps({"prompt": c[0]["content"]}) + "\n" for c in convs))
    t0 = time.perf_counter()
    generate_pairs(
        models["chosen"], models["rejected"], str(prompts), d / "pairs", s, backend="transformers", progress=False
    )
    job = time.perf_counter() - t0
    print(f"{'whole job, both models, raw':<34} {raw_job:>8.2f}")
    print(f"{'whole job, deltahub generate':<34} {job:>8.2f} {'':>9} {raw_job / job:>14.2f}x")


if __name__ == "__main__":
    main()
