"""Training settings of a delta, with the defaults of the PDA paper (arXiv 2606.00357).

One typed model is the single source of every setting: the CLI options of ``deltahub train`` and
their help, a recipe's ``train:`` section, the resume check and the ``training``/``lora`` blocks of
the adapter's ``deltahub.json`` are all derived from :class:`TrainConfig`.
"""

from __future__ import annotations

from typing import Literal

from ..settings import Settings, setting
from .objectives import OBJECTIVES

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# beta when the user gives none: length-normalised DPO works on per-token log-ratios, so it needs
# a much larger beta (Tulu 3 uses 5).
DEFAULT_BETA = {"dpo": 0.1, "dpo_norm": 5.0, "ipo": 0.1, "orpo": 0.1, "dpo+sft": 0.1, "sft": 0.1}

Objective = Literal[tuple(OBJECTIVES)]  # type: ignore[valid-type]
Scheduler = Literal[
    "cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial", "inverse_sqrt"
]

# fields that go to the adapter's ``lora`` block (under the key the registry schema uses) instead of ``training``
LORA_KEYS = {"rank": "r", "alpha": "alpha", "dropout": "dropout", "target_modules": "target_modules"}


class TrainConfig(Settings):
    """Hyperparameters of one delta; ``None`` means "derive it" (see :meth:`resolved`, :meth:`for_device`)."""

    objective: Objective = setting("dpo", "Loss: " + "; ".join(f"{k}: {o.why}" for k, o in OBJECTIVES.items()) + ".")
    beta: float | None = setting(
        None,
        "DPO beta (deviation from the reference). Unset: per objective, "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_BETA.items())
        + ".",
        gt=0,
    )
    sft_weight: float = setting(1.0, "Weight of the NLL-on-chosen term of dpo+sft (RPO).", ge=0)
    learning_rate: float = setting(1e-5, "Peak learning rate (AdamW).", flags=("--lr",), gt=0)
    lr_scheduler: Scheduler = setting("cosine", "Learning-rate schedule.", flags=("--scheduler",))
    warmup_ratio: float = setting(0.1, "Warm-up as a fraction of the steps.", flags=("--warmup",), ge=0, lt=1)
    weight_decay: float = setting(0.0, "AdamW weight decay.", ge=0)
    epochs: float = setting(1.0, "Passes over the training pairs.", gt=0)
    max_steps: int | None = setting(None, "Optimizer steps (overrides epochs).", ge=1)
    batch_size: int = setting(
        128,
        "Pairs per optimizer step over all processes: gradient accumulation = batch / (micro-batch x processes).",
        ge=1,
    )
    micro_batch_size: int = setting(8, "Pairs per forward pass per process (device).", ge=1)
    rank: int = setting(64, "LoRA rank r.", ge=1)
    alpha: float = setting(128.0, "LoRA alpha (scale = alpha / r).", gt=0)
    dropout: float = setting(0.05, "LoRA dropout.", ge=0, lt=1)
    target_modules: list[str] = setting(
        lambda: list(ALL_PROJECTIONS), "Linear layers that get LoRA factors.", min_length=1
    )
    max_length: int | None = setting(
        1024,
        "Max tokens of prompt + answer; longer pairs are truncated. It bounds activation memory and padding.",
        ge=1,
    )
    seed: int = setting(0, "Seed of data order, held-out split and LoRA init.")
    precompute_ref: bool = setting(
        True, "Precompute the reference log-probs once before training (one forward pass per pair saved every step)."
    )
    gradient_checkpointing: bool | None = setting(
        None,
        "Recompute activations in the backward pass: ~1/L of the activation memory for ~30% more compute. "
        "Unset: on for GPU runs (as the PDA paper trains 8B at 8,192 tokens), off on CPU.",
    )
    group_by_length: bool = setting(
        False,
        "Put pairs of similar length in the same micro-batch (transformers' LengthGroupedSampler) so less "
        "compute goes to padding; pairs still each appear once per epoch, but batches are no longer uniform draws.",
    )
    eval_fraction: float = setting(0.05, "Held-out slice of the pairs for reward accuracy.", ge=0, lt=1)
    max_eval_pairs: int = setting(512, "At most this many held-out pairs.", ge=1)
    bf16: bool | None = setting(
        None, "Precision. Unset: bf16 on a GPU that supports it, fp32 on CPU.", off_flag="--fp32"
    )
    logging_steps: int = setting(1, "Log the curves every N steps.", ge=1)
    save_steps: int = setting(50, "Checkpoint every N steps (what a killed run resumes from).", ge=1)
    save_total_limit: int = setting(2, "Checkpoints kept in OUT.partial/.", ge=1)
    strict: bool = setting(False, "Stop when a health check fires (collapse, no delta).")
    collapse_nats: float = setting(0.5, "Health: chosen log-prob drop (nats) that counts as likelihood collapse.", gt=0)
    min_margin_nats: float = setting(0.1, "Health: margin (nats) below which there is 'no delta'.", ge=0)
    health_after: float = setting(0.5, "Health: fraction of the steps before 'no delta' may fire.", ge=0, le=1)

    def resolved(self, world_size: int = 1) -> TrainConfig:
        """A copy with the device-independent defaults filled in (beta per objective; the micro-batch at
        most the batch's share of one of ``world_size`` processes)."""
        share = max(1, self.batch_size // world_size)
        return self.model_copy(
            update={
                "beta": self.beta if self.beta is not None else DEFAULT_BETA[self.objective],
                "micro_batch_size": min(self.micro_batch_size, share),
                "target_modules": list(self.target_modules),
            }
        )

    def for_device(self, cuda: bool, bf16_capable: bool, world_size: int = 1) -> TrainConfig:
        """A resolved copy with the device-dependent defaults filled in (precision, gradient checkpointing)."""
        cfg = self.resolved(world_size)
        return cfg.model_copy(
            update={
                "bf16": cfg.bf16 if cfg.bf16 is not None else bool(cuda and bf16_capable),
                "gradient_checkpointing": cfg.gradient_checkpointing
                if cfg.gradient_checkpointing is not None
                else cuda,
            }
        )

    def accumulation_steps(self, world_size: int = 1) -> int:
        """Micro-batches per optimizer step and process, so that every step sees ``batch_size`` pairs
        whatever the number of processes; a batch that does not divide is a one-line error."""
        from ..distributed import accumulation_steps

        return accumulation_steps(self.batch_size, self.micro_batch_size, world_size)

    def provenance(self) -> tuple[dict, dict]:
        """The ``training`` and ``lora`` blocks of ``deltahub.json``: every setting, once."""
        data = self.to_dict()
        lora = {key: data.pop(name) for name, key in LORA_KEYS.items()}
        if self.objective != "dpo+sft":
            data["sft_weight"] = None  # not used by the loss: do not suggest it mattered
        return data, lora
