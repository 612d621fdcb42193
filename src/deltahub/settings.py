"""Typed settings: one pydantic model per group is the single source of each setting.

A field's type, default, constraints and help text live in the model (as in TRL's ``DPOConfig``);
the CLI options, recipe validation and the provenance written into ``deltahub.json`` are derived
from it, so a default or a limit is written once. Errors name the setting (``beta: must be > 0``),
never a CLI flag, because the value may have come from a recipe.
"""

from __future__ import annotations

import contextvars
import difflib
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import click
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .errors import InputError

# pydantic calls a custom __init__ during nested validation too; there the raw error must propagate
_NESTED: contextvars.ContextVar[bool] = contextvars.ContextVar("deltahub_nested_settings", default=False)


def setting(
    default: Any = None,
    help: str = "",
    *,
    flag: str | None = None,
    flags: tuple[str, ...] = (),
    off_flag: str | None = None,
    cli: bool = True,
    **constraints: Any,
) -> Any:
    """A settings field: ``help`` becomes the CLI help; ``flag`` replaces the option name derived from the
    field name, ``flags`` adds aliases (``--lr``), ``off_flag`` names a boolean's off switch, ``cli=False``
    keeps the field out of the CLI."""
    extra = {"flag": flag, "flags": list(flags), "off_flag": off_flag, "cli": cli}
    if callable(default):  # a factory: list/dict defaults are never shared between instances
        return Field(default_factory=default, description=help, json_schema_extra=extra, **constraints)
    return Field(default, description=help, json_schema_extra=extra, **constraints)


