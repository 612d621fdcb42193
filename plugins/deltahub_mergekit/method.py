"""deltahub's merge methods registered as mergekit merge methods (the math is ``deltahub.merge``).

Every method of ``deltahub.merge.METHODS`` that is offered to mergekit (``MergeMethod.mergekit``:
deltahub's own GAM, KnOTS, TSV-M, Core Space, Iso-C/CTS, and any a plugin package declares in the
``deltahub.merge_methods`` entry points) is registered under its name, with no per-method code here.

mergekit hands a method one output weight at a time, as dense tensors. For ``BASE+ADAPTER``
inputs the method ignores the dense copy mergekit materialised and reads the adapter's LoRA
factors itself (the input's ``ModelReference`` carries the adapter path), so the merge runs in
factor space. Plain model inputs are dense: their delta to the base is turned back into factors
with a randomized range finder (never a full SVD).

mergekit's contract is that every registered method merges any inputs of matching shapes. A
dense delta that is not low-rank (a full fine-tune, random tensors, or a LoRA merged into bf16
weights, whose rounding noise is full rank) is therefore truncated, at ``rank`` or at half the
full rank, with a warning naming the relative residual and the fix, never refused.

The parameters are each method's declaration (its signature: one source for the CLI, recipes and
this plugin) plus the per-input ``weight`` and the dense-input settings below. A method's
whole-merge choices (``MergeMethod.prepare``, e.g. GAM's reference) are made once per merge, as
``deltahub merge`` makes them: a choice that reads the inputs (``auto``) sees every adapted weight of
every input before the first tensor is merged (under ``mergekit-yaml`` it reads the other weights
through mergekit's loaders; through the in-memory API it uses the tensors of that call). A method
with a batched kernel runs it where mergekit's tensors are (``--cuda``); the others merge on the CPU.

Rules for the tensors a method cannot merge as a low-rank update:
- every input leaves the tensor equal to the base -> the base value (norms, embeddings, lm_head
  of pure LoRA deltas; a ``BASE+ADAPTER`` input never changes a tensor its adapter has no
  factors for, even when mergekit's bf16 LoRA cache rounded it);
- a tensor that is not 2-D (norms, biases) and changes -> base + scale·Σwᵢ·Δᵢ/Σwᵢ (weighted mean).
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import torch
from mergekit.common import ModelReference
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
from pydantic import Field

from deltahub.errors import InputError
from deltahub.merge import MergeMethod, get_method, merge_module
from deltahub.merge.adapters import LoraAdapter, load_adapter, nonfinite_error
from deltahub.merge.lowrank import COMPUTE_DTYPE, LowRank, NonFiniteFactors, low_rank_from_dense
from deltahub.merge.params import MethodParams, fields
from deltahub.merge.protocol import InputIndexError, Inputs
from deltahub.merge.registry import mergekit_methods

PLUGIN_METHODS = mergekit_methods()  # every method offered to mergekit, plugins' included
LOG = logging.getLogger("deltahub_mergekit")


class DenseInputParams(MethodParams):
    """How the plugin turns a dense (non-adapter) input's delta into factors."""

    rank: Annotated[
        int,
        Field(
            ge=0,
            description="rank of dense (non-adapter) input deltas; 0 = the smallest rank "
            "(doubling from the adapters' rank, or 8) meeting max_residual",
        ),
    ] = 0
    max_residual: Annotated[
        float,
        Field(
            gt=0,
            description="relative residual ‖Δ − BA‖/‖Δ‖ a dense delta should meet; "
            "one that does not is truncated with a warning",
        ),
    ] = 5e-3


_RANK_TRUNCATION = 1e-5  # singular values below this fraction of the largest are rounding noise
_BF16_FIX = (
    "pass --lora-merge-dtype float32 and `dtype: float32`, or use BASE+ADAPTER inputs so the method reads "
    "the LoRA factors (or set rank / max_residual if the delta is a full fine-tune)"
)


