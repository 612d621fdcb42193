"""``deltahub train``: a thin click layer over :func:`deltahub.train.train_delta`.

Every training option, its help and its default come from :class:`TrainConfig`'s fields.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click

from ..errors import InputError
from ..settings import cli_options, given, parse_settings
from .config import TrainConfig

RUN_KEYS = ("student", "pairs", "out")  # what a recipe's train: section may name besides the settings


def recipe_section(recipe: Path | None) -> tuple[dict, dict]:
    """``(run keys, validated settings)`` from a YAML recipe's ``train:`` section (or a flat mapping)."""
    if recipe is None:
        return {}, {}
    from ..yamlfile import read_yaml

    data = read_yaml(recipe) or {}
    if not isinstance(data, dict):
        raise InputError(f"{recipe}: a recipe must be a YAML mapping", "write 'train:' with settings below it")
    at = ("train",) if "train" in data else ()
    section = data.get("train", data) or {}
    if not isinstance(section, dict):
        raise InputError(
            f"{recipe}: train: must be a mapping of settings (got a {type(section).__name__})",
            "write one 'name: value' per line under 'train:'",
        )
    run = {k: section[k] for k in RUN_KEYS if k in section}
    settings = {k: v for k, v in section.items() if k not in RUN_KEYS}
    parse_settings(TrainConfig, settings, where=str(recipe), at=at)
    return run, settings


@click.command("train")
@click.option("--student", help="Student model: a local folder or a repo id.")
@click.option(
    "--pairs", help="Pairs: a 'deltahub generate' folder, a .jsonl/.parquet file, or a dataset repo id[@rev]."
)
@click.option("--out", type=click.Path(path_type=Path), help="Output adapter folder.")
@click.option(
    "--recipe",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML with a 'train:' section (student, pairs, out and any setting below); flags override it.",
)
@cli_options(TrainConfig)
@click.option("--fresh", is_flag=True, help="Discard a partial run instead of resuming it.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train_command(student, pairs, out, recipe, fresh, overwrite, quiet, **options):
    """Train a DPO LoRA delta on the student (reference = the student with the adapter disabled).

    A killed run restarted with the same arguments resumes from OUT.partial/.
    """
    run, settings = recipe_section(recipe)
    student = student or run.get("student")
    pairs = pairs or run.get("pairs")
    out = out or (Path(run["out"]) if run.get("out") else None)
    cfg = TrainConfig(**{**settings, **given(TrainConfig, options)})
    missing = [name for name, v in (("--student", student), ("--pairs", pairs), ("--out", out)) if not v]
    if missing:
        raise InputError(f"missing {', '.join(missing)}", "pass them as flags or in the recipe's train: section")
    from ..distributed import current
    from .health import DeltaHealthWarning  # transformers loads only once the settings are known to be good
    from .trainer import train_delta

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeltaHealthWarning)
        path = train_delta(
            student,
            pairs,
            out,
            cfg,
            overwrite=overwrite,
            resume=not fresh,
            progress=not quiet,
            log=_say,
        )
    if not current().is_main:  # the main process reports; the others only trained
        return
    for w in caught:
        if issubclass(w.category, DeltaHealthWarning):
            click.secho(f"warning: {w.message}", fg="yellow", err=True)
    metrics = json.loads((path / "deltahub.json").read_text(encoding="utf-8"))["metrics"]
    acc = metrics.get("heldout_reward_accuracy")
    click.echo(f"adapter written to {path}" + (f" (held-out reward accuracy {acc:.3f})" if acc is not None else ""))


def _say(line: str) -> None:
    """The launch line on stderr, in yellow when the launcher started fewer processes than it was asked for."""
    click.secho(line, err=True, fg="yellow" if "WARNING" in line else None)
