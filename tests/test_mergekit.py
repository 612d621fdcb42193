"""GAM/KnOTS/TSV as mergekit merge methods: the real ``mergekit-yaml`` in a subprocess, tiny models.

The reference for every output is base + ΔW from ``deltahub.merge.methods.merge_module`` applied
directly to the adapters' factors (``deltahub.merge.adapters.load_adapter``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from deltahub.merge.adapters import load_adapter
from deltahub.merge.methods import merge_module
from deltahub.tiny import build_random_adapter
from deltahub_mergekit.method import PLUGIN_METHODS

BIN = Path(sys.executable).parent


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def _run(tool: str, config: dict, out: Path, cache: Path, env_extra: dict | None = None, extra=()):
    cfg = out.parent / f"{out.name}.yml"
    cfg.write_text(yaml.safe_dump(config))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("DELTAHUB_MERGEKIT_DISABLE", None)
    env.update(env_extra or {})
    cmd = [
        str(BIN / tool),
        str(cfg),
        str(out),
        "--lora-merge-cache",
        str(cache),
        "--lora-merge-dtype",
        "float32",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def world(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("mk")
    adapters = [
        build_random_adapter(
            tiny_model,
            root / f"adapter{i}",
            r=4,
            alpha=8,
            seed=i + 1,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"],
        )
        for i in range(3)
    ]
    return {"base": Path(tiny_model), "adapters": adapters, "root": root, "cache": root / "lora_cache"}


def _config(world, method="gam", weights=(1.0, 0.8, 0.6), parameters=None, models=None):
    base = str(world["base"])
    models = models or [f"{base}+{a}" for a in world["adapters"]]
    return {
        "merge_method": method,
        "base_model": base,
        "models": [{"model": m, "parameters": {"weight": w}} for m, w in zip(models, weights, strict=True)],
        "parameters": parameters or {},
        "dtype": "float32",
    }


def _reference(world, method="gam", weights=(1.0, 0.8, 0.6), **params) -> dict[str, torch.Tensor]:
    base = _weights(world["base"])
    loaded = [load_adapter(a) for a in world["adapters"]]
    out = dict(base)
    for module in loaded[0].module_names:
        merged = merge_module(method, [a.modules[module] for a in loaded], list(weights), **params)
        dense = merged.dense(torch.float64) if hasattr(merged, "dense") else merged.double()
        out[module + ".weight"] = (base[module + ".weight"].double() + dense).float()
    return out


def _assert_close(got: dict, want: dict, rtol=1e-5):
    for name, ref in want.items():
        if name not in got:  # tied / absent in output
            continue
        err = (got[name].double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-12)
        assert err <= rtol, f"{name}: relative error {err:.2e}"
    assert set(got) <= set(want) | {"lm_head.weight"}


def test_gam_via_mergekit_yaml_equals_deltahub_merge(world):
    params = {"reference": 1, "scale": 0.9}
    out = world["root"] / "gam"
    r = _run("mergekit-yaml", _config(world, parameters=params), out, world["cache"])
    assert r.returncode == 0, r.stderr[-3000:]
    got = _weights(out)
    want = _reference(world, reference=1, scale=0.9)
    _assert_close(got, want)
    base = _weights(world["base"])
    # norms and embeddings were left alone by every delta -> exactly the base value
    assert torch.equal(got["model.norm.weight"], base["model.norm.weight"])
    assert torch.equal(got["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    # the parameters really took effect: the default reference/scale give a different result
    other = _reference(world)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(got[name], other[name], rtol=1e-4, atol=1e-6)
    card = (out / "README.md").read_text()
    assert "GAM" in card


def test_fallback_script_with_hook_disabled(world):
    cfg = _config(world, method="tsv", weights=(1.0, 1.0, 0.5))
    disabled = {"DELTAHUB_MERGEKIT_DISABLE": "1"}
    plain = _run("mergekit-yaml", cfg, world["root"] / "tsv_plain", world["cache"], env_extra=disabled)
    assert plain.returncode != 0
    assert "Unimplemented merge method tsv" in plain.stderr  # mergekit's own error: the hook is what makes it work
    assert not (world["root"] / "tsv_plain" / "model.safetensors").exists()
    out = world["root"] / "tsv_fallback"
    r = _run("deltahub-mergekit-yaml", cfg, out, world["cache"], env_extra=disabled)
    assert r.returncode == 0, r.stderr[-3000:]
    _assert_close(_weights(out), _reference(world, "tsv", (1.0, 1.0, 0.5)))


def test_misspelt_and_misplaced_parameters_are_reported(world):
    r = _run("mergekit-yaml", _config(world, parameters={"refrence": 1}), world["root"] / "typo", world["cache"])
    assert r.returncode != 0
    assert "unknown parameter 'refrence'" in r.stderr and "valid parameters" in r.stderr
    cfg = _config(world)
    cfg["models"][0]["parameters"]["scale"] = 2.0  # shared parameter given per model: mergekit would ignore it
    r = _run("mergekit-yaml", cfg, world["root"] / "misplaced", world["cache"])
    assert r.returncode != 0
    assert "'scale' is a shared parameter" in r.stderr


def _materialise(world, adapter: Path, out: Path, dtype: torch.dtype) -> Path:
    """A full model with the adapter merged in ``dtype`` (what mergekit's LoRA cache holds)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(world["base"], dtype=dtype)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.save_pretrained(out)
    return out


@pytest.mark.slow
def test_dense_inputs_fp32_match_factor_path_and_bf16_is_truncated_with_a_warning(world):
    dense = [
        _materialise(world, a, world["root"] / f"dense{i}", torch.float32) for i, a in enumerate(world["adapters"])
    ]
    out = world["root"] / "gam_dense"
    r = _run("mergekit-yaml", _config(world, models=[str(d) for d in dense]), out, world["cache"])
    assert r.returncode == 0, r.stderr[-3000:]
    _assert_close(_weights(out), _reference(world))

    bf16 = _materialise(world, world["adapters"][0], world["root"] / "dense_bf16", torch.bfloat16)
    models = [str(bf16), str(dense[1]), str(dense[2])]
    r = _run("mergekit-yaml", _config(world, models=models), world["root"] / "gam_bf16", world["cache"])
    assert r.returncode == 0, r.stderr[-3000:]  # mergekit's contract: a registered method merges
    assert "not low-rank" in r.stderr and "relative residual" in r.stderr and "--lora-merge-dtype float32" in r.stderr


def test_hook_is_cheap_and_lazy():
    code = (
        "import sys; import deltahub_mergekit_hook as h;"
        "print('torch' in sys.modules, 'mergekit' in sys.modules, h._finder in sys.meta_path)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert r.stdout.split() == ["False", "False", "True"], r.stderr
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "DELTAHUB_MERGEKIT_DISABLE": "1"},
    )
    assert r.stdout.split() == ["False", "False", "False"], r.stderr