def parameter_specs(method: MergeMethod) -> tuple[ParameterSpec, ...]:
    """mergekit's ParameterSpecs, derived from the deltahub declarations (plus ``weight``)."""
    weight = ParameterSpec(
        "weight", float, ParameterScope.NON_BASE, default=1.0, description="per-input weight (see the method)"
    )
    shared = [
        ParameterSpec(p.name, p.annotation, ParameterScope.SHARED, default=p.default, description=p.help)
        for model in (method.params, DenseInputParams)
        for p in fields(model)
    ]
    return (weight, *shared)


@functools.lru_cache(maxsize=64)
def _adapter(path: str, revision: str | None) -> LoraAdapter:
    """The adapter folder behind a ``BASE+ADAPTER`` reference (a Hub id is fetched like mergekit does)."""
    folder = Path(path)
    if not folder.is_dir():
        from deltahub.endpoint import api

        folder = Path(api().snapshot_download(path, revision=revision))
    return load_adapter(folder)


def _lora(input_id: Hashable):
    return getattr(input_id, "lora", None)


def _labels(input_id: Hashable) -> tuple[str, ...]:
    """The names a mergekit input answers to (for a parameter naming an input): the reference as
    written, and the adapter's (or, for a plain model, the model's) path and folder name."""
    own = (_lora(input_id) or input_id.model) if isinstance(input_id, ModelReference) else None
    names = [str(input_id)] + ([own.path, Path(own.path).name] if own is not None else [])
    return tuple(dict.fromkeys(names))


def _zero(shape: tuple[int, int]) -> LowRank:
    return LowRank(torch.zeros(shape[0], 0), torch.zeros(0, shape[1]))


def _dense_to_factors(delta: torch.Tensor, rank: int, start: int, max_residual: float) -> tuple[LowRank, float]:
    """Factors of a dense delta by a randomized range finder, and their relative residual: at
    ``rank``, or (rank 0) doubling from ``start`` until the residual is at most ``max_residual``,
    up to half the full rank. Singular values below ``_RANK_TRUNCATION`` of the largest go."""
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
    for r in ranks:
        factors, residual = low_rank_from_dense(delta, r)
        if residual <= max_residual:
            break
    s = factors.B.norm(dim=0)  # column norms of B are the singular values
    keep = s > s.max() * _RANK_TRUNCATION if s.numel() and s.max() > 0 else s > 0
    return LowRank(factors.B[:, keep], factors.A[keep]), residual


