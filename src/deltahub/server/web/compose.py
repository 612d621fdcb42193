"""The compose page's output: a ``gam.yml`` for ``mergekit-yaml`` and the same merge as ``deltahub merge``.

Nothing runs on the server. The deltas are pinned to the commit each one's main branch points at
when the page is drawn, so the config and the command merge exactly what the page showed. Only
the methods that both routes run with the same code are offered: those the mergekit plugin
registers (``deltahub.merge.registry.mergekit_methods``, plugins' included). Parameter names,
types and defaults come from each method's declaration; the config is written by the one
``gam.yml`` writer (:mod:`deltahub.share.mergekit_config`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...errors import InputError
from ...share.mergekit_config import MergekitConfig, Pick

__all__ = ["MAX_DELTAS", "Composition", "Pick", "default_method", "method_defaults", "parse_params", "parse_weight"]

MAX_DELTAS = 32
_TRUE = ("on", "true", "1", "yes")


def __getattr__(name: str):
    if name == "COMPOSE_METHODS":  # read on first use: the merge code (and torch) loads then
        from ...merge.registry import mergekit_methods

        return mergekit_methods()
    raise AttributeError(name)


def default_method() -> str:
    """The method the page shows first (deltahub's default, when the plugin offers it)."""
    from ...merge.registry import default_method as first

    return first() if first() in __getattr__("COMPOSE_METHODS") else __getattr__("COMPOSE_METHODS")[0]


def _method(name: str):
    from ...merge.registry import METHODS, mergekit_methods

    if name not in mergekit_methods():
        raise InputError(f"unknown method '{name[:40]}'", f"choose one of: {', '.join(mergekit_methods())}")
    return METHODS[name]


def method_defaults(method: str) -> dict[str, Any]:
    """The method's parameters with their defaults (imports torch on first use: the merge code's)."""
    return _method(method).resolve({})


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InputError(f"{what} must be a number, not '{text[:40]}'", "e.g. 1.0 or 0.5")
    return value


def parse_params(method: str, given: dict[str, str], submitted: bool) -> dict[str, Any]:
    """The method's parameters from the form's text (typed like their defaults), checked by the merge code.

    An unticked checkbox sends nothing, so a boolean is False once the form was ``submitted`` and its
    default before that.
    """
    spec = _method(method)
    inputs = spec.input_parameters
    params: dict[str, Any] = {}
    for name, default in spec.resolve({}).items():
        raw = given.get(name)
        if isinstance(default, bool):
            params[name] = (raw or "").lower() in _TRUE if submitted else default
        elif raw is None or raw.strip() == "":
            params[name] = default
        elif name in inputs or isinstance(default, int):  # an input's index (or auto, a name)
            text = raw.strip()
            params[name] = int(text) if text.isascii() and text.isdigit() and len(text) < 6 else text[:100]
        elif isinstance(default, float):
            params[name] = _number(raw.strip(), name)
        else:
            params[name] = raw.strip()[:100]
    return spec.resolve(params)


def parse_weight(text: str | None) -> float:
    return 1.0 if text is None or not text.strip() else _number(text.strip(), "a weight")


@dataclass(frozen=True)
class Composition(MergekitConfig):
    """The page's merge: at most ``MAX_DELTAS`` ticked deltas, weights with a positive sum, every
    parameter that names an input naming a ticked one."""

    def __post_init__(self) -> None:
        if not self.picks:
            raise InputError("no delta ticked", "tick at least one delta to compose")
        if len(self.picks) > MAX_DELTAS:
            raise InputError(f"{len(self.picks)} deltas ticked (at most {MAX_DELTAS})", "tick fewer deltas")
        if sum(p.weight for p in self.picks) <= 0:
            raise InputError("the weights add up to zero or less", "give at least one delta a positive weight")
        for name in _method(self.method).input_parameters:
            value = self.params.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value < len(self.picks):
                raise InputError(
                    f"{name} {value} is not one of the {len(self.picks)} ticked deltas",
                    f"use an index from 0 to {len(self.picks) - 1}, or auto",
                )
