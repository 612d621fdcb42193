"""Bad input gets one clear error before any training, and leaves no output behind."""

from __future__ import annotations

import json
import shutil

import pytest
from test_train import separable_pairs, write_jsonl

from deltahub.cli import main
from deltahub.errors import InputError
from deltahub.train import TrainConfig, train_delta
from deltahub.train.objectives import OBJECTIVES
from deltahub.train.trainer import _trainer_args, check_fits

FAST = TrainConfig(max_steps=2, batch_size=4, micro_batch_size=4, rank=4, alpha=8, eval_fraction=0.0)


@pytest.fixture()
def no_template_student(tiny_model, tmp_path):
    """The tiny student with its chat template removed (a base model)."""
    d = shutil.copytree(tiny_model, tmp_path / "base-student")
    (d / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return d


def test_missing_columns(tiny_model, tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a", "answer": "x"}])
    with pytest.raises(InputError, match="lack column.*rejected") as exc:
        train_delta(tiny_model, pairs, tmp_path / "out", FAST)
    assert "prompt/chosen/rejected" in exc.value.fix
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_mixed_formats_and_missing_pairs(tiny_model, tmp_path):
    pairs = write_jsonl(
        tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a", "rejected": [{"role": "assistant", "content": "b"}]}]
    )
    with pytest.raises(InputError, match="mix strings and chat turns"):
        train_delta(tiny_model, pairs, tmp_path / "out", FAST)
    with pytest.raises(InputError, match="not found"):
        train_delta(tiny_model, tmp_path / "nope.jsonl", tmp_path / "out", FAST)


def test_chat_pairs_need_a_chat_template(no_template_student, tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", separable_pairs(4))
    with pytest.raises(InputError, match="no chat template"):
        train_delta(no_template_student, pairs, tmp_path / "out", FAST)
    assert not (tmp_path / "out.partial").exists()


def test_plain_string_pairs_train_without_a_template(no_template_student, tmp_path):
    rows = [{"prompt": f"{i}+1=", "chosen": f"{i + 1}", "rejected": "no"} for i in range(4)]
    out = train_delta(
        no_template_student, write_jsonl(tmp_path / "p.jsonl", rows), tmp_path / "out", FAST, progress=False
    )
    assert (out / "adapter_model.safetensors").exists()


def test_lora_target_that_does_not_exist(tiny_model, tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", separable_pairs(4))
    cfg = TrainConfig(**{**FAST.to_dict(), "target_modules": ["q_proj", "qkv_proj"]})
    with pytest.raises(InputError, match="qkv_proj do not exist") as exc:
        train_delta(tiny_model, pairs, tmp_path / "out", cfg)
    assert "q_proj" in exc.value.fix and "down_proj" in exc.value.fix


def test_student_that_does_not_fit_or_is_pickled(tiny_model, tmp_path):
    with pytest.raises(InputError, match="do not fit in free RAM"):
        check_fits(str(tiny_model), cuda=False, margin=1e12)
    check_fits(str(tiny_model), cuda=False)  # a 100 kB student fits
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(tiny_model / "config.json", pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    pairs = write_jsonl(tmp_path / "p.jsonl", separable_pairs(4))
    with pytest.raises(InputError, match="pickled weights are refused"):
        train_delta(pickled, pairs, tmp_path / "out", FAST)


def test_bad_settings_and_existing_output(tiny_model, tmp_path):
    """Settings are checked when the config is built; the message names the setting, not a flag."""
    pairs = write_jsonl(tmp_path / "p.jsonl", separable_pairs(4))
    for bad, message in (
        ({"objective": "ppo"}, "objective: must be one of dpo, "),
        ({"beta": 0}, "beta: must be > 0"),
        ({"rank": 0}, "rank: must be >= 1"),
        ({"warmup_ratio": 1.5}, "warmup_ratio: must be < 1"),
        ({"beta": "high"}, "beta: must be a number (got 'high')"),
        ({"rnak": 4}, "rnak: unknown setting (did you mean 'rank'?)"),
    ):
        with pytest.raises(InputError) as exc:
            TrainConfig(**bad)
        assert exc.value.message.startswith(message) and "--" not in exc.value.message
    cfg = TrainConfig()
    with pytest.raises(InputError, match="rank: must be >= 1"):
        cfg.rank = 0  # assignment is validated too
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match="already exists"):
        train_delta(tiny_model, pairs, tmp_path / "out", FAST)


def test_cli_prints_one_line_error(tiny_model, tmp_path, capsys):
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a"}])
    with pytest.raises(SystemExit) as exc:
        main(["train", "--student", str(tiny_model), "--pairs", str(pairs), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: pairs") and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["train", "--pairs", str(pairs)])
    assert exc.value.code == 2 and "missing --student, --out" in capsys.readouterr().err


def test_defaults_are_the_pda_papers(tmp_path):
    cfg = TrainConfig().for_device(cuda=False, bf16_capable=False)
    assert (
        cfg.rank,
        cfg.alpha,
        cfg.dropout,
        cfg.learning_rate,
        cfg.lr_scheduler,
        cfg.warmup_ratio,
        cfg.batch_size,
        cfg.epochs,
        cfg.beta,
        cfg.objective,
    ) == (64, 128.0, 0.05, 1e-5, "cosine", 0.1, 128, 1.0, 0.1, "dpo")
    assert len(cfg.target_modules) == 7
    assert TrainConfig(objective="dpo_norm").resolved().beta == 5.0
    assert (cfg.bf16, cfg.gradient_checkpointing) == (False, False)
    assert TrainConfig().for_device(cuda=True, bf16_capable=True).gradient_checkpointing is True  # the paper's GPU runs
    assert (
        TrainConfig(gradient_checkpointing=False).for_device(cuda=True, bf16_capable=True).gradient_checkpointing
        is False
    )
    args = _trainer_args(cfg, tmp_path, cuda=False)
    assert args.gradient_accumulation_steps == 16 and args.per_device_train_batch_size == 8
    assert args.gradient_checkpointing is False and args.train_sampling_strategy == "random"
    assert args.precompute_ref_log_probs and args.loss_type == ["sigmoid"] and args.optim == "adamw_torch"
    expected = {"dpo": ["sigmoid"], "dpo_norm": ["sigmoid_norm"], "ipo": ["ipo"], "dpo+sft": ["sigmoid", "sft"]}
    for name, loss in expected.items():
        a = _trainer_args(TrainConfig(objective=name, sft_weight=0.5).for_device(False, False), tmp_path, False)
        assert a.loss_type == loss
    assert _trainer_args(
        TrainConfig(objective="dpo+sft", sft_weight=0.5).for_device(False, False), tmp_path, False
    ).loss_weights == [1.0, 0.5]
    assert {"dpo", "dpo_norm", "orpo", "ipo", "dpo+sft"} <= set(OBJECTIVES)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::deltahub.train.health.DeltaHealthWarning")  # 3 steps: not what is tested here
@pytest.mark.parametrize("objective", ["dpo_norm", "ipo", "dpo+sft", "orpo"])
def test_every_objective_trains(objective, tiny_model, tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", separable_pairs(8))
    cfg = TrainConfig(**{**FAST.to_dict(), "objective": objective, "max_steps": 3, "learning_rate": 5e-3})
    out = train_delta(tiny_model, pairs, tmp_path / "out", cfg, progress=False)
    meta = json.loads((out / "deltahub.json").read_text())
    assert meta["training"]["objective"] == objective
    h = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(h) == 3 and h[-1]["rewards/margins"] > h[0]["rewards/margins"]


def test_recipe_supplies_settings_and_flags_override(tiny_model, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"train:\n  student: {tiny_model}\n  pairs: {tmp_path / 'missing.jsonl'}\n  out: {tmp_path / 'o'}\n  rank: 4\n"
    )
    with pytest.raises(SystemExit):
        main(["train", "--recipe", str(recipe)])
    assert "missing.jsonl' not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--recipe", str(recipe), "--pairs", str(tmp_path / "other.jsonl")])
    assert "other.jsonl' not found" in capsys.readouterr().err
    recipe.write_text("train:\n  rnak: 4\n")
    with pytest.raises(SystemExit):
        main(["train", "--recipe", str(recipe)])
    err = capsys.readouterr().err
    assert f"{recipe}: train.rnak: unknown setting (did you mean 'rank'?)" in err


def test_in_memory_pairs_are_checked(tiny_model, tmp_path):
    from deltahub.train.data import load_training_pairs

    pairs = load_training_pairs(separable_pairs(3) + [])
    assert pairs.conversational and pairs.dataset.column_names == ["prompt", "chosen", "rejected"]
    with pytest.raises(InputError, match="lack column.*chosen"):
        train_delta(tiny_model, [{"prompt": "q", "rejected": "b"}], tmp_path / "out", FAST)
