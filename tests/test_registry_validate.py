"""Schema, cards and local validation: a good delta passes; each broken copy fails on its own check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from deltahub.errors import InputError
from deltahub.share.cards import split_card, write_card
from deltahub.share.schema import DeltaBlock, parse_block
from deltahub.share.validate import validate_folder

PAIRS = 3


@pytest.fixture(scope="module")
def adapter_dir(tiny_model, tmp_path_factory) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.02)
    out = tmp_path_factory.mktemp("adapter") / "delta"
    peft_model.save_pretrained(out)
    block = {
        "schema_version": 1,
        "kind": "adapter",
        "chosen": {"model": "toy/Qwen3-big"},
        "rejected": {"model": "toy/Qwen3-small"},
        "student": {"model": str(tiny_model)},
        "pairs": PAIRS,
        "training": {"objective": "dpo", "beta": 0.1},
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "dataset": {"repo": "me/pairs", "revision": None},
    }
    (out / "deltahub.json").write_text(json.dumps(block))
    write_card(out)
    return out


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    import datasets

    out = tmp_path_factory.mktemp("pairs") / "pairs"
    rows = [
        {
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}],
        }
        for i in range(PAIRS)
    ]
    (out / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_parquet(str(out / "data" / "train-00000.parquet"))
    block = {
        "schema_version": 1,
        "kind": "dataset",
        "chosen": {"model": "toy/Qwen3-big"},
        "rejected": {"model": "toy/Qwen3-small"},
        "prompts": {"dataset": "toy/prompts", "split": "train"},
        "pairs": PAIRS,
        "filters": {"empty": 1},
    }
    (out / "deltahub.json").write_text(json.dumps(block))
    write_card(out)
    return out


def rows_ok(repo, rev):
    return PAIRS if repo == "me/pairs" else None


def failed(report) -> set[str]:
    return {c.name for c in report.checks if not c.ok}


def test_schema_rejects_future_version_and_bad_kind():
    with pytest.raises(InputError, match="newer deltahub"):
        parse_block({"schema_version": 2, "kind": "adapter"})
    with pytest.raises(InputError, match="kind"):
        parse_block({"schema_version": 1, "kind": "checkpoint"})
    assert parse_block({"kind": "dataset", "new_key": 1}).model_extra == {"new_key": 1}


def test_card_front_matter_round_trips_the_block(adapter_dir, dataset_dir, tiny_model):
    meta, body = split_card((adapter_dir / "README.md").read_text())
    assert meta["base_model"] == str(tiny_model) and meta["base_model_relation"] == "adapter"
    assert meta["library_name"] == "peft"
    assert {"deltahub", "preference-delta", "deltahub-family:Qwen3"} <= set(meta["tags"])
    assert meta["datasets"] == ["me/pairs"]
    block = parse_block(json.loads((adapter_dir / "deltahub.json").read_text()))
    assert DeltaBlock.model_validate(meta["deltahub"]) == block
    dmeta, _ = split_card((dataset_dir / "README.md").read_text())
    assert dmeta["size_categories"] == ["n<1K"] and dmeta["configs"][0]["data_files"][0]["path"] == "data/*.parquet"


def test_merged_card_lists_deltas_and_command(tmp_path):
    block = {
        "kind": "merged",
        "student": {"model": "b/base"},
        "merge": {
            "method": "ties",
            "parameters": {"density": 0.3},
            "deltas": [{"repo": "me/a", "revision": "v1"}, {"repo": "me/b", "revision": "abc"}],
        },
    }
    (tmp_path / "deltahub.json").write_text(json.dumps(block))
    text = write_card(tmp_path).read_text()
    assert "deltahub merge me/a@v1 me/b@abc --out OUT --method ties --density 0.3" in text
    assert "`me/b` | `abc`" in text


def test_good_adapter_and_dataset_pass(adapter_dir, dataset_dir):
    report = validate_folder(adapter_dir, dataset_rows=rows_ok)
    assert report.ok, report.lines()
    assert validate_folder(dataset_dir).ok


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def test_pickle_file_fails(adapter_dir, tmp_path):
    bad = _copy(adapter_dir, tmp_path)
    torch.save({"x": torch.zeros(1)}, bad / "adapter_model.bin")
    assert failed(validate_folder(bad, dataset_rows=rows_ok)) == {"files are safetensors only"}


def test_wrong_base_shapes_fail(adapter_dir, tmp_path, tiny_model):
    bad = _copy(adapter_dir, tmp_path)
    base = tmp_path / "other-base"
    base.mkdir()
    cfg = json.loads((Path(tiny_model) / "config.json").read_text())
    cfg["hidden_size"] = 2 * cfg["hidden_size"]
    (base / "config.json").write_text(json.dumps(cfg))
    acfg = json.loads((bad / "adapter_config.json").read_text())
    acfg["base_model_name_or_path"] = str(base)
    (bad / "adapter_config.json").write_text(json.dumps(acfg))
    assert failed(validate_folder(bad, dataset_rows=rows_ok)) == {"adapter matches its base"}


def test_missing_dataset_and_row_mismatch_fail(adapter_dir, dataset_dir):
    assert failed(validate_folder(adapter_dir, dataset_rows=lambda r, v: None)) == {"linked dataset"}
    assert failed(validate_folder(adapter_dir, dataset_rows=lambda r, v: PAIRS + 1)) == {"linked dataset"}


def test_bad_card_and_nan_fail(adapter_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = _copy(adapter_dir, tmp_path)
    (bad / "README.md").write_text("# a delta\n")
    assert failed(validate_folder(bad, dataset_rows=rows_ok)) == {"card complete"}
    write_card(bad)
    tensors = load_file(str(bad / "adapter_model.safetensors"))
    key = next(k for k in tensors if "lora_B" in k)
    tensors[key][0, 0] = float("nan")
    save_file(tensors, str(bad / "adapter_model.safetensors"))
    assert failed(validate_folder(bad, dataset_rows=rows_ok)) == {"no NaN/Inf"}


def test_future_schema_fails(adapter_dir, tmp_path):
    bad = _copy(adapter_dir, tmp_path)
    (bad / "deltahub.json").write_text(json.dumps({"schema_version": 9, "kind": "adapter"}))
    assert "schema" in failed(validate_folder(bad, dataset_rows=rows_ok))


def test_card_embeds_plots_and_keeps_configs(dataset_dir, tmp_path):
    folder = _copy(dataset_dir, tmp_path)
    (folder / "training_curves.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    meta, body = split_card((folder / "README.md").read_text())
    meta["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}]
    import yaml

    (folder / "README.md").write_text("---\n" + yaml.safe_dump(meta) + "---\n" + body)
    text = write_card(folder).read_text()
    assert "![training_curves.png](training_curves.png)" in text
    assert split_card(text)[0]["configs"] == meta["configs"]


def test_adapter_without_config_fails(adapter_dir, tmp_path):
    bad = _copy(adapter_dir, tmp_path)
    (bad / "adapter_config.json").unlink()
    assert failed(validate_folder(bad, dataset_rows=rows_ok)) == {"adapter matches its base"}


def test_merged_adapter_without_config_fails(adapter_dir, tmp_path):
    """A merged delta published as an adapter is a PEFT folder too: no adapter_config.json, no PASS."""
    bad = _copy(adapter_dir, tmp_path)
    (bad / "adapter_config.json").unlink()
    block = {
        "schema_version": 1,
        "kind": "merged",
        "student": {"model": "b/base"},
        "merge": {"method": "ties", "output": "adapter", "deltas": [{"repo": "me/a", "revision": "v1"}]},
    }
    (bad / "deltahub.json").write_text(json.dumps(block))
    write_card(bad)
    report = validate_folder(bad, dataset_rows=rows_ok)
    assert failed(report) == {"adapter matches its base"}, report.lines()
    assert (
        "adapter_config.json is missing"
        in report.lines()[[c.name for c in report.checks].index("adapter matches its base")]
    )


def test_unpublished_dataset_link_is_a_warning_locally_and_a_failure_when_strict(adapter_dir, tmp_path):
    """A local delta whose pairs are not published yet (or not linked yet) can pass; --strict (CI) fails it."""
    unlinked = _copy(adapter_dir, tmp_path)
    block = json.loads((unlinked / "deltahub.json").read_text())
    del block["dataset"]
    (unlinked / "deltahub.json").write_text(json.dumps(block))
    write_card(unlinked)
    for folder, rows, detail in (
        (adapter_dir, lambda r, v: None, "me/pairs is not published yet"),
        (unlinked, rows_ok, "no pairs dataset linked yet"),
    ):
        report = validate_folder(folder, dataset_rows=rows, local=True)
        check = next(c for c in report.checks if c.name == "linked dataset")
        assert report.ok and check.status == "warn" and detail in check.detail, report.lines()
        assert report.lines()[-1].endswith("1 warning(s))")
        strict = validate_folder(folder, dataset_rows=rows, local=True, strict=True)
        assert not strict.ok and [c.name for c in strict.failed] == ["linked dataset"]
        assert "strict: counted as failures" in strict.lines()[-1]
    # published (not local): a link to a dataset that does not exist fails; no link at all is a warning
    assert failed(validate_folder(adapter_dir, dataset_rows=lambda r, v: None)) == {"linked dataset"}
    assert validate_folder(unlinked, dataset_rows=rows_ok).ok
