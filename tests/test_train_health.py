"""Each health check fires on pairs built to trigger it, and stays quiet on a healthy run."""

from __future__ import annotations

import json
import warnings

import pytest
from test_train import write_jsonl

from deltahub.errors import DeltahubError
from deltahub.train import DeltaHealthWarning, TrainConfig, check_collapse, check_no_delta, train_delta


def collapse_pairs() -> list[dict]:
    """chosen = a^k b, rejected = a^(k+1): pushing 'a' down to reject also drags chosen's k a's down."""
    return [
        {
            "prompt": [{"role": "user", "content": "go"}],
            "chosen": [{"role": "assistant", "content": "a" * k + "b"}],
            "rejected": [{"role": "assistant", "content": "a" * (k + 1)}],
        }
        for k in range(4, 20)
    ]


def identical_pairs() -> list[dict]:
    """chosen == rejected: there is no delta to learn."""
    return [{"prompt": f"say {i}", "chosen": f"ok {i}", "rejected": f"ok {i}"} for i in range(8)]


def run(tiny_model, tmp_path, rows, strict=False, steps=6, name="adapter"):
    pairs = write_jsonl(tmp_path / f"{name}.jsonl", rows)
    cfg = TrainConfig(
        max_steps=steps,
        batch_size=len(rows),
        micro_batch_size=len(rows),
        learning_rate=1e-2,
        warmup_ratio=0.0,
        rank=4,
        alpha=8,
        eval_fraction=0.0,
        save_steps=100,
        strict=strict,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeltaHealthWarning)
        out = train_delta(tiny_model, pairs, tmp_path / name, cfg, progress=False)
    return out, [str(w.message) for w in caught if issubclass(w.category, DeltaHealthWarning)]


@pytest.mark.slow
def test_likelihood_collapse_warns(tiny_model, tmp_path):
    out, messages = run(tiny_model, tmp_path, collapse_pairs())
    assert any(m.startswith("likelihood collapse") for m in messages)
    h = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert h[-1]["rewards/chosen"] < 0 < h[-1]["rewards/margins"]  # the signature really is in the curves
    events = json.loads((out / "deltahub.json").read_text())["metrics"]["health"]
    assert [e["check"] for e in events] == ["likelihood_collapse"]


@pytest.mark.slow
def test_strict_stops_on_collapse_and_writes_nothing(tiny_model, tmp_path):
    with pytest.raises(DeltahubError, match="likelihood collapse.*stopped at step [1-5]\\b") as exc:
        run(tiny_model, tmp_path, collapse_pairs(), strict=True, steps=12)
    assert "dpo+sft" in exc.value.fix
    assert not (tmp_path / "adapter").exists()


def test_no_delta_warns_on_identical_pairs(tiny_model, tmp_path):
    out, messages = run(tiny_model, tmp_path, identical_pairs(), steps=3)
    assert any(m.startswith("no delta to learn") for m in messages)
    assert not any(m.startswith("likelihood collapse") for m in messages)
    events = json.loads((out / "deltahub.json").read_text())["metrics"]["health"]
    assert [e["check"] for e in events] == ["no_delta"]


def log(step, chosen, margin):
    return {"step": step, "rewards/chosen": chosen, "rewards/margins": margin}


def test_checks_on_logged_histories():
    healthy = [log(1, 0.0, 0.0), log(2, 0.05, 0.1), log(3, 0.1, 0.3)]
    collapse = [log(1, 0.0, 0.0), log(2, -0.1, 0.1), log(3, -0.3, 0.2)]
    flat = [log(1, 0.0, 0.0), log(2, 0.0, 0.001), log(3, 0.0, -0.002)]
    late = [log(1, 0.0, 0.0), log(2, 0.0, 0.0), log(3, 0.01, 0.05)]  # warm-up zeros, then it moves
    assert check_no_delta(late, 0.1, True, 0.1) is None
    assert check_no_delta(flat[:2], 0.1, True, 0.1) is None  # too few logs to call it
    assert check_collapse(healthy, 0.1, True, 0.5) is None
    assert check_no_delta(healthy, 0.1, True, 0.1) is None
    ev = check_collapse(collapse, 0.1, True, 0.5)
    assert ev.check == "likelihood_collapse" and ev.step == 3 and "3.00 nats" in ev.message
    assert check_no_delta(collapse, 0.1, True, 0.1) is None
    assert check_no_delta(flat, 0.1, True, 0.1).check == "no_delta"
    assert check_collapse(flat, 0.1, True, 0.5) is None
    # beta-independent: the same log-prob movement at beta 5 (dpo_norm) reads the same
    scaled = [
        {**e, "rewards/chosen": e["rewards/chosen"] * 50, "rewards/margins": e["rewards/margins"] * 50}
        for e in collapse
    ]
    assert check_collapse(scaled, 5.0, True, 0.5).check == "likelihood_collapse"
    # reference-free (ORPO): shifts are measured from the first log, not from zero
    offset = [
        {**e, "rewards/chosen": e["rewards/chosen"] - 2.0, "rewards/margins": e["rewards/margins"] + 1.0}
        for e in healthy
    ]
    assert check_collapse(offset, 0.1, False, 0.5) is None
    assert check_no_delta(offset, 0.1, False, 0.1) is None
    assert check_collapse(offset, 0.1, True, 0.5) is not None  # with a reference, -2 means collapse
    assert check_collapse(healthy[:1], 0.1, True, 0.5) is None  # one log is not a trend
