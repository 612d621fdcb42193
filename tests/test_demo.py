"""`deltahub demo --quick` end to end on the embedded registry, interrupted and resumed.

The run is killed (SIGKILL) right after its first stage finishes, restarted, and must not redo
that stage; a third run must skip every stage. The report must have every row, every claim with
its interval and verdict, and say that it is a plumbing check; each row's per-question verdicts
must reproduce its score; the merged student's card must list its deltas with revisions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lm_eval_tasks import reference_picks, write_mc_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    stages = out / "seed-0" / "stages.json"
    cmd = [sys.executable, "-m", "deltahub.cli", "demo", "--quick", "--out", str(out)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if stages.exists() and "generate:" in stages.read_text():
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = json.loads(stages.read_text())
    assert any(k.startswith("generate:") for k in first), "the killed run finished no stage"
    resumed = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    return out, first, resumed, again


def test_resumed_run_does_not_redo_finished_stages(demo):
    out, first, resumed, _ = demo
    for stage in first:
        assert f"[skip] {stage}" in resumed.stderr + resumed.stdout
        assert f"[run ] {stage}" not in resumed.stderr + resumed.stdout


def test_second_run_skips_everything(demo):
    _, _, _, again = demo
    log = again.stderr + again.stdout
    assert "[run ]" not in log and "[skip] merge:gam" in log


def test_report_has_every_row(demo):
    out, *_ = demo
    results = json.loads((out / "seed-0" / "results.json").read_text())
    rows, kinds, correct = results["rows"], results["kinds"], results["correct"]
    skills = sorted(set(rows["student"]) - {"avg"})
    families = results["order"]
    assert len(skills) >= 2 and len(families) >= 2
    names = ["student", "merge gam", "merge average", "merge ties", "merge knots"]
    for f in families:  # PDA's setting: every family answers every skill
        names += [f"+ delta {f}", f"+ SFT-on-chosen {f}", f"{f}-weak", f"{f}-weaker"]
    for name in names:
        assert name in rows, name
        assert set(rows[name]) == {*skills, "avg"}
        assert all(0.0 <= v <= 1.0 for v in rows[name].values())
        # the per-question verdicts are the score: n questions per skill, paired across rows
        assert set(correct[name]) == set(skills)
        for s in skills:
            assert len(correct[name][s]) == 300 and rows[name][s] == correct[name][s].count("1") / 300
    for f in families:  # single deltas also carry their verdicts on the disjoint selection questions
        assert {len(b) for b in results["select"][f"+ delta {f}"].values()} == {100}
    assert kinds["merge gam"] == "merge" and kinds["student"] == "student"
    report = (out / "report.md").read_text()
    assert "Plumbing check, not evidence" in report
    assert "| merge gam | merge |" in report
    for claim in (
        "best single delta > student",
        "average single delta > student",
        "GAM merge > best single delta",
        "GAM merge > averaging",
        "GAM merge > TIES",
        "GAM merge > KnOTS",
        "delta (DPO) > SFT on the same chosen answers",
        "composition curve: 2 deltas > 1",
    ):
        line = next(x for x in report.splitlines() if x.startswith(f"| {claim} |"))
        assert any(f"**{v}**" in line for v in ("reproduced", "not resolved", "contradicted")), line
    assert "## Appendix: per seed" in report
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_deltas_went_through_the_registry(demo):
    out, *_ = demo
    results = json.loads((out / "seed-0" / "results.json").read_text())
    for name, info in results["deltas"].items():
        assert info.get("revision") and info.get("repo"), f"delta {name} was not published: {info}"
        assert len(info["revision"]) == 40
    card = (Path(results["merges"]["gam"]) / "README.md").read_text()
    for info in results["deltas"].values():
        assert info["repo"] in card and info["revision"] in card
    # its scores are in the card's model-index, as the Hub shows evaluation results
    import yaml

    meta = yaml.safe_load(card.split("---")[1])
    scored = {r["dataset"]["type"]: r["metrics"][0] for r in meta["model-index"][0]["results"]}
    for skill, value in results["rows"]["merge gam"].items():
        if skill != "avg":
            assert scored[skill]["type"] == "exact_match" and scored[skill]["value"] == round(value, 4)
    assert results["published"], "the merged student was not published"


def _mc_task(folder: Path) -> Path:
    """A local lm-eval multiple-choice task on toy sort questions: the right answer or a corruption."""
    from deltahub.toy.skills import sample

    docs = [
        {"question": q, "choices": list(dict.fromkeys([a, a[::-1], a[1:] + a[0]])), "label": 0}
        for q, a in sample("srt", "eval", 12, seed=3)
    ]
    return write_mc_task(folder, "srt_mc", docs)


def _independent_acc(model_dir: Path, task: Path, adapter: Path | None = None) -> float:
    """Accuracy by summed log-probability of ' ' + choice, computed without lm-eval."""
    docs = [json.loads(line) for line in (task / "docs.jsonl").read_text().splitlines()]
    picks = reference_picks(model_dir, docs, adapter)
    return sum(p == d["label"] for p, d in zip(picks, docs, strict=True)) / len(docs)


def test_lm_eval_recipe_reuses_every_stage_and_scores_every_row(demo, tmp_path):
    """The same recipe with lm-eval evaluation: only the evaluation stages run, and each row's
    score equals an independent log-likelihood scoring of that model (+ adapter)."""
    from deltahub.pipeline.demo import RECIPES
    from deltahub.pipeline.run import run_recipe
    from deltahub.recipe import load_recipe
    from deltahub.toy import build_world, preset

    out, *_ = demo
    task = _mc_task(tmp_path / "tasks")
    recipe = load_recipe(RECIPES / "toy-quick.yaml")
    recipe.eval = recipe.eval.model_validate(
        {
            "kind": "lm-eval",
            "tasks": ["srt_mc"],
            "include_path": str(task),
            "backend": "hf",
            "teachers": False,
            "sft_control": False,
        }
    )
    recipe.hub.publish = False
    lines: list[str] = []
    result = run_recipe(recipe, out / "seed-0", log=lines.append)
    log = "\n".join(lines)
    assert "[skip] train:a" in log and "[skip] merge:gam" in log and "[run ] eval:student" in log
    student = build_world(config=preset("quick", seed=0), progress=False).student
    assert set(result.rows) == {
        "student",
        "+ delta a",
        "+ delta b",
        "merge gam",
        "merge average",
        "merge ties",
        "merge knots",
    }
    assert set(result.rows["student"]) == {"srt_mc", "avg"}
    assert result.rows["student"]["srt_mc"] == pytest.approx(_independent_acc(student, task))
    gam = Path(result.merges["gam"])
    assert result.rows["merge gam"]["srt_mc"] == pytest.approx(_independent_acc(student, task, gam))
    # asking for the teacher rows as well scores only them: rows already scored are reused
    recipe.eval = recipe.eval.model_copy(update={"teachers": True})
    lines.clear()
    again = run_recipe(recipe, out / "seed-0", log=lines.append)
    log = "\n".join(lines)
    assert "[skip] eval:student" in log and "[skip] eval:merge gam" in log and "[run ] eval:a-weak" in log
    assert again.rows["merge gam"] == result.rows["merge gam"] and "a-weak" in again.rows
