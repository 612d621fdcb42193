"""The compose page's output: a ``gam.yml`` for ``mergekit-yaml`` and the same merge as ``deltahub merge``.

Nothing runs on the server. The deltas are pinned to the commit each one's main branch points at
when the page is drawn, so the config and the command merge exactly what the page showed. Only
the methods that both routes run with the same code are offered: deltahub's own, which the
plugin registers in mergekit (``deltahub_mergekit.method.PLUGIN_METHODS``; a test keeps the two
lists equal). Parameter names and defaults come from ``deltahub.merge.methods``, the one
declaration both routes read.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from ...errors import InputError

COMPOSE_METHODS = ("gam", "knots", "tsv")
MAX_DELTAS = 32
_TRUE = ("on", "true", "1", "yes")


def method_defaults(method: str) -> dict[str, Any]:
    """The method's parameters with their defaults (imports torch on first use: the merge code's)."""
    if method not in COMPOSE_METHODS:
        raise InputError(f"unknown method '{method[:40]}'", f"choose one of: {', '.join(COMPOSE_METHODS)}")
    from ...merge.methods import resolve_params

    return resolve_params(method, {})


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
    from ...merge.methods import resolve_params

    params: dict[str, Any] = {}
    for name, default in method_defaults(method).items():
        raw = given.get(name)
        if isinstance(default, bool):
            params[name] = (raw or "").lower() in _TRUE if submitted else default
        elif raw is None or raw.strip() == "":
            params[name] = default
        elif isinstance(default, float):
            params[name] = _number(raw.strip(), name)
        elif isinstance(default, int):  # GAM's reference: an input index or "auto"
            text = raw.strip()
            params[name] = int(text) if text.isascii() and text.isdigit() and len(text) < 6 else text
        else:
            params[name] = raw.strip()[:100]
    return resolve_params(method, params)


def parse_weight(text: str | None) -> float:
    return 1.0 if text is None or not text.strip() else _number(text.strip(), "a weight")


@dataclass(frozen=True)
class Pick:
    """One ticked delta, pinned to a commit."""

    repo_id: str
    revision: str
    weight: float

    @property
    def spec(self) -> str:
        return f"{self.repo_id}@{self.revision}"


@dataclass(frozen=True)
class Composition:
    base: str
    method: str
    picks: tuple[Pick, ...]
    params: dict[str, Any]

    def __post_init__(self) -> None:
        if not self.picks:
            raise InputError("no delta ticked", "tick at least one delta to compose")
        if len(self.picks) > MAX_DELTAS:
            raise InputError(f"{len(self.picks)} deltas ticked (at most {MAX_DELTAS})", "tick fewer deltas")
        if sum(p.weight for p in self.picks) <= 0:
            raise InputError("the weights add up to zero or less", "give at least one delta a positive weight")
        ref = self.params.get("reference")
        if isinstance(ref, int) and not isinstance(ref, bool) and not 0 <= ref < len(self.picks):
            raise InputError(
                f"reference {ref} is not one of the {len(self.picks)} ticked deltas",
                f"use an index from 0 to {len(self.picks) - 1}, or auto",
            )

    def config(self) -> dict[str, Any]:
        """mergekit's config: ``BASE+NS/NAME@SHA`` inputs (its LoRA syntax), shared parameters at the top."""
        return {
            "merge_method": self.method,
            "base_model": self.base,
            "models": [{"model": f"{self.base}+{p.spec}", "parameters": {"weight": p.weight}} for p in self.picks],
            "parameters": dict(self.params),
            "dtype": "float32",  # merge in fp32: the delta of a bf16 model is not low-rank
        }

    def yaml(self) -> str:
        return yaml.safe_dump(self.config(), sort_keys=False, allow_unicode=True)

    @staticmethod
    def mergekit_command(config: str = "gam.yml", out: str = "merged-mergekit") -> str:
        return shlex.join(
            ["mergekit-yaml", config, out, "--lora-merge-cache", "lora-cache", "--lora-merge-dtype", "float32"]
        )

    def deltahub_command(self, out: str = "merged-deltahub") -> str:
        """The same merge by ``deltahub merge``: a full model on the same base, like mergekit writes."""
        args = [
            "deltahub",
            "merge",
            *(p.spec for p in self.picks),
            "--method",
            self.method,
            "--weights",
            ",".join(repr(p.weight) for p in self.picks),
        ]
        for name, value in self.params.items():
            if isinstance(value, bool):
                if value:  # False is every boolean's default on both command lines
                    args.append("--" + name.replace("_", "-"))
            else:
                args += ["--" + name.replace("_", "-"), str(value)]
        return shlex.join([*args, "--base", self.base, "--full", "--out", out])
