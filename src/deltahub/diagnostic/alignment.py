"""How well a delta's weight update points along an oracle's: Frobenius cosines in factor space.

The theory of delta learning (arXiv 2507.06187, logistic regression) says a student gains from a
weak-weaker pair when the two teachers' difference is aligned with the direction from the student
toward the target. For LoRA deltas of one student, the delta's update ΔW = s·B·A is what the pair
did to the student, and an *oracle* adapter on the same student (e.g. SFT on correct answers)
is the direction from the student toward the target: both are differences from the same weights,
so nothing has to be subtracted. The diagnostic is their cosine, per module and over the whole
adapter (overall = Σ⟨ΔW, O⟩_F / (‖ΔW‖_F‖O‖_F), the norms over every module).

Everything is computed from the factors, never forming a d×k matrix:
⟨s₁B₁A₁, s₂B₂A₂⟩_F = s₁s₂·tr((B₁ᵀB₂)(A₂A₁ᵀ)), two r₁×r₂ Grams in float64.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError
from ..merge.adapters import LoraAdapter, check_finite, load_adapter, nonfinite_error
from ..merge.core import MergeInput, resolve_input
from ..merge.lowrank import COMPUTE_DTYPE, LowRank
from ..threads import single_thread

BOTH, DELTA_ONLY, ORACLE_ONLY = "both", "delta only", "oracle only"


def _grams(x: LowRank, y: LowRank) -> tuple[torch.Tensor, torch.Tensor]:
    """(BₓᵀB_y, AₓA_yᵀ) in float64: the r_x×r_y Grams whose elementwise product sums to tr((BₓᵀB_y)(A_yAₓᵀ))."""
    bx, by = x.B.to(COMPUTE_DTYPE), y.B.to(COMPUTE_DTYPE)
    ax, ay = x.A.to(COMPUTE_DTYPE), y.A.to(COMPUTE_DTYPE)
    return bx.T @ by, ax @ ay.T


def inner_product(x: LowRank, y: LowRank) -> float:
    """⟨ΔWₓ, ΔW_y⟩_F = sₓs_y·tr((BₓᵀB_y)(A_yAₓᵀ)), without forming either d×k update."""
    if x.shape != y.shape:
        raise InputError(
            f"updates of shape {x.shape} and {y.shape} have no inner product",
            "compare adapters of the same base model",
        )
    gb, ga = _grams(x, y)
    return float(x.scale * y.scale * (gb * ga).sum())


def frobenius_norm(x: LowRank) -> float:
    """‖s·B·A‖_F from the factors: |s|·√tr((BᵀB)(AAᵀ)) (clamped at 0 against rounding of a zero update)."""
    gb, ga = _grams(x, x)
    return abs(x.scale) * math.sqrt(max(float((gb * ga).sum()), 0.0))


def cosine(x: LowRank, y: LowRank) -> float | None:
    """The Frobenius cosine of two updates; None when either is zero (the angle is undefined)."""
    nx, ny = frobenius_norm(x), frobenius_norm(y)
    if nx == 0 or ny == 0:
        return None
    return _clip(inner_product(x, y) / (nx * ny))


def _clip(c: float) -> float:
    """A cosine within [-1, 1]: rounding can put parallel updates a few ulps outside."""
    return max(-1.0, min(1.0, c))


@dataclass(frozen=True)
class ModuleAlignment:
    """One module: the inner product of the delta's and the oracle's updates and their norms.

    ``side`` says which adapters train the module: a module only one of them trains adds nothing to
    the inner product and its update still counts in that side's norm (a delta that spends its
    update where the oracle does not move is less aligned, not ignored)."""

    module: str
    inner: float
    delta_norm: float
    oracle_norm: float
    side: str = BOTH

    @property
    def cosine(self) -> float | None:
        """None where the module is absent on one side or either update is zero."""
        if self.side != BOTH or self.delta_norm == 0 or self.oracle_norm == 0:
            return None
        return _clip(self.inner / (self.delta_norm * self.oracle_norm))

    def to_dict(self) -> dict:
        return {
            "module": self.module,
            "side": self.side,
            "cosine": self.cosine,
            "inner": self.inner,
            "delta_norm": self.delta_norm,
            "oracle_norm": self.oracle_norm,
        }


@dataclass(frozen=True)
class Diagnosis:
    """A delta against the oracle: per-module alignments and the overall cosine."""

    delta: str
    oracle: str
    modules: tuple[ModuleAlignment, ...]

    @property
    def inner(self) -> float:
        return math.fsum(m.inner for m in self.modules)

    @property
    def delta_norm(self) -> float:
        return math.sqrt(math.fsum(m.delta_norm**2 for m in self.modules))

    @property
    def oracle_norm(self) -> float:
        return math.sqrt(math.fsum(m.oracle_norm**2 for m in self.modules))

    @property
    def cosine(self) -> float | None:
        """Σ inner / (‖delta‖·‖oracle‖) over all modules; None for an all-zero delta."""
        if self.delta_norm == 0 or self.oracle_norm == 0:
            return None
        return _clip(self.inner / (self.delta_norm * self.oracle_norm))

    @property
    def projection(self) -> float:
        """The delta's signed length along the oracle direction, ⟨ΔW, O⟩/‖O‖: the cosine times the
        delta's norm, since gains also grow with the delta's magnitude."""
        return self.inner / self.oracle_norm if self.oracle_norm else 0.0

    @property
    def delta_only(self) -> list[str]:
        return [m.module for m in self.modules if m.side == DELTA_ONLY]

    @property
    def oracle_only(self) -> list[str]:
        return [m.module for m in self.modules if m.side == ORACLE_ONLY]

    def to_dict(self) -> dict:
        return {
            "delta": self.delta,
            "oracle": self.oracle,
            "cosine": self.cosine,
            "projection": self.projection,
            "inner": self.inner,
            "delta_norm": self.delta_norm,
            "oracle_norm": self.oracle_norm,
            "delta_only": self.delta_only,
            "oracle_only": self.oracle_only,
            "modules": [m.to_dict() for m in self.modules],
        }


def _read(adapter: LoraAdapter, module: str) -> tuple[LowRank, float]:
    """The module's update and its norm, a NaN/Inf in its factors named as the adapter's error."""
    update = adapter.module(module)
    norm = frobenius_norm(update)
    if not math.isfinite(norm) and not check_finite(update):
        raise nonfinite_error(adapter.path, module)
    return update, norm


def align(delta: LoraAdapter, oracle: LoraAdapter, delta_name: str | None = None, oracle_name: str | None = None):
    """The :class:`Diagnosis` of one opened adapter against another, module by module in the order
    of the delta's modules, then the oracle's own."""
    for name in delta.keys:  # shapes from the headers, before any factor is read
        if name in oracle.keys and delta.shape(name) != oracle.shape(name):
            raise InputError(
                f"module {name} is {delta.shape(name)} in {delta.path} but {oracle.shape(name)} in the oracle"
                f" {oracle.path}",
                "the delta and the oracle must be adapters of the same base model",
            )
    rows: list[ModuleAlignment] = []
    with single_thread():
        for name in [*delta.keys, *(m for m in oracle.keys if m not in delta.keys)]:
            if name not in oracle.keys:
                rows.append(ModuleAlignment(name, 0.0, _read(delta, name)[1], 0.0, DELTA_ONLY))
            elif name not in delta.keys:
                rows.append(ModuleAlignment(name, 0.0, 0.0, _read(oracle, name)[1], ORACLE_ONLY))
            else:
                (d, nd), (o, no) = _read(delta, name), _read(oracle, name)
                rows.append(ModuleAlignment(name, inner_product(d, o), nd, no))
            delta.release([name])
            oracle.release([name])
    return Diagnosis(delta_name or str(delta.path), oracle_name or str(oracle.path), tuple(rows))


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def diagnose(deltas: Sequence[str | Path], oracle: str | Path, *, allow_base_mismatch: bool = False) -> list[Diagnosis]:
    """Each delta (an adapter folder or ``NS/NAME[@REV]``, resolved as ``deltahub merge`` resolves
    its inputs) against the oracle adapter, which is taken as the direction from the student toward
    the target: both are updates of the same student, so the oracle's update is that direction as it
    stands (an oracle trained on another starting point would need that point subtracted; the base
    check below refuses it unless ``allow_base_mismatch``)."""
    if not deltas:
        raise InputError("no deltas to diagnose", "pass one or more adapter folders or repo ids")
    oracle_input = resolve_input(oracle)
    inputs: list[MergeInput] = [resolve_input(d) for d in deltas]
    for i in inputs:
        if _same_folder(i.path, oracle_input.path):
            raise InputError(
                f"the oracle {oracle_input.spec} is also among the deltas (as {i.spec})",
                "pass the oracle only with --oracle, not as a DELTA",
            )
    oracle_adapter = load_adapter(oracle_input.path)
    adapters = [load_adapter(i.path) for i in inputs]
    if not allow_base_mismatch:
        for i, a in zip(inputs, adapters, strict=True):
            if a.base_model != oracle_adapter.base_model:
                raise InputError(
                    f"delta {i.spec} was trained on {a.base_model} but the oracle {oracle_input.spec} on"
                    f" {oracle_adapter.base_model}",
                    "diagnose deltas of the oracle's student, or pass --allow-base-mismatch if these are the same"
                    " model",
                )
    out = [align(a, oracle_adapter, i.spec, oracle_input.spec) for i, a in zip(inputs, adapters, strict=True)]
    if out[0].oracle_norm == 0:
        raise InputError(
            f"the oracle {oracle_input.spec} is a zero update (every lora_B is 0): it has no direction",
            "pass a trained oracle adapter",
        )
    return out
