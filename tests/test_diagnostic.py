"""The delta diagnostic against references written here, on adapters PEFT saved for a tiny model.

The reference reads each adapter with safetensors itself, applies PEFT's scale rule itself (α/r, α/√r
with rsLoRA, r per module from ``rank_pattern``), forms every update B@A densely in float64 and takes
Frobenius inner products of the dense matrices; the scale rule is pinned to PEFT's own by comparing
with the weights PEFT's ``merge_and_unload`` writes. Every route (the Python API, the CLI on folders
and on registry repo ids, JSON and table) is held to that reference. The Spearman helper is held to
``scipy.stats`` (spearmanr, permutation_test, bootstrap) and to the textbook no-ties formula.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_bad_input import assert_one_line_error, subprocess_cli

from deltahub.cli import main
from deltahub.diagnostic import diagnose, diagnosis_table, rank_correlation, spearman
from deltahub.errors import InputError
from deltahub.tiny import build_random_adapter, build_tiny_model

PREFIX, A_SUFFIX, B_SUFFIX = "base_model.model.", ".lora_A.weight", ".lora_B.weight"
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]


# ----------------------------------------------------------------------------------------------
# the reference: dense float64 updates from the files, PEFT's scale rule written out here


def peft_scale(cfg: dict, r: int) -> float:
    """PEFT's LoRA scale: α/r, or α/√r with rsLoRA (``alpha`` or ``lora_alpha`` in ``cfg``)."""
    alpha = cfg.get("lora_alpha", cfg.get("alpha"))
    return alpha / (math.sqrt(r) if cfg.get("use_rslora") else r)


def dense_updates(folder: Path) -> dict[str, torch.Tensor]:
    """module -> scale·B@A in float64, from adapter_model.safetensors and adapter_config.json."""
    cfg = json.loads((folder / "adapter_config.json").read_text())
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    out = {}
    for key, A in tensors.items():
        if not key.endswith(A_SUFFIX):
            continue
        module = key[len(PREFIX) : -len(A_SUFFIX)]
        B = tensors[key[: -len(A_SUFFIX)] + B_SUFFIX]
        r = A.shape[0]
        assert r == (cfg.get("rank_pattern") or {}).get(module.split(".")[-1], cfg["r"])
        out[module] = peft_scale(cfg, r) * (B.double() @ A.double())
    return out


def dense_reference(delta: Path, oracle: Path) -> dict:
    """Per-module and overall cosines, inner product and norms of the dense updates."""
    d, o = dense_updates(delta), dense_updates(oracle)
    modules = {}
    for m in d.keys() | o.keys():
        dn = float(torch.linalg.matrix_norm(d[m])) if m in d else 0.0
        on = float(torch.linalg.matrix_norm(o[m])) if m in o else 0.0
        inner = float((d[m] * o[m]).sum()) if m in d and m in o else 0.0
        cos = inner / (dn * on) if m in d and m in o and dn and on else None
        modules[m] = {"inner": inner, "delta_norm": dn, "oracle_norm": on, "cosine": cos}
    inner = sum(v["inner"] for v in modules.values())
    dn = math.sqrt(sum(v["delta_norm"] ** 2 for v in modules.values()))
    on = math.sqrt(sum(v["oracle_norm"] ** 2 for v in modules.values()))
    return {"inner": inner, "delta_norm": dn, "oracle_norm": on, "cosine": inner / (dn * on), "modules": modules}


def assert_matches(diagnosis, ref: dict, rel: float = 1e-9) -> None:
    got = diagnosis.to_dict()
    for key in ("inner", "delta_norm", "oracle_norm"):
        assert got[key] == pytest.approx(ref[key], rel=rel, abs=1e-12 * ref["delta_norm"] * ref["oracle_norm"]), key
    assert got["cosine"] == pytest.approx(ref["cosine"], abs=1e-9)
    assert {m["module"] for m in got["modules"]} == set(ref["modules"])
    for m in got["modules"]:
        want = ref["modules"][m["module"]]
        for key in ("inner", "delta_norm", "oracle_norm"):
            assert m[key] == pytest.approx(want[key], rel=rel, abs=1e-12), (m["module"], key)
        if want["cosine"] is None:
            assert m["cosine"] is None
        else:
            assert m["cosine"] == pytest.approx(want["cosine"], abs=1e-9), m["module"]


