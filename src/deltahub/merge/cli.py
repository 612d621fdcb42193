"""``deltahub merge``: a thin layer over :func:`deltahub.merge.merge_adapters`."""

from __future__ import annotations

import json
import shlex
import sys

import click

from ..errors import InputError
from .methods import METHODS


def _parse_weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError as exc:
        raise InputError(f"--weights {text!r} is not a comma-separated list of numbers", "e.g. --weights 1,0.5,1") from exc


def _parse_param(item: str) -> tuple[str, object]:
    if "=" not in item:
        raise InputError(f"--param {item!r} is not KEY=VALUE", "e.g. --param density=0.3")
    key, raw = item.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


@click.command("merge")
@click.argument("adapters", nargs=-1, required=True)
@click.option("--out", "out", required=True, type=click.Path(), help="Output folder (a PEFT adapter, or a model with --full).")
@click.option("--method", type=click.Choice(list(METHODS)), default="gam", show_default=True)
@click.option("--weights", help="Comma-separated weight per adapter (GAM: weighted means; default equal).")
@click.option("--reference", help="GAM reference: an input index, an input (repo id or folder), or 'auto'.")
@click.option("--reorthonormalize", is_flag=True, default=None, help="GAM: replace the mean bases by their nearest orthonormal matrices.")
@click.option("--scale", type=float, help="Multiply the merged update (GAM, task_arithmetic, TIES, KnOTS, TSV).")
@click.option("--density", type=float, help="TIES/KnOTS: fraction of entries kept when trimming.")
@click.option("--merge-rule", type=click.Choice(["ties", "ta"]), help="KnOTS: how the per-task bases are merged.")
@click.option("--param", "extra", multiple=True, help="Any other method parameter as KEY=VALUE (repeatable).")
@click.option("--base", help="Base model folder or repo id (needed for --full).")
@click.option("--full", is_flag=True, help="Write base + merged update as a full model instead of an adapter.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), help="Adapter output dtype (default: the inputs').")
@click.option("--overwrite", is_flag=True, help="Replace the output folder if it exists.")
@click.option("--allow-base-mismatch", is_flag=True, help="Merge adapters whose configs name different base models.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def merge_command(adapters, out, method, weights, reference, reorthonormalize, scale, density, merge_rule, extra,
                  base, full, dtype, overwrite, allow_base_mismatch, quiet) -> None:
    """Merge LoRA deltas ADAPTERS (folders or NS/NAME[@REV]) into one adapter or a full model.

    \b
    deltahub merge ./math ./code --method gam --out ./merged
    deltahub merge me/delta-a@v1 me/delta-b --method ties --base ./student --full --out ./student-merged
    """
    import torch

    from .core import merge_adapters

    params: dict[str, object] = dict(_parse_param(p) for p in extra)
    for key, value in (("reference", reference), ("reorthonormalize", reorthonormalize), ("scale", scale),
                       ("density", density), ("merge_rule", merge_rule)):
        if value is not None:
            if key == "reference" and value.lstrip("-").isdigit():
                value = int(value)
            params[key] = value
    result = merge_adapters(
        list(adapters), out, method=method, weights=_parse_weights(weights), params=params, base=base, full=full,
        overwrite=overwrite, allow_base_mismatch=allow_base_mismatch,
        dtype=getattr(torch, dtype) if dtype else None, progress=not quiet,
        command=shlex.join(["deltahub", *sys.argv[1:]]),
    )
    click.echo(f"wrote {'model' if full else 'adapter'} to {result}")
