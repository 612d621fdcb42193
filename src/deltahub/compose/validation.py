"""What compose selects on: a validation split, never the held-out test split.

* Toy skills (``toy:srt`` or ``srt``): the toy world has train, pairs and eval splits. Compose cuts the
  eval split in two halves by a salted hash of each question: it selects on the *validation* half and
  reports held-out scores on the *test* half, so the questions that judge the result never chose it.
* lm-eval tasks: each task is re-declared (a YAML that includes the task's own) to run on its
  ``validation_split``; a task without one is refused rather than selected on its test split. Held-out
  scores use the task as it is (its test split).

A task's score is its primary metric (exact match, then accuracy); the validation score is their mean.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..atomic import atomic_write_text
from ..errors import InputError
from ..share.measure import primary_metric

Half = Literal["validation", "test"]
HALF_SALT = "deltahub-compose/v1"
VALIDATION_SUFFIX = "__deltahub_validation"


def toy_half(question: str) -> Half:
    """Which half of the toy eval split ``question`` is in (a hash independent of the split's own hash)."""
    return "validation" if hashlib.sha256(f"{HALF_SALT}/{question}".encode()).digest()[0] % 2 == 0 else "test"


def toy_items(skill: str, half: Half, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (question, answer) pairs of ``skill`` from one half of the toy eval split, reproducible."""
    from ..toy.skills import sample

    draw = 2 * n + 16
    while True:
        picked = [qa for qa in sample(skill, "eval", draw, seed=seed) if toy_half(qa[0]) == half]
        if len(picked) >= n:
            return picked[:n]
        draw *= 2  # sample() extends the same sequence: the first picks do not change


def toy_name(task: str) -> str | None:
    """The skill of a toy task (``toy:srt`` or ``srt``), None for an lm-eval task."""
    from ..evaluate import is_toy_task

    if not is_toy_task(task):
        return None
    return task.split(":", 1)[1] if task.startswith("toy:") else task


@dataclass
class ValidationSet:
    """Tasks and sizes; ``prepare`` derives the lm-eval validation tasks into ``work``."""

    tasks: list[str]
    n: int = 100  # toy questions per skill and half
    limit: int | None = None  # lm-eval examples per task
    seed: int = 0
    include_path: str | None = None
    batch_size: int = 8
    _derived: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise InputError("no validation tasks given", "pass --tasks, e.g. --tasks toy:srt,toy:rev or arc_easy")

    @property
    def toy(self) -> list[str]:
        return [s for s in map(toy_name, self.tasks) if s]

    @property
    def lm_eval(self) -> list[str]:
        return [t for t in self.tasks if toy_name(t) is None]

    def key(self) -> dict[str, Any]:
        """What determines a score (part of every cached evaluation's key)."""
        return {
            "tasks": self.tasks,
            "n": self.n,
            "limit": self.limit,
            "seed": self.seed,
            "include_path": self.include_path,
            "half_salt": HALF_SALT,
        }

    def prepare(self, work: Path) -> None:
        """Write the validation variants of the lm-eval tasks (refusing tasks without a validation split)."""
        if not self.lm_eval:
            return
        from lm_eval.tasks import TaskManager

        # indexing lm-eval's own ~15,000 task files takes ~11 s: skip it when --include-path has every task
        manager = TaskManager(include_path=self.include_path, include_defaults=False) if self.include_path else None
        if manager is None or any(t not in manager.task_index for t in self.lm_eval):
            manager = TaskManager(include_path=self.include_path)
        folder = work / "lm_eval_validation"
        for task in self.lm_eval:
            entry = manager.task_index.get(task)
            if entry is None:
                raise InputError(
                    f"unknown lm-eval task {task}", "check the name with `lm_eval ls tasks`, or pass --include-path DIR"
                )
            cfg = getattr(entry, "cfg", None) or {}
            yaml_path = getattr(entry, "yaml_path", None)
            if not cfg.get("validation_split") or yaml_path is None:
                raise InputError(
                    f"lm-eval task {task} has no validation split; selecting on its test split would "
                    "leak the held-out data into the choice",
                    "write a task YAML for your validation data (validation_split) and pass --include-path DIR",
                )
            atomic_write_text(
                folder / f"{task}{VALIDATION_SUFFIX}.yaml",
                yaml.safe_dump(
                    {
                        "include": str(Path(yaml_path).resolve()),
                        "task": f"{task}{VALIDATION_SUFFIX}",
                        "tag": [],
                        "test_split": None,
                        "validation_split": cfg["validation_split"],
                    }
                ),
            )
        self._derived = folder

    def score(self, model: Path, adapter: Path | None, half: Half = "validation") -> dict[str, float]:
        """Primary metric per task on ``half`` (validation, or the held-out test data)."""
        return self.evaluate(model, adapter, half)[0]

    def evaluate(
        self, model: Path, adapter: Path | None, half: Half = "validation"
    ) -> tuple[dict[str, float], dict[str, list[int]]]:
        """The scores, and for toy tasks each question's outcome (1 = exact match, in ``toy_items`` order): what
        a paired comparison of two models needs. lm-eval tasks give scores only."""
        scores: dict[str, float] = {}
        correct: dict[str, list[int]] = {}
        if self.toy:
            correct = self._toy(model, adapter, half)
            scores.update({task: sum(c) / len(c) for task, c in correct.items()})
        if self.lm_eval:
            scores.update(self._lm_eval(model, adapter, half))
        return scores, correct

    def _toy(self, model: Path, adapter: Path | None, half: Half) -> dict[str, list[int]]:
        from ..evaluate.core import toy_exact_match  # divided across processes under torchrun/accelerate launch
        from ..toy.evaluate import load_model

        m, tok = load_model(model, adapter)
        return {
            f"toy:{skill}": [int(hit) for hit in toy_exact_match(m, tok, toy_items(skill, half, self.n, self.seed))]
            for skill in self.toy
        }

    def _lm_eval(self, model: Path, adapter: Path | None, half: Half) -> dict[str, float]:
        from ..evaluate import evaluate

        if half == "validation":
            if self._derived is None:
                raise RuntimeError("ValidationSet.prepare(work) must run before lm-eval validation scores")
            names, include = [f"{t}{VALIDATION_SUFFIX}" for t in self.lm_eval], str(self._derived)
        else:
            names, include = list(self.lm_eval), self.include_path
        res = evaluate(
            model, names, adapter=adapter, limit=self.limit, batch_size=self.batch_size, include_path=include
        )
        return {task: res[name][primary_metric(res[name])] for task, name in zip(self.lm_eval, names, strict=True)}


def mean(scores: dict[str, float]) -> float:
    return sum(scores.values()) / len(scores)
