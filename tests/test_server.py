"""The embedded registry driven by the real huggingface_hub and datasets clients (no mocks)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from deltahub.server import start_server


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A registry on an ephemeral loopback port, with the client pointed at it."""
    from deltahub.endpoint import connect

    srv = start_server(tmp_path_factory.mktemp("registry"), page_size=2)
    connect(srv.url)
    yield srv, connect().api()
    srv.stop()


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _adapter(folder: Path, base: str = "Qwen/Qwen3-0.6B", seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text('{"r": 8, "lora_alpha": 16, "peft_type": "LORA"}')
    (folder / "adapter_model.safetensors").write_bytes(os.urandom(200_000 + seed))
    (folder / "README.md").write_text(
        f"---\nlibrary_name: peft\nbase_model: {base}\ntags: [lora, dpo]\nlicense: mit\n"
        "datasets: [alice/prefs]\n---\n# delta\n"
    )
    return folder


def test_adapter_roundtrip_revisions_and_tags(hub, tmp_path):
    srv, api = hub
    from huggingface_hub import snapshot_download

    assert srv.url.startswith("http://127.0.0.1:")
    api.create_repo("alice/delta")
    src = _adapter(tmp_path / "a")
    first = api.upload_folder(repo_id="alice/delta", folder_path=src).oid
    api.create_tag("alice/delta", tag="v1")
    api.create_branch("alice/delta", branch="dev")
    new = tmp_path / "new.safetensors"
    new.write_bytes(os.urandom(1000))
    api.upload_file(path_or_fileobj=str(new), path_in_repo="adapter_model.safetensors", repo_id="alice/delta")

    info = api.model_info("alice/delta", files_metadata=True)
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert sizes["adapter_model.safetensors"] == 1000 and info.sha != first
    assert {"peft", "lora", "license:mit", "dataset:alice/prefs", "base_model:adapter:Qwen/Qwen3-0.6B"} <= set(
        info.tags
    )
    for rev, want in (
        ("v1", src / "adapter_model.safetensors"),
        ("dev", src / "adapter_model.safetensors"),
        (first, src / "adapter_model.safetensors"),
        (first[:10], src / "adapter_model.safetensors"),
        ("main", new),
    ):
        got = Path(snapshot_download("alice/delta", revision=rev, cache_dir=tmp_path / "c"))
        assert _sha(got / "adapter_model.safetensors") == _sha(want), rev
        assert _sha(got / "adapter_config.json") == _sha(src / "adapter_config.json")
    assert len(api.list_repo_commits("alice/delta")) == 3
    assert api.model_info("alice/delta", revision="v1").sha == first


def test_list_filters_and_pagination(hub, tmp_path):
    _, api = hub
    for i, (ns, base) in enumerate([("bob", "B/x"), ("bob", "B/y"), ("carol", "B/x"), ("carol", "B/x")]):
        api.create_repo(f"{ns}/list-{i}")
        api.upload_folder(repo_id=f"{ns}/list-{i}", folder_path=_adapter(tmp_path / str(i), base=base, seed=i))
    ids = lambda **kw: sorted(m.id for m in api.list_models(**kw))  # noqa: E731
    assert ids(filter="base_model:adapter:B/x") == ["bob/list-0", "carol/list-2", "carol/list-3"]
    assert ids(filter=["base_model:adapter:B/x", "lora"], author="bob") == ["bob/list-0"]
    assert ids(search="list-3") == ["carol/list-3"]
    assert ids(author="nobody") == []
    # page_size=2 on this server: the 3 matches above came through Link pagination
    assert len(list(api.list_models(filter="base_model:adapter:B/x", limit=2))) == 2


def test_card_load_and_metadata_update(hub, tmp_path):
    _, api = hub
    from huggingface_hub import ModelCard, metadata_update

    api.create_repo("alice/card")
    api.upload_folder(repo_id="alice/card", folder_path=_adapter(tmp_path / "c"))
    assert ModelCard.load("alice/card").data.library_name == "peft"
    metadata_update("alice/card", {"license": "apache-2.0", "tags": ["lora", "dpo", "merged"]}, overwrite=True)
    tags = api.model_info("alice/card").tags
    assert "license:apache-2.0" in tags and "license:mit" not in tags and "merged" in tags
    assert "alice/card" in [m.id for m in api.list_models(filter="merged")]


def test_dataset_push_and_load(hub):
    _, api = hub
    import datasets

    ds = datasets.Dataset.from_dict({"prompt": ["a", "b", "c"], "chosen": ["x", "y", "z"], "rejected": ["1", "2", "3"]})
    ds.push_to_hub("alice/prefs")
    api.create_tag("alice/prefs", tag="v1", repo_type="dataset")
    datasets.Dataset.from_dict({"prompt": ["q"], "chosen": ["w"], "rejected": ["e"]}).push_to_hub("alice/prefs")
    assert datasets.load_dataset("alice/prefs", split="train")["prompt"] == ["q"]
    assert datasets.load_dataset("alice/prefs", split="train", revision="v1").to_dict() == ds.to_dict()
    streamed = list(datasets.load_dataset("alice/prefs", split="train", streaming=True, revision="v1"))
    assert [r["chosen"] for r in streamed] == ["x", "y", "z"]
    assert "alice/prefs" in [d.id for d in api.list_datasets(filter="format:parquet")]


def test_concurrent_commits_lose_nothing_and_stale_parent_is_412(hub):
    _, api = hub
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    api.create_repo("alice/busy")
    start = api.model_info("alice/busy").sha
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(3):
                api.create_commit(
                    "alice/busy", [CommitOperationAdd(f"f{i}-{j}.txt", f"{i}:{j}".encode())], commit_message=f"{i}-{j}"
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    files = set(api.list_repo_files("alice/busy"))
    assert {f"f{i}-{j}.txt" for i in range(4) for j in range(3)} <= files
    assert len(api.list_repo_commits("alice/busy")) == 13
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(
            "alice/busy", [CommitOperationAdd("late.txt", b"x")], commit_message="late", parent_commit=start
        )
    assert exc.value.response.status_code == 412


def test_errors_map_to_client_exceptions(hub):
    _, api = hub
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    api.create_repo("alice/errs")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("alice/missing")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("alice/errs", revision="nope")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/errs", "nope.txt")
    api.delete_repo("alice/errs")
    api.delete_repo("alice/errs", missing_ok=True)
    assert not api.repo_exists("alice/errs")
