"""``merge_adapters``: read N LoRA adapters, merge module by module, write an adapter or a model.

Peak memory is one module's factors from each adapter plus the output, never N full models.
The output folder appears only when complete (written to a temporary sibling, then renamed); a
killed merge's temporary sibling is removed by the next merge to the same output.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..atomic import atomic_dir, check_output_dir, held, remove_stale_partials
from ..errors import InputError
from .adapters import CONFIG_NAME, WEIGHTS_NAME, LoraAdapter, load_adapter, nonfinite_error
from .base_model import check_base
from .lowrank import LowRank, NonFiniteFactors
from .params import fields, option_args
from .protocol import InputIndexError, Inputs, MergeMethod
from .registry import default_method, get_method
from .streaming import module_deltas, resolve_device, write_merged_adapter
from .writers import write_full_model


@dataclass
class MergeInput:
    """One delta to merge: where it came from (for the card), its local folder, and the name a
    recipe gives it (a parameter naming an input may use any of these)."""

    spec: str
    path: Path
    repo: str | None = None
    revision: str | None = None
    name: str | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """The names this input answers to; the display name first."""
        names = [
            self.name,
            self.spec,
            self.repo,
            f"{self.repo}@{self.revision}" if self.repo else None,
            str(self.path),
            self.path.name,
        ]
        return tuple(dict.fromkeys(n for n in names if n))


@dataclass
class MergePlan:
    """What a merge will do, checked before any output is written."""

    inputs: list[MergeInput]
    adapters: list[LoraAdapter]
    method: MergeMethod
    weights: list[float]
    params: dict[str, Any]  # validated, as requested (a parameter naming an input may be a name or auto)
    modules: list[str]
    missing: dict[str, list[str]] = field(default_factory=dict)  # module -> specs of adapters that lack it
    choices: dict[str, int] = field(default_factory=dict)  # the method's prepare: parameter -> input index

    @property
    def labels(self) -> list[tuple[str, ...]]:
        return [i.labels for i in self.inputs]

    def merge_params(self) -> dict[str, Any]:
        """The parameters every module is merged with (a parameter naming an input as its index)."""
        return {**self.params, **self.choices}


class MergeResult(type(Path())):
    """The output folder of a merge (a ``Path``), carrying what the merge decided: ``method``, the
    ``parameters`` every module was merged with, the ``choices`` the method's ``prepare`` made
    (parameter -> input index), the ``inputs`` (as given) and the ``device`` it ran on."""

    method: str
    parameters: dict[str, Any]
    choices: dict[str, int]
    inputs: list[str]
    device: str

    @classmethod
    def of(cls, path: Path, plan: MergePlan, device: str) -> MergeResult:
        result = cls(path)
        result.method, result.parameters, result.choices = plan.method.name, plan.merge_params(), dict(plan.choices)
        result.inputs, result.device = [i.spec for i in plan.inputs], device
        return result


def resolve_input(spec: str | Path) -> MergeInput:
    """A local adapter folder, or ``NS/NAME[@REV]`` pulled from the registry (:mod:`deltahub.share.source`)."""
    from ..share.source import resolve_source

    s = resolve_source(spec, what="adapter", fix="pass a local PEFT adapter folder or a Hub repo id NS/NAME[@REVISION]")
    return MergeInput(spec=s.spec, path=s.path, repo=s.repo, revision=s.revision)


def resolve_base(base: str | Path) -> Path:
    """The base model's local folder: a folder, or ``NS/NAME[@REV]`` pulled from the registry."""
    from ..share.source import resolve_source

    return resolve_source(base, what="base model", fix="pass the base model's folder or its repo id NS/NAME[@REV]").path


