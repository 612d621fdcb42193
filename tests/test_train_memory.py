"""The memory and padding switches of training change how the work is done, not what is learned:
gradient checkpointing gives the same loss and gradients, length grouping the same pairs with less padding."""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors.torch import load_file
from test_train import separable_pairs, write_jsonl

from deltahub.train import TrainConfig, train_delta

ONE_STEP = dict(
    max_steps=1,
    batch_size=4,
    micro_batch_size=4,
    rank=4,
    alpha=8,
    eval_fraction=0.0,
    learning_rate=5e-3,
    precompute_ref=False,
    seed=3,
)


def test_gradient_checkpointing_gives_the_same_step(tiny_model, tmp_path):
    """One optimizer step with and without checkpointing: equal loss, gradient norm and updated LoRA weights."""
    pairs = write_jsonl(tmp_path / "p.jsonl", separable_pairs(4))
    runs = {}
    for gc in (False, True):
        out = train_delta(
            tiny_model, pairs, tmp_path / f"gc-{gc}", TrainConfig(**ONE_STEP, gradient_checkpointing=gc), progress=False
        )
        log = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
        meta = json.loads((out / "deltahub.json").read_text())
        assert meta["training"]["gradient_checkpointing"] is gc and meta["training"]["device"] == "cpu"
        runs[gc] = log, load_file(str(out / "adapter_model.safetensors"))
    (plain, w_plain), (ckpt, w_ckpt) = runs[False], runs[True]
    assert ckpt["loss"] == pytest.approx(plain["loss"], rel=1e-5)
    assert ckpt["grad_norm"] == pytest.approx(plain["grad_norm"], rel=1e-4) and plain["grad_norm"] > 0
    assert w_ckpt.keys() == w_plain.keys()
    for key in w_plain:
        torch.testing.assert_close(w_ckpt[key], w_plain[key], rtol=1e-4, atol=1e-6)


def _mixed_length_pairs(n: int) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        words = " ".join("ab" for _ in range(rng.choice([1, 2, 40, 80])))
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"{i}: {words}"}],
                "chosen": [{"role": "assistant", "content": "yes"}],
                "rejected": [{"role": "assistant", "content": "no"}],
            }
        )
    return rows


def _padding(tiny_model, rows, group: bool, tmp_path):
    """(padded positions, the multiset of real sequence lengths) over one epoch of the real train dataloader."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from deltahub.train.data import load_training_pairs
    from deltahub.train.trainer import _build_trainer

    cfg = TrainConfig(**{**ONE_STEP, "batch_size": 2, "micro_batch_size": 2, "group_by_length": group})
    cfg = cfg.for_device(cuda=False, bf16_capable=False)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    data = (load_training_pairs(rows).dataset, None)
    trainer = _build_trainer(cfg, tmp_path / f"work-{group}", False, model, tok, data, [])
    pad, lengths = 0, []
    for batch in trainer.get_train_dataloader():
        mask = batch["attention_mask"]
        pad += int((mask == 0).sum())
        lengths += mask.sum(dim=1).tolist()
    return pad, sorted(lengths)


def test_length_grouping_cuts_padding_and_keeps_every_pair(tiny_model, tmp_path):
    """transformers sorts megabatches of min(N / (4 x batch), 50) batches: 128 pairs in batches of 2 give 16."""
    rows = _mixed_length_pairs(128)
    random_pad, random_lengths = _padding(tiny_model, rows, False, tmp_path)
    grouped_pad, grouped_lengths = _padding(tiny_model, rows, True, tmp_path)
    assert grouped_lengths == random_lengths, "every pair once per epoch, same tokens"
    assert grouped_pad < 0.5 * random_pad, (grouped_pad, random_pad)


def test_length_grouping_trains(tiny_model, tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", separable_pairs(4))
    out = train_delta(
        tiny_model, pairs, tmp_path / "out", TrainConfig(**{**ONE_STEP, "group_by_length": True}), progress=False
    )
    meta = json.loads((out / "deltahub.json").read_text())
    assert meta["training"]["group_by_length"] is True and meta["training"]["steps"] == 1
