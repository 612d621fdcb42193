"""The merge-method protocol: a typed function is a method; everything a route needs derives from it.

- the parameter model comes from the signature (types, bounds, defaults; help from ``Annotated`` metadata
  or the docstring's ``Args:``), refuses unknown names, and a declaration that cannot be a method fails
  when it is defined;
- the registry refuses a method that would break the shared command line, and a broken or clashing
  entry-point plugin is left out with a warning while the others load;
- no route names a method: no string in deltahub's code outside the modules that define the methods
  is a method's name (checked on the syntax tree, docstrings aside).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest
import torch
from pydantic import Field

from deltahub.errors import InputError
from deltahub.merge import METHODS, LowRank, Scale, get_method, merge_method, merge_module, register
from deltahub.merge.params import fields

ROOT = Path(__file__).resolve().parents[1]


def _sum(deltas, weights):
    return LowRank.concat(deltas, weights)


@pytest.fixture
def own_registry(monkeypatch):
    """This test's registrations stay in this test (the registry is process-wide)."""
    from deltahub.merge import registry

    registry.default_method()  # loaded
    monkeypatch.setattr(registry, "_methods", dict(registry._methods))


def test_parameters_come_from_the_signature():
    @merge_method("probe", pretty_name="Probe (a test method)")
    def probe(
        deltas: list[LowRank],
        weights: list[float],
        *,
        alpha: Annotated[float, Field(ge=0, le=2)] = 0.5,
        mode: Annotated[Literal["a", "b"], "how to probe"] = "a",
        steps: int = 3,
        scale: Scale = 1.0,
    ) -> torch.Tensor:
        """A probe.

        Args:
            alpha: the probe's strength, from 0
                to 2 (a help line that wraps)
            steps (int): how many
        """
        return _sum(deltas, weights).dense() * alpha

    assert not probe.low_rank and probe.label == "Probe"  # a Tensor return: needs --full
    info = {p.name: p for p in fields(probe.params)}
    assert list(info) == ["alpha", "mode", "steps", "scale"]
    assert info["alpha"].help == "the probe's strength, from 0 to 2 (a help line that wraps)"
    assert info["mode"].help == "how to probe" and info["mode"].choices == ("a", "b")
    assert info["steps"].help == "how many" and info["steps"].default == 3
    assert info["scale"].help == "multiply the merged update"
    assert probe.resolve({"alpha": 1}) == {"alpha": 1.0, "mode": "a", "steps": 3, "scale": 1.0}
    for bad, needle in (
        ({"alpha": 3}, "probe parameter alpha: must be <= 2 (got 3)"),
        ({"mode": "c"}, "probe parameter mode: must be one of a, b"),
        ({"aplha": 1}, "unknown parameter(s) for probe: aplha (did you mean 'alpha'?)"),
        ({"x": 1, "y": 2}, "unknown parameter(s) for probe: x, y"),
    ):
        with pytest.raises(InputError) as exc:
            probe.resolve(bad)
        assert needle in str(exc.value), str(exc.value)


@pytest.mark.parametrize(
    "source, needle",
    [
        ("def f(deltas, weights, scale: float = 1.0) -> LowRank: ...", "must be keyword-only"),
        ("def f(deltas, weights, *, scale: float) -> LowRank: ...", "needs a type annotation and a default"),
        ("def f(deltas, weights, *, scale=1.0) -> LowRank: ...", "needs a type annotation and a default"),
        ("def f(deltas, *, scale: float = 1.0) -> LowRank: ...", "takes (deltas, weights, *, parameters...)"),
        ("def f(deltas, weights, *, k: Annotated[int, Field(ge=1)] = 0) -> LowRank: ...", "does not fit its type"),
    ],
)
def test_a_declaration_that_cannot_be_a_method_fails_where_it_is_defined(source, needle):
    scope = {"LowRank": LowRank, "Annotated": Annotated, "Field": Field}
    exec(source, scope)
    with pytest.raises(TypeError, match=re.escape(needle)):
        merge_method("bad")(scope["f"])


