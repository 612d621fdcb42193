"""What a merge method is: one typed function, plus what the routes need to know about it.

A method merges the low-rank updates ΔWᵢ = Bᵢ·Aᵢ of ONE module::

    @merge_method("my_method", pretty_name="My method", reference_url="https://arxiv.org/abs/...")
    def my_method(deltas: list[LowRank], weights: list[float], *, scale: float = 1.0) -> LowRank: ...

Its keyword parameters are its declaration (:func:`deltahub.merge.params.params_model`); a ``LowRank``
return type says the result is exactly low-rank (a LoRA adapter holds it), a ``Tensor`` that it needs
``--full``. Everything else a route needs is an attribute of the :class:`MergeMethod`, so no route
names a method: a whole-merge choice resolved once (``prepare``), a kernel that merges many modules at
once (``batched``), the output rank known before merging (``output_rank``, for streaming), whether
mergekit should get it, when one input comes out unchanged.

A method becomes available by name through the registry (:mod:`deltahub.merge.registry`): deltahub's
own, and third parties' through the entry-point group ``deltahub.merge_methods``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, get_type_hints

import torch

from ..errors import InputError
from ..threads import single_thread
from .adapters import check_finite
from .lowrank import LowRank, NonFiniteFactors
from .params import MethodParams, fields, params_model, validate_params

Result = LowRank | torch.Tensor


class InputIndexError(InputError):
    """A method's error about one input, which it knows only by index (one module merged alone): a
    route that knows the inputs' names and the module rewords it with :meth:`relabel`."""

    def relabel(self, labels: Sequence[Sequence[str]], module: str | None) -> InputError:
        return self


def default_labels(n: int) -> list[tuple[str, ...]]:
    """Names for inputs known only by position."""
    return [(f"input {i}",) for i in range(n)]


@dataclass(frozen=True)
class Inputs:
    """What a whole-merge ``prepare`` sees: the names each input answers to (its display name first),
    every module's input ranks (0 where an input lacks the module; empty where not known yet), and,
    when the inputs can be read, a callable yielding every module's name and deltas (one per input).
    ``deltas`` is None where only names are known (a recipe or the compose page being checked)."""

    labels: Sequence[Sequence[str]]
    ranks: Mapping[str, Sequence[int]]
    deltas: Callable[[], Iterable[tuple[str, Sequence[LowRank]]]] | None = None

    @staticmethod
    def of_module(deltas: Sequence[LowRank]) -> Inputs:
        """The inputs of a merge of one module (``merge_module``): named by index."""
        return Inputs(default_labels(len(deltas)), {"": [d.rank for d in deltas]}, lambda: [("", deltas)])