def plan_merge(
    inputs: list[str | Path | MergeInput],
    method: str | MergeMethod | None = None,
    weights: list[float] | None = None,
    params: dict[str, Any] | None = None,
    allow_base_mismatch: bool = False,
) -> MergePlan:
    """Check the inputs and parameters, decide which modules to merge and make the method's
    whole-merge choices (an index or a name costs nothing; ``auto`` may read every module's factors)."""
    if not inputs:
        raise InputError("no adapters to merge", "pass one or more adapter folders or repo ids")
    spec = get_method(method or default_method())
    params = spec.resolve(params)
    resolved = [i if isinstance(i, MergeInput) else resolve_input(i) for i in inputs]
    adapters = [load_adapter(i.path) for i in resolved]
    if weights is not None and len(weights) != len(adapters):
        raise InputError(f"{len(weights)} weights for {len(adapters)} adapters", "give one weight per adapter")
    weights = [1.0] * len(adapters) if weights is None else [float(w) for w in weights]
    bases = {a.base_model for a in adapters}
    if len(bases) > 1 and not allow_base_mismatch:
        listing = ", ".join(f"{i.spec} -> {a.base_model}" for i, a in zip(resolved, adapters, strict=True))
        raise InputError(
            f"adapters were trained on different base models ({listing})",
            "merge deltas of one student, or pass --allow-base-mismatch if these names are the same model",
        )
    all_modules: list[str] = []
    for a in adapters:
        all_modules.extend(m for m in a.module_names if m not in all_modules)
    missing = {m: [i.spec for i, a in zip(resolved, adapters, strict=True) if m not in a.keys] for m in all_modules}
    missing = {m: specs for m, specs in missing.items() if specs}
    plan = MergePlan(resolved, adapters, spec, weights, params, all_modules, missing)
    if spec.prepare is not None:
        ranks = {m: [a.rank(m) if m in a.keys else 0 for a in adapters] for m in all_modules}
        deltas = lambda: ((m, module_deltas(plan, m)) for m in plan.modules)  # noqa: E731 - read only if needed
        plan.choices = spec.choices(params, Inputs(plan.labels, ranks, deltas))
    return plan


def _merge_one(plan: MergePlan, module: str, params: dict[str, Any]) -> LowRank | torch.Tensor:
    """One module merged by the method, its errors naming the module and the input."""
    try:
        return plan.method.merge(module_deltas(plan, module), plan.weights, params)
    except InputIndexError as exc:
        raise exc.relabel(plan.labels, module) from None
    except NonFiniteFactors as exc:
        raise nonfinite_error(plan.adapters[exc.index].path, module) from None


def merge_adapters(
    inputs: list[str | Path | MergeInput],
    out: str | Path,
    method: str | MergeMethod | None = None,
    weights: list[float] | None = None,
    params: dict[str, Any] | None = None,
    base: str | Path | None = None,
    full: bool = False,
    overwrite: bool = False,
    allow_base_mismatch: bool = False,
    dtype: torch.dtype | None = None,
    progress: bool = True,
    command: str | None = None,
    device: str | torch.device | None = "auto",
) -> MergeResult:
    """Merge LoRA adapters with ``method`` (default: deltahub's first, see :mod:`deltahub.merge.methods`)
    and write a PEFT adapter (default) or, with ``base`` and ``full``, a full model. Returns the output
    folder with what the merge decided (:class:`MergeResult`).

    ``device`` (cpu, cuda, or auto: the GPU when one is visible) is where a method's batched kernel
    runs; module-by-module merges and the full-model sums run on the CPU."""
    out = check_output_dir(out, overwrite)
    device = resolve_device(device)
    spec = get_method(method or default_method())
    if full and base is None:
        raise InputError("--full needs the base model", "pass --base MODEL_FOLDER")
    if not full and not spec.low_rank:
        raise InputError(
            f"{spec.name} produces a full-rank update that a LoRA adapter cannot hold exactly",
            "pass --base MODEL --full to write a merged full model",
        )
    plan = plan_merge(inputs, spec, weights, params, allow_base_mismatch)
    base_path = None if base is None else Path(base) if Path(base).is_dir() else resolve_base(base)
    if full:
        check_base(base, base_path, plan.adapters[0].base_model, allow_base_mismatch)
    ran_on = device.type if spec.batched is not None and not full else "cpu"
    remove_stale_partials(out)  # what a killed merge to this output left
    # the temporary folder is held until after the rename, so no concurrent cleanup takes a live merge
    with contextlib.ExitStack() as stack, atomic_dir(out, overwrite=overwrite) as tmp:
        stack.enter_context(held(tmp))
        params = plan.merge_params()
        alone = spec.unchanged_alone
        if len(plan.adapters) == 1 and not full and alone is not None and alone(params, plan.weights[0]):
            # One adapter in, the same adapter out (bit for bit).
            shutil.copy2(plan.adapters[0].path / WEIGHTS_NAME, tmp / WEIGHTS_NAME)
            shutil.copy2(plan.adapters[0].path / CONFIG_NAME, tmp / CONFIG_NAME)
        elif full:
            _write_full(plan, tmp, base_path, params, progress)
        else:
            write_merged_adapter(
                plan, tmp, dtype or _input_dtype(plan), device, progress, lambda m: _merge_one(plan, m, params)
            )
        _write_provenance(tmp, plan, base, full, command, title=out.name, device=ran_on)
    return MergeResult.of(out, plan, ran_on)


