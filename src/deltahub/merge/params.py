"""Merge-method parameters, read off each method's signature.

A method's keyword parameters (name, type, default) are its declaration, as in mergekit's
``easy_define``: :func:`params_model` turns them into one pydantic model (choices are ``Literal``
types, bounds ``Field`` constraints, help from ``Annotated`` metadata or the docstring), and
everything else derives from that model, so the routes cannot drift apart:

- :func:`validate_params` checks a parameter dict (``merge_module``, ``merge_adapters``, recipes,
  compose, the web compose page): defaults filled in, an unknown name or a bad value is one line
  (:func:`deltahub.settings.settings_error`);
- :func:`parameter_options` is the union of all methods' parameters, from which ``deltahub merge`` and
  ``deltahub compose`` build their options (:func:`deltahub.settings.option_for`);
- the mergekit plugin turns the same fields into mergekit ``ParameterSpec`` objects;
- the provenance (``deltahub.json``, the card, the reproducing command) records the validated values.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError, create_model
from pydantic.fields import FieldInfo

AUTO = "auto"


class _InputMarker:
    """Marks a parameter whose value names one input of the merge (see :data:`Input`)."""

    def __repr__(self) -> str:
        return "INPUT"


INPUT = _InputMarker()

Input = Annotated[
    Annotated[StrictInt, Field(ge=0)] | Annotated[str, StringConstraints(min_length=1)],
    INPUT,
]
"""A parameter naming ONE input of the merge: an index, an input's name (folder, repo id, recipe delta
name), or ``auto``. The method's ``prepare`` turns it into an index once per merge; the routes know it
only as "an input" (the web page checks the index against the ticked deltas, compose accepts only what
holds for every set it tries)."""

Scale = Annotated[float, Field(description="multiply the merged update")]
Density = Annotated[float, Field(gt=0, le=1, description="fraction of entries kept when trimming (TIES step 1)")]


class MethodParams(BaseModel):
    """Base of every method's parameter model: unknown names are errors, values (defaults too) are typed."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# ---- the model from the signature ---------------------------------------------------------------


_SECTION = r"(Args|Arguments|Parameters|Keyword [Aa]rgs):"


def _doc_params(doc: str | None) -> dict[str, str]:
    """``name: help`` items of a docstring's ``Args:`` (or ``Parameters:``) section, Google style."""
    out: dict[str, str] = {}
    section, indent, name = False, None, None
    for line in inspect.cleandoc(doc or "").splitlines():
        text = line.strip()
        if not line[:1].isspace():  # a heading, prose, or a blank line
            if text:
                section, indent, name = bool(re.fullmatch(_SECTION, text)), None, None
            continue
        if not section:
            continue
        depth = len(line) - len(line.lstrip())
        item = re.fullmatch(r"(\w+)\s*(?:\([^)]*\))?:\s*(.*)", text)
        if item and indent in (None, depth):
            indent, name = depth, item.group(1)
            out[name] = item.group(2)
        elif name:
            out[name] = f"{out[name]} {text}"
    return {k: v.strip() for k, v in out.items()}


def _annotated_help(annotation: Any) -> str:
    """The help an ``Annotated`` type carries: a ``Field(description=...)`` or a plain string."""
    while get_origin(annotation) is Annotated:
        _, *metadata = get_args(annotation)
        for m in metadata:
            if isinstance(m, FieldInfo) and m.description:
                return m.description
            if isinstance(m, str):
                return m
        annotation = get_args(annotation)[0]
    return ""


def params_model(fn, name: str) -> type[MethodParams]:
    """The parameter model of ``fn(deltas, weights, *, p: T = default, ...)``: one field per keyword
    parameter, in signature order. A declaration that cannot be a method is a TypeError, raised when
    the method is defined (its defaults are validated too)."""
    signature = inspect.signature(fn)
    hints = get_type_hints(fn, include_extras=True)
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) < 2:
        raise TypeError(f"merge method {name}: takes (deltas, weights, *, parameters...), got {signature}")
    docs = _doc_params(fn.__doc__)
    fields: dict[str, Any] = {}
    for p in signature.parameters.values():
        if p in positional[:2]:
            continue
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"merge method {name}: parameter {p.name} must be keyword-only (after *)")
        if p.default is inspect.Parameter.empty or p.name not in hints:
            raise TypeError(f"merge method {name}: parameter {p.name} needs a type annotation and a default")
        annotation = hints[p.name]
        help_text = _annotated_help(annotation) or docs.get(p.name, "")
        fields[p.name] = (Annotated[annotation, Field(description=help_text)], p.default)
    title = "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", name)) + "Params"
    model = create_model(title, __base__=MethodParams, __module__=fn.__module__, **fields)
    try:
        model.model_validate({})
    except ValidationError as exc:
        raise TypeError(f"merge method {name}: a default does not fit its type: {exc.errors()[0]['msg']}") from None
    return model


# ---- reading a model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamInfo:
    """One parameter as the routes see it (read off a method's model)."""

    name: str
    annotation: Any
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    names_input: bool  # an :data:`Input`


def fields(model: type[MethodParams]) -> list[ParamInfo]:
    """The parameters a model declares, in declaration order."""
    out = []
    for name, f in model.model_fields.items():
        annotation = f.rebuild_annotation()
        base = get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation
        choices = get_args(base) if get_origin(base) is Literal else None
        out.append(ParamInfo(name, annotation, f.default, f.description or "", choices, INPUT in f.metadata))
    return out


def option_name(name: str) -> str:
    """The command-line option of a parameter: ``merge_rule`` -> ``--merge-rule``."""
    return "--" + name.replace("_", "-")


def option_args(name: str, value: Any) -> list[str]:
    """The command-line arguments that set parameter ``name`` to ``value``."""
    if isinstance(value, bool):
        return [option_name(name) if value else "--no-" + name.replace("_", "-")]
    return [option_name(name), str(value)]


def parameter_options(models: dict[str, type[MethodParams]]) -> dict[str, tuple[str, FieldInfo, list[str]]]:
    """Every parameter of any method, with the methods that take it: one command-line option each,
    as ``name -> (the first method declaring it, its field, the methods that take it)``.

    A name shared by several methods must mean the same there (type and default); the registry
    refuses a method that declares one differently (:func:`conflicts`).
    """
    out: dict[str, tuple[str, FieldInfo, list[str]]] = {}
    for method, model in models.items():
        for name, f in model.model_fields.items():
            if name in out:
                out[name][2].append(method)
            else:
                out[name] = (method, f, [method])
    return out


def conflicts(model: type[MethodParams], others: dict[str, type[MethodParams]]) -> list[str]:
    """Why ``model``'s parameters cannot share the command line with ``others`` (empty: they can)."""
    problems = []
    for p in fields(model):
        for method, other in others.items():
            q = next((q for q in fields(other) if q.name == p.name), None)
            if q is not None and (q.annotation, q.default) != (p.annotation, p.default):
                problems.append(f"parameter {p.name} is declared differently by {method}")
    return problems


def validate_params(method: str, model: type[MethodParams], params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` checked against ``model`` with its defaults filled in, as a plain dict."""
    from ..settings import settings_error

    params = dict(params or {})
    try:
        return model.model_validate(params).model_dump()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        info = next((p for p in fields(model) if p.name == name), None)
        fix = f"{name}: {info.help}; default {info.default!r}" if info and info.help else None
        raise settings_error(exc, model, fix=fix, subject=method) from None
