"""``deltahub generate`` and ``deltahub agreement``: thin click layers over the library."""

from __future__ import annotations

import json

import click

from ..settings import cli_options, given
from .backends import BACKENDS
from .filters import FilterSettings
from .settings import GenerationSettings


@click.command("generate")
@click.option("--chosen", required=True, help="The weak model (bigger): local folder or repo id.")
@click.option("--rejected", required=True, help="The weaker model (smaller, same family).")
@click.option(
    "--prompts",
    "prompts",
    required=True,
    help="DATASET[:SPLIT][@REV] on the registry, or a local .jsonl/.parquet file.",
)
@click.option("--out", required=True, type=click.Path(), help="Output pairs folder.")
@click.option("--prompt-column", default=None, help="Text column holding the user turn (default: guessed).")
@click.option("--messages-column", default=None, help="Column of chat turns [{role, content}].")
@click.option("--split", default=None, help="Dataset split (also DATASET:SPLIT).")
@click.option("--limit", type=int, default=None, help="Use only the first N prompts.")
@click.option(
    "--backend",
    type=click.Choice(["auto", *BACKENDS]),
    default="auto",
    show_default=True,
    help="auto: vLLM where installed and a GPU is visible, else transformers.",
)
@cli_options(GenerationSettings)
@cli_options(FilterSettings)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out folder.")
@click.option("--restart", is_flag=True, help="Discard an unfinished run instead of resuming it.")
@click.option("--no-progress", is_flag=True)
def generate_command(
    chosen,
    rejected,
    prompts,
    out,
    prompt_column,
    messages_column,
    split,
    limit,
    backend,
    overwrite,
    restart,
    no_progress,
    **options,
):
    """Answer the same prompts with a weak (chosen) and a weaker (rejected) model; write TRL preference pairs.

    An interrupted run resumes when started again with the same arguments.
    """
    from .core import generate_pairs

    settings = GenerationSettings(**given(GenerationSettings, options))
    filters = FilterSettings(**given(FilterSettings, options))
    path = generate_pairs(
        chosen,
        rejected,
        prompts,
        out,
        settings,
        filters,
        backend,
        prompt_column=prompt_column,
        messages_column=messages_column,
        split=split,
        limit=limit,
        overwrite=overwrite,
        restart=restart,
        progress=not no_progress,
        log=lambda line: click.echo(line, err=True),
    )
    from ..distributed import current

    if not current().is_main:  # the main process reports
        return
    prov = json.loads((path / "deltahub.json").read_text())
    removed = ", ".join(f"{k}={v}" for k, v in prov["filters"].items()) or "no filters"
    click.echo(f"wrote {prov['pairs']} pairs to {path} ({removed})")


@click.command("agreement")
@click.argument("pairs")
@click.option(
    "--judge",
    default="exact-match",
    show_default=True,
    help="exact-match (reference answer, GSM8K '####' aware), contains, or module:function(text, row)->score.",
)
@click.option("--answer-column", default="answer", show_default=True, help="Reference-answer column.")
@click.option("--no-record", is_flag=True, help="Do not write the result into the folder's deltahub.json and card.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def agreement_command(pairs, judge, answer_column, no_record, as_json):
    """How often the size heuristic (chosen = bigger model) picks the answer the judge prefers."""
    from pathlib import Path

    from .agreement import agreement, record_agreement

    result = agreement(pairs, judge=judge, answer_column=answer_column)
    if not no_record and Path(pairs).is_dir():
        record_agreement(pairs, result)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    pct = "n/a (no decisive pairs)" if result["agreement"] is None else f"{result['agreement']:.1%}"
    click.echo(
        f"agreement with {judge}: {pct} of {result['decisive']} decisive pairs "
        f"({result['chosen_better']} chosen better, {result['rejected_better']} rejected better, "
        f"{result['ties']} ties of {result['pairs']}); chosen score {result['chosen_score']:.3f}, "
        f"rejected score {result['rejected_score']:.3f}"
    )
