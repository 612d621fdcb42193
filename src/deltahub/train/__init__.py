"""Train preference deltas: DPO-family LoRA adapters on a student with TRL + PEFT."""

from .config import ALL_PROJECTIONS, DEFAULT_BETA, TrainConfig
from .health import DeltaHealthWarning, HealthEvent, check_collapse, check_no_delta
from .objectives import OBJECTIVES
from .trainer import train_delta, work_dir

__all__ = ["ALL_PROJECTIONS", "DEFAULT_BETA", "OBJECTIVES", "DeltaHealthWarning", "HealthEvent", "TrainConfig",
           "check_collapse", "check_no_delta", "train_delta", "work_dir"]
