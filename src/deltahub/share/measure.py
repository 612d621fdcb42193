"""Measure a delta's gain over its base on some tasks: the number ``list --sort gain`` ranks by.

The base and base+adapter are scored on the same examples by :func:`deltahub.evaluate.evaluate`
(toy skills or lm-eval tasks); the gain is their difference per task, recorded in the block's ``gain``
(marked ``measured``) and rendered into the card's ``model-index``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PREFERRED_METRICS = ("exact_match", "acc_norm", "acc", "f1")


def primary_metric(metrics: dict[str, float]) -> str:
    """The metric a task is ranked by: exact match, then accuracy, then F1, else the first one reported."""
    return next((m for m in PREFERRED_METRICS if m in metrics), next(iter(metrics)))


def gain_block(base_scores: dict[str, dict[str, float]], delta_scores: dict[str, dict[str, float]]) -> dict[str, Any]:
    """``{"metric", "value", "baseline", "tasks": {task: {"metric", "value", "baseline"}}}``; value = mean gain."""
    tasks: dict[str, dict[str, Any]] = {}
    for task, metrics in base_scores.items():
        metric = primary_metric(metrics)
        tasks[task] = {
            "metric": metric,
            "baseline": metrics[metric],
            "value": delta_scores[task][metric] - metrics[metric],
        }
    names = {t["metric"] for t in tasks.values()}
    return {
        "metric": names.pop() if len(names) == 1 else "score",
        "value": sum(t["value"] for t in tasks.values()) / len(tasks),
        "baseline": sum(t["baseline"] for t in tasks.values()) / len(tasks),
        "tasks": tasks,
    }


def measure_gain(adapter: str | Path, tasks: list[str], limit: int | None = None, **evaluate_options: Any) -> dict:
    """Score the adapter's base and base+adapter on ``tasks`` and return the block's ``gain``."""
    from ..evaluate import evaluate
    from ..evaluate.core import resolve_model

    base, adapter_path = resolve_model(adapter)
    base_scores = evaluate(base, tasks, limit=limit, **evaluate_options)
    delta_scores = evaluate(base, tasks, adapter=adapter_path, limit=limit, **evaluate_options)
    return gain_block(base_scores, delta_scores)
