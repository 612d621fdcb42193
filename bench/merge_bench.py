"""Merge benchmark: deltahub GAM in factor space before and after #16, and its peers, side by side, one run.

Qwen3-8B-shaped LoRA adapters (36 layers x 7 projections, the real shapes, r = 64) with
synthetic factors, in bf16 and float32; no base weights are needed for an adapter output. Every
measurement runs in a fresh subprocess so that peak memory (max RSS) is its own. Prints one table
with ratios against deltahub (after).

    python bench/merge_bench.py                         # N = 2, 4; bf16 and float32; peers at N = 4
    python bench/merge_bench.py --n 4 --dtype bfloat16 --skip-peers --skip-mergekit   # the headline row

Rows:
  deltahub GAM   ``merge_adapters(method="gam", device=--device)``: batched over modules of one
                 shape, streamed to the output file (#16).
  before #16     the same call on the code of --before (default f003eb5, the per-module path: a
                 float32 copy, a NaN pass and a scaled copy of every factor, one module at a time),
                 extracted with ``git archive`` into the workdir and run in its own process.
  dense-SVD GAM  the paper's algorithm as written (dense ΔW, full SVD): timed on a few
                 layers and extrapolated to 36.
  PEFT svd       PeftModel.add_weighted_adapter(combination_type="svd") on the same adapters:
                 timed on a model with a few 8B-shaped layers and extrapolated.
  mergekit TA    mergekit task_arithmetic over base+adapter inputs, vs deltahub's full-model
                 GAM merge, on a Qwen3-0.6B-shaped random base.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

QWEN3_8B = dict(hidden=4096, intermediate=12288, layers=36, heads=32, kv_heads=8, head_dim=128)
QWEN3_06B = dict(hidden=1024, intermediate=3072, layers=28, heads=16, kv_heads=8, head_dim=128)
PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def module_shapes(s: dict, layers: int) -> dict[str, tuple[int, int]]:
    """(out, in) of every adapted weight."""
    h, i, q, kv = s["hidden"], s["intermediate"], s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    per = {
        "self_attn.q_proj": (q, h),
        "self_attn.k_proj": (kv, h),
        "self_attn.v_proj": (kv, h),
        "self_attn.o_proj": (h, q),
        "mlp.gate_proj": (i, h),
        "mlp.up_proj": (i, h),
        "mlp.down_proj": (h, i),
    }
    return {f"model.layers.{layer}.{name}": shape for layer in range(layers) for name, shape in per.items()}


def write_synthetic_adapter(
    path: Path, shapes: dict, r: int, seed: int, base_name: str, dtype: str = "bfloat16"
) -> int:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    tensors = {}
    dt = getattr(torch, dtype)
    for name, (d, k) in shapes.items():
        tensors[f"base_model.model.{name}.lora_A.weight"] = (torch.randn(r, k, generator=g) / k**0.5).to(dt)
        tensors[f"base_model.model.{name}.lora_B.weight"] = (torch.randn(d, r, generator=g) * 1e-3).to(dt)
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / "adapter_model.safetensors"), metadata={"format": "pt"})
    cfg = {
        "peft_type": "LORA",
        "r": r,
        "lora_alpha": 2 * r,
        "target_modules": list(PROJ),
        "lora_dropout": 0.05,
        "base_model_name_or_path": base_name,
        "task_type": "CAUSAL_LM",
        "bias": "none",
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "fan_in_fan_out": False,
        "init_lora_weights": True,
    }
    (path / "adapter_config.json").write_text(json.dumps(cfg))
    return (path / "adapter_model.safetensors").stat().st_size


def run_child(code: str, *args: str, src: Path | None = None) -> dict:
    """Run ``code`` in a fresh interpreter (with deltahub from ``src`` when given); it prints a JSON
    dict; max RSS and the CPU seconds of ``main`` (user + system, all threads: on a shared machine
    steadier than the wall time) are added."""
    wrapper = (
        "import json, resource, sys, time\n"
        f"{code}\n"
        "cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])\n"
        "t0, c0 = time.perf_counter(), cpu(); result = main(*sys.argv[1:]) or {}\n"
        "result['seconds'] = result.get('seconds', time.perf_counter() - t0)\n"
        "result['cpu_s'] = cpu() - c0\n"
        "result['peak_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print('RESULT ' + json.dumps(result))\n"
    )
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    line = [out for out in proc.stdout.splitlines() if out.startswith("RESULT ")][-1]
    return json.loads(line[7:])


BASELINE_RSS = """
def main():
    import torch, safetensors, deltahub.merge
    return {'seconds': 0.0}
