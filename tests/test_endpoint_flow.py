"""One endpoint everywhere, as a new user meets it: fresh processes, HOME in a temp folder, no
DELTAHUB_* or HF_* variables (so uploads and downloads go through Xet, as with any default client).

An upstream Hub (a second embedded registry on loopback, tokens mode) holds the base model only.
``deltahub hub use embedded --upstream URL`` is the one step of set-up. Then ``deltahub train
--student up/base`` trains on the base read through the local registry, ``deltahub publish`` puts
that delta and a second one in the local registry, and the unmodified ``mergekit-yaml`` composes
them from repo ids (``BASE+NS/DELTA@REV``, the base itself a repo id). Its weights must equal
``deltahub merge --full`` on the same inputs and an independent dense GAM of the adapters.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_merge import dense_gam
from test_merge_adapters import _dense_delta

from deltahub.server.web.compose import Composition, Pick
from deltahub.tiny import build_random_adapter

BIN = Path(sys.executable).parent
MODULES = ["q_proj", "v_proj"]


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a new user: only PATH/PYTHONPATH/locale survive; HOME is the temp folder."""
    keep = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        TOKENIZERS_PARALLELISM="false",
        PYTHONWARNINGS="ignore",
    )
    assert not any(k.startswith(("DELTAHUB_", "HF_")) for k in env)
    return env


def run(env: dict, *cmd: str, timeout: int = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    assert out.returncode == 0, f"{cmd[:2]} failed:\n{out.stderr[-3000:]}"
    return out


def weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def reference_gam(base: Path, adapters: list[Path], weights_: list[float]) -> dict[str, torch.Tensor]:
    """base + the paper's dense GAM (test_merge.dense_gam) of each module's ΔW read with PEFT's semantics."""
    out = {k: v.double() for k, v in weights(base).items()}
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for name in list(out):
            module = name.removesuffix(".weight")
            deltas = [_dense_delta(a, module) for a in adapters]
            if any(d is None for d in deltas):
                continue
            ranks = [json.loads((a / "adapter_config.json").read_text())["r"] for a in adapters]
            out[name] = out[name] + dense_gam(deltas, ranks, ref=0, weights=weights_)
    finally:
        torch.set_default_dtype(before)
    return out


@pytest.fixture(scope="module")
def upstream(tiny_model, tmp_path_factory):
    """The 'public Hub': holds up/base (the tiny model) and nothing else; writes need a token."""
    from huggingface_hub import HfApi

    from deltahub.server import start_server

    srv = start_server(tmp_path_factory.mktemp("upstream"), open_mode=False, tokens={"tok-up": "up"})
    api = HfApi(endpoint=srv.url, token="tok-up")
    api.create_repo("up/base")
    api.upload_folder(repo_id="up/base", folder_path=str(tiny_model))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def flow(upstream, tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    home = root / "home"
    env = clean_env(home)
    use = run(env, BIN / "deltahub", "hub", "use", "embedded", "--upstream", upstream.url)
    pairs = root / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"prompt": f"sort {i} {9 - i}", "chosen": f"{min(i, 9 - i)}", "rejected": f"{max(i, 9 - i)}"})
            + "\n"
            for i in range(8)
        )
    )
    trained = root / "trained"
    run(
        env,
        BIN / "deltahub",
        "train",
        "--student",
        "up/base",
        "--pairs",
        pairs,
        "--out",
        trained,
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--micro-batch-size",
        "4",
        "--rank",
        "4",
        "--alpha",
        "8",
        "--eval-fraction",
        "0",
        "--target-modules",
        ",".join(MODULES),
        "--lr",
        "1e-3",
        "-q",
    )
    other = build_random_adapter(tiny_model, root / "other", r=4, alpha=8, seed=7, target_modules=MODULES)
    cfg = json.loads((other / "adapter_config.json").read_text())
    (other / "adapter_config.json").write_text(json.dumps({**cfg, "base_model_name_or_path": "up/base"}))
    block = json.loads((trained / "deltahub.json").read_text())
    (other / "deltahub.json").write_text(json.dumps(block))
    shas = {}
    for folder, repo in ((trained, "me/trained"), (other, "me/other")):
        out = run(env, BIN / "deltahub", "publish", folder, "--repo", repo)
        shas[repo] = out.stdout.split("@")[-1].split()[0]
    picks = (Pick("me/trained", shas["me/trained"], 1.0), Pick("me/other", "main", 0.5))
    (root / "gam.yml").write_text(Composition("up/base", "gam", picks, {"reference": 0}).yaml())
    line = shlex.split(Composition.mergekit_command("gam.yml", "mk"))  # run in root: its lora-cache goes there
    t0 = time.perf_counter()
    mk = run(env, BIN / line[0], *line[1:], cwd=root)
    mk_seconds = time.perf_counter() - t0
    run(
        env,
        BIN / "deltahub",
        "merge",
        f"me/trained@{shas['me/trained']}",
        "me/other",
        "--weights",
        "1.0,0.5",
        "--method",
        "gam",
        "--reference",
        "0",
        "--base",
        "up/base",
        "--full",
        "--dtype",
        "float32",
        "--out",
        root / "ref",
    )
    print(f"\nmergekit-yaml on published tiny deltas: {mk_seconds:.1f} s")
    return {
        "root": root,
        "home": home,
        "env": env,
        "use": use,
        "mk": mk,
        "trained": trained,
        "other": other,
        "shas": shas,
    }