class DeltahubMergeMethod(GroupMergeMethod):
    """One ``deltahub.merge`` method behind mergekit's ``GroupMergeMethod`` interface."""

    def __init__(self, method: MergeMethod):
        self.method = method
        self.method_params = [p.name for p in fields(method.params)]
        self.spec = MergeMethodSpec(
            name=method.name,
            parameters=parameter_specs(method),
            contract=InputContract(base=BasePolicy.REQUIRED, min_non_base=1),
            pretty_name=method.pretty_name,
            reference_url=method.reference_url,
            optional_tensor_policy=OptionalTensorPolicy.ERROR,
            # with mergekit's --cuda the tensors arrive on the GPU; a batched kernel computes there
            uses_accelerator=True,
        )
        self._choices: dict[tuple, dict[str, int]] = {}  # the method's whole-merge choices, per merge
        self._warned: set[Hashable] = set()
        self._lock = threading.Lock()

    # -- the method's whole-merge choices (prepare), made once per merge -----------------------
    def _execute(self, groups, parameters, options, *, input_dtypes, out_dtype=None):
        if self.method.prepare is not None:
            parameters = [dict(p) for p in parameters]
            in_call: dict[tuple, dict[str, int]] = {}  # in-memory inputs: their ids name nothing beyond this call
            for group, p in zip(groups, parameters, strict=True):
                if group.base is not None and group.non_base:
                    p.update(self._prepared(group, p, groups, parameters, in_call))
        return super()._execute(groups, parameters, options, input_dtypes=input_dtypes, out_dtype=out_dtype)

    def _prepared(
        self, group: TensorGroup, p: dict, groups: Sequence[TensorGroup], parameters, in_call: dict
    ) -> dict[str, int]:
        """The method's choices for the merge this group belongs to, made once per merge."""
        labels = [_labels(e.id) for e in group.non_base]
        models = all(isinstance(e.id, ModelReference) for e in group.entries)  # mergekit-yaml: files
        chosen = self._choices if models else in_call
        params = self.method.resolve({k: p[k] for k in self.method_params})
        key = (*_key_ids(group), tuple(sorted(params.items(), key=str)), p["rank"], p["max_residual"])
        with self._lock:
            if key in chosen:
                return chosen[key]
            if models:
                scan = lambda: self._scan_models(group, p)  # noqa: E731 - every weight of the models
            else:
                same = [(g, q) for g, q in zip(groups, parameters, strict=True) if _key_ids(g) == _key_ids(group)]
                scan = lambda: self._scan_groups(same)  # noqa: E731 - this call's tensors
            # ranks are checked per tensor (merge_module); a choice that reads the inputs scans them
            chosen[key] = choice = self.method.choices(params, Inputs(labels, {}, scan))
        for name, index in choice.items():  # say what a name or auto resolved to (once per merge)
            if params[name] != index:
                LOG.warning(
                    "deltahub %s: %s %s -> input %d (%s)", self.method.name, name, params[name], index, labels[index][0]
                )
        return choice

    def _scan_groups(self, groups) -> Iterator[tuple[str, list[LowRank]]]:
        for group, p in groups:
            group = _on_cpu(group)
            if group.base.tensor.ndim == 2:
                deltas = self._deltas(
                    group.metadata.name or "?", group.base.tensor, [(e.id, e.tensor) for e in group.non_base], p
                )
                if any(d is not None for d in deltas):
                    yield (
                        group.metadata.name,
                        [_zero(tuple(group.base.tensor.shape)) if d is None else d for d in deltas],
                    )

    def _scan_models(self, group: TensorGroup, p: dict) -> Iterator[tuple[str, list[LowRank]]]:
        """Every 2-D weight of the merge, read through mergekit's loaders (the whole model, like
        ``deltahub merge``; only BASE+ADAPTER inputs: the adapters' modules, no dense read)."""
        from mergekit.io.tasks import LoaderCache

        entries = group.non_base
        if all(_lora(e.id) is not None for e in entries):
            adapters = [_adapter(_lora(e.id).path, _lora(e.id).revision) for e in entries]
            modules = list(dict.fromkeys(m for a in adapters for m in a.module_names))
            for module in modules:
                read = {i: a.modules[module] for i, a in enumerate(adapters) if module in a.keys}
                shape = next(iter(read.values())).shape
                yield module, [read.get(i) or _zero(shape) for i in range(len(adapters))]
            return
        cache = LoaderCache()
        base_loader = cache.get(group.base.id)
        loaders = [None if _lora(e.id) is not None else cache.get(e.id) for e in entries]
        for name in base_loader.index.tensor_paths:
            base = base_loader.get_tensor(name)
            if base.ndim != 2 or not base.is_floating_point():
                continue
            tensors = [
                (e.id, None if ld is None else ld.get_tensor(name, raise_on_missing=False))
                for e, ld in zip(entries, loaders, strict=True)
            ]
            if any(ld is not None and t is None for (_, t), ld in zip(tensors, loaders, strict=True)):
                continue
            deltas = self._deltas(name, base, tensors, p)
            if any(d is not None for d in deltas):
                yield name, [_zero(tuple(base.shape)) if d is None else d for d in deltas]

    # -- each input's update of one weight -----------------------------------------------------
    def _deltas(
        self, name: str, base: torch.Tensor, inputs: list[tuple[Hashable, torch.Tensor | None]], p: dict
    ) -> list[LowRank | None]:
        """LowRank per input (None where it leaves the weight as the base): the adapter's factors for
        BASE+ADAPTER inputs, else the dense difference to the base, factorised."""
        module = name[: -len(".weight")] if name.endswith(".weight") else name
        shape = tuple(base.shape)
        deltas: list[LowRank | None] = []
        dense: dict[int, torch.Tensor] = {}
        for i, (input_id, tensor) in enumerate(inputs):
            lora = _lora(input_id)
            if lora is None:
                deltas.append(None)
                dense[i] = tensor
                continue
            adapter = _adapter(lora.path, lora.revision)
            if module not in adapter.keys:
                deltas.append(None)  # the adapter does not touch this weight
                continue
            delta = adapter.module(module)
            if tuple(delta.shape) != shape:
                raise InputError(
                    f"{name}: adapter {lora.path} has shape {delta.shape}, base {shape}",
                    "merge adapters trained on this base model",
                )
            deltas.append(delta)
        start = max((d.rank for d in deltas if d is not None), default=8)
        for i, tensor in dense.items():
            diff = tensor.to(COMPUTE_DTYPE) - base.to(COMPUTE_DTYPE)
            if torch.any(diff):
                deltas[i], residual = _dense_to_factors(diff, p["rank"], start, p["max_residual"])
                if residual > p["max_residual"]:
                    self._warn_truncated(name, inputs[i][0], tensor.dtype, deltas[i].rank, residual, p["max_residual"])
        return deltas

    def _warn_truncated(self, name, source, dtype, rank, residual, max_residual) -> None:
        """An input's delta is not low-rank, so it was truncated (mergekit's contract: merge). Once per
        model input (mergekit-yaml would say it for every weight); in-memory ids name nothing
        beyond one call, so those warn every time."""
        if isinstance(source, ModelReference):
            with self._lock:
                if source in self._warned:
                    return
                self._warned.add(source)
        hint = (
            " (it arrives in bf16: a LoRA merged into bf16 weights is full-rank rounding noise)"
            if dtype in (torch.bfloat16, torch.float16)
            else ""
        )
        warnings.warn(
            f"deltahub {self.method}: the delta of {source} to the base is not low-rank{hint}; {name} was "
            f"truncated to rank {rank} (relative residual {residual:.2g} > max_residual {max_residual:g}); "
            f"other weights of this input may be truncated too. Fix: {_BF16_FIX}",
            stacklevel=2,
        )

    # -- the merge of one output tensor -------------------------------------------------------
    def merge_group(self, group: TensorGroup, /, **p: Any) -> torch.Tensor:
        """The merged tensor, on the inputs' device. With mergekit's ``--cuda`` (or GPU tensors
        handed over in memory) a method with a batched kernel runs where the tensors are (e.g.
        :func:`deltahub.merge.batched.gam_on_device`: the adapter factors are copied there in their
        stored dtype); other methods, and any module the kernel declines, are merged on the CPU and
        the result comes back to the device."""
        device = group.base.tensor.device
        kernel = self.method.batched
        if device.type != "cpu" and kernel is None:
            return self.merge_group(_on_cpu(group), **p).to(device)
        base = group.base.tensor
        entries = group.non_base
        weights = [float(w) for w in p["weight"].values_for(entries)]
        name = group.metadata.name or "?"
        params = {k: p[k] for k in self.method_params}
        if base.ndim != 2:
            return self._mean_rule(base, entries, weights, params.get("scale", 1.0))
        deltas = self._deltas(name, base, [(e.id, e.tensor) for e in entries], p)
        if all(d is None for d in deltas):
            return base.clone()
        deltas = [_zero(tuple(base.shape)) if d is None else d for d in deltas]
        merged = None
        if device.type != "cpu":
            resolved = self.method.resolve(params)
            if kernel.accepts(weights, resolved):
                merged = kernel.on_device(deltas, weights, resolved, device)
        if merged is None:
            merged = self._merge_module([d.on("cpu") for d in deltas], weights, params, entries, name)
        # base + ΔW in float32 (float64 only for float64 inputs): the result is stored in base.dtype,
        # and a float64 B·A of every weight cost ~2.5x the float32 one
        work = torch.promote_types(base.dtype, torch.float32)
        out = base.to(work, copy=True)
        if isinstance(merged, LowRank):
            out.addmm_(merged.B.to(device, work), merged.A.to(device, work), alpha=merged.scale)
            return out.to(base.dtype)
        return out.add_(merged.to(device, work)).to(base.dtype)

    def _merge_module(self, deltas: list[LowRank], weights: list[float], params: dict, entries, name: str):
        """:func:`merge_module` of one tensor, its errors naming the tensor and the input."""
        try:
            return merge_module(self.method, deltas, weights, **params)
        except InputIndexError as exc:
            raise exc.relabel([_labels(e.id) for e in entries], name) from None
        except NonFiniteFactors as exc:
            raise nonfinite_error(_labels(entries[exc.index].id)[0], name) from None

    @staticmethod
    def _mean_rule(base: torch.Tensor, entries, weights: list[float], scale: float) -> torch.Tensor:
        # a LoRA adapter changes only its linear layers (load_adapter refuses modules_to_save), so
        # for BASE+ADAPTER inputs these tensors are the base's, whatever dtype mergekit merged in
        deltas = [
            torch.zeros_like(base, dtype=COMPUTE_DTYPE)
            if _lora(e.id) is not None
            else e.tensor.to(COMPUTE_DTYPE) - base.to(COMPUTE_DTYPE)
            for e in entries
        ]
        if not any(torch.any(d) for d in deltas):
            return base.clone()
        total = sum(weights)
        if total == 0:
            raise InputError("weights sum to zero", "give the inputs weights with a non-zero sum")
        mean = sum(w * d for w, d in zip(weights, deltas, strict=True)) / total
        return (base.to(COMPUTE_DTYPE) + scale * mean).to(base.dtype)


