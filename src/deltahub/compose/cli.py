"""``deltahub compose``: a thin layer over :func:`deltahub.compose.compose`."""

from __future__ import annotations

import click

from ..merge.cli import given_parameters, with_parameter_options
from ..settings import cli_options, given
from .settings import ComposeSettings


@click.command("compose")
@click.argument("candidates", nargs=-1)
@click.option("--out", required=True, type=click.Path(), help="Output folder (merged adapter, or model with --full).")
@click.option("--collection", help="Compose from the adapters of this collection (OWNER/TITLE-ID).")
@click.option("--base", help="The student (folder or repo id). Without CANDIDATES: compose the deltas listed for it.")
@click.option("--family", help="Without CANDIDATES: only deltas of this model family (as deltahub list).")
@click.option("--min-pairs", type=int, help="Without CANDIDATES: only deltas trained on at least N pairs.")
@cli_options(ComposeSettings)
@with_parameter_options  # the merge methods' parameters, from their declarations (as deltahub merge)
@click.option(
    "--work", type=click.Path(file_okay=False), help="Folder of cached evaluations (default: $DELTAHUB_HOME/compose)."
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def compose_command(candidates, out, collection, base, family, min_pairs, work, overwrite, quiet, **options):
    """Choose deltas greedily by the student's validation score, then merge them.

    CANDIDATES are adapter folders or NS/NAME[@REV], plus the adapters of --collection; without either, the
    deltas that `deltahub list --base BASE` finds. A delta is added only while it raises the merged student's
    validation score; the card's trace says why each other delta was left out.

    \b
    deltahub compose ./a ./b me/c@v1 --tasks toy:srt,toy:rev --out composed --held-out
    deltahub compose --collection alice/qwen3-reasoning-65f1a2 --tasks arc_easy --limit 200 --out composed
    deltahub compose --base Qwen/Qwen3-8B --tasks arc_easy --limit 200 --max 3 --out composed
    """
    from ..errors import InputError
    from .core import compose

    settings = ComposeSettings(**given(ComposeSettings, options))
    params = given_parameters(options)
    specs = list(candidates)
    if collection:
        from ..share.collections import delta_repos

        specs += delta_repos(collection)
        if not specs:
            raise InputError(f"collection {collection} holds no adapters", "add some: deltahub collection add")
    if not specs:
        if not (base or family):
            raise InputError(
                "no candidates given",
                "pass adapter folders or repo ids, --collection SLUG, or --base "
                "MODEL to compose the deltas listed for it",
            )
        from ..share.search import list_deltas

        specs = [r["repo_id"] for r in list_deltas(base=base, family=family, min_pairs=min_pairs)]
        if not specs:
            raise InputError(
                f"deltahub list found no deltas for base {base or '-'}, family {family or '-'}",
                "check with: deltahub list --base MODEL",
            )
    result = compose(specs, out, settings, params=params, base=base, work=work, overwrite=overwrite, progress=not quiet)
    t = result.trace
    click.echo(f"selected {len(result.selected)} of {len(t['candidates'])}: {', '.join(result.selected)}")
    click.echo(f"validation: student {t['student']:.4f} -> composed {t['score']:.4f} ({t['stopped']})")
    for c in t["candidates"]:
        if c["reason"]:
            click.echo(f"left out {c['name']}: {c['reason']}")
    if "held_out" in t:
        h = t["held_out"]
        click.echo(
            f"held-out: student {h['student']:.4f}, composed {h['composed']:.4f}, "
            f"all merged {h['merge_all']:.4f}, best single ({h['best_single_name']}) {h['best_single']:.4f}"
        )
        from .stats import describe

        for name, p in h.get("paired", {}).items():
            click.echo(f"held-out paired, {describe(name, p)}")
    click.echo(f"wrote {result.out} (card, compose.png, gam.yml)")
