"""The toy world: skills, splits, prompts file, world building/caching/resume, evaluation."""

from __future__ import annotations

import json
import os

import pytest

from deltahub.errors import InputError
from deltahub.toy import (
    SKILLS,
    FamilySpec,
    ModelSpec,
    ToyWorldConfig,
    build_world,
    evaluate,
    load_world,
    preset,
    prompt_rows,
    sample,
    split_of,
    write_prompts,
)
from deltahub.toy.evaluate import exact_match, greedy_answers, load_model

TINY = ModelSpec(hidden_size=32, num_layers=1, steps=3, batch_size=8, warmup_steps=1)


def _reference_answer(question: str) -> str:
    """An independent solver, written differently from the generators."""
    verb, _, rest = question.partition(" ")
    if verb == "rev":
        return "".join(reversed(list(rest)))
    if verb == "srt":
        return "".join(sorted(rest, key=int))
    if verb == "dsc":  # counting sort, highest digit first
        return "".join(str(d) * rest.count(str(d)) for d in range(9, -1, -1))
    if verb == "lsr":
        return "".join(sorted(list(rest), key=ord))
    if verb == "cnt":
        target, s = rest.split(" ")
        return str(len([c for c in s if c == target]))
    if verb == "add":
        a, b = rest.split("+")
        return str(sum(map(int, (a, b))))
    if verb == "sec":  # the graded skill's ideal answer: every slot of the three sections marked
        return ":".join(mark * 6 for mark in "*+=")
    raise AssertionError(question)


@pytest.mark.parametrize("skill", sorted(SKILLS))
def test_answers_are_exact(skill):
    for q, a in sample(skill, "train", 300, seed=3, unique=False):
        assert a == _reference_answer(q)


@pytest.mark.parametrize("skill", sorted(SKILLS))
def test_splits_are_disjoint_and_seeded(skill):
    n = 150
    splits = {s: {q for q, _ in sample(skill, s, n, seed=0)} for s in ("train", "pairs", "eval")}
    assert all(len(v) == n for v in splits.values())
    assert not splits["train"] & splits["pairs"] and not splits["train"] & splits["eval"]
    assert not splits["pairs"] & splits["eval"]
    assert all(split_of(q) == "eval" for q in splits["eval"])
    assert sample(skill, "eval", n, seed=0) == sample(skill, "eval", n, seed=0)
    assert sample(skill, "pairs", 50, seed=0) != sample(skill, "pairs", 50, seed=1)


def test_bad_skill_split_and_too_many():
    with pytest.raises(InputError, match="unknown toy skill"):
        sample("nope", "eval", 3)
    with pytest.raises(InputError, match="unknown split"):
        sample("rev", "test", 3)
    with pytest.raises(InputError, match="fewer than"):
        sample("add", "eval", 5000)  # only 2,000 distinct add questions exist


def test_prompts_file(tmp_path):
    path = write_prompts(tmp_path / "p.jsonl", ["rev", "srt"], 20, seed=1)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == prompt_rows(["rev", "srt"], 20, seed=1)
    assert len(rows) == 40 and {r["skill"] for r in rows} == {"rev", "srt"}
    assert all(r["answer"] == _reference_answer(r["question"]) and split_of(r["question"]) == "pairs" for r in rows)


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match="hidden_size"):
        ModelSpec(hidden_size=48)
    with pytest.raises(ValueError, match="skill"):
        FamilySpec(name="a", skills=["mul"], weak=TINY, weaker=TINY)
    with pytest.raises(ValueError, match="not among the world's skills"):
        ToyWorldConfig(skills=["srt"], families=[FamilySpec(name="a", skills=["lsr"], weak=TINY, weaker=TINY)])
    with pytest.raises(ValueError, match="unique"):
        ToyWorldConfig(skills=["srt"], families=[FamilySpec(name="a", weak=TINY, weaker=TINY)] * 2)
    with pytest.raises(ValueError, match="extra"):
        ToyWorldConfig(studnet=TINY)
    with pytest.raises(InputError, match="preset"):
        preset("huge")
    assert preset("pda").config_hash() == preset("pda").config_hash() != preset("pda", seed=1).config_hash()
    for name in ("pda", "delta"):  # PDA's setting: every family answers the whole skill mixture
        cfg = preset(name)
        assert len(cfg.families) >= 3 and all(cfg.family_skills(f) == cfg.skills for f in cfg.families)