"""

DELTAHUB_GAM = """
def main(out, device, *inputs):
    import inspect, time
    from deltahub.merge import merge_adapters
    kwargs = {'device': device} if 'device' in inspect.signature(merge_adapters).parameters else {}
    t0 = time.perf_counter()
    merge_adapters(list(inputs), out, method='gam', progress=False, overwrite=True, **kwargs)
    return {'seconds': time.perf_counter() - t0}
"""

DENSE_GAM = """
def main(layers, *inputs):
    # The paper's algorithm as written: form each dense ΔW, full SVD, Procrustes, means.
    import time, torch
    from deltahub.merge.adapters import load_adapter
    adapters = [load_adapter(p) for p in inputs]
    names = [m for m in adapters[0].module_names if int(m.split('.')[2]) < int(layers)]
    torch.manual_seed(0)
    t0 = time.perf_counter()
    for name in names:
        Us, Ss, Vs = [], [], []
        for a in adapters:
            low = a.modules[name]
            r = low.rank
            u, s, vt = torch.linalg.svd(low.dense(torch.float32), full_matrices=False)
            Us.append(u[:, :r]); Ss.append(torch.diag(s[:r])); Vs.append(vt[:r].T)
        def proc(X, Y):
            P, _, Q = torch.linalg.svd(X.T @ Y)
            return P @ Q
        U1, V1 = Us[0], Vs[0]
        Ub = sum(U @ proc(U, U1) for U in Us) / len(Us)
        Vb = sum(V @ proc(V, V1) for V in Vs) / len(Vs)
        Sb = sum(proc(U, U1).T @ S @ proc(V, V1) for U, S, V in zip(Us, Ss, Vs)) / len(Us)
        dW = Ub @ Sb @ Vb.T
    return {'seconds': time.perf_counter() - t0, 'layers': int(layers)}
"""

PEFT_SVD = """
def main(layers, *inputs):
    import time, json, torch
    from pathlib import Path
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from peft import PeftModel
    s = json.loads(Path(inputs[0], 'bench_shape.json').read_text())
    cfg = Qwen3Config(vocab_size=256, hidden_size=s['hidden'], intermediate_size=s['intermediate'],
                      num_hidden_layers=int(layers), num_attention_heads=s['heads'], num_key_value_heads=s['kv_heads'],
                      head_dim=s['head_dim'], tie_word_embeddings=True)
    with torch.device('meta'):
        model = Qwen3ForCausalLM(cfg)
    model = model.to_empty(device='cpu').to(torch.bfloat16)
    import tempfile, shutil
    from safetensors.torch import load_file, save_file
    names = []
    pm = None
    for i, p in enumerate(inputs):
        # keep only the first `layers` layers of each adapter
        tmp = Path(tempfile.mkdtemp())
        w = {k: v for k, v in load_file(Path(p) / 'adapter_model.safetensors').items()
             if int(k.split('.')[4]) < int(layers)}
        save_file(w, str(tmp / 'adapter_model.safetensors'))
        shutil.copy(Path(p) / 'adapter_config.json', tmp / 'adapter_config.json')
        name = f'd{i}'
        names.append(name)
        if pm is None:
            pm = PeftModel.from_pretrained(model, tmp, adapter_name=name)
        else:
            pm.load_adapter(tmp, adapter_name=name)
    r = json.loads((Path(inputs[0]) / 'adapter_config.json').read_text())['r']
    t0 = time.perf_counter()
    pm.add_weighted_adapter(names, [1.0 / len(names)] * len(names), 'merged', combination_type='svd', svd_rank=r)
    return {'seconds': time.perf_counter() - t0, 'layers': int(layers)}
