"""`deltahub eval`: toy skills and a local lm-eval task on a tiny model, model-index in the card, bad input."""

from __future__ import annotations

import math

import pytest
from lm_eval_tasks import reference_picks, write_mc_task

from deltahub.errors import InputError
from deltahub.evaluate import comparison_table, evaluate, write_model_index

DOCS = [
    {"question": "ab", "choices": ["ba", "ab", "aa"], "label": 0},
    {"question": "cd", "choices": ["dc", "cd", "dd"], "label": 0},
    {"question": "xyz", "choices": ["zyx", "xyz", "yyy"], "label": 0},
    {"question": "12", "choices": ["21", "12", "11"], "label": 0},
]


def _write_task(folder, labels: list[int]):
    """The rev_mc task over DOCS with the given labels."""
    return write_mc_task(folder, "rev_mc", [{**d, "label": y} for d, y in zip(DOCS, labels, strict=True)])


@pytest.fixture()
def task_dir(tmp_path, tiny_model):
    """Labels set from an independent scoring: the first two docs are labelled with the model's pick,
    the last two with another choice, so a correct harness must report exactly 0.5."""
    picks = _reference_picks(tiny_model)
    return _write_task(tmp_path / "tasks", [p if i < 2 else (p + 1) % 3 for i, p in enumerate(picks)])


def _reference_picks(model_dir, adapter=None) -> list[int]:
    """Independent scoring of DOCS (see :func:`lm_eval_tasks.reference_picks`)."""
    return reference_picks(model_dir, DOCS, adapter)


def test_lm_eval_custom_task_matches_independent_loglikelihood(tiny_model, task_dir):
    res = evaluate(tiny_model, ["rev_mc"], include_path=task_dir, backend="hf", batch_size=4)
    assert math.isclose(res["rev_mc"]["acc"], 0.5)
    assert set(res["rev_mc"]) == {"acc"}


def test_lm_eval_scores_base_plus_adapter(tiny_model, tmp_path):
    """An adapter folder as MODEL: lm-eval must score base + adapter, not the base alone.

    Labels: the adapted model's pick on the first two docs, another choice on the last two, so
    the adapted model scores exactly 0.5; the seed is chosen so that the base picks differ on
    the labelled docs, and the base alone scores something else."""
    from deltahub.tiny import build_random_adapter

    base_picks = _reference_picks(tiny_model)
    for seed in range(20):  # an adapter strong enough to change a pick among the first two docs
        adapter = build_random_adapter(tiny_model, tmp_path / f"adapter-{seed}", r=8, alpha=16, seed=seed, std=0.3)
        picks = _reference_picks(tiny_model, adapter)
        if picks[:2] != base_picks[:2]:
            break
    else:
        pytest.fail("no random adapter changed the model's choices")
    labels = [p if i < 2 else next(c for c in range(3) if c not in (p, base_picks[i])) for i, p in enumerate(picks)]
    base_acc = sum(b == y for b, y in zip(base_picks, labels, strict=True)) / len(labels)
    assert base_acc != 0.5
    tasks = _write_task(tmp_path / "tasks", labels)
    res = evaluate(adapter, ["rev_mc"], include_path=tasks, backend="hf", batch_size=4)
    assert math.isclose(res["rev_mc"]["acc"], 0.5)
    res_base = evaluate(tiny_model, ["rev_mc"], include_path=tasks, backend="hf", batch_size=4)
    assert math.isclose(res_base["rev_mc"]["acc"], base_acc)


def test_toy_tasks_equal_the_toy_evaluator_and_adapter_folder_resolves_its_base(tiny_model, tmp_path):
    from deltahub.toy.evaluate import evaluate as toy_evaluate

    res = evaluate(tiny_model, ["toy:srt", "cnt"], limit=20)
    ref = toy_evaluate(tiny_model, ["srt", "cnt"], n=20)
    assert res == {"toy:srt": {"exact_match": ref["srt"]}, "toy:cnt": {"exact_match": ref["cnt"]}}


def test_model_index_round_trips_through_huggingface_hub(tiny_model, tmp_path):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: mit\ntags: [x]\n---\n\n# body kept\n")
    write_model_index(folder, {"toy:srt": {"exact_match": 0.25}, "gsm8k": {"exact_match": 0.5, "acc": 0.1}})
    write_model_index(folder, {"toy:srt": {"exact_match": 0.75}})  # a re-run replaces only its task
    card = ModelCard.load(folder / "README.md")
    assert card.data.license == "mit" and "# body kept" in card.text
    _, evals = model_index_to_eval_results(card.data.to_dict()["model-index"])
    got = {(e.dataset_type, e.metric_type): e.metric_value for e in evals}
    assert got == {("gsm8k", "exact_match"): 0.5, ("gsm8k", "acc"): 0.1, ("toy:srt", "exact_match"): 0.75}


def test_comparison_table_has_a_cell_per_model_and_metric():
    text = comparison_table({"a": {"t": {"acc": 0.5}}, "b": {"t": {"acc": 0.25}, "u": {"em": 1.0}}})
    assert text.splitlines()[0] == "| model | t acc | u em |"
    assert "| a | 0.500 | - |" in text and "| b | 0.250 | 1.000 |" in text


def test_bad_input_is_one_line_error(tiny_model, tmp_path, task_dir, capsys):
    with pytest.raises(InputError, match="unknown lm-eval task"):
        evaluate(tiny_model, ["no_such_task_xyz"], include_path=task_dir, backend="hf")
    with pytest.raises(InputError, match="neither config.json nor adapter_config.json"):
        evaluate(tmp_path, ["toy:srt"])
    with pytest.raises(InputError, match="vllm is not installed"):
        evaluate(tiny_model, ["rev_mc"], include_path=task_dir, backend="vllm")
    from deltahub.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["eval", str(tmp_path), "--tasks", "toy:srt"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "neither config.json" in err and "fix:" in err and "Traceback" not in err


def test_pickled_weights_are_refused_before_torch_load(tiny_model, tmp_path, monkeypatch, capsys):
    """A model or adapter folder with only pickles never reaches torch.load: one line, exit code 2."""
    import shutil

    import torch

    from deltahub.cli import main
    from deltahub.tiny import build_random_adapter

    def no_load(*args, **kwargs):
        raise AssertionError("torch.load reached")

    monkeypatch.setattr(torch, "load", no_load)
    model = tmp_path / "pickled-model"
    shutil.copytree(tiny_model, model)
    for st in model.glob("*.safetensors"):
        st.rename(model / "pytorch_model.bin")
    adapter = build_random_adapter(tiny_model, tmp_path / "pickled-adapter", r=4, alpha=8, seed=0)
    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    for args in (
        [str(model), "--tasks", "toy:srt"],
        [str(adapter), "--tasks", "toy:srt"],
        [str(tiny_model), "--adapter", str(adapter), "--tasks", "toy:srt"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(["eval", *args])
        err = capsys.readouterr().err
        assert (
            exc.value.code == 2 and "has only pickled weights" in err and "pickles can run code and are refused" in err
        )
        assert "Traceback" not in err and "torch.load reached" not in err
