"""Train from a pairs dataset published on the embedded registry (real huggingface_hub client,
loopback): the adapter's provenance pins the dataset repo at the commit it was trained on."""

from __future__ import annotations

import json

import pytest

from deltahub.train import TrainConfig, train_delta
from test_registry_validate import PAIRS, dataset_dir  # noqa: F401  (shared fixture)


@pytest.mark.slow
def test_train_from_a_published_dataset(tiny_model, dataset_dir, tmp_path):  # noqa: F811
    from deltahub.hub import setup_client
    from deltahub.registry.publish import publish
    from deltahub.server import start_server

    with start_server(tmp_path / "registry") as server:
        setup_client(endpoint=server.url)
        commit = publish(dataset_dir, "alice/pairs")["commit"]
        cfg = TrainConfig(max_steps=2, batch_size=4, micro_batch_size=4, rank=4, alpha=8, eval_fraction=0.0)
        out = train_delta(tiny_model, "alice/pairs", tmp_path / "adapter", cfg, progress=False)
    meta = json.loads((out / "deltahub.json").read_text())
    assert meta["dataset"] == {"repo": "alice/pairs", "revision": commit}
    assert meta["chosen"]["model"] == "toy/Qwen3-big" and meta["rejected"]["model"] == "toy/Qwen3-small"
    assert meta["pairs"] == PAIRS and meta["filters"] == {"empty": 1}
