"""GAM is exactly the paper's on every route, checked against an independent dense GAM.

One parametrised test over the routes that merge LoRA deltas with GAM:

- ``api``: ``deltahub.merge.merge_adapters`` (adapter output);
- ``recipe``: a recipe's merge stage (``deltahub.pipeline.run.run_merges`` on a Recipe object);
- ``cli``: ``deltahub merge`` in a subprocess (adapter output);
- ``full``: ``deltahub merge --base M --full`` in a subprocess (a full model; ΔW = W' − W₀);
- ``mergekit-lora``: mergekit with ``BASE+ADAPTER`` inputs (the plugin reads the LoRA factors);
- ``mergekit-dense``: mergekit with merged full models as dense inputs (W₀ + sᵢBᵢAᵢ in float32).

Factors: adapter dtype {float32, bfloat16} × α {r, 2r, rsLoRA (α = 2r, scale α/√r)} × reference
{0, 2, an input's name, auto} × ranks {equal (all 4), mixed (6, 3, 6, 2, 4)} × N {2, 3, 4, 5}.
The in-process routes (api, recipe) run the full product (reference 2 needs N ≥ 3): 180 cases
each. The subprocess routes run a covering subset: 4 cases each in which every value of every
factor appears at least once. The adapter routes (api, cli) alternate ``device`` between ``cpu``
and ``auto`` (the GPU where one is visible; the batched merge, issue #16), and the device recorded
in ``deltahub.json`` must be the one asked for. To pay each subprocess's start-up (torch, mergekit: 5-10 s on a busy
2-core machine) once, the 8 ``deltahub merge`` command lines run in one Python process through
``deltahub.cli.main`` (the console script's entry point; tests/cli_batch.py), the two mergekit
routes' 8 merges in
one ``mergekit-multi`` process (it passes each config to ``run_merge``, the function
``mergekit-yaml`` calls; the mergekit-yaml command itself runs in test_mergekit.py), and both
run in the background while the in-process routes are checked.

Every merged ΔW is compared with :func:`gam_reference.dense_gam` (Eq. 1–5, float64, dense SVDs,
never deltahub code) on the updates the route received, read from the files with PEFT's scale
semantics (bf16 factors are read as stored, so the reference is computed from the bf16-rounded
factors). For ``auto`` the index the route reports must be the one the independent rule
(:func:`gam_reference.auto_reference`) picks, and ΔW must equal the reference at that index.
In the mixed-rank cases an explicit reference is always a largest-rank input (the rule; the
refusal of a lower-rank one is tested in test_merge.py, test_merge_adapters.py and
test_mergekit.py).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cli_batch
import pytest
import torch
import yaml
from gam_reference import auto_reference, dense_gam, peft_deltas, rel_err
from safetensors.torch import load_file, save_file
from synthetic_adapters import merge_stage, peft_template, write_adapter

DTYPES = ("float32", "bfloat16")
ALPHAS = ("r", "2r", "rslora")
REFERENCES = ("0", "2", "name", "auto")
RANKS = {"equal": (4, 4, 4, 4, 4), "mixed": (6, 3, 6, 2, 4)}
SIZES = (2, 3, 4, 5)
TARGETS = ("q_proj", "v_proj", "down_proj")
BIN = Path(sys.executable).parent

# Tolerances (relative Frobenius error of ΔW per module, worst module):
# - float32 outputs (adapters written as float32, full models, mergekit in float32): the alignment
#   runs in float64 and only the final tall products and the stored weights are float32
#   (unit roundoff 6e-8); measured ≤ 1e-6.
TOL = 1e-5
# - an adapter written in bfloat16 (the default output dtype for bf16 inputs: the recipe route):
#   every stored factor entry is rounded to 8 significant bits (unit roundoff 2⁻⁹ = 2e-3), and
#   ΔW = B'A' carries the rounding of both factors; measured ≤ 4e-3. A wrong scale (2x), a wrong
#   reference or a per-tensor reference all move ΔW by 10% or more.
TOL_BF16_OUTPUT = 1e-2


@dataclass(frozen=True)
class Case:
    dtype: str
    alpha: str
    reference: str
    ranks: str
    n: int

    @property
    def pool(self) -> str:
        return f"{self.dtype}-{self.alpha}-{self.ranks}"

    @property
    def id(self) -> str:
        return f"{self.pool}-n{self.n}-ref{self.reference}"

    def target(self) -> int:
        """The explicit reference index: 0, 2, or the input named (a largest-rank one)."""
        if self.reference in ("0", "2"):
            return int(self.reference)
        ranks = RANKS[self.ranks][: self.n]
        return max(i for i in range(self.n) if ranks[i] == max(ranks))

    def value(self):
        """The reference as a route receives it (an int, an input's folder name, or auto)."""
        return {"0": 0, "2": 2, "name": f"a{self.target()}", "auto": "auto"}[self.reference]


FULL_PRODUCT = [
    Case(*values)
    for values in itertools.product(DTYPES, ALPHAS, REFERENCES, RANKS, SIZES)
    if not (values[2] == "2" and values[4] < 3)
]
# every value of every factor at least once, in four cases per subprocess route
COVERING = [
    Case("float32", "r", "0", "equal", 2),
    Case("bfloat16", "2r", "2", "mixed", 3),
    Case("float32", "rslora", "auto", "mixed", 4),
    Case("bfloat16", "r", "name", "equal", 5),
]
COVERING_DENSE = [  # the same design with the adapter dtypes swapped, for the second mergekit route
    Case("bfloat16", "r", "0", "equal", 2),
    Case("float32", "2r", "2", "mixed", 3),
    Case("bfloat16", "rslora", "auto", "mixed", 4),
    Case("float32", "r", "name", "equal", 5),
]


def _covers(cases: list[Case]) -> bool:
    return all(
        {getattr(c, f) for c in cases} == set(values)
        for f, values in (
            ("dtype", DTYPES),
            ("alpha", ALPHAS),
            ("reference", REFERENCES),
            ("ranks", RANKS),
            ("n", SIZES),
        )
    )


assert _covers(COVERING) and _covers(COVERING_DENSE) and len(FULL_PRODUCT) == 180


# ---- the inputs: hand-written PEFT adapters (config from a real PEFT save), dense models ------


@pytest.fixture(scope="module")
def world(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("routes")
    config, shapes = peft_template(tiny_model, root, TARGETS)
    g = torch.Generator().manual_seed(0)
    pools: dict[str, list[Path]] = {}
    for dtype, alpha, ranks in itertools.product(DTYPES, ALPHAS, RANKS):
        pools[f"{dtype}-{alpha}-{ranks}"] = [
            write_adapter(
                root / "pool" / f"{dtype}-{alpha}-{ranks}" / f"a{i}",
                config,
                shapes,
                r,
                g,
                dtype=dtype,
                alpha=r if alpha == "r" else 2 * r,
                rslora=alpha == "rslora",
            )
            for i, r in enumerate(RANKS[ranks])
        ]
    base = load_file(Path(tiny_model) / "model.safetensors")
    return {"root": root, "base": Path(tiny_model), "base_weights": base, "pools": pools}


def _inputs(world, case: Case) -> list[Path]:
    return world["pools"][case.pool][: case.n]


def _dense_model(world, adapter: Path) -> Path:
    """W₀ + s·B·A in float32 for the adapter's modules (what a LoRA merged in float32 holds)."""
    out = adapter.parent.parent.parent / "dense" / adapter.parent.name / adapter.name
    if not out.exists():
        out.mkdir(parents=True)
        weights = dict(world["base_weights"])
        for module, dW in peft_deltas(adapter).items():
            weights[f"{module}.weight"] = (weights[f"{module}.weight"].to(torch.float64) + dW).to(torch.float32)
        save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
        for f in world["base"].iterdir():
            if f.suffix != ".safetensors":
                shutil.copy2(f, out / f.name)
    return out


# ---- what each route received, the reference, and what it produced --------------------------

_MEMO: dict[tuple, object] = {}


def _memo(key: tuple, fn):
    if key not in _MEMO:
        _MEMO[key] = fn()
    return _MEMO[key]


def _received(world, case: Case, dense: bool) -> tuple[list[str], list[list[torch.Tensor]], list[list[int]]]:
    """Modules, every input's update of each module (float64) and its rank."""
    return _memo((str(world["root"]), case.pool, case.n, dense), lambda: _read_received(world, case, dense))


def _read_received(world, case: Case, dense: bool):
    inputs = _inputs(world, case)
    per_input = [peft_deltas(a) for a in inputs]
    if dense:  # the update a dense input carries is its difference to the base, float32 rounding included
        per_input = [
            {
                m: load_file(_dense_model(world, a) / "model.safetensors")[f"{m}.weight"].to(torch.float64)
                - world["base_weights"][f"{m}.weight"].to(torch.float64)
                for m in deltas
            }
            for a, deltas in zip(inputs, per_input, strict=True)
        ]
    modules = sorted(per_input[0])
    ranks = [[RANKS[case.ranks][i] for i in range(case.n)] for _ in modules]
    return modules, [[d[m] for d in per_input] for m in modules], ranks


def _expected_index(world, case: Case, dense: bool = False) -> int:
    if case.reference != "auto":
        return case.target()
    _, updates, ranks = _received(world, case, dense)
    return _memo((str(world["root"]), case.pool, case.n, dense, "auto"), lambda: auto_reference(updates, ranks))


def _check(
    world, case: Case, got: dict[str, torch.Tensor], reported: int | None, tol: float, dense: bool = False
) -> float:
    """The worst module's relative error of ``got`` against the independent GAM; the reported
    reference index must be the one the rule picks."""
    want_index = _expected_index(world, case, dense)
    if reported is not None:
        assert reported == want_index, f"{case.id}: reported reference {reported}, the rule picks {want_index}"
    modules, updates, ranks = _received(world, case, dense)
    assert set(got) == set(modules), f"{case.id}: merged modules {sorted(got)}"
    key = (str(world["root"]), case.pool, case.n, dense, want_index)
    want = _memo(key, lambda: {m: dense_gam(u, r, want_index) for m, u, r in zip(modules, updates, ranks, strict=True)})
    worst = max(rel_err(got[m], want[m]) for m in modules)
    assert worst <= tol, f"{case.id}: ΔW is {worst:.2e} from the independent GAM (tolerance {tol:g})"
    return worst


DEVICES = ("cpu", "auto")  # the api and cli routes alternate them case by case


def _adapter_output(out: Path, device: str = "auto") -> tuple[dict[str, torch.Tensor], int]:
    merge = json.loads((out / "deltahub.json").read_text())["merge"]
    want = "cuda" if device == "auto" and torch.cuda.is_available() else "cpu"
    assert merge["device"] == want, f"{out.name}: merged on {merge['device']}, asked for {device}"
    return peft_deltas(out), merge["parameters"]["reference_index"]


def _model_delta(world, out: Path) -> dict[str, torch.Tensor]:
    merged = {}
    for f in sorted(out.glob("*.safetensors")):
        merged.update(load_file(f))
    base = world["base_weights"]
    assert set(merged) == set(base), "the merged model has the base's tensors"
    deltas = {}
    for name, w in merged.items():
        diff = w.to(torch.float64) - base[name].to(torch.float64)
        if name.endswith("_proj.weight") and name.split(".")[-2] in TARGETS:
            deltas[name.removesuffix(".weight")] = diff
        else:
            assert torch.equal(w, base[name]), f"{name} is not a merged module but changed"
    return deltas


# ---- the routes --------------------------------------------------------------------------------


def _route_api(world, tmp: Path) -> list[float]:
    from deltahub.merge import merge_adapters

    errors = []
    for i, case in enumerate(FULL_PRODUCT):
        device = DEVICES[i % 2]
        out = merge_adapters(
            _inputs(world, case),
            tmp / case.id,
            params={"reference": case.value()},
            dtype=torch.float32,
            progress=False,
            device=device,
        )
        got, reported = _adapter_output(out, device)
        errors.append(_check(world, case, got, reported, TOL))
    return errors


def _route_recipe(world, tmp: Path) -> list[float]:
    errors = []
    for case in FULL_PRODUCT:
        merge = {"methods": ["gam"], "parameters": {"gam": {"reference": case.value()}}}
        # each delta's recipe name is its folder's: a0, a1, ...
        merges = merge_stage(world["base"], _inputs(world, case), merge, tmp / case.id)
        got, reported = _adapter_output(Path(merges["gam"]))
        # the stage writes the adapter in the inputs' dtype: bf16 inputs give a bf16 adapter
        errors.append(_check(world, case, got, reported, TOL if case.dtype == "float32" else TOL_BF16_OUTPUT))
    return errors


# The cli and full routes' 8 command lines run in ONE Python subprocess (tests/cli_batch.py).


def _cli_argv(world, case: Case, out: Path, full: bool) -> list[str]:
    argv = ["merge", *map(str, _inputs(world, case)), "--reference", str(case.value()), "--out", str(out), "--quiet"]
    return argv + (
        ["--base", str(world["base"]), "--full"]
        if full
        else ["--dtype", "float32", "--device", DEVICES[COVERING.index(case) % 2]]
    )


def _start_cli(world) -> subprocess.Popen:
    root = world["root"] / "cli"
    return cli_batch.start(
        [
            _cli_argv(world, c, root / f"{'full' if full else 'cli'}-{c.id}", full)
            for full in (False, True)
            for c in COVERING
        ]
    )


def _cli_results(background) -> dict[str, int]:
    """The reference index each command line printed, by output folder name."""
    if "cli" not in background:
        found = {}
        for r in cli_batch.results(background["cli_proc"]):
            assert r.returncode == 0, r.stderr[-3000:]
            folder = re.search(r"wrote \w+ to (\S+)", r.stdout).group(1)
            found[Path(folder).name] = int(re.search(r"GAM reference: input (\d+)", r.stdout).group(1))
        background["cli"] = found
    return background["cli"]


def _route_cli(world, background) -> list[float]:
    errors = []
    results = _cli_results(background)
    for i, case in enumerate(COVERING):
        out = world["root"] / "cli" / f"cli-{case.id}"
        got, recorded = _adapter_output(out, DEVICES[i % 2])
        assert recorded == results[out.name]
        errors.append(_check(world, case, got, results[out.name], TOL))
    return errors


def _route_full(world, background) -> list[float]:
    errors = []
    results = _cli_results(background)
    for case in COVERING:
        out = world["root"] / "cli" / f"full-{case.id}"
        errors.append(_check(world, case, _model_delta(world, out), results[out.name], TOL))
    return errors


def _mergekit_config(world, case: Case, dense: bool) -> dict:
    base = str(world["base"])
    models = [str(_dense_model(world, a)) if dense else f"{base}+{a}" for a in _inputs(world, case)]
    return {
        "name": ("dense-" if dense else "lora-") + case.id,
        "merge_method": "gam",
        "base_model": base,
        "models": [{"model": m, "parameters": {"weight": 1.0}} for m in models],
        "parameters": {"reference": case.value()},
        "dtype": "float32",
    }


def _start_mergekit(world) -> subprocess.Popen:
    """Both mergekit routes' 8 merges, in one mergekit-multi process."""
    configs = [_mergekit_config(world, c, False) for c in COVERING] + [
        _mergekit_config(world, c, True) for c in COVERING_DENSE
    ]
    root = world["root"] / "mergekit"
    root.mkdir()
    (root / "multi.yml").write_text(yaml.safe_dump_all(configs))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("DELTAHUB_MERGEKIT_DISABLE", None)
    return subprocess.Popen(
        [
            str(BIN / "mergekit-multi"),
            str(root / "multi.yml"),
            "-I",
            str(root / "out"),
            "--lora-merge-cache",
            str(root / "cache"),
            "--lora-merge-dtype",
            "float32",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _mergekit_results(world, background):
    """(output root, the plugin's "reference X -> input i (label)" lines)."""
    if "mergekit" not in background:
        proc = background["mergekit_proc"]
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        background["mergekit"] = (
            world["root"] / "mergekit" / "out",
            re.findall(r"deltahub gam: reference (\S+) -> input (\d+) \((.+)\)", err),
        )
    return background["mergekit"]


@pytest.fixture(scope="module")
def background(world):
    """The subprocess routes start at once and run while the in-process routes are checked."""
    procs = {"cli_proc": _start_cli(world), "mergekit_proc": _start_mergekit(world)}
    yield procs
    for p in (procs["cli_proc"], procs["mergekit_proc"]):
        if p.poll() is None:
            p.kill()
            p.wait()


def _mergekit_route(world, background, cases: list[Case], dense: bool) -> list[float]:
    out, log = _mergekit_results(world, background)
    errors = []
    for case in cases:
        folder = out / (("dense-" if dense else "lora-") + case.id)
        labels = [str(_dense_model(world, a)) if dense else f"{world['base']}+{a}" for a in _inputs(world, case)]
        reported = None
        if case.reference in ("auto", "name"):  # the plugin says what a name or auto resolved to
            hits = [
                int(i)
                for ref, i, label in log
                if ref == str(case.value()) and label in labels and labels.index(label) == int(i)
            ]
            assert len(hits) == 1, f"{case.id}: {log}"
            reported = hits[0]
        errors.append(_check(world, case, _model_delta(world, folder), reported, TOL, dense=dense))
    return errors


ROUTES = ["api", "recipe", "cli", "full", "mergekit-lora", "mergekit-dense"]


@pytest.mark.parametrize("route", ROUTES)
def test_gam_equals_the_independent_reference_on_every_route(route, world, background, tmp_path):
    if route == "api":
        errors = _route_api(world, tmp_path)
    elif route == "recipe":
        errors = _route_recipe(world, tmp_path)
    elif route == "cli":
        errors = _route_cli(world, background)
    elif route == "full":
        errors = _route_full(world, background)
    else:
        dense = route == "mergekit-dense"
        errors = _mergekit_route(world, background, COVERING_DENSE if dense else COVERING, dense)
    print(f"\n{route}: {len(errors)} merges, worst relative error {max(errors):.2e}")
