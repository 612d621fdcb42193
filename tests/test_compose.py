"""deltahub compose: greedy selection against an independent reference, validation splits that never touch the
held-out data, and compose on the toy world with a deliberately harmful delta among the candidates."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from deltahub.compose.greedy import greedy_select
from deltahub.errors import InputError

# ----------------------------------------------------------------------------------------------
# greedy selection


def reference_greedy(n, f, max_k, min_gain, allow_harmful):
    """Forward selection written from its definition: add the argmax while it beats the current score (among the
    deltas that do not lower the student's score alone, unless those are allowed)."""
    chosen, current = [], f(frozenset())
    eligible = [i for i in range(n) if allow_harmful or f(frozenset({i})) >= current]
    while len(chosen) < max_k:
        options = [(f(frozenset(chosen) | {i}), -i, i) for i in eligible if i not in chosen]
        if not options:
            break
        best_score, _, best = max(options)
        if best_score - current <= min_gain:
            break
        chosen.append(best)
        current = best_score
    return chosen, current


def random_score(n, rng):
    """A set function with single effects (some negative: deltas that hurt) and pairwise interactions."""
    single = [rng.uniform(-0.3, 0.4) for _ in range(n)]
    pair = {p: rng.uniform(-0.2, 0.2) for p in itertools.combinations(range(n), 2)}
    return lambda s: 0.5 + sum(single[i] for i in s) + sum(v for p, v in pair.items() if set(p) <= s)


@pytest.mark.parametrize("seed", range(12))
def test_greedy_matches_reference(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 6)
    f = random_score(n, rng)
    max_k = rng.choice([None, 1, 2, n])
    min_gain = rng.choice([0.0, 0.05])
    allow_harmful = rng.random() < 0.5
    calls: list[tuple] = []

    def score(ix):
        calls.append(ix)
        return f(frozenset(ix))

    sel = greedy_select(n, score, max_k=max_k, min_gain=min_gain, allow_harmful=allow_harmful)
    want, want_score = reference_greedy(n, f, n if max_k is None else max_k, min_gain, allow_harmful)
    assert sel.selected == want and sel.score == pytest.approx(want_score)
    assert len(calls) == len(set(calls)), "a set was scored twice"
    assert all(tuple(sorted(c)) == c for c in calls)  # sets are scored in one canonical order
    assert sel.singles == {i: pytest.approx(f(frozenset({i}))) for i in range(n)}
    scores = [sel.base] + [s.score for s in sel.steps if s.added is not None]
    assert all(b - a > min_gain for a, b in itertools.pairwise(scores))  # every step strictly improved
    for i in range(n):
        reason = sel.reason_left_out(i)
        assert (reason is None) == (i in want)
        if reason and f(frozenset({i})) < sel.base:
            assert reason.startswith("hurts alone")


def test_greedy_keeps_out_a_delta_that_hurts_alone_even_where_a_merge_masks_it():
    """Two helpful deltas and one that hurts alone but whose harm a merge with delta 0 more than cancels: left out
    (never tried in a merge) by default, added when harmful deltas are allowed."""
    effect = {0: 0.2, 1: 0.1, 2: -0.3}

    def f(ix):
        return 0.4 + sum(effect[i] for i in ix) + (0.35 if {0, 2} <= set(ix) else 0.0)

    sel = greedy_select(3, f)
    assert sel.selected == [0, 1] and sel.score == pytest.approx(0.7)
    assert sel.reason_left_out(2) == "hurts alone: 0.1000 < student 0.4000"
    assert all(2 not in s.tried for s in sel.steps)
    assert sel.stopped == "every candidate that does not hurt alone was selected"
    assert greedy_select(3, f, max_k=1).selected == [0]
    allowed = greedy_select(3, f, allow_harmful=True)
    assert allowed.selected == [0, 1, 2] and allowed.score == pytest.approx(0.75)
    assert greedy_select(2, lambda ix: 0.4 - 0.1 * len(ix)).stopped == "every candidate hurts the student alone"


@pytest.mark.parametrize("seed", range(6))
def test_paired_difference_matches_references(seed):
    """The held-out comparison: McNemar against scipy's exact binomial test; the bootstrap interval near the Wald
    interval written from its formula (its large-sample limit); swapping the two models only flips the signs."""
    import numpy as np
    from scipy.stats import binomtest

    from deltahub.compose.stats import paired_difference, pooled_difference

    rng = random.Random(seed)
    n = rng.randint(150, 400)
    a = [int(rng.random() < 0.4) for _ in range(n)]
    b = [x if rng.random() < 0.7 else int(rng.random() < 0.3) for x in a]
    got = paired_difference(a, b)
    d = np.array(a) - np.array(b)
    wins, losses = int((d == 1).sum()), int((d == -1).sum())
    wald = 1.959963984540054 * d.std() / np.sqrt(n)
    assert got["diff"] == pytest.approx(d.mean()) and (got["wins"], got["losses"], got["n"]) == (wins, losses, n)
    low, high = got["ci95"]
    assert low < d.mean() < high and (high - low) / 2 == pytest.approx(wald, rel=0.15)
    assert got["p_mcnemar"] == pytest.approx(binomtest(wins, wins + losses, 0.5).pvalue, rel=1e-9)
    back = paired_difference(b, a)
    assert back["diff"] == pytest.approx(-got["diff"]) and (back["wins"], back["losses"]) == (losses, wins)
    assert back["p_mcnemar"] == pytest.approx(got["p_mcnemar"])
    assert paired_difference(a, a)["ci95"] == [0.0, 0.0] and paired_difference(a, a)["p_mcnemar"] == 1.0
    pooled = pooled_difference([a, b], [b, b])  # two runs: the mean of their mean differences
    assert pooled["diff"] == pytest.approx(d.mean() / 2) and pooled["runs"] == 2 and pooled["n"] == 2 * n
    with pytest.raises(ValueError, match="same non-empty questions"):
        paired_difference(a, b + [1])


# ----------------------------------------------------------------------------------------------
# validation data


def test_toy_validation_and_test_halves_are_disjoint_parts_of_the_eval_split():
    from deltahub.compose.validation import toy_items
    from deltahub.toy.skills import split_of

    for skill in ("srt", "rev", "cnt"):
        val, test = toy_items(skill, "validation", 150), toy_items(skill, "test", 150)
        assert len(val) == len(set(val)) == 150 and len(test) == 150
        assert {split_of(q) for q, _ in val + test} == {"eval"}
        assert not {q for q, _ in val} & {q for q, _ in test}
        assert toy_items(skill, "validation", 40) == val[:40]  # a smaller set is a prefix: stable under n


@pytest.fixture(scope="module")
def val_task(tmp_path_factory):
    """A local lm-eval task whose validation and test documents differ."""
    import yaml

    folder = tmp_path_factory.mktemp("tasks")
    words = ["red", "blue", "green", "stone", "water", "light", "seven", "quiet"]
    rng = random.Random(0)

    def docs(n):
        return [
            {
                "question": f"{rng.choice(words)} {rng.choice(words)}?",
                "choices": rng.sample(words, 3),
                "label": rng.randrange(3),
            }
            for _ in range(n)
        ]

    data = {"validation": docs(6), "test": docs(6)}
    for split, rows in data.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {
        "dataset_path": "json",
        "output_type": "multiple_choice",
        "doc_to_text": "{{question}}\nAnswer:",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "label",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }
    (folder / "mc_val.yaml").write_text(
        yaml.safe_dump(
            {
                **cfg,
                "task": "mc_val",
                "validation_split": "validation",
                "test_split": "test",
                "dataset_kwargs": {"data_files": {s: str(folder / f"{s}.jsonl") for s in data}},
            }
        )
    )
    (folder / "mc_test_only.yaml").write_text(
        yaml.safe_dump(
            {
                **cfg,
                "task": "mc_test_only",
                "test_split": "test",
                "dataset_kwargs": {"data_files": {"test": str(folder / "test.jsonl")}},
            }
        )
    )
    return folder, data


def test_lm_eval_tasks_are_scored_on_their_validation_split(val_task, tiny_model, tmp_path):
    from lm_eval_tasks import reference_picks

    from deltahub.compose.validation import ValidationSet

    folder, data = val_task
    vs = ValidationSet(["mc_val"], include_path=str(folder))
    vs.prepare(tmp_path)
    acc = {}
    for split in ("validation", "test"):
        picks = reference_picks(tiny_model, data[split])
        acc[split] = sum(p == d["label"] for p, d in zip(picks, data[split], strict=True)) / len(data[split])
    assert acc["validation"] != acc["test"]  # else this test could not tell the splits apart
    # (the held-out half runs the task as it is: deltahub.evaluate, tested in test_evaluate)
    assert vs.score(Path(tiny_model), None, "validation")["mc_val"] == pytest.approx(acc["validation"])
    refused = ValidationSet(["mc_test_only"], include_path=str(folder))
    with pytest.raises(InputError, match="has no validation split"):
        refused.prepare(tmp_path)


# ----------------------------------------------------------------------------------------------
# compose on the toy world, one delta deliberately harmful

SKILL = "srt"


def toy_pairs(n: int, seed: int, swap: bool = False) -> list[dict]:
    from deltahub.toy.nearmiss import near_miss_pairs

    return near_miss_pairs(SKILL, n, seed, swap)


def dpo_delta(student: Path, rows: list[dict], out: Path, steps: int) -> Path:
    """A LoRA delta trained with TRL's DPOTrainer directly (DPO + NLL on chosen), not with deltahub train."""
    from deltahub.toy.nearmiss import train_trl_delta

    return train_trl_delta(student, rows, out, steps=steps)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run several times faster on one thread than on two busy ones (16 s vs 92 s for one delta's
    training, measured on this 2-core machine under load): the toy tests pin torch to one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def toy_deltas(tmp_path_factory, one_thread):
    """The quick toy world's student and three deltas: two on right-over-near-miss pairs, one on the same kind
    of pairs with chosen and rejected swapped (it teaches the near misses: harmful)."""
    from deltahub.toy import build_world, preset

    student = build_world(config=preset("quick", seed=0), progress=False).student
    d = tmp_path_factory.mktemp("toy-deltas")
    deltas = {
        name: dpo_delta(student, toy_pairs(128, seed, swap), d / name, steps=32)
        for name, seed, swap in (("srt-a", 0, False), ("srt-b", 1, False), ("srt-swapped", 2, True))
    }
    return student, deltas


def not_worse(held: dict, other: str) -> bool:
    """The composed student is not significantly below ``other`` on the held-out questions (the upper end of the
    paired 95% interval reaches 0). A point estimate is not the claim: on 500 held-out questions the composed
    and the all-merged students differ by -0.028..-0.002 across seeds (scripts/compose_toy.py, README)."""
    return held["paired"][f"composed - {other}"]["ci95"][1] >= 0


@pytest.fixture(scope="module")
def toy_work(tmp_path_factory) -> Path:
    """compose's evaluation cache, shared by the toy tests: the same deltas (by content) are scored once."""
    return tmp_path_factory.mktemp("compose-work")


def independent_exact_match(student: Path, adapter: Path, items: list[tuple[str, str]]) -> float:
    """Exact match written here from the definitions: PEFT merges the adapter, transformers decodes greedily."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(student)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()
    texts = [
        tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q, _ in items
    ]
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        gen = model.generate(
            **batch, max_new_tokens=10, do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
        )
    answers = [tok.decode(row, skip_special_tokens=True).strip() for row in gen[:, batch["input_ids"].shape[1] :]]
    return sum(p == a for p, (_, a) in zip(answers, items, strict=True)) / len(items)


def test_compose_on_toy_leaves_out_the_harmful_delta(toy_deltas, toy_work, tmp_path, capsys):
    """Greedy selection on validation questions keeps the harmful delta out; on held-out questions the result is
    not significantly below the student or the merge of every candidate."""
    from deltahub.cli import main
    from deltahub.compose import compose, toy_items

    student, deltas = toy_deltas
    work = toy_work
    result = compose(
        list(deltas.values()),
        tmp_path / "composed",
        tasks=[f"toy:{SKILL}"],
        n=200,
        held_out=True,
        work=work,
        progress=False,
    )
    t = result.trace
    fate = {c["name"]: c for c in t["candidates"]}
    assert "srt-swapped" not in result.selected and result.selected
    assert fate["srt-swapped"]["reason"].startswith("hurts alone") and fate["srt-swapped"]["vs_student"] < 0
    assert t["score"] > t["student"]
    held = t["held_out"]
    assert not_worse(held, "merge_all") and not_worse(held, "student"), held
    best = max(fate.values(), key=lambda c: c["single"])  # the best single delta is chosen on validation
    assert held["best_single_name"] == best["name"] and held["paired_tasks"] == [f"toy:{SKILL}"]
    for other in ("merge_all", "best_single", "student"):
        p = held["paired"][f"composed - {other}"]
        assert p["n"] == 200 and p["diff"] == pytest.approx(held["composed"] - held[other])
        assert p["wins"] - p["losses"] == round(200 * p["diff"]) and p["ci95"][0] <= p["diff"] <= p["ci95"][1]
    # the held-out score of the written adapter, computed independently of compose's scorer
    items = toy_items(SKILL, "test", 200)
    assert independent_exact_match(student, result.out, items) == pytest.approx(held["composed"], abs=0.011)
    # outputs: adapter, trace, plot, gam.yml, a card with the trace
    for name in ("adapter_model.safetensors", "adapter_config.json", "compose.json", "compose.png", "gam.yml"):
        assert (result.out / name).is_file(), name
    card = (result.out / "README.md").read_text()
    assert "# composed: a merged student" in card and "hurts alone" in card and "| `srt-swapped` |" in card
    import yaml

    gam = yaml.safe_load((result.out / "gam.yml").read_text())
    assert gam["merge_method"] == "gam" and len(gam["models"]) == len(result.selected)
    assert all(m["model"].startswith(f"{student.resolve()}+") for m in gam["models"])
    # resumable: the same run through the CLI re-scores nothing (every evaluation is cached by content)
    cached = sorted(p.name for p in (work / "evals").iterdir())
    main_args = [
        "compose",
        *map(str, deltas.values()),
        "--tasks",
        f"toy:{SKILL}",
        "--n",
        "200",
        "--held-out",
        "--work",
        str(work),
        "--out",
        str(tmp_path / "again"),
    ]
    capsys.readouterr()
    main(main_args)  # returns on success (exit 0)
    out = capsys.readouterr()
    assert sorted(p.name for p in (work / "evals").iterdir()) == cached
    assert "compose: validation" not in out.err and "compose: test" not in out.err
    assert f"selected {len(result.selected)} of 3: {', '.join(result.selected)}" in out.out
    assert "left out srt-swapped: hurts alone" in out.out
    assert "held-out paired, composed - merge_all: " in out.out and "McNemar p=" in out.out
    assert "| composed - merge all |" in card


def test_compose_bad_input_is_one_line(tmp_path, capsys, tiny_model):
    from deltahub.cli import main

    for args, needle in (
        (["compose", str(tmp_path), "--out", str(tmp_path / "o")], "no validation tasks given"),
        (["compose", "--tasks", "toy:srt", "--out", str(tmp_path / "o")], "no candidates given"),
        (["compose", str(tiny_model), "--tasks", "toy:srt", "--out", str(tmp_path / "o")], "is not a PEFT adapter"),
        (
            ["compose", str(tmp_path), "--tasks", "toy:srt", "--max", "0", "--out", str(tmp_path / "o")],
            "max_k: must be >= 1",
        ),
    ):
        with pytest.raises(SystemExit) as exc:
            main(args)
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert exc.value.code == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.long
def test_compose_full_on_published_deltas_and_mergekit(one_thread, tmp_path, capsys):
    """The full version: four deltas published to the registry with declared provenance (three helpful, one
    trained on swapped pairs), found with `list --base`, composed through the CLI on 200
    validation questions; the harmful delta is left out, the result is not significantly below merging everything
    or the best single delta on held-out questions, and mergekit-yaml on the written gam.yml rebuilds the same
    model."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    from deltahub.cli import main
    from deltahub.endpoint import connect
    from deltahub.server import start_server
    from deltahub.toy import build_world, preset

    student = build_world(config=preset("quick", seed=0), progress=False).student
    specs = (("srt-a", 0, False), ("srt-b", 1, False), ("srt-swapped", 2, True), ("srt-c", 3, False))
    deltas = {
        name: dpo_delta(student, toy_pairs(128, seed, swap), tmp_path / "deltas" / name, steps=32)
        for name, seed, swap in specs
    }
    with start_server(tmp_path / "registry") as srv:
        connect(endpoint=srv.url)
        for name, folder in deltas.items():
            main(
                [
                    "publish",
                    str(folder),
                    "--repo",
                    f"toy/{name}",
                    "--objective",
                    "dpo",
                    "--trainer",
                    "trl",
                    "--chosen-model",
                    "toy/srt-gold" if "swapped" not in name else "toy/srt-near-miss",
                    "--rejected-model",
                    "toy/srt-near-miss" if "swapped" not in name else "toy/srt-gold",
                ]
            )
        capsys.readouterr()
        main(
            [
                "compose",
                "--base",
                str(student),
                "--tasks",
                f"toy:{SKILL}",
                "--n",
                "200",
                "--held-out",
                "--work",
                str(tmp_path / "work"),
                "--out",
                str(tmp_path / "composed"),
                "--quiet",
            ]
        )
        printed = capsys.readouterr().out
    trace = json.loads((tmp_path / "composed" / "compose.json").read_text())
    with capsys.disabled():
        print("\n" + printed)
    assert {c["name"] for c in trace["candidates"]} == {f"toy/{n}" for n in deltas}
    assert "toy/srt-swapped" not in trace["selected"] and trace["selected"]
    assert not_worse(trace["held_out"], "merge_all") and not_worse(trace["held_out"], "best_single")
    gam = tmp_path / "composed" / "gam.yml"
    assert all("@" in m["model"].split("+")[1] for m in __import__("yaml").safe_load(gam.read_text())["models"])

    # mergekit-yaml rebuilds the composed model from a gam.yml (local copies: mergekit resolves repo ids on
    # the public Hub unless deltahub's endpoint plugin is installed, which this checkout may not have)
    from deltahub.compose import compose

    local = compose(
        [deltas[n.split("/")[1]] for n in sorted(trace["selected"])],
        tmp_path / "local",
        tasks=[f"toy:{SKILL}"],
        n=200,
        work=tmp_path / "work",
        progress=False,
    )
    out = tmp_path / "mergekit-out"
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "mergekit-yaml"),
            str(local.out / "gam.yml"),
            str(out),
            "--lora-merge-cache",
            str(tmp_path / "lora-cache"),
            "--lora-merge-dtype",
            "float32",
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    want = (
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32), str(local.out))
        .merge_and_unload()
        .state_dict()
    )
    got = {k: v for f in sorted(out.glob("*.safetensors")) for k, v in load_file(f).items()}
    for name, value in got.items():
        assert torch.allclose(value.float(), want[name].float(), atol=1e-5, rtol=1e-4), name

    # a full-rank method writes full models (every trial too): TIES, --full
    full = compose(
        list(deltas.values()),
        tmp_path / "ties",
        tasks=[f"toy:{SKILL}"],
        n=200,
        method="ties",
        full=True,
        params={"density": 0.5},
        work=tmp_path / "work",
        progress=False,
    )
    assert (full.out / "config.json").is_file() and not (full.out / "adapter_config.json").exists()
    assert "srt-swapped" not in full.selected and full.trace["method"] == "ties"


