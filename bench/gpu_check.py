"""GPU rows of issue #16, in one process on a machine with a CUDA GPU (a few minutes; no downloads).

Merge (Qwen3-8B-shaped bf16 adapters as in bench/merge_bench.py: 36 layers x 7 projections, r 64):

- ``merge_adapters(..., device="cuda")`` vs ``device="cpu"``, N = 4 (and 2): wall time of the
  merge call (process start excluded; one warm-up merge first pays CUDA's context and cuSOLVER
  start), peak GPU memory, and every module's ΔW = B'·A' of the two outputs compared: the target
  is ≤ 1e-5 relative (Frobenius, worst module);
- the mergekit plugin's path under ``mergekit-yaml --cuda`` (``batched.gam_on_device`` on CUDA
  tensors, one module at a time) against the CPU ``gam`` on the first layer's modules;
- the paper's algorithm as a GPU user would write it (dense ΔW, ``torch.linalg.svd`` on the GPU,
  float32), timed on --dense-modules modules and extrapolated to all 252: deltahub's ratio to it.

    python bench/gpu_check.py                # all of the above, N = 2 and 4
    python bench/gpu_check.py --n 4 --workdir /tmp/gpu-bench   # reuse the adapters of a previous run
    python bench/gpu_check.py --device cpu --layers 2           # a dry run of this script without a GPU

Targets (issue #16): N=4 --device cuda ≤ 1 s, ≥ 2,000x the dense-SVD GAM on the same GPU.
Generation and training rows belong to their own parts of the issue (bench/generate_bench.py,
bench/train_bench.py run on a GPU as they are).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from merge_bench import QWEN3_8B, module_shapes, write_synthetic_adapter

DEVICE = "cuda"  # --device cpu: a dry run of the script itself (the "cuda" rows then run on the CPU)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_merge(inputs: list[str], out: Path, device: str) -> float:
    from deltahub.merge import merge_adapters

    synchronize()
    start = time.perf_counter()
    merge_adapters(inputs, out, method="gam", progress=False, overwrite=True, device=device)
    synchronize()
    return time.perf_counter() - start


def worst_relative_difference(a: Path, b: Path) -> float:
    """The worst module's ‖ΔW_a − ΔW_b‖_F / ‖ΔW_b‖_F, ΔW = B·A of two merged adapters (float64 on the GPU)."""

    def delta(w: dict, key_a: str) -> torch.Tensor:
        B = w[key_a.replace(".lora_A.", ".lora_B.")]
        return B.to(DEVICE, torch.float64) @ w[key_a].to(DEVICE, torch.float64)

    from safetensors.torch import load_file

    wa, wb = load_file(a / "adapter_model.safetensors"), load_file(b / "adapter_model.safetensors")
    worst = 0.0
    for key in wa:
        if ".lora_A." not in key:
            continue
        da, db = delta(wa, key), delta(wb, key)
        worst = max(worst, float(torch.linalg.matrix_norm(da - db) / torch.linalg.matrix_norm(db)))
    return worst


def plugin_path(inputs: list[str]) -> float:
    """``gam_on_device`` on CUDA (the plugin under --cuda) vs the CPU ``gam``: worst relative error
    over layer 0's modules."""
    from deltahub.merge.adapters import load_adapter
    from deltahub.merge.batched import gam_on_device
    from deltahub.merge.methods import merge_module

    adapters = [load_adapter(p) for p in inputs]
    worst = 0.0
    for name in [m for m in adapters[0].module_names if m.startswith("model.layers.0.")]:
        deltas = [a.modules[name] for a in adapters]
        gpu = gam_on_device(deltas, [1.0] * len(deltas), 0, 1.0, DEVICE)
        assert gpu is not None, f"{name}: the batched path declined a well-conditioned module"
        cpu = merge_module("gam", deltas, [1.0] * len(deltas), reference=0).dense(torch.float64)
        got = gpu.dense(torch.float64).cpu()
        worst = max(worst, float(torch.linalg.matrix_norm(got - cpu) / torch.linalg.matrix_norm(cpu)))
    return worst


