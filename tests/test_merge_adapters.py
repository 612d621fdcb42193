"""`deltahub merge` on real PEFT adapter folders built on a tiny random Qwen3 model."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cli_batch
import pytest
import torch
from gam_reference import dense_gam, rel_err
from safetensors.torch import load_file, save_file

from deltahub.errors import AdapterError, InputError
from deltahub.merge import load_adapter, merge_adapters, merge_module
from deltahub.tiny import build_random_adapter


@pytest.fixture(scope="module")
def adapters(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return [
        build_random_adapter(tiny_model, root / "a", r=4, alpha=8, seed=1),
        build_random_adapter(tiny_model, root / "b", r=4, alpha=16, seed=2, use_rslora=True),
        build_random_adapter(
            tiny_model, root / "c", r=6, alpha=6, seed=3, target_modules=["q_proj", "v_proj", "down_proj"]
        ),
    ]


def _dense_delta(adapter_dir: Path, module: str) -> torch.Tensor | None:
    """ΔW of one module straight from PEFT's own config semantics (independent of deltahub's reader)."""
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    w = load_file(adapter_dir / "adapter_model.safetensors")
    key = f"base_model.model.{module}"
    if f"{key}.lora_A.weight" not in w:
        return None
    A, B = w[f"{key}.lora_A.weight"].double(), w[f"{key}.lora_B.weight"].double()
    r = A.shape[0]
    scale = cfg["lora_alpha"] / (r**0.5 if cfg.get("use_rslora") else r)
    return scale * B @ A


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def test_adapter_reader_folds_scale(adapters):
    ad = load_adapter(adapters[1])
    module = ad.module_names[0]
    assert torch.allclose(ad.modules[module].dense().double(), _dense_delta(adapters[1], module), atol=1e-6)


def test_merged_adapter_in_peft_gives_base_plus_gam(tiny_model, adapters, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = merge_adapters(adapters[:2], tmp_path / "merged", method="gam", progress=False)
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 4 and cfg["peft_type"] == "LORA"

    ids = torch.randint(4, 60, (2, 12), generator=torch.Generator().manual_seed(0))
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), out)
    got = _logits(peft_model, ids)

    reference = AutoModelForCausalLM.from_pretrained(tiny_model)
    a, b = load_adapter(adapters[0]), load_adapter(adapters[1])
    state = reference.state_dict()
    with torch.no_grad():
        for module in a.module_names:
            delta = merge_module("gam", [a.modules[module], b.modules[module]]).dense(torch.float32)
            state[f"{module}.weight"] += delta
    reference.load_state_dict(state)
    want = _logits(reference, ids)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)


def test_full_model_output_equals_base_plus_delta(tiny_model, adapters, tmp_path):
    from transformers import AutoModelForCausalLM

    out = merge_adapters(
        adapters, tmp_path / "full", method="ties", params={"density": 0.5}, base=tiny_model, full=True, progress=False
    )
    base_w = load_file(tiny_model / "model.safetensors")
    merged_w = load_file(out / "model.safetensors")
    assert set(base_w) == set(merged_w)
    module = "model.layers.1.mlp.down_proj"
    deltas = [load_adapter(p).modules[module] for p in adapters]
    want = base_w[f"{module}.weight"] + merge_module("ties", deltas, density=0.5).float()
    assert torch.allclose(merged_w[f"{module}.weight"], want, atol=1e-6)
    # untouched tensors keep the base value bit for bit
    assert torch.equal(merged_w["model.norm.weight"], base_w["model.norm.weight"])
    AutoModelForCausalLM.from_pretrained(out)  # loads as an ordinary model
    assert (out / "tokenizer.json").exists() and (out / "config.json").exists()


def test_one_adapter_in_same_adapter_out(adapters, tmp_path):
    out = merge_adapters([adapters[0]], tmp_path / "one", progress=False)
    assert (out / "adapter_model.safetensors").read_bytes() == (adapters[0] / "adapter_model.safetensors").read_bytes()
    config = json.loads((adapters[0] / "adapter_config.json").read_text())
    assert json.loads((out / "adapter_config.json").read_text()) == config


def test_missing_modules_are_zero_deltas_and_recorded(adapters, tmp_path):
    out = merge_adapters(adapters, tmp_path / "avg", method="average", progress=False)
    merged = load_adapter(out)
    module = "model.layers.0.self_attn.k_proj"  # adapter c does not target k_proj
    want = (_dense_delta(adapters[0], module) + _dense_delta(adapters[1], module)) / 3
    assert torch.allclose(merged.modules[module].dense().double(), want, atol=1e-6)
    block = json.loads((out / "deltahub.json").read_text())
    assert block["merge"]["missing_modules"][module] == [str(adapters[2])]
    assert str(adapters[2]) in (out / "README.md").read_text()


def test_the_result_says_what_the_merge_decided(adapters, tmp_path):
    """merge_adapters returns the folder with the reference it used, the device and the inputs, the same as
    it records in deltahub.json: a caller (the CLI) needs no second read of the provenance."""
    a, b = map(str, adapters[:2])
    named = merge_adapters([a, b], tmp_path / "named", method="gam", params={"reference": b}, progress=False)
    assert named.choices == {"reference": 1} and named.inputs == [a, b] and named.device == "cpu"
    assert named.method == "gam" and named.parameters["reference"] == 1 and named == tmp_path / "named"
    auto = merge_adapters([a, b], tmp_path / "auto", method="gam", params={"reference": "auto"}, progress=False)
    recorded = json.loads((auto / "deltahub.json").read_text())["merge"]
    assert auto.choices == {"reference": recorded["parameters"]["reference_index"]}
    assert auto.device == recorded["device"] and [d["spec"] for d in recorded["deltas"]] == auto.inputs
    plain = merge_adapters([a, b], tmp_path / "avg", method="average", progress=False)
    assert plain.choices == {} and plain.method == "average"


def test_card_names_inputs_method_and_parameters(adapters, tmp_path):
    out = merge_adapters(
        adapters[:2],
        tmp_path / "carded",
        method="gam",
        params={"reference": "auto", "reorthonormalize": True},
        progress=False,
    )
    block = json.loads((out / "deltahub.json").read_text())
    merge = block["merge"]
    assert merge["method"] == "gam" and merge["parameters"]["reorthonormalize"] is True
    assert merge["parameters"]["reference"] == "auto" and merge["parameters"]["reference_index"] in (0, 1)
    assert [d["spec"] for d in merge["deltas"]] == [str(adapters[0]), str(adapters[1])]
    assert "deltahub merge" in merge["command"] and "--method gam" in merge["command"]
    assert "--reorthonormalize" in merge["command"]
    # the card's title names the output folder, not the temporary folder it was built in
    title = next(line for line in (out / "README.md").read_text().splitlines() if line.startswith("# "))
    assert title.startswith("# carded:"), title


# ---- bad input: a clear error and no output left behind -------------------------------------


def _no_leftovers(parent: Path, name: str) -> bool:
    return not any(p.name.startswith(f".{name}.") or p.name == name for p in parent.iterdir())


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_refuses_existing_output_without_overwrite(adapters, tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(InputError, match="already exists"):
        merge_adapters(adapters[:2], tmp_path / "exists", progress=False)
    merge_adapters(adapters[:2], tmp_path / "exists", overwrite=True, progress=False)
    assert (tmp_path / "exists" / "adapter_model.safetensors").exists()


@pytest.mark.parametrize(
    ("index", "factor", "value", "dtype"),
    [
        (1, "lora_B", float("nan"), torch.float32),  # a non-reference input: seen in its own Gram
        (0, "lora_A", float("inf"), torch.bfloat16),  # the reference, stored in bf16 (a view of the file)
    ],
)
def test_nan_or_inf_fails_naming_adapter_and_module_without_partial_output(
    adapters, tmp_path, index, factor, value, dtype
):
    """GAM finds NaN/Inf in the Gram matrices of the batched merge (#16), no separate pass: the
    error still names the adapter and the module, for every method, and nothing is written."""
    inputs = [_copy(a, tmp_path / a.name) for a in adapters[:2]]
    w = {k: t.to(dtype) for k, t in load_file(inputs[index] / "adapter_model.safetensors").items()}
    key = sorted(k for k in w if "layers.1" in k and factor in k)[0]
    w[key][0, 0] = value
    save_file(w, str(inputs[index] / "adapter_model.safetensors"))
    module = key.removeprefix("base_model.model.").split(f".{factor}.")[0]
    for method in ("gam", "average"):
        with pytest.raises(AdapterError, match="NaN or Inf") as exc:
            merge_adapters(inputs, tmp_path / "out", method=method, progress=False)
        assert str(exc.value).startswith(f"{inputs[index]}: module {module} has NaN or Inf"), str(exc.value)
        assert _no_leftovers(tmp_path, "out")


_KILLED_MERGE = """
import os, signal, sys
from deltahub.merge import writers
real = writers.AdapterWriter.write_factors
def write_then_die(self, *args):
    real(self, *args)  # the first module's factors are in the temporary folder's file ...
    os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies mid-merge
writers.AdapterWriter.write_factors = write_then_die
from deltahub.cli import main
main(sys.argv[1:])
"""


def test_a_killed_merge_leaves_no_output_and_the_rerun_cleans_its_folder(adapters, tmp_path):
    """The output appears only when complete; a killed merge's temporary folder (a hidden sibling)
    is removed by the next merge to the same output."""
    argv = ["merge", *map(str, adapters[:2]), "--out", str(tmp_path / "out"), "--quiet"]
    killed = subprocess.run([sys.executable, "-c", _KILLED_MERGE, *argv], capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "out").exists()
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert len(stale) == 1 and (stale[0] / "adapter_model.safetensors").is_file()
    merge_adapters(adapters[:2], tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_pickle_dora_modules_to_save_and_other_types_refused(adapters, tmp_path):
    pickled = _copy(adapters[0], tmp_path / "pickled")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    with pytest.raises(AdapterError, match="pickle"):
        load_adapter(pickled)
    for key, value, match in (
        ("use_dora", True, "DoRA"),
        ("modules_to_save", ["lm_head"], "modules_to_save"),
        ("peft_type", "IA3", "only LoRA"),
    ):
        d = _copy(adapters[0], tmp_path / key)
        cfg = json.loads((d / "adapter_config.json").read_text())
        cfg[key] = value
        (d / "adapter_config.json").write_text(json.dumps(cfg))
        with pytest.raises(AdapterError, match=match):
            load_adapter(d)


def test_different_base_models_and_shapes_refused(tiny_model, adapters, tmp_path):
    from deltahub.tiny import build_tiny_model

    other_base = build_tiny_model(tmp_path / "other-base", hidden_size=96, num_layers=2, head_dim=32)
    other = build_random_adapter(other_base, tmp_path / "other", r=4, seed=5)
    with pytest.raises(InputError, match="different base models"):
        merge_adapters([adapters[0], other], tmp_path / "out", progress=False)
    with pytest.raises(InputError, match="different shapes"):
        merge_adapters([adapters[0], other], tmp_path / "out", allow_base_mismatch=True, progress=False)
    assert _no_leftovers(tmp_path, "out")


def test_full_rank_method_needs_full(adapters, tmp_path):
    with pytest.raises(InputError, match="full-rank.*--full"):
        merge_adapters(adapters[:2], tmp_path / "t", method="ties", progress=False)
    with pytest.raises(InputError, match="no adapters"):
        merge_adapters([], tmp_path / "t", progress=False)


# ---- the CLI -----------------------------------------------------------------------------------


def test_cli_merges_and_reports_errors_in_one_line(adapters, tmp_path):
    a, b, c = map(str, adapters)
    ok, bad, typo, low, cuda, device = cli_batch.run(
        ["merge", a, b, "--method", "gam", "--reference", "1", "--out", str(tmp_path / "cli"), "--quiet"],
        ["merge", a, b, "--method", "average", "--density", "0.3", "--out", str(tmp_path / "bad")],
        ["merge", a, "--densty", "0.3", "--out", str(tmp_path / "bad")],
        ["merge", a, c, "--reference", "a", "--out", str(tmp_path / "low"), "--quiet"],  # rank 4 < 6
        ["merge", a, b, "--device", "cuda", "--out", str(tmp_path / "cuda"), "--quiet"],
        ["merge", a, b, "--device", "tpu", "--out", str(tmp_path / "tpu"), "--quiet"],
    )
    assert ok.returncode == 0, ok.stderr
    assert "GAM reference: input 1" in ok.stdout
    direct = merge_adapters(adapters[:2], tmp_path / "direct", params={"reference": 1}, progress=False)
    key = "base_model.model.model.layers.0.mlp.up_proj.lora_B.weight"
    assert torch.equal(
        load_file(direct / "adapter_model.safetensors")[key],
        load_file(tmp_path / "cli" / "adapter_model.safetensors")[key],
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "unknown parameter(s) for average: density" in bad.stderr and "fix:" in bad.stderr
    assert typo.returncode == 2 and "No such option '--densty'" in typo.stderr
    assert not (tmp_path / "bad").exists()
    # an explicit reference below the largest rank: one line naming the rank-6 input, and the fix
    assert low.returncode == 2 and "Traceback" not in low.stderr, low.stderr
    lines = [line for line in low.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: GAM reference") and "largest input rank 6" in lines[0]
    assert lines[0].endswith(f"(fix: set the reference to a rank-6 input ({c}) or to auto)")
    assert _no_leftovers(tmp_path, "low")
    # --device cuda: the GPU where there is one, else one line saying there is none (nothing written)
    if torch.cuda.is_available():
        assert cuda.returncode == 0, cuda.stderr
    else:
        lines = [line for line in cuda.stderr.splitlines() if line.strip()]
        assert cuda.returncode == 2 and len(lines) == 1, cuda.stderr
        assert lines[0] == "error: device is 'cuda' but no GPU is visible here (fix: use --device cpu (or auto))"
        assert _no_leftovers(tmp_path, "cuda")
    assert device.returncode == 2 and "Invalid value for '--device'" in device.stderr


# ---- reading never writes (issue #13: auto read every module twice and doubled the scale) -----


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rslora", [False, True])
def test_reading_a_module_twice_gives_the_same_update(tiny_model, tmp_path, dtype, rslora):
    folder = build_random_adapter(tiny_model, tmp_path / "a", r=4, alpha=8, seed=3, use_rslora=rslora)  # α ≠ r
    if dtype != torch.float32:
        w = load_file(folder / "adapter_model.safetensors")
        save_file({k: v.to(dtype) for k, v in w.items()}, str(folder / "adapter_model.safetensors"))
    ad = load_adapter(folder)
    first = {m: ad.modules[m].dense(torch.float64) for m in ad.module_names}
    second = {m: ad.modules[m].dense(torch.float64) for m in ad.module_names}
    for m in ad.module_names:
        assert torch.equal(first[m], second[m]), m
        assert torch.allclose(first[m], _dense_delta(folder, m), rtol=1e-12, atol=0), m


def test_auto_equals_the_index_it_reports_on_float32_adapters(tiny_model, tmp_path):
    """The 2x bug's symptom: reference auto gave scale²·…; now auto is the explicit index it chose."""
    ins = [build_random_adapter(tiny_model, tmp_path / f"d{i}", r=4, alpha=8, seed=10 + i) for i in range(3)]
    auto = merge_adapters(ins, tmp_path / "auto", params={"reference": "auto"}, dtype=torch.float32, progress=False)
    index = json.loads((auto / "deltahub.json").read_text())["merge"]["parameters"]["reference_index"]
    explicit = merge_adapters(
        ins, tmp_path / "explicit", params={"reference": index}, dtype=torch.float32, progress=False
    )
    got, want = load_file(auto / "adapter_model.safetensors"), load_file(explicit / "adapter_model.safetensors")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)


