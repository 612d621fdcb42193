"""``deltahub train``: a thin click layer over :func:`deltahub.train.train_delta`."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from .config import ALL_PROJECTIONS, TrainConfig
from .objectives import OBJECTIVES


def _recipe_defaults(recipe: Path | None) -> dict:
    """Read a ``train:`` section (or a flat mapping) of a YAML recipe into TrainConfig fields."""
    if recipe is None:
        return {}
    import yaml

    from ..errors import InputError

    try:
        data = yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read recipe {recipe}: {exc}".splitlines()[0], "give a valid YAML file") from None
    section = data.get("train", data) if isinstance(data, dict) else {}
    fields = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(section) - fields - {"student", "pairs", "out"})
    if unknown:
        raise InputError(f"unknown train setting(s) in {recipe}: {', '.join(unknown)}",
                         f"use fields of TrainConfig: {', '.join(sorted(fields))}")
    return section


@click.command("train")
@click.option("--student", help="Student model: a local folder or a repo id.")
@click.option("--pairs", help="Pairs: a 'deltahub generate' folder, a .jsonl/.parquet file, or a dataset repo id[@rev].")
@click.option("--out", type=click.Path(path_type=Path), help="Output adapter folder.")
@click.option("--recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML with a 'train:' section (student, pairs, out and any setting below); flags override it.")
@click.option("--objective", type=click.Choice(list(OBJECTIVES)), default=None, help="Loss. [default: dpo]")
@click.option("--beta", type=float, default=None, help="Beta (default: 0.1; 5 for dpo_norm).")
@click.option("--lr", "learning_rate", type=float, default=None, help="Peak learning rate. [default: 1e-5]")
@click.option("--scheduler", "lr_scheduler", default=None, help="LR schedule. [default: cosine]")
@click.option("--warmup", "warmup_ratio", type=float, default=None, help="Warm-up fraction. [default: 0.1]")
@click.option("--rank", type=int, default=None, help="LoRA rank r. [default: 64]")
@click.option("--alpha", type=float, default=None, help="LoRA alpha. [default: 128]")
@click.option("--dropout", type=float, default=None, help="LoRA dropout. [default: 0.05]")
@click.option("--target-modules", default=None, help=f"Comma list. [default: {','.join(ALL_PROJECTIONS)}]")
@click.option("--epochs", type=float, default=None, help="Epochs. [default: 1]")
@click.option("--max-steps", type=int, default=None, help="Optimizer steps (overrides --epochs).")
@click.option("--batch-size", type=int, default=None, help="Effective pairs per step. [default: 128]")
@click.option("--micro-batch-size", type=int, default=None, help="Pairs per forward pass per device. [default: 8]")
@click.option("--max-length", type=int, default=None, help="Max tokens of prompt+completion. [default: 1024]")
@click.option("--sft-weight", type=float, default=None, help="NLL weight of dpo+sft. [default: 1]")
@click.option("--seed", type=int, default=None, help="Seed. [default: 0]")
@click.option("--eval-fraction", type=float, default=None, help="Held-out slice for reward accuracy. [default: 0.05]")
@click.option("--save-steps", type=int, default=None, help="Checkpoint every N steps (resume). [default: 50]")
@click.option("--precompute-ref/--no-precompute-ref", default=None, help="Precompute reference log-probs. [default: on]")
@click.option("--bf16/--fp32", "bf16", default=None, help="Precision (default: bf16 on a capable GPU, else fp32).")
@click.option("--strict", is_flag=True, default=None, help="Stop when a health check fires.")
@click.option("--fresh", is_flag=True, help="Discard a partial run instead of resuming it.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train_command(student, pairs, out, recipe, fresh, overwrite, quiet, **options):
    """Train a DPO LoRA delta on the student (reference = the student with the adapter disabled).

    A killed run restarted with the same arguments resumes from OUT.partial/.
    """
    from ..errors import InputError
    from .health import DeltaHealthWarning
    from .trainer import train_delta

    settings = _recipe_defaults(recipe)
    student = student or settings.pop("student", None)
    pairs = pairs or settings.pop("pairs", None)
    out = out or (Path(settings.pop("out")) if settings.get("out") else None)
    settings = {k: v for k, v in settings.items() if k not in ("student", "pairs", "out")}
    if options.get("target_modules"):
        options["target_modules"] = [m.strip() for m in options["target_modules"].split(",") if m.strip()]
    settings.update({k: v for k, v in options.items() if v is not None})
    missing = [name for name, v in (("--student", student), ("--pairs", pairs), ("--out", out)) if not v]
    if missing:
        raise InputError(f"missing {', '.join(missing)}", "pass them as flags or in the recipe's train: section")
    try:
        cfg = TrainConfig(**settings)
    except TypeError as exc:
        raise InputError(f"bad train setting: {exc}", "check the recipe's train: section") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeltaHealthWarning)
        path = train_delta(student, pairs, out, cfg, overwrite=overwrite, resume=not fresh, progress=not quiet)
    for w in caught:
        if issubclass(w.category, DeltaHealthWarning):
            click.secho(f"warning: {w.message}", fg="yellow", err=True)
    import json

    metrics = json.loads((path / "deltahub.json").read_text(encoding="utf-8"))["metrics"]
    acc = metrics.get("heldout_reward_accuracy")
    click.echo(f"adapter written to {path}" + (f" (held-out reward accuracy {acc:.3f})" if acc is not None else ""))
