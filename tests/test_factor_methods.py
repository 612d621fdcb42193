"""Core Space merging and Iso-C / Iso-CTS equal independent dense references, on every route.

The references (tests/factor_reference.py) are written from the papers in float64 with dense SVDs and
never call deltahub. First the methods themselves (``merge_module``) on random factors: float32 and
bf16, equal and mixed ranks, a stack wider than the layer (Σrᵢ > min(d, k)), an input that lacks
the module (rank 0), LoRA scales and weights; then the properties the papers state (core space is
lossless for task arithmetic; Iso-C's spectrum is flat and keeps TA's nuclear norm; Iso-CTS with the
whole rank as common space is Iso-C; the inputs' order does not matter). Then the routes, like
test_merge_routes.py does for GAM: ``merge_adapters`` (every case), ``deltahub merge`` in a
subprocess, a recipe's merge stage, and ``mergekit-yaml`` (through ``mergekit-multi``, the same
``run_merge``), each ΔW read back from the files and compared with the reference on the factors the
route received.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import cli_batch
import pytest
import torch
import yaml
from factor_reference import F64, iso_c, reference
from gam_reference import peft_deltas, rel_err
from safetensors.torch import load_file
from synthetic_adapters import merge_stage, peft_template, write_adapter

from deltahub.errors import InputError
from deltahub.merge import LowRank, merge_module

BIN = Path(sys.executable).parent
TARGETS = ("q_proj", "v_proj", "down_proj")
CONFIGS = {  # a name for each method and parameters tried
    "core-ta": ("core", {"inner": "ta"}),
    "core-ties": ("core", {"inner": "ties", "density": 0.5, "scale": 0.8}),
    "core-tsv": ("core", {}),
    "core-tsv-iso": ("core", {"inner": "tsv", "isotropize": True}),
    "iso_c": ("iso_c", {"scale": 0.7}),
    "iso_cts": ("iso_cts", {}),
    "iso_cts-half": ("iso_cts", {"common_space_fraction": 0.5}),
}
RANKS = {"equal": (4, 4, 4), "mixed": (6, 3, 2, 4)}
DTYPES = ("float32", "bfloat16")
# float32 outputs (adapters written as float32, mergekit models in float32): the methods compute in
# float64, only the stored factors and weights are float32 (roundoff 6e-8); bf16 outputs round every
# stored factor entry to 8 bits (roundoff 2e-3), and ΔW = B'A' carries both factors' rounding.
TOL, TOL_BF16_OUTPUT = 1e-5, 1e-2


def _factors(d: int, k: int, ranks, dtype, seed: int, scales=None) -> list[LowRank]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, r in enumerate(ranks):
        B = torch.randn(d, r, generator=g).to(getattr(torch, dtype))
        A = torch.randn(r, k, generator=g).to(getattr(torch, dtype))
        out.append(LowRank(B, A, scales[i] if scales else 1.0))
    return out


def _pairs(deltas: list[LowRank]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(s·B, A) in float64, as stored (bf16 factors read as they are)."""
    return [(d.B.to(F64) * d.scale, d.A.to(F64)) for d in deltas]


SHAPES = {"tall": (40, 24), "wide": (12, 30)}  # wide: Σrᵢ = 15 > d = 12, the stack is wider than the layer


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ranks", ["equal", "mixed", "with-empty"])
@pytest.mark.parametrize("shape", SHAPES)
def test_method_equals_its_dense_reference(config, dtype, ranks, shape):
    method, params = CONFIGS[config]
    rs = (5, 0, 3, 4) if ranks == "with-empty" else RANKS[ranks]
    deltas = _factors(*SHAPES[shape], rs, dtype, seed=len(config) + len(rs), scales=[2.0, 0.5, 1.0, 1.5][: len(rs)])
    weights = [1.0, 0.6, 1.3, 0.9][: len(rs)]
    got = merge_module(method, deltas, weights, **params)
    assert isinstance(got, LowRank)
    assert got.rank <= min(sum(rs), *SHAPES[shape])
    want = reference(method, _pairs(deltas), weights, **params)
    assert rel_err(got.dense(F64), want) < 1e-9


