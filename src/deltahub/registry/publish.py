"""Publish a delta folder (pairs dataset or adapter) with its card; idempotent on content."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import InputError
from .cards import read_block, write_card
from .hubops import api, parse_spec
from .network import check_repo_id, denied, retrying

IGNORED = (".cache", ".git", "checkpoints", "work")


def _local_files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part in IGNORED for part in p.relative_to(folder).parts)}


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _unchanged(hub, repo_id: str, rtype: str, files: dict[str, Path]) -> str | None:
    """The head commit sha when the repo's head already holds exactly these files, else None."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = hub.repo_info(repo_id, repo_type=rtype)
        remote = {
            e.path: e for e in hub.list_repo_tree(repo_id, repo_type=rtype, recursive=True) if hasattr(e, "blob_id")
        }
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None
    remote.pop(".gitattributes", None)
    if set(remote) != set(files):
        return None
    for path, local in files.items():
        data = local.read_bytes()
        e = remote[path]
        lfs = getattr(e, "lfs", None)
        if lfs is not None:
            if lfs.sha256 != hashlib.sha256(data).hexdigest():
                return None
        elif e.blob_id != _git_sha1(data):
            return None
    return info.sha


def publish(folder: str | Path, repo_id: str, dataset_repo: str | None = None, dataset_revision: str | None = None,
            tag: str | None = None, private: bool = False, message: str | None = None) -> dict:
    """Upload ``folder`` to ``repo_id`` (dataset repo for pairs, model repo for adapters/merged).

    An adapter names its pairs dataset (``dataset_repo`` or its deltahub.json) so the card links them.
    Returns ``{"repo_id", "repo_type", "commit", "created"}``; ``created`` is False when nothing changed.
    Network errors are retried; an unreachable registry or missing write rights end in one line.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder", "pass the output folder of deltahub generate, train or merge")
    parse_spec(repo_id)
    check_repo_id(repo_id)
    block = read_block(folder)
    rtype = "dataset" if block.kind == "dataset" else "model"
    if block.kind == "adapter" and not (folder / "adapter_config.json").is_file():
        raise InputError(
            f"{folder} says kind 'adapter' but has no adapter_config.json", "publish the folder deltahub train wrote"
        )
    if block.kind == "dataset" and not list(folder.glob("data/*.parquet")):
        raise InputError(f"{folder} has no data/*.parquet shards", "publish the folder deltahub generate wrote")
    hub = api()
    with tempfile.TemporaryDirectory(prefix="deltahub-publish-") as tmp:
        stage = _stage(folder, Path(tmp), dataset_repo, dataset_revision)
        with _remote(hub, repo_id, f"publishing {folder} to {repo_id}") as net:
            files = _local_files(stage)
            # create first: probing a name the registry does not hold would make it ask its upstream
            net(lambda: hub.create_repo(repo_id, repo_type=rtype, private=private, exist_ok=True))
            head = net(lambda: _unchanged(hub, repo_id, rtype, files))
            created = head is None
            if created:
                info = net(lambda: hub.upload_folder(repo_id=repo_id, folder_path=str(stage), repo_type=rtype,
                                                     commit_message=message or f"deltahub publish ({block.kind})"))
                head = info.oid
            if tag:
                net(lambda: hub.create_tag(repo_id, tag=tag, revision=head, repo_type=rtype, exist_ok=True))
    return {"repo_id": repo_id, "repo_type": rtype, "commit": head, "created": created}


def _stage(folder: Path, tmp: Path, dataset_repo: str | None, dataset_revision: str | None) -> Path:
    """A copy of ``folder`` as it will be published: dataset link set, card re-rendered."""
    stage = tmp / folder.name
    shutil.copytree(folder, stage, ignore=shutil.ignore_patterns(*IGNORED))
    raw = json.loads((stage / "deltahub.json").read_text(encoding="utf-8"))
    if dataset_repo:
        raw["dataset"] = {"repo": dataset_repo, "revision": dataset_revision}
    (stage / "deltahub.json").write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    write_card(stage)
    return stage


@contextlib.contextmanager
def _remote(hub, repo_id: str, what: str) -> Iterator[Callable]:
    """A ``net(call)`` that retries network errors; a 401/403 becomes one line about write access."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield lambda call: retrying(call, hub.endpoint, what)
    except HfHubHTTPError as exc:
        error = denied(exc, repo_id, hub.endpoint)
        if error is None:
            raise
        raise error from None
