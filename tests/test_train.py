"""deltahub train on a tiny random student (CPU, seconds): margins grow, the adapter loads in
PEFT, the reference is the adapter-disabled student, card/plot/provenance exist and parse."""

from __future__ import annotations

import json
import random

import pytest
import torch

from deltahub.cli import main

BETA = 0.1


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def separable_pairs(n: int, seed: int = 0) -> list[dict]:
    """Chosen and rejected differ in every token, consistently: a delta any student can learn."""
    rng = random.Random(seed)
    return [
        {
            "prompt": [{"role": "user", "content": f"{rng.randint(0, 99)}+{rng.randint(0, 99)}="}],
            "chosen": [{"role": "assistant", "content": "yes good"}],
            "rejected": [{"role": "assistant", "content": "NO BAD!"}],
        }
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """One run through the CLI: 20 pairs (16 train in one full batch, 4 held out), 8 steps."""
    d = tmp_path_factory.mktemp("train")
    pairs_dir = d / "pairs"
    (pairs_dir / "data").mkdir(parents=True)
    from datasets import Dataset

    Dataset.from_list(separable_pairs(20)).to_parquet(str(pairs_dir / "data" / "train-00000.parquet"))
    (pairs_dir / "deltahub.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "kind": "dataset",
                "chosen": {"model": "toy/weak", "revision": None, "params": 10},
                "rejected": {"model": "toy/weaker", "revision": None, "params": 5},
                "dataset": {"repo": "toy/pairs-add", "revision": "abc123"},
                "generation": {"backend": "transformers"},
            }
        )
    )
    out = d / "adapter"
    main(
        [
            "train",
            "--student",
            str(tiny_model),
            "--pairs",
            str(pairs_dir),
            "--out",
            str(out),
            "--max-steps",
            "8",
            "--batch-size",
            "16",
            "--micro-batch-size",
            "16",
            "--lr",
            "5e-3",
            "--rank",
            "4",
            "--alpha",
            "8",
            "--eval-fraction",
            "0.2",
            "--beta",
            str(BETA),
            "--quiet",
        ]
    )
    return out


def history(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_margins_grow_on_separable_pairs(trained):
    h = history(trained)
    assert [e["step"] for e in h] == list(range(1, 9))
    assert h[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)  # LoRA B starts at 0: policy == reference
    assert h[-1]["rewards/margins"] > 0.2
    assert h[-1]["rewards/accuracies"] == 1.0
    meta = json.loads((trained / "deltahub.json").read_text())
    assert meta["metrics"]["heldout_reward_accuracy"] == 1.0
    assert meta["metrics"]["heldout_reward_margin"] > 0
    assert meta["metrics"]["health"] == []


def test_reference_is_the_adapter_disabled_student(trained, tiny_model):
    """ref log-prob = policy log-prob - reward/beta at every step equals the base student's, computed here."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    from datasets import Dataset

    ds = Dataset.from_list(separable_pairs(20)).train_test_split(test_size=4, seed=0, shuffle=True)["train"]
    logps = []
    for row in ds:
        prompt = tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        full = tok.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([tok(full, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            lp = torch.log_softmax(base(ids).logits[0, :-1], -1).gather(-1, ids[0, 1:, None])[:, 0]
        logps.append(lp[len(p_ids) - 1 :].sum().item())
    ref = sum(logps) / len(logps)
    for e in history(trained):
        assert e["logps/chosen"] - e["rewards/chosen"] / BETA == pytest.approx(ref, rel=1e-3)

    # the saved adapter loads in PEFT, changes the output, and disabling it gives the base back exactly
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32), trained
    ).eval()
    ids = torch.tensor([tok("<|im_start|>user\n1+2=<|im_end|>\n", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        tuned = model(ids).logits
        with model.disable_adapter():
            disabled = model(ids).logits
        plain = base(ids).logits
    assert torch.equal(disabled, plain)
    assert (tuned - plain).abs().max() > 1e-3


def test_output_folder_card_plot_and_provenance(trained, tiny_model):
    names = {p.name for p in trained.iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "deltahub.json",
        "metrics.jsonl",
        "training_curves.png",
        "README.md",
        "tokenizer.json",
    } <= names
    assert "training_args.bin" not in names and not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    assert not (trained.parent / "adapter.partial").exists()
    import matplotlib.image

    img = matplotlib.image.imread(trained / "training_curves.png")
    assert img.shape[0] > 300 and img.shape[1] > 300
    cfg = json.loads((trained / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 8 and cfg["base_model_name_or_path"] == str(tiny_model)
    assert sorted(cfg["target_modules"]) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    meta = json.loads((trained / "deltahub.json").read_text())
    assert meta["kind"] == "adapter" and meta["schema_version"] == 1
    assert meta["student"]["model"] == str(tiny_model)
    assert meta["chosen"]["model"] == "toy/weak" and meta["rejected"]["model"] == "toy/weaker"
    assert meta["dataset"] == {"repo": "toy/pairs-add", "revision": "abc123"}
    assert meta["pairs"] == 20
    t = meta["training"]
    assert (t["objective"], t["beta"], t["learning_rate"], t["max_steps"], t["batch_size"], t["steps"]) == (
        "dpo",
        BETA,
        5e-3,
        8,
        16,
        8,
    )
    assert t["train_pairs"] == 16 and t["heldout_pairs"] == 4
    assert (meta["lora"]["r"], meta["lora"]["alpha"], meta["lora"]["dropout"]) == (4, 8.0, 0.05)
    assert sorted(meta["lora"]["target_modules"]) == sorted(cfg["target_modules"])
    try:
        from deltahub.registry.schema import DeltaBlock
    except ImportError:
        return
    DeltaBlock.model_validate(meta)
    assert (trained / "README.md").read_text().startswith("---")
