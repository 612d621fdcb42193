"""The settings of one compose run, declared once: the CLI options derive from :class:`ComposeSettings`."""

from __future__ import annotations

from typing import Literal

from ..merge.registry import METHODS, default_method
from ..settings import Settings, setting

Method = Literal[tuple(METHODS)]  # type: ignore[valid-type]  (the merge package's registry, plugins' included)


class ComposeSettings(Settings):
    """How candidates are scored and selected."""

    tasks: list[str] | None = setting(
        None,
        "Validation tasks (required): toy skills (toy:srt) and/or lm-eval tasks "
        "that have a validation split (never their test split).",
        min_length=1,
    )
    method: Method = setting(default_method(), "Merge method; its parameters are the merge options below.")
    max_k: int | None = setting(None, "Select at most K deltas.", flag="--max", ge=1)
    min_gain: float = setting(0.0, "Add a delta only if it raises the validation score by more than this.", ge=0)
    allow_harmful: bool = setting(
        False,
        "Let a delta that lowers the student's validation score on its own still "
        "join a merge (by default it is left out).",
    )
    n: int = setting(100, "Toy validation questions per skill.", ge=1)
    limit: int | None = setting(None, "lm-eval: at most this many validation examples per task.", ge=1)
    include_path: str | None = setting(None, "Folder of custom lm-eval task YAMLs.")
    full: bool = setting(False, "Write base + merged update as a full model instead of an adapter.")
    held_out: bool = setting(
        False,
        "Also score the student, the result and all candidates merged on held-out data "
        "(toy: the other half of the eval split; lm-eval: the test split).",
    )