# ----------------------------------------------------------------------------------------------
# adapters: saved by PEFT on the tiny model, then edited tensor by tensor where a test needs it


def rewrite(src: Path, dst: Path, edit, config: dict | None = None) -> Path:
    """A copy of adapter ``src`` with every (module, A, B) replaced by ``edit(module, A, B)``."""
    shutil.copytree(src, dst)
    tensors = load_file(str(src / "adapter_model.safetensors"))
    out = {}
    for key, A in tensors.items():
        if key.endswith(A_SUFFIX):
            bkey = key[: -len(A_SUFFIX)] + B_SUFFIX
            out[key], out[bkey] = edit(key[len(PREFIX) : -len(A_SUFFIX)], A, tensors[bkey])
    save_file(out, str(dst / "adapter_model.safetensors"), metadata={"format": "pt"})
    if config:
        cfg = json.loads((src / "adapter_config.json").read_text())
        (dst / "adapter_config.json").write_text(json.dumps({**cfg, **config}))
    return dst


def in_dtype(src: Path, dst: Path, dtype: torch.dtype) -> Path:
    return rewrite(src, dst, lambda m, A, B: (A.to(dtype), B.to(dtype)))


ALPHA_FORMS = {  # name -> PEFT LoraConfig arguments besides r (alpha as a function of r)
    "alpha=r": lambda r: {"alpha": r},
    "alpha=2r": lambda r: {"alpha": 2 * r},
    "rslora": lambda r: {"alpha": 2 * r, "use_rslora": True},
}


@pytest.fixture(scope="module")
def adapters(tiny_model, tmp_path_factory) -> dict[str, Path]:
    """An oracle and deltas around it, in every alpha form: independent ones, ones that share the oracle's
    update plus their own (``near``, rank 4 + 8), mixed ranks within one adapter (``rank_pattern``), and
    modules the oracle does not train (``partial``)."""
    root = tmp_path_factory.mktemp("diag")
    out: dict[str, Path] = {}
    for form, args in ALPHA_FORMS.items():
        tag = form.replace("=", "")
        oracle = build_random_adapter(tiny_model, root / f"oracle-{tag}", r=4, seed=0, **args(4))
        out[f"oracle/{form}"] = oracle
        out[f"independent/{form}"] = build_random_adapter(tiny_model, root / f"indep-{tag}", r=8, seed=1, **args(8))
        noise = build_random_adapter(tiny_model, root / f"noise-{tag}", r=8, seed=2, std=0.03, **args(8))
        # near: [B_o·c, B_n] @ [A_o; A_n] with c undoing the scale change (the oracle's update + noise)
        noise_t = load_file(str(noise / "adapter_model.safetensors"))
        near_cfg = {"r": 12, "lora_alpha": args(12)["alpha"]}
        # near: [B_o·s_o, B_n·s_n]/s @ [A_o; A_n] under the rank-12 scale s: the oracle's update plus the noise's
        s_o, s_n, s = (peft_scale({**args(r), "r": r}, r) for r in (4, 8, 12))
        out[f"near/{form}"] = rewrite(
            oracle,
            root / f"near-{tag}",
            lambda m, A, B, s_o=s_o, s_n=s_n, s=s, noise_t=noise_t: (
                torch.cat([A, noise_t[PREFIX + m + A_SUFFIX]]),
                torch.cat([B * (s_o / s), noise_t[PREFIX + m + B_SUFFIX] * (s_n / s)], 1),
            ),
            config=near_cfg,
        )
        out[f"mixed/{form}"] = build_random_adapter(
            tiny_model, root / f"mixed-{tag}", r=4, seed=3, rank_pattern={"q_proj": 8, "down_proj": 2}, **args(4)
        )
        out[f"partial/{form}"] = build_random_adapter(
            tiny_model, root / f"partial-{tag}", r=4, seed=4, target_modules=["q_proj", "v_proj", "up_proj"], **args(4)
        )
    out["attention-oracle"] = build_random_adapter(
        tiny_model, root / "attention-oracle", r=4, alpha=8, seed=5, target_modules=ATTENTION
    )
    return out


