"""Publish a delta folder (pairs dataset, adapter, merged output, or any PEFT LoRA adapter) with its card.

Validated before upload; idempotent on content (an unchanged delta makes no new commit).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..endpoint import Endpoint, api
from ..errors import InputError
from .bases import trained_on
from .cards import read_block
from .hub_errors import if_exists
from .hubops import parse_spec
from .network import check_repo_id, remote_calls
from .provenance import Declared
from .stage import BLOCK, IGNORED, staged, write_block
from .validate import Report, ValidationFailed, validate_on_registry


def _local_files(folder: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(folder)): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part in IGNORED for part in p.relative_to(folder).parts)
    }


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _unchanged(hub, repo_id: str, rtype: str, files: dict[str, Path]) -> str | None:
    """The head commit sha when the repo's head already holds exactly these files, else None."""
    head = if_exists(
        lambda: (
            hub.repo_info(repo_id, repo_type=rtype),
            {e.path: e for e in hub.list_repo_tree(repo_id, repo_type=rtype, recursive=True) if hasattr(e, "blob_id")},
        )
    )
    if head is None:
        return None
    info, remote = head
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


def publish(
    folder: str | Path,
    repo_id: str,
    dataset_repo: str | None = None,
    dataset_revision: str | None = None,
    tag: str | None = None,
    private: bool = False,
    message: str | None = None,
    declared: Declared | None = None,
    validate: bool = True,
    measure: list[str] | None = None,
    measure_limit: int | None = None,
    endpoint: Endpoint | None = None,
) -> dict:
    """Upload ``folder`` to ``repo_id`` (dataset repo for pairs, model repo for adapters/merged).

    ``folder`` is a deltahub stage folder or any PEFT LoRA adapter (its provenance from ``declared``, every
    field tagged declared/measured/unknown on the card). The copy that will be uploaded is validated first
    and a failing one is refused (:class:`ValidationFailed` carries the checklist); ``validate=False``
    publishes anyway and the card says it was not validated. ``measure`` (task names) scores the adapter and
    its base on those tasks and records the gain (the card's model-index, ``list --sort gain``).
    Returns ``{"repo_id", "repo_type", "commit", "created", "report"}``; ``created`` is False when nothing
    changed. Network errors are retried; an unreachable registry or missing write rights end in one line.
    ``endpoint``: the registry (default: this process's, :func:`deltahub.endpoint.connect`).
    """
    folder = Path(folder)
    parse_spec(repo_id)
    check_repo_id(repo_id)
    hub = api(endpoint)
    with staged(folder, declared, dataset_repo, dataset_revision, name=repo_id.split("/")[1]) as stage:
        block = read_block(stage)
        rtype = "dataset" if block.kind == "dataset" else "model"
        if block.kind == "dataset" and not list(stage.glob("data/*.parquet")):
            raise InputError(f"{folder} has no data/*.parquet shards", "publish the folder deltahub generate wrote")
        report = check_and_record(stage, folder, validate, measure, measure_limit, hub)
        with remote_calls(hub, repo_id, f"publishing {folder} to {repo_id}") as net:
            files = _local_files(stage)
            # create first: probing a name the registry does not hold would make it ask its upstream
            net(lambda: hub.create_repo(repo_id, repo_type=rtype, private=private, exist_ok=True))
            head = net(lambda: _unchanged(hub, repo_id, rtype, files))
            created = head is None
            if created:
                info = net(
                    lambda: hub.upload_folder(
                        repo_id=repo_id,
                        folder_path=str(stage),
                        repo_type=rtype,
                        commit_message=message or f"deltahub publish ({block.kind})",
                    )
                )
                head = info.oid
            if tag:
                net(lambda: hub.create_tag(repo_id, tag=tag, revision=head, repo_type=rtype, exist_ok=True))
    return {"repo_id": repo_id, "repo_type": rtype, "commit": head, "created": created, "report": report}


def check_and_record(
    stage: Path, folder: Path, validate: bool, measure: list[str] | None, measure_limit: int | None, hub=None
) -> Report | None:
    """Validate the stage (a failure raises), measure the gain if asked; record the outcome and what was
    measured in its block and card."""
    block = json.loads((stage / BLOCK).read_text(encoding="utf-8"))
    prov = block.setdefault("provenance", {"origin": "deltahub", "fields": {}})
    report = None
    if validate:
        report = validate_on_registry(stage, str(folder), base_folder=trained_on(folder), hub=hub)
        if not report.ok:
            raise ValidationFailed(report)
        if "pairs" in report.measured:
            block["pairs"] = report.measured["pairs"]
            prov.setdefault("fields", {})["pairs"] = "measured"
        prov["validation"] = {"status": "passed", "warnings": [f"{c.name}: {c.detail}" for c in report.warnings]}
    else:
        prov["validation"] = {"status": "skipped", "warnings": ["published with --no-validate: not checked"]}
    if measure:
        if block.get("kind") == "dataset":
            raise InputError("--measure scores an adapter, and this is a pairs dataset", "drop --measure")
        from .measure import measure_gain

        block["gain"] = measure_gain(stage, measure, limit=measure_limit)
        prov.setdefault("fields", {})["gain"] = "measured"
    write_block(stage, block)
    return report