def test_mergekit_yaml_with_repo_ids_equals_deltahub_merge_full(flow, tiny_model):
    got, want = weights(flow["root"] / "mk"), weights(flow["root"] / "ref")
    assert set(got) == set(want)
    for name in want:
        assert torch.allclose(got[name], want[name], atol=1e-6, rtol=0), name
    ref = reference_gam(Path(tiny_model), [flow["trained"], flow["other"]], [1.0, 0.5])
    changed = 0
    for name, r in ref.items():
        if name in got:
            err = float((got[name].double() - r).norm() / r.norm().clamp_min(1e-12))
            assert err <= 1e-5, f"{name}: relative error {err:.2e} against the dense paper GAM"
            changed += not torch.equal(got[name], weights(tiny_model)[name])
    assert changed == 2 * len(MODULES)  # q and v of both layers moved, nothing else


def test_base_model_came_through_the_upstream_into_a_read_only_mirror(flow, upstream):
    from deltahub.server.storage import Store

    store = Store(flow["home"] / ".cache" / "deltahub" / "registry")
    base = store.get_repo("model", "up", "base")
    assert base is not None and store.mirror_of(base) == upstream.url
    for name in ("trained", "other"):
        published = store.get_repo("model", "me", name)
        assert published is not None and store.mirror_of(published) is None
    up = Store(Path(upstream.root))
    assert up.get_repo("model", "me", "trained") is None  # pushes never go upstream
    assert store.resolve(base, "main") == up.resolve(up.get_repo("model", "up", "base"), "main")


def test_the_one_setup_step_is_saved_and_described(flow, upstream):
    settings = json.loads((flow["home"] / ".cache" / "deltahub" / "settings.json").read_text())
    assert settings == {"endpoint": "embedded", "upstream": upstream.url}
    assert f"upstream {upstream.url}" in flow["use"].stdout and "the embedded registry" in flow["use"].stdout


def test_unknown_repo_names_the_endpoint_and_upstream_and_the_fix(flow, upstream):
    cfg = yaml.safe_load((flow["root"] / "gam.yml").read_text())
    cfg["models"][1]["model"] = "up/base+me/typo@main"
    bad = flow["root"] / "typo.yml"
    bad.write_text(yaml.safe_dump(cfg))
    cmd = [BIN / "mergekit-yaml", bad, flow["root"] / "typo-out", "--lora-merge-cache", flow["root"] / "lora-cache"]
    r = subprocess.run([str(c) for c in cmd], env=flow["env"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "me/typo" in last and "the embedded registry (started on demand at http://127.0.0.1:" in last
    assert f"upstream {upstream.url}" in last and "deltahub hub use" in last and "DELTAHUB_ENDPOINT" in last
    r = subprocess.run(
        [str(BIN / "deltahub"), "pull", "me/typo"], env=flow["env"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no repo me/typo on the embedded registry (started on demand at http://127.0.0.1:" in r.stderr
    assert "deltahub hub use" in r.stderr


PROBE = """
import json, os, sys, threading
import yaml
import huggingface_hub.constants as hc
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.options import MergeOptions

def state():
    return {"endpoint": hc.ENDPOINT, "HF_ENDPOINT": os.environ.get("HF_ENDPOINT"),
            "deltahub.endpoint": "deltahub.endpoint" in sys.modules,
            "threads": sorted(t.name for t in threading.enumerate())}

out = {"start": state()}
(linear, gam), target = (yaml.safe_load(open(p)) for p in sys.argv[1:3]), sys.argv[3]
linear = MergeConfiguration.model_validate(linear)
run_merge(linear, target, options=MergeOptions(quiet=True))
with_id = MergeConfiguration.model_validate({**linear.model_dump(mode="json"), "base_model": "me/other"})
with_id.referenced_models()
out["linear"] = state()
MergeConfiguration.model_validate(gam).referenced_models()
out["gam"] = state()
print(json.dumps(out))
"""


def test_a_config_without_deltahub_methods_is_left_to_mergekit(flow, tiny_model):
    """linear (mergekit's own method), even naming a repo id, configures nothing: huggingface_hub keeps its
    default endpoint, no registry starts, the merge is mergekit's; the same process then resolves a gam
    config through deltahub (the positive control)."""
    root = flow["root"]
    a, b = Path(tiny_model), root / "ref"
    linear = {
        "merge_method": "linear",
        "dtype": "float32",
        "models": [{"model": str(a), "parameters": {"weight": 1.0}}, {"model": str(b), "parameters": {"weight": 3.0}}],
    }
    (root / "linear.yml").write_text(yaml.safe_dump(linear))
    out = run(flow["env"], sys.executable, "-c", PROBE, root / "linear.yml", root / "gam.yml", root / "linear-out")
    state = json.loads(out.stdout.strip().splitlines()[-1])
    assert {k: v for k, v in state["linear"].items() if k != "threads"} == {
        k: v for k, v in state["start"].items() if k != "threads"
    }
    assert state["linear"]["endpoint"] == "https://huggingface.co" and state["linear"]["HF_ENDPOINT"] is None
    assert not state["linear"]["deltahub.endpoint"] and "deltahub-registry" not in state["linear"]["threads"]
    assert state["gam"]["endpoint"].startswith("http://127.0.0.1:") and "deltahub-registry" in state["gam"]["threads"]
    got, wa, wb = weights(root / "linear-out"), weights(a), weights(b)
    for name, t in got.items():
        assert torch.allclose(t, (wa[name] + 3.0 * wb[name]) / 4.0, atol=1e-6), name
