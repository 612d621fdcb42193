"""GAM, KnOTS and TSV-M registered as mergekit merge methods (the math is ``deltahub.merge``).

mergekit hands a method one output weight at a time, as dense tensors. For ``BASE+ADAPTER``
inputs the method ignores the dense copy mergekit materialised and reads the adapter's LoRA
factors itself (the input's ``ModelReference`` carries the adapter path), so the merge runs in
factor space. Plain model inputs are dense: their delta to the base is turned back into factors
with a randomized range finder (never a full SVD), which only works when the delta really is
low-rank — a LoRA merged into bf16 weights is not, and the method stops and says so.

Rules for the tensors a method cannot merge as a low-rank update:
- every input leaves the tensor equal to the base -> the base value (norms, embeddings, lm_head
  of pure LoRA deltas; a ``BASE+ADAPTER`` input never changes a tensor its adapter has no
  factors for, even when mergekit's bf16 LoRA cache rounded it);
- a tensor that is not 2-D (norms, biases) and changes -> base + scale·Σwᵢ·Δᵢ/Σwᵢ (weighted mean).
"""

from __future__ import annotations

import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Union

import torch
from mergekit.merge_methods import registry
from mergekit.merge_methods.base import (
    BasePolicy,
    GroupMergeMethod,
    InputContract,
    MergeMethodSpec,
    OptionalTensorPolicy,
    ParameterScope,
    ParameterSpec,
    TensorEntry,
    TensorGroup,
)

from deltahub.errors import InputError
from deltahub.merge.adapters import LoraAdapter, load_adapter
from deltahub.merge.lowrank import COMPUTE_DTYPE, LowRank, low_rank_from_dense
from deltahub.merge.methods import METHODS, merge_module

PLUGIN_METHODS = ("gam", "knots", "tsv")

# Parameters the plugin adds to every method: how dense inputs are turned into factors.
DENSE_PARAMS: dict[str, tuple[Any, Any, str]] = {
    "rank": (int, 0, "rank of dense (non-adapter) input deltas; 0 = the adapters' rank, else found automatically"),
    "max_residual": (float, 5e-3, "largest relative residual ‖Δ − BA‖/‖Δ‖ accepted when recovering a dense delta"),
}
_RANK_TRUNCATION = 1e-5  # singular values below this fraction of the largest are rounding noise


def _value_type(name: str, default: Any) -> Any:
    if name == "reference":
        return Union[int, Literal["auto"]]
    if name == "merge_rule":
        return Literal["ties", "ta"]
    return type(default)


@lru_cache(maxsize=64)
def _adapter(path: str, revision: str | None) -> LoraAdapter:
    """The adapter folder behind a ``BASE+ADAPTER`` reference (a Hub id is fetched like mergekit does)."""
    folder = Path(path)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(path, revision=revision))
    return load_adapter(folder)


def _zero(shape: tuple[int, int]) -> LowRank:
    return LowRank(torch.zeros(shape[0], 1), torch.zeros(1, shape[1]))