def _write_full(plan: MergePlan, tmp: Path, base_path: Path, params: dict[str, Any], progress: bool) -> None:
    """The base model plus every module's merged update, in ``tmp``."""
    desc = f"merging ({plan.method.name})"
    with tqdm(total=len(plan.modules), desc=desc, unit="module", disable=not progress) as bar:
        merged = lambda m: _dense(_merge_one(plan, m, params))  # noqa: E731
        missing = write_full_model(tmp, base_path, merged, plan.modules, on_module=bar.update)
    if missing:
        raise InputError(
            f"base model {base_path} has no weight for module {missing[0]}", "merge adapters trained on this base model"
        )


def _dense(result: LowRank | torch.Tensor) -> torch.Tensor:
    return result.dense(torch.float32) if isinstance(result, LowRank) else result.to(torch.float32)


def _input_dtype(plan: MergePlan) -> torch.dtype:
    """float32 unless every input was stored in a narrower float type."""
    from safetensors import safe_open

    dtypes = set()
    for a in plan.adapters:
        with safe_open(a.path / WEIGHTS_NAME, framework="pt") as f:
            dtypes.add(f.get_slice(next(iter(f.keys()))).get_dtype())
    if len(dtypes) != 1:
        return torch.float32
    return {"BF16": torch.bfloat16, "F16": torch.float16}.get(dtypes.pop(), torch.float32)


def reproduce_command(plan: MergePlan, base: str | Path | None, full: bool) -> str:
    """The ``deltahub merge`` command line that reproduces this merge."""
    parts = ["deltahub", "merge"]
    for i in plan.inputs:
        parts.append(f"{i.repo}@{i.revision}" if i.repo and i.revision else i.spec)
    parts += ["--method", plan.method.name]
    if any(w != 1.0 for w in plan.weights):
        parts += ["--weights", ",".join(f"{w:g}" for w in plan.weights)]
    for p in fields(plan.method.params):
        value = plan.merge_params()[p.name]
        if value != p.default:
            parts += option_args(p.name, value)
    if base is not None:
        parts += ["--base", str(base)]
    if full:
        parts.append("--full")
    parts += ["--out", "OUT"]
    return shlex.join(parts)


def _write_provenance(
    out: Path, plan: MergePlan, base, full: bool, command: str | None, title: str, device: str
) -> None:
    """``deltahub.json`` (the card's machine-readable block) and the README card, titled ``title``
    (the output folder's name: ``out`` is still the temporary folder here)."""
    from ..atomic import atomic_write_text
    from ..share.schema import SCHEMA_VERSION, DeltaBlock, MergeDelta, MergeInfo, ModelRef

    student = plan.adapters[0].base_model
    merge = MergeInfo(
        method=plan.method.name,
        pretty_name=plan.method.pretty_name,
        reference_url=plan.method.reference_url,
        # as requested, plus the input each input-naming parameter resolved to (auto and names: an index)
        parameters={**plan.params, **{f"{name}_index": index for name, index in plan.choices.items()}},
        weights=plan.weights,
        output="full-model" if full else "adapter",
        deltas=[
            MergeDelta(repo=i.repo, revision=i.revision, path=None if i.repo else str(i.path), spec=i.spec)
            for i in plan.inputs
        ],
        missing_modules=plan.missing,
        device=device,
        command=reproduce_command(plan, base, full),
    )
    student_ref = ModelRef(model=str(base) if base is not None else student, revision=None)
    block = DeltaBlock(schema_version=SCHEMA_VERSION, kind="merged", student=student_ref, merge=merge)
    # the keys given here, None values included
    atomic_write_text(out / "deltahub.json", block.model_dump_json(indent=2, exclude_unset=True) + "\n")
    from ..share.cards import write_card

    write_card(out, kind="merged", name=title)
