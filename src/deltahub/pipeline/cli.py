"""``deltahub run RECIPE`` and ``deltahub demo``: thin layers over :func:`run_recipe`."""

from __future__ import annotations

from pathlib import Path

import click

from ..home import home


def _default_work(name: str) -> Path:
    return home() / "runs" / name


@click.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    help="Working folder (resumable; default ~/.cache/deltahub/runs/NAME).",
)
@click.option("--dry-run", is_flag=True, help="Validate the recipe and print the plan; run nothing.")
def run_command(recipe: Path, work: Path | None, dry_run: bool) -> None:
    """Run RECIPE end to end: pairs, deltas, publish, pull, merge, evaluate. Re-running skips finished stages."""
    from ..recipe import load_recipe
    from .run import run_recipe

    parsed = load_recipe(recipe)
    result = run_recipe(parsed, work or _default_work(parsed.name), dry_run=dry_run, log=click.echo)
    if dry_run:
        click.echo("recipe is valid")
        return
    from .report import aggregate, table

    skills = sorted({k for r in result.rows.values() for k in r} - {"avg"})
    click.echo(table(aggregate([result.rows]), result.kinds, skills))
    click.echo(
        f"done in {result.seconds:.0f} s ({len(result.ran)} stages run, {len(result.skipped)} skipped); "
        f"results in {result.work}"
    )


@click.command("demo")
@click.option("--quick", is_flag=True, help="The quick world, one seed: a plumbing check of every stage (~1 min).")
@click.option(
    "--preset",
    "name",
    type=click.Choice(["sections", "pda", "delta", "specialists"]),
    default="sections",
    show_default=True,
    help="sections: a graded quality built from the papers' mechanisms (stars in three sections; every "
    "supervisor below the student, complementary deltas); pda: PDA's setting (3 teacher families on the same "
    "prompts); delta: the delta-learning regime "
    "(supervisors far below the student); specialists: one family per skill (the first worlds).",
)
@click.option(
    "--seeds", type=click.IntRange(min=1), default=None, help="Number of world seeds  [default: 3; 1 with --quick]"
)
@click.option(
    "--first-seed",
    type=int,
    default=0,
    show_default=True,
    help="Run world seeds FIRST-SEED .. FIRST-SEED+SEEDS-1 (the settings were chosen on seeds 100 and up).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Seeds run at once, in separate processes  [default: min(2, CPUs)]",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("deltahub-demo"),
    show_default=True,
    help="Where the report (report.md, results.png) and the run folders go.",
)
def demo_command(quick: bool, name: str, seeds: int | None, first_seed: int, workers: int | None, out: Path) -> None:
    """The whole PDA loop on the built-in toy world and the embedded registry, on a CPU, with every
    claim of the papers checked as a paired difference with a 95% confidence interval."""
    from .demo import run_demo

    name = "quick" if quick else name
    report = run_demo(
        name, seeds=seeds or (1 if quick else 3), first_seed=first_seed, out=out, workers=workers, log=click.echo
    )
    click.echo(report.read_text())
    click.echo(f"report: {report}")
