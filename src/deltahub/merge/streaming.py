"""Merging a set of adapters into an adapter file, module group by module group, as results appear.

A method with a batched kernel (``MergeMethod.batched``, e.g. :mod:`deltahub.merge.batched`) runs
batched: modules of one shape and the same input ranks are merged in chunks, each chunk's results
written at once to their place in the output file (:class:`~deltahub.merge.writers.AdapterWriter`)
and the input pages it read handed back, so memory stays a few chunks whatever the model size. On
the CPU, chunks run on worker threads, each with one intra-op thread (see :func:`cpu_workers`); on a
GPU they run one after the other on the device. The other methods stream module by module where
their output rank is known before merging (``MergeMethod.output_rank``), and are collected and then
written where it is not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from ..errors import InputError
from .batched import Workspace
from .lowrank import LowRank
from .writers import AdapterWriter, write_adapter

if TYPE_CHECKING:
    from .core import MergePlan

DEVICES = ("auto", "cpu", "cuda")

# Bytes of float64 factors per chunk: the CPU's small chunks keep each worker's buffers in tens of
# MB (the chunk's r×r algebra is LAPACK-bound, so batching more modules gains nothing there); a GPU
# takes a whole shape group per chunk (36 modules of an 8B model: ~1.2 GB for the MLP projections).
CHUNK_BYTES = {"cpu": 64 << 20, "cuda": 2 << 30}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` (or None): the GPU when one is visible, else the CPU; ``cuda`` without a GPU is an error."""
    name = str(device or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise InputError(f"unknown merge device {name!r}", "use --device cpu, cuda or auto")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device is 'cuda' but no GPU is visible here", "use --device cpu (or auto)")
    return resolved


def cpu_workers() -> int:
    """Worker threads for a CPU merge: one per thread torch may use, each running its chunks with a
    single intra-op thread. Independent chunks on separate threads never wait for each other, where
    OpenMP threads inside one small operation do, and on a loaded machine they wait for each other
    far longer than the operation takes (the figures: docs/measurements.md)."""
    return max(1, torch.get_num_threads())


def module_shapes(plan: MergePlan) -> dict[str, tuple[int, int]]:
    """(out, in) features of every module, from the tensor headers; adapters must agree."""
    return {module: _shape(plan, module) for module in plan.modules}


def _shape(plan: MergePlan, module: str) -> tuple[int, int]:
    shapes = {a.shape(module) for a in plan.adapters if module in a.keys}
    if len(shapes) > 1:
        raise InputError(
            f"module {module} has different shapes across adapters: {sorted(shapes)}",
            "merge adapters trained on the same base model",
        )
    return shapes.pop()


def output_rank(plan: MergePlan, shapes: dict[str, tuple[int, int]], ranks: dict[str, list[int]]) -> int | None:
    """The merged adapter's rank (the largest module's), where the method fixes it before merging."""
    rule = plan.method.output_rank
    if rule is None:
        return None
    return max(1, max(rule(ranks[m], shapes[m]) for m in plan.modules))


def write_merged_adapter(
    plan: MergePlan,
    out,
    dtype: torch.dtype,
    device: torch.device,
    progress: bool,
    merge_one: Callable[[str], LowRank | torch.Tensor],
    workers: int | None = None,
) -> None:
    """Merge ``plan`` into the adapter folder ``out`` (weights and config); ``merge_one(module)`` is
    the per-module merge (errors named by module and input)."""
    shapes = module_shapes(plan)
    ranks = {m: [a.rank(m) if m in a.keys else 0 for a in plan.adapters] for m in plan.modules}
    rank = output_rank(plan, shapes, ranks)
    config = plan.adapters[0].config
    kernel = plan.method.batched
    bar = tqdm(total=len(plan.modules), desc=f"merging ({plan.method.name})", unit="module", disable=not progress)
    with bar:
        if rank is None:
            modules = {}
            for module in plan.modules:
                modules[module] = merge_one(module).to(dtype)
                bar.update()
            write_adapter(out, modules, config, dtype)
            return
        with AdapterWriter(out, shapes, rank, config, dtype) as writer:
            if kernel is not None and kernel.accepts(plan.weights, plan.merge_params()):
                _stream_batched(
                    plan,
                    writer,
                    shapes,
                    ranks,
                    device,
                    merge_one,
                    bar,
                    workers or (1 if device.type == "cuda" else cpu_workers()),
                )
                return
            for module in plan.modules:
                writer.write(module, merge_one(module))
                bar.update()


def _chunks(plan: MergePlan, shapes, ranks, device: torch.device) -> list[list[str]]:
    """Modules grouped by shape and input ranks, cut into chunks of at most the device's budget,
    largest first (workspace buffers are allocated at their largest size once)."""
    groups: dict[tuple, list[str]] = {}
    for module in plan.modules:
        groups.setdefault((shapes[module], tuple(ranks[module])), []).append(module)
    chunks = []
    for ((d, k), rs), modules in groups.items():
        per_module = 8 * (d + k) * sum(rs)
        size = max(1, CHUNK_BYTES[device.type] // per_module)
        chunks += [(per_module, modules[i : i + size]) for i in range(0, len(modules), size)]
    return [c for _, c in sorted(chunks, key=lambda pc: -pc[0] * len(pc[1]))]


def _stream_batched(
    plan: MergePlan,
    writer: AdapterWriter,
    shapes,
    ranks,
    device: torch.device,
    merge_one: Callable[[str], LowRank | torch.Tensor],
    bar,
    workers: int,
) -> None:
    params = plan.merge_params()
    local = threading.local()
    lock = threading.Lock()

    def run(chunk: list[str]) -> None:
        if not hasattr(local, "ws"):
            torch.set_num_threads(1)  # this thread's intra-op threads (see cpu_workers)
            local.ws = Workspace(device)
        ws = local.ws
        deltas = [module_deltas(plan, m) for m in chunk]
        out_B, out_A, ok = plan.method.batched.chunk(deltas, plan.weights, params, ws, writer.dtype, writer.rank)
        if ws.device.type != "cpu":  # one copy back and one synchronisation per chunk
            out_B = ws.get("out_B/host", out_B.shape, out_B.dtype, pinned=True).copy_(out_B, non_blocking=True)
            out_A = ws.get("out_A/host", out_A.shape, out_A.dtype, pinned=True).copy_(out_A, non_blocking=True)
        for module, B, A, good in zip(chunk, out_B, out_A, ok.tolist(), strict=True):  # (tolist waits for the copies)
            if good:
                writer.write_factors(module, B, A)
            else:
                writer.write(module, merge_one(module))  # the per-module path decides (and raises)
        for a in plan.adapters:
            a.release(chunk)
        with lock:
            bar.update(len(chunk))

    chunks = _chunks(plan, shapes, ranks, device)
    if workers <= 1:
        for chunk in chunks:
            run(chunk)
        return
    before = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="deltahub-merge") as pool:
            for future in [pool.submit(run, chunk) for chunk in chunks]:
                future.result()
    finally:
        torch.set_num_threads(before)


def module_deltas(plan: MergePlan, module: str) -> list[LowRank]:
    """Every input's update of ``module`` as stored (a zero, rank-0 update where an input lacks it)."""
    d, k = _shape(plan, module)
    return [
        a.modules[module] if module in a.keys else LowRank(torch.zeros(d, 0), torch.zeros(0, k)) for a in plan.adapters
    ]