def dense_svd_gam(inputs: list[str], modules: int) -> float:
    """Seconds per module of the paper's GAM written densely on the GPU (float32 SVDs)."""
    from deltahub.merge.adapters import load_adapter

    adapters = [load_adapter(p) for p in inputs]
    names = adapters[0].module_names[:modules]

    def procrustes(X, Y):
        P, _, Qt = torch.linalg.svd(X.T @ Y)
        return P @ Qt

    synchronize()
    start = time.perf_counter()
    for name in names:
        Us, Ss, Vs = [], [], []
        for a in adapters:
            low = a.modules[name]
            dW = low.scale * (low.B.to(DEVICE, torch.float32) @ low.A.to(DEVICE, torch.float32))
            u, s, vt = torch.linalg.svd(dW, full_matrices=False)
            r = low.rank
            Us.append(u[:, :r]), Ss.append(torch.diag(s[:r])), Vs.append(vt[:r].T)
        U1, V1 = Us[0], Vs[0]
        Ub = sum(U @ procrustes(U, U1) for U in Us) / len(Us)
        Vb = sum(V @ procrustes(V, V1) for V in Vs) / len(Vs)
        Sb = sum(procrustes(U, U1).T @ S @ procrustes(V, V1) for U, S, V in zip(Us, Ss, Vs, strict=True)) / len(Us)
        _ = Ub @ Sb @ Vb.T
    synchronize()
    return (time.perf_counter() - start) / len(names)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--dense-modules", type=int, default=7, help="modules timed for the dense-SVD GAM (layer 0)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--layers", type=int, default=QWEN3_8B["layers"], help="fewer layers for a quick run")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: a dry run of this script")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA GPU is visible (fix: run bench/gpu_check.py on a GPU machine)", file=sys.stderr)
        return 2
    work = Path(args.workdir or tempfile.mkdtemp(prefix="deltahub-gpu-check-"))
    shapes = module_shapes(QWEN3_8B, args.layers)
    inputs = []
    for i in range(max(args.n)):
        p = work / f"adapter-bfloat16-{args.layers}-{i}"
        if not (p / "adapter_model.safetensors").exists():
            write_synthetic_adapter(p, shapes, 64, seed=i, base_name="Qwen/Qwen3-8B")
        inputs.append(str(p))
    gpu_name = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (dry run)"
    print(f"{gpu_name}, torch {torch.__version__}; {len(shapes)} modules; workdir {work}")
    timed_merge(inputs[:2], work / "warm-up", DEVICE)  # CUDA context, cuBLAS/cuSOLVER handles
    per_dense = dense_svd_gam(inputs[:4], args.dense_modules)
    print(f"\n{'N':>2}  {'merge':<34} {'time s':>8} {'x cuda':>8}  note")
    for n in args.n:
        ins = inputs[:n]
        if DEVICE == "cuda":
            torch.cuda.reset_peak_memory_stats()
        gpu = timed_merge(ins, work / f"cuda-{n}", DEVICE)
        peak = torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else 0.0
        cpu = timed_merge(ins, work / f"cpu-{n}", "cpu")
        diff = worst_relative_difference(work / f"cuda-{n}", work / f"cpu-{n}")
        print(
            f"{n:>2}  {'deltahub GAM --device cuda':<34} {gpu:>8.2f} {1.0:>8.1f}  peak GPU {peak:.2f} GiB; "
            f"ΔW vs cpu {diff:.1e} ({'ok' if diff <= 1e-5 else 'ABOVE 1e-5'})"
        )
        print(
            f"{n:>2}  {'deltahub GAM --device cpu':<34} {cpu:>8.2f} {cpu / gpu:>8.1f}  "
            f"{torch.get_num_threads()} threads"
        )
        if n == 4:
            dense = per_dense * len(shapes)
            print(
                f"{n:>2}  {'dense-SVD GAM on the GPU (paper)':<34} {dense:>8.0f} {dense / gpu:>8.0f}  "
                f"{args.dense_modules} modules timed, x{len(shapes) / args.dense_modules:g}"
            )
            print(
                f"    targets: cuda <= 1 s: {'met' if gpu <= 1 else 'NOT met'}; "
                f">= 2,000x dense-SVD: {'met' if dense / gpu >= 2000 else 'NOT met'}"
            )
    print(
        f"\nmergekit plugin path (gam_on_device on CUDA, layer 0, N={min(4, len(inputs))}) vs CPU gam: "
        f"worst relative ΔW difference {plugin_path(inputs[:4]):.1e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
