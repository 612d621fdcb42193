"""Training settings of a delta, with the defaults of the PDA paper (arXiv 2606.00357).

One dataclass, so the CLI, recipes and the toy world pass the same object, and the adapter's
``deltahub.json`` records every field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import InputError

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# beta when the user gives none: length-normalised DPO works on per-token log-ratios, so it needs
# a much larger beta (Tulu 3 uses 5).
DEFAULT_BETA = {"dpo": 0.1, "dpo_norm": 5.0, "ipo": 0.1, "orpo": 0.1, "dpo+sft": 0.1, "sft": 0.1}


@dataclass
class TrainConfig:
    """Hyperparameters of one delta; ``None`` means "derive it" (see :meth:`resolved`)."""

    objective: str = "dpo"
    beta: float | None = None
    sft_weight: float = 1.0  # weight of the NLL-on-chosen term of dpo+sft (RPO)
    learning_rate: float = 1e-5
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 128  # effective pairs per optimizer step (gradient accumulation fills it)
    micro_batch_size: int = 8  # pairs per forward pass per device
    rank: int = 64
    alpha: float = 128.0
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(ALL_PROJECTIONS))
    max_length: int | None = 1024
    seed: int = 0
    precompute_ref: bool = True
    eval_fraction: float = 0.05  # held-out slice for reward accuracy
    max_eval_pairs: int = 512
    bf16: bool | None = None  # None: bf16 on a GPU that supports it, fp32 on CPU
    logging_steps: int = 1
    save_steps: int = 50  # checkpoint cadence for resume
    save_total_limit: int = 2
    # health checks (in nats of log-probability, independent of beta)
    strict: bool = False
    collapse_nats: float = 0.5
    min_margin_nats: float = 0.1
    health_after: float = 0.5  # fraction of steps before "no delta" may fire

    def resolved(self) -> TrainConfig:
        """A copy with defaults filled in and values checked; raises InputError on nonsense."""
        from .objectives import OBJECTIVES

        if self.objective not in OBJECTIVES:
            raise InputError(f"unknown objective {self.objective!r}", f"use one of: {', '.join(OBJECTIVES)}")
        cfg = dataclasses.replace(self, target_modules=list(self.target_modules))
        if cfg.beta is None:
            cfg.beta = DEFAULT_BETA[cfg.objective]
        checks = [
            (cfg.beta > 0, "--beta must be > 0"),
            (cfg.learning_rate > 0, "--lr must be > 0"),
            (cfg.rank >= 1, "--rank must be >= 1"),
            (cfg.alpha > 0, "--alpha must be > 0"),
            (0 <= cfg.dropout < 1, "--dropout must be in [0, 1)"),
            (cfg.batch_size >= 1 and cfg.micro_batch_size >= 1, "batch sizes must be >= 1"),
            (cfg.max_steps is None or cfg.max_steps >= 1, "--max-steps must be >= 1"),
            (0 <= cfg.warmup_ratio < 1, "--warmup must be in [0, 1)"),
            (cfg.epochs > 0, "--epochs must be > 0"),
            (0 <= cfg.eval_fraction < 1, "--eval-fraction must be in [0, 1)"),
            (bool(cfg.target_modules), "--target-modules must name at least one module"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message, "fix the value and run again")
        cfg.micro_batch_size = min(cfg.micro_batch_size, cfg.batch_size)
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
