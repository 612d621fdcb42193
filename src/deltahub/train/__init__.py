"""Train preference deltas: DPO-family LoRA adapters on a student with TRL + PEFT.

The settings are importable without transformers (recipe validation and ``--help`` stay fast);
the trainer and the health callbacks load it on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import ALL_PROJECTIONS, DEFAULT_BETA, TrainConfig
from .objectives import OBJECTIVES

_LAZY = {
    "DeltaHealthWarning": "health",
    "HealthEvent": "health",
    "check_collapse": "health",
    "check_no_delta": "health",
    "train_delta": "trainer",
    "work_dir": "trainer",
}

__all__ = ["ALL_PROJECTIONS", "DEFAULT_BETA", "OBJECTIVES", "TrainConfig", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
