"""``deltahub merge``: a thin layer over :func:`deltahub.merge.merge_adapters`.

The method-parameter options are not written here: each is built from the methods' declarations
(their signatures, :mod:`deltahub.merge.params`) by :func:`deltahub.settings.option_for`, one option per
parameter name, so a method added by a plugin gets its options with no change here.
"""

from __future__ import annotations

import shlex
import sys

import click

from ..errors import InputError
from ..settings import option_for
from .params import parameter_options
from .registry import METHODS, default_method
from .streaming import DEVICES


def parameters() -> dict:
    """Every method's parameters, one entry per name (see :func:`~deltahub.merge.params.parameter_options`)."""
    return parameter_options({name: m.params for name, m in METHODS.items()})


def _parse_weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError as exc:
        raise InputError(
            f"--weights {text!r} is not a comma-separated list of numbers", "e.g. --weights 1,0.5,1"
        ) from exc


def with_parameter_options(command):
    """Add one option per method parameter (default None: only what the user typed reaches the method,
    so a parameter another method does not take is an error only when given)."""
    for name, (_, field, methods) in reversed(list(parameters().items())):
        label = f"[{', '.join(methods)}] " if len(methods) < len(METHODS) else ""
        command = option_for(name, field, help=label + (field.description or ""))(command)
    return command


def given_parameters(options: dict) -> dict:
    """The method parameters among click's ``options`` that the user gave (popped from ``options``)."""
    picked = {k: options.pop(k) for k in list(options) if k in parameters()}
    return {k: v for k, v in picked.items() if v is not None}


@click.command("merge")
@click.argument("adapters", nargs=-1, required=True)
@click.option(
    "--out", "out", required=True, type=click.Path(), help="Output folder (a PEFT adapter, or a model with --full)."
)
@click.option("--method", type=click.Choice(list(METHODS)), default=default_method(), show_default=True)
@click.option("--weights", help="Comma-separated weight per adapter (default equal; see each method).")
@with_parameter_options
@click.option("--base", help="Base model folder or repo id (needed for --full); must be the adapters' base.")
@click.option("--full", is_flag=True, help="Write base + merged update as a full model instead of an adapter.")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "bfloat16", "float16"]),
    help="Adapter output dtype (default: the inputs').",
)
@click.option(
    "--device",
    type=click.Choice(list(DEVICES)),
    default="auto",
    show_default=True,
    help="Where a method's batched factor-space kernel runs: auto = the GPU when one is visible, else the CPU.",
)
@click.option("--overwrite", is_flag=True, help="Replace the output folder if it exists.")
@click.option(
    "--allow-base-mismatch",
    is_flag=True,
    help="Merge adapters whose configs name different base models, or onto a --base that is not theirs.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def merge_command(
    adapters,
    out,
    method,
    weights,
    base,
    full,
    dtype,
    device,
    overwrite,
    allow_base_mismatch,
    quiet,
    **method_params,
) -> None:
    """Merge LoRA deltas ADAPTERS (folders or NS/NAME[@REV]) into one adapter or a full model.

    \b
    deltahub merge ./math ./code --method gam --out ./merged
    deltahub merge me/delta-a@v1 me/delta-b --method ties --base ./student --full --out ./student-merged
    """
    import torch

    from .core import merge_adapters

    params = given_parameters(method_params)
    result = merge_adapters(
        list(adapters),
        out,
        method=method,
        weights=_parse_weights(weights),
        params=params,
        base=base,
        full=full,
        overwrite=overwrite,
        allow_base_mismatch=allow_base_mismatch,
        dtype=getattr(torch, dtype) if dtype else None,
        progress=not quiet,
        device=device,
        command=shlex.join(["deltahub", *sys.argv[1:]]),
    )
    click.echo(f"wrote {'model' if full else 'adapter'} to {result}")
    label = METHODS[method].label
    for name, index in result.choices.items():  # what auto or a name resolved to
        click.echo(f"{label} {name}: input {index} ({result.inputs[index]})")