def _on_cpu(group: TensorGroup) -> TensorGroup:
    if all(e.tensor.device.type == "cpu" for e in group.entries):
        return group
    return TensorGroup(tuple(TensorEntry(e.id, e.tensor.cpu(), e.is_base) for e in group.entries), group.metadata)


def _key_ids(group: TensorGroup) -> tuple:
    return (group.base.id if group.base else None, tuple(e.id for e in group.non_base))


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
                raise InputError(
                    f"merge_method {spec.name}: unknown parameter {key!r} in {where}",
                    f"valid parameters: {', '.join(sorted(known))}",
                )
            if is_input and key in shared:
                raise InputError(
                    f"merge_method {spec.name}: {key!r} is a shared parameter but is set in {where}, "
                    "where mergekit would ignore it",
                    f"move {key} to the top-level (or slice) `parameters:` block",
                )


def register_all() -> tuple[str, ...]:
    """Register the plugin methods with mergekit (idempotent); returns their names. A name mergekit
    already has for a method of its own is left to mergekit, with a warning."""
    present = {m.spec.name: m for m in registry.registered_methods()}
    for name in PLUGIN_METHODS:
        if name not in present:
            registry.register(DeltahubMergeMethod(get_method(name)))
        elif not isinstance(present[name], DeltahubMergeMethod):
            warnings.warn(f"deltahub merge method {name}: mergekit has its own method of that name", stacklevel=2)
    return PLUGIN_METHODS


def check_planned_configs() -> None:
    """Check a config's parameter names when mergekit plans a merge with one of these methods (idempotent).

    mergekit hands a method its parameters tensor by tensor; the whole config, where a typo sits, is
    the planner's. So the planner's constructor is wrapped (as ``endpoint`` wraps
    ``referenced_models``) rather than the config read from a caller's stack frame.
    """
    from mergekit.plan import MergePlanner

    original = MergePlanner.__init__
    if getattr(original, "deltahub_checks", False):
        return

    @functools.wraps(original)
    def __init__(self, config, *args, **kwargs):
        original(self, config, *args, **kwargs)
        if isinstance(self._method, DeltahubMergeMethod):
            check_parameter_names(self._method.spec, config)

    __init__.deltahub_checks = True
    MergePlanner.__init__ = __init__


register_all()
check_planned_configs()
