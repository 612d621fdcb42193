"""``deltahub toy``: build the toy world, write a family's prompts file, score a model on the skills."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("toy")
def toy_group() -> None:
    """The built-in toy world (skills with exact answers, tiny models trained on the CPU)."""


@toy_group.command("build")
@click.option(
    "--preset",
    "preset_name",
    type=click.Choice(["sections", "pda", "delta", "specialists", "quick"]),
    default="sections",
    show_default=True,
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="World folder (default: the cache, $DELTAHUB_HOME/toy/world-HASH).",
)
def build_command(preset_name: str, seed: int, out: Path | None) -> None:
    """Train the model ladder (cached by config; an interrupted build resumes)."""
    from deltahub.toy.world import build_world, preset

    world = build_world(out, preset(preset_name, seed=seed))
    click.echo(json.dumps({n: str(world.model(n)) for n in world.names()}, indent=2))


@toy_group.command("prompts")
@click.argument("skills", nargs=-1, required=True)
@click.option("--n", type=int, default=512, show_default=True, help="Questions per skill.")
@click.option("--split", type=click.Choice(["train", "pairs", "eval"]), default="pairs", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="JSONL file (question, answer, skill).")
def prompts_command(skills: tuple[str, ...], n: int, split: str, seed: int, out: Path) -> None:
    """Write the prompts file that `deltahub generate` reads."""
    from deltahub.toy.prompts import write_prompts

    click.echo(write_prompts(out, list(skills), n, split, seed))


@toy_group.command("eval")
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--adapter", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
@click.option("--skills", default="srt,lsr", show_default=True, help="Comma-separated skills.")
@click.option("--n", type=int, default=200, show_default=True, help="Evaluation questions per skill.")
def eval_command(model: Path, adapter: Path | None, skills: str, n: int) -> None:
    """Greedy exact match per skill (and the average) of MODEL, optionally with a PEFT adapter."""
    from deltahub.toy.evaluate import evaluate
    from deltahub.toy.skills import get_skill

    names = [s.strip() for s in skills.split(",") if s.strip()]
    for s in names:
        get_skill(s)
    click.echo(json.dumps(evaluate(model, names, adapter=adapter, n=n)))
