"""The folder as it will be published: a hard-linked twin whose block, card and adapter config are rewritten.

``publish`` uploads the stage and ``validate`` checks it, so what passed validation is byte for byte what
is uploaded, and the user's folder is never modified (rewritten files replace their links, atomically).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import InputError
from ..weights import read_adapter_config
from .bases import resolve_base
from .cards import read_block, write_card
from .provenance import Declared, apply_declared, external_block
from .schema import parse_block

IGNORED = (".cache", ".git", "checkpoints", "work")
BLOCK = "deltahub.json"


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a copy
        shutil.copy2(src, dst)


@contextlib.contextmanager
def staged(
    folder: str | Path,
    declared: Declared | None = None,
    dataset_repo: str | None = None,
    dataset_revision: str | None = None,
    name: str | None = None,
    refuse_local_base: bool = True,
) -> Iterator[Path]:
    """A temporary twin of ``folder`` with its block (declarations applied) and card titled ``name`` (default:
    the folder's name); removed on exit. ``refuse_local_base=False`` (validate) keeps a base only this machine
    has, for the checklist to report, instead of refusing it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"{folder} is not a folder",
            "pass a PEFT LoRA adapter folder or the output folder of deltahub generate, train or merge",
        )
    with tempfile.TemporaryDirectory(prefix="deltahub-stage-") as tmp:
        stage = Path(tmp) / (name or folder.resolve().name)
        shutil.copytree(folder, stage, ignore=shutil.ignore_patterns(*IGNORED), copy_function=_link_or_copy)
        block = staged_block(stage, folder, declared, dataset_repo, dataset_revision, refuse_local_base)
        write_block(stage, block)
        yield stage


def staged_block(
    stage: Path,
    folder: Path,
    declared: Declared | None,
    dataset_repo: str | None,
    dataset_revision: str | None,
    refuse_local_base: bool = True,
) -> dict[str, Any]:
    """The block ``folder`` will be published with (and, for ``--base``, its adapter config rewritten)."""
    adapter_config = read_adapter_config(stage)
    if (stage / BLOCK).is_file():
        read_block(stage)  # a readable, valid block, or one line saying what is wrong
        block = json.loads((stage / BLOCK).read_text(encoding="utf-8"))
    elif adapter_config is not None:
        block = external_block(folder, adapter_config)
    else:
        raise InputError(
            f"{folder} is not a delta: no deltahub.json and no adapter_config.json",
            "publish a PEFT LoRA adapter folder or the output of deltahub generate, train or merge",
        )
    if dataset_repo:
        block["dataset"] = {"repo": dataset_repo, "revision": dataset_revision}
    if declared is not None:
        apply_declared(block, declared)
    try:
        _publish_base(stage, block, adapter_config, declared.base if declared is not None else None)
    except InputError:
        if refuse_local_base:
            raise
    parse_block(block, f"{folder} (as published)")
    return block


def _publish_base(stage: Path, block: dict[str, Any], adapter_config: dict | None, declared: str | None) -> None:
    """Name the base by a repo id (``--base``, or the id its local folder records) in the block and, where that id
    resolves through a registry, in the published adapter config; a base only this machine has is refused."""
    if block.get("kind") == "dataset":
        return
    student = block.get("student") if isinstance(block.get("student"), dict) else {}
    named = (adapter_config or {}).get("base_model_name_or_path") or student.get("model")
    if not named and not declared:
        return
    base = resolve_base(str(named or declared), declared)
    block["student"] = {**student, "model": base.repo_id}
    if adapter_config is not None and base.on_hub and adapter_config.get("base_model_name_or_path") != base.repo_id:
        atomic_write_text(
            stage / "adapter_config.json",
            json.dumps({**adapter_config, "base_model_name_or_path": base.repo_id}, indent=2),
        )


def write_block(stage: Path, block: dict[str, Any]) -> None:
    """``deltahub.json`` and the card rendered from it."""
    atomic_write_text(stage / BLOCK, json.dumps(block, indent=2) + "\n")
    write_card(stage)
