"""Click layer for publish, pull, list, show, validate, collections, submit and review."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import click

from ..settings import cli_options, given
from .provenance import Declared, load_declared


def provenance_options(command):
    """The provenance flags (one per field of :class:`Declared`) and ``--provenance FILE``."""
    command = cli_options(Declared)(command)
    return click.option(
        "--provenance",
        "provenance_file",
        type=click.Path(exists=True, dir_okay=False),
        help="YAML file of provenance fields (the flag names with '_' for '-', e.g. "
        "chosen_model: ORG/BIG); flags given too override it.",
    )(command)


def _declared(provenance_file: str | None, options: dict) -> Declared | None:
    flags = given(Declared, options)
    return load_declared(provenance_file, flags) if flags or provenance_file else None


@contextlib.contextmanager
def checklist_on_refusal(header: bool = False) -> Iterator[None]:
    """A delta refused for failing validation: its checklist on stdout (the one-line error goes to stderr)."""
    from .validate import ValidationFailed

    try:
        yield
    except ValidationFailed as exc:
        if header:
            click.echo(f"{exc.report.target} ({exc.report.kind or 'unknown kind'})")
        for line in exc.report.lines():
            click.echo(line)
        raise


@click.command("publish")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--repo", required=True, help="Target repo NS/NAME (dataset repo for pairs, model repo for adapters).")
@provenance_options
@click.option("--dataset-revision", help="Revision of --dataset (same as --dataset REPO@REV).")
@click.option("--tag", help="Also tag the published commit (e.g. v1).")
@click.option("--private", is_flag=True, help="Create the repo private.")
@click.option(
    "--no-validate",
    is_flag=True,
    help="Publish even if validation fails or cannot run; the card says it was not validated.",
)
@click.option(
    "--measure",
    help="Comma-separated tasks (toy:srt, gsm8k, ...) to score the adapter and its base on; "
    "the gain goes into the card's model-index (list --sort gain).",
)
@click.option("--measure-limit", type=click.IntRange(min=1), help="At most this many examples per measured task.")
def publish_command(
    folder, repo, provenance_file, dataset_revision, tag, private, no_validate, measure, measure_limit, **options
):
    """Publish FOLDER with its card: a deltahub pairs dataset, adapter or merge, or any PEFT LoRA adapter
    (declare its provenance with the flags below). The copy to upload is validated first; a failing one is
    refused with the checklist (exit 2)."""
    from .publish import publish

    if dataset_revision and options.get("dataset"):
        options["dataset"] = f"{options['dataset'].split('@')[0]}@{dataset_revision}"
    declared = _declared(provenance_file, options)
    tasks = [t.strip() for t in measure.split(",") if t.strip()] if measure else None
    with checklist_on_refusal(header=True):
        r = publish(
            folder,
            repo,
            tag=tag,
            private=private,
            declared=declared,
            validate=not no_validate,
            measure=tasks,
            measure_limit=measure_limit,
        )
    state = "published" if r["created"] else "unchanged, no new commit"
    click.echo(f"{r['repo_type']} {r['repo_id']} @ {r['commit']} ({state})")
    for check in r["report"].warnings if r["report"] else []:
        click.echo(f"warning: {check.name}: {check.detail}", err=True)
    if no_validate:
        click.echo("warning: published without validation (--no-validate); the card says so", err=True)


@click.command("pull")
@click.argument("spec")
@click.option("--out", type=click.Path(), help="Output folder (default: the deltahub cache).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def pull_command(spec, out, overwrite):
    """Download NS/NAME[@REV] (branch, tag or commit)."""
    from .pull import pull

    click.echo(str(pull(spec, out=out, overwrite=overwrite)))


@click.command("list")
@click.option(
    "--base", help="Base model the adapters are for: a repo id, or a local folder that records one (docs/bases.md)."
)
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
    cols = ("repo_id", "base", "family", "pairs", "gain", "objective", "dataset", "origin")
    table = [[_cell(c, r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for t in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)))


def _cell(column: str, value) -> str:
    if value is None:
        return "unmeasured" if column == "gain" else "-"
    return f"{value:+.4g}" if column == "gain" else str(value)


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
@click.option(
    "--strict",
    is_flag=True,
    help="Warnings fail too (a linked dataset not published yet, no dataset linked): for CI gates.",
)
@provenance_options
def validate_command(target, strict, provenance_file, **options):
    """Check a delta (NS/NAME[@REV] or a folder, as it would be published with the provenance flags);
    exits 1 on failure so it can gate a CI."""
    from pathlib import Path

    from ..errors import InputError
    from .validate import validate

    declared = _declared(provenance_file, options)
    if declared is not None and not Path(target).exists():
        raise InputError(
            f"provenance flags were given for {target}, which is not a local folder",
            "pass them for a local folder; a published delta is validated as it was published",
        )
    report = validate(target, strict=strict, declared=declared)
    click.echo(f"{report.target} ({report.kind or 'unknown kind'})")
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)


@click.group("collection")
def collection_group():
    """Curated lists of deltas (Hub collections): create, add, remove, show, list."""


@collection_group.command("create")
@click.argument("title")
@click.option("--namespace", help="Owner (a user or an organisation you belong to); default: you.")
@click.option("--description", help="What the list is for.")
@click.option("--private", is_flag=True, help="Visible to the owner only.")
def collection_create(title, namespace, description, private):
    """Create a collection titled TITLE; prints its slug."""
    from . import collections

    click.echo(collections.create(title, namespace=namespace, description=description, private=private))


@collection_group.command("add")
@click.argument("slug")
@click.argument("repo")
@click.option("--note", help="Why it is in the list (shown with the item).")
@click.option("--no-validate", is_flag=True, help="Add without validating the delta first.")
def collection_add(slug, repo, note, no_validate):
    """Add the published delta REPO to the collection SLUG (validated first)."""
    from . import collections

    with checklist_on_refusal():
        item = collections.add(slug, repo, note=note, validate=not no_validate)
    click.echo(f"added {item.repo_id} ({item.kind}) to {slug}")


@collection_group.command("remove")
@click.argument("slug")
@click.argument("repo")
def collection_remove(slug, repo):
    """Remove REPO from the collection SLUG."""
    from . import collections

    removed = collections.remove(slug, repo)
    click.echo(f"removed {repo} from {slug}" if removed else f"{repo} is not in {slug}")


@collection_group.command("show")
@click.argument("slug")
def collection_show(slug):
    """The collection's title and items."""
    from . import collections

    c = collections.show(slug)
    click.echo(f"{c['slug']}: {c['title']}{' (private)' if c['private'] else ''}")
    if c["description"]:
        click.echo(c["description"])
    for item in c["items"]:
        click.echo(f"  {item.repo_id}  {item.kind}{'  ' + item.note if item.note else ''}")
    if not c["items"]:
        click.echo("  (empty)")