class BatchKernel(Protocol):
    """Merges many modules of one shape (and the same input ranks) at once, on the CPU or a GPU."""

    def accepts(self, weights: Sequence[float], params: Mapping[str, Any]) -> bool:
        """Whether this merge goes through the kernel (else module by module through the method)."""

    def chunk(
        self,
        deltas: Sequence[Sequence[LowRank]],
        weights: Sequence[float],
        params: Mapping[str, Any],
        workspace: Any,
        out_dtype: torch.dtype,
        out_rank: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """B' [M, d, out_rank], A' [M, out_rank, k] and ``ok`` [M] (false: merge that module per module)."""

    def on_device(
        self, deltas: Sequence[LowRank], weights: Sequence[float], params: Mapping[str, Any], device: torch.device
    ) -> LowRank | None:
        """One module merged where its tensors are (a GPU), or None: merge it per module on the CPU."""


@dataclass(frozen=True, eq=False)
class MergeMethod:
    """A merge method and what the routes need to know about it (see the module doc).

    - ``prepare(params, inputs) -> {parameter: input index}``: the parameters that name an input
      (:data:`~deltahub.merge.params.Input`), resolved once for the whole merge; the routes merge every
      module with the index and record it (``deltahub.json``: ``<parameter>_index``). Called with
      ``inputs.deltas`` None to check names only: return what can be decided without reading.
    - ``output_rank(ranks, (d, k))``: the merged adapter's rank of one module from its input ranks,
      where the method fixes it; None collects every module before writing.
    - ``unchanged_alone(params, weight)``: one input with these parameters comes out as it went in,
      so an adapter output is a byte copy.
    - ``checks_finite``: the method itself refuses NaN/Inf factors (else the routes check first).
    - ``mergekit``: offered to mergekit (and the web compose page); False where mergekit has its own
      method of that name.
    """

    name: str
    fn: Callable[..., Result]
    params: type[MethodParams]
    low_rank: bool
    pretty_name: str = ""
    reference_url: str = ""
    prepare: Callable[[dict[str, Any], Inputs], dict[str, int]] | None = None
    batched: BatchKernel | None = None
    output_rank: Callable[[Sequence[int], tuple[int, int]], int] | None = None
    unchanged_alone: Callable[[dict[str, Any], float], bool] | None = None
    checks_finite: bool = False
    mergekit: bool = True

    def __call__(self, deltas: list[LowRank], weights: list[float], **params: Any) -> Result:
        return self.fn(deltas, weights, **params)

    @property
    def label(self) -> str:
        """The short name people read: ``GAM`` of ``GAM (Geometric Alignment Merging)``."""
        return (self.pretty_name or self.name).split(" (")[0]

    @property
    def input_parameters(self) -> list[str]:
        """The parameters whose value names an input of the merge."""
        return [p.name for p in fields(self.params) if p.names_input]

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """``params`` validated against the declaration, defaults filled in (one-line errors)."""
        return validate_params(self.name, self.params, dict(params or {}))

    def choices(self, params: dict[str, Any], inputs: Inputs) -> dict[str, int]:
        """What ``prepare`` resolves (nothing for a method without one)."""
        return self.prepare(params, inputs) if self.prepare is not None else {}

    def merge(self, deltas: Sequence[LowRank], weights: Sequence[float], params: Mapping[str, Any]) -> Result:
        """One module merged with parameters already validated and prepared (every route's step).

        Low-rank methods run on one thread: their matrices are thin (see ``single_thread``)."""
        if not self.checks_finite:
            bad = next((i for i, d in enumerate(deltas) if not check_finite(d)), None)
            if bad is not None:
                raise NonFiniteFactors(bad)
        if not self.low_rank:
            return self.fn(list(deltas), list(weights), **params)
        with single_thread():
            return self.fn(list(deltas), list(weights), **params)


def merge_method(
    name: str,
    *,
    pretty_name: str = "",
    reference_url: str = "",
    prepare: Callable[[dict[str, Any], Inputs], dict[str, int]] | None = None,
    batched: BatchKernel | None = None,
    output_rank: Callable[[Sequence[int], tuple[int, int]], int] | None = None,
    unchanged_alone: Callable[[dict[str, Any], float], bool] | None = None,
    checks_finite: bool = False,
    mergekit: bool = True,
) -> Callable[[Callable[..., Result]], MergeMethod]:
    """Turn a typed function ``fn(deltas, weights, *, parameters...)`` into a :class:`MergeMethod`
    (a decorator). It is not registered: deltahub lists its own, a third party names it in the
    ``deltahub.merge_methods`` entry-point group (or calls :func:`deltahub.merge.register`)."""

    def wrap(fn: Callable[..., Result]) -> MergeMethod:
        returns = get_type_hints(fn).get("return")
        return MergeMethod(
            name=name,
            fn=fn,
            params=params_model(fn, name),
            low_rank=returns is LowRank,
            pretty_name=pretty_name,
            reference_url=reference_url,
            prepare=prepare,
            batched=batched,
            output_rank=output_rank,
            unchanged_alone=unchanged_alone,
            checks_finite=checks_finite,
            mergekit=mergekit,
        )

    return wrap