def test_the_registry_keeps_one_meaning_per_name(own_registry):
    @merge_method("probe_density")
    def clash(deltas: list[LowRank], weights: list[float], *, density: float = 0.5) -> LowRank:
        return _sum(deltas, weights)

    with pytest.raises(ValueError, match="parameter density is declared differently by ties"):
        register(clash)

    @merge_method("probe_reserved")
    def reserved(deltas: list[LowRank], weights: list[float], *, weights_sum: float = 1.0, out: str = "") -> LowRank:
        return _sum(deltas, weights)

    with pytest.raises(ValueError, match="parameter\\(s\\) out are deltahub's own options"):
        register(reserved)
    with pytest.raises(ValueError, match="the name 'gam' is taken"):
        register(merge_method("gam")(clash.fn))
    assert "probe_density" not in METHODS and "probe_reserved" not in METHODS


def test_a_registered_method_merges_by_name(own_registry):
    @merge_method("probe_sum", output_rank=lambda ranks, shape: sum(ranks))
    def probe_sum(deltas: list[LowRank], weights: list[float], *, gain: float = 1.0) -> LowRank:
        return _sum(deltas, weights).scaled(gain)

    assert register(probe_sum) is probe_sum and register(probe_sum) is probe_sum  # idempotent
    g = torch.Generator().manual_seed(0)
    deltas = [LowRank(torch.randn(6, 2, generator=g), torch.randn(2, 5, generator=g)) for _ in range(2)]
    got = merge_module("probe_sum", deltas, [1.0, 2.0], gain=0.5).dense(torch.float64)
    want = 0.5 * (deltas[0].dense(torch.float64) + 2 * deltas[1].dense(torch.float64))
    assert torch.allclose(got, want)
    assert get_method("probe_sum") is probe_sum


def test_a_broken_plugin_is_left_out_with_a_warning(tmp_path):
    """Entry points that fail to import, name another method, or clash: each warns; the rest load."""
    info = tmp_path / "broken_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[deltahub.merge_methods]\n"
        "missing = no_such_module_anywhere:thing\n"
        "misnamed = broken_plugins:renamed\n"
        "clash = broken_plugins:clash\n"
        "plain = broken_plugins:plain\n"
    )
    (tmp_path / "broken_plugins.py").write_text(
        "from deltahub.merge import LowRank, merge_method\n"
        "@merge_method('other_name')\n"
        "def renamed(deltas: list[LowRank], weights: list[float]) -> LowRank: ...\n"
        "@merge_method('clash')\n"
        "def clash(deltas: list[LowRank], weights: list[float], *, scale: int = 2) -> LowRank: ...\n"
        "def plain(deltas: list[LowRank], weights: list[float], *, gain: float = 1.0) -> LowRank:\n"
        "    return LowRank.concat(deltas, [gain * w for w in weights])\n"
    )
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    from deltahub.merge import METHODS\n"
        "    names = list(METHODS)\n"
        "print(names)\n"
        "for x in w: print('WARN', x.message)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)}
    )
    assert r.returncode == 0, r.stderr
    names = eval(r.stdout.splitlines()[0])
    assert "plain" in names and "gam" in names  # a plain typed function, wrapped under its entry point's name
    assert not {"missing", "misnamed", "clash"} & set(names)
    warned = r.stdout
    assert "merge method missing (no_such_module_anywhere:thing) was not loaded: No module named" in warned
    assert "merge method misnamed" in warned and "it is named 'other_name'" in warned
    assert "merge method clash" in warned and "parameter scale is declared differently" in warned


# ---- no route names a method ---------------------------------------------------------------------

DEFINING = {"src/deltahub/merge/methods.py", "src/deltahub/merge/core_space.py", "src/deltahub/merge/iso.py"}
# strings that are a method's name but mean something else there
OTHER_MEANING = {("src/deltahub/generate/agreement.py", "ties"), ("src/deltahub/generate/cli.py", "ties")}
# the demo: its gam.yml takes the recipe's gam parameters, and its report compares the paper's GAM rows
# with the other methods' (the claims are the paper's, about GAM by name)
ELSEWHERE = {"src/deltahub/pipeline/demo.py", "src/deltahub/pipeline/report.py"}


def _strings(path: Path):
    tree = ast.parse(path.read_text())
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value


def test_no_route_names_a_method():
    names = set(METHODS)
    assert {"gam", "core", "iso_c", "iso_cts"} <= names
    found = []
    for path in sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]):
        rel = str(path.relative_to(ROOT))
        if rel in DEFINING or rel in ELSEWHERE:
            continue
        found += [f"{rel}:{line}: {text!r}" for line, text in _strings(path) if text in names]
    found = [f for f in found if (f.split(":")[0], eval(f.split(": ", 1)[1])) not in OTHER_MEANING]
    assert not found, "method names outside their definitions:\n" + "\n".join(found)