@collection_group.command("list")
@click.option("--owner", help="Collections of this user or organisation.")
@click.option("--item", help="Collections that hold this delta repo.")
def collection_list(owner, item):
    """List collections."""
    from . import collections

    rows = collections.list_collections(owner=owner, item=item)
    for r in rows:
        click.echo(f"{r['slug']}  {r['title']}  ({r['items']} items)")
    if not rows:
        click.echo("no collections found")


@click.command("submit")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--to", "to", required=True, help="The repo NS/NAME to open the pull request on.")
@click.option("--message", help="Pull request title.")
@provenance_options
def submit_command(folder, to, message, provenance_file, **options):
    """Open a pull request on --to with the delta in FOLDER (validated first, as publish does)."""
    from .contrib import submit

    with checklist_on_refusal():
        s = submit(folder, to, declared=_declared(provenance_file, options), message=message)
    click.echo(f"opened {s.repo_id}#{s.number}{' ' + s.url if s.url else ''}")
    click.echo(f"a curator reviews it with: deltahub review {s.repo_id}#{s.number} --merge")


@click.command("review")
@click.argument("pr")
@click.option("--tasks", help="Comma-separated tasks for a quick evaluation against the base (toy:srt, gsm8k, ...).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many examples per task.")
@click.option("--merge", is_flag=True, help="Merge the pull request if it passes (and does not hurt on --tasks).")
@click.option("--no-comment", is_flag=True, help="Print the review without posting it.")
def review_command(pr, tasks, limit, merge, no_comment):
    """Review the pull request PR (NS/NAME#N): validate its revision, evaluate it, comment, and merge."""
    from .contrib import review

    names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    r = review(pr, tasks=names, limit=limit, merge=merge, comment=not no_comment)
    click.echo(r["comment"])
    if r["merged"]:
        click.echo(f"merged {pr}")
    if not r["report"].ok:
        sys.exit(1)