class Settings(BaseModel):
    """Strict names, checked types, validated on construction and on assignment.

    Direct construction raises a one-line :class:`InputError`; nested in a recipe, pydantic's own
    error keeps the key path (``deltas[1].train.beta``) for :func:`describe_error`.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            if _NESTED.get():  # inside a recipe: let pydantic add the key path
                raise
            raise settings_error(exc, type(self)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise settings_error(exc, type(self)) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ----------------------------------------------------------------------------------------------
# one-line messages from pydantic errors

_KIND = {
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a mapping of settings",
    "model_type": "must be a mapping of settings",
    "model_attributes_type": "must be a mapping of settings",
    "missing": "is required",
}
_BOUND = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bound(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_error(err: dict, known: Callable[[], list[str]] | None = None) -> str:
    """``must be a number (got 'high')`` for one pydantic error; ``known`` lists valid names for a typo."""
    kind, got = err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        name = str(err["loc"][-1]) if err["loc"] else ""
        close = difflib.get_close_matches(name, known(), n=1) if known else []
        return "unknown setting" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind in _BOUND:
        return f"must be {_BOUND[kind]} {_bound(ctx[next(iter(ctx))])} (got {_shown(got)})"
    if kind == "literal_error":
        choices = [c.strip(" '") for c in str(ctx.get("expected", "")).replace(" or ", ", ").split(",")]
        close = difflib.get_close_matches(str(got), choices, n=1)
        return f"must be one of {', '.join(choices)} (got {_shown(got)}" + (
            f"; did you mean {close[0]!r}?)" if close else ")"
        )
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s) (got {_shown(got)})"
    if kind in _KIND:
        return _KIND[kind] if kind == "missing" else f"{_KIND[kind]} (got {_shown(got)})"
    return err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")


def location(loc: tuple) -> str:
    """``deltas[1].train.beta`` from pydantic's ``('deltas', 1, 'train', 'beta')``."""
    out = ""
    for part in loc:
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def model_at(cls: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The model class that holds the last key of ``loc`` (for did-you-mean on nested typos)."""
    current = cls
    for part in loc[:-1]:
        if not isinstance(part, str) or part not in current.model_fields:
            continue
        field = current.model_fields[part]
        for candidate in _models_in(field.annotation) + [m for x in field.metadata for m in getattr(x, "models", ())]:
            current = candidate
            break
    return current


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def settings_error(
    exc: ValidationError,
    cls: type[BaseModel],
    where: str = "",
    at: tuple = (),
    fix: str | None = None,
    *,
    subject: str | None = None,
) -> InputError:
    """The first error of ``exc`` as one line: ``WHERE: AT.KEY: PROBLEM (and N more)`` plus a fix.

    ``subject`` names whose parameters a flat model holds (a merge method): unknown names are then all
    listed, ``unknown parameter(s) for ties: densty (did you mean 'density'?)``, and a bad value reads
    ``ties parameter density: must be <= 1 (got 1.5)`` (a value of neither type of a union: in pydantic's
    words for the closest type)."""
    errors = exc.errors()
    err = errors[0]
    key = location(at + tuple(err["loc"])) or "(top level)"
    owner = model_at(cls, err["loc"])
    text = describe_error(err, lambda: list(owner.model_fields))
    if subject is not None:
        unknown = [location(e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
        if unknown:
            hint = describe_error(
                next(e for e in errors if e["type"] == "extra_forbidden"), lambda: list(owner.model_fields)
            )
            return InputError(
                f"unknown parameter(s) for {subject}: {', '.join(unknown)}{hint.removeprefix('unknown setting')}",
                fix or f"valid parameters: {', '.join(owner.model_fields) or 'none'}",
            )
        where = where or f"{subject} parameter"
        errors = list({e["loc"][:1]: e for e in reversed(errors)}.values())[::-1]  # one per parameter
        if len(err["loc"]) > 1:  # a value of neither type of a union: pydantic names the closest branch
            key = str(err["loc"][0])
            text = f"{err['msg']} (got {_shown(err.get('input'))})"
    if err["type"] == "extra_forbidden" and not issubclass(owner, Settings):
        text = text.replace("unknown setting", "unknown key")  # a recipe's structure, not a setting
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    prefix = (f"{where} " if subject is not None else f"{where}: ") if where else ""
    if fix is None and err["type"] == "extra_forbidden":
        fix = f"remove or rename it; valid: {', '.join(owner.model_fields)}"
    return InputError(f"{prefix}{key}: {text}{more}", fix or f"correct the value of {key}")


# ----------------------------------------------------------------------------------------------
# CLI options derived from the fields


def _base_type(annotation: Any) -> Any:
    """``int`` for ``int | None``; the annotation itself otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _show_default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if value is None:
        return ""
    if isinstance(value, list):
        value = ",".join(map(str, value))
    elif isinstance(value, bool):
        value = "on" if value else "off"
    return f"  [default: {value}]"


def _split_list(ctx, param, value):
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def option_for(name: str, field, help: str | None = None) -> Callable | None:
    """A ``click.option`` for one settings field (default None: 'not given', so recipes are not overridden).

    ``help`` replaces the field's description; a union of several types (an index or a name) is read as
    text, which the model then parses."""
    extra = field.json_schema_extra or {}
    if not extra.get("cli", True):
        return None
    kind = _base_type(field.annotation)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = str
    names = [extra.get("flag") or "--" + name.replace("_", "-"), *extra.get("flags", ())]
    help_text = (field.description if help is None else help) or ""
    help_text += _show_default(field)
    if kind is bool:
        off = extra.get("off_flag")
        if off is None and field.default is False:
            return click.option(*names, name, is_flag=True, default=None, help=help_text)
        off = off or "--no-" + name.replace("_", "-")
        return click.option(f"{names[0]}/{off}", *names[1:], name, default=None, help=help_text)
    if typing.get_origin(kind) is Literal:
        choices = [str(c) for c in typing.get_args(kind)]
        return click.option(*names, name, type=click.Choice(choices), default=None, help=help_text)
    if typing.get_origin(kind) is list:
        return click.option(*names, name, default=None, callback=_split_list, help=help_text + " (comma list)")
    click_type = {int: int, float: float, str: str}.get(kind)
    if click_type is None:
        return None
    return click.option(*names, name, type=click_type, default=None, help=help_text)


def cli_options(model: type[BaseModel], exclude: tuple[str, ...] = ()) -> Callable:
    """Decorate a click command with one option per field of ``model`` (in field order)."""
    options = [option_for(name, f) for name, f in model.model_fields.items() if name not in exclude]

    def decorate(command):
        for opt in reversed([o for o in options if o is not None]):
            command = opt(command)
        return command

    return decorate


def given(model: type[BaseModel], options: dict[str, Any]) -> dict[str, Any]:
    """Pop ``model``'s fields out of click's ``options``; keep those the user actually gave."""
    picked = {k: options.pop(k) for k in list(options) if k in model.model_fields}
    return {k: v for k, v in picked.items() if v is not None}


def parse_settings(model: type[Settings], data: Any, where: str = "", at: tuple = ()) -> Settings:
    """``model`` from a mapping read from a file; the error names the file and the key path (``at``)."""
    token = _NESTED.set(True)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise settings_error(exc, model, where, at) from None
    finally:
        _NESTED.reset(token)


class _Section:
    """Marks a recipe section validated by ``models[0]`` (read by :func:`model_at` for did-you-mean)."""

    def __init__(self, model: type[BaseModel]):
        self.models = (model,)


def section(model: type[BaseModel]) -> Any:
    """A recipe field holding the settings the user wrote, validated (types, limits, names) by ``model``.

    The value stays the mapping of given keys (coerced), so stage caches hash what the recipe says;
    ``model(**value)`` is the typed object.
    """

    def check(value: Any) -> dict[str, Any]:
        token = _NESTED.set(True)  # the ValidationError propagates; the recipe adds the key path
        try:
            return model.model_validate({} if value is None else value).model_dump(mode="json", exclude_unset=True)
        finally:
            _NESTED.reset(token)

    return typing.Annotated[dict[str, Any], BeforeValidator(check), _Section(model)]
