"""Publish, list, show, validate and pull deltas with the real huggingface_hub client against the embedded registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_registry_validate import PAIRS, adapter_dir, dataset_dir  # noqa: F401  (shared fixtures)

from deltahub.errors import InputError

BASE = "tinyorg/tiny-qwen3"  # the repo id the adapters' local base (tiny_model) is published as (bases.py)


@pytest.fixture(scope="module")
def published(registry, adapter_dir, dataset_dir, tiny_model):  # noqa: F811
    from deltahub.endpoint import connect
    from deltahub.share.provenance import Declared
    from deltahub.share.publish import publish

    connect().api().create_repo(BASE, exist_ok=True)  # the base is on the registry: validating a pulled delta reads it
    connect().api().upload_folder(repo_id=BASE, folder_path=str(tiny_model))
    d = publish(dataset_dir, "alice/pairs")
    a = publish(
        adapter_dir,
        "alice/delta",
        dataset_repo="alice/pairs",
        dataset_revision=d["commit"],
        tag="v1",
        declared=Declared(base=BASE),
    )
    return {"dataset": d, "adapter": a}


def test_publish_detects_kind_and_is_idempotent(published, adapter_dir, dataset_dir):  # noqa: F811
    from deltahub.endpoint import connect
    from deltahub.share.publish import publish

    assert published["dataset"]["repo_type"] == "dataset" and published["adapter"]["repo_type"] == "model"
    from deltahub.share.provenance import Declared

    again = publish(
        adapter_dir,
        "alice/delta",
        dataset_repo="alice/pairs",
        dataset_revision=published["dataset"]["commit"],
        declared=Declared(base=BASE),
    )
    assert again["created"] is False and again["commit"] == published["adapter"]["commit"]
    commits = connect().api().list_repo_commits("alice/delta")
    assert len([c for c in commits if "deltahub publish" in c.title]) == 1


def test_list_finds_by_base_and_family(published, tiny_model):
    from deltahub.share.search import list_deltas

    rows = list_deltas(base=BASE)
    assert [r["repo_id"] for r in rows] == ["alice/delta"]
    assert rows[0]["pairs"] == PAIRS and rows[0]["dataset"] == "alice/pairs"
    assert list_deltas(base="someone/else") == []
    assert [r["repo_id"] for r in list_deltas(family="Qwen3", min_pairs=PAIRS)] == ["alice/delta"]
    assert list_deltas(min_pairs=PAIRS + 1) == []


def test_show_links_dataset_and_revisions(published):
    from deltahub.share.show import show

    s = show("alice/delta")
    assert s["dataset"] == "alice/pairs" and s["tags"]["v1"] == published["adapter"]["commit"]
    assert "adapter_model.safetensors" in [f for f, _ in s["files"]]


def test_validate_repo_passes_and_catches_missing_dataset(published, adapter_dir, tmp_path):  # noqa: F811
    from deltahub.share.provenance import Declared
    from deltahub.share.publish import publish
    from deltahub.share.validate import ValidationFailed, validate

    report = validate("alice/delta@v1")
    assert report.ok, report.lines()
    bad = tmp_path / "bad"
    shutil.copytree(adapter_dir, bad)
    with pytest.raises(ValidationFailed, match="linked dataset"):
        publish(bad, "mallory/delta", dataset_repo="mallory/missing-pairs", declared=Declared(base=BASE))
    publish(bad, "mallory/delta", dataset_repo="mallory/missing-pairs", validate=False, declared=Declared(base=BASE))
    report = validate("mallory/delta")
    assert {c.name for c in report.checks if not c.ok} == {"linked dataset"}
    result = CliRunner().invoke(__import__("deltahub.share.cli", fromlist=["x"]).validate_command, ["mallory/delta"])
    assert result.exit_code == 1 and "verdict: FAIL" in result.output


def test_pull_at_tag_then_merge(published, tmp_path, adapter_dir):  # noqa: F811
    from deltahub.merge import merge_adapters
    from deltahub.share.pull import pull, resolve_local

    out = pull("alice/delta@v1", out=tmp_path / "pulled")
    assert (out / "adapter_model.safetensors").read_bytes() == (adapter_dir / "adapter_model.safetensors").read_bytes()
    assert json.loads((out / "deltahub.json").read_text())["dataset"]["repo"] == "alice/pairs"
    cached = resolve_local("alice/delta@v1")
    assert cached.name == published["adapter"]["commit"]
    merged = Path(merge_adapters(["alice/delta@v1", out], tmp_path / "merged", method="average"))
    assert (merged / "adapter_model.safetensors").is_file()
    card = (merged / "README.md").read_text()
    assert f"alice/delta@{published['adapter']['commit']}" in card and "--method average" in card


def test_bad_specs_fail_clearly(published, tmp_path):
    from deltahub.share.pull import pull

    with pytest.raises(InputError, match="no repo nobody/nothing"):
        pull("nobody/nothing", out=tmp_path / "x")
    with pytest.raises(InputError, match="no revision 'v9'"):
        pull("alice/delta@v9", out=tmp_path / "x")
    with pytest.raises(InputError, match="not a repo id"):
        pull("not a repo", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_pull_network_error_leaves_nothing(published, tmp_path, monkeypatch):
    import httpx2
    from huggingface_hub import HfApi

    from deltahub.errors import DeltahubError
    from deltahub.share.pull import pull

    def broken(self, *a, local_dir=None, **k):
        (Path(local_dir) / "half.bin").write_bytes(b"x")
        raise httpx2.ConnectError("connection reset")

    monkeypatch.setattr(HfApi, "snapshot_download", broken)
    with pytest.raises(DeltahubError, match="network error pulling alice/delta"):
        pull("alice/delta", out=tmp_path / "y", backoff=0)
    assert not (tmp_path / "y").exists() and list(tmp_path.iterdir()) == []


def test_publish_rejects_non_delta_folder(registry, tmp_path):
    from deltahub.share.publish import publish

    (tmp_path / "README.md").write_text("# no block\n")
    with pytest.raises(InputError, match="no deltahub.json"):
        publish(tmp_path, "alice/none")


def test_cli_publish_list_show(published, dataset_dir, tiny_model):  # noqa: F811
    from deltahub.share import cli

    runner = CliRunner()
    r = runner.invoke(cli.publish_command, [str(dataset_dir), "--repo", "alice/pairs"])
    assert r.exit_code == 0 and "no new commit" in r.output, r.output
    r = runner.invoke(cli.list_command, ["--base", BASE, "--sort", "gain"])
    assert r.exit_code == 0 and "alice/delta" in r.output and "alice/pairs" in r.output
    r = runner.invoke(cli.show_command, ["alice/delta@v1"])
    assert r.exit_code == 0 and "dataset: alice/pairs" in r.output and "v1=" in r.output


def test_an_endpoint_passed_is_the_one_used(registry, dataset_dir, tmp_path):  # noqa: F811
    """publish, list, show and pull talk to the Endpoint they are given, not to the process's one."""
    from deltahub.endpoint import Endpoint, connect
    from deltahub.endpoint.settings import Choice
    from deltahub.server import start_server
    from deltahub.share.hub_errors import if_exists
    from deltahub.share.publish import publish
    from deltahub.share.pull import pull
    from deltahub.share.search import list_deltas
    from deltahub.share.show import show

    process = connect()
    assert connect() is process and process.url == registry.url  # made once, the same value every time
    with start_server(tmp_path / "other") as other:
        elsewhere = Endpoint(other.url, Choice(other.url, "the caller", None))
        assert publish(dataset_dir, "bob/elsewhere-pairs", endpoint=elsewhere)["created"]
        assert elsewhere.api().repo_info("bob/elsewhere-pairs", repo_type="dataset").id == "bob/elsewhere-pairs"
        assert if_exists(lambda: process.api().repo_info("bob/elsewhere-pairs", repo_type="dataset")) is None
        assert "bob/elsewhere-pairs" in [r["repo_id"] for r in list_deltas(kind="dataset", endpoint=elsewhere)]
        assert "bob/elsewhere-pairs" not in [r["repo_id"] for r in list_deltas(kind="dataset")]
        assert show("bob/elsewhere-pairs", endpoint=elsewhere)["repo_type"] == "dataset"
        folder = pull("bob/elsewhere-pairs", out=tmp_path / "pulled", endpoint=elsewhere)
        assert sorted(p.name for p in folder.glob("data/*.parquet")) == sorted(
            p.name for p in (dataset_dir / "data").glob("*.parquet")
        )
    assert connect() is process  # passing another endpoint did not change the process's