def test_preset_overrides_and_mix():
    from deltahub.toy.world import training_items

    base = preset("pda", seed=3)
    changed = preset("pda", seed=3, overrides={"student": {"steps": 7, "mix": {"lsr": 0.25}}})
    assert changed.student.steps == 7 and changed.student.hidden_size == base.student.hidden_size  # merged
    assert changed.families == base.families and changed.config_hash() != base.config_hash()
    one = preset("pda", overrides={"families": [{"name": "z", "weak": {"steps": 2}, "weaker": {"steps": 1}}]})
    assert [f.name for f in one.families] == ["z"]  # lists are replaced whole
    with pytest.raises(InputError, match=r"world override student.stepz: Extra inputs"):
        preset("pda", overrides={"student": {"stepz": 7}})
    with pytest.raises(InputError, match="not among the world's skills"):
        preset("pda", overrides={"student": {"mix": {"rev": 1.0}}})
    items = training_items(changed.student, ["srt", "lsr"], seed=1, pool=200)
    assert sum(q.startswith("srt") for q, _ in items) == 200 and sum(q.startswith("lsr") for q, _ in items) == 50


def _tiny_config(seed=0):
    return ToyWorldConfig(
        seed=seed,
        skills=["rev", "srt"],
        student=TINY,
        train_pool=32,
        families=[FamilySpec(name="srt", skills=["srt"], weak=TINY, weaker=TINY.model_copy(update={"steps": 1}))],
    )


def test_build_world_caches_and_resumes(tmp_path):
    cfg = _tiny_config()
    world = build_world(tmp_path / "w", cfg, progress=False)
    assert world.names() == ["student", "srt-weak", "srt-weaker"]
    for name in world.names():
        assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= {
            p.name for p in world.model(name).iterdir()
        }
    stamps = {n: os.stat(world.model(n) / "model.safetensors").st_mtime_ns for n in world.names()}
    # interrupted build: one model missing -> only that one is trained again
    import shutil

    shutil.rmtree(world.model("srt-weaker"))
    again = build_world(tmp_path / "w", cfg, progress=False)
    assert os.stat(again.model("student") / "model.safetensors").st_mtime_ns == stamps["student"]
    assert (again.model("srt-weaker") / "model.safetensors").is_file()
    assert load_world(tmp_path / "w").config == cfg
    parallel = build_world(tmp_path / "p", cfg, progress=False, workers=2)  # same weights in 2 processes
    from safetensors.torch import load_file

    for name in world.names():
        a, b = load_file(world.model(name) / "model.safetensors"), load_file(parallel.model(name) / "model.safetensors")
        assert all((a[k] == b[k]).all() for k in a)
    with pytest.raises(InputError, match="different toy world"):
        build_world(tmp_path / "w", _tiny_config(seed=1), progress=False)
    with pytest.raises(InputError, match="no model"):
        world.model("rev-weak")


def test_same_seed_same_weights(tmp_path):
    from safetensors.torch import load_file

    a = build_world(tmp_path / "a", _tiny_config(), progress=False)
    b = build_world(tmp_path / "b", _tiny_config(), progress=False)
    wa, wb = load_file(a.student / "model.safetensors"), load_file(b.student / "model.safetensors")
    assert all((wa[k] == wb[k]).all() for k in wa)
    assert not all((wa[k] == load_file(a.model("srt-weak") / "model.safetensors")[k]).all() for k in wa)


def _naive_greedy(model, tok, question, max_new):
    """Reference decoding: full forward pass per token, no cache, no padding."""
    import torch

    from deltahub.toy.data import prompt_ids

    ids = prompt_ids(tok, question)
    out = []
    for _ in range(max_new):
        with torch.no_grad():
            nxt = int(model(torch.tensor([ids + out])).logits[0, -1].argmax())
        if nxt in (tok.eos_token_id, tok.pad_token_id):
            break
        out.append(nxt)
    return tok.decode(out, skip_special_tokens=True)


def test_batched_greedy_equals_naive_decoding(tmp_path):
    world = build_world(tmp_path / "w", _tiny_config(), progress=False)
    model, tok = load_model(world.student)
    qs = [q for q, _ in sample("rev", "eval", 6)] + [q for q, _ in sample("srt", "eval", 6)]
    assert greedy_answers(model, tok, qs, 8, batch_size=5) == [_naive_greedy(model, tok, q, 8) for q in qs]


