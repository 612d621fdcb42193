"""``deltahub publish`` names a delta's base by a repo id, never by a folder of the publisher's machine.

An adapter trained on a local folder that records no repo id is refused (exit 2, one line naming
``--base``) and nothing is published; ``--base REPO_ID`` names it; a folder that records its id (written
by ``deltahub pull``, the deltahub pull cache, the Hugging Face cache, a toy world's ``world.json``) is
published under that id. The card, the published adapter config and ``deltahub list`` then name the id,
and ``list --base`` finds the delta by the id or by any local folder recording it.
"""

# ruff: noqa: F811  (adapter_dir is a fixture imported from test_registry_validate)
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from test_bad_input import in_process
from test_registry_validate import adapter_dir  # noqa: F401  (a fixture: a LoRA adapter on tiny_model)

from deltahub.cli import main


def _adapter_on(adapter_dir: Path, base: str, dest: Path) -> Path:
    """A copy of the adapter whose adapter config and block name ``base`` as the model it was trained on."""
    shutil.copytree(adapter_dir, dest)
    cfg = json.loads((dest / "adapter_config.json").read_text())
    (dest / "adapter_config.json").write_text(json.dumps({**cfg, "base_model_name_or_path": base}))
    block = json.loads((dest / "deltahub.json").read_text())
    block["student"] = {"model": base}
    block.pop("dataset", None)
    (dest / "deltahub.json").write_text(json.dumps(block))
    return dest


def _exists(repo: str) -> bool:
    from huggingface_hub.errors import RepositoryNotFoundError

    from deltahub.endpoint import connect

    try:
        connect().api().repo_info(repo)
        return True
    except RepositoryNotFoundError:
        return False


def _published(repo: str) -> tuple[dict, dict]:
    """(card front matter, adapter config) of the published head, read back through the client."""
    from huggingface_hub import hf_hub_download

    card = Path(hf_hub_download(repo, "README.md")).read_text()
    config = json.loads(Path(hf_hub_download(repo, "adapter_config.json")).read_text())
    return yaml.safe_load(card.split("---")[1]), config


def _listed(capsys, base: str) -> list[str]:
    capsys.readouterr()
    main(["list", "--base", base])
    out = capsys.readouterr().out.splitlines()
    return [] if out == ["no deltas found"] else [line.split()[0] for line in out[1:]]


def _base_column(capsys, repo: str) -> str:
    capsys.readouterr()
    main(["list"])
    lines = capsys.readouterr().out.splitlines()
    start = lines[0].index("base")
    row = next(line for line in lines[1:] if line.split()[0] == repo)
    return row[start:].split()[0]


FORMS = {"absolute": None, "relative": "base", "dot-relative": "./base", "missing-path": "/gone/base"}


@pytest.mark.parametrize("kind", list(FORMS))
def test_a_local_base_that_records_no_id_is_refused(
    registry, adapter_dir, tiny_model, tmp_path, capsys, monkeypatch, kind
):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_model, tmp_path / "base")
    form = FORMS[kind] or str(tiny_model)
    folder = _adapter_on(adapter_dir, form, tmp_path / "ad0")
    repo = f"alice/refused-{kind}"
    err = in_process(capsys, "publish", folder, "--repo", repo)  # exit 2, one line
    assert f"base {form} is a local" in err and "--base NS/NAME" in err
    assert not _exists(repo)


def test_base_names_a_local_base_and_list_finds_it_by_id(
    registry, adapter_dir, tiny_model, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_model, tmp_path / "base")
    folder = _adapter_on(adapter_dir, "base", tmp_path / "ad0")
    main(["publish", str(folder), "--repo", "alice/delta0", "--base", "someorg/tiny-qwen3"])
    meta, config = _published("alice/delta0")
    assert meta["base_model"] == "someorg/tiny-qwen3" and "deltahub-base:someorg/tiny-qwen3" in meta["tags"]
    assert meta["deltahub"]["student"]["model"] == "someorg/tiny-qwen3"
    assert config["base_model_name_or_path"] == "someorg/tiny-qwen3"
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "base"  # untouched
    assert _listed(capsys, "someorg/tiny-qwen3") == ["alice/delta0"]
    assert _base_column(capsys, "alice/delta0") == "someorg/tiny-qwen3"
    # the folder itself records nothing: naming it in list --base is one line, not an empty answer
    err = in_process(capsys, "list", "--base", "base")
    assert "records no repo id" in err and "NS/NAME" in err
    # --base must be a repo id
    err = in_process(capsys, "publish", str(folder), "--repo", "alice/delta0b", "--base", str(tiny_model))
    assert "is a local folder, not a repo id" in err and not _exists("alice/delta0b")


