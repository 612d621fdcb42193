"""The sections world (the default demo's): its graded quality and its premises, measured by a parser
written here, independent of the generator's (``toy/graded.py``)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from deltahub.toy import build_world, preset
from deltahub.toy.evaluate import greedy_answers, load_model
from deltahub.toy.graded import MAX_ANSWER_LEN, restyle, score_sec, sec_answer
from deltahub.toy.skills import sample
from deltahub.toy.world import ModelSpec, training_items

IDEAL = [6, 6, 6]


def stars_of(answer: str) -> list[int] | None:
    """Marks per section of three non-empty sections joined by ':', section i made of mark i
    ('*', '+', '=') and '-' only -- or None."""
    parts = answer.split(":")
    if len(parts) != 3:
        return None
    counts = []
    for mark, part in zip("*+=", parts, strict=True):
        if not part or set(part) - {mark, "-"}:
            return None
        counts.append(part.count(mark))
    return counts


def credit(answer: str) -> float:
    stars = stars_of(answer)
    return 0.0 if stars is None else sum(min(n, 6) for n in stars) / 18


def test_scorer_agrees_with_an_independent_parser():
    rng = random.Random(0)
    outputs = ["****--:++++--:====--", "******:++++++:======", "------:------:------", "**-*--:-+----:=-=-=-"]
    outputs += ["****--:++++--:====--:", "****--:****--:****--", "****--:++++--", "*****************", "", "a:b:c"]
    outputs += ["*********:++:=", "****--:+++=--:====--", "::", "*:+:="]
    for _ in range(3000):  # random strings, many of them near the form
        n = rng.choice([19, 20, 21, rng.randrange(0, 30)])
        outputs.append("".join(rng.choice("**++==--:a") for _ in range(n)))
        if rng.random() < 0.5:
            outputs.append(":".join("".join(rng.choice(m + "-") for _ in range(rng.randint(5, 8))) for m in "*+="))
    assert {round(credit(o), 6) for o in outputs} != {0.0}  # the sample holds well-formed answers
    for o in outputs:
        assert score_sec("sec abc", o) == pytest.approx(credit(o)), o
    assert credit(sec_answer([4, 4, 4])) == pytest.approx(12 / 18)
    assert len(sec_answer(IDEAL)) < MAX_ANSWER_LEN  # decoding leaves room past the longest answer


def test_training_answers_hold_the_level_with_its_spread():
    spec = ModelSpec(levels={"sec": [6, 1, 1]}, spread=[0.65, 0.2, 0.15])
    items = training_items(spec, ["sec"], seed=3, pool=2000)
    stars = np.array([stars_of(a) for _, a in items])
    assert (stars[:, 0] == 6).all()  # capped at six
    for col in (1, 2):  # level 1 plus 0, 1 or 2 extra stars with the spread's odds
        assert set(stars[:, col]) == {1, 2, 3}
        assert np.mean(stars[:, col] == 1) == pytest.approx(0.65, abs=0.04)
    assert stars_of(restyle("ignored", [2, 0, 5])) == [2, 0, 5]


@pytest.fixture(scope="module")
def world():
    from deltahub.toy.world import default_root

    config = preset("sections", seed=0)
    return build_world(default_root() / "test-sections", config, progress=False, workers=2)


@pytest.fixture(scope="module")
def measured(world) -> dict[str, np.ndarray]:
    """Mean stars per section of every model of the shipped world (seed 0), from greedy answers."""
    questions = [q for q, _ in sample("sec", "eval", 200, seed=0)]
    out = {}
    for name in world.names():
        model, tok = load_model(world.model(name))
        answers = greedy_answers(model, tok, questions, MAX_ANSWER_LEN + 1)
        parsed = [stars_of(a) for a in answers]
        assert all(p is not None for p in parsed), f"{name} wrote a malformed answer"
        out[name] = np.mean(parsed, axis=0)
    return out


def test_every_supervisor_is_below_the_student(world, measured):
    """On the greedy answers, and on the expected credit the evaluation scores (the mean over answers
    sampled at temperature 1), recomputed here from the same draws with the parser above."""
    from deltahub.toy.evaluate import GRADED_SAMPLES, SAMPLE_SEED, evaluate_model

    student = measured["student"].sum()
    assert student == pytest.approx(12, abs=0.5)
    for name, stars in measured.items():
        if name != "student":
            assert stars.sum() < student - 2, name
    questions = [q for q, _ in sample("sec", "eval", 200, seed=0)]
    repeated = [q for q in questions for _ in range(GRADED_SAMPLES)]
    expected = {}
    for name in world.names():
        model, tok = load_model(world.model(name))
        answers = greedy_answers(model, tok, repeated, MAX_ANSWER_LEN + 1, 2048, sample_seed=SAMPLE_SEED)
        expected[name] = np.mean([credit(a) for a in answers])
        assert evaluate_model(model, tok, ["sec"], n=200)["sec"] == pytest.approx(expected[name]), name
        # sampling spreads each answer around its level: the expectation is near the greedy credit
        assert expected[name] == pytest.approx(measured[name].sum() / 18, abs=0.1), name
    assert all(v < expected["student"] - 0.1 for k, v in expected.items() if k != "student")


def test_each_family_differs_only_in_its_own_section_and_toward_the_target(measured):
    toward_target = np.array(IDEAL) - measured["student"]
    for j, family in enumerate("abc"):
        diff = measured[f"{family}-weak"] - measured[f"{family}-weaker"]
        assert diff[j] == pytest.approx(1, abs=0.3)  # one star: the pair differs in one graded slot
        assert np.abs(np.delete(diff, j)).max() < 0.5
        assert diff @ toward_target > 0  # the difference points from the student toward the target
        assert measured[f"{family}-weak"][j] > measured["student"][j]  # its own capability
        assert (np.delete(measured[f"{family}-weak"], j) < np.delete(measured["student"], j)).all()


def test_dose_members_step_down_in_section_a(measured):
    for member, n in {"weaker5": 5, "weaker": 5, "weaker4": 4, "weaker3": 3, "weaker0": 0}.items():
        stars = measured[f"a-{member}"]
        assert stars[0] == pytest.approx(n, abs=0.3), member
        assert stars[1:] == pytest.approx([1, 1], abs=0.3), member