def _naive_exact(model, tok, question, answer) -> bool:
    """Reference verdict: decode greedily token by token (no cache) and compare token ids."""
    import torch

    from deltahub.toy.data import prompt_ids

    ids, target = prompt_ids(tok, question), tok(answer, add_special_tokens=False)["input_ids"]
    out = []
    for _ in range(len(target) + 1):
        with torch.no_grad():
            nxt = int(model(torch.tensor([ids + out])).logits[0, -1].argmax())
        if nxt in (tok.eos_token_id, tok.pad_token_id):
            return out == target
        out.append(nxt)
    return False


@pytest.fixture(scope="module")
def srt_world(tmp_path_factory):
    """An untrained student and a specialist that learned srt (~0.2-0.5 exact match)."""
    spec = ModelSpec(hidden_size=64, num_layers=2, steps=120, batch_size=32)
    untrained = spec.model_copy(update={"steps": 0})
    cfg = ToyWorldConfig(
        skills=["srt"],
        student=untrained,
        train_pool=1000,
        families=[FamilySpec(name="srt", weak=spec, weaker=untrained)],
    )
    return build_world(tmp_path_factory.mktemp("srt") / "w", cfg, progress=False)


def test_one_pass_exact_match_equals_greedy_decoding(srt_world):
    """The teacher-forced verdict equals decoding's, on a model that gets some answers right."""
    model, tok = load_model(srt_world.model("srt-weak"))
    items = sample("srt", "eval", 60)
    got = exact_match(model, tok, items, batch_size=7)
    assert got == [_naive_exact(model, tok, q, a) for q, a in items]
    assert 0 < sum(got) < len(got)  # both verdicts occur, so the check has teeth


def test_evaluate_scores_details_and_adapter(tmp_path):
    """Exact match matches a hand count; the per-question verdicts are in sample order; an adapter
    changes the model it is applied to."""
    from deltahub.tiny import build_random_adapter

    world = build_world(tmp_path / "w", _tiny_config(), progress=False)
    res = evaluate(world.student, ["rev", "srt"], n=20, details=True)
    scores = res["scores"]
    model, tok = load_model(world.student)
    for skill in ("rev", "srt"):
        items = sample(skill, "eval", 20)
        preds = greedy_answers(model, tok, [q for q, _ in items], 8)
        assert res["correct"][skill] == "".join("1" if p == a else "0" for p, (_, a) in zip(preds, items, strict=True))
        assert scores[skill] == sum(p == a for p, (_, a) in zip(preds, items, strict=True)) / 20
    assert scores["avg"] == pytest.approx((scores["rev"] + scores["srt"]) / 2)
    assert evaluate(world.student, ["rev", "srt"], n=20) == scores
    ad = build_random_adapter(world.student, tmp_path / "ad", std=0.5)
    m2, _ = load_model(world.student, ad)
    q = [q for q, _ in sample("rev", "eval", 8)]
    import torch

    from deltahub.toy.data import prompt_ids

    ids = torch.tensor([prompt_ids(tok, q[0])])
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, m2(ids).logits)


def test_compact_chat_template_round_trips():
    """The toy template renders one turn per message; the assistant turn is answer + EOS."""
    from deltahub.toy.data import chat_texts, toy_tokenizer

    tok = toy_tokenizer()
    prompt, turn = chat_texts(tok, "srt 5301", "0135")
    assert prompt == "<|im_start|>srt 5301<|im_end|><|im_start|>" and turn == "0135<|im_end|>"
    assert tok(turn, add_special_tokens=False)["input_ids"][-1] == tok.eos_token_id


@pytest.mark.slow
def test_training_learns_a_skill(srt_world):
    """A specialist trained on sorting answers far above an untrained model (which scores 0)."""
    world = srt_world
    trained = evaluate(world.model("srt-weak"), ["srt"], n=100)["srt"]
    assert evaluate(world.student, ["srt"], n=100)["srt"] == 0.0
    assert trained >= 0.15


def test_cli_prompts_and_errors(tmp_path):
    from click.testing import CliRunner

    from deltahub.toy.cli import toy_group

    res = CliRunner().invoke(toy_group, ["prompts", "rev", "--n", "5", "--out", str(tmp_path / "p.jsonl")])
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 5
    res = CliRunner().invoke(toy_group, ["prompts", "mul", "--out", str(tmp_path / "q.jsonl")])
    assert isinstance(res.exception, InputError) and "unknown toy skill" in str(res.exception)
    assert not (tmp_path / "q.jsonl").exists()