"""

BUILD_BASE = """
def main(path):
    import json, torch
    from transformers import Qwen3Config, Qwen3ForCausalLM
    s = json.loads(__import__('pathlib').Path(path + '.json').read_text())
    cfg = Qwen3Config(vocab_size=151936, hidden_size=s['hidden'], intermediate_size=s['intermediate'],
                      num_hidden_layers=s['layers'], num_attention_heads=s['heads'], num_key_value_heads=s['kv_heads'],
                      head_dim=s['head_dim'], tie_word_embeddings=True, torch_dtype='bfloat16')
    torch.manual_seed(0)
    with torch.device('meta'):
        model = Qwen3ForCausalLM(cfg)
    model = model.to_empty(device='cpu').to(torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    model.save_pretrained(path)
"""

DELTAHUB_FULL = """
def main(out, base, *inputs):
    import time
    from deltahub.merge import merge_adapters
    t0 = time.perf_counter()
    merge_adapters(list(inputs), out, method='gam', base=base, full=True, progress=False, overwrite=True)
    return {'seconds': time.perf_counter() - t0}
"""

MERGEKIT_TA = """
def main(out, base, *inputs):
    import subprocess, sys, time, yaml, os, shutil
    from pathlib import Path
    cfg = {'merge_method': 'task_arithmetic', 'base_model': base, 'dtype': 'bfloat16',
           'models': [{'model': f'{base}+{p}', 'parameters': {'weight': 1.0 / len(inputs)}} for p in inputs]}
    Path(out + '.yml').write_text(yaml.safe_dump(cfg))
    shutil.rmtree(out, ignore_errors=True)
    cache = out + '-lora-cache'
    shutil.rmtree(cache, ignore_errors=True)
    t0 = time.perf_counter()
    exe = str(Path(sys.executable).with_name('mergekit-yaml'))
    proc = subprocess.run([exe, out + '.yml', out, '--lora-merge-cache', cache, '--lora-merge-dtype', 'float32'],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    seconds = time.perf_counter() - t0
    import resource
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {'seconds': seconds, 'child_peak_mb': child}
"""


def fmt(x: float) -> str:
    return f"{x:,.2f}" if x < 100 else f"{x:,.0f}"


AFTER = "deltahub GAM (#16: batched, streamed)"
BEFORE = "f003eb5"  # the last commit with the per-module merge path (#16 replaced it)


def checkout(rev: str, work: Path) -> Path:
    """The repository at ``rev`` (its ``src`` and the cards it renders), extracted once into ``work``."""
    root = work / f"before-{rev}"
    if not (root / "src").is_dir():
        repo = Path(__file__).resolve().parent.parent
        root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(repo), "archive", rev], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root / "src"


def adapters(work: Path, n: int, rank: int, dtype: str) -> tuple[list[str], list[int]]:
    """``n`` synthetic adapters of ``dtype`` (written once, reused by later runs with the same workdir)."""
    shapes = module_shapes(QWEN3_8B, QWEN3_8B["layers"])
    paths, sizes = [], []
    for i in range(n):
        p = work / f"adapter-{dtype}-{i}"
        if not (p / "adapter_model.safetensors").exists():
            write_synthetic_adapter(p, shapes, rank, seed=i, base_name="Qwen/Qwen3-8B", dtype=dtype)
        (p / "bench_shape.json").write_text(json.dumps(QWEN3_8B))
        paths.append(str(p))
        sizes.append((p / "adapter_model.safetensors").stat().st_size)
    return paths, sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[2, 4], help="numbers of adapters")
    ap.add_argument(
        "--dtype",
        nargs="+",
        choices=["bfloat16", "float32"],
        default=["bfloat16", "float32"],
        help="dtypes of the synthetic adapters",
    )
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--device", default="cpu", help="deltahub merge --device (cpu, cuda, auto)")
    ap.add_argument("--before", default=BEFORE, help="git revision of the 'before' row (none: skip it)")
    ap.add_argument("--dense-layers", type=int, default=1, help="layers timed for dense-SVD GAM and PEFT svd")
    ap.add_argument("--peer-n", type=int, nargs="+", default=[4], help="N at which the slow dense peers run")
    ap.add_argument("--skip-peers", action="store_true", help="no dense-SVD GAM and PEFT svd rows")
    ap.add_argument("--skip-mergekit", action="store_true")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="deltahub-merge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    before = None if args.before == "none" else checkout(args.before, work)
    print(
        f"workdir {work}; Qwen3-8B-shaped adapters: {len(module_shapes(QWEN3_8B, QWEN3_8B['layers']))} modules, "
        f"r={args.rank}; device {args.device}; cpus={os.cpu_count()}; before = {args.before}"
    )
    baseline = run_child(BASELINE_RSS)["peak_mb"]
    rows = []  # (n, dtype, name, seconds, CPU seconds, peak MB, inputs MB, note)
    for dtype in args.dtype:
        inputs, sizes = adapters(work, max(args.n), args.rank, dtype)
        for n in args.n:
            ins, in_mb = inputs[:n], sum(sizes[:n]) / 2**20
            ours = run_child(DELTAHUB_GAM, str(work / f"gam-{n}"), args.device, *ins)
            rows.append((n, dtype, AFTER, ours["seconds"], ours["cpu_s"], ours["peak_mb"], in_mb, ""))
            if before is not None:
                old = run_child(DELTAHUB_GAM, str(work / f"gam-before-{n}"), "cpu", *ins, src=before)
                rows.append(
                    (
                        n,
                        dtype,
                        f"deltahub GAM before #16 ({args.before})",
                        old["seconds"],
                        old["cpu_s"],
                        old["peak_mb"],
                        in_mb,
                        "per-module path",
                    )
                )
            if n not in args.peer_n or args.skip_peers or dtype != args.dtype[0]:
                continue
            extrapolated = f"{args.dense_layers} layer(s) x{QWEN3_8B['layers'] / args.dense_layers:g}"
            dense = run_child(DENSE_GAM, str(args.dense_layers), *ins)
            per = QWEN3_8B["layers"] / args.dense_layers
            rows.append(
                (
                    n,
                    dtype,
                    "dense-SVD GAM (paper)",
                    dense["seconds"] * per,
                    dense["cpu_s"] * per,
                    dense["peak_mb"],
                    in_mb,
                    extrapolated,
                )
            )
            peft = run_child(PEFT_SVD, str(args.dense_layers), *ins)
            rows.append(
                (
                    n,
                    dtype,
                    "PEFT add_weighted_adapter(svd)",
                    peft["seconds"] * per,
                    peft["cpu_s"] * per,
                    peft["peak_mb"],
                    in_mb,
                    extrapolated,
                )
            )

    print(f"\nPython + torch + deltahub baseline RSS: {baseline:,.0f} MB")
    print(
        f"\n{'N':>2} {'dtype':<8} {'method':<38} {'time s':>9} {'x deltahub':>10} {'CPU s':>8} {'x deltahub':>10} "
        f"{'peak MB':>8} {'x deltahub':>10} {'peak/inputs':>11}  note"
    )
    ref = {(n, dtype): row for n, dtype, name, *row in rows if name == AFTER}
    for n, dtype, name, sec, cpu, peak, in_mb, note in rows:
        sec0, cpu0, peak0, _, _ = ref[n, dtype]
        print(
            f"{n:>2} {dtype:<8} {name:<38} {fmt(sec):>9} {sec / sec0:>10.1f} {fmt(cpu):>8} {cpu / cpu0:>10.1f} "
            f"{peak:>8,.0f} {peak / peak0:>10.1f} {peak / in_mb:>11.2f}  {note}"
        )

    if not args.skip_mergekit:
        mergekit_rows(work, 4 if 4 in args.n else args.n[0], args.rank)


def mergekit_rows(work: Path, n: int, rank: int) -> None:
    """deltahub's full-model GAM vs mergekit's task_arithmetic, both from base+adapter inputs."""
    small = work / "qwen3-0.6b"
    (work / "qwen3-0.6b.json").write_text(json.dumps(QWEN3_06B))
    if not (small / "config.json").exists():
        run_child(BUILD_BASE, str(small))
    shapes06 = module_shapes(QWEN3_06B, QWEN3_06B["layers"])
    ins06 = []
    for i in range(n):
        p = work / f"adapter06-{i}"
        if not (p / "adapter_model.safetensors").exists():
            write_synthetic_adapter(p, shapes06, rank, seed=100 + i, base_name=str(small))
        ins06.append(str(p))
    ours = run_child(DELTAHUB_FULL, str(work / "full06"), str(small), *ins06)
    mk = run_child(MERGEKIT_TA, str(work / "mk06"), str(small), *ins06)
    mk_peak = max(mk["peak_mb"], mk.get("child_peak_mb", 0))
    print(f"\nQwen3-0.6B-shaped random base, {n} rank-{rank} adapters -> full merged model (bf16):")
    print(f"  deltahub GAM --full        {fmt(ours['seconds']):>8} s  peak {ours['peak_mb']:,.0f} MB   1.0x")
    print(
        f"  mergekit task_arithmetic   {fmt(mk['seconds']):>8} s  peak {mk_peak:,.0f} MB   "
        f"{mk['seconds'] / ours['seconds']:.1f}x time, {mk_peak / ours['peak_mb']:.1f}x memory"
    )


if __name__ == "__main__":
    main()