# ---- GAM with modules some adapters lack, and the rank rule across modules -------------------


def test_gam_with_missing_modules_is_the_reference_with_rank_zero_inputs(tiny_model, adapters, tmp_path):
    """A module an adapter lacks is a rank-0 input there. Adapter c (rank 6, q/v/down only) has the
    largest rank in q/v/down but rank 0 in k/o/gate/up: no input is largest everywhere, so auto and
    an explicit rank-4 reference are refused. Adapter a (rank 4, every module) with two rank-4
    adapters on q/v/down only is largest everywhere: GAM zero-pads the others where they are missing."""
    with pytest.raises(InputError, match="no input has the largest rank in every module"):
        merge_adapters(adapters, tmp_path / "none", params={"reference": "auto"}, progress=False)
    with pytest.raises(InputError, match=r"a has rank 4 in \S+_proj, below the largest input rank 6 \(\S+/c\)"):
        merge_adapters(adapters, tmp_path / "low", params={"reference": 0}, progress=False)
    assert _no_leftovers(tmp_path, "none") and _no_leftovers(tmp_path, "low")
    small = [
        build_random_adapter(
            tiny_model, tmp_path / f"s{i}", r=4, alpha=8, seed=20 + i, target_modules=["q_proj", "v_proj", "down_proj"]
        )
        for i in range(2)
    ]
    out = merge_adapters(
        [adapters[0], *small], tmp_path / "padded", params={"reference": "a"}, dtype=torch.float32, progress=False
    )
    merged = load_adapter(out)
    for module in merged.module_names:
        updates = [_dense_delta(p, module) for p in (adapters[0], *small)]
        ranks = [0 if u is None else 4 for u in updates]
        updates = [torch.zeros_like(updates[0]) if u is None else u for u in updates]
        want = dense_gam(updates, ranks, ref=0)
        assert rel_err(merged.modules[module].dense(torch.float64), want) < 1e-5, module


