"""``deltahub merge``: a thin layer over :func:`deltahub.merge.merge_adapters`.

The method-parameter options are not written here: each is built from the parameter declarations
in :mod:`deltahub.merge.params` (type, choices, default, help), one option per parameter name.
"""

from __future__ import annotations

import json
import shlex
import sys
import typing

import click

from ..errors import InputError
from .methods import METHODS
from .params import ParamInfo, option_name, parameter_options
from .streaming import DEVICES

PARAMETERS = parameter_options({name: spec.params for name, spec in METHODS.items()})


def _parse_weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError as exc:
        raise InputError(
            f"--weights {text!r} is not a comma-separated list of numbers", "e.g. --weights 1,0.5,1"
        ) from exc


def _parameter_option(info: ParamInfo, methods: list[str]):
    """A click option for one declared parameter, default shown in --help. Only what the user typed
    reaches the method (``merge_command`` drops defaults): a parameter another method does not
    take is then an error only when given."""
    label = f"[{', '.join(methods)}] {info.help}" if len(methods) < len(METHODS) else info.help
    kwargs: dict = {"default": info.default, "show_default": True, "help": label}
    annotated = typing.get_origin(info.annotation) is typing.Annotated
    base = typing.get_args(info.annotation)[0] if annotated else info.annotation
    if base is bool:
        decls = [f"{option_name(info.name)}/--no-{info.name.replace('_', '-')}"]
    elif info.choices:
        decls, kwargs["type"] = [option_name(info.name)], click.Choice([str(c) for c in info.choices])
    elif base in (int, float):
        decls, kwargs["type"] = [option_name(info.name)], base
    else:  # GAM's reference: an index, a name or auto, read by deltahub.merge.reference
        decls, kwargs["type"] = [option_name(info.name)], str
    return click.option(*decls, info.name, **kwargs)


def _with_parameter_options(command):
    for info, methods in reversed(list(PARAMETERS.values())):
        command = _parameter_option(info, methods)(command)
    return command


@click.command("merge")
@click.argument("adapters", nargs=-1, required=True)
@click.option(
    "--out", "out", required=True, type=click.Path(), help="Output folder (a PEFT adapter, or a model with --full)."
)
@click.option("--method", type=click.Choice(list(METHODS)), default="gam", show_default=True)
@click.option("--weights", help="Comma-separated weight per adapter (GAM: weighted means; default equal).")
@_with_parameter_options
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
    help="Where GAM's factor-space merge runs: auto = the GPU when one is visible, else the CPU.",
)
@click.option("--overwrite", is_flag=True, help="Replace the output folder if it exists.")
@click.option(
    "--allow-base-mismatch",
    is_flag=True,
    help="Merge adapters whose configs name different base models, or onto a --base that is not theirs.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def merge_command(
    ctx: click.Context,
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

    params = {
        k: v for k, v in method_params.items() if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT
    }
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
    if method == "gam":  # say which input the reference resolved to (auto and names)
        merge = json.loads((result / "deltahub.json").read_text())["merge"]
        index = merge["parameters"]["reference_index"]
        click.echo(f"GAM reference: input {index} ({merge['deltas'][index]['spec']})")
