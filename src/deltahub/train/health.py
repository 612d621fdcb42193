"""Health checks on the delta signal, read from the metrics TRL logs.

Two failure signatures of delta learning (training.md §2):

* **likelihood collapse**: the chosen log-probability falls below where it started while the
  margin grows -- both likelihoods fall, the rejected faster; the adapter learns "say less of
  everything" rather than the delta.
* **no delta**: margins stay near zero -- chosen and rejected are too alike to learn from.

Thresholds are in nats of log-probability (reward / beta), so they do not depend on beta.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

from transformers import TrainerCallback


class DeltaHealthWarning(UserWarning):
    """A health check fired during training."""


@dataclass
class HealthEvent:
    check: str  # "likelihood_collapse" | "no_delta"
    step: int
    message: str
    fix: str

    def to_dict(self) -> dict:
        return asdict(self)


def _nats(entry: dict, key: str, beta: float) -> float | None:
    value = entry.get(key)
    return None if value is None else float(value) / beta


def check_collapse(history: list[dict], beta: float, uses_reference: bool, collapse_nats: float) -> HealthEvent | None:
    """Fire when chosen fell > collapse_nats below its start while the margin grew past it."""
    logs = [e for e in history if "rewards/chosen" in e and "rewards/margins" in e]
    if len(logs) < 2:
        return None
    first, last = logs[0], logs[-1]
    chosen0 = 0.0 if uses_reference else _nats(first, "rewards/chosen", beta)
    margin0 = 0.0 if uses_reference else _nats(first, "rewards/margins", beta)
    chosen_shift = _nats(last, "rewards/chosen", beta) - chosen0
    margin_shift = _nats(last, "rewards/margins", beta) - margin0
    if chosen_shift < -collapse_nats and margin_shift > collapse_nats:
        return HealthEvent(
            "likelihood_collapse",
            int(last.get("step", 0)),
            f"likelihood collapse: chosen log-prob fell {-chosen_shift:.2f} nats below its start while the "
            f"margin grew {margin_shift:.2f} nats (both likelihoods fall, the rejected faster)",
            "use --objective dpo+sft (NLL on chosen), a lower --lr, or a larger --beta",
        )
    return None


def check_no_delta(
    history: list[dict], beta: float, uses_reference: bool, min_margin_nats: float, window: int = 3
) -> HealthEvent | None:
    """Fire when none of the last ``window`` logs moved the margin by min_margin_nats."""
    logs = [e for e in history if "rewards/margins" in e]
    if len(logs) < window:
        return None
    margin0 = 0.0 if uses_reference else _nats(logs[0], "rewards/margins", beta)
    recent = [_nats(e, "rewards/margins", beta) - margin0 for e in logs[-window:]]
    if max(recent) < min_margin_nats:
        return HealthEvent(
            "no_delta",
            int(logs[-1].get("step", 0)),
            f"no delta to learn: margins stay near zero (at most {max(recent):+.3f} nats over the last "
            f"{window} logs, step {logs[-1].get('step', '?')})",
            "check that chosen and rejected differ (a larger weak-weaker gap), or raise --lr / --max-steps",
        )
    return None


class HealthMonitor(TrainerCallback):
    """Run the checks at every log; warn once per check, stop training in strict mode."""

    def __init__(
        self,
        beta: float,
        uses_reference: bool,
        strict: bool = False,
        collapse_nats: float = 0.5,
        min_margin_nats: float = 0.1,
        health_after: float = 0.5,
    ):
        self.beta, self.uses_reference, self.strict = beta, uses_reference, strict
        self.collapse_nats, self.min_margin_nats, self.health_after = collapse_nats, min_margin_nats, health_after
        self.events: list[HealthEvent] = []

    def _fire(self, event: HealthEvent | None, control) -> None:
        if event is None or any(e.check == event.check for e in self.events):
            return
        self.events.append(event)
        warnings.warn(f"{event.message} -- {event.fix}", DeltaHealthWarning, stacklevel=2)
        if self.strict:
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        history = state.log_history  # restored from the checkpoint on resume
        self._fire(check_collapse(history, self.beta, self.uses_reference, self.collapse_nats), control)
        if state.max_steps and state.global_step >= self.health_after * state.max_steps:
            self._fire(check_no_delta(history, self.beta, self.uses_reference, self.min_margin_nats), control)
