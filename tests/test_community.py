"""Community deltas on the embedded registry: a foreign adapter (trained with TRL directly, not deltahub) is
published with declared provenance, validated and listed; broken copies are refused by publish.

Everything runs the real CLI entry point and the real huggingface_hub client against a loopback registry.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from deltahub.cli import main
from deltahub.share.cards import split_card

PAIRS = 8


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``deltahub ARGS`` in this process."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit 2 and one stderr line (upload progress bars aside) naming the problem and the fix."""
    lines = [
        line
        for line in err.replace("\r", "\n").splitlines()
        if line.strip() and "it/s]" not in line and "B/s]" not in line
    ]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def pair_rows(n: int) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": f"{i}+{i}="}],
            "chosen": [{"role": "assistant", "content": "ok"}],
            "rejected": [{"role": "assistant", "content": "NO!"}],
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def trl_adapter(tiny_model, tmp_path_factory) -> Path:
    """A LoRA adapter trained with TRL's DPOTrainer directly (2 steps): a plain PEFT folder, no deltahub.json."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    work = tmp_path_factory.mktemp("trl")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    args = DPOConfig(
        output_dir=str(work / "run"),
        per_device_train_batch_size=4,
        max_steps=2,
        learning_rate=1e-2,
        beta=0.1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        max_length=64,
        seed=0,
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(pair_rows(PAIRS)),
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    trainer.train()
    out = work / "adapter"
    trainer.model.save_pretrained(str(out))
    assert not (out / "deltahub.json").exists() and (out / "adapter_model.safetensors").is_file()
    return out


@pytest.fixture(scope="module")
def hub_base(registry, tiny_model) -> str:
    """The tiny base model on the registry, so the adapter can name a Hub id as its base."""
    from deltahub.endpoint import connect

    connect().api().create_repo("toy/tiny-base", exist_ok=True)
    connect().api().upload_folder(repo_id="toy/tiny-base", folder_path=str(tiny_model))
    return "toy/tiny-base"


@pytest.fixture(scope="module")
def pairs_repo(registry) -> str:
    """The pairs the adapter was trained on, pushed with ``datasets`` (not deltahub): data/*.parquet."""
    from datasets import Dataset

    Dataset.from_list(pair_rows(PAIRS)).push_to_hub("carol/trl-pairs")
    return "carol/trl-pairs"


def copy_of(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def published_card(repo: str) -> tuple[dict, str]:
    from huggingface_hub import hf_hub_download

    return split_card(Path(hf_hub_download(repo, "README.md")).read_text(encoding="utf-8"))


def test_foreign_adapter_published_with_declared_provenance(
    capsys, registry, trl_adapter, hub_base, pairs_repo, tmp_path, tiny_model
):
    before = {f.name: f.read_bytes() for f in trl_adapter.iterdir()}
    prov = tmp_path / "provenance.yaml"
    prov.write_text(
        yaml.safe_dump(
            {
                "chosen_model": "org/big-7b",
                "rejected_model": "org/small-1b",
                "objective": "dpo",
                "trainer": "trl DPOTrainer",
                "license": "mit",
            }
        )
    )
    # the dataset is named but not published yet: validate says so and passes; --strict fails
    code, out, _ = run_cli(
        capsys, "validate", trl_adapter, "--provenance", prov, "--base", hub_base, "--dataset", "carol/not-yet"
    )
    assert code == 0 and "WARN  linked dataset: carol/not-yet is not published yet" in out, out
    code, out, _ = run_cli(
        capsys, "validate", trl_adapter, "--base", hub_base, "--dataset", "carol/not-yet", "--strict"
    )
    assert code == 1 and "verdict: FAIL" in out and "strict" in out, out
    # publishing with a link to a dataset that does not exist is refused, nothing is created
    code, out, err = run_cli(
        capsys,
        "publish",
        trl_adapter,
        "--repo",
        "carol/dpo-delta",
        "--provenance",
        prov,
        "--base",
        hub_base,
        "--dataset",
        "carol/not-yet",
    )
    one_line_error(code, err, "failed validation", "linked dataset", "--no-validate")
    assert "FAIL  linked dataset: dataset carol/not-yet not found" in out
    from huggingface_hub.errors import RepositoryNotFoundError

    from deltahub.endpoint import connect

    with pytest.raises(RepositoryNotFoundError):
        connect().api().repo_info("carol/dpo-delta")

    code, out, err = run_cli(
        capsys,
        "publish",
        trl_adapter,
        "--repo",
        "carol/dpo-delta",
        "--provenance",
        prov,
        "--base",
        hub_base,
        "--dataset",
        pairs_repo,
        "--beta",
        "0.1",
    )
    assert code == 0 and "model carol/dpo-delta @ " in out and "(published)" in out, err
    assert {f.name: f.read_bytes() for f in trl_adapter.iterdir()} == before  # the user's folder is untouched

    meta, body = published_card("carol/dpo-delta")
    block = meta["deltahub"]
    fields = block["provenance"]["fields"]
    assert block["provenance"]["origin"] == "external" and block["provenance"]["validation"]["status"] == "passed"
    assert {
        k: fields[k]
        for k in ("chosen.model", "rejected.model", "training.objective", "training.beta", "dataset", "license")
    } == dict.fromkeys(
        ("chosen.model", "rejected.model", "training.objective", "training.beta", "dataset", "license"), "declared"
    )
    assert fields["pairs"] == "measured" and block["pairs"] == PAIRS  # counted from the linked dataset
    assert fields["lora.r"] == fields["lora.target_modules"] == "measured" and block["lora"]["r"] == 4
    assert meta["base_model"] == hub_base and meta["license"] == "mit" and meta["datasets"] == [pairs_repo]
    assert "| `chosen.model` | `org/big-7b` | declared |" in body and "| `lora.r` | 4 | measured |" in body
    assert "| `pairs` | 8 | measured |" in body and "trained outside deltahub (trl DPOTrainer)" in body
    from huggingface_hub import hf_hub_download

    assert (
        json.loads(Path(hf_hub_download("carol/dpo-delta", "adapter_config.json")).read_text())[
            "base_model_name_or_path"
        ]
        == hub_base
    )

    code, out, _ = run_cli(capsys, "validate", "carol/dpo-delta")
    assert code == 0 and "verdict: PASS" in out, out
    code, out, _ = run_cli(capsys, "list", "--base", hub_base, "--sort", "gain")
    row = next(line for line in out.splitlines() if line.startswith("carol/dpo-delta"))
    assert "unmeasured" in row and "external" in row and " 8 " in row and "dpo" in row, out
    # publishing the same thing again makes no new commit
    code, out, _ = run_cli(
        capsys,
        "publish",
        trl_adapter,
        "--repo",
        "carol/dpo-delta",
        "--provenance",
        prov,
        "--base",
        hub_base,
        "--dataset",
        pairs_repo,
        "--beta",
        "0.1",
    )
    assert code == 0 and "unchanged, no new commit" in out


def test_unknown_fields_are_marked_and_gain_is_measured(capsys, registry, trl_adapter, hub_base):
    """Nothing declared: the card says unknown for each unstated field; --measure puts a gain in the model-index."""
    code, out, err = run_cli(
        capsys,
        "publish",
        trl_adapter,
        "--repo",
        "dave/bare-delta",
        "--base",
        hub_base,
        "--measure",
        "toy:srt",
        "--measure-limit",
        "8",
    )
    assert code == 0, err
    assert "warning: linked dataset: no pairs dataset linked" in err
    meta, body = published_card("dave/bare-delta")
    fields = meta["deltahub"]["provenance"]["fields"]
    assert fields["chosen.model"] == fields["dataset"] == fields["training.objective"] == "unknown"
    assert "| `chosen.model` | ? | unknown |" in body and meta["license"] == "unknown"
    assert "with warnings: linked dataset: no pairs dataset linked" in body
    gains = [m for r in meta["model-index"][0]["results"] for m in r["metrics"] if m["type"] == "gain"]
    assert len(gains) == 1 and gains[0]["value"] == pytest.approx(meta["deltahub"]["gain"]["value"], abs=1e-4)
    from deltahub.share.search import list_deltas

    rows = {r["repo_id"]: r for r in list_deltas(base=hub_base, sort="gain")}
    assert rows["dave/bare-delta"]["gain"] == pytest.approx(gains[0]["value"])
    assert list(rows)[0] == "dave/bare-delta"  # measured gains rank before unmeasured ones


@pytest.mark.parametrize("broken", ["wrong-shapes", "pickle-only", "nan"])
def test_publish_refuses_broken_copies(capsys, registry, trl_adapter, hub_base, tmp_path, broken):
    from safetensors.torch import load_file, save_file

    bad = copy_of(trl_adapter, tmp_path / broken)
    weights = bad / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    key = next(k for k in sorted(tensors) if "lora_A" in k)
    if broken == "wrong-shapes":
        tensors[key] = torch.zeros(tensors[key].shape[0], tensors[key].shape[1] + 3)
        save_file(tensors, str(weights))
        failing = "adapter matches its base"
    elif broken == "pickle-only":
        torch.save(tensors, bad / "adapter_model.bin")
        weights.unlink()
        failing = "files are safetensors only"
    else:
        tensors[key][0, 0] = float("nan")
        save_file(tensors, str(weights))
        failing = "no NaN/Inf"
    repo = f"mallory/{broken}"
    code, out, err = run_cli(capsys, "publish", bad, "--repo", repo, "--base", hub_base)
    one_line_error(code, err, "failed validation", failing, "nothing was published")
    assert f"FAIL  {failing}" in out and "verdict: FAIL" in out
    from deltahub.share.search import list_deltas

    assert repo not in {r["repo_id"] for r in list_deltas()}
    if broken == "nan":  # --no-validate publishes it, and says so on the card
        code, out, err = run_cli(capsys, "publish", bad, "--repo", repo, "--base", hub_base, "--no-validate")
        assert code == 0 and "published without validation" in err
        meta, body = published_card(repo)
        assert meta["deltahub"]["provenance"]["validation"]["status"] == "skipped"
        assert "**Warning: published without validation**" in body
        code, out, _ = run_cli(capsys, "validate", repo)
        assert code == 1 and "FAIL  no NaN/Inf" in out


def test_provenance_settings_are_declared_once(capsys, trl_adapter, tmp_path):
    """Flags and YAML share one model: the same bad value fails the same way from both, naming the field."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("pairs: -3\n")
    code, _, err = run_cli(capsys, "validate", trl_adapter, "--provenance", bad)
    one_line_error(code, err, f"{bad}: pairs: must be >= 0 (got -3)")
    code, _, err = run_cli(capsys, "validate", trl_adapter, "--pairs", "-3")
    one_line_error(code, err, "pairs: must be >= 0 (got -3)")
    typo = tmp_path / "typo.yaml"
    typo.write_text("chosen_modle: a/b\n")
    code, _, err = run_cli(capsys, "validate", trl_adapter, "--provenance", typo)
    one_line_error(code, err, "chosen_modle: unknown setting (did you mean 'chosen_model'?)")
    code, _, err = run_cli(capsys, "validate", trl_adapter, "--dataset", "not a repo")
    one_line_error(code, err, "dataset: must be REPO[@REV]")
    code, _, err = run_cli(capsys, "validate", "someone/published", "--objective", "dpo")
    one_line_error(code, err, "not a local folder")


def test_old_blocks_read_and_new_blocks_stay_readable_by_v1_readers(trl_adapter, tmp_path):
    """The provenance addition is optional and additive: schema_version stays 1, a block without it reads as
    recorded by deltahub, and a reader that predates it (no provenance/license fields) keeps it as extra."""
    from pydantic import create_model

    from deltahub.share.provenance import provenance_rows
    from deltahub.share.schema import SCHEMA_VERSION, DeltaBlock, parse_block
    from deltahub.share.stage import staged

    assert SCHEMA_VERSION == 1
    old = {"schema_version": 1, "kind": "adapter", "chosen": {"model": "a/big"}, "pairs": 3}
    assert parse_block(old).provenance is None
    rows = {f: (v, s) for f, v, s in provenance_rows(old)}
    assert rows["chosen.model"] == ("a/big", "recorded") and rows["rejected.model"] == (None, "unknown")
    with staged(trl_adapter, refuse_local_base=False) as stage:  # its base is a local folder
        new = json.loads((stage / "deltahub.json").read_text())
    fields = {k: (v.annotation, v) for k, v in DeltaBlock.model_fields.items() if k not in ("provenance", "license")}
    V1Reader = create_model(
        "V1Reader", __base__=None, __config__={"extra": "allow"}, **{k: (a, f) for k, (a, f) in fields.items()}
    )
    read = V1Reader.model_validate(new)
    assert read.kind == "adapter" and read.model_extra["provenance"]["origin"] == "external"


# ----------------------------------------------------------------------------------------------
# contributions: pull requests and collections


@pytest.fixture
def two_users(tmp_path, monkeypatch):
    """A registry with two users: alice curates, bob contributes. HF_TOKEN says who is calling."""
    import deltahub.endpoint as hub_mod
    from deltahub.endpoint import connect
    from deltahub.server import start_server

    previous = hub_mod._current
    with start_server(tmp_path / "registry", open_mode=False, tokens={"tok-alice": "alice", "tok-bob": "bob"}) as srv:
        connect(endpoint=srv.url)
        monkeypatch.setenv("HF_TOKEN", "tok-alice")
        yield srv
    if previous:
        connect(endpoint=previous.url)  # back to the module's open registry


def _as(monkeypatch, user: str) -> None:
    monkeypatch.setenv("HF_TOKEN", f"tok-{user}")


def test_submit_errors_are_one_line(capsys, registry, trl_adapter, hub_base):
    code, _, err = run_cli(capsys, "submit", trl_adapter, "--to", "alice/qwen3-picks-0123abcd")
    one_line_error(code, err, "is a collection; collections take no pull requests", "collection add")
    code, _, err = run_cli(capsys, "submit", trl_adapter, "--to", "nobody/nothing", "--base", hub_base)
    one_line_error(code, err, "no model repo nobody/nothing", "publish it yourself")
    code, _, err = run_cli(capsys, "review", "alice/curated-3")
    one_line_error(code, err, "is not a pull request", "NS/NAME#N")
    code, _, err = run_cli(capsys, "collection", "show", "not-a-slug")
    one_line_error(code, err, "is not a collection slug")


def test_pull_request_submitted_and_merged_by_a_second_user(two_users, monkeypatch, trl_adapter, tiny_model, tmp_path):
    """bob submits with `deltahub submit` and alice reviews and merges with `deltahub review`, each in a subprocess
    as their own user; the real huggingface_hub client sees the open PR (main untouched), the review's comment and,
    once merged, bob's files and declarations on main."""
    import cli_batch
    from huggingface_hub import hf_hub_download
    from safetensors.torch import load_file, save_file

    from deltahub.endpoint import connect
    from deltahub.share.provenance import Declared
    from deltahub.share.publish import publish

    api = connect().api()
    api.create_repo("alice/tiny-base", exist_ok=True)
    api.upload_folder(repo_id="alice/tiny-base", folder_path=str(tiny_model))
    seed = copy_of(trl_adapter, tmp_path / "seed")  # alice's own delta: other weights than bob's
    weights = load_file(str(seed / "adapter_model.safetensors"))
    save_file({k: v * 0.5 if "lora_B" in k else v for k, v in weights.items()}, str(seed / "adapter_model.safetensors"))
    publish(seed, "alice/curated", declared=Declared(base="alice/tiny-base"))
    monkeypatch.setenv("DELTAHUB_ENDPOINT", two_users.url)  # the subprocesses' endpoint

    def main_bytes() -> bytes:
        return Path(hf_hub_download("alice/curated", "adapter_model.safetensors")).read_bytes()

    _as(monkeypatch, "bob")
    submitted, bob_merges = cli_batch.run(
        [
            "submit",
            str(trl_adapter),
            "--to",
            "alice/curated",
            "--base",
            "alice/tiny-base",
            "--chosen-model",
            "org/big",
            "--message",
            "bob's delta",
        ],
        ["review", "alice/curated#1", "--merge"],
    )  # bob cannot merge into alice's repo
    assert submitted.returncode == 0 and "opened alice/curated#1" in submitted.stdout, submitted.stderr
    one_line_error(bob_merges.returncode, bob_merges.stderr, "no write access to alice/curated")
    pr = api.get_discussion_details("alice/curated", 1)
    assert pr.is_pull_request and pr.status == "open" and pr.author == "bob" and pr.title == "bob's delta"
    assert main_bytes() == (seed / "adapter_model.safetensors").read_bytes()  # nothing merged yet

    _as(monkeypatch, "alice")
    (reviewed,) = cli_batch.run(["review", "alice/curated#1", "--tasks", "toy:srt", "--limit", "8", "--merge"])
    assert reviewed.returncode == 0, reviewed.stderr
    assert "verdict: PASS" in reviewed.stdout and "| toy:srt |" in reviewed.stdout
    assert "merged alice/curated#1" in reviewed.stdout
    pr = api.get_discussion_details("alice/curated", 1)
    comments = [e.content for e in pr.events if getattr(e, "content", None)]
    assert pr.status == "merged" and any("deltahub review" in c and "| toy:srt |" in c for c in comments), comments
    meta, _ = published_card("alice/curated")
    assert meta["deltahub"]["chosen"]["model"] == "org/big"
    assert main_bytes() == (trl_adapter / "adapter_model.safetensors").read_bytes()


def test_collection_create_add_remove_show_list(capsys, two_users, monkeypatch, trl_adapter, tiny_model, tmp_path):
    from deltahub.endpoint import connect
    from deltahub.share.provenance import Declared
    from deltahub.share.publish import publish

    connect().api().create_repo("alice/tiny-base", exist_ok=True)
    connect().api().upload_folder(repo_id="alice/tiny-base", folder_path=str(tiny_model))
    for name in ("one", "two"):
        publish(trl_adapter, f"alice/{name}", declared=Declared(base="alice/tiny-base", objective=name))
    bad = copy_of(trl_adapter, tmp_path / "bad")
    from safetensors.torch import load_file, save_file

    t = load_file(str(bad / "adapter_model.safetensors"))
    next(v for k, v in sorted(t.items()) if "lora_A" in k)[0, 0] = float("nan")
    save_file(t, str(bad / "adapter_model.safetensors"))
    publish(bad, "alice/broken", declared=Declared(base="alice/tiny-base"), validate=False)

    code, out, err = run_cli(capsys, "collection", "create", "Tiny deltas", "--namespace", "alice")
    assert code == 0, err
    slug = out.strip()
    for repo in ("alice/one", "alice/two"):
        code, out, err = run_cli(capsys, "collection", "add", slug, repo, "--note", "reviewed")
        assert code == 0 and f"added {repo}" in out, err
    code, out, err = run_cli(capsys, "collection", "add", slug, "alice/broken")
    one_line_error(code, err, "failed validation", "no NaN/Inf")
    code, out, _ = run_cli(capsys, "collection", "show", slug)
    assert "alice/one  model  reviewed" in out and "alice/two" in out and "alice/broken" not in out
    code, out, _ = run_cli(capsys, "collection", "remove", slug, "alice/two")
    assert code == 0 and "removed alice/two" in out
    from deltahub.share.collections import delta_repos

    assert delta_repos(slug) == ["alice/one"]
    code, out, _ = run_cli(capsys, "collection", "list", "--owner", "alice")
    assert slug in out and "(1 items)" in out
    _as(monkeypatch, "bob")
    code, _, err = run_cli(capsys, "collection", "add", slug, "alice/two")
    one_line_error(code, err, "no write access")