def test_reference_scale_rule_is_pefts(tiny_model, adapters, tmp_path):
    """The reference's dense updates equal what PEFT adds to the base weights (merge_and_unload), for
    rsLoRA with per-module ranks: the rule the reference applies is PEFT's, not one copied from deltahub."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    folder = adapters["mixed/rslora"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float64).state_dict()
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float64)
    merged = PeftModel.from_pretrained(model, folder).merge_and_unload().state_dict()
    ref = dense_updates(folder)
    assert {m.split(".")[-1] for m in ref} == set(ATTENTION + MLP)
    for module, update in ref.items():
        peft_update = merged[f"{module}.weight"] - base[f"{module}.weight"]
        torch.testing.assert_close(update, peft_update, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("form", list(ALPHA_FORMS))
@pytest.mark.parametrize("delta", ["independent", "near", "mixed", "partial"])
def test_float32_matches_dense_reference(adapters, form, delta):
    oracle = adapters[f"oracle/{form}"]
    (got,) = diagnose([adapters[f"{delta}/{form}"]], oracle)
    assert_matches(got, dense_reference(adapters[f"{delta}/{form}"], oracle))


def test_the_cases_differ_as_designed(adapters):
    """The fixtures are what they claim: a noisy copy of the oracle is well aligned, an independent delta
    is not, and the partial delta trains modules the oracle lacks and lacks modules it trains."""
    oracle = adapters["oracle/rslora"]
    near, indep, partial = diagnose([adapters[f"{k}/rslora"] for k in ("near", "independent", "partial")], oracle)
    assert near.cosine > 0.8 and abs(indep.cosine) < 0.2
    assert partial.delta_only == [] and len(partial.oracle_only) == 2 * 4  # 2 layers x (k, o, gate, down)
    (attn,) = diagnose([adapters["partial/rslora"]], adapters["attention-oracle"])
    assert len(attn.delta_only) == 2 and len(attn.oracle_only) == 2 * 2  # up_proj; k_proj and o_proj


def test_scale_form_matters_where_ranks_differ(adapters, tmp_path):
    """With per-module ranks the overall cosine depends on the scale rule: the same factors read as
    plain LoRA give a different overall cosine (so the alpha-form tests can fail)."""
    oracle = adapters["oracle/rslora"]
    plain = rewrite(adapters["mixed/rslora"], tmp_path / "plain", lambda m, A, B: (A, B), config={"use_rslora": False})
    (rs,) = diagnose([adapters["mixed/rslora"]], oracle)
    (pl,) = diagnose([plain], oracle)
    assert_matches(pl, dense_reference(plain, oracle))
    assert abs(rs.cosine - pl.cosine) > 1e-4


@pytest.mark.parametrize("form", list(ALPHA_FORMS))
def test_bf16_matches_dense_reference(adapters, form, tmp_path):
    oracle = in_dtype(adapters[f"oracle/{form}"], tmp_path / "oracle", torch.bfloat16)
    for delta in ("near", "mixed", "partial"):
        d = in_dtype(adapters[f"{delta}/{form}"], tmp_path / delta, torch.bfloat16)
        (got,) = diagnose([d], oracle)
        assert_matches(got, dense_reference(d, oracle))
        # and bf16 rounding moves the cosine only a little from the float32 adapters'
        (f32,) = diagnose([adapters[f"{delta}/{form}"]], adapters[f"oracle/{form}"])
        assert got.cosine == pytest.approx(f32.cosine, abs=2e-2)


def test_mixed_dtypes(adapters, tmp_path):
    oracle = in_dtype(adapters["oracle/alpha=2r"], tmp_path / "oracle", torch.bfloat16)
    (got,) = diagnose([adapters["near/alpha=2r"]], oracle)
    assert_matches(got, dense_reference(adapters["near/alpha=2r"], oracle))


# ----------------------------------------------------------------------------------------------
# invariances


def test_rescaled_factors_change_nothing(adapters, tmp_path):
    """A·c and B/c (per module, different c) is the same update: every figure unchanged."""
    src = adapters["near/rslora"]
    cs = iter([0.25, 3.0, 7.5, 0.1] * 20)
    rescaled = rewrite(src, tmp_path / "rescaled", lambda m, A, B: (A * (c := next(cs)), B / c))
    oracle = adapters["oracle/rslora"]
    (a,), (b,) = diagnose([src], oracle), diagnose([rescaled], oracle)
    assert b.cosine == pytest.approx(a.cosine, abs=1e-7)
    assert b.inner == pytest.approx(a.inner, rel=1e-6) and b.delta_norm == pytest.approx(a.delta_norm, rel=1e-6)
    for x, y in zip(a.modules, b.modules, strict=True):
        assert y.cosine == pytest.approx(x.cosine, abs=1e-7)


def test_self_is_one_and_negation_minus_one(adapters, tmp_path):
    src = adapters["mixed/alpha=2r"]
    copy = rewrite(src, tmp_path / "copy", lambda m, A, B: (A, B))
    negated = rewrite(src, tmp_path / "negated", lambda m, A, B: (A, -B))
    same, neg = diagnose([copy, negated], src)
    assert same.cosine == pytest.approx(1.0, abs=1e-12) and neg.cosine == pytest.approx(-1.0, abs=1e-12)
    assert all(m.cosine == pytest.approx(1.0, abs=1e-12) for m in same.modules)
    assert all(m.cosine == pytest.approx(-1.0, abs=1e-12) for m in neg.modules)
    assert same.projection == pytest.approx(same.delta_norm) and neg.projection == pytest.approx(-neg.delta_norm)


def test_only_one_side_counts_in_the_norms(adapters):
    """A module only the delta trains adds to its norm and not the inner product: the overall cosine of
    the delta against the oracle restricted to the shared modules is lower by exactly the norm ratio."""
    (got,) = diagnose([adapters["partial/rslora"]], adapters["attention-oracle"])
    shared = [m for m in got.modules if m.side == "both"]
    only = [m for m in got.modules if m.side != "both"]
    assert only and all(m.inner == 0 and m.cosine is None for m in only)
    shared_norm = math.sqrt(sum(m.delta_norm**2 for m in shared))
    shared_oracle = math.sqrt(sum(m.oracle_norm**2 for m in shared))
    shared_cos = sum(m.inner for m in shared) / (shared_norm * shared_oracle)
    assert got.cosine == pytest.approx(shared_cos * shared_norm * shared_oracle / (got.delta_norm * got.oracle_norm))


# ----------------------------------------------------------------------------------------------
# routes: the CLI on folders and on registry repo ids equals the API


def _cli_json(capsys, *args) -> list[dict]:
    main(["diagnose", *map(str, args), "--json"])
    return json.loads(capsys.readouterr().out)


def test_cli_equals_api(adapters, capsys):
    deltas = [adapters[f"{k}/alpha=r"] for k in ("independent", "near", "mixed", "partial")]
    oracle = adapters["oracle/alpha=r"]
    api = [d.to_dict() for d in diagnose(deltas, oracle)]
    assert _cli_json(capsys, *deltas, "--oracle", oracle) == api
    for d, ref in zip(deltas, api, strict=True):
        assert_matches(diagnose([d], oracle)[0], dense_reference(d, oracle))
        assert ref["delta"] == str(d) and ref["oracle"] == str(oracle)
    main(["diagnose", *map(str, deltas), "--oracle", str(oracle), "--per-module"])
    table = capsys.readouterr().out
    assert table.strip() == diagnosis_table(diagnose(deltas, oracle), per_module=True)
    for row in api:
        assert f"| {row['delta']} | {row['cosine']:+.4f} |" in table
        for m in row["modules"]:
            cell = "-" if m["cosine"] is None else f"{m['cosine']:+.4f}"
            assert f"| {row['delta']} | {m['module']} | {m['side']} | {cell} |" in table


def test_cli_on_registry_repo_ids(adapters, registry, capsys):
    from deltahub.endpoint import connect

    api = connect().api()
    names = {"near": "alice/near", "mixed": "alice/mixed", "oracle": "alice/oracle"}
    for key, repo in names.items():
        api.create_repo(repo, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=str(adapters[f"{key}/rslora"]))
    sha = api.list_repo_commits("alice/mixed")[0].commit_id
    got = _cli_json(capsys, "alice/near", f"alice/mixed@{sha}", "--oracle", "alice/oracle")
    folders = [adapters["near/rslora"], adapters["mixed/rslora"]]
    want = [d.to_dict() for d in diagnose(folders, adapters["oracle/rslora"])]
    assert [g["delta"] for g in got] == ["alice/near", f"alice/mixed@{sha}"] and got[0]["oracle"] == "alice/oracle"
    for g, w in zip(got, want, strict=True):
        assert {k: v for k, v in g.items() if k not in ("delta", "oracle")} == {
            k: v for k, v in w.items() if k not in ("delta", "oracle")
        }
    # the oracle named as a repo id and also passed as a pulled delta is the same folder: refused
    with pytest.raises(SystemExit) as exc:
        main(["diagnose", "alice/oracle", "alice/near", "--oracle", "alice/oracle"])
    assert_one_line_error(exc.value.code, capsys.readouterr().err, "also among the deltas")


# ----------------------------------------------------------------------------------------------
# bad input: exit 2, one line naming the problem and the fix


def _bad(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["diagnose", *map(str, args)])
    err = capsys.readouterr().err
    assert_one_line_error(exc.value.code, err)
    return err


def test_bad_inputs(adapters, tiny_model, tmp_path, capsys):
    oracle, near = adapters["oracle/alpha=r"], adapters["near/alpha=r"]
    assert "does-not-exist' not found" in _bad(capsys, tmp_path / "does-not-exist", "--oracle", oracle)
    assert "does-not-exist' not found" in _bad(capsys, near, "--oracle", tmp_path / "does-not-exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no adapter_config.json" in _bad(capsys, near, "--oracle", empty)
    assert "also among the deltas" in _bad(capsys, near, oracle, "--oracle", oracle)
    # an adapter of another (wider) model: its base is named first, and with the names allowed, its shapes
    other = build_tiny_model(tmp_path / "wide", hidden_size=96, num_layers=2, seed=0)
    wide = build_random_adapter(other, tmp_path / "wide-adapter", r=4, alpha=4, target_modules=ATTENTION)
    capsys.readouterr()  # the build's progress bars
    assert "was trained on" in _bad(capsys, wide, "--oracle", oracle)
    err = _bad(capsys, wide, "--oracle", oracle, "--allow-base-mismatch")
    assert "module model.layers.0.self_attn.k_proj is (32, 96) in " in err and "same base model" in err
    zero = rewrite(oracle, tmp_path / "zero", lambda m, A, B: (A, torch.zeros_like(B)))
    assert "is a zero update" in _bad(capsys, near, "--oracle", zero)
    nan = rewrite(near, tmp_path / "nan", lambda m, A, B: (A, B.index_fill(0, torch.tensor([0]), float("nan"))))
    assert "has NaN or Inf" in _bad(capsys, nan, "--oracle", oracle)
    assert "Missing option '--oracle'" in _bad(capsys, near)


def test_bad_input_subprocess(adapters, tmp_path):
    err = subprocess_cli("diagnose", adapters["near/alpha=r"], "--oracle", tmp_path / "nowhere")
    assert "nowhere' not found" in err


# ----------------------------------------------------------------------------------------------
# the rank correlation


def textbook_rho(x, y) -> float:
    """1 - 6Σd²/(n(n²-1)), valid without ties."""
    rank = lambda v: np.argsort(np.argsort(v)) + 1  # noqa: E731
    d = rank(np.asarray(x)) - rank(np.asarray(y))
    n = len(x)
    return 1 - 6 * float((d * d).sum()) / (n * (n * n - 1))


def test_spearman_matches_references():
    rng = np.random.default_rng(7)
    for n in (3, 5, 8, 20, 60):
        x = rng.normal(size=n)
        y = 0.5 * x + rng.normal(size=n)
        assert spearman(x, y) == pytest.approx(textbook_rho(x, y), abs=1e-12)
        assert rank_correlation(x, y, n_boot=200).estimate == pytest.approx(textbook_rho(x, y), abs=1e-12)
    stats = pytest.importorskip("scipy.stats")
    for n in (4, 7, 30):
        x = rng.integers(0, 4, size=n).astype(float)  # ties in both
        y = x + rng.integers(0, 3, size=n)
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_permutation_p_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n in (4, 5, 6):  # scipy calls spearmanr once per pairing (6! = 720)
        x = rng.permutation(n).astype(float)  # no ties in x: the null distribution is symmetric
        y = x + rng.normal(scale=2.0, size=n)
        ref = stats.permutation_test(  # one sample, permuted against the fixed x: all n! pairings
            (y,),
            lambda b, x=x: stats.spearmanr(x, b).statistic,
            permutation_type="pairings",
            n_resamples=np.inf,
            alternative="two-sided",
        )
        got = rank_correlation(x, y, n_boot=200)
        assert got.exact and got.p_value == pytest.approx(min(1.0, ref.pvalue), abs=1e-9)
    x = rng.normal(size=12)
    big = rank_correlation(x, x + rng.normal(size=12), n_boot=200, n_perm=5000)
    assert not big.exact and 0 < big.p_value < 1


def test_bootstrap_interval_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(11)
    x = rng.normal(size=30)
    y = 0.4 * x + rng.normal(size=30)
    got = rank_correlation(x, y, n_boot=4000, seed=1)
    ref = stats.bootstrap(
        (x, y),
        lambda a, b: stats.spearmanr(a, b).statistic,
        paired=True,
        vectorized=False,
        method="percentile",
        n_resamples=4000,
        random_state=np.random.default_rng(2),
    ).confidence_interval
    assert got.low < got.estimate < got.high and got.replicates == 4000
    assert got.low == pytest.approx(ref.low, abs=0.04) and got.high == pytest.approx(ref.high, abs=0.04)
    assert rank_correlation(x, y, n_boot=4000, seed=1) == got  # the seed fixes it


def test_rank_correlation_edges():
    r = rank_correlation([0.1, 0.2, 0.3, 0.5], [1, 2, 3, 4])
    assert r.estimate == 1 and r.low == 1 and r.high == 1 and r.verdict() == "reproduced"
    assert r.p_value == pytest.approx(2 / 24)  # the two perfectly ordered pairings of 4! (|rho| = 1)
    r = rank_correlation([0.1, 0.2, 0.3, 0.5, 0.6], [5, 4, 3, 2, 1])
    assert r.estimate == -1 and r.verdict() == "contradicted"
    for x, y, needle in (
        ([0.1, 0.2], [1, 2], "at least 3"),
        ([0.1, 0.2, 0.3], [1, 2], "equally long"),
        ([0.1, 0.1, 0.1], [1, 2, 3], "all diagnostic values are equal"),
        ([0.1, 0.2, 0.3], [1, 1, 1], "all gains are equal"),
        ([0.1, None, 0.3], [1, 2, 3], "NaN"),
    ):
        with pytest.raises(InputError, match=needle):
            rank_correlation(x, y)


def test_diagnose_feeds_rank_correlation(adapters):
    """The demo's use: cosines of diagnose's deltas against gains (here the reference's own cosines as a
    monotone stand-in), in one call each."""
    oracle = adapters["oracle/alpha=2r"]
    deltas = [adapters[f"{k}/alpha=2r"] for k in ("independent", "near", "mixed", "partial")]
    cosines = [d.cosine for d in diagnose(deltas, oracle)]
    gains = [10 * dense_reference(d, oracle)["cosine"] + 1 for d in deltas]
    assert rank_correlation(cosines, gains).estimate == pytest.approx(1.0)