# ---- --full: the base must be the adapters' base --------------------------------------------


def test_full_refuses_a_base_that_is_not_the_adapters(tiny_model, adapters, tmp_path):
    from deltahub.tiny import build_tiny_model

    same_shapes = build_tiny_model(tmp_path / "other-seed", hidden_size=64, num_layers=2, seed=1)
    other_config = build_tiny_model(
        tmp_path / "other-config", hidden_size=64, num_layers=2, seed=0, max_position_embeddings=512
    )
    copy = _copy(Path(tiny_model), tmp_path / "copy-of-base")
    for base, match in ((same_shapes, "same config, different weights"), (other_config, "max_position_embeddings")):
        with pytest.raises(InputError, match=match) as e:
            merge_adapters(adapters[:2], tmp_path / "out", base=base, full=True, progress=False)
        assert "--allow-base-mismatch" in e.value.fix and f"--base {tiny_model}" in e.value.fix
        assert _no_leftovers(tmp_path, "out")
    merge_adapters(adapters[:2], tmp_path / "ok-copy", base=copy, full=True, progress=False)
    merge_adapters(
        adapters[:2], tmp_path / "ok-forced", base=same_shapes, full=True, allow_base_mismatch=True, progress=False
    )
    (r,) = cli_batch.run(
        [
            "merge",
            str(adapters[0]),
            str(adapters[1]),
            "--base",
            str(same_shapes),
            "--full",
            "--out",
            str(tmp_path / "cli"),
        ]
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and "is not the adapters' base" in r.stderr


def test_recipe_reference_must_name_a_merged_delta():
    from deltahub.recipe import parse_recipe

    def recipe(reference):
        return {
            "name": "r",
            "hub": {"publish": False},
            "student": {"model": "./student"},
            "deltas": [
                {"name": n, "chosen": "w", "rejected": "x", "prompts": {"source": "p.jsonl"}} for n in ("math", "code")
            ],
            "merge": {"methods": ["gam"], "parameters": {"gam": {"reference": reference}}},
        }

    for ok in ("math", "code", 1, "auto"):
        parse_recipe(recipe(ok))
    for bad, match in (
        ("maths", "none of the inputs"),
        (2, "out of range"),
        (-1, "greater than or equal to 0"),
        ({"a": 1}, "reference"),
    ):
        with pytest.raises(InputError, match=match):
            parse_recipe(recipe(bad))
