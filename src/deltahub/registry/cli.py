"""Click layer for publish, pull, list, show and validate."""

from __future__ import annotations

import sys

import click


@click.command("publish")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--repo", required=True, help="Target repo NS/NAME (dataset repo for pairs, model repo for adapters).")
@click.option(
    "--dataset", "dataset_repo", help="Adapter: the pairs dataset repo it was trained on (linked from the card)."
)
@click.option("--dataset-revision", help="Adapter: revision of that dataset.")
@click.option("--tag", help="Also tag the published commit (e.g. v1).")
@click.option("--private", is_flag=True, help="Create the repo private.")
def publish_command(folder, repo, dataset_repo, dataset_revision, tag, private):
    """Publish FOLDER (pairs dataset or adapter) to the registry with its card."""
    from .publish import publish

    r = publish(folder, repo, dataset_repo=dataset_repo, dataset_revision=dataset_revision, tag=tag, private=private)
    state = "published" if r["created"] else "unchanged, no new commit"
    click.echo(f"{r['repo_type']} {r['repo_id']} @ {r['commit']} ({state})")


@click.command("pull")
@click.argument("spec")
@click.option("--out", type=click.Path(), help="Output folder (default: the deltahub cache).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def pull_command(spec, out, overwrite):
    """Download NS/NAME[@REV] (branch, tag or commit)."""
    from .pull import pull

    click.echo(str(pull(spec, out=out, overwrite=overwrite)))


@click.command("list")
@click.option("--base", help="Base model id the adapters are for.")
@click.option("--family", help="Model family of the chosen model (e.g. Qwen3).")
@click.option("--min-pairs", type=int, help="Only deltas trained on at least N pairs.")
@click.option("--sort", type=click.Choice(["recent", "gain"]), default="recent", show_default=True)
@click.option("--datasets", "datasets_", is_flag=True, help="List pairs datasets instead of adapters.")
def list_command(base, family, min_pairs, sort, datasets_):
    """List published deltas (served by Hub tag filters)."""
    from .search import list_deltas

    rows = list_deltas(
        base=base, family=family, min_pairs=min_pairs, sort=sort, kind="dataset" if datasets_ else "adapter"
    )
    if not rows:
        click.echo("no deltas found")
        return
    cols = ("repo_id", "base", "family", "pairs", "gain", "objective", "dataset")
    table = [[str(r.get(c) if r.get(c) is not None else "-") for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for t in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(t, widths)))


@click.command("show")
@click.argument("spec")
def show_command(spec):
    """Show NS/NAME[@REV]: card summary, files, linked dataset, revisions."""
    from .show import show

    s = show(spec)
    b = s["block"]
    click.echo(f"{s['repo_type']} {s['repo_id']} @ {s['sha']}")
    click.echo(
        f"kind: {b.get('kind', '- (not a delta: no deltahub block)')}  "
        f"base: {s['card'].get('base_model', '-')}  pairs: {b.get('pairs', '-')}"
    )
    for key in ("chosen", "rejected"):
        if b.get(key):
            click.echo(f"{key}: {b[key].get('model')}")
    if b.get("gain"):
        click.echo(f"gain: {b['gain'].get('value')} {b['gain'].get('metric')}")
    click.echo(f"dataset: {s['dataset'] or '-'}")
    click.echo("files:")
    for name, size in s["files"]:
        click.echo(f"  {name}  {size if size is not None else '?'}")
    click.echo("branches: " + ", ".join(f"{k}={v[:8]}" for k, v in s["branches"].items()))
    click.echo("tags: " + (", ".join(f"{k}={v[:8]}" for k, v in s["tags"].items()) or "-"))
    click.echo(f"commits: {len(s['commits'])}")


@click.command("validate")
@click.argument("target")
def validate_command(target):
    """Check a delta (NS/NAME[@REV] or a folder); exits 1 on failure so it can gate a CI."""
    from .validate import validate

    report = validate(target)
    click.echo(f"{report.target} ({report.kind or 'unknown kind'})")
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)
