"""The ``deltahub`` command line: a thin click layer over the library.

Subcommands live next to the code they drive (``deltahub/<area>/cli.py`` or ``deltahub/<module>.py``)
and are imported only when invoked, so ``deltahub --help`` stays fast and one broken optional
dependency does not take the whole CLI down.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from . import __version__
from .errors import DeltahubError

# command name -> "module:attribute" of a click command; imported on first use.
COMMANDS: dict[str, tuple[str, str]] = {
    "merge": (
        "deltahub.merge.cli:merge_command",
        "Merge LoRA deltas (GAM or a baseline) into an adapter or a full model.",
    ),
    "hub": ("deltahub.server.cli:hub_group", "Run the embedded Hub-compatible registry."),
    "publish": (
        "deltahub.share.cli:publish_command",
        "Publish a pairs dataset, a deltahub adapter or any PEFT LoRA adapter with its card.",
    ),
    "pull": ("deltahub.share.cli:pull_command", "Download a delta (adapter or dataset) at a revision."),
    "list": ("deltahub.share.cli:list_command", "List published deltas for a base model."),
    "show": ("deltahub.share.cli:show_command", "Show a delta's card, files, dataset and revisions."),
    "validate": ("deltahub.share.cli:validate_command", "Check a delta (repo or folder) before trusting it."),
    "collection": ("deltahub.share.cli:collection_group", "Curated lists of deltas (Hub collections)."),
    "submit": ("deltahub.share.cli:submit_command", "Contribute a delta as a pull request on someone's repo."),
    "review": ("deltahub.share.cli:review_command", "Validate, evaluate, comment on and merge a delta PR."),
    "compose": (
        "deltahub.compose.cli:compose_command",
        "Choose deltas greedily by validation score, then merge them (GAM by default).",
    ),
    "diagnose": (
        "deltahub.diagnostic.cli:diagnose_command",
        "Cosine of each delta's update with an oracle's (per module and overall).",
    ),
    "generate": ("deltahub.generate.cli:generate_command", "Generate weak-weaker preference pairs."),
    "agreement": (
        "deltahub.generate.cli:agreement_command",
        "Measure how often the size heuristic agrees with a judge.",
    ),
    "train": ("deltahub.train.cli:train_command", "Train a DPO LoRA delta on the student."),
    "toy": ("deltahub.toy.cli:toy_group", "Build the toy world, write its prompts, evaluate on its skills."),
    "eval": ("deltahub.evaluate.cli:eval_command", "Evaluate a model or adapter (lm-eval or toy skills)."),
    "run": ("deltahub.pipeline.cli:run_command", "Run a recipe end to end (resumable)."),
    "demo": ("deltahub.pipeline.cli:demo_command", "Run the toy-world recipe on the embedded registry."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, help_text = COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("deltahub"):
                return _unavailable(name, help_text)
            raise
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str, help_text: str) -> click.Command:
    @click.command(name=name, help=help_text, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise DeltahubError(f"'deltahub {name}' is not available in this build", "upgrade deltahub")

    return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deltahub")
def cli() -> None:
    """deltahub: share and compose preference deltas (weak-weaker DPO LoRA adapters)."""


def error_line(message: str, fix: str | None) -> str:
    """The one stderr line of a user error: the problem, then the fix."""
    return f"error: {message}" + (f" (fix: {fix})" if fix else "")


def _launched_rank() -> int:
    """This process's rank under torchrun / accelerate launch (0 when launched alone)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    try:
        cli.main(args=argv, prog_name="deltahub", standalone_mode=False)
    except DeltahubError as exc:
        rank = _launched_rank()
        if rank == 0:
            click.secho(error_line(exc.message, exc.fix), fg="red", err=True)
        elif not getattr(exc, "same_on_every_rank", False):  # a launch error: rank 0 has said it already
            click.secho(f"[rank {rank}] " + error_line(exc.message, exc.fix), fg="red", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # a bad flag or value: one line too, pointing at the command's --help
        command = exc.ctx.command_path if exc.ctx else "deltahub"
        click.secho(error_line(exc.format_message(), f"see '{command} --help'"), fg="red", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.secho(error_line(exc.format_message(), None), fg="red", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