def test_a_pulled_base_is_published_by_the_id_it_records(
    registry, adapter_dir, tiny_model, tmp_path, capsys, monkeypatch
):
    from deltahub.endpoint import connect

    api = connect().api()
    api.create_repo("alice/tiny-base", exist_ok=True)
    api.upload_folder(repo_id="alice/tiny-base", folder_path=str(tiny_model))
    monkeypatch.chdir(tmp_path)
    main(["pull", "alice/tiny-base", "--out", "base"])
    assert json.loads((tmp_path / "base/.cache/deltahub/source.json").read_text())["repo_id"] == "alice/tiny-base"
    folder = _adapter_on(adapter_dir, "base", tmp_path / "ad1")
    main(["publish", str(folder), "--repo", "alice/delta1"])  # no --base: the folder records its id
    meta, config = _published("alice/delta1")
    assert meta["base_model"] == "alice/tiny-base" == config["base_model_name_or_path"]
    assert meta["deltahub"]["student"]["model"] == "alice/tiny-base"
    # list --base: the id, the relative folder and its absolute path all name the same base
    for name in ("alice/tiny-base", "base", str(tmp_path / "base"), "./base"):
        assert _listed(capsys, name) == ["alice/delta1"], name
    # the default pull (deltahub's cache) records it too
    capsys.readouterr()
    main(["pull", "alice/tiny-base"])
    cached = capsys.readouterr().out.strip().splitlines()[-1]
    assert _listed(capsys, cached) == ["alice/delta1"]


def test_the_hugging_face_cache_layout_records_the_id(registry, adapter_dir, tiny_model, tmp_path, capsys):
    snap = tmp_path / "hub" / "models--someorg--tiny-cached" / "snapshots" / ("ab" * 20)
    shutil.copytree(tiny_model, snap)
    folder = _adapter_on(adapter_dir, str(snap), tmp_path / "ad2")
    main(["publish", str(folder), "--repo", "alice/delta2"])
    meta, config = _published("alice/delta2")
    assert meta["base_model"] == "someorg/tiny-cached" == config["base_model_name_or_path"]
    assert _listed(capsys, str(snap)) == _listed(capsys, "someorg/tiny-cached") == ["alice/delta2"]


def test_a_toy_world_model_is_named_by_its_world(registry, adapter_dir, tiny_model, tmp_path, capsys):
    """A toy world's model is rebuilt from its world's config, not downloaded: the card names
    ``toy:NAME@world-HASH`` and the adapter config keeps the folder, which this machine's merges read."""
    world = tmp_path / "world-0123456789ab"
    shutil.copytree(tiny_model, world / "student")
    (world / "world.json").write_text(json.dumps({"hash": "0123456789ab", "config": {}, "models": ["student"]}))
    folder = _adapter_on(adapter_dir, str(world / "student"), tmp_path / "ad3")
    main(["publish", str(folder), "--repo", "alice/delta3"])
    meta, config = _published("alice/delta3")
    assert meta["base_model"] == "toy:student@world-0123456789ab"
    assert config["base_model_name_or_path"] == str(world / "student")
    assert _listed(capsys, str(world / "student")) == _listed(capsys, "toy:student@world-0123456789ab")
    assert _listed(capsys, "toy:student@world-0123456789ab") == ["alice/delta3"]
    # a folder beside world.json that the world does not list is not one of its models
    shutil.copytree(tiny_model, world / "stranger")
    other = _adapter_on(adapter_dir, str(world / "stranger"), tmp_path / "ad4")
    assert "records no repo id" in in_process(capsys, "publish", other, "--repo", "alice/delta4")


def test_a_config_name_or_path_is_not_trusted(registry, adapter_dir, tiny_model, tmp_path, capsys):
    """transformers' ``_name_or_path`` survives fine-tuning: a model trained from X and saved still says X."""
    base = tmp_path / "finetuned"
    shutil.copytree(tiny_model, base)
    cfg = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**cfg, "_name_or_path": "Qwen/Qwen3-0.6B"}))
    folder = _adapter_on(adapter_dir, str(base), tmp_path / "ad5")
    assert "records no repo id" in in_process(capsys, "publish", folder, "--repo", "alice/delta5")
    assert not _exists("alice/delta5")