def test_pth_hook_ships_in_the_install_record():
    """pip uninstall removes what RECORD lists; the hook must be there (editable installs too)."""
    from importlib.metadata import distribution

    files = {str(f) for f in distribution("deltahub").files}
    assert "deltahub_mergekit_hook.pth" in files
    pth = Path(distribution("deltahub").locate_file("deltahub_mergekit_hook.pth"))
    assert pth.read_text().strip() == "import deltahub_mergekit_hook"


def test_recipe_parameters_are_checked_in_process():
    from mergekit.config import MergeConfiguration
    from mergekit.merge_methods import registry

    from deltahub.errors import InputError
    from deltahub_mergekit.method import check_parameter_names

    recipe = yaml.safe_load((Path(__file__).parents[1] / "recipes" / "gam.yml").read_text())
    spec = registry.get(recipe["merge_method"]).spec  # registered by the hook on import
    assert spec.pretty_name.startswith("GAM") and spec.reference_url
    check_parameter_names(spec, MergeConfiguration.model_validate(recipe))
    recipe["parameters"]["reorthonormalise"] = True
    with pytest.raises(InputError, match="unknown parameter 'reorthonormalise'"):
        check_parameter_names(spec, MergeConfiguration.model_validate(recipe))
    assert {"gam", "knots", "tsv"} <= {m.spec.name for m in registry.registered_methods()}


