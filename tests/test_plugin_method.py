"""A merge method from another package (tests/plugin_pkg), registered only through the entry-point group
``deltahub.merge_methods``, runs on every route with no change to deltahub, equal to its own reference.

The package is installed the way pip would leave it for the interpreter: its source folder and a
``dist-info`` (METADATA, entry_points.txt) on ``PYTHONPATH`` of the subprocesses, which see it through
``importlib.metadata`` like any installed distribution. One driver process runs ``deltahub merge``
(twice: parameters from the command line, ``--no-match``), a recipe's merge stage, ``deltahub compose``
on a local lm-eval task, and the web compose page's parameters and ``gam.yml``; then the real
``mergekit-yaml`` merges the page's config. Every ΔW is compared with the method's definition written
here densely (the weighted sum Σwᵢ·ΔWᵢ, rescaled to the inputs' mean Frobenius norm, times ``gain``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from gam_reference import peft_deltas, rel_err
from lm_eval_tasks import reference_picks, write_mc_task
from safetensors.torch import load_file
from synthetic_adapters import peft_template, write_adapter

PACKAGE = Path(__file__).parent / "plugin_pkg"
BIN = Path(sys.executable).parent
TARGETS = ("q_proj", "v_proj")
RANKS = (3, 5, 2)


def norm_matched(updates: list[torch.Tensor], weights: list[float], gain: float = 1.0, match: bool = True):
    total = sum(w * u for w, u in zip(weights, updates, strict=True))
    if match:
        mean = sum(float(torch.linalg.matrix_norm(u)) for u in updates) / len(updates)
        total = total * (mean / float(torch.linalg.matrix_norm(total)))
    return gain * total


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """The environment of a Python in which the example package is installed (a dist-info on its path)."""
    site = tmp_path_factory.mktemp("site")
    info = site / "deltahub_example_method-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: deltahub-example-method\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[deltahub.merge_methods]\nnorm_matched = deltahub_example_method:norm_matched\n"
    )
    (info / "top_level.txt").write_text("deltahub_example_method\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(PACKAGE), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("DELTAHUB_MERGEKIT_DISABLE", None)
    return env


@pytest.fixture(scope="module")
def world(tiny_model, tmp_path_factory):
    """Three float32 adapters of mixed ranks (α = 2r), large enough to move the tiny model's answers, and a
    two-choice lm-eval task on which the student is always wrong (so compose can only improve on it)."""
    root = tmp_path_factory.mktemp("plugin")
    config, shapes = peft_template(tiny_model, root, TARGETS)
    g = torch.Generator().manual_seed(11)
    adapters = [write_adapter(root / f"a{i}", config, shapes, r, g, std=0.5, alpha=2 * r) for i, r in enumerate(RANKS)]
    base = load_file(Path(tiny_model) / "model.safetensors")
    words = ["red", "blue", "green", "stone", "water", "light", "seven", "quiet", "north", "salt"]
    rng = random.Random(3)
    questions = [f"{rng.choice(words)} {rng.choice(words)}?" for _ in range(16)]
    docs = [{"question": q, "choices": rng.sample(words, 2)} for q in questions]
    picks = reference_picks(tiny_model, [{**d, "label": 0} for d in docs])
    docs = [{**d, "label": 1 - p} for d, p in zip(docs, picks, strict=True)]  # the student's pick is wrong
    tasks = write_mc_task(root / "tasks", "plugin_mc", docs, split="validation")
    return {"root": root, "base": Path(tiny_model), "base_weights": base, "adapters": adapters, "tasks": tasks}


DRIVER = r"""
import contextlib, io, json, sys
from pathlib import Path
from deltahub.cli import main

def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["deltahub", *argv]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv)); code = 0
        except SystemExit as exc:
            code = exc.code
    return {"code": code, "out": out.getvalue(), "err": err.getvalue()}

w = json.loads(sys.argv[1])
root, base, adapters = Path(w["root"]), w["base"], w["adapters"]
results = {"help": cli("merge", "--help"), "compose_help": cli("compose", "--help")}
results["cli"] = cli("merge", *adapters, "--method", "norm_matched", "--gain", "0.5", "--weights", "1,0.5,2",
                     "--dtype", "float32", "--out", str(root / "cli"), "--quiet")
results["cli_nomatch"] = cli("merge", *adapters, "--method", "norm_matched", "--no-match", "--dtype", "float32",
                             "--out", str(root / "cli-nomatch"), "--quiet")
results["bad"] = cli("merge", *adapters, "--method", "norm_matched", "--gain", "-1", "--out", str(root / "bad"))

from deltahub.pipeline.cache import StageCache
from deltahub.pipeline.run import run_merges
from deltahub.recipe import parse_recipe
names = [Path(a).name for a in adapters]
recipe = parse_recipe({
    "name": "plugin", "hub": {"publish": False}, "student": {"model": base},
    "deltas": [{"name": n, "chosen": "weak", "rejected": "weaker", "prompts": {"source": "p.jsonl"}} for n in names],
    "merge": {"methods": ["norm_matched"], "parameters": {"norm_matched": {"gain": 2.0}}},
})
merges = run_merges(recipe, StageCache(root / "recipe", log=lambda _: None), {n: {} for n in names},
                    dict(zip(names, map(Path, adapters))), base, root / "recipe")
results["recipe"] = merges["norm_matched"]

results["compose"] = cli("compose", adapters[0], "--tasks", "plugin_mc", "--include-path", w["tasks"],
                         "--method", "norm_matched", "--gain", "1.5", "--work", str(root / "work"),
                         "--out", str(root / "composed"), "--quiet")

