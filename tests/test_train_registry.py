"""Train from a pairs dataset published on the embedded registry (real huggingface_hub client,
loopback): the adapter's provenance pins the dataset repo at the commit it was trained on."""

from __future__ import annotations

import json

import pytest
from test_registry_validate import PAIRS, dataset_dir  # noqa: F401  (shared fixture)

from deltahub.train import TrainConfig, train_delta


@pytest.mark.slow
def test_train_from_a_published_dataset(tiny_model, dataset_dir, tmp_path):  # noqa: F811
    from deltahub.endpoint import connect
    from deltahub.server import start_server
    from deltahub.share.publish import publish

    with start_server(tmp_path / "registry") as server:
        connect(endpoint=server.url)
        commit = publish(dataset_dir, "alice/pairs")["commit"]
        cfg = TrainConfig(max_steps=2, batch_size=4, micro_batch_size=4, rank=4, alpha=8, eval_fraction=0.0)
        out = train_delta(tiny_model, "alice/pairs", tmp_path / "adapter", cfg, progress=False)
    meta = json.loads((out / "deltahub.json").read_text())
    assert meta["dataset"] == {"repo": "alice/pairs", "revision": commit}
    assert meta["chosen"]["model"] == "toy/Qwen3-big" and meta["rejected"]["model"] == "toy/Qwen3-small"
    assert meta["pairs"] == PAIRS and meta["filters"] == {"empty": 1}


def test_pull_records_the_commit_it_downloaded_when_the_branch_moves(dataset_dir, tmp_path, monkeypatch):  # noqa: F811
    """main moves between resolving the revision and downloading it: the recorded sha is the commit whose files
    were downloaded, not the new head (the resolve happens once)."""
    from huggingface_hub import HfApi

    from deltahub.endpoint import connect
    from deltahub.generate.pairs import resolve_pairs
    from deltahub.server import start_server
    from deltahub.share.publish import publish

    with start_server(tmp_path / "registry") as server:
        connect(endpoint=server.url)
        first = publish(dataset_dir, "alice/pairs")["commit"]
        api = HfApi(endpoint=server.url, token="deltahub-open")
        real = HfApi.snapshot_download
        moved = []

        def move_main_then_download(self, *args, **kwargs):
            if not moved:
                moved.append(
                    api.upload_file(
                        path_or_fileobj=b"new\n", path_in_repo="late.txt", repo_id="alice/pairs", repo_type="dataset"
                    ).oid
                )
            return real(self, *args, **kwargs)

        monkeypatch.setattr(HfApi, "snapshot_download", move_main_then_download)
        local, repo, sha = resolve_pairs("alice/pairs")
        head = api.repo_info("alice/pairs", repo_type="dataset").sha
    assert moved and head == moved[0] != first
    assert (repo, sha) == ("alice/pairs", first)
    assert local.name == first and not (local / "late.txt").exists()