def _dense_to_factors(delta: torch.Tensor, rank: int, start: int, max_residual: float, name: str, source: Any,
                      input_dtype: torch.dtype) -> LowRank:
    """Factors of a dense delta by a randomized range finder: at ``rank``, or (rank 0) doubling from
    ``start`` until the residual is small; a delta that needs more than half the full rank is refused."""
    d, k = delta.shape
    limit = max(1, min(d, k) // 2)
    if rank > 0:
        ranks = [min(rank, min(d, k))]
    else:
        ranks, r = [], max(1, start)
        while True:
            ranks.append(min(r, limit))
            if r >= limit:
                break
            r *= 2
    residual = float("inf")
    for r in ranks:
        factors, residual = low_rank_from_dense(delta, r)
        if residual <= max_residual:
            s = factors.B.norm(dim=0)  # column norms of B are the singular values
            keep = s > s.max() * _RANK_TRUNCATION
            return LowRank(factors.B[:, keep], factors.A[keep])
    hint = " (it arrives in bf16)" if input_dtype in (torch.bfloat16, torch.float16) else ""
    raise InputError(
        f"{name}: the delta of {source} to the base is not low-rank{hint} (relative residual "
        f"{residual:.2g} at rank {ranks[-1]} > max_residual {max_residual:g}); a LoRA merged into bf16 "
        "weights (mergekit's default) is full-rank rounding noise",
        "pass --lora-merge-dtype float32 and `dtype: float32`, or use BASE+ADAPTER inputs so the "
        "method reads the LoRA factors (or raise max_residual / set rank if the delta is a full fine-tune)",
    )


class DeltahubMergeMethod(GroupMergeMethod):
    """One ``deltahub.merge.methods`` method behind mergekit's ``GroupMergeMethod`` interface."""

    def __init__(self, name: str):
        spec = METHODS[name]
        self.method = name
        self.method_params = dict(spec.params)
        params = [ParameterSpec("weight", float, ParameterScope.NON_BASE, default=1.0,
                                description="per-input weight (normalised for gam)")]
        params += [ParameterSpec(p, _value_type(p, v), ParameterScope.SHARED, default=v)
                   for p, v in spec.params.items()]
        params += [ParameterSpec(p, t, ParameterScope.SHARED, default=v, description=doc)
                   for p, (t, v, doc) in DENSE_PARAMS.items()]
        self.spec = MergeMethodSpec(
            name=name,
            parameters=tuple(params),
            contract=InputContract(base=BasePolicy.REQUIRED, min_non_base=1),
            pretty_name=spec.pretty_name,
            reference_url=spec.reference_url,
            optional_tensor_policy=OptionalTensorPolicy.ERROR,
        )
        self._checked: set[int] = set()
        self._lock = threading.Lock()

    # -- parameter names: mergekit silently ignores unknown keys; we refuse them ---------------
    def validate_inputs(self, input_ids, base_id=None, *, group_name=None) -> None:
        super().validate_inputs(input_ids, base_id, group_name=group_name)
        planner = sys._getframe(1).f_locals.get("self")  # mergekit's MergePlanner.normalize_config
        config = getattr(planner, "config", None)
        if config is not None and hasattr(config, "merge_method"):
            with self._lock:
                if id(config) not in self._checked:
                    self._checked.add(id(config))
                    check_parameter_names(self.spec, config)

    # -- the merge of one output tensor -------------------------------------------------------
    def merge_group(self, group: TensorGroup, /, **p: Any) -> torch.Tensor:
        base = group.base.tensor
        entries = group.non_base
        weights = [float(w) for w in p["weight"].values_for(entries)]
        name = group.metadata.name or "?"
        params = {k: p[k] for k in self.method_params}
        if base.ndim != 2:
            return self._mean_rule(base, entries, weights, params.get("scale", 1.0))
        module = name[: -len(".weight")] if name.endswith(".weight") else name
        shape = tuple(base.shape)
        deltas: list[Any] = []  # LowRank | None (unchanged) | TensorEntry (dense, resolved below)
        factor_ranks = []
        for entry in entries:
            lora = getattr(entry.id, "lora", None)
            if lora is not None:
                adapter = _adapter(lora.path, lora.revision)
                if module in adapter.keys:
                    delta = adapter.module(module)
                    if tuple(delta.shape) != shape:
                        raise InputError(f"{name}: adapter {lora.path} has shape {delta.shape}, base {shape}",
                                         "merge adapters trained on this base model")
                    deltas.append(delta)
                    factor_ranks.append(delta.rank)
                else:
                    deltas.append(None)  # the adapter does not touch this weight
            else:
                deltas.append(entry)
        if any(isinstance(d, TensorEntry) for d in deltas):
            start = max(factor_ranks, default=8)
            resolved = []
            for d in deltas:
                if d is None or isinstance(d, LowRank):
                    resolved.append(d)
                    continue
                dense = d.tensor.to(COMPUTE_DTYPE) - base.to(COMPUTE_DTYPE)
                if not torch.any(dense):
                    resolved.append(None)
                else:
                    resolved.append(_dense_to_factors(dense, p["rank"], start, p["max_residual"], name, d.id, d.tensor.dtype))
            deltas = resolved
        if all(d is None for d in deltas):
            return base.clone()
        deltas = [_zero(shape) if d is None else d for d in deltas]
        merged = merge_module(self.method, deltas, weights, **params)
        # base + ΔW in float32: the result is stored in base.dtype (at most float32 in practice),
        # and a float64 B·A of every weight cost ~2.5x the float32 one
        out = base.to(torch.float32, copy=True)
        if isinstance(merged, LowRank):
            return out.addmm_(merged.B.to(torch.float32), merged.A.to(torch.float32)).to(base.dtype)
        return out.add_(merged.to(torch.float32)).to(base.dtype)

    @staticmethod
    def _mean_rule(base: torch.Tensor, entries, weights: list[float], scale: float) -> torch.Tensor:
        # a LoRA adapter changes only its linear layers (load_adapter refuses modules_to_save), so
        # for BASE+ADAPTER inputs these tensors are the base's, whatever dtype mergekit merged in
        deltas = [torch.zeros_like(base, dtype=COMPUTE_DTYPE) if getattr(e.id, "lora", None) is not None
                  else e.tensor.to(COMPUTE_DTYPE) - base.to(COMPUTE_DTYPE) for e in entries]
        if not any(torch.any(d) for d in deltas):
            return base.clone()
        total = sum(weights)
        if total == 0:
            raise InputError("weights sum to zero", "give the inputs weights with a non-zero sum")
        mean = sum(w * d for w, d in zip(weights, deltas)) / total
        return (base.to(COMPUTE_DTYPE) + scale * mean).to(base.dtype)


def _parameter_blocks(config: Any):
    """(where, is_per_input, parameters dict) for every parameters block of a mergekit config."""
    yield "parameters", False, config.parameters
    for i, m in enumerate(config.models or []):
        yield f"models[{i}].parameters", True, m.parameters
    def slices(prefix, items):
        for i, s in enumerate(items or []):
            yield f"{prefix}slices[{i}].parameters", False, s.parameters
            for j, src in enumerate(s.sources or []):
                yield f"{prefix}slices[{i}].sources[{j}].parameters", True, src.parameters
    yield from slices("", config.slices)
    for name, mod in (config.modules or {}).items():
        yield f"modules.{name}.parameters", False, mod.parameters
        for i, m in enumerate(mod.models or []):
            yield f"modules.{name}.models[{i}].parameters", True, m.parameters
        yield from slices(f"modules.{name}.", mod.slices)


def check_parameter_names(spec: MergeMethodSpec, config: Any) -> None:
    """Fail on parameter names the method does not know, and on shared ones given per model.

    mergekit itself ignores both silently (a typo like ``refrence`` would merge with the default).
    """
    shared = {p.name for p in spec.parameters if p.scope == ParameterScope.SHARED}
    per_input = {p.name for p in spec.parameters if p.scope != ParameterScope.SHARED}
    known = shared | per_input
    for where, is_input, block in _parameter_blocks(config):
        for key in block or {}:
            if key not in known:
                raise InputError(f"merge_method {spec.name}: unknown parameter {key!r} in {where}",
                                 f"valid parameters: {', '.join(sorted(known))}")
            if is_input and key in shared:
                raise InputError(f"merge_method {spec.name}: {key!r} is a shared parameter but is set in {where}, "
                                 "where mergekit would ignore it",
                                 f"move {key} to the top-level (or slice) `parameters:` block")


def register_all() -> tuple[str, ...]:
    """Register the plugin methods with mergekit (idempotent); returns their names."""
    present = {m.spec.name for m in registry.registered_methods()}
    for name in PLUGIN_METHODS:
        if name not in present:
            registry.register(DeltahubMergeMethod(name))
    return PLUGIN_METHODS


register_all()
