"""One stage of a recipe run (generate, train or evaluate) from a JSON spec, in this process or under a launcher.

``deltahub run`` calls :func:`run_stage` for every generation, training and evaluation stage. Where the
recipe's ``launch:`` section names the stage, it writes the spec to a file and runs
``LAUNCHER ... -m deltahub.pipeline.stage SPEC.json`` instead: every process the launcher starts makes the same
library call (``generate_pairs``, ``train_delta``, the recipe's scorer), which divides the work over them,
and the main process writes the result beside the spec for ``deltahub run`` to read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

STAGE_KINDS = ("generate", "train", "eval")


def run_stage(spec: dict[str, Any], log=None) -> Any:
    """Make the library call a spec names; its ``kwargs`` are JSON (settings as dicts, typed here)."""
    kind, kwargs = spec["stage"], dict(spec["kwargs"])
    if kind == "generate":
        from ..generate import FilterSettings, GenerationSettings, generate_pairs

        kwargs["settings"] = GenerationSettings(**kwargs["settings"])
        kwargs["filters"] = FilterSettings(**kwargs["filters"])
        return str(generate_pairs(**kwargs, log=log))
    if kind == "train":
        from ..train import TrainConfig, train_delta

        kwargs["config"] = TrainConfig(**kwargs["config"])
        return str(train_delta(**kwargs, log=log))
    if kind == "eval":
        from ..recipe import EvalSpec
        from .run import _scorer

        score = _scorer(EvalSpec(**kwargs.pop("eval")), kwargs.pop("skills"))
        return score(**kwargs)
    raise ValueError(f"unknown stage {kind!r}; known: {', '.join(STAGE_KINDS)}")


def main(argv: list[str] | None = None) -> None:
    """``python -m deltahub.pipeline.stage SPEC.json``: run the stage; the main process writes ``spec["result"]``."""
    from ..atomic import atomic_write_text
    from ..cli import error_line
    from ..distributed import current
    from ..errors import DeltahubError

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        click.echo(error_line("usage: python -m deltahub.pipeline.stage SPEC.json", None), err=True)
        sys.exit(2)
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    try:
        value = run_stage(spec, log=lambda line: click.echo(line, err=True))
    except DeltahubError as exc:
        if current().is_main or not getattr(exc, "same_on_every_rank", False):
            click.secho(error_line(exc.message, exc.fix), fg="red", err=True)
        sys.exit(2)
    if current().is_main:
        atomic_write_text(spec["result"], json.dumps({"value": value}))


if __name__ == "__main__":
    main()
