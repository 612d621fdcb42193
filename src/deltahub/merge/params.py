"""Merge-method parameters, declared once.

Each method's parameters are one pydantic model: name, type (choices are ``Literal`` types,
bounds are ``Field`` constraints), default and help. Everything else derives from it, so the
routes cannot drift apart:

- :func:`resolve_params` validates a parameter dict (``merge_module``, ``merge_adapters``,
  recipes): defaults filled in, an unknown name or a bad value is a one-line :class:`InputError`;
- :func:`parameter_options` is the union of all methods' parameters, from which ``deltahub merge``
  builds its command-line options (defaults shown in ``--help``);
- the mergekit plugin turns the same fields into mergekit ``ParameterSpec`` objects.

This is what mergekit's ``easy_define`` does with a kernel's typed signature; a model per method
rather than a signature because the parameters are also validated where no kernel runs (recipes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError

from ..errors import InputError

AUTO = "auto"

Reference = Annotated[
    Annotated[StrictInt, Field(ge=0)] | Annotated[str, StringConstraints(min_length=1)],
    Field(
        description="GAM reference, the input every other is aligned to: an index, an input's name "
        "(folder, repo id, recipe delta name), or auto (see deltahub.merge.reference)"
    ),
]
Scale = Annotated[float, Field(description="multiply the merged update")]
Density = Annotated[float, Field(gt=0, le=1, description="fraction of entries kept when trimming (TIES step 1)")]


class MethodParams(BaseModel):
    """Base of every method's parameter model: unknown names are errors, values are typed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GamParams(MethodParams):
    reference: Reference = 0
    reorthonormalize: Annotated[
        bool,
        Field(
            description="replace the mean bases Ū, V̄ by their nearest orthonormal "
            "matrices (the idealisation of PDA Appendix C)"
        ),
    ] = False
    scale: Scale = 1.0


class NoParams(MethodParams):
    pass


class ScaleParams(MethodParams):
    scale: Scale = 1.0


class TiesParams(MethodParams):
    density: Density = 0.2
    scale: Scale = 1.0


class KnotsParams(MethodParams):
    merge_rule: Annotated[Literal["ties", "ta"], Field(description="how KnOTS merges the per-task right bases")] = (
        "ties"
    )
    density: Density = 0.2
    scale: Scale = 1.0


@dataclass(frozen=True)
class ParamInfo:
    """One parameter as the routes see it (read off a method's model)."""

    name: str
    annotation: Any
    default: Any
    help: str
    choices: tuple[Any, ...] | None


def fields(model: type[MethodParams]) -> list[ParamInfo]:
    """The parameters a model declares, in declaration order."""
    out = []
    for name, f in model.model_fields.items():
        annotation = f.rebuild_annotation()
        base = get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation
        choices = get_args(base) if get_origin(base) is Literal else None
        out.append(ParamInfo(name, annotation, f.default, f.description or "", choices))
    return out


def option_name(name: str) -> str:
    """The ``deltahub merge`` option of a parameter: ``merge_rule`` -> ``--merge-rule``."""
    return "--" + name.replace("_", "-")


def option_args(name: str, value: Any) -> list[str]:
    """The command-line arguments that set parameter ``name`` to ``value``."""
    if isinstance(value, bool):
        return [option_name(name) if value else "--no-" + name.replace("_", "-")]
    return [option_name(name), str(value)]


def parameter_options(models: dict[str, type[MethodParams]]) -> dict[str, tuple[ParamInfo, list[str]]]:
    """Every parameter of any method, with the methods that take it: one command-line option each.

    A name shared by several methods must mean the same there (type and default); anything else
    is a declaration bug, caught at import.
    """
    out: dict[str, tuple[ParamInfo, list[str]]] = {}
    for method, model in models.items():
        for p in fields(model):
            if p.name in out:
                first, methods = out[p.name]
                if (first.annotation, first.default) != (p.annotation, p.default):
                    raise TypeError(f"parameter {p.name} is declared differently by {methods[0]} and {method}")
                methods.append(method)
            else:
                out[p.name] = (p, [method])
    return out


def validate_params(method: str, model: type[MethodParams], params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` checked against ``model`` with its defaults filled in, as a plain dict."""
    params = dict(params or {})
    try:
        return model.model_validate(params).model_dump()
    except ValidationError as exc:
        known = [p.name for p in fields(model)]
        unknown = sorted(str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden")
        if unknown:
            raise InputError(
                f"unknown parameter(s) for {method}: {', '.join(unknown)}",
                f"valid parameters: {', '.join(known) or 'none'}",
            ) from None
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "?"
        info = next((p for p in fields(model) if p.name == name), None)
        hint = f"{name}: {info.help}; default {info.default!r}" if info else f"valid parameters: {', '.join(known)}"
        raise InputError(f"bad {method} parameter {name}={params.get(name)!r}: {err['msg']}", hint) from None