def test_core_space_is_lossless_for_task_arithmetic():
    deltas = _factors(40, 24, (6, 3, 2, 4), "float32", seed=3, scales=[2.0, 1.0, 0.5, 1.0])
    weights = [1.0, 0.5, 2.0, 0.7]
    core = merge_module("core", deltas, weights, inner="ta").dense(F64)
    ta = merge_module("task_arithmetic", deltas, weights).dense(F64)
    assert rel_err(core, ta) < 1e-12
    # TIES and TSV-M in core space are not the full-space ones (the point of the paper): a real difference
    assert rel_err(merge_module("core", deltas, weights, inner="tsv").dense(F64), ta) > 1e-2


def test_iso_spectrum_is_flat_and_keeps_the_nuclear_norm():
    deltas = _factors(40, 24, (6, 3, 2, 4), "bfloat16", seed=4)
    weights = [1.0, 0.5, 2.0, 0.7]
    ta = merge_module("task_arithmetic", deltas, weights).dense(F64)
    got = merge_module("iso_c", deltas, weights).dense(F64)
    s = torch.linalg.svdvals(got)[:15]
    assert (s.max() - s.min()) / s.max() < 1e-10  # rank 15 = Σrᵢ, every singular value the same
    assert abs(s.sum() - torch.linalg.svdvals(ta).sum()) / s.sum() < 1e-10
    # the singular subspaces are TA's
    U_ta = torch.linalg.svd(ta)[0][:, :15]
    U = torch.linalg.svd(got)[0][:, :15]
    assert torch.linalg.matrix_norm(U_ta.T @ U) ** 2 == pytest.approx(15, rel=1e-10)
    whole = merge_module("iso_cts", deltas, weights, common_space_fraction=1.0).dense(F64)
    assert rel_err(whole, got) < 1e-10
    assert rel_err(iso_c([B @ A for B, A in _pairs(deltas)], weights), got) < 1e-10


@pytest.mark.parametrize("config", ["core-ties", "core-tsv", "iso_c", "iso_cts-half"])
def test_the_inputs_order_does_not_matter(config):
    method, params = CONFIGS[config]
    deltas = _factors(40, 24, (6, 3, 2, 4), "float32", seed=5)
    weights = [1.0, 0.5, 2.0, 0.7]
    order = [2, 0, 3, 1]
    a = merge_module(method, deltas, weights, **params).dense(F64)
    b = merge_module(method, [deltas[i] for i in order], [weights[i] for i in order], **params).dense(F64)
    assert rel_err(b, a) < 1e-9


@pytest.mark.parametrize(
    "method, params, needle",
    [
        ("core", {"inner": "tv"}, "core parameter inner: must be one of ta, ties, tsv"),
        ("core", {"density": 0}, "core parameter density: must be > 0"),
        ("iso_cts", {"common_space_fraction": 1.5}, "must be <= 1"),
        ("iso_c", {"density": 0.5}, "unknown parameter(s) for iso_c: density"),
        ("iso_cts", {"common_fraction": 0.5}, "did you mean 'common_space_fraction'?"),
    ],
)
def test_bad_parameters_are_one_line_errors(method, params, needle):
    deltas = _factors(12, 10, (2, 2), "float32", seed=0)
    with pytest.raises(InputError) as exc:
        merge_module(method, deltas, **params)
    assert needle in str(exc.value)


def test_non_finite_factors_are_refused():
    deltas = _factors(12, 10, (2, 2), "float32", seed=0)
    deltas[1].B[0, 0] = float("nan")
    for method in ("core", "iso_c", "iso_cts"):
        with pytest.raises(InputError, match="input 1's LoRA factors hold NaN or Inf"):
            merge_module(method, deltas)


