"""``deltahub eval MODEL|ADAPTER --tasks ...``: a thin layer over :func:`deltahub.evaluate.evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("eval")
@click.argument("model")
@click.option("--tasks", required=True, help="Comma-separated: lm-eval task names and/or toy skills (toy:srt).")
@click.option("--adapter", help="A PEFT adapter folder or repo id applied to MODEL.")
@click.option("--limit", type=int, help="At most this many examples per task.")
@click.option("--batch-size", default=8, show_default=True)
@click.option(
    "--backend",
    type=click.Choice(["auto", "hf", "vllm"]),
    default="auto",
    show_default=True,
    help="lm-eval model backend (auto: vLLM where installed).",
)
@click.option(
    "--include-path", type=click.Path(exists=True, file_okay=False), help="Folder of custom lm-eval task YAMLs."
)
@click.option(
    "--chat-template/--no-chat-template",
    default=False,
    show_default=True,
    help="Wrap lm-eval prompts in the model's chat template.",
)
@click.option(
    "--write-card/--no-write-card",
    default=False,
    show_default=True,
    help="Write the results into the model-index of the evaluated folder's README.md.",
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Also write the results as JSON.")
def eval_command(
    model: str,
    tasks: str,
    adapter: str | None,
    limit: int | None,
    batch_size: int,
    backend: str,
    include_path: str | None,
    chat_template: bool,
    write_card: bool,
    output: Path | None,
) -> None:
    """Evaluate MODEL (a model or adapter folder, or a repo id) and print a table."""
    from ..atomic import atomic_write_text
    from ..distributed import current
    from . import comparison_table, evaluate, write_model_index
    from .core import launch_line, resolve_model

    names = [t.strip() for t in tasks.split(",") if t.strip()]
    if current().is_main and current().launched:  # a plain run prints its table only
        click.echo(launch_line(names), err=True)
    res = evaluate(
        model,
        names,
        adapter=adapter,
        limit=limit,
        batch_size=batch_size,
        backend=backend,
        include_path=include_path,
        chat_template=chat_template,
    )
    if not current().is_main:  # every process has the scores; the main one reports and writes them
        return
    click.echo(comparison_table({model if adapter is None else f"{model} + {adapter}": res}))
    if output:
        atomic_write_text(output, json.dumps(res, indent=2))
    if write_card:
        base, adapter_path = resolve_model(model, adapter)
        click.echo(f"card: {write_model_index(adapter_path or base, res)}")
