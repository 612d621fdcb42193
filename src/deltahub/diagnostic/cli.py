"""``deltahub diagnose``: a thin layer over :func:`deltahub.diagnostic.diagnose`."""

from __future__ import annotations

import json

import click


@click.command("diagnose")
@click.argument("deltas", nargs=-1, required=True)
@click.option(
    "--oracle",
    required=True,
    help="The oracle adapter (folder or NS/NAME[@REV]) on the same student, e.g. SFT on correct answers: its"
    " update is the direction from the student toward the target.",
)
@click.option("--per-module", is_flag=True, help="Also one row per delta and module.")
@click.option("--json", "as_json", is_flag=True, help="Print the diagnoses as JSON (every module included).")
@click.option("--allow-base-mismatch", is_flag=True, help="Compare adapters whose configs name different base models.")
def diagnose_command(deltas, oracle, per_module, as_json, allow_base_mismatch) -> None:
    """Cosine of each delta's update DELTAS (folders or NS/NAME[@REV]) with the oracle's, per module and overall.

    \b
    deltahub diagnose ./delta-a ./delta-b --oracle ./sft-correct
    deltahub diagnose me/delta-a@v1 me/delta-b --oracle me/oracle --per-module
    """
    from .alignment import diagnose
    from .table import diagnosis_table

    result = diagnose(list(deltas), oracle, allow_base_mismatch=allow_base_mismatch)
    if as_json:
        click.echo(json.dumps([d.to_dict() for d in result], indent=2))
    else:
        click.echo(diagnosis_table(result, per_module=per_module))