# ---- the routes ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tiny_model, tmp_path_factory):
    """PEFT adapters on the tiny model: float32 and bf16, equal and mixed ranks, α = 2r (scale 2)."""
    root = tmp_path_factory.mktemp("factor-routes")
    config, shapes = peft_template(tiny_model, root, TARGETS)
    g = torch.Generator().manual_seed(7)
    pools = {
        f"{dtype}-{ranks}": [
            write_adapter(root / "pool" / f"{dtype}-{ranks}" / f"a{i}", config, shapes, r, g, dtype=dtype, alpha=2 * r)
            for i, r in enumerate(RANKS[ranks])
        ]
        for dtype, ranks in itertools.product(DTYPES, RANKS)
    }
    base = load_file(Path(tiny_model) / "model.safetensors")
    return {"root": root, "base": Path(tiny_model), "base_weights": base, "pools": pools}


def peft_factors(adapter: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Every module's (s·B, A) in float64 with PEFT's scale s = α/r, straight from the files."""
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    w = load_file(adapter / "adapter_model.safetensors")
    out = {}
    for key, A in w.items():
        if ".lora_A." in key:
            module = key.removeprefix("base_model.model.").split(".lora_A.")[0]
            out[module] = (w[key.replace(".lora_A.", ".lora_B.")].to(F64) * (cfg["lora_alpha"] / A.shape[0]), A.to(F64))
    return out


def _check(world, pool: str, config: str, weights, got: dict[str, torch.Tensor], tol: float) -> float:
    method, params = CONFIGS[config]
    per_input = [peft_factors(a) for a in world["pools"][pool]]
    assert set(got) == set(per_input[0])
    worst = 0.0
    for module, delta in got.items():
        want = reference(method, [f[module] for f in per_input], list(weights), **params)
        worst = max(worst, rel_err(delta, want))
    assert worst <= tol, f"{pool} {config}: ΔW is {worst:.2e} from the reference (tolerance {tol:g})"
    return worst


CASES = list(itertools.product(CONFIGS, DTYPES, RANKS))
COVERING = [  # every config, dtype and rank pattern at least once
    ("core-ta", "bfloat16", "mixed"),
    ("core-ties", "float32", "mixed"),
    ("core-tsv", "float32", "equal"),
    ("core-tsv-iso", "bfloat16", "equal"),
    ("iso_c", "float32", "mixed"),
    ("iso_cts", "bfloat16", "mixed"),
    ("iso_cts-half", "float32", "equal"),
]


def _weights(pool: str) -> list[float]:
    return [1.0, 0.5, 1.5, 0.8][: len(RANKS[pool.split("-")[1]])]


def _cli_argv(world, config: str, dtype: str, ranks: str, out: Path) -> list[str]:
    method, params = CONFIGS[config]
    pool = f"{dtype}-{ranks}"
    argv = ["merge", *map(str, world["pools"][pool]), "--method", method, "--out", str(out), "--quiet"]
    argv += ["--weights", ",".join(map(str, _weights(pool))), "--dtype", "float32"]
    for name, value in params.items():
        argv += [f"--{name.replace('_', '-')}"] if value is True else [f"--{name.replace('_', '-')}", str(value)]
    return argv


def _mergekit_configs(world) -> list[dict]:
    base = str(world["base"])
    configs = []
    for config, dtype, ranks in COVERING:
        method, params = CONFIGS[config]
        pool = f"{dtype}-{ranks}"
        models = [
            {"model": f"{base}+{a}", "parameters": {"weight": w}}
            for a, w in zip(world["pools"][pool], _weights(pool), strict=True)
        ]
        configs.append(
            {
                "name": f"{config}-{pool}",
                "merge_method": method,
                "base_model": base,
                "models": models,
                "parameters": params,
                "dtype": "float32",
            }
        )
    return configs


@pytest.fixture(scope="module")
def background(world):
    """The subprocess routes start at once and run while the in-process ones are checked."""
    root = world["root"]
    cli = cli_batch.start([_cli_argv(world, *case, root / "cli" / "-".join(case)) for case in COVERING])
    (root / "mk").mkdir()
    (root / "mk" / "multi.yml").write_text(yaml.safe_dump_all(_mergekit_configs(world)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("DELTAHUB_MERGEKIT_DISABLE", None)
    mk = subprocess.Popen(
        [str(BIN / "mergekit-multi"), str(root / "mk" / "multi.yml"), "-I", str(root / "mk" / "out")]
        + ["--lora-merge-cache", str(root / "mk" / "cache"), "--lora-merge-dtype", "float32"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    yield {"cli": cli, "mergekit": mk}
    for p in (cli, mk):
        if p.poll() is None:
            p.kill()
            p.wait()


def _route_api(world, tmp: Path) -> list[float]:
    from deltahub.merge import merge_adapters

    errors = []
    for config, dtype, ranks in CASES:
        method, params = CONFIGS[config]
        pool = f"{dtype}-{ranks}"
        out = merge_adapters(
            world["pools"][pool],
            tmp / f"{config}-{pool}",
            method=method,
            weights=_weights(pool),
            params=params,
            dtype=torch.float32,
            progress=False,
        )
        assert out.method == method and params.items() <= out.parameters.items() and out.device == "cpu"
        block = json.loads((out / "deltahub.json").read_text())["merge"]
        assert block["method"] == method and block["reference_url"].startswith("https://arxiv.org/abs/")
        errors.append(_check(world, pool, config, _weights(pool), peft_deltas(out), TOL))
    return errors


def _route_recipe(world, tmp: Path) -> list[float]:
    errors = []
    for dtype, ranks in (("bfloat16", "mixed"), ("float32", "equal")):
        pool = f"{dtype}-{ranks}"
        inputs = world["pools"][pool]
        for configs in (("core-ties", "iso_c", "iso_cts-half"), ("core-tsv-iso",)):
            merge = {
                "methods": [CONFIGS[c][0] for c in configs],
                "parameters": {CONFIGS[c][0]: CONFIGS[c][1] for c in configs},
            }
            merges = merge_stage(world["base"], inputs, merge, tmp / f"{pool}-{len(configs)}")
            for config in configs:
                got = peft_deltas(Path(merges[CONFIGS[config][0]]))  # written in the inputs' dtype
                tol = TOL if dtype == "float32" else TOL_BF16_OUTPUT
                errors.append(_check(world, pool, config, [1.0] * len(inputs), got, tol))
    return errors


def _route_cli(world, background) -> list[float]:
    errors = []
    for r in cli_batch.results(background["cli"]):
        assert r.returncode == 0, r.stderr[-3000:]
    for config, dtype, ranks in COVERING:
        pool = f"{dtype}-{ranks}"
        out = world["root"] / "cli" / f"{config}-{dtype}-{ranks}"
        errors.append(_check(world, pool, config, _weights(pool), peft_deltas(out), TOL))
    return errors


def _route_mergekit(world, background) -> list[float]:
    proc = background["mergekit"]
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    errors = []
    base = world["base_weights"]
    for config, dtype, ranks in COVERING:
        pool = f"{dtype}-{ranks}"
        merged = {}
        for f in sorted((world["root"] / "mk" / "out" / f"{config}-{pool}").glob("*.safetensors")):
            merged.update(load_file(f))
        got = {}
        for name, w in merged.items():
            module = name.removesuffix(".weight")
            if name.split(".")[-2] in TARGETS:
                got[module] = w.to(F64) - base[name].to(F64)
            else:
                assert torch.equal(w, base[name]), f"{name} is not a merged module but changed"
        errors.append(_check(world, pool, config, _weights(pool), got, TOL))
    return errors


ROUTES = {
    "api": lambda world, background, tmp: _route_api(world, tmp),
    "recipe": lambda world, background, tmp: _route_recipe(world, tmp),
    "cli": lambda world, background, tmp: _route_cli(world, background),
    "mergekit": lambda world, background, tmp: _route_mergekit(world, background),
}


@pytest.mark.parametrize("route", ROUTES)
def test_factor_methods_equal_their_references_on_every_route(route, world, background, tmp_path):
    errors = ROUTES[route](world, background, tmp_path)
    print(f"\n{route}: {len(errors)} merges, worst relative error {max(errors):.2e}")
