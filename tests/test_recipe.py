"""Recipe schema: the shipped recipes validate; a broken recipe names the offending key."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deltahub.errors import InputError
from deltahub.recipe import load_recipe, parse_recipe

RECIPES = Path(__file__).parent.parent / "recipes"
SHIPPED = sorted(p for p in RECIPES.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipes_validate_and_plan(path):
    recipe = load_recipe(path)
    proc = subprocess.run(
        [sys.executable, "-m", "deltahub.cli", "run", str(path), "--dry-run"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    for d in recipe.deltas:
        assert f"delta {d.name}:" in proc.stdout
    assert "recipe is valid" in proc.stdout


def test_toy_recipe_is_the_packaged_one():
    from deltahub.pipeline.demo import RECIPES as PACKAGED

    for name in ("toy.yaml", "toy-quick.yaml"):
        assert (RECIPES / name).read_text() == (PACKAGED / name).read_text()


@pytest.fixture
def toy():
    return yaml.safe_load((RECIPES / "toy-quick.yaml").read_text())


@pytest.mark.parametrize(
    "mutate, key",
    [
        (
            lambda r: r["deltas"][1].__setitem__("train", {**r["deltas"][1]["train"], "bta": 0.1}),
            "deltas[1].train.bta: unknown setting (did you mean 'beta'?)",
        ),
        (
            lambda r: r["deltas"][0]["train"].__setitem__("objective", "dop"),
            "deltas[0].train.objective: must be one of dpo, dpo_norm",
        ),
        (lambda r: r["deltas"][0].__setitem__("chosn", "x"), "deltas[0].chosn: unknown key"),
        (
            lambda r: r["deltas"][0]["generation"].__setitem__("temprature", 1.0),
            "deltas[0].generation.temprature: unknown setting",
        ),
        (lambda r: r["merge"].__setitem__("methods", ["gam", "slerp"]), "merge.methods: unknown merge method"),
        (
            lambda r: r["merge"]["parameters"].__setitem__("ties", {"densty": 0.2}),
            "unknown parameter(s) for ties: densty",
        ),
        (lambda r: r.pop("student"), "student: is required"),
        (lambda r: r["deltas"][1].__setitem__("name", r["deltas"][0]["name"]), "delta names must be unique"),
        (lambda r: r.pop("world"), "no 'world:' section"),
    ],
)
def test_broken_recipe_names_the_key(toy, mutate, key):
    broken = copy.deepcopy(toy)
    mutate(broken)
    with pytest.raises(InputError) as exc:
        parse_recipe(broken, "r.yaml")
    assert key in exc.value.message


def test_cli_reports_broken_recipe_in_one_line(tmp_path, toy):
    toy["deltas"][0]["train"]["learning_rat"] = 1e-4
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(toy))
    proc = subprocess.run(
        [sys.executable, "-m", "deltahub.cli", "run", str(path), "--dry-run"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "deltas[0].train" in proc.stderr and "learning_rat" in proc.stderr


def test_hub_token_env_is_the_token_the_run_publishes_with(toy, tmp_path, monkeypatch):
    """A recipe's hub.token_env names the variable whose token the run's registry calls carry; unset, it is a
    one-line error before anything runs."""
    from deltahub.endpoint import connect, current
    from deltahub.pipeline.run import _setup_hub
    from deltahub.server import start_server

    previous = current()
    monkeypatch.setattr("deltahub.endpoint._current", previous)  # this process's endpoint again afterwards
    with start_server(tmp_path / "registry", open_mode=False, tokens={"tok-alice": "alice"}) as srv:
        recipe = parse_recipe({**toy, "hub": {**toy["hub"], "endpoint": srv.url, "token_env": "ALICE_TOKEN"}})
        monkeypatch.delenv("ALICE_TOKEN", raising=False)
        with pytest.raises(InputError, match="hub.token_env names ALICE_TOKEN, which is not set"):
            _setup_hub(recipe)
        monkeypatch.setenv("ALICE_TOKEN", "tok-alice")
        monkeypatch.setenv("HF_TOKEN", "tok-someone-else")
        _setup_hub(recipe)
        assert connect().url == srv.url and connect().api().whoami()["name"] == "alice"
    if previous is not None:
        connect(previous.choice.endpoint)  # the clients pointed back at it