# ---- mergekit's contract, stated for every method the plugin registers ----------------------


@pytest.mark.parametrize("method", PLUGIN_METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_plugin_method_merges_full_rank_dense_inputs(method, dtype):
    """What mergekit's own suite asks of every registered method (its
    test_state_dict_methods_accept_strided_weights_without_mutation): random full-rank, strided
    (non-contiguous) inputs merge without error, are not modified, give the same result as
    contiguous copies, in the inputs' shape and dtype. A delta that is not low-rank is truncated
    with a warning naming the rank, the relative residual and the fix."""
    import warnings

    from mergekit.merge_methods import registry
    from mergekit.merge_methods.api import merge_state_dicts

    g = torch.Generator().manual_seed(0)
    models = [
        {"w": torch.randn(12, 20, generator=g).to(dtype).T, "norm": torch.randn(7, generator=g).to(dtype)}
        for _ in range(4)
    ]
    assert not models[0]["w"].is_contiguous()
    copies = [{k: v.clone() for k, v in m.items()} for m in models]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        strided = merge_state_dicts(models, registry.get(method), base=0, parameters={"weight": [1.0, 0.5, 2.0]})
        contiguous = merge_state_dicts(
            [{k: v.contiguous() for k, v in m.items()} for m in models],
            registry.get(method),
            base=0,
            parameters={"weight": [1.0, 0.5, 2.0]},
        )
    for name in ("w", "norm"):
        assert strided[name].shape == models[0][name].shape and strided[name].dtype == dtype
        assert strided[name].isfinite().all()
        torch.testing.assert_close(strided[name], contiguous[name])
    for m, c in zip(models, copies, strict=True):
        assert all(torch.equal(m[k], c[k]) for k in m)
    text = " ".join(str(w.message) for w in caught)
    assert "not low-rank" in text and "truncated to rank 6" in text and "relative residual" in text
    assert "Fix:" in text


def _dense_group(ranks, seed=0):
    """In-memory inputs base, base + ΔWᵢ with ΔWᵢ of exact rank rᵢ (float64)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(24, 16, generator=g, dtype=torch.float64)
    f64 = torch.float64
    deltas = [torch.randn(24, r, generator=g, dtype=f64) @ torch.randn(r, 16, generator=g, dtype=f64) for r in ranks]
    return base, deltas, [{"w": base}] + [{"w": base + d} for d in deltas]


def test_plugin_reference_rule_and_auto_in_memory():
    """The plugin resolves the reference with deltahub's resolve_reference: a reference below the
    largest rank is refused, auto picks a largest-rank input, and auto equals that explicit index."""
    from gam_reference import auto_reference, dense_gam, rel_err
    from mergekit.merge_methods.api import merge_state_dicts

    from deltahub.errors import InputError

    base, deltas, models = _dense_group((2, 5, 3, 5))
    with pytest.raises(InputError, match=r"has rank 2 in w, below the largest input rank 5 \(2, 4\)"):
        merge_state_dicts(models, "gam", base=0, parameters={"reference": 0})
    auto = merge_state_dicts(models, "gam", base=0, parameters={"reference": "auto"})["w"] - base
    index = auto_reference([deltas], [[2, 5, 3, 5]])
    assert index in (1, 3)
    explicit = merge_state_dicts(models, "gam", base=0, parameters={"reference": index})["w"] - base
    assert rel_err(auto, explicit) < 1e-12
    assert rel_err(explicit, dense_gam(deltas, [2, 5, 3, 5], ref=index)) < 1e-8