def test_compose_from_a_collection(toy_deltas, toy_work, registry, tmp_path, capsys):
    """A curator's collection of published toy deltas (the harmful one included) is composed from: the deltas
    are pulled and pinned, and being the same content as the local folders, re-scored only if no other test
    scored them (the cache is keyed by content, not by where a delta came from)."""
    from deltahub.cli import main

    student, deltas = toy_deltas
    for name, folder in deltas.items():
        main(["publish", str(folder), "--repo", f"curator/{name}"])
    main(["collection", "create", "srt deltas", "--namespace", "curator"])
    slug = capsys.readouterr().out.strip().splitlines()[-1]
    for name in deltas:
        main(["collection", "add", slug, f"curator/{name}"])
    capsys.readouterr()
    main(
        [
            "compose",
            "--collection",
            slug,
            "--tasks",
            f"toy:{SKILL}",
            "--n",
            "200",
            "--out",
            str(tmp_path / "c"),
            "--work",
            str(toy_work),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert "left out curator/srt-swapped: hurts alone" in out
    trace = json.loads((tmp_path / "c" / "compose.json").read_text())
    import re

    import yaml

    from deltahub.compose import compose
    from deltahub.compose.candidates import content_digest

    assert [c["name"] for c in trace["candidates"]] == [f"curator/{n}" for n in deltas]  # the collection's order
    assert all(
        re.fullmatch(rf"curator/{n}@[0-9a-f]{{40}}", c["source"])
        for n, c in zip(deltas, trace["candidates"], strict=True)
    )
    assert [c["digest"] for c in trace["candidates"]] == [content_digest(f) for f in deltas.values()]
    gam = yaml.safe_load((tmp_path / "c" / "gam.yml").read_text())
    chosen = {c["name"]: c["source"] for c in trace["candidates"] if c["selected_at"]}
    assert sorted(m["model"].split("+", 1)[1] for m in gam["models"]) == sorted(chosen.values())
    # the same choice as composing the local folders (a cached run when the toy test ran first)
    local = compose(
        list(deltas.values()), tmp_path / "local", tasks=[f"toy:{SKILL}"], n=200, work=toy_work, progress=False
    )
    assert [f"curator/{n}" for n in local.selected] == trace["selected"]


def test_candidates_are_deduplicated_by_content_and_named_apart(tiny_model, tmp_path):
    """The same delta twice is tried once; two deltas in folders of the same name keep distinct names; a broken
    one is left out with its reason instead of merged."""
    from safetensors.torch import load_file, save_file

    from deltahub.compose.candidates import dedupe, resolve
    from deltahub.tiny import build_random_adapter

    a = build_random_adapter(tiny_model, tmp_path / "x" / "delta", r=4, alpha=8, seed=1)
    b = build_random_adapter(tiny_model, tmp_path / "y" / "delta", r=4, alpha=8, seed=2)
    copy = tmp_path / "copy-of-x"
    __import__("shutil").copytree(a, copy)
    cands = dedupe([resolve(p) for p in (a, b, copy)])
    assert [c.spec for c in cands] == [str(a), str(b)] and len({c.name for c in cands}) == 2
    weights = load_file(str(b / "adapter_model.safetensors"))
    next(v for k, v in sorted(weights.items()) if "lora_B" in k)[0, 0] = float("inf")
    save_file(weights, str(b / "adapter_model.safetensors"))
    assert "no NaN/Inf" in resolve(b).problem