from deltahub.server.web import compose as page
results["page_methods"] = list(page.COMPOSE_METHODS)
params = page.parse_params("norm_matched", {"gain": "0.5"}, True)  # the match box left unticked
results["page_params"] = params
picks = tuple(page.Pick(a, None, 1.0) for a in adapters)
(root / "gam.yml").write_text(page.Composition(base, "norm_matched", picks, {**params, "match": True}).yaml())
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def ran(world, installed):
    w = {k: str(v) for k, v in world.items() if k != "base_weights" and k != "adapters"}
    w["adapters"] = [str(a) for a in world["adapters"]]
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(w)], capture_output=True, text=True, env=installed, timeout=600
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULTS ") :])


def _updates(world, indices=None) -> dict[str, list[torch.Tensor]]:
    per_input = [peft_deltas(a) for a in world["adapters"]]
    per_input = per_input if indices is None else [per_input[i] for i in indices]
    return {m: [d[m] for d in per_input] for m in per_input[0]}


def _check(got: dict[str, torch.Tensor], updates: dict[str, list[torch.Tensor]], weights, **params) -> None:
    assert set(got) == set(updates)
    for module, dW in got.items():
        err = rel_err(dW, norm_matched(updates[module], weights, **params))
        assert err < 1e-5, f"{module}: {err:.2e}"


def test_the_plugin_shows_in_the_command_lines(ran):
    help_text = " ".join(ran["help"]["out"].split())
    assert "norm_matched" in help_text
    assert "[norm_matched] multiply the result (after the rescaling)" in help_text  # its docstring
    assert "[norm_matched] rescale the sum to the inputs' mean Frobenius norm" in help_text  # its annotation
    assert "--match / --no-match" in help_text
    assert "--gain" in " ".join(ran["compose_help"]["out"].split())


def test_the_plugin_merges_through_the_cli(ran, world):
    assert ran["cli"]["code"] == 0, ran["cli"]["err"]
    _check(peft_deltas(world["root"] / "cli"), _updates(world), [1.0, 0.5, 2.0], gain=0.5)
    assert ran["cli_nomatch"]["code"] == 0, ran["cli_nomatch"]["err"]
    _check(peft_deltas(world["root"] / "cli-nomatch"), _updates(world), [1.0] * 3, match=False)
    card = json.loads((world["root"] / "cli" / "deltahub.json").read_text())["merge"]
    assert card["method"] == "norm_matched" and card["parameters"] == {"gain": 0.5, "match": True}
    assert card["reference_url"] == "https://example.org/norm-matched"
    assert "--method norm_matched" in card["command"] and "--gain 0.5" in card["command"]
    bad = ran["bad"]
    assert bad["code"] == 2 and "Traceback" not in bad["err"], bad["err"]
    lines = [line for line in bad["err"].splitlines() if line.strip()]
    assert len(lines) == 1 and "norm_matched parameter gain: must be > 0 (got -1.0)" in lines[0], lines
    assert not (world["root"] / "bad").exists()


def test_the_plugin_merges_in_a_recipe(ran, world):
    _check(peft_deltas(Path(ran["recipe"])), _updates(world), [1.0] * 3, gain=2.0)


def test_the_plugin_composes(ran, world):
    assert ran["compose"]["code"] == 0, ran["compose"]["err"]
    out = world["root"] / "composed"
    trace = json.loads((out / "compose.json").read_text())
    assert trace["method"] == "norm_matched" and trace["student"] == 0.0 and trace["score"] > 0
    assert [c["selected_at"] for c in trace["candidates"]] == [1]
    _check(peft_deltas(out), _updates(world, [0]), [1.0], gain=1.5)
    config = yaml.safe_load((out / "gam.yml").read_text())
    assert config["merge_method"] == "norm_matched" and config["parameters"] == {"gain": 1.5}


def test_the_plugin_is_offered_by_the_compose_page_and_merges_in_mergekit(ran, world, installed):
    assert "norm_matched" in ran["page_methods"]
    assert ran["page_params"] == {"gain": 0.5, "match": False}
    out = world["root"] / "mergekit"
    r = subprocess.run(
        [str(BIN / "mergekit-yaml"), str(world["root"] / "gam.yml"), str(out)]
        + ["--lora-merge-cache", str(world["root"] / "lora-cache"), "--lora-merge-dtype", "float32"],
        capture_output=True,
        text=True,
        env=installed,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    merged = {k: v for f in sorted(out.glob("*.safetensors")) for k, v in load_file(f).items()}
    base = world["base_weights"]
    got = {
        name.removesuffix(".weight"): w.double() - base[name].double()
        for name, w in merged.items()
        if name.split(".")[-2] in TARGETS
    }
    _check(got, _updates(world), [1.0] * 3, gain=0.5)
    assert "Norm-matched sum (example plugin)" in (out / "README.md").read_text()


def test_without_the_package_deltahub_does_not_know_the_method(tmp_path):
    """The method comes from the entry point only: deltahub itself has no trace of it."""
    from deltahub.errors import InputError
    from deltahub.merge import METHODS, get_method

    assert "norm_matched" not in METHODS
    with pytest.raises(InputError, match="unknown merge method 'norm_matched'"):
        get_method("norm_matched")


def test_the_readme_shows_the_whole_method():
    """The README's "Add a merge method" example is this package's code, line for line."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("### Add a merge method", 1)[1]
    shown = section.split("```python\n", 1)[1].split("```", 1)[0]
    source = (PACKAGE / "deltahub_example_method" / "__init__.py").read_text()
    start = "from typing import Annotated"
    assert source[source.index(start) :].strip() == shown[shown.index(start) :].strip()
