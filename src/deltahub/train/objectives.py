"""Map deltahub's objective names to TRL trainer settings.

``dpo``, ``dpo_norm``, ``ipo`` and ``dpo+sft`` are loss types of TRL's ``DPOTrainer`` (reference =
the student with the adapter disabled); ``orpo`` is reference-free and runs on TRL's ORPO trainer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    name: str
    trainer: str  # "dpo" | "orpo"
    loss_type: tuple[str, ...] = ()
    why: str = ""

    @property
    def uses_reference(self) -> bool:
        return self.trainer == "dpo"


OBJECTIVES: dict[str, Objective] = {
    "dpo": Objective("dpo", "dpo", ("sigmoid",), "DPO (Rafailov et al.), the PDA default"),
    "dpo_norm": Objective("dpo_norm", "dpo", ("sigmoid_norm",), "length-normalised DPO as in Tulu 3 (beta ~ 5)"),
    "ipo": Objective("ipo", "dpo", ("ipo",), "IPO: squared loss on the per-token log-ratio gap"),
    "dpo+sft": Objective(
        "dpo+sft", "dpo", ("sigmoid", "sft"), "DPO plus NLL on chosen (RPO); resists likelihood collapse"
    ),
    "sft": Objective("sft", "dpo", ("sft",), "control: NLL on the chosen answers only, no preference signal"),
    "orpo": Objective("orpo", "orpo", (), "ORPO: reference-free odds-ratio loss (PDA's choice for agentic search)"),
}


def trl_loss_kwargs(objective: str, sft_weight: float) -> dict:
    """DPOConfig keyword arguments selecting the loss of ``objective`` (empty for ORPO)."""
    obj = OBJECTIVES[objective]
    if obj.trainer != "dpo":
        return {}
    kwargs: dict = {"loss_type": list(obj.loss_type)}
    if len(obj.loss_type) > 1:
        kwargs["loss_weights"] = [1.0, float(sft_weight)]
    return kwargs
