"""Preference pairs built from the toy world's exact answers, for deltas of known quality.

``near_miss_pairs`` prefers the right answer over a near miss (two neighbouring characters swapped): a
helpful delta's data. With ``swap=True`` it prefers the near miss: a deliberately harmful delta, the kind
``deltahub compose`` must leave out. ``train_trl_delta`` trains one with TRL's DPOTrainer directly (not
``deltahub train``), as a contributor outside deltahub would.
"""

from __future__ import annotations

import random
from pathlib import Path

from .skills import sample

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def near_miss(answer: str, rng: random.Random) -> str:
    """A near miss: two neighbouring characters swapped (or one changed when they are equal)."""
    s = list(answer)
    i = rng.randrange(len(s) - 1)
    s[i], s[i + 1] = s[i + 1], s[i]
    if s == list(answer):
        s[i] = "9" if s[i] != "9" else "0"
    return "".join(s)


def near_miss_pairs(skill: str, n: int, seed: int, swap: bool = False) -> list[dict]:
    """Pairs on the 'pairs' split: the right answer over a near miss, or with ``swap`` the near miss over the
    right answer (a deliberately harmful delta's data: it teaches the near misses)."""
    rng = random.Random(seed)
    rows = []
    for q, a in sample(skill, "pairs", n, seed=seed):
        good, bad = (near_miss(a, rng), a) if swap else (a, near_miss(a, rng))
        rows.append(
            {
                "prompt": [{"role": "user", "content": q}],
                "chosen": [{"role": "assistant", "content": good}],
                "rejected": [{"role": "assistant", "content": bad}],
            }
        )
    return rows


def train_trl_delta(
    student: Path,
    rows: list[dict],
    out: Path,
    steps: int = 32,
    lr: float = 3e-3,
    batch: int = 16,
    r: int = 4,
    alpha: int = 8,
    beta: float = 0.1,
    seed: int = 0,
) -> Path:
    """A LoRA delta of ``student`` trained with TRL's DPOTrainer on ``rows`` (DPO + NLL on chosen, linear decay,
    reference log-probs precomputed with the adapter disabled)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tok = AutoTokenizer.from_pretrained(student)
    model = AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32)
    cfg = DPOConfig(
        output_dir=str(out.parent / f"{out.name}-trainer"),
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=lr,
        beta=beta,
        loss_type=["sigmoid", "sft"],
        loss_weights=[1.0, 1.0],
        max_length=64,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        save_strategy="no",
        logging_steps=max(1, steps // 5),
        report_to="none",
        seed=seed,
        disable_tqdm=True,
        precompute_ref_log_probs=True,
    )
    lora = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, task_type="CAUSAL_LM", target_modules=ALL_PROJECTIONS)
    trainer = DPOTrainer(
        model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok, peft_config=lora
    )
    trainer.train()
    trainer.model.save_pretrained(out)
    return out
