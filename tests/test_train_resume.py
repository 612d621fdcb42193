"""A killed training run restarted with the same arguments continues from its checkpoint and
ends with the same adapter as an uninterrupted run (seeded, deterministic)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_train import separable_pairs, write_jsonl
from transformers import TrainerCallback

from deltahub.errors import InputError
from deltahub.train import TrainConfig, train_delta, work_dir


class Killed(Exception):
    pass


class KillAfterSave(TrainerCallback):
    """Simulate a kill right after the checkpoint of ``step`` is on disk."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Killed(state.global_step)


class StepCounter(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


CFG = TrainConfig(
    max_steps=6,
    batch_size=4,
    micro_batch_size=4,
    learning_rate=5e-3,
    rank=4,
    alpha=8,
    eval_fraction=0.0,
    save_steps=3,
    seed=7,
)


@pytest.mark.slow
def test_killed_run_resumes_and_matches_uninterrupted(tiny_model, tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", separable_pairs(12, seed=3))
    whole = train_delta(tiny_model, pairs, tmp_path / "whole", CFG, progress=False)

    out = tmp_path / "resumed"
    with pytest.raises(Killed):
        train_delta(tiny_model, pairs, out, CFG, progress=False, callbacks=[KillAfterSave(3)])
    assert not out.exists()  # no partial output where a complete one is expected
    assert (work_dir(out) / "checkpoint-3").is_dir()

    counter = StepCounter()
    train_delta(tiny_model, pairs, out, CFG, progress=False, callbacks=[counter])
    assert counter.steps == [4, 5, 6]  # continued, not restarted
    assert not work_dir(out).exists()
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]

    a = load_file(whole / "adapter_model.safetensors")
    b = load_file(out / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    assert any(a[k].abs().max() > 0 for k in a if "lora_B" in k)


def test_partial_run_with_other_settings_is_refused(tiny_model, tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", separable_pairs(8))
    out = tmp_path / "adapter"
    with pytest.raises(Killed):
        train_delta(
            tiny_model,
            pairs,
            out,
            TrainConfig(**{**CFG.to_dict(), "max_steps": 2, "save_steps": 1}),
            progress=False,
            callbacks=[KillAfterSave(1)],
        )
    with pytest.raises(InputError, match="partial run with other settings.*learning_rate"):
        train_delta(
            tiny_model,
            pairs,
            out,
            TrainConfig(**{**CFG.to_dict(), "max_steps": 2, "save_steps": 1, "learning_rate": 1e-3}),
            progress=False,
        )
    assert (work_dir(out) / "checkpoint-1").is_dir()  # kept for the user to resume
